"""Day files: cutting ObsPy traces at UTC midnight, and storing them with their AVUs.

Shared by :mod:`seisstore.ingest` (local files -> catalogue) and
:func:`seisstore.reader.write` (one Stream -> catalogue).

* :func:`split_days` cuts every trace at each UTC midnight it spans, by sample
  index (no resampling, no copy of a sample twice): a sample at exactly
  00:00:00 belongs to the new day. Concatenating a trace's pieces gives its
  samples back exactly.
* :func:`store_days` writes each day as miniSEED in a private temporary
  directory, uploads them with ``Client.put_many`` (atomic, checksummed), then
  sets the :func:`day_avus` on each object (``metadata.set``: one call per
  attribute, idempotent).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from .layout import Key, Layout

__all__ = ["AVU_ATTRIBUTES", "EMPTY_LOCATION", "day_avus", "split_days", "store_days"]

log = logging.getLogger(__name__)

#: Attributes set on every day file.
AVU_ATTRIBUTES = ("network", "station", "location", "channel", "start", "end", "sampling_rate", "npts")
#: iRODS AVU values cannot be empty: an empty location code is stored as ``--`` (the FDSN convention).
EMPTY_LOCATION = "--"
_NS = 1_000_000_000


def _day_start_ns(ns: int) -> int:
    return ns - ns % (86400 * _NS)


def split_days(stream, typ: str = "D") -> dict[Key, object]:
    """Cut ``stream``'s traces at UTC midnights; ``{Key: Stream of that channel-day}``.

    Traces of a channel-day keep their order; a trace whose codes are not
    valid :class:`Key` codes (e.g. an empty station) raises ``ValueError``.
    """
    from obspy import Stream, Trace, UTCDateTime

    days: dict[Key, list] = defaultdict(list)
    for tr in stream:
        s = tr.stats
        npts = len(tr.data)
        if npts == 0:
            continue
        rate = float(s.sampling_rate)
        t0 = s.starttime.ns
        start = 0
        while start < npts:
            first_ns = t0 + round(start * _NS / rate)
            day_ns = _day_start_ns(first_ns)
            midnight = day_ns + 86400 * _NS
            # first index at or after the next midnight (1 us of float tolerance)
            end = max(start + 1, math.ceil((midnight - t0) * rate / _NS - 1e-6))
            end = min(end, npts)
            header = {k: v for k, v in s.items() if k not in ("npts", "endtime")}
            piece = Trace(data=tr.data[start:end].copy(), header=header)
            piece.stats.starttime = UTCDateTime(ns=first_ns) if start else s.starttime
            day = UTCDateTime(ns=day_ns).date
            key = Key(s.network, s.station, s.location, s.channel, day, typ)
            days[key].append(piece)
            start = end
    return {k: Stream(traces=v) for k, v in days.items()}


def day_avus(key: Key, stream) -> dict[str, str]:
    """The AVUs of one day file: codes, first start, last end, sampling rate(s), total samples."""
    rates = sorted({float(tr.stats.sampling_rate) for tr in stream})
    start = min(tr.stats.starttime for tr in stream)
    end = max(tr.stats.endtime for tr in stream)
    return {
        "network": key.net,
        "station": key.sta,
        "location": key.loc or EMPTY_LOCATION,
        "channel": key.cha,
        "start": str(start),  # ObsPy's canonical form, microseconds and Z
        "end": str(end),
        "sampling_rate": ",".join(repr(r) for r in rates),
        "npts": str(sum(len(tr.data) for tr in stream)),
    }


def store_days(
    client,
    collection: str,
    layout: Layout,
    days: dict[Key, object],
    *,
    force: bool = False,
    batch: int = 20,
    advance: Callable[[int], None] | None = None,
) -> list[str]:
    """Store each ``Key -> Stream`` at ``collection/layout.path(key)``, with its AVUs.

    Day files are written as miniSEED ``batch`` at a time into a private temporary
    directory (removed afterwards), uploaded with one ``put_many`` per batch, then
    given their AVUs (one atomic metadata call each, through the client). Parent collections are created once each. ``advance(n)``
    is called after each batch. Returns the object paths, in key order.
    """
    root = collection.rstrip("/")
    keys = sorted(days)
    paths = [f"{root}/{layout.path(k)}" for k in keys]
    for parent in sorted({p.rsplit("/", 1)[0] for p in paths}):
        client.mkdir(parent)
    with tempfile.TemporaryDirectory(prefix="seisstore-days-") as tmp:
        for lo in range(0, len(keys), batch):
            items = []
            for i in range(lo, min(lo + batch, len(keys))):
                local = Path(tmp) / f"{i:07d}.mseed"
                _write_mseed(days[keys[i]], local)
                items.append((local, paths[i]))
            client.put_many(items, force=force)
            for i, (local, _) in zip(range(lo, lo + len(items)), items):
                with contextlib.suppress(OSError):
                    os.unlink(local)
                client.set_avus(paths[i], day_avus(keys[i], days[keys[i]]))
            if advance is not None:
                advance(len(items))
    return paths


def _write_mseed(stream, path: Path) -> None:
    stream.write(str(path), format="MSEED")


def iter_files(directory: Path) -> Iterable[Path]:
    """Regular files under ``directory``, recursively, sorted; hidden files and directories skipped."""
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name
