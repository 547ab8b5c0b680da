"""Where a campaign submitted to Slurm stands: the scheduler's view of each line, and its results.

Task ``k`` of the campaign's Slurm array runs line ``k`` of ``param.txt``
(:func:`seisstore.jobscripts.slurm_script`).  :func:`slurm_tasks` asks the scheduler
for the array's tasks (one ``squeue`` call, plus one ``sacct`` call where accounting
runs: it remembers finished tasks after ``squeue`` forgets them, ``MinJobAge``);
:func:`zone_results` lists the results collection with one bulk scan through a
:class:`secure_irods.Client` (two GenQueries per collection); :func:`campaign_status`
joins both to the param lines.  A line's result is any data object whose name is the
line's job name, or starts with it and a dot (``rms3_0_2_1.csv``).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seisstore.runlocal import read_lines

__all__ = ["LineStatus", "TaskState", "campaign_job_name", "campaign_results", "campaign_status", "render_status", "slurm_tasks",
           "zone_results"]

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
_TASK = re.compile(r"^(\d+)_(\d+)$")
_JOB_NAME = re.compile(r"^#SBATCH --job-name=(\S+)$", re.M)
_RESULTS = re.compile(r"^export SEISSTORE_RESULTS=(.+)$", re.M)


@dataclass(frozen=True)
class TaskState:
    """One array task as the scheduler reports it."""

    array_job: int
    task: int
    state: str                 # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ...
    reason: str = ""           # squeue's reason (BeginTime, Resources, JobArrayTaskLimit, ...)
    exit_code: str = ""        # sacct's ExitCode, "2:0"
    source: str = "squeue"


@dataclass(frozen=True)
class LineStatus:
    task: int                  # the array index, = the line number in param.txt
    name: str                  # the line's job name
    scheduler: TaskState | None
    results: tuple[str, ...]   # result objects of this line, relative to the results collection


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def campaign_results(directory: Path) -> str | None:
    """The results collection ``start.bash`` exports (``campaign new --results``), if any."""
    start = Path(directory) / "start.bash"
    text = start.read_text(encoding="utf-8", errors="replace") if start.is_file() else ""
    found = _RESULTS.search(text)
    if not found:
        return None
    try:
        words = shlex.split(found.group(1))
    except ValueError:
        return None
    return words[0] if len(words) == 1 else None


def campaign_job_name(directory: Path) -> str:
    """The Slurm job name of a campaign directory (its ``slurm_*.sh``), else the directory's name."""
    for script in sorted(Path(directory).glob("slurm_*.sh")):
        found = _JOB_NAME.search(script.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found.group(1)
    return Path(directory).resolve().name


def slurm_tasks(job_name: str, array_job: int | None = None, run: Runner = _run) -> tuple[dict[int, TaskState], str]:
    """``{task: TaskState}`` of the newest array job called ``job_name`` (or of ``array_job``), and a note.

    squeue (one line per task with ``--array``) wins over sacct: it is the controller's
    current view; sacct fills in what the controller no longer holds.  The note says
    what was not available (no Slurm here, accounting disabled).
    """
    tasks: dict[tuple[int, int], TaskState] = {}
    notes = []
    try:
        acct = run(["sacct", "--noheader", "--parsable2", "--allocations", "--name", job_name,
                    "--starttime", "now-30days", "--format", "JobID,State,ExitCode"])
    except (OSError, subprocess.SubprocessError):
        acct = None
    if acct is not None and acct.returncode == 0:
        for row in acct.stdout.splitlines():
            fields = row.split("|")
            found = _TASK.match(fields[0]) if len(fields) >= 3 else None
            if found:
                key = (int(found.group(1)), int(found.group(2)))
                tasks[key] = TaskState(*key, fields[1].split()[0], exit_code=fields[2], source="sacct")
    else:
        notes.append("no sacct (accounting disabled)")
    try:
        queue = run(["squeue", "--noheader", "--array", "--states=all", "--name", job_name,
                     "--format", "%F|%K|%T|%r"])
    except (OSError, subprocess.SubprocessError) as exc:
        queue = None
        notes.append(f"no squeue ({exc})")
    if queue is not None and queue.returncode != 0:
        said = (queue.stderr or queue.stdout).strip().splitlines()
        notes.append(f"squeue failed: {said[-1] if said else f'exit {queue.returncode}'}")
    elif queue is not None:
        for row in queue.stdout.splitlines():
            fields = row.strip().split("|")
            if len(fields) == 4 and fields[0].isdigit() and fields[1].isdigit():
                key = (int(fields[0]), int(fields[1]))
                reason = "" if fields[3] == "None" else fields[3]
                old = tasks.get(key)
                tasks[key] = TaskState(*key, fields[2], reason, old.exit_code if old else "", "squeue")
    if array_job is None and tasks:
        array_job = max(job for job, _ in tasks)
    return {task: state for (job, task), state in tasks.items() if job == array_job}, "; ".join(notes)


def zone_results(client: Any, collection: str) -> list[str]:
    """Paths of the data objects under ``collection``, relative to it (one bulk scan; [] if absent)."""
    from secure_irods.errors import NotFoundError

    root = client.resolve(collection).rstrip("/")
    try:
        found = client.scan(root)
    except NotFoundError:
        return []
    return sorted(s.path[len(root) + 1:] for s in found)


def campaign_status(directory: Path, results: Sequence[str] = (), tasks: dict[int, TaskState] | None = None
                    ) -> list[LineStatus]:
    """Each param line of ``directory`` with its task's state and its results."""
    by_name: dict[str, list[str]] = {}
    for rel in results:
        head = rel.split("/", 1)[0]
        by_name.setdefault(head, []).append(rel)
        stem = head.split(".", 1)[0]
        if stem != head:
            by_name.setdefault(stem, []).append(rel)
    tasks = tasks or {}
    return [LineStatus(number, fields[0], tasks.get(number), tuple(by_name.get(fields[0], ())))
            for number, fields in enumerate(read_lines(Path(directory)), 1)]


def summary(lines: Sequence[LineStatus]) -> dict[str, int]:
    """Counts per scheduler state (``-`` where the scheduler knows nothing) and of lines with results."""
    counts: dict[str, int] = {}
    for line in lines:
        state = line.scheduler.state if line.scheduler else "-"
        counts[state] = counts.get(state, 0) + 1
    counts["with results"] = sum(bool(line.results) for line in lines)
    return counts


def render_status(console: Any, lines: Sequence[LineStatus], *, title: str = "") -> None:
    """A table: task, job name, scheduler state (reason or exit code), result objects."""
    from rich.table import Table

    table = Table(title=title or None)
    for column in ("task", "line", "state", "result"):
        table.add_column(column, justify="right" if column == "task" else "left")
    for line in lines:
        state = "-"
        if line.scheduler:
            extra = line.scheduler.reason or (line.scheduler.exit_code if line.scheduler.exit_code not in
                                              ("", "0:0") else "")
            state = f"{line.scheduler.state} ({extra})" if extra else line.scheduler.state
        table.add_row(str(line.task), line.name, state, ", ".join(line.results) or "-")
    console.print(table)


def gather(directory: Path, results_collection: str | None = None, array_job: int | None = None,
           run: Runner = _run, client: Any = None) -> tuple[list[LineStatus], str]:
    """:func:`campaign_status` of ``directory`` from the scheduler and (if given) the results collection.

    ``results_collection`` defaults to the one ``start.bash`` exports (``campaign new
    --results``), then to ``$SEISSTORE_RESULTS``; ``client`` to
    ``secure_irods.connect(throttle=False, cooldown=False)`` from the iRODS environment,
    opened only if there is a results collection.
    """
    directory = Path(directory)
    read_lines(directory)           # fails early (ValueError) on something that is not a campaign
    results_collection = (results_collection or campaign_results(directory)
                          or os.environ.get("SEISSTORE_RESULTS") or None)
    tasks, note = slurm_tasks(campaign_job_name(directory), array_job, run=run)
    found: list[str] = []
    if results_collection:
        if client is None:
            from secure_irods.client import connect

            with connect(throttle=False, cooldown=False) as own:
                found = zone_results(own, results_collection)
        else:
            found = zone_results(client, results_collection)
    return campaign_status(directory, found, tasks), note
