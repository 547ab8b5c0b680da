"""A generated campaign runs end to end on this machine, through secure-iget and the grid."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from seisstore.cli import main

JOB = '''\
import os, sys, time
from pathlib import Path
n_dates, idate, n_stations, istation = map(int, sys.argv[1:5])
sys.path.insert(0, {root!r})
from seisstore.campaign import read_dates, read_stations
from seisstore.partition import sublists
dates = sublists(read_dates("dates.txt"), n_dates, idate)
stations = sublists(read_stations("stations.txt"), n_stations, istation)
time.sleep(0.4)                       # long enough to be preempted now and then
out = Path(os.environ["RESULTS"]) / os.environ["SEISSTORE_JOB_NAME"]
tmp = out.with_suffix(".tmp")
tmp.write_text(" ".join(d.isoformat() for d in dates) + "|" + " ".join(stations))
os.replace(tmp, out)
'''


def run_cli(args, env):
    return subprocess.run([sys.executable, "-m", "seisstore.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _campaign_setup(grid, session, tmp_path, script: str):
    """The job script, a results directory, a fresh collection, the jobs' environment and the
    campaign directory every run-local test starts from."""
    root = Path(__file__).resolve().parent.parent
    job = tmp_path / "job.py"
    job.write_text(script)
    results = tmp_path / "results"
    results.mkdir()
    collection = f"{grid.home}/campaign-{uuid.uuid4().hex[:8]}"
    session.collections.create(collection)
    env = dict(grid.environ(), RESULTS=str(results), SECURE_IRODS_THROTTLE_DIR=str(tmp_path / "throttle"),
               PYTHONPATH=str(root))
    return job, results, collection, env, tmp_path / "camp"


def test_campaign_runs_end_to_end_with_preemption(grid, session, tmp_path):
    root = Path(__file__).resolve().parent.parent
    job, results, collection, env, camp = _campaign_setup(grid, session, tmp_path, JOB.format(root=str(root)))
    made = run_cli(["campaign", "new", "demo", "--dates", "2011-03-01..2011-03-10", "--stations", "S1,S2,S3,S4,S5",
                    "--n-dates", "4", "--n-stations", "2", "--script", str(job), "--collection", collection,
                    "--out", str(camp), "--interpreter", sys.executable, "--upload"], env)
    assert made.returncode == 0, made.stderr
    assert len((camp / "param.txt").read_text().splitlines()) == 8
    # seed 4: the 1st and 3rd attempts drawn are killed after 0.21 s and 0.13 s, before the job's
    # 0.4 s sleep can end, however loaded the machine: at least 2 preemptions, each resubmitted
    ran = run_cli(["campaign", "run-local", str(camp), "-j", "2", "--preempt", "0.35", "--seed", "4",
                   "--attempts", "8"], env)
    assert ran.returncode == 0, ran.stderr
    summary = re.search(r"(\d+) of (\d+) jobs done \(0 already done\), (\d+) resubmissions, (\d+) preempted",
                        ran.stderr)
    assert summary, ran.stderr
    done, total, resubmitted, preempted = map(int, summary.groups())
    assert done == total == 8 and preempted >= 2 and resubmitted >= preempted, ran.stderr
    attempts = [int(m.read_text().split("=")[1]) for m in (camp / ".run").glob("*.done")]
    assert len(attempts) == 8 and sum(a - 1 for a in attempts) == resubmitted
    names = sorted(line.split()[0] for line in (camp / "param.txt").read_text().splitlines())
    assert sorted(p.name for p in results.iterdir()) == names
    covered = set()
    for p in results.iterdir():
        days, stations = p.read_text().split("|")
        covered |= {(d, s) for d in days.split() for s in stations.split()}
    assert len(covered) == 10 * 5                 # every date x station exactly once over the campaign
    again = run_cli(["campaign", "run-local", str(camp)], env)   # nothing left to run
    assert again.returncode == 0 and "8 already done" in again.stderr


def test_malformed_param_line_is_one_clear_error(tmp_path):
    camp = tmp_path / "c"
    camp.mkdir()
    (camp / "param.txt").write_text("traces4_0_2_1 4 0 2 1\nbad line; rm -rf /\n")
    (camp / "start.bash").write_text("#!/bin/bash\n")
    result = CliRunner().invoke(main, ["campaign", "run-local", str(camp)])
    assert result.exit_code == 1
    assert "param.txt line 2" in result.output and "Traceback" not in result.output


def test_campaign_new_rejects_unsafe_names_and_bad_dates(tmp_path):
    job = tmp_path / "job.py"
    job.write_text("print(1)\n")
    base = ["campaign", "new", "--stations", "A,B", "--n-dates", "1", "--n-stations", "1", "--script", str(job),
            "--collection", "/tempZone/home/rods/c", "--out", str(tmp_path / "o")]
    bad_name = CliRunner().invoke(main, [*base[:2], "x;rm", *base[2:], "--dates", "2011-01-01"])
    assert bad_name.exit_code == 1 and "Traceback" not in bad_name.output
    bad_date = CliRunner().invoke(main, [*base[:2], "ok", *base[2:], "--dates", "2011-13-01"])
    assert bad_date.exit_code == 1 and "not a date" in bad_date.output


@pytest.mark.parametrize("args", [["--help"], ["campaign", "--help"], ["campaign", "new", "--help"],
                                  ["campaign", "run-local", "--help"]])
def test_help_of_every_subcommand(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "Usage" in result.output


def test_generated_jdl_matches_seed_fields(tmp_path):
    job = tmp_path / "job.py"
    job.write_text("print(1)\n")
    result = CliRunner().invoke(main, ["campaign", "new", "test_processing", "--dates", "2011-03-01..2011-03-20",
                                       "--stations", "A,B,C", "--n-dates", "5", "--n-stations", "2", "--script",
                                       str(job), "--collection", "/tempZone/home/rods/c", "--cluster",
                                       "name=c1,project=whisper,walltime=00:20:00", "--cluster",
                                       "name=c2,project=whisper,walltime=00:30:00,max_jobs=450",
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    jdl = json.loads((tmp_path / "o" / "test_processing.jdl").read_text())
    assert {"name", "resources", "exec_file", "param_file", "type", "clusters"} <= set(jdl)
    assert jdl["type"] == "best-effort" and set(jdl["clusters"]) == {"c1", "c2"}
    assert jdl["clusters"]["c2"]["max_jobs"] == 450
    assert subprocess.run(["bash", "-n", str(tmp_path / "o" / "slurm_c1.sh")]).returncode == 0


SLEEPER = '''\
import os, sys, time
from pathlib import Path
Path(os.environ["RESULTS"], os.environ["SEISSTORE_JOB_NAME"] + ".pid").write_text(str(os.getpid()))
time.sleep(120)
'''


def test_sigterm_stops_run_local_and_every_running_job(grid, session, tmp_path):
    import os
    import signal
    import time

    job, results, collection, env, camp = _campaign_setup(grid, session, tmp_path, SLEEPER)
    made = run_cli(["campaign", "new", "sleep", "--dates", "2011-03-01..2011-03-04", "--stations", "S1",
                    "--n-dates", "4", "--n-stations", "1", "--script", str(job), "--collection", collection,
                    "--out", str(camp), "--interpreter", sys.executable, "--upload"], env)
    assert made.returncode == 0, made.stderr
    runner = subprocess.Popen([sys.executable, "-m", "seisstore.cli", "campaign", "run-local", str(camp), "-j", "2"],
                              env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(results.glob("*.pid"))) < 2 and time.monotonic() < deadline and runner.poll() is None:
        time.sleep(0.1)
    pids = [int(p.read_text()) for p in results.glob("*.pid")]
    assert len(pids) == 2, runner.stderr.read() if runner.poll() is not None else "no job started"
    runner.send_signal(signal.SIGTERM)
    _, err = runner.communicate(timeout=30)
    assert runner.returncode == 130 and "Traceback" not in err, err
    time.sleep(0.3)
    for pid in pids:                                 # the jobs ran in sessions of their own: stopped anyway
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            assert state == "Z", f"job {pid} outlived run-local"
        except (ProcessLookupError, FileNotFoundError):
            pass
    assert len(list(results.glob("*.pid"))) == 2     # nothing more was started after the signal
