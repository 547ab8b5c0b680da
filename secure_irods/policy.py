"""Retry policy: retry only transient failures, with incremental back-off and full jitter.

A grid of thousands of jobs must not retry in lock-step, nor forever, nor on errors
that cannot heal (a wrong password retried 8 times may lock an account).  So the
policy is one tenacity composition::

    stop  = stop_after_attempt(attempts) | stop_before_deadline(deadline)
    retry = retry_if_exception(lambda e: classify(e).transient)
    wait  = full_jitter(wait_incrementing(initial, increment, max_wait))

With a :class:`Progress` (the client passes one per call), ``stop_after_attempt`` becomes
``stop_after_attempts_without_progress(attempts, progress)``: one call of ours is many
requests to the zone (a get is a query, an open, reads and a close), each of which a
lossy zone may drop.  An attempt in which the zone answered at least one request (the
log-in included: the zone is up and took us in, only the link is lossy), or which kept
more bytes of a resumable transfer, is progress; a *run* of ``attempts`` attempts without
any (refused, dropped before any answer) ends the call.  Otherwise a call that keeps making progress is retried
until the deadline: no fixed count of attempts ends it.  What bounds the load a crowd
of retrying jobs puts on the zone is node-wide: the cool-down after refusals and the
shared :class:`~secure_irods.throttle.RetryBudget` (every retry of every process on the
node takes a token from one bucket), added to the jittered back-off with tenacity's ``+``.

``stop_before_deadline`` is tenacity's ``stop_before_delay`` against a shared
:class:`Deadline` instead of the ``Retrying`` object's own start time, so the throttle
wait, the cool-down and socket time-outs all spend one budget, and tests can fake the
clock.  ``sleep`` is injected, as tenacity intends ("may be mocked out").

Environment (read by :meth:`RetryPolicy.from_env`):

``SECURE_IRODS_RETRIES``
    attempts in a row without progress, including the first (default 8).
``SECURE_IRODS_DEADLINE``
    seconds from the first attempt after which no new attempt starts (default 600).
``SECURE_IRODS_MAX_WAIT``
    cap on a single back-off wait in seconds (default 60).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

import tenacity
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, wait_incrementing
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from .errors import InvalidInputError, SecureIrodsError, TransientError, classify

__all__ = ["Deadline", "Progress", "RetryPolicy", "full_jitter", "is_transient", "stop_before_deadline",
           "stop_after_attempts_without_progress"]

logger = logging.getLogger("secure_irods.retry")

T = TypeVar("T")

ENV_RETRIES = "SECURE_IRODS_RETRIES"
ENV_DEADLINE = "SECURE_IRODS_DEADLINE"
ENV_MAX_WAIT = "SECURE_IRODS_MAX_WAIT"


class Deadline:
    """A point in monotonic time shared by every step of one operation.

    ``Deadline(None)`` never expires.  ``socket_timeout()`` gives the value to hand to
    ``socket.settimeout`` so no single read outlives the whole operation.
    """

    def __init__(self, seconds: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.seconds = math.inf if seconds is None else float(seconds)
        self.start = clock()
        self.end = self.start + self.seconds

    def remaining(self) -> float:
        """Seconds left, never negative (``inf`` for no deadline)."""
        return max(0.0, self.end - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.start

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def socket_timeout(self, cap: float | None = None) -> float:
        """Timeout for the next blocking socket call: ``min(cap, remaining)``.

        Raises :class:`TransientError` once expired, because a zero timeout would turn
        the socket non-blocking instead of failing.
        """
        left = self.remaining()
        if left <= 0.0:
            raise TransientError(f"deadline of {self.seconds:g}s passed")
        return left if cap is None else min(cap, left)

    def __repr__(self) -> str:
        return f"Deadline(seconds={self.seconds:g}, remaining={self.remaining():.3f})"


class stop_before_deadline(stop_base):
    """Stop when the next back-off would end at or after the deadline."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.upcoming_sleep >= self.deadline.remaining()


class Progress:
    """What the zone answered during one call: a count, and the last attempt that got an answer.

    The retrying object tells it when an attempt starts (:meth:`started`, tenacity's
    ``before`` hook); the operation calls :meth:`note` whenever the zone answers.  The stop
    policy only reads it.
    """

    def __init__(self) -> None:
        self.count = 0
        self.attempt = 0  # the attempt running now (1-based)
        self.productive = 0  # the last attempt that made progress (0: none yet)

    def started(self, attempt: int) -> None:
        self.attempt = attempt

    def note(self, amount: int = 1) -> None:
        self.count += amount
        self.productive = self.attempt

    def barren(self, attempt: int) -> int:
        """Attempts in a row, up to ``attempt``, that made no progress."""
        return attempt - self.productive

    def __repr__(self) -> str:
        return f"Progress(count={self.count}, attempt={self.attempt}, productive={self.productive})"


class stop_after_attempts_without_progress(stop_base):
    """Stop once ``attempts`` attempts in a row have failed without :class:`Progress` advancing.

    Stateless: it reads the progress snapshot, so one object may judge any call.
    """

    def __init__(self, attempts: int, progress: Progress) -> None:
        self.attempts = attempts
        self.progress = progress

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.progress.barren(retry_state.attempt_number) >= self.attempts


class wait_for_budget(wait_base):
    """The wait for a token of a node-wide retry budget (0 while the bucket has tokens).

    Computing it takes nothing: the token is taken in ``before_sleep`` (:func:`take_budget`),
    only once the policy has decided to retry, so the attempt that gives up spends none.
    """

    def __init__(self, budget: Any) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.budget.wait()


