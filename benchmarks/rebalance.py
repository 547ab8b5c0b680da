"""Rebalance: planning time and GenQuery calls, and apply's achieved rate against ``--rate``.

Three measurements, on a local grid it starts itself (three sites, each a ``random``
resource over two unixfilesystem disks, as in the seed paper; data written skewed, 70 %
on the first site):

* **plan, synthetic** -- ``--synthetic`` objects (default 100,000) as the replica
  GenQuery returns them (rows built in memory, no zone): ``Inventory.from_rows`` +
  ``make_plan``, timed; the query count such a collection costs is
  ``1 + ceil(replicas / 500)`` (one resource query, 500 rows a batch), checked below;
* **plan, real** -- ``--objects`` (default 5,000) objects of 1 KiB created through PRC,
  then ``seisstore rebalance plan`` as a library call through a ``secure_irods.Client``:
  time and ``Client.queries`` (GenQuery round trips);
* **apply rate** -- ``--apply-objects`` objects of ``--apply-size`` bytes moved by
  ``Applier(rate=...)`` for each ``--rate`` (MB/s); achieved = bytes copied / wall time.

Usage: ``python benchmarks/rebalance.py [--synthetic 100000] [--objects 5000]
[--apply-objects 150] [--apply-size 65536] [--rate 0.5 --rate 2]``.
Goals (issue 10): planning 100,000 objects < 10 s; achieved rate within 10 % of --rate.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localgrid.spawn import spawn  # noqa: E402
from seisstore.rebalance import Applier, Inventory, make_plan  # noqa: E402
from seisstore.rebalance.inventory import Resource, Resources  # noqa: E402

SITES = ("site1", "site2", "site3")


def synthetic(n: int, seed: int = 1) -> tuple[float, float, int, int]:
    """(seconds to build the inventory, seconds to plan, moves, replicas) for n objects."""
    res = [Resource(str(10 + i), s, "random", "") for i, s in enumerate(SITES)]
    res += [Resource(str(100 + 2 * i + j), f"{s}{d}", "unixfilesystem", str(10 + i))
            for i, s in enumerate(SITES) for j, d in enumerate("ab")]
    resources = Resources(res)
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        site = 0 if rng.random() < 0.7 else rng.randrange(1, 3)
        leaf = 100 + 2 * site + rng.randrange(2)
        size = rng.randrange(1_000_000, 20_000_000)
        rows.append((f"/tempZone/home/rods/archive/{2000 + k // 20000}/XX/S{k // 365:04d}/HHZ.D",
                     f"XX.S{k // 365:04d}.00.HHZ.D.{k}", "0", str(size), f"sha2:{k:040d}", str(leaf), "1",
                     "1700000000"))
    t0 = time.perf_counter()
    inv = Inventory.from_rows("/tempZone/home/rods/archive", resources, rows)
    t1 = time.perf_counter()
    plan = make_plan(inv, list(SITES), threshold=2.0, seed=1)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(plan.moves), len(rows)


def make_sites(session, root: Path) -> None:
    for s in SITES:
        session.resources.create(s, "random")
        for d in "ab":
            session.resources.create(f"{s}{d}", "unixfilesystem", host="localhost", path=str(root / "vault" / f"{s}{d}"))
            session.resources.add_child(s, f"{s}{d}")


def fill(grid, coll: str, n: int, size: int, threads: int = 4) -> float:
    from irods import keywords as kw

    paths = [f"{coll}/d{i // 500:03d}/o{i:06d}" for i in range(n)]
    rng = random.Random(3)
    target = {p: SITES[0] if rng.random() < 0.7 else SITES[rng.randrange(1, 3)] for p in paths}
    with grid.session() as s:
        for c in sorted({p.rsplit("/", 1)[0] for p in paths}):
            s.collections.create(c, recurse=True)
    data = os.urandom(size)

    def work(chunk):
        with grid.session() as s:
            for p in chunk:
                with s.data_objects.open(p, "w", **{kw.DEST_RESC_NAME_KW: target[p], kw.REG_CHKSUM_KW: ""}) as f:
                    f.write(data)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [paths[i::threads] for i in range(threads)]))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=int, default=100_000)
    ap.add_argument("--objects", type=int, default=5_000)
    ap.add_argument("--apply-objects", type=int, default=150)
    ap.add_argument("--apply-size", type=int, default=65536)
    ap.add_argument("--rate", type=float, action="append", default=None, help="MB/s (repeatable)")
    args = ap.parse_args()
    rates = args.rate or [0.5, 2.0]

    build, planning, moves, rows = synthetic(args.synthetic)
    print(f"plan, synthetic: {args.synthetic} objects ({rows} replica rows): inventory {build:.2f} s,"
          f" plan {planning:.2f} s, total {build + planning:.2f} s, {moves} moves;"
          f" GenQuery calls on a zone: {1 + math.ceil(rows / 500)} (1 + ceil({rows} / 500))")

    with tempfile.TemporaryDirectory(prefix="rebalance-bench-") as tmp:
        g = spawn(Path(tmp) / "grid")
        os.environ.update(IRODS_ENVIRONMENT_FILE=str(g.env_file), IRODS_AUTHENTICATION_FILE=str(g.auth_file),
                          SECURE_IRODS_THROTTLE_DIR=str(Path(tmp) / "throttle"), SECURE_IRODS_MAX_CONNECTIONS="16")
        from secure_irods.client import connect

        try:
            with g.session() as s:
                make_sites(s, g.root)
                home = f"/{s.zone}/home/{s.username}"
            coll = f"{home}/bench"
            created = fill(g, coll, args.objects, 1024)
            with connect() as client:
                before = client.queries
                t0 = time.perf_counter()
                inv = Inventory.load(client, coll)
                plan = make_plan(inv, list(SITES), threshold=2.0)
                took = time.perf_counter() - t0
                calls = client.queries - before
            replicas = sum(len(o.replicas) for o in inv.objects.values())
            print(f"plan, real: {args.objects} objects created in {created:.1f} s; planned in {took:.2f} s with"
                  f" {calls} GenQuery calls (expected {1 + math.ceil(replicas / 500)}), {len(plan.moves)} moves")

            for i, rate in enumerate(rates):
                c = f"{home}/rate{i}"
                fill(g, c, args.apply_objects, args.apply_size)
                with connect() as client:
                    plan = make_plan(Inventory.load(client, c), list(SITES), threshold=2.0)
                path = Path(tmp) / f"rate{i}.jsonl"
                plan.write(path)
                report = Applier(path, connect, rate=rate * 1e6, max_parallel=2).run()
                achieved = report.moved_bytes / report.elapsed / 1e6
                print(f"apply --rate {rate:g} MB/s: {report.done} moves, {report.moved_bytes} bytes in"
                      f" {report.elapsed:.2f} s = {achieved:.3f} MB/s ({100 * (achieved / rate - 1):+.1f} %)")
        finally:
            g.process.terminate()
            g.process.wait(timeout=20)


if __name__ == "__main__":
    main()
