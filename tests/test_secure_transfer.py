"""secure_irods transfers through real python-irodsclient against the grid: API and commands."""

from __future__ import annotations

import hashlib
import random
import signal
import socket
import subprocess
import re
import time

import pytest

from secure_irods import RetryPolicy
from secure_irods._prc import _recv_message_into_guarded
from secure_irods.client import connect
from secure_irods.transfer import CHUNK, get_temp_name, sha2_of_file

from helpers import BIN, MiB, client_for, command_env, make_file, remote_state, run

def test_round_trip_large_is_byte_identical(grid, coll, tmp_path):
    src = make_file(tmp_path / "big.bin", 33 * MiB + 123)
    with client_for(grid, tmp_path) as client:
        up = client.put(src, f"{coll}/big.bin")
        down = client.get(f"{coll}/big.bin", tmp_path / "back.bin")
        assert client.listdir(coll) == ["big.bin"]  # no temporary left behind
        assert client.connections_opened == 2  # its own, and a spare for the parallel get (no throttle)
    assert up.checksum == down.checksum == sha2_of_file(src)
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.bin", "big.bin"]


def test_exists_overwrite_and_sync_move_no_bytes(grid, coll, tmp_path, session):
    src = make_file(tmp_path / "a.bin", 300_000)
    with client_for(grid, tmp_path) as client:
        client.put(src, f"{coll}/a.bin")
        assert client.exists(f"{coll}/a.bin") and not client.exists(f"{coll}/nope")
        from secure_irods import ExistsError

        with pytest.raises(ExistsError):
            client.put(src, f"{coll}/a.bin")
        client.get(f"{coll}/a.bin", tmp_path / "b.bin")
        mtime = (tmp_path / "b.bin").stat().st_mtime_ns
        grid.control.reset_stats()
        again = [client.sync(f"i:{coll}/a.bin", tmp_path / "b.bin"), client.sync(src, f"i:{coll}/a.bin")]
        stats = grid.control.stats()
    assert all(r.skipped for r in again)
    assert (tmp_path / "b.bin").stat().st_mtime_ns == mtime
    assert stats["api_calls"] <= 4  # two catalogue queries (+ collection probes), no open/read/write


def test_get_resumes_from_kept_prefix_and_restarts_on_a_bad_one(grid, coll, tmp_path):
    src = make_file(tmp_path / "r.bin", 3 * MiB)
    with client_for(grid, tmp_path) as client:
        up = client.put(src, f"{coll}/r.bin")
        target = tmp_path / "out" / "r.bin"
        target.parent.mkdir()
        temp = get_temp_name(f"{coll}/r.bin", up.checksum, target)
        temp.write_bytes(src.read_bytes()[: 2 * MiB])  # what a killed run left
        resumed = client.get(f"{coll}/r.bin", target)
        assert resumed.resumed_from == 2 * MiB and target.read_bytes() == src.read_bytes()
        target.unlink()
        temp.write_bytes(b"x" * MiB)  # a corrupt prefix is detected, and the get redone from zero
        again = client.get(f"{coll}/r.bin", target)
        assert not again.skipped and target.read_bytes() == src.read_bytes()
    assert not temp.exists()


def test_parallel_get_takes_only_free_throttle_slots(grid, coll, tmp_path, monkeypatch):
    from secure_irods import Throttle

    monkeypatch.setenv("SECURE_IRODS_LOAD_CONTROL", "fixed")  # the fixed throttle's slots (the window's: test_secure_window)

    src = make_file(tmp_path / "p.bin", 40 * MiB, seed=5)
    with client_for(grid, tmp_path) as client:
        client.put(src, f"{coll}/p.bin")
    for slots, opened in ((3, 2), (2, 1)):  # 3 streams wanted; another holder has one slot
        throttle = Throttle(slots, tmp_path / "throttle")
        with connect(grid.env_file, grid.auth_file, throttle=throttle, cooldown=False, streams=3,
                     policy=RetryPolicy(max_wait=0.2)) as client, throttle.acquire(0):
            got = client.get(f"{coll}/p.bin", tmp_path / f"p{slots}.bin")
            assert client.connections_opened == opened
            assert throttle.held == 2  # the other holder's and the client's own: spares were freed
        assert got.checksum == sha2_of_file(src) and (tmp_path / f"p{slots}.bin").read_bytes() == src.read_bytes()


