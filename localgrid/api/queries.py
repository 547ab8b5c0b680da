"""Queries: GenQuery (GEN_QUERY_AN, rsGenQuery.cpp), whose SQL ``localgrid.catalog.genquery`` builds, and
OBJ_STAT_AN (rsObjStat.cpp)."""

from __future__ import annotations

from .. import protocol as p
from ..catalog import GOOD
from ..errors import fail
from . import api
from .numbers import ApiNumber, ObjType
from .requests import open_request
from .session import Session


def pack_rows(rows: list, columns: list[int], next_inx: int, total: int) -> bytes:
    """A GenQueryOut_PI: one SqlResult_PI per column."""
    results = []
    for i, col in enumerate(columns):
        values = ["" if r[i] is None else str(r[i]) for r in rows]
        results.append(p.pack("SqlResult_PI", [("attriInx", col),
                                               ("reslen", max((len(v) for v in values), default=0) + 1),
                                               ("value", values)]))
    return p.pack("GenQueryOut_PI", [("rowCnt", len(rows)), ("attriCnt", len(columns)),
                                     ("continueInx", next_inx), ("totalRowCount", total),
                                     ("SqlResult_PI", results)])


@api(ApiNumber.GEN_QUERY_AN)
def api_genquery(ctx: Session, msg):
    body = msg.xml()
    sel = body.find("InxIvalPair_PI")
    cond = body.find("InxValPair_PI")
    selects = list(zip([int(x.text) for x in sel.findall("inx")], [int(x.text) for x in sel.findall("ivalue")])) \
        if sel is not None else []
    conditions = list(zip([int(x.text) for x in cond.findall("inx")], [x.text or "" for x in cond.findall("svalue")])) \
        if cond is not None else []
    max_rows, cont = p.integer(body, "maxRows"), p.integer(body, "continueInx")
    options, offset = p.integer(body, "options"), p.integer(body, "partialStartIndex")
    kv = p.keyvals(body)
    if kv.get("zone", ctx.zone) not in (ctx.zone, ""):
        raise fail("CAT_INVALID_ARGUMENT", f"unknown zone {kv.get('zone')}")
    rows, columns, next_inx, total = ctx.queries.run(selects, conditions, max_rows, cont, options, offset,
                                                      None if ctx.is_admin() else ctx.groups, ctx.ticket)
    return 0, pack_rows(rows, columns, next_inx, total)


@api(ApiNumber.SPECIFIC_QUERY_AN)
def api_specific_query(ctx: Session, msg):
    """rsSpecificQuery.cpp: a registered SQL query by alias (or verbatim), its ``?`` bound to arg1..arg10."""
    body = msg.xml()
    target = p.text(body, "sql")
    args = [p.text(body, f"arg{i}") for i in range(1, 11)]
    while args and not args[-1]:
        args.pop()
    max_rows, cont = p.integer(body, "maxRows"), p.integer(body, "continueInx")
    sql = ctx.cat.specific_query(target) if not cont else ""
    rows, columns, next_inx, total = ctx.queries.run_sql(sql, args, max_rows, cont, p.integer(body, "rowOffset"))
    return 0, pack_rows(rows, columns, next_inx, total)


@api(ApiNumber.OBJ_STAT_AN)
def api_obj_stat(ctx: Session, msg):
    body, path, kv = open_request(msg)
    coll = ctx.cat.coll(path)
    if coll is not None:
        return ObjType.COLL_OBJ_T, p.pack("RodsObjStat_PI", [
            ("objSize", 0), ("objType", ObjType.COLL_OBJ_T), ("dataMode", 0), ("dataId", coll["coll_id"]), ("chksum", ""),
            ("ownerName", coll["coll_owner_name"]), ("ownerZone", coll["coll_owner_zone"]),
            ("createTime", coll["create_ts"]), ("modifyTime", coll["modify_ts"]), ("rescHier", "")])
    reps = ctx.cat.replicas(path)
    if not reps:
        raise fail("USER_FILE_DOES_NOT_EXIST", path)
    r = next((r for r in reps if r["data_is_dirty"] == GOOD), reps[0])
    return ObjType.DATA_OBJ_T, p.pack("RodsObjStat_PI", [
        ("objSize", r["data_size"]), ("objType", ObjType.DATA_OBJ_T), ("dataMode", 0), ("dataId", r["data_id"]),
        ("chksum", r["data_checksum"] or ""), ("ownerName", r["data_owner_name"]),
        ("ownerZone", r["data_owner_zone"]), ("createTime", r["create_ts"]), ("modifyTime", r["modify_ts"]),
        ("rescHier", ctx.cat.hierarchy(r["resc_id"]))])
