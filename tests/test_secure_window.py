"""The node's adaptive window: the law under a fake clock, the shared plumbing, and a real grid.

Every test counts events (cuts, slots, trips, refusals, gets), never time.
"""

from __future__ import annotations

import json
import math
import threading
import uuid

import pytest

from secure_irods.throttle import Cooldown, FlockPool, MemoryPool, RetryBudget, Throttle
from secure_irods.window import Lease, MemoryState, Window, WindowLaw, WindowState, node_window

from clocks import FakeClock


def _window(clock: FakeClock, law: WindowLaw | None = None, cooldown=None) -> Window:
    return Window(MemoryPool(), MemoryState(), law=law or WindowLaw(maximum=4), clock=clock.clock, sleep=clock.sleep,
                  uniform=lambda a, b: b, cooldown=cooldown)


# ---------------------------------------------------------------- the law


def test_refusals_of_one_burst_cut_once_per_round_trip():
    law = WindowLaw(maximum=4, initial=4)
    s = law.fresh()
    s = law.refused(s, now=10.0, started=9.0)
    assert s.limit == pytest.approx(2.8)
    for _ in range(5):  # other processes' attempts, started before the cut, refused now
        s = law.refused(s, now=10.5, started=9.5)
    assert s.limit == pytest.approx(2.8) and s.refusals > 4  # counted (decayed), not cut
    s = law.refused(s, now=11.0, started=10.8)  # started after the cut: a new round trip
    assert s.limit == pytest.approx(2.8 * 0.7)


def test_window_grows_to_the_maximum_and_no_further():
    law = WindowLaw(maximum=3)
    s = law.fresh()
    for i in range(200):
        s = law.completed(law.accepted(s, i, 0.01), i + 0.5, 0.5)
    assert s.limit == 3.0 and law.slots(s) == 3


def test_below_one_the_window_paces_one_connection():
    law = WindowLaw(maximum=4, initial=0.5)
    s = law.refused(law.fresh(), now=1.0, started=1.0)  # 0.35
    s = law.completed(s, now=100.0, held=2.0)
    assert law.slots(s) == 1
    assert law.wait(s, 100.0) == pytest.approx(2.0 * (1 / s.limit - 1))  # mean occupancy = limit
    assert law.wait(s, 100.0 + 2.0 * (1 / s.limit - 1)) == 0.0


def test_window_never_falls_below_its_minimum():
    law = WindowLaw(maximum=4, minimum=0.05)
    s = law.fresh()
    for i in range(100):
        s = law.refused(s, now=float(i), started=float(i))
    assert s.limit == 0.05


def test_latency_over_its_baseline_stops_growth():
    law = WindowLaw(maximum=8, initial=2)
    s = law.fresh()
    for _ in range(50):
        s = law.accepted(s, 0.0, 0.010)  # the normal
    assert not law.congested(s)
    for _ in range(8):
        s = law.accepted(s, 0.0, 0.200)  # log-in suddenly 20x slower: the zone queues us
    assert law.congested(s)
    assert law.completed(s, 1.0, 0.5).limit == 2.0


def test_probe_gain_is_small_after_a_cut_then_grows_without_refusals():
    law = WindowLaw(maximum=4, initial=1.0, probe=0.004, quiet=20, patience=10)
    s = law.refused(law.completed(law.fresh(), 0.0, 0.1), 1.0, 1.0)  # round trip 0.1 s
    assert s.ceiling > 0
    first = law.completed(s, 1.1, 0.1).limit - s.limit
    assert first == pytest.approx(0.004 / s.limit)  # additive: 0.004 per round trip
    later = law.completed(s, 1.0 + 0.1 * (20 + 40), 0.1).limit - s.limit  # 40 round trips past the quiet ones
    assert later == pytest.approx(first * 2 ** 4)


def test_clamp_keeps_a_hostile_window_file_within_bounds():
    law = WindowLaw(maximum=4, minimum=0.05)
    now = 1000.0
    hostile = WindowState(limit=1e9, ceiling=-5, cut_at=1e12, since_cut=-3, hold=1e9, next_start=1e15,
                          accepts=-1, refusals=1e30, latency=1e9, baseline=-1)
    s = law.clamp(hostile, now)
    assert s.limit == 4 and s.hold <= 3600 and s.cut_at <= now and s.since_cut == 0
    assert law.wait(law.clamp(dataclass_replace(hostile, limit=0.0), now), now) <= 3600 / 0.05
    assert WindowState.from_dict({"limit": "nan", "hold": "x", "next_start": float("inf")}) == WindowState()


def dataclass_replace(state, **changes):
    return state._replace(**changes)


# ---------------------------------------------------------------- the plumbing


def test_window_holds_floor_of_limit_slots_and_frees_them():
    clock = FakeClock()
    w = _window(clock, WindowLaw(maximum=4, initial=2))
    a, b = w.try_acquire(), w.try_acquire()
    assert isinstance(a, Lease) and isinstance(b, Lease)
    assert not isinstance(w.try_acquire(), Lease)  # a third waits
    a.accepted()
    clock.now += 0.5
    a.close()
    assert isinstance(w.try_acquire(), Lease)


def test_a_lease_is_reported_once_and_frees_its_slot_on_refusal():
    clock = FakeClock()
    w = _window(clock, WindowLaw(maximum=1, initial=1))
    lease = w.try_acquire()
    lease.refused()
    lease.close()  # a second report is ignored
    assert w.state().limit == pytest.approx(0.7) and w.pool.held == set()


