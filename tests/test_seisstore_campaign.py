"""Campaign directories: param.txt, start.bash, CiGri JDL, OAR and Slurm scripts."""
from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seisstore.campaign import Campaign, read_dates, read_stations, write_campaign
from seisstore.jdl import Cluster, cigri_jdl
from seisstore.jobscripts import oar_script, slurm_script, start_bash
from seisstore.params import (
    check_name,
    check_walltime,
    format_param_line,
    parse_param_line,
    read_param_file,
)
from seisstore.partition import CorrelationJob, ProcessingJob

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash not installed")

DATES = [datetime.date(2011, 1, 1) + datetime.timedelta(days=i) for i in range(365)]
STATIONS = [f"N.S{i:03d}" for i in range(40)]
COLL = "/tempZone/home/alice/campaigns/test processing"  # a space, on purpose
CLUSTERS = {
    "c1": Cluster("whisper", "00:20:00", prologue=["module load python"]),
    "c2": Cluster("whisper", "00:30:00", max_jobs=450),
}

JOB_SCRIPT = """\
import os, sys
from pathlib import Path
out = Path(os.environ["SEISSTORE_TEST_OUT"])
out.write_text(" ".join([os.environ["SEISSTORE_JOB_NAME"], os.getcwd(), *sys.argv[1:]]))
dates = Path("dates.txt").read_text().split()
if os.environ.get("SEISSTORE_TEST_SLEEP"):
    Path(os.environ["SEISSTORE_TEST_SLEEP"]).touch()
    import time; time.sleep(60)
sys.exit(int(os.environ.get("SEISSTORE_TEST_EXIT", "0")))
"""


def seed_campaign(job_script: Path, **kwargs) -> Campaign:
    args = dict(
        name="test_processing", dates=DATES, stations=STATIONS, n_dates=160,
        n_stations=8, job_script=job_script, irods_collection=COLL,
        clusters=CLUSTERS, prefix="traces", interpreter=[sys.executable],
    )
    args.update(kwargs)
    return Campaign(**args)


@pytest.fixture
def campaign_dir(tmp_path: Path):
    script = tmp_path / "main.py"
    script.write_text(JOB_SCRIPT)
    campaign = seed_campaign(script)
    written = write_campaign(campaign, tmp_path / "campaign")
    return campaign, tmp_path / "campaign", written


