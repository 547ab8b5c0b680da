"""Many small byte ranges of one remote object over a slow link: coalesced, several in flight.

Reading ``n`` correlations of a bundle one after the other costs ``2 n`` round trips (a
seek and a read each); at 30 ms a round trip, 100 correlations take 6 s, about as long
as fetching a 500 MB bundle whole.  Two things cut that down:

* **coalescing**: ranges closer than ``max_gap`` bytes are read as one span (reading
  the gap costs less than a round trip as long as ``max_gap`` is below bandwidth x round
  trip: 1 MiB is 8 ms at 1 Gbit/s);
* **several reads in flight**: up to ``streams`` :class:`secure_irods.remote.RemoteFile`
  objects (one connection each, with the client's retries, deadline and throttle) take
  the spans, in file order, from one queue.  Extra connections are opened only for
  throttle slots free when the reader is made, so a process never waits for a slot
  while holding one on the node's cap (default 4 slots: 4 streams at most); they log
  in once the first stream has its connection (so they never take the slots it needs),
  while the caller parses the metadata it fetched first.

Costs: per extra stream one log-in and one open (2-3 round trips, in parallel), then per
span one seek and one read; closing the extra streams runs in parallel too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

__all__ = ["RangeReader", "Spares", "Span", "coalesce", "read_ranges", "DEFAULT_MAX_GAP", "DEFAULT_STREAMS", "MAX_SPAN"]

log = logging.getLogger(__name__)

DEFAULT_MAX_GAP = 1 << 20
DEFAULT_STREAMS = 8
#: A span never grows past this (a reader's block cache must hold it whole).
MAX_SPAN = 8 << 20


@dataclass(frozen=True)
class Span:
    """One read: bytes ``start..stop`` covering the requests ``members`` (their indices)."""

    start: int
    stop: int
    members: tuple[int, ...]


def coalesce(requests: Sequence[tuple[int, int]], max_gap: int = DEFAULT_MAX_GAP) -> list[Span]:
    """``(offset, length)`` requests merged, in file order, into spans with gaps <= ``max_gap``."""
    order = sorted(range(len(requests)), key=lambda i: requests[i][0])
    spans: list[Span] = []
    for i in order:
        start, length = requests[i]
        stop = start + length
        if spans and start - spans[-1].stop <= max_gap and max(spans[-1].stop, stop) - spans[-1].start <= MAX_SPAN:
            last = spans[-1]
            spans[-1] = Span(last.start, max(last.stop, stop), last.members + (i,))
        else:
            spans.append(Span(start, stop, (i,)))
    return spans


@dataclass
class Spares:
    """How many spare streams the zone accepted last time: shared by the readers of one
    command, so a spare refused (the zone's cap, a drop) is not asked for again."""

    limit: int = 1 << 30


def _extra_streams(client: Any, first: Any, wanted: int) -> int:
    """Spare streams for slots free now, one kept for ``first`` if it has not connected yet;
    none during the node's cool-down (the zone refused someone lately)."""
    cooldown = getattr(client, "cooldown", None)
    if cooldown is not None and cooldown.remaining() > 0:
        return 0
    throttle = getattr(client, "throttle", None)
    if throttle is None:
        return wanted
    reserve = 0 if first.fetches else 1
    return max(0, min(wanted, throttle.slots - throttle.in_use() - reserve))


def _clone_file(client: Any, first: Any) -> Any:
    """A spare reader of ``first``'s object on a connection of its own (``Client.copy``), given
    one attempt to log in (a spare the zone refuses is dropped, not retried: the first stream
    reads on)."""
    from dataclasses import replace

    from secure_irods.remote import RemoteFile

    own = client.copy(policy=replace(client.policy, attempts=1), streams=1)
    stat = SimpleNamespace(size=first.size, checksum=first.checksum, is_collection=False)
    try:
        return RemoteFile(own, first.path, stat=stat, block_size=4096, cache_bytes=2 * MAX_SPAN)
    except BaseException:
        own.close()
        raise


class RangeReader:
    """Byte ranges of one open :class:`~secure_irods.remote.RemoteFile`, over up to ``streams``
    connections: the extra ones start connecting (log-in, open) as soon as it is made, so
    they are ready when the caller knows its ranges (e.g. once HDF5 metadata is parsed).

    Use as a context manager; closing it closes the extra connections (in parallel), not
    ``first``.
    """

    def __init__(self, client: Any, first: Any, streams: int = DEFAULT_STREAMS, spares: Spares | None = None) -> None:
        self.first = first
        self.budget = spares if spares is not None else Spares()
        extra = min(self.budget.limit, _extra_streams(client, first, max(0, streams - 1)))
        self.pool = ThreadPoolExecutor(1 + extra, thread_name_prefix="seisstore-ranges")
        self.spares = [self.pool.submit(self._warm, client, first) for _ in range(extra)]

    @staticmethod
    def _warm(client: Any, first: Any, patience: float = 60.0) -> Any:
        # only once ``first`` has its connection: spares never take the slots it needs
        waited = 0.0
        while not first.fetches:
            if first.closed or waited > patience:
                raise RuntimeError("the first stream never connected")
            time.sleep(0.005)
            waited += 0.005
        remote = _clone_file(client, first)
        try:
            remote.pread(0, 1)                  # log in and open now: a later span costs a seek and a read
        except BaseException:
            remote.close()
            raise
        remote.client.policy = client.policy    # connected: its reads retry as the caller's do
        return remote

    def _files(self) -> list[Any]:
        files = [self.first]
        for future in self.spares:
            try:
                files.append(future.result())
            except Exception as exc:            # a spare that cannot connect is simply not used
                log.info("no spare stream for %s: %s", self.first.path, exc)
        if len(files) - 1 < len(self.spares):
            self.budget.limit = len(files) - 1  # the zone took no more: ask for no more next time
        return files

    def read(self, requests: Sequence[tuple[int, int]], *, max_gap: int = DEFAULT_MAX_GAP,
             stats: dict | None = None) -> list[bytes]:
        """The bytes of each ``(offset, length)``; ``stats`` receives ``round_trips``, ``bytes``,
        ``spans`` and ``streams`` (added to what it holds)."""
        spans = coalesce(requests, max_gap)
        out: list[bytes] = [b""] * len(requests)
        files = self._files()
        before = [(f.round_trips, f.bytes_fetched) for f in files]
        todo = deque(spans)
        lock = threading.Lock()

        def run(remote: Any) -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    span = todo.popleft()
                data = remote.pread(span.start, span.stop - span.start)
                for i in span.members:
                    offset, length = requests[i]
                    out[i] = data[offset - span.start:offset - span.start + length]

        used = files[:max(1, min(len(files), len(spans)))]
        if len(used) == 1:
            run(self.first)
        else:
            for future in [self.pool.submit(run, f) for f in used]:
                future.result()
        if stats is not None:
            stats["round_trips"] = stats.get("round_trips", 0) + sum(
                f.round_trips - r for f, (r, _) in zip(files, before)) + sum(
                r for (r, _) in before[1:])                # the spares' log-in and open count too
            stats["bytes"] = stats.get("bytes", 0) + sum(f.bytes_fetched - b for f, (_, b) in zip(files, before))
            stats["spans"] = stats.get("spans", 0) + len(spans)
            stats["streams"] = max(stats.get("streams", 0), len(used))
        return out

    def close(self) -> None:
        def shut(future) -> None:
            try:
                if future.exception() is None:
                    future.result().close()
            except Exception as exc:            # closing a spare never fails the read
                log.info("closing a spare stream of %s: %s", self.first.path, exc)

        for future in [self.pool.submit(shut, f) for f in self.spares]:
            future.result()
        self.pool.shutdown(wait=True)

    def __enter__(self) -> "RangeReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_ranges(client: Any, first: Any, requests: Sequence[tuple[int, int]], *, streams: int = DEFAULT_STREAMS,
                max_gap: int = DEFAULT_MAX_GAP, stats: dict | None = None) -> list[bytes]:
    """The bytes of each ``(offset, length)`` of the object ``first`` (an open RemoteFile)
    reads, over up to ``streams`` connections (see :class:`RangeReader`)."""
    with RangeReader(client, first, min(streams, len(requests))) as reader:
        return reader.read(requests, max_gap=max_gap, stats=stats)
