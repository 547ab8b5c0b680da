"""CiGri job description (JDL): the JSON that turns ``param.txt`` into a grid campaign.

As in the seed paper: a ``best-effort`` campaign runs ``exec_file`` once per
``param_file`` line on each accepted cluster; each cluster's ``prologue``
fetches ``start.bash`` from iRODS (CiGri never talks to iRODS itself), and
``max_jobs`` caps how many jobs run at once there -- the knob that keeps a
campaign from becoming a distributed attack on the iRODS servers.
"""
from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seisstore.params import check_name, check_walltime

__all__ = [
    "Cluster",
    "check_collection",
    "check_shell_line",
    "cigri_jdl",
    "dump_jdl",
    "remote_dir",
]

_COLLECTION_RE = re.compile(r"/[^\x00-\x1f\x7f]*")


def check_collection(path: str) -> str:
    """Return ``path`` (without trailing ``/``) if it is an absolute iRODS collection."""
    if not isinstance(path, str) or not _COLLECTION_RE.fullmatch(path):
        raise ValueError(f"iRODS collection {path!r} must be absolute and printable")
    stripped = path.rstrip("/")
    if not stripped or any(p in (".", "..") for p in stripped.split("/")[1:]):
        raise ValueError(f"iRODS collection {path!r} must not be '/' or contain '.'/'..'")
    return stripped


def check_shell_line(line: str, what: str = "shell line") -> str:
    """Return ``line`` if it is one line: user commands are trusted, but not multi-line."""
    if not isinstance(line, str) or not line.strip() or re.search(r"[\x00-\x1f\x7f]", line):
        raise ValueError(f"{what} {line!r} must be one non-empty line")
    return line


@dataclass(frozen=True)
class Cluster:
    """One cluster's part of a campaign: CiGri ``project``, ``walltime``, ``max_jobs``, prologue.

    ``prologue`` holds extra trusted shell lines run before the jobs (e.g.
    ``module load python``); the generated lines that fetch ``start.bash``
    come first.
    """

    project: str
    walltime: str
    max_jobs: int | None = None
    prologue: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_name(self.project, "project")
        check_walltime(self.walltime)
        jobs = self.max_jobs
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
            raise ValueError(f"max_jobs must be a positive int, got {self.max_jobs!r}")
        object.__setattr__(self, "prologue", tuple(self.prologue))
        for line in self.prologue:
            check_shell_line(line, "prologue line")


def remote_dir(name: str) -> str:
    """Where the prologue puts ``start.bash`` on a cluster, with ``$HOME`` left to the shell."""
    return f"$HOME/seisstore/{check_name(name, 'campaign name')}"


def cigri_jdl(
    name: str,
    clusters: Mapping[str, Cluster],
    irods_collection: str,
    *,
    cores: int = 1,
    param_file: str = "param.txt",
    exec_name: str = "start.bash",
    fetch_command: Sequence[str] = ("secure-iget", "-f"),
) -> dict[str, Any]:
    """The JDL as a dict; see :func:`dump_jdl` for the file text."""
    check_name(name, "campaign name")
    check_name(param_file, "param file")
    check_name(exec_name, "exec file")
    coll = check_collection(irods_collection)
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ValueError(f"cores must be a positive int, got {cores!r}")
    if not clusters:
        raise ValueError("a campaign needs at least one cluster")
    fetch = " ".join(shlex.quote(word) for word in fetch_command)
    if not fetch:
        raise ValueError("fetch_command must not be empty")
    home = f'"$HOME"/seisstore/{shlex.quote(name)}'
    fetch_lines = [
        f"mkdir -p {home}",
        f"{fetch} {shlex.quote(f'{coll}/{exec_name}')} {home}/{shlex.quote(exec_name)}",
        f"chmod u+x {home}/{shlex.quote(exec_name)}",
    ]
    out_clusters: dict[str, dict[str, Any]] = {}
    for cluster_name, cluster in clusters.items():
        check_name(cluster_name, "cluster name")
        entry: dict[str, Any] = {
            "prologue": [*fetch_lines, *cluster.prologue],
            "project": cluster.project,
            "walltime": cluster.walltime,
        }
        if cluster.max_jobs is not None:
            entry["max_jobs"] = cluster.max_jobs
        out_clusters[cluster_name] = entry
    return {
        "name": name,
        "resources": f"core={cores}",
        "exec_file": f"{remote_dir(name)}/{exec_name}",
        "param_file": param_file,
        "type": "best-effort",
        "clusters": out_clusters,
    }


def dump_jdl(jdl: Mapping[str, Any]) -> str:
    """JDL file text: indented JSON with a final newline."""
    return json.dumps(jdl, indent=2) + "\n"
