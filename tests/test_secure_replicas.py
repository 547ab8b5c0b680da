"""The toolkit against iRODS 4.3's replica rules, on the grid that now keeps them (issue 21).

4.3 serves a stale replica when no good one is up, and refuses an object another agent is
writing.  A get must never take stale bytes for the object, and a put or a get that meets a
writer must wait for it as a transient failure, not fail and not break its lock.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import irods.keywords as kw
import pytest

from helpers import client_for, command_env, remote_state
from secure_irods.errors import PermanentError, TransientError

BIN = Path(sys.executable).parent


def _drop_an_upload(grid, path: str, data: bytes) -> None:
    """A writer that dies before close: the only replica is left stale with ``data``."""
    with grid.session() as writer:
        f = writer.data_objects.open(path, "w", auto_close=False)
        f.write(data)
        f.flush()
        writer.cleanup()


def _wait_stale(session, path: str) -> None:
    from helpers import wait_for
    wait_for(lambda: [s for s, _, _ in remote_state(session, path)] == ["0"], 10, "the dropped upload's cleanup")


def test_a_get_of_an_object_whose_only_replica_is_stale_exits_3_and_writes_nothing(grid, session, coll, tmp_path):
    path = f"{coll}/dropped.mseed"
    _drop_an_upload(grid, path, b"partial bytes")
    _wait_stale(session, path)
    with session.data_objects.open(path, "r") as f:      # the zone itself would serve them
        assert f.read() == b"partial bytes"
    target = tmp_path / "out"
    target.mkdir()
    result = subprocess.run([str(BIN / "secure-iget"), path, str(target)], env=command_env(grid, tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "stale" in lines[0] and "Traceback" not in result.stderr
    assert list(target.iterdir()) == []                 # no file, no temporary


def test_a_get_reads_the_good_replica_never_a_stale_one(grid, session, coll, tmp_path):
    """With the good replica's resource down, 4.3 votes for the stale one: the toolkit asked for the good
    replica by number, so it gets the zone's refusal (transient) and keeps nothing."""
    other = f"sr{uuid.uuid4().hex[:8]}"
    session.resources.create(other, "unixfilesystem", host="localhost", path=f"/ignored/{other}")
    path = f"{coll}/two"
    try:
        session.data_objects.open(path, "w").close()
        with session.data_objects.open(path, "w") as f:
            f.write(b"old content")
        session.data_objects.replicate(path, resource=other)
        with session.data_objects.open(path, "w", **{kw.RESC_NAME_KW: "demoResc"}) as f:
            f.write(b"new content")                          # demoResc good, the other replica stale
        session.data_objects.chksum(path)
        grid.set_faults(down=["demoResc"])
        with session.data_objects.open(path, "r") as f:
            assert f.read() == b"old content"                # what a plain get would take
        client = client_for(grid, tmp_path, attempts=2, deadline=3)
        with client, pytest.raises(TransientError):
            client.get(path, tmp_path / "two")
        assert not (tmp_path / "two").exists()
        grid.clear_faults()
        with client_for(grid, tmp_path) as client:
            client.get(path, tmp_path / "two")
        assert (tmp_path / "two").read_bytes() == b"new content"
    finally:
        grid.clear_faults()
        session.data_objects.unlink(path, force=True)
        session.resources.remove(other)


def test_a_get_of_an_object_being_written_is_transient(grid, session, coll, tmp_path):
    path = f"{coll}/busy"
    with grid.session() as writer:
        f = writer.data_objects.open(path, "w")
        f.write(b"being written")
        f.flush()
        client = client_for(grid, tmp_path, attempts=2, deadline=3)
        with client, pytest.raises(TransientError) as caught:
            client.get(path, tmp_path / "busy")
        assert "being written" in str(caught.value)
        f.close()
    with client_for(grid, tmp_path) as client:
        client.get(path, tmp_path / "busy")
    assert (tmp_path / "busy").read_bytes() == b"being written"


