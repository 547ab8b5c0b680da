"""The correlation campaign as an OAR array on a real one-node OAR 2.5 cluster, against the local grid.

``scripts/cluster/oar-up.sh`` installs Debian's OAR and PostgreSQL if missing and starts a
private database, the server (Almighty) and the node (session fixture; ``oar-down.sh`` at
the end).  OAR refuses jobs of root, so the campaign runs as the user ``seisoar``: OAR
does not pass the submitter's environment, so the campaign's setup lines give the job its
PATH, PYTHONPATH, settings and collections (the system ``python3`` runs the checkout's
packages: the virtualenv's own interpreter may sit under an unreadable ``/root``), and its
iRODS environment is ``~seisoar/.irods``.  The archive is preprocessed once (the
preprocess job, in the fixture); the correlation campaign (``scripts/job_correlate.py``)
runs as an array (``--array-param-file``, ``besteffort`` + ``idempotent``) preempted by a
normal job mid-run; OAR resubmits the killed jobs and the bundles equal those of
``campaign run-local`` (same objects, same bundle index, same correlation arrays read with
h5py; not the same bytes: a bundle records when it was written).  A job whose transfers
fail transiently (exit 2) ends with 99, is resubmitted, and writes run-local's bundles.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

import helpers
from helpers import XC_DAYS, XC_STATIONS

pytestmark = pytest.mark.oar

ROOT = Path(__file__).resolve().parent.parent
UP, DOWN = ROOT / "scripts" / "cluster" / "oar-up.sh", ROOT / "scripts" / "cluster" / "oar-down.sh"
USER = "seisoar"
SYSTEM_PYTHON = "/usr/bin/python3"
#: Chooses OpenBLAS's kernels, hence the rounding of the cross-spectra (numpy's matmul): a
#: job without the submitter's value writes correlations that differ from run-local's by
#: float32 rounding (seen: OPENBLAS_CORETYPE=Haswell on an AVX-512 machine)
NUMERIC_ENV = ("OPENBLAS_CORETYPE",)


def _skip_reason() -> str | None:
    if os.environ.get("SEISSTORE_SKIP_OAR"):
        return "SEISSTORE_SKIP_OAR is set"
    if os.geteuid() != 0:
        return "needs root to install and run OAR (scripts/cluster/oar-up.sh)"
    if not shutil.which("oarsub") and not shutil.which("apt-get"):
        return "OAR is not installed and there is no apt-get to install it"
    if not os.access(SYSTEM_PYTHON, os.X_OK) or sys.version_info[:2] != _system_python_version():
        return f"the OAR job runs {SYSTEM_PYTHON}, which is not Python {sys.version_info[0]}.{sys.version_info[1]}"
    return None


def _system_python_version() -> tuple[int, int]:
    try:
        out = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=30).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return (0, 0)


def as_user(args, cwd="/", **kwargs):
    """``args`` as the job user, from ``cwd`` (oarsub takes the launching directory from $PWD)."""
    env = dict(kwargs.pop("env", os.environ), PWD=str(cwd))
    return subprocess.run(["runuser", "-u", USER, "--", *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env=env, **kwargs)


@pytest.fixture(scope="session")
def oar():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    state = Path(tempfile.mkdtemp(prefix="seisstore-oar-state-"))   # postgres and oar must reach it:
    state.chmod(0o755)                                                # not under pytest's private tmp
    began = time.monotonic()
    up = subprocess.run(["bash", str(UP), str(state)], capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        pytest.fail(f"oar-up.sh failed ({up.returncode}): {up.stderr[-2000:]}")
    print(f"\noar-up.sh: {time.monotonic() - began:.1f} s")
    home = Path(pwd.getpwnam(USER).pw_dir)
    site = sysconfig.get_paths()["purelib"]
    probe = as_user([SYSTEM_PYTHON, "-c", "import obspy, irods, h5py, seisstore.jobs.correlate, secure_irods.cli"],
                    env=dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{site}"), cwd="/")
    if probe.returncode != 0:
        subprocess.run(["bash", str(DOWN), str(state)], capture_output=True, timeout=120)
        pytest.skip(f"user {USER} cannot import the checkout ({ROOT}) and its packages ({site}):"
                    f" {probe.stderr.strip().splitlines()[-1:]}")
    try:
        yield home
    finally:
        subprocess.run(["bash", str(DOWN), str(state)], capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)


@dataclass
class OarCampaign:
    directory: Path               # the campaign directory, the job user's
    base: str                     # the collection holding archive/, processed/, code/, local/, oar/, transient/
    n: int
    local: helpers.Bundles        # run-local's bundles


@pytest.fixture(scope="session")
def oar_campaign(grid, oar):
    """The correlation campaign as the job user sees it, and the bundles of its run-local."""
    from irods.password_obfuscation import decode, encode

    from seisstore.campaign import Campaign, write_campaign
    from seisstore.jdl import Cluster

    home = oar
    work = Path(tempfile.mkdtemp(prefix="seisstore-oar-test-"))    # the job user reads and writes here
    work.chmod(0o755)
    shutil.chown(work, USER)
    irods = home / ".irods"
    irods.mkdir(exist_ok=True)
    environment = json.loads(Path(grid.env_file).read_text())
    environment["irods_authentication_file"] = str(irods / ".irodsA")
    (irods / "irods_environment.json").write_text(json.dumps(environment))
    # .irodsA is obfuscated with its owner's uid: encode the password again for the job user
    password = decode(Path(grid.auth_file).read_text().strip())
    (irods / ".irodsA").write_text(encode(password, uid=pwd.getpwnam(USER).pw_uid) + "\n")
    (irods / ".irodsA").chmod(0o600)
    for path in (irods, irods / "irods_environment.json", irods / ".irodsA"):
        shutil.chown(path, USER)
    bindir = work / "bin"
    bindir.mkdir()
    for tool, entry in (("secure-iget", "iget_main"), ("secure-iput", "iput_main")):
        (bindir / tool).write_text(f"#!/bin/sh\nexec {SYSTEM_PYTHON} -c "
                                   f"'import sys; from secure_irods.cli import {entry}; sys.exit({entry}())' \"$@\"\n")
        (bindir / tool).chmod(0o755)

    base = f"{grid.home}/oar-{uuid.uuid4().hex[:8]}"
    env = dict(grid.environ(), SECURE_IRODS_THROTTLE_DIR=str(work / "throttle-root"))
    processed = helpers.processed_archive(env, work, base)
    with zone(grid) as client:
        for coll in ("code", "local", "oar", "transient"):
            client.mkdir(f"{base}/{coll}")
        site = sysconfig.get_paths()["purelib"]
        camp = Campaign(
            name="xc", kind="correlation", dates=XC_DAYS, stations=XC_STATIONS, n_dates=2, n_stations=2,
            job_script=ROOT / "scripts" / "job_correlate.py", irods_collection=f"{base}/code",
            clusters={"local": Cluster(project="whisper", walltime="00:10:00")}, interpreter=(SYSTEM_PYTHON,),
            # OAR starts jobs with the user's login environment, not the submitter's
            setup=[f"export PATH={bindir}:$PATH PYTHONPATH={ROOT}:{site}",
                   f"export SEISSTORE_CONFIG={shlex.quote(helpers.correlate_settings(processed))}",
                   f'export SEISSTORE_BUNDLES="${{SEISSTORE_BUNDLES:-{base}/oar}}"',
                   f'export SECURE_IRODS_THROTTLE_DIR="${{SECURE_IRODS_THROTTLE_DIR:-{work}/throttle}}"',
                   *(f"export {name}={shlex.quote(os.environ[name])}" for name in NUMERIC_ENV if name in os.environ)])
        directory = work / "xc"
        write_campaign(camp, directory)
        client.put_many([(directory / f, f"{base}/code/{f}") for f in camp.uploads], force=True)
    for path in [directory, *directory.iterdir()]:
        shutil.chown(path, USER)
    ran = subprocess.run([sys.executable, "-m", "seisstore.cli", "campaign", "run-local", str(directory), "-j", "2"],
                         env=dict(env, SEISSTORE_BUNDLES=f"{base}/local"), capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    shutil.rmtree(directory / ".run")
    local = bundles(grid, f"{base}/local")
    helpers.assert_complete(local, [line.split()[0] for line in (directory / "param.txt").read_text().splitlines()])
    try:
        yield OarCampaign(directory, base, camp.n_jobs, local)
    finally:
        if not os.environ.get("SEISSTORE_KEEP_OAR_WORK"):
            shutil.rmtree(work, ignore_errors=True)


def zone(grid):
    from secure_irods.client import connect

    return connect(env_file=grid.env_file, auth_file=grid.auth_file, throttle=False, cooldown=False)


def bundles(grid, collection: str) -> helpers.Bundles:
    return helpers.read_bundles(grid.env_file, grid.auth_file, collection)


def oarstat() -> list[tuple[str, str]]:
    """(job id, state letter) of the job user's unfinished jobs."""
    rows = as_user(["oarstat"]).stdout.splitlines()[2:]
    return [(row.split()[0], row.split()[1]) for row in rows if row.strip()]


