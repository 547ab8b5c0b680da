"""Misbehaviour on purpose: what an overloaded zone does to its clients.

One policy object, shared by every agent of the server and changed while it runs through
the control socket, so a test can flip a fault between two calls.  Its random source is
the grid's only one: drops, where in a transfer they happen and the ``random`` resource's
choices all draw from it, so ``--seed`` makes a run repeatable.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence, TypeVar

T = TypeVar("T")


class SharedRandom:
    """One seeded generator shared by the agents' threads."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def seed(self, seed: int | None) -> None:
        with self._lock:
            self._rng.seed(seed)

    def random(self) -> float:
        with self._lock:
            return self._rng.random()

    def choice(self, items: Sequence[T]) -> T:
        with self._lock:
            return self._rng.choice(items)


@dataclass
class FaultPolicy:
    max_connections: int = 0          # 0: no cap (the server's maximum_connections unset)
    drop_rate: float = 0.0            # chance that one API call ends with the connection dropped
    latency_ms: float = 0.0           # added before every reply
    seed: int | None = None
    down: set[str] = field(default_factory=set)
    bandwidth_mbps: float = 0.0       # per connection, MB/s (0: unlimited)
    total_bandwidth_mbps: float = 0.0  # all connections together, MB/s (0: unlimited)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    random: SharedRandom = field(default=None, repr=False, compare=False)

    FIELDS = ("max_connections", "drop_rate", "latency_ms", "seed", "down", "bandwidth_mbps",
              "total_bandwidth_mbps")

    def __post_init__(self) -> None:
        self.random = SharedRandom(self.seed)
        self.validate()

    def validate(self) -> None:
        if self.max_connections < 0:
            raise ValueError("max_connections must be >= 0")
        if not 0.0 <= self.drop_rate <= 1.0:
            raise ValueError("drop_rate must be within [0, 1]")
        if self.latency_ms < 0:
            raise ValueError("latency must be >= 0")
        if self.bandwidth_mbps < 0 or self.total_bandwidth_mbps < 0:
            raise ValueError("bandwidth must be >= 0")

    def update(self, **changes) -> None:
        with self._lock:
            unknown = set(changes) - set(self.FIELDS)
            if unknown:
                raise ValueError(f"unknown fault {sorted(unknown)[0]!r}")
            old = {key: getattr(self, key) for key in changes}
            for key, value in changes.items():
                setattr(self, key, set(value) if key == "down" else value)
            try:
                self.validate()
            except ValueError:
                for key, value in old.items():
                    setattr(self, key, value)
                raise
            if "seed" in changes:
                self.random.seed(self.seed)

    def should_drop(self) -> bool:
        if self.drop_rate <= 0:
            return False
        return self.random.random() < self.drop_rate

    def fraction(self) -> float:
        """Where inside a transfer a drop happens."""
        return self.random.random()

    def delay(self) -> None:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000.0)

    def as_dict(self) -> dict:
        return {"max_connections": self.max_connections, "drop_rate": self.drop_rate,
                "latency_ms": self.latency_ms, "seed": self.seed, "down": sorted(self.down),
                "bandwidth_mbps": self.bandwidth_mbps, "total_bandwidth_mbps": self.total_bandwidth_mbps}
