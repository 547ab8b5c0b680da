"""Selective reads of correlation bundles against fetching the whole bundle.

Starts its own local grid, writes one bundle of about ``--size-mb`` (default 500 MB: 1225
pairs of 50 stations x D dates x 8001 lags of float32, as ``seisstore.jobs.correlate``
writes them) and uploads it with its AVUs.  Then prints, in one run:

* one correlation (pair, date) read selectively (``BundleIndex`` + ``read_pairs``: one
  ``client.open``, the metadata head, one range) against ``client.get`` of the whole
  bundle: bytes moved and read round trips (counted by the client: opens, seeks, reads;
  and the grid's own count of API calls, log-in and GenQuery included);
* 100 correlations (random pairs and dates) read from the bundle in one open;
* goals: < 1 % of the bundle's bytes and <= 8 round trips for one correlation.

    .venv/bin/python benchmarks/bundle_read.py [--size-mb 500]
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localgrid.spawn import spawn  # noqa: E402


def write_bundle(path: Path, n_sta: int, n_dates: int, rate: float, max_lag: float):
    from seisstore.bundles import LocalBundle

    stations = [f"ST{k:02d}" for k in range(n_sta)]
    pairs = [(a, b) for i, a in enumerate(stations) for b in stations[i + 1:]]
    dates = [datetime.date(2011, 3, 1) + datetime.timedelta(days=d) for d in range(n_dates)]
    coords = {s: (45 + 0.01 * k, 5 + 0.02 * k, 100.0) for k, s in enumerate(stations)}
    bundle = LocalBundle(path, pairs, {p: dates for p in pairs}, rate=rate, max_lag_s=max_lag, n_sub=1,
                         attrs={"job": "bench", "code_version": "bench"}, coords=coords)
    rng = np.random.default_rng(0)
    nlag = 2 * int(round(max_lag * rate)) + 1
    block = rng.standard_normal((n_dates, 1, nlag)).astype("f4")
    for k, pair in enumerate(pairs):
        for j, d in enumerate(dates):
            bundle.write(pair, d, block[j] + k, np.array([24]))
    bundle.close()
    return bundle, pairs, dates


def main() -> None:
    from secure_irods.client import connect
    from seisstore.bundles import BundleIndex, bundle_avus, read_pairs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=500.0)
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--max-lag", type=float, default=200.0)
    a = ap.parse_args()
    n_pairs = a.stations * (a.stations - 1) // 2
    row = (2 * int(round(a.max_lag * a.rate)) + 1) * 4
    n_dates = max(1, math.ceil(a.size_mb * 1e6 / (n_pairs * row)))

    with tempfile.TemporaryDirectory(prefix="bundle-bench-") as tmp:
        tmp = Path(tmp)
        grid = spawn(tmp / "grid")
        try:
            os.environ.update(IRODS_ENVIRONMENT_FILE=str(grid.env_file), IRODS_AUTHENTICATION_FILE=str(grid.auth_file),
                              SECURE_IRODS_THROTTLE_DIR=str(tmp / "throttle"), XDG_CACHE_HOME=str(tmp / "cache"))
            t = time.perf_counter()
            bundle, pairs, dates = write_bundle(tmp / "b.h5", a.stations, n_dates, a.rate, a.max_lag)
            size = bundle.path.stat().st_size
            coll = f"{grid.home}/bundles"
            remote = f"{coll}/bench.b000.h5"
            with connect() as client:
                client.mkdir(coll)
                client.put(bundle.path, remote)
                client.set_avus(remote, bundle_avus(bundle, job="bench", code="bench", rate=a.rate, chain="-",
                                                    inputs={}))
            print(f"bundle: {size / 1e6:.1f} MB, {len(pairs)} pairs x {n_dates} dates x {row} bytes,"
                  f" metadata head {bundle.head / 1e6:.2f} MB (written and uploaded in"
                  f" {time.perf_counter() - t:.1f} s)")
            control = grid.control

            def measure(label, fn):
                control.reset_stats()
                t0 = time.perf_counter()
                result = fn()
                took = time.perf_counter() - t0
                return result, took, control.stats()["api_calls"]

            with connect() as client:
                index = BundleIndex(client, coll, cache=False)
                stats: dict = {}
                pair, day = pairs[len(pairs) // 2], dates[len(dates) // 2]
                (one,), took, calls = measure("one", lambda: list(read_pairs(client, index, [pair], [day],
                                                                             stats=stats)))
                assert one.pair == pair and one.date == day
                print(f"one correlation, selective : {stats['bytes']:>11,} bytes ({100 * stats['bytes'] / size:.2f} %"
                      f" of the bundle), {stats['round_trips']} read round trips, {calls} API calls in all,"
                      f" {took * 1000:.0f} ms")
                _, took, calls = measure("whole", lambda: client.get(remote, tmp / "whole.h5", force=True))
                reads = math.ceil(size / (8 * 1024 * 1024))
                print(f"one correlation, whole get : {size:>11,} bytes (100 %), about {reads + 2} read round trips"
                      f" (open, {reads} reads of 8 MiB, close), {calls} API calls in all, {took * 1000:.0f} ms")
                rng = random.Random(1)
                wanted = [(rng.choice(pairs), rng.choice(dates)) for _ in range(100)]
                stats = {}

                # read exactly the 100 cells: one open of the bundle, the head, one range per cell
                def hundred_exact():
                    import h5py

                    from seisstore.bundles import pair_name

                    got = []
                    info = index.bundles[remote]
                    with client.open(remote, head=info.head) as f, h5py.File(f, "r") as h5:
                        for p, d in wanted:
                            ds = h5["pairs"][pair_name(*p)]
                            got.append(ds[dates.index(d)])
                        stats.update(round_trips=f.round_trips, bytes=f.bytes_fetched)
                    return got

                got, took, calls = measure("hundred", hundred_exact)
                assert len(got) == 100
                print(f"100 correlations, one open : {stats['bytes']:>11,} bytes ({100 * stats['bytes'] / size:.2f} %),"
                      f" {stats['round_trips']} read round trips ({stats['round_trips'] / 100:.2f} per correlation),"
                      f" {calls} API calls in all, {took * 1000:.0f} ms")
        finally:
            grid.stop()


if __name__ == "__main__":
    main()
