"""Is the local grid the bottleneck?  PRC put/get through it against `cp` on the same disk.

Usage: python benchmarks/grid_throughput.py [--size-mib 1024] [--repeat 2] [--dir DIR]

Starts a grid in a temporary directory on the same file system as the test file, then
times, side by side in one run: `cp` of the file, PRC put (parallel transfer for files
over 32 MiB, as PRC chooses) and PRC get.  Prints MiB/s and ratios to `cp` (best of
--repeat).  Goal: ratio >= 0.25 each way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from localgrid.spawn import spawn  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None, help="Where the file and the grid live (one disk).")
    args = ap.parse_args()

    import irods.keywords as kw

    work = Path(tempfile.mkdtemp(prefix="gridbench-", dir=args.dir))
    grid = None
    try:
        src = work / "src.bin"
        block = os.urandom(1024 * 1024)
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                f.write(block)
        size = src.stat().st_size
        grid = spawn(work / "grid")
        sess = grid.session()
        target = f"{grid.home}/bench.bin"

        def cp():
            subprocess.run(["cp", str(src), str(work / "copy.bin")], check=True)
            os.unlink(work / "copy.bin")

        def put():
            sess.data_objects.put(str(src), target, **{kw.FORCE_FLAG_KW: ""})

        def get():
            out = work / "got.bin"
            if out.exists():
                out.unlink()
            sess.data_objects.get(target, str(out))

        t_cp = best(cp, args.repeat)
        t_put = best(put, args.repeat)
        t_get = best(get, args.repeat)
        assert (work / "got.bin").stat().st_size == size
        mib = size / 2 ** 20
        print(f"file: {mib:.0f} MiB, best of {args.repeat}, PRC {sys.modules['irods'].__version__}")
        print(f"{'operation':<10}{'seconds':>10}{'MiB/s':>10}{'ratio to cp':>14}")
        print(f"{'cp':<10}{t_cp:>10.2f}{mib / t_cp:>10.0f}{1.0:>14.2f}")
        for name, t in (("PRC put", t_put), ("PRC get", t_get)):
            print(f"{name:<10}{t:>10.2f}{mib / t:>10.0f}{t_cp / t:>14.2f}")
        ok = min(t_cp / t_put, t_cp / t_get) >= 0.25
        print(f"goal ratio >= 0.25 each way: {'met' if ok else 'NOT met'}")
        sess.cleanup()
    finally:
        if grid:
            grid.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
