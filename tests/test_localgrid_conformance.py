"""APIs and behaviours found missing by running python-irodsclient's own tests (scripts/prc_conformance.py).

Each test drives the grid through real PRC calls, as PRC's suite does, and checks what a
4.3 zone answers.
"""

from __future__ import annotations

import os
import time

import irods.exception as ex
import irods.keywords as kw
import pytest
from irods.meta import AVUOperation, iRODSMeta
from irods.models import Collection, CollectionMeta, DataObject, DataObjectMeta


def test_user_password_changes_by_admin_and_by_user(grid, session):
    """The v2-obfuscated passwords of `iadmin moduser ... password` and `ipasswd` decode to what was sent."""
    name = f"carol{os.getpid()}"
    session.users.create(name, "rodsuser")
    try:
        session.users.modify(name, "password", "apass")
        with grid.session(user=name, password="apass") as carol:
            carol.users.get(name).modify_password("apass", "a-new-and-longer-password")
        with grid.session(user=name, password="a-new-and-longer-password") as carol:
            assert carol.collections.get(f"/{grid.zone}/home/{name}").name == name
    finally:
        session.users.remove(name)


def test_removing_a_user_takes_its_empty_home_and_a_new_user_of_that_name_owns_a_fresh_one(grid, session):
    name = f"dave{os.getpid()}"
    for _ in range(2):
        session.users.create(name, "rodsuser")
        session.users.modify(name, "password", "dpass")
        with grid.session(user=name, password="dpass") as dave:
            dave.data_objects.create(f"/{grid.zone}/home/{name}/f").unlink(force=True)
        session.users.remove(name)
        assert not session.collections.exists(f"/{grid.zone}/home/{name}")


def test_rm_unused_avus(session, coll):
    from irods.test.helpers import remove_unused_metadata

    obj = session.data_objects.create(f"{coll}/unused")
    obj.metadata.add("orphan_attr", "v1")
    obj.metadata.remove("orphan_attr", "v1")
    remove_unused_metadata(session)   # GENERAL_ADMIN rm unusedAVUs, as PRC's teardowns call it
    assert not session.query(DataObjectMeta.id).filter(DataObjectMeta.name == "orphan_attr").all()


def test_atomic_metadata_operations(session, coll):
    obj = session.data_objects.create(f"{coll}/atomic")
    obj.metadata.add("keep", "1")
    obj.metadata.apply_atomic_operations(AVUOperation(operation="add", avu=iRODSMeta("a", "1", "u")),
                                         AVUOperation(operation="add", avu=iRODSMeta("a", "1", "u")),  # no-op
                                         AVUOperation(operation="remove", avu=iRODSMeta("keep", "1")),
                                         AVUOperation(operation="remove", avu=iRODSMeta("absent", "x")))
    assert sorted(tuple(m) for m in session.data_objects.get(obj.path).metadata.items()) == [("a", "1", "u")]
    request = {"admin_mode": False, "entity_name": obj.path, "entity_type": "data_object",   # PRC checks the
               "operations": [{"operation": "add", "attribute": "b", "value": "2"},           # operation name;
                              {"operation": "frobnicate", "attribute": "c", "value": "3"}]}   # the raw call does not
    with pytest.raises(KeyError, match="-1811000"):   # INVALID_OPERATION: PRC 3.3 has no class for it
        session.metadata._call_atomic_metadata_api(request)
    request["operations"][1] = {"operation": "add", "attribute": "c", "value": ""}
    with pytest.raises(ex.SYS_INVALID_INPUT_PARAM) as err:
        session.metadata._call_atomic_metadata_api(request)
    assert err.value.server_msg.get_json_encoded_struct()["operation_index"] == 1
    # all or nothing: the first add was rolled back both times
    assert [m.name for m in session.data_objects.get(obj.path).metadata.items()] == ["a"]


