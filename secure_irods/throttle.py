"""Node-wide limits shared by every process on a worker node, through lock files.

Grid schedulers start many independent jobs per node; each would open its own iRODS
connections and together hit the zone's connection cap.  Two small objects coordinate
them without a daemon:

* :class:`Throttle` - at most ``slots`` connections per node.  Slot ``i`` is an
  exclusive ``fcntl.flock`` on ``<dir>/slot-<i>``.  The kernel drops a flock when its
  holder dies, even by SIGKILL, so a crashed job can never leak a slot.
* :class:`Cooldown` - when any process is refused by a zone it records
  ``until = now + cooldown`` in ``<dir>/cooldown-<host>_<port>.json`` (one per zone, so a
  typo in one job's port does not stall the node's work on the right zone); every process calls
  :meth:`Cooldown.wait` before connecting, so the node waits out one shared back-off
  instead of each process hammering the zone.  The length grows with consecutive
  refusals and resets once a connection succeeds after the cool-down.
* :class:`RetryBudget` - a token bucket for retries, per zone, in one file: every retry
  of every process takes a token; tokens come back with time and with successes, so
  many jobs retrying at once never multiply the load on the zone (gRPC's retry
  throttling, shared across the node's processes).

The directory defaults to ``/tmp/secure_irods_throttle``, created like ``/tmp``
(mode ``1777``) with files ``0666`` so jobs of all users on the node share one limit.
Because files in a sticky directory cannot be renamed over by other users, the
cool-down file is rewritten in place under an exclusive flock (readers take a
shared one) rather than replaced.  Any local user can hold slots in a shared
directory; point ``SECURE_IRODS_THROTTLE_DIR`` at a private one if that matters.

Environment: ``SECURE_IRODS_MAX_CONNECTIONS`` (default 4), ``SECURE_IRODS_THROTTLE_DIR``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import InvalidInputError, TransientError, ZoneBusyError
from .policy import Deadline

__all__ = ["Throttle", "Cooldown", "CooldownState", "RetryBudget", "DEFAULT_DIRECTORY", "shared_directory",
           "zone_key"]

logger = logging.getLogger("secure_irods.throttle")

DEFAULT_DIRECTORY = Path("/tmp/secure_irods_throttle")
DEFAULT_SLOTS = 4
ENV_MAX_CONNECTIONS = "SECURE_IRODS_MAX_CONNECTIONS"
ENV_THROTTLE_DIR = "SECURE_IRODS_THROTTLE_DIR"
ENV_RETRY_RATE = "SECURE_IRODS_RETRY_RATE"
ENV_RETRY_BURST = "SECURE_IRODS_RETRY_BURST"

_OPEN_FLAGS = os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def shared_directory(directory: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The lock directory (argument, else $SECURE_IRODS_THROTTLE_DIR, else the default), created 1777."""
    env = os.environ if environ is None else environ
    path = Path(directory or env.get(ENV_THROTTLE_DIR) or DEFAULT_DIRECTORY)
    try:
        path.mkdir(mode=0o1777, parents=True, exist_ok=True)
        if path.stat().st_uid == os.getuid() and (path.stat().st_mode & 0o7777) != 0o1777:
            os.chmod(path, 0o1777)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise InvalidInputError(f"throttle directory {path} is unusable: {exc}") from exc
    return path


def _open_shared(path: Path) -> int:
    """Open (creating 0666) a file every local user can lock; read-only if that is all we may."""
    try:
        fd = os.open(path, os.O_RDWR | _OPEN_FLAGS, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd)
        if st.st_uid == os.getuid() and (st.st_mode & 0o777) != 0o666:
            os.fchmod(fd, 0o666)
    except OSError:
        pass
    return fd


def zone_key(zone: str) -> str:
    """A file-name-safe key for a zone ``host:port``."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", zone) or "default"


class _SharedState:
    """A small JSON state file every local process updates under an exclusive flock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self, mode: int = fcntl.LOCK_EX) -> Iterator[int]:
        fd = _open_shared(self.path)
        try:
            fcntl.flock(fd, mode)
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def read(fd: int) -> dict:
        raw = os.pread(fd, 4096, 0)
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def write(fd: int, data: dict) -> None:
        encoded = json.dumps(data).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, encoded, 0)


def _as_deadline(deadline: Deadline | float | None) -> Deadline:
    return deadline if isinstance(deadline, Deadline) else Deadline(deadline)


