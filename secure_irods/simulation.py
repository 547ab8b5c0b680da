"""A grid at the seed's scale, on the real load-control objects, under a virtual clock.

Hundreds of nodes cannot be started on a laptop, and the control law must be chosen on
them.  This module runs a discrete-event model of a zone (connection cap ``Z``, the agent
release lag, connect + log-in latency, service times, refusals, drops) against nodes whose
processes use the *real* objects of :mod:`secure_irods`: :class:`~secure_irods.window.Window`
and its :class:`~secure_irods.window.WindowLaw`, :class:`~secure_irods.throttle.Throttle`,
:class:`~secure_irods.throttle.Cooldown`, :class:`~secure_irods.throttle.RetryBudget` and
the tenacity retrying object :meth:`~secure_irods.policy.RetryPolicy.retrying` builds, all
given the virtual clock and in-memory stores in place of the throttle directory's files.

What is modelled, not run: a process waiting for a slot polls in real life; here the
node's waiting processes queue and the first is woken (after a poll's jitter) when a slot
frees or a pause ends.  One job is ``transfers`` transfers, one connection each (a job
script calling ``secure-iget`` per file, the heaviest pattern for the zone).

    python -m secure_irods.simulation --done-when        # the issue's acceptance scenarios
    python -m secure_irods.simulation --nodes 100 --jobs 22 --cap 50 --service 2 --seeds 10
    python -m secure_irods.simulation --calibrate        # the real benchmark's shape

Each scenario prints, for the adaptive window and for the fixed cap (today's control) side
by side, the median and p95 over the seeds of: the zone's utilisation while work is
queued, refusals per connection attempt (in the first three service times and after),
attempts per success, Jain's fairness index of per-node goodput over 60 s windows, the
drain time over the ideal (transfers x service time / Z), and failed transfers.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import itertools
import logging
import math
import random
import statistics
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import tenacity

from .errors import TransientError, ZoneBusyError
from .policy import Progress, RetryPolicy
from .throttle import Cooldown, MemoryPool, RetryBudget, Throttle
from .window import Lease, MemoryState, Window, WindowLaw

__all__ = ["Scenario", "Result", "simulate", "summarise"]

POLL = 0.05  # the throttle's first poll: the delay before a waiting process notices a free slot


@dataclass(frozen=True)
class Scenario:
    """One run's zone, demand and control."""

    nodes: int = 300
    jobs: int = 22  # processes per node
    transfers: int = 10  # per job, one connection each
    cap: int = 200  # the zone's connection cap Z
    service: float = 0.2  # mean transfer time (s), log-normal
    spread: float = 0.25  # sigma of the log-normal service time
    latency: float = 0.004  # connect + log-in (s)
    lag: float = 0.004  # agent release lag: the zone counts a connection this long after the client closes it
    drop_rate: float = 0.0  # chance a transfer's connection is dropped (retried by the policy)
    think: float = 0.0  # the job's own time between two connections (mean; its CPU, its disk)
    node_cap: int = 4  # SECURE_IRODS_MAX_CONNECTIONS
    stagger: float = 0.0  # jobs start uniformly over this many seconds (0: one burst)
    halve_at: float = 0.0  # the zone's cap halves at this time (0: never)
    control: str = "adaptive"  # or "fixed": today's slots + node-wide cool-down
    seed: int = 0
    horizon: float = 7200.0  # the run stops here (failed: what is left)

    @property
    def ideal(self) -> float:
        """Transfers x service time / Z (with the cap halved: Z until then, Z/2 after)."""
        work = self.nodes * self.jobs * self.transfers * self.service
        if self.halve_at and work > self.cap * self.halve_at:
            return self.halve_at + (work - self.cap * self.halve_at) / max(1, self.cap // 2)
        return work / self.cap


@dataclass
class Result:
    scenario: Scenario
    drain: float = 0.0
    done: int = 0
    failed: int = 0
    accepted: int = 0
    refused: int = 0
    refused_early: int = 0
    attempts_early: int = 0
    utilisation: float = 0.0
    jain: float = 1.0
    trips: int = 0
    recovery: float = math.nan  # cap halved: refusals per attempt from 10 to 20 service times after
    max_active: int = 0  # most connections the zone held at once
    node_finish: list[float] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return self.accepted + self.refused

    @property
    def refusal_ratio_after(self) -> float:
        late = self.attempts - self.attempts_early
        return (self.refused - self.refused_early) / late if late else 0.0

    @property
    def refusal_ratio_early(self) -> float:
        return self.refused_early / self.attempts_early if self.attempts_early else 0.0

    @property
    def attempts_per_success(self) -> float:
        return self.attempts / self.done if self.done else math.inf

    @property
    def drain_ratio(self) -> float:
        return self.drain / self.scenario.ideal


class _Zone:
    """The zone's side: a cap on connections counted until each agent has retired."""

    def __init__(self, sim: "_Sim", cap: int) -> None:
        self.sim, self.cap, self.active = sim, cap, 0
        self.busy_area, self.stamp = 0.0, 0.0

    def _account(self) -> None:
        now = self.sim.now
        if self.sim.queued_until is None:
            self.busy_area += min(self.active, self.cap) / self.cap * (now - self.stamp)
        self.stamp = now

    def admit(self) -> bool:
        self._account()
        if self.active >= self.cap:
            return False
        self.active += 1
        self.sim.result.max_active = max(self.sim.result.max_active, self.active)
        return True

    def release(self) -> None:
        self._account()
        self.active -= 1


class _Sim:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.now = 0.0
        self.rng = random.Random(sc.seed)
        self.events: list = []
        self._order = itertools.count()
        self.zone = _Zone(self, sc.cap)
        self.result = Result(sc)
        self.pending = sc.nodes * sc.jobs * sc.transfers  # transfers not yet started
        self.queued_until: float | None = None
        self.goodput: dict[tuple[int, int], int] = {}
        self.late_window: list[int] = [0, 0]  # cap halved: attempts, refusals from 10 to 20 service times after

    def clock(self) -> float:
        return self.now

    def at(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.events, (self.now + max(0.0, delay), next(self._order), fn))

    def run(self) -> Result:
        sc = self.sc
        nodes = [_Node(self, n) for n in range(sc.nodes)]
        for node in nodes:
            for j in range(sc.jobs):
                start = self.rng.uniform(0, sc.stagger) if sc.stagger else 0.0
                start += sc.think * self.rng.uniform(0.5, 1.5) if sc.think else 0.0
                self.at(start, _starter(node, sc.transfers))
        if sc.halve_at:
            self.at(sc.halve_at, self._halve)
        while self.events and self.now < sc.horizon:
            self.now, _, fn = heapq.heappop(self.events)
            fn()
        r = self.result
        r.drain = self.now
        r.failed = sc.nodes * sc.jobs * sc.transfers - r.done
        end = self.queued_until if self.queued_until is not None else self.now
        self.zone._account()
        r.utilisation = self.zone.busy_area / end if end > 0 else 0.0
        r.jain = _jain(self.goodput, sc.nodes, end)
        r.trips = sum(n.window.trips for n in nodes if n.window is not None)
        r.node_finish = sorted(n.finished for n in nodes)
        if sc.halve_at:
            a, f = self.late_window
            r.recovery = f / a if a else 0.0
        return r

    def _halve(self) -> None:
        self.zone._account()
        self.zone.cap = max(1, self.zone.cap // 2)

    def started_transfer(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self.queued_until is None:
            self.zone._account()
            self.queued_until = self.now

    def count_attempt(self, refused: bool) -> None:
        r, sc = self.result, self.sc
        if refused:
            r.refused += 1
        else:
            r.accepted += 1
        if self.now < 3 * sc.service:
            r.attempts_early += 1
            r.refused_early += refused
        if sc.halve_at and sc.halve_at + 10 * sc.service <= self.now < sc.halve_at + 20 * sc.service:
            self.late_window[0] += 1
            self.late_window[1] += refused

    def service_time(self) -> float:
        sigma = self.sc.spread
        return self.sc.service * self.rng.lognormvariate(-sigma * sigma / 2, sigma)


class _Node:
    """One worker node: its processes share one window (or throttle) and one cool-down."""

    def __init__(self, sim: _Sim, index: int) -> None:
        self.sim, self.index = sim, index
        sc = sim.sc
        uniform = sim.rng.uniform
        self.cooldown = Cooldown(clock=sim.clock, sleep=_no_sleep, uniform=uniform, store=MemoryState())
        self.budget = RetryBudget(clock=sim.clock, store=MemoryState())
        self.policy = RetryPolicy(sleep=_no_sleep, uniform=uniform, clock=sim.clock, budget=self.budget)
        self.window: Window | None = None
        self.throttle: Throttle | None = None
        if sc.control == "adaptive":
            self.window = Window(MemoryPool(), MemoryState(), law=WindowLaw(maximum=float(sc.node_cap)),
                                 cooldown=self.cooldown, clock=sim.clock, sleep=_no_sleep, uniform=uniform)
        else:
            self.throttle = Throttle(sc.node_cap, pool=MemoryPool(), uniform=uniform)
        self.waiting: deque[_Job] = deque()
        self.wake_pending = False
        self.jobs_left = sc.jobs
        self.finished = 0.0

    def arrive(self, job: "_Job") -> None:
        self.waiting.append(job)
        self.wake(0.0)

    def wake(self, delay: float) -> None:
        """Let the first waiting process try again after ``delay`` plus a poll's jitter."""
        if self.wake_pending or not self.waiting:
            return
        self.wake_pending = True
        poll = self.window.poll() if self.window is not None else POLL
        self.sim.at(delay + self.sim.rng.uniform(0, poll), self._pump)

    def _pump(self) -> None:
        self.wake_pending = False
        while self.waiting:
            pause = self.cooldown.remaining()
            if pause > 0:  # the node-wide pause (fixed control: every refusal; adaptive: the breaker)
                self.wake(pause + self.sim.rng.uniform(0, self.cooldown.spread))
                return
            if self.window is not None:
                got = self.window.try_acquire()
                if not isinstance(got, Lease):
                    if self.window.law.wait(self.window.state(), self.sim.now) > 0:
                        self.wake(got)  # paced: try when the pacing ends
                    return  # otherwise a closing connection wakes us
            else:
                assert self.throttle is not None
                got = self.throttle.try_take()
                if got is None:
                    return
            self.waiting.popleft().connect(got)

    def slot_freed(self) -> None:
        self.wake(0.0)

    def job_done(self) -> None:
        self.jobs_left -= 1
        if self.jobs_left == 0:
            self.finished = self.sim.now


class _Job:
    """One process: ``transfers`` transfers in a row, each retried under the real policy."""

    def __init__(self, node: _Node, transfers: int) -> None:
        self.node, self.left = node, transfers
        self.sim = node.sim
        self.refusals = 0
        self._new_call()

    def _new_call(self) -> None:
        policy = self.node.policy
        self.deadline = policy.start_deadline()
        self.progress = Progress()
        self.retrying = policy.retrying(self.deadline, self.progress)
        self.state = tenacity.RetryCallState(self.retrying, None, (), {})
        self.progress.started(1)
        self.started = False

    def connect(self, slot: Any) -> None:
        self.slot = slot
        self.sim.at(self.sim.sc.latency, self._answer)

    def _answer(self) -> None:
        sim, node = self.sim, self.node
        if sim.zone.admit():
            sim.count_attempt(False)
            if isinstance(self.slot, Lease):
                self.slot.accepted()
            self.refusals = 0
            self.progress.note()  # logged in: the zone answered
            if not self.started:
                self.started = True
                sim.started_transfer()
            duration = sim.service_time()
            if sim.sc.drop_rate and sim.rng.random() < sim.sc.drop_rate:
                sim.at(sim.rng.uniform(0, duration), lambda: self._closed(dropped=True))
            else:
                sim.at(duration, lambda: self._closed(dropped=False))
            return
        sim.count_attempt(True)
        if isinstance(self.slot, Lease):  # adaptive: this process backs off; only the deadline ends it
            self.slot.refused()
            self.refusals += 1
            assert node.window is not None
            pause = node.window.backoff(self.refusals)
            node.slot_freed()
            if pause >= self.deadline.remaining():
                self._fail()
                return
            sim.at(pause, lambda: node.arrive(self))
            return
        assert node.throttle is not None
        node.throttle.give(self.slot)  # fixed: today's node-wide cool-down, and a retry of the policy
        node.cooldown.refused()
        node.slot_freed()
        self._retry(ZoneBusyError("SYS_MAX_CONNECT_COUNT_EXCEEDED"))

    def _closed(self, dropped: bool) -> None:
        sim, node = self.sim, self.node
        sim.at(sim.sc.lag, sim.zone.release)  # the agent retires a little after the client closes
        if isinstance(self.slot, Lease):
            self.slot.close(dropped=dropped)
        else:
            assert node.throttle is not None
            node.throttle.give(self.slot)
            if not dropped:
                node.cooldown.succeeded()
        node.slot_freed()
        if dropped:
            self._retry(TransientError("connection dropped"))
            return
        sim.result.done += 1
        key = (node.index, int(sim.now // 60))
        sim.goodput[key] = sim.goodput.get(key, 0) + 1
        if node.policy.budget is not None:
            node.policy.budget.credit()
        self.left -= 1
        if self.left == 0:
            node.job_done()
            return
        self._new_call()
        if sim.sc.think:
            sim.at(sim.sc.think * sim.rng.uniform(0.5, 1.5), lambda: node.arrive(self))
        else:
            node.arrive(self)

    def _retry(self, exc: Exception) -> None:
        """Ask the real tenacity objects whether and how long to wait, as ``Retrying.iter`` does."""
        state, retrying = self.state, self.retrying
        state.set_exception((type(exc), exc, None))
        wait = retrying.wait(state)
        state.upcoming_sleep = wait
        if retrying.stop(state):
            self._fail()
            return
        if retrying.before_sleep is not None:
            retrying.before_sleep(state)
        state.prepare_for_next_attempt()
        self.progress.started(state.attempt_number)
        self.sim.at(wait, lambda: self.node.arrive(self))

    def _fail(self) -> None:
        self.left -= 1  # this transfer is lost; the job goes on with its next one
        if self.left == 0:
            self.node.job_done()
            return
        self._new_call()
        self.node.arrive(self)


def _starter(node: _Node, transfers: int) -> Callable[[], None]:
    return lambda: node.arrive(_Job(node, transfers))


def _no_sleep(seconds: float) -> None:
    raise RuntimeError("the simulation never blocks: every wait is an event")


def _jain(goodput: dict[tuple[int, int], int], nodes: int, end: float) -> float:
    """Mean over the 60 s windows that lie within the queued period of Jain's index of per-node transfers."""
    windows = max(1, int(end // 60))
    indices = []
    for w in range(windows):
        xs = [goodput.get((n, w), 0) for n in range(nodes)]
        total = sum(xs)
        if total:
            indices.append(total * total / (nodes * sum(x * x for x in xs)))
    return statistics.fmean(indices) if indices else 1.0


def simulate(scenario: Scenario) -> Result:
    """One run (quiet: the policy's per-retry warnings are silenced)."""
    quiet = [logging.getLogger(n) for n in ("secure_irods.retry", "secure_irods.window", "secure_irods.throttle")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        return _Sim(scenario).run()
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)


METRICS: list[tuple[str, Callable[[Result], float], str]] = [
    ("utilisation while queued", lambda r: r.utilisation, ".3f"),
    ("refusals/attempt, first 3 service times", lambda r: r.refusal_ratio_early, ".3f"),
    ("refusals/attempt, after", lambda r: r.refusal_ratio_after, ".3f"),
    ("attempts per success", lambda r: r.attempts_per_success, ".3f"),
    ("Jain's index (60 s windows)", lambda r: r.jain, ".3f"),
    ("drain / ideal", lambda r: r.drain_ratio, ".3f"),
    ("failed transfers", lambda r: r.failed, ".0f"),
    ("breaker trips", lambda r: r.trips, ".0f"),
]
RECOVERY = ("refusals/attempt 10-20 service times after the halving", lambda r: r.recovery, ".3f")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def _cell(values: list[float], fmt: str) -> str:
    return f"{format(statistics.median(values), fmt)} [{format(_p95(values), fmt)}]"


def summarise(results: dict[str, list[Result]]) -> str:
    """A side-by-side table: median [p95] over the seeds, per control."""
    controls = list(results)
    metrics = METRICS + ([RECOVERY] if results[controls[0]][0].scenario.halve_at else [])
    lines = [f"{'':44}" + "".join(f"{c + ' median [p95]':>26}" for c in controls)]
    for label, get, fmt in metrics:
        cells = []
        for c in controls:
            values = [get(r) for r in results[c]]
            cells.append(f"{format(statistics.median(values), fmt)} [{format(_p95(values), fmt)}]")
        lines.append(f"{label:44}" + "".join(f"{cell:>26}" for cell in cells))
    return "\n".join(lines)


def run_scenario(base: Scenario, seeds: int, controls: tuple[str, ...] = ("adaptive", "fixed"),
                 workers: int = 1) -> dict[str, list[Result]]:
    runs = [dataclasses.replace(base, control=c, seed=s) for c in controls for s in range(seeds)]
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            done = pool.map(simulate, runs)
    else:
        done = [simulate(r) for r in runs]
    out: dict[str, list[Result]] = {c: [] for c in controls}
    for r in done:
        out[r.scenario.control].append(r)
    return out


def describe(sc: Scenario) -> str:
    start = f"staggered over {sc.stagger:g} s" if sc.stagger else "burst start"
    halve = f", cap halved at {sc.halve_at:g} s" if sc.halve_at else ""
    return (f"{sc.nodes} nodes x {sc.jobs} jobs x {sc.transfers} transfers, Z = {sc.cap}, service {sc.service:g} s, "
            f"{start}{halve}, node cap {sc.node_cap}, lag {sc.lag * 1000:g} ms, drops {sc.drop_rate:g}; "
            f"ideal drain {sc.ideal:.1f} s")


DONE_WHEN = [
    Scenario(nodes=300, jobs=22, transfers=10, cap=200, service=0.2),
    Scenario(nodes=300, jobs=22, transfers=10, cap=200, service=2.0),
    Scenario(nodes=300, jobs=22, transfers=10, cap=200, service=0.2, halve_at=30.0),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--done-when", action="store_true", help="the issue's acceptance scenarios")
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=22)
    parser.add_argument("--transfers", type=int, default=10)
    parser.add_argument("--cap", type=int, default=200)
    parser.add_argument("--service", type=float, default=0.2)
    parser.add_argument("--lag", type=float, default=0.004)
    parser.add_argument("--latency", type=float, default=0.004)
    parser.add_argument("--node-cap", type=int, default=4)
    parser.add_argument("--stagger", type=float, default=0.0)
    parser.add_argument("--halve-at", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--think", type=float, default=0.0, help="a job's own time between connections (s)")
    parser.add_argument("--calibrate", action="store_true",
                        help="the real benchmark's shape (contention.py --nodes 1 8 16: 32 jobs x 10, cap 6): "
                             "wall times to compare; give --service and --think measured there")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("adaptive", "fixed"))
    args = parser.parse_args(argv)
    controls = (args.only,) if args.only else ("adaptive", "fixed")
    if args.calibrate:
        print(f"calibration: 32 jobs x 10 transfers, cap 6, node cap 4, service {args.service:g} s, think "
              f"{args.think:g} s, latency {args.latency * 1000:g} ms, lag {args.lag * 1000:g} ms; {args.seeds} seeds")
        print(f"{'nodes x jobs':>14}" + "".join(f"{c + ' wall s median [p95]':>30}" for c in controls))
        for k in (1, 8, 16):
            sc = Scenario(nodes=k, jobs=32 // k, transfers=10, cap=6, node_cap=4, service=args.service,
                          think=args.think, latency=args.latency, lag=args.lag, spread=0.3)
            res = run_scenario(sc, args.seeds, controls, args.workers)
            cells = "".join(f"{_cell([r.drain for r in res[c]], '.1f'):>30}" for c in controls)
            print(f"{f'{k} x {32 // k}':>14}{cells}")
        return
    if args.done_when:
        scenarios = DONE_WHEN
    else:
        scenarios = [Scenario(nodes=args.nodes, jobs=args.jobs, transfers=args.transfers, cap=args.cap,
                              service=args.service, lag=args.lag, latency=args.latency, node_cap=args.node_cap,
                              stagger=args.stagger, halve_at=args.halve_at, drop_rate=args.drop_rate)]
    for sc in scenarios:
        print(describe(sc) + f"; {args.seeds} seeds")
        print(summarise(run_scenario(sc, args.seeds, controls, args.workers)))
        print()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
