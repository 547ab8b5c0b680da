"""Rebalance against the grid: three sites as `random` resources over two disks each (the seed's
site groups), data written skewed onto one site, then du / plan / apply / verify, with kills,
down resources and drops.  Every zone call is real PRC over TCP."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from irods import keywords as kw

from seisstore.rebalance import Applier, Inventory, Plan, make_plan, verify
from seisstore.rebalance.inventory import replica_query
from seisstore.rebalance.journal import LOCK_ATTR, CollectionLock, LockedError

SITES = ("s1", "s2", "s3")
SEISSTORE = str(Path(sys.executable).parent / "seisstore")   # the installed command


@pytest.fixture(scope="module")
def sites(grid):
    """Three `random` site resources with two unixfilesystem disks each; names unique per module."""
    tag = uuid.uuid4().hex[:5]
    names = {s: f"{s}{tag}" for s in SITES}
    with grid.session() as session:
        for s, name in names.items():
            try:
                session.resources.create(name, "random")
            except Exception as exc:  # pragma: no cover - depends on admin rights on a real zone
                pytest.skip(f"cannot create resources: {exc}")
            for d in "ab":
                leaf = f"{name}{d}"
                vault = grid.root / "vault" / leaf if grid.local else f"/tmp/{leaf}"
                session.resources.create(leaf, "unixfilesystem", host="localhost", path=str(vault))
                session.resources.add_child(name, leaf)
    return names


def _fill(grid, coll: str, resource: str, n: int, size: int = 2048, threads: int = 4,
          sizes: list[int] | None = None) -> list[str]:
    """n objects of random bytes written through `resource` (checksums registered on close)."""
    rng = random.Random(7)
    sizes = sizes or [size] * n
    paths = [f"{coll}/d{i // 10}/o{i:04d}" for i in range(n)]
    with grid.session() as s:
        for c in sorted({p.rsplit("/", 1)[0] for p in paths}):
            s.collections.create(c)
    payload = {p: rng.randbytes(sz) for p, sz in zip(paths, sizes)}

    def work(chunk):
        with grid.session() as s:
            for p in chunk:
                with s.data_objects.open(p, "w", **{kw.DEST_RESC_NAME_KW: resource, kw.REG_CHKSUM_KW: ""}) as f:
                    f.write(payload[p])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [paths[i::threads] for i in range(threads)]))
    return paths


def _env(grid, tmp_path) -> dict:
    env = grid.environ()
    env.update(SECURE_IRODS_THROTTLE_DIR=str(tmp_path / "throttle"), SECURE_IRODS_MAX_CONNECTIONS="16",
               SECURE_IRODS_COOLDOWN="0.2", SECURE_IRODS_MAX_WAIT="0.5", PYTHONUNBUFFERED="1")
    return env


def _cli(grid, tmp_path, *args, check=True, timeout=120):
    cmd = [SEISSTORE, *args]
    r = subprocess.run(cmd, env=_env(grid, tmp_path), capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, (r.stdout, r.stderr)
    return r


def _groups(client, coll, sites) -> dict[str, int]:
    inv = Inventory.load(client, coll)
    return {name: inv.usage("group").get(name, (0, 0))[0] for name in sites.values()}


def _catalogue(client, coll):
    return sorted(client.query(replica_query(coll)))


def test_du_plan_apply_reaches_threshold(grid, client, coll, sites, tmp_path):
    _fill(grid, coll, sites["s1"], 30)
    du = _cli(grid, tmp_path, "du", coll, "--by", "group")
    assert sites["s1"] in du.stdout and "GenQuery calls" in du.stdout
    plan_file = tmp_path / "p.jsonl"
    to = [f"--to={v}" for v in sites.values()]
    out = _cli(grid, tmp_path, "rebalance", "plan", coll, *to, "--threshold", "10", "-o", str(plan_file))
    assert "moves" in out.stdout
    plan = Plan.read(plan_file)
    assert plan.moves and all(m.trim for m in plan.moves)
    r = _cli(grid, tmp_path, "rebalance", "apply", str(plan_file), "--max-parallel", "2")
    assert "0 failed" in r.stdout
    dist = _groups(client, coll, sites)
    total = sum(dist.values())
    assert total == 30 * 2048
    for v in dist.values():
        assert abs(v / total - 1 / 3) <= 0.10, dist
    report = verify(client, Inventory.load(client, coll), min_copies=1, recompute=True)
    assert report.at_risk == 0 and report.checksums_computed == 30
    st = _cli(grid, tmp_path, "rebalance", "status", str(plan_file))
    assert "done" in st.stdout
    # a second apply redoes nothing
    r = _cli(grid, tmp_path, "rebalance", "apply", str(plan_file))
    assert f"{len(plan.moves)} already final" in r.stdout
