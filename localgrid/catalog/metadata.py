"""AVUs (R_META_MAIN, R_OBJT_METAMAP) and the registered specific queries (R_SPECIFIC_QUERY)."""

from __future__ import annotations

from ..errors import fail
from .base import Tables
from .schema import normalize, now

class MetadataTables(Tables):
    """R_META_MAIN, R_OBJT_METAMAP and R_SPECIFIC_QUERY."""

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

    def remove_avu_by_id(self, object_id: int, meta_id: int) -> None:
        self.db.execute("DELETE FROM r_objt_metamap WHERE object_id=? AND meta_id=?", (object_id, meta_id))

    def delete_unused_avus(self) -> None:
        """iadmin rum: drop AVUs no object refers to any more (chlDelUnusedAVUs)."""
        self.db.execute("DELETE FROM r_meta_main WHERE meta_id NOT IN (SELECT meta_id FROM r_objt_metamap)")

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
