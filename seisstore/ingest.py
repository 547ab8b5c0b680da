"""``seisstore ingest``: local seismic files of any ObsPy format -> day files in a catalogue.

:func:`ingest` reads the headers of every file under a directory with ``obspy.read``
(files ObsPy cannot read are skipped with a warning and counted), then one station at a
time (memory holds one station's recordings, not the directory's) reads its files, merges
the traces
(``Stream.merge(method=-1)``: only contiguous or identical overlapping pieces
are joined, so no sample is invented or dropped), cuts them at UTC midnight
(:func:`seisstore.dayfiles.split_days`), and stores each channel-day as one
miniSEED object at ``collection/layout.path(key)`` with ``put_many`` (atomic,
checksummed) and AVUs.

Re-running skips channel-days already in the collection: one
:class:`~seisstore.catalogue.Catalogue` refresh (a few bulk GenQueries) says
what is there, never one existence test per file. Costs on the zone: that
refresh, one ``mkdir`` per new collection, one put per new day file and
8 metadata calls per new day file; if some day files were already there, one bulk query
for those lacking their AVUs (a run killed between put and labels), which get them.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from secure_irods.query import Query

from .dayfiles import day_avus, iter_files, split_days, store_days
from .encodings import planned_encoding, source_encoding
from .layout import Key, Layout

__all__ = ["IngestReport", "ingest"]

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What one :func:`ingest` did."""

    files_read: int = 0
    unreadable: list[str] = field(default_factory=list)
    traces: int = 0
    stored: list[str] = field(default_factory=list)
    skipped: list[Key] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)   # already there, AVUs completed

    def summary(self) -> str:
        return (f"{self.files_read} files read ({len(self.unreadable)} unreadable), "
                f"{len(self.stored)} day files stored, {len(self.skipped)} already there"
                + (f" ({len(self.repaired)} given their missing AVUs)" if self.repaired else "")
                + (f", {len(self.rejected)} traces with invalid codes" if self.rejected else ""))


def _stations_of(directory: Path, report: IngestReport) -> dict[tuple[str, str], list[Path]]:
    """(network, station) -> the files holding it, from headers only: memory stays small."""
    import obspy

    files: dict[tuple[str, str], list[Path]] = {}
    for path in iter_files(directory):
        try:
            st = obspy.read(str(path), headonly=True)
        except Exception as exc:  # ObsPy raises many types for foreign files
            log.warning("skipping %s: not readable by ObsPy (%s)", path, str(exc).splitlines()[0]
                        if str(exc) else type(exc).__name__)
            report.unreadable.append(str(path))
            continue
        report.files_read += 1
        for station in {(tr.stats.network, tr.stats.station) for tr in st}:
            files.setdefault(station, []).append(path)
    return files


def _read_station(station: tuple[str, str], paths: list[Path], report: IngestReport):
    """Every trace of one station, from the files that hold it."""
    import obspy

    stream = obspy.Stream()
    for path in paths:
        st = obspy.read(str(path)).select(network=station[0], station=station[1])
        report.traces += len(st)
        stream += st
    return stream


def _valid(stream, report: IngestReport):
    """Traces whose codes make a valid :class:`Key`; the others are reported and dropped."""
    import datetime

    import obspy

    keep = obspy.Stream()
    for tr in stream:
        s = tr.stats
        try:
            Key(s.network, s.station, s.location, s.channel, datetime.date(2000, 1, 1))
        except ValueError as exc:
            log.warning("skipping trace %s: %s", tr.id, exc)
            report.rejected.append(tr.id)
            continue
        keep.append(tr)
    return keep


def ingest(
    client,
    local_dir: str | Path,
    collection: str,
    layout: Layout,
    *,
    progress: bool | None = None,
    console=None,
    typ: str = "D",
    cache_dir=None,
) -> IngestReport:
    """Store every file ObsPy reads under ``local_dir`` as day files in ``collection``.

    ``client`` is a :class:`secure_irods.Client`: every zone call (catalogue queries,
    uploads, AVUs) goes through it. ``progress``: a rich progress bar on stderr
    (default: only when stderr is a terminal).
    """
    from .catalogue import Catalogue

    directory = Path(local_dir)
    if not directory.is_dir():
        raise NotADirectoryError(f"not a directory: {directory}")
    report = IngestReport()
    stations = _stations_of(directory, report)
    root = client.resolve(collection)
    client.mkdir(root)
    cat = Catalogue(client, root, layout, cache=cache_dir is not None, cache_dir=cache_dir)
    if progress is None:
        progress = sys.stderr.isatty()
    labelled = None
    with _progress_bar(progress, console, len(stations)) as advance:
        for station in sorted(stations):   # one station in memory at a time
            stream = _valid(_read_station(station, stations[station], report), report)
            stream.merge(method=-1)
            stream.sort()
            days = split_days(stream, typ)
            present = {k: d for k, d in days.items() if k in cat}
            report.skipped += list(present)
            if present:
                labelled = _labelled(client, root) if labelled is None else labelled
                report.repaired += _complete_avus(client, cat, present, labelled)
            new = {k: d for k, d in days.items() if k not in cat}
            report.stored += store_days(client, root, layout, new)
            advance(1)
    log.info("ingest %s -> %s: %s", directory, collection, report.summary())
    return report


def _labelled(client, root: str) -> set[str]:
    """Paths under ``root`` that carry ``npts``, the AVU set last: their labels are complete.

    One bulk query (a call per 500 objects), made once per ingest and only if some day
    files were already there."""
    q = (Query("COLL_NAME", "DATA_NAME").where_any("COLL_NAME", [("=", root), ("like", f"{root}/%")])
         .where("META_DATA_ATTR_NAME", "=", "npts"))
    return {f"{coll}/{name}" for coll, name in client.query(q)}


def _complete_avus(client, cat, present: dict, labelled: set[str]) -> list[str]:
    """Set the AVUs of day files a killed run stored but did not label; returns their paths.

    The AVUs go on after the atomic put, so a run killed in between leaves an object
    without them that a re-run would otherwise skip."""
    repaired = []
    for key, day in present.items():
        path = cat.get(key).path
        if path not in labelled:
            client.set_avus(path, day_avus(key, day, encoding=planned_encoding(day),
                                           sources=[source_encoding(tr) for tr in day]))
            repaired.append(path)
    return repaired


class _progress_bar:
    """A rich ``Progress`` on stderr (or nothing); yields an ``advance(n)`` callable."""

    def __init__(self, enabled: bool, console, total: int) -> None:
        self.enabled, self.console, self.total = enabled, console, total
        self._progress = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._progress = Progress("[progress.description]{task.description}", BarColumn(),
                                  MofNCompleteColumn(), TimeRemainingColumn(),
                                  console=self.console or Console(stderr=True))
        self._progress.__enter__()
        task = self._progress.add_task("stations", total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
