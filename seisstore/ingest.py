"""``seisstore ingest``: local seismic files of any ObsPy format -> day files in a catalogue.

:func:`ingest` runs in two passes over ``local_dir``:

1. **headers**: every file is read with ``obspy.read(headonly=True)``.  A file ObsPy
   cannot read, or reads with a warning that it is damaged (a truncated last record,
   ...), is skipped and reported with the reason -- it never stops the run.  Codes are
   mapped through the explicit :class:`CodeMap` (``--rename``, ``--default-network``);
   traces whose codes still make no valid :class:`~seisstore.layout.Key` (an empty
   network, as SAC files often have) are counted per distinct id, never guessed.
2. **stations**, one at a time (memory holds one station's recordings, not the
   directory's): its files are read, its traces merged per id, sampling rate and dtype
   with ``Stream.merge(method=-1)`` (contiguous pieces and identical overlaps are
   joined; gaps stay gaps and overlaps with different samples stay separate traces,
   hence separate records: no sample invented, averaged or dropped), cut at UTC
   midnight (:func:`~seisstore.dayfiles.split_days`) and written as day files in a
   lossless encoding, read back and compared (:mod:`seisstore.encodings`).  The day
   files go to ``jobs`` upload threads, each with its own ``Client`` (one connection
   each), which ``put_many`` them (atomic, checksummed) and set their AVUs while the
   next station is read and cut.

Day files already in the collection are left alone and counted (``existing``); one
:class:`~seisstore.catalogue.Catalogue` refresh (a few bulk GenQueries) says what is
there, never one existence test per file.  With ``merge=True`` a day file that the
new data extends is downloaded, merged, checked to hold every sample of both (same
bits at the same times) and replaced (``put -f``: a temporary object renamed over it,
never a partial file at the name); if the new data adds nothing it is left alone.

Costs on the zone: the refresh, one ``mkdir`` per new collection, one put and one
atomic metadata call per new day file; if some day files were already there, one bulk
query for those lacking their AVUs (a run killed between put and labels), which get
them; with ``merge``, a get and an AVU query per existing day file the new data touches.
"""
from __future__ import annotations

import datetime
import glob
import logging
import math
import queue
import re
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from secure_irods.query import Query

from .display import Meter
from .dayfiles import DayFile, day_avus, encode_day, iter_files, split_days, upload_days
from .encodings import UnencodableError, choose_encoding, planned_encoding, same_samples, source_encoding
from .layout import Key, Layout
from .report import IngestReport

if TYPE_CHECKING:
    from obspy import Stream, Trace

    from secure_irods.client import Client

    from .catalogue import Catalogue

__all__ = ["CodeMap", "IngestReport", "ingest"]

log = logging.getLogger(__name__)

#: ObsPy warnings that mean a file is damaged: it is skipped, not half ingested.
DAMAGE = re.compile(r"corrupt|not enough|truncat|broken|invalid|skipp|damag", re.IGNORECASE)
#: Day files per ``put_many`` call.
BATCH = 20


