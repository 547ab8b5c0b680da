"""Tickets (R_TICKET_MAIN and its allowed hosts, users and groups), as chlModTicket keeps them.

A ticket lets whoever presents its string read (or, a write ticket, modify) one data object or
everything below one collection, within its limits: an expiry, a number of uses, and lists of
the hosts, users and groups it is for.
"""

from __future__ import annotations

import sqlite3

from .base import Tables
from .schema import like_prefix, now

LIMITS = {"uses": "uses_limit", "write-file": "write_file_limit", "write-bytes": "write_byte_limit",
          "expire": "ticket_expiry_ts"}
LISTS = {"host": ("r_ticket_allowed_hosts", "host"), "user": ("r_ticket_allowed_users", "user_name"),
         "group": ("r_ticket_allowed_groups", "group_name")}


class TicketTables(Tables):
    """R_TICKET_MAIN, R_TICKET_ALLOWED_HOSTS, R_TICKET_ALLOWED_USERS, R_TICKET_ALLOWED_GROUPS."""

    def add_ticket(self, string: str, kind: str, user_id: int, object_id: int, object_type: str) -> int:
        ticket_id, ts = self.new_id(), now()
        self.db.execute("INSERT INTO r_ticket_main (ticket_id, ticket_string, ticket_type, user_id, object_id,"
                        " object_type, create_ts, modify_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (ticket_id, string, kind, user_id, object_id, object_type, ts, ts))
        return ticket_id

    def ticket(self, string: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM r_ticket_main WHERE ticket_string=?", string)

    def delete_ticket(self, ticket_id: int) -> None:
        self.db.execute("DELETE FROM r_ticket_main WHERE ticket_id=?", (ticket_id,))
        for table, _ in LISTS.values():
            self.db.execute(f"DELETE FROM {table} WHERE ticket_id=?", (ticket_id,))

    def set_ticket_limit(self, ticket_id: int, what: str, value: str) -> None:
        """iticket mod TICKET uses|write-file|write-bytes|expire VALUE."""
        self.db.execute(f"UPDATE r_ticket_main SET {LIMITS[what]}=?, modify_ts=? WHERE ticket_id=?",
                        (value, now(), ticket_id))

    def change_ticket_list(self, ticket_id: int, what: str, value: str, add: bool) -> None:
        """iticket mod TICKET add|remove host|user|group NAME."""
        table, column = LISTS[what]
        if add:
            self.db.execute(f"INSERT OR IGNORE INTO {table} (ticket_id, {column}) VALUES (?, ?)", (ticket_id, value))
        else:
            self.db.execute(f"DELETE FROM {table} WHERE ticket_id=? AND {column}=?", (ticket_id, value))
        self.db.execute("UPDATE r_ticket_main SET modify_ts=? WHERE ticket_id=?", (now(), ticket_id))

    def ticket_list(self, ticket_id: int, what: str) -> list[str]:
        table, column = LISTS[what]
        return [r[0] for r in self.db.execute(f"SELECT {column} FROM {table} WHERE ticket_id=?", (ticket_id,))]

    def count_ticket_use(self, ticket_id: int) -> None:
        self.db.execute("UPDATE r_ticket_main SET uses_count = uses_count + 1 WHERE ticket_id=?", (ticket_id,))

    def ticket_covers(self, ticket: sqlite3.Row, object_id: int) -> bool:
        """Whether the ticket's object is ``object_id``, or a collection holding it at any depth."""
        if ticket["object_id"] == object_id:
            return True
        if ticket["object_type"] != "collection":
            return False
        top = self.one("SELECT coll_name FROM r_coll_main WHERE coll_id=?", ticket["object_id"])
        if top is None:
            return False
        below = like_prefix(top[0].rstrip("/"))
        return self.one("SELECT 1 FROM r_coll_main WHERE coll_id=? AND coll_name LIKE ? ESCAPE '\\'"
                        " UNION SELECT 1 FROM r_data_main d JOIN r_coll_main c ON c.coll_id = d.coll_id"
                        " WHERE d.data_id=? AND (c.coll_id=? OR c.coll_name LIKE ? ESCAPE '\\')",
                        object_id, below, object_id, ticket["object_id"], below) is not None
