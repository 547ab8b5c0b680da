"""Test fixtures: a local grid on port 0, or a real zone named by IRODS_TEST_ENVIRONMENT_FILE.

Every test that talks to iRODS goes through real python-irodsclient over TCP.  Set
``IRODS_TEST_ENVIRONMENT_FILE`` (and ``IRODS_TEST_AUTHENTICATION_FILE`` if the password
is not in ``~/.irods/.irodsA``) to run the same suite against a production zone; tests
marked ``faults`` need the local grid's fault injection and are skipped there.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest



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


@pytest.fixture(scope="session")
def grid(tmp_path_factory) -> Grid:
    real = os.environ.get("IRODS_TEST_ENVIRONMENT_FILE")
    if real:
        auth = os.environ.get("IRODS_TEST_AUTHENTICATION_FILE")
        g = Grid(Path(real), Path(auth) if auth else None, env=json.loads(Path(real).read_text()))
        yield g
        return
    g = start_grid(tmp_path_factory.mktemp("grid"))
    try:
        yield g
    finally:
        g.stop()


@pytest.fixture
def session(grid):
    with grid.session() as s:
        yield s


@pytest.fixture
def coll(grid, session):
    """A fresh collection under the home, removed (forced) afterwards."""
    path = f"{grid.home}/t-{uuid.uuid4().hex[:10]}"
    session.collections.create(path)
    yield path
    grid.clear_faults()
    try:
        session.collections.remove(path, recurse=True, force=True)
    except Exception:
        pass


@pytest.fixture
def client(grid, monkeypatch, tmp_path):
    """A secure_irods Client on the grid, reaching it through the standard IRODS_* variables."""
    from secure_irods.client import connect

    for name, value in grid.environ().items():
        if name.startswith("IRODS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SECURE_IRODS_THROTTLE_DIR", str(tmp_path / "throttle"))
    monkeypatch.setenv("SECURE_IRODS_MAX_CONNECTIONS", "16")
    with connect() as c:
        yield c


@pytest.fixture(autouse=True)
def _no_root_handler_on_a_closed_stream():
    """A CLI run in-process (CliRunner) may call ``logging.basicConfig(force=True)``, which leaves
    the root logger a handler on the runner's stream; the stream closes with the run, and any later
    log record fails ("--- Logging error ---") in another test.  Drop such handlers after each test."""
    yield
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler and getattr(handler.stream, "closed", False):
            root.removeHandler(handler)