class DamagedFile(Exception):
    """ObsPy read a file but warned that part of it is damaged."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_code(name: str, value: str) -> str | None:
    """Why ``value`` is not a valid code for field ``name`` (None if it is)."""
    try:
        codes = [value if n == name else ("" if n == "loc" else "X") for n in ("net", "sta", "loc", "cha")]
        Key(codes[0], codes[1], codes[2], codes[3], datetime.date(2000, 1, 1))
    except ValueError:
        return f"{'empty' if not value else 'invalid'} {_FIELDS[name]} code {value!r}"
    return None


_FIELDS = {"net": "network", "sta": "station", "loc": "location", "cha": "channel"}


@dataclass
class CodeMap:
    """Explicit code mappings, applied to every trace before anything else; never guesses.

    ``renames`` maps a whole id as ObsPy reads it (``NET.STA.LOC.CHA``, any part may be
    empty: ``.OGDI..HHZ``) to a new id; ``default_network`` then fills an empty
    network code.  Rules come from ``--rename 'old=new'`` (repeatable) or
    ``--rename @file`` (one ``old=new`` a line, ``#`` comments).
    """

    renames: dict[str, str] = field(default_factory=dict)
    default_network: str | None = None

    @classmethod
    def parse(cls, rules: Iterable[str] = (), default_network: str | None = None) -> "CodeMap":
        """Build from option values; a malformed rule or an invalid target is a ``ValueError``."""
        lines: list[tuple[str, str]] = []
        for rule in rules:
            if rule.startswith("@"):
                try:
                    text = Path(rule[1:]).read_text()
                except OSError as exc:
                    raise ValueError(f"cannot read rename rules from {rule[1:]}: {exc.strerror}") from None
                lines += [(f"{rule[1:]}:{n}", ln.split("#", 1)[0].strip())
                          for n, ln in enumerate(text.splitlines(), 1)]
            else:
                lines.append(("--rename", rule.strip()))
        renames = {}
        for where, line in lines:
            if not line:
                continue
            old, sep, new = line.partition("=")
            old, new = old.strip(), new.strip()
            if not sep or old.count(".") != 3 or new.count(".") != 3:
                raise ValueError(f"{where}: a rename is 'NET.STA.LOC.CHA=NET.STA.LOC.CHA', got {line!r}")
            for name, value in zip(_FIELDS, new.split(".")):
                why = _check_code(name, value)
                if why:
                    raise ValueError(f"{where}: rename target {new!r} has an {why}")
            renames[old] = new
        if default_network is not None and _check_code("net", default_network):
            raise ValueError(f"--default-network: {_check_code('net', default_network)}")
        return cls(renames, default_network)

    def apply(self, trace: "Trace", report: IngestReport | None = None) -> str | None:
        """Map ``trace``'s codes in place; returns why its codes are invalid, or None."""
        s = trace.stats
        old = trace.id
        new = self.renames.get(old)
        if new is not None:
            s.network, s.station, s.location, s.channel = new.split(".")
        if not s.network and self.default_network:
            s.network = self.default_network
        if report is not None and trace.id != old:
            report.mapped[f"{old} -> {trace.id}"] += 1
        for name, attr in (("net", "network"), ("sta", "station"), ("loc", "location"), ("cha", "channel")):
            why = _check_code(name, s[attr])
            if why:
                hint = " (use --default-network or --rename)" if name == "net" else " (use --rename)"
                return why + hint
        return None


def _read(path: Path, headonly: bool = False, report: IngestReport | None = None):
    """``obspy.read`` that raises :class:`DamagedFile` on a warning that data was lost.

    ObsPy warns once per bad record (hundreds of lines for one damaged file): the
    warnings are kept in ``report`` under the file's name, never printed."""
    import obspy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            stream = obspy.read(str(path), headonly=headonly)
        finally:
            if report is not None:
                report.warn(path, [str(w.message) for w in caught])
    damage = [str(w.message) for w in caught if DAMAGE.search(str(w.message))]
    if damage:
        raise DamagedFile(f"damaged: {damage[0].splitlines()[0]}")
    _check_mseed_length(path, stream)
    return stream


def unusable(trace) -> str | None:
    """Why ``trace`` cannot make day files (None if it can).

    A log or state-of-health channel (``LOG``, ASCII records) has sampling rate 0: it
    has no time axis to cut at midnight. Such traces are reported, never fatal."""
    rate = float(trace.stats.sampling_rate)
    if not math.isfinite(rate) or rate <= 0:
        return f"sampling rate {rate:g}: no time axis to cut into day files (a log or state-of-health channel?)"
    if not trace.stats.npts:
        return "no samples"
    return None


def without_nonfinite(trace) -> tuple[list, int]:
    """``trace`` cut around its NaN and inf samples: the finite runs, and how many were left out.

    A non-finite sample is a missing one (a gap), never zeroed: a zero would be a
    sample invented in the archive, a gap is what the reader and the processing
    already handle."""
    import numpy as np

    data = trace.data
    if data.dtype.kind not in "fc":
        return [trace], 0
    bad = ~np.isfinite(data)
    n_bad = int(bad.sum())
    if not n_bad:
        return [trace], 0
    edges = np.flatnonzero(np.diff(np.concatenate(([1], bad.view(np.int8), [1]))))
    pieces = []
    for start, end in zip(edges[::2], edges[1::2]):   # runs of finite samples: [start, end)
        piece = trace.copy()
        piece.data = data[start:end].copy()
        piece.stats.starttime = trace.stats.starttime + start / float(trace.stats.sampling_rate)
        pieces.append(piece)
    return pieces, n_bad


def _check_mseed_length(path: Path, stream) -> None:
    """A miniSEED file of one record length that does not end on a record: its tail was lost.

    ObsPy drops a partial last record, silently when it is longer than a header."""
    lengths = {tr.stats.mseed.get("record_length") for tr in stream
               if tr.stats.get("_format") == "MSEED" and "mseed" in tr.stats}
    if len(lengths) == 1 and len(stream) and all(tr.stats.get("_format") == "MSEED" for tr in stream):
        (reclen,) = lengths
        excess = path.stat().st_size % reclen if reclen else 0
        if excess:
            raise DamagedFile(f"damaged: truncated, {excess} bytes after the last whole {reclen}-byte record")


def _scan(paths: Iterable[Path], codes: CodeMap, report: IngestReport, advance: Callable) -> dict:
    """(network, station) -> [(path, size, stations in the file)], from headers only."""
    files: dict[tuple[str, str], list[Path]] = defaultdict(list)
    sizes: dict[Path, tuple[int, int]] = {}
    for path in paths:
        report.files_seen += 1
        try:
            size = path.stat().st_size
            st = _read(path, headonly=True, report=report)
        except Exception as exc:  # ObsPy raises many types for foreign or broken files
            why = _first_line(exc)
            log.info("skipping %s: %s", path, why)
            report.skip_file(path, why if isinstance(exc, (DamagedFile, OSError)) else f"not readable by ObsPy: {why}")
            advance(files=1)
            continue
        report.files_read += 1
        report.bytes_read += size
        stations = set()
        for tr in st:
            original = tr.id
            refused = codes.apply(tr, report)
            if refused:
                report.reject(original, refused)
            elif refused := unusable(tr):
                report.reject(tr.id, refused)
            else:
                stations.add((tr.stats.network, tr.stats.station))
        for station in stations:
            files[station].append(path)
        sizes[path] = (size, len(stations))
        advance(files=1)
    return {station: [(p, *sizes[p]) for p in paths] for station, paths in files.items()}


def _read_station(station, files, codes: CodeMap, report: IngestReport, advance: Callable):
    """Every usable trace of one station (codes mapped, NaN and inf cut out), from the files that hold it."""
    import obspy

    stream = obspy.Stream()
    traces = 0
    for path, size, n_stations in files:
        if str(path) in report.skipped_files:
            continue
        try:
            st = _read(path, report=report)
        except Exception as exc:  # headers read, data did not
            report.skip_file(path, _first_line(exc))
            report.files_read -= 1
            report.bytes_read -= size
            continue
        for tr in st:
            if codes.apply(tr) is None and unusable(tr) is None and (tr.stats.network, tr.stats.station) == station:
                pieces, n_bad = without_nonfinite(tr)
                if n_bad:
                    report.nonfinite_samples(tr.id, n_bad, path)
                stream.extend(pieces)
                traces += 1
        advance(bytes=size / n_stations)
    report.traces += traces
    return stream


def merge(stream: "Stream") -> "Stream":
    """Join what can be joined without losing or inventing a sample (see the module docstring)."""
    from obspy import Stream

    groups = defaultdict(list)
    for tr in stream:
        groups[(tr.id, float(tr.stats.sampling_rate), tr.data.dtype.str)].append(tr)
    out = Stream()
    for group in groups.values():
        part = Stream(traces=group)
        part.merge(method=-1)
        out += part
    out.sort()
    return out


def _sources_by_day(stream, typ: str) -> dict[Key, set[str]]:
    """``Key -> {source encodings}`` of the traces touching each channel-day (before merging)."""
    found: dict[Key, set[str]] = defaultdict(set)
    for tr in stream:
        s = tr.stats
        day, last = s.starttime.date, s.endtime.date
        while day <= last:
            found[Key(s.network, s.station, s.location, s.channel, day, typ)].add(source_encoding(tr))
            day += datetime.timedelta(days=1)
    return found


def covers(whole: "Stream", part: "Stream") -> bool:
    """True if every sample of every trace of ``part`` is in ``whole``, same bits, same time."""
    for t in part:
        rate = float(t.stats.sampling_rate)
        data = choose_encoding(t.data)[0]
        ok = False
        for w in whole:
            if w.id != t.id or abs(float(w.stats.sampling_rate) - rate) > 1e-9 * rate:
                continue
            offset = round((t.stats.starttime.ns - w.stats.starttime.ns) * rate / 1e9)
            shift = t.stats.starttime.ns - w.stats.starttime.ns - offset * 1e9 / rate
            if offset < 0 or offset + len(data) > len(w.data) or abs(shift) > 0.5e9 / rate / 100:
                continue
            if same_samples(w.data[offset:offset + len(data)], data):
                ok = True
                break
        if not ok:
            return False
    return True


class _Uploads:
    """Day files to the zone: ``jobs`` threads with a Client each, or the caller's client if 0.

    A bounded queue (two batches per thread) keeps the local day files waiting on disk
    few.  A permanent failure of one day file is reported and the others go on; any
    other failure (transient at the deadline, authentication) stops the run, raised by
    :meth:`submit` or :meth:`close`.
    """

    def __init__(self, client: "Client", jobs: int, connect: Callable[[], "Client"] | None, report: IngestReport,
                 advance: Callable[..., None]) -> None:
        self.client, self.report, self.advance = client, report, advance
        self.made: set[str] = set()
        self.made_lock = threading.Lock()
        self.error: BaseException | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=2 * max(jobs, 1))
        self.threads = []
        if jobs > 0:
            connect = connect or client.copy     # an upload thread's own connection, the same settings
            for i in range(jobs):
                t = threading.Thread(target=self._worker, args=(connect,), name=f"ingest-upload-{i}", daemon=True)
                t.start()
                self.threads.append(t)

    def submit(self, files: list[DayFile], merged: bool = False) -> None:
        if self.error is not None:
            raise self.error
        if not self.threads:
            self._upload(self.client, files, merged)
            return
        # The caller's connection is free while the threads upload: the node's connection
        # window may admit only one (secure_irods.window), and a connection held idle here
        # would keep the upload threads waiting for it until their deadline.
        self.client.disconnect()
        while True:
            try:
                self.queue.put((files, merged), timeout=0.5)
                return
            except queue.Full:
                if self.error is not None:
                    raise self.error

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for t in self.threads:
            t.join()
        if self.error is not None:
            raise self.error

    def _worker(self, connect: Callable) -> None:
        try:
            with connect() as client:
                while (item := self.queue.get()) is not None:
                    if self.error is None:
                        self._upload(client, *item)
                    # one connection per batch (a log-in per BATCH day files): the node's window
                    # grows on connections that complete, and a thread waiting for a slot gets one
                    client.disconnect()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = self.error or exc
            while self.queue.get() is not None:  # drain, so the producer never blocks
                pass

    def _upload(self, client, files: list[DayFile], merged: bool) -> None:
        from secure_irods.errors import SecureIrodsError

        with self.made_lock:  # a collection is made once, before any thread puts into it
            for parent in sorted({f.remote.rsplit("/", 1)[0] for f in files} - self.made):
                client.mkdir(parent)
                self.made.add(parent)
        try:
            done = upload_days(client, files, made=set(self.made))
        except SecureIrodsError as exc:
            if exc.transient or len(files) == 1:
                if exc.transient:
                    raise
                done = []
                self._failed(files[0], exc)
            else:  # find the one refused, store the others
                done = []
                for f in files:
                    try:
                        done += upload_days(client, [f], made=set(self.made))
                    except SecureIrodsError as one:
                        if one.transient:
                            raise
                        self._failed(f, one)
        with self.report.lock:
            (self.report.merged if merged else self.report.stored).extend(done)
            self.report.bytes_written += sum(f.size for f in files if f.remote in set(done))
        self.advance(days=len(done))

    def _failed(self, f: DayFile, exc) -> None:
        with self.report.lock:
            self.report.failed[f.remote] = f"upload refused: {_first_line(exc)}"
        f.local.unlink(missing_ok=True)


