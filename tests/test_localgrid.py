"""The local grid as python-irodsclient sees it: real PRC over TCP, the same calls as on a zone."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
from collections import Counter

import irods.exception as ex
import irods.keywords as kw
import pytest
from irods.column import Like
from irods.models import Collection, DataObject, DataObjectMeta, Resource

from helpers import start_grid


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def put_bytes(session, path: str, data: bytes, tmp_path, **options) -> None:
    local = tmp_path / f"up-{hashlib.md5(path.encode()).hexdigest()}"
    local.write_bytes(data)
    session.data_objects.put(str(local), path, **options)


@pytest.mark.parametrize("size", [1024, 40 * 1024 * 1024], ids=["1KiB", "40MiB-parallel"])
def test_round_trip_is_byte_identical(session, coll, tmp_path, size):
    data = os.urandom(size)
    put_bytes(session, f"{coll}/blob", data, tmp_path, **{kw.REG_CHKSUM_KW: ""})
    back = tmp_path / "back"
    session.data_objects.get(f"{coll}/blob", str(back))
    assert back.read_bytes() == data
    obj = session.data_objects.get(f"{coll}/blob")
    assert obj.size == size
    assert obj.checksum == sha2(data)
    assert [r.status for r in obj.replicas] == ["1"]


def test_checksum_api_matches_hashlib(session, coll, tmp_path):
    data = os.urandom(300_000)
    put_bytes(session, f"{coll}/c", data, tmp_path)
    obj = session.data_objects.get(f"{coll}/c")
    assert obj.checksum is None          # not computed unless asked, as iput without -k
    assert obj.chksum() == sha2(data)
    assert session.data_objects.get(f"{coll}/c").checksum == sha2(data)


def test_open_read_write_seek(session, coll):
    with session.data_objects.open(f"{coll}/f", "w") as f:
        f.write(b"hello world")
    with session.data_objects.open(f"{coll}/f", "r+") as f:
        f.seek(6)
        f.write(b"there")
    with session.data_objects.open(f"{coll}/f", "r") as f:
        f.seek(-5, os.SEEK_END)
        assert f.read() == b"there"
        f.seek(0)
        assert f.read(5) == b"hello"


def test_avu_add_query_remove(session, coll):
    obj = session.data_objects.create(f"{coll}/m")
    obj.metadata.add("station", "SSB", "code")
    obj.metadata.add("sampling_rate", "100")
    found = session.query(DataObject.name).filter(DataObjectMeta.name == "station",
                                                  DataObjectMeta.value == "SSB").all()
    assert [r[DataObject.name] for r in found] == ["m"]
    assert sorted((m.name, m.value, m.units) for m in obj.metadata.items()) == \
        [("sampling_rate", "100", None), ("station", "SSB", "code")]
    obj.metadata.remove("station", "SSB", "code")
    assert [m.name for m in session.data_objects.get(f"{coll}/m").metadata.items()] == ["sampling_rate"]
    col = session.collections.get(coll)
    col.metadata.set("campaign", "whisper")
    col.metadata.set("campaign", "noise")
    assert [(m.name, m.value) for m in col.metadata.items()] == [("campaign", "noise")]


def test_genquery_paging_returns_every_row_once(session, coll):
    names = [f"obj{i:05d}" for i in range(2000)]
    for name in names:
        session.data_objects.create(f"{coll}/{name}")
    query = session.query(DataObject.name, DataObject.size).filter(Collection.name == coll)
    batches = list(query.get_batches())
    assert len(batches) == 4                      # PRC asks 500 rows a batch
    rows = [r[DataObject.name] for b in batches for r in b]
    assert sorted(rows) == names and len(rows) == len(set(rows))
    assert len(session.query(DataObject.name).filter(Collection.name == coll).limit(7).execute()) == 7
    counted = session.query(DataObject.id).filter(Collection.name == coll).count(DataObject.id).execute()
    assert int(next(iter(counted))[DataObject.id]) == 2000
    liked = session.query(DataObject.name).filter(Collection.name == coll, Like(DataObject.name, "obj0199%")).all()
    assert {r[DataObject.name] for r in liked} == {"obj01990", "obj01991", "obj01992", "obj01993", "obj01994",
                                                  "obj01995", "obj01996", "obj01997", "obj01998", "obj01999"}
    ordered = session.query(DataObject.name).filter(Collection.name == coll).order_by(DataObject.name, "desc")
    assert next(iter(ordered.limit(1).execute()))[DataObject.name] == "obj01999"


def test_real_zone_exception_classes(grid, session, coll, tmp_path):
    with pytest.raises(ex.DataObjectDoesNotExist):
        session.data_objects.get(f"{coll}/missing")
    with pytest.raises(ex.OBJ_PATH_DOES_NOT_EXIST):
        session.data_objects.get(f"{coll}/missing", str(tmp_path / "x"))
    with pytest.raises(ex.CollectionDoesNotExist):
        session.collections.get(f"{coll}/nope")
    put_bytes(session, f"{coll}/exists", b"x", tmp_path)
    with pytest.raises(ex.OVERWRITE_WITHOUT_FORCE_FLAG):
        put_bytes(session, f"{coll}/exists", b"y", tmp_path, **{kw.FORCE_FLAG_KW: False})
    with pytest.raises(ex.CAT_NAME_EXISTS_AS_DATAOBJ):
        session.collections.create(f"{coll}/exists", recurse=False)
    session.collections.create(f"{coll}/sub")
    with pytest.raises(ex.CAT_NAME_EXISTS_AS_COLLECTION):
        session.collections.create(f"{coll}/sub", recurse=False)
    put_bytes(session, f"{coll}/other", b"z", tmp_path)
    with pytest.raises(ex.CAT_NAME_EXISTS_AS_DATAOBJ):
        session.data_objects.move(f"{coll}/other", f"{coll}/exists")
    with pytest.raises(ex.CAT_COLLECTION_NOT_EMPTY):
        session.collections.remove(coll, recurse=False)
    with pytest.raises(ex.CAT_INVALID_AUTHENTICATION):
        with grid.session(user=grid.env["irods_user_name"], password="not-the-password") as bad:
            bad.collections.get(grid.home)


def test_overwrite_rename_and_unlink(session, coll, tmp_path):
    put_bytes(session, f"{coll}/a", b"first", tmp_path)
    put_bytes(session, f"{coll}/a", b"second version", tmp_path)      # PRC 3.3 forces by default
    assert session.data_objects.get(f"{coll}/a").size == len(b"second version")
    session.data_objects.move(f"{coll}/a", f"{coll}/b")
    assert not session.data_objects.exists(f"{coll}/a")
    with session.data_objects.open(f"{coll}/b", "r") as f:
        assert f.read() == b"second version"
    session.collections.create(f"{coll}/d1/d2")
    session.collections.move(f"{coll}/d1", f"{coll}/e1")
    assert session.collections.exists(f"{coll}/e1/d2")
    session.data_objects.unlink(f"{coll}/b")                              # to the trash
    assert not session.data_objects.exists(f"{coll}/b")
    trash = session.query(DataObject.name, Collection.name).filter(Like(Collection.name, "%/trash/home/%"),
                                                                   DataObject.name == "b").all()
    assert len(trash) >= 1
    put_bytes(session, f"{coll}/c", b"gone", tmp_path)
    session.data_objects.unlink(f"{coll}/c", force=True)
    assert not session.data_objects.exists(f"{coll}/c")


def test_ordinary_user_and_acls(grid, session, coll, tmp_path):
    name = f"alice{os.getpid()}"
    session.users.create_with_password(name, "alice-secret")
    try:
        put_bytes(session, f"{coll}/private", b"secret bytes", tmp_path)
        with grid.session(user=name, password="alice-secret") as alice:
            seen = lambda: [r[DataObject.name] for r in alice.query(DataObject.name).filter(  # noqa: E731
                Collection.name == coll)]
            assert seen() == []                    # GenQuery hides what she may not read
            assert not alice.collections.exists(coll)
            with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
                with alice.data_objects.open(f"{coll}/private", "r") as f:
                    f.read()
            from irods.access import iRODSAccess
            session.acls.set(iRODSAccess("read", f"{coll}/private", name))
            assert seen() == ["private"]
            with alice.data_objects.open(f"{coll}/private", "r") as f:
                assert f.read() == b"secret bytes"
            with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
                alice.data_objects.unlink(f"{coll}/private", force=True)
            alice.collections.create(f"/{grid.zone}/home/{name}/mine")
            alice.collections.remove(f"/{grid.zone}/home/{name}/mine", force=True)
    finally:
        session.users.remove(name)


def _make_random_group(session, tag: str) -> list[str]:
    children = [f"{tag}_s{i}" for i in range(3)]
    session.resources.create(tag, "random")
    for child in children:
        session.resources.create(child, "unixfilesystem", host="localhost", path=f"/ignored/{child}")
        session.resources.add_child(tag, child)
    return children


def test_random_resource_spreads_writes(grid, session, coll):
    tag = f"site{os.getpid()}"
    children = _make_random_group(session, tag)
    for i in range(300):
        session.data_objects.create(f"{coll}/r{i:03d}", resource=tag)
    rows = session.query(DataObject.name, DataObject.resource_name, DataObject.resc_hier).filter(
        Collection.name == coll).all()
    spread = Counter(r[DataObject.resource_name] for r in rows)
    assert set(spread) == set(children)
    assert min(spread.values()) >= 0.2 * 300, spread
    assert all(r[DataObject.resc_hier].startswith(f"{tag};") for r in rows)


def test_replicate_and_trim_keep_a_good_replica(grid, session, coll, tmp_path):
    tag = f"grp{os.getpid()}"
    _make_random_group(session, tag)
    data = os.urandom(4096)
    put_bytes(session, f"{coll}/rep", data, tmp_path, **{kw.REG_CHKSUM_KW: ""})
    obj = session.data_objects.get(f"{coll}/rep")
    obj.replicate(resource=tag)
    obj = session.data_objects.get(f"{coll}/rep")
    assert len(obj.replicas) == 2 and all(r.status == "1" for r in obj.replicas)
    assert {r.checksum for r in obj.replicas} == {sha2(data)}
    obj.trim(**{kw.COPIES_KW: "1", kw.RESC_NAME_KW: "demoResc"})
    obj = session.data_objects.get(f"{coll}/rep")
    assert [r.resource_name for r in obj.replicas] != ["demoResc"] and len(obj.replicas) == 1
    obj.trim(**{kw.COPIES_KW: "1"})                # never below one good copy
    obj = session.data_objects.get(f"{coll}/rep")
    assert len(obj.replicas) == 1 and obj.replicas[0].status == "1"
    with session.data_objects.open(f"{coll}/rep", "r") as f:
        assert f.read() == data


def test_overwrite_marks_other_replicas_stale_and_a_stale_one_is_served_when_no_good_one_is_up(grid, session, coll,
                                                                                              tmp_path):
    """voting.cpp: a stale replica votes low but not zero, so 4.3 serves it when the good one is down."""
    tag = f"st{os.getpid()}"
    _make_random_group(session, tag)
    put_bytes(session, f"{coll}/s", b"old", tmp_path)
    session.data_objects.replicate(f"{coll}/s", resource=tag)
    with session.data_objects.open(f"{coll}/s", "w", **{kw.RESC_NAME_KW: "demoResc"}) as f:
        f.write(b"new")
    obj = session.data_objects.get(f"{coll}/s")
    status = {r.resource_name: r.status for r in obj.replicas}
    assert status["demoResc"] == "1" and sorted(status.values()) == ["0", "1"]
    with session.data_objects.open(f"{coll}/s", "r") as f:
        assert f.read() == b"new"                     # the good replica wins the vote while it is up
    grid.set_faults(down=["demoResc"])
    try:
        with session.data_objects.open(f"{coll}/s", "r") as f:
            assert f.read() == b"old"                 # the only replica up is stale: served, as 4.3 does
    finally:
        grid.clear_faults()
    session.data_objects.replicate(f"{coll}/s", **{kw.UPDATE_REPL_KW: ""})
    obj = session.data_objects.get(f"{coll}/s")
    assert {r.status for r in obj.replicas} == {"1"}


@pytest.mark.faults
def test_connection_cap_refuses_the_next_connection(grid, coll):
    grid.set_faults(max_connections=0)
    grid.control.reset_stats()
    active = grid.control.stats()["active"]
    cap = active + 3
    grid.set_faults(max_connections=cap)
    sessions = [grid.session() for _ in range(3)]
    try:
        for s in sessions:
            s.collections.get(grid.home)          # each holds one connection
        extra = grid.session()
        with pytest.raises((KeyError, ex.NetworkException)) as info:  # PRC 3.3 has no class for -118000
            extra.collections.get(grid.home)
        if isinstance(info.value, KeyError):
            assert info.value.args[0] == -118000
        assert grid.control.stats()["refused"] >= 1
    finally:
        grid.clear_faults()
        for s in sessions:
            s.cleanup()


@pytest.mark.faults
def test_dropped_uploads_never_leave_a_good_partial_replica(grid, coll, tmp_path):
    data = os.urandom(3 * 8 * 1024 * 1024 + 123)          # four WRITE messages
    local = tmp_path / "big"
    local.write_bytes(data)
    grid.set_faults(drop_rate=0.35, seed=7)
    outcomes = Counter()
    try:
        for i in range(12):
            with grid.session() as s:
                s.connection_timeout = 10
                try:
                    s.data_objects.put(str(local), f"{coll}/d{i}", num_threads=1)
                    outcomes["ok"] += 1
                except Exception:
                    outcomes["dropped"] += 1
    finally:
        grid.clear_faults()
    assert outcomes["dropped"] > 0, outcomes
    with grid.session() as s:
        for row in s.query(DataObject.name, DataObject.size, DataObject.replica_status).filter(Collection.name == coll):
            if row[DataObject.replica_status] == "1":
                assert row[DataObject.size] == len(data)
                with s.data_objects.open(f"{coll}/{row[DataObject.name]}", "r") as f:
                    assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()


@pytest.mark.faults
def test_bad_bytes_on_the_socket_leave_the_server_serving(grid, session):
    garbage = [b"\x00\x00\x00\x10not xml at all!!", struct.pack(">i", 2 ** 30), b"GET / HTTP/1.1\r\n\r\n",
               struct.pack(">i", -5), os.urandom(4096)]
    for payload in garbage:
        with socket.create_connection((grid.host, grid.port), timeout=5) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(100)
            except OSError:
                pass
    # a header that claims a body which never comes, then the peer leaves
    with socket.create_connection((grid.host, grid.port), timeout=5) as s:
        head = b"<MsgHeader_PI><type>RODS_CONNECT</type><msgLen>9999</msgLen><errorLen>0</errorLen>" \
               b"<bsLen>0</bsLen><intInfo>0</intInfo></MsgHeader_PI>"
        s.sendall(struct.pack(">i", len(head)) + head + b"<Startup")
    assert session.collections.get(grid.home).name == grid.home.rsplit("/", 1)[1]


def test_sixty_four_concurrent_clients(grid, coll):
    errors, done = [], []

    def client(i: int) -> None:
        try:
            with grid.session() as s:
                with s.data_objects.open(f"{coll}/c{i}", "w") as f:
                    f.write(str(i).encode() * 1000)
                with s.data_objects.open(f"{coll}/c{i}", "r") as f:
                    assert f.read() == str(i).encode() * 1000
                done.append(i)
        except Exception as exc:   # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(done) == 64


def test_restart_keeps_everything(tmp_path):
    root = tmp_path / "persist"
    first = start_grid(root)
    try:
        with first.session() as s:
            s.collections.create(f"{first.home}/kept/deep")
            local = tmp_path / "f"
            local.write_bytes(b"persistent bytes")
            s.data_objects.put(str(local), f"{first.home}/kept/deep/f", **{kw.REG_CHKSUM_KW: ""})
            s.data_objects.get(f"{first.home}/kept/deep/f").metadata.add("k", "v")
            s.resources.create("extraResc", "unixfilesystem", host="localhost", path="/x")
            s.data_objects.replicate(f"{first.home}/kept/deep/f", resource="extraResc")
            unfinished = s.data_objects.open(f"{first.home}/kept/unfinished", "w")
            unfinished.write(b"half")
            unfinished.flush()            # still open when the server stops
            first.stop()
    finally:
        first.stop()
    second = start_grid(root)
    try:
        with second.session() as s:
            obj = s.data_objects.get(f"{second.home}/kept/deep/f")
            assert [(m.name, m.value) for m in obj.metadata.items()] == [("k", "v")]
            assert sorted(r.resource_name for r in obj.replicas) == ["demoResc", "extraResc"]
            assert obj.checksum == sha2(b"persistent bytes")
            with s.data_objects.open(obj.path, "r") as f:
                assert f.read() == b"persistent bytes"
            assert s.resources.get("extraResc").type == "unixfilesystem"
            assert [r.status for r in s.data_objects.get(f"{second.home}/kept/unfinished").replicas] == ["0"]
    finally:
        second.stop()


def test_legacy_authentication(grid, monkeypatch):
    import irods.client_configuration as cfg

    monkeypatch.setattr(cfg.legacy_auth, "force_legacy_auth", True)
    with grid.session() as s:
        assert s.collections.get(grid.home).path == grid.home


def test_resource_queries_and_status(session):
    rows = session.query(Resource.name, Resource.type).filter(Resource.name == "demoResc").all()
    assert [(r[Resource.name], r[Resource.type]) for r in rows] == [("demoResc", "unixfilesystem")]


@pytest.mark.faults
def test_dropped_parallel_uploads_leave_no_good_partial_replica(grid, coll, tmp_path):
    """PRC's >32 MiB put opens extra connections with a replica token; any of them dying poisons it."""
    data = os.urandom(40 * 1024 * 1024 + 5)
    local = tmp_path / "big"
    local.write_bytes(data)
    grid.set_faults(drop_rate=0.15, seed=3)
    failures = 0
    try:
        for i in range(6):
            with grid.session() as s:
                s.connection_timeout = 10
                try:
                    s.data_objects.put(str(local), f"{coll}/p{i}")
                except Exception:
                    failures += 1
    finally:
        grid.clear_faults()
    assert failures > 0
    with grid.session() as s:
        for row in s.query(DataObject.name, DataObject.size, DataObject.replica_status).filter(Collection.name == coll):
            if row[DataObject.replica_status] == "1":
                with s.data_objects.open(f"{coll}/{row[DataObject.name]}", "r") as f:
                    assert f.read() == data