def test_a_forced_put_over_an_object_being_written_waits_for_the_writer(grid, session, coll, tmp_path):
    """The put finds the object being written (its stat, or the unlink before the rename meets
    LOCKED_DATA_OBJECT_ACCESS): retried as transient until the writer closes (here: at the second retry); the writer's lock is never broken, the put's bytes end as the object."""
    path = f"{coll}/target"
    local = tmp_path / "target"
    local.write_bytes(b"from the put")
    with grid.session() as writer:
        f = writer.data_objects.open(path, "w")
        f.write(b"from the writer")
        f.flush()
        retries = _CloseAfterRetries(f, 2)
        logging.getLogger("secure_irods").addHandler(retries)
        try:
            with client_for(grid, tmp_path, attempts=50, deadline=60) as client:
                client.put(local, path, force=True)
        finally:
            logging.getLogger("secure_irods").removeHandler(retries)
    assert len(retries.seen) >= 2, retries.seen
    assert all("being written" in m or "LOCKED_DATA_OBJECT_ACCESS" in m for m in retries.seen[:2]), retries.seen
    with session.data_objects.open(path, "r") as g:
        assert g.read() == b"from the put"
    assert [s for s, _, _ in remote_state(session, path)] == ["1"]


class _CloseAfterRetries(logging.Handler):
    """Counts the policy's retry warnings; closes the writer's handle at the ``n``-th."""

    def __init__(self, handle, n: int) -> None:
        super().__init__(logging.WARNING)
        self.writer, self.n, self.seen = handle, n, []

    def emit(self, record: logging.LogRecord) -> None:
        if "retry" in record.getMessage():
            self.seen.append(record.getMessage())
            if len(self.seen) == self.n:
                self.writer.close()


def test_stat_tells_stale_from_being_written(grid, session, coll, tmp_path):
    stale, busy = f"{coll}/stale", f"{coll}/busy2"
    _drop_an_upload(grid, stale, b"x")
    _wait_stale(session, stale)
    with grid.session() as writer, client_for(grid, tmp_path, attempts=1, deadline=2) as client:
        f = writer.data_objects.open(busy, "w")
        f.write(b"y")
        with pytest.raises(PermanentError):
            client.stat(stale)
        with pytest.raises(TransientError):
            client.stat(busy)
        f.close()


def test_a_client_with_a_ticket_reads_what_the_ticket_allows(grid, session, coll, tmp_path):
    """``connect(ticket=...)`` (``iget -t``): an anonymous user with a read ticket on a collection gets its
    objects; without the ticket, or outside it, the zone refuses."""
    import json

    from irods.models import User
    from irods.ticket import Ticket

    from secure_irods.client import connect
    from secure_irods.errors import NotFoundError, PermissionDeniedError

    session.data_objects.open(f"{coll}/shared.mseed", "w").close()
    with session.data_objects.open(f"{coll}/shared.mseed", "w") as f:
        f.write(b"open data")
    made = not list(session.query(User.name).filter(User.name == "anonymous"))
    if made:
        session.users.create("anonymous", "rodsuser")
    env = json.loads(grid.env_file.read_text()) | {"irods_user_name": "anonymous"}
    env_file = tmp_path / "anonymous.json"
    env_file.write_text(json.dumps(env))
    ticket = Ticket(session).issue("read", coll)
    try:
        with connect(env_file, throttle=False, cooldown=False, ticket=ticket.string) as client:
            client.get(f"{coll}/shared.mseed", tmp_path / "shared.mseed")
        assert (tmp_path / "shared.mseed").read_bytes() == b"open data"
        with connect(env_file, throttle=False, cooldown=False) as client:
            with pytest.raises((NotFoundError, PermissionDeniedError)):
                client.get(f"{coll}/shared.mseed", tmp_path / "again.mseed")
        assert not (tmp_path / "again.mseed").exists()
    finally:
        ticket.delete()
        if made:
            session.users.remove("anonymous")