def test_metadata_set_updates_in_place_and_copy(session, coll):
    obj = session.data_objects.create(f"{coll}/settime")
    meta = obj.metadata(timestamps=True)
    meta.set(iRODSMeta("s", "v", "u1"))
    created = meta.get_one("s").create_time
    time.sleep(1.1)
    meta.set(iRODSMeta("s", "v", "u2"))
    avu = meta.get_one("s")
    assert (avu.units, avu.create_time) == ("u2", created) and avu.modify_time > created
    other = session.data_objects.create(f"{coll}/settime2")
    session.metadata.copy(DataObject, DataObject, obj.path, other.path)
    assert [(m.name, m.units) for m in session.data_objects.get(other.path).metadata.items()] == [("s", "u2")]


def test_odd_characters_in_quasi_xml(session, coll):
    from irods.helpers import xml_mode

    value = "odd\x01value\x1f"
    with xml_mode("QUASI_XML"):
        session.collections.get(coll).metadata.add("odd", value)
        rows = session.query(CollectionMeta.value).filter(Collection.name == coll, CollectionMeta.name == "odd").all()
        assert [r[CollectionMeta.value] for r in rows] == [value]


def test_copy(session, coll, tmp_path):
    local = tmp_path / "src"
    local.write_bytes(b"copy me" * 1000)
    session.data_objects.put(str(local), f"{coll}/src", **{kw.REG_CHKSUM_KW: ""})
    session.data_objects.get(f"{coll}/src").metadata.add("not", "copied")
    session.data_objects.copy(f"{coll}/src", f"{coll}/dst")
    dst = session.data_objects.get(f"{coll}/dst")
    assert dst.size == 7000 and dst.checksum == session.data_objects.get(f"{coll}/src").checksum
    assert not dst.metadata.items()
    with pytest.raises(ex.OVERWRITE_WITHOUT_FORCE_FLAG):
        session.data_objects.copy(f"{coll}/src", f"{coll}/dst")
    session.collections.create(f"{coll}/sub")
    session.data_objects.copy(f"{coll}/src", f"{coll}/sub")          # into a collection: same name
    with session.data_objects.open(f"{coll}/sub/src", "r") as f:
        assert f.read() == b"copy me" * 1000
    with pytest.raises(ex.USER_INPUT_PATH_ERR):
        session.data_objects.copy(f"{coll}/missing", f"{coll}/x")


def test_truncate_and_replica_truncate(session, coll):
    with session.data_objects.open(f"{coll}/t", "w") as f:
        f.write(b"0123456789")
    session.data_objects.truncate(f"{coll}/t", 4)
    with session.data_objects.open(f"{coll}/t", "r") as f:
        assert f.read() == b"0123"
    out = session.data_objects.replica_truncate(f"{coll}/t", 2)
    assert out == {"message": "", "replica_number": 0, "resource_hierarchy": "demoResc"}
    assert session.data_objects.get(f"{coll}/t").size == 2
    with pytest.raises(ex.OBJ_PATH_DOES_NOT_EXIST):
        session.data_objects.replica_truncate(f"{coll}/none", 2)
    with pytest.raises(ex.UNIX_FILE_TRUNCATE_ERR) as err:
        session.data_objects.replica_truncate(f"{coll}/t", -1)
    assert err.value.code == -529022       # UNIX_FILE_TRUNCATE_ERR - EINVAL


def test_touch(session, coll):
    session.data_objects.touch(f"{coll}/new")                      # creates an empty object
    assert session.data_objects.get(f"{coll}/new").size == 0
    session.data_objects.touch(f"{coll}/not-made", no_create=True)
    assert not session.data_objects.exists(f"{coll}/not-made")
    session.data_objects.touch(f"{coll}/new", seconds_since_epoch=1_000_000_000)
    row = session.query(DataObject.modify_time).filter(Collection.name == coll, DataObject.name == "new").one()
    assert int(row[DataObject.modify_time].timestamp()) == 1_000_000_000
    session.collections.touch(coll, seconds_since_epoch=1_200_000_000)
    assert int(session.collections.get(coll).modify_time.timestamp()) == 1_200_000_000
    with pytest.raises(ex.USER_INCOMPATIBLE_PARAMS):
        session.data_objects.touch(f"{coll}/new", replica_number=0, leaf_resource_name="demoResc")
