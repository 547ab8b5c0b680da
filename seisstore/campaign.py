"""A grid campaign as one validated value, and the directory that runs it.

:class:`Campaign` gathers what the seed's workflow spreads over hand-written
files (dates, stations, the two split counts, the job script, the iRODS
collection holding code and inputs, the clusters) and checks it all once.
:func:`write_campaign` then writes, into one directory::

    param.txt           one line per job (the seed's format)
    start.bash          runs one line: fetch inputs, run the job, clean up
    <name>.jdl          CiGri best-effort campaign
    oar_<cluster>.sh    OAR array job, per cluster
    slurm_<cluster>.sh  Slurm array job, per cluster
    dates.txt           the ordered dates, one ISO date a line
    stations.txt        the ordered stations, one a line
    <job script>        a copy of the user's job script

Jobs only receive four (or five) integers, so ``dates.txt`` and
``stations.txt`` must be byte-identical everywhere: the files listed by
:attr:`Campaign.uploads` go to the iRODS collection, from which
``start.bash`` fetches :attr:`Campaign.inputs`.
"""
from __future__ import annotations

import datetime
import logging
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from seisstore.jdl import Cluster, check_collection, check_shell_line, cigri_jdl, dump_jdl
from seisstore.jobscripts import oar_script, slurm_script, start_bash
from seisstore.params import check_name, write_param_lines
from seisstore.partition import (
    CorrelationJob,
    ProcessingJob,
    correlation_partition,
    job_count,
    partition,
)

__all__ = [
    "DATES_FILE",
    "PARAM_FILE",
    "START_FILE",
    "STATIONS_FILE",
    "Campaign",
    "read_dates",
    "read_stations",
    "write_campaign",
]

log = logging.getLogger(__name__)

PARAM_FILE = "param.txt"
START_FILE = "start.bash"
DATES_FILE = "dates.txt"
STATIONS_FILE = "stations.txt"
KINDS = ("processing", "correlation")

Job = Union[ProcessingJob, CorrelationJob]


