"""What a handler is given: the agent of one client connection, declared once.

Every handler is a function ``handler(ctx: Session, msg)``; what it may read or change of
the connection is listed here, and nothing else is shared between the API families (a
family calls another's functions by importing them).  ``localgrid.agent.Agent`` is the
one implementation, as the server's ``RsComm`` plus its L1 descriptor table.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import sqlite3

    from ..catalog import AccessLevel, Catalog
    from ..catalog.genquery import QueryEngine
    from ..link import Link
    from ..resources import Resources
    from ..state import GridState
    from .data_objects import Descriptor


class Session(Protocol):
    state: GridState             # what the agents of one server share
    sock: socket.socket
    cat: Catalog                 # this agent's catalogue connection
    queries: QueryEngine         # its GenQuery statements (a read connection of their own)
    res: Resources
    link: Link                   # the connection's shaped link
    zone: str
    proxy: tuple[str, str]       # (user, zone) of the startup pack
    client: tuple[str, str]
    user: str | None             # who logged in (None before authentication)
    user_id: int | None
    user_type: str
    groups: list[int]            # the user's id and its groups' ids
    ticket: str                  # the session ticket, "" if none
    challenge: bytes
    signature: str
    descriptors: dict[int, Descriptor]   # open data objects (the L1 descriptor table)

    def is_admin(self) -> bool: ...
    def require_admin(self) -> None: ...
    def require(self, object_id: int, level: AccessLevel, what: str) -> None: ...
    def replicas_or_fail(self, path: str, level: AccessLevel, missing: str = ...) -> list[sqlite3.Row]: ...
    def coll_or_fail(self, path: str) -> sqlite3.Row: ...
    def trash_path(self, path: str) -> str: ...
    def ensure_colls(self, path: str) -> None: ...
    def validate_logical_path(self, path: str) -> None: ...
