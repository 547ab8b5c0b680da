"""The demo: the Whisper workflow on the embedded local grid, end to end.

1. starts a fresh local iRODS grid in ./demo-grid, with a per-site resource group as in
   the seed paper (a `random` resource over two disks) that the site's jobs write to;
2. ingests synthetic multi-day recordings of four stations (ObsPy) as SDS day files with
   their AVUs, through secure_irods (atomic, checksummed);
3. indexes the archive with a few bulk queries and prints its coverage;
4. writes a campaign (param.txt, start.bash, CiGri JDL, OAR and Slurm arrays) whose job
   computes daily RMS per station, and runs it here as a best-effort grid would, with
   jobs killed at random and resubmitted;
5. gathers the results with one get_many and prints them, with the grid's counters.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from obspy import Stream, Trace, UTCDateTime
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

console = Console(stderr=True)
GRID = ROOT / "demo-grid"
STATIONS = ["STA1", "STA2", "STA3", "STA4"]
FIRST_DAY, N_DAYS, RATE = date(2011, 3, 8), 6, 10.0


def start_grid():
    from localgrid.spawn import spawn

    shutil.rmtree(GRID, ignore_errors=True)
    grid = spawn(GRID / "zone")
    console.print(f"[bold]1.[/] local iRODS grid ready on {grid.host}:{grid.port} ({grid.root})")
    return grid


def site_environment(env: dict) -> Path:
    """The site's client environment: new data goes to the site's resource group."""
    site = dict(env, irods_default_resource="siteA")
    path = GRID / "siteA_environment.json"
    path.write_text(json.dumps(site, indent=2))
    os.environ.update(IRODS_ENVIRONMENT_FILE=str(path), IRODS_AUTHENTICATION_FILE=str(GRID / "zone" / ".irodsA"),
                      SECURE_IRODS_THROTTLE_DIR=str(GRID / "throttle"), SECURE_IRODS_MAX_CONNECTIONS="4")
    return path


def make_site_group() -> None:
    from secure_irods import connect

    with connect() as admin:
        admin.add_resource("siteA", "random")
        for disk in ("siteA_disk1", "siteA_disk2"):
            admin.add_resource(disk, "unixfilesystem", host="localhost", vault=f"/{disk}", parent="siteA")


def synthetic_recordings(directory: Path) -> None:
    """One multi-day miniSEED file per station, starting mid-day: ingest cuts it into days."""
    for n, sta in enumerate(STATIONS):
        rng = np.random.default_rng(n)
        start = UTCDateTime(FIRST_DAY.isoformat()) + 3600 * 7
        npts = int((N_DAYS * 86400 - 3600 * 14) * RATE)
        data = (rng.normal(0, 50 * (n + 1), npts)).astype(np.int32)
        header = {"network": "XX", "station": sta, "location": "00", "channel": "HHZ", "sampling_rate": RATE,
                  "starttime": start}
        Stream([Trace(data=data, header=header)]).write(str(directory / f"{sta}.mseed"), format="MSEED")


def main() -> None:
    from secure_irods import connect
    from seisstore.campaign import Campaign, write_campaign
    from seisstore.catalogue import Catalogue
    from seisstore.coverage import render_coverage
    from seisstore.ingest import ingest
    from seisstore.jdl import Cluster
    from seisstore.layout import SDSLayout
    from seisstore.runlocal import LocalRunner

    grid = start_grid()
    env = grid.env
    try:
        site_environment(env)
        make_site_group()
        home = env["irods_home"]
        archive, results, code = f"{home}/archive", f"{home}/results/rms", f"{home}/campaigns/rms"
        with connect() as irods, tempfile.TemporaryDirectory() as tmp:
            synthetic_recordings(Path(tmp))
            report = ingest(irods, tmp, archive, SDSLayout(), progress=False)
            console.print(f"[bold]2.[/] ingest: {report.summary()}")
            report = ingest(irods, tmp, archive, SDSLayout(), progress=False)
            console.print(f"   again: {report.summary()}")

            catalogue = Catalogue(irods, archive, SDSLayout(), cache=False)
            queries = catalogue.counter.queries
            where = sorted({r for _, e in catalogue.select() for r in e.resources})
            console.print(f"[bold]3.[/] catalogue: {len(catalogue)} day files indexed with {queries} queries,"
                          f" replicas on {', '.join(where)}")
            render_coverage(console, catalogue.coverage())

            camp = Campaign(name="rms", dates=[FIRST_DAY + timedelta(days=d) for d in range(N_DAYS)],
                            stations=STATIONS, n_dates=3, n_stations=2, job_script=ROOT / "scripts" / "job_rms.py",
                            irods_collection=code, clusters={"local": Cluster(project="whisper", walltime="00:20:00")},
                            prefix="rms", interpreter=(sys.executable,))
            directory = GRID / "campaign"
            write_campaign(camp, directory)
            irods.mkdir(code)
            irods.put_many([(directory / name, f"{code}/{name}") for name in camp.uploads], force=True)
            irods.mkdir(results)
            console.print(f"[bold]4.[/] campaign: {camp.n_jobs} jobs in {directory} (param.txt, start.bash, rms.jdl,"
                          f" oar_local.sh, slurm_local.sh); running them here, best effort:")
            irods.close()   # no idle connection held while the jobs share the node's slots
            os.environ.update(SEISSTORE_ARCHIVE=archive, SEISSTORE_RESULTS=results,
                              PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
            run = LocalRunner(directory, jobs=2, attempts=5, preempt=0.3, preempt_within=3.0, seed=2,
                              console=console).run()
            console.print(f"   {sum(r.done for r in run.results)} of {len(run.results)} jobs done,"
                          f" {sum(r.killed for r in run.results)} killed mid-way and resubmitted")
            if run.failed:
                raise SystemExit(f"demo: {len(run.failed)} jobs failed; logs in {directory / '.run' / 'logs'}")

            irods = connect()
            names = irods.listdir(results)
            irods.get_many([(f"{results}/{n}", Path(tmp) / n) for n in names])
            table = Table(title=f"5. daily RMS, from {len(names)} result files (one get_many)")
            table.add_column("station")
            days = [FIRST_DAY + timedelta(days=d) for d in range(N_DAYS)]
            for d in days:
                table.add_column(d.strftime("%m-%d"), justify="right")
            rms: dict[tuple[str, str], str] = {}
            for n in names:
                for line in (Path(tmp) / n).read_text().splitlines():
                    seed_id, day, value = line.split(",")
                    rms[(seed_id, day)] = value
            for sta in STATIONS:
                seed_id = f"XX.{sta}.00.HHZ"
                table.add_row(seed_id, *(rms.get((seed_id, d.isoformat()), "-") for d in days))
            console.print(table)
        stats = grid.control.stats()
        console.print(f"grid: {stats['accepted']} connections, {stats['api_calls']} API calls, at most"
                      f" {stats['max_active']} at once")
        console.print("[green]demo finished[/]")
    finally:
        grid.stop()


if __name__ == "__main__":
    main()