@pytest.fixture
def fake_irods(tmp_path: Path, campaign_dir, monkeypatch):
    """A ``secure-iget`` on PATH that serves the campaign directory as the collection."""
    _, directory, _ = campaign_dir
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "iget.log"
    fake = bindir / "secure-iget"
    fake.write_text(
        "#!/bin/bash\nset -euo pipefail\n"
        '[ "$1" = -f ] || exit 2\n'
        f'printf "%s\\n" "$2" >> {str(log)!r}\n'
        f'cp -- {str(directory)!r}/"${{2#{COLL}/}}" "$3"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setenv("SEISSTORE_TEST_OUT", str(tmp_path / "job.out"))
    return log, scratch, tmp_path / "job.out"


# -- param.txt -------------------------------------------------------------


def test_param_txt_matches_the_seed(campaign_dir):
    _, directory, _ = campaign_dir
    lines = (directory / "param.txt").read_text().splitlines()
    assert len(lines) == 1280
    assert lines[:2] == ["traces160_0_8_0 160 0 8 0", "traces160_0_8_1 160 0 8 1"]
    assert lines[8:10] == ["traces160_1_8_0 160 1 8 0", "traces160_1_8_1 160 1 8 1"]
    assert lines[-1] == "traces160_159_8_7 160 159 8 7"
    assert list(read_param_file(lines))[1] == ProcessingJob(160, 0, 8, 1)


def test_correlation_param_lines(tmp_path):
    script = tmp_path / "corr.py"
    script.write_text("")
    campaign = seed_campaign(script, kind="correlation", prefix="corr", n_dates=2, n_stations=3)
    lines = list(campaign.param_lines())
    assert len(lines) == campaign.n_jobs == 12
    assert lines[:3] == ["corr2_0_3_0_0 2 0 3 0 0", "corr2_0_3_0_1 2 0 3 0 1",
                         "corr2_0_3_0_2 2 0 3 0 2"]
    assert parse_param_line(lines[4]) == CorrelationJob(2, 0, 3, 1, 2)


@given(st.integers(1, 500), st.integers(1, 50), st.data(),
       st.text("abcXYZ_.-09", max_size=8).filter(lambda p: not p.startswith("-")))
def test_param_line_round_trip(n_dates, n_stations, data, prefix):
    job = ProcessingJob(n_dates, data.draw(st.integers(0, n_dates - 1)),
                        n_stations, data.draw(st.integers(0, n_stations - 1)))
    assert parse_param_line(format_param_line(prefix, job)) == job
    assert parse_param_line(format_param_line(prefix, job) + "\n") == job


@pytest.mark.parametrize("line", [
    "",
    "traces160_0_8_1 160 0 8",
    "traces160_0_8_1 160 0 8 1 2 3",
    "traces160_0_8_1 160 0 8 x",
    "traces160_0_8_1 160 0 8 -1",
    "traces160_0_8_9 160 0 8 9",           # station index out of range
    "traces160_160_8_1 160 160 8 1",       # date index out of range
    "traces0_0_8_1 0 0 8 1",
    "traces160_0_8_2 160 0 8 1",           # name disagrees with fields
    "trac$(rm)160_0_8_1 160 0 8 1",        # unsafe name
    "-x160_0_8_1 160 0 8 1",
    "corr2_0_3_1_0 2 0 3 1 0",             # correlation needs i <= j
])
def test_malformed_param_lines(line):
    with pytest.raises(ValueError, match="param line"):
        parse_param_line(line)


def test_read_param_file_names_the_line():
    with pytest.raises(ValueError, match="line 3"):
        list(read_param_file(["a1_0_1_0 1 0 1 0", "", "bad"]))


# -- validation ------------------------------------------------------------


@pytest.mark.parametrize("name", ["", ".", "..", "a b", "a;b", "$(x)", "a/b", "-rf", "é", "a\n"])
def test_unsafe_names(name):
    with pytest.raises(ValueError):
        check_name(name)


@pytest.mark.parametrize("walltime", ["00:20", "0:60:00", "00:00:60", "1h", "00:00:00",
                                      " 00:20:00", "00:20:00\n", 20])
def test_bad_walltimes(walltime):
    with pytest.raises(ValueError, match="walltime"):
        check_walltime(walltime)


def test_good_walltimes():
    assert check_walltime("00:20:00") == "00:20:00"
    assert check_walltime("100:00:00") == "100:00:00"


@pytest.mark.parametrize("kwargs", [
    dict(name="test processing"),
    dict(prefix="tr;aces"),
    dict(n_dates=0),
    dict(n_dates=366),
    dict(n_stations=41),
    dict(stations=["A", "B;rm"]),
    dict(stations=["A", "A"]),
    dict(dates=[datetime.datetime(2011, 1, 1)]),
    dict(irods_collection="relative/coll"),
    dict(irods_collection="/a/../b"),
    dict(irods_collection="/a/b\nc"),
    dict(clusters={}),
    dict(clusters={"c 1": CLUSTERS["c1"]}),
    dict(kind="stacking"),
    dict(cores=0),
    dict(setup=["module load python\nrm -rf ~"]),
    dict(job_script=Path("my job.py")),
    dict(job_script=Path("param.txt")),
])
def test_bad_campaigns(kwargs, tmp_path):
    kwargs.setdefault("job_script", tmp_path / "main.py")
    with pytest.raises(ValueError):
        seed_campaign(**kwargs)


@pytest.mark.parametrize("args", [
    ("whisper", "20:00"),
    ("whis per", "00:20:00"),
    ("whisper", "00:20:00", 0),
    ("whisper", "00:20:00", None, ["a\nb"]),
])
def test_bad_clusters(args):
    with pytest.raises(ValueError):
        Cluster(*args)


def test_write_refuses_non_empty_dir_and_missing_script(campaign_dir, tmp_path):
    campaign, directory, _ = campaign_dir
    with pytest.raises(FileExistsError):
        write_campaign(campaign, directory)
    assert write_campaign(campaign, directory, overwrite=True)
    missing = seed_campaign(tmp_path / "nope.py")
    with pytest.raises(FileNotFoundError):
        write_campaign(missing, tmp_path / "other")


# -- JDL -------------------------------------------------------------------


def test_jdl_has_the_seed_fields(campaign_dir):
    _, directory, written = campaign_dir
    jdl = json.loads((directory / "test_processing.jdl").read_text())
    assert set(jdl) == {"name", "resources", "exec_file", "param_file", "type", "clusters"}
    assert jdl["name"] == "test_processing"
    assert jdl["resources"] == "core=1"
    assert jdl["type"] == "best-effort"
    assert jdl["param_file"] == "param.txt"
    assert jdl["exec_file"] == "$HOME/seisstore/test_processing/start.bash"
    assert set(jdl["clusters"]) == {"c1", "c2"}
    c1, c2 = jdl["clusters"]["c1"], jdl["clusters"]["c2"]
    assert c1["project"] == "whisper" and c1["walltime"] == "00:20:00"
    assert "max_jobs" not in c1 and c2["max_jobs"] == 450
    assert c1["prologue"][-1] == "module load python"
    fetch = c1["prologue"][1]
    assert fetch.startswith("secure-iget -f ")
    assert f"'{COLL}/start.bash'" in fetch  # quoted: the collection has a space
    for line in c1["prologue"]:
        subprocess.run([BASH or "bash", "-n", "-c", line], check=True)


def test_jdl_rejects_unsafe_values():
    with pytest.raises(ValueError):
        cigri_jdl("x", {"c1": CLUSTERS["c1"]}, COLL, cores=0)
    with pytest.raises(ValueError):
        cigri_jdl("x", {"c;1": CLUSTERS["c1"]}, COLL)
    with pytest.raises(ValueError):
        cigri_jdl("x", {"c1": CLUSTERS["c1"]}, COLL, fetch_command=())


# -- scripts ---------------------------------------------------------------


@needs_bash
def test_scripts_pass_bash_n(campaign_dir):
    _, directory, written = campaign_dir
    scripts = [p for n, p in written.items() if n.endswith((".sh", ".bash"))]
    assert {p.name for p in scripts} == {
        "start.bash", "oar_c1.sh", "oar_c2.sh", "slurm_c1.sh", "slurm_c2.sh"}
    for path in scripts:
        subprocess.run([BASH, "-n", str(path)], check=True)
        assert os.access(path, os.X_OK)


def test_script_headers(campaign_dir):
    _, directory, _ = campaign_dir
    slurm = (directory / "slurm_c2.sh").read_text()
    assert "#SBATCH --array=1-1280%450\n" in slurm
    assert "#SBATCH --time=00:30:00\n" in slurm
    assert "#SBATCH --requeue\n" in slurm and "#SBATCH --output=test_processing_%A_%a.out\n" in slurm
    assert 'sed -n "${task}p" param.txt' in slurm
    assert 'scontrol requeue "${SLURM_JOB_ID}"' in slurm
    assert "#SBATCH --array=1-1280\n" in (directory / "slurm_c1.sh").read_text()
    oar = (directory / "oar_c1.sh").read_text()
    assert "#OAR --array-param-file param.txt\n" in oar
    assert "#OAR -l /core=1,walltime=00:20:00\n" in oar
    assert "#OAR -t besteffort\n" in oar
    start = (directory / "start.bash").read_text()
    assert "set -euo pipefail\n" in start
    assert f"readonly IRODS_COLL='{COLL}'\n" in start
    assert "trap cleanup EXIT\n" in start


def test_generators_validate_their_inputs():
    with pytest.raises(ValueError):
        start_bash("x", COLL, "main.py", ["in put.txt"])
    with pytest.raises(ValueError):
        start_bash("x", COLL, "main.py", [], interpreter=[])
    with pytest.raises(ValueError):
        start_bash("x", "coll", "main.py", [])
    with pytest.raises(ValueError):
        slurm_script("x", CLUSTERS["c1"], 0)
    with pytest.raises(ValueError):
        oar_script("x y", CLUSTERS["c1"])


@needs_bash
def test_start_bash_runs_a_job_and_cleans_up(campaign_dir, fake_irods):
    _, directory, _ = campaign_dir
    log, scratch, out = fake_irods
    result = subprocess.run(
        [BASH, str(directory / "start.bash"), "traces160_0_8_1", "160", "0", "8", "1"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    name, workdir, *args = out.read_text().split(" ")
    assert name == "traces160_0_8_1" and args == ["160", "0", "8", "1"]
    assert Path(workdir).parent == scratch
    assert list(scratch.iterdir()) == []  # the trap removed the work dir
    assert log.read_text().splitlines() == [
        f"{COLL}/main.py", f"{COLL}/dates.txt", f"{COLL}/stations.txt"]


@needs_bash
def test_start_bash_keeps_the_job_exit_status_and_still_cleans_up(
        campaign_dir, fake_irods, monkeypatch):
    _, directory, _ = campaign_dir
    _, scratch, _ = fake_irods
    monkeypatch.setenv("SEISSTORE_TEST_EXIT", "3")
    result = subprocess.run(
        [BASH, str(directory / "start.bash"), "traces160_0_8_1", "160", "0", "8", "1"],
        capture_output=True, text=True)
    assert result.returncode == 3
    assert list(scratch.iterdir()) == []


@needs_bash
def test_start_bash_cleans_up_when_best_effort_kills_it(
        campaign_dir, fake_irods, monkeypatch, tmp_path):
    _, directory, _ = campaign_dir
    _, scratch, _ = fake_irods
    started = tmp_path / "started"
    monkeypatch.setenv("SEISSTORE_TEST_SLEEP", str(started))
    proc = subprocess.Popen(
        [BASH, str(directory / "start.bash"), "traces160_0_8_1", "160", "0", "8", "1"],
        start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        assert len(list(scratch.iterdir())) == 1
        os.killpg(proc.pid, signal.SIGTERM)  # OAR kills the job's process group
        assert proc.wait(timeout=30) == 143
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert list(scratch.iterdir()) == []


@needs_bash
@pytest.mark.parametrize("args,code", [
    (["traces160_0_8_1", "160", "0", "8"], 1),
    (["traces160_0_8_1", "160", "0", "8", "1", "2", "3"], 1),
    (["$(touch pwned)", "160", "0", "8", "1"], 1),
    (["traces160_0_8_1", "160", "0", "8", "1;id"], 1),
])
def test_start_bash_rejects_bad_arguments(campaign_dir, fake_irods, args, code):
    _, directory, _ = campaign_dir
    _, scratch, out = fake_irods
    result = subprocess.run([BASH, str(directory / "start.bash"), *args],
                            capture_output=True, text=True, cwd=scratch)
    assert result.returncode == code
    assert not out.exists() and list(scratch.iterdir()) == []


@needs_bash
def test_slurm_task_runs_its_param_line(campaign_dir, fake_irods, monkeypatch):
    _, directory, _ = campaign_dir
    _, _, out = fake_irods
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "10")
    monkeypatch.setenv("SLURM_SUBMIT_DIR", str(directory))
    result = subprocess.run([BASH, str(directory / "slurm_c1.sh")],
                            capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert out.read_text().split(" ")[2:] == ["160", "1", "8", "1"]
    for task in ("1281", "0", "1;id", ""):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        result = subprocess.run([BASH, str(directory / "slurm_c1.sh")],
                                capture_output=True, text=True, cwd="/")
        assert result.returncode == 1, task


@needs_bash
@pytest.mark.parametrize("code,restarts,requeued", [(2, "0", True), (2, "9", True), (2, "10", False),
                                                     (3, "0", False), (0, "0", False)])
def test_slurm_task_requeues_itself_on_a_transient_failure(campaign_dir, fake_irods, monkeypatch, tmp_path,
                                                           code, restarts, requeued):
    """Exit 2 (transient) -> ``scontrol requeue $SLURM_JOB_ID`` until SLURM_RESTART_COUNT reaches the cap."""
    _, directory, _ = campaign_dir
    calls = tmp_path / "scontrol.log"
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >> {str(calls)!r}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("SEISSTORE_TEST_EXIT", str(code))
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", restarts)
    monkeypatch.setenv("SLURM_SUBMIT_DIR", str(directory))
    result = subprocess.run([BASH, str(directory / "slurm_c1.sh")], capture_output=True, text=True, cwd="/")
    assert result.returncode == code
    assert (calls.read_text() if calls.exists() else "") == ("requeue 4242\n" if requeued else "")
    assert ("requeued after" in result.stderr) == requeued


@needs_bash
def test_oar_task_runs_its_arguments(campaign_dir, fake_irods, monkeypatch):
    _, directory, _ = campaign_dir
    _, _, out = fake_irods
    monkeypatch.setenv("OAR_WORKDIR", str(directory))
    line = (directory / "param.txt").read_text().splitlines()[17]
    result = subprocess.run([BASH, str(directory / "oar_c2.sh"), *line.split()],
                            capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert out.read_text().split(" ")[0] == "traces160_2_8_1"


@needs_bash
@pytest.mark.parametrize("code,expected", [(2, 99), (3, 3), (0, 0)])
def test_oar_task_turns_a_transient_failure_into_a_resubmission(campaign_dir, fake_irods, monkeypatch,
                                                               code, expected):
    """OAR resubmits an idempotent job that ends with 99 (after 60 s: SEISSTORE_OAR_MIN_RUN shortens it here)."""
    _, directory, _ = campaign_dir
    monkeypatch.setenv("OAR_WORKDIR", str(directory))
    monkeypatch.setenv("SEISSTORE_TEST_EXIT", str(code))
    monkeypatch.setenv("SEISSTORE_OAR_MIN_RUN", "0")
    line = (directory / "param.txt").read_text().splitlines()[3]
    result = subprocess.run([BASH, str(directory / "oar_c1.sh"), *line.split()],
                            capture_output=True, text=True, cwd="/")
    assert result.returncode == expected, result.stderr
    assert ("exit 99 so that OAR resubmits it" in result.stderr) == (code == 2)


def test_inputs_files_round_trip(campaign_dir):
    campaign, directory, written = campaign_dir
    assert read_dates(directory / "dates.txt") == DATES
    assert read_stations(directory / "stations.txt") == STATIONS
    assert set(campaign.uploads) <= set(written)
    assert (directory / "main.py").read_text() == JOB_SCRIPT
    (directory / "dates.txt").write_text("2011-01-01\nnot-a-date\n")
    with pytest.raises(ValueError, match=":2:"):
        read_dates(directory / "dates.txt")
