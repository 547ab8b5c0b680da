"""The grid server under idle, silent and dribbling clients: bounded memory, no lock-out.

Loopback only, each test bounded in time (a few seconds of handshake timeout at most).
"""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

import pytest

from helpers import make_file, start_grid

IDLE = 3000
MiB = 1024 * 1024


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _connect_silently(grid, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection((grid.host, grid.port), timeout=10)
        socks.append(s)
    return socks


@pytest.fixture
def more_descriptors():
    """Room for IDLE sockets in this process (the grid raises its own limit to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE + 512
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"the hard limit of open files ({hard}) is below {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _client(grid, tmp_path: Path):
    from secure_irods.client import connect

    return connect(grid.env_file, grid.auth_file, throttle=False, cooldown=False)


def test_three_thousand_idle_connections_hold_little_memory_and_a_client_is_served(tmp_path, more_descriptors):
    grid = start_grid(tmp_path / "grid", "--handshake-timeout", "120")
    socks: list[socket.socket] = []
    try:
        before = _rss(grid.spawned.process.pid)
        socks = _connect_silently(grid, IDLE)
        src = make_file(tmp_path / "src.bin", 20 * MiB, seed=3)
        with _client(grid, tmp_path) as client:                    # served while the 3,000 wait
            client.put(src, f"{grid.home}/big.bin")
            client.get(f"{grid.home}/big.bin", tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
        held = _rss(grid.spawned.process.pid)
        print(f"grid RSS: {before / MiB:.0f} MiB before, {held / MiB:.0f} MiB with {IDLE} idle connections")
        assert held < 500 * MiB
        assert grid.control.stats()["refused"] == 0                # silent sockets took no agent slot
    finally:
        for s in socks:
            s.close()
        grid.stop()


def test_silent_and_dribbling_sockets_do_not_lock_clients_out_and_are_closed(tmp_path):
    from secure_irods.errors import SecureIrodsError

    grid = start_grid(tmp_path / "grid", "--max-connections", "4", "--handshake-timeout", "2")
    silent = _connect_silently(grid, 4)
    dribbling = socket.create_connection((grid.host, grid.port), timeout=10)
    try:
        src = make_file(tmp_path / "src.bin", MiB, seed=4)
        started = time.monotonic()
        try:
            with _client(grid, tmp_path) as client:
                client.put(src, f"{grid.home}/a.bin")
                assert client.stat(f"{grid.home}/a.bin").size == MiB
        except SecureIrodsError as exc:
            pytest.fail(f"four silent sockets locked the client out: {exc}")
        assert time.monotonic() - started < 10
        for byte in b"\x00\x00\x01":                               # a header length, one byte a second
            dribbling.sendall(bytes([byte]))
            time.sleep(0.9)
        for s in [*silent, dribbling]:                             # all closed by the handshake timeout
            s.settimeout(5)
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
        stats = grid.control.stats()
        assert stats["handshake_timeouts"] >= 5 and stats["refused"] == 0
    finally:
        for s in [*silent, dribbling]:
            s.close()
        grid.stop()


def test_beyond_the_connection_limit_a_client_is_refused_in_one_clear_line(tmp_path):
    from secure_irods.errors import ZoneBusyError

    grid = start_grid(tmp_path / "grid", "--connection-limit", "1")
    try:
        with grid.session() as held:                               # the one agent allowed
            held.collections.get(grid.home)
            from secure_irods.client import connect
            from secure_irods.policy import RetryPolicy

            with pytest.raises(ZoneBusyError) as info:
                with connect(grid.env_file, grid.auth_file, throttle=False, cooldown=False,
                             policy=RetryPolicy(attempts=1, deadline=2)) as client:
                    client.stat(grid.home)
            assert "SYS_MAX_CONNECT_COUNT_EXCEEDED" in str(info.value)
    finally:
        grid.stop()
