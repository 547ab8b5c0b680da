"""Reading day files of a catalogue as ObsPy Streams, and writing Streams into it.

:func:`read` yields ``(Key, Stream)`` in selection order while the next
``prefetch`` files download in the background: a thread pool whose workers
each use their own :class:`secure_irods.Client`, opened with the caller's
environment, policy, throttle and cooldown (a client is not shared between
threads, so the caller's stays free for the caller, e.g. to write results
while iterating). Never more than ``prefetch`` downloads are submitted ahead
of the Stream being read, so memory and disk stay bounded by ``prefetch + 1``
day files. Each download connects, fetches one file and disconnects, so a
worker holds a throttle slot only while bytes move and never waits for a slot
while holding one: jobs sharing a node's slots cannot deadlock. Files land in a private temporary directory; each
is deleted as soon as ObsPy has read it, and the directory is removed when the
generator ends, is closed (``break``) or raises.

Costs on the zone: one verified get per file (see :mod:`secure_irods.transfer`);
no query (the catalogue already knows path and checksum).

:func:`write` stores a Stream at its layout paths (one object per channel-day,
cut at UTC midnight) with its AVUs, atomically through the client.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .dayfiles import split_days, store_days
from .layout import Key

if TYPE_CHECKING:
    from obspy import Stream

    from secure_irods.client import Client

    from .catalogue import Catalogue, Entry

__all__ = ["read", "write"]


def _entries(catalogue: "Catalogue", selection: Iterable) -> Iterator[tuple[Key, "Entry"]]:
    for item in selection:
        if isinstance(item, Key):
            entry = catalogue.get(item)
            if entry is None:
                raise KeyError(f"{item.seed_id} {item.day} is not in the catalogue of {catalogue.root}")
            yield item, entry
        else:
            key, entry = item
            yield key, entry


def _load(path: str):
    import obspy

    try:
        return obspy.read(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def read(catalogue: "Catalogue", selection: Iterable | None = None, *, client: "Client | None" = None,
         prefetch: int = 2, tmpdir: str | os.PathLike[str] | None = None) -> Iterator[tuple[Key, "Stream"]]:
    """Yield ``(Key, obspy.Stream)`` for each item of ``selection``, in order.

    ``selection``: ``(Key, Entry)`` pairs as :meth:`Catalogue.select` yields, or
    keys of the catalogue (default: everything). ``client``: a
    :class:`secure_irods.Client` (default: :func:`secure_irods.connect`, closed at
    the end). ``prefetch``: downloads running ahead, over up to ``prefetch``
    connections of their own (0: each file is fetched with ``client`` when it is
    needed). ``tmpdir``: where the private temporary directory is made.
    """
    if prefetch < 0:
        raise ValueError("prefetch must be >= 0")
    if selection is None:
        selection = catalogue.select()
    items = _entries(catalogue, selection)
    own = client is None
    if client is None:
        from secure_irods.client import connect

        client = connect()
    zone: Client = client
    if tmpdir is not None:
        os.makedirs(tmpdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="seisstore-read-", dir=tmpdir)
    counter = iter(range(1 << 62))

    def local_for(entry: Entry) -> str:
        return os.path.join(tmp, f"{next(counter):08d}-{entry.path.rsplit('/', 1)[1]}")

    try:
        if prefetch == 0:
            for key, entry in items:
                local = local_for(entry)
                zone.get(entry.path, local)
                yield key, _load(local)
            return
        yield from _prefetching(zone, items, prefetch, local_for)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if own:
            zone.close()


def _prefetching(client, items, prefetch: int, local_for):
    """Download ``prefetch`` files ahead, each over a connection of its own.

    A worker connects for one file and disconnects right after, so it holds a
    throttle slot only while bytes move: workers of many jobs on one node then
    share the node's slots instead of each keeping idle connections, and no
    job can wait for a slot while holding one (no deadlock under the cap).
    """
    workers = prefetch

    def fetch(entry: "Entry", local: str) -> str:
        c = client.copy()       # a connection per download thread, the same settings
        try:
            c.get(entry.path, local)
        finally:
            c.close()
        return local

    pool = ThreadPoolExecutor(workers, thread_name_prefix="seisstore-read")
    pending: deque = deque()
    try:
        def fill() -> None:
            while len(pending) < prefetch:
                item = next(items, None)
                if item is None:
                    return
                key, entry = item
                pending.append((key, pool.submit(fetch, entry, local_for(entry))))

        fill()
        while pending:
            key, future = pending.popleft()
            local = future.result()
            fill()
            yield key, _load(local)
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def write(catalogue: "Catalogue", stream: "Stream", client: "Client", *, force: bool = False, typ: str = "D",
          refresh: bool = True) -> list[str]:
    """Store ``stream`` at its layout paths in ``catalogue`` (one object per channel-day) with AVUs.

    Traces spanning midnight are cut (exactly, by sample). Each day file is
    uploaded atomically and checksummed by ``client``; without ``force`` an
    existing day file is an error (``secure_irods.ExistsError``). The AVUs are
    set through ``client`` (one atomic metadata call per day file). Then the catalogue is refreshed (one
    stamp query plus the changed collections) unless ``refresh=False``.
    Returns the object paths.
    """
    days = split_days(stream, typ)
    paths = store_days(client, catalogue.root, catalogue.layout, days, force=force)
    if refresh:
        catalogue.refresh()
    return paths
