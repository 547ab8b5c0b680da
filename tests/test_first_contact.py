"""What a new user meets first (issue 9): finished transfers never fail, paths mean what they
say, waits are explained, authentication files are read as the icommands read them, typos fail."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from seisstore.cli import main as seisstore_main

BIN = Path(sys.executable).parent


def run(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def env(grid, tmp_path) -> dict:
    return dict(grid.environ(), SECURE_IRODS_THROTTLE_DIR=str(tmp_path / "throttle"), SECURE_IRODS_MAX_WAIT="0.1",
                SECURE_IRODS_COOLDOWN="0.3")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.faults
@pytest.mark.slow
def test_under_drops_every_put_and_get_without_f_exits_0(grid, coll, env, tmp_path):
    """A retry after a drop that came after the final rename meets its own result: that is
    success, not "exists" (which a scheduler would read as: fail the job)."""
    small, big = tmp_path / "small", tmp_path / "big"
    small.mkdir()
    big.mkdir()
    for i in range(100):
        (small / f"s{i:03d}.txt").write_bytes(os.urandom(100 + i))
    for i in range(20):
        (big / f"b{i:02d}.bin").write_bytes(os.urandom(5 << 20))
    grid.set_faults(drop_rate=0.1, seed=9)
    try:
        put_small = run("secure-iput", *sorted(map(str, small.iterdir())), f"{coll}/", env=env)
        put_big = [run("secure-iput", str(p), f"{coll}/", env=env) for p in sorted(big.iterdir())]
        back = tmp_path / "back"
        back.mkdir()
        get_all = run("secure-iget", "-r", coll, f"{back}/", env=env)
        drops = grid.control.stats()["drops"]
    finally:
        grid.clear_faults()
    assert put_small.returncode == 0, put_small.stderr[-2000:]
    assert [p.returncode for p in put_big] == [0] * 20, [p.stderr[-500:] for p in put_big if p.returncode]
    assert get_all.returncode == 0, get_all.stderr[-2000:]
    assert drops > 50                                       # the drops were really there
    name = coll.rsplit("/", 1)[1]
    for src in [*small.iterdir(), *big.iterdir()]:
        assert _digest(back / name / src.name) == _digest(src), src.name


def test_trailing_slash_names_a_collection_or_directory_that_must_exist(grid, coll, env, tmp_path):
    local = tmp_path / "big.bin"
    local.write_bytes(b"x" * 1000)
    put = run("secure-iput", str(local), f"{coll}/results/", env=env)
    assert put.returncode == 3 and "no such collection" in put.stderr and "--parents" in put.stderr
    assert len(put.stderr.strip().splitlines()) == 1
    ls = run("secure-iget", f"{coll}/results", str(tmp_path / "probe"), env=env)
    assert ls.returncode == 3                                # nothing named 'results' was written
    made = run("secure-iput", "--parents", str(local), f"{coll}/results/", env=env)
    assert made.returncode == 0, made.stderr
    get = run("secure-iget", f"{coll}/results/big.bin", f"{tmp_path}/nolocaldir/", env=env)
    assert get.returncode == 3 and "no such local directory" in get.stderr
    assert not (tmp_path / "nolocaldir").exists()


def test_progress_lines_when_not_on_a_terminal(grid, coll, env, tmp_path):
    local = tmp_path / "p.bin"
    local.write_bytes(os.urandom(3 << 20))
    done = run("secure-iput", "--progress-interval", "0.000001", str(local), f"{coll}/", env=env)
    assert done.returncode == 0
    assert any(" of 3.0 MiB (" in line and "/s" in line for line in done.stderr.splitlines()), done.stderr
    quiet = run("secure-iput", "-f", "--progress-interval", "0", str(local), f"{coll}/", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""


@pytest.mark.parametrize("content", ["", "!!!!", None], ids=["empty", "undecodable", "missing"])
def test_authentication_file_problems_are_7_naming_the_file(grid, coll, env, tmp_path, content):
    if not grid.local:
        pytest.skip("uses the grid's own environment")
    auth = tmp_path / "irodsA"
    if content is not None:
        auth.write_text(content)
    env["IRODS_AUTHENTICATION_FILE"] = str(auth)
    result = run("secure-iget", f"{coll}/x", str(tmp_path), env=env)
    assert result.returncode == 7, result.stderr
    assert str(auth) in result.stderr and "iinit" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_verbosity_prints_the_login_exchange(grid, coll, env, tmp_path):
    password = grid.auth_file and __import__("irods.password_obfuscation", fromlist=["decode"]).decode(
        grid.auth_file.read_text().strip())
    local = tmp_path / "v.txt"
    local.write_text("v")
    for flags in (["-v"], ["-vv"], ["-vvv"]):
        result = run("secure-iput", *flags, "-f", str(local), f"{coll}/", env=env)
        assert result.returncode == 0
        text = (result.stdout + result.stderr).lower()
        assert "challenge" not in text and "digest" not in text
        assert not password or password not in result.stdout + result.stderr
    for flags in (["-v"], ["-vv"], ["-vvv"]):
        out = CliRunner().invoke(seisstore_main, [*flags, "ls", coll], env=env)
        assert "challenge" not in out.output.lower() and (not password or password not in out.output)


def test_ingest_into_a_missing_collection_needs_create(grid, coll, env, tmp_path):
    from obspy import Stream, Trace, UTCDateTime
    import numpy as np

    raw = tmp_path / "raw"
    raw.mkdir()
    Stream([Trace(np.arange(100, dtype=np.int32), {"network": "XX", "station": "A", "channel": "BHZ",
                                                    "starttime": UTCDateTime(2011, 3, 1)})]).write(
        str(raw / "a.mseed"), format="MSEED")
    typo = CliRunner().invoke(seisstore_main, ["ingest", str(raw), "/nosuchZone/home/rods/archive"], env=env)
    assert typo.exit_code == 3 and "outside your zone" in typo.output
    missing = CliRunner().invoke(seisstore_main, ["ingest", str(raw), f"{coll}/archive"], env=env)
    assert missing.exit_code == 3 and "--create" in missing.output
    made = CliRunner().invoke(seisstore_main, ["ingest", str(raw), f"{coll}/archive", "--create"], env=env)
    assert made.exit_code == 0, made.output
    listed = CliRunner().invoke(seisstore_main, ["ls", f"{coll}/archive"], env=env)
    assert listed.exit_code == 0 and "XX.A..BHZ" in listed.output


def test_seisstore_mkdir(grid, coll, env):
    nested = f"{coll}/a/b"
    refused = CliRunner().invoke(seisstore_main, ["mkdir", nested], env=env)
    assert refused.exit_code == 3 and "-p" in refused.output
    made = CliRunner().invoke(seisstore_main, ["mkdir", "-p", nested], env=env)
    assert made.exit_code == 0 and f"created {nested}" in made.output


def test_second_grid_on_one_root_is_refused_and_a_killed_ones_root_taken_over(tmp_path):
    from localgrid.spawn import spawn

    root = tmp_path / "zone"
    first = spawn(root)
    try:
        env_before = (root / "irods_environment.json").read_text()
        second = subprocess.run([sys.executable, "-m", "localgrid", "serve", "--root", str(root), "--port", "0"],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1, second.stderr
        assert "already serves" in second.stderr and len(second.stderr.strip().splitlines()) == 1
        assert (root / "irods_environment.json").read_text() == env_before   # untouched
        assert first.process.poll() is None and (root / "control.sock").exists()
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        time.sleep(0.1)
        again = spawn(root)                                  # the dead holder's lock is gone
        again.stop()
    finally:
        first.stop()
