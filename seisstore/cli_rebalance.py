"""``seisstore du`` and ``seisstore rebalance plan|apply|status|verify`` (see docs/rebalance.md)."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from secure_irods.exitcodes import ExitCode

console = Console(stderr=True)
LAYOUT_HELP = "sds, whisper, or a format string such as '{date}/{net}.{sta}.{loc}.{cha}.mseed'."


class Failure(click.ClickException):
    """One line on stderr and a code from the toolkit's table (as ``seisstore.cli.Failure``; not
    imported from there, so that ``python -m seisstore.cli`` loads this module once)."""

    def __init__(self, message: str, code: int = ExitCode.PERMANENT) -> None:
        super().__init__(message)
        self.exit_code = int(code)


def _layout(spec: str):
    from seisstore.layout import get_layout

    try:
        return get_layout(spec)
    except ValueError as exc:
        raise Failure(str(exc).splitlines()[0], ExitCode.USAGE) from None

__all__ = ["du_cmd", "rebalance"]

BAR = 30


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


def _bar(value: float, top: float, width: int = BAR) -> str:
    cells = 0 if top <= 0 else round(width * value / top)
    return "█" * cells + "·" * (width - cells)


def _client():
    from secure_irods.client import connect

    client = connect()
    return client


def _guard(what: str):
    """Turn zone and input errors into one line with the toolkit's exit code."""
    from secure_irods.errors import SecureIrodsError

    class _Ctx:
        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb):
            if exc is None or isinstance(exc, (click.ClickException, KeyboardInterrupt)):
                return False
            if isinstance(exc, SecureIrodsError):
                raise Failure(f"{what}: {' '.join(exc.message.split())}", exc.exit_code) from None
            if isinstance(exc, Exception):
                from secure_irods.errors import classify

                err = classify(exc)
                raise Failure(f"{what}: {' '.join(err.message.split())}", err.exit_code) from None
            return False

    return _Ctx()


def _inventory(client, coll: str):
    from seisstore.rebalance import Inventory

    root = client.resolve(coll)
    stat = client.stat(root)
    if stat is None or not stat.is_collection:
        raise Failure(f"no such collection: {root}", ExitCode.PERMANENT)
    return Inventory.load(client, root)


@click.command("du")
@click.argument("coll")
@click.option("--by", type=click.Choice(["resource", "group", "station", "year"]), default="resource",
              show_default=True, help="Leaf resource, coordinating (group) resource, station or year.")
@click.option("--layout", "layout_spec", default="sds", show_default=True, help=LAYOUT_HELP)
def du_cmd(coll: str, by: str, layout_spec: str) -> None:
    """Bytes and objects of COLL's good replicas per resource, group, station or year (2 bulk queries)."""
    layout = _layout(layout_spec) if by in ("station", "year") else None
    with _guard(f"du {coll}"), _client() as client:
        inv = _inventory(client, coll)
        usage = inv.usage(by, layout)
    click.echo(f"{inv.root}: {len(inv.objects)} objects, good replicas by {by}")
    table = Table()
    table.add_column(by)
    if by == "resource":
        table.add_column("group")
    for name in ("bytes", "objects", "share"):
        table.add_column(name, justify="right")
    table.add_column("")
    total = sum(b for b, _ in usage.values()) or 1
    top = max((b for b, _ in usage.values()), default=0)
    for name, (nbytes, count) in usage.items():
        row = [name] + ([inv.resources.group(name) if name in inv.resources else "?"] if by == "resource" else [])
        table.add_row(*row, _size(nbytes), str(count), f"{100 * nbytes / total:.1f}%", _bar(nbytes, top))
    Console(width=max(100, Console().width)).print(table)
    click.echo(f"{inv.queries} GenQuery calls")


@click.group("rebalance")
def rebalance() -> None:
    """Spread, move or replicate a collection across resources: plan, apply, status, verify."""


def _distribution(plan) -> Table:
    total = sum(plan.before.values()) or 1
    top = max(list(plan.before.values()) + list(plan.after.values()) + [1])
    table = Table(caption=f"{plan.collection}: {plan.mode}, {len(plan.moves)} moves, "
                  f"{_size(sum(m.size for m in plan.moves))} (threshold {plan.threshold:g} %)", caption_justify="left")
    for name, just in (("resource", "left"), ("share", "right"), ("before", "right"), ("", "left"),
                       ("after", "right"), ("", "left")):
        table.add_column(name, justify=just)
    for unit in plan.before:
        b, a = plan.before[unit], plan.after.get(unit, 0)
        table.add_row(unit, f"{100 * plan.shares.get(unit, 0):.1f}%" if plan.mode != "replicate" else "100%",
                      f"{_size(b)} {100 * b / total:5.1f}%", _bar(b, top, 20), f"{_size(a)} {100 * a / total:5.1f}%",
                      _bar(a, top, 20))
    return table


