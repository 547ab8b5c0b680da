"""GenQuery (API 702) over the SQLite catalogue.

The server turns a list of column numbers (rodsGenQuery.h) and condition strings into
one SQL statement, joining just the tables the columns need, and pages through it with a
cursor: ``maxRows`` rows a call, a non-zero ``continueInx`` while rows remain, and
CAT_NO_ROWS_FOUND when the first batch is empty.  Those are the behaviours clients rely
on, so they are the ones reproduced here.
"""

from __future__ import annotations

import re
import sqlite3
from collections import deque
from dataclasses import dataclass, field

from ..errors import fail
from .columns import COLUMNS, EDGES, GROUPS, NEEDS, NUMERIC, ROOT_ORDER

# Select-option bits and aggregate codes of rodsGenQuery.h.
ORDER_BY, ORDER_BY_DESC, RETURN_TOTAL_ROW_COUNT, NO_DISTINCT = 0x400, 0x800, 0x20, 0x40
UPPER_CASE_WHERE, AUTO_CLOSE = 0x200, 0x100
AGGREGATES = {2: "min", 3: "max", 4: "sum", 5: "avg", 6: "count"}
MAX_SQL_ROWS = 256 * 1024
MAX_STATEMENTS = 50   # MAX_NUM_OF_CONCURRENT_STMTS


_TOKEN = re.compile(r"\s*(?:(?P<q>'(?:[^']|'')*')|(?P<op>not\s+like|not\s+in|like|in|between|<>|!=|<=|>=|=|<|>)"
                    r"|(?P<paren>[(),])|(?P<bool>\|\||&&)|(?P<word>[^\s'(),]+))", re.I)


@dataclass
class Statement:
    """An open query: the cursor a client pages through with continueInx."""
    cursor: sqlite3.Cursor
    columns: list[int]
    pending: list[tuple] = field(default_factory=list)
    total: int = 0


def _quoted(tok: str) -> str:
    return tok[1:-1].replace("''", "'")


def parse_condition(expr: str, text: str) -> tuple[str, list[str]]:
    """Turn a GenQuery condition ("= 'x'", "like 'a%' || = 'b'", "in ('a','b')") into SQL."""
    tokens = [(m.lastgroup, m.group(m.lastgroup)) for m in _TOKEN.finditer(text) if m.lastgroup]
    if "".join(m.group(0) for m in _TOKEN.finditer(text)).strip() != text.strip() or not text.strip():
        raise fail("CAT_INVALID_ARGUMENT", f"cannot parse condition {text!r}")
    sql, args, i = [], [], 0
    while i < len(tokens):
        kind, tok = tokens[i]
        if kind == "bool":
            sql.append(" OR " if tok == "||" else " AND ")
            i += 1
            continue
        if kind != "op":
            raise fail("CAT_INVALID_ARGUMENT", f"expected an operator in {text!r}")
        op = " ".join(tok.lower().split())
        i += 1
        if op in ("in", "not in"):
            values = []
            while i < len(tokens) and tokens[i][0] in ("paren", "q", "word"):
                if tokens[i][0] == "q":
                    values.append(_quoted(tokens[i][1]))
                elif tokens[i][0] == "word":
                    values.append(tokens[i][1])
                i += 1
                if values and tokens[i - 1][1] == ")":
                    break
            if not values:
                raise fail("CAT_INVALID_ARGUMENT", f"empty in-list in {text!r}")
            sql.append(f"{expr} {op.upper()} ({','.join('?' * len(values))})")
            args.extend(values)
        elif op == "between":
            values = [_value(tokens, i), _value(tokens, i + 1)]
            i += 2
            sql.append(f"{expr} BETWEEN ? AND ?")
            args.extend(values)
        else:
            value = _value(tokens, i)
            i += 1
            sql.append(f"{expr} {'<>' if op == '!=' else op.upper()} ?")
            args.append(value)
    if not sql:
        raise fail("CAT_INVALID_ARGUMENT", f"empty condition {text!r}")
    return "(" + "".join(sql) + ")", args


