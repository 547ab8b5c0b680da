"""Apply a plan: replicate -> verify -> trim, paced, resumable, never losing the last good replica.

Each move runs from what the zone says now, so a re-run after a kill finishes a half-done
move safely and redoes no finished one (the journal only says which moves are final):

1. read the object's replicas (one GenQuery); an object whose source replica changed
   since planning (size, checksum, modify time) or is gone is *skipped*;
2. if the target holds no good replica: wait for the ``--rate`` pacer, then replicate
   from the source's group to the planned leaf (``irepl``);
3. read the replicas again and have the zone compute the new replica's checksum from its
   bytes (``ichksum -f -n``); it must equal the source's (and the sizes must agree);
4. when the move trims, and only if the verified replica is still good, the object keeps
   at least ``min_copies`` good replicas without the source, and neither resource is
   down: trim the source replica (``itrim -n``; the zone checks the minimum again).

Safety (tested): a trim happens only after step 3 succeeded in the same run of the move;
a resource that is down makes a move wait up to ``wait`` seconds (transient errors are
retried by ``secure_irods``) and then fail cleanly, keeping every replica; ``dry_run``
sends no request that changes the zone (reads only).  Every zone call goes through a
``secure_irods.Client`` (retries, node throttle, cool-down, deadline).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from secure_irods.errors import classify
from secure_irods.exitcodes import ExitCode
from secure_irods.policy import Deadline

from .inventory import DataObject, Inventory, Replica, Resources, object_query
from .journal import FINAL, CollectionLock, Journal
from .plan import Move, Plan

if TYPE_CHECKING:
    from secure_irods.client import Client

__all__ = ["Applier", "ApplyReport", "Pacer", "MoveOutcome", "SLOWEST"]

#: Slowest zone-side copy or checksum we wait for (bytes/s): time-outs grow with the object.
SLOWEST = 1e6


class Pacer:
    """A byte-rate cap shared by every worker: each move starts no earlier than its slot."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self, nbytes: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = self._clock()
            start = now if self._next is None else max(now, self._next)
            self._next = start + nbytes / self.rate
        if start > now:
            self._sleep(start - now)


@dataclass
class MoveOutcome:
    move: Move
    state: str            # done, skipped, failed, dry-run
    reason: str = ""
    moved: int = 0        # bytes copied by this run
    transient: bool = False   # failed for now (a resource down, the zone refusing): a later run may succeed


