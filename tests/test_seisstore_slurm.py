"""The correlation campaign as a Slurm array on a real one-node Slurm cluster, against the local grid.

``scripts/cluster/slurm-up.sh`` installs Slurm and munge from Debian's packages if missing
and starts them (session fixture; ``slurm-down.sh`` at the end).  The archive is
preprocessed once (the preprocess job, in the fixture); the correlation campaign
(``scripts/job_correlate.py``) runs once with ``campaign run-local`` and once as a Slurm
array (``besteffort`` partition) whose tasks are cancelled (``scancel``) and requeued
(``scontrol requeue``) mid-run and preempted by a ``main`` job.  Both leave the same
bundle objects, the same bundle index (AVUs: (pair, date) -> bundle) and the same
correlation arrays, read with h5py (the files themselves differ: a bundle records when it
was written).  A task whose transfers fail transiently (exit 2) requeues itself and writes
the same bundles as run-local's for its line.

Needs root and Slurm or apt-get: skipped elsewhere, with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import helpers
from helpers import XC_DAYS, XC_STATIONS, wait_for

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
UP, DOWN = ROOT / "scripts" / "cluster" / "slurm-up.sh", ROOT / "scripts" / "cluster" / "slurm-down.sh"
BIN = str(Path(sys.executable).parent)


def _skip_reason() -> str | None:
    if os.environ.get("SEISSTORE_SKIP_SLURM"):
        return "SEISSTORE_SKIP_SLURM is set"
    if os.geteuid() != 0:
        return "needs root to install and run Slurm (scripts/cluster/slurm-up.sh)"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "Slurm is not installed and there is no apt-get to install it"
    return None


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running one-node cluster (2 CPUs, partitions main and besteffort)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    began = time.monotonic()
    up = subprocess.run(["bash", str(UP), str(state)], capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        pytest.fail(f"slurm-up.sh failed ({up.returncode}): {up.stderr[-2000:]}")
    print(f"\nslurm-up.sh: {time.monotonic() - began:.1f} s")
    conf = up.stdout.strip().rpartition("SLURM_CONF=")[2]
    assert Path(conf).is_file(), up.stdout
    try:
        yield conf
    finally:
        subprocess.run(["bash", str(DOWN), str(state)], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def xc_campaign(grid, slurm, tmp_path_factory):
    """A processed archive and the correlation campaign over it, written and uploaded by `seisstore campaign new`.

    Its 6 lines (2 date blocks x 3 station-block pairs) all have pairs; the jobs' settings
    come from $SEISSTORE_CONFIG and their bundle collection from $SEISSTORE_BUNDLES, which
    sbatch passes on from the submitting environment.
    """
    tmp = tmp_path_factory.mktemp("xc")
    base = f"{grid.home}/slurm-{uuid.uuid4().hex[:8]}"
    env = dict(grid.environ(), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", SLURM_CONF=slurm,
               SECURE_IRODS_THROTTLE_DIR=str(tmp / "throttle"), SECURE_IRODS_MAX_CONNECTIONS="8")
    processed = helpers.processed_archive(env, tmp, base)
    env["SEISSTORE_CONFIG"] = helpers.correlate_settings(processed)
    camp = tmp / "xc"
    made = seisstore(["campaign", "new", "xc", "--kind", "correlation", "--dates", f"{XC_DAYS[0]}..{XC_DAYS[-1]}",
                      "--stations", ",".join(XC_STATIONS), "--n-dates", "2", "--n-stations", "2",
                      "--script", str(ROOT / "scripts" / "job_correlate.py"), "--collection", f"{base}/code",
                      "--parents", "--cluster", "name=local,project=whisper,walltime=00:10:00,max_jobs=2",
                      "--interpreter", sys.executable, "--out", str(camp), "--upload"], env)
    assert made.returncode == 0, made.stderr
    return camp, base, env


def seisstore(args, env, **kwargs):
    return subprocess.run([sys.executable, "-m", "seisstore.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, **kwargs)


def slurm_cmd(args, env) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def tasks(job: str, env) -> dict[int, tuple[str, int]]:
    """{task: (state, restarts)} of an array job, from the controller (scontrol show job)."""
    out = slurm_cmd(["scontrol", "-o", "show", "job", job], env)
    found = {}
    for line in out.splitlines():
        task = re.search(r"\bArrayTaskId=(\d+)\b", line)
        if task:
            found[int(task.group(1))] = (re.search(r"\bJobState=(\S+)", line).group(1),
                                         int(re.search(r"\bRestarts=(\d+)", line).group(1)))
    return found


def bundles(env, collection: str) -> helpers.Bundles:
    return helpers.read_bundles(env["IRODS_ENVIRONMENT_FILE"], env["IRODS_AUTHENTICATION_FILE"], collection)


@pytest.fixture(scope="session")
def local_bundles(xc_campaign):
    """The bundles of `campaign run-local` of the campaign: every (pair, date) of the stations in one bundle."""
    camp, base, env = xc_campaign
    ran = seisstore(["campaign", "run-local", str(camp), "-j", "2"], dict(env, SEISSTORE_BUNDLES=f"{base}/local"))
    assert ran.returncode == 0, ran.stderr
    shutil.rmtree(camp / ".run")
    found = bundles(env, f"{base}/local")
    helpers.assert_complete(found, [line.split()[0] for line in (camp / "param.txt").read_text().splitlines()])
    return found


def test_slurm_array_with_cancels_requeues_and_preemption_equals_run_local(grid, request, xc_campaign,
                                                                          local_bundles):
    camp, base, env = xc_campaign
    env = dict(env, SEISSTORE_BUNDLES=f"{base}/slurm")
    grid.set_faults(latency_ms=40)            # tasks of a few seconds: long enough to be caught running
    request.addfinalizer(grid.clear_faults)
    began = time.monotonic()
    job = subprocess.run(["sbatch", "--parsable", "--partition=besteffort", "slurm_local.sh"], env=env, cwd=camp,
                         capture_output=True, text=True, timeout=60)
    assert job.returncode == 0, job.stderr
    job = job.stdout.strip().split(";")[0]
    n = len((camp / "param.txt").read_text().splitlines())

    # scancel two tasks while they run, then requeue them (the array's %2 keeps two at once)
    cancelled = []
    while len(cancelled) < 2:
        running = wait_for(lambda: [t for t, (s, _) in tasks(job, env).items() if s == "RUNNING"
                                    and t not in cancelled], 60, "a running task")
        time.sleep(0.5)                       # mid-run: fetching inputs or reading day files
        task = running[0]
        slurm_cmd(["scancel", f"{job}_{task}"], env)
        wait_for(lambda: tasks(job, env)[task][0] == "CANCELLED", 30, f"task {task} cancelled")
        slurm_cmd(["scontrol", "requeue", f"{job}_{task}"], env)
        cancelled.append(task)
    # a job of the higher-priority partition takes both CPUs: Slurm requeues the running best-effort
    # tasks (PreemptMode=REQUEUE); the scheduler may take a second or two to act, so try until it has
    preempted = 0
    for attempt in range(4):
        before = tasks(job, env)
        if all(s == "COMPLETED" for s, _ in before.values()):
            break
        wait_for(lambda: [t for t, (s, _) in tasks(job, env).items() if s == "RUNNING"], 60, "a running task")
        urgent = slurm_cmd(["sbatch", "--parsable", "--partition=main", "--cpus-per-task=2", "--job-name=urgent",
                            "--output=/dev/null", "--wrap", "sleep 1"], env).strip()
        wait_for(lambda: "JobState=COMPLETED" in slurm_cmd(["scontrol", "-o", "show", "job", urgent], env), 60,
                 "the urgent job")
        after = tasks(job, env)
        preempted = sum(after[t][1] - before[t][1] for t in after)
        if preempted:
            break
    assert preempted, "no best-effort task was preempted by the main partition's job in 4 tries"

    final = wait_for(lambda: (lambda t: t if len(t) == n and all(s == "COMPLETED" for s, _ in t.values()) else None)(
        tasks(job, env)), 150, "every task COMPLETED")
    requeued = {t: r for t, (_, r) in final.items() if r}
    grid.clear_faults()
    print(f"\nslurm array of {n} tasks: {time.monotonic() - began:.1f} s, restarts per task {requeued}")
    assert set(cancelled) <= set(requeued)
    assert sum(requeued.values()) >= len(cancelled) + preempted

    print(helpers.assert_same_correlations(bundles(env, f"{base}/slurm"), local_bundles))
    for task in range(1, n + 1):
        assert (camp / f"xc_{job}_{task}.out").exists()
    assert "DUE TO PREEMPTION" in "".join(p.read_text() for p in camp.glob(f"xc_{job}_*.out"))

    status = seisstore(["campaign", "status", str(camp), "--job", job, "--results", f"{base}/slurm"], env)
    assert status.returncode == 0, status.stderr
    assert f"{n} lines: {n} COMPLETED, {n} with results" in status.stdout
    print(status.stdout)


def test_task_exiting_2_requeues_itself_and_succeeds(grid, xc_campaign, local_bundles):
    """The zone drops every connection: start.bash's secure-iget ends with exit 2, the task requeues itself."""
    camp, base, env = xc_campaign
    env = dict(env, SEISSTORE_BUNDLES=f"{base}/transient", SECURE_IRODS_DEADLINE="3", SECURE_IRODS_MAX_WAIT="1")
    grid.set_faults(drop_rate=1.0)
    try:
        job = subprocess.run(["sbatch", "--parsable", "--partition=besteffort", "--array=2", "slurm_local.sh"],
                             env=env, cwd=camp, capture_output=True, text=True, timeout=60)
        assert job.returncode == 0, job.stderr
        job = job.stdout.strip().split(";")[0]
        out = camp / f"xc_{job}_2.out"
        wait_for(lambda: out.exists() and "transient failure (exit 2), requeued" in out.read_text(), 60,
                 "the task to requeue itself")
    finally:
        grid.clear_faults()
    state = wait_for(lambda: (lambda t: t if t.get(2, ("", 0))[0] == "COMPLETED" else None)(tasks(job, env)),
                     90, "the requeued task to complete")
    assert state[2][1] >= 1
    line = (camp / "param.txt").read_text().splitlines()[1].split()[0]
    print(helpers.assert_same_correlations(bundles(env, f"{base}/transient"), helpers.line_bundles(local_bundles, line)))
