"""Correlation job: one campaign line (dates x station blocks) of processed day files -> bundles.

``python -m seisstore.jobs.correlate <n_dates> <idate> <n_stations> <istation> [<jstation>]``
in a work directory holding ``dates.txt`` and ``stations.txt``.  The pairs are exactly
``Job.pairs()`` (inside one station block, or across two).  Settings (JSON, see
:func:`seisstore.jobs.load_config`; environment variables fill in)::

    {"processed": "/zone/home/me/processed",   # $SEISSTORE_PROCESSED: preprocessed day files
     "bundles": "/zone/home/me/correlations",  # $SEISSTORE_BUNDLES, else $SEISSTORE_RESULTS: where bundles go
     "layout": "sds", "channels": ["HHZ"],      # one channel per station (default: all, must be one)
     "window_s": 3600, "step_s": 3600,          # windows (step defaults to the window: no overlap)
     "max_lag_s": 200, "substack_s": null,      # null: one stack per day; 3600: hourly
     "min_data_fraction": 0.9, "taper": 0.04,   # window QC and taper (seisstore.xcorr.correlate_day)
     "bundle_size": 268435456,                  # target bytes per bundle ($SEISSTORE_BUNDLE_SIZE)
     "coordinates": {"STA1": [45.1, 5.7, 210.0]},   # lat, lon, elevation m (distance in bundles)
     "workers": null}                           # FFT threads (default: all cores)

What it does, in :func:`run`: **plan** the line's bundles (pairs packed in order up to
the target size: :func:`seisstore.bundles.pack`, named ``<job>.b<k>.h5``) and ask the
correlation store which of them it already holds with every planned (pair, date) --
those are skipped, so a finished line rerun reads and writes nothing --; then date by
date **assemble** the day files of the stations still needed into one matrix and
**correlate** every pair of them at once (:func:`seisstore.xcorr.correlate_day`) into
local bundle files; at the end **store** each bundle
(:meth:`seisstore.bundles.CorrelationStore.append`: an atomic put, then its AVUs), so a
line killed at any moment leaves no partial bundle at a final name and none in the
index; its rerun redoes the bundles not indexed yet.
"""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from secure_irods.errors import InvalidInputError
from secure_irods.query import Query
from seisstore.jobs import Job, load_config, main_wrapper, output_collection, setting

if TYPE_CHECKING:
    from secure_irods.client import Client
    from seisstore.bundles import CorrelationStore, LocalBundle
    from seisstore.layout import Key

log = logging.getLogger("seisstore.jobs.correlate")

Pair = tuple[str, str]


@dataclass(frozen=True)
class Settings:
    """The job's settings (see the module docstring), checked before anything is read."""

    processed: str
    bundles: str
    layout: str = "sds"
    channels: list[str] | None = None
    window_s: float = 3600.0
    step_s: float = 3600.0
    max_lag_s: float = 200.0
    substack_s: float | None = None
    bundle_size: int = 0
    coords: dict[str, tuple[float, ...]] | None = None
    workers: int | None = None
    min_data_fraction: float = 0.9
    taper: float = 0.04

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Settings":
        from seisstore.bundles import DEFAULT_BUNDLE_SIZE

        processed = setting(config, "processed", "SEISSTORE_PROCESSED")
        bundles = output_collection(config, "bundles", "SEISSTORE_BUNDLES")
        if not processed or not bundles:
            raise InvalidInputError("correlate needs the processed archive and the bundle collection (settings"
                                    " processed/bundles or $SEISSTORE_PROCESSED/$SEISSTORE_BUNDLES or"
                                    " $SEISSTORE_RESULTS)")
        window_s = float(config.get("window_s", 3600.0))
        substack_s = config.get("substack_s")
        return cls(processed, bundles, config.get("layout", "sds"), config.get("channels"), window_s,
                   float(config.get("step_s") or window_s), float(config.get("max_lag_s", 200.0)),
                   float(substack_s) if substack_s else None,
                   int(setting(config, "bundle_size", "SEISSTORE_BUNDLE_SIZE", DEFAULT_BUNDLE_SIZE)),
                   {k: tuple(map(float, v)) for k, v in (config.get("coordinates") or {}).items()},
                   config.get("workers"), float(config.get("min_data_fraction", 0.9)), float(config.get("taper", 0.04)))


