"""Resources (R_RESC_MAIN) and their hierarchy."""

from __future__ import annotations

import sqlite3

from ..errors import fail
from .base import Tables
from .schema import now

class ResourceTables(Tables):
    """R_RESC_MAIN: leaves and their parents, named as `root;child;leaf` hierarchies."""

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
