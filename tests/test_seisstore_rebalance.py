"""Rebalance against the grid: three sites as `random` resources over two disks each (the seed's
site groups), data written skewed onto one site, then du / plan / apply / verify, with kills,
down resources and drops.  Every zone call is real PRC over TCP."""

from __future__ import annotations

import json
import re
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
from seisstore.rebalance.apply import Pacer
from seisstore.rebalance.inventory import replica_query
from seisstore.rebalance.journal import LOCK_ATTR

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
    plan = Plan.read(plan_file)
    assert f"wrote {plan_file}: {len(plan.moves)} moves" in out.stdout
    assert plan.moves and all(m.trim for m in plan.moves)
    r = _cli(grid, tmp_path, "rebalance", "apply", str(plan_file), "--max-parallel", "2")
    assert f"this run: {len(plan.moves)} done, 0 skipped, 0 failed" in r.stdout, r.stdout
    dist = _groups(client, coll, sites)
    total = sum(dist.values())
    assert total == 30 * 2048
    for v in dist.values():
        assert abs(v / total - 1 / 3) <= 0.10, dist
    report = verify(client, Inventory.load(client, coll), min_copies=1, recompute=True)
    assert report.at_risk == 0 and report.checksums_computed == 30
    outside = verify(client, Inventory.load(client, coll), targets=[sites["s2"], sites["s3"]])
    assert 0 < len(outside.outside) < 30 and outside.at_risk == 0
    st = _cli(grid, tmp_path, "rebalance", "status", str(plan_file))
    assert re.search(rf"\bdone\W+{len(plan.moves)}\b", st.stdout), st.stdout   # the table's row: every move done
    # a second apply redoes nothing
    r = _cli(grid, tmp_path, "rebalance", "apply", str(plan_file))
    assert f"{len(plan.moves)} already final" in r.stdout


def _plan(client, coll, sites, path, **options) -> Plan:
    inv = Inventory.load(client, coll)
    plan = make_plan(inv, list(sites.values()), **options)
    plan.write(path)
    return plan


def _assert_safe(client, coll, n, *, copies=1):
    report = verify(client, Inventory.load(client, coll), min_copies=copies, recompute=True)
    assert report.objects == n
    assert report.no_good == [] and report.under_copies == [] and report.mismatches == []
    assert report.unchecked == []
    return report


def _connect():
    from secure_irods.client import connect

    return connect()


