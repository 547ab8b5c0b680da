"""A link you can shape: a bandwidth cap per connection and one for all connections together.

Each cap is a token bucket in virtual time: sending ``n`` bytes at ``rate`` bytes/s books
``n / rate`` seconds after the later of the bucket's clock and now (less a small burst
allowance), and the sender sleeps until its booking starts to be honoured.  The rates are
read from the fault policy at every call, so ``secure-irods-grid faults --bandwidth`` changes
a running grid.  Shaping applies to the bytes of data-object reads and writes (the byte
stream of DATA_OBJ_READ/WRITE), where a real link's bandwidth shows.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

MB = 1_000_000          # --bandwidth is in MB/s (1250: a 10 GbE link, 125: 1 GbE)
BURST_SECONDS = 0.05    # what a bucket lets through at once after idling
CHUNK = 1024 * 1024     # a shaped read is sent in pieces of this size


class TokenBucket:
    def __init__(self, rate_mbps: Callable[[], float], sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_mbps
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._booked = 0.0

    def consume(self, nbytes: int) -> float:
        """Wait until ``nbytes`` may pass; returns the seconds waited."""
        rate = self._rate() * MB
        if rate <= 0 or nbytes <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            start = max(self._booked, now - BURST_SECONDS)
            self._booked = start + nbytes / rate
            wait = self._booked - now
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0


class Link:
    """One connection's view of the link: its own bucket and the grid's shared one."""

    def __init__(self, per_connection: TokenBucket, total: TokenBucket) -> None:
        self.per_connection = per_connection
        self.total = total

    @property
    def shaped(self) -> bool:
        return self.per_connection._rate() > 0 or self.total._rate() > 0

    def consume(self, nbytes: int) -> float:
        return self.per_connection.consume(nbytes) + self.total.consume(nbytes)
