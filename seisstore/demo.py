"""``seisstore demo``: the noise-correlation workflow end to end on a misbehaving local grid.

1. starts a local iRODS grid (``localgrid.spawn``) with three site resource groups as in
   the seed paper (``siteA``, ``siteB``, ``siteC``: a ``random`` resource over two
   unixfilesystem disks each); new data goes to ``siteA``;
2. synthesizes noise for N stations x D days with known geometry: stations on a line
   (a profile) at known coordinates, each the source of its own noise, which reaches every
   other station at a known wave speed.  So the correlation of every pair (A, B) peaks at
   +d/c (A's noise arriving at B) and at -d/c (B's arriving at A): both sides are known.
   From the middle day on the medium is slower by a known ``DVV_TRUTH`` (-0.5 %);
3. ingests it with ``seisstore ingest``;
4. writes the preprocessing and correlation campaigns with ``seisstore campaign new`` and
   runs them with ``seisstore campaign run-local --preempt`` while the grid drops
   connections and caps them (``--faults``, the default);
5. stacks the correlations from the bundles (``seisstore stack``), prints the lag table
   and writes the gather (``seisstore plot gather``);
6. measures dv/v of every pair and date against the days before the change
   (``seisstore dvv``, stretching and MWCS), prints the network average beside the truth
   and plots it (``seisstore plot dvv``, ``plot interferogram``);
7. spreads the raw archive over the three sites (``seisstore rebalance plan/apply``; siteB
   and siteC are new to it) and verifies it (``seisstore rebalance verify --recompute``);
8. prints a summary whose every figure is read from the grid's counters (``GridControl``)
   or the tools' own reports (job logs, run markers, the rebalance journal, verify).

The work directory is the demo's: it refuses one holding anything it did not make (a
marker file lists what it made, updated at every step) and removes only that on a rerun.
Ctrl-C or SIGTERM stops the grid and the campaign's jobs with it.

Exit 3 when any measured lag is off by more than one sample, the network's dv/v by
stretching is off the truth by more than ``DVV_TOLERANCE`` on any date, or anything was
lost.  MWCS is printed beside it but not checked: it fits delays growing linearly with lag
through a coda, and this synthetic medium has direct waves only (its MWCS comes out
about a third low).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from rich.console import Console, JustifyMethod
from rich.table import Table

from secure_irods.exitcodes import ExitCode, run
from seisstore.commands.common import Failure

ROOT = Path(__file__).resolve().parent.parent
SITES = ("siteA", "siteB", "siteC")
FIRST_DAY = datetime.date(2011, 3, 1)
RAW_RATE, RATE = 4.0, 2.0             # Hz: recorded, after preprocessing
SPEED = 2500.0                        # m/s: the wave speed of the synthetic medium
LAT, LON0 = 45.0, 5.5                 # the profile runs east along this latitude
AMPLITUDE = 0.6                       # a source's amplitude at another station (1 at its own)
LOCAL_NOISE = 0.5                     # incoherent noise of each station
MAX_LAG_S = 30.0
CHAIN = [{"op": "detrend"}, {"op": "taper", "fraction": 0.01}, {"op": "bandpass", "freqmin": 0.1, "freqmax": 0.8},
         {"op": "resample", "rate": RATE}, {"op": "onebit"}, {"op": "whiten", "freqmin": 0.1, "freqmax": 0.8}]
DVV_TRUTH = -0.005                    # the medium's velocity change from the middle day on
DVV_TOLERANCE = 0.001                 # |measured - truth| allowed for the network's daily dv/v (0.1 %)
DVV_VELOCITY, DVV_WIDTH = 3500.0, 10.0   # lag window: from distance / 3.5 km/s (before the direct wave), 10 s
MARKER = ".seisstore-demo"             # in the work directory: what the demo made there
FAULTS = {"drop_rate": 0.05, "max_connections": 3, "seed": 13}
JOB_SETTINGS = {"SECURE_IRODS_COOLDOWN": "1", "SECURE_IRODS_MAX_WAIT": "2", "SECURE_IRODS_MAX_CONNECTIONS": "4"}


@dataclass(frozen=True)
class Geometry:
    stations: list[str]
    coords: dict[str, list[float]]     # lat, lon, elevation (m)

    @classmethod
    def profile(cls, n: int, seed: int = 13) -> "Geometry":
        """``n`` stations on an east-west line, 3 to 8 km apart (uneven, so no relabelling keeps distances)."""
        rng = np.random.default_rng(seed)
        east = np.concatenate([[0.0], np.cumsum(rng.uniform(3000.0, 8000.0, n - 1))])
        metres_per_degree = 111_320.0 * np.cos(np.radians(LAT))
        names = [f"ST{k:02d}" for k in range(n)]
        return cls(names, {s: [LAT, round(LON0 + e / metres_per_degree, 6), 0.0] for s, e in zip(names, east)})

    def distance(self, a: str, b: str) -> float:
        from obspy.geodetics import gps2dist_azimuth

        ca, cb = self.coords[a], self.coords[b]
        return float(gps2dist_azimuth(ca[0], ca[1], cb[0], cb[1])[0]) if a != b else 0.0

    def travel_time(self, a: str, b: str) -> float:
        return self.distance(a, b) / SPEED


def synthesize(geometry: Geometry, days: list[datetime.date], directory: Path, *, shuffle: bool = False,
               seed: int = 13, change: tuple[datetime.date, float] | None = None) -> int:
    """One miniSEED file per station and day; returns the bytes written.

    Station j records ``sum_i a_ij s_i(t - d_ij / c) + local noise``: every station's own
    noise ``s_i`` (a_ii = 1) reaches the others delayed by the travel time (a_ij =
    AMPLITUDE), delays applied exactly in the frequency domain.  ``change``: ``(day,
    dv/v)``: from that day on the medium's speed is ``c (1 + dv/v)``, every travel time
    ``d / (c (1 + dv/v))``.  ``shuffle``: each station's recording is written under the
    next station's code (a wrong inventory), which the lag check must catch.
    """
    from obspy import Stream, Trace, UTCDateTime

    rng = np.random.default_rng(seed)
    names = geometry.stations
    n = int(86400 * RAW_RATE)
    pad = int(max(geometry.travel_time(names[0], s) for s in names) * RAW_RATE) + 64
    freqs = np.fft.rfftfreq(n + pad, 1.0 / RAW_RATE)
    directory.mkdir(parents=True, exist_ok=True)
    size = 0
    for day in days:
        spectra = np.fft.rfft(rng.standard_normal((len(names), n + pad)), axis=1)
        scale = 1.0 / (1.0 + change[1]) if change and day >= change[0] else 1.0
        for j, sta in enumerate(names):
            total = np.zeros_like(spectra[0])
            for i, src in enumerate(names):
                shift = np.exp(-2j * np.pi * freqs * geometry.travel_time(src, sta) * scale)
                total += (1.0 if i == j else AMPLITUDE) * spectra[i] * shift
            data = np.fft.irfft(total, n + pad)[pad:] + LOCAL_NOISE * rng.standard_normal(n)
            label = names[(j + 1) % len(names)] if shuffle else sta
            trace = Trace((data * 1000).astype(np.int32),
                          header=dict(network="XX", station=label, location="00", channel="HHZ",
                                      sampling_rate=RAW_RATE, starttime=UTCDateTime(day.isoformat())))
            path = directory / f"XX.{label}.{day.isoformat()}.mseed"
            Stream([trace]).write(str(path), format="MSEED")
            size += path.stat().st_size
    return size


class RetryCounter(logging.Handler):
    """Counts secure_irods' retry warnings in this process (jobs' are read from their logs)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "; retry " in record.getMessage():
            self.count += 1


