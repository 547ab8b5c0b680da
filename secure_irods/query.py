"""GenQuery in iquest's words, so that callers need no client library.

Columns are iRODS's own names (``COLL_NAME``, ``DATA_SIZE``, ``META_DATA_ATTR_NAME``),
aggregates are written as iquest writes them (``count(DATA_NAME)``), and each condition
is a column with the text iquest puts after it (``= 'x' || like 'x/%'``)::

    q = Query("COLL_NAME", "count(DATA_NAME)", "sum(DATA_SIZE)").under(root)
    rows = client.query(q)          # [(coll, count, bytes), ...] as strings

(``under(root)`` is ``COLL_NAME = 'root' || like 'root/%'``: the collection and all below it.)
A replica's ``D_REPL_STATUS`` is one of :class:`ReplicaStatus`.

A :class:`Query` is an immutable value: each ``where*`` returns a new one.  It is run by
:meth:`secure_irods.Client.query`, under the client's retries, throttle and deadline.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Iterable

from .errors import InvalidInputError

__all__ = ["Query", "ReplicaStatus", "quote"]


class ReplicaStatus(str, enum.Enum):
    """``D_REPL_STATUS`` of a replica, as GenQuery returns it (iRODS 4.3's replica states)."""

    STALE = "0"
    GOOD = "1"
    INTERMEDIATE = "2"      # being written (an upload in progress, or one that died)
    READ_LOCKED = "3"
    WRITE_LOCKED = "4"

    @staticmethod
    def held(status: object) -> bool:
        """A writer holds the object: this replica is being written, or locked while a sibling is."""
        return str(status) not in (ReplicaStatus.STALE.value, ReplicaStatus.GOOD.value)

AGGREGATES = ("count", "sum", "min", "max", "avg")
_COLUMN = re.compile(r"^(?:(count|sum|min|max|avg)\()?([A-Z][A-Z0-9_]*)\)?$")
_OPS = ("=", "<>", "<", ">", "<=", ">=", "like", "not like")


def quote(value: str) -> str:
    """A GenQuery string literal.  GenQuery has no escape for quotes, so one is refused."""
    value = str(value)
    if "'" in value:
        raise InvalidInputError(f"a quote cannot appear in a GenQuery condition: {value!r}")
    return f"'{value}'"


def _parse_column(spec: str) -> tuple[str | None, str]:
    match = _COLUMN.match(spec.strip())
    if not match or (match.group(1) is None) != (not spec.strip().endswith(")")):
        raise InvalidInputError(f"not a GenQuery column: {spec!r} (e.g. COLL_NAME or count(DATA_NAME))")
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class Query:
    """Selected columns (with optional aggregates) and conditions, ANDed."""

    select: tuple[tuple[str | None, str], ...]
    conditions: tuple[tuple[str, str], ...] = ()
    case_insensitive: bool = False

    def __init__(self, *columns: str, conditions: Iterable[tuple[str, str]] = (),
                 case_insensitive: bool = False) -> None:
        if not columns:
            raise InvalidInputError("a GenQuery selects at least one column")
        select = tuple(_parse_column(c) for c in columns)
        names = [name for _, name in select]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"a GenQuery selects each column once: {columns}")
        object.__setattr__(self, "select", select)
        object.__setattr__(self, "conditions", tuple(conditions))
        object.__setattr__(self, "case_insensitive", case_insensitive)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"{f}({n})" if f else n for f, n in self.select)

    def _with(self, column: str, text: str) -> "Query":
        func, name = _parse_column(column)
        if func:
            raise InvalidInputError(f"a condition names a plain column, not {column!r}")
        return Query(*self.columns, conditions=(*self.conditions, (name, text)),
                     case_insensitive=self.case_insensitive)

    def where(self, column: str, op: str, value: str | int) -> "Query":
        """``column op 'value'`` (``=``, ``<>``, ``<``, ``>``, ``like``, ``not like``...)."""
        if op not in _OPS:
            raise InvalidInputError(f"unknown GenQuery operator {op!r}")
        return self._with(column, f"{op} {quote(str(value))}")

    def where_any(self, column: str, alternatives: Iterable[tuple[str, str | int]]) -> "Query":
        """One condition OR-ing its alternatives: ``COLL_NAME = 'r' || like 'r/%'``."""
        alts = list(alternatives)
        if not alts:
            raise InvalidInputError(f"where_any({column!r}) needs at least one alternative")
        for op, _ in alts:
            if op not in _OPS:
                raise InvalidInputError(f"unknown GenQuery operator {op!r}")
        return self._with(column, " || ".join(f"{op} {quote(str(v))}" for op, v in alts))

    def under(self, root: str, column: str = "COLL_NAME") -> "Query":
        """``root`` and every collection below it: ``COLL_NAME = 'root' || like 'root/%'``."""
        root = root.rstrip("/") or "/"
        return self.where_any(column, [("=", root), ("like", f"{root.rstrip('/')}/%")])

    def where_in(self, column: str, values: Iterable[str | int]) -> "Query":
        """``column in ('a', 'b', ...)``."""
        vals = [quote(str(v)) for v in values]
        if not vals:
            raise InvalidInputError(f"where_in({column!r}) needs at least one value")
        return self._with(column, f"in ({', '.join(vals)})")

    def __str__(self) -> str:
        text = "select " + ", ".join(self.columns)
        if self.conditions:
            text += " where " + " and ".join(f"{c} {t}" for c, t in self.conditions)
        return text
