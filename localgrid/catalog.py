"""The grid's catalogue: an SQLite file laid out like the iCAT's own tables.

Table and column names follow the iRODS catalogue (R_COLL_MAIN, R_DATA_MAIN, R_META_MAIN,
R_OBJT_METAMAP, R_OBJT_ACCESS, R_RESC_MAIN, R_USER_MAIN...) so that GenQuery columns map
onto them one to one, as they do in the real server.  WAL mode lets readers page through
a query while writers commit; every catalogue change is one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator

from .errors import fail

SCHEMA = """
CREATE TABLE IF NOT EXISTS r_objectid (id INTEGER PRIMARY KEY AUTOINCREMENT);
CREATE TABLE IF NOT EXISTS r_zone_main (
    zone_id INTEGER PRIMARY KEY, zone_name TEXT UNIQUE NOT NULL, zone_type_name TEXT,
    zone_conn_string TEXT DEFAULT '', r_comment TEXT DEFAULT '', create_ts TEXT, modify_ts TEXT);
CREATE TABLE IF NOT EXISTS r_user_main (
    user_id INTEGER PRIMARY KEY, user_name TEXT NOT NULL, user_type_name TEXT NOT NULL,
    zone_name TEXT NOT NULL, user_info TEXT DEFAULT '', r_comment TEXT DEFAULT '',
    create_ts TEXT, modify_ts TEXT, UNIQUE (user_name, zone_name));
CREATE TABLE IF NOT EXISTS r_user_password (user_id INTEGER PRIMARY KEY, rcat_password TEXT);
CREATE TABLE IF NOT EXISTS r_user_group (group_user_id INTEGER, user_id INTEGER,
    PRIMARY KEY (group_user_id, user_id));
CREATE TABLE IF NOT EXISTS r_resc_main (
    resc_id INTEGER PRIMARY KEY, resc_name TEXT UNIQUE NOT NULL, zone_name TEXT,
    resc_type_name TEXT, resc_class_name TEXT DEFAULT 'cache', resc_net TEXT, resc_def_path TEXT,
    free_space TEXT DEFAULT '', free_space_ts TEXT DEFAULT '', resc_info TEXT DEFAULT '',
    r_comment TEXT DEFAULT '', resc_status TEXT DEFAULT '', create_ts TEXT, modify_ts TEXT,
    resc_children TEXT DEFAULT '', resc_context TEXT DEFAULT '', resc_parent TEXT DEFAULT '',
    resc_parent_context TEXT DEFAULT '');
CREATE TABLE IF NOT EXISTS r_coll_main (
    coll_id INTEGER PRIMARY KEY, parent_coll_name TEXT NOT NULL, coll_name TEXT UNIQUE NOT NULL,
    coll_owner_name TEXT, coll_owner_zone TEXT, coll_map_id INTEGER DEFAULT 0,
    coll_inheritance TEXT DEFAULT '', coll_type TEXT DEFAULT '', coll_info1 TEXT DEFAULT '',
    coll_info2 TEXT DEFAULT '', coll_expiry TEXT DEFAULT '', r_comment TEXT DEFAULT '',
    create_ts TEXT, modify_ts TEXT);
CREATE INDEX IF NOT EXISTS idx_coll_parent ON r_coll_main (parent_coll_name);
CREATE TABLE IF NOT EXISTS r_data_main (
    data_id INTEGER NOT NULL, coll_id INTEGER NOT NULL, data_name TEXT NOT NULL,
    data_repl_num INTEGER NOT NULL, data_version TEXT DEFAULT '', data_type_name TEXT DEFAULT 'generic',
    data_size INTEGER NOT NULL DEFAULT 0, resc_id INTEGER NOT NULL, data_path TEXT NOT NULL,
    data_owner_name TEXT, data_owner_zone TEXT, data_is_dirty INTEGER NOT NULL DEFAULT 0,
    data_status TEXT DEFAULT '', data_checksum TEXT DEFAULT '', data_expiry TEXT DEFAULT '',
    data_map_id INTEGER DEFAULT 0, data_mode TEXT DEFAULT '', r_comment TEXT DEFAULT '',
    create_ts TEXT, modify_ts TEXT, PRIMARY KEY (data_id, data_repl_num));
