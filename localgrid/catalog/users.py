"""Users and groups (R_USER_MAIN, R_USER_PASSWORD, R_USER_GROUP, R_USER_AUTH)."""

from __future__ import annotations

import sqlite3

from ..errors import fail
from .base import Tables
from .schema import now

class UserTables(Tables):
    """Users, groups, passwords, memberships and auth names."""

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

    def add_member(self, group_id: int, user_id: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO r_user_group VALUES (?, ?)", (group_id, user_id))

    def members(self, group_id: int) -> list[int]:
        """The users of a group (not the group's own membership row)."""
        return [r[0] for r in self.db.execute("SELECT user_id FROM r_user_group WHERE group_user_id=? AND user_id<>?",
                                              (group_id, group_id))]

    def remove_member(self, group_id: int, user_id: int) -> None:
        self.db.execute("DELETE FROM r_user_group WHERE group_user_id=? AND user_id=?", (group_id, user_id))