def test_gets_under_steady_drops_do_not_run_out_of_attempts(grid, coll, session, tmp_path):
    """Regression (contention benchmark: 4 of 640 gets gave up after 8 attempts at 10 % drops).

    Each get is several requests and a reconnection two more; attempts in which the zone
    answered something no longer spend the budget, so 4 attempts suffice here (seeded drops).
    """
    src = make_file(tmp_path / "s.bin", MiB, seed=9)
    with client_for(grid, tmp_path) as client:
        client.put(src, f"{coll}/s.bin")
    session.cleanup()
    grid.control.reset_stats()
    grid.set_faults(drop_rate=0.10, seed=4)
    try:
        with client_for(grid, tmp_path, attempts=4, initial=0.0, increment=0.0) as client:
            for i in range(30):
                client.get(f"{coll}/s.bin", tmp_path / f"s{i}.bin")
        stats = grid.control.stats()
    finally:
        grid.clear_faults()
    assert stats["drops"] >= 10
    assert all((tmp_path / f"s{i}.bin").read_bytes() == src.read_bytes() for i in range(30))


def test_stall_guard_raises_on_a_connection_closed_mid_reply():
    a, b = socket.socketpair()
    a.settimeout(5)
    b.sendall(b"x" * 10)
    b.close()
    with pytest.raises(ConnectionResetError):
        _recv_message_into_guarded(a, bytearray(100), 100)
    a.close()


# ---------------------------------------------------------------------------- commands


@pytest.mark.parametrize("tool", ["secure-iget", "secure-iput"])
def test_help(tool, grid, tmp_path):
    result = run(tool, "--help", env=command_env(grid, tmp_path))
    assert result.returncode == 0 and "--deadline" in result.stdout and "--max-connections" in result.stdout


def test_cli_recursive_round_trip(grid, coll, tmp_path):
    env = command_env(grid, tmp_path)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    for i, rel in enumerate(["a.bin", "b.bin", "sub/c.bin"]):
        make_file(tree / rel, 50_000 + i, seed=i)
    put = run("secure-iput", "-r", str(tree), coll, env=env)
    assert put.returncode == 0, put.stderr
    out = tmp_path / "out"
    out.mkdir()
    got = run("secure-iget", "-r", f"{coll}/tree", str(out), env=env)
    assert got.returncode == 0, got.stderr
    for rel in ["a.bin", "b.bin", "sub/c.bin"]:
        assert (out / "tree" / rel).read_bytes() == (tree / rel).read_bytes()
    assert run("secure-iget", f"{coll}/tree/a.bin", str(out / "tree"), env=env).returncode == 3  # exists, no -f
    assert run("secure-iget", "-r", "-f", f"{coll}/tree", str(out), env=env).returncode == 0


def test_bad_password_exits_7_after_one_attempt(grid, coll, tmp_path):
    from irods.password_obfuscation import encode

    bad = tmp_path / "bad.irodsA"
    bad.write_text(encode("not-the-password"))
    env = command_env(grid, tmp_path, IRODS_AUTHENTICATION_FILE=str(bad))
    before = grid.control.stats()["auth_failures"]
    result = run("secure-iget", "--retries", "5", f"{coll}/x", str(tmp_path / "x"), env=env)
    assert result.returncode == 7, result.stderr
    assert grid.control.stats()["auth_failures"] == before + 1
    assert len(result.stderr.strip().splitlines()) == 1 and "not-the-password" not in result.stderr


def test_missing_object_exits_3_at_once(grid, coll, tmp_path):
    before = grid.control.stats()["logins"] if grid.local else 0
    result = run("secure-iget", f"{coll}/missing.bin", str(tmp_path / "m"), env=command_env(grid, tmp_path))
    assert result.returncode == 3 and "missing.bin" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr  # no retry line
    if grid.local:
        assert grid.control.stats()["logins"] == before + 1  # "at once": one log-in, no retry
    assert run("secure-iput", str(tmp_path / "nofile"), coll, env=command_env(grid, tmp_path)).returncode == 3