@pytest.mark.faults
def test_twenty_kills_then_final_apply(grid, client, coll, sites, tmp_path):
    n = 60
    _fill(grid, coll, sites["s1"], n, size=4096)
    plan_file = tmp_path / "kill.jsonl"
    plan = _plan(client, coll, sites, plan_file, threshold=5.0)
    assert len(plan.moves) >= 30
    rng = random.Random(10)
    for run in range(20):   # paced at ~1 move a second so that every kill lands inside the work
        proc = subprocess.Popen([SEISSTORE, "rebalance", "apply", str(plan_file), "--rate", "0.004",
                                 "--max-parallel", "2"], env=_env(grid, tmp_path),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.3, 1.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr.read()
    journal = Applier(plan_file, _connect).journal
    before = journal.states()
    finished = sum(1 for rec in before.values() if rec["state"] == "done")
    interrupted = _interrupted(journal.path)
    assert finished >= 5 and interrupted >= 5, (finished, interrupted)
    r = _cli(grid, tmp_path, "rebalance", "apply", str(plan_file), "--max-parallel", "2")
    assert "0 failed" in r.stdout, r.stdout
    assert f"{finished} already final" in r.stdout
    states = journal.states()
    assert all(states[m.i]["state"] == "done" and states[m.i].get("dones") == 1 for m in plan.moves)
    assert len(Applier(plan_file, _connect).journal.runs()) >= 2
    _assert_safe(client, coll, n)
    inv = Inventory.load(client, coll)
    for m in plan.moves:      # done once: one replica in the target group, the source trimmed
        obj = inv.objects[m.path]
        assert [r.leaf for r in obj.replicas] == [r.leaf for r in obj.good]
        assert len(obj.replicas) == 1 and inv.resources.group(obj.replicas[0].leaf) == m.target["resource"]
    assert client.collection_avus(coll).get(LOCK_ATTR) is None


def _interrupted(journal: Path) -> int:
    """Moves a killed run had begun and not finished."""
    count, open_moves = 0, set()
    for line in journal.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "run" in rec:
            count += len(open_moves)
            open_moves = set()
        elif rec.get("state") == "begin":
            open_moves.add(rec["i"])
        else:
            open_moves.discard(rec.get("i"))
    return count + len(open_moves)


def test_half_done_moves_are_finished_once(grid, client, coll, sites, tmp_path):
    _fill(grid, coll, sites["s1"], 9)
    plan_file = tmp_path / "half.jsonl"
    plan = _plan(client, coll, sites, plan_file)
    a, b = plan.moves[0], plan.moves[1]
    # as a run killed after its replication (a), and one killed after its trim (b)
    for m in (a, b):
        client.replicate(m.path, m.target["resource"], hierarchy=m.target["hierarchy"])
    client.trim_replica(b.path, b.source_replica)
    report = Applier(plan_file, _connect).run()
    assert report.done == len(plan.moves) and not report.failed and not report.skipped
    assert report.moved_bytes == sum(m.size for m in plan.moves[2:])
    inv = Inventory.load(client, coll)
    for m in (a, b):
        assert [r.leaf for r in inv.objects[m.path].replicas] == [m.target["leaf"]]
    _assert_safe(client, coll, 9)


@pytest.mark.faults
def test_resource_down_mid_run_loses_nothing(grid, client, coll, sites, tmp_path):
    n = 24
    _fill(grid, coll, sites["s1"], n)
    plan_file = tmp_path / "down.jsonl"
    _plan(client, coll, sites, plan_file)
    done = []

    def on_progress(outcome):
        done.append(outcome)
        if len(done) == 3:   # mid-run: a source disk and a target disk go down
            grid.set_faults(down=[f"{sites['s1']}a", f"{sites['s2']}b"])

    applier = Applier(plan_file, _connect, wait=0.5, on_progress=on_progress)
    report = applier.run()
    assert report.failed, "some moves should have met a down resource"
    # failed cleanly: transient (the zone said the resource is down, or the wait ran out), kept for a later run
    assert all(o.transient for o in report.failed), report.failed
    assert report.exit_code == 2
    before_up = _catalogue(client, coll)
    # nothing was trimmed without its copy: every object still has a good replica
    inv = Inventory.load(client, coll)
    assert all(obj.good for obj in inv.objects.values()) and len(inv.objects) == n
    grid.clear_faults()
    assert before_up == _catalogue(client, coll)
    report = Applier(plan_file, _connect).run()
    assert not report.failed
    _assert_safe(client, coll, n)


@pytest.mark.faults
def test_drops_lose_nothing(grid, client, coll, sites, tmp_path):
    n = 24
    _fill(grid, coll, sites["s1"], n)
    plan_file = tmp_path / "drops.jsonl"
    plan = _plan(client, coll, sites, plan_file)
    grid.set_faults(drop_rate=0.1)
    try:
        report = Applier(plan_file, _connect, max_parallel=2, wait=30).run()
    finally:
        grid.clear_faults()
    report2 = Applier(plan_file, _connect).run()   # anything failed at the deadline is redone
    assert report.done + report2.done == len(plan.moves)
    _assert_safe(client, coll, n)
    dist = _groups(client, coll, sites)
    assert all(abs(v / sum(dist.values()) - 1 / 3) <= 0.05 for v in dist.values()), dist


@pytest.mark.faults
def test_second_apply_refused_then_takes_over(grid, client, coll, sites, tmp_path):
    n = 20
    _fill(grid, coll, sites["s1"], n)
    plan_file = tmp_path / "lock.jsonl"
    _plan(client, coll, sites, plan_file)
    first = subprocess.Popen([SEISSTORE, "rebalance", "apply", str(plan_file), "--rate", "0.002"],
                             env=_env(grid, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if client.collection_avus(coll).get(LOCK_ATTR):
                break
            time.sleep(0.1)
        holder = client.collection_avus(coll)[LOCK_ATTR][0]
        assert f" {first.pid} " in holder
        second = _cli(grid, tmp_path, "rebalance", "apply", str(plan_file), check=False)
        assert second.returncode == 1 and "running" in second.stderr, second.stderr
        # another plan of the same collection, elsewhere: refused by the collection's lock
        other = tmp_path / "other" / "lock.jsonl"
        other.parent.mkdir()
        other.write_text(plan_file.read_text())
        third = _cli(grid, tmp_path, "rebalance", "apply", str(other), check=False)
        assert third.returncode == 1 and "being rebalanced" in third.stderr, third.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    r = _cli(grid, tmp_path, "rebalance", "apply", str(plan_file))
    assert "took over the lock" in r.stdout and re.search(r"\b0 failed", r.stdout), r.stdout
    _assert_safe(client, coll, n)


def test_dry_run_changes_nothing(grid, client, coll, sites, tmp_path):
    _fill(grid, coll, sites["s1"], 12)
    plan_file = tmp_path / "dry.jsonl"
    plan = _plan(client, coll, sites, plan_file)
    before = _catalogue(client, coll)
    r = _cli(grid, tmp_path, "rebalance", "apply", str(plan_file), "--dry-run")
    assert f"{len(plan.moves)} would move" in r.stdout and "nothing changed" in r.stdout
    assert _catalogue(client, coll) == before
    assert not Path(f"{plan_file}.journal").exists()
    assert client.collection_avus(coll).get(LOCK_ATTR) is None


def test_min_copies_and_replicate_mode(grid, client, coll, sites, tmp_path):
    n = 9
    _fill(grid, coll, sites["s1"], n)
    plan_file = tmp_path / "mc.jsonl"
    plan = _plan(client, coll, sites, plan_file, min_copies=2)
    assert plan.moves and not any(m.trim for m in plan.moves)   # one replica each: trimming would go below 2
    Applier(plan_file, _connect).run()
    rep = tmp_path / "rep.jsonl"
    plan = _plan(client, coll, sites, rep, mode="replicate")
    assert all(not m.trim for m in plan.moves)
    Applier(rep, _connect, max_parallel=2).run()
    inv = Inventory.load(client, coll)
    for obj in inv.objects.values():
        assert {inv.resources.group(r.leaf) for r in obj.good} == set(sites.values())
    _assert_safe(client, coll, n, copies=3)
    r = _cli(grid, tmp_path, "rebalance", "verify", coll, "--min-copies", "4", check=False)
    assert r.returncode == 3 and f"{n} objects at risk" in r.stderr
    # drain s3: every object is already on s1 and s2, so each move only trims (after verifying)
    drain = tmp_path / "drain.jsonl"
    inv = Inventory.load(client, coll)
    plan = make_plan(inv, [sites["s1"], sites["s2"]], [sites["s3"]], mode="move", min_copies=2)
    plan.write(drain)
    assert len(plan.moves) == n and plan.after[sites["s3"]] == 0
    report = Applier(drain, _connect).run()
    assert report.done == n and report.moved_bytes == 0
    inv = Inventory.load(client, coll)
    assert all(len(o.good) == 2 and sites["s3"] not in {inv.resources.group(r.leaf) for r in o.replicas}
               for o in inv.objects.values())
    _assert_safe(client, coll, n, copies=2)


def test_no_trim_without_verified_copy(grid, client, coll, sites, tmp_path, monkeypatch):
    _fill(grid, coll, sites["s1"], 6)
    plan_file = tmp_path / "bad.jsonl"
    _plan(client, coll, sites, plan_file, threshold=5.0)
    from secure_irods.client import Client

    real = Client.replica_checksum

    def lying(self, path, replica, **kw):     # the zone reports a different checksum for the new copy
        value = real(self, path, replica, **kw)
        return value if replica == 0 else "sha2:corrupt"

    monkeypatch.setattr(Client, "replica_checksum", lying)
    report = Applier(plan_file, _connect).run()
    assert report.failed and all("checksum mismatch" in o.reason and not o.transient for o in report.failed)
    assert report.exit_code == 3
    inv = Inventory.load(client, coll)
    assert all(any(r.number == 0 and r.good for r in obj.replicas) for obj in inv.objects.values())


def test_changed_after_planning_is_skipped(grid, client, coll, sites, tmp_path):
    paths = _fill(grid, coll, sites["s1"], 6)
    plan_file = tmp_path / "chg.jsonl"
    plan = _plan(client, coll, sites, plan_file)
    moved = plan.moves[0].path
    with grid.session() as s:
        with s.data_objects.open(moved, "w", **{kw.DEST_RESC_NAME_KW: sites["s1"]}) as f:
            f.write(b"rewritten")
    report = Applier(plan_file, _connect).run()
    assert report.skipped == {"changed since planning": 1}
    assert moved in paths


def test_cli_help_and_usage_errors(grid, tmp_path):
    for sub in (["du"], ["rebalance"], ["rebalance", "plan"], ["rebalance", "apply"], ["rebalance", "status"],
                ["rebalance", "verify"]):
        assert _cli(grid, tmp_path, *sub, "--help").stdout.startswith("Usage")
    r = _cli(grid, tmp_path, "rebalance", "plan", "/tempZone/home/rods", "--to", "nosuch", "-o",
             str(tmp_path / "x"), check=False)
    assert r.returncode == 1 and "no such resource" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.faults
def test_source_down_between_verify_and_trim_keeps_it(grid, client, coll, sites, tmp_path, monkeypatch):
    _fill(grid, coll, sites["s1"], 4)
    plan_file = tmp_path / "late.jsonl"
    plan = _plan(client, coll, sites, plan_file)
    from secure_irods.client import Client

    real = Client.replica_checksum

    def then_down(self, path, replica, **kw):   # the verification passes, then the source disk goes down
        value = real(self, path, replica, **kw)
        if replica != 0:
            grid.set_faults(down=[f"{sites['s1']}a", f"{sites['s1']}b"])
        return value

    monkeypatch.setattr(Client, "replica_checksum", then_down)
    report = Applier(plan_file, _connect, wait=0.3).run()
    grid.clear_faults()
    assert report.failed and report.done == 0
    inv = Inventory.load(client, coll)
    for m in plan.moves[:1]:
        assert len(inv.objects[m.path].good) == 2     # the source was not trimmed
    monkeypatch.setattr(Client, "replica_checksum", real)
    assert Applier(plan_file, _connect).run().done == len(plan.moves)
    _assert_safe(client, coll, 4)


def test_pacer_caps_the_rate():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    pacer = Pacer(1000.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.wait(500)
    assert slept == [0.5, 0.5, 0.5, 0.5] and now[0] == 2.0   # 2,500 bytes started within 2 s: 1000 B/s


def test_plan_is_reproducible_and_spreads_within_threshold():
    from seisstore.rebalance.inventory import Resource, Resources

    res = [Resource("1", "A", "random", ""), Resource("2", "B", "random", ""), Resource("3", "C", "random", "")]
    res += [Resource(f"{p}{d}", f"{n}{d}", "unixfilesystem", p) for p, n in (("1", "A"), ("2", "B"), ("3", "C"))
            for d in "xy"]
    rng = random.Random(5)
    rows = [("/z/c", f"o{i}", "0", str(rng.randrange(100, 10_000)), f"sha2:{i}", "1x", "1", "1")
            for i in range(500)]
    inv = Inventory.from_rows("/z/c", Resources(res), rows)
    one = make_plan(inv, ["A", "B", "C"], threshold=3, seed=4)
    two = make_plan(inv, ["A", "B", "C"], threshold=3, seed=4)
    assert [m.to_json() for m in one.moves] == [m.to_json() for m in two.moves]
    total = sum(one.after.values())
    assert all(abs(v / total - 1 / 3) <= 0.03 for v in one.after.values()), one.after
    assert {m.target["leaf"] for m in one.moves} == {"Bx", "By", "Cx", "Cy"}   # random leaf within the group
    weighted = make_plan(inv, ["A", "B", "C"], weights={"A": 2, "B": 1, "C": 1}, threshold=3)
    assert abs(weighted.after["A"] / total - 0.5) <= 0.03
    moved = make_plan(inv, ["B", "C"], ["A"], mode="move")
    assert moved.after["A"] == 0 and len(moved.moves) == 500


def test_objects_being_written_are_left_alone_and_reported(grid, client, coll, sites, tmp_path):
    """iRODS 4.3 locks an object while a client writes it: plan leaves it out, apply skips it and reports it,
    every other move is done and nothing is lost."""
    paths = _fill(grid, coll, sites["s1"], 12)
    with grid.session() as writer:
        held = writer.data_objects.open(paths[0], "a")      # open for writing: intermediate and locked
        try:
            plan = _plan(client, coll, sites, tmp_path / "held.jsonl")
        finally:
            held.close()
    assert plan.skipped.get("being written") == 1 and paths[0] not in {m.path for m in plan.moves}

    plan_file = tmp_path / "apply.jsonl"
    plan = _plan(client, coll, sites, plan_file)
    target = plan.moves[0].path

    def replicas_of_target():    # (number, size, checksum, resource, status) of each replica
        return [row[2:7] for row in _catalogue(client, coll) if f"{row[0]}/{row[1]}" == target]

    before = replicas_of_target()
    with grid.session() as writer:
        held = writer.data_objects.open(target, "a")
        try:
            report = Applier(plan_file, _connect).run()
        finally:
            held.close()
    assert report.being_written == [target] and report.skipped == {"being written": 1}
    assert report.done == len(plan.moves) - 1 and report.failed == []
    assert replicas_of_target() == before                      # the held object: untouched
    _assert_safe(client, coll, 12)
    with grid.session() as writer:
        held = writer.data_objects.open(target, "a")
        try:   # verify reports an object being written instead of counting it at risk
            report = verify(client, Inventory.load(client, coll), min_copies=1)
        finally:
            held.close()
    assert report.being_written == [target] and report.at_risk == 0
