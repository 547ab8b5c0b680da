"""``seisstore bundles ls``, ``stack``, ``export`` and ``plot gather``: the correlations in the zone.

``stack`` reads correlations selectively from the bundles (the bundle index says which
bundle holds each (pair, date); each bundle is opened once and only the rows wanted are
fetched) and writes the stacks to a local HDF5 file, which ``export`` (SAC or miniSEED
through ObsPy) and ``plot gather`` (a PNG sorted by inter-station distance) read.

Stacks file: ``/lags`` (seconds) and ``/stacks/<A>:<B>`` (one 1-D dataset per pair, attrs
``station_a``, ``station_b``, ``coords_a``, ``coords_b``, ``distance_m``, ``dates``,
``method``); root attrs ``sampling_rate``, ``max_lag_s``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from secure_irods.exitcodes import ExitCode
from seisstore.commands.common import Failure, Zone, doing, emit_json, json_option, parse_dates, pass_zone, results_console, save_figure

if TYPE_CHECKING:
    from seisstore.bundles import CorrelationStore

__all__ = ["bundles", "stack_cmd", "export_cmd", "plot"]


def _store(zone: Zone, coll: str) -> "CorrelationStore":
    from seisstore.bundles import CorrelationStore

    with doing(f"cannot index bundles of {coll}"):
        client = zone.client()
        return CorrelationStore(client, client.require_collection(coll))


def _pairs(values) -> list[tuple[str, str]] | None:
    return [(a, b) for a, b in values] if values else None


@click.group("bundles")
def bundles() -> None:
    """Correlation bundles in the zone (HDF5, indexed by their AVUs)."""


@bundles.command("ls")
@click.argument("coll")
@click.option("--pair", "pairs", nargs=2, multiple=True, help="Only bundles holding this pair (A B; repeatable).")
@click.option("--date", "dates", default=None, help="2011-03-01..2011-03-31, a comma list, or @file.")
@click.option("--cells", is_flag=True, help="One line per (pair, date): the bundle that holds it.")
@json_option
@pass_zone
def bundles_ls(zone: Zone, coll: str, pairs: tuple[tuple[str, str], ...], dates: str | None, cells: bool,
               as_json: bool) -> None:
    """List the bundles under COLL from their AVUs (bulk GenQuery; no bundle is opened)."""
    index = _store(zone, coll).index
    chosen = index.select(_pairs(pairs), parse_dates(dates) if dates else None)
    if as_json:
        emit_json({"collection": coll, "queries": index.queries, "bundles": [
            {"path": path, "job": index.bundles[path].job,
             "cells": [{"pair": [a, b], "date": str(d)} for (a, b), d in items]} for path, items in chosen.items()]})
        return
    if cells:
        for path, items in chosen.items():
            for (a, b), d in items:
                click.echo(f"{a}:{b}\t{d}\t{path}")
        return
    table = Table("bundle", "job", "pairs", "dates", "first", "last", box=None)
    for path, items in chosen.items():
        info = index.bundles[path]
        days = sorted({d for _, d in items})
        table.add_row(path, info.job, str(len({p for p, _ in items})), str(len(days)), str(days[0]), str(days[-1]))
    results_console().print(table)
    click.echo(f"{len(chosen)} bundles, {sum(len(v) for v in chosen.values())} correlations"
               f" ({index.queries} GenQuery round trips)", err=True)


def stack_command(zone: Zone, coll: str, pairs: tuple[tuple[str, str], ...], all_: bool, dates: str | None,
                  method: str, output: Path) -> None:
    """Body of ``seisstore stack`` (see its help)."""
    import h5py
    import numpy as np

    from seisstore.bundles import pair_name
    from seisstore.xcorr import Stacker

    if not pairs and not all_:
        raise Failure("give --pair A B (repeatable) or --all", ExitCode.USAGE)
    store = _store(zone, coll)
    rows: dict = {}          # pair -> running Stacker (one row's memory per pair, whatever the dates)
    meta: dict = {}
    stats: dict = {}
    lags, rate = None, None
    with doing(f"reading bundles of {coll} failed"):
        for c in store.read(None if all_ else _pairs(pairs), parse_dates(dates) if dates else None, stats=stats):
            # each substack weighted by the windows it kept (0: none, skipped)
            rows.setdefault(c.pair, Stacker(method)).add(c.data.reshape(-1, c.data.shape[-1]),
                                                         np.asarray(c.n_windows).reshape(-1))
            meta.setdefault(c.pair, (c.coords_a, c.coords_b, c.distance_m, []))[3].append(c.date)
            lags, rate = c.lags, c.rate
    if not rows:
        raise Failure("no correlation matches the selection", ExitCode.PERMANENT)
    assert lags is not None     # rows were read, so lags too
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with h5py.File(tmp, "w") as h5:
        h5.attrs["sampling_rate"] = rate
        h5.attrs["max_lag_s"] = float(lags[-1])
        h5.attrs["method"] = method
        h5["lags"] = lags
        group = h5.create_group("stacks")
        for pair in sorted(rows):
            ca, cb, dist, days = meta[pair]
            ds = group.create_dataset(pair_name(*pair), data=rows[pair].result().astype("f8"))
            ds.attrs.update({"station_a": pair[0], "station_b": pair[1], "coords_a": ca, "coords_b": cb,
                             "distance_m": dist, "dates": sorted(d.isoformat() for d in days), "method": method})
    tmp.replace(output)
    click.echo(f"{len(rows)} pairs stacked ({method}) over {sum(len(m[3]) for m in meta.values())} pair-days"
               f" from {stats.get('bundles', 0)} bundles: {stats.get('bytes', 0)} bytes,"
               f" {stats.get('round_trips', 0)} read round trips -> {output}", err=True)


def _read_stacks(path: Path):
    import h5py

    if not path.is_file():
        raise Failure(f"no such stacks file: {path}", ExitCode.USAGE)
    with h5py.File(path, "r") as h5:
        lags = h5["lags"][()]
        rate = float(h5.attrs["sampling_rate"])
        out = []
        for name, ds in h5["stacks"].items():
            out.append((name, ds[()], {k: ds.attrs[k] for k in ds.attrs}))
    return lags, rate, out


def export_command(stacks: Path, fmt: str, out_dir: Path) -> None:
    """Body of ``seisstore export``."""
    import numpy as np
    from obspy import Trace, UTCDateTime
    from obspy.core.util import AttribDict

    lags, rate, items = _read_stacks(stacks)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data, attrs in items:
        a, b = str(attrs["station_a"]), str(attrs["station_b"])
        ca, cb = [float(x) for x in attrs["coords_a"]], [float(x) for x in attrs["coords_b"]]
        dist = float(attrs["distance_m"])
        tr = Trace(np.asarray(data, dtype=np.float32))
        tr.stats.sampling_rate = rate
        tr.stats.starttime = UTCDateTime(0) + float(lags[0])
        net_a, _, sta_a = a.rpartition(".")
        net_b, _, sta_b = b.rpartition(".")
        tr.stats.network = (net_a or "XX")[:2]
        tr.stats.station = sta_b[:5]
        tr.stats.location = ""
        tr.stats.channel = "CCZ"
        stem = name.replace(":", "_")
        if fmt == "SAC":
            sac = AttribDict(b=float(lags[0]), e=float(lags[-1]), o=0.0, kevnm=sta_a[:16], kstnm=sta_b[:8],
                             kuser0=a[:8], kuser1=b[:8], kcmpnm="CCZ", knetwk=(net_b or "XX")[:8])
            if all(math.isfinite(x) for x in ca[:2]):
                sac.update({"evla": ca[0], "evlo": ca[1], "evdp": 0.0})
            if all(math.isfinite(x) for x in cb[:2]):
                sac.update({"stla": cb[0], "stlo": cb[1]})
                if math.isfinite(cb[2]):
                    sac.stel = cb[2]
            if math.isfinite(dist):
                sac.update({"dist": dist / 1000.0, "lcalda": 0})
            tr.stats.sac = sac
            tr.write(str(out_dir / f"{stem}.SAC"), format="SAC")
        else:
            tr.write(str(out_dir / f"{stem}.mseed"), format="MSEED", encoding="FLOAT32")
            side = {"station_a": a, "station_b": b, "coords_a": ca, "coords_b": cb, "distance_m": dist,
                    "first_lag_s": float(lags[0]), "sampling_rate": rate}
            (out_dir / f"{stem}.json").write_text(json.dumps(side, allow_nan=True, indent=1) + "\n")
    click.echo(f"{len(items)} stacked correlations written as {fmt} to {out_dir}", err=True)


def plot_gather(stacks: Path, output: Path, max_lag: float | None, velocity: float | None = None,
                filter_label: str | None = None) -> None:
    """Body of ``seisstore plot gather``: traces labelled by pair; ``velocity`` (m/s) draws the
    move-out ``+/- distance / velocity``; ``filter_label`` goes into the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    lags, rate, items = _read_stacks(stacks)
    if not items:
        raise Failure(f"{stacks} holds no stack", ExitCode.PERMANENT)
    dist = np.array([float(attrs["distance_m"]) / 1000.0 for _, _, attrs in items])
    known = np.isfinite(dist)
    ypos = np.where(known, dist, np.arange(len(items)))
    order = np.argsort(ypos, kind="stable")
    span = np.ptp(ypos) if len(items) > 1 else 1.0
    scale = 0.5 * (span / max(1, len(items) - 1) if len(items) > 1 and span else 1.0)
    fig, ax = plt.subplots(figsize=(8, 6))
    right = max_lag or float(lags[-1])
    for k in order:
        name, data, _ = items[k]
        peak = np.max(np.abs(data)) or 1.0
        ax.plot(lags, ypos[k] + scale * data / peak, lw=0.6, color="k")
        ax.text(right, ypos[k], " " + name.replace(":", "-"), fontsize=6, va="center", ha="left", clip_on=False)
    if velocity and known.any():
        d = np.array([0.0, np.nanmax(dist)])
        for side in (-1, 1):
            ax.plot(side * d * 1000.0 / velocity, d, color="tab:red", lw=0.8, ls="--",
                    label=f"distance / {velocity / 1000:g} km/s" if side > 0 else None)
        ax.legend(loc="upper left", fontsize=7)
    ax.set_xlim(-right, right)
    ax.set_xlabel("lag (s)")
    ax.set_ylabel("inter-station distance (km)" if known.all() else "distance (km) or rank")
    ax.set_title(f"{len(items)} stacked correlations" + (f", {filter_label}" if filter_label else ""))
    save_figure(fig, output, f"gather of {len(items)} correlations")