@pytest.mark.faults
def test_refusing_zone_exits_2_at_the_deadline(grid, coll, session, tmp_path):
    session.collections.get(coll)  # the test holds the only connection the zone will accept
    grid.set_faults(max_connections=1)
    try:
        grid.control.reset_stats()
        start = time.monotonic()
        result = run("secure-iget", "--deadline", "3", f"{coll}/x", str(tmp_path / "x"),
                     env=command_env(grid, tmp_path), timeout=30)
        elapsed = time.monotonic() - start
        stats = grid.control.stats()
    finally:
        grid.clear_faults()
    assert result.returncode == 2, result.stderr
    *waits, last = result.stderr.strip().splitlines()
    # one line says why it ended: the last refusal, or the deadline passing during the last wait
    # (which of the two comes last depends on scheduling: a loaded machine ends in the wait)
    assert re.match(r"secure-iget: (ZoneBusyError: gave up after \d+ attempt|TransientError: gave up after \d+ "
                    r"attempt\(s\): deadline of 3s passed)", last), last
    # each wait says why and how long: the node window backing off after refusals (its 1st, 2nd,
    # 4th... refusal: refusals are not attempts, only the deadline ends the call), or a retry
    assert waits and all(re.search(r"zone 127\.0\.0\.1:\d+: .*; (retry \d+ in|refusal \d+ in a row, backing off) "
                                   r"[\d.]+s.*deadline in", w) for w in waits), waits
    assert stats["refused"] >= max(2, len(waits)) and stats["logins"] == 0  # the zone refused it, more than once
    assert elapsed > 1.5  # it waited for the deadline (3 s) rather than giving up at the first refusal


@pytest.mark.faults
def test_put_of_several_chunks_in_flight_under_drops_lands_whole(grid, coll, session, tmp_path):
    """A put keeps one write in flight ahead of the reply; connections dropped mid-chunk
    (the grid keeps part of the chunk, then closes) leave nothing wrong at the name."""
    src = make_file(tmp_path / "w.bin", 3 * CHUNK + 12345, seed=11)   # four DATA_OBJ_WRITEs a pass
    grid.control.reset_stats()
    grid.set_faults(drop_rate=0.15, seed=12)
    try:
        with client_for(grid, tmp_path, attempts=40) as client:
            put = client.put(src, f"{coll}/w.bin")
        drops = grid.control.stats()["drops"]
    finally:
        grid.clear_faults()
    assert drops > 0 and put.checksum == sha2_of_file(src)
    with session.data_objects.open(f"{coll}/w.bin", "r") as f:
        assert f.read() == src.read_bytes()
    assert remote_state(session, f"{coll}/w.bin") == [("1", put.checksum, src.stat().st_size)]


@pytest.mark.faults
def test_get_with_dropped_connections_completes_and_never_hangs(grid, coll, session, tmp_path):
    src = make_file(tmp_path / "d.bin", 40 * MiB)  # above PIPELINE_MIN: parallel streams, resumed prefix
    with client_for(grid, tmp_path) as client:
        client.put(src, f"{coll}/d.bin")
    session.cleanup()
    grid.control.reset_stats()
    grid.set_faults(drop_rate=0.3, seed=7)
    try:
        result = run("secure-iget", "--retries", "200", "--deadline", "60", f"{coll}/d.bin", str(tmp_path / "got.bin"),
                     env=command_env(grid, tmp_path), timeout=90)
        stats = grid.control.stats()
    finally:
        grid.clear_faults()
    assert result.returncode == 0, result.stderr
    assert stats["drops"] > 0
    assert (tmp_path / "got.bin").read_bytes() == src.read_bytes()


@pytest.mark.faults
def test_16_concurrent_gets_keep_the_node_cap_below_the_zones(grid, coll, session, tmp_path):
    """The node's throttle (3) is what limits the connections, not the zone's cap (8): a broken
    throttle would let up to 8 in at once and the count below would show it."""
    src = make_file(tmp_path / "c.bin", MiB)
    with client_for(grid, tmp_path) as client:
        client.put(src, f"{coll}/c.bin")
    session.cleanup()  # our own idle connection would count too
    grid.control.reset_stats()
    idle = grid.control.stats()["active"]  # connections other fixtures still hold
    grid.set_faults(max_connections=8 + idle, latency_ms=20)  # each call takes a while: holders overlap
    env = command_env(grid, tmp_path)
    try:
        procs = [subprocess.Popen([str(BIN / "secure-iget"), "--max-connections", "3", "--deadline", "60",
                                   f"{coll}/c.bin", str(tmp_path / f"c{i}.bin")], env=env,
                                  stderr=subprocess.PIPE, text=True) for i in range(16)]
        codes = [(p.wait(timeout=90), p.stderr.read()) for p in procs]
        stats = grid.control.stats()
    finally:
        grid.clear_faults()
    assert [c for c, _ in codes] == [0] * 16, codes
    assert all((tmp_path / f"c{i}.bin").read_bytes() == src.read_bytes() for i in range(16))
    assert stats["refused"] == 0  # the zone never had to refuse: the node kept below its cap
    # the zone counts a connection until its agent has read the disconnect, which may come just
    # after the client freed its slot and the next one connected: at most one such overlap
    assert 1 <= stats["max_active"] - idle <= 3 + 1, (stats, idle)