@dataclass(frozen=True)
class Campaign:
    """Everything needed to write a campaign directory; invalid values raise ``ValueError``.

    ``prefix`` starts every job name (the seed's ``traces``); it defaults to
    ``name``. ``kind`` is ``processing`` (one job per date x station sublist)
    or ``correlation`` (one job per date sublist x station sublist pair).
    """

    name: str
    dates: Sequence[datetime.date]
    stations: Sequence[str]
    n_dates: int
    n_stations: int
    job_script: Path
    irods_collection: str
    clusters: Mapping[str, Cluster]
    kind: str = "processing"
    prefix: str | None = None
    cores: int = 1
    interpreter: Sequence[str] = ("python3",)
    setup: Sequence[str] = field(default_factory=tuple)
    fetch_command: Sequence[str] = ("secure-iget", "-f")
    best_effort: bool = True
    #: variables start.bash exports to the job (``SEISSTORE_ARCHIVE``, ``SEISSTORE_RESULTS``...)
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "campaign name")
        if self.prefix is None:
            object.__setattr__(self, "prefix", self.name)
        check_name(f"{self.prefix}0", "job name prefix")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        dates = tuple(self.dates)
        for day in dates:
            if isinstance(day, datetime.datetime) or not isinstance(day, datetime.date):
                raise ValueError(f"dates must be datetime.date values, got {day!r}")
        stations = tuple(self.stations)
        for station in stations:
            check_name(station, "station")
        object.__setattr__(self, "dates", dates)
        object.__setattr__(self, "stations", stations)
        object.__setattr__(self, "job_script", Path(self.job_script))
        check_name(self.job_script.name, "job script name")
        if self.job_script.name in (PARAM_FILE, START_FILE, DATES_FILE, STATIONS_FILE):
            raise ValueError(f"job script may not be called {self.job_script.name!r}")
        object.__setattr__(self, "irods_collection", check_collection(self.irods_collection))
        if not self.clusters:
            raise ValueError("a campaign needs at least one cluster")
        clusters = dict(self.clusters)
        for cluster_name, cluster in clusters.items():
            check_name(cluster_name, "cluster name")
            if not isinstance(cluster, Cluster):
                raise ValueError(f"cluster {cluster_name!r} must be a Cluster, got {cluster!r}")
        object.__setattr__(self, "clusters", clusters)
        if isinstance(self.cores, bool) or not isinstance(self.cores, int) or self.cores < 1:
            raise ValueError(f"cores must be a positive int, got {self.cores!r}")
        for attr in ("interpreter", "setup", "fetch_command"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        for line in self.setup:
            check_shell_line(line, "setup line")
        # Fails early on n < 1, n larger than the list, or duplicates.
        next(iter(self.jobs()))

    def jobs(self) -> Iterator[Job]:
        """The campaign's jobs in ``param.txt`` order."""
        split = partition if self.kind == "processing" else correlation_partition
        return split(self.dates, self.stations, self.n_dates, self.n_stations)

    @property
    def n_jobs(self) -> int:
        """Number of jobs, i.e. ``param.txt`` lines."""
        return job_count(self.n_dates, self.n_stations, self.kind)

    def param_lines(self) -> Iterator[str]:
        """``param.txt`` lines without newlines, e.g. ``traces160_0_8_1 160 0 8 1``."""
        return write_param_lines(str(self.prefix), self.jobs())

    @property
    def inputs(self) -> tuple[str, ...]:
        """Files ``start.bash`` fetches from the iRODS collection into each job's work dir."""
        return (self.job_script.name, DATES_FILE, STATIONS_FILE)

    @property
    def uploads(self) -> tuple[str, ...]:
        """Campaign files to put into :attr:`irods_collection` before submitting."""
        return (START_FILE, PARAM_FILE, *self.inputs)

    def start_bash(self) -> str:
        """Text of ``start.bash``."""
        return start_bash(
            self.name,
            self.irods_collection,
            self.job_script.name,
            self.inputs,
            interpreter=self.interpreter,
            setup=self.setup,
            fetch_command=self.fetch_command,
            environment=self.environment,
        )

    def jdl(self) -> dict:
        """The CiGri JDL as a dict."""
        return cigri_jdl(
            self.name,
            self.clusters,
            self.irods_collection,
            cores=self.cores,
            param_file=PARAM_FILE,
            exec_name=START_FILE,
            fetch_command=self.fetch_command,
        )


def _write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via a temporary file so an interrupted run never leaves half a script."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_campaign(
    campaign: Campaign, directory: str | os.PathLike[str], *, overwrite: bool = False
) -> dict[str, Path]:
    """Write the campaign directory; return ``{file name: path}`` of what was written.

    Refuses a non-empty directory unless ``overwrite`` (files are then
    replaced one by one, others are left alone).
    """
    out = Path(directory)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty: --force (overwrite=True from Python) replaces its files")
    if not campaign.job_script.is_file():
        raise FileNotFoundError(f"job script {campaign.job_script} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def put(file_name: str, text: str, mode: int = 0o644) -> None:
        path = out / file_name
        _write_text(path, text, mode)
        written[file_name] = path

    lines = list(campaign.param_lines())
    put(PARAM_FILE, "".join(f"{line}\n" for line in lines))
    put(START_FILE, campaign.start_bash(), 0o755)
    put(DATES_FILE, "".join(f"{day.isoformat()}\n" for day in campaign.dates))
    put(STATIONS_FILE, "".join(f"{station}\n" for station in campaign.stations))
    put(f"{campaign.name}.jdl", dump_jdl(campaign.jdl()))
    for cluster_name, cluster in campaign.clusters.items():
        put(
            f"oar_{cluster_name}.sh",
            oar_script(
                campaign.name,
                cluster,
                cores=campaign.cores,
                param_file=PARAM_FILE,
                exec_name=START_FILE,
                best_effort=campaign.best_effort,
            ),
            0o755,
        )
        put(
            f"slurm_{cluster_name}.sh",
            slurm_script(
                campaign.name,
                cluster,
                len(lines),
                cores=campaign.cores,
                param_file=PARAM_FILE,
                exec_name=START_FILE,
                best_effort=campaign.best_effort,
            ),
            0o755,
        )
    script = out / campaign.job_script.name
    if script.resolve() != campaign.job_script.resolve():
        shutil.copyfile(campaign.job_script, script)
    written[campaign.job_script.name] = script
    log.info("campaign %s: %d jobs written to %s", campaign.name, len(lines), out)
    return written


def read_dates(path: str | os.PathLike[str]) -> list[datetime.date]:
    """The ordered dates of a ``dates.txt``, for a job to rebuild its sublist."""
    dates = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            dates.append(datetime.date.fromisoformat(line.strip()))
        except ValueError:
            raise ValueError(f"{path}:{number}: {line!r} is not a YYYY-MM-DD date") from None
    return dates


def read_stations(path: str | os.PathLike[str]) -> list[str]:
    """The ordered stations of a ``stations.txt``."""
    stations = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            stations.append(check_name(line.strip(), "station"))
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
    return stations