def inputs(source: str | Path) -> list[Path]:
    """The files ``source`` names: a directory (recursively), one file, or a glob pattern.

    Raises ``FileNotFoundError`` if it names nothing."""
    path = Path(source)
    if path.is_dir():
        return list(iter_files(path))
    if path.is_file():
        return [path]
    if glob.has_magic(str(source)):
        found = sorted(Path(p) for p in glob.glob(str(source), recursive=True))
        files = [f for p in found for f in (iter_files(p) if p.is_dir() else [p])]
        if files:
            return files
        raise FileNotFoundError(f"no file matches {source}")
    raise FileNotFoundError(f"no such file or directory: {source}")


def ingest(
    client: "Client",
    local: str | Path | Iterable[Path],
    collection: str,
    layout: Layout,
    *,
    progress: bool | None = None,
    console: Console | None = None,
    typ: str = "D",
    cache_dir: str | Path | None = None,
    codes: CodeMap | None = None,
    jobs: int = 1,
    connect: Callable[[], "Client"] | None = None,
    merge_existing: bool = False,
    report: IngestReport | None = None,
) -> IngestReport:
    """Store every file ObsPy reads in ``local`` as day files in ``collection``.

    ``local``: a directory (recursively), a file, a glob pattern, or a list of files.
    ``client`` is a :class:`secure_irods.Client`: the catalogue queries go through it,
    and the uploads too if ``jobs == 0``; otherwise ``jobs`` threads upload, each with
    its own Client from ``connect()`` (default: ``client.copy``: the same settings,
    sharing its deadline).  ``codes``: explicit code mappings.
    ``merge_existing``: extend existing day files (``--merge``) instead of leaving them.
    ``progress``: a rich progress bar on stderr (default: only when stderr is a
    terminal; otherwise a line every 30 s; ``False``: nothing).  Never raises for a
    bad input file or station: see the returned :class:`IngestReport`.  A zone failure
    (transient at the deadline, authentication) raises; pass ``report`` to keep what
    was done until then (the CLI writes it on every exit path).
    """
    from .catalogue import Catalogue

    paths = inputs(local) if isinstance(local, (str, Path)) else list(local)
    codes = codes or CodeMap()
    report = report if report is not None else IngestReport()
    started = time.monotonic()
    root = client.resolve(collection)
    client.mkdir(root)   # the target first: a zone or permission problem before any file is read
    try:
        with _Progress(progress, console) as bar, \
                tempfile.TemporaryDirectory(prefix="seisstore-ingest-") as tmp:
            stations = _scan(paths, codes, report, bar.count)
            sizes = {path: size for files in stations.values() for path, size, _ in files}
            bar.start_stations(report.files_seen, sum(sizes.values()))
            cat = Catalogue(client, root, layout, cache=cache_dir is not None, cache_dir=cache_dir)
            uploads = _Uploads(client, jobs, connect, report, bar.count)
            state = _Run(client, root, layout, cat, typ, Path(tmp), uploads, report, merge_existing)
            try:
                for station in sorted(stations):   # one station in memory at a time
                    _station(state, station, stations[station], codes, bar.count)
            finally:
                uploads.close()
    finally:
        report.seconds = time.monotonic() - started
    log.info("ingest -> %s: %s", collection, report.summary())
    return report


