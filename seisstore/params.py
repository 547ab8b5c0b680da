"""``param.txt``: one line per grid job, the only input CiGri, OAR and Slurm pass on.

The seed's format is ``<name> <n_dates> <idate> <n_stations> <istation>``
with ``name = <prefix><n_dates>_<idate>_<n_stations>_<istation>``, e.g.
``traces160_0_8_1 160 0 8 1``. Correlation campaigns append ``<jstation>``
to both the name and the fields. Each line is split by a shell into
``start.bash`` arguments, so every field is checked against a safe pattern
here and again in the script.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Union

from seisstore.partition import CorrelationJob, ProcessingJob

__all__ = [
    "SAFE_NAME_RE",
    "WALLTIME_RE",
    "check_name",
    "check_walltime",
    "format_param_line",
    "parse_param_line",
    "read_param_file",
    "write_param_lines",
]

#: Names that are safe unquoted in a shell, a path part and a JSON string.
SAFE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
#: ``HH:MM:SS`` as CiGri and OAR take it; hours may exceed 24.
WALLTIME_RE = re.compile(r"([0-9]{1,3}):([0-5][0-9]):([0-5][0-9])")

Job = Union[ProcessingJob, CorrelationJob]


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it matches ``[A-Za-z0-9_.-]+`` and is not ``.``/``..``."""
    if not isinstance(name, str) or not SAFE_NAME_RE.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"{what} {name!r} must match [A-Za-z0-9_.-]+")
    if name.startswith("-"):
        raise ValueError(f"{what} {name!r} must not start with '-' (it would read as an option)")
    return name


def check_walltime(walltime: str) -> str:
    """Return ``walltime`` if it is a non-zero ``HH:MM:SS``."""
    match = WALLTIME_RE.fullmatch(walltime) if isinstance(walltime, str) else None
    if match is None:
        raise ValueError(f"walltime {walltime!r} must be HH:MM:SS")
    if not any(int(g) for g in match.groups()):
        raise ValueError("walltime must be longer than 00:00:00")
    return walltime


def format_param_line(prefix: str, job: Job) -> str:
    """The ``param.txt`` line of ``job``, e.g. ``traces160_0_8_1 160 0 8 1``."""
    name = check_name(job.name(prefix), "job name")
    return " ".join([name, *(str(v) for v in job)])


def write_param_lines(prefix: str, jobs: Iterable[Job]) -> Iterator[str]:
    """Lines (without newlines) for ``jobs``, in order: line ``k`` is array task ``k``."""
    check_name(prefix + "0", "job name prefix")
    for job in jobs:
        yield format_param_line(prefix, job)


def parse_param_line(line: str) -> Job:
    """Parse one ``param.txt`` line; a malformed line raises one clear ``ValueError``.

    The name must end with the line's own numbers joined by ``_``, so a line
    edited by hand cannot silently point at a different job.
    """
    fields = line.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"param line {line!r}: expected '<name> <n_dates> <idate> <n_stations> "
            f"<istation> [<jstation>]', got {len(fields)} fields"
        )
    name, numbers = fields[0], fields[1:]
    try:
        check_name(name, "job name")
    except ValueError as exc:
        raise ValueError(f"param line {line!r}: {exc}") from None
    if not all(re.fullmatch(r"[0-9]+", n) for n in numbers):
        raise ValueError(f"param line {line!r}: fields after the name must be non-negative ints")
    ints = [int(n) for n in numbers]
    n_dates, idate, n_stations, istation = ints[:4]
    problems = []
    if n_dates < 1 or not idate < n_dates:
        problems.append(f"date index {idate} not in 0..{n_dates - 1}")
    if n_stations < 1 or not istation < n_stations:
        problems.append(f"station index {istation} not in 0..{n_stations - 1}")
    if len(ints) == 5:
        jstation = ints[4]
        if not istation <= jstation < n_stations:
            problems.append(f"second station index {jstation} not in {istation}..{n_stations - 1}")
    suffix = "_".join(str(i) for i in ints)
    if not name.endswith(suffix):
        problems.append(f"name does not end with {suffix!r}")
    if problems:
        raise ValueError(f"param line {line!r}: " + "; ".join(problems))
    if len(ints) == 5:
        return CorrelationJob(*ints)
    return ProcessingJob(*ints)


def read_param_file(lines: Iterable[str]) -> Iterator[Job]:
    """Parse a ``param.txt``'s lines, skipping blank ones; errors name the line number."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield parse_param_line(line)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
