"""Misbehaviour on purpose: what an overloaded zone does to its clients.

One policy object, shared by every agent of the server and changed while it runs through
the control socket, so a test can flip a fault between two calls.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field


@dataclass
class FaultPolicy:
    max_connections: int = 0          # 0: no cap (the server's maximum_connections unset)
    drop_rate: float = 0.0            # chance that one API call ends with the connection dropped
    latency_ms: float = 0.0           # added before every reply
    seed: int | None = None
    down: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _rng: random.Random = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.validate()

    def validate(self) -> None:
        if self.max_connections < 0:
            raise ValueError("max_connections must be >= 0")
        if not 0.0 <= self.drop_rate <= 1.0:
            raise ValueError("drop_rate must be within [0, 1]")
        if self.latency_ms < 0:
            raise ValueError("latency must be >= 0")

    def update(self, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                if key not in ("max_connections", "drop_rate", "latency_ms", "seed", "down"):
                    raise ValueError(f"unknown fault {key!r}")
                setattr(self, key, set(value) if key == "down" else value)
            if "seed" in changes:
                self._rng = random.Random(self.seed)
            self.validate()

    def should_drop(self) -> bool:
        if self.drop_rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.drop_rate

    def fraction(self) -> float:
        """Where inside a transfer a drop happens."""
        with self._lock:
            return self._rng.random()

    def delay(self) -> None:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000.0)

    def as_dict(self) -> dict:
        return {"max_connections": self.max_connections, "drop_rate": self.drop_rate,
                "latency_ms": self.latency_ms, "seed": self.seed, "down": sorted(self.down)}