class FlockPool:
    """Slots as exclusive flocks on ``<dir>/<prefix><i>``: the kernel frees them when a holder dies."""

    def __init__(self, directory: Path, prefix: str = "slot-",
                 uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.directory, self.prefix, self._uniform = Path(directory), prefix, uniform

    def path(self, index: int) -> Path:
        return self.directory / f"{self.prefix}{index}"

    def take(self, limit: int) -> tuple[int, int] | None:
        """One non-blocking pass over slots ``0..limit-1``: ``(index, fd)`` now held, or None."""
        start = int(self._uniform(0, limit)) % limit  # spread holders over files
        for k in range(limit):
            index = (start + k) % limit
            fd = _open_shared(self.path(index))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            return index, fd
        return None

    @staticmethod
    def give(slot: tuple[int, int]) -> None:
        os.close(slot[1])  # closing the only descriptor releases the flock


class MemoryPool:
    """Slots of one process (the simulation): the same ``take``/``give`` as :class:`FlockPool`."""

    def __init__(self) -> None:
        self.held: set[int] = set()

    def take(self, limit: int) -> int | None:
        for index in range(limit):
            if index not in self.held:
                self.held.add(index)
                return index
        return None

    def give(self, slot: int) -> None:
        self.held.discard(slot)


class Throttle:
    """At most ``slots`` concurrent holders across all processes sharing ``directory``."""

    def __init__(
        self,
        slots: int = DEFAULT_SLOTS,
        directory: Path | str | None = None,
        *,
        poll: float = 0.05,
        max_poll: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
        pool: "FlockPool | MemoryPool | None" = None,
    ) -> None:
        if slots < 1:
            raise InvalidInputError(f"throttle needs at least one slot, got {slots}")
        self._slots = int(slots)
        self._directory = shared_directory(directory) if pool is None else Path(directory or ".")
        self._poll = poll
        self._max_poll = max_poll
        self._sleep = sleep
        self._uniform = uniform
        self._held: set[int] = set()
        self.pool: Any = pool if pool is not None else FlockPool(self._directory, uniform=uniform)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: object) -> "Throttle":
        """Slots from $SECURE_IRODS_MAX_CONNECTIONS (default 4), directory from $SECURE_IRODS_THROTTLE_DIR."""
        env = os.environ if environ is None else environ
        raw = env.get(ENV_MAX_CONNECTIONS, "").strip()
        try:
            slots = int(raw) if raw else DEFAULT_SLOTS
        except ValueError:
            raise InvalidInputError(f"{ENV_MAX_CONNECTIONS}={raw!r} is not an integer") from None
        return cls(slots, shared_directory(None, env), **kwargs)  # type: ignore[arg-type]

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def held(self) -> int:
        """Slots this object holds right now."""
        return len(self._held)

    def slot_path(self, index: int) -> Path:
        return self.pool.path(index)

    def _try_acquire(self) -> tuple[int, int] | None:
        """One non-blocking pass over the slots: ``(index, fd)`` of a slot now held, or None."""
        return self.pool.take(self._slots)

    def try_take(self) -> Any:
        """A slot now, or None (never waits; the simulation's entry): free it with :meth:`give`."""
        return self.pool.take(self._slots)

    def give(self, slot: Any) -> None:
        self.pool.give(slot)

    @contextlib.contextmanager
    def acquire(self, deadline: Deadline | float | None = None) -> Iterator[int]:
        """Hold one slot for the ``with`` body; yields its index.

        Polls with jittered, growing sleeps until a slot frees; raises
        :class:`TransientError` if none does before ``deadline`` (a
        :class:`Deadline`, seconds, or None to wait indefinitely).
        """
        deadline = _as_deadline(deadline)
        pause = self._poll
        waited = False
        while True:
            got = self._try_acquire()
            if got is not None:
                break
            left = deadline.remaining()
            if left <= 0:
                raise TransientError(
                    f"throttle: no slot before deadline ({self._slots} slot(s) in {self._directory} busy)"
                )
            if not waited:
                logger.debug("throttle: all %d slots busy, waiting", self._slots)
                waited = True
            self._sleep(min(left, self._uniform(0.5 * pause, 1.5 * pause)))
            pause = min(self._max_poll, pause * 1.5)
        index, _ = got
        self._held.add(index)
        try:
            yield index
        finally:
            self._held.discard(index)
            self.pool.give(got)

    def in_use(self) -> int:
        """How many slots are held by anyone, by probing (may briefly hold a free slot)."""
        busy = 0
        for index in range(self._slots):
            fd = _open_shared(self.slot_path(index))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy += 1
            finally:
                os.close(fd)
        return busy

    def __repr__(self) -> str:
        return f"Throttle(slots={self._slots}, directory={str(self._directory)!r}, held={self.held})"


@dataclass(frozen=True)
class CooldownState:
    """What the cool-down file holds: wall-clock end and consecutive refusals."""

    until: float = 0.0
    refusals: int = 0


