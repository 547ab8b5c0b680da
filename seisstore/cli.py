"""``seisstore``: the seismic catalogue and its grid campaigns from the command line."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from secure_irods.exitcodes import ExitCode, run

console = Console(stderr=True)


class Failure(click.ClickException):
    """One clear line on stderr and a code from the toolkit's table, never a traceback."""

    def __init__(self, message: str, code: int = ExitCode.PERMANENT) -> None:
        super().__init__(message)
        self.exit_code = int(code)


def parse_dates(text: str) -> list[datetime.date]:
    """`2011-03-01..2011-03-31`, a comma list, or `@file` with one ISO date a line."""
    if text.startswith("@"):
        try:
            items = [line.strip() for line in Path(text[1:]).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise Failure(f"cannot read dates from {text[1:]}: {exc.strerror}", ExitCode.USAGE) from None
        return [_date(i) for i in items]
    if ".." in text:
        first, _, last = text.partition("..")
        start, end = _date(first), _date(last)
        if end < start:
            raise Failure(f"date range {text!r} ends before it starts", ExitCode.USAGE)
        return [start + datetime.timedelta(days=d) for d in range((end - start).days + 1)]
    return [_date(i) for i in text.split(",") if i.strip()]


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise Failure(f"not a date (YYYY-MM-DD): {text.strip()!r}", ExitCode.USAGE) from None


def parse_stations(text: str) -> list[str]:
    if text.startswith("@"):
        try:
            return [line.strip() for line in Path(text[1:]).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise Failure(f"cannot read stations from {text[1:]}: {exc.strerror}", ExitCode.USAGE) from None
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_cluster(text: str):
    """`name=c1,project=whisper,walltime=00:20:00,max_jobs=450[,prologue=module load python]`."""
    from seisstore.jdl import Cluster

    fields = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise Failure(f"cluster field without '=': {part!r}", ExitCode.USAGE)
        fields[key.strip()] = value.strip()
    unknown = set(fields) - {"name", "project", "walltime", "max_jobs", "prologue"}
    if unknown or "name" not in fields:
        raise Failure(f"cluster needs name=..., and takes project, walltime, max_jobs, prologue: {text!r}", ExitCode.USAGE)
    try:
        cluster = Cluster(project=fields.get("project", "default"), walltime=fields.get("walltime", "01:00:00"),
                          max_jobs=int(fields["max_jobs"]) if "max_jobs" in fields else None,
                          prologue=(fields["prologue"],) if fields.get("prologue") else ())
    except ValueError as exc:
        raise Failure(f"cluster {fields['name']}: {exc}", ExitCode.USAGE) from None
    return fields["name"], cluster


class _Group(click.Group):
    """The ``seisstore`` group: every outcome mapped onto the toolkit's exit-code table."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        sys.exit(run(self, prog_name or "seisstore", args))


@click.group(cls=_Group, context_settings={"auto_envvar_prefix": "SEISSTORE", "help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log to stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Seismic recordings in iRODS: catalogue, ingest, and grid campaigns."""
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    fmt = "seisstore: %(message)s" if not verbose else "%(asctime)s %(name)s %(levelname)s %(message)s"
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt, force=True)   # warnings: one line per wait
    from secure_irods.errors import LogFilter

    for handler in logging.getLogger().handlers:
        handler.addFilter(LogFilter())
    # PRC logs every dropped connection at CRITICAL (they are retried) and, at debug, its
    # login exchange, which no verbosity may print (-vvv shows its warnings).
    logging.getLogger("irods").setLevel(logging.CRITICAL + 1 if verbose < 3 else logging.WARNING)


@main.group()
def campaign() -> None:
    """Write and run job campaigns (CiGri JDL, OAR and Slurm arrays, local runs)."""


@campaign.command("new")
@click.argument("name")
@click.option("--dates", required=True, help="2011-03-01..2011-03-31, a comma list, or @file.")
@click.option("--stations", required=True, help="Comma list or @file, one station a line.")
@click.option("--n-dates", required=True, type=int, help="Number of date sublists.")
@click.option("--n-stations", required=True, type=int, help="Number of station sublists.")
@click.option("--script", "job_script", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The job script each line runs with its parameters.")
@click.option("--collection", required=True, help="iRODS collection holding the campaign's code and inputs.")
@click.option("--kind", type=click.Choice(["processing", "correlation"]), default="processing", show_default=True)
@click.option("--prefix", default=None, help="Job name prefix (the seed's 'traces'); defaults to NAME.")
@click.option("--cluster", "clusters", multiple=True,
              help="name=c1,project=whisper,walltime=00:20:00,max_jobs=450 (repeatable).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Campaign directory (default: ./NAME).")
@click.option("--interpreter", default="python3", show_default=True, help="Runs the job script.")
@click.option("--force", is_flag=True, help="Replace files in a non-empty directory.")
@click.option("--upload", is_flag=True, help="Put the campaign's files into --collection (secure_irods).")
@click.option("--parents", is_flag=True, help="With --upload: create --collection and its parents if missing.")
@click.option("--archive", default=None, help="Collection the jobs read (exported as SEISSTORE_ARCHIVE).")
@click.option("--results", default=None, help="Collection the jobs write to (exported as SEISSTORE_RESULTS).")
def campaign_new(name, dates, stations, n_dates, n_stations, job_script, collection, kind, prefix, clusters, out,
                 interpreter, force, upload, parents, archive, results) -> None:
    """Write param.txt, start.bash, the CiGri JDL and OAR/Slurm array scripts for NAME."""
    from seisstore.campaign import Campaign, write_campaign

    cluster_map = dict(parse_cluster(c) for c in clusters) if clusters else dict([parse_cluster("name=local")])
    try:
        camp = Campaign(name=name, dates=parse_dates(dates), stations=parse_stations(stations), n_dates=n_dates,
                        n_stations=n_stations, job_script=job_script, irods_collection=collection,
                        clusters=cluster_map, kind=kind, prefix=prefix, interpreter=tuple(interpreter.split()),
                        environment={k: v for k, v in (("SEISSTORE_ARCHIVE", archive),
                                                       ("SEISSTORE_RESULTS", results)) if v})
        written = write_campaign(camp, out or Path(name), overwrite=force)
    except (ValueError, FileExistsError) as exc:
        raise Failure(str(exc).splitlines()[0], ExitCode.USAGE) from None
    directory = (out or Path(name))
    console.print(f"campaign {name}: {camp.n_jobs} jobs, {len(written)} files in {directory}")
    if upload:
        _upload(camp, directory, parents)


def _upload(camp, directory: Path, parents: bool) -> None:
    from secure_irods.client import connect
    from secure_irods.errors import NotFoundError, SecureIrodsError

    try:
        with connect() as client:
            client.deadline = client.policy.start_deadline()
            try:
                client.require_collection(camp.irods_collection, create=parents)
            except NotFoundError as exc:
                raise NotFoundError(f"{exc.message} (--parents creates it)") from None
            client.put_many([(directory / f, f"{camp.irods_collection}/{f}") for f in camp.uploads], force=True)
    except SecureIrodsError as exc:
        raise Failure(f"upload to {camp.irods_collection} failed: {exc}", exc.exit_code) from None
    console.print(f"uploaded {len(camp.uploads)} files to {camp.irods_collection}")


@campaign.command("run-local")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-j", "--jobs", default=2, show_default=True, type=click.IntRange(min=1), help="Jobs at once.")
@click.option("--attempts", default=3, show_default=True, type=click.IntRange(min=1),
              help="Submissions per line before it counts as failed (best-effort resubmission).")
@click.option("--preempt", default=0.0, type=click.FloatRange(0, 0.99),
              help="Chance a job is killed mid-way, as a best-effort cluster does.")
@click.option("--seed", type=int, default=None)
def campaign_run_local(directory: Path, jobs: int, attempts: int, preempt: float, seed: int | None) -> None:
    """Run every param.txt line of DIRECTORY here with its start.bash; resubmit failed or killed lines."""
    from seisstore.runlocal import LocalRunner

    try:
        report = LocalRunner(directory, jobs=jobs, attempts=attempts, preempt=preempt, seed=seed,
                             console=console).run()
    except ValueError as exc:
        raise Failure(str(exc), ExitCode.USAGE) from None
    done = sum(r.done for r in report.results) + report.skipped
    console.print(f"{done} of {done + len(report.failed)} jobs done ({report.skipped} already done),"
                  f" {report.resubmitted} resubmissions, {sum(r.killed for r in report.results)} preempted")
    if report.failed:
        raise Failure(f"{len(report.failed)} jobs failed: {', '.join(r.name for r in report.failed[:5])}"
                      f"{' ...' if len(report.failed) > 5 else ''}", ExitCode.PERMANENT)


@main.command("mkdir")
@click.argument("collections", nargs=-1, required=True)
@click.option("-p", "--parents", is_flag=True, help="Create parents as needed; no error if it exists.")
def mkdir_cmd(collections: tuple[str, ...], parents: bool) -> None:
    """Create iRODS collections (like imkdir), through secure_irods."""
    from secure_irods.client import connect
    from secure_irods.errors import ExistsError, NotFoundError, SecureIrodsError

    try:
        with connect() as client:
            client.deadline = client.policy.start_deadline()
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
    except SecureIrodsError as exc:
        raise Failure(f"mkdir: {exc}", exc.exit_code) from None


@campaign.command("status")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--results", default=None,
              help="iRODS collection of the jobs' results (default: start.bash's, then $SEISSTORE_RESULTS).")
@click.option("--job", "array_job", type=int, default=None,
              help="Slurm array job id (default: the newest with the campaign's job name).")
def campaign_status_cmd(directory: Path, results: str | None, array_job: int | None) -> None:
    """Each param.txt line of DIRECTORY: its Slurm task's state (squeue, sacct) and its results in the zone."""
    from secure_irods.errors import SecureIrodsError
    from seisstore.status import gather, render_status, summary

    try:
        lines, note = gather(directory, results, array_job)
    except ValueError as exc:
        raise Failure(str(exc).splitlines()[0], ExitCode.USAGE) from None
    except SecureIrodsError as exc:
        raise Failure(f"cannot list the campaign's results: {exc}", exc.exit_code) from None
    render_status(Console(), lines)
    counts = ", ".join(f"{n} {state}" for state, n in summary(lines).items())
    click.echo(f"{len(lines)} lines: {counts}{f' ({note})' if note else ''}")


LAYOUT_HELP = "sds, whisper, or a format string such as '{date}/{net}.{sta}.{loc}.{cha}.mseed'."


def _layout(spec: str):
    from seisstore.layout import get_layout

    try:
        return get_layout(spec)
    except ValueError as exc:
        raise Failure(str(exc).splitlines()[0], ExitCode.USAGE) from None


def _zone_failure(exc: Exception, what: str) -> Failure:
    """One line for a failure talking to the zone, with secure_irods' exit code."""
    from secure_irods.errors import classify

    err = classify(exc)
    message = str(err).splitlines()[0] if str(err) else type(exc).__name__
    return Failure(f"{what}: {message}", err.exit_code)


def _catalogue(coll: str, layout_spec: str, stations, dates, channels):
    """Open the zone from the iRODS environment and index COLL (a few bulk GenQueries).

    Every query goes through ``secure_irods`` (node throttle, cool-down, retries) and
    the command shares one deadline.  A collection that does not exist is exit 3.
    """
    from secure_irods.client import connect
    from secure_irods.errors import SecureIrodsError
    from seisstore.catalogue import Catalogue

    layout = _layout(layout_spec)
    scope = dict(stations=parse_stations(stations) if stations else None,
                 dates=parse_dates(dates) if dates else None,
                 channels=[c.strip() for c in channels.split(",") if c.strip()] if channels else None)
    try:
        client = connect()
        client.deadline = client.policy.start_deadline()   # one for the whole command
        with _closed_on_error(client):
            return Catalogue(client, client.require_collection(coll), layout, cache=False), scope
    except ValueError as exc:
        raise Failure(str(exc).splitlines()[0], ExitCode.USAGE) from None
    except SecureIrodsError as exc:
        raise Failure(f"cannot index {coll}: {exc}", exc.exit_code) from None


@contextlib.contextmanager
def _closed_on_error(client):
    """Close ``client`` if what follows fails: the caller keeps it only on success."""
    try:
        yield client
    except BaseException:
        client.close()
        raise


def _selection_options(fn):
    for option in reversed([
        click.option("--layout", "layout_spec", default="sds", show_default=True, help=LAYOUT_HELP),
        click.option("--station", "stations", default=None, help="STA or NET.STA codes: comma list or @file."),
        click.option("--date", "dates", default=None, help="2011-03-01..2011-03-31, a comma list, or @file."),
        click.option("--channel", "channels", default=None, help="Channel codes, comma list."),
    ]):
        fn = option(fn)
    return fn


@main.command("ingest")
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
@click.pass_context
def ingest_cmd(ctx, local: str, coll: str, layout_spec: str, default_network, renames, merge_existing, jobs,
               report_file, create) -> None:
    """Cut every file ObsPy reads in LOCAL (a directory, a file or a quoted glob) into day files in COLL.

    Files ObsPy cannot read, damaged files, traces with invalid codes or no time axis
    (sampling rate 0: log channels) and NaN/inf samples (left out as gaps) are skipped
    and reported at the end (exit 3); the run goes on.  Day files already in COLL are
    skipped (one bulk catalogue query finds them) unless --merge.  ObsPy's warnings are
    counted per file (their text with -v and in the report).
    """
    from secure_irods.client import connect
    from secure_irods.errors import NotFoundError, SecureIrodsError
    from seisstore.ingest import CodeMap, IngestReport, ingest, inputs

    layout = _layout(layout_spec)
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
        try:
            with connect() as client:
                try:   # a typo (of the zone, of a path) must not silently make a new tree
                    client.require_collection(coll, create=create)
                except NotFoundError as exc:
                    raise NotFoundError(f"{exc.message} (--create makes it)") from None
                ingest(client, files, coll, layout, console=console, codes=codes, jobs=jobs,
                       merge_existing=merge_existing, report=report)
        except SecureIrodsError as exc:
            raise Failure(f"ingest into {coll} failed: {exc}", exc.exit_code) from None
        except ValueError as exc:
            raise Failure(str(exc).splitlines()[0], ExitCode.PERMANENT) from None
        except Exception as exc:
            raise _zone_failure(exc, f"ingest into {coll} failed") from None
    finally:   # what was done is reported on every exit path
        if report.files_seen:
            report.render(Console(highlight=False, soft_wrap=True), verbose=ctx.find_root().params["verbose"] > 0)
            click.echo(report.summary())
        if report_file is not None:
            try:
                report.write_json(report_file)
            except OSError as exc:
                raise Failure(f"cannot write the report to {report_file}: {exc.strerror}", ExitCode.USAGE) from None
    if report.exit_code:
        raise Failure(f"{report.skipped} files, traces or day files skipped (see the report)", report.exit_code)


@main.command("ls")
@click.argument("coll")
@_selection_options
@click.option("-l", "--long", "long_", is_flag=True, help="Also show checksums and paths.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="List at most this many files.")
def ls_cmd(coll, layout_spec, stations, dates, channels, long_, limit) -> None:
    """List the day files of COLL (one table row per channel-day)."""
    from seisstore.coverage import render_ls

    cat, scope = _catalogue(coll, layout_spec, stations, dates, channels)
    with cat.client:
        render_ls(Console(), cat.select(**scope), long=long_, limit=limit)


@main.command("coverage")
@click.argument("coll")
@_selection_options
def coverage_cmd(coll, layout_spec, stations, dates, channels) -> None:
    """Draw station x day availability of COLL (full, partial, missing channels)."""
    from seisstore.coverage import render_coverage

    cat, scope = _catalogue(coll, layout_spec, stations, dates, channels)
    with cat.client:
        render_coverage(Console(), cat.coverage(**scope))


from seisstore.cli_rebalance import du_cmd, rebalance  # noqa: E402  (defined there)

main.add_command(du_cmd)
main.add_command(rebalance)

from seisstore.cli_bundles import register as _register_bundles  # noqa: E402  (bundles, stack, export, plot)

_register_bundles(main)

from seisstore.demo import demo_cmd  # noqa: E402  (the workflow end to end on a local grid)

main.add_command(demo_cmd)


if __name__ == "__main__":
    main()
