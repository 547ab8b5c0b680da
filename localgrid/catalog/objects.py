"""Data objects and their replicas (R_DATA_MAIN): rows, states and physical paths."""

from __future__ import annotations

import sqlite3

from .base import Tables
from .schema import INTERMEDIATE, STALE, WRITE_LOCKED, ReplicaStatus, like_prefix, now, split

class ObjectTables(Tables):
    """R_DATA_MAIN: one row per replica, keyed by (data_id, data_repl_num)."""

    def replicas(self, path: str) -> list[sqlite3.Row]:
        parent, name = split(path)
        return self.all("SELECT d.*, r.resc_name FROM r_data_main d JOIN r_coll_main c ON c.coll_id = d.coll_id"
                        " JOIN r_resc_main r ON r.resc_id = d.resc_id"
                        " WHERE c.coll_name=? AND d.data_name=? ORDER BY d.data_repl_num", parent, name)

    def kind(self, path: str) -> str | None:
        """'coll', 'data' or None: the name space is shared, as in iRODS."""
        if self.coll(path) is not None:
            return "coll"
        return "data" if self.replicas(path) else None

    _REPLICA_COLUMNS = ("data_id", "coll_id", "data_name", "data_repl_num", "data_version", "data_type_name",
                        "data_size", "resc_id", "data_path", "data_owner_name", "data_owner_zone", "data_is_dirty",
                        "data_status", "data_checksum", "data_expiry", "data_map_id", "data_mode", "r_comment",
                        "create_ts", "modify_ts")

    def replica(self, data_id: int, repl_num: int) -> sqlite3.Row | None:
        return self.one("SELECT d.*, r.resc_name FROM r_data_main d JOIN r_resc_main r ON r.resc_id = d.resc_id"
                        " WHERE d.data_id=? AND d.data_repl_num=?", data_id, repl_num)

    def insert_replica(self, **columns) -> None:
        """One row of R_DATA_MAIN: the first replica of a new object or another replica of one."""
        ts = now()
        columns = {"create_ts": ts, "modify_ts": ts, **columns}
        names = [c for c in self._REPLICA_COLUMNS if c in columns]
        if set(columns) - set(names):
            raise ValueError(f"not replica columns: {sorted(set(columns) - set(names))}")
        self.db.execute(f"INSERT INTO r_data_main ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                        [columns[c] for c in names])

    def copy_replica_row(self, source: sqlite3.Row, **changes) -> None:
        """A new replica whose catalogue row is the source's, but for ``changes``."""
        columns = {c: source[c] for c in self._REPLICA_COLUMNS if c not in ("create_ts", "modify_ts")}
        self.insert_replica(**{**columns, **changes})

    def update_replica(self, data_id: int, repl_num: int, **columns) -> None:
        """Set columns of one replica (``data_is_dirty``, ``data_size``, ``data_checksum``, ``modify_ts``...)."""
        self._update_data(columns, "data_id=? AND data_repl_num=?", (data_id, repl_num))

    def update_data_object(self, data_id: int, **columns) -> None:
        """Set columns of every replica of a data object (its type, comment, expiry...)."""
        self._update_data(columns, "data_id=?", (data_id,))

    def _update_data(self, columns: dict, where: str, args: tuple) -> None:
        bad = set(columns) - set(self._REPLICA_COLUMNS)
        if bad or not columns:
            raise ValueError(f"not replica columns: {sorted(bad)}")
        sets = ", ".join(f"{c}=?" for c in columns)
        self.db.execute(f"UPDATE r_data_main SET {sets} WHERE {where}", (*columns.values(), *args))

    def set_replica_status(self, data_id: int, repl_num: int, status: ReplicaStatus) -> None:
        self.update_replica(data_id, repl_num, data_is_dirty=int(status))

    def lock_siblings(self, data_id: int, repl_num: int) -> None:
        """A replica opens for writing: every other replica becomes write-locked, its status kept in
        ``data_status`` as ``{"original_status": "N"}`` (logical_locking.cpp's lock_and_publish)."""
        self.db.execute("UPDATE r_data_main SET data_status = json_object('original_status', CAST(data_is_dirty AS TEXT)),"
                        " data_is_dirty=? WHERE data_id=? AND data_repl_num<>? AND data_is_dirty<>?",
                        (WRITE_LOCKED, data_id, repl_num, WRITE_LOCKED))

    def unlock_siblings(self, data_id: int, repl_num: int, changed: bool) -> None:
        """The writer closes: its siblings get back their status, or become stale when the
        written replica now holds new content (unlock_and_publish, restore_status or STALE_REPLICA)."""
        restored = f"{int(STALE)}" if changed else \
            f"coalesce(CAST(json_extract(nullif(data_status, ''), '$.original_status') AS INTEGER), {int(STALE)})"
        self.db.execute(f"UPDATE r_data_main SET data_is_dirty={restored}, data_status=''"
                        " WHERE data_id=? AND data_repl_num<>? AND data_is_dirty=?", (data_id, repl_num, WRITE_LOCKED))

    def stale_other_replicas(self, data_id: int, repl_num: int) -> None:
        """Every replica but ``repl_num`` becomes stale: one replica has new content."""
        self.db.execute("UPDATE r_data_main SET data_is_dirty=?, data_status='' WHERE data_id=? AND data_repl_num<>?",
                        (STALE, data_id, repl_num))

    def stale_intermediate_replicas(self) -> None:
        """On restart: replicas open for writing when the server stopped can never finish, and their
        siblings get back the status they had before the writer locked them."""
        self.db.execute("UPDATE r_data_main SET data_is_dirty=? WHERE data_is_dirty=?", (STALE, INTERMEDIATE))
        self.db.execute("UPDATE r_data_main SET data_is_dirty=coalesce(CAST(json_extract(nullif(data_status, ''),"
                        " '$.original_status') AS INTEGER), ?), data_status='' WHERE data_is_dirty=?",
                        (STALE, WRITE_LOCKED))

    def delete_replica(self, data_id: int, repl_num: int) -> None:
        self.db.execute("DELETE FROM r_data_main WHERE data_id=? AND data_repl_num=?", (data_id, repl_num))

    def delete_data_object(self, data_id: int) -> None:
        self.db.execute("DELETE FROM r_data_main WHERE data_id=?", (data_id,))
        self.drop_object(data_id)

    def move_data_object(self, data_id: int, coll_id: int, name: str) -> None:
        self.db.execute("UPDATE r_data_main SET coll_id=?, data_name=? WHERE data_id=?", (coll_id, name, data_id))

    def path_registered(self, data_path: str) -> bool:
        """Whether a replica's row names this file (chkOrphanFile's query): such a path is never given to another
        replica, whether or not its file is there now."""
        return self.one("SELECT 1 FROM r_data_main WHERE data_path=? LIMIT 1", data_path) is not None

    _PLACEMENT = ("SELECT d.data_id, d.data_repl_num, d.data_path, c.coll_name || '/' || d.data_name AS logical,"
                  " r.resc_def_path FROM r_data_main d JOIN r_coll_main c ON c.coll_id = d.coll_id"
                  " JOIN r_resc_main r ON r.resc_id = d.resc_id")

    def placements(self, data_id: int) -> list[sqlite3.Row]:
        """Each replica of a data object with its logical path and its leaf's vault: what a rename must bring in
        line with the new name (``data_id``, ``data_repl_num``, ``data_path``, ``logical``, ``resc_def_path``)."""
        return self.all(f"{self._PLACEMENT} WHERE d.data_id = ?", data_id)

    def placements_below(self, path: str) -> list[sqlite3.Row]:
        """``placements`` of every replica in a collection or below it (rsQueryDataObjInCollReCur), oldest first."""
        return self.all(f"{self._PLACEMENT} WHERE c.coll_name = ? OR c.coll_name LIKE ? ESCAPE '\\'"
                        " ORDER BY d.data_id, d.data_repl_num", path, like_prefix(path))
