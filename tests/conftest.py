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
import uuid
from pathlib import Path

import pytest

from helpers import Grid, start_grid


@pytest.fixture(autouse=True)
def _root_logging():
    """Restore the root logger after each test: a CLI invoked in-process (CliRunner) may call
    ``logging.basicConfig(force=True, stream=<the runner's stderr>)``, a stream closed once the
    invocation ends; a later test's log records would then go to it ("--- Logging error ---")."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _our_logger_levels():
    """Restore our loggers' levels after each test: a command run in-process may quieten one
    (rebalance apply quietens secure_irods.retry), and a later test counting its warnings would
    then wait for lines that never come."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("secure_irods", "seisstore")]
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    for name in logging.root.manager.loggerDict:
        if name.split(".")[0] in ("secure_irods", "seisstore"):
            logging.getLogger(name).setLevel(levels.get(name, logging.NOTSET))


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
