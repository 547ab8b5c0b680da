"""2,000 files of 64 KiB: one ``get_many`` call against a shell loop of ``secure-iget``.

    python benchmarks/many_files.py               # 2000 files, loop timed on a 200-file sample
    python benchmarks/many_files.py --small       # 200 files, loop on 40
    python benchmarks/many_files.py --loop-all    # time the shell loop over every file

The shell loop starts one process (interpreter, login, throttle slot) per file, as a
job script calling ``iget`` per file does; ``get_many`` reuses one session.  Unless
``--loop-all``, the loop's time is measured on a sample and scaled linearly (said so in
the output).  Goal: >= 20x.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from localgrid.spawn import spawn  # noqa: E402

BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--files", type=int)
    parser.add_argument("--sample", type=int)
    parser.add_argument("--loop-all", action="store_true")
    args = parser.parse_args()
    n = args.files or (200 if args.small else 2000)
    sample = n if args.loop_all else min(n, args.sample or (40 if args.small else 200))
    with tempfile.TemporaryDirectory(prefix="bench-many-") as tmp:
        tmp = Path(tmp)
        grid = spawn(tmp / "grid")
        env = grid.environ(SECURE_IRODS_THROTTLE_DIR=str(tmp / "throttle"))
        os.environ.update(env)
        try:
            from secure_irods.client import connect

            src = tmp / "src"
            src.mkdir()
            for i in range(n):
                (src / f"f{i:05d}.bin").write_bytes(os.urandom(64 * 1024))
            coll = f"{grid.home}/many"
            with connect() as client:
                client.mkdir(coll)
                client.put_many([(src / f"f{i:05d}.bin", f"{coll}/f{i:05d}.bin") for i in range(n)])
            out1, out2 = tmp / "out1", tmp / "out2"
            out1.mkdir()
            out2.mkdir()
            t = time.perf_counter()
            with connect() as client:
                client.get_many([(f"{coll}/f{i:05d}.bin", out1) for i in range(n)])
            ours = time.perf_counter() - t
            script = "\n".join(f"{shlex.quote(str(BIN / 'secure-iget'))} {coll}/f{i:05d}.bin {out2} || exit 1"
                               for i in range(sample))
            t = time.perf_counter()
            subprocess.run(["sh", "-c", script], env=env, check=True)
            loop = (time.perf_counter() - t) * n / sample
            ok = all((out1 / f"f{i:05d}.bin").read_bytes() == (src / f"f{i:05d}.bin").read_bytes() for i in range(n))
        finally:
            grid.stop()
    note = "" if sample == n else f" (measured on {sample}, scaled x{n / sample:g})"
    print(f"{n} files x 64 KiB, one local grid; get_many byte-identical: {ok}")
    print(f"{'get_many (one call)':32}{ours:9.2f} s {n / ours:8.0f} files/s")
    print(f"{'shell loop of secure-iget':32}{loop:9.2f} s {n / loop:8.1f} files/s{note}")
    print(f"{'speed-up (goal >= 20x)':32}{loop / ours:9.1f} x")


if __name__ == "__main__":
    main()