@dataclass
class _Run:
    """What every station of one ingest shares."""

    client: "Client"
    root: str
    layout: Layout
    cat: "Catalogue"
    typ: str
    tmp: Path
    uploads: _Uploads
    report: IngestReport
    merge_existing: bool
    labelled: set[str] | None = None
    counter: Iterator[int] = field(default_factory=lambda: iter(range(1 << 62)))


def _station(run: _Run, station, files, codes: CodeMap, advance: Callable) -> None:
    """Read, cut, encode and queue one station; a failure of its data skips it with the reason.

    Zone errors (ours) go up: the run's outcome depends on them, not on this station."""
    from secure_irods.errors import SecureIrodsError

    name = ".".join(station)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                _store_station(run, station, files, codes, advance)
            finally:
                run.report.warn(name, [str(w.message) for w in caught])
    except SecureIrodsError:
        raise
    except Exception as exc:  # a trace ObsPy or numpy cannot handle: this station only
        log.info("station %s skipped: %r", name, exc)
        with run.report.lock:
            run.report.failed[name] = f"station skipped: {type(exc).__name__}: {_first_line(exc)}"


def _store_station(run: _Run, station, files, codes: CodeMap, advance: Callable) -> None:
    report, cat = run.report, run.cat
    stream = _read_station(station, files, codes, report, advance)
    sources = _sources_by_day(stream, run.typ)
    days = split_days(merge(stream), run.typ)
    present = {k: d for k, d in days.items() if k in cat}
    if present and run.merge_existing:
        present = _merge_into(run.client, cat, present, days, sources, run.tmp, run.counter, run.uploads, report)
    if present:
        report.existing += [cat[k].path for k in present]
        run.labelled = _labelled(run.client, run.root) if run.labelled is None else run.labelled
        report.repaired += _complete_avus(run.client, cat, present, run.labelled, sources)
    new = sorted(k for k in days if k not in cat)
    for lo in range(0, len(new), BATCH):
        files_ = []
        for key in new[lo:lo + BATCH]:
            remote = f"{run.root}/{run.layout.path(key)}"
            try:
                files_.append(encode_day(key, days[key], run.tmp / f"{next(run.counter):09d}.mseed",
                                         remote, sources=sources.get(key)))
            except UnencodableError as exc:
                with report.lock:
                    report.failed[remote] = str(exc)
        if files_:
            run.uploads.submit(files_)