def _value(tokens: list, i: int) -> str:
    if i >= len(tokens) or tokens[i][0] not in ("q", "word"):
        raise fail("CAT_INVALID_ARGUMENT", "condition lacks a value")
    kind, tok = tokens[i]
    return _quoted(tok) if kind == "q" else tok


def _join_plan(groups: set[str]) -> list[tuple[str, str]]:
    """(group, condition joining it to what comes before), a tree through the link graph."""
    for g in list(groups):
        while g in NEEDS:
            g = NEEDS[g]
            groups.add(g)
    root = next((g for g in ROOT_ORDER if g in groups), sorted(groups)[0])
    plan, seen = [(root, "")], {root}
    for target in sorted(groups - {root}):
        if target in seen:
            continue
        path = _path(seen, target)
        for prev, nxt in path:
            if nxt not in seen:
                plan.append((nxt, EDGES[frozenset((prev, nxt))] if prev else ""))
                seen.add(nxt)
    return plan


def _path(seen: set[str], target: str) -> list[tuple[str, str]]:
    queue = deque((s, [(None, s)]) for s in seen)
    visited = set(seen)
    while queue:
        node, path = queue.popleft()
        if node == target:
            return path[1:]
        for edge in EDGES:
            if node in edge:
                (other,) = edge - {node}
                if other not in visited:
                    visited.add(other)
                    queue.append((other, path + [(node, other)]))
    return [(None, target)]   # disconnected: a cross join, as SQL would give


# Metadata groups whose repeated conditions each get their own alias (icatGeneralQuery.cpp's
# handleMultiDataAVUConditions and handleMultiCollAVUConditions): group -> (name, value, unit
# columns, map alias, meta alias, the owner's id).
MULTI_AVU = {"dmeta": ((600, 601, 602), "dmm", "dm", "d.data_id"),
             "cmeta": ((610, 611, 612), "cmm", "cm", "c.coll_id")}


def _avu_aliases(conditions: list[tuple[int, str]]) -> tuple[list[str], list[str]]:
    """The SQL expression of each condition, and the joins of the extra metadata aliases.

    With several conditions on a metadata attribute name, the k-th condition on the name, the
    value or the unit is made on the k-th alias of the metadata tables, so the object must
    have an AVU matching each (name, value) pair: ``a = x and b = y`` selects objects with
    both AVUs, not none (one AVU cannot be named both a and b).
    """
    exprs = [COLUMNS[col][1] for col, _ in conditions]
    joins: list[str] = []
    for (name_col, *other_cols), map_alias, meta_alias, owner in MULTI_AVU.values():
        wanted = sum(1 for col, _ in conditions if col == name_col)
        if wanted < 2:
            continue
        seen: dict[int, int] = {}
        for i, (col, _) in enumerate(conditions):
            if col not in (name_col, *other_cols):
                continue
            seen[col] = seen.get(col, 0) + 1
            k = seen[col]
            if 2 <= k <= wanted:
                exprs[i] = exprs[i].replace(f"{meta_alias}.", f"{meta_alias}{k}.", 1)
        for k in range(2, wanted + 1):
            joins += [f"JOIN r_objt_metamap {map_alias}{k} ON {map_alias}{k}.object_id = {owner}",
                      f"JOIN r_meta_main {meta_alias}{k} ON {meta_alias}{k}.meta_id = {map_alias}{k}.meta_id"]
    return exprs, joins


# The least access that makes an object visible to GenQuery (4.3's read_metadata).
VISIBLE_LEVEL = 1040
_VISIBLE = {"data": "d.data_id", "coll": "c.coll_id"}


