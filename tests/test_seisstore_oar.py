"""The generated OAR array on a real one-node OAR 2.5 cluster, against the local grid.

``scripts/cluster/oar-up.sh`` installs Debian's OAR and PostgreSQL if missing and starts a
private database, the server (Almighty) and the node (session fixture; ``oar-down.sh`` at
the end).  OAR refuses jobs of root, so the campaign runs as the user ``seisoar``: OAR
does not pass the submitter's environment, so the campaign's setup lines give the job its
PATH, PYTHONPATH and collections (the system ``python3`` runs the checkout's packages:
the virtualenv's own interpreter may sit under an unreadable ``/root``), and its iRODS
environment is ``~seisoar/.irods``.  The array (``--array-param-file``, ``besteffort`` +
``idempotent``) is preempted by a normal job mid-run; OAR resubmits the killed jobs and the
results equal those of ``campaign run-local`` (same objects, same checksums).
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime

import helpers

pytestmark = pytest.mark.oar

ROOT = Path(__file__).resolve().parent.parent
UP, DOWN = ROOT / "scripts" / "cluster" / "oar-up.sh", ROOT / "scripts" / "cluster" / "oar-down.sh"
USER = "seisoar"
STATIONS = ["STA1", "STA2", "STA3"]
DAY0 = datetime.date(2011, 3, 8)
N_DAYS = 4
SYSTEM_PYTHON = "/usr/bin/python3"


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
    probe = as_user([SYSTEM_PYTHON, "-c", "import obspy, irods, seisstore.job, secure_irods.cli"],
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
    base: str                     # the collection holding archive/, code/, local/, oar/, transient/
    n: int
    local: dict[str, str]         # run-local's results: {object name: checksum}


@pytest.fixture(scope="session")
def oar_campaign(grid, oar):
    """The RMS campaign as the job user sees it, and the results of its run-local."""
    from irods.password_obfuscation import decode, encode

    from seisstore.campaign import Campaign, write_campaign
    from seisstore.ingest import ingest
    from seisstore.jdl import Cluster
    from seisstore.layout import SDSLayout

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

    raw = work / "raw"
    raw.mkdir()
    for i, sta in enumerate(STATIONS):
        data = np.random.default_rng(i).normal(0, 100 * (i + 1), N_DAYS * 86400 * 2).astype(np.int32)
        Stream([Trace(data=data, header={"network": "XX", "station": sta, "location": "00", "channel": "HHZ",
                                         "sampling_rate": 2.0, "starttime": UTCDateTime(DAY0.isoformat())})]
               ).write(str(raw / f"{sta}.mseed"), format="MSEED")
    base = f"{grid.home}/oar-{uuid.uuid4().hex[:8]}"
    with zone(grid) as client:
        ingest(client, raw, f"{base}/archive", SDSLayout(), progress=False)
        for coll in ("code", "local", "oar", "transient"):
            client.mkdir(f"{base}/{coll}")
        site = sysconfig.get_paths()["purelib"]
        camp = Campaign(
            name="rms", dates=[DAY0 + datetime.timedelta(days=d) for d in range(N_DAYS)], stations=STATIONS,
            n_dates=3, n_stations=2, job_script=ROOT / "scripts" / "job_rms.py", irods_collection=f"{base}/code",
            clusters={"local": Cluster(project="whisper", walltime="00:10:00")}, interpreter=(SYSTEM_PYTHON,),
            # OAR starts jobs with the user's login environment, not the submitter's
            setup=[f"export PATH={bindir}:$PATH PYTHONPATH={ROOT}:{site}",
                   f"export SEISSTORE_ARCHIVE={base}/archive",
                   f'export SEISSTORE_RESULTS="${{SEISSTORE_RESULTS:-{base}/oar}}"',
                   f'export SECURE_IRODS_THROTTLE_DIR="${{SECURE_IRODS_THROTTLE_DIR:-{work}/throttle}}"'])
        directory = work / "rms"
        write_campaign(camp, directory)
        client.put_many([(directory / f, f"{base}/code/{f}") for f in camp.uploads], force=True)
    for path in [directory, *directory.iterdir()]:
        shutil.chown(path, USER)
    env = dict(grid.environ(), SECURE_IRODS_THROTTLE_DIR=str(work / "throttle-root"), SEISSTORE_RESULTS=f"{base}/local")
    ran = subprocess.run([sys.executable, "-m", "seisstore.cli", "campaign", "run-local", str(directory), "-j", "2"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    shutil.rmtree(directory / ".run")
    local = checksums(grid, f"{base}/local")
    assert len(local) == camp.n_jobs
    try:
        yield OarCampaign(directory, base, camp.n_jobs, local)
    finally:
        if not os.environ.get("SEISSTORE_KEEP_OAR_WORK"):
            shutil.rmtree(work, ignore_errors=True)


def zone(grid):
    from secure_irods.client import connect

    return connect(env_file=grid.env_file, auth_file=grid.auth_file, throttle=False, cooldown=False)


def checksums(grid, collection: str) -> dict[str, str]:
    return helpers.checksums(grid.env_file, grid.auth_file, collection)


def oarstat() -> list[tuple[str, str]]:
    """(job id, state letter) of the job user's unfinished jobs."""
    rows = as_user(["oarstat"]).stdout.splitlines()[2:]
    return [(row.split()[0], row.split()[1]) for row in rows if row.strip()]


