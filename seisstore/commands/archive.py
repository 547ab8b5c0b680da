"""``seisstore mkdir``, ``ingest``, ``ls`` and ``coverage``: the archive of day files in the zone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from secure_irods.exitcodes import ExitCode
from seisstore.commands.common import (LAYOUT_HELP, Failure, Zone, console, doing, emit_json, json_option,
                                       layout_of, parse_dates, parse_stations, pass_zone, results_console,
                                       selection_options)

if TYPE_CHECKING:
    from seisstore.catalogue import Catalogue

__all__ = ["mkdir_cmd", "ingest_cmd", "ls_cmd", "coverage_cmd", "leftovers_cmd"]


@click.command("mkdir")
@click.argument("collections", nargs=-1, required=True)
@click.option("-p", "--parents", is_flag=True, help="Create parents as needed; no error if it exists.")
@pass_zone
def mkdir_cmd(zone: Zone, collections: tuple[str, ...], parents: bool) -> None:
    """Create iRODS collections (like imkdir), through secure_irods."""
    from secure_irods.errors import ExistsError, NotFoundError

    with doing("mkdir"):
        client = zone.client()
        for coll in collections:
            path = client.resolve(coll)
            parent = path.rsplit("/", 1)[0] or "/"
            if not parents:
                if client.stat(path) is not None:
                    raise ExistsError(f"{path} exists")
                found = client.stat(parent)
                if found is None or not found.is_collection:
                    raise NotFoundError(f"no such collection: {parent} (-p creates parents)")
            client.mkdir(path)
            console.print(f"created {path}")


def _catalogue(zone: Zone, coll: str, layout_spec: str, stations: str | None, dates: str | None,
               channels: str | None) -> tuple["Catalogue", dict[str, Any]]:
    """Index COLL (a few bulk GenQueries) with the command's client and its one deadline.

    Every query goes through ``secure_irods`` (node throttle, cool-down, retries).  A
    collection that does not exist is exit 3.
    """
    from seisstore.catalogue import Catalogue

    layout = layout_of(layout_spec)
    scope = dict(stations=parse_stations(stations) if stations else None,
                 dates=parse_dates(dates) if dates else None,
                 channels=[c.strip() for c in channels.split(",") if c.strip()] if channels else None)
    with doing(f"cannot index {coll}"):
        client = zone.client()
        return Catalogue(client, client.require_collection(coll), layout, cache=False), scope


@click.command("ingest")
@click.argument("local", metavar="LOCAL")
@click.argument("coll")
@click.option("--layout", "layout_spec", default="sds", show_default=True, help=LAYOUT_HELP)
@click.option("--default-network", default=None, metavar="NET",
              help="Network code for traces that have none (SAC files often); never guessed without it.")
@click.option("--rename", "renames", multiple=True, metavar="OLD=NEW",
              help="Map a trace id as read to another, e.g. '.OGDI..HHZ=FR.OGDI.00.HHZ' (repeatable), "
                   "or @file with one OLD=NEW a line.")
@click.option("--merge", "merge_existing", is_flag=True,
              help="Extend existing day files with new samples (download, merge, verify, replace atomically); "
                   "without it they are left as they are and counted.")
@click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(min=0),
              help="Upload threads, each with its own connection, while the next station is cut (0: no thread).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as JSON to this file (on every exit path, a zone failure included).")
@click.option("--create", is_flag=True, help="Create COLL (and its parents) if it does not exist.")
@json_option
@pass_zone
@click.pass_context
def ingest_cmd(ctx: click.Context, zone: Zone, local: str, coll: str, layout_spec: str, default_network: str | None,
               renames: tuple[str, ...], merge_existing: bool, jobs: int, report_file: Path | None,
               create: bool, as_json: bool) -> None:
    """Cut every file ObsPy reads in LOCAL (a directory, a file or a quoted glob) into day files in COLL.

    Files ObsPy cannot read, damaged files, traces with invalid codes or no time axis
    (sampling rate 0: log channels) and NaN/inf samples (left out as gaps) are skipped
    and reported at the end (exit 3); the run goes on.  Day files already in COLL are
    skipped (one bulk catalogue query finds them) unless --merge.  ObsPy's warnings are
    counted per file (their text with -v and in the report).
    """
    from secure_irods.errors import NotFoundError
    from seisstore.ingest import CodeMap, IngestReport, ingest, inputs

    layout = layout_of(layout_spec)
    try:
        files = inputs(local)
    except FileNotFoundError as exc:
        raise Failure(str(exc), ExitCode.USAGE) from None
    try:
        codes = CodeMap.parse(renames, default_network)
    except ValueError as exc:
        raise Failure(str(exc).splitlines()[0], ExitCode.USAGE) from None
    if report_file is not None and not (report_file.parent.is_dir() and os.access(report_file.parent, os.W_OK)):
        raise Failure(f"cannot write the report to {report_file}: no such writable directory", ExitCode.USAGE)
    report = IngestReport()
    try:
        with doing(f"ingest into {coll} failed"):
            client = zone.client(shared_deadline=False)    # hours of uploads: each call its own deadline
            try:   # a typo (of the zone, of a path) must not silently make a new tree
                client.require_collection(coll, create=create)
            except NotFoundError as exc:
                raise NotFoundError(f"{exc.message} (--create makes it)") from None
            ingest(client, files, coll, layout, console=console, codes=codes, jobs=jobs,
                   merge_existing=merge_existing, report=report)
    except click.ClickException as exc:
        report.error, report.error_code = exc.format_message(), exc.exit_code
        raise
    finally:   # what was done is reported on every exit path
        if as_json:
            emit_json(report.to_dict())
        elif report.files_seen:
            report.render(Console(highlight=False, soft_wrap=True), verbose=ctx.find_root().params["verbose"] > 0)
            click.echo(report.summary())
        if report_file is not None:
            try:
                report.write_json(report_file)
            except OSError as exc:
                raise Failure(f"cannot write the report to {report_file}: {exc.strerror}", ExitCode.USAGE) from None
    if report.exit_code:
        raise Failure(f"{report.skipped} files, traces or day files skipped (see the report)", report.exit_code)


@click.command("ls")
@click.argument("coll")
@selection_options
@click.option("-l", "--long", "long_", is_flag=True, help="Also show checksums and paths.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="List at most this many files.")
@json_option
@pass_zone
def ls_cmd(zone: Zone, coll: str, layout_spec: str, stations: str | None, dates: str | None, channels: str | None,
           long_: bool, limit: int | None, as_json: bool) -> None:
    """List the day files of COLL (one table row per channel-day)."""
    import itertools

    from seisstore.coverage import ls_records, render_ls

    cat, scope = _catalogue(zone, coll, layout_spec, stations, dates, channels)
    if as_json:
        emit_json({"collection": cat.root, "files": ls_records(itertools.islice(cat.select(**scope), limit))})
        return
    render_ls(results_console(), cat.select(**scope), long=long_, limit=limit)


@click.command("coverage")
@click.argument("coll")
@selection_options
@json_option
@pass_zone
def coverage_cmd(zone: Zone, coll: str, layout_spec: str, stations: str | None, dates: str | None,
                 channels: str | None, as_json: bool) -> None:
    """Draw station x day availability of COLL (full, partial, missing channels)."""
    from seisstore.coverage import render_coverage

    cat, scope = _catalogue(zone, coll, layout_spec, stations, dates, channels)
    coverage = cat.coverage(**scope)
    if as_json:
        emit_json({"collection": cat.root, **coverage.to_dict()})
        return
    render_coverage(Console(), coverage)


@click.command("leftovers")
@click.argument("coll")
@click.option("--remove", is_flag=True, help="Remove them (only those untouched for --older-than hours).")
@click.option("--older-than", "hours", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Hours since a temporary was last written, before --remove takes it.")
@json_option
@pass_zone
def leftovers_cmd(zone: Zone, coll: str, remove: bool, hours: float, as_json: bool) -> None:
    """List (or --remove) the temporaries interrupted uploads left under COLL, recursively.

    An upload writes `.NAME.part-KEY` and renames it to NAME once verified; a killed one
    leaves it, and the next put of NAME removes it.  These are the ones whose target was
    never put again.  Temporaries being written now are never listed nor removed.
    """
    import time

    from seisstore.commands.common import format_size

    with doing(f"leftovers of {coll}"):
        client = zone.client()
        client.require_collection(coll)
        found = client.leftovers(coll)
        removed = {left.path for left in client.remove_leftovers(coll, older_than=hours * 3600)} if remove else set()
    now = time.time()
    if as_json:
        emit_json({"collection": coll, "leftovers": [{"path": x.path, "size": x.size, "modified": x.modified,
                                                      "removed": x.path in removed} for x in found]})
        return
    for left in found:
        state = "removed" if left.path in removed else "kept (too recent)" if remove else ""
        click.echo(f"{left.path}\t{format_size(left.size)}\t{(now - left.modified) / 3600:.1f} h old\t{state}".rstrip())
    click.echo(f"{len(found)} leftovers under {coll}" + (f", {len(removed)} removed" if remove else ""), err=True)