def test_breaker_trips_once_when_the_zone_refuses_nearly_everything(tmp_path):
    """Several processes of the node refused in a row, none accepted: one node-wide pause."""
    clock = FakeClock()
    cooldown = Cooldown(tmp_path, clock=clock.clock, sleep=clock.sleep, base=5.0)
    w = _window(clock, WindowLaw(maximum=4), cooldown=cooldown)
    for _ in range(6):
        w.update(lambda law, s: law.refused(s, clock.now, clock.now))
        clock.now += 0.5
    assert w.trips == 1 and cooldown.state().refusals == 1
    w.update(lambda law, s: law.accepted(s, clock.now, 0.01))
    assert not w.law.tripped(w.state())  # one accepted connection closes it again


def test_acquire_waits_out_the_pacing_of_a_paced_window():
    clock = FakeClock()
    w = _window(clock, WindowLaw(maximum=4, initial=0.36))
    w.try_acquire().refused()  # pacing starts once the zone has refused: 0.36 -> ~0.25
    clock.now += 10.0
    first = w.acquire(deadline=None)
    first.accepted()
    clock.now += 1.0
    first.close()  # held 1 s at limit ~0.25: the next starts ~3 s later
    before = clock.now
    w.acquire(deadline=None)
    assert clock.now - before >= 1.0 * (1 / w.state().limit - 1) - 1e-6


def test_window_shared_by_two_objects_through_its_file(tmp_path):
    throttle = Throttle(4, tmp_path)
    a, b = node_window(throttle, "h:1"), node_window(throttle, "h:1")
    start = a.state().limit
    lease = a.try_acquire()
    lease.refused()
    assert b.state().limit == pytest.approx(start * a.law.beta)
    assert (tmp_path / "window-h_1.json").exists() and list(tmp_path.glob("slot-h_1-*"))
    assert node_window(throttle, "other:2").state().limit == start  # per zone host


def test_slots_are_real_flocks_shared_between_pools(tmp_path):
    one, two = FlockPool(tmp_path, "p-"), FlockPool(tmp_path, "p-")
    held = one.take(1)
    assert held is not None and two.take(1) is None
    FlockPool.give(held)
    assert two.take(1) is not None


# ---------------------------------------------------------------- shared files clamped (issue 24, item 6)


def test_cooldown_far_future_until_is_clamped_to_its_maximum(tmp_path):
    clock = FakeClock()
    cd = Cooldown(tmp_path, zone="z:1", clock=clock.clock, sleep=clock.sleep, maximum=120.0)
    cd.path.write_text(json.dumps({"until": clock.now + 10 * 365 * 86400, "refusals": 10**9}))
    assert cd.remaining() == pytest.approx(120.0)
    assert cd.state().refusals <= 1 + math.ceil((120 - 5) / 5)
    cd.path.write_text(json.dumps({"until": "nan", "refusals": 1}))
    assert cd.remaining() == 0.0


def test_retry_budget_hostile_values_are_clamped(tmp_path):
    now = [1000.0]
    budget = RetryBudget(tmp_path, zone="z:1", rate=2.0, burst=10.0, clock=lambda: now[0])
    budget.path.write_text(json.dumps({"tokens": -1e12, "stamp": 1e15}))
    assert budget.wait() <= RetryBudget.MAX_DEBT_SECONDS + 1.0  # not a stall of 1e12 / rate seconds
    debt = budget.tokens()
    assert debt == -RetryBudget.MAX_DEBT_SECONDS * 2.0
    now[0] += 1.0
    assert budget.tokens() == debt + 2.0  # refills again: the future stamp was cut to now
    budget.path.write_text(json.dumps({"tokens": 1e12, "stamp": 0}))
    assert budget.tokens() == 10.0


def test_window_file_hostile_values_are_clamped(tmp_path):
    throttle = Throttle(4, tmp_path)
    w = node_window(throttle, "z:1")
    (tmp_path / "window-z_1.json").write_text(json.dumps({"limit": 0.5, "hold": 1e30, "next_start": 1e30}))
    assert w.law.wait(w.state(), w.clock()) <= 3600 / w.law.minimum


# ---------------------------------------------------------------- a real grid


@pytest.mark.faults
def test_node_cap_equal_to_the_zone_cap_does_not_stall_the_node(grid, coll, tmp_path, monkeypatch):
    """Zone cap 2 = node cap 2, six jobs of one node: the agent release lag makes the zone refuse
    a connection now and then; no refusal pauses the node (no breaker trip, no cool-down), every
    get succeeds, and the node's window stays open (>= 1 connection)."""
    from secure_irods.client import connect

    src = tmp_path / "obj.bin"
    src.write_bytes(uuid.uuid4().bytes * 4096)
    with connect(grid.env_file, grid.auth_file, throttle=False, cooldown=False) as c:
        c.put(src, f"{coll}/obj.bin")
    for name, value in grid.environ().items():
        if name.startswith("IRODS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SECURE_IRODS_LOAD_CONTROL", "adaptive")
    throttle_dir = tmp_path / "throttle"
    grid.control.reset_stats()
    grid.set_faults(max_connections=2)
    ok, errors, windows = [], [], []

    def job(n: int) -> None:
        try:
            with connect(throttle=Throttle(2, throttle_dir)) as c:
                windows.append(c.window)
                for i in range(6):
                    c.get(f"{coll}/obj.bin", tmp_path / f"out-{n}-{i}", force=True)
                    c.disconnect()  # one connection per get, as a job calling secure-iget per file
                    ok.append(1)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=job, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    grid.clear_faults()
    stats = grid.control.stats()
    assert errors == [] and len(ok) == 36
    assert sum(w.trips for w in windows) == 0
    assert Cooldown(throttle_dir, zone=windows[0].zone).state().refusals == 0
    assert stats["max_active"] <= 2
    assert stats["refused"] < 36  # fewer refusals than gets (measured 1 to 33): no storm, and no pause
