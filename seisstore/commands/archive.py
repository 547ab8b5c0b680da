"""``seisstore mkdir``, ``ingest``, ``ls`` and ``coverage``: the archive of day files in the zone."""

from __future__ import annotations

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

__all__ = ["mkdir_cmd", "ingest_cmd", "ls_cmd", "coverage_cmd"]


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
@click.argument("local_dir", type=click.Path(path_type=Path))
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
              help="Also write the report as JSON to this file.")
@click.option("--create", is_flag=True, help="Create COLL (and its parents) if it does not exist.")
@json_option
@pass_zone
def ingest_cmd(zone: Zone, local_dir: Path, coll: str, layout_spec: str, default_network: str | None,
               renames: tuple[str, ...], merge_existing: bool, jobs: int, report_file: Path | None,
               create: bool, as_json: bool) -> None:
    """Cut every file ObsPy reads under LOCAL_DIR into day files and store them in COLL.

    Files ObsPy cannot read, damaged files and traces with invalid codes are skipped
    and reported at the end (exit 3); day files already in COLL are skipped (one bulk
    catalogue query finds them) unless --merge.
    """
    from secure_irods.errors import NotFoundError
    from seisstore.ingest import CodeMap, ingest

    layout = layout_of(layout_spec)
    if not local_dir.is_dir():
        raise Failure(f"no such directory: {local_dir}", ExitCode.USAGE)
    try:
        codes = CodeMap.parse(renames, default_network)
    except ValueError as exc:
        raise Failure(str(exc).splitlines()[0], ExitCode.USAGE) from None
    with doing(f"ingest into {coll} failed"):
        client = zone.client(shared_deadline=False)    # hours of uploads: each call its own deadline
        try:   # a typo (of the zone, of a path) must not silently make a new tree
            client.require_collection(coll, create=create)
        except NotFoundError as exc:
            raise NotFoundError(f"{exc.message} (--create makes it)") from None
        report = ingest(client, local_dir, coll, layout, console=console, codes=codes, jobs=jobs,
                        merge_existing=merge_existing)
    if as_json:
        emit_json(report.to_dict())
    else:
        report.render(Console(highlight=False, soft_wrap=True))
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
