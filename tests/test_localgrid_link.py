"""The shaped link: --bandwidth per connection and --total-bandwidth, measured by bytes and
booked seconds (a token bucket with an injected clock), and end to end by lower bounds only:
a loaded machine can make a transfer slower, never faster than the link allows."""

from __future__ import annotations

import threading
import time

import pytest

from localgrid.link import BURST_SECONDS, MB, Link, TokenBucket

from clocks import FakeClock


def test_bucket_books_bytes_over_rate():
    t = FakeClock(100.0)
    bucket = TokenBucket(lambda: 2.0, sleep=t.sleep, clock=t.clock)     # 2 MB/s
    for _ in range(10):
        bucket.consume(MB)                                               # 10 MB in all
    assert t.slept == pytest.approx(10 / 2 - BURST_SECONDS)
    unlimited = TokenBucket(lambda: 0.0, sleep=t.sleep, clock=t.clock)
    before = t.slept
    unlimited.consume(100 * MB)
    assert t.slept == before


def test_total_cap_is_shared_by_connections():
    t = FakeClock(100.0)
    total = TokenBucket(lambda: 4.0, sleep=t.sleep, clock=t.clock)
    links = [Link(TokenBucket(lambda: 0.0, sleep=t.sleep, clock=t.clock), total) for _ in range(2)]
    for _ in range(4):
        for link in links:
            link.consume(MB)                                             # 8 MB through one 4 MB/s cap
    assert t.slept == pytest.approx(8 / 4 - BURST_SECONDS)


def _stats(grid):
    return grid.control.stats()


@pytest.mark.faults
def test_bandwidth_caps_a_get_and_a_put(grid, session, coll, tmp_path):
    payload = b"x" * (3 * MB)
    local = tmp_path / "up"
    local.write_bytes(payload)
    session.data_objects.put(str(local), f"{coll}/blob")
    grid.set_faults(bandwidth_mbps=3.0)                                  # 3 MB/s: the 3 MB take >= ~1 s
    before = _stats(grid)
    started = time.monotonic()
    session.data_objects.get(f"{coll}/blob", str(tmp_path / "down"))
    elapsed_get = time.monotonic() - started
    started = time.monotonic()
    session.data_objects.put(str(local), f"{coll}/blob2")
    elapsed_put = time.monotonic() - started
    after = _stats(grid)
    assert after["bytes_sent"] - before["bytes_sent"] >= len(payload)
    assert after["bytes_received"] - before["bytes_received"] >= len(payload)
    assert elapsed_get >= len(payload) / (3 * MB) - 2 * BURST_SECONDS
    assert elapsed_put >= len(payload) / (3 * MB) - 2 * BURST_SECONDS
    assert (tmp_path / "down").read_bytes() == payload


@pytest.mark.faults
def test_total_bandwidth_is_shared(grid, session, coll, tmp_path):
    payload = b"y" * (2 * MB)
    local = tmp_path / "up"
    local.write_bytes(payload)
    for name in ("a", "b"):
        session.data_objects.put(str(local), f"{coll}/{name}")
    grid.set_faults(total_bandwidth_mbps=4.0)                            # 2 x 2 MB through 4 MB/s: >= ~1 s

    def fetch(name):
        with grid.session() as s:
            s.data_objects.get(f"{coll}/{name}", str(tmp_path / f"down-{name}"))

    threads = [threading.Thread(target=fetch, args=(n,)) for n in ("a", "b")]
    started = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - started
    assert elapsed >= 2 * len(payload) / (4 * MB) - 2 * BURST_SECONDS
    assert all((tmp_path / f"down-{n}").read_bytes() == payload for n in ("a", "b"))
