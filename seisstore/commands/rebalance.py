"""``seisstore du`` and ``seisstore rebalance plan|apply|status|verify`` (see docs/rebalance.md)."""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console, JustifyMethod
from rich.table import Table

from secure_irods.exitcodes import ExitCode
from seisstore.commands.common import (LAYOUT_HELP, Failure, Meter, Zone, console, doing, emit_json, format_size,
                                       json_option, layout_of, pass_zone, results_console)

if TYPE_CHECKING:
    from secure_irods.client import Client
    from seisstore.rebalance import Inventory, Plan

__all__ = ["du_cmd", "rebalance"]

BAR = 30


def _bar(value: float, top: float, width: int = BAR) -> str:
    cells = 0 if top <= 0 else round(width * value / top)
    return "█" * cells + "·" * (width - cells)


def _inventory(client: "Client", coll: str) -> "Inventory":
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
@json_option
@pass_zone
def du_cmd(zone: Zone, coll: str, by: str, layout_spec: str, as_json: bool) -> None:
    """Bytes and objects of COLL's good replicas per resource, group, station or year (2 bulk queries)."""
    layout = layout_of(layout_spec) if by in ("station", "year") else None
    with doing(f"du {coll}"):
        inv = _inventory(zone.client(shared_deadline=False), coll)
        usage = inv.usage(by, layout)
    total = sum(b for b, _ in usage.values()) or 1
    if as_json:
        emit_json({"collection": inv.root, "objects": len(inv.objects), "by": by, "queries": inv.queries,
                   "usage": [{by: name, **({"group": inv.resources.group(name) if name in inv.resources else None}
                                          if by == "resource" else {}),
                              "bytes": nbytes, "objects": count, "share": round(nbytes / total, 6)}
                             for name, (nbytes, count) in usage.items()]})
        return
    click.echo(f"{inv.root}: {len(inv.objects)} objects, good replicas by {by}")
    table = Table()
    table.add_column(by)
    if by == "resource":
        table.add_column("group")
    for name in ("bytes", "objects", "share"):
        table.add_column(name, justify="right")
    table.add_column("")
    top = max((b for b, _ in usage.values()), default=0)
    for name, (nbytes, count) in usage.items():
        row = [name] + ([inv.resources.group(name) if name in inv.resources else "?"] if by == "resource" else [])
        table.add_row(*row, format_size(nbytes), str(count), f"{100 * nbytes / total:.1f}%", _bar(nbytes, top))
    _wide(100).print(table)
    click.echo(f"{inv.queries} GenQuery calls")


def _wide(least: int) -> Console:
    """Tables on stdout: at least ``least`` columns on a terminal; off one, never cut."""
    out = results_console()
    return out if not out.is_terminal else Console(width=max(least, out.width))


@click.group("rebalance")
def rebalance() -> None:
    """Spread, move or replicate a collection across resources: plan, apply, status, verify."""


