"""Secure get/put of one large file against plain python-irodsclient, on a grid started here.

    python benchmarks/secure_transfer.py            # 1 GiB
    python benchmarks/secure_transfer.py --small    # 64 MiB
    python benchmarks/secure_transfer.py --bandwidth 1250   # over a 10 GbE link (MB/s per connection)

Plain PRC is ``data_objects.put``/``get`` with its defaults (parallel threads above
32 MiB, no checksum, no fsync); ours checksums both ends, writes to a temporary name and
renames; its get reads with up to 2 streams (as PRC), hashes in order in a second thread,
flushes behind and fsyncs before the rename.  Ratio = plain time / secure time (goal >= 0.95).

Fair baselines for the get, in the same run:

* **verified PRC get**, as ``iget -K`` does it (PRC's get has no verification of its own):
  plain get, then the sha256 of the local file compared with the catalogue's checksum
  (goal: secure get >= 1.2x faster, since ours hashes while it receives);
* plain PRC get (goal: secure >= 0.7x; the hash bounds it on loopback, see docs);
* plain get + fsync of the received file (the durability plain get leaves undone).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from localgrid.spawn import spawn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="64 MiB instead of 1 GiB")
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs")
    parser.add_argument("--bandwidth", type=float, default=0.0,
                        help="MB/s per connection on the grid's link (1250: 10 GbE; 0: loopback, unshaped)")
    parser.add_argument("--total-bandwidth", type=float, default=0.0,
                        help="MB/s of all connections together on the grid's link (0: unshaped)")
    parser.add_argument("--diagnose", action="store_true",
                        help="also time plain PRC with one stream, with the server's checksum on put, "
                             "and ours with one stream: where the difference goes")
    args = parser.parse_args()
    link = []
    if args.bandwidth:
        link += ["--bandwidth", f"{args.bandwidth:g}"]
    if args.total_bandwidth:
        link += ["--total-bandwidth", f"{args.total_bandwidth:g}"]
    load_before = os.getloadavg()
    size = (64 if args.small else 1024) * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-secure-") as tmp:
        tmp = Path(tmp)
        grid = spawn(tmp / "grid", *link)
        try:
            src = tmp / "src.bin"
            with open(src, "wb") as f:
                for _ in range(size // (16 << 20)):
                    f.write(os.urandom(16 << 20))
            from secure_irods import RetryPolicy
            from secure_irods.client import connect

            session = grid.session()
            remote_plain, remote_ours = f"{grid.home}/plain.bin", f"{grid.home}/ours.bin"
            times: dict[str, list[float]] = {k: [] for k in ("plain put", "ours put", "plain get", "ours get",
                                                             "plain fsync", "sha256", "plain put 1 stream",
                                                             "plain put 1 stream + server sha256",
                                                             "plain get 1 stream", "ours get 1 stream")}
            for _ in range(args.repeat):
                for remote in (remote_plain, remote_ours):  # a put onto identical bytes would be skipped (sync)
                    if session.data_objects.exists(remote):
                        session.data_objects.unlink(remote, force=True)
                os.sync()   # no earlier step's writeback competes with the timed one
                t = time.perf_counter()
                session.data_objects.put(str(src), remote_plain, force=True)
                times["plain put"].append(time.perf_counter() - t)
                session.data_objects.chksum(remote_plain)   # registered, as ours is: iget -K only compares
                with connect(grid.env_file, grid.auth_file, throttle=False, cooldown=False,
                             policy=RetryPolicy()) as client:
                    client.stat(grid.home)   # logged in before the clock starts, as plain PRC's session is
                    os.sync()   # no earlier step's writeback competes with the timed one
                    t = time.perf_counter()
                    client.put(src, remote_ours, force=True)
                    times["ours put"].append(time.perf_counter() - t)
                for p in (tmp / "plain.out", tmp / "ours.out"):
                    p.unlink(missing_ok=True)
                os.sync()   # no earlier step's writeback competes with the timed one
                t = time.perf_counter()
                session.data_objects.get(remote_plain, str(tmp / "plain.out"), force=True)
                times["plain get"].append(time.perf_counter() - t)
                fd = os.open(tmp / "plain.out", os.O_RDONLY)
                t = time.perf_counter()
                os.fsync(fd)  # the durability plain PRC skips, on the bytes it just wrote
                times["plain fsync"].append(time.perf_counter() - t)
                os.close(fd)
                t = time.perf_counter()
                hasher = hashlib.sha256()
                with open(tmp / "plain.out", "rb", buffering=0) as f:
                    while block := f.read(8 << 20):
                        hasher.update(block)
                expected = session.data_objects.get(remote_plain).checksum or session.data_objects.chksum(remote_plain)
                if "sha2:" + base64.b64encode(hasher.digest()).decode() != expected:
                    raise SystemExit("verified PRC get: checksum mismatch")
                times["sha256"].append(time.perf_counter() - t)
                with connect(grid.env_file, grid.auth_file, throttle=False, cooldown=False,
                             policy=RetryPolicy()) as client:
                    client.stat(grid.home)
                    os.sync()   # no earlier step's writeback competes with the timed one
                    t = time.perf_counter()
                    client.get(remote_ours, tmp / "ours.out", force=True)
                    times["ours get"].append(time.perf_counter() - t)
                (tmp / "plain.out").unlink()
                (tmp / "ours.out").unlink()
                if args.diagnose:
                    _diagnose(session, grid, src, tmp, remote_plain, remote_ours, times)
            session.cleanup()
        finally:
            grid.stop()
    mib = size / (1 << 20)
    print(f"secure transfer of {mib:.0f} MiB (best of {args.repeat}), one local grid"
          f"{', link ' + ' '.join(link) if link else ', loopback'}; load average before"
          f" {' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'':6}{'plain PRC':>22}{'secure_irods':>22}{'ratio (plain/secure time)':>28}")
    for op in ("put", "get"):
        plain, ours = min(times[f"plain {op}"]), min(times[f"ours {op}"])
        print(f"{op:6}{plain:9.2f} s {mib / plain:7.0f} MiB/s{ours:9.2f} s {mib / ours:7.0f} MiB/s{plain / ours:28.2f}")
    fsync, sha = min(times["plain fsync"]), min(times["sha256"])
    durable = min(g + f for g, f in zip(times["plain get"], times["plain fsync"]))
    verified = min(g + h for g, h in zip(times["plain get"], times["sha256"]))
    ours = min(times["ours get"])
    print(f"fsync of plain PRC's received file alone: {fsync:.2f} s; sha256 + checksum query: {sha:.2f} s"
          f" ({mib / sha:.0f} MiB/s, one thread, page cache)")
    print(f"{'get':6}{verified:9.2f} s {mib / verified:7.0f} MiB/s{ours:9.2f} s {mib / ours:7.0f} MiB/s"
          f"{verified / ours:28.2f}  (verified PRC get, as iget -K: get + sha256; goal >= 1.2)")
    print(f"{'get':6}{durable:9.2f} s {mib / durable:7.0f} MiB/s{ours:9.2f} s {mib / ours:7.0f} MiB/s"
          f"{durable / ours:28.2f}  (plain get + fsync)")
    if args.diagnose:
        print("where the time goes (best of each, same run):")
        for name in ("plain put 1 stream", "plain put 1 stream + server sha256", "plain get 1 stream",
                     "ours get 1 stream"):
            best = min(times[name])
            print(f"  {name:40}{best:7.2f} s {mib / best:7.0f} MiB/s")


def _diagnose(session, grid, src: Path, tmp: Path, remote_plain: str, remote_ours: str, times) -> None:
    """Plain PRC with one stream, with and without the server's checksum; ours with one stream."""
    from irods import keywords as kw

    from secure_irods import RetryPolicy
    from secure_irods.client import connect

    for name, options in (("plain put 1 stream", {}), ("plain put 1 stream + server sha256", {kw.REG_CHKSUM_KW: ""})):
        if session.data_objects.exists(remote_plain):
            session.data_objects.unlink(remote_plain, force=True)
        t = time.perf_counter()
        session.data_objects.put(str(src), remote_plain, num_threads=1, **options)
        times[name].append(time.perf_counter() - t)
    out = tmp / "diag.out"
    t = time.perf_counter()
    session.data_objects.get(remote_plain, str(out), num_threads=1, force=True)
    times["plain get 1 stream"].append(time.perf_counter() - t)
    out.unlink()
    with connect(grid.env_file, grid.auth_file, throttle=False, cooldown=False, policy=RetryPolicy(),
                 streams=1) as client:
        t = time.perf_counter()
        client.get(remote_ours, out, force=True)
        times["ours get 1 stream"].append(time.perf_counter() - t)
    out.unlink()


if __name__ == "__main__":
    main()
