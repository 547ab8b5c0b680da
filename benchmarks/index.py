"""Index N SDS day files by bulk GenQuery vs one existence test per file.

Starts its own local grid (``python -m localgrid serve --port 0``), creates N
empty data objects in SDS layout with a few PRC sessions in parallel, then:

* **bulk**: ``Catalogue(session, root, SDSLayout())`` -- stamp query + row
  query, 500 rows a GenQuery call; timed in full;
* **per file**: ``session.data_objects.exists(path)`` for every key, as a
  per-file loop does; timed on a random sample (``--sample``) and
  **extrapolated** to N.

Usage: ``python benchmarks/index.py [--n 100000] [--sample 2000] [--threads 4]``.
Goals (issue 5): GenQuery calls <= ceil(rows / 500) + 5 and >= 50x faster.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localgrid import GridControl  # noqa: E402
from localgrid.spawn import spawn  # noqa: E402
from seisstore.catalogue import Catalogue  # noqa: E402
from seisstore.layout import Key, SDSLayout  # noqa: E402

CHANNELS = ("HHZ", "HHN", "HHE")
DAYS = 365
FIRST_DAY = datetime.date(2021, 1, 1)


def session_for(directory: Path):
    from irods.session import iRODSSession

    return iRODSSession(irods_env_file=str(directory / "irods_environment.json"),
                        irods_authentication_file=str(directory / ".irodsA"))


def make_keys(n: int) -> list[Key]:
    """N channel-days: 3 channels x 365 days per station, as many stations as needed."""
    keys = []
    per_station = len(CHANNELS) * DAYS
    for s in range(math.ceil(n / per_station)):
        for cha in CHANNELS:
            for d in range(DAYS):
                keys.append(Key("XX", f"S{s:03d}", "00", cha, FIRST_DAY + datetime.timedelta(d)))
    return keys[:n]


def create(directory: Path, paths: list[str], threads: int) -> float:
    t0 = time.perf_counter()
    colls = sorted({p.rsplit("/", 1)[0] for p in paths})
    with session_for(directory) as s:
        for c in colls:
            s.collections.create(c)

    def work(chunk):
        with session_for(directory) as s:
            for p in chunk:
                s.data_objects.create(p)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [paths[i::threads] for i in range(threads)]))
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="objects to index (default 100000)")
    ap.add_argument("--sample", type=int, default=2000, help="existence tests actually timed")
    ap.add_argument("--threads", type=int, default=4, help="sessions creating objects")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="seisstore-bench-") as tmp:
        gdir = Path(tmp) / "grid"
        grid = spawn(gdir)
        try:
            control = GridControl(gdir)
            env = json.loads((gdir / "irods_environment.json").read_text())
            root = f"{env['irods_home']}/sds"
            layout = SDSLayout()
            keys = make_keys(args.n)
            paths = [f"{root}/{layout.path(k)}" for k in keys]
            print(f"creating {len(paths)} objects in {len({p.rsplit('/', 1)[0] for p in paths})} "
                  f"collections with {args.threads} sessions ...", flush=True)
            t_create = create(gdir, paths, args.threads)
            print(f"created in {t_create:.1f} s ({len(paths) / t_create:.0f} objects/s)", flush=True)

            with session_for(gdir) as s:
                s.collections.get(root)                      # log in outside the timings
                a0 = control.stats()["api_calls"]
                t0 = time.perf_counter()
                cat = Catalogue(s, root, layout, cache=False)
                t_bulk = time.perf_counter() - t0
                api_bulk = control.stats()["api_calls"] - a0
                q_bulk, rows = cat.counter.queries, cat.counter.rows
                assert len(cat) == len(keys), (len(cat), len(keys))

                sample = random.Random(0).sample(keys, min(args.sample, len(keys)))
                a0 = control.stats()["api_calls"]
                t0 = time.perf_counter()
                found = sum(s.data_objects.exists(f"{root}/{layout.path(k)}") for k in sample)
                t_sample = time.perf_counter() - t0
                api_sample = control.stats()["api_calls"] - a0
                assert found == len(sample)
        finally:
            grid.stop()

    n = len(keys)
    t_loop = t_sample / len(sample) * n
    api_loop = api_sample / len(sample) * n
    obj_rows = n                                               # one replica each
    limit = math.ceil(obj_rows / 500) + 5
    speedup = t_loop / t_bulk
    w = 34
    print()
    print(f"{'':{w}}{'bulk Catalogue':>18}{'exists() per file':>22}")
    print(f"{'objects':{w}}{n:>18,}{n:>22,}")
    print(f"{'time (s)':{w}}{t_bulk:>18.2f}{t_loop:>21.1f}*")
    print(f"{'GenQuery calls':{w}}{q_bulk:>18,}{'':>22}")
    print(f"{'server API calls':{w}}{api_bulk:>18,}{api_loop:>21,.0f}*")
    print(f"{'rows returned (stamps + objects)':{w}}{rows:>18,}{'':>22}")
    print(f"* extrapolated from {len(sample):,} timed existence tests "
          f"({t_sample:.2f} s, {api_sample:,} API calls, {t_sample / len(sample) * 1e3:.2f} ms each)")
    print()
    ok_calls = q_bulk <= limit
    ok_speed = speedup >= 50
    print(f"goal GenQuery calls <= ceil({obj_rows:,}/500)+5 = {limit}: {q_bulk} "
          f"-> {'OK' if ok_calls else 'MISSED'}")
    print(f"goal >= 50x faster: {speedup:.0f}x -> {'OK' if ok_speed else 'MISSED'}")
    figures = dict(n=n, create_s=t_create, bulk_s=t_bulk, bulk_queries=q_bulk, bulk_api=api_bulk,
                   rows=rows, sample=len(sample), sample_s=t_sample, sample_api=api_sample,
                   loop_s_extrapolated=t_loop, loop_api_extrapolated=api_loop, speedup=speedup,
                   query_limit=limit, goals_met=ok_calls and ok_speed)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if ok_calls and ok_speed else 1


if __name__ == "__main__":
    sys.exit(main())