CREATE INDEX IF NOT EXISTS idx_data_coll_name ON r_data_main (coll_id, data_name);
CREATE INDEX IF NOT EXISTS idx_data_resc ON r_data_main (resc_id);
CREATE TABLE IF NOT EXISTS r_meta_main (
    meta_id INTEGER PRIMARY KEY, meta_namespace TEXT DEFAULT '', meta_attr_name TEXT NOT NULL,
    meta_attr_value TEXT NOT NULL, meta_attr_unit TEXT DEFAULT '', r_comment TEXT DEFAULT '',
    create_ts TEXT, modify_ts TEXT);
CREATE INDEX IF NOT EXISTS idx_meta_avu ON r_meta_main (meta_attr_name, meta_attr_value, meta_attr_unit);
CREATE TABLE IF NOT EXISTS r_objt_metamap (
    object_id INTEGER NOT NULL, meta_id INTEGER NOT NULL, create_ts TEXT, modify_ts TEXT,
    PRIMARY KEY (object_id, meta_id));
CREATE INDEX IF NOT EXISTS idx_metamap_meta ON r_objt_metamap (meta_id);
CREATE TABLE IF NOT EXISTS r_tokn_main (
    token_namespace TEXT, token_id INTEGER, token_name TEXT, PRIMARY KEY (token_namespace, token_id));
CREATE TABLE IF NOT EXISTS r_objt_access (
    object_id INTEGER NOT NULL, user_id INTEGER NOT NULL, access_type_id INTEGER NOT NULL,
    create_ts TEXT, modify_ts TEXT, PRIMARY KEY (object_id, user_id));
