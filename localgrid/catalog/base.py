"""The catalogue's plumbing that every table family shares: one SQLite connection per agent."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator

from ..errors import fail
from .schema import now


class Tables:
    """One SQLite connection; each client agent opens its own, as each iRODS agent does.

    WAL mode lets readers page through a query while writers commit; every catalogue change
    is one ``BEGIN IMMEDIATE`` transaction.  The table families (``objects``, ``collections``,
    ``metadata``, ``users``, ``resources``, ``tickets``...) add their methods over ``db``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=OFF")
        # string comparisons are case-sensitive, as on the iCAT's PostgreSQL: `=` already is
        # (BINARY collation), LIKE must be told (GenQuery's UPPER_CASE_WHERE asks for the other)
        self.db.execute("PRAGMA case_sensitive_like=ON")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One catalogue change: everything in it commits together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    def one(self, sql: str, *args) -> sqlite3.Row | None:
        cur = self.db.execute(sql, args)
        cur.row_factory = sqlite3.Row
        return cur.fetchone()

    def all(self, sql: str, *args) -> list[sqlite3.Row]:
        cur = self.db.execute(sql, args)
        cur.row_factory = sqlite3.Row
        return cur.fetchall()

    def new_id(self) -> int:
        return self.db.execute("INSERT INTO r_objectid DEFAULT VALUES").lastrowid

    def drop_object(self, object_id: int) -> None:
        self.db.execute("DELETE FROM r_objt_metamap WHERE object_id=?", (object_id,))
        self.db.execute("DELETE FROM r_objt_access WHERE object_id=?", (object_id,))

    def add_zone(self, name: str, connection: str, comment: str) -> None:
        """iadmin mkzone: a remote zone (R_ZONE_MAIN, zone_type_name 'remote')."""
        if name in self.zones():
            raise fail("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", f"zone {name} exists")
        ts = now()
        self.db.execute("INSERT INTO r_zone_main (zone_id, zone_name, zone_type_name, zone_conn_string, r_comment,"
                        " create_ts, modify_ts) VALUES (?, ?, 'remote', ?, ?, ?, ?)",
                        (self.new_id(), name, connection, comment, ts, ts))

    def remove_zone(self, name: str) -> None:
        """iadmin rmzone: only a remote zone."""
        if not self.db.execute("DELETE FROM r_zone_main WHERE zone_name=? AND zone_type_name='remote'",
                               (name,)).rowcount:
            raise fail("CAT_INVALID_ZONE", f"no remote zone {name}")

    def zones(self) -> list[str]:
        """Every zone the catalogue knows (R_ZONE_MAIN), the local one and any remote ones."""
        return [r[0] for r in self.db.execute("SELECT zone_name FROM r_zone_main")]

    def local_zone(self) -> str:
        return self.one("SELECT zone_name FROM r_zone_main WHERE zone_type_name='local'")[0]
