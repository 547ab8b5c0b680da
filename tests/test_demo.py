"""`seisstore demo`: the workflow end to end on its own local grid, and a lag check that can fail.

Both run the installed command in a subprocess, as `make demo` does (each spawns its own grid).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from seisstore.demo import Geometry, measure_lag

SEISSTORE = str(Path(sys.executable).parent / "seisstore")


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SEISSTORE, "demo", "--stations", "4", "--days", "2", "--workdir", str(tmp_path / "demo"),
                           *args], capture_output=True, text=True, timeout=180, cwd=tmp_path)


def _summary(stderr: str, what: str) -> int:
    match = re.search(rf"{what}\s*│\s*([\d.]+)", stderr)
    assert match, stderr[-3000:]
    return int(float(match.group(1)))


def test_demo_four_stations_two_days_under_faults(tmp_path):
    done = _demo(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "every lag within one sample of the truth, nothing lost" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(re.findall(r"ST\d\d-ST\d\d", done.stderr)) == 6                   # 4 stations: 6 pairs
    assert (tmp_path / "demo" / "gather.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _summary(done.stderr, "data lost") == 0
    assert _summary(done.stderr, "connections dropped by the grid") > 0                 # the faults were on


def test_a_demo_with_traces_shuffled_between_stations_reports_wrong_lags(tmp_path):
    done = _demo(tmp_path, "--no-faults", "--shuffle")
    assert done.returncode == 3, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert re.search(r"seisstore: error: a measured lag is off by [\d.]+ samples \(more than one\)", done.stderr)
    errors = [float(e) for e in re.findall(r"([\d.]+) samples", done.stderr)]
    assert max(errors) > 1


def test_demo_help_and_a_bad_option_are_one_line():
    from click.testing import CliRunner

    from seisstore.cli import main

    shown = CliRunner().invoke(main, ["demo", "--help"])
    assert shown.exit_code == 0 and "--no-faults" in shown.output and "--shuffle" not in shown.output
    bad = subprocess.run([SEISSTORE, "demo", "--stations", "1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_measured_lags_on_both_sides():
    lags = np.arange(-20, 21) / 2.0
    data = np.exp(-((lags - 3.0) ** 2)) + 0.8 * np.exp(-((lags + 3.0) ** 2))
    assert measure_lag(lags, data) == (3.0, -3.0)


def test_profile_geometry_has_uneven_spacing():
    g = Geometry.profile(5)
    gaps = [g.distance(a, b) for a, b in zip(g.stations, g.stations[1:])]
    assert all(3000 <= d <= 8100 for d in gaps) and len({round(d) for d in gaps}) == 4
    assert abs(g.travel_time(g.stations[0], g.stations[1]) - gaps[0] / 2500.0) < 1e-9


def test_a_workdir_with_a_foreign_file_is_refused_and_left_as_it_is(tmp_path):
    work = tmp_path / "demo"
    work.mkdir()
    (work / "precious.txt").write_text("a week of picks\n")
    (work / "sub").mkdir()
    before = sorted((p.relative_to(work), p.stat().st_mtime_ns) for p in work.rglob("*"))
    done = _demo(tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "did not make" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert sorted((p.relative_to(work), p.stat().st_mtime_ns) for p in work.rglob("*")) == before


def _children(pid: int) -> set[int]:
    """Every live process descending from ``pid`` (through /proc: jobs run in sessions of their own)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_the_demo_its_grid_and_its_jobs(tmp_path):
    import os
    import signal
    import time

    proc = subprocess.Popen([SEISSTORE, "demo", "--stations", "3", "--days", "2", "--workdir", str(tmp_path / "demo")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    seen: set[int] = set()
    jobs = set()
    deadline = time.monotonic() + 150
    try:
        while not jobs and time.monotonic() < deadline and proc.poll() is None:
            seen |= _children(proc.pid)
            jobs = {p for p in seen if _alive(p) and "start.bash" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
                    if Path(f"/proc/{p}").exists()}
            time.sleep(0.05)
        assert jobs, "the demo ran no campaign job to stop"
        seen |= _children(proc.pid)
        assert len(seen) >= 3                         # the grid, a job's bash, what the job runs
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    time.sleep(0.5)
    left = [p for p in seen if _alive(p)]
    assert left == [], [Path(f"/proc/{p}/cmdline").read_text(errors="replace") for p in left]