"""

# Access levels of the 4.3 catalogue (R_TOKN_MAIN, namespace access_type).
ACCESS = {"null": 1000, "execute": 1010, "read_annotation": 1020, "read_system_metadata": 1030,
          "read_metadata": 1040, "read_object": 1050, "write_annotation": 1060, "create_metadata": 1070,
          "modify_metadata": 1080, "delete_metadata": 1090, "administer_object": 1100, "create_object": 1110,
          "modify_object": 1120, "delete_object": 1130, "create_token": 1140, "delete_token": 1150,
          "curate": 1160, "own": 1200}
ACCESS_ALIASES = {"read": "read_object", "write": "modify_object", "read object": "read_object",
                  "modify object": "modify_object"}

GOOD, STALE, INTERMEDIATE = 1, 0, 2  # data_is_dirty values (replica status)


def now() -> str:
    """Catalogue timestamps are zero-padded epoch seconds, as the iCAT stores them."""
    return "%011d" % int(time.time())


def split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return (parent or "/"), name


def normalize(path: str) -> str:
    """Logical paths as the server keeps them: absolute, no trailing or doubled slashes."""
    if not path or not path.startswith("/"):
        raise fail("SYS_INVALID_FILE_PATH", f"not an absolute path: {path!r}")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise fail("USER_INPUT_PATH_ERR", f"relative component in {path!r}")
    return "/" + "/".join(parts)


class Catalog:
    """One SQLite connection; each client agent opens its own, as each iRODS agent does."""

    _init_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=OFF")

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------- plumbing --
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

    # ---------------------------------------------------------------- bootstrap --
    def bootstrap(self, zone: str, admin: str, password: str, vault_root: Path) -> bool:
        """Create a fresh zone as `irods setup` leaves it; returns False if it already exists."""
        with Catalog._init_lock, self.transaction() as db:
            for stmt in SCHEMA.strip().split(";"):
                if stmt.strip():
                    db.execute(stmt)
            for name, tid in ACCESS.items():    # also brings a grid made by an older version up to date
                db.execute("INSERT OR REPLACE INTO r_tokn_main VALUES ('access_type', ?, ?)", (tid, name))
            if db.execute("SELECT 1 FROM r_zone_main").fetchone():
                return False
            db.execute("INSERT INTO r_objectid (id) VALUES (9999)")
            ts = now()
            db.execute("INSERT INTO r_zone_main (zone_id, zone_name, zone_type_name, create_ts, modify_ts)"
                       " VALUES (?, ?, 'local', ?, ?)", (self.new_id(), zone, ts, ts))
            admin_id = self.add_user(admin, "rodsadmin", zone, password)
            public_id = self.add_user("public", "rodsgroup", zone, None)
            db.execute("INSERT OR IGNORE INTO r_user_group VALUES (?, ?)", (public_id, admin_id))
            self.add_resource("demoResc", "unixfilesystem", zone, "localhost",
                              str(vault_root / "demoResc"), "")
            for coll in ("/", f"/{zone}", f"/{zone}/home", f"/{zone}/trash", f"/{zone}/trash/home",
                         f"/{zone}/home/{admin}", f"/{zone}/trash/home/{admin}", f"/{zone}/home/public"):
                self.insert_coll(coll, admin, zone)
        return True

    # ---------------------------------------------------------------- users -----
    def add_user(self, name: str, utype: str, zone: str, password: str | None) -> int:
        if self.one("SELECT 1 FROM r_user_main WHERE user_name=? AND zone_name=?", name, zone):
            raise fail("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", f"user {name} exists")
        uid, ts = self.new_id(), now()
        self.db.execute("INSERT INTO r_user_main (user_id, user_name, user_type_name, zone_name, create_ts,"
                        " modify_ts) VALUES (?, ?, ?, ?, ?, ?)", (uid, name, utype, zone, ts, ts))
        if password is not None:
            self.db.execute("INSERT OR REPLACE INTO r_user_password VALUES (?, ?)", (uid, password))
        if utype != "rodsgroup":
            public = self.one("SELECT user_id FROM r_user_main WHERE user_name='public'")
            if public:
                self.db.execute("INSERT OR IGNORE INTO r_user_group VALUES (?, ?)", (public[0], uid))
            self.db.execute("INSERT OR IGNORE INTO r_user_group VALUES (?, ?)", (uid, uid))
        return uid

    def user(self, name: str, zone: str) -> sqlite3.Row | None:
        return self.one("SELECT u.*, p.rcat_password FROM r_user_main u LEFT JOIN r_user_password p"
                        " ON p.user_id = u.user_id WHERE u.user_name=? AND u.zone_name=?", name, zone)

    def group_ids(self, user_id: int) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT group_user_id FROM r_user_group WHERE user_id=?",
                                              (user_id,))]

    # ---------------------------------------------------------------- resources --
    def add_resource(self, name: str, rtype: str, zone: str, host: str, vault: str, context: str) -> int:
        if self.one("SELECT 1 FROM r_resc_main WHERE resc_name=?", name):
            raise fail("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", f"resource {name} exists")
        rid, ts = self.new_id(), now()
        self.db.execute("INSERT INTO r_resc_main (resc_id, resc_name, zone_name, resc_type_name, resc_net,"
                        " resc_def_path, resc_context, create_ts, modify_ts) VALUES (?,?,?,?,?,?,?,?,?)",
                        (rid, name, zone, rtype, host, vault, context, ts, ts))
        return rid

    def resource(self, name: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM r_resc_main WHERE resc_name=?", name)

    def resource_by_id(self, rid: int) -> sqlite3.Row | None:
        return self.one("SELECT * FROM r_resc_main WHERE resc_id=?", rid)

    def children(self, rid: int) -> list[sqlite3.Row]:
        return self.all("SELECT * FROM r_resc_main WHERE resc_parent=? ORDER BY resc_name", str(rid))

    def hierarchy(self, rid: int) -> str:
        """The `root;child;leaf` string of a leaf, which replicas record as D_RESC_HIER."""
        names = []
        row = self.resource_by_id(rid)
        while row is not None:
            names.append(row["resc_name"])
            row = self.resource_by_id(int(row["resc_parent"])) if row["resc_parent"] else None
        return ";".join(reversed(names))

    # ---------------------------------------------------------------- collections --
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

    # ---------------------------------------------------------------- data objects --
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

    # ---------------------------------------------------------------- access --------
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

    # ---------------------------------------------------------------- metadata ------
    def avu_targets(self, kind: str, name: str, zone: str) -> int:
        """Object id of the target of an AVU operation: -d data, -C collection, -R resource, -u user."""
        if kind == "-d":
            reps = self.replicas(normalize(name))
            if not reps:
                raise fail("CAT_UNKNOWN_FILE", name)
            return reps[0]["data_id"]
        if kind == "-C":
            row = self.coll(normalize(name))
            if row is None:
                raise fail("CAT_UNKNOWN_COLLECTION", name)
            return row["coll_id"]
        if kind == "-R":
            row = self.resource(name)
            if row is None:
                raise fail("SYS_RESC_DOES_NOT_EXIST", name)
            return row["resc_id"]
        if kind == "-u":
            row = self.user(name.split("#")[0], zone)
            if row is None:
                raise fail("CAT_INVALID_USER", name)
            return row["user_id"]
        raise fail("CAT_INVALID_ARGUMENT", f"bad object type {kind!r}")

    def add_avu(self, object_id: int, attr: str, value: str, unit: str, exist_ok: bool = False) -> None:
        row = self.one("SELECT meta_id FROM r_meta_main WHERE meta_attr_name=? AND meta_attr_value=?"
                       " AND meta_attr_unit=?", attr, value, unit)
        ts = now()
        if row is None:
            meta_id = self.new_id()
            self.db.execute("INSERT INTO r_meta_main (meta_id, meta_attr_name, meta_attr_value, meta_attr_unit,"
                            " create_ts, modify_ts) VALUES (?,?,?,?,?,?)", (meta_id, attr, value, unit, ts, ts))
        else:
            meta_id = row[0]
        if self.one("SELECT 1 FROM r_objt_metamap WHERE object_id=? AND meta_id=?", object_id, meta_id):
            if exist_ok:
                return
            raise fail("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME",
                       f"AVU ({attr}, {value}, {unit}) already on the object")
        self.db.execute("INSERT INTO r_objt_metamap VALUES (?, ?, ?, ?)", (object_id, meta_id, ts, ts))

    def remove_avu(self, object_id: int, attr: str, value: str, unit: str, wildcard: bool = False) -> int:
        op = "LIKE" if wildcard else "="
        unit_clause = "" if wildcard and unit == "" else f" AND m.meta_attr_unit {op} ?"
        args = [object_id, attr, value] + ([] if unit_clause == "" else [unit])
        ids = [r[0] for r in self.db.execute(
            "SELECT m.meta_id FROM r_meta_main m JOIN r_objt_metamap mm ON mm.meta_id = m.meta_id"
            f" WHERE mm.object_id=? AND m.meta_attr_name {op} ? AND m.meta_attr_value {op} ?{unit_clause}", args)]
        for meta_id in ids:
            self.db.execute("DELETE FROM r_objt_metamap WHERE object_id=? AND meta_id=?", (object_id, meta_id))
        return len(ids)

    def set_avu(self, object_id: int, attr: str, value: str, unit: str) -> None:
        """imeta set: the attribute ends with exactly this one value (chlSetAVUMetadata).

        When the object has one AVU of that name and no other object shares it, the AVU is
        updated in place (its create_ts kept, modify_ts new), as the server does; otherwise
        the AVUs of that name are detached and the new one added.
        """
        uses = self.all("SELECT meta_id FROM r_objt_metamap WHERE meta_id IN (SELECT m.meta_id FROM r_meta_main m"
                        " JOIN r_objt_metamap mm ON mm.meta_id = m.meta_id WHERE mm.object_id=? AND"
                        " m.meta_attr_name=?) LIMIT 3", object_id, attr)
        if len(uses) == 1:
            meta_id = uses[0][0]
            other = self.one("SELECT meta_id FROM r_meta_main WHERE meta_attr_name=? AND meta_attr_value=?"
                             " AND meta_attr_unit=? AND meta_id<>?", attr, value, unit, meta_id)
            if other is None:
                self.db.execute("UPDATE r_meta_main SET meta_attr_value=?, meta_attr_unit=?, modify_ts=?"
                                " WHERE meta_id=?", (value, unit, now(), meta_id))
                return
        for row in self.all("SELECT m.meta_id FROM r_meta_main m JOIN r_objt_metamap mm ON mm.meta_id=m.meta_id"
                            " WHERE mm.object_id=? AND m.meta_attr_name=?", object_id, attr):
            self.db.execute("DELETE FROM r_objt_metamap WHERE object_id=? AND meta_id=?", (object_id, row[0]))
        self.add_avu(object_id, attr, value, unit)

    def copy_avus(self, from_id: int, to_id: int) -> None:
        """imeta cp: every AVU of one object onto another (ones it already has are kept once)."""
        ts = now()
        self.db.execute("INSERT OR IGNORE INTO r_objt_metamap SELECT ?, meta_id, ?, ? FROM r_objt_metamap"
                        " WHERE object_id=?", (to_id, ts, ts, from_id))

    def drop_object(self, object_id: int) -> None:
        self.db.execute("DELETE FROM r_objt_metamap WHERE object_id=?", (object_id,))
        self.db.execute("DELETE FROM r_objt_access WHERE object_id=?", (object_id,))


def open_catalog(root: Path) -> Catalog:
    os.makedirs(root, exist_ok=True)
    return Catalog(Path(root) / "catalog.sqlite")
