"""The demo: a small seismic archive on the embedded local grid, end to end.

Starts a grid in ./demo-grid (or reuses it), makes a per-site resource group as in the
seed paper (a `random` resource over two storage resources), writes synthetic day files
of three stations in the SDS layout with their AVUs, then finds them again with one bulk
query, reads one back with ObsPy and shows where the replicas landed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from obspy import Stream, Trace, UTCDateTime, read
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seisstore.layout import Key, SDSLayout  # noqa: E402

console = Console(stderr=True)


def start_grid(directory: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-m", "localgrid", "serve", "--root", str(directory), "--port", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        proc.kill()
        raise SystemExit("demo: the local grid did not start")
    console.print(f"[bold]local grid[/] ready on {line[1]}:{line[2]} ({directory})")
    return proc, directory / "irods_environment.json"


def synthetic_day(key: Key, rate: float = 20.0) -> Stream:
    rng = np.random.default_rng(abs(hash((key.sta, key.day.toordinal()))) % 2 ** 32)
    start = UTCDateTime(key.day.isoformat())
    data = rng.normal(0, 100, int(86400 * rate)).astype(np.int32)
    header = {"network": key.net, "station": key.sta, "location": key.loc, "channel": key.cha,
              "sampling_rate": rate, "starttime": start}
    return Stream([Trace(data=data, header=header)])


def ensure_site_group(sess, name: str, children: list[str]) -> None:
    from irods.exception import ResourceDoesNotExist

    try:
        sess.resources.get(name)
        return
    except ResourceDoesNotExist:
        pass
    sess.resources.create(name, "random")
    for child in children:
        sess.resources.create(child, "unixfilesystem", host="localhost", path=f"/{child}")
        sess.resources.add_child(name, child)


def main() -> None:
    from irods.column import Like
    from irods.models import Collection, DataObject, DataObjectMeta
    from irods.session import iRODSSession
    import irods.keywords as kw

    proc, env_file = start_grid(ROOT / "demo-grid")
    try:
        env = json.loads(env_file.read_text())
        sess = iRODSSession(irods_env_file=str(env_file))
        archive = f"{env['irods_home']}/archive"
        ensure_site_group(sess, "siteA", ["siteA_disk1", "siteA_disk2"])
        layout = SDSLayout()
        keys = [Key("XX", sta, "00", "HHZ", date(2011, 3, 10) + timedelta(days=d))
                for sta in ("STA1", "STA2", "STA3") for d in range(2)]
        with tempfile.TemporaryDirectory() as tmp:
            for key in keys:
                path = f"{archive}/{layout.path(key)}"
                if sess.data_objects.exists(path):
                    continue
                local = Path(tmp) / "day.mseed"
                st = synthetic_day(key)
                st.write(str(local), format="MSEED")
                sess.collections.create(path.rsplit("/", 1)[0])
                sess.data_objects.put(str(local), path, **{kw.REG_CHKSUM_KW: "", kw.DEST_RESC_NAME_KW: "siteA"})
                obj = sess.data_objects.get(path)
                tr = st[0]
                for attr, value in (("network", key.net), ("station", key.sta), ("channel", key.cha),
                                    ("start", str(tr.stats.starttime)), ("sampling_rate", str(tr.stats.sampling_rate)),
                                    ("npts", str(tr.stats.npts))):
                    obj.metadata.add(attr, value)
            rows = sess.query(Collection.name, DataObject.name, DataObject.size, DataObject.resource_name,
                              DataObject.checksum).filter(Like(Collection.name, f"{archive}/%")).all()
            table = Table(title="archive, found with one GenQuery")
            for col in ("station/day", "size", "resource", "checksum"):
                table.add_column(col)
            for r in sorted(rows, key=lambda r: r[DataObject.name]):
                rel = f"{r[Collection.name][len(archive) + 1:]}/{r[DataObject.name]}"
                key = layout.parse(rel)
                table.add_row(f"{key.sta} {key.day}", str(r[DataObject.size]), r[DataObject.resource_name],
                              (r[DataObject.checksum] or "")[:20] + "...")
            console.print(table)
            hits = sess.query(DataObject.name).filter(DataObjectMeta.name == "station",
                                                      DataObjectMeta.value == "STA2").all()
            console.print(f"objects with AVU station=STA2: {len(hits)}")
            first = keys[0]
            back = Path(tmp) / "back.mseed"
            sess.data_objects.get(f"{archive}/{layout.path(first)}", str(back))
            st = read(str(back))
            console.print(f"read back with ObsPy: {st[0].id} {st[0].stats.starttime} {st[0].stats.npts} samples")
        sess.cleanup()
        console.print("[green]demo finished[/]")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
