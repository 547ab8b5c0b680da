"""Queries: GenQuery (GEN_QUERY_AN, rsGenQuery.cpp); the SQL is built by ``localgrid.catalog.genquery``."""

from __future__ import annotations

from .. import protocol as p
from ..errors import fail
from . import api
from .numbers import ApiNumber


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


class QueryApi:
    @api(ApiNumber.GEN_QUERY_AN)
    def api_genquery(self, msg):
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
        if kv.get("zone", self.zone) not in (self.zone, ""):
            raise fail("CAT_INVALID_ARGUMENT", f"unknown zone {kv.get('zone')}")
        rows, columns, next_inx, total = self.queries.run(selects, conditions, max_rows, cont, options, offset,
                                                          None if self.is_admin() else self.groups)
        return 0, pack_rows(rows, columns, next_inx, total)

    @api(ApiNumber.SPECIFIC_QUERY_AN)
    def api_specific_query(self, msg):
        """rsSpecificQuery.cpp: a registered SQL query by alias (or verbatim), its ``?`` bound to arg1..arg10."""
        body = msg.xml()
        target = p.text(body, "sql")
        args = [p.text(body, f"arg{i}") for i in range(1, 11)]
        while args and not args[-1]:
            args.pop()
        max_rows, cont = p.integer(body, "maxRows"), p.integer(body, "continueInx")
        sql = self.cat.specific_query(target) if not cont else ""
        rows, columns, next_inx, total = self.queries.run_sql(sql, args, max_rows, cont, p.integer(body, "rowOffset"))
        return 0, pack_rows(rows, columns, next_inx, total)
