"""Correlation bundles: HDF5 files of 100-500 MB, read selectively in the zone, indexed by AVUs.

Format (``seisstore-bundle/1``, see ``docs/bundles.md``)::

    /                       attrs: format, code_version, job, sampling_rate, max_lag_s,
                                   window_s, step_s, substack_s, chain, created
    /lags                   (n_lag,) float64, seconds, -max_lag..+max_lag
    /pairs/<A>:<B>          (n_dates, n_substacks, n_lag) float32, contiguous: the
                            correlations of stations A and B, one row per date
                            attrs: dates (ISO strings, the rows), station_a, station_b,
                                   coords_a, coords_b (lat, lon, elevation m; NaN unknown),
                                   distance_m, n_windows (n_dates, n_substacks)

One 2-D (3-D with substacks) dataset per pair over its dates, not one per (pair, date):
a day's correlation is one row of it, so reading (pair, date) is one contiguous byte
range, and reading a pair's whole history (what a stack wants) is one range too; and
the metadata (one object header per pair, not per pair-date) stays small.  Every
dataset is created, with its attributes, before any sample is written, into a file with
HDF5's paged file-space strategy and a metadata block sized for all of them, so the
whole metadata sits in the first ``head`` bytes of the file and the raw data after it:
a remote reader fetches the head in one request, then one range per correlation.

A bundle in the zone carries AVUs (set in one atomic call after the atomic put, so a
bundle without them is a leftover of a killed job and is not indexed):

=====================  ==============================================================
``bundle.format``      ``seisstore-bundle/1``
``bundle.job``         the campaign line (job name) that wrote it
``bundle.dates.K``     ISO dates of the bundle, comma-separated (chunks of < 2000 chars)
``bundle.pairs.K``     ``A:B`` or ``A:B/MASK`` (hex bit mask of the bundle dates the pair
                       has, when not all), comma-separated, in chunks
``bundle.head``        bytes of metadata at the start of the file
``bundle.code``        code version that computed it
``bundle.rate``        sampling rate of the correlations (Hz)
``provenance.chain``   preprocessing chain (canonical JSON) of the inputs
``provenance.inputs.K`` ``NET.STA.LOC.CHA.YYYY-MM-DD=checksum`` of every input day file
=====================  ==============================================================

:class:`BundleIndex` answers "which bundle holds (pair, date)" from these AVUs with one
bulk GenQuery (a stamp query first when cached), opening no bundle.
:class:`CorrelationStore` is what jobs and commands use: ``contains`` / ``append`` /
``read`` over the bundles of one collection, as NoisePy's ``CrossCorrelationDataStore``.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from secure_irods.query import Query

from .cache import cache_file, read_cache, write_cache

if TYPE_CHECKING:
    from secure_irods.client import Client

__all__ = ["FORMAT", "DEFAULT_BUNDLE_SIZE", "BundleInfo", "BundleIndex", "LocalBundle", "CorrelationStore",
           "Correlation", "pack", "pair_name", "read_pairs", "bundle_avus", "parse_pair"]

log = logging.getLogger(__name__)

FORMAT = "seisstore-bundle/1"
DEFAULT_BUNDLE_SIZE = 256 * 1024 * 1024
PAGE = 4096
AVU_CHUNK = 1800          # characters per AVU value (iRODS caps values at 2700)
INDEX_ATTRS = ("bundle.format", "bundle.job", "bundle.head", "bundle.code", "bundle.rate")


def pair_name(a: str, b: str) -> str:
    return f"{a}:{b}"


def parse_pair(text: str) -> tuple[str, str]:
    a, sep, b = text.partition(":")
    if not sep or not a or not b:
        raise ValueError(f"not a pair A:B: {text!r}")
    return a, b


def pack(pairs: Sequence[tuple[str, str]], dates_of: Mapping[tuple[str, str], Sequence[datetime.date]],
         row_bytes: int, target: int = DEFAULT_BUNDLE_SIZE) -> list[list[tuple[str, str]]]:
    """Pairs grouped, in order, into bundles of about ``target`` bytes (a pair is never split).

    Deterministic: the same pairs, dates and sizes give the same bundles, so a rerun of
    a line finds its bundles by name.
    """
    groups: list[list[tuple[str, str]]] = []
    size = 0
    for pair in pairs:
        n = len(dates_of.get(pair, ()))
        if not n:
            continue
        b = n * row_bytes
        if not groups or (size + b > target and groups[-1]):
            groups.append([])
            size = 0
        groups[-1].append(pair)
        size += b
    return groups


def _distance(ca: Sequence[float], cb: Sequence[float]) -> float:
    if not (np.isfinite(ca[:2]).all() and np.isfinite(cb[:2]).all()):
        return float("nan")
    from obspy.geodetics import gps2dist_azimuth

    return float(gps2dist_azimuth(ca[0], ca[1], cb[0], cb[1])[0])


class LocalBundle:
    """A bundle being written locally: every dataset created first (metadata together), rows later.

    ``pairs``: ``(a, b)`` in order; ``dates_of[(a, b)]``: that pair's dates (its rows).
    ``coords``: station -> (lat, lon, elevation m).  Close it, then upload the file.
    """

    def __init__(self, path: str | os.PathLike, pairs: Sequence[tuple[str, str]],
                 dates_of: Mapping[tuple[str, str], Sequence[datetime.date]], *, rate: float, max_lag_s: float,
                 n_sub: int, attrs: dict, coords: Mapping[str, Sequence[float]] | None = None) -> None:
        import h5py

        self.path = Path(path)
        self.pairs = list(pairs)
        self.dates_of = {p: list(dates_of[p]) for p in self.pairs}
        self.row = {p: {d: k for k, d in enumerate(self.dates_of[p])} for p in self.pairs}
        nlag = 2 * int(round(max_lag_s * rate)) + 1
        # metadata of a pair: object header, attributes (dates, coords, windows), link: ~1.5 KiB + dates
        meta = sum(1536 + 40 * len(self.dates_of[p]) * (1 + n_sub) for p in self.pairs) + 64 * 1024
        meta = max(PAGE, math.ceil(meta / PAGE) * PAGE)
        self.h5 = h5py.File(self.path, "w", libver=("v110", "latest"), fs_strategy="page", fs_page_size=PAGE,
                            fs_persist=False, meta_block_size=meta)
        nan3 = (float("nan"),) * 3
        coords = coords or {}
        self.h5.attrs.update({k: v for k, v in attrs.items() if v is not None})
        self.h5.attrs["format"] = FORMAT
        self.h5.attrs["sampling_rate"] = float(rate)
        self.h5.attrs["max_lag_s"] = float(max_lag_s)
        self.h5.create_dataset("lags", data=np.arange(-(nlag // 2), nlag // 2 + 1) / float(rate))
        group = self.h5.create_group("pairs", track_order=True)
        self.datasets = {}
        for a, b in self.pairs:
            dates = self.dates_of[(a, b)]
            ds = group.create_dataset(pair_name(a, b), shape=(len(dates), n_sub, nlag), dtype="f4")
            ca, cb = tuple(coords.get(a, nan3)), tuple(coords.get(b, nan3))
            ds.attrs["dates"] = [d.isoformat() for d in dates]
            ds.attrs["station_a"], ds.attrs["station_b"] = a, b
            ds.attrs["coords_a"], ds.attrs["coords_b"] = np.array(ca, "f8"), np.array(cb, "f8")
            ds.attrs["distance_m"] = _distance(ca, cb)
            ds.attrs["n_windows"] = np.zeros((len(dates), n_sub), dtype="i4")
            self.datasets[(a, b)] = ds
        self.h5.flush()   # every header, attribute and link placed now: before the first sample
        self.head = 0

    def write(self, pair: tuple[str, str], date: datetime.date, cc: np.ndarray, n_windows: np.ndarray) -> None:
        """Store the ``(n_sub, n_lag)`` correlations of ``pair`` on ``date``."""
        ds = self.datasets[pair]
        k = self.row[pair][date]
        ds[k] = cc
        counts = ds.attrs["n_windows"]
        counts[k] = n_windows
        ds.attrs.modify("n_windows", counts)   # in place: the metadata stays in the head

    def close(self) -> int:
        """Close the file; returns ``head``, the bytes before the first sample (all metadata)."""
        offsets = [ds.id.get_offset() for ds in self.datasets.values()]
        self.h5.close()
        offsets = [o for o in offsets if o is not None]
        self.head = min(offsets) if offsets else self.path.stat().st_size
        return self.head


def _chunks(attr: str, items: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    current: list[str] = []
    size = 0
    for item in items:
        if current and size + len(item) + 1 > AVU_CHUNK:
            out[f"{attr}.{len(out)}"] = ",".join(current)
            current, size = [], 0
        current.append(item)
        size += len(item) + 1
    if current or not out:
        out[f"{attr}.{len(out)}"] = ",".join(current) or "-"     # iRODS refuses an empty value
    return out


def bundle_avus(bundle: LocalBundle, *, job: str, code: str, rate: float, chain: str,
                inputs: dict[str, str]) -> dict[str, str]:
    """The AVUs of a written bundle (see the module docstring)."""
    dates = sorted({d for p in bundle.pairs for d in bundle.dates_of[p]})
    position = {d: k for k, d in enumerate(dates)}
    entries = []
    for a, b in bundle.pairs:
        mine = bundle.dates_of[(a, b)]
        if len(mine) == len(dates):
            entries.append(pair_name(a, b))
        else:
            mask = sum(1 << position[d] for d in mine)
            entries.append(f"{pair_name(a, b)}/{mask:x}")
    avus = {"bundle.format": FORMAT, "bundle.job": job, "bundle.head": str(bundle.head), "bundle.code": code,
            "bundle.rate": repr(float(rate)), "provenance.chain": chain[:2600] or "-"}
    avus.update(_chunks("bundle.dates", (d.isoformat() for d in dates)))
    avus.update(_chunks("bundle.pairs", entries))
    avus.update(_chunks("provenance.inputs", (f"{k}={v}" for k, v in sorted(inputs.items()))))
    return avus


@dataclass
class BundleInfo:
    """What the AVUs of one bundle say."""

    path: str
    job: str = ""
    head: int = 0
    code: str = ""
    rate: float = 0.0
    dates: list[datetime.date] = field(default_factory=list)
    pairs: dict[tuple[str, str], list[datetime.date]] = field(default_factory=dict)

    def cells(self) -> Iterator[tuple[tuple[str, str], datetime.date]]:
        for pair, dates in self.pairs.items():
            for d in dates:
                yield pair, d


def _from_avus(path: str, avus: dict[str, str]) -> BundleInfo | None:
    if avus.get("bundle.format") != FORMAT:
        return None

    def joined(attr: str) -> list[str]:
        keys = sorted((k for k in avus if k.startswith(attr + ".")), key=lambda k: int(k.rsplit(".", 1)[1]))
        return [x for k in keys for x in avus[k].split(",") if x and x != "-"]

    info = BundleInfo(path, avus.get("bundle.job", ""), int(avus.get("bundle.head", "0") or 0),
                      avus.get("bundle.code", ""), float(avus.get("bundle.rate", "0") or 0))
    info.dates = [datetime.date.fromisoformat(d) for d in joined("bundle.dates")]
    for entry in joined("bundle.pairs"):
        name, _, mask = entry.partition("/")
        pair = parse_pair(name)
        if mask:
            bits = int(mask, 16)
            info.pairs[pair] = [d for k, d in enumerate(info.dates) if bits >> k & 1]
        else:
            info.pairs[pair] = list(info.dates)
    return info


class BundleIndex:
    """``(pair, date) -> bundle`` for every bundle under ``root``, from AVUs (bulk GenQuery).

    Costs: one stamp GenQuery (count of the ``bundle.*`` AVUs, sums of object ids and sizes, newest AVU time, per
    collection); if it differs from the cached one (or there is no cache), one row
    GenQuery over every ``bundle.*`` AVU of the tree, ``ceil(rows / 500)`` round trips
    (about ``4 + pairs / 100`` rows per bundle).  No bundle is opened.  The table is
    cached as JSON beside the day-file catalogue's cache.
    """

    def __init__(self, client: "Client", root: str, *, cache: bool = True,
                 cache_dir: str | os.PathLike[str] | None = None, refresh: bool = True) -> None:
        self.client = client
        self.root = client.resolve(root).rstrip("/")
        self.bundles: dict[str, BundleInfo] = {}
        self._table: dict | None = None
        self.queries = 0
        self._stamp: list | None = None
        self._cache_path = None
        if cache:
            zone = client.environment.settings.get("irods_zone_name", "")
            self._cache_path = cache_file("bundles", [zone, self.root, FORMAT], cache_dir)
        if refresh:
            self.refresh()

    def _where(self, q: Query) -> Query:
        return (q.under(self.root)
                .where("META_DATA_ATTR_NAME", "like", "bundle.%"))

    def _rows(self, q: Query) -> list[tuple]:
        def batch() -> None:
            self.queries += 1

        return self.client.query(q, on_batch=batch)

    def refresh(self) -> None:
        """Bring the table up to date (see the class docstring for the cost)."""
        stamp = sorted(list(r) for r in self._rows(self._where(
            Query("COLL_NAME", "count(META_DATA_ATTR_ID)", "sum(D_DATA_ID)", "max(META_DATA_MODIFY_TIME)",
                  "sum(DATA_SIZE)"))))
        if self._stamp is None:
            self._load_cache()
        if self._stamp == stamp:
            return
        self._table = None
        found: dict[str, dict[str, str]] = defaultdict(dict)
        for coll, name, attr, value in self._rows(self._where(
                Query("COLL_NAME", "DATA_NAME", "META_DATA_ATTR_NAME", "META_DATA_ATTR_VALUE"))):
            found[f"{coll}/{name}"][attr] = value
        self.bundles = {}
        for path, avus in sorted(found.items()):
            info = _from_avus(path, avus)
            if info is not None:
                self.bundles[path] = info
        self._stamp = stamp
        self._save_cache()

    def _load_cache(self) -> None:
        data = None if self._cache_path is None else read_cache(self._cache_path)
        if data is None:
            return
        try:
            bundles = {}
            for path, item in data["bundles"].items():
                info = BundleInfo(path, item["job"], item["head"], item["code"], item["rate"],
                                  [datetime.date.fromisoformat(d) for d in item["dates"]])
                for name, dates in item["pairs"]:
                    info.pairs[parse_pair(name)] = [datetime.date.fromisoformat(d) for d in dates]
                bundles[path] = info
            self.bundles, self._stamp, self._table = bundles, data["stamp"], None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable bundle index cache %s: %s", self._cache_path, exc)

    def _save_cache(self) -> None:
        if self._cache_path is None:
            return
        write_cache(self._cache_path, {"root": self.root, "stamp": self._stamp, "bundles": {
            p: {"job": i.job, "head": i.head, "code": i.code, "rate": i.rate,
                "dates": [d.isoformat() for d in i.dates],
                "pairs": [[pair_name(*pr), [d.isoformat() for d in ds]] for pr, ds in i.pairs.items()]}
            for p, i in self.bundles.items()}})

    # ---------------------------------------------------------------- lookups

    def cells(self) -> Iterator[tuple[tuple[str, str], datetime.date, str]]:
        """Every ``(pair, date, bundle path)``, bundles in path order."""
        for path, info in self.bundles.items():
            for pair, d in info.cells():
                yield pair, d, path

    def table(self) -> dict[tuple[tuple[str, str], datetime.date], list[str]]:
        """``(pair, date) -> [bundle paths]`` (more than one only if bundles overlap); no query."""
        if self._table is None:
            out: dict = defaultdict(list)
            for pair, d, path in self.cells():
                out[(pair, d)].append(path)
            self._table = dict(out)
        return {k: list(v) for k, v in self._table.items()}

    def find(self, pair: tuple[str, str], date: datetime.date) -> str | None:
        """The bundle holding ``(pair, date)``, or None."""
        if self._table is None:
            self.table()
        paths = (self._table or {}).get((tuple(pair), date))
        return paths[0] if paths else None

    def pairs(self) -> list[tuple[str, str]]:
        return sorted({pair for pair, _, _ in self.cells()})

    def dates(self) -> list[datetime.date]:
        return sorted({d for _, d, _ in self.cells()})

    def select(self, pairs: Iterable[tuple[str, str]] | None = None,
               dates: Iterable[datetime.date] | None = None) -> dict[str, list[tuple[tuple[str, str], datetime.date]]]:
        """Bundle path -> the ``(pair, date)`` cells wanted from it (each cell once)."""
        want_pairs = None if pairs is None else {tuple(p) for p in pairs}
        want_dates = None if dates is None else set(dates)
        out: dict[str, list] = defaultdict(list)
        for (pair, d), paths in sorted(self.table().items()):
            if (want_pairs is None or pair in want_pairs) and (want_dates is None or d in want_dates):
                out[paths[0]].append((pair, d))
        return dict(out)


@dataclass
class Correlation:
    """One correlation read from a bundle."""

    pair: tuple[str, str]
    date: datetime.date
    data: np.ndarray            # (n_substacks, n_lag)
    lags: np.ndarray
    rate: float
    distance_m: float
    coords_a: np.ndarray
    coords_b: np.ndarray
    n_windows: np.ndarray
    bundle: str


def read_pairs(client: "Client", index: BundleIndex, pairs: Iterable[tuple[str, str]] | None = None,
               dates: Iterable[datetime.date] | None = None, *, stats: dict | None = None,
               streams: int | None = None, cells=None, max_gap: int | None = None) -> Iterator[Correlation]:
    """The correlations of ``pairs`` x ``dates`` (None: all), or of exactly the ``(pair, date)``
    ``cells`` given, read selectively bundle by bundle.

    Each bundle is opened once (:meth:`secure_irods.Client.open`): its head (all the
    metadata) in one request; then the byte ranges of the rows wanted, coalesced and read
    over up to ``streams`` connections at once (:class:`seisstore.ranges.RangeReader`;
    default :data:`seisstore.ranges.DEFAULT_STREAMS`, extra ones only from free throttle
    slots; ranges closer than ``max_gap`` bytes read as one).  ``stats`` (a dict) receives
    ``round_trips``, ``bytes``, ``bundles``, ``spans`` and ``streams``.
    """
    import h5py

    from .ranges import DEFAULT_MAX_GAP, DEFAULT_STREAMS, RangeReader, Spares

    spares = Spares()
    only = None if cells is None else {(tuple(p), d) for p, d in cells}
    if only is not None:
        pairs, dates = sorted({p for p, _ in only}), sorted({d for _, d in only})
    for path, chosen in index.select(pairs, dates).items():
        chosen = [c for c in chosen if only is None or c in only]
        if not chosen:
            continue
        info = index.bundles[path]
        with client.open(path, head=info.head or 1024 * 1024) as remote, \
                RangeReader(client, remote, min(streams or DEFAULT_STREAMS, len(chosen)), spares) as reader:
            with h5py.File(remote, "r") as h5:
                lags = h5["lags"][()]
                rate = float(h5.attrs["sampling_rate"])
                found: list = []
                requests: list = []
                for pair, d in chosen:
                    ds = h5["pairs"][pair_name(*pair)]
                    rows = [x.decode() if isinstance(x, bytes) else str(x) for x in ds.attrs["dates"]]
                    k = rows.index(d.isoformat())
                    offset = ds.id.get_offset()
                    shape, dtype = ds.shape[1:], ds.dtype
                    size = int(np.prod(shape)) * dtype.itemsize
                    meta = (pair, d, k, float(ds.attrs["distance_m"]), ds.attrs["coords_a"], ds.attrs["coords_b"],
                            ds.attrs["n_windows"][k])
                    if offset is None or ds.compression or ds.chunks:   # not one plain range: h5py reads it
                        found.append((meta, ds[k]))
                    else:
                        found.append((meta, (shape, dtype, len(requests))))
                        requests.append((offset + k * size, size))
                head = (remote.round_trips, remote.bytes_fetched)
            got = reader.read(requests, max_gap=DEFAULT_MAX_GAP if max_gap is None else max_gap, stats=stats)
            for (pair, d, k, dist, ca, cb, nw), data in found:
                if isinstance(data, tuple):
                    shape, dtype, i = data
                    data = np.frombuffer(got[i], dtype=dtype).reshape(shape)
                yield Correlation(pair, d, data, lags, rate, dist, ca, cb, nw, path)
        if stats is not None:
            stats["round_trips"] = stats.get("round_trips", 0) + head[0]
            stats["bytes"] = stats.get("bytes", 0) + head[1]
            stats["bundles"] = stats.get("bundles", 0) + 1


Cell = tuple[tuple[str, str], datetime.date]


class CorrelationStore:
    """The correlations under one collection: ``contains`` / ``append`` / ``read``.

    As NoisePy's ``CrossCorrelationDataStore``, so a job, the stack command and dv/v share
    one way in and a rerun skips finished work.  Unlike NoisePy's, the unit written is a
    bundle (many pairs x dates in one 100-500 MB object) while the unit read stays one
    (pair, date): ``read`` fetches only the rows wanted.  The index is read once, when the
    store is made (:class:`BundleIndex`: one or two bulk GenQueries, no bundle opened).
    """

    def __init__(self, client: "Client", root: str, *, cache: bool = True, create: bool = False) -> None:
        self.client = client
        self.root = client.resolve(root).rstrip("/")
        if create:
            client.mkdir(self.root)
        self.index = BundleIndex(client, self.root, cache=cache)

    def path(self, job: str, k: int) -> str:
        """Where the ``k``-th bundle of campaign line ``job`` goes (its name is how a rerun finds it)."""
        return f"{self.root}/{job}.b{k:03d}.h5"

    def contains(self, path: str, cells: Iterable[Cell]) -> bool:
        """Whether the bundle at ``path`` is indexed and holds every one of ``cells``."""
        info = self.index.bundles.get(path)
        return info is not None and set(cells) <= set(info.cells())

    def append(self, path: str, bundle: LocalBundle, *, job: str, code: str, rate: float, chain: str,
               inputs: dict[str, str]) -> None:
        """Store a closed local bundle at ``path``: atomic put (a temporary object renamed once its
        checksum matches), then its AVUs in one call, so it is indexed only when whole."""
        self.client.put(bundle.path, path, force=True)
        self.client.set_avus(path, bundle_avus(bundle, job=job, code=code, rate=rate, chain=chain, inputs=inputs))

    def read(self, pairs: Iterable[tuple[str, str]] | None = None, dates: Iterable[datetime.date] | None = None, *,
             stats: dict | None = None, cells: Iterable[Cell] | None = None) -> Iterator[Correlation]:
        """The correlations of ``pairs`` x ``dates`` (None: all), or of exactly ``cells``; see
        :func:`read_pairs` (rows coalesced and read over several streams)."""
        return read_pairs(self.client, self.index, pairs, dates, stats=stats, cells=cells)
