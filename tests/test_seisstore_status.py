"""`seisstore campaign status`: the scheduler's view of each line, and the results in the zone."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from seisstore.cli import main
from seisstore.status import campaign_job_name, gather, slurm_tasks, summary, zone_results

PARAM = "rms3_0_2_0 3 0 2 0\nrms3_0_2_1 3 0 2 1\nrms3_1_2_0 3 1 2 0\nrms3_1_2_1 3 1 2 1\n"


def fake_run(squeue: str, sacct: str | None = None):
    calls = []

    def run(args):
        calls.append(list(args))
        if args[0] == "sacct":
            if sacct is None:
                return subprocess.CompletedProcess(args, 1, "", "Slurm accounting storage is disabled\n")
            return subprocess.CompletedProcess(args, 0, sacct, "")
        return subprocess.CompletedProcess(args, 0, squeue, "")

    run.calls = calls
    return run


@pytest.fixture
def campaign(tmp_path) -> Path:
    directory = tmp_path / "rms"
    directory.mkdir()
    (directory / "param.txt").write_text(PARAM)
    (directory / "start.bash").write_text("#!/bin/bash\n")
    (directory / "slurm_c1.sh").write_text("#!/bin/bash\n#SBATCH --job-name=rms\n#SBATCH --array=1-4\n")
    return directory


def test_squeue_is_the_current_view_and_the_newest_array_wins(campaign):
    run = fake_run("7|1|COMPLETED|None\n9|1|RUNNING|None\n9|2|PENDING|BeginTime\n9|3|CANCELLED|None\n",
                   sacct="9_1|RUNNING|0:0\n9_4|FAILED|2:0\n9_[5-6]|PENDING|0:0\n7_2|COMPLETED|0:0\n")
    tasks, note = slurm_tasks("rms", run=run)
    assert note == ""
    assert {t: (s.state, s.reason, s.exit_code) for t, s in tasks.items()} == {
        1: ("RUNNING", "", "0:0"), 2: ("PENDING", "BeginTime", ""), 3: ("CANCELLED", "", ""),
        4: ("FAILED", "", "2:0")}
    assert slurm_tasks("rms", array_job=7, run=run)[0][1].state == "COMPLETED"
    assert ["--name", "rms"] == run.calls[-1][run.calls[-1].index("--name"):][:2]


def test_lines_are_joined_with_tasks_and_results(campaign):
    assert campaign_job_name(campaign) == "rms"
    run = fake_run("3|1|COMPLETED|None\n3|2|RUNNING|None\n")
    lines, note = gather(campaign, run=run)
    assert "accounting disabled" in note
    assert [(line.task, line.name, line.scheduler and line.scheduler.state) for line in lines] == [
        (1, "rms3_0_2_0", "COMPLETED"), (2, "rms3_0_2_1", "RUNNING"), (3, "rms3_1_2_0", None),
        (4, "rms3_1_2_1", None)]
    from seisstore.status import campaign_status

    lines = campaign_status(campaign, ["rms3_0_2_0.csv", "rms3_1_2_1/a.h5", "other.csv", "rms3_0_2_10.csv"])
    assert [line.results for line in lines] == [("rms3_0_2_0.csv",), (), (), ("rms3_1_2_1/a.h5",)]
    assert summary(lines) == {"-": 4, "with results": 2}


def test_results_collection_comes_from_start_bash_then_the_environment(campaign, monkeypatch):
    from seisstore.status import campaign_results

    assert campaign_results(campaign) is None
    (campaign / "start.bash").write_text("#!/bin/bash\nexport SEISSTORE_RESULTS='/z/home/a/res ults'\n")
    assert campaign_results(campaign) == "/z/home/a/res ults"
    seen = []

    class Client:
        def resolve(self, path):
            return path

        def scan(self, path):
            seen.append(path)
            return []

    monkeypatch.setenv("SEISSTORE_RESULTS", "/z/home/a/env")
    gather(campaign, run=fake_run(""), client=Client())
    gather(campaign, "/z/home/a/flag", run=fake_run(""), client=Client())
    (campaign / "start.bash").write_text("#!/bin/bash\n")
    gather(campaign, run=fake_run(""), client=Client())
    assert seen == ["/z/home/a/res ults", "/z/home/a/flag", "/z/home/a/env"]


def test_no_slurm_here_is_a_note_not_a_failure(campaign):
    def run(args):
        raise FileNotFoundError(2, "No such file or directory", args[0])

    tasks, note = slurm_tasks("rms", run=run)
    assert tasks == {} and "no squeue" in note


def test_zone_results_is_one_scan_of_the_collection(client, coll, tmp_path):
    client.mkdir(f"{coll}/res/rms3_1_2_1")
    src = tmp_path / "x"
    src.write_text("x\n")
    client.put(src, f"{coll}/res/rms3_0_2_0.csv")
    client.put(src, f"{coll}/res/rms3_1_2_1/a.h5")
    assert zone_results(client, f"{coll}/res") == ["rms3_0_2_0.csv", "rms3_1_2_1/a.h5"]
    assert zone_results(client, f"{coll}/absent-{uuid.uuid4().hex[:6]}") == []


def test_status_command_prints_a_table_and_a_summary(campaign, monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "squeue").write_text("#!/bin/sh\necho '5|2|RUNNING|None'\necho '5|3|PENDING|JobArrayTaskLimit'\n")
    (bindir / "sacct").write_text("#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2; exit 1\n")
    for tool in bindir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.delenv("SEISSTORE_RESULTS", raising=False)
    result = CliRunner().invoke(main, ["campaign", "status", str(campaign)])
    assert result.exit_code == 0, result.output
    assert "rms3_0_2_1" in result.output and "RUNNING" in result.output and "JobArrayTaskLimit" in result.output
    assert "4 lines: 2 -, 1 RUNNING, 1 PENDING, 0 with results (no sacct (accounting disabled))" in result.output
    bad = CliRunner().invoke(main, ["campaign", "status", str(tmp_path)])
    assert bad.exit_code == 1 and "not a campaign directory" in bad.output


def test_status_help():
    result = CliRunner().invoke(main, ["campaign", "status", "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
