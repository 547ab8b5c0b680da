"""Helpers shared by the test modules (test modules never import each other).

``Grid``/``start_grid``: a zone to test against (the fixtures live in ``conftest.py``);
command and client helpers for secure_irods; ``synthetic`` traces for seisstore.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from obspy import Trace, UTCDateTime

from secure_irods import RetryPolicy
from secure_irods.client import connect

BIN = Path(sys.executable).parent
MiB = 1024 * 1024
START = UTCDateTime("2021-01-01T12:00:00")  # default start of a synthetic trace


@dataclass
class Grid:
    """What a test needs to reach a zone: its environment file, and the grid's controls if local."""

    env_file: Path
    auth_file: Path | None
    root: Path | None = None
    process: subprocess.Popen | None = None
    host: str = ""
    port: int = 0
    env: dict = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.process is not None

    @property
    def zone(self) -> str:
        return self.env["irods_zone_name"]

    @property
    def home(self) -> str:
        return self.env.get("irods_home") or f"/{self.zone}/home/{self.env['irods_user_name']}"

    def session(self, **overrides):
        from irods.session import iRODSSession

        kwargs = {"irods_env_file": str(self.env_file)}
        if self.auth_file:
            kwargs["irods_authentication_file"] = str(self.auth_file)
        if overrides:
            # explicit credentials (e.g. another user): no environment file
            kwargs = {"host": self.host or self.env["irods_host"], "port": self.port or self.env["irods_port"],
                      "zone": self.zone, **overrides}
        return iRODSSession(**kwargs)

    def environ(self) -> dict[str, str]:
        """Variables a subprocess (secure-iget, a job script) needs to reach this zone."""
        env = dict(os.environ, IRODS_ENVIRONMENT_FILE=str(self.env_file))
        if self.auth_file:
            env["IRODS_AUTHENTICATION_FILE"] = str(self.auth_file)
        return env

    @property
    def control(self):
        if not self.local:
            pytest.skip("needs the local grid's fault injection")
        from localgrid import GridControl

        return GridControl(self.root)

    def set_faults(self, **faults) -> None:
        self.control.set(**faults)

    def clear_faults(self) -> None:
        if self.local:
            self.control.set(max_connections=0, drop_rate=0.0, latency_ms=0.0, down=[], bandwidth_mbps=0.0,
                             total_bandwidth_mbps=0.0)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def start_grid(root: Path, *args: str) -> Grid:
    """Start `secure-irods-grid serve` on port 0 (extra args: faults) and wait until it is ready."""
    from localgrid.spawn import spawn

    g = spawn(root, *args)
    return Grid(g.env_file, g.auth_file, g.root, g.process, g.host, g.port, g.env)


def command_env(grid, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = grid.environ()
    env.update(SECURE_IRODS_THROTTLE_DIR=str(tmp_path / "throttle"), SECURE_IRODS_MAX_WAIT="0.2",
               SECURE_IRODS_COOLDOWN="0.3", **extra)
    return env


def run(tool: str, *args: str, env: dict, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_bytes(rng.randbytes(size))
    return path


def client_for(grid, tmp_path: Path, **policy):
    return connect(grid.env_file, grid.auth_file, throttle=False, cooldown=False,
                   policy=RetryPolicy(max_wait=0.2, **policy))


def remote_state(session, path: str) -> list[tuple[str, str, int]]:
    """(status, checksum, size) of every replica at ``path`` (empty if none)."""
    from irods.models import Collection, DataObject

    parent, name = path.rsplit("/", 1)
    rows = session.query(DataObject.replica_status, DataObject.checksum, DataObject.size).filter(
        Collection.name == parent).filter(DataObject.name == name)
    return [(r[DataObject.replica_status], r[DataObject.checksum], r[DataObject.size]) for r in rows]


def synthetic(sta="OGDI", loc="00", cha="HHZ", rate=1.0, start=START, seconds=3 * 86400, seed=0):
    data = np.random.default_rng(seed).integers(-2**20, 2**20, int(seconds * rate), dtype=np.int32)
    return Trace(data=data, header={"network": "FR", "station": sta, "location": loc, "channel": cha,
                                    "sampling_rate": rate, "starttime": start})




def wait_for(predicate, timeout: float, what: str, poll: float = 0.25, describe=lambda: ""):
    """``predicate()``'s first truthy value within ``timeout`` s; else fail, saying what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}: {describe()}")


def checksums(env_file, auth_file, collection: str) -> dict[str, str]:
    """``{path under collection: checksum}`` of every data object below ``collection``."""
    with connect(env_file=env_file, auth_file=auth_file, throttle=False, cooldown=False) as client:
        root = client.resolve(collection)
        return {s.path[len(root) + 1:]: s.checksum for s in client.scan(root)}
