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
     "bundle_size": 268435456,                  # target bytes per bundle ($SEISSTORE_BUNDLE_SIZE)
     "coordinates": {"STA1": [45.1, 5.7, 210.0]},   # lat, lon, elevation m (distance in bundles)
     "workers": null}                           # FFT threads (default: all cores)

What it does: plans the line's bundles (pairs packed in order up to the target size:
:func:`seisstore.bundles.pack`, named ``<job>.b<k>.h5``), asks the bundle index which of
them already exist with every planned (pair, date) -- those are skipped, so a finished
line rerun reads and writes nothing --, then date by date reads the day files of the
stations still needed (``Job.read``), correlates every pair of them at once
(:func:`seisstore.xcorr.correlate_day`) and writes the rows into local bundle files.  At
the end each bundle is uploaded atomically (``client.put``: a temporary object renamed
once its checksum matches) and only then given its AVUs, so a line killed at any moment
leaves no partial bundle at a final name and none in the index; its rerun redoes the
bundles not indexed yet.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from secure_irods.query import Query

from seisstore.jobs import load_config, main_wrapper, output_collection, setting

log = logging.getLogger("seisstore.jobs.correlate")

#: Seconds to wait before each bundle upload (tests and demos use it to preempt a job mid-upload).
ENV_HOLD = "SEISSTORE_HOLD_BEFORE_UPLOAD"


def _station_of(key, names: set[str]) -> str | None:
    full = f"{key.net}.{key.sta}"
    return full if full in names else key.sta if key.sta in names else None


def _processed_facts(client, root: str) -> tuple[list[float], list[str]]:
    """Distinct sampling rates and chains of the processed files (one GenQuery; rows are distinct)."""
    q = (Query("META_DATA_ATTR_NAME", "META_DATA_ATTR_VALUE")
         .where_any("COLL_NAME", [("=", root), ("like", f"{root}/%")])
         .where_any("META_DATA_ATTR_NAME", [("=", "sampling_rate"), ("=", "chain")]))
    rates, chains = set(), set()
    for attr, value in client.query(q):
        if attr == "sampling_rate":
            rates.update(float(v) for v in value.split(","))
        else:
            chains.add(value)
    return sorted(rates), sorted(chains)


