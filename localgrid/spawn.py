"""Start a grid in a child process: the one way tests, benchmarks, scripts and the demo do it.

``spawn(root)`` runs ``secure-irods-grid serve --root ROOT --port 0``, waits for its
``ready HOST PORT`` line and returns what a client needs: the environment and
authentication files, the home collection, a control handle and ``stop()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .control import GridControl


@dataclass
class SpawnedGrid:
    root: Path
    process: subprocess.Popen
    host: str
    port: int
    env: dict = field(default_factory=dict)
    consumer: bool = False

    @property
    def env_file(self) -> Path:
        return self.root / "irods_environment.json"

    @property
    def auth_file(self) -> Path:
        return self.root / ".irodsA"

    @property
    def zone(self) -> str:
        return self.env["irods_zone_name"]

    @property
    def home(self) -> str:
        return self.env["irods_home"]

    @property
    def control(self) -> GridControl:
        return GridControl(self.root, self.port if self.consumer else None)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def environ(self, **extra: str) -> dict[str, str]:
        """Variables a child process (secure-iget, a job) needs to reach this grid."""
        return dict(os.environ, IRODS_ENVIRONMENT_FILE=str(self.env_file),
                    IRODS_AUTHENTICATION_FILE=str(self.auth_file), **extra)

    def session(self):
        from irods.session import iRODSSession

        return iRODSSession(irods_env_file=str(self.env_file), irods_authentication_file=str(self.auth_file))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def __enter__(self) -> "SpawnedGrid":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn(root: str | os.PathLike, *args: str, stderr=subprocess.DEVNULL, consumer: bool = False) -> SpawnedGrid:
    """Start a grid in ``root`` (created or reopened); extra ``args`` go to ``serve`` (faults).

    ``consumer``: one more server of the grid already served from ``root`` (its own port and
    connection cap, the same catalogue and vault): see :func:`spawn_zone`."""
    root = Path(root)
    extra = ["--consumer"] if consumer else []
    proc = subprocess.Popen([sys.executable, "-m", "localgrid", "serve", "--root", str(root), "--port", "0", *extra,
                             *args], stdout=subprocess.PIPE, stderr=stderr, text=True)
    line = proc.stdout.readline().split()
    if len(line) != 3 or line[0] != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the local grid in {root} did not start (printed {line!r})")
    return SpawnedGrid(root, proc, line[1], int(line[2]), json.loads((root / "irods_environment.json").read_text()),
                       consumer)


def spawn_zone(root: str | os.PathLike, servers: int, *args: str, stderr=subprocess.DEVNULL) -> list[SpawnedGrid]:
    """A zone served by ``servers`` listening servers over one root: the provider first, then
    consumers; each gets ``args`` (e.g. its own ``--max-connections``).  Stop them all when done."""
    started = [spawn(root, *args, stderr=stderr)]
    try:
        for _ in range(servers - 1):
            started.append(spawn(root, *args, stderr=stderr, consumer=True))
    except BaseException:
        for grid in started:
            grid.stop()
        raise
    return started
