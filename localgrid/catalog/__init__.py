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
from enum import IntEnum
from pathlib import Path
from typing import Iterator

from ..errors import fail

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
CREATE INDEX IF NOT EXISTS idx_data_path ON r_data_main (data_path);
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
CREATE TABLE IF NOT EXISTS r_user_auth (user_id INTEGER NOT NULL, user_auth_name TEXT NOT NULL, create_ts TEXT,
    PRIMARY KEY (user_id, user_auth_name));
CREATE TABLE IF NOT EXISTS r_quota_main (user_id INTEGER NOT NULL, resc_id INTEGER NOT NULL, quota_limit INTEGER,
    quota_over INTEGER, modify_ts TEXT, PRIMARY KEY (user_id, resc_id));
CREATE TABLE IF NOT EXISTS r_specific_query (alias TEXT UNIQUE, sqlstr TEXT NOT NULL, create_ts TEXT);
CREATE TABLE IF NOT EXISTS r_objt_access (
    object_id INTEGER NOT NULL, user_id INTEGER NOT NULL, access_type_id INTEGER NOT NULL,
    create_ts TEXT, modify_ts TEXT, PRIMARY KEY (object_id, user_id));
"""

class AccessLevel(IntEnum):
    """Access levels of the 4.3 catalogue (R_TOKN_MAIN, namespace access_type)."""

    NULL = 1000
    EXECUTE = 1010
    READ_ANNOTATION = 1020
    READ_SYSTEM_METADATA = 1030
    READ_METADATA = 1040
    READ_OBJECT = 1050
    WRITE_ANNOTATION = 1060
    CREATE_METADATA = 1070
    MODIFY_METADATA = 1080
    DELETE_METADATA = 1090
    ADMINISTER_OBJECT = 1100
    CREATE_OBJECT = 1110
    MODIFY_OBJECT = 1120
    DELETE_OBJECT = 1130
    CREATE_TOKEN = 1140
    DELETE_TOKEN = 1150
    CURATE = 1160
    OWN = 1200


ACCESS = {level.name.lower(): int(level) for level in AccessLevel}
ACCESS_ALIASES = {"read": "read_object", "write": "modify_object", "read object": "read_object",
                  "modify object": "modify_object"}


class ReplicaStatus(IntEnum):
    """data_is_dirty values (objInfo.h's STALE_REPLICA, GOOD_REPLICA, INTERMEDIATE_REPLICA)."""

    STALE = 0
    GOOD = 1
    INTERMEDIATE = 2


# The specific queries `irods setup` installs (icatSysInserts.sql and the schema updates).
STOCK_SPECIFIC_QUERIES = {
    "ls": "select alias,sqlStr from R_SPECIFIC_QUERY",
    "lsl": "select alias,sqlStr from R_SPECIFIC_QUERY where sqlStr like ?",
    "listQueryByAliasLike": "SELECT alias, sqlStr FROM R_SPECIFIC_QUERY WHERE alias LIKE ?",
    "findQueryByAlias": "SELECT alias, sqlStr FROM R_SPECIFIC_QUERY WHERE alias = ?",
    # `ils -A` of a large collection, page by page: (parent collection, limit, offset)
    "ilsLACollections": "SELECT c.parent_coll_name, c.coll_name, c.create_ts, c.modify_ts, c.coll_id,"
                        " c.coll_owner_name, c.coll_owner_zone, c.coll_type, u.user_name, u.zone_name,"
                        " a.access_type_id, u.user_id FROM R_COLL_MAIN c"
                        " JOIN R_OBJT_ACCESS a ON c.coll_id = a.object_id JOIN R_USER_MAIN u ON a.user_id = u.user_id"
                        " WHERE c.parent_coll_name = ? AND c.coll_name <> '/'"
                        " ORDER BY c.coll_name, u.user_name, a.access_type_id DESC LIMIT ? OFFSET ?",
    "ilsLADataObjects": "SELECT s.coll_name, s.data_name, s.create_ts, s.modify_ts, s.data_id, s.data_size,"
                        " s.data_repl_num, s.data_owner_name, s.data_owner_zone, u.user_name, u.user_id,"
                        " a.access_type_id, u.user_type_name, u.zone_name FROM"
                        " (SELECT c.coll_name, d.data_name, d.create_ts, d.modify_ts, d.data_id, d.data_repl_num,"
                        " d.data_size, d.data_owner_name, d.data_owner_zone FROM R_COLL_MAIN c"
                        " JOIN R_DATA_MAIN d ON c.coll_id = d.coll_id WHERE c.coll_name = ?"
                        " ORDER BY d.data_name) s"
                        " JOIN R_OBJT_ACCESS a ON s.data_id = a.object_id JOIN R_USER_MAIN u ON a.user_id = u.user_id"
                        " ORDER BY s.coll_name, s.data_name, u.user_name, a.access_type_id DESC LIMIT ? OFFSET ?",
    "ShowCollAcls": "SELECT DISTINCT u.user_name, u.zone_name, t.token_name, u.user_type_name FROM R_COLL_MAIN c"
                    " JOIN R_OBJT_ACCESS a ON a.object_id = c.coll_id JOIN R_USER_MAIN u ON u.user_id = a.user_id"
                    " JOIN R_TOKN_MAIN t ON t.token_id = a.access_type_id AND t.token_namespace = 'access_type'"
                    " WHERE c.coll_name = ?",
}

GOOD, STALE, INTERMEDIATE = ReplicaStatus.GOOD, ReplicaStatus.STALE, ReplicaStatus.INTERMEDIATE


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
        # string comparisons are case-sensitive, as on the iCAT's PostgreSQL: `=` already is
        # (BINARY collation), LIKE must be told (GenQuery's UPPER_CASE_WHERE asks for the other)
        self.db.execute("PRAGMA case_sensitive_like=ON")

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
            for alias, sql in STOCK_SPECIFIC_QUERIES.items():
                db.execute("INSERT OR IGNORE INTO r_specific_query VALUES (?, ?, '01292940000')", (alias, sql))
            # groups made by an older version lacked their own membership row
            db.execute("INSERT OR IGNORE INTO r_user_group SELECT user_id, user_id FROM r_user_main")
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
            # as a stock zone: the group public may write in /zone/home/public
            self.grant(self.coll(f"/{zone}/home/public")["coll_id"], public_id, "modify_object")
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
        # every user and group is a member of itself (chlRegUserRE), which GenQuery's group columns join on
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

    def remove_avu_by_id(self, object_id: int, meta_id: int) -> None:
        self.db.execute("DELETE FROM r_objt_metamap WHERE object_id=? AND meta_id=?", (object_id, meta_id))

    def delete_unused_avus(self) -> None:
        """iadmin rum: drop AVUs no object refers to any more (chlDelUnusedAVUs)."""
        self.db.execute("DELETE FROM r_meta_main WHERE meta_id NOT IN (SELECT meta_id FROM r_objt_metamap)")

    # ---------------------------------------------------------------- specific queries --
    def add_specific_query(self, sql: str, alias: str) -> None:
        if alias and self.one("SELECT 1 FROM r_specific_query WHERE alias=?", alias):
            raise fail("CAT_INVALID_ARGUMENT", "Alias is not unique")
        self.db.execute("INSERT INTO r_specific_query VALUES (?, ?, ?)", (alias or None, sql, now()))

    def remove_specific_query(self, alias_or_sql: str) -> None:
        """iadmin rsq: by alias, else by its SQL text (chlDelSpecificQuery)."""
        removed = self.db.execute("DELETE FROM r_specific_query WHERE alias=?", (alias_or_sql,)).rowcount or \
            self.db.execute("DELETE FROM r_specific_query WHERE sqlstr=?", (alias_or_sql,)).rowcount
        if not removed:
            raise fail("CAT_UNKNOWN_SPECIFIC_QUERY", alias_or_sql)

    def specific_query(self, alias_or_sql: str) -> str:
        """The SQL of a registered query, named by its alias or given verbatim (cmlGetMultiRowStringValues)."""
        row = self.one("SELECT sqlstr FROM r_specific_query WHERE alias=?", alias_or_sql) or \
            self.one("SELECT sqlstr FROM r_specific_query WHERE sqlstr=?", alias_or_sql)
        if row is None:
            raise fail("CAT_UNKNOWN_SPECIFIC_QUERY", f"no specific query {alias_or_sql!r}")
        return row[0]

    # ---------------------------------------------------------------- zone and restart --
    def local_zone(self) -> str:
        return self.one("SELECT zone_name FROM r_zone_main WHERE zone_type_name='local'")[0]

    def stale_intermediate_replicas(self) -> None:
        """On restart: replicas open for writing when the server stopped can never finish."""
        self.db.execute("UPDATE r_data_main SET data_is_dirty=? WHERE data_is_dirty=?", (STALE, INTERMEDIATE))

    # ---------------------------------------------------------------- users and groups --
    def password(self, user_id: int) -> str:
        row = self.one("SELECT rcat_password FROM r_user_password WHERE user_id=?", user_id)
        return row[0] if row else ""

    def set_password(self, user_id: int, password: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO r_user_password VALUES (?, ?)", (user_id, password))

    USER_FIELDS = {"type": "user_type_name", "info": "user_info", "comment": "r_comment"}

    def set_user_field(self, user_id: int, option: str, value: str) -> None:
        """iadmin moduser NAME type|info|comment VALUE."""
        column = self.USER_FIELDS[option]
        self.db.execute(f"UPDATE r_user_main SET {column}=?, modify_ts=? WHERE user_id=?", (value, now(), user_id))

    def delete_user(self, user_id: int) -> None:
        """A user or group and everything that names it: password, memberships, ACLs, AVUs."""
        self.db.execute("DELETE FROM r_user_main WHERE user_id=?", (user_id,))
        self.db.execute("DELETE FROM r_user_password WHERE user_id=?", (user_id,))
        self.db.execute("DELETE FROM r_user_group WHERE user_id=? OR group_user_id=?", (user_id, user_id))
        self.db.execute("DELETE FROM r_objt_access WHERE user_id=?", (user_id,))
        self.db.execute("DELETE FROM r_objt_metamap WHERE object_id=?", (user_id,))
        self.db.execute("DELETE FROM r_user_auth WHERE user_id=?", (user_id,))
        self.db.execute("DELETE FROM r_quota_main WHERE user_id=?", (user_id,))

    def add_auth_name(self, user_id: int, name: str) -> None:
        """iadmin aua: a distinguished name (GSI DN) the user may log in as."""
        self.db.execute("INSERT OR IGNORE INTO r_user_auth VALUES (?, ?, ?)", (user_id, name, now()))

    def remove_auth_name(self, user_id: int, name: str) -> None:
        self.db.execute("DELETE FROM r_user_auth WHERE user_id=? AND user_auth_name=?", (user_id, name))

    def set_quota(self, user_id: int, resc_id: int, limit: int) -> None:
        """iadmin suq/sgq: a limit in bytes on a resource (0: total); a limit of 0 removes the quota."""
        if limit == 0:
            self.db.execute("DELETE FROM r_quota_main WHERE user_id=? AND resc_id=?", (user_id, resc_id))
            return
        self.db.execute("INSERT OR REPLACE INTO r_quota_main VALUES (?, ?, ?, ?, ?)",
                        (user_id, resc_id, limit, -limit, now()))

    def calculate_usage(self) -> None:
        """iadmin cu (chlCalcUsageAndQuota): each quota's ``over`` is the bytes owned by the user (or by
        the group's members), on that resource or in total, minus the limit."""
        for user_id, resc_id, limit in self.db.execute(
                "SELECT user_id, resc_id, quota_limit FROM r_quota_main").fetchall():
            owners = "SELECT u.user_name FROM r_user_group g JOIN r_user_main u ON u.user_id = g.user_id" \
                     " WHERE g.group_user_id = ?"
            where = f"d.data_owner_name IN ({owners})" + ("" if resc_id == 0 else " AND d.resc_id = ?")
            used = self.db.execute(f"SELECT coalesce(sum(d.data_size), 0) FROM r_data_main d WHERE {where}",
                                   (user_id,) if resc_id == 0 else (user_id, resc_id)).fetchone()[0]
            self.db.execute("UPDATE r_quota_main SET quota_over=?, modify_ts=? WHERE user_id=? AND resc_id=?",
                            (used - limit, now(), user_id, resc_id))

    def add_member(self, group_id: int, user_id: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO r_user_group VALUES (?, ?)", (group_id, user_id))

    def members(self, group_id: int) -> list[int]:
        """The users of a group (not the group's own membership row)."""
        return [r[0] for r in self.db.execute("SELECT user_id FROM r_user_group WHERE group_user_id=? AND user_id<>?",
                                              (group_id, group_id))]

    def remove_member(self, group_id: int, user_id: int) -> None:
        self.db.execute("DELETE FROM r_user_group WHERE group_user_id=? AND user_id=?", (group_id, user_id))

    # ---------------------------------------------------------------- resources, changes --
    RESOURCE_FIELDS = {"status": "resc_status", "comment": "r_comment", "context": "resc_context",
                        "info": "resc_info", "free_space": "free_space"}

    def set_resource_field(self, resc_id: int, option: str, value: str) -> None:
        """iadmin modresc NAME status|comment|context|info|free_space VALUE."""
        column = self.RESOURCE_FIELDS[option]
        self.db.execute(f"UPDATE r_resc_main SET {column}=?, modify_ts=? WHERE resc_id=?", (value, now(), resc_id))

    def resource_in_use(self, resc_id: int) -> bool:
        return self.one("SELECT 1 FROM r_data_main WHERE resc_id=? LIMIT 1", resc_id) is not None

    def delete_resource(self, resc_id: int) -> None:
        self.db.execute("DELETE FROM r_resc_main WHERE resc_id=?", (resc_id,))
        self.drop_object(resc_id)

    def set_parent(self, child_id: int, parent_id: int | None, context: str = "") -> None:
        """Attach a resource under a parent (``None``: detach it)."""
        self.db.execute("UPDATE r_resc_main SET resc_parent=?, resc_parent_context=?, modify_ts=? WHERE resc_id=?",
                        ("" if parent_id is None else str(parent_id), context, now(), child_id))

    # ---------------------------------------------------------------- collections, changes --
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

    # ---------------------------------------------------------------- replicas, changes --
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

    def stale_other_replicas(self, data_id: int, repl_num: int) -> None:
        """Every replica but ``repl_num`` becomes stale: one replica has new content."""
        self.db.execute("UPDATE r_data_main SET data_is_dirty=? WHERE data_id=? AND data_repl_num<>?",
                        (STALE, data_id, repl_num))

    def delete_replica(self, data_id: int, repl_num: int) -> None:
        self.db.execute("DELETE FROM r_data_main WHERE data_id=? AND data_repl_num=?", (data_id, repl_num))

    def delete_data_object(self, data_id: int) -> None:
        self.db.execute("DELETE FROM r_data_main WHERE data_id=?", (data_id,))
        self.drop_object(data_id)

    def move_data_object(self, data_id: int, coll_id: int, name: str) -> None:
        self.db.execute("UPDATE r_data_main SET coll_id=?, data_name=? WHERE data_id=?", (coll_id, name, data_id))

    # ---------------------------------------------------------------- physical paths --
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


def like_prefix(path: str) -> str:
    """LIKE pattern (escape character backslash) of everything below a collection."""
    return path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"


def open_catalog(root: Path) -> Catalog:
    os.makedirs(root, exist_ok=True)
    return Catalog(Path(root) / "catalog.sqlite")