def build_sql(selects: list[tuple[int, int]], conditions: list[tuple[int, str]], options: int,
              visible_to: list[int] | None = None, ticket: str = "") -> tuple[str, list]:
    """SQL and arguments of one GenQuery.

    ``visible_to``: the user's and groups' ids of an ordinary user; rows of data objects
    (or, in a query without data-object columns, of collections) they may not at least read
    the metadata of are left out, as the iCAT's GenQuery access control does (an admin sees
    everything: ``None``); an ordinary user sees only their own tickets.  With a session
    ``ticket``, what the ticket reaches replaces the access lists (general_query.cpp's
    ticket-based access control).
    """
    if not selects:
        raise fail("CAT_INVALID_ARGUMENT", "no columns selected")
    for col, _ in selects + [(c, 0) for c, _ in conditions]:
        if col not in COLUMNS:
            raise fail("CAT_INVALID_ARGUMENT", f"column {col} is not supported by the local grid")
    groups = {COLUMNS[c][0] for c, _ in selects} | {COLUMNS[c][0] for c, _ in conditions}
    if ticket and visible_to is not None and "data" in groups:
        groups.add("coll")       # the ticket may reach the object through its collection
    plan = _join_plan(groups)
    from_sql = []
    for group, link in plan:
        for n, (alias, table, inner) in enumerate(GROUPS[group]):
            on = " AND ".join(x for x in ([link] if n == 0 else []) + [inner] if x)
            if not from_sql:
                from_sql.append(f"{table} {alias}")
            else:
                from_sql.append(f"{'JOIN' if on else 'CROSS JOIN'} {table} {alias}" + (f" ON {on}" if on else ""))
    exprs, group_by, order = [], [], []
    for col, opt in selects:
        expr = COLUMNS[col][1]
        agg = AGGREGATES.get(opt & 0xF) if opt & 0xF else None
        if agg:
            exprs.append(f"{agg}({expr})")
        else:
            exprs.append(f"CAST({expr} AS TEXT)" if col in NUMERIC else expr)
            group_by.append(expr)
            if opt & ORDER_BY_DESC:
                order.append(f"{expr} DESC")
            elif opt & ORDER_BY:
                order.append(expr)
    aggregated = len(group_by) < len(selects)
    where, args = [], []
    upper = bool(options & UPPER_CASE_WHERE)
    aliases, extra_joins = _avu_aliases(conditions)
    from_sql += extra_joins
    for (col, text), expr in zip(conditions, aliases):
        clause, values = parse_condition(f"upper({expr})" if upper else expr, text)
        where.append(clause)
        args.extend(values)
    guarded = next((key for group, key in _VISIBLE.items() if any(g == group for g, _ in plan)), None)
    if visible_to is not None and "ticket" in groups:
        where.append(f"tk.user_id IN ({','.join('?' * len(visible_to))})")
        args.extend(visible_to)
    if visible_to is not None and guarded and ticket:
        reached = "(SELECT object_id FROM r_ticket_main WHERE ticket_string = ?)"
        clauses = ([f"d.data_id IN {reached}"] if guarded == "d.data_id" else []) + [
            f"c.coll_id IN {reached}",
            f"c.coll_name LIKE (SELECT coll_name || '%' FROM r_coll_main WHERE coll_id IN {reached})"]
        where.append("(" + " OR ".join(clauses) + ")")
        args.extend([ticket] * len(clauses))
    elif visible_to is not None and guarded:   # data objects when queried, else collections
        marks = ",".join("?" * len(visible_to))
        where.append(f"EXISTS (SELECT 1 FROM r_objt_access acl WHERE acl.object_id = {guarded}"
                     f" AND acl.user_id IN ({marks}) AND acl.access_type_id >= {VISIBLE_LEVEL})")
        args.extend(visible_to)
    distinct = "" if options & NO_DISTINCT or aggregated else "DISTINCT "
    sql = f"SELECT {distinct}{', '.join(exprs)} FROM {' '.join(from_sql)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if aggregated and group_by:
        sql += " GROUP BY " + ", ".join(group_by)
    # general_query.cpp: the requested order, then collection, data name and replica number when selected
    # (setOrderByUser, setOrderBy); nothing else is ordered.  A client pages through one open cursor.
    order += [COLUMNS[col][1] for col in DEFAULT_ORDER for c, opt in selects if c == col and not opt & 0xF]
    if order:
        sql += " ORDER BY " + ", ".join(order)
    return sql, args


