"""The grid's APIs, one module per family, as the server keeps one ``rs*.cpp`` per API.

Each handler is a function ``handler(ctx, msg)`` registered with ``@api(ApiNumber.X)`` under
the server's own API name; ``ctx`` is the connection's agent, whose parts a handler may use are
declared once in ``session.Session``.  ``localgrid.agent.Agent`` dispatches a request to
``HANDLERS[api_number](agent, message)``.  A handler returns ``(int_info, packed_body)`` or
``None`` when it streamed its own reply, and raises ``IrodsError`` (``fail("NAME")``) for an
iRODS error.  A family that needs another's helper imports it (``copies`` holds the byte copy
between replicas that replication and a replicating resource's close share).

| module | APIs |
|---|---|
| ``auth`` | AUTHENTICATION_APN, AUTH_REQUEST_AN, AUTH_RESPONSE_AN |
| ``collections`` | COLL_CREATE_AN, RM_COLL_AN, DATA_OBJ_RENAME_AN, DATA_OBJ_UNLINK_AN |
| ``data_objects`` | DATA_OBJ_CREATE/OPEN/READ/WRITE/LSEEK/CLOSE_AN, REPLICA_CLOSE_APN, GET_FILE_DESCRIPTOR_INFO_APN |
| ``replicas`` | DATA_OBJ_REPL_AN, DATA_OBJ_TRIM_AN, DATA_OBJ_TRUNCATE_AN, REPLICA_TRUNCATE_AN, TOUCH_APN, DATA_OBJ_COPY_AN |
| ``metadata`` | MOD_AVU_METADATA_AN, ATOMIC_APPLY_METADATA_OPERATIONS_APN, MOD_ACCESS_CONTROL_AN, MOD_DATA_OBJ_META_AN |
| ``checksums`` | DATA_OBJ_CHKSUM_AN |
| ``copies`` | (no API: a replica's bytes copied to another replica) |
| ``queries`` | GEN_QUERY_AN, SPECIFIC_QUERY_AN, OBJ_STAT_AN |
| ``admin`` | GENERAL_ADMIN_AN, USER_ADMIN_AN |
| ``tickets`` | TICKET_ADMIN_AN |
"""

from __future__ import annotations

from typing import Callable

from .numbers import ApiNumber

HANDLERS: dict[ApiNumber, Callable] = {}


def api(number: ApiNumber) -> Callable[[Callable], Callable]:
    """Register the decorated method as the handler of ``number``."""

    def register(method: Callable) -> Callable:
        if number in HANDLERS:
            raise RuntimeError(f"{number.name} has two handlers")
        HANDLERS[number] = method
        return method

    return register


# Importing the families registers their handlers (after ``api`` exists: they import it from here).
from . import admin, auth, checksums, collections, data_objects, metadata, queries, replicas, tickets  # noqa: E402,F401