@pytest.mark.faults
def test_throttle_admits_at_most_n_across_8_processes(grid, coll, session, tmp_path):
    src = make_file(tmp_path / "t.bin", 256 * 1024)
    with client_for(grid, tmp_path) as client:
        client.put(src, f"{coll}/t.bin")
    session.cleanup()
    time.sleep(0.2)
    grid.control.reset_stats()
    env = command_env(grid, tmp_path, SECURE_IRODS_MAX_CONNECTIONS="3")
    procs = [subprocess.Popen([str(BIN / "secure-iget"), f"{coll}/t.bin", str(tmp_path / f"t{i}.bin")], env=env)
             for i in range(8)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 8
    stats = grid.control.stats()
    assert stats["accepted"] == 8 and 1 <= stats["max_active"] <= 3


@pytest.mark.faults
def test_sigkill_never_leaves_a_partial_file_at_a_final_name(grid, coll, session, tmp_path):
    src = make_file(tmp_path / "k.bin", 32 * MiB)
    digest = hashlib.sha256(src.read_bytes()).digest()
    env = command_env(grid, tmp_path)
    remote = f"{coll}/k.bin"
    grid.set_faults(latency_ms=30)  # stretch each 8 MiB call so kills land mid-transfer
    rng = random.Random(3)
    try:
        for round_ in range(3):
            put = subprocess.Popen([str(BIN / "secure-iput"), "-f", str(src), remote], env=env)
            time.sleep(rng.uniform(0.1, 1.2))
            put.send_signal(signal.SIGKILL)
            put.wait()
            for status, checksum, size in remote_state(session, remote):  # absent, or complete and good
                assert (status, checksum, size) == ("1", sha2_of_file(src), src.stat().st_size)
            local = tmp_path / "back.bin"
            get = subprocess.Popen([str(BIN / "secure-iget"), "-f", remote, str(local)], env=env)
            time.sleep(rng.uniform(0.1, 1.0))
            get.send_signal(signal.SIGKILL)
            get.wait()
            if local.exists():
                assert hashlib.sha256(local.read_bytes()).digest() == digest
        assert run("secure-iput", "-f", str(src), remote, env=env).returncode == 0
        assert run("secure-iget", "-f", remote, str(tmp_path / "back.bin"), env=env).returncode == 0
    finally:
        grid.clear_faults()
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert remote_state(session, remote) == [("1", sha2_of_file(src), src.stat().st_size)]
    assert not [p for p in tmp_path.iterdir() if ".part-" in p.name]  # the re-run cleaned up


def test_iput_of_a_missing_local_file_fails_before_touching_the_zone(monkeypatch, capsys):
    from secure_irods.cli import iput
    from secure_irods.exitcodes import run as _run

    monkeypatch.setenv("IRODS_ENVIRONMENT_FILE", "/nonexistent/irods_environment.json")
    assert _run(iput, "secure-iput", ["/nonexistent/file", "/tempZone/home/rods/"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such local file" in err and "Traceback" not in err


def test_a_put_leaves_another_puts_temporary_alone(grid, session, coll, client, tmp_path):
    """Leftover temporaries are removed only when no replica is still being written."""
    busy = session.data_objects.open(f"{coll}/.r.part-busy", "w")     # another job, mid-upload
    busy.write(b"partial")
    busy.flush()
    session.data_objects.create(f"{coll}/.r.part-dead")               # a finished leftover
    local = tmp_path / "r"
    local.write_bytes(b"result")
    client.put(local, f"{coll}/r")
    names = {o.name for o in session.collections.get(coll).data_objects}
    busy.close()
    assert "r" in names and ".r.part-busy" in names and ".r.part-dead" not in names


def test_a_killed_upload_leaves_nothing_once_the_target_is_put_again(grid, session, coll, tmp_path):
    """SIGKILL mid-upload leaves a stale temporary; the next successful put of that target removes
    it, also when the target already holds the right bytes (nothing to send)."""
    if not grid.local:
        pytest.skip("needs the local grid's bandwidth cap to catch an upload mid-way")
    env = command_env(grid, tmp_path)
    small, big = tmp_path / "small.bin", make_file(tmp_path / "big.bin", 40 * MiB, seed=9)
    small.write_bytes(b"right bytes\n")
    remote = f"{coll}/k2"
    assert run("secure-iput", str(small), remote, env=env).returncode == 0

    def temporaries() -> list[str]:
        return [o.name for o in session.collections.get(coll).data_objects if o.name.startswith(".k2.part-")]

    grid.set_faults(bandwidth_mbps=10)
    try:
        killed = subprocess.Popen([str(BIN / "secure-iput"), "-f", str(big), remote], env=env,
                                  stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not temporaries() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    finally:
        grid.clear_faults()
    time.sleep(0.3)                                                   # the agent sees the reset, marks it stale
    assert len(temporaries()) == 1
    again = run("secure-iput", "-f", str(small), remote, env=env)    # same bytes: nothing to send
    assert again.returncode == 0, again.stderr
    assert temporaries() == []
    assert remote_state(session, remote) == [("1", sha2_of_file(small), small.stat().st_size)]


def test_leftovers_are_listed_and_removed_on_request_never_a_running_upload(grid, session, coll, client, tmp_path):
    session.collections.create(f"{coll}/sub")
    busy = session.data_objects.open(f"{coll}/sub/.r.part-busy", "w")  # another job, mid-upload
    busy.write(b"partial")
    busy.flush()
    session.data_objects.create(f"{coll}/sub/.r.part-dead")           # a killed run's
    session.data_objects.create(f"{coll}/.r.part-not-ours-either")
    session.data_objects.create(f"{coll}/plain.part")                 # not a temporary's name
    def leftovers() -> list:
        found = client.leftovers(coll)
        client.disconnect()    # the node's connection window may admit one: the commands need it
        return found

    try:
        assert [x.path for x in leftovers()] == [f"{coll}/.r.part-not-ours-either", f"{coll}/sub/.r.part-dead"]
        env = command_env(grid, tmp_path)
        listed = run("seisstore", "leftovers", coll, env=env)
        assert listed.returncode == 0 and listed.stdout.count(".part-") == 2, listed.stderr
        kept = run("seisstore", "leftovers", coll, "--remove", env=env)       # too recent: kept
        assert "0 removed" in kept.stderr and len(leftovers()) == 2
        removed = run("seisstore", "leftovers", coll, "--remove", "--older-than", "0", env=env)
        assert removed.returncode == 0 and "2 removed" in removed.stderr, removed.stderr
        names = {o.name for o in session.collections.get(f"{coll}/sub").data_objects}
        assert names == {".r.part-busy"} and leftovers() == []
        assert {o.name for o in session.collections.get(coll).data_objects} == {"plain.part"}
    finally:
        busy.close()


def test_put_resumes_after_a_drop_and_restarts_on_a_bad_prefix(grid, coll, session, tmp_path):
    """A put killed mid-way leaves its temporary; the next put appends to it (verified whole)."""
    from secure_irods.backend import PrcBackend
    from secure_irods.transfer import _put_temp

    src = make_file(tmp_path / "p.bin", 5 * MiB, seed=3)

    class Killed(Exception):
        pass

    def kill_after_two_mib(n, seen=[0]):
        seen[0] += n
        if seen[0] >= 2 * MiB:
            raise Killed

    with client_for(grid, tmp_path, attempts=1) as client:
        with pytest.raises(Exception):
            client.put(src, f"{coll}/p.bin", progress=kill_after_two_mib)
        assert not session.data_objects.exists(f"{coll}/p.bin")      # never a partial final name
        resumed = client.put(src, f"{coll}/p.bin")
        assert resumed.resumed_from >= 2 * MiB
        with session.data_objects.open(f"{coll}/p.bin", "r") as f:
            assert f.read() == src.read_bytes()
        # a kept prefix that is not what we sent: the whole-object checksum catches it
        probe = PrcBackend.connect(grid.env_file, grid.auth_file)
        temp, _ = _put_temp(probe, src, coll, "q.bin")          # the name a put of src would use
        probe.session.cleanup()
        with session.data_objects.open(temp, "w") as f:
            f.write(b"\0" * MiB)
        redone = client.put(src, f"{coll}/q.bin")
        assert redone.resumed_from == 0
        with session.data_objects.open(f"{coll}/q.bin", "r") as f:
            assert f.read() == src.read_bytes()
    names = {o.name for o in session.collections.get(coll).data_objects}
    assert names == {"p.bin", "q.bin"}
