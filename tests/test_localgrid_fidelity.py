"""Where the toolkit's safety depends on the server, the grid answers as iRODS 4.3 does (issue 21).

Each test names the server source it follows; each failed on the grid before it did.
"""

from __future__ import annotations

import os
import uuid

import irods.exception as ex
import irods.keywords as kw
import pytest
from irods.manager.data_object_manager import Server_Checksum_Warning
from irods.message import RErrorStack
from irods.models import Collection, DataObject

from helpers import wait_for
from test_localgrid import put_bytes, sha2

INTERMEDIATE_REPLICA_ACCESS = -405000


def statuses(session, path: str) -> dict[str, str]:
    """Replica status per resource, as GenQuery reports it (DATA_REPL_STATUS)."""
    parent, name = path.rsplit("/", 1)
    rows = session.query(DataObject.resource_name, DataObject.replica_status) \
        .filter(Collection.name == parent).filter(DataObject.name == name)
    return {r[DataObject.resource_name]: str(r[DataObject.replica_status]) for r in rows}


@pytest.fixture
def two_replicas(grid, session, coll, tmp_path):
    """An object with a good replica on demoResc and another on a second unixfilesystem resource."""
    other = f"fid{uuid.uuid4().hex[:8]}"
    session.resources.create(other, "unixfilesystem", host="localhost", path=f"/ignored/{other}")
    path = f"{coll}/locked"
    put_bytes(session, path, b"first", tmp_path)
    session.data_objects.replicate(path, resource=other)
    yield path, other
    try:
        session.data_objects.unlink(path, force=True)
    finally:
        session.resources.remove(other)


def test_a_replica_open_for_writing_locks_the_object(grid, session, two_replicas):
    """logical_locking.cpp: the writer's replica is intermediate, its siblings write-locked; a second writer,
    unlink, trim, replicate and a read of the locked replicas are refused until the writer closes."""
    path, other = two_replicas
    with grid.session() as second:
        f = session.data_objects.open(path, "w", **{kw.RESC_NAME_KW: "demoResc"})
        try:
            f.write(b"second")
            assert statuses(session, path) == {"demoResc": "2", other: "4"}
            with pytest.raises(KeyError) as caught:     # PRC has no class for this 4.3 code: it raises KeyError(code)
                second.data_objects.open(path, "w", **{kw.RESC_NAME_KW: "demoResc"}).close()
            assert caught.value.args == (INTERMEDIATE_REPLICA_ACCESS,)
            with pytest.raises(ex.LOCKED_DATA_OBJECT_ACCESS):
                second.data_objects.open(path, "w", **{kw.RESC_NAME_KW: other}).close()
            with pytest.raises(ex.LOCKED_DATA_OBJECT_ACCESS):
                second.data_objects.unlink(path, force=True)
            with pytest.raises(ex.LOCKED_DATA_OBJECT_ACCESS):
                second.data_objects.trim(path, **{kw.COPIES_KW: "1", kw.RESC_NAME_KW: other})
            with pytest.raises(ex.LOCKED_DATA_OBJECT_ACCESS):
                second.data_objects.replicate(path, **{kw.UPDATE_REPL_KW: ""})
            with pytest.raises(ex.HIERARCHY_ERROR):     # no replica votes above zero for a read
                second.data_objects.open(path, "r").close()
            with pytest.raises(ex.SYS_REPLICA_INACCESSIBLE):
                second.data_objects.chksum(path)
        finally:
            f.close()
    # the write changed the object: its sibling is now stale, the writer's replica good
    assert statuses(session, path) == {"demoResc": "1", other: "0"}
    with session.data_objects.open(path, "r") as f:
        assert f.read() == b"second"


def test_a_writer_that_closes_without_writing_restores_its_siblings(session, two_replicas):
    path, other = two_replicas
    session.data_objects.open(path, "a", **{kw.RESC_NAME_KW: "demoResc"}).close()
    assert statuses(session, path) == {"demoResc": "1", other: "1"}