def test_writing_through_another_resource_adds_a_replica_and_stales_the_rest(grid, session, coll, tmp_path):
    tag = f"nw{os.getpid()}"
    children = _make_random_group(session, tag)
    put_bytes(session, f"{coll}/w", b"random dater", tmp_path, **{kw.DEST_RESC_NAME_KW: "demoResc"})
    with session.data_objects.open(f"{coll}/w", "a", **{kw.DEST_RESC_NAME_KW: tag}) as f:
        f.seek(0, os.SEEK_END)
        f.write(b"z")
    obj = session.data_objects.get(f"{coll}/w")
    status = {r.resource_name: r.status for r in obj.replicas}
    assert status.pop("demoResc") == "0" and list(status.values()) == ["1"] and set(status) <= set(children)
    with session.data_objects.open(f"{coll}/w", "r") as f:
        assert f.read() == b"random daterz"
    with pytest.raises(ex.DIRECT_CHILD_ACCESS):          # a leaf inside a hierarchy is not addressable
        session.data_objects.open(f"{coll}/x", "w", **{kw.RESC_NAME_KW: children[0]})
    with pytest.raises(ex.SYS_INVALID_FILE_PATH):
        session.data_objects.create("relative-name")


def test_replication_resource_keeps_every_child_current(grid, session, coll, tmp_path):
    """A write to a `replication` resource ends with one good replica on each up child."""
    tag = f"rp{os.getpid()}"
    session.resources.create(tag, "replication")
    children = [f"{tag}_c{i}" for i in range(2)]
    for child in children:
        session.resources.create(child, "unixfilesystem", host="localhost", path=f"/{child}")
        session.resources.add_child(tag, child)
    first, second = os.urandom(5000), os.urandom(7000)
    put_bytes(session, f"{coll}/r", first, tmp_path, **{kw.DEST_RESC_NAME_KW: tag, kw.REG_CHKSUM_KW: ""})
    obj = session.data_objects.get(f"{coll}/r")
    assert sorted((r.resource_name, r.status, r.checksum) for r in obj.replicas) == \
        [(c, "1", sha2(first)) for c in children]
    put_bytes(session, f"{coll}/r", second, tmp_path, **{kw.DEST_RESC_NAME_KW: tag, kw.REG_CHKSUM_KW: ""})
    obj = session.data_objects.get(f"{coll}/r")
    assert sorted((r.resource_name, r.status, r.size) for r in obj.replicas) == [(c, "1", 7000) for c in children]
    grid.set_faults(down=[children[0]])
    try:
        with session.data_objects.open(f"{coll}/r", "r") as f:      # served by the other child
            assert f.read() == second
    finally:
        grid.clear_faults()