def measure_lag(lags: np.ndarray, data: np.ndarray) -> tuple[float, float]:
    """Peak lag on the causal (lag > 0) and the acausal (lag < 0) side."""
    pos, neg = lags > 0, lags < 0
    return float(lags[pos][np.argmax(data[pos])]), float(lags[neg][np.argmax(data[neg])])


def lag_table(stacks: Path, geometry: Geometry) -> tuple[Table, float]:
    """The table (pair, distance, expected lag, measured lags, error) and the worst error in samples."""
    import h5py

    table = Table(title="lags of the stacked correlations (both sides)")
    columns: tuple[tuple[str, JustifyMethod], ...] = (("pair", "left"), ("distance", "right"), ("expected", "right"),
                                                     ("causal", "right"), ("acausal", "right"), ("error", "right"))
    for name, just in columns:
        table.add_column(name, justify=just)
    worst = 0.0
    with h5py.File(stacks, "r") as h5:
        lags = h5["lags"][()]
        rate = float(h5.attrs["sampling_rate"])
        for name in sorted(h5["stacks"], key=lambda p: geometry.distance(*p.split(":"))):
            a, b = name.split(":")
            expected = geometry.travel_time(a, b)
            causal, acausal = measure_lag(lags, h5[f"stacks/{name}"][()])
            # which side holds A->B depends on the correlation's sign convention: take the closer
            err = min(max(abs(causal - expected), abs(acausal + expected)),
                      max(abs(causal + expected), abs(acausal - expected)), key=abs)
            samples = err * rate
            worst = max(worst, samples)
            mark = "green" if samples <= 1 else "red"
            table.add_row(f"{a}-{b}", f"{geometry.distance(a, b) / 1000:.2f} km", f"±{expected:.2f} s",
                          f"{causal:+.2f} s", f"{acausal:+.2f} s", f"[{mark}]{samples:.1f} samples[/]")
    return table, worst


