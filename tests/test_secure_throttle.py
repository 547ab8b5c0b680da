"""Node-wide throttle and cool-down, exercised with real processes and real flocks."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from secure_irods.errors import InvalidInputError, TransientError, ZoneBusyError
from secure_irods.policy import Deadline
from secure_irods.throttle import Cooldown, CooldownState, Throttle, shared_directory

from clocks import FakeClock

SPAWN = multiprocessing.get_context("spawn")


# ---------------------------------------------------------------- child processes
# Module-level so spawned children can import them by name.


def _bump(counter: str, delta: int) -> None:
    """Add ``delta`` to the live-holder count in ``counter`` and track its maximum."""
    with open(counter, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        current, peak = map(int, f.read().split())
        current += delta
        f.seek(0)
        f.truncate()
        f.write(f"{current} {max(peak, current)}")


def _hold_slot(directory: str, slots: int, hold: float, barrier, counter: str) -> None:
    throttle = Throttle(slots, directory)
    barrier.wait(timeout=30)
    with throttle.acquire(deadline=20.0):
        _bump(counter, +1)
        time.sleep(hold)
        _bump(counter, -1)


def _hold_forever(directory: str, ready: str) -> None:
    with Throttle(1, directory).acquire(deadline=10.0):
        Path(ready).write_text("held")
        time.sleep(120)


def _wait_cooldown(directory: str, ready, go, results) -> None:
    cooldown = Cooldown(directory, spread=0.0)
    ready.set()
    go.wait(timeout=30)
    started = time.monotonic()
    cooldown.wait(deadline=10.0)
    cooldown.succeeded()
    results.put(time.monotonic() - started)


def _refuse(directory: str) -> None:
    Cooldown(directory, base=30.0).refused()


# ---------------------------------------------------------------- throttle


def test_eight_processes_never_exceed_three_slots(tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0 0")
    barrier = SPAWN.Barrier(8)
    procs = [
        SPAWN.Process(target=_hold_slot, args=(str(tmp_path / "locks"), 3, 0.25, barrier, str(counter)))
        for _ in range(8)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 8
    current, peak = map(int, counter.read_text().split())
    assert current == 0
    assert 2 <= peak <= 3  # limited, yet actually concurrent


def test_sigkilled_holder_slot_is_reacquired_immediately(tmp_path):
    directory, ready = tmp_path / "locks", tmp_path / "ready"
    child = SPAWN.Process(target=_hold_forever, args=(str(directory), str(ready)))
    child.start()
    try:
        limit = time.monotonic() + 30
        while not ready.exists():
            assert child.is_alive() and time.monotonic() < limit, "child never took the slot"
            time.sleep(0.02)
        throttle = Throttle(1, directory)
        assert throttle.in_use() == 1
        with pytest.raises(TransientError, match="no slot before deadline"):
            with throttle.acquire(deadline=0.2):
                pass
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=10)
        assert child.exitcode == -signal.SIGKILL
        waits: list[float] = []
        now = Throttle(1, directory, sleep=lambda s: (waits.append(s), time.sleep(s)))
        with now.acquire(deadline=2.0) as index:
            assert index == 0 and now.held == 1
        assert waits == []  # taken on the first pass: the kernel freed the flock when the holder died
        assert now.held == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()


def test_slots_contend_within_one_process_and_free_on_exception(tmp_path):
    a, b = Throttle(2, tmp_path), Throttle(2, tmp_path)
    with a.acquire(1.0) as first, a.acquire(1.0) as second:
        assert {first, second} == {0, 1} and a.held == 2 and b.in_use() == 2
        with pytest.raises(TransientError):
            with b.acquire(Deadline(0.1)):
                pass
    with pytest.raises(RuntimeError):
        with a.acquire(1.0):
            raise RuntimeError("transfer failed")
    assert a.held == 0 and b.in_use() == 0
    with b.acquire(None):
        assert b.held == 1


def test_waiter_gets_slot_when_holder_releases(tmp_path):
    slept: list[float] = []
    holder = Throttle(1, tmp_path)
    ctx = holder.acquire(1.0)
    ctx.__enter__()

    def sleep(seconds: float) -> None:  # release the slot while the waiter polls
        slept.append(seconds)
        if len(slept) == 3:
            ctx.__exit__(None, None, None)
        time.sleep(0.001)

    waiter = Throttle(1, tmp_path, poll=0.01, sleep=sleep)
    with waiter.acquire(5.0):
        assert waiter.held == 1
    assert len(slept) == 3 and all(0 < s <= 0.5 for s in slept)


def test_directory_and_files_shared_by_all_users(tmp_path):
    directory = tmp_path / "shared"
    throttle = Throttle(2, directory)
    with throttle.acquire(1.0) as index:
        mode = stat.S_IMODE(throttle.slot_path(index).stat().st_mode)
        assert mode == 0o666
    assert stat.S_IMODE(directory.stat().st_mode) == 0o1777
    assert throttle.directory == directory and throttle.slots == 2


def test_from_env(tmp_path):
    env = {"SECURE_IRODS_MAX_CONNECTIONS": "5", "SECURE_IRODS_THROTTLE_DIR": str(tmp_path / "t")}
    throttle = Throttle.from_env(env)
    assert throttle.slots == 5 and throttle.directory == tmp_path / "t"
    assert Throttle.from_env({"SECURE_IRODS_THROTTLE_DIR": str(tmp_path)}).slots == 4
    with pytest.raises(InvalidInputError):
        Throttle.from_env({"SECURE_IRODS_MAX_CONNECTIONS": "lots", "SECURE_IRODS_THROTTLE_DIR": str(tmp_path)})
    with pytest.raises(InvalidInputError):
        Throttle(0, tmp_path)
    assert shared_directory(None, {"SECURE_IRODS_THROTTLE_DIR": str(tmp_path / "u")}) == tmp_path / "u"


# ---------------------------------------------------------------- cool-down


def _cooldown(tmp_path: Path, fake: FakeClock, **kw) -> Cooldown:
    return Cooldown(tmp_path, clock=fake.clock, sleep=fake.sleep, uniform=lambda a, b: b, **kw)


def test_cooldown_grows_with_consecutive_refusals_and_resets(tmp_path):
    fake = FakeClock(1_700_000_000.0)
    cd = _cooldown(tmp_path, fake, base=5.0, step=5.0, maximum=12.0)
    assert cd.remaining() == 0.0 and cd.state() == CooldownState()
    assert cd.refused() == 5.0
    fake.now += 1.0
    assert cd.refused() == pytest.approx(4.0)  # same burst: no escalation
    assert cd.state().refusals == 1
    cd.succeeded()  # a stale success during the cool-down does not cancel it
    assert cd.remaining() == pytest.approx(4.0)
    fake.now += 4.0
    assert cd.refused() == 10.0
    fake.now += 10.0
    assert cd.refused() == 12.0  # capped
    assert cd.state().refusals == 3
    fake.now += 12.0
    cd.succeeded()
    assert cd.state() == CooldownState()
    assert cd.refused() == 5.0


def test_cooldown_wait_sleeps_out_the_shared_period(tmp_path):
    fake = FakeClock(1_700_000_000.0)
    cd = _cooldown(tmp_path, fake, base=5.0, spread=0.5)
    assert cd.wait(Deadline(60.0)) == 0.0 and fake.sleeps == []
    cd.refused()
    waited = cd.wait(Deadline(60.0))
    assert waited == pytest.approx(5.5) and cd.remaining() == 0.0


def test_cooldown_past_deadline_fails_fast(tmp_path):
    fake = FakeClock(1_700_000_000.0)
    cd = _cooldown(tmp_path, fake, base=30.0)
    cd.refused()
    with pytest.raises(ZoneBusyError, match="cooldown"):
        cd.wait(Deadline(5.0))
    assert fake.sleeps == []


def test_cooldown_file_is_shared_writable_and_robust(tmp_path):
    cd = Cooldown(tmp_path, base=2.0)
    cd.refused()
    assert stat.S_IMODE(cd.path.stat().st_mode) == 0o666
    data = json.loads(cd.path.read_text())
    assert data["refusals"] == 1 and data["until"] > time.time()
    cd.path.write_text("{garbage")
    assert cd.remaining() == 0.0 and cd.state() == CooldownState()


def test_cooldown_shared_between_processes(tmp_path):
    directory = str(tmp_path / "locks")
    ready, go, results = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    child = SPAWN.Process(target=_wait_cooldown, args=(directory, ready, go, results))
    child.start()
    assert ready.wait(timeout=30)
    Cooldown(directory, base=0.6).refused()  # recorded here, after the child has started
    go.set()
    waited = results.get(timeout=30)
    child.join(timeout=10)
    assert child.exitcode == 0
    assert 0.4 <= waited < 3.0
    assert Cooldown(directory).state() == CooldownState()  # the child's success reset it

    other = SPAWN.Process(target=_refuse, args=(directory,))
    other.start()
    other.join(timeout=30)
    assert other.exitcode == 0
    assert Cooldown(directory).remaining() > 20.0  # seen here, recorded there


def test_cooldown_unusable_file_is_advisory(tmp_path):
    cd = Cooldown(tmp_path, base=3.0)
    cd.path.mkdir()  # opening it fails with an OSError, even for root
    assert cd.refused() == 3.0  # could not share it, but still tells the caller to back off
    assert cd.state() == CooldownState() and cd.remaining() == 0.0
    cd.succeeded()


def test_cooldown_is_kept_per_zone(tmp_path):
    """A refusal by one zone (a wrong port, say) does not stall work on another."""
    wrong = Cooldown(tmp_path, zone="127.0.0.1:1")
    right = Cooldown(tmp_path, zone="127.0.0.1:1247")
    wrong.refused()
    assert wrong.remaining() > 0 and right.remaining() == 0
    assert wrong.path != right.path and "127.0.0.1_1247" in right.path.name


def _budget_take(directory: str, n: int, queue) -> None:
    from secure_irods.throttle import RetryBudget

    budget = RetryBudget(directory, zone="z:1", rate=1.0, burst=5.0)
    queue.put([budget.take() for _ in range(n)])


def test_retry_budget_is_one_bucket_for_the_node(tmp_path):
    """Four processes retrying at once share one bucket: the waits they are given grow as if
    one process had made all the retries, so together they add ``rate`` retries a second."""
    queue = multiprocessing.get_context("fork").Queue()
    procs = [multiprocessing.get_context("fork").Process(target=_budget_take, args=(str(tmp_path), 5, queue))
             for _ in range(4)]
    for p in procs:
        p.start()
    waits = sorted(w for _ in procs for w in queue.get(timeout=30))
    for p in procs:
        p.join(timeout=30)
    assert len(waits) == 20
    assert sum(1 for w in waits if w == 0.0) <= 6          # the burst (5), plus refill while they ran
    assert waits[-1] >= 13.0                                 # the 20th retry waits ~15 tokens at 1/s


def test_retry_budget_refills_with_time_and_successes(tmp_path):
    from secure_irods.throttle import RetryBudget

    now = [1000.0]
    budget = RetryBudget(tmp_path, zone="z:1", rate=0.5, burst=2.0, ratio=0.5, clock=lambda: now[0])
    assert budget.take() == 0.0 and budget.take() == 0.0
    assert budget.take() == pytest.approx(2.0)     # one token short at 0.5/s
    now[0] += 4.0                                   # two tokens back: -1 + 2 = 1
    assert budget.tokens() == pytest.approx(1.0)
    budget.credit()
    budget.credit()                                 # successes give back half a token each, up to burst
    assert budget.tokens() == pytest.approx(2.0)
    (tmp_path / budget.path.name).write_text("not json")
    assert budget.take() == 0.0                     # an unreadable file is a full bucket: advisory
