"""The grid's catalogue: an SQLite file laid out like the iCAT's own tables, one module per table family.

| module | tables |
|---|---|
| ``schema`` | the DDL, access levels, replica states, stock specific queries, path helpers |
| ``base`` | the connection, transactions, object ids |
| ``objects`` | R_DATA_MAIN: data objects and replicas |
| ``collections`` | R_COLL_MAIN, R_OBJT_ACCESS |
| ``metadata`` | R_META_MAIN, R_OBJT_METAMAP, R_SPECIFIC_QUERY |
| ``users`` | R_USER_MAIN, R_USER_PASSWORD, R_USER_GROUP, R_USER_AUTH |
| ``quotas`` | R_QUOTA_MAIN |
| ``resources`` | R_RESC_MAIN |
| ``tickets`` | R_TICKET_MAIN, R_TICKET_ALLOWED_HOSTS, R_TICKET_ALLOWED_USERS, R_TICKET_ALLOWED_GROUPS |
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .base import Tables
from .collections import CollectionTables
from .metadata import MetadataTables
from .objects import ObjectTables
from .quotas import QuotaTables
from .resources import ResourceTables
from .tickets import TicketTables
from .schema import (ACCESS, ACCESS_ALIASES, GOOD, INTERMEDIATE, SCHEMA, STALE, STOCK_SPECIFIC_QUERIES, WRITE_LOCKED, AccessLevel,
                     ReplicaStatus, like_prefix, normalize, now, split)
from .users import UserTables

__all__ = ["ACCESS", "ACCESS_ALIASES", "GOOD", "INTERMEDIATE", "STALE", "WRITE_LOCKED", "AccessLevel", "Catalog", "ReplicaStatus",
           "like_prefix", "normalize", "now", "open_catalog", "split"]


class Catalog(ObjectTables, CollectionTables, MetadataTables, UserTables, QuotaTables, ResourceTables, TicketTables,
              Tables):
    """The whole catalogue of one agent: every table family over one connection."""

    _init_lock = threading.Lock()

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


def open_catalog(root: Path) -> Catalog:
    os.makedirs(root, exist_ok=True)
    return Catalog(Path(root) / "catalog.sqlite")