class Demo:
    def __init__(self, stations: int, days: int, faults: bool, workdir: Path, shuffle: bool = False,
                 console: Console | None = None, seisstore: click.Command | None = None) -> None:
        self.geometry = Geometry.profile(stations)
        self.days = [FIRST_DAY + datetime.timedelta(days=d) for d in range(days)]
        self.change = (self.days[len(self.days) // 2], DVV_TRUTH) if len(self.days) > 1 else None
        self.faults, self.shuffle = faults, shuffle
        self.workdir = workdir.resolve()
        self.console = console or Console(stderr=True, width=max(110, Console(stderr=True).width))
        self.retries = RetryCounter()
        self.facts: dict[str, object] = {}
        self.owned = False                  # the work directory is the demo's (cleared, marked)
        self.seisstore = seisstore     # the group the steps run (the demo's own root command)

    # ------------------------------------------------------------------ helpers
    def step(self, text: str) -> None:
        self.record()
        self.console.print(f"[bold cyan]{time.monotonic() - self.started:6.1f}s[/] [bold]{text}[/]")

    def cli(self, *args: str) -> int:
        """One ``seisstore`` command, in this process; returns its exit code (its error is printed)."""
        assert self.seisstore is not None, "Demo(seisstore=the group) runs the steps"
        return run(self.seisstore, f"seisstore {args[0]}", list(args))

    def must(self, *args: str) -> None:
        code = self.cli(*args)
        if code:
            raise DemoFailed(f"seisstore {' '.join(args[:3])} ... exited {code}", code)

    # ------------------------------------------------------------------ steps
    def start_grid(self) -> None:
        from localgrid.spawn import spawn

        clear_workdir(self.workdir)
        self.owned = True
        self.grid = spawn(self.workdir / "zone")
        site = dict(self.grid.env, irods_default_resource=SITES[0])
        env_file = self.workdir / "irods_environment.json"
        env_file.write_text(json.dumps(site, indent=2))
        os.environ.update(IRODS_ENVIRONMENT_FILE=str(env_file), IRODS_AUTHENTICATION_FILE=str(self.grid.auth_file),
                          SECURE_IRODS_THROTTLE_DIR=str(self.workdir / "throttle"), XDG_CACHE_HOME=str(self.workdir / "cache"),
                          **JOB_SETTINGS)
        from secure_irods import connect

        with connect() as admin:
            for name in SITES:
                admin.add_resource(name, "random")
                for disk in ("disk1", "disk2"):
                    admin.add_resource(f"{name}_{disk}", "unixfilesystem", host="localhost",
                                       vault=str(self.workdir / "vaults" / f"{name}_{disk}"), parent=name)
        self.step(f"1. local iRODS grid on {self.grid.host}:{self.grid.port} ({self.grid.root}); sites "
                  f"{', '.join(SITES)}: a random resource over two disks each; new data goes to {SITES[0]}")
        if self.faults:
            self.grid.control.set(**FAULTS)
            self.console.print(f"   faults on: {FAULTS['drop_rate']:.0%} of API calls drop the connection, at most "
                               f"{FAULTS['max_connections']} connections (more are refused); client throttle "
                               f"{JOB_SETTINGS['SECURE_IRODS_MAX_CONNECTIONS']} per node")
        self.grid.control.reset_stats()

    def record(self) -> None:
        """List what the work directory holds in its marker: all of it is the demo's."""
        made = sorted(p.name for p in self.workdir.iterdir() if p.name != MARKER)
        (self.workdir / MARKER).write_text(json.dumps({"made_by": "seisstore demo", "entries": made}) + "\n")

    def run(self) -> int:
        from seisstore.children import unwind_on_sigterm

        self.started = time.monotonic()
        retry_log = logging.getLogger("secure_irods.retry")
        retry_log.addHandler(self.retries)
        retry_log.propagate = False          # counted for the summary, not printed between the steps
        try:
            with unwind_on_sigterm():
                self.start_grid()
                return self._run()
        finally:
            retry_log.removeHandler(self.retries)
            retry_log.propagate = True
            if getattr(self, "grid", None) is not None:
                self.grid.stop()
            if self.owned and self.workdir.is_dir():
                self.record()

    def _run(self) -> int:
        g, home = self.geometry, self.grid.home
        raw, processed, xc = f"{home}/archive", f"{home}/processed", f"{home}/xc"
        recordings = self.workdir / "recordings"
        size = synthesize(g, self.days, recordings, shuffle=self.shuffle, change=self.change)
        span = g.distance(g.stations[0], g.stations[-1])
        self.step(f"2. synthetic noise: {len(g.stations)} stations x {len(self.days)} days at {RAW_RATE:g} Hz "
                  f"({size / 1e6:.1f} MB), a {span / 1000:.1f} km profile, wave speed {SPEED / 1000:g} km/s"
                  + (f", dv/v {100 * self.change[1]:+.1f} % from {self.change[0]}" if self.change else "")
                  + (" [red](traces shuffled between stations)[/]" if self.shuffle else ""))

        self.step(f"3. seisstore ingest {recordings.name}/ {raw} --create")
        self.must("ingest", str(recordings), raw, "--create", "--jobs", "1", "--report", str(self.workdir / "ingest.json"))
        ingest = json.loads((self.workdir / "ingest.json").read_text())

        settings = {"preprocess": {"archive": raw, "processed": processed, "chain": CHAIN},
                    "correlate": {"processed": processed, "bundles": xc, "window_s": 3600, "max_lag_s": MAX_LAG_S,
                                  "coordinates": g.coords, "workers": 1}}
        os.environ["SEISSTORE_CONFIG"] = json.dumps(settings)
        dates = f"{self.days[0]}..{self.days[-1]}"
        stations = ",".join(g.stations)
        n_sta = max(1, len(g.stations) // 2)
        camps = {}
        for name, kind, script, n_dates, n_stations in (
                ("pre", "processing", "job_preprocess.py", len(self.days), n_sta),
                ("xc", "correlation", "job_correlate.py", len(self.days), min(2, len(g.stations)))):
            camp = self.workdir / "campaigns" / name
            self.step(f"4. seisstore campaign new {name} --kind {kind}, then run-local"
                      + (" --preempt 0.25" if self.faults else ""))
            self.must("campaign", "new", name, "--kind", kind, "--script", str(ROOT / "scripts" / script),
                      "--dates", dates, "--stations", stations, "--n-dates", str(n_dates),
                      "--n-stations", str(n_stations), "--collection", f"{home}/campaigns/{name}",
                      "--interpreter", sys.executable, "--out", str(camp), "--upload", "--parents")
            self.must("campaign", "run-local", str(camp), "-j", "2", "--attempts", "6",
                      *(["--preempt", "0.25", "--seed", "13"] if self.faults else []))
            camps[name] = camp

        stacks, gather = self.workdir / "stacks.h5", self.workdir / "gather.png"
        self.step(f"5. seisstore stack {xc} --all; seisstore plot gather")
        self.must("stack", xc, "--all", "-o", str(stacks))
        self.must("plot", "gather", str(stacks), "-o", str(gather), "--velocity", f"{SPEED:g}",
                  "--filter", "0.1-0.8 Hz, one-bit, whitened")
        table, worst = lag_table(stacks, g)
        self.console.print(table)
        self.console.print(f"   gather: {gather}")
        dvv_off = self.velocity_change(xc)

        plan = self.workdir / "rebalance.jsonl"
        self.step(f"7. seisstore rebalance plan {raw} --to {','.join(SITES)}; apply; verify --recompute")
        self.must("rebalance", "plan", raw, "--to", ",".join(SITES), "--threshold", "10", "-o", str(plan))
        self.must("rebalance", "apply", str(plan), "--max-parallel", "2", "--wait", "120")
        if self.faults:
            self.grid.control.set(drop_rate=0.0, max_connections=0)      # the check runs on a quiet grid
        lost = self.verify(raw)

        self.summary(ingest, camps, plan, processed, xc, lost)
        self.console.print(f"wall time {time.monotonic() - self.started:.1f} s")
        if worst > 1:
            raise DemoFailed(f"a measured lag is off by {worst:.1f} samples (more than one)", ExitCode.PERMANENT)
        if lost:
            raise DemoFailed(f"{lost} objects lost or damaged", ExitCode.PERMANENT)
        if dvv_off is not None and dvv_off > DVV_TOLERANCE:
            raise DemoFailed(f"the network's dv/v is off the truth by {100 * dvv_off:.3f} % (more than"
                             f" {100 * DVV_TOLERANCE:g} %)", ExitCode.PERMANENT)
        self.console.print("[green]demo finished: every lag within one sample of the truth, nothing lost"
                           + (f"; dv/v within {100 * DVV_TOLERANCE:g} % of the truth" if dvv_off is not None else "")
                           + "[/]")
        return 0

    def velocity_change(self, xc: str) -> float | None:
        """Step 6: ``seisstore dvv`` against the days before the change; the table beside the truth.

        Returns the worst ``|measured - truth|`` of the network's dv/v by stretching (None: one day only).
        """
        import h5py

        if self.change is None:
            self.console.print("   dv/v needs two days or more: skipped")
            return None
        first, last = self.geometry.stations[0], self.geometry.stations[-1]
        results = self.workdir / "dvv.h5"
        before = self.change[0] - datetime.timedelta(days=1)
        self.step(f"6. seisstore dvv {xc} --all --reference {self.days[0]}..{before}; plot dvv, plot interferogram")
        self.must("dvv", xc, "--all", "--velocity", f"{DVV_VELOCITY:g}", "--width", f"{DVV_WIDTH:g}",
                  "--freqmin", "0.1", "--freqmax", "0.8", "--reference", f"{self.days[0]}..{before}",
                  "-o", str(results))
        self.must("plot", "dvv", str(results), "-o", str(self.workdir / "dvv.png"))
        self.must("plot", "interferogram", str(results), "--pair", first, last, "-o",
                  str(self.workdir / "interferogram.png"))
        table = Table(title=f"dv/v of the network against {self.days[0]}..{before} (%), truth beside it")
        for name in ("date", "truth", "stretching", "error", "MWCS (not checked)"):
            table.add_column(name, justify="left" if name == "date" else "right")
        worst = 0.0
        with h5py.File(results, "r") as h5:
            dates = [datetime.date.fromisoformat(d.decode() if isinstance(d, bytes) else d) for d in h5["dates"][()]]
            st, st_err, mw = (h5[f"network/{k}"][()] for k in ("stretching", "stretching_error", "mwcs"))
        for k, day in enumerate(dates):
            truth = self.change[1] if day >= self.change[0] else 0.0
            off = abs(st[k] - truth) if np.isfinite(st[k]) else float("inf")
            worst = max(worst, off)
            mark = "green" if off <= DVV_TOLERANCE else "red"
            table.add_row(str(day), f"{100 * truth:+.3f}", f"[{mark}]{100 * st[k]:+.3f}[/]", f"{100 * st_err[k]:.3f}",
                          f"{100 * mw[k]:+.3f}")
        self.console.print(table)
        self.console.print(f"   tolerance {100 * DVV_TOLERANCE:g} %; plots: {self.workdir / 'dvv.png'},"
                           f" {self.workdir / 'interferogram.png'}")
        return worst

    def verify(self, raw: str) -> int:
        from secure_irods import connect
        from seisstore.rebalance import Inventory, verify

        with connect() as client:
            inv = Inventory.load(client, client.resolve(raw))
            report = verify(client, inv, min_copies=1, recompute=True)
            self.facts["groups"] = {k: v for k, v in inv.usage("group").items()}
        self.facts["verified"] = report.objects
        return report.at_risk

    def summary(self, ingest: dict, camps: dict, plan: Path, processed: str, xc: str, lost: int) -> None:
        from secure_irods import connect
        from secure_irods.query import Query
        from seisstore.rebalance import Journal, Plan

        stats = self.grid.control.stats()
        job_retries = resubmitted = preempted_logs = 0
        for camp in camps.values():
            for log in (camp / ".run" / "logs").glob("*.log"):
                job_retries += log.read_text(errors="replace").count("; retry ")
            for marker in (camp / ".run").glob("*.done"):
                attempts = int(marker.read_text().split("=")[1])
                resubmitted += attempts - 1
            preempted_logs += len(list((camp / ".run" / "logs").glob("*.log")))
        with connect() as client:
            counts = {}
            for coll in (processed, xc):
                q = Query("DATA_NAME").under(coll)
                counts[coll] = len(list(client.query(q)))
        moves = len(Plan.read(plan).moves)
        moved = Journal(plan).copied()
        stored = len(ingest["day_files"]["stored"])
        table = Table(title="summary (grid counters and the tools' reports)", show_header=False)
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_column("from")
        rows = [
            ("transfers: raw day files ingested", str(stored), "ingest report"),
            ("transfers: processed day files, bundles", f"{counts[processed]}, {counts[xc]}", "catalogue (GenQuery)"),
            ("transfers: replicas moved", str(moves), "rebalance plan"),
            ("bytes into / out of the zone", f"{stats['bytes_received'] / 1e6:.1f} / {stats['bytes_sent'] / 1e6:.1f} MB",
             "grid counters"),
            ("connections (API calls)", f"{stats['accepted']} ({stats['api_calls']})", "grid counters"),
            ("connections dropped by the grid", str(stats["drops"]), "grid counters"),
            ("connection refusals survived", str(stats["refused"]), "grid counters"),
            ("retries", f"{job_retries + self.retries.count}", "retry warnings: job logs + this process"),
            ("jobs resubmitted", str(resubmitted), "run-local markers (attempts - 1)"),
            ("bytes moved by rebalance", f"{moved / 1e6:.2f} MB", "rebalance journal"),
            ("data lost", str(lost), f"rebalance verify --recompute of {self.facts.get('verified')} objects"),
        ]
        for row in rows:
            table.add_row(*row)
        self.console.print(table)
        self.facts.update(stats=stats, retries=job_retries + self.retries.count, resubmitted=resubmitted,
                          moved=moved, lost=lost)


def clear_workdir(workdir: Path) -> None:
    """Make ``workdir`` empty, removing only what an earlier demo made there (its marker lists it).

    A directory with anything else (or a file at its name) is refused, exit 1, untouched."""
    if workdir.exists() and not workdir.is_dir():
        raise DemoFailed(f"--workdir {workdir} is not a directory; choose another --workdir", ExitCode.USAGE)
    if not workdir.exists():
        workdir.mkdir(parents=True)
        (workdir / MARKER).write_text(json.dumps({"made_by": "seisstore demo", "entries": []}) + "\n")
        return
    try:
        made = set(json.loads((workdir / MARKER).read_text())["entries"])
    except (OSError, ValueError, KeyError, TypeError):
        made = set()
    foreign = sorted(p.name for p in workdir.iterdir() if p.name != MARKER and p.name not in made)
    if foreign:
        raise DemoFailed(f"--workdir {workdir} holds {len(foreign)} entries the demo did not make (e.g. {foreign[0]!r});"
                         " choose another --workdir (it is created) or empty this one yourself", ExitCode.USAGE)
    for name in made:
        path = workdir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


class DemoFailed(Failure):
    """A step failed or a check did not hold."""


@click.command("demo")
@click.option("--stations", type=click.IntRange(2, 30), default=6, show_default=True, help="Stations on the profile.")
@click.option("--days", type=click.IntRange(1, 60), default=3, show_default=True,
              help="Days of noise (the velocity change starts on the middle one).")
@click.option("--faults/--no-faults", default=True, show_default=True,
              help="Drop 5 % of API calls, cap the grid at 3 connections, preempt a quarter of the jobs.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-grid"),
              show_default=True, help="Grid, recordings, campaigns and results: a new or empty directory, or "
                                      "one an earlier demo made (what it made there is removed first).")
@click.option("--shuffle", is_flag=True, hidden=True, help="Write each station's noise under another's code.")
@click.pass_context
def demo_cmd(ctx: click.Context, stations: int, days: int, faults: bool, workdir: Path, shuffle: bool) -> None:
    """The noise-correlation workflow end to end on a local grid that misbehaves; checks the lags
    and the velocity change it synthesized.

    Exit 3 when any lag is off by more than one sample, the dv/v by more than 0.1 %, or
    anything was lost.
    """
    Demo(stations, days, faults, workdir, shuffle, seisstore=ctx.find_root().command).run()
