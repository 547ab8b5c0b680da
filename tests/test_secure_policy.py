"""RetryPolicy: retries only transient errors, bounded by attempts and a deadline, jittered waits."""

from __future__ import annotations

import dataclasses
import logging
import random

import irods.exception as prc
import pytest
import tenacity
from hypothesis import given, settings
from hypothesis import strategies as st

from secure_irods.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    TransientError,
    ZoneBusyError,
    register_secret,
)
from secure_irods.policy import Deadline, Progress, RetryPolicy

from clocks import FakeClock


class Flaky:
    """Raises ``failures`` in turn, then returns ``value``; ``Flaky.always(exc)`` never succeeds."""

    def __init__(self, *failures: BaseException, value: object = "ok", fake: FakeClock | None = None, cost: float = 0.0):
        self.failures = list(failures)
        self.value = value
        self.forever: BaseException | None = None
        self.calls = 0
        self.fake = fake
        self.cost = cost

    @classmethod
    def always(cls, exc: BaseException, **kw) -> "Flaky":
        fn = cls(**kw)
        fn.forever = exc
        return fn

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.args = (args, kwargs)
        if self.fake is not None:
            self.fake.now += self.cost
        if self.failures:
            raise self.failures.pop(0)
        if self.forever is not None:
            raise self.forever
        return self.value


def _policy(fake: FakeClock, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=fake.sleep, clock=fake.clock, **kw)


def test_success_after_transient_failures_returns_value():
    fake = FakeClock()
    fn = Flaky(prc.NetworkException("a"), socket_timeout(), value=42)
    assert _policy(fake).call(fn, "x", k=1) == 42
    assert fn.calls == 3 and len(fake.sleeps) == 2
    assert fn.args == (("x",), {"k": 1})


def socket_timeout() -> Exception:
    import socket

    return socket.timeout("timed out")


def test_transient_retried_up_to_attempts_then_our_error():
    fake = FakeClock()
    fn = Flaky.always(prc.SYS_AGENT_INIT_ERR("slow"))
    with pytest.raises(TransientError) as info:
        _policy(fake, attempts=5).call(fn)
    assert not isinstance(info.value, tenacity.RetryError)
    assert fn.calls == 5 and len(fake.sleeps) == 4
    err = info.value
    assert err.attempts == 5
    assert "gave up after 5 attempt(s)" in str(err) and "SYS_AGENT_INIT_ERR" in str(err)
    assert err.code == -38000 and err.exit_code == 2
    assert isinstance(err.__cause__, prc.SYS_AGENT_INIT_ERR)


def test_zone_busy_keeps_its_class_when_giving_up():
    fake = FakeClock()
    with pytest.raises(ZoneBusyError):
        _policy(fake, attempts=2).call(Flaky.always(KeyError(-118000)))


@pytest.mark.parametrize(
    "exc, expected",
    [
        (prc.CAT_INVALID_AUTHENTICATION("nope"), AuthenticationError),
        (prc.CAT_UNKNOWN_FILE("/z/x"), NotFoundError),
        (prc.DataObjectDoesNotExist(), NotFoundError),
        (ValueError("bad"), InvalidInputError),
    ],
)
def test_permanent_never_retried(exc, expected):
    fake = FakeClock()
    fn = Flaky.always(exc)
    with pytest.raises(expected) as info:
        _policy(fake).call(fn)
    assert fn.calls == 1 and fake.sleeps == []
    assert info.value.__cause__ is exc and info.value.attempts == 1