def wait_for(predicate, timeout: float, what: str):
    return helpers.wait_for(predicate, timeout, what, poll=0.5, describe=lambda: as_user(["oarstat"]).stdout)


def err_logs(directory: Path) -> str:
    return "".join(f"{p.name}: {p.read_text()[-600:]}\n" for p in sorted(directory.glob("xc.*.err")))


def test_oar_array_preempted_by_a_normal_job_equals_run_local(grid, request, oar_campaign):
    camp = oar_campaign
    grid.set_faults(latency_ms=40)            # jobs of a few seconds: long enough to be caught running
    request.addfinalizer(grid.clear_faults)
    began = time.monotonic()
    sub = as_user(["oarsub", "-S", "./oar_local.sh"], cwd=camp.directory)
    assert sub.returncode == 0, sub.stderr + sub.stdout
    assert len(re.findall(r"OAR_JOB_ID=\d+", sub.stdout)) == camp.n and "OAR_ARRAY_ID=" in sub.stdout

    # a normal job wants both cores: OAR kills the running best-effort jobs and, as they are
    # idempotent, resubmits them; the scheduler may start it only once they ended: try again
    killed = 0
    for attempt in range(4):
        if not oarstat():
            break
        wait_for(lambda: [j for j, state in oarstat() if state == "R"], 120, "a running job")
        urgent = as_user(["oarsub", "-l", "/core=2,walltime=00:01:00", "sleep 1"], cwd=camp.directory)
        assert urgent.returncode == 0, urgent.stderr
        job = re.search(r"OAR_JOB_ID=(\d+)", urgent.stdout).group(1)
        wait_for(lambda: job not in dict(oarstat()), 120, f"the normal job {job}")
        killed = err_logs(camp.directory).count("KILLED")
        if killed:
            break
    wait_for(lambda: not oarstat(), 240, "every job to end")
    outputs = len(list(camp.directory.glob("xc.*.out")))
    print(f"\nOAR array of {camp.n} jobs: {time.monotonic() - began:.1f} s, {killed} killed and resubmitted"
          f" ({outputs} job outputs)")
    assert killed, f"no best-effort job was killed by the normal job in 4 tries\n{err_logs(camp.directory)}"
    assert outputs >= camp.n + killed          # the resubmissions are new jobs
    grid.clear_faults()
    print(helpers.assert_same_correlations(bundles(grid, f"{camp.base}/oar"), camp.local))


