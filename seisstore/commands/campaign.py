"""``seisstore campaign new|run-local|status``: job campaigns for CiGri, OAR, Slurm or this machine."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import click

from secure_irods.exitcodes import ExitCode
from seisstore.commands.common import (Failure, Zone, console, doing, emit_json, json_option, parse_dates,
                                       parse_stations, pass_zone, results_console)

if TYPE_CHECKING:
    from seisstore.campaign import Campaign
    from seisstore.jdl import Cluster

__all__ = ["campaign"]


def parse_cluster(text: str) -> tuple[str, "Cluster"]:
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


@click.group()
def campaign() -> None:
    """Write and run job campaigns (CiGri JDL, OAR and Slurm arrays, local runs)."""


def _show_chain(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """Print the settings the jobs would run with ($SEISSTORE_CONFIG or preprocess.json/correlate.json here,
    defaults filled in) and exit: nothing is written."""
    if not value or ctx.resilient_parsing:
        return
    from seisstore.jobs import load_config, output_collection, setting
    from seisstore.jobs.correlate import Settings
    from seisstore.preprocessing import DEFAULT_CHAIN

    pre, xc = load_config("preprocess"), load_config("correlate")
    unset = "(not set)"
    xc = dict(xc, processed=setting(xc, "processed", "SEISSTORE_PROCESSED") or unset,
              bundles=output_collection(xc, "bundles", "SEISSTORE_BUNDLES") or unset)
    emit_json({"preprocess": {"chain": pre.get("chain", DEFAULT_CHAIN), "chain_is_default": "chain" not in pre,
                              "channels": pre.get("channels"), "layout": pre.get("layout", "sds")},
               "correlate": dataclasses.asdict(Settings.from_config(xc))})
    ctx.exit(0)


@campaign.command("new")
@click.option("--show-chain", is_flag=True, is_eager=True, expose_value=False, callback=_show_chain,
              help="Print the preprocessing chain and correlation settings the jobs would use (defaults filled "
                   "in, from $SEISSTORE_CONFIG or preprocess.json/correlate.json here) and exit.")
@click.argument("name")
@click.option("--dates", required=True, help="2011-03-01..2011-03-31, a comma list, or @file.")
@click.option("--stations", required=True, help="Comma list or @file, one station a line.")
@click.option("--n-dates", required=True, type=int,
              help="Into how many sublists the dates are cut (not dates per job): jobs = n-dates x station lines.")
@click.option("--n-stations", required=True, type=int,
              help="Into how many sublists the stations are cut (not stations per job): a processing job takes "
                   "one sublist; a correlation job one sublist, or two for the pairs across them. "
                   "E.g. 30 stations, --n-stations 3: sublists of 10.")
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
@pass_zone
def campaign_new(zone: Zone, name: str, dates: str, stations: str, n_dates: int, n_stations: int, job_script: Path,
                 collection: str, kind: str, prefix: str | None, clusters: tuple[str, ...], out: Path | None,
                 interpreter: str, force: bool, upload: bool, parents: bool, archive: str | None,
                 results: str | None) -> None:
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
        _upload(zone, camp, directory, parents)


def _upload(zone: Zone, camp: "Campaign", directory: Path, parents: bool) -> None:
    from secure_irods.errors import NotFoundError

    with doing(f"upload to {camp.irods_collection} failed"):
        client = zone.client()
        try:
            client.require_collection(camp.irods_collection, create=parents)
        except NotFoundError as exc:
            raise NotFoundError(f"{exc.message} (--parents creates it)") from None
        client.put_many([(directory / f, f"{camp.irods_collection}/{f}") for f in camp.uploads], force=True)
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


@campaign.command("status")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--results", default=None,
              help="iRODS collection of the jobs' results (default: start.bash's, then $SEISSTORE_RESULTS).")
@click.option("--job", "array_job", type=int, default=None,
              help="Slurm array job id (default: the newest with the campaign's job name).")
@json_option
def campaign_status_cmd(directory: Path, results: str | None, array_job: int | None, as_json: bool) -> None:
    """Each param.txt line of DIRECTORY: its Slurm task's state (squeue, sacct) and its results in the zone."""
    from seisstore.status import gather, render_status, summary

    try:
        lines, note = gather(directory, results, array_job)   # a zone's error: the table's code, as it is
    except ValueError as exc:   # not a campaign directory
        raise Failure(str(exc).splitlines()[0], ExitCode.USAGE) from None
    if as_json:
        emit_json({"directory": str(directory), "note": note, "summary": summary(lines), "lines": [
            {"task": line.task, "name": line.name, "results": list(line.results),
             "scheduler": None if line.scheduler is None else dataclasses.asdict(line.scheduler)}
            for line in lines]})
        return
    render_status(results_console(), lines)
    counts = ", ".join(f"{n} {state}" for state, n in summary(lines).items())
    click.echo(f"{len(lines)} lines: {counts}{f' ({note})' if note else ''}")