def test_interrupt_propagates_unchanged_without_retry():
    fake = FakeClock()
    fn = Flaky.always(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        _policy(fake).call(fn)
    assert fn.calls == 1


def test_our_transient_errors_are_retried():
    fake = FakeClock()
    fn = Flaky(TransientError("throttle: no slot before deadline"), value="done")
    assert _policy(fake).call(fn) == "done" and fn.calls == 2


def test_deadline_honoured_waits_never_overrun():
    fake = FakeClock()
    # Waits at their upper bound 1, 3, 5, 7 ...; attempts take 0.5 s each.
    policy = _policy(fake, attempts=100, deadline=10.0, uniform=lambda a, b: b)
    fn = Flaky.always(prc.NetworkException("down"), fake=fake, cost=0.5)
    start = fake.now
    with pytest.raises(TransientError):
        policy.call(fn)
    assert fake.now - start <= 10.0
    # t=0.5 fail, sleep 1; t=2 fail, sleep 3; t=5.5 fail: a 5 s wait would end at 10.5 > 10.
    assert fake.sleeps == [1.0, 3.0]
    assert fn.calls == 3


def test_shared_deadline_spent_elsewhere_limits_retries():
    fake = FakeClock()
    policy = _policy(fake, attempts=10, deadline=100.0, uniform=lambda a, b: b)
    deadline = policy.start_deadline()
    fake.now += 99.5  # e.g. spent waiting for a throttle slot
    fn = Flaky.always(prc.NetworkException("down"))
    with pytest.raises(TransientError):
        policy.call_within(deadline, fn)
    assert fn.calls == 1


def test_wait_sequence_is_incremental_capped_and_jittered():
    fake = FakeClock()
    bounds: list[tuple[float, float]] = []
    rng = random.Random(7)

    def uniform(a: float, b: float) -> float:
        bounds.append((a, b))
        return rng.uniform(a, b)

    policy = _policy(fake, attempts=8, deadline=1e6, initial=1.0, increment=2.0, max_wait=6.0, uniform=uniform)
    with pytest.raises(TransientError):
        policy.call(Flaky.always(prc.NetworkException("x")))
    # tenacity also computes a wait after the final attempt, before deciding to stop.
    assert bounds[:7] == [(0.0, b) for b in (1.0, 3.0, 5.0, 6.0, 6.0, 6.0, 6.0)]
    assert len(fake.sleeps) == 7
    assert all(0.0 <= s <= b for s, (_, b) in zip(fake.sleeps, bounds))
    assert len(set(fake.sleeps)) == 7  # jittered, not lock-step


@settings(max_examples=60, deadline=None)
@given(
    attempts=st.integers(1, 12),
    initial=st.floats(0, 10),
    increment=st.floats(0, 10),
    max_wait=st.floats(0, 30),
    seed=st.integers(0, 2**16),
)
def test_waits_within_bounds_property(attempts, initial, increment, max_wait, seed):
    fake = FakeClock()
    rng = random.Random(seed)
    policy = RetryPolicy(
        attempts=attempts, deadline=1e9, initial=initial, increment=increment, max_wait=max_wait,
        sleep=fake.sleep, clock=fake.clock, uniform=rng.uniform,
    )
    fn = Flaky.always(prc.SYS_HEADER_READ_LEN_ERR())
    with pytest.raises(TransientError):
        policy.call(fn)
    assert fn.calls == attempts
    for n, slept in enumerate(fake.sleeps, start=1):
        assert 0.0 <= slept <= min(max_wait, initial + increment * (n - 1)) + 1e-9


def test_retries_logged_with_reason_and_wait_but_no_password(caplog):
    secret = "Tr0ub4dor&3-policy"
    register_secret(secret)
    fake = FakeClock()
    fn = Flaky.always(prc.NetworkException(f"lost link while sending {secret}"))
    with caplog.at_level(logging.INFO, logger="secure_irods.retry"):
        with pytest.raises(TransientError) as info:
            _policy(fake, attempts=3, uniform=lambda a, b: b).call(fn)
    records = [r for r in caplog.records if r.name == "secure_irods.retry"]
    text = "\n".join(r.getMessage() for r in records)
    assert "retry 1 in 1.0s" in text and "retry 2 in 3.0s" in text and "deadline in 9m5" in text
    assert "TransientError" in text and "NetworkException" in text
    assert all(r.levelno == logging.WARNING for r in records if "retry" in r.getMessage())  # shown by default
    assert "giving up after 3 attempt(s)" in text
    assert secret not in text and secret not in str(info.value)


def test_retrying_is_a_tenacity_composition():
    policy = RetryPolicy()
    r = policy.retrying()
    assert isinstance(r, tenacity.Retrying)
    assert isinstance(r.stop, tenacity.stop.stop_any)
    assert r.sleep is policy.sleep


def test_policy_is_frozen_and_derivable():
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.attempts = 3  # type: ignore[misc]
    assert policy.replace(attempts=3).attempts == 3 and policy.attempts == 8
    assert (policy.attempts, policy.deadline, policy.initial, policy.increment, policy.max_wait) == (
        8, 600.0, 1.0, 2.0, 60.0
    )


@pytest.mark.parametrize("bad", [dict(attempts=0), dict(deadline=0), dict(max_wait=-1)])
def test_invalid_policy_rejected(bad):
    with pytest.raises(InvalidInputError):
        RetryPolicy(**bad)


def test_from_env():
    env = {"SECURE_IRODS_RETRIES": "3", "SECURE_IRODS_DEADLINE": "30.5", "SECURE_IRODS_MAX_WAIT": "4"}
    policy = RetryPolicy.from_env(env)
    assert (policy.attempts, policy.deadline, policy.max_wait) == (3, 30.5, 4.0)
    assert RetryPolicy.from_env({}) == RetryPolicy()
    assert RetryPolicy.from_env(env, attempts=9).attempts == 9
    with pytest.raises(InvalidInputError, match="SECURE_IRODS_RETRIES"):
        RetryPolicy.from_env({"SECURE_IRODS_RETRIES": "many"})


def test_deadline_socket_timeouts():
    fake = FakeClock()
    d = Deadline(10.0, clock=fake.clock)
    assert d.socket_timeout() == 10.0 and d.socket_timeout(cap=3.0) == 3.0
    fake.now += 8.0
    assert d.remaining() == pytest.approx(2.0) and d.socket_timeout(cap=3.0) == pytest.approx(2.0)
    fake.now += 5.0
    assert d.expired and d.remaining() == 0.0
    with pytest.raises(TransientError, match="deadline"):
        d.socket_timeout()
    forever = Deadline(None, clock=fake.clock)
    assert not forever.expired and forever.socket_timeout(cap=5.0) == 5.0


def test_attempts_that_got_answers_do_not_spend_the_budget():
    """Regression (contention benchmark, 4 of 640 gets failed): one call is many requests,
    each of which a lossy zone may drop, so 8 attempts ran out although every attempt got
    some answers.  Only attempts the zone answered nothing in spend ``attempts``."""
    fake = FakeClock()
    progress = Progress()
    answered = 0

    def dropped_after_an_answer():
        nonlocal answered
        answered += 1
        progress.note()  # e.g. the log-in and the query succeeded, then the read was dropped
        if answered <= 10:
            raise ConnectionResetError("dropped mid-read")
        return "ok"

    policy = _policy(fake, attempts=3, uniform=lambda a, b: 0.0)
    assert policy.call_within(policy.start_deadline(), dropped_after_an_answer, progress=progress) == "ok"
    assert answered == 11

    silent = Flaky.always(ConnectionResetError("dropped before any answer"))
    with pytest.raises(TransientError) as info:
        policy.call_within(policy.start_deadline(), silent, progress=Progress())
    assert silent.calls == 3 and info.value.attempts == 3

    # A call that keeps making progress is retried until the deadline, not a fixed count.
    def always_answers_then_drops():
        progress.note()
        raise ConnectionResetError("dropped")

    patient = _policy(fake, attempts=3, deadline=120.0, uniform=lambda a, b: b)
    start = fake.now
    with pytest.raises(TransientError) as info:
        patient.call_within(patient.start_deadline(), always_answers_then_drops, progress=progress)
    assert info.value.attempts > 3 and fake.now - start <= 120.0
    # ... and the next wait would have crossed the deadline
    assert fake.now - start + min(60.0, 1.0 + 2.0 * (info.value.attempts - 1)) >= 120.0


def test_only_a_run_of_barren_attempts_ends_a_call():
    """Barren attempts between attempts that made progress do not add up: only a run does."""
    fake = FakeClock()
    progress = Progress()
    calls = 0

    def alternate():
        nonlocal calls
        calls += 1
        if calls % 3 == 0:
            progress.note()   # every third attempt gets further
        if calls < 20:
            raise ConnectionResetError("dropped")
        return "ok"

    policy = _policy(fake, attempts=3, uniform=lambda a, b: 0.0)
    assert policy.call_within(policy.start_deadline(), alternate, progress=progress) == "ok"
    assert calls == 20     # 2 barren in a row at most, 13 barren in all: never stopped


class CountingBudget:
    """A retry budget that counts what is asked of it (tokens in hand: ``tokens``)."""

    def __init__(self, tokens: float) -> None:
        self.tokens, self.taken, self.asked = tokens, 0, 0

    def wait(self) -> float:
        self.asked += 1
        return 0.0 if self.tokens >= 1 else 5.0

    def take(self) -> float:
        self.taken += 1
        self.tokens -= 1
        return 0.0

    def credit(self) -> None:
        pass


def test_retry_token_is_taken_only_for_retries_that_happen():
    """Computing the wait takes no token; the attempt that gives up spends none (issue 23)."""
    fake = FakeClock()
    budget = CountingBudget(tokens=100)
    policy = _policy(fake, attempts=4, uniform=lambda a, b: 0.0).replace(budget=budget)
    fn = Flaky.always(ConnectionResetError("dropped"))
    with pytest.raises(TransientError):
        policy.call_within(policy.start_deadline(), fn, progress=Progress())
    assert fn.calls == 4 and budget.taken == 3  # three retries, three tokens; the fourth failure gives up


def test_stop_without_progress_reads_a_snapshot_and_keeps_no_state():
    from secure_irods.policy import stop_after_attempts_without_progress

    progress = Progress()
    stop = stop_after_attempts_without_progress(3, progress)
    state = tenacity.RetryCallState(None, None, (), {})
    for attempt in (1, 2, 3):
        progress.started(attempt)
        state.attempt_number = attempt
    assert stop(state) and stop(state)  # asking twice changes nothing
    progress.note()
    assert not stop(state)
