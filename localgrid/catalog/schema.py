"""The catalogue's tables and names: the iCAT's own table layout, access levels, replica states.

Table and column names follow the iRODS catalogue (R_COLL_MAIN, R_DATA_MAIN, R_META_MAIN,
R_OBJT_METAMAP, R_OBJT_ACCESS, R_RESC_MAIN, R_USER_MAIN, R_TICKET_MAIN...) so that GenQuery
columns map onto them one to one, as they do in the real server.
"""

from __future__ import annotations

import time
from enum import IntEnum

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
CREATE TABLE IF NOT EXISTS r_quota_usage (user_id INTEGER NOT NULL, resc_id INTEGER NOT NULL, quota_usage INTEGER,
    modify_ts TEXT, PRIMARY KEY (user_id, resc_id));
CREATE TABLE IF NOT EXISTS r_specific_query (alias TEXT UNIQUE, sqlstr TEXT NOT NULL, create_ts TEXT);
CREATE TABLE IF NOT EXISTS r_objt_access (
    object_id INTEGER NOT NULL, user_id INTEGER NOT NULL, access_type_id INTEGER NOT NULL,
    create_ts TEXT, modify_ts TEXT, PRIMARY KEY (object_id, user_id));
CREATE TABLE IF NOT EXISTS r_ticket_main (
    ticket_id INTEGER PRIMARY KEY, ticket_string TEXT UNIQUE NOT NULL, ticket_type TEXT, user_id INTEGER NOT NULL,
    object_id INTEGER NOT NULL, object_type TEXT, uses_limit INTEGER DEFAULT 0, uses_count INTEGER DEFAULT 0,
    write_file_limit INTEGER DEFAULT 10, write_file_count INTEGER DEFAULT 0, write_byte_limit INTEGER DEFAULT 0,
    write_byte_count INTEGER DEFAULT 0, ticket_expiry_ts TEXT DEFAULT '', restrictions TEXT DEFAULT '',
    create_ts TEXT, modify_ts TEXT);
CREATE TABLE IF NOT EXISTS r_ticket_allowed_hosts (ticket_id INTEGER NOT NULL, host TEXT NOT NULL,
    PRIMARY KEY (ticket_id, host));
CREATE TABLE IF NOT EXISTS r_ticket_allowed_users (ticket_id INTEGER NOT NULL, user_name TEXT NOT NULL,
    PRIMARY KEY (ticket_id, user_name));
CREATE TABLE IF NOT EXISTS r_ticket_allowed_groups (ticket_id INTEGER NOT NULL, group_name TEXT NOT NULL,
    PRIMARY KEY (ticket_id, group_name));
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
    """data_is_dirty values (objInfo.h): a replica open for writing is INTERMEDIATE and its
    siblings WRITE_LOCKED until it closes (logical_locking.cpp); READ_LOCKED is reserved there too."""

    STALE = 0
    GOOD = 1
    INTERMEDIATE = 2
    READ_LOCKED = 3
    WRITE_LOCKED = 4

    @property
    def at_rest(self) -> bool:
        """Good or stale: no agent holds the replica (replica_proxy::at_rest)."""
        return self in (ReplicaStatus.STALE, ReplicaStatus.GOOD)


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
WRITE_LOCKED = ReplicaStatus.WRITE_LOCKED


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



def like_prefix(path: str) -> str:
    """LIKE pattern (escape character backslash) of everything below a collection."""
    return path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
