"""``seisstore ingest`` of 2,000 synthetic day files against the same files ``put`` one by one.

    python benchmarks/ingest.py                  # 2000 files: 100 stations x 20 days, 1 Hz int32
    python benchmarks/ingest.py --files 200      # a quick look
    python benchmarks/ingest.py --jobs 0,1,2     # upload threads of each ingest run

One local grid, one run: the files are written once (miniSEED, STEIM2, one channel-day
each, as an SDS archive holds them); then ``Client.put`` in a loop stores them in one
collection (the floor: bytes moved, nothing read or checked), and ``ingest`` stores them
again in a new collection per ``--jobs`` value (headers, read, merge, cut, re-encode, read
back and compare, ``put_many`` and AVUs).  Prints files/s and MB/s (input bytes) of each.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from localgrid.spawn import spawn  # noqa: E402


def make_files(src: Path, n: int, rate: float) -> int:
    import numpy as np
    from obspy import Trace, UTCDateTime

    stations = max(1, n // 20)
    days = -(-n // stations)
    rng = np.random.default_rng(0)
    npts = int(86400 * rate)
    made = 0
    for s in range(stations):
        for d in range(days):
            if made == n:
                return made
            day = UTCDateTime(datetime.date(2021, 1, 1) + datetime.timedelta(days=d))
            data = np.cumsum(rng.integers(-200, 200, npts)).astype(np.int32)
            tr = Trace(data, header={"network": "XB", "station": f"S{s:03d}", "location": "00",
                                     "channel": "LHZ", "sampling_rate": rate, "starttime": day})
            tr.write(str(src / f"XB.S{s:03d}.00.LHZ.D.2021.{d + 1:03d}"), format="MSEED", encoding="STEIM2")
            made += 1
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1.0, help="samples per second of each day file")
    parser.add_argument("--jobs", default="0,2", help="comma list: upload threads of each ingest run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmp = Path(tmp)
        grid = spawn(tmp / "grid")
        os.environ.update(grid.environ(SECURE_IRODS_THROTTLE_DIR=str(tmp / "throttle")))
        try:
            from secure_irods.client import connect
            from seisstore.catalogue import Catalogue
            from seisstore.ingest import ingest
            from seisstore.layout import SDSLayout

            src = tmp / "src"
            src.mkdir()
            n = make_files(src, args.files, args.rate)
            files = sorted(src.iterdir())
            size = sum(f.stat().st_size for f in files)
            rows = []
            with connect() as client:
                coll = f"{grid.home}/put-loop"
                client.mkdir(coll)
                t = time.perf_counter()
                for f in files:
                    client.put(f, f"{coll}/{f.name}")
                rows.append(("put one by one", time.perf_counter() - t, ""))
                for jobs in [int(j) for j in args.jobs.split(",")]:
                    coll = f"{grid.home}/ingest-j{jobs}"
                    t = time.perf_counter()
                    report = ingest(client, src, coll, SDSLayout(), progress=False, jobs=jobs)
                    took = time.perf_counter() - t
                    stored = len(Catalogue(client, coll, SDSLayout(), cache=False))
                    ok = report.exit_code == 0 and len(report.stored) == n == stored
                    rows.append((f"ingest --jobs {jobs}", took, f"{len(report.stored)} day files, ok: {ok}"))
        finally:
            grid.stop()
    print(f"{n} day files ({args.rate:g} Hz int32, STEIM2), {size / 1e6:.1f} MB, one local grid")
    base = rows[0][1]
    for what, took, note in rows:
        print(f"{what:22}{took:8.2f} s {n / took:8.1f} files/s {size / 1e6 / took:7.2f} MB/s"
              f" {took / base:6.2f}x the put loop  {note}")


if __name__ == "__main__":
    main()