def _merge_into(client, cat, present: dict, days: dict, sources: dict, tmp: Path, counter, uploads,
                report: IngestReport) -> dict:
    """Extend the existing day files that the new data adds to; returns those left as they were."""
    import obspy

    left = {}
    for key, day in present.items():
        path = cat.get(key).path
        local = tmp / f"{next(counter):09d}.old.mseed"
        client.get(path, local, force=True)
        old = obspy.read(str(local), format="MSEED")
        local.unlink()
        if covers(old, day):
            left[key] = day
            continue
        combined = merge(old + day)
        if not (covers(combined, old) and covers(combined, day)):
            with report.lock:
                report.failed[path] = "merge would lose samples (kept the existing day file)"
            continue
        before = set(client.avus(path).get("source_encoding", [""])[0].split(",")) - {""}
        try:
            f = encode_day(key, combined, tmp / f"{next(counter):09d}.mseed", path,
                           sources=before | sources.get(key, set()), force=True)
        except UnencodableError as exc:
            with report.lock:
                report.failed[path] = str(exc)
            continue
        uploads.submit([f], merged=True)
    return left


def _labelled(client, root: str) -> set[str]:
    """Paths under ``root`` that carry ``npts``, the AVU set last: their labels are complete.

    One bulk query (a call per 500 objects), made once per ingest and only if some day
    files were already there."""
    q = (Query("COLL_NAME", "DATA_NAME").under(root)
         .where("META_DATA_ATTR_NAME", "=", "npts"))
    return {f"{coll}/{name}" for coll, name in client.query(q)}


