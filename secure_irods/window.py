"""The adaptive connection window of one node towards one zone host.

iRODS has no queue and no retry-after: past its connection cap it accepts the TCP
connection, answers ``SYS_MAX_CONNECT_COUNT_EXCEEDED`` and closes.  With hundreds of nodes
the sum of their fixed caps is far above the zone's, so every node must learn its share
from the zone's own signals, without a central server.  The split is Netflix
concurrency-limits' and botocore's adaptive mode: a small pure *law*
(:class:`WindowLaw`) fed with samples under an injected clock, and the plumbing
(:class:`Window`) that shares its state between the node's processes in the throttle
directory (``window-<host>_<port>.json`` under an flock) and holds the connections in the
node's flock slots.

The law (see docs/load_control.md for why, and the simulation that chose it):

* **Window** ``limit``: connections the node may hold.  At 1 or more it is
  ``floor(limit)`` slots; below 1 the node holds one connection at a time and after each
  waits ``held * (1/limit - 1)`` before the next (paced), so its mean occupancy is
  ``limit``.  Never above the configured maximum, never below ``minimum``.
* **Growth** per completed connection (see :meth:`WindowLaw.completed`): fast until the
  first refusal, then ``probe`` per round trip, doubling every ``patience`` round trips
  without a refusal; additive, so the windows of nodes sharing a zone converge.
  Latency of connect + log-in over ``latency_factor`` times its baseline stops growth
  (the early signal).
* **Refusal**: cut by ``beta`` (botocore's 0.7) once per round trip: only a refusal of an
  attempt started after the last cut counts, so a burst seen by many processes of the node
  cuts once.  The refused process backs off itself with jitter (:meth:`Window.backoff`).
* **Breaker**: when the node's decayed accept ratio falls below ``breaker_ratio`` the
  node-wide :class:`~secure_irods.throttle.Cooldown` pauses every process (a zone that
  refuses nearly everything is down or badly overloaded, not merely full).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple

from .errors import InvalidInputError, TransientError
from .policy import Deadline

__all__ = ["WindowLaw", "WindowState", "Window", "Lease", "MemoryState"]

logger = logging.getLogger("secure_irods.window")

MAX_HOLD = 3600.0  # longest connection hold the pacing believes (a shared file may say more)
MAX_LATENCY = 600.0
PRIOR_HOLD = 0.1  # the round trip assumed before the first connection has completed

# Leases this process holds, per slot pool: like the flocks themselves, a per-process fact.  A
# process holding a connection that opens a second one (a clone, a spare) takes it beyond the
# window rather than wait for a slot it holds itself.
_HELD: dict[str, int] = {}


class WindowState(NamedTuple):
    """What the node's window file holds (times are the injected clock's, wall clock by default)."""

    limit: float = 1.0  # connections the node may hold; below 1: one at a time, paced
    ceiling: float = 0.0  # the limit before the last cut (0: never cut)
    cut_at: float = 0.0  # when the limit was last cut
    since_cut: int = 0  # connections completed since the last cut
    hold: float = 0.0  # mean time a connection is held (EWMA)
    baseline: float = 0.0  # connect + log-in latency, slow average (the normal)
    latency: float = 0.0  # recent connect + log-in latency (EWMA)
    next_start: float = 0.0  # earliest start of the node's next connection (pacing, after refusals)
    accepts: float = 0.0  # counts decaying with time (``memory`` round trips): the accept ratio
    refusals: float = 0.0
    counted_at: float = 0.0  # when the counts were last decayed
    started: float = 0.0  # connections started lately (decays like the counts): spreads them over hosts

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self._fields, self))

    @classmethod
    def from_dict(cls, data: dict) -> "WindowState":
        """Fields that are numbers and finite; anything else keeps its default (the file is advisory)."""
        values = list(cls._field_defaults.values())
        for i, name in enumerate(cls._fields):
            raw = data.get(name)
            if raw is None:
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError, OverflowError):
                continue
            if math.isfinite(value):
                values[i] = int(value) if name == "since_cut" else value
        return cls(*values)


@dataclass(frozen=True)
class WindowLaw:
    """The control law: pure functions from a state and a sample to the next state."""

    maximum: float = 4.0
    minimum: float = 1.0 / 64
    initial: float | None = None  # None: the maximum (until the zone first refuses, today's fixed cap)
    beta: float = 0.7
    explore: float = 0.1
    probe: float = 0.004
    quiet: float = 20.0  # round trips after a cut before the probe starts to accelerate
    patience: float = 8.0  # then, round trips without a refusal that double it
    latency_factor: float = 3.0
    smoothing: float = 0.2  # weight of a new sample in the EWMAs
    memory: float = 20.0  # round trips over which the accept/refusal counts decay (1/e)
    headroom: float = 0.03  # the gate: refusals allowed beyond this share of accepts ...
    slack: float = 0.5  # ... plus this many (decaying), before the node waits
    gate_cap: float = 4.0  # the gate's longest wait, in round trips
    breaker_ratio: float = 0.05
    breaker_samples: float = 3.0

    def __post_init__(self) -> None:
        start = self.maximum if self.initial is None else self.initial
        if not 0 < self.minimum <= start <= self.maximum:
            raise InvalidInputError(f"window needs 0 < minimum <= initial <= maximum, got "
                                    f"{self.minimum}, {start}, {self.maximum}")
        if not 0 < self.beta < 1:
            raise InvalidInputError(f"window cut factor must be in (0, 1), got {self.beta}")

    def fresh(self) -> WindowState:
        return WindowState(limit=self.maximum if self.initial is None else self.initial)

    # ------------------------------------------------------------------ reading

    def slots(self, state: WindowState) -> int:
        """Connections the node may hold at once now (the last one part-time: see :meth:`gap`).

        Before the zone has ever refused the node, only whole connections: a part-time one
        opened at every step of the first growth would probe a full zone many times over."""
        whole = state.limit + 1e-9 if state.ceiling <= 0 else math.ceil(state.limit - 1e-9)
        return max(1, min(int(self.maximum + 1e-9), int(whole)))

    def started(self, state: WindowState, now: float) -> float:
        """Connections started lately, decayed like the accept counts."""
        return state.started * math.exp(-max(0.0, now - state.counted_at) / (self.memory * self.round_trip(state)))

    def _decayed(self, state: WindowState, now: float) -> tuple[float, float]:
        factor = math.exp(-max(0.0, now - state.counted_at) / (self.memory * self.round_trip(state)))
        return state.accepts * factor, state.refusals * factor

    def gate(self, state: WindowState, now: float) -> float:
        """Seconds before the node's accept ratio lets it try again (the SRE book's client-side
        throttling, as a wait): refusals beyond ``headroom`` of accepts plus ``slack`` must decay."""
        accepts, refusals = self._decayed(state, now)
        excess = refusals - self.headroom * accepts
        if excess <= self.slack:
            return 0.0
        rtt = self.round_trip(state)
        return min(self.gate_cap * rtt, self.memory * rtt * math.log(excess / self.slack))

    def wait(self, state: WindowState, now: float) -> float:
        """Seconds before the next connection may start: pacing below 1, and one start's spacing
        (round trip / limit) after a refusal, so the node's other processes do not fire at a full zone."""
        return max(0.0, state.next_start - now, self.gate(state, now))

    def tripped(self, state: WindowState) -> bool:
        """The breaker: the node's recent accept ratio is very low."""
        seen = state.accepts + state.refusals
        return seen >= self.breaker_samples and state.accepts < self.breaker_ratio * seen

    def clamp(self, state: WindowState, now: float) -> WindowState:
        """A state read from a shared (world-writable) file, brought within documented bounds."""
        limit = min(self.maximum, max(self.minimum, state.limit))
        hold = min(MAX_HOLD, max(0.0, state.hold))
        longest_gap = hold * (1.0 / self.minimum)
        return state._replace(
            limit=limit, ceiling=min(self.maximum, max(0.0, state.ceiling)),
            cut_at=min(now, max(0.0, state.cut_at)), since_cut=max(0, state.since_cut), hold=hold,
            baseline=min(MAX_LATENCY, max(0.0, state.baseline)), latency=min(MAX_LATENCY, max(0.0, state.latency)),
            next_start=min(now + longest_gap, max(0.0, state.next_start)),
            accepts=min(1e6, max(0.0, state.accepts)), refusals=min(1e6, max(0.0, state.refusals)),
            counted_at=min(now, max(0.0, state.counted_at)), started=min(1e6, max(0.0, state.started)))

    # ------------------------------------------------------------------ samples

    def accepted(self, state: WindowState, now: float, latency: float) -> WindowState:
        """The zone accepted a connection and logged us in after ``latency`` seconds."""
        a = self.smoothing
        baseline = latency if state.baseline <= 0 else (1 - a / 10) * state.baseline + a / 10 * latency
        recent = latency if state.latency <= 0 else (1 - a) * state.latency + a * latency
        accepts, refusals = self._decayed(state, now)
        return state._replace(baseline=baseline, latency=recent, accepts=accepts + 1, refusals=refusals,
                              started=self.started(state, now), counted_at=now)

    def completed(self, state: WindowState, now: float, held: float) -> WindowState:
        """A connection ends normally after ``held`` seconds: grow, and pace the next start.

        Before any refusal: ``explore`` per completed connection (a factor per round trip:
        find the scale fast).  After
        a cut: ``probe`` per round trip, doubling every ``patience`` round trips without a
        refusal (capacity freed by nodes that finished is found in a few doublings).  Per
        round trip, not per connection: additive increase, so windows of nodes sharing a
        zone converge (AIMD's fairness).
        """
        a = self.smoothing
        hold = held if state.hold <= 0 else (1 - a) * state.hold + a * held
        limit = state.limit
        if not self.congested(state):
            if state.ceiling <= 0:
                step = self.explore
            else:
                rounds = (now - state.cut_at) / max(hold, 1e-3)
                boost = max(0.0, rounds - self.quiet) / self.patience
                step = min(self.explore, self.probe * 2.0 ** min(30.0, boost)) / limit
            limit = min(self.maximum, limit + step)
        grown = state._replace(limit=limit, hold=hold, since_cut=state.since_cut + 1)
        return grown._replace(next_start=max(state.next_start, now + self.gap(grown, held)))

    def gap(self, state: WindowState, held: float) -> float:
        """Pause after a connection of ``held`` s so that the node's :meth:`slots` are busy ``limit``
        connections on average (below 1: one connection, paced); none before the first refusal
        (a job alone must not wait as long as its last transfer took)."""
        if state.ceiling <= 0:
            return 0.0  # the zone has never refused this node: nothing to pace yet
        return max(0.0, held * (self.slots(state) / state.limit - 1.0))

    @staticmethod
    def round_trip(state: WindowState) -> float:
        """How long one connection lasts (the window's round trip): the mean hold, else a prior."""
        return state.hold if state.hold > 0 else PRIOR_HOLD

    def congested(self, state: WindowState) -> bool:
        """Connect + log-in latency (fast average) well above its slow average: the zone is queueing us."""
        return state.baseline > 0 and state.latency > self.latency_factor * state.baseline + 0.005

    def refused(self, state: WindowState, now: float, started: float) -> WindowState:
        """The zone refused an attempt started at ``started``; cut once per round trip."""
        accepts, refusals = self._decayed(state, now)
        # a refused start did not happen: the host keeps its turn among several (HostWindows)
        counts: dict[str, Any] = dict(accepts=accepts, refusals=refusals + 1,
                                      started=max(0.0, self.started(state, now) - 1.0), counted_at=now)
        rtt = self.round_trip(state)
        if started < state.cut_at or now - state.cut_at < rtt:  # the same burst: already cut for it
            return state._replace(next_start=max(state.next_start, now + rtt / state.limit), **counts)
        limit = max(self.minimum, state.limit * self.beta)
        next_start = max(state.next_start, now + rtt / limit)
        return state._replace(limit=limit, ceiling=state.limit, cut_at=now, since_cut=0,
                                   next_start=next_start, **counts)

    def dropped(self, state: WindowState, now: float, held: float) -> WindowState:
        """A connection lost mid-use: not a load signal of iRODS (it refuses instead), no growth."""
        return state._replace(next_start=max(state.next_start, now + self.gap(state, held)))