def test_a_dropped_writer_releases_the_lock(grid, session, two_replicas):
    """The agent's cleanup of a connection that ends with a replica open: that replica stale, siblings
    back to what they were, and the object open to the next writer."""
    path, other = two_replicas
    with grid.session() as writer:
        f = writer.data_objects.open(path, "w", auto_close=False, **{kw.RESC_NAME_KW: "demoResc"})
        f.write(b"half")
        f.flush()
        assert statuses(session, path) == {"demoResc": "2", other: "4"}
        writer.cleanup()        # the connection ends without a close
    wait_for(lambda: statuses(session, path) == {"demoResc": "0", other: "1"}, 10, "the agent's cleanup",
             describe=lambda: statuses(session, path))
    with session.data_objects.open(path, "w", **{kw.RESC_NAME_KW: other}) as f:
        f.write(b"again")
    assert statuses(session, path) == {"demoResc": "0", other: "1"}


def test_the_only_replica_stale_is_served(grid, session, coll):
    """voting.cpp: a stale replica votes low, not zero; after a dropped upload 4.3 serves its partial bytes."""
    path = f"{coll}/dropped"
    with grid.session() as writer:
        f = writer.data_objects.open(path, "w", auto_close=False)
        f.write(b"partial")
        f.flush()
        writer.cleanup()
    wait_for(lambda: statuses(session, path) == {"demoResc": "0"}, 10, "the agent's cleanup",
             describe=lambda: statuses(session, path))
    with session.data_objects.open(path, "r") as f:
        assert f.read() == b"partial"


def test_a_failed_verification_on_close_leaves_the_replica_stale_with_its_checksum(session, coll):
    """rsDataObjClose.cpp: the mismatch is recorded (stale, computed checksum) before it is reported."""
    path = f"{coll}/verify"
    f = session.data_objects.open(path, "w", **{kw.VERIFY_CHKSUM_KW: sha2(b"something else")})
    f.write(b"content")
    with pytest.raises(ex.USER_CHKSUM_MISMATCH):
        f.close()
    obj = session.data_objects.get(path)
    assert [(r.status, r.checksum) for r in obj.replicas] == [("0", sha2(b"content"))]


def test_checksum_verification_reports_and_never_writes(grid, session, coll, tmp_path):
    """rsDataObjChksum.cpp's do_verification: CHECK_VERIFICATION_RESULTS with a JSON list of findings over
    every good replica; a replica without a checksum is reported, not given one."""
    path = f"{coll}/nosum"
    put_bytes(session, path, b"abc", tmp_path)
    with pytest.raises(Server_Checksum_Warning) as caught:
        session.data_objects.chksum(path, r_error=RErrorStack(), **{kw.VERIFY_CHKSUM_KW: ""})
    assert [f["error_code"] for f in _findings(caught.value)] == [-862000]          # CAT_NO_CHECKSUM_FOR_REPLICA
    assert session.data_objects.get(path).replicas[0].checksum in (None, "")
    # a replica whose bytes changed under the catalogue: an error finding, and still nothing written
    session.data_objects.chksum(path)
    phys = session.data_objects.get(path).replicas[0].path
    if not os.path.exists(phys):
        pytest.skip("replica files are not reachable from this client")
    with open(phys, "wb") as out:
        out.write(b"abd")
    with pytest.raises(Server_Checksum_Warning) as caught:
        session.data_objects.chksum(path, r_error=RErrorStack(), **{kw.VERIFY_CHKSUM_KW: ""})
    assert -314000 in [f["error_code"] for f in _findings(caught.value)]    # USER_CHKSUM_MISMATCH
    assert session.data_objects.get(path).replicas[0].checksum == sha2(b"abc")


def _findings(warning: Server_Checksum_Warning) -> list[dict]:
    """The JSON list the server sent with CHECK_VERIFICATION_RESULTS, as PRC hands it over."""
    return warning.response