class Cooldown:
    """A node-wide back-off after the zone refuses connections, shared through one file.

    The ``n``-th consecutive refusal sets ``until = now + min(maximum, base + step*(n-1))``.
    Refusals seen while a cool-down is already running do not escalate it: they are
    usually the same burst, seen by several processes.
    """

    FILENAME = "cooldown.json"

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        zone: str = "",
        base: float = 5.0,
        step: float = 5.0,
        maximum: float = 120.0,
        spread: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
        store: Any = None,
    ) -> None:
        self.zone = zone
        if store is None:
            self._directory = shared_directory(directory)
            self.path = self._directory / (f"cooldown-{zone_key(zone)}.json" if zone else self.FILENAME)
            store = _SharedState(self.path)
        else:  # the simulation: state in memory
            self._directory = Path(directory or ".")
            self.path = self._directory / self.FILENAME
        self._store = store
        self.base, self.step, self.maximum, self.spread = base, step, maximum, spread
        self._clock = clock  # wall clock: the file is read by other processes
        self._sleep = sleep
        self._uniform = uniform

    @property
    def directory(self) -> Path:
        return self._directory

    def length(self, refusals: int) -> float:
        """Cool-down after ``refusals`` consecutive refusals."""
        return min(self.maximum, self.base + self.step * max(0, refusals - 1))

    def _locked(self, mode: int) -> contextlib.AbstractContextManager[int]:
        return self._store.locked(mode)

    def _read(self, fd: int) -> CooldownState:
        """The shared state, clamped: any local user may write the file, so a far-future ``until``
        is cut to ``now + maximum`` and the refusal count to what reaches the longest cool-down."""
        data = self._store.read(fd)
        try:
            until, refusals = float(data.get("until", 0.0)), int(data.get("refusals", 0))
        except (ValueError, TypeError, OverflowError):
            return CooldownState()  # unreadable file: behave as if no cool-down
        if until != until:  # NaN
            return CooldownState()
        most = 1 + math.ceil(max(0.0, self.maximum - self.base) / self.step) if self.step > 0 else 1
        return CooldownState(min(until, self._clock() + self.maximum), min(max(0, refusals), most))

    def _write(self, fd: int, state: CooldownState) -> None:
        self._store.write(fd, {"until": state.until, "refusals": state.refusals})

    def state(self) -> CooldownState:
        """Current shared state; an unusable file counts as no cool-down (it is advisory)."""
        try:
            with self._locked(fcntl.LOCK_SH) as fd:
                return self._read(fd)
        except OSError as exc:
            logger.warning("cooldown file %s unreadable: %s", self.path, exc)
            return CooldownState()

    def remaining(self) -> float:
        """Seconds until the node may connect again (0 if not cooling down)."""
        return max(0.0, self.state().until - self._clock())

    def refused(self) -> float:
        """Record that the zone refused us; returns the seconds left to wait."""
        try:
            with self._locked(fcntl.LOCK_EX) as fd:
                now = self._clock()
                state = self._read(fd)
                if state.until > now:
                    return state.until - now
                refusals = state.refusals + 1
                length = self.length(refusals)
                self._write(fd, CooldownState(now + length, refusals))
        except OSError as exc:  # cannot share it; still tell our caller how long to back off
            logger.warning("cooldown file %s unwritable: %s", self.path, exc)
            return self.length(1)
        logger.info("zone %s refused a connection (%d in a row): node cools down for %.1fs",
                       self.zone or "?", refusals, length)
        return length

    def succeeded(self) -> None:
        """Record a new connection accepted; resets escalation once the cool-down is over."""
        if self.state().refusals == 0:
            return  # the common case: no write, no exclusive lock
        try:
            with self._locked(fcntl.LOCK_EX) as fd:
                state = self._read(fd)
                if state.refusals and state.until <= self._clock():
                    self._write(fd, CooldownState(0.0, 0))
        except OSError as exc:
            logger.warning("cooldown file %s unwritable: %s", self.path, exc)

    def wait(self, deadline: Deadline | float | None = None) -> float:
        """Sleep out the node's cool-down (plus jitter); returns seconds slept.

        Raises :class:`ZoneBusyError` at once if the cool-down outlasts ``deadline``:
        the job fails fast with a transient exit code instead of sleeping in vain.
        """
        deadline = _as_deadline(deadline)
        slept = 0.0
        while True:
            left = self.remaining()
            if left <= 0:
                return slept
            if left >= deadline.remaining():
                raise ZoneBusyError(
                    f"cooldown: zone {self.zone or '?'} refusing connections for another {left:.1f}s,"
                    " past the deadline"
                )
            if not slept:
                logger.info("zone %s: node cooling down after refusals, waiting %.1fs", self.zone or "?", left)
            pause = min(deadline.remaining(), left + self._uniform(0.0, self.spread))
            self._sleep(pause)
            slept += pause