class MemoryState:
    """The window file's stand-in for one process (the simulation, tests): same interface.

    It keeps what is written as it is (no JSON round trip: nobody else can write it)."""

    keeps_objects = True

    def __init__(self) -> None:
        self.data: Any = {}

    @contextlib.contextmanager
    def locked(self, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
        yield None

    def read(self, token: Any) -> Any:
        return dict(self.data) if isinstance(self.data, dict) else self.data

    def write(self, token: Any, data: Any) -> None:
        self.data = dict(data) if isinstance(data, dict) else data


class Lease:
    """One connection attempt holding one of the node's slots; report its fate exactly once."""

    def __init__(self, window: "Window", slot: Any, started: float) -> None:
        self.window, self.slot, self.started = window, slot, started
        self.accepted_at: float | None = None
        self.done = False

    def accepted(self) -> None:
        now = self.window.clock()
        self.accepted_at = now
        self.window.update(lambda law, s: law.accepted(s, now, now - self.started))

    def refused(self) -> None:
        """The zone refused the attempt: free the slot, cut the window (once per round trip)."""
        self._finish(lambda law, s, now: law.refused(s, now, self.started))

    def close(self, dropped: bool = False) -> None:
        """The connection ends (``dropped``: lost in use, no growth)."""
        if self.accepted_at is None:  # failed before the zone answered: no sample
            self._finish(None)
            return
        start = self.accepted_at
        self._finish(lambda law, s, now: (law.dropped if dropped else law.completed)(s, now, now - start))

    def _finish(self, change: Callable[[WindowLaw, WindowState, float], WindowState] | None) -> None:
        if self.done:
            return
        self.done = True
        try:
            if change is not None:
                now = self.window.clock()
                self.window.update(lambda law, s: change(law, s, now))
        finally:
            self.window.pool.give(self.slot)
            if self.window.reentrant:
                _HELD[self.window.key] = max(0, _HELD.get(self.window.key, 0) - 1)


class Window:
    """The node's adaptive window towards one zone host: shared state plus the slot pool.

    ``pool`` hands out slots (``take(limit)`` -> handle or None, ``give(handle)``): the
    throttle's flock files for real processes, an in-memory pool in the simulation.
    ``store`` holds the state (``locked()``, ``read``, ``write``): the window file or
    :class:`MemoryState`.
    """

    def __init__(self, pool: Any, store: Any, *, law: WindowLaw | None = None, zone: str = "",
                 cooldown: Any = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.pool, self.store = pool, store
        self.key = f"{id(pool) if not hasattr(pool, 'path') else pool.path(0)}"  # the slots this window shares
        self.law = law or WindowLaw()
        self.zone = zone
        self.cooldown = cooldown
        self.clock, self._sleep, self._uniform = clock, sleep, uniform
        self.trips = 0  # breaker trips this object caused (a test and the simulation count them)
        self.reentrant = False  # a real process (node_window): its nested connections pass (see _HELD)
        self.spread = False  # count starts (one of several hosts: HostWindows spreads by them)

    # ---------------------------------------------------------------- state

    def state(self) -> WindowState:
        with self.store.locked(fcntl.LOCK_SH) as token:
            return self._load(token)

    def _load(self, token: Any) -> WindowState:
        data = self.store.read(token)
        if isinstance(data, WindowState):
            return data  # kept in this process's memory: nobody else wrote it
        if not data:
            return self.law.fresh()
        return self.law.clamp(WindowState.from_dict(data), self.clock())

    def update(self, change: Callable[[WindowLaw, WindowState], WindowState]) -> WindowState:
        """Apply one sample to the shared state under its lock; trips the breaker if the law says so."""
        try:
            with self.store.locked() as token:
                before = self._load(token)
                after = change(self.law, before)
                self.store.write(token, after if getattr(self.store, "keeps_objects", False) else after.as_dict())
        except OSError as exc:  # advisory: a node that cannot share its window still works
            logger.warning("window of %s unusable: %s", self.zone or "?", exc)
            return self.law.fresh()
        if after.limit < before.limit:
            logger.info("zone %s refused: node window %.2f -> %.2f", self.zone or "?", before.limit, after.limit)
        if self.cooldown is not None and self.law.tripped(after) and not self.law.tripped(before):
            self.trips += 1
            self.cooldown.refused()
        return after

    # ---------------------------------------------------------------- leases

    def try_acquire(self, nested: bool = True) -> Lease | float:
        """A lease on a slot now, or the seconds to wait before trying again (never blocks).

        ``nested``: a process that already holds a lease may exceed the window by one (a second
        connection it needs must not wait for its own); spares pass False."""
        now = self.clock()
        state = self.state()
        mine = _HELD.get(self.key, 0) if self.reentrant and nested else 0
        limit = self.law.slots(state)
        if mine:  # this process holds one already: a nested connection must not wait for itself
            limit = max(limit, min(int(self.law.maximum + 1e-9), mine + 1))
        else:
            wait = self.law.wait(state, now)
            if wait > 0:
                return wait
        slot = self.pool.take(limit)
        if slot is None:  # every slot the window allows is busy until a connection ends
            return self.poll(state)
        if self.spread:
            self.update(lambda law, s: s._replace(started=law.started(s, now) + 1.0))
        if self.reentrant:
            _HELD[self.key] = _HELD.get(self.key, 0) + 1
        return Lease(self, slot, now)

    def poll(self, state: WindowState | None = None) -> float:
        """How often a waiting process looks again: a tenth of a connection's hold (5 ms .. 0.5 s)."""
        state = state or self.state()
        return max(0.005, min(0.5, self.law.round_trip(state) / 10))

    def acquire(self, deadline: Deadline | float | None = None) -> Lease:
        """Wait (jittered) for the window to admit one more connection; :class:`TransientError` at the deadline."""
        deadline = deadline if isinstance(deadline, Deadline) else Deadline(deadline)
        patience = 1.0  # polls of a busy window grow 1.5x up to 0.5 s, as the throttle's: cheap when many wait
        while True:
            got = self.try_acquire()
            if isinstance(got, Lease):
                return got
            left = deadline.remaining()
            if left <= 0:
                raise TransientError(f"window: no connection to {self.zone or 'the zone'} before the deadline "
                                     f"(node window {self.state().limit:.2f})")
            pause = max(got, min(0.5, got * patience))
            patience *= 1.5
            self._sleep(min(left, self._uniform(0.5 * pause, 1.5 * pause)))

    def backoff(self, refusals: int) -> float:
        """The refused process's own pause before it asks the window again (full jitter, grows per refusal)."""
        state = self.state()
        unit = max(0.01, self.law.round_trip(state), state.latency)
        return self._uniform(0.0, min(60.0, unit * 2.0 ** min(refusals - 1, 12)))

    @contextlib.contextmanager
    def connection(self, deadline: Deadline | float | None = None) -> Iterator[Lease]:
        """``with window.connection() as lease``: the lease is closed (a completed round trip) on exit."""
        lease = self.acquire(deadline)
        try:
            yield lease
        finally:
            lease.close()


def node_window(throttle: Any, zone: str, *, cooldown: Any = None, law: WindowLaw | None = None) -> Window:
    """The window of this node towards ``zone`` (``host:port``), shared through ``throttle``'s directory:
    ``window-<zone>.json`` and the slots ``slot-<zone>-<i>``; at most ``throttle.slots`` connections."""
    from .throttle import FlockPool, _SharedState, zone_key

    key = zone_key(zone)
    pool = FlockPool(throttle.directory, prefix=f"slot-{key}-")
    store = _SharedState(throttle.directory / f"window-{key}.json")
    window = Window(pool, store, law=law or WindowLaw(maximum=float(throttle.slots)), zone=zone, cooldown=cooldown)
    window.reentrant = True
    return window


class HostWindows:
    """The node's windows towards every host of one zone: connections go where there is room.

    A host's share follows its window: the host chosen is the one whose window admits a
    connection now and that served the fewest recently for its size (decayed accepts over
    limit), so connections spread evenly over equal hosts, less to a host that refuses, none
    to one that is down (refused at TCP level: its window shrinks and its gate closes) while
    another has room.  Same interface as :class:`Window` for the client.
    """

    def __init__(self, windows: list[Window], uniform: Callable[[float, float], float] = random.uniform) -> None:
        if not windows:
            raise InvalidInputError("a zone needs at least one host")
        self.windows = windows
        for w in windows:
            w.spread = True
        self._uniform = uniform
        self._rank = [uniform(0.0, 1.0) for _ in windows]  # this process's own order among equals
        self.zone = ",".join(w.zone for w in windows)

    @property
    def trips(self) -> int:
        return sum(w.trips for w in self.windows)

    def _order(self) -> list[Window]:
        """Hosts by connections started lately (among equals, in this process's own random order, so that
        the processes of a node and the nodes of a grid start on different hosts); a host whose window does not
        admit one now is skipped by :meth:`try_acquire`, so shares follow the windows."""
        def load(i: int) -> tuple[int, float]:
            w = self.windows[i]
            return round(w.law.started(w.state(), w.clock())), self._rank[i]

        return [self.windows[i] for i in sorted(range(len(self.windows)), key=load)]

    def try_acquire(self, nested: bool = True) -> Lease | float:
        """A lease on the least-used host that admits one now; a host that will admit one within a
        round trip keeps its turn (so that hosts stay even), one that will not is passed over."""
        waits: list[float] = []
        for window in self._order():
            got = window.try_acquire(nested)
            if isinstance(got, Lease):
                return got
            if not waits and got <= window.law.round_trip(window.state()):
                return got
            waits.append(got)
        return min(waits)

    def acquire(self, deadline: Deadline | float | None = None) -> Lease:
        deadline = deadline if isinstance(deadline, Deadline) else Deadline(deadline)
        sleep = self.windows[0]._sleep
        patience = 1.0
        while True:
            got = self.try_acquire()
            if isinstance(got, Lease):
                return got
            left = deadline.remaining()
            if left <= 0:
                raise TransientError(f"window: no connection to any host of {self.zone} before the deadline")
            pause = max(got, min(0.5, got * patience))
            patience *= 1.5
            sleep(min(left, self._uniform(0.5 * pause, 1.5 * pause)))

    def backoff(self, refusals: int) -> float:
        """The shortest of the hosts' back-offs: another host may well have room now."""
        return min(w.backoff(refusals) for w in self.windows)

    def state(self) -> WindowState:
        return self.windows[0].state()


def parse_hosts(raw: Any, default: str) -> list[str]:
    """``host:port`` strings from a setting (a list, or a comma-separated string); ``default`` if empty."""
    if raw is None or raw == "" or raw == []:
        return [default]
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    hosts = []
    for item in items:
        text = ":".join(str(x) for x in item) if isinstance(item, (list, tuple)) else str(item).strip()
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidInputError(f"zone host {text!r} is not host:port")
        hosts.append(f"{host}:{int(port)}")
    return hosts
