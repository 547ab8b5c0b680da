"""Tickets: TICKET_ADMIN_AN (iticket), as rsTicketAdmin.cpp and chlModTicket answer it.

``create`` issues a read or write ticket on a data object or a collection the caller owns; ``mod``
sets its limits (uses, write-file, write-bytes, expire) and its allowed hosts, users and groups;
``delete`` removes it; ``session`` makes it the connection's ticket, through which ``require``
grants access.  A user acts on their own tickets; a rodsadmin on anyone's with ``irodsAdmin``.
"""

from __future__ import annotations

import calendar
import socket
import time

from .. import protocol as p
from ..catalog import AccessLevel, normalize
from ..errors import fail
from . import api
from .numbers import ApiNumber
from .session import Session


def _args(msg) -> list[str]:
    body = msg.xml()
    return [(body.findtext(f"arg{i}") or "") for i in range(1, 7)]


@api(ApiNumber.TICKET_ADMIN_AN)
def api_ticket_admin(ctx: Session, msg):
    op, string, arg3, arg4, arg5, _ = _args(msg)
    kv = p.keyvals(msg.xml())
    if op == "session":
        if ctx.cat.ticket(string) is None:
            raise fail("CAT_TICKET_INVALID", "no such ticket")
        ctx.ticket = string
        return 0, b""
    as_admin = "irodsAdmin" in kv
    if as_admin and not ctx.is_admin():
        raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", f"User [{ctx.user}] is not a rodsadmin.")
    with ctx.cat.transaction():
        if op == "create":
            _create_ticket(ctx, string, arg3, arg4)
            return 0, b""
        ticket = ctx.cat.ticket(string)
        if ticket is None or (ticket["user_id"] != ctx.user_id and not as_admin):
            raise fail("CAT_TICKET_INVALID", string)
        if op == "delete":
            ctx.cat.delete_ticket(ticket["ticket_id"])
        elif op == "mod":
            _modify_ticket(ctx, ticket["ticket_id"], arg3, arg4, arg5)
        else:
            raise fail("CAT_INVALID_ARGUMENT", f"unknown ticket operation {op!r}")
    return 0, b""


def _create_ticket(ctx: Session, string: str, kind: str, path: str) -> None:
    if not string or string.lstrip("-").isdigit():
        raise fail("CAT_TICKET_INVALID", "ticket string cannot be a number")
    if ctx.cat.ticket(string) is not None:
        raise fail("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", "ticket exists")
    path = normalize(path)
    reps = ctx.cat.replicas(path)
    if reps:
        object_id, object_type = reps[0]["data_id"], "data"
    else:
        coll = ctx.cat.coll(path)
        if coll is None:
            raise fail("CAT_UNKNOWN_COLLECTION", path)
        object_id, object_type = coll["coll_id"], "collection"
    ctx.require(object_id, AccessLevel.OWN, path)
    ctx.cat.add_ticket(string, "write" if kind.startswith("write") else "read", ctx.user_id, object_id,
                        object_type)


def _modify_ticket(ctx: Session, ticket_id: int, what: str, arg: str, value: str) -> None:
    if what in ("uses", "write-file", "write-bytes"):
        if not arg.lstrip("-").isdigit():
            raise fail("SYS_INVALID_INPUT_PARAM", f"{what} takes a number, not {arg!r}")
        ctx.cat.set_ticket_limit(ticket_id, what, arg)
    elif what == "expire":
        ctx.cat.set_ticket_limit(ticket_id, what, "" if arg in ("", "0") else "%011d" % _epoch(arg))
    elif what in ("add", "remove") and arg in ("host", "user", "group"):
        if arg == "user" and ctx.cat.user(value, ctx.zone) is None:
            raise fail("CAT_INVALID_USER", value)
        if arg == "group" and (ctx.cat.user(value, ctx.zone) or {"user_type_name": ""})["user_type_name"] \
                != "rodsgroup":
            raise fail("CAT_INVALID_GROUP", value)
        if arg == "host":
            try:
                value = socket.gethostbyname(value)
            except OSError:
                raise fail("SYS_INVALID_INPUT_PARAM", f"unknown host {value!r}") from None
        ctx.cat.change_ticket_list(ticket_id, arg, value, add=what == "add")
    else:
        raise fail("CAT_INVALID_ARGUMENT", f"unknown ticket modification {what!r}")


def _epoch(text: str) -> int:
    """An expiry as epoch seconds or as iticket's ``YYYY-MM-DD.hh:mm:ss`` (UTC)."""
    if text.isdigit():
        return int(text)
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%d.%H:%M:%S"))
    except ValueError:
        raise fail("SYS_INVALID_INPUT_PARAM", f"cannot read the expiry {text!r}") from None
