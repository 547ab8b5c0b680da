"""Collections (R_COLL_MAIN) and the access lists (R_OBJT_ACCESS) every object carries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import fail
from .base import Tables
from .schema import ACCESS, ACCESS_ALIASES, like_prefix, now, split

class CollectionTables(Tables):
    """R_COLL_MAIN and R_OBJT_ACCESS."""

    def coll(self, path: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM r_coll_main WHERE coll_name=?", path)

    def insert_coll(self, path: str, owner: str, zone: str) -> int:
        cid, ts = self.new_id(), now()
        parent = split(path)[0] if path != "/" else "/"
        self.db.execute("INSERT INTO r_coll_main (coll_id, parent_coll_name, coll_name, coll_owner_name,"
                        " coll_owner_zone, create_ts, modify_ts) VALUES (?,?,?,?,?,?,?)",
                        (cid, parent, path, owner, zone, ts, ts))
        owner_row = self.one("SELECT user_id FROM r_user_main WHERE user_name=? AND zone_name=?", owner, zone)
        if owner_row:
            self.grant(cid, owner_row[0], "own")
        parent_row = self.coll(parent) if path != "/" else None
        if parent_row is not None and parent_row["coll_inheritance"] == "1":
            self.inherit(parent_row["coll_id"], cid)
            self.db.execute("UPDATE r_coll_main SET coll_inheritance='1' WHERE coll_id=?", (cid,))
        return cid

    def inherit(self, from_id: int, to_id: int) -> None:
        for row in self.all("SELECT user_id, access_type_id FROM r_objt_access WHERE object_id=?", from_id):
            self.db.execute("INSERT OR REPLACE INTO r_objt_access VALUES (?, ?, ?, ?, ?)",
                            (to_id, row[0], row[1], now(), now()))

    def has_children(self, coll_id: int, path: str) -> bool:
        """Whether a collection holds a sub-collection or a data object."""
        return bool(self.one("SELECT 1 FROM r_coll_main WHERE parent_coll_name=? LIMIT 1", path) or
                    self.one("SELECT 1 FROM r_data_main WHERE coll_id=? LIMIT 1", coll_id))

    def subcollection_ids(self, path: str) -> list[int]:
        """Every collection below ``path`` (not itself), at any depth."""
        return [r[0] for r in self.db.execute("SELECT coll_id FROM r_coll_main WHERE coll_name LIKE ? ESCAPE '\\'",
                                              (like_prefix(path),))]

    def data_ids_in(self, coll_ids: list[int]) -> list[int]:
        ids: list[int] = []
        for start in range(0, len(coll_ids), 500):
            chunk = coll_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            ids += [r[0] for r in self.db.execute(
                f"SELECT DISTINCT data_id FROM r_data_main WHERE coll_id IN ({marks})", chunk)]
        return ids

    def is_collection_id(self, object_id: int) -> bool:
        return self.one("SELECT 1 FROM r_coll_main WHERE coll_id=?", object_id) is not None

    def set_inheritance(self, coll_id: int, inherit: bool) -> None:
        self.db.execute("UPDATE r_coll_main SET coll_inheritance=? WHERE coll_id=?", ("1" if inherit else "0", coll_id))

    def set_collection_mtime(self, coll_id: int, mtime: str) -> None:
        self.db.execute("UPDATE r_coll_main SET modify_ts=? WHERE coll_id=?", (mtime, coll_id))

    def delete_collection(self, coll_id: int) -> None:
        self.db.execute("DELETE FROM r_coll_main WHERE coll_id=?", (coll_id,))
        self.drop_object(coll_id)

    def delete_tree(self, path: str) -> list[Path]:
        """A collection, everything below it and their data objects; returns the replica files to remove."""
        files: list[Path] = []
        for coll_id in [self.coll(path)["coll_id"]] + self.subcollection_ids(path):
            for data_id in self.data_ids_in([coll_id]):
                files += [Path(r[0]) for r in self.db.execute("SELECT data_path FROM r_data_main WHERE data_id=?",
                                                              (data_id,))]
                self.delete_data_object(data_id)
            self.delete_collection(coll_id)
        return files

    def rename_collection(self, src: str, dst: str) -> None:
        """A collection and everything below it move from ``src`` to ``dst``."""
        ts = now()
        self.db.execute("UPDATE r_coll_main SET coll_name = ? || substr(coll_name, ?), modify_ts=?"
                        " WHERE coll_name LIKE ? ESCAPE '\\'", (dst, len(src) + 1, ts, like_prefix(src)))
        self.db.execute("UPDATE r_coll_main SET parent_coll_name = ? || substr(parent_coll_name, ?)"
                        " WHERE parent_coll_name = ? OR parent_coll_name LIKE ? ESCAPE '\\'",
                        (dst, len(src) + 1, src, like_prefix(src)))
        self.db.execute("UPDATE r_coll_main SET coll_name=?, parent_coll_name=?, modify_ts=? WHERE coll_name=?",
                        (dst, split(dst)[0], ts, src))

    def grant(self, object_id: int, user_id: int, level: str) -> None:
        level = ACCESS_ALIASES.get(level, level)
        if level == "null":
            self.db.execute("DELETE FROM r_objt_access WHERE object_id=? AND user_id=?", (object_id, user_id))
            return
        if level not in ACCESS:
            raise fail("CAT_INVALID_ARGUMENT", f"unknown access level {level!r}")
        self.db.execute("INSERT OR REPLACE INTO r_objt_access VALUES (?, ?, ?, ?, ?)",
                        (object_id, user_id, ACCESS[level], now(), now()))

    def access_level(self, object_id: int, user_ids: list[int]) -> int:
        marks = ",".join("?" * len(user_ids))
        row = self.one(f"SELECT max(access_type_id) FROM r_objt_access WHERE object_id=? AND user_id IN ({marks})",
                       object_id, *user_ids)
        return int(row[0]) if row and row[0] is not None else 0
