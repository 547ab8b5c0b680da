"""``seisstore dvv``, ``plot dvv`` and ``plot interferogram``: velocity changes from the bundles.

``dvv`` reads, selectively, the daily correlations of the pairs and dates asked for
(:func:`seisstore.bundles.read_pairs`: each bundle's metadata head, then only those rows,
coalesced and several in flight), stacks a reference per pair (the ``--reference`` dates,
weighted by their kept windows), measures dv/v of each date (or moving stack) by
stretching and/or MWCS (:mod:`seisstore.dvv`), averages the pairs per date, and writes
one HDF5 file; ``--to`` also stores it in the zone with ``dvv.*`` AVUs.

Results file (``seisstore-dvv/1``): root attrs ``format``, ``methods``, ``freqmin``,
``freqmax``, ``sides``, ``moving``, ``reference`` (ISO dates), ``source``; ``/dates``
(ISO), ``/lags`` (s); ``/pairs/<A>:<B>/`` with ``rows`` (dates x lags: the interferogram,
NaN where a date is missing), ``n_windows``, ``reference``, and per method ``<m>``,
``<m>_error``, ``<m>_cc``; group attrs ``distance_m``, ``tmin``, ``tmax``;
``/network/<m>`` and ``<m>_error``: the average over pairs (weights ``1 / error^2``).
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import click
import numpy as np

from secure_irods.exitcodes import ExitCode
from seisstore.commands.common import Failure, Zone, console, doing, emit_json, json_option, parse_dates, pass_zone, save_figure

__all__ = ["dvv_cmd", "plot_dvv_cmd", "plot_interferogram_cmd", "FORMAT"]

FORMAT = "seisstore-dvv/1"


def _daily(c) -> tuple[np.ndarray, float]:
    """One date's correlation from its substacks, weighted by their kept windows."""
    data = np.asarray(c.data, dtype=np.float64).reshape(-1, c.data.shape[-1])
    nw = np.asarray(c.n_windows, dtype=np.float64).reshape(-1)
    if nw.sum() > 0:
        return (data * nw[:, None]).sum(axis=0) / nw.sum(), float(nw.sum())
    return np.full(data.shape[-1], np.nan), 0.0


def _lag_window(distance_m: float, tmin, tmax, velocity, width) -> tuple[float, float]:
    if velocity:
        if not math.isfinite(distance_m):
            raise ValueError("no inter-station distance: give --tmin/--tmax instead of --velocity")
        start = distance_m / velocity
        return start, start + width
    return tmin, tmax


