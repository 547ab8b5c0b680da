"""``seisstore``: the seismic catalogue and its grid campaigns from the command line."""

from __future__ import annotations

import datetime
import logging
import sys
from pathlib import Path

import click
from rich.console import Console

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_UNAVAILABLE, EX_SOFTWARE, EX_CANTCREAT = 64, 65, 66, 69, 70, 73

console = Console(stderr=True)


class Failure(click.ClickException):
    """One clear line on stderr and a sysexits code, never a traceback."""

    def __init__(self, message: str, code: int = EX_DATAERR) -> None:
        super().__init__(message)
        self.exit_code = code


def parse_dates(text: str) -> list[datetime.date]:
    """`2011-03-01..2011-03-31`, a comma list, or `@file` with one ISO date a line."""
    if text.startswith("@"):
        try:
            items = [line.strip() for line in Path(text[1:]).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise Failure(f"cannot read dates from {text[1:]}: {exc.strerror}", EX_NOINPUT) from None
        return [_date(i) for i in items]
    if ".." in text:
        first, _, last = text.partition("..")
        start, end = _date(first), _date(last)
        if end < start:
            raise Failure(f"date range {text!r} ends before it starts", EX_USAGE)
        return [start + datetime.timedelta(days=d) for d in range((end - start).days + 1)]
    return [_date(i) for i in text.split(",") if i.strip()]


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise Failure(f"not a date (YYYY-MM-DD): {text.strip()!r}", EX_USAGE) from None


def parse_stations(text: str) -> list[str]:
    if text.startswith("@"):
        try:
            return [line.strip() for line in Path(text[1:]).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise Failure(f"cannot read stations from {text[1:]}: {exc.strerror}", EX_NOINPUT) from None
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_cluster(text: str):
    """`name=c1,project=whisper,walltime=00:20:00,max_jobs=450[,prologue=module load python]`."""
    from seisstore.jdl import Cluster

    fields = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise Failure(f"cluster field without '=': {part!r}", EX_USAGE)
        fields[key.strip()] = value.strip()
    unknown = set(fields) - {"name", "project", "walltime", "max_jobs", "prologue"}
    if unknown or "name" not in fields:
        raise Failure(f"cluster needs name=..., and takes project, walltime, max_jobs, prologue: {text!r}", EX_USAGE)
    try:
        cluster = Cluster(project=fields.get("project", "default"), walltime=fields.get("walltime", "01:00:00"),
                          max_jobs=int(fields["max_jobs"]) if "max_jobs" in fields else None,
                          prologue=(fields["prologue"],) if fields.get("prologue") else ())
    except ValueError as exc:
        raise Failure(f"cluster {fields['name']}: {exc}", EX_USAGE) from None
    return fields["name"], cluster


@click.group(context_settings={"auto_envvar_prefix": "SEISSTORE", "help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log to stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Seismic recordings in iRODS: catalogue, ingest, and grid campaigns."""
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")


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
def campaign_new(name, dates, stations, n_dates, n_stations, job_script, collection, kind, prefix, clusters, out,
                 interpreter, force, upload) -> None:
    """Write param.txt, start.bash, the CiGri JDL and OAR/Slurm array scripts for NAME."""
    from seisstore.campaign import Campaign, write_campaign

    cluster_map = dict(parse_cluster(c) for c in clusters) if clusters else dict([parse_cluster("name=local")])
    try:
        camp = Campaign(name=name, dates=parse_dates(dates), stations=parse_stations(stations), n_dates=n_dates,
                        n_stations=n_stations, job_script=job_script, irods_collection=collection,
                        clusters=cluster_map, kind=kind, prefix=prefix, interpreter=tuple(interpreter.split()))
        written = write_campaign(camp, out or Path(name), overwrite=force)
    except (ValueError, FileExistsError) as exc:
        raise Failure(str(exc).splitlines()[0], EX_USAGE if isinstance(exc, ValueError) else EX_CANTCREAT) from None
    directory = (out or Path(name))
    console.print(f"campaign {name}: {camp.n_jobs} jobs, {len(written)} files in {directory}")
    if upload:
        _upload(camp, directory)


def _upload(camp, directory: Path) -> None:
    from secure_irods.client import connect
    from secure_irods.errors import SecureIrodsError

    try:
        with connect() as client:
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
        raise Failure(str(exc), EX_DATAERR) from None
    done = sum(r.done for r in report.results) + report.skipped
    console.print(f"{done} of {done + len(report.failed)} jobs done ({report.skipped} already done),"
                  f" {report.resubmitted} resubmissions, {sum(r.killed for r in report.results)} preempted")
    if report.failed:
        raise Failure(f"{len(report.failed)} jobs failed: {', '.join(r.name for r in report.failed[:5])}"
                      f"{' ...' if len(report.failed) > 5 else ''}", EX_SOFTWARE)


@campaign.command("status")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--results", envvar="SEISSTORE_RESULTS", default=None,
              help="iRODS collection of the jobs' results [env SEISSTORE_RESULTS]; omitted: not checked.")
@click.option("--job", "array_job", type=int, default=None,
              help="Slurm array job id (default: the newest with the campaign's job name).")
def campaign_status_cmd(directory: Path, results: str | None, array_job: int | None) -> None:
    """Each param.txt line of DIRECTORY: its Slurm task's state (squeue, sacct) and its results in the zone."""
    from secure_irods.errors import SecureIrodsError
    from seisstore.status import gather, render_status, summary

    try:
        lines, note = gather(directory, results, array_job)
    except ValueError as exc:
        raise Failure(str(exc).splitlines()[0], EX_DATAERR) from None
    except SecureIrodsError as exc:
        raise Failure(f"cannot list {results}: {exc}", exc.exit_code) from None
    render_status(Console(), lines)
    counts = ", ".join(f"{n} {state}" for state, n in summary(lines).items())
    click.echo(f"{len(lines)} lines: {counts}{f' ({note})' if note else ''}")


LAYOUT_HELP = "sds, whisper, or a format string such as '{date}/{net}.{sta}.{loc}.{cha}.mseed'."


def _layout(spec: str):
    from seisstore.layout import get_layout

    try:
        return get_layout(spec)
    except ValueError as exc:
        raise Failure(str(exc).splitlines()[0], EX_USAGE) from None


def _zone_failure(exc: Exception, what: str) -> Failure:
    """One line for a failure talking to the zone; secure_irods' exit code, else EX_UNAVAILABLE."""
    from secure_irods.errors import classify

    err = classify(exc)
    message = str(err).splitlines()[0] if str(err) else type(exc).__name__
    return Failure(f"{what}: {message}", getattr(err, "exit_code", None) or EX_UNAVAILABLE)


def _catalogue(coll: str, layout_spec: str, stations, dates, channels):
    """Open the zone from the iRODS environment and index COLL (a few bulk GenQueries)."""
    from secure_irods.client import connect
    from secure_irods.errors import SecureIrodsError
    from seisstore.catalogue import Catalogue
    from seisstore.dayfiles import prc_session

    layout = _layout(layout_spec)
    scope = dict(stations=parse_stations(stations) if stations else None,
                 dates=parse_dates(dates) if dates else None,
                 channels=[c.strip() for c in channels.split(",") if c.strip()] if channels else None)
    try:
        client = connect(throttle=False, cooldown=False)
        root = client.resolve(coll)
        session = prc_session(client)
    except SecureIrodsError as exc:
        raise Failure(f"cannot reach the zone: {exc}", exc.exit_code) from None
    except Exception as exc:
        raise _zone_failure(exc, "cannot reach the zone") from None
    try:
        return Catalogue(session, root, layout, cache=False), scope
    except ValueError as exc:
        session.cleanup()
        raise Failure(str(exc).splitlines()[0], EX_USAGE) from None
    except Exception as exc:
        session.cleanup()
        raise _zone_failure(exc, f"cannot index {root}") from None


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
@click.argument("local_dir", type=click.Path(path_type=Path))
@click.argument("coll")
@click.option("--layout", "layout_spec", default="sds", show_default=True, help=LAYOUT_HELP)
def ingest_cmd(local_dir: Path, coll: str, layout_spec: str) -> None:
    """Cut every file ObsPy reads under LOCAL_DIR into day files and store them in COLL.

    Day files already in COLL are skipped (one bulk catalogue query finds them).
    """
    from secure_irods.client import connect
    from secure_irods.errors import SecureIrodsError
    from seisstore.ingest import ingest

    layout = _layout(layout_spec)
    if not local_dir.is_dir():
        raise Failure(f"no such directory: {local_dir}", EX_NOINPUT)
    try:
        with connect() as client:
            report = ingest(client, local_dir, coll, layout, console=console)
    except SecureIrodsError as exc:
        raise Failure(f"ingest into {coll} failed: {exc}", exc.exit_code) from None
    except ValueError as exc:
        raise Failure(str(exc).splitlines()[0], EX_DATAERR) from None
    except OSError as exc:
        raise Failure(f"ingest into {coll} failed: {exc}", EX_UNAVAILABLE) from None
    except Exception as exc:
        raise _zone_failure(exc, f"ingest into {coll} failed") from None
    click.echo(report.summary())


@main.command("ls")
@click.argument("coll")
@_selection_options
@click.option("-l", "--long", "long_", is_flag=True, help="Also show checksums and paths.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="List at most this many files.")
def ls_cmd(coll, layout_spec, stations, dates, channels, long_, limit) -> None:
    """List the day files of COLL (one table row per channel-day)."""
    from seisstore.coverage import render_ls

    cat, scope = _catalogue(coll, layout_spec, stations, dates, channels)
    try:
        render_ls(Console(), cat.select(**scope), long=long_, limit=limit)
    finally:
        cat.session.cleanup()


@main.command("coverage")
@click.argument("coll")
@_selection_options
def coverage_cmd(coll, layout_spec, stations, dates, channels) -> None:
    """Draw station x day availability of COLL (full, partial, missing channels)."""
    from seisstore.coverage import render_coverage

    cat, scope = _catalogue(coll, layout_spec, stations, dates, channels)
    try:
        render_coverage(Console(), cat.coverage(**scope))
    finally:
        cat.session.cleanup()


if __name__ == "__main__":
    main()
