"""Secure get/put of one large file against plain python-irodsclient, on a grid started here.

    python benchmarks/secure_transfer.py                    # 1 GiB over loopback
    python benchmarks/secure_transfer.py --small            # 64 MiB
    python benchmarks/secure_transfer.py --bandwidth 1250   # over one 10 GbE link (all connections share it)
    python benchmarks/secure_transfer.py --per-connection 1250   # each connection capped, none shared

Plain PRC is ``data_objects.put``/``get`` with its defaults (parallel threads above
32 MiB, no checksum, no fsync); ours checksums both ends (the server registers a sha2 on
close, we hash the local file), writes to a temporary name and renames; its get reads with
up to 2 streams, hashes in order in a second thread and fsyncs before the rename.

Fair baselines, the verified transfers of the i-commands done with PRC (whose get and put
verify nothing by themselves): **verified PRC put**, as ``iput -K`` does it: the sha256 of
the local file, then a put whose ``verifyChksum`` makes the server compute the checksum on
close and compare; **verified PRC get**, as ``iget -K`` does it: plain get, then the sha256
of the local file compared with the catalogue's checksum.

Every timed step starts after ``os.sync()``; the steps alternate (plain, ours) for
``--repeat`` rounds and the best of each is kept; both objects are read once untimed
before the gets are timed.  Beside the wall time the script reads the CPU seconds that the
client (this process, all threads) and the grid's server process spent on each step, and
prints the **bound this machine sets**: ours cannot take less than the sha256 of the file
in one thread, nor less than all the CPU work of the step (plain PRC's own, plus the
hashes ours adds: the local one, and for a put the server's) divided by the cores.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from localgrid.spawn import spawn  # noqa: E402


@dataclass
class Step:
    """The best wall time of one operation over the rounds, and the CPU seconds of that run."""

    wall: float = float("inf")
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    walls: list[float] = field(default_factory=list)

    def keep(self, wall: float, client_cpu: float, server_cpu: float) -> None:
        self.walls.append(wall)
        if wall < self.wall:
            self.wall, self.client_cpu, self.server_cpu = wall, client_cpu, server_cpu

    @property
    def cpu(self) -> float:
        return self.client_cpu + self.server_cpu


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(step: Step, server_pid: int, fn: Callable[[], object], before: Callable[[], object]) -> None:
    """Time ``fn``; ``before`` (untimed, after ``os.sync()``) removes what the previous run wrote.

    Removing the previous output right before the step, rather than earlier, gives every
    step the same memory to write into: pages freed a moment ago.  On this VM freed pages
    are soon handed back to the host (free page reporting), and a step that writes into
    handed-back pages pays a host fault per page: 2-3 s more for 1 GiB, whichever client.
    """
    os.sync()   # no earlier step's writeback competes with this one
    before()
    client, server, t = _own_cpu(), _process_cpu(server_pid), time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    step.keep(wall, _own_cpu() - client, _process_cpu(server_pid) - server)


def _rounds(steps: dict[str, Step], server_pid: int, repeat: int,
            plan: list[tuple[str, Callable[[], object], Callable[[], object]]]) -> None:
    """``repeat`` rounds of the ``(name, before, fn)`` plan, each round starting one step later:
    every step runs in every position, so none is always the one after a big free."""
    for i in range(repeat):
        for name, before, fn in plan[i % len(plan):] + plan[:i % len(plan)]:
            _timed(steps[name], server_pid, fn, before)


def _sha256_seconds(path: Path) -> float:
    """sha256 of the file's bytes already in memory, one thread: the floor of any verified transfer."""
    data = path.read_bytes()
    t = time.perf_counter()
    hashlib.sha256(data).digest()
    return time.perf_counter() - t