def dvv_command(zone: Zone, coll, pairs, all_, dates, reference, methods, freqmin, freqmax, tmin, tmax, velocity,
                width, sides, moving, max_dvv, output: Path, to: str | None, as_json: bool,
                mwcs_window: float | None = None, mwcs_step: float | None = None) -> dict:
    """Body of ``seisstore dvv`` (see its help); returns the summary it prints."""
    import h5py

    from seisstore.bundles import CorrelationStore
    from seisstore.dvv import dvv_series, network_average

    if not pairs and not all_:
        raise Failure("give --pair A B (repeatable) or --all", ExitCode.USAGE)
    if velocity is None and (tmin is None or tmax is None):
        raise Failure("give the lag window: --tmin and --tmax, or --velocity (and --width)", ExitCode.USAGE)
    if not 0 < freqmin < freqmax:
        raise Failure("need 0 < --freqmin < --freqmax", ExitCode.USAGE)
    wanted_dates = parse_dates(dates) if dates else None
    ref_dates = set(parse_dates(reference)) if reference else None
    with doing(f"cannot index bundles of {coll}"):
        client = zone.client()
        store = CorrelationStore(client, client.require_collection(coll))
    series: dict = {}
    stats: dict = {}
    lags = None
    with doing(f"reading bundles of {coll} failed"):
        for c in store.read([tuple(p) for p in pairs] if pairs else None, wanted_dates, stats=stats):
            row, weight = _daily(c)
            series.setdefault(c.pair, {"distance": c.distance_m, "days": {}})["days"][c.date] = (row, weight)
            lags = c.lags
    if not series or lags is None:
        raise Failure("no correlation matches the selection", ExitCode.PERMANENT)
    all_dates = sorted({d for s in series.values() for d in s["days"]})
    is_ref = np.array([ref_dates is None or d in ref_dates for d in all_dates])
    if not is_ref.any():
        raise Failure("no date of the selection is in --reference", ExitCode.USAGE)
    results, skipped = {}, {}
    for pair, s in sorted(series.items()):
        rows = np.full((len(all_dates), len(lags)), np.nan)
        weights = np.zeros(len(all_dates))
        for k, d in enumerate(all_dates):
            if d in s["days"]:
                rows[k], weights[k] = s["days"][d]
        try:
            lo, hi = _lag_window(s["distance"], tmin, tmax, velocity, width)
            hi = min(hi, float(lags[-1]))
            measured = dvv_series(rows, weights, lags, is_ref & (weights > 0), tmin=lo, tmax=hi, sides=sides,
                                  freqmin=freqmin, freqmax=freqmax, moving=moving, methods=methods, max_dvv=max_dvv,
                                  mwcs_window_s=mwcs_window, mwcs_step_s=mwcs_step)
        except ValueError as exc:
            skipped[pair] = str(exc)
            continue
        results[pair] = (rows, weights, lo, hi, s["distance"], measured)
    if not results:
        raise Failure("no pair could be measured: " + "; ".join(f"{a}:{b}: {r}" for (a, b), r in skipped.items()),
                       ExitCode.PERMANENT)
    network = {}
    for m in methods:
        vals = np.array([r[5][m] for r in results.values()])
        errs = np.array([r[5][f"{m}_error"] for r in results.values()])
        network[m], network[f"{m}_error"] = network_average(vals, errs)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with h5py.File(tmp, "w") as h5:
        h5.attrs.update({"format": FORMAT, "methods": list(methods), "freqmin": freqmin, "freqmax": freqmax,
                         "sides": sides, "moving": moving, "source": coll,
                         "reference": [d.isoformat() for d, r in zip(all_dates, is_ref) if r],
                         "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
        h5["dates"] = [d.isoformat() for d in all_dates]
        h5["lags"] = lags
        for (a, b), (rows, weights, lo, hi, dist, measured) in results.items():
            g = h5.create_group(f"pairs/{a}:{b}")
            g.attrs.update({"station_a": a, "station_b": b, "distance_m": dist, "tmin": lo, "tmax": hi})
            g["rows"] = rows.astype("f4")
            g["n_windows"] = weights
            g["reference"] = np.nanmean(rows[is_ref & (weights > 0)], axis=0) if (is_ref & (weights > 0)).any() \
                else np.full(len(lags), np.nan)
            for key, values in measured.items():
                g[key] = values
        for key, values in network.items():
            h5[f"network/{key}"] = values
    tmp.replace(output)
    summary = {"output": str(output), "pairs": len(results), "dates": [d.isoformat() for d in all_dates],
               "skipped": {f"{a}:{b}": r for (a, b), r in skipped.items()},
               "network": {k: [None if not np.isfinite(x) else float(x) for x in v] for k, v in network.items()},
               "bytes_read": stats.get("bytes", 0), "read_round_trips": stats.get("round_trips", 0)}
    if to:
        summary["stored"] = _store(client, to, output, methods, freqmin, freqmax, all_dates, is_ref, len(results),
                                   coll)
    if as_json:
        emit_json(summary)
    else:
        _print(summary, methods)
    return summary


def _store(client, coll: str, output: Path, methods, freqmin, freqmax, dates, is_ref, n_pairs, source) -> str:
    """Put the results file into ``coll`` (atomic put) and give it its ``dvv.*`` AVUs (one call)."""
    refs = [d for d, r in zip(dates, is_ref) if r]
    with doing(f"storing {output.name} in {coll} failed"):
        client.mkdir(coll)
        path = f"{client.resolve(coll).rstrip('/')}/{output.name}"
        client.put(output, path, force=True)
        client.set_avus(path, {"dvv.format": FORMAT, "dvv.methods": ",".join(methods),
                               "dvv.band": f"{freqmin:g}-{freqmax:g}", "dvv.pairs": str(n_pairs),
                               "dvv.first": dates[0].isoformat(), "dvv.last": dates[-1].isoformat(),
                               "dvv.reference": f"{refs[0]}..{refs[-1]}", "dvv.source": source})
    return path


def _print(summary: dict, methods) -> None:
    from rich.table import Table

    table = Table(title=f"dv/v, network average of {summary['pairs']} pairs (%)")
    table.add_column("date")
    for m in methods:
        table.add_column(m, justify="right")
    for k, d in enumerate(summary["dates"]):
        cells = []
        for m in methods:
            v, e = summary["network"][m][k], summary["network"][f"{m}_error"][k]
            cells.append("-" if v is None else f"{100 * v:+.3f} ± {100 * (e or 0):.3f}")
        table.add_row(d, *cells)
    console.print(table)
    for pair, reason in summary["skipped"].items():
        console.print(f"skipped {pair}: {reason}", markup=False)
    console.print(f"-> {summary['output']}" + (f" and {summary['stored']}" if summary.get("stored") else "")
                  + f" ({summary['bytes_read']:,} bytes read in {summary['read_round_trips']} round trips)",
                  markup=False)


def _read(path: Path):
    import h5py

    if not path.is_file():
        raise Failure(f"no such dv/v file: {path}", ExitCode.USAGE)
    h5 = h5py.File(path, "r")
    if h5.attrs.get("format") != FORMAT:
        h5.close()
        raise Failure(f"{path} is not a seisstore dv/v file", ExitCode.USAGE)
    return h5


def _dates(h5) -> list:
    from matplotlib.dates import date2num

    return [date2num(datetime.date.fromisoformat(d.decode() if isinstance(d, bytes) else d)) for d in h5["dates"][()]]


def plot_dvv(path: Path, output: Path, method: str) -> None:
    """Body of ``seisstore plot dvv``: dv/v against date, per pair and the network average."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    with _read(path) as h5:
        methods = [m.decode() if isinstance(m, bytes) else str(m) for m in h5.attrs["methods"]]
        if method not in methods:
            raise Failure(f"{path} holds {', '.join(methods)}, not {method}", ExitCode.USAGE)
        x = np.array(_dates(h5))
        fig, ax = plt.subplots(figsize=(9, 5))
        for name, g in h5["pairs"].items():
            ax.errorbar(x, 100 * g[method][()], yerr=100 * np.nan_to_num(g[f"{method}_error"][()]), lw=0.6,
                        alpha=0.5, capsize=2, label=name.replace(":", "-"))
        ax.errorbar(x, 100 * h5[f"network/{method}"][()], yerr=100 * np.nan_to_num(h5[f"network/{method}_error"][()]),
                    color="k", lw=2, capsize=3, label="network average")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(x) // 10)))   # one label a day at most
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        fig.autofmt_xdate()
        ax.set_ylabel("dv/v (%)")
        ax.set_title(f"dv/v by {method}, {h5.attrs['freqmin']:g}-{h5.attrs['freqmax']:g} Hz,"
                     f" {h5.attrs['sides']} sides, {int(h5.attrs['moving'])}-day stacks")
        ax.legend(fontsize=7, ncol=2)
        n = len(h5["pairs"])
    save_figure(fig, output, f"dv/v of {n} pairs ({method})")


def plot_interferogram(path: Path, output: Path, pair: tuple[str, str] | None, max_lag: float | None) -> None:
    """Body of ``seisstore plot interferogram``: one pair's correlations against date."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with _read(path) as h5:
        names = list(h5["pairs"])
        name = f"{pair[0]}:{pair[1]}" if pair else names[0]
        if name not in h5["pairs"]:
            raise Failure(f"{path} has no pair {name} (it has {', '.join(names[:10])})", ExitCode.USAGE)
        g = h5[f"pairs/{name}"]
        rows, lags = g["rows"][()], h5["lags"][()]
        x = np.array(_dates(h5))
        lo, hi = float(g.attrs["tmin"]), float(g.attrs["tmax"])
        dist = float(g.attrs["distance_m"])
        band = f"{h5.attrs['freqmin']:g}-{h5.attrs['freqmax']:g} Hz"
    peak = np.nanmax(np.abs(rows), axis=1, keepdims=True)
    norm = rows / np.where(peak > 0, peak, 1)
    fig, ax = plt.subplots(figsize=(9, 5))
    step = (x[1] - x[0]) if len(x) > 1 else 1.0
    ax.imshow(norm, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, origin="lower", interpolation="nearest",
              extent=(lags[0], lags[-1], x[0] - step / 2, x[-1] + step / 2))
    for edge in (lo, hi):
        for side in (-1, 1):
            ax.axvline(side * edge, color="k", lw=0.6, ls="--")
    if max_lag:
        ax.set_xlim(-max_lag, max_lag)
    import matplotlib.dates as mdates

    ax.yaxis_date()
    ax.yaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(x) // 10)))
    ax.yaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.set_xlabel("lag (s)")
    ax.set_title(f"{name.replace(':', '-')}" + (f", {dist / 1000:.1f} km" if math.isfinite(dist) else "")
                 + f", {band}; dashed: the dv/v lag window")
    save_figure(fig, output, f"interferogram of {name} ({len(rows)} dates)")


@click.command("dvv")
@click.argument("coll")
@click.option("--pair", "pairs", nargs=2, multiple=True, help="Stations A B of a pair (repeatable).")
@click.option("--all", "all_", is_flag=True, help="Every pair the bundles hold.")
@click.option("--dates", default=None, help="2011-03-01..2011-03-31, a comma list, or @file (default: all).")
@click.option("--reference", default=None, help="Dates stacked into the reference (default: all of them).")
@click.option("--method", "method", type=click.Choice(["stretching", "mwcs", "both"]), default="both",
              show_default=True)
@click.option("--freqmin", type=float, default=0.1, show_default=True, help="Band of the measurement (Hz).")
@click.option("--freqmax", type=float, default=1.0, show_default=True)
@click.option("--tmin", type=float, default=None, help="Lag window start (s), the same for every pair.")
@click.option("--tmax", type=float, default=None, help="Lag window end (s).")
@click.option("--velocity", type=float, default=None,
              help="Lag window from distance / VELOCITY (m/s) for each pair (MSNoise's dynamic window).")
@click.option("--width", type=float, default=30.0, show_default=True, help="With --velocity: window length (s).")
@click.option("--sides", type=click.Choice(["both", "causal", "acausal"]), default="both", show_default=True)
@click.option("--moving", type=click.IntRange(1, 365), default=1, show_default=True,
              help="Days in each moving stack measured.")
@click.option("--max-dvv", type=float, default=0.02, show_default=True, help="Stretching search range (+/-).")
@click.option("--mwcs-window", type=float, default=10.0, show_default=True, help="MWCS window (s; MSNoise's).")
@click.option("--mwcs-step", type=float, default=5.0, show_default=True, help="MWCS step (s).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("dvv.h5"),
              show_default=True)
@click.option("--to", default=None, help="Also store the results file in this zone collection, with AVUs.")
@json_option
@pass_zone
def dvv_cmd(zone: Zone, coll, pairs, all_, dates, reference, method, freqmin, freqmax, tmin, tmax, velocity, width,
            sides, moving, max_dvv, mwcs_window, mwcs_step, output, to, as_json) -> None:
    """Velocity changes (dv/v) of the correlations under COLL against a reference stack, by
    stretching and MWCS, per pair and averaged over the network."""
    methods = ("stretching", "mwcs") if method == "both" else (method,)
    dvv_command(zone, coll, pairs, all_, dates, reference, methods, freqmin, freqmax, tmin, tmax, velocity, width,
                sides, moving, max_dvv, output, to, as_json, mwcs_window, mwcs_step)


@click.command("dvv")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--method", type=click.Choice(["stretching", "mwcs"]), default="stretching", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("dvv.png"),
              show_default=True)
def plot_dvv_cmd(results, method, output) -> None:
    """A PNG of dv/v against date (with errors) per pair and the network average, from RESULTS
    (`seisstore dvv`)."""
    plot_dvv(results, output, method)


@click.command("interferogram")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--pair", nargs=2, default=None, help="Stations A B (default: the first pair).")
@click.option("--max-lag", type=float, default=None, help="Lags shown, in seconds (default: all).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("interferogram.png"), show_default=True)
def plot_interferogram_cmd(results, pair, max_lag, output) -> None:
    """A PNG of one pair's daily correlations against date from RESULTS (`seisstore dvv`),
    with the lag window the dv/v was measured in."""
    plot_interferogram(results, output, tuple(pair) if pair else None, max_lag)