@rebalance.command("plan")
@click.argument("coll")
@click.option("--to", "targets", multiple=True, required=True, help="Target resource (group or leaf); repeatable.")
@click.option("--from", "sources", multiple=True, help="Source resource; repeatable (spread: default the targets).")
@click.option("--mode", type=click.Choice(["spread", "move", "replicate"]), default="spread", show_default=True)
@click.option("--target", "target_spec", default="even", show_default=True, help="even, or weights:R=W,...")
@click.option("--min-copies", type=click.IntRange(min=1), default=1, show_default=True,
              help="Never trim an object below this many good replicas.")
@click.option("--threshold", type=click.FloatRange(0, 100, min_open=True, max_open=True), default=5.0,
              show_default=True, help="Each target within PCT percentage points of its share of the bytes.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random choice of the leaf within a group.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Plan file.")
def plan_cmd(coll, targets, sources, mode, target_spec, min_copies, threshold, seed, output) -> None:
    """Compute the moves for COLL from the catalogue alone (2 bulk queries) and write them to -o PLAN."""
    from secure_irods.errors import InvalidInputError
    from seisstore.rebalance import make_plan, parse_target

    def split(values):
        return [v.strip() for value in values for v in value.split(",") if v.strip()]

    targets, sources = split(targets), split(sources)
    with _guard(f"plan {coll}"), _client() as client:
        try:
            weights = parse_target(target_spec, targets)
        except InvalidInputError as exc:
            raise Failure(exc.message, ExitCode.USAGE) from None
        inv = _inventory(client, coll)
        try:
            plan = make_plan(inv, targets, sources, mode=mode, weights=weights, min_copies=min_copies,
                             threshold=threshold, seed=seed)
        except InvalidInputError as exc:
            raise Failure(exc.message, ExitCode.USAGE) from None
    plan.write(output)
    Console(width=max(110, Console().width)).print(_distribution(plan))
    skipped = ", ".join(f"{n} {why}" for why, n in plan.skipped.items())
    click.echo(f"wrote {output}: {len(plan.moves)} moves, {_size(sum(m.size for m in plan.moves))}"
               f" ({inv.queries} GenQuery calls){'; left out: ' + skipped if skipped else ''}")


def _rate(text: str | None) -> float | None:
    return None if text is None else float(text) * 1e6


@rebalance.command("apply")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None, help="Cap in MB/s (1 MB = 1e6 B).")
@click.option("--max-parallel", type=click.IntRange(min=1, max=64), default=2, show_default=True,
              help="Moves in flight (each on its own connection, within the node's throttle).")
