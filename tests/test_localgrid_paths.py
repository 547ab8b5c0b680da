"""Physical paths of replicas: a rename moves the files with the names, and a new replica never
lands on a file that is already there (iRODS's syncCollPhyPath, syncDataObjPhyPath and
resolveDupFilePath in server/core/src/physPath.cpp).

Real PRC over TCP.  The tests that set up a vault by hand (a file left where a new replica
would go, a replica registered outside the vault) need the local grid and are skipped on a zone.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from pathlib import Path

import irods.exception as ex
import irods.keywords as kw
import pytest
from irods.column import Like
from irods.models import Collection, DataObject


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def put_bytes(session, path: str, data: bytes, tmp_path: Path, **options) -> None:
    local = tmp_path / f"up-{hashlib.md5(path.encode()).hexdigest()}"
    local.write_bytes(data)
    session.data_objects.put(str(local), path, **{kw.REG_CHKSUM_KW: "", **options})


def read(session, path: str) -> bytes:
    with session.data_objects.open(path, "r") as f:
        return f.read()


def assert_intact(session, path: str, data: bytes) -> None:
    """The object reads back ``data`` and its replicas' files still match their registered checksum."""
    assert read(session, path) == data
    for replica in session.data_objects.get(path).replicas:
        assert replica.checksum == sha2(data)
    # ichksum -K: 4.3 answers nothing when every good replica verifies (CHECK_VERIFICATION_RESULTS otherwise)
    assert session.data_objects.chksum(path, **{kw.VERIFY_CHKSUM_KW: ""}) == ""


def vault_path(session, resource: str, logical: str) -> str:
    """Where the unixfilesystem graft scheme puts ``logical``: the vault plus the path without its zone."""
    vault = session.resources.get(resource).vault_path
    return os.path.join(vault, *logical.strip("/").split("/")[1:])


def data_path(session, path: str, resource: str = "demoResc") -> str:
    return next(r.path for r in session.data_objects.get(path).replicas if r.resource_name == resource)


def local_grid(grid):
    if not grid.local:
        pytest.skip("sets up the vault and catalogue of the local grid by hand")
    return grid


def register_at(grid, session, logical: str, new_path: str) -> None:
    """Move a replica's file to ``new_path`` and register it there, as an older grid (or `ireg`) leaves it."""
    old = data_path(session, logical)
    Path(new_path).parent.mkdir(parents=True, exist_ok=True)
    os.replace(old, new_path)
    with sqlite3.connect(grid.root / "catalog.sqlite") as db:
        db.execute("UPDATE r_data_main SET data_path=? WHERE data_path=?", (new_path, old))


def test_renamed_collection_keeps_its_bytes_when_the_old_path_is_reused(session, coll, tmp_path):
    first, second = os.urandom(70_000), os.urandom(50_000)
    a, b = f"{coll}/A", f"{coll}/B"
    session.collections.create(f"{a}/sub")
    put_bytes(session, f"{a}/x", first, tmp_path)
    put_bytes(session, f"{a}/sub/y", first[:999], tmp_path)
    session.collections.move(a, b)
    assert data_path(session, f"{b}/x") == vault_path(session, "demoResc", f"{b}/x")
    assert data_path(session, f"{b}/sub/y") == vault_path(session, "demoResc", f"{b}/sub/y")
    session.collections.create(f"{a}/sub")
    put_bytes(session, f"{a}/x", second, tmp_path)
    put_bytes(session, f"{a}/sub/y", second[:999], tmp_path)
    assert_intact(session, f"{b}/x", first)
    assert_intact(session, f"{b}/sub/y", first[:999])
    assert_intact(session, f"{a}/x", second)
    assert_intact(session, f"{a}/sub/y", second[:999])


@pytest.mark.parametrize("what", ["collection", "data object"])
def test_trashed_object_keeps_its_bytes_when_its_path_is_reused(session, coll, tmp_path, what):
    first, second = os.urandom(30_000), os.urandom(20_000)
    a = f"{coll}/A"
    session.collections.create(a)
    put_bytes(session, f"{a}/x", first, tmp_path)
    if what == "collection":
        session.collections.remove(a, recurse=True)            # no force: to the trash
        session.collections.create(a)
    else:
        session.data_objects.unlink(f"{a}/x")                  # no force: to the trash
    put_bytes(session, f"{a}/x", second, tmp_path)
    trashed = session.query(Collection.name, DataObject.name).filter(
        Like(Collection.name, f"%/trash/home/%/{coll.rsplit('/', 1)[1]}/A%"), DataObject.name == "x").all()
    assert len(trashed) == 1
    in_trash = f"{trashed[0][Collection.name]}/x"
    try:
        assert data_path(session, in_trash) == vault_path(session, "demoResc", in_trash)
        assert_intact(session, in_trash, first)
        assert_intact(session, f"{a}/x", second)
    finally:
        session.data_objects.unlink(in_trash, force=True)


def test_a_registered_file_where_a_new_object_goes_is_not_overwritten(grid, session, coll, tmp_path):
    """A grid left with B/x's file at A/x's path (what renames did before): a new A/x goes elsewhere."""
    local_grid(grid)
    first, second = os.urandom(40_000), os.urandom(10_000)
    session.collections.create(f"{coll}/A")
    put_bytes(session, f"{coll}/B", first, tmp_path)
    taken = vault_path(session, "demoResc", f"{coll}/A/x")
    register_at(grid, session, f"{coll}/B", taken)
    put_bytes(session, f"{coll}/A/x", second, tmp_path)
    assert data_path(session, f"{coll}/B") == taken
    assert data_path(session, f"{coll}/A/x") == taken + ".0"     # resolveDupFilePath's ".<replica number>"
    assert_intact(session, f"{coll}/B", first)
    assert_intact(session, f"{coll}/A/x", second)
    put_bytes(session, f"{coll}/A/x", second[::-1], tmp_path)    # an overwrite keeps the path it has
    assert data_path(session, f"{coll}/A/x") == taken + ".0"
    assert_intact(session, f"{coll}/B", first)


