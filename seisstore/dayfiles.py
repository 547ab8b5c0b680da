"""Day files: cutting ObsPy traces at UTC midnight, and storing them with their AVUs.

Shared by :mod:`seisstore.ingest` (local files -> catalogue) and
:func:`seisstore.reader.write` (one Stream -> catalogue).

* :func:`split_days` cuts every trace at each UTC midnight it spans, by sample
  index (no resampling, no copy of a sample twice): a sample at exactly
  00:00:00 belongs to the new day. Concatenating a trace's pieces gives its
  samples back exactly.
* :func:`store_days` writes each day as miniSEED in a private temporary
  directory, in a lossless encoding chosen from the samples' dtype and read back
  to check it (:mod:`seisstore.encodings`), uploads them with
  ``Client.put_many`` (atomic, checksummed), then sets the :func:`day_avus` on
  each object (one atomic metadata call); :func:`encode_day` and
  :func:`upload_days` are its two halves, which an ingest runs in different
  threads.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .encodings import source_encoding, write_day
from .layout import Key, Layout

if TYPE_CHECKING:
    from obspy import Stream

    from secure_irods.client import Client

__all__ = ["AVU_ATTRIBUTES", "EMPTY_LOCATION", "DayFile", "day_avus", "encode_day", "split_days", "store_days",
           "upload_days"]

log = logging.getLogger(__name__)

#: Attributes set on every day file.
AVU_ATTRIBUTES = ("network", "station", "location", "channel", "start", "end", "sampling_rate", "npts",
                  "encoding", "source_encoding")
#: iRODS AVU values cannot be empty: an empty location code is stored as ``--`` (the FDSN convention).
EMPTY_LOCATION = "--"
_NS = 1_000_000_000


def _day_start_ns(ns: int) -> int:
    return ns - ns % (86400 * _NS)


def split_days(stream: "Stream", typ: str = "D") -> dict[Key, "Stream"]:
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


def day_avus(key: Key, stream: "Stream", *, encoding: str | None = None,
             sources: Iterable[str] | None = None) -> dict[str, str]:
    """The AVUs of one day file: codes, first start, last end, sampling rate(s), total samples.

    With ``encoding`` (the day file's, from :func:`seisstore.encodings.write_day`) and
    ``sources`` (how its samples came: ``SRO``, ``STEIM1``, ``SAC``...), also ``encoding``
    and ``source_encoding``.
    """
    rates = sorted({float(tr.stats.sampling_rate) for tr in stream})
    start = min(tr.stats.starttime for tr in stream)
    end = max(tr.stats.endtime for tr in stream)
    avus = {
        "network": key.net,
        "station": key.sta,
        "location": key.loc or EMPTY_LOCATION,
        "channel": key.cha,
        "start": str(start),  # ObsPy's canonical form, microseconds and Z
        "end": str(end),
        "sampling_rate": ",".join(repr(r) for r in rates),
        "npts": str(sum(len(tr.data) for tr in stream)),
    }
    if encoding:
        avus["encoding"] = encoding
    if sources:
        avus["source_encoding"] = ",".join(sorted(set(sources)))
    return avus


@dataclass
class DayFile:
    """One day file written locally (encoded and verified), waiting for its upload."""

    key: Key
    local: Path
    remote: str
    avus: dict[str, str]
    size: int
    force: bool = False


def encode_day(key: Key, stream: "Stream", local: Path, remote: str, *, sources: Iterable[str] | None = None,
               force: bool = False) -> DayFile:
    """Write one channel-day as miniSEED at ``local`` in a lossless, verified encoding.

    Raises :class:`seisstore.encodings.UnencodableError` if no encoding holds it exactly.
    """
    encoding = write_day(stream, local)
    return DayFile(key, local, remote, day_avus(key, stream, encoding=encoding, sources=sources),
                   local.stat().st_size, force)


def upload_days(client: "Client", files: list[DayFile], *, made: set[str] | None = None) -> list[str]:
    """Upload day files with ``put_many`` (atomic, checksummed), then set their AVUs.

    Parent collections not in ``made`` are created (and added to it). Local files are
    removed once stored. Returns the object paths.
    """
    made = set() if made is None else made
    for parent in sorted({f.remote.rsplit("/", 1)[0] for f in files} - made):
        client.mkdir(parent)
        made.add(parent)
    for force in (False, True):
        group = [f for f in files if f.force is force]
        if group:
            # sync: an identical object already there (a batch retried one by one) is not an error
            client.put_many([(f.local, f.remote) for f in group], force=force, sync=True)
    for f in files:
        with contextlib.suppress(OSError):
            os.unlink(f.local)
        client.set_avus(f.remote, f.avus)
    return [f.remote for f in files]


def store_days(
    client: "Client",
    collection: str,
    layout: Layout,
    days: dict[Key, "Stream"],
    *,
    force: bool = False,
    batch: int = 20,
    advance: Callable[[int], None] | None = None,
) -> list[str]:
    """Store each ``Key -> Stream`` at ``collection/layout.path(key)``, with its AVUs.

    Day files are written as miniSEED (:func:`seisstore.encodings.write_day`: lossless,
    read back and compared) ``batch`` at a time into a private temporary directory
    (removed afterwards), uploaded with one ``put_many`` per batch, then given their
    AVUs (one atomic metadata call each, through the client). Parent collections are
    created once each. ``advance(n)`` is called after each batch. Returns the object
    paths, in key order.
    """
    root = collection.rstrip("/")
    keys = sorted(days)
    made: set[str] = set()
    paths = []
    with tempfile.TemporaryDirectory(prefix="seisstore-days-") as tmp:
        for lo in range(0, len(keys), batch):
            files = [encode_day(k, days[k], Path(tmp) / f"{i:07d}.mseed", f"{root}/{layout.path(k)}",
                                sources=[source_encoding(tr) for tr in days[k]], force=force)
                     for i, k in enumerate(keys[lo:lo + batch], start=lo)]
            paths += upload_days(client, files, made=made)
            if advance is not None:
                advance(len(files))
    return paths


def iter_files(directory: Path) -> Iterable[Path]:
    """Regular files under ``directory``, recursively, sorted; hidden files and directories skipped."""
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name