@click.option("--dry-run", is_flag=True, help="Read the zone, say what would be done, change nothing.")
@click.option("--wait", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds a move waits for a resource that is down (or a zone that drops) before it fails.")
@click.option("--force-lock", is_flag=True, help="Take over a lock held from another host (its run is gone).")
@click.option("--report-every", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Off a terminal: a progress line every this many seconds (0: none).")
def apply_cmd(plan_path: Path, rate, max_parallel, dry_run, wait, force_lock, report_every) -> None:
    """Replicate -> verify -> trim every move of PLAN; resumable (journal next to PLAN), paced, locked."""
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    from secure_irods.client import connect
    from seisstore.rebalance import Applier, LockedError

    if not logging.getLogger().isEnabledFor(logging.INFO):   # without -v: failures go in the report, once
        logging.getLogger("secure_irods.retry").setLevel(logging.ERROR)
    with _guard(f"apply {plan_path}"):
        applier = Applier(plan_path, connect, rate=_rate(rate), max_parallel=max_parallel, dry_run=dry_run,
                          wait=wait, force_lock=force_lock)
        todo, done_before = applier.pending()
        left = sum(m.size for m in todo)
        progress = Progress(TextColumn("[bold]rebalance"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            TimeRemainingColumn(), TextColumn("{task.fields[note]}"), console=console,
                            disable=not console.is_terminal, transient=False)
        task = progress.add_task("moves", total=left, note="")

        started, tally = time.monotonic(), {"bytes": 0, "moves": 0, "last": time.monotonic()}

        guard = threading.Lock()

        def advance(outcome) -> None:
            with guard:
                _advance(outcome)

        def _advance(outcome) -> None:
            progress.update(task, advance=outcome.move.size,
                            note=f"{outcome.state} {outcome.move.path.rsplit('/', 1)[-1]}")
            tally["bytes"] += outcome.move.size
            tally["moves"] += 1
            now = time.monotonic()
            if progress.disable and report_every and now - tally["last"] >= report_every:
                tally["last"] = now   # off a terminal: one line per period, like the HDFS balancer's iterations
                rate_now = tally["bytes"] / max(now - started, 1e-9)
                rest = left - tally["bytes"]
                console.print(f"{time.strftime('%H:%M:%S')} {tally['moves']} of {len(todo)} moves, "
                              f"{_size(tally['bytes'])} done, {_size(rest)} left, {rate_now / 1e6:.2f} MB/s, "
                              f"ETA {rest / rate_now if rate_now else 0:.0f} s")

        applier.on_progress = advance
        try:
            with progress:
                report = applier.run()
        except LockedError as exc:
            raise Failure(exc.message, ExitCode.USAGE) from None
    if dry_run:
        click.echo(f"dry run: {report.planned} moves planned, {report.already} already final; {report.dry} would "
                   f"move, {sum(report.skipped.values())} would be skipped, {len(report.failed)} cannot run now; "
                   f"nothing changed")
    else:
        click.echo(f"{report.planned} moves planned, {report.already} already final; this run: "
                   f"{report.done} done, {sum(report.skipped.values())} skipped, {len(report.failed)} failed; "
                   f"{_size(report.moved_bytes)} copied in {report.elapsed:.1f} s ({report.rate / 1e6:.2f} MB/s)")
    for prev in report.took_over:
        click.echo(f"took over the lock of a run that is gone: {prev}")
    for why, n in report.skipped.items():
        click.echo(f"skipped {n}: {why}")
    for path in report.being_written:
        click.echo(f"skipped {path}: being written (a client holds it open); left untouched")
    for path, why in report.failed[:20]:
        click.echo(f"failed {path}: {why}")
    if len(report.failed) > 20:
        click.echo(f"... and {len(report.failed) - 20} more failed")
    if report.failed:
        transient = all("Transient" in why or "down" in why for _, why in report.failed)
        raise Failure(f"{len(report.failed)} moves failed (re-run apply to retry them)",
                      ExitCode.TRANSIENT if transient else ExitCode.PERMANENT)


@rebalance.command("status")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def status_cmd(plan_path: Path) -> None:
    """Summary of PLAN's journal: moves done, skipped, failed, pending; bytes left; runs."""
    from seisstore.rebalance import Journal, Plan

    with _guard(f"status {plan_path}"):
        plan = Plan.read(plan_path)
        journal = Journal(plan_path)
        states = journal.states()
    counts: dict[str, int] = {}
    left = done_bytes = 0
    for m in plan.moves:
        state = states.get(m.i, {}).get("state", "pending")
        state = "half-done (begun, not finished)" if state == "begin" else state
        counts[state] = counts.get(state, 0) + 1
        if state == "done":
            done_bytes += m.size
        elif state != "skipped":
            left += m.size
    click.echo(f"{plan_path}: {plan.mode} of {plan.collection}, {len(plan.moves)} moves")
    table = Table()
    table.add_column("state")
    table.add_column("moves", justify="right")
    for state in sorted(counts):
        table.add_row(state, str(counts[state]))
    Console(width=max(80, Console().width)).print(table)
    runs = journal.runs()
    copied = journal.copied()
    click.echo(f"{_size(done_bytes)} of moves done ({_size(copied)} copied), {_size(left)} left; {len(runs)} apply runs"
               + (f", last by {runs[-1]['host']} pid {runs[-1]['pid']}" if runs else ""))
    reasons: dict[str, int] = {}
    for rec in states.values():
        if rec.get("state") in ("failed", "skipped") and rec.get("reason"):
            why = re.sub(r"gave up after \d+ attempt\(s\): ", "", rec["reason"])
            key = f"{rec['state']}: {why[:100]}"
            reasons[key] = reasons.get(key, 0) + 1
    for why, n in sorted(reasons.items()):
        click.echo(f"{n} {why}")


@rebalance.command("verify")
@click.argument("coll")
@click.option("--min-copies", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--to", "targets", multiple=True, help="Report good replicas outside these resources.")
@click.option("--plan", "plan_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Take --to from this plan.")
@click.option("--recompute", is_flag=True, help="Have the zone recompute every good replica's checksum.")
def verify_cmd(coll, min_copies, targets, plan_path, recompute) -> None:
    """Objects of COLL at risk (no good replica, < --min-copies, mismatches): exit 3 if any."""
    from seisstore.rebalance import Plan, verify

    targets = [v.strip() for value in targets for v in value.split(",") if v.strip()]
    with _guard(f"verify {coll}"), _client() as client:
        if plan_path is not None:
            targets = targets or Plan.read(plan_path).targets
        inv = _inventory(client, coll)
        for t in targets:
            if t not in inv.resources:
                raise Failure(f"no such resource: {t}", ExitCode.USAGE)
        report = verify(client, inv, min_copies=min_copies, targets=targets or None, recompute=recompute)
    click.echo(f"{inv.root}: verify, min copies {min_copies}"
               + (f", targets {', '.join(targets)}" if targets else ""))
    table = Table()
    table.add_column("check")
    table.add_column("count", justify="right")
    for name, n, risky in report.rows():
        table.add_row(name, f"[red]{n}[/red]" if risky and n else str(n))
    Console(width=max(80, Console().width)).print(table)
    for path in (report.no_good + report.under_copies + report.mismatches)[:20]:
        click.echo(f"at risk: {path}")
    if recompute:
        click.echo(f"{report.checksums_computed} checksums recomputed by the zone")
    if report.at_risk:
        raise Failure(f"{report.at_risk} objects at risk in {inv.root}", ExitCode.PERMANENT)
