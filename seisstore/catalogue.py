"""What exists in a catalogue collection, from a few bulk GenQueries.

A :class:`Catalogue` is a hash table ``Key -> Entry`` of every day file under
``root`` that its :class:`~seisstore.layout.Layout` recognises, built from
GenQuery over the whole collection tree -- never one existence test per file.

Queries (each GenQuery round trip returns at most 500 rows, PRC's batch):

* **stamp query** -- one aggregate GenQuery, grouped by collection::

      COLL_NAME, count(DATA_NAME), sum(DATA_ID), sum(DATA_SIZE), max(D_MODIFY_TIME)
      where COLL_NAME = 'root' || like 'root/%'

  ``ceil(collections / 500)`` round trips (one for any SDS archive below
  500 station-channel-years).
* **row query** -- ``COLL_NAME, DATA_NAME, DATA_SIZE, D_DATA_CHECKSUM,
  D_RESC_NAME, D_MODIFY_TIME, D_REPL_STATUS`` (one row per replica) over the
  collections whose stamp changed: the whole tree on the first refresh
  (``ceil(rows / 500)`` round trips), else ``COLL_NAME in (...)`` lists of the
  changed collections only (``ceil(rows / 500)`` round trips per list of up to
  :data:`IN_CHUNK` names).

A full build therefore costs ``ceil(collections / 500) + ceil(rows / 500)``
GenQuery calls, and a refresh where nothing changed costs
``ceil(collections / 500)`` calls. Rows are per replica; only good replicas
(``D_REPL_STATUS == '1'``) count, and a data object without one is not
available (see :meth:`Catalogue.unavailable`).

A collection's *stamp* changes when an object is added, removed or replaced
(count, sum of ids), resized (sum of sizes) or rewritten (max modify time).
Modify times have a one-second resolution, so a collection whose newest
object is younger than ``settle_seconds`` at the refresh is re-read on the
next refresh as well, whatever its stamp.

The table is cached as JSON under ``cache_dir`` (default
``$XDG_CACHE_HOME/seisstore`` or ``~/.cache/seisstore``), keyed by zone, root,
layout and scope, so a new process only pays the stamp query when nothing
changed.

A catalogue may be *scoped* to networks, stations, channels and dates: the
layout's GenQuery ``LIKE`` patterns (OR-ed per dimension) then narrow both
queries on the server, and every row is confirmed exactly on the client.
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from secure_irods.errors import InvalidInputError
from secure_irods.query import Query, ReplicaStatus, quote

from .cache import cache_file, read_cache, write_cache
from .layout import Key, Layout

if TYPE_CHECKING:
    from obspy import Stream

    from secure_irods.client import Client

    from .coverage import Coverage

__all__ = [
    "Catalogue",
    "Entry",
    "QueryCounter",
    "RefreshReport",
    "Scope",
]

log = logging.getLogger(__name__)

#: Collection names per ``COLL_NAME in (...)`` condition of an incremental refresh.
IN_CHUNK = 100
#: A dimension with more values than this is filtered on the client only
#: (GenQuery conditions have a bounded length).
MAX_LIKE_VALUES = 40
#: Bumped whenever the cache file format changes.
CACHE_VERSION = 1
#: PRC asks this many rows per GenQuery round trip.
BATCH_ROWS = 500


class Entry(NamedTuple):
    """One available day file: where it is and what its good replicas say."""

    path: str
    size: int
    checksum: str
    resources: tuple[str, ...]
    modify_time: datetime.datetime


class RefreshReport(NamedTuple):
    """What one :meth:`Catalogue.refresh` did."""

    queries: int
    rows: int
    collections_read: tuple[str, ...]
    added: int
    removed: int
    changed: int
    full: bool


@dataclass
class QueryCounter:
    """GenQuery round trips (``execute`` calls) and rows a catalogue has made so far."""

    queries: int = 0
    rows: int = 0

    def snapshot(self) -> tuple[int, int]:
        return self.queries, self.rows


def _as_set(values, name: str) -> frozenset | None:
    if values is None:
        return None
    if isinstance(values, (str, datetime.date)):
        values = [values]
    out = frozenset(values)
    if not out:
        raise ValueError(f"{name}: an empty selection matches nothing; pass None for all")
    return out


@dataclass(frozen=True)
class Scope:
    """A subset of networks, stations (``STA`` or ``NET.STA``), channels and dates; ``None`` is all."""

    networks: frozenset[str] | None = None
    stations: frozenset[str] | None = None
    channels: frozenset[str] | None = None
    dates: frozenset[datetime.date] | None = None

    @classmethod
    def of(cls, stations: Iterable[str] | None = None, dates: Iterable[datetime.date] | None = None,
           channels: Iterable[str] | None = None, networks: Iterable[str] | None = None) -> "Scope":
        dates_set = _as_set(dates, "dates")
        if dates_set is not None:
            for d in dates_set:
                if isinstance(d, datetime.datetime) or not isinstance(d, datetime.date):
                    raise ValueError(f"dates must be datetime.date values, got {d!r}")
        return cls(_as_set(networks, "networks"), _as_set(stations, "stations"),
                   _as_set(channels, "channels"), dates_set)

    @property
    def everything(self) -> bool:
        return self == Scope()

    def __contains__(self, key: Key) -> bool:
        if self.networks is not None and key.net not in self.networks:
            return False
        if self.stations is not None and key.sta not in self.stations \
                and f"{key.net}.{key.sta}" not in self.stations:
            return False
        if self.channels is not None and key.cha not in self.channels:
            return False
        if self.dates is not None and key.day not in self.dates:
            return False
        return True

    def token(self) -> str:
        def part(values: Iterable[object] | None) -> list[str] | None:
            return None if values is None else sorted(str(v) for v in values)
        return json.dumps([part(self.networks), part(self.stations), part(self.channels),
                           part(self.dates)])


def _epoch(value) -> int:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp())
    return int(value)


def _utc(epoch: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)


def _quote(value: str) -> str:
    # GenQuery has no escape for quotes; layout codes are alphanumeric and the
    # root is the caller's, so refuse rather than build a broken condition.
    try:
        return quote(value)
    except InvalidInputError as exc:
        raise ValueError(exc.message) from None


class Catalogue:
    """Hash tables of the day files under ``root`` in ``layout``, from bulk GenQuery.

    ``Catalogue(client, root, layout)`` (a :class:`secure_irods.Client`) loads its cache (if any) and calls
    :meth:`refresh`: ``ceil(collections / 500) + ceil(rows / 500)`` GenQuery
    calls the first time, ``ceil(collections / 500)`` plus the rows of the
    changed collections afterwards. Pass ``refresh=False`` to defer,
    ``cache=False`` to keep nothing on disk, and ``stations=``, ``dates=``,
    ``channels=``, ``networks=`` to index a subset only.
    """

    def __init__(
        self,
        client: "Client",
        root: str,
        layout: Layout,
        *,
        stations: Iterable[str] | None = None,
        dates: Iterable[datetime.date] | None = None,
        channels: Iterable[str] | None = None,
        networks: Iterable[str] | None = None,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        settle_seconds: float = 2.0,
        refresh: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(layout, Layout):
            raise TypeError(f"layout must be a seisstore Layout, got {layout!r}")
        if not isinstance(root, str) or not root.startswith("/"):
            raise ValueError(f"root must be an absolute iRODS collection path, got {root!r}")
        self.client = client
        self.root = root.rstrip("/") or "/"
        _quote(self.root)
        self.layout = layout
        self.scope = Scope.of(stations=stations, dates=dates, channels=channels, networks=networks)
        self.settle_seconds = settle_seconds
        self.counter = QueryCounter()
        self._clock = clock
        self._entries: dict[Key, Entry] = {}
        self._by_coll: dict[str, set[Key]] = {}
        self._unavailable: dict[str, set[str]] = {}
        self._stamps: dict[str, tuple[int, int, int, int]] = {}
        self._unsettled: set[str] = set()
        self._sorted: list[Key] | None = None
        self._loaded = False
        self._cache_path: Path | None = None
        if cache:
            zone = client.environment.settings.get("irods_zone_name", "")
            self._cache_path = cache_file("catalogue", [zone, self.root, layout.fmtstr, self.scope.token()],
                                          cache_dir)
            self._load_cache()
        if refresh:
            self.refresh()

    # ------------------------------------------------------------------ queries --
    def _execute(self, query: Query) -> list[tuple]:
        """Rows of ``query`` through the client (retried, throttled, under its deadline).

        One counted GenQuery round trip per 500-row batch.
        """
        def batch() -> None:
            self.counter.queries += 1

        rows = self.client.query(query, on_batch=batch)
        self.counter.rows += len(rows)
        return rows

    def _conditions(self, query: Query, colls: list[str] | None) -> Query:
        """``query`` over the tree (or the given collections), narrowed by the scope."""
        if colls is None:
            query = query.under(self.root)
        else:
            query = query.where_in("COLL_NAME", colls)
        s = self.scope
        dims = [
            ("net", s.networks),
            ("sta", s.stations and {v.split(".")[-1] for v in s.stations}),
            ("cha", s.channels),
            ("day", s.dates),
        ]
        anywhere = {self.root, f"{self.root}/%"}
        for name, values in dims:
            if not values or len(values) > MAX_LIKE_VALUES:
                continue
            pats = [self.layout.like(root=self.root, **{name: v}) for v in sorted(values)]  # type: ignore[arg-type]
            coll_pats = sorted({p.collection for p in pats})
            data_pats = sorted({p.data_name for p in pats})
            if not set(coll_pats) <= anywhere:
                query = query.where_any("COLL_NAME", [("like", p) for p in coll_pats])
            if data_pats != ["%"]:
                query = query.where_any("DATA_NAME", [("like", p) for p in data_pats])
        return query

    def _stamp_query(self) -> dict[str, tuple[int, int, int, int]]:
        q = self._conditions(Query("COLL_NAME", "count(DATA_NAME)", "sum(D_DATA_ID)", "sum(DATA_SIZE)",
                                   "max(D_MODIFY_TIME)"), None)
        stamps = {}
        for coll, count, ids, size, mtime in self._execute(q):
            stamps[coll] = (int(count), int(ids), int(size or 0), int(mtime or 0))
        return stamps

    def _row_queries(self, colls: list[str] | None) -> Iterator:
        cols = Query("COLL_NAME", "DATA_NAME", "DATA_SIZE", "D_DATA_CHECKSUM", "D_RESC_NAME", "D_MODIFY_TIME",
                     "D_REPL_STATUS")
        chunks = [None] if colls is None else [colls[i:i + IN_CHUNK]
                                               for i in range(0, len(colls), IN_CHUNK)]
        for chunk in chunks:
            q = self._conditions(cols, chunk)
            for coll, name, size, checksum, resc, mtime, status in self._execute(q):
                yield coll, name, int(size or 0), checksum, resc, int(mtime or 0), status

    # ------------------------------------------------------------------ refresh --
    def refresh(self, full: bool = False) -> RefreshReport:
        """Bring the table up to date; re-read only collections whose stamp changed.

        GenQuery calls: ``ceil(collections / 500)`` for the stamps, plus
        ``ceil(rows / 500)`` for the whole tree on the first (or ``full``)
        refresh, else ``ceil(rows / 500)`` per list of up to :data:`IN_CHUNK`
        changed collections.
        """
        q0, r0 = self.counter.snapshot()
        started = self._clock()
        stamps = self._stamp_query()
        first = full or not self._loaded
        if first:
            changed = set(stamps)
        else:
            changed = {c for c, st in stamps.items() if self._stamps.get(c) != st}
            changed |= self._unsettled & set(stamps)
        gone = set(self._by_coll) | set(self._unavailable) | set(self._stamps)
        gone -= set(stamps)
        # Reading everything is cheaper than many IN lists when most changed.
        whole = first or len(changed) > max(IN_CHUNK, len(stamps) // 2)
        rows: dict[str, list] = defaultdict(list)
        nrows = 0
        if changed:
            for row in self._row_queries(None if whole else sorted(changed)):
                nrows += 1
                rows[row[0]].append(row[1:])
        if whole:
            changed = set(stamps) | set(rows)
            gone = (set(self._by_coll) | set(self._unavailable)) - changed
        added = removed = modified = 0
        for coll in gone | changed:
            old = {k: self._entries[k] for k in self._by_coll.pop(coll, ())}
            for k in old:
                del self._entries[k]
            self._unavailable.pop(coll, None)
            new = self._fold_replicas(coll, rows.get(coll, ()))
            added += len(new.keys() - old.keys())
            removed += len(old.keys() - new.keys())
            modified += sum(1 for k in new.keys() & old.keys() if new[k] != old[k])
        self._stamps = dict(stamps)
        horizon = started - self.settle_seconds
        self._unsettled = {c for c, st in stamps.items() if st[3] >= horizon}
        self._loaded = True
        self._sorted = None
        self._save_cache()
        q1, _ = self.counter.snapshot()
        report = RefreshReport(q1 - q0, nrows, tuple(sorted(changed)), added, removed, modified,
                               whole)
        log.debug("catalogue %s refreshed: %s", self.root, report)
        return report

    def _fold_replicas(self, coll: str, rows: Iterable[tuple]) -> dict[Key, Entry]:
        """Fold the per-replica rows of one collection into entries; store and return them."""
        replicas: dict[str, list[tuple]] = defaultdict(list)
        for name, size, checksum, resc, mtime, status in rows:
            replicas[name].append((status, size, checksum, resc, mtime))
        new: dict[Key, Entry] = {}
        for name in sorted(replicas):
            key = self.layout.parse_object(self.root, coll, name)
            if key is None or key not in self.scope:
                continue
            good = sorted(r for r in replicas[name] if r[0] == ReplicaStatus.GOOD)
            if not good:
                self._unavailable.setdefault(coll, set()).add(f"{coll}/{name}")
                continue
            checksum = next((r[2] for r in good if r[2]), "")
            new[key] = Entry(f"{coll}/{name}", good[0][1], checksum,
                             tuple(sorted({r[3] for r in good})), _utc(max(r[4] for r in good)))
        self._store(coll, new)
        return new

    def _store(self, coll: str, new: dict[Key, Entry]) -> None:
        if new:
            self._by_coll[coll] = set(new)
            self._entries.update(new)

    # -------------------------------------------------------------------- cache --
    def _load_cache(self) -> None:
        path = self._cache_path
        data = None if path is None else read_cache(path)
        if data is None:
            return
        try:
            if data.get("version") != CACHE_VERSION or data.get("root") != self.root \
                    or data.get("layout") != self.layout.fmtstr:
                log.info("catalogue cache %s is for another catalogue; ignored", path)
                return
            for coll, item in data["collections"].items():
                self._stamps[coll] = tuple(item["stamp"])
                new = {}
                for name, size, checksum, resources, mtime in item["objects"]:
                    key = self.layout.parse_object(self.root, coll, name)
                    if key is not None:
                        new[key] = Entry(f"{coll}/{name}", size, checksum, tuple(resources),
                                         _utc(mtime))
                self._store(coll, new)
                if item.get("unavailable"):
                    self._unavailable[coll] = set(item["unavailable"])
            self._unsettled = set(data.get("unsettled", ()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable catalogue cache %s: %s", path, exc)
            self._entries.clear()
            self._by_coll.clear()
            self._unavailable.clear()
            self._stamps.clear()
            self._unsettled = set()
            return
        self._loaded = True
        log.debug("catalogue cache %s: %d entries", path, len(self._entries))

    def _save_cache(self) -> None:
        path = self._cache_path
        if path is None:
            return
        colls: dict[str, dict] = {}
        for coll, stamp in self._stamps.items():
            objects = []
            for key in sorted(self._by_coll.get(coll, ())):
                e = self._entries[key]
                objects.append([e.path.rsplit("/", 1)[1], e.size, e.checksum, list(e.resources),
                                _epoch(e.modify_time)])
            colls[coll] = {"stamp": list(stamp), "objects": objects,
                           "unavailable": sorted(self._unavailable.get(coll, ()))}
        data = {"version": CACHE_VERSION, "root": self.root, "layout": self.layout.fmtstr,
                "unsettled": sorted(self._unsettled), "collections": colls}
        write_cache(path, data)

    @property
    def cache_path(self) -> Path | None:
        return self._cache_path

    # ------------------------------------------------------------------ mapping --
    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys())

    def get(self, key: Key, default: Entry | None = None) -> Entry | None:
        """The :class:`Entry` of ``key``, or ``default``; no query."""
        return self._entries.get(key, default)

    def __getitem__(self, key: Key) -> Entry:
        return self._entries[key]

    def keys(self) -> list[Key]:
        """All available keys, sorted (net, sta, loc, cha, day, typ); no query."""
        if self._sorted is None:
            self._sorted = sorted(self._entries)
        return list(self._sorted)

    def unavailable(self) -> list[str]:
        """Paths of layout files that have no good replica (excluded from the table)."""
        return sorted(p for paths in self._unavailable.values() for p in paths)

    def select(self, stations: Iterable[str] | None = None, dates: Iterable[datetime.date] | None = None,
               channels: Iterable[str] | None = None, networks: Iterable[str] | None = None,
               ) -> Iterator[tuple[Key, Entry]]:
        """Lazily yield ``(Key, Entry)`` matching all given filters, in key order; no query.

        ``stations`` takes ``STA`` or ``NET.STA`` codes; ``dates`` takes
        :class:`datetime.date` values; each may be one value or an iterable.
        """
        scope = Scope.of(stations=stations, dates=dates, channels=channels, networks=networks)
        if self._sorted is None:
            self._sorted = sorted(self._entries)
        keys = self._sorted
        for key in keys:
            if key in scope:
                entry = self._entries.get(key)
                if entry is not None:
                    yield key, entry

    def stations(self) -> list[tuple[str, str]]:
        """Sorted ``(net, sta)`` pairs with at least one available file."""
        return sorted({(k.net, k.sta) for k in self._entries})

    def days(self) -> list[datetime.date]:
        """Sorted days with at least one available file."""
        return sorted({k.day for k in self._entries})

    def coverage(self, stations: Iterable[str] | None = None, dates: Iterable[datetime.date] | None = None,
                 channels: Iterable[str] | None = None, networks: Iterable[str] | None = None) -> "Coverage":
        """Station x day availability of the selection (see :class:`seisstore.coverage.Coverage`)."""
        from .coverage import Coverage

        return Coverage.from_keys(
            k for k, _ in self.select(stations=stations, dates=dates, channels=channels,
                                      networks=networks))

    # ------------------------------------------------------------ read/write --
    def read(self, selection: Iterable | None = None, *, prefetch: int = 2, client: "Client | None" = None,
             tmpdir: str | os.PathLike[str] | None = None) -> Iterator[tuple[Key, "Stream"]]:
        """Yield ``(Key, obspy.Stream)`` of ``selection`` with ``prefetch`` downloads ahead; no query.

        See :func:`seisstore.reader.read`.
        """
        from .reader import read

        return read(self, selection, client=client, prefetch=prefetch, tmpdir=tmpdir)

    def write(self, stream: "Stream", client: "Client", *, force: bool = False, typ: str = "D",
              refresh: bool = True) -> list[str]:
        """Store ``stream`` as day files at their layout paths, with AVUs; see :func:`seisstore.reader.write`."""
        from .reader import write

        return write(self, stream, client, force=force, typ=typ, refresh=refresh)

    def __repr__(self) -> str:
        return f"Catalogue({self.root!r}, {self.layout!r}, {len(self)} entries)"



def expected_queries(rows: int, collections: int = 1) -> int:
    """GenQuery calls of a full build: stamps plus rows, 500 a batch."""
    return max(1, math.ceil(collections / BATCH_ROWS)) + max(1, math.ceil(rows / BATCH_ROWS))