def test_oar_job_exiting_2_is_resubmitted_and_succeeds(grid, oar_campaign):
    """The zone drops every connection: start.bash ends with 2, the job with 99 after 61 s; OAR resubmits it."""
    camp = oar_campaign
    line = (camp.directory / "param.txt").read_text().splitlines()[1]
    (camp.directory / "one.txt").write_text(line + "\n")
    script = (camp.directory / "oar_local.sh").read_text()
    script = script.replace("--array-param-file param.txt", "--array-param-file one.txt").replace(
        "set -uo pipefail\n", f"set -uo pipefail\nexport SECURE_IRODS_DEADLINE=3 SECURE_IRODS_MAX_WAIT=1"
                              f" SEISSTORE_BUNDLES={camp.base}/transient\n")
    (camp.directory / "oar_one.sh").write_text(script)
    for name in ("one.txt", "oar_one.sh"):
        shutil.chown(camp.directory / name, USER)
    (camp.directory / "oar_one.sh").chmod(0o755)
    began = time.monotonic()
    grid.set_faults(drop_rate=1.0)
    try:
        sub = as_user(["oarsub", "-S", "./oar_one.sh"], cwd=camp.directory)
        assert sub.returncode == 0, sub.stderr + sub.stdout
        first = re.search(r"OAR_JOB_ID=(\d+)", sub.stdout).group(1)
        err = camp.directory / f"xc.{first}.err"
        wait_for(lambda: err.exists() and "exit 99 so that OAR resubmits it" in err.read_text(), 120,
                 "the job's transient failure")
    finally:
        grid.clear_faults()
    wait_for(lambda: not oarstat() and len(list(camp.directory.glob("xc.*.out"))) and
             helpers.checksums(grid.env_file, grid.auth_file, f"{camp.base}/transient"), 180, "the resubmitted job")
    print(f"\nOAR job with a transient failure, resubmitted: {time.monotonic() - began:.1f} s")
    want = helpers.line_bundles(camp.local, line.split()[0])
    print(helpers.assert_same_correlations(bundles(grid, f"{camp.base}/transient"), want))