@dataclass
class LinePlan:
    """What one line computes: the processed files it reads and the bundles it writes."""

    rate: float
    chain: str                                          # the inputs' preprocessing chains, one a line
    avail: dict[str, dict[datetime.date, tuple]]        # station -> day -> (Key, Entry) of its day file
    dates_of: dict[Pair, list[datetime.date]]           # pair -> the days both stations have
    bundles: dict[str, list[Pair]]                      # bundle (its number, then its path) -> its pairs
    n_sub: int

    def pairs_on(self, day: datetime.date) -> list[Pair]:
        return [p for group in self.bundles.values() for p in group if day in self.dates_of[p]]

    def inputs_of(self, bundle: "LocalBundle", checksums: dict[str, str]) -> dict[str, str]:
        """``NET.STA.LOC.CHA.DATE -> checksum`` of every day file ``bundle`` was computed from."""
        ids = {f"{self.avail[s][d][0].seed_id}.{d}" for p in bundle.pairs for d in bundle.dates_of[p] for s in p}
        return {i: checksums[i] for i in ids}


def _station_of(key: "Key", names: set[str]) -> str | None:
    full = f"{key.net}.{key.sta}"
    return full if full in names else key.sta if key.sta in names else None


def _processed_facts(client: "Client", root: str) -> tuple[list[float], list[str]]:
    """Distinct sampling rates and chains of the processed files (one GenQuery; rows are distinct)."""
    q = (Query("META_DATA_ATTR_NAME", "META_DATA_ATTR_VALUE")
         .under(root)
         .where_any("META_DATA_ATTR_NAME", [("=", "sampling_rate"), ("=", "chain")]))
    rates: set[float] = set()
    chains: set[str] = set()
    for attr, value in client.query(q):
        if attr == "sampling_rate":
            rates.update(float(v) for v in value.split(","))
        else:
            chains.add(value)
    return sorted(rates), sorted(chains)