def test_an_unregistered_file_where_a_new_object_goes_is_left_alone(grid, session, coll, tmp_path):
    local_grid(grid)
    stray = Path(vault_path(session, "demoResc", f"{coll}/x"))
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"nobody's bytes")
    put_bytes(session, f"{coll}/x", b"new object", tmp_path)
    assert stray.read_bytes() == b"nobody's bytes"
    assert data_path(session, f"{coll}/x") == f"{stray}.0"
    assert_intact(session, f"{coll}/x", b"new object")
    session.data_objects.copy(f"{coll}/x", f"{coll}/y")          # copy and replicate choose paths the same way
    assert_intact(session, f"{coll}/y", b"new object")


def test_replicate_does_not_overwrite_a_registered_file(grid, session, coll, tmp_path):
    local_grid(grid)
    other = f"pv{os.getpid()}"
    session.resources.create(other, "unixfilesystem", host="localhost", path=f"/{other}")
    first, second = os.urandom(9_000), os.urandom(8_000)
    put_bytes(session, f"{coll}/B", first, tmp_path, **{kw.DEST_RESC_NAME_KW: other})
    taken = vault_path(session, other, f"{coll}/x")
    old = data_path(session, f"{coll}/B", other)
    Path(taken).parent.mkdir(parents=True, exist_ok=True)
    os.replace(old, taken)
    with sqlite3.connect(grid.root / "catalog.sqlite") as db:
        db.execute("UPDATE r_data_main SET data_path=? WHERE data_path=?", (taken, old))
    put_bytes(session, f"{coll}/x", second, tmp_path)
    session.data_objects.replicate(f"{coll}/x", resource=other)
    assert data_path(session, f"{coll}/x", other) == taken + ".1"
    assert_intact(session, f"{coll}/B", first)
    assert_intact(session, f"{coll}/x", second)


def test_a_replica_outside_the_vault_keeps_its_path_through_a_rename(grid, session, coll, tmp_path):
    local_grid(grid)
    data = os.urandom(5_000)
    session.collections.create(f"{coll}/A")
    put_bytes(session, f"{coll}/A/x", data, tmp_path)
    outside = str(grid.root / "elsewhere" / f"{coll.rsplit('/', 1)[1]}-x")
    register_at(grid, session, f"{coll}/A/x", outside)
    session.collections.move(f"{coll}/A", f"{coll}/B")
    assert data_path(session, f"{coll}/B/x") == outside
    assert_intact(session, f"{coll}/B/x", data)


def test_renaming_onto_a_registered_file_moves_the_replica_elsewhere(grid, session, coll, tmp_path):
    """C renamed to A while B/x's file sits at A/x's path: C/x's file goes beside it, not over it."""
    local_grid(grid)
    first, second = os.urandom(6_000), os.urandom(7_000)
    put_bytes(session, f"{coll}/B", first, tmp_path)
    taken = vault_path(session, "demoResc", f"{coll}/A/x")
    register_at(grid, session, f"{coll}/B", taken)
    session.collections.create(f"{coll}/C")
    put_bytes(session, f"{coll}/C/x", second, tmp_path)
    session.collections.move(f"{coll}/C", f"{coll}/A")
    assert data_path(session, f"{coll}/A/x") == taken + ".0"
    assert_intact(session, f"{coll}/B", first)
    assert_intact(session, f"{coll}/A/x", second)


def test_a_rename_that_cannot_move_every_file_changes_nothing(grid, session, coll, tmp_path):
    """The second file cannot move (a plain file sits where its directory must go): the first one comes back and
    the catalogue still has the old names, as a rolled-back rename must leave them."""
    local_grid(grid)
    first, second = os.urandom(3_000), os.urandom(4_000)
    session.collections.create(f"{coll}/A/sub")
    put_bytes(session, f"{coll}/A/x", first, tmp_path)
    put_bytes(session, f"{coll}/A/sub/y", second, tmp_path)
    blocker = Path(vault_path(session, "demoResc", f"{coll}/B/sub"))
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"in the way")
    with pytest.raises(ex.UNIX_FILE_RENAME_ERR):
        session.collections.move(f"{coll}/A", f"{coll}/B")
    assert not session.collections.exists(f"{coll}/B")
    assert data_path(session, f"{coll}/A/x") == vault_path(session, "demoResc", f"{coll}/A/x")
    assert not os.path.exists(vault_path(session, "demoResc", f"{coll}/B/x"))
    assert_intact(session, f"{coll}/A/x", first)
    assert_intact(session, f"{coll}/A/sub/y", second)
    assert blocker.read_bytes() == b"in the way"


def test_an_object_open_for_writing_while_its_collection_is_renamed_closes_good(grid, session, coll):
    """The file moves under the open descriptor: the writes land in it and the checksum at close is of its bytes."""
    session.collections.create(f"{coll}/A")
    with session.data_objects.open(f"{coll}/A/x", "w", **{kw.REG_CHKSUM_KW: ""}) as f:
        f.write(b"hello world")
        with grid.session() as other:
            other.collections.move(f"{coll}/A", f"{coll}/B")
        f.seek(0)                 # not a sequential write: the checksum is computed from the file at close
        f.write(b"J")
    assert_intact(session, f"{coll}/B/x", b"Jello world")
    assert data_path(session, f"{coll}/B/x") == vault_path(session, "demoResc", f"{coll}/B/x")