class full_jitter(wait_base):
    """Uniform in ``[0, inner]``: spreads a crowd of clients over the whole window."""

    def __init__(self, inner: wait_base, uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.inner = inner
        self.uniform = uniform

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.uniform(0.0, self.inner(retry_state))


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` is worth retrying; interrupts and exits never are."""
    return isinstance(exc, Exception) and classify(exc).transient


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry transient failures; immutable, derive with ``replace``.

    Wait before retry ``n`` (``n = 1`` after the first failure) is uniform in
    ``[0, min(max_wait, initial + increment * (n - 1))]``.
    """

    attempts: int = 8
    deadline: float = 600.0
    initial: float = 1.0
    increment: float = 2.0
    max_wait: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    uniform: Callable[[float, float], float] = field(default=random.uniform, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    budget: Any = field(default=None, compare=False, repr=False)  # a node-wide RetryBudget, or None
    zone: str = ""  # "host:port", named in every wait message

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidInputError(f"retry attempts must be >= 1, got {self.attempts}")
        if not self.deadline > 0:
            raise InvalidInputError(f"retry deadline must be > 0 seconds, got {self.deadline}")
        if min(self.initial, self.increment, self.max_wait) < 0:
            raise InvalidInputError("retry waits must not be negative")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "RetryPolicy":
        """Defaults, overridden by SECURE_IRODS_RETRIES / _DEADLINE / _MAX_WAIT, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var, name, parse in (
            (ENV_RETRIES, "attempts", int),
            (ENV_DEADLINE, "deadline", float),
            (ENV_MAX_WAIT, "max_wait", float),
        ):
            raw = env.get(var, "").strip()
            if raw:
                try:
                    values[name] = parse(raw)
                except ValueError:
                    raise InvalidInputError(f"{var}={raw!r} is not a valid number") from None
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> "RetryPolicy":
        return dataclasses.replace(self, **changes)

    def start_deadline(self) -> Deadline:
        """A fresh :class:`Deadline` for one operation under this policy."""
        return Deadline(self.deadline, clock=self.clock)

    def wait_strategy(self) -> wait_base:
        backoff = full_jitter(
            wait_incrementing(start=self.initial, increment=self.increment, max=self.max_wait),
            self.uniform,
        )
        return backoff if self.budget is None else backoff + wait_for_budget(self.budget)

    def retrying(self, deadline: Deadline | None = None, progress: Progress | None = None) -> tenacity.Retrying:
        """The tenacity ``Retrying`` for one operation; re-raises the last original error.

        Without ``progress`` every failed attempt counts against ``attempts``; with it
        only a run of attempts that made none does, and the deadline bounds the rest.
        """
        deadline = deadline or self.start_deadline()
        if progress is None:
            barren: stop_base = stop_after_attempt(self.attempts)
        else:
            barren = stop_after_attempts_without_progress(self.attempts, progress)
        return tenacity.Retrying(
            stop=barren | stop_before_deadline(deadline),
            wait=self.wait_strategy(),
            retry=retry_if_exception(is_transient),
            sleep=self.sleep,
            before=(lambda state: progress.started(state.attempt_number)) if progress is not None else tenacity.before_nothing,
            before_sleep=lambda state: self.before_sleep(state, deadline),
            reraise=True,
        )

    def before_sleep(self, retry_state: RetryCallState, deadline: Deadline) -> None:
        """The policy retries: take the node's retry token now, and say why we wait."""
        if self.budget is not None:
            self.budget.take()
        self._log_retry(retry_state, deadline)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` under a fresh deadline; see :meth:`call_within`."""
        return self.call_within(self.start_deadline(), fn, *args, **kwargs)

    def call_within(self, deadline: Deadline, fn: Callable[..., T], /, *args: Any,
                    progress: Progress | None = None, **kwargs: Any) -> T:
        """Run ``fn``, retrying transient failures; on giving up raise our classified error.

        Never raises ``tenacity.RetryError``: the caller gets a :class:`SecureIrodsError`
        whose message is the last reason, with ``attempts`` set and the original as
        ``__cause__``.  ``progress``: see :meth:`retrying`.
        """
        retrying = self.retrying(deadline, progress)
        try:
            return retrying(fn, *args, **kwargs)
        except Exception as exc:
            attempts = int(retrying.statistics.get("attempt_number", 1))
            err = classify(exc)
            if err.transient:
                logger.info(
                    "zone %s: giving up after %d attempt(s) in %.1fs: %s: %s",
                    self.zone or "?", attempts, deadline.elapsed(), type(err).__name__, err.message,
                )
                err = _reworded(err, f"gave up after {attempts} attempt(s): {err.message}")
            err.attempts = attempts  # type: ignore[attr-defined]
            if err is exc:
                raise
            raise err from exc

    def _log_retry(self, retry_state: RetryCallState, deadline: Deadline) -> None:
        """One warning per wait, so a job's log says why it waits and for how long."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        err = classify(exc) if exc is not None else None
        wait = retry_state.next_action.sleep if retry_state.next_action else retry_state.upcoming_sleep
        logger.warning("zone %s: %s: %s; retry %d in %.1fs, deadline in %s", self.zone or "?",
                       type(err).__name__ if err else "failure", err.message if err else "",
                       retry_state.attempt_number, wait, _duration(deadline.remaining()))


def _duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "never"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def _reworded(err: SecureIrodsError, message: str) -> SecureIrodsError:
    """Same class, code and cause, new message (our classes share one constructor)."""
    new = type(err)(message, code=err.code, name=err.name)
    new.__cause__ = err.__cause__ if err.__cause__ is not None else err
    return new
