"""Authentication: the 4.3 JSON flow (AUTHENTICATION_APN) and the legacy challenge-response.

native scheme: the server sends 64 random printable bytes; the client answers the MD5 of
them followed by the password padded to MAX_PASSWORD_LEN (rsAuthRequest.cpp, rsAuthCheck.cpp).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import struct

from .. import protocol as p
from ..errors import fail
from . import api
from .numbers import ApiNumber
from .session import Session

MAX_PASSWORD_LENGTH = 50


def _check_user(ctx: Session, name: str, zone: str) -> None:
    row = ctx.cat.user(name, zone or ctx.zone)
    if row is None or row["user_type_name"] == "rodsgroup":
        raise fail("CAT_INVALID_USER", f"unknown user {name}#{zone}")


def _verify(ctx: Session, name: str, zone: str, digest: bytes) -> None:
    row = ctx.cat.user(name, zone or ctx.zone)
    if row is None or row["user_type_name"] == "rodsgroup":
        raise fail("CAT_INVALID_USER", f"unknown user {name}")
    password = (row["rcat_password"] or "").encode()
    expected = hashlib.md5(ctx.challenge + struct.pack(f"{MAX_PASSWORD_LENGTH}s", password)).digest()
    expected = expected.replace(b"\0", b"\1")
    anonymous = row["user_name"] == "anonymous"     # chlCheckAuth: the anonymous user needs no password
    if not anonymous and (not row["rcat_password"] or not secrets.compare_digest(expected, digest[:16])):
        ctx.state.counters.count("auth_failures")
        raise fail("CAT_INVALID_AUTHENTICATION", "authentication failed")
    login(ctx, row)


def login(ctx: Session, row) -> None:
    ctx.user, ctx.user_id, ctx.user_type = row["user_name"], row["user_id"], row["user_type_name"]
    client_name, client_zone = ctx.client
    if ctx.user_type == "rodsadmin" and client_name and client_name != ctx.user:
        other = ctx.cat.user(client_name, client_zone or ctx.zone)
        if other is None:
            raise fail("CAT_INVALID_USER", f"unknown client user {client_name}")
        ctx.user, ctx.user_id, ctx.user_type = other["user_name"], other["user_id"], other["user_type_name"]
    ctx.groups = ctx.cat.group_ids(ctx.user_id) + [ctx.user_id]
    ctx.state.counters.count("logins")


def _new_challenge(ctx: Session) -> bytes:
    ctx.challenge = secrets.token_hex(32).encode()   # 64 printable bytes, as get64RandomBytes
    ctx.signature = ctx.challenge[:16].hex()
    return ctx.challenge


@api(ApiNumber.AUTHENTICATION_APN)
def api_authenticate(ctx: Session, msg):
    req = p.json_request(msg.xml())
    if req.get("scheme") != "native":
        raise fail("SYS_INVALID_INPUT_PARAM", f"authentication scheme {req.get('scheme')!r} not offered")
    op = req.get("next_operation")
    name, zone = req.get("user_name", ""), req.get("zone_name", "")
    if op == "auth_agent_start":
        return 0, p.pack_json(req)
    if op == "auth_agent_auth_request":
        _check_user(ctx, name, zone)
        resp = dict(req, request_result=_new_challenge(ctx).decode())
        return 0, p.pack_json(resp)
    if op == "auth_agent_auth_response":
        if not ctx.challenge:
            raise fail("CAT_INVALID_AUTHENTICATION", "no challenge issued")
        try:
            digest = base64.b64decode(req.get("digest", ""))
        except ValueError:
            raise fail("CAT_INVALID_AUTHENTICATION", "bad digest") from None
        _verify(ctx, name, zone, digest)
        return 0, p.pack_json({})
    raise fail("SYS_INVALID_INPUT_PARAM", f"unknown auth operation {op!r}")


@api(ApiNumber.AUTH_REQUEST_AN)
def api_auth_request(ctx: Session, msg):
    return 0, p.pack("authRequestOut_PI", [("challenge", p.Bin(_new_challenge(ctx)))])


@api(ApiNumber.AUTH_RESPONSE_AN)
def api_auth_response(ctx: Session, msg):
    body = msg.xml()
    try:
        digest = base64.b64decode(p.text(body, "response"))
    except ValueError:
        raise fail("CAT_INVALID_AUTHENTICATION", "bad response") from None
    user = p.text(body, "username")
    name, _, zone = user.partition("#")
    if not ctx.challenge:
        raise fail("CAT_INVALID_AUTHENTICATION", "no challenge issued")
    _verify(ctx, name, zone, digest)
    return 0, b""