def _verify_like_iget_k(session, remote: str, local: Path) -> None:
    hasher = hashlib.sha256()
    with open(local, "rb", buffering=0) as f:
        while block := f.read(8 << 20):
            hasher.update(block)
    if "sha2:" + base64.b64encode(hasher.digest()).decode() != session.data_objects.get(remote).checksum:
        raise SystemExit("verified PRC get: checksum mismatch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="64 MiB instead of 1 GiB")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best of each step is kept")
    parser.add_argument("--bandwidth", type=float, default=0.0,
                        help="MB/s of the link all connections share (1250: 10 GbE; 0: loopback, unshaped)")
    parser.add_argument("--per-connection", type=float, default=0.0,
                        help="MB/s cap of each connection on its own (0: none)")
    args = parser.parse_args()
    link = []
    if args.bandwidth:
        link += ["--total-bandwidth", f"{args.bandwidth:g}"]
    if args.per_connection or args.bandwidth:
        link += ["--bandwidth", f"{args.per_connection or args.bandwidth:g}"]
    load_before = os.getloadavg()
    size = (64 if args.small else 1024) * 1024 * 1024
    steps = {name: Step() for name in ("plain put", "verified PRC put", "ours put", "plain get", "verified PRC get",
                                       "ours get")}
    with tempfile.TemporaryDirectory(prefix="bench-secure-") as tmp:
        tmp = Path(tmp)
        grid = spawn(tmp / "grid", *link)
        try:
            src = tmp / "src.bin"
            with open(src, "wb") as f:
                for _ in range(size // (16 << 20)):
                    f.write(os.urandom(16 << 20))
            sha = min(_sha256_seconds(src) for _ in range(3))
            _run(grid, src, tmp, steps, args.repeat)
        finally:
            grid.stop()
    link_seconds = size / (args.bandwidth * 1e6) if args.bandwidth else 0.0
    _report(steps, sha, link_seconds, size, link, args.repeat, load_before)


def _run(grid, src: Path, tmp: Path, steps: dict[str, Step], repeat: int) -> None:
    from irods import keywords as kw

    from secure_irods import RetryPolicy
    from secure_irods.client import connect
    from secure_irods.transfer import sha2_of_file

    session = grid.session()
    pid = grid.process.pid
    plain, verified, ours = f"{grid.home}/plain.bin", f"{grid.home}/verified.bin", f"{grid.home}/ours.bin"
    with connect(grid.env_file, grid.auth_file, throttle=False, cooldown=False, policy=RetryPolicy()) as client:
        client.stat(grid.home)   # logged in before the clock starts, as plain PRC's session is
        def unlink(remote: str) -> Callable[[], None]:   # a put onto identical bytes would be skipped
            return lambda: session.data_objects.unlink(remote, force=True) if session.data_objects.exists(remote) else None

        _rounds(steps, pid, repeat, [
            ("plain put", unlink(plain), lambda: session.data_objects.put(str(src), plain)),
            ("verified PRC put", unlink(verified),
             lambda: session.data_objects.put(str(src), verified, **{kw.VERIFY_CHKSUM_KW: sha2_of_file(src)})),
            ("ours put", unlink(ours), lambda: client.put(src, ours))])
        session.data_objects.chksum(plain)   # registered untimed: iget -K compares, it does not compute
        out_plain, out_ours, out_verified = tmp / "plain.out", tmp / "ours.out", tmp / "verified.out"
        session.data_objects.get(plain, str(out_plain), force=True)   # warm: each object read once
        client.get(ours, out_ours, force=True)
        _rounds(steps, pid, repeat, [
            ("plain get", lambda: out_plain.unlink(missing_ok=True),
             lambda: session.data_objects.get(plain, str(out_plain))),
            ("verified PRC get", lambda: out_verified.unlink(missing_ok=True),
             lambda: (session.data_objects.get(plain, str(out_verified)),
                      _verify_like_iget_k(session, plain, out_verified))),
            ("ours get", lambda: out_ours.unlink(missing_ok=True), lambda: client.get(ours, out_ours))])
    session.cleanup()


def _report(steps: dict[str, Step], sha: float, link_seconds: float, size: int, link: list[str], repeat: int,
            load_before: tuple[float, ...]) -> None:
    cores = len(os.sched_getaffinity(0))
    mib = size / (1 << 20)
    print(f"secure transfer of {mib:.0f} MiB (best of {repeat}), one local grid"
          f"{', link ' + ' '.join(link) if link else ', loopback'}; {cores} cores; load average before"
          f" {' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"sha256 of the file in memory, one thread: {sha:.2f} s ({mib / sha:.0f} MiB/s)"
          + (f"; the link alone: {link_seconds:.2f} s" if link_seconds else ""))
    print(f"{'step':18}{'wall':>8}{'MiB/s':>8}{'client CPU':>12}{'server CPU':>12}   all walls")
    for name, step in steps.items():
        print(f"{name:18}{step.wall:7.2f}s{mib / step.wall:8.0f}{step.client_cpu:11.2f}s{step.server_cpu:11.2f}s"
              f"   {' '.join(f'{w:.2f}' for w in step.walls)}")
    print("ratio = baseline time / ours; bound = the ratio if ours took only max(sha256 in one thread, the link,"
          " (baseline CPU + the hashes ours adds) / cores)")
    for ours, base, goal, hashes in (("ours put", "plain put", ">= 1.0 (0.95 on a link)", 2),
                                     ("ours put", "verified PRC put", "", 0),
                                     ("ours get", "plain get", ">= 0.7 (0.95 on a link)", 1),
                                     ("ours get", "verified PRC get", ">= 1.2", 0)):
        floor = max(sha, link_seconds, (steps[base].cpu + hashes * sha) / cores)
        ratio = steps[base].wall / steps[ours].wall
        print(f"  {ours} vs {base:18} ratio {ratio:5.2f}   bound {steps[base].wall / floor:5.2f}   goal {goal}")


if __name__ == "__main__":
    main()
