"""GenQuery behaviours other clients rely on beyond PRC's own suite, through real PRC.

- several conditions on metadata columns select the objects having *all* those AVUs (the
  iCAT joins one metadata alias per condition: icatGeneralQuery.cpp,
  handleMultiDataAVUConditions / handleMultiCollAVUConditions);
- string comparisons (``=``, ``like``) are case-sensitive, as on the iCAT's PostgreSQL;
  UPPER_CASE_WHERE (PRC: ``case_sensitive=False``) asks for case-insensitive ones.
"""

from __future__ import annotations

import irods.exception as ex
import pytest
from irods.column import Like
from irods.api_number import api_number
from irods.message import iRODSMessage
from irods.models import Collection, CollectionMeta, DataObject, DataObjectMeta


@pytest.fixture
def station_objects(session, coll):
    """Three day files: (station, channel) = (SSB, HHZ), (SSB, HHE), (DIX, HHZ)."""
    for name, station, channel in (("a", "SSB", "HHZ"), ("b", "SSB", "HHE"), ("c", "DIX", "HHZ")):
        obj = session.data_objects.create(f"{coll}/{name}")
        obj.metadata.add("station", station)
        obj.metadata.add("channel", channel)
    return coll


def names(query) -> list[str]:
    return sorted(r[DataObject.name] for r in query.all())


def test_two_avu_conditions_select_objects_having_both(session, station_objects):
    coll = station_objects
    both = session.query(DataObject.name).filter(
        Collection.name == coll,
        DataObjectMeta.name == "station", DataObjectMeta.value == "SSB",
        DataObjectMeta.name == "channel", DataObjectMeta.value == "HHZ")
    assert names(both) == ["a"]
    z_anywhere = session.query(DataObject.name).filter(
        Collection.name == coll, DataObjectMeta.name == "channel", DataObjectMeta.value == "HHZ")
    assert names(z_anywhere) == ["a", "c"]
    none = session.query(DataObject.name).filter(
        Collection.name == coll,
        DataObjectMeta.name == "station", DataObjectMeta.value == "DIX",
        DataObjectMeta.name == "channel", DataObjectMeta.value == "HHE")
    assert names(none) == []


def test_three_avu_conditions_and_like_on_values(session, station_objects):
    coll = station_objects
    session.data_objects.get(f"{coll}/a").metadata.add("quality", "D")
    query = session.query(DataObject.name).filter(
        Collection.name == coll,
        DataObjectMeta.name == "station", Like(DataObjectMeta.value, "SS%"),
        DataObjectMeta.name == "channel", Like(DataObjectMeta.value, "HH%"),
        DataObjectMeta.name == "quality", DataObjectMeta.value == "D")
    assert names(query) == ["a"]


def test_two_avu_conditions_on_collections(session, coll):
    for sub, (net, year) in {"x": ("FR", "2011"), "y": ("FR", "2012"), "z": ("CH", "2011")}.items():
        c = session.collections.create(f"{coll}/{sub}")
        c.metadata.add("network", net)
        c.metadata.add("year", year)
    rows = session.query(Collection.name).filter(
        Collection.parent_name == coll,
        CollectionMeta.name == "network", CollectionMeta.value == "FR",
        CollectionMeta.name == "year", CollectionMeta.value == "2011").all()
    assert [r[Collection.name] for r in rows] == [f"{coll}/x"]


def test_string_comparisons_are_case_sensitive(session, coll):
    for name in ("Station.mseed", "station.mseed"):
        session.data_objects.create(f"{coll}/{name}")
    base = session.query(DataObject.name).filter(Collection.name == coll)
    assert names(base.filter(DataObject.name == "station.mseed")) == ["station.mseed"]
    assert names(base.filter(Like(DataObject.name, "stat%"))) == ["station.mseed"]
    assert names(base.filter(Like(DataObject.name, "STAT%"))) == []


def test_upper_case_where_is_case_insensitive(session, coll):
    for name in ("Station.mseed", "station.mseed", "other"):
        session.data_objects.create(f"{coll}/{name}")
    insensitive = session.query(DataObject.name, case_sensitive=False).filter(Collection.name == coll)
    assert names(insensitive.filter(Like(DataObject.name, "stat%"))) == ["Station.mseed", "station.mseed"]
    assert names(insensitive.filter(DataObject.name == "STATION.MSEED")) == ["Station.mseed", "station.mseed"]


def test_no_rows_is_cat_no_rows_found_on_the_wire(session, coll):
    """PRC turns CAT_NO_ROWS_FOUND into an empty result; the raw reply must carry that error."""
    query = session.query(DataObject.name).filter(Collection.name == coll)
    with session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", msg=query._message(), int_info=api_number["GEN_QUERY_AN"]))
        with pytest.raises(ex.CAT_NO_ROWS_FOUND):
            conn.recv()
    session.data_objects.create(f"{coll}/one")
    with session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", msg=query._message(), int_info=api_number["GEN_QUERY_AN"]))
        assert conn.recv().int_info == 0


def test_specific_queries_stock_registered_and_removed(session, coll):
    from irods.query import SpecificQuery

    stock = {r[0] for r in SpecificQuery(session, alias="ls")}
    assert {"ls", "lsl", "ilsLACollections", "ilsLADataObjects", "ShowCollAcls"} <= stock
    for sub in ("s1", "s2", "s3"):
        session.collections.create(f"{coll}/{sub}")
    page = [r[1] for r in SpecificQuery(session, alias="ilsLACollections", args=[coll, "2", "1"])]
    assert page == [f"{coll}/s2", f"{coll}/s3"]          # LIMIT 2 OFFSET 1, the admin's own ACL rows
    query = SpecificQuery(session, "select coll_name from R_COLL_MAIN where parent_coll_name = ?", "t_children",
                          args=[coll])
    query.register()
    try:
        with pytest.raises(ex.CAT_INVALID_ARGUMENT):
            query.register()
        assert sorted(r[0] for r in query) == [f"{coll}/s1", f"{coll}/s2", f"{coll}/s3"]
    finally:
        query.remove()
    with pytest.raises(ex.CAT_UNKNOWN_SPECIFIC_QUERY):
        next(SpecificQuery(session, alias="t_children", args=[coll]).get_results())
    with pytest.raises(ex.CAT_SQL_ERR):     # registered SQL runs read-only
        bad = SpecificQuery(session, "delete from R_COLL_MAIN", "t_delete")
        bad.register()
        try:
            next(bad.get_results())
        finally:
            bad.remove()