DEFAULT_ORDER = (501, 403, 404)    # COL_COLL_NAME, COL_DATA_NAME, COL_DATA_REPL_NUM


class QueryEngine:
    """The statements of one agent (one client connection), as in the server's icss table.

    It owns its SQLite connection: open cursors hold a read snapshot while a client pages,
    which must not mix with the agent's write transactions."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.db.execute("PRAGMA query_only=ON")   # specific queries run client-named SQL: reads only
        self.statements: dict[int, Statement] = {}

    def close(self) -> None:
        for st in self.statements.values():
            st.cursor.close()
        self.statements.clear()
        self.db.close()

    def run(self, selects, conditions, max_rows: int, continue_inx: int, options: int, offset: int = 0,
            visible_to: list[int] | None = None, ticket: str = ""):
        """Return (rows, columns, continue_inx, total) or raise CAT_NO_ROWS_FOUND."""
        build = None if continue_inx or max_rows <= 0 else build_sql(selects, conditions, options, visible_to, ticket)
        return self._page(build, [c for c, _ in selects], max_rows, continue_inx, options, offset)

    def run_sql(self, sql: str, args: list[str], max_rows: int, continue_inx: int, offset: int = 0):
        """A specific query: registered SQL with ``?`` bound to the client's arguments, paged as GenQuery.

        Its columns are numbered 0..n-1 in the reply, as the server numbers them."""
        needed = len(re.findall(r"\?", re.sub(r"'(?:[^']|'')*'", "", sql)))
        if len(args) < needed:
            raise fail("CAT_INVALID_ARGUMENT", f"the query takes {needed} arguments, {len(args)} given")
        return self._page((sql, args[:needed]), None, max_rows, continue_inx, 0, offset)

    def _page(self, build, columns, max_rows: int, continue_inx: int, options: int, offset: int):
        if continue_inx:
            st = self.statements.get(continue_inx)
            if st is None:
                raise fail("CAT_NO_ROWS_FOUND", "statement closed")
            if max_rows <= 0:           # the client closes the statement
                st.cursor.close()
                del self.statements[continue_inx]
                raise fail("CAT_NO_ROWS_FOUND", "statement closed")
        else:
            if max_rows <= 0:
                raise fail("CAT_NO_ROWS_FOUND", "nothing asked")
            sql, args = build
            try:
                cursor = self.db.execute(sql, args)
            except sqlite3.Error as exc:
                raise fail("CAT_SQL_ERR", str(exc)) from exc
            if columns is None:
                columns = list(range(len(cursor.description or ())))
            total = 0
            if options & RETURN_TOTAL_ROW_COUNT:
                total = self.db.execute(f"SELECT count(*) FROM ({sql})", args).fetchone()[0]
            st = Statement(cursor, columns, total=total)
            if offset > 0:          # partialStartIndex: skip rows, as the server's OFFSET does
                cursor.fetchmany(offset)
            if len(self.statements) >= MAX_STATEMENTS:
                raise fail("CAT_STATEMENT_TABLE_FULL", "too many open queries on this connection")
            continue_inx = max(self.statements, default=0) + 1
            self.statements[continue_inx] = st
        max_rows = min(max_rows, MAX_SQL_ROWS)
        rows = st.pending + st.cursor.fetchmany(max_rows + 1 - len(st.pending))
        st.pending = rows[max_rows:]
        rows = rows[:max_rows]
        if not st.pending or options & AUTO_CLOSE:
            st.cursor.close()
            del self.statements[continue_inx]
            next_inx = 0
        else:
            next_inx = continue_inx
        if not rows:
            raise fail("CAT_NO_ROWS_FOUND", "no rows found")
        return rows, st.columns, next_inx, st.total