@dataclass
class ApplyReport:
    planned: int = 0
    already: int = 0
    done: int = 0
    moved_bytes: int = 0
    dry: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: list[MoveOutcome] = field(default_factory=list)
    elapsed: float = 0.0
    took_over: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.moved_bytes / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0; 2 when every failure was transient (run again later); else 3."""
        if not self.failed:
            return ExitCode.OK
        return ExitCode.TRANSIENT if all(o.transient for o in self.failed) else ExitCode.PERMANENT


class MoveFailed(Exception):
    """A move that cannot finish now; ``transient`` when a later run may finish it (a resource down)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class Applier:
    """``Applier(plan_path, connect).run()``; ``connect()`` returns a new ``secure_irods.Client``."""

    def __init__(self, plan_path: str | Path, connect: Callable, *, rate: float | None = None,
                 max_parallel: int = 1, dry_run: bool = False, wait: float = 60.0, force_lock: bool = False,
                 on_progress: Callable[[MoveOutcome], None] | None = None) -> None:
        self.plan_path = Path(plan_path)
        self.plan = Plan.read(plan_path)
        self.connect = connect
        self.pacer = Pacer(rate)
        self.max_parallel = max(1, max_parallel)
        self.dry_run = dry_run
        self.wait = wait
        self.force_lock = force_lock
        self.on_progress = on_progress
        self.journal = Journal(plan_path)
        self._local = threading.local()
        self._clients: list = []
        self._clients_lock = threading.Lock()
        self._resources: Resources | None = None
        self._resources_at = 0.0

    # --------------------------------------------------------------- plumbing

    def pending(self) -> tuple[list[Move], int]:
        states = self.journal.states()
        todo = [m for m in self.plan.moves if states.get(m.i, {}).get("state") not in FINAL]
        return todo, len(self.plan.moves) - len(todo)

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.connect()
            with self._clients_lock:
                self._clients.append(client)
        return client

    def resources(self, client: "Client") -> Resources:
        """The resource tree, re-read at most every 5 s (an admin may take a resource down)."""
        with self._clients_lock:
            if self._resources is None or time.monotonic() - self._resources_at > 5:
                self._resources = Resources.load(client)
                self._resources_at = time.monotonic()
            return self._resources

    def _deadline(self, size: int = 0) -> Deadline:
        """``--wait`` for a call, plus the time its bytes take at :data:`SLOWEST` bytes/s."""
        return Deadline(self.wait + size / SLOWEST)

    def _io_timeout(self, client, size: int) -> float:
        """A replicate or checksum is answered once the zone has read all the bytes."""
        return client.io_timeout + size / SLOWEST

    # --------------------------------------------------------------- run

    def run(self) -> ApplyReport:
        report = ApplyReport(planned=len(self.plan.moves))
        todo, report.already = self.pending()
        start = time.monotonic()
        main = self.connect()
        try:
            if self.dry_run:
                outcomes = [self._one(m) for m in todo]
            else:
                with CollectionLock(main, self.plan.collection, self.plan_path, force=self.force_lock) as lock:
                    report.took_over = lock.took_over
                    self.journal.open()
                    try:
                        self.journal.write(run="apply", host=lock.me.host, pid=lock.me.pid, pending=len(todo))
                        with ThreadPoolExecutor(self.max_parallel) as pool:
                            outcomes = list(pool.map(self._one, todo))
                    finally:
                        self.journal.close()
        finally:
            main.close()
            for c in self._clients:
                c.close()
        report.elapsed = time.monotonic() - start
        for o in outcomes:
            report.moved_bytes += o.moved
            if o.state == "done":
                report.done += 1
            elif o.state == "dry-run":
                report.dry += 1
            elif o.state == "skipped":
                report.skipped[o.reason] = report.skipped.get(o.reason, 0) + 1
            else:
                report.failed.append(o)
        return report

    def _one(self, move: Move) -> MoveOutcome:
        try:
            outcome = self.execute(self._client(), move)
        except MoveFailed as exc:
            outcome = MoveOutcome(move, "failed", str(exc), transient=exc.transient)
        except Exception as exc:   # one object never stops the run
            err = classify(exc)
            outcome = MoveOutcome(move, "failed", " ".join(f"{type(err).__name__}: {err.message}".split())[:300],
                                  transient=err.transient)
        if not self.dry_run:
            self.journal.write(i=move.i, state=outcome.state, reason=outcome.reason, moved=outcome.moved,
                               **({"transient": True} if outcome.transient else {}))
        if self.on_progress is not None:
            self.on_progress(outcome)
        return outcome

    def _replicas(self, client, path: str) -> DataObject | None:
        inv = Inventory.from_rows(self.plan.collection, self.resources(client),
                                  client.query(object_query(path), deadline=self._deadline()))
        return inv.objects.get(path)

    # --------------------------------------------------------------- one move

    def execute(self, client: "Client", move: Move) -> MoveOutcome:
        resources = self.resources(client)
        if not self.dry_run:
            self.journal.write(i=move.i, state="begin")
        obj = self._replicas(client, move.path)
        if obj is None:
            return MoveOutcome(move, "skipped", "object gone since planning")
        target_leaves = set(resources.leaves(move.target["resource"]))
        src = next((r for r in obj.replicas if r.number == move.source_replica), None)
        in_target = [r for r in obj.good if r.leaf in target_leaves]
        if src is None or not src.good:
            reference = move.checksum or (in_target[0].checksum if in_target else "")
            if move.trim and in_target and reference:
                # a run killed after its trim: make sure the replica left is the verified one
                self._verify(client, move, in_target[0], reference, move.size)
                return MoveOutcome(move, "done", "finished by an earlier run")
            return MoveOutcome(move, "skipped", "source replica gone or not good since planning")
        if src.size != move.size or src.mtime != move.mtime or (move.checksum and src.checksum != move.checksum):
            return MoveOutcome(move, "skipped", "changed since planning")
        for leaf in (src.leaf, move.target["leaf"]):
            if resources.is_down(leaf):
                raise MoveFailed(f"resource {leaf} is down (status): move kept for a later run", transient=True)
        if self.dry_run:
            return MoveOutcome(move, "dry-run", "would replicate" + (" and trim" if move.trim else ""))
        reference = src.checksum or client.replica_checksum(
            move.path, src.number, io_timeout=self._io_timeout(client, move.size), deadline=self._deadline(move.size))
        moved = 0
        if not in_target:
            self.pacer.wait(move.size)
            target_group = resources.group(move.target["leaf"])
            hier = move.target["hierarchy"] if ";" in move.target["hierarchy"] else ""
            client.replicate(move.path, target_group, source=resources.group(src.leaf), hierarchy=hier,
                             io_timeout=self._io_timeout(client, move.size), deadline=self._deadline(move.size))
            moved = move.size
            obj = self._replicas(client, move.path)
            in_target = [r for r in (obj.good if obj else []) if r.leaf in target_leaves]
            if not in_target:
                raise MoveFailed("no good replica in the target after replication")
        new = in_target[0]
        self._verify(client, move, new, reference, src.size)
        if move.trim:
            assert obj is not None     # new, in the target, was read from it
            self._trim(client, move, obj, src, new)
        return MoveOutcome(move, "done", "", moved)

    def _verify(self, client, move: Move, replica: Replica, reference: str, size: int) -> None:
        if replica.size != size:
            raise MoveFailed(f"replica {replica.number} on {replica.leaf} has {replica.size} bytes, source {size}")
        actual = client.replica_checksum(move.path, replica.number, io_timeout=self._io_timeout(client, size),
                                         deadline=self._deadline(size))
        if actual != reference:
            raise MoveFailed(f"checksum mismatch: replica {replica.number} on {replica.leaf} {actual}, "
                             f"source {reference}; source kept")

    def _trim(self, client, move: Move, obj: DataObject, src: Replica, verified: Replica) -> None:
        """Trim ``src`` only if ``verified`` (checksummed by the zone just now) stays good and
        the object keeps ``min_copies`` good replicas; never on a resource that is down."""
        resources = self.resources(client)
        good = [r for r in obj.good if r.number != src.number]
        if not any(r.number == verified.number for r in good):
            raise MoveFailed("verified replica is not good any more: source kept")
        if len(good) < self.plan.min_copies:
            return   # keep the source: the object would fall below --min-copies
        for leaf in (src.leaf, verified.leaf):
            if resources.is_down(leaf):
                raise MoveFailed(f"resource {leaf} is down: source kept", transient=True)
        client.trim_replica(move.path, src.number, min_copies=max(self.plan.min_copies, 1),
                            deadline=self._deadline())