def _distribution(plan: "Plan") -> Table:
    total = sum(plan.before.values()) or 1
    top = max(list(plan.before.values()) + list(plan.after.values()) + [1])
    table = Table(caption=f"{plan.collection}: {plan.mode}, {len(plan.moves)} moves, "
                  f"{format_size(sum(m.size for m in plan.moves))} (threshold {plan.threshold:g} %)", caption_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (("resource", "left"), ("share", "right"), ("before", "right"),
                                                     ("", "left"), ("after", "right"), ("", "left"))
    for name, just in columns:
        table.add_column(name, justify=just)
    for unit in plan.before:
        b, a = plan.before[unit], plan.after.get(unit, 0)
        table.add_row(unit, f"{100 * plan.shares.get(unit, 0):.1f}%" if plan.mode != "replicate" else "100%",
                      f"{format_size(b)} {100 * b / total:5.1f}%", _bar(b, top, 20), f"{format_size(a)} {100 * a / total:5.1f}%",
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
@json_option
@pass_zone
def plan_cmd(zone: Zone, coll: str, targets: tuple[str, ...], sources: tuple[str, ...], mode: str, target_spec: str,
             min_copies: int, threshold: float, seed: int, output: Path, as_json: bool) -> None:
    """Compute the moves for COLL from the catalogue alone (2 bulk queries) and write them to -o PLAN."""
    from secure_irods.errors import InvalidInputError
    from seisstore.rebalance import make_plan, parse_target

    to, sources_ = _split(targets), _split(sources)
    try:
        weights = parse_target(target_spec, to)
    except InvalidInputError as exc:
        raise Failure(exc.message, ExitCode.USAGE) from None
    with doing(f"plan {coll}"):
        inv = _inventory(zone.client(shared_deadline=False), coll)
        try:
            plan = make_plan(inv, to, sources_, mode=mode, weights=weights, min_copies=min_copies,
                             threshold=threshold, seed=seed)
        except InvalidInputError as exc:
            raise Failure(exc.message, ExitCode.USAGE) from None
    plan.write(output)
    if as_json:
        emit_json({"plan_file": str(output), "queries": inv.queries, **plan.header})
        return
    _wide(110).print(_distribution(plan))
    skipped = ", ".join(f"{n} {why}" for why, n in plan.skipped.items())
    click.echo(f"wrote {output}: {len(plan.moves)} moves, {format_size(sum(m.size for m in plan.moves))}"
               f" ({inv.queries} GenQuery calls){'; left out: ' + skipped if skipped else ''}")


def _split(values: tuple[str, ...]) -> list[str]:
    """Repeated options that may also be comma lists: ``--to a,b --to c``."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _rate(text: float | None) -> float | None:
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
@pass_zone
def apply_cmd(zone: Zone, plan_path: Path, rate: float | None, max_parallel: int, dry_run: bool, wait: float,
              force_lock: bool, report_every: float) -> None:
    """Replicate -> verify -> trim every move of PLAN; resumable (journal next to PLAN), paced, locked."""
    from seisstore.rebalance import Applier, LockedError, MoveOutcome

    retry_log = logging.getLogger("secure_irods.retry")
    level = retry_log.level
    if not logging.getLogger().isEnabledFor(logging.INFO):   # without -v: failures go in the report, once
        retry_log.setLevel(logging.ERROR)
    with contextlib.ExitStack() as undo, doing(f"apply {plan_path}"):
        undo.callback(retry_log.setLevel, level)   # in-process callers (tests, scripts) keep their logging
        applier = Applier(plan_path, zone.connect, rate=_rate(rate), max_parallel=max_parallel, dry_run=dry_run,
                          wait=wait, force_lock=force_lock)
        todo, _ = applier.pending()
        # off a terminal: one line per period, like the HDFS balancer's iterations
        with Meter(console, label="rebalance", every=report_every) as meter:
            moves = meter.task("moves", len(todo))
            moved = meter.task("bytes", sum(m.size for m in todo), bytes=True)

            def advance(outcome: MoveOutcome) -> None:
                meter.advance(moves, 1)
                meter.advance(moved, outcome.move.size,
                              note=f"{outcome.state} {outcome.move.path.rsplit('/', 1)[-1]}")

            applier.on_progress = advance
            try:
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
                   f"{format_size(report.moved_bytes)} copied in {report.elapsed:.1f} s "
                   f"({format_size(report.rate)}/s)")
    for prev in report.took_over:
        click.echo(f"took over the lock of a run that is gone: {prev}")
    for why, n in report.skipped.items():
        click.echo(f"skipped {n}: {why}")
    for path in report.being_written:
        click.echo(f"skipped {path}: being written (a client holds it open); left untouched")
    for outcome in report.failed[:20]:
        click.echo(f"failed {outcome.move.path}: {outcome.reason}")
    if len(report.failed) > 20:
        click.echo(f"... and {len(report.failed) - 20} more failed")
    if report.failed:
        raise Failure(f"{len(report.failed)} moves failed (re-run apply to retry them)", report.exit_code)


@rebalance.command("status")
@click.argument("plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def status_cmd(plan_path: Path, as_json: bool) -> None:
    """Summary of PLAN's journal: moves done, skipped, failed, pending; bytes left; runs."""
    from seisstore.rebalance import Journal, Plan

    with doing(f"status {plan_path}"):
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
    runs = journal.runs()
    copied = journal.copied()
    reasons: dict[str, int] = {}
    for rec in states.values():
        if rec.get("state") in ("failed", "skipped") and rec.get("reason"):
            why = re.sub(r"gave up after \d+ attempt\(s\): ", "", rec["reason"])
            key = f"{rec['state']}: {why[:100]}"
            reasons[key] = reasons.get(key, 0) + 1
    if as_json:
        emit_json({"plan_file": str(plan_path), "mode": plan.mode, "collection": plan.collection,
                   "moves": len(plan.moves), "states": counts, "bytes_done": done_bytes, "bytes_copied": copied,
                   "bytes_left": left, "runs": runs, "reasons": reasons})
        return
    click.echo(f"{plan_path}: {plan.mode} of {plan.collection}, {len(plan.moves)} moves")
    table = Table()
    table.add_column("state")
    table.add_column("moves", justify="right")
    for state in sorted(counts):
        table.add_row(state, str(counts[state]))
    _wide(80).print(table)
    click.echo(f"{format_size(done_bytes)} of moves done ({format_size(copied)} copied), {format_size(left)} left; {len(runs)} apply runs"
               + (f", last by {runs[-1]['host']} pid {runs[-1]['pid']}" if runs else ""))
    for why, n in sorted(reasons.items()):
        click.echo(f"{n} {why}")


@rebalance.command("verify")
@click.argument("coll")
@click.option("--min-copies", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--to", "targets", multiple=True, help="Report good replicas outside these resources.")
@click.option("--plan", "plan_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Take --to from this plan.")
@click.option("--recompute", is_flag=True, help="Have the zone recompute every good replica's checksum.")
@json_option
@pass_zone
def verify_cmd(zone: Zone, coll: str, min_copies: int, targets: tuple[str, ...], plan_path: Path | None,
               recompute: bool, as_json: bool) -> None:
    """Objects of COLL at risk (no good replica, < --min-copies, mismatches): exit 3 if any."""
    from seisstore.rebalance import Plan, verify

    to = _split(targets)
    with doing(f"verify {coll}"):
        if plan_path is not None:
            to = to or Plan.read(plan_path).targets
        client = zone.client(shared_deadline=False)
        inv = _inventory(client, coll)
        for t in to:
            if t not in inv.resources:
                raise Failure(f"no such resource: {t}", ExitCode.USAGE)
        report = verify(client, inv, min_copies=min_copies, targets=to or None, recompute=recompute)
    if as_json:
        emit_json({"collection": inv.root, "min_copies": min_copies, "targets": to,
                   "checks": {name: n for name, n, _ in report.rows()}, "at_risk": report.at_risk,
                   "no_good": report.no_good, "under_copies": report.under_copies,
                   "mismatches": report.mismatches, "stale": report.stale, "outside": report.outside,
                   "unchecked": report.unchecked, "checksums_computed": report.checksums_computed})
    else:
        click.echo(f"{inv.root}: verify, min copies {min_copies}" + (f", targets {', '.join(to)}" if to else ""))
        table = Table()
        table.add_column("check")
        table.add_column("count", justify="right")
        for name, n, risky in report.rows():
            table.add_row(name, f"[red]{n}[/red]" if risky and n else str(n))
        _wide(80).print(table)
        for path in (report.no_good + report.under_copies + report.mismatches)[:20]:
            click.echo(f"at risk: {path}")
        if recompute:
            click.echo(f"{report.checksums_computed} checksums recomputed by the zone")
    if report.at_risk:
        raise Failure(f"{report.at_risk} objects at risk in {inv.root}", ExitCode.PERMANENT)