@click.command("stack")
@click.argument("coll")
@click.option("--pair", "pairs", nargs=2, multiple=True, help="Stations A B of a pair (repeatable).")
@click.option("--all", "all_", is_flag=True, help="Every pair the bundles hold.")
@click.option("--dates", default=None, help="2011-03-01..2011-03-31, a comma list, or @file (default: all).")
@click.option("--method", type=click.Choice(["linear", "pws", "nroot", "robust"]), default="linear",
              show_default=True, help="Linear (days weighted by their windows), phase-weighted, n-th root (n=2)"
              " or robust (Pavlis and Vernon) stack.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("stacks.h5"),
              show_default=True, help="Local HDF5 file of the stacks.")
@pass_zone
def stack_cmd(zone: Zone, coll: str, pairs: tuple[tuple[str, str], ...], all_: bool, dates: str | None, method: str,
              output: Path) -> None:
    """Stack over dates the correlations in the bundles under COLL, read selectively."""
    stack_command(zone, coll, pairs, all_, dates, method, output)


@click.command("export")
@click.argument("stacks", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["SAC", "MSEED"], case_sensitive=False), default="SAC",
              show_default=True)
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("export"),
              show_default=True)
def export_cmd(stacks: Path, fmt: str, out_dir: Path) -> None:
    """Write the stacks of STACKS (from `seisstore stack`) as SAC (distance and coordinates in
    the header) or miniSEED (with a JSON sidecar: miniSEED has no such header fields)."""
    export_command(stacks, fmt.upper(), out_dir)


@click.group("plot")
def plot() -> None:
    """Pictures of stacked correlations."""


@plot.command("gather")
@click.argument("stacks", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("gather.png"),
              show_default=True)
@click.option("--max-lag", type=float, default=None, help="Lags shown, in seconds (default: all).")
@click.option("--velocity", type=float, default=None, help="Draw the move-out of this speed (m/s).")
@click.option("--filter", "filter_label", default=None, help="The band and processing, for the title.")
def gather_cmd(stacks: Path, output: Path, max_lag: float | None, velocity: float | None,
               filter_label: str | None) -> None:
    """A PNG of the stacked correlations of STACKS sorted by inter-station distance."""
    plot_gather(stacks, output, max_lag, velocity, filter_label)