class RetryBudget:
    """Node-wide token bucket for retries of one zone (gRPC retry throttling, across processes).

    Every retry takes one token; tokens come back at ``rate`` per second up to ``burst``,
    and each success returns ``ratio`` of one.  When the bucket is empty the token is
    reserved ahead (the count goes negative) and :meth:`take` returns how long the retry
    must wait for it: a thousand jobs retrying at once add about ``rate`` attempts per
    second to the zone's load, not a thousand.  The state is ``{"tokens", "stamp"}`` in
    ``<dir>/retry-budget-<zone>.json`` under an exclusive flock; an unusable file means
    no budget (it is advisory, never a reason to fail).
    """

    MAX_DEBT_SECONDS = 600.0

    def __init__(self, directory: Path | str | None = None, *, zone: str = "", rate: float = 5.0,
                 burst: float = 50.0, ratio: float = 0.5, clock: Callable[[], float] = time.time,
                 store: Any = None) -> None:
        if rate <= 0 or burst < 1:
            raise InvalidInputError("retry budget needs rate > 0 and burst >= 1")
        self._state = store or _SharedState(shared_directory(directory) / f"retry-budget-{zone_key(zone)}.json")
        self.zone, self.rate, self.burst, self.ratio = zone, rate, burst, ratio
        self._clock = clock

    @classmethod
    def from_env(cls, directory: Path | str | None = None, *, zone: str = "",
                 environ: Mapping[str, str] | None = None) -> "RetryBudget":
        """Rate from $SECURE_IRODS_RETRY_RATE (retries a second, node-wide; default 5), burst from
        $SECURE_IRODS_RETRY_BURST (default 50)."""
        env = os.environ if environ is None else environ
        values = {}
        for var, name in ((ENV_RETRY_RATE, "rate"), (ENV_RETRY_BURST, "burst")):
            raw = env.get(var, "").strip()
            if raw:
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise InvalidInputError(f"{var}={raw!r} is not a number") from None
        return cls(directory, zone=zone, **values)

    @property
    def path(self) -> Path:
        return self._state.path

    def _update(self, change: Callable[[float], float]) -> float:
        """Refill by elapsed time, apply ``change`` to the token count, store; returns the new count."""
        try:
            with self._state.locked() as fd:
                now = self._clock()
                data = self._state.read(fd)
                tokens, stamp = self._clamped(data, now)
                tokens = change(min(self.burst, tokens + max(0.0, now - stamp) * self.rate))
                self._state.write(fd, {"tokens": tokens, "stamp": now})
                return tokens
        except OSError as exc:
            logger.warning("retry budget %s unusable: %s", self._state.path, exc)
            return self.burst

    def _clamped(self, data: dict, now: float) -> tuple[float, float]:
        """Tokens and stamp from a file any local user may write, within their documented range:
        tokens in ``[-MAX_DEBT_SECONDS * rate, burst]`` (a debt waits at most that long), stamp not
        in the future (that would stop the refill)."""
        try:
            tokens, stamp = float(data["tokens"]), float(data["stamp"])
        except (KeyError, TypeError, ValueError, OverflowError):
            return self.burst, now
        if not (math.isfinite(tokens) and math.isfinite(stamp)):
            return self.burst, now
        return min(self.burst, max(-self.MAX_DEBT_SECONDS * self.rate, tokens)), min(now, stamp)

    def wait(self) -> float:
        """Seconds until a token would be there for one more retry; takes nothing (a wait is computed
        before the policy decides to retry, the token is taken only when it does: :meth:`take`)."""
        try:
            with self._state.locked(fcntl.LOCK_SH) as fd:
                now = self._clock()
                tokens, stamp = self._clamped(self._state.read(fd), now)
        except OSError:
            return 0.0
        tokens = min(self.burst, tokens + max(0.0, now - stamp) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self) -> float:
        """Take a token for one retry; returns the seconds to wait until it is really there."""
        tokens = self._update(lambda t: t - 1.0)
        if tokens >= 0:
            return 0.0
        wait = -tokens / self.rate
        logger.info("zone %s: node retry budget spent; this retry waits %.1fs more", self.zone or "?", wait)
        return wait

    def credit(self) -> None:
        """A call succeeded: give back ``ratio`` of a token (only worth a write when below full)."""
        self._update(lambda t: min(self.burst, t + self.ratio))

    def tokens(self) -> float:
        return self._update(lambda t: t)