def wait_for(predicate, timeout: float, what: str):
    return helpers.wait_for(predicate, timeout, what, poll=0.5, describe=lambda: as_user(["oarstat"]).stdout)


def err_logs(directory: Path) -> str:
    return "".join(f"{p.name}: {p.read_text()[-600:]}\n" for p in sorted(directory.glob("rms.*.err")))


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
    outputs = len(list(camp.directory.glob("rms.*.out")))
    print(f"\nOAR array of {camp.n} jobs: {time.monotonic() - began:.1f} s, {killed} killed and resubmitted"
          f" ({outputs} job outputs)")
    assert killed, f"no best-effort job was killed by the normal job in 4 tries\n{err_logs(camp.directory)}"
    assert outputs >= camp.n + killed          # the resubmissions are new jobs
    assert checksums(grid, f"{camp.base}/oar") == camp.local, err_logs(camp.directory)


def test_oar_job_exiting_2_is_resubmitted_and_succeeds(grid, oar_campaign):
    """The zone drops every connection: start.bash ends with 2, the job with 99 after 61 s; OAR resubmits it."""
    camp = oar_campaign
    line = (camp.directory / "param.txt").read_text().splitlines()[1]
    (camp.directory / "one.txt").write_text(line + "\n")
    script = (camp.directory / "oar_local.sh").read_text()
    script = script.replace("--array-param-file param.txt", "--array-param-file one.txt").replace(
        "set -uo pipefail\n", f"set -uo pipefail\nexport SECURE_IRODS_DEADLINE=3 SECURE_IRODS_MAX_WAIT=1"
                              f" SEISSTORE_RESULTS={camp.base}/transient\n")
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
        err = camp.directory / f"rms.{first}.err"
        wait_for(lambda: err.exists() and "exit 99 so that OAR resubmits it" in err.read_text(), 120,
                 "the job's transient failure")
    finally:
        grid.clear_faults()
    wait_for(lambda: not oarstat() and len(list(camp.directory.glob("rms.*.out"))) and
             checksums(grid, f"{camp.base}/transient"), 180, "the resubmitted job")
    print(f"\nOAR job with a transient failure, resubmitted: {time.monotonic() - began:.1f} s")
    name = line.split()[0]
    assert checksums(grid, f"{camp.base}/transient") == {f"{name}.csv": camp.local[f"{name}.csv"]}
