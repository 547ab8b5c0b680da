"""Contention: 32 processes x 20 gets against a grid capped at 8 connections with 10 % drops.

    python benchmarks/contention.py           # 32 x 20
    python benchmarks/contention.py --small   # 8 x 5, cap 2
    python benchmarks/contention.py --nodes 1 8 16   # a grid of nodes: today's control vs the window

``--nodes K ...``: the same demand (32 processes x 10 gets of 1 MiB, one connection per get
as a job calling secure-iget per file) spread over K simulated nodes (one throttle directory
each, 32/K processes each, node cap 4) against a grid capped at 6 connections, run with
today's fixed control (``SECURE_IRODS_LOAD_CONTROL=fixed``: slots and a node-wide cool-down)
and with the adaptive window, in one run.  Printed per configuration: wall time, failures,
refusals (the grid's count, once), the grid's time-averaged busy connections and the share
of time it sat below its cap, per-node finish times and Jain's index of per-node goodput.

Each process is one job.  Ours: ``connect()`` with the node throttle (8 slots, one
directory) and the default policy, 20 ``get`` calls.  Naive: plain PRC, one session, each
get retried up to 5 times with a fixed 1 s delay (a fresh session after a failure).
Printed side by side: failed transfers, corrupted transfers (bytes differ), hung
processes (killed at the time limit: PRC spins on a connection dropped mid-read), and
server connection attempts (every connection the grid took, refused ones included: counted once) per successful
transfer.  Goals for ours: 0 failed, 0 corrupted, <= 1.5 attempts per success.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from localgrid.spawn import spawn  # noqa: E402

OBJECT_SIZE = 1024 * 1024


def _tally(target: Path, digest: str, ok: int, corrupted: int) -> tuple[int, int]:
    """The counts after one get: intact (its sha256 is the object's) or corrupted."""
    if hashlib.sha256(target.read_bytes()).hexdigest() == digest:
        return ok + 1, corrupted
    return ok, corrupted + 1


def worker(kind: str, remote: str, out: Path, gets: int, digest: str) -> None:
    ok = failed = corrupted = 0
    errors: list[str] = []
    if kind == "grid":  # --nodes: one connection per get, finish time reported
        from secure_irods.client import connect

        with connect() as client:
            for i in range(gets):
                target = out / f"{i}.bin"
                try:
                    client.get(remote, target, force=True)
                    ok, corrupted = _tally(target, digest, ok, corrupted)
                except Exception as exc:
                    failed += 1
                    errors.append(f"{type(exc).__name__}: {exc}")
                client.disconnect()
        print(json.dumps({"ok": ok, "failed": failed, "corrupted": corrupted, "errors": errors, "end": time.time()}))
        return
    if kind == "ours":
        from secure_irods.client import connect

        with connect() as client:
            for i in range(gets):
                target = out / f"{i}.bin"
                try:
                    client.get(remote, target, force=True)
                except Exception as exc:
                    failed += 1
                    cause = exc.__cause__
                    errors.append(f"{type(exc).__name__} after {getattr(exc, 'attempts', '?')} attempt(s): {exc}"
                                  + (f" <- {type(cause).__name__}: {cause}" if cause is not None else ""))
                    continue
                ok, corrupted = _tally(target, digest, ok, corrupted)
    else:
        import logging

        logging.getLogger("irods").setLevel(logging.CRITICAL + 1)
        import irods.keywords as kw
        from irods.session import iRODSSession

        def new_session():
            return iRODSSession(irods_env_file=os.environ["IRODS_ENVIRONMENT_FILE"],
                                irods_authentication_file=os.environ["IRODS_AUTHENTICATION_FILE"])

        session = new_session()
        for i in range(gets):
            target = out / f"{i}.bin"
            for attempt in range(5):
                try:
                    # PRC's overwrite switch is the forceFlag keyword (force=True is ignored)
                    session.data_objects.get(remote, str(target), **{kw.FORCE_FLAG_KW: ""})
                    break
                except Exception as exc:
                    last = f"{type(exc).__name__}: {exc}"
                    try:
                        session.cleanup()
                    except Exception:
                        pass
                    session = new_session()
                    time.sleep(1.0)
            else:
                failed += 1
                errors.append(f"after 5 attempts: {last}")
                continue
            ok, corrupted = _tally(target, digest, ok, corrupted)
        try:
            session.cleanup()
        except Exception:
            pass
    print(json.dumps({"ok": ok, "failed": failed, "corrupted": corrupted, "errors": errors}))


def _result(proc: subprocess.Popen, timeout: float) -> dict | None:
    """A worker's JSON line, or None if it hung past ``timeout`` (then killed) or printed none."""
    try:
        stdout, _ = proc.communicate(timeout=timeout)
        return json.loads(stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        proc.kill()
        proc.communicate()
        return None


def phase(kind: str, grid, tmp: Path, remote: str, procs: int, gets: int, digest: str, cap: int,
          limit: float) -> dict:
    grid.control.reset_stats()
    env = grid.environ(SECURE_IRODS_THROTTLE_DIR=str(tmp / f"throttle-{kind}"),
                       SECURE_IRODS_MAX_CONNECTIONS=str(cap), SECURE_IRODS_DEADLINE=str(limit - 10))
    start = time.perf_counter()
    running = []
    for p in range(procs):
        out = tmp / f"{kind}-{p}"
        out.mkdir()
        running.append(subprocess.Popen([sys.executable, __file__, "--worker", kind, remote, str(out), str(gets), digest],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    totals = {"ok": 0, "failed": 0, "corrupted": 0, "hung": 0, "errors": []}
    for proc in running:
        result = _result(proc, max(1.0, limit - (time.perf_counter() - start)))
        if result is None:
            result = {"ok": 0, "failed": 0, "corrupted": 0}
            totals["hung"] += 1
        for key in ("ok", "failed", "corrupted"):
            totals[key] += result[key]
        totals["errors"].extend(result.get("errors", ()))
    totals["lost"] = procs * gets - totals["ok"] - totals["failed"] - totals["corrupted"]
    stats = grid.control.stats()
    totals["seconds"] = time.perf_counter() - start
    totals["attempts"] = stats["accepted"]  # the grid counts every connection it took, refused ones included
    totals["refused"] = stats["refused"]
    totals["max_active"] = stats["max_active"]
    return totals


def grid_phase(control: str, grid, tmp: Path, remote: str, nodes: int, procs: int, gets: int, digest: str,
               limit: float) -> dict:
    """``procs`` processes spread over ``nodes`` throttle directories, under one load control."""
    grid.control.reset_stats()
    start_wall = time.time()
    start = time.perf_counter()
    running = []
    for p in range(procs):
        node = p % nodes
        out = tmp / f"{control}-{nodes}-{p}"
        out.mkdir()
        env = grid.environ(SECURE_IRODS_THROTTLE_DIR=str(tmp / f"throttle-{control}-{nodes}-{node}"),
                           SECURE_IRODS_MAX_CONNECTIONS="4", SECURE_IRODS_DEADLINE=str(limit - 10),
                           SECURE_IRODS_LOAD_CONTROL=control)
        running.append((node, subprocess.Popen([sys.executable, __file__, "--worker", "grid", remote, str(out),
                                                str(gets), digest], env=env, stdout=subprocess.PIPE,
                                               stderr=subprocess.DEVNULL, text=True)))
    ok = failed = hung = 0
    finish: dict[int, float] = {}
    for node, proc in running:
        result = _result(proc, max(1.0, limit - (time.perf_counter() - start)))
        if result is None:
            hung += 1
            continue
        ok += result["ok"]
        failed += result["failed"]
        finish[node] = max(finish.get(node, 0.0), result["end"] - start_wall)
    seconds = time.perf_counter() - start
    stats = grid.control.stats()
    rates = [gets * (procs // nodes) / t for t in finish.values() if t > 0]
    jain = sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates)) if rates else 0.0
    return {"seconds": seconds, "ok": ok, "failed": failed + hung * gets, "hung": hung,
            "refused": stats["refused"], "connections": stats["accepted"] - stats["refused"],
            "busy": stats["busy_seconds"] / stats["seconds"] if stats["seconds"] else 0.0,
            "below_cap": 1.0 - stats["full_seconds"] / stats["seconds"] if stats["seconds"] else 0.0,
            "first": min(finish.values(), default=0.0), "last": max(finish.values(), default=0.0), "jain": jain}


def _object_on(grid, tmp: Path) -> tuple[str, str]:
    """The 1 MiB object every worker gets, stored before the grid misbehaves: its path and sha256."""
    from secure_irods.client import connect

    data = os.urandom(OBJECT_SIZE)
    (tmp / "obj.bin").write_bytes(data)
    remote = f"{grid.home}/contention.bin"
    with connect(grid.env_file, grid.auth_file, throttle=False, cooldown=False) as client:
        client.put(tmp / "obj.bin", remote, force=True)
    return remote, hashlib.sha256(data).hexdigest()


def grid_benchmark(node_counts: list[int], limit: float) -> None:
    procs, gets, cap = 32, 10, 6
    with tempfile.TemporaryDirectory(prefix="bench-contention-") as tmp:
        tmp = Path(tmp)
        grid = spawn(tmp / "grid", "--seed", "11")
        try:
            remote, digest = _object_on(grid, tmp)
            grid.control.set(max_connections=cap)
            rows = []
            for nodes in node_counts:
                for control in ("fixed", "adaptive"):
                    rows.append((nodes, control, grid_phase(control, grid, tmp, remote, nodes, procs, gets, digest,
                                                            limit)))
        finally:
            grid.stop()
    print(f"contention --nodes: {procs} processes x {gets} gets of 1 MiB (one connection each), grid capped at "
          f"{cap}, node cap 4; {os.cpu_count()} CPU(s) on this machine bound the 1-node figure")
    print(f"{'nodes x procs':>14} {'control':>9} {'wall s':>7} {'ok':>4} {'failed':>6} {'refused':>7} "
          f"{'refused/conn':>12} {'busy (of 6)':>11} {'below cap':>9} {'node finish s':>14} {'Jain':>5}")
    base = {c: r["seconds"] for n, c, r in rows if n == node_counts[0]}
    for nodes, control, r in rows:
        print(f"{f'{nodes} x {procs // nodes}':>14} {control:>9} {r['seconds']:7.1f} {r['ok']:4d} {r['failed']:6d} "
              f"{r['refused']:7d} {r['refused'] / max(1, r['connections'] + r['refused']):12.3f} {r['busy']:11.2f} "
              f"{r['below_cap']:9.0%} {r['first']:6.1f} -{r['last']:6.1f} {r['jain']:5.2f}"
              f"   ({r['seconds'] / base[control]:.2f}x of {node_counts[0]} node(s))")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, remote, out, gets, digest = sys.argv[2:7]
        worker(kind, remote, Path(out), int(gets), digest)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--limit", type=float, default=None,
                        help="seconds before a phase's processes are killed (300; 60 with --small)")
    parser.add_argument("--only", choices=("ours", "naive"), help="run one side only (diagnosis)")
    parser.add_argument("--nodes", type=int, nargs="+", help="simulated nodes (e.g. 1 8 16): the grid benchmark")
    args = parser.parse_args()
    if args.nodes:
        bad = [k for k in args.nodes if k < 1 or 32 % k]
        if bad:
            parser.error(f"--nodes must divide the 32 processes, not {bad}")
        grid_benchmark(args.nodes, args.limit or 300.0)
        return
    procs, gets, cap = (8, 5, 2) if args.small else (32, 20, 8)
    if args.limit is None:
        args.limit = 60.0 if args.small else 300.0
    with tempfile.TemporaryDirectory(prefix="bench-contention-") as tmp:
        tmp = Path(tmp)
        grid = spawn(tmp / "grid", "--seed", "11")
        try:
            remote, digest = _object_on(grid, tmp)
            grid.control.set(max_connections=cap, drop_rate=0.10)
            results = {kind: phase(kind, grid, tmp, remote, procs, gets, digest, cap, args.limit)
                       for kind in ("ours", "naive") if args.only in (None, kind)}
        finally:
            grid.stop()
    print(f"contention: {procs} processes x {gets} gets of 1 MiB, grid capped at {cap}, 10 % drops")
    print(f"{'':34}{'secure_irods':>14}{'naive PRC':>14}")
    rows = [("successful transfers", "ok", "d"), ("failed transfers (goal 0)", "failed", "d"),
            ("corrupted transfers (goal 0)", "corrupted", "d"), ("hung processes (killed)", "hung", "d"),
            ("transfers lost with hung procs", "lost", "d"), ("connections refused", "refused", "d"),
            ("server max active connections", "max_active", "d"), ("wall time (s)", "seconds", ".1f")]
    def cell(kind: str, value) -> str:
        return f"{'-':>14}" if kind not in results else f"{value(results[kind]):>14}"

    for label, key, fmt in rows:
        print(f"{label:34}" + "".join(cell(k, lambda r: format(r[key], fmt)) for k in ("ours", "naive")))
    per = lambda r: format(r["attempts"] / r["ok"] if r["ok"] else float("inf"), ".2f")  # noqa: E731
    print(f"{'connection attempts per success':34}" + "".join(cell(k, per) for k in ("ours", "naive"))
          + "  (goal <= 1.5)")
    for kind in ("ours", "naive"):
        if args.only in (None, kind):
            counts: dict[str, int] = {}
            for line in results[kind]["errors"]:
                counts[line] = counts.get(line, 0) + 1
            print(f"failures of {kind}: {len(results[kind]['errors'])}")
            for line, n in sorted(counts.items(), key=lambda kv: -kv[1])[:10]:
                print(f"  {n:4d} x {line[:300]}")


if __name__ == "__main__":
    main()