def run(argv: list[str], workdir: str | os.PathLike = ".", config: dict | None = None) -> int:
    from seisstore.bundles import (DEFAULT_BUNDLE_SIZE, BundleIndex, LocalBundle, bundle_avus, code_version, pack)
    from seisstore.job import Job
    from seisstore.xcorr import correlate_day

    config = dict(config) if config is not None else load_config("correlate", workdir)
    processed = setting(config, "processed", "SEISSTORE_PROCESSED")
    bundles = output_collection(config, "bundles", "SEISSTORE_BUNDLES")
    if not processed or not bundles:
        raise ValueError("correlate needs the processed archive and the bundle collection (settings"
                         " processed/bundles or $SEISSTORE_PROCESSED/$SEISSTORE_BUNDLES or $SEISSTORE_RESULTS)")
    window_s = float(config.get("window_s", 3600.0))
    step_s = float(config.get("step_s") or window_s)
    max_lag_s = float(config.get("max_lag_s", 200.0))
    substack_s = config.get("substack_s")
    target = int(setting(config, "bundle_size", "SEISSTORE_BUNDLE_SIZE", DEFAULT_BUNDLE_SIZE))
    coords = {k: tuple(map(float, v)) for k, v in (config.get("coordinates") or {}).items()}
    channels = config.get("channels")
    workers = config.get("workers")
    hold = float(os.environ.get(ENV_HOLD, "0") or 0)

    with Job(processed, layout=config.get("layout", "sds"), argv=argv, workdir=workdir) as job:
        client = job.client
        processed = client.resolve(processed).rstrip("/")
        bundles = client.resolve(bundles).rstrip("/")
        pairs = list(job.pairs())
        names = set(job.stations)
        avail: dict[str, dict[datetime.date, tuple]] = {}
        for key, entry in job.catalogue.select(channels=channels):
            station = _station_of(key, names)
            if station is None:
                continue
            if key.day in avail.setdefault(station, {}):
                raise ValueError(f"{station} has several channels on {key.day}: choose one with the channels setting")
            avail[station][key.day] = (key, entry)
        dates_of = {p: [d for d in job.dates if d in avail.get(p[0], {}) and d in avail.get(p[1], {})] for p in pairs}
        rates, chains = _processed_facts(client, processed)
        if len(rates) > 1:
            raise ValueError(f"processed files have several sampling rates {rates}: one is needed")
        if not rates:
            log.warning("%s: no processed day file for this line: nothing to correlate", job.name)
            return 0
        rate = rates[0]
        nlag = 2 * int(round(max_lag_s * rate)) + 1
        n_sub = 1 if not substack_s else int(-(-86400 // float(substack_s)))
        groups = pack(pairs, dates_of, n_sub * nlag * 4, target)
        planned = {f"{bundles}/{job.name}.b{k:03d}.h5": g for k, g in enumerate(groups)}
        client.mkdir(bundles)
        index = BundleIndex(client, bundles, cache=False)
        todo = {}
        for path, group in planned.items():
            have = index.bundles.get(path)
            wanted = {(p, d) for p in group for d in dates_of[p]}
            if have is None or not wanted <= set(have.cells()):
                todo[path] = group
        log.info("%s: %d pairs, %d bundles planned, %d to write", job.name, len(pairs), len(planned), len(todo))
        if not todo:
            return 0
        client.disconnect()          # the index is read: free the node's slot while computing
        local_dir = Path(tempfile.mkdtemp(prefix=f".bundles-{job.name}-", dir=workdir))
        try:
            attrs = {"code_version": code_version(), "job": job.name, "window_s": window_s, "step_s": step_s,
                     "substack_s": float(substack_s or 0), "chain": "\n".join(chains),
                     "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
            local = {path: LocalBundle(local_dir / path.rsplit("/", 1)[1], group, dates_of, rate=rate,
                                       max_lag_s=max_lag_s, n_sub=n_sub, attrs=attrs, coords=coords)
                     for path, group in todo.items()}
            wanted_pairs = [p for group in todo.values() for p in group]
            inputs: dict[str, str] = {}
            npts = int(round(86400 * rate))
            for day in job.dates:
                today = [p for p in wanted_pairs if day in dates_of[p]]
                if not today:
                    continue
                stations = sorted({s for p in today for s in p}, key=job.all_stations.index)
                row = {s: k for k, s in enumerate(stations)}
                data = np.zeros((len(stations), npts), dtype=np.float32)
                items = [avail[s][day] for s in stations]
                for (key, entry), (_, stream) in zip(items, job.catalogue.read(items, client=client, prefetch=2)):
                    station = _station_of(key, names)
                    inputs[f"{key.seed_id}.{key.day}"] = entry.checksum or "-"
                    stream.merge(method=0, fill_value=0)
                    tr = stream[0]
                    if abs(tr.stats.sampling_rate - rate) > 1e-9 * rate:
                        raise ValueError(f"{entry.path}: {tr.stats.sampling_rate} Hz, expected {rate} Hz")
                    start = int(round((tr.stats.starttime - _utc(day)) * rate))
                    lo, hi = max(0, start), min(npts, start + len(tr.data))
                    if hi > lo:
                        data[row[station], lo:hi] = tr.data[lo - start:hi - start]
                cc, counts = correlate_day(data, rate, [(row[a], row[b]) for a, b in today], window_s=window_s,
                                           step_s=step_s, max_lag_s=max_lag_s,
                                           substack_s=float(substack_s) if substack_s else None, workers=workers)
                client.disconnect()
                for k, pair in enumerate(today):
                    for bundle in local.values():
                        if pair in bundle.datasets:
                            bundle.write(pair, day, cc[k], counts)
            chain = "\n".join(chains)
            for path, bundle in local.items():
                bundle.close()
                mine = {f"{avail[s][d][0].seed_id}.{d}": inputs[f"{avail[s][d][0].seed_id}.{d}"]
                        for p in bundle.pairs for d in bundle.dates_of[p] for s in p}
                if hold:
                    time.sleep(hold)
                client.put(bundle.path, path, force=True)
                client.set_avus(path, bundle_avus(bundle, job=job.name, code=attrs["code_version"], rate=rate,
                                                  chain=chain, inputs=mine))
                os.unlink(bundle.path)
                log.info("%s: %s written (%d pairs)", job.name, path, len(bundle.pairs))
        finally:
            shutil.rmtree(local_dir, ignore_errors=True)
    return 0


def _utc(day: datetime.date):
    from obspy import UTCDateTime

    return UTCDateTime(day.isoformat())


def main(argv: list[str] | None = None, config: dict | None = None) -> None:
    """Entry point; ``config``: settings embedded by a job script (else the JSON file or environment)."""
    main_wrapper(lambda args: run(args, ".", config), argv, prog="seisstore.jobs.correlate")


if __name__ == "__main__":
    main()