def test_a_collection_outside_every_zone_is_refused(grid, session):
    """rsCollCreate.cpp: validate_logical_path wants a zone's name at the root of the path."""
    with pytest.raises(ex.SYS_INVALID_INPUT_PARAM):
        session.collections.create(f"/otherZone{uuid.uuid4().hex[:6]}/x", recurse=True)
    with pytest.raises(ex.SYS_INVALID_INPUT_PARAM):
        session.collections.create("/nozone")


def test_a_dry_run_resource_removal_removes_nothing(session):
    """rsGeneralAdmin.cpp: `iadmin rmresc --dryrun` checks and keeps the resource."""
    name = f"dry{uuid.uuid4().hex[:8]}"
    session.resources.create(name, "unixfilesystem", host="localhost", path=f"/ignored/{name}")
    session.resources.remove(name, test=True)
    assert session.resources.get(name).name == name
    session.resources.remove(name)
    with pytest.raises(ex.ResourceDoesNotExist):
        session.resources.get(name)


def test_a_rodsuser_calling_the_admin_api_gets_the_servers_privilege_error(grid, session):
    """apiTable.hpp: GENERAL_ADMIN_AN needs LOCAL_PRIV_USER_AUTH; rsApiHandler.cpp answers SYS_NO_API_PRIV."""
    name = f"plain{uuid.uuid4().hex[:6]}"
    session.users.create_with_password(name, "plain-secret")
    try:
        with grid.session(user=name, password="plain-secret") as plain:
            with pytest.raises(ex.SYS_NO_API_PRIV):
                plain.resources.create(f"r{name}", "unixfilesystem", host="localhost", path="/ignored/x")
    finally:
        session.users.remove(name)


def test_genquery_orders_only_by_what_the_server_orders_by(session, coll, tmp_path):
    """general_query.cpp: the requested ORDER_BY columns in select order, then collection, data name and
    replica number when selected; a query selecting only a size is not sorted by it."""
    from irods.models import Collection as C, DataObject as D
    for name, size in (("b", 3), ("a", 1), ("c", 2)):
        put_bytes(session, f"{coll}/{name}", b"x" * size, tmp_path)
    rows = list(session.query(D.size, D.name).filter(C.name == coll))
    assert [r[D.name] for r in rows] == ["a", "b", "c"]            # by data name, not by size first
    rows = list(session.query(D.name, D.size).filter(C.name == coll).order_by(D.size, order="desc"))
    assert [r[D.name] for r in rows] == ["b", "c", "a"]


def test_tickets_grant_reading_within_their_limits(grid, session, coll, tmp_path):
    """rsTicketAdmin.cpp / chlModTicket: a read ticket on a collection lets another user list and read what is
    below it and nothing else, within its uses; the ticket columns answer GenQuery."""
    from irods.models import TicketQuery
    from irods.ticket import Ticket

    put_bytes(session, f"{coll}/t1", b"ticketed", tmp_path)
    name = f"tk{uuid.uuid4().hex[:6]}"
    session.users.create_with_password(name, "tk-secret")
    ticket = Ticket(session).issue("read", coll)
    try:
        row = session.query(TicketQuery.Ticket, TicketQuery.Owner).filter(
            TicketQuery.Ticket.string == ticket.string).one()
        assert row[TicketQuery.Ticket.type] == "read" and row[TicketQuery.Owner.name] == session.username
        with grid.session(user=name, password="tk-secret") as other:
            with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
                other.data_objects.open(f"{coll}/t1", "r").close()
            Ticket(other, ticket.string).supply()
            assert [r[DataObject.name] for r in other.query(DataObject.name).filter(Collection.name == coll)] == ["t1"]
            with other.data_objects.open(f"{coll}/t1", "r") as f:
                assert f.read() == b"ticketed"
            with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):     # a read ticket does not write
                other.data_objects.open(f"{coll}/t1", "w").close()
        ticket.modify("uses", "1")
        with grid.session(user=name, password="tk-secret") as other:
            Ticket(other, ticket.string).supply()
            with pytest.raises(ex.CAT_TICKET_USES_EXCEEDED):
                other.data_objects.open(f"{coll}/t1", "r").close()
    finally:
        ticket.delete()
        session.users.remove(name)
    assert list(session.query(TicketQuery.Ticket).filter(TicketQuery.Ticket.string == ticket.string)) == []