def _complete_avus(client, cat, present: dict, labelled: set[str], sources: dict) -> list[str]:
    """Set the AVUs of day files a killed run stored but did not label; returns their paths.

    The AVUs go on after the atomic put, so a run killed in between leaves an object
    without them that a re-run would otherwise skip."""
    repaired = []
    for key, day in present.items():
        path = cat.get(key).path
        if path not in labelled:
            client.set_avus(path, day_avus(key, day, encoding=planned_encoding(day), sources=sources.get(key)))
            repaired.append(path)
    return repaired


class _Progress(Meter):
    """The ingest's progress: headers read (files), stations cut (bytes), day files uploaded."""

    def __init__(self, enabled: bool | None, console: Console | None) -> None:
        super().__init__(console, label="ingest", every=0 if enabled is False else 30.0, enabled=enabled)
        self.files = self.task("headers (files)")
        self.cut = self.task("stations (bytes)", bytes=True, start=False)
        self.days = self.task("day files uploaded")

    def start_stations(self, files: int, total_bytes: int) -> None:
        self.update(self.files, total=files)
        self.update(self.cut, total=total_bytes)
        self.start(self.cut)

    def count(self, files: int = 0, bytes: float = 0, days: int = 0) -> None:
        """Thread-safe; what the scan, the cutting and the uploads report."""
        for task, amount in ((self.files, files), (self.cut, bytes), (self.days, days)):
            if amount:
                self.advance(task, amount)
