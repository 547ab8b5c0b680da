"""Every zone call of the project goes through secure_irods: one handle, one path, one node cap."""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PRC_IMPORT = re.compile(r"^\s*(from irods\b|import irods\b)|iRODSSession\(", re.M)


def test_no_prc_outside_secure_irods():
    """Only secure_irods' backend, its PRC compatibility module and its error mapping import PRC
    (localgrid borrows PRC's password obfuscation; spawn offers tests and benchmarks a session)."""
    allowed = {"secure_irods/backend.py", "secure_irods/_prc.py", "secure_irods/errors.py",
               "localgrid/spawn.py", "scripts/prc_conformance.py"}
    offenders = []
    for path in sorted([*ROOT.glob("secure_irods/**/*.py"), *ROOT.glob("seisstore/**/*.py"),
                        *ROOT.glob("localgrid/**/*.py"), *ROOT.glob("scripts/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        for match in PRC_IMPORT.finditer(path.read_text()):
            line = path.read_text()[match.start():].splitlines()[0]
            if rel in allowed or (rel.startswith("localgrid/") and "password_obfuscation" in line):
                continue
            offenders.append(f"{rel}: {line.strip()}")
    assert not offenders, offenders


@pytest.mark.faults
@pytest.mark.slow
def test_sixteen_jobs_under_drops_stay_within_the_node_cap(grid, client, coll, tmp_path):
    """16 jobs, 8 at a time, against a grid dropping 20 % of calls and capped at 8 connections:
    every job's index (bulk GenQuery), reads and AVU writes succeed, and the grid never sees
    more connections at once than the node cap (3, well below the grid's own 8, so the check bites)."""
    from obspy import Stream, Trace, UTCDateTime

    from secure_irods.query import Query
    from seisstore.ingest import ingest
    from seisstore.layout import SDSLayout

    raw = tmp_path / "raw"
    raw.mkdir()
    first = datetime.date(2011, 3, 1)
    stations = ["S1", "S2", "S3", "S4"]
    rng = np.random.default_rng(1)
    for sta in stations:
        data = rng.integers(-1000, 1000, 4 * 86400, dtype=np.int32)   # 4 days at 1 Hz
        tr = Trace(data, {"network": "XX", "station": sta, "location": "", "channel": "BHZ", "sampling_rate": 1.0,
                          "starttime": UTCDateTime(first.isoformat())})
        Stream([tr]).write(str(raw / f"{sta}.mseed"), format="MSEED")
    archive, results, code = f"{coll}/archive", f"{coll}/results", f"{coll}/code"
    ingest(client, raw, archive, SDSLayout(), progress=False)
    client.mkdir(results)
    client.disconnect()

    env = dict(grid.environ(), SECURE_IRODS_THROTTLE_DIR=str(tmp_path / "throttle"), SECURE_IRODS_MAX_CONNECTIONS="3",
               SECURE_IRODS_COOLDOWN="0.5", SECURE_IRODS_MAX_WAIT="0.5", SECURE_IRODS_RETRY_RATE="20",
               SECURE_IRODS_RETRIES="20", PYTHONPATH=str(ROOT))
    # 20 attempts: a drop during the log-in (its 2 API calls) leaves an attempt with no answer,
    # 1 - 0.8**2 = 36 % of connections (measured: 235 of 660); the default 8 such attempts in a
    # row end a call (3e-4 per call); a run opens 660-940 connections, and under stress --cpu 2
    # a job gave up ("gave up after 8 attempt(s)") in 5 runs of 9; 0.36**20 = 1e-9
    camp = tmp_path / "camp"
    cli = [sys.executable, "-m", "seisstore.cli"]
    made = subprocess.run([*cli, "campaign", "new", "rms", "--dates", "2011-03-01..2011-03-04",
                           "--stations", ",".join(stations), "--n-dates", "4", "--n-stations", "4",
                           "--script", str(ROOT / "scripts" / "job_rms.py"), "--collection", code, "--parents",
                           "--archive", archive, "--results", results, "--out", str(camp),
                           "--interpreter", sys.executable, "--upload"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    grid.control.reset_stats()
    before = grid.control.stats()            # connections the test's own sessions hold stay open
    # the zone's cap is 8 for the jobs, beyond the connections the test's own sessions hold:
    # with the node's throttle broken, 8 jobs at once would show up to 8
    grid.set_faults(drop_rate=0.2, max_connections=8 + before["active"])
    try:
        ran = subprocess.run([*cli, "campaign", "run-local", str(camp), "-j", "8", "--attempts", "1"], env=env,
                             capture_output=True, text=True, timeout=600)
        stats = grid.control.stats()
    finally:
        grid.clear_faults()
    logs = "".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted((camp / ".run" / "logs").glob("*")))
    assert ran.returncode == 0, f"{stats}\n{before}\n" + ran.stderr[-2000:] + logs[-6000:]
    assert stats["drops"] > before["drops"]                     # the faults were really there
    # the node cap held, retries included; the zone counts a connection until its agent has read
    # the disconnect, which under CPU load may come after the next job took the freed slot and
    # connected (seen: 4 with the cap of 3 under stress --cpu 2): one such overlap at most
    assert stats["max_active"] - before["active"] <= 3 + 1, stats
    rows = client.query(Query("DATA_NAME", "META_DATA_ATTR_VALUE")
                        .where("COLL_NAME", "=", results).where("META_DATA_ATTR_NAME", "=", "rows"))
    assert len(rows) == 16 and all(v == "1" for _, v in rows)  # each job: one station-day, AVUs written


@pytest.mark.faults
def test_five_megabytes_each_way_under_thirty_percent_drops(grid, coll, tmp_path, monkeypatch):
    """Every call of every request dropped 30 % of the time: a 5 MB put and get still finish
    within the default deadline (600 s), because attempts the zone answered are progress."""
    import os

    from secure_irods import RetryPolicy
    from secure_irods.client import connect

    src = tmp_path / "five.bin"
    src.write_bytes(os.urandom(5 << 20))
    monkeypatch.setenv("SECURE_IRODS_THROTTLE_DIR", str(tmp_path / "throttle"))
    policy = RetryPolicy(max_wait=0.5)             # default deadline and attempts; short waits keep CI fast
    assert policy.deadline == 600 and policy.attempts == 8
    before = grid.control.stats()["drops"]
    grid.set_faults(drop_rate=0.3, seed=30)
    try:
        with connect(grid.env_file, grid.auth_file, policy=policy) as client:
            put = client.put(src, f"{coll}/five.bin")
            got = client.get(f"{coll}/five.bin", tmp_path / "back.bin")
        drops = grid.control.stats()["drops"] - before
    finally:
        grid.clear_faults()
    assert drops >= 3                               # it really was dropped along the way
    assert put.size == got.size == 5 << 20 and put.checksum == got.checksum
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