def test_deferred_and_compound_resources(session, coll, tmp_path):
    """A `deferred` parent over unixfilesystem children takes writes (the first child's vote); a `compound`
    resource writes its `cache` child and copies the replica to its `archive` child on close."""
    tag = uuid.uuid4().hex[:6]
    made = []
    try:
        for parent, kind in ((f"def{tag}", "deferred"), (f"cmp{tag}", "compound")):
            session.resources.create(parent, kind)
            made.append(parent)
            for child, context in ((f"{parent}a", "cache"), (f"{parent}b", "archive")):
                session.resources.create(child, "unixfilesystem", host="localhost", path=f"/ignored/{child}")
                made.append(child)
                session.resources.add_child(parent, child, context)
        put_bytes(session, f"{coll}/deferred", b"d", tmp_path, **{kw.DEST_RESC_NAME_KW: f"def{tag}"})
        assert statuses(session, f"{coll}/deferred") == {f"def{tag}a": "1"}
        put_bytes(session, f"{coll}/compound", b"c", tmp_path, **{kw.DEST_RESC_NAME_KW: f"cmp{tag}"})
        assert statuses(session, f"{coll}/compound") == {f"cmp{tag}a": "1", f"cmp{tag}b": "1"}
    finally:
        for path in (f"{coll}/deferred", f"{coll}/compound"):
            try:
                session.data_objects.unlink(path, force=True)
            except ex.iRODSException:
                pass
        for name in reversed(made):
            if name.endswith(("a", "b")):
                session.resources.remove_child(name[:-1], name)
            session.resources.remove(name)


def test_minimum_free_space_refuses_a_new_replica(session, coll, tmp_path):
    """voting.cpp: free_space minus minimum_free_space_for_create_in_bytes below the size: USER_FILE_TOO_LARGE."""
    name = f"fs{uuid.uuid4().hex[:6]}"
    session.resources.create(name, "unixfilesystem", host="localhost", path=f"/ignored/{name}")
    try:
        session.resources.get(name).modify("free_space", "10000")
        session.resources.get(name).modify("context", "minimum_free_space_for_create_in_bytes=8000")
        put_bytes(session, f"{coll}/fits", b"x" * 1000, tmp_path, **{kw.DEST_RESC_NAME_KW: name})
        with pytest.raises(ex.USER_FILE_TOO_LARGE):
            put_bytes(session, f"{coll}/too-big", b"x" * 3000, tmp_path, **{kw.DEST_RESC_NAME_KW: name})
        assert not session.data_objects.exists(f"{coll}/too-big")
        session.data_objects.unlink(f"{coll}/fits", force=True)
    finally:
        session.resources.remove(name)


def test_a_read_of_a_locked_replica_answers_as_resolve_hierarchy_does(grid, session, two_replicas):
    """By number: SYS_REPLICA_INACCESSIBLE ("voted 0.0"); by full hierarchy: the lock's own error."""
    path, other = two_replicas
    with grid.session() as second:
        f = session.data_objects.open(path, "w", **{kw.RESC_NAME_KW: "demoResc"})
        try:
            number = {r.resource_name: r.number for r in session.data_objects.get(path).replicas}
            with pytest.raises(ex.SYS_REPLICA_INACCESSIBLE):
                second.data_objects.open(path, "r", **{kw.REPL_NUM_KW: str(number[other])}).close()
            with pytest.raises(ex.LOCKED_DATA_OBJECT_ACCESS):
                second.data_objects.open(path, "r", **{kw.RESC_HIER_STR_KW: other}).close()
        finally:
            f.close()