def plan(job: "Job", settings: Settings) -> LinePlan | None:
    """The line's day files and bundles (catalogue already read; one GenQuery); None: nothing to correlate."""
    from seisstore.bundles import pack

    names = set(job.stations)
    avail: dict[str, dict[datetime.date, tuple]] = {}
    for key, entry in job.catalogue.select(channels=settings.channels):
        station = _station_of(key, names)
        if station is None:
            continue
        if key.day in avail.setdefault(station, {}):
            raise ValueError(f"{station} has several channels on {key.day}: choose one with the channels setting")
        avail[station][key.day] = (key, entry)
    pairs = list(job.pairs())
    dates_of = {p: [d for d in job.dates if d in avail.get(p[0], {}) and d in avail.get(p[1], {})] for p in pairs}
    rates, chains = _processed_facts(job.client, job.client.resolve(settings.processed).rstrip("/"))
    if len(rates) > 1:
        raise ValueError(f"processed files have several sampling rates {rates}: one is needed")
    if not rates:
        log.warning("%s: no processed day file for this line: nothing to correlate", job.name)
        return None
    nlag = 2 * int(round(settings.max_lag_s * rates[0])) + 1
    n_sub = 1 if not settings.substack_s else int(-(-86400 // settings.substack_s))
    groups = pack(pairs, dates_of, n_sub * nlag * 4, settings.bundle_size)
    return LinePlan(rates[0], "\n".join(chains), avail, dates_of, {str(k): g for k, g in enumerate(groups)}, n_sub)


def still_to_write(job: "Job", line: LinePlan, store: "CorrelationStore") -> None:
    """Keep in ``line.bundles`` only the bundles ``store`` does not hold whole yet, by their paths."""
    planned = {store.path(job.name, k): group for k, group in enumerate(line.bundles.values())}
    line.bundles = {path: group for path, group in planned.items()
                    if not store.contains(path, ((p, d) for p in group for d in line.dates_of[p]))}
    log.info("%s: %d pairs, %d bundles planned, %d to write", job.name, sum(map(len, planned.values())),
             len(planned), len(line.bundles))


def assemble(job: "Job", line: LinePlan, day: datetime.date, pairs: list[Pair],
             checksums: dict[str, str]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The day files of ``pairs``' stations on ``day`` as one ``(stations, 86400 * rate)`` matrix, zero
    where there is no data, and its data mask (:func:`seisstore.preprocessing.day_grid`: a
    processed file keeps its gaps as gaps); returns both and each station's row.  Notes
    each file's checksum."""
    from seisstore.preprocessing import day_grid

    stations = sorted({s for p in pairs for s in p}, key=job.all_stations.index)
    row = {s: k for k, s in enumerate(stations)}
    npts = int(round(86400 * line.rate))
    data = np.zeros((len(stations), npts), dtype=np.float32)
    mask = np.zeros((len(stations), npts), dtype=bool)
    items = [line.avail[s][day] for s in stations]
    for k, ((key, entry), (_, stream)) in enumerate(zip(items, job.catalogue.read(items, client=job.client,
                                                                                   prefetch=2))):
        checksums[f"{key.seed_id}.{key.day}"] = entry.checksum or "-"
        try:
            data[k], mask[k] = day_grid(stream, day, line.rate)
        except ValueError as exc:
            raise ValueError(f"{entry.path}: {exc}") from None
    return data, mask, row


def open_bundles(job: "Job", line: LinePlan, settings: Settings, directory: Path) -> dict[str, "LocalBundle"]:
    """An empty local bundle file per bundle to write, every dataset created (see ``LocalBundle``)."""
    from seisstore.bundles import LocalBundle
    from seisstore.version import code_version

    attrs = {"code_version": code_version(), "job": job.name, "window_s": settings.window_s,
             "step_s": settings.step_s, "substack_s": float(settings.substack_s or 0), "chain": line.chain,
             "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    return {path: LocalBundle(directory / path.rsplit("/", 1)[1], group, line.dates_of, rate=line.rate,
                              max_lag_s=settings.max_lag_s, n_sub=line.n_sub, attrs=attrs, coords=settings.coords)
            for path, group in line.bundles.items()}


def run(argv: list[str], workdir: str | os.PathLike = ".", config: dict | None = None) -> int:
    """One campaign line: plan -> assemble -> correlate -> store (see the module docstring)."""
    from seisstore.bundles import CorrelationStore
    from seisstore.version import code_version
    from seisstore.xcorr import correlate_day

    settings = Settings.from_config(dict(config) if config is not None else load_config("correlate", workdir))
    with Job(settings.processed, layout=settings.layout, argv=argv, workdir=workdir) as job:
        line = plan(job, settings)
        if line is None:
            return 0
        store = CorrelationStore(job.client, settings.bundles, cache=False, create=True)
        still_to_write(job, line, store)
        if not line.bundles:
            return 0
        job.client.disconnect()          # the index is read: free the node's slot while computing
        checksums: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix=f".bundles-{job.name}-", dir=workdir) as tmp:
            local = open_bundles(job, line, settings, Path(tmp))
            bundle_of = {p: bundle for bundle in local.values() for p in bundle.pairs}
            for day in job.dates:
                if not (today := line.pairs_on(day)):
                    continue
                data, mask, row = assemble(job, line, day, today, checksums)
                cc, counts = correlate_day(data, line.rate, [(row[a], row[b]) for a, b in today],
                                           window_s=settings.window_s, step_s=settings.step_s,
                                           max_lag_s=settings.max_lag_s, substack_s=settings.substack_s,
                                           workers=settings.workers, mask=mask,
                                           min_data_fraction=settings.min_data_fraction, taper=settings.taper)
                job.client.disconnect()
                for k, pair in enumerate(today):
                    bundle_of[pair].write(pair, day, cc[k], counts[k])
            for path, bundle in local.items():
                bundle.close()
                store.append(path, bundle, job=job.name, code=code_version(), rate=line.rate, chain=line.chain,
                             inputs=line.inputs_of(bundle, checksums))
                os.unlink(bundle.path)       # free the disk before the next upload
                log.info("%s: %s written (%d pairs)", job.name, path, len(bundle.pairs))
    return 0


def main(argv: list[str] | None = None, config: dict | None = None) -> None:
    """Entry point; ``config``: settings embedded by a job script (else the JSON file or environment)."""
    main_wrapper(lambda args: run(args, ".", config), argv, prog="seisstore.jobs.correlate")


if __name__ == "__main__":
    main()
