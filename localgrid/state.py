"""What the agents of one server share: one typed object, handed to every agent.

The server's own tables in iRODS (the replica access table, the agent count) and the
grid's fault policy with its seeded random source live here, so a handler reaches them as
``self.state.replicas``, ``self.state.faults``, ``self.state.random``, ``self.state.counters``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .faults import FaultPolicy, SharedRandom
from .link import Link, TokenBucket


class ReplicaAccessTable:
    """Open-for-write replicas by token, shared by agents (the server's replica access table).

    A token lets the extra connections of a parallel transfer write the replica the first
    connection opened; if any of them dies, the replica is poisoned and will not be
    finalized as good.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, list] = {}

    def acquire(self, token: str, data_id: int, repl_num: int) -> None:
        with self._lock:
            entry = self._entries.setdefault(token, [data_id, repl_num, 0, False])
            entry[2] += 1

    def get(self, token: str) -> tuple | None:
        with self._lock:
            entry = self._entries.get(token)
            return tuple(entry) if entry else None

    def poison(self, token: str) -> None:
        with self._lock:
            if token in self._entries:
                self._entries[token][3] = True

    def release(self, token: str) -> bool:
        """Drop one reference; returns whether the replica was poisoned."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return False
            entry[2] -= 1
            if entry[2] <= 0:
                del self._entries[token]
            return entry[3]


COUNTERS = ("accepted", "refused", "active", "max_active", "api_calls", "drops", "logins", "auth_failures",
            "bad_clients", "bytes_sent", "bytes_received", "handshake_timeouts", "idle_closed")


class Counters:
    """The server's counters, as ``secure-irods-grid stats`` prints them.

    Besides counts, two time integrals since the last reset, for load-control benchmarks:
    ``busy_seconds`` (connections held, integrated over time: divided by ``seconds``, the
    mean busy connections) and ``full_seconds`` (time spent at the connection cap).
    """

    def __init__(self, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(COUNTERS, 0)
        self._clock = clock
        self._since = self._stamp = clock()
        self._busy = self._full = 0.0
        self.cap = 0  # the connection cap now (0: none), for ``full_seconds``

    def _integrate(self) -> None:
        now = self._clock()
        held = self._values["active"]
        self._busy += held * (now - self._stamp)
        if self.cap and held >= self.cap:
            self._full += now - self._stamp
        self._stamp = now

    def count(self, key: str, delta: int = 1) -> None:
        with self._lock:
            if key == "active":
                self._integrate()
            self._values[key] += delta
            if key == "active":
                self._values["max_active"] = max(self._values["max_active"], self._values["active"])

    def admit(self, cap: int) -> bool:
        """One connection accepted: counted active unless ``cap`` (0: none) is reached, then refused."""
        with self._lock:
            self._integrate()
            self.cap = cap
            self._values["accepted"] += 1
            if cap and self._values["active"] >= cap:
                self._values["refused"] += 1
                return False
            self._values["active"] += 1
            self._values["max_active"] = max(self._values["max_active"], self._values["active"])
            return True

    def snapshot(self) -> dict:
        with self._lock:
            self._integrate()
            values = dict(self._values)
            values.update(seconds=round(self._stamp - self._since, 6), busy_seconds=round(self._busy, 6),
                          full_seconds=round(self._full, 6))
            return values

    def reset(self) -> None:
        with self._lock:
            for key in self._values:
                if key != "active":
                    self._values[key] = 0
            self._values["max_active"] = self._values["active"]
            self._since = self._stamp = self._clock()
            self._busy = self._full = 0.0


@dataclass
class GridState:
    """Everything a handler needs beyond its own connection and catalogue."""

    zone: str
    vault_root: Path
    catalog_path: Path
    faults: FaultPolicy = field(default_factory=FaultPolicy)
    replicas: ReplicaAccessTable = field(default_factory=ReplicaAccessTable)
    counters: Counters = field(default_factory=Counters)
    default_resource: str = "demoResc"
    idle_timeout: float = 600.0
    total_bandwidth: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        self.total_bandwidth = TokenBucket(lambda: self.faults.total_bandwidth_mbps)

    def link(self) -> Link:
        """A new connection's shaped link: its own cap and the grid's total."""
        return Link(TokenBucket(lambda: self.faults.bandwidth_mbps), self.total_bandwidth)

    @property
    def random(self) -> SharedRandom:
        """The one seeded source of the grid: drops and the ``random`` resource's choices."""
        return self.faults.random
