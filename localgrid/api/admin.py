"""Administration: users, groups and resources (GENERAL_ADMIN_AN, rsGeneralAdmin.cpp: iadmin's
mkuser/rmuser/moduser, mkgroup/rmgroup/atg/rfg, mkresc/rmresc/addchildtoresc/rmchildfromresc/modresc,
rum) and USER_ADMIN_AN (rsUserAdmin.cpp: a user's own password, mkuser by an admin).

GENERAL_ADMIN_AN carries its arguments as ``arg0``..``arg9``: ``arg0`` the action (add, rm,
modify), ``arg1`` the kind of thing (user, group, resource, ...); each handler below takes the
remaining ones by name.
"""

from __future__ import annotations

import hashlib

from .. import protocol as p
from ..errors import fail
from ..resources import COORDINATING_TYPES, TYPES
from . import api
from .auth import MAX_PASSWORD_LENGTH
from .numbers import ApiNumber
from .session import Session

USER_TYPES = ("rodsuser", "rodsadmin", "rodsgroup", "groupadmin")
# Clients pad short new passwords to 40 characters with this fixed string (db_plugin.cpp).
_PADDING = "1gCBizHWbwIYyWLoysGzTe6SyzqFKMniZX05faZHWAwQKXf6Fs"


def strip_padding(plain: str) -> str:
    if len(plain) == MAX_PASSWORD_LENGTH - 10:
        for k in range(1, 25):
            if plain[k:] == _PADDING[:len(plain) - k]:
                return plain[:k]
    return plain


def _args(msg) -> list[str]:
    body = msg.xml()
    return [p.text(body, f"arg{i}") for i in range(10)]


def _admin_password(ctx: Session) -> str:
    return ctx.cat.password(ctx.user_id)


@api(ApiNumber.GENERAL_ADMIN_AN)
def api_general_admin(ctx: Session, msg):
    action, kind, *rest = _args(msg)
    handler = {("add", "user"): _add_user, ("rm", "user"): _rm_user,
               ("modify", "user"): _modify_user, ("add", "resource"): _add_resource,
               ("rm", "resource"): _rm_resource, ("add", "childtoresc"): _add_child,
               ("rm", "childfromresc"): _rm_child, ("modify", "resource"): _modify_resource,
               ("modify", "group"): _modify_group, ("add", "group"): _add_group,
               ("rm", "group"): _rm_user, ("rm", "unusedAVUs"): _rm_unused_avus,
               ("set-quota", "user"): _set_quota, ("set-quota", "group"): _set_quota,
               ("calculate-usage", ""): _calculate_usage,
               ("add", "specificQuery"): _add_specific_query,
               ("rm", "specificQuery"): _rm_specific_query,
               ("add", "zone"): _add_zone, ("rm", "zone"): _rm_zone,
               }.get((action, kind))
    if not ctx.is_admin():     # apiTable.hpp: GENERAL_ADMIN_AN needs LOCAL_PRIV_USER_AUTH (rsApiHandler.cpp)
        raise fail("SYS_NO_API_PRIV", "GENERAL_ADMIN_AN needs a rodsadmin")
    if handler is None:
        raise fail("SYS_INVALID_INPUT_PARAM", f"admin operation {action} {kind} not supported by the local grid")
    with ctx.cat.transaction():
        handler(ctx, *rest)
    return 0, b""


def _set_quota(ctx: Session, name: str, resource: str, amount: str, *_):
    """iadmin suq/sgq NAME RESOURCE|total BYTES."""
    row = ctx.cat.user(name, ctx.zone)
    if row is None:
        raise fail("CAT_INVALID_USER", name)
    resc_id = 0 if resource in ("", "total") else ctx.res.root(resource)["resc_id"]
    try:
        limit = int(amount)
    except ValueError:
        raise fail("SYS_INVALID_INPUT_PARAM", f"quota {amount!r} is not a number") from None
    ctx.cat.set_quota(row["user_id"], resc_id, limit)


def _calculate_usage(ctx: Session, *_):
    ctx.cat.calculate_usage()


def _add_specific_query(ctx: Session, sql: str, alias: str, *_):
    """iadmin asq SQL [ALIAS]."""
    if not sql.strip():
        raise fail("CAT_INVALID_ARGUMENT", "empty query")
    ctx.cat.add_specific_query(sql, alias)


def _rm_specific_query(ctx: Session, alias_or_sql: str, *_):
    ctx.cat.remove_specific_query(alias_or_sql)


def _rm_unused_avus(ctx: Session, *_):
    """iadmin rum: drop AVUs no object refers to any more (chlDelUnusedAVUs)."""
    ctx.cat.delete_unused_avus()


def _add_group(ctx: Session, name: str, _type: str, zone: str, *_):
    _add_user(ctx, name, "rodsgroup", zone, "")


def _user_zone(ctx: Session, name: str, zone: str = "") -> tuple[str, str]:
    """``name#zone`` or ``name`` and a zone argument: the user's name and a zone the catalogue knows."""
    name, _, suffix = name.partition("#")
    zone = suffix or zone or ctx.zone
    if zone not in ctx.cat.zones():
        raise fail("CAT_INVALID_ZONE", f"no zone {zone}")
    return name, zone


def _add_user(ctx: Session, name: str, utype: str, zone: str, scrambled: str, *_):
    """iadmin mkuser NAME[#ZONE] TYPE: a user of a remote zone gets its home as /local/home/NAME#ZONE."""
    utype = utype or "rodsuser"
    name, zone = _user_zone(ctx, name, zone)
    if utype not in USER_TYPES:
        raise fail("CAT_INVALID_ARGUMENT", f"bad user type {utype}")
    password = None
    if scrambled:
        from irods.password_obfuscation import unscramble
        password = strip_padding(unscramble(scrambled, key=_admin_password(ctx), scramble_prefix=""))
    ctx.cat.add_user(name, utype, zone, password)
    if utype != "rodsgroup":
        name = name if zone == ctx.zone else f"{name}#{zone}"
        home = f"/{ctx.zone}/home/{name}"
        for coll in (home, f"/{ctx.zone}/trash/home/{name}"):
            if ctx.cat.coll(coll) is None:
                cid = ctx.cat.insert_coll(coll, name, ctx.zone)
                ctx.cat.grant(cid, ctx.user_id, "own")


def _rm_user(ctx: Session, name: str, zone: str, *_):
    """iadmin rmuser/rmgroup; as acDeleteUser, a user's empty home and trash go too."""
    row = ctx.cat.user(*_user_zone(ctx, name, zone))
    if row is None:
        raise fail("CAT_INVALID_USER", name)
    if row["user_type_name"] != "rodsgroup":
        home = row["user_name"] if row["zone_name"] == ctx.zone else f"{row['user_name']}#{row['zone_name']}"
        for path in (f"/{ctx.zone}/home/{home}", f"/{ctx.zone}/trash/home/{home}"):
            coll = ctx.cat.coll(path)
            if coll is None:
                continue
            if ctx.cat.has_children(coll["coll_id"], path):
                raise fail("CAT_COLLECTION_NOT_EMPTY", path)
            ctx.cat.delete_collection(coll["coll_id"])
    ctx.cat.delete_user(row["user_id"])


def _modify_user(ctx: Session, name: str, option: str, value: str, *_):
    row = ctx.cat.user(*_user_zone(ctx, name))
    if row is None:
        raise fail("CAT_INVALID_USER", name)
    if option == "password":
        ctx.cat.set_password(row["user_id"], _decode_v2(ctx, value))
    elif option == "addAuth":
        ctx.cat.add_auth_name(row["user_id"], value)
    elif option == "rmAuth":
        ctx.cat.remove_auth_name(row["user_id"], value)
    elif option in ("type", "info", "comment"):
        if option == "type" and value not in USER_TYPES:
            raise fail("CAT_INVALID_ARGUMENT", f"bad user type {value}")
        ctx.cat.set_user_field(row["user_id"], option, value)
    else:
        raise fail("SYS_INVALID_INPUT_PARAM", f"cannot modify user {option}")


def _decode_v2(ctx: Session, scrambled: str) -> str:
    """Undo obfuscate_new_password: scramble_v2 keyed by the admin password and the session signature."""
    from irods.password_obfuscation import unscramble
    key = (_admin_password(ctx)[:90] + ctx.signature[:100]).ljust(100, "\0")
    hashed = hashlib.md5(key.encode()).hexdigest()
    plain = unscramble(scrambled, key=hashed, scramble_prefix="", block_chaining=True)
    return strip_padding(plain[len("A.ObfV2"):])   # a random character, then ".ObfV2"


def _modify_group(ctx: Session, group_name: str, operation: str, user_name: str, user_zone: str, *_):
    group = ctx.cat.user(group_name, ctx.zone)
    member = ctx.cat.user(user_name, user_zone or ctx.zone)
    if group is None or member is None:
        raise fail("CAT_INVALID_USER", "unknown group or user")
    if operation == "add":
        ctx.cat.add_member(group["user_id"], member["user_id"])
    elif operation == "remove":
        ctx.cat.remove_member(group["user_id"], member["user_id"])
    else:
        raise fail("SYS_INVALID_INPUT_PARAM", f"group operation {operation}")


def _add_resource(ctx: Session, name: str, rtype: str, location: str, context: str, *_):
    if rtype not in TYPES:
        raise fail("CAT_INVALID_RESOURCE_TYPE", f"the local grid offers {sorted(TYPES)}")
    host, _, vault = location.partition(":")
    if rtype in COORDINATING_TYPES:
        host, vault = "EMPTY_RESC_HOST", "EMPTY_RESC_PATH"
    else:
        # a vault named by the client must stay inside the grid's directory
        vault = str(ctx.state.vault_root / name)
    if not name or "/" in name or ";" in name:
        raise fail("CAT_INVALID_ARGUMENT", f"bad resource name {name!r}")
    ctx.cat.add_resource(name, rtype, ctx.zone, host or "localhost", vault, context)


def _add_zone(ctx: Session, name: str, kind: str, connection: str = "", comment: str = "", *_):
    """iadmin mkzone NAME remote [HOST:PORT [COMMENT]]: a zone this one knows of (federation itself is not
    offered: no request is ever forwarded there)."""
    if kind != "remote":
        raise fail("CAT_INVALID_ZONE", "only remote zones can be added")
    if not name or "/" in name or "#" in name:
        raise fail("CAT_INVALID_ARGUMENT", f"bad zone name {name!r}")
    ctx.cat.add_zone(name, connection, comment)


def _rm_zone(ctx: Session, name: str, *_):
    if name == ctx.zone:
        raise fail("CAT_INVALID_ZONE", "the local zone cannot be removed")
    ctx.cat.remove_zone(name)


def _rm_resource(ctx: Session, name: str, mode: str = "", *_):
    """iadmin rmresc NAME [--dryrun]: a dry run checks what a removal would and removes nothing."""
    row = ctx.res.root(name)
    if ctx.cat.resource_in_use(row["resc_id"]) or ctx.cat.children(row["resc_id"]):
        raise fail("CAT_RESOURCE_NOT_EMPTY", name)
    if row["resc_parent"]:
        raise fail("SYS_NOT_ALLOWED", f"{name} still has a parent")
    if mode != "--dryrun":
        ctx.cat.delete_resource(row["resc_id"])


def _add_child(ctx: Session, parent_name: str, child_name: str, context: str, *_):
    parent, child = ctx.res.root(parent_name), ctx.res.root(child_name)
    if parent["resc_type_name"] not in COORDINATING_TYPES:
        raise fail("SYS_NOT_ALLOWED", f"{parent_name} is a storage resource and cannot have children")
    if child["resc_parent"]:
        raise fail("SYS_NOT_ALLOWED", f"{child_name} already has a parent")
    if parent["resc_type_name"] == "passthru" and ctx.cat.children(parent["resc_id"]):
        raise fail("SYS_NOT_ALLOWED", "a passthru resource takes one child")
    anc = parent
    while anc is not None:
        if anc["resc_id"] == child["resc_id"]:
            raise fail("HIERARCHY_ERROR", "a resource cannot be its own ancestor")
        anc = ctx.cat.resource_by_id(int(anc["resc_parent"])) if anc["resc_parent"] else None
    ctx.cat.set_parent(child["resc_id"], parent["resc_id"], context)


def _rm_child(ctx: Session, parent_name: str, child_name: str, *_):
    parent, child = ctx.res.root(parent_name), ctx.res.root(child_name)
    if child["resc_parent"] != str(parent["resc_id"]):
        raise fail("SYS_NOT_ALLOWED", f"{child_name} is not a child of {parent_name}")
    ctx.cat.set_parent(child["resc_id"], None)


def _modify_resource(ctx: Session, name: str, option: str, value: str, *_):
    row = ctx.res.root(name)
    if option not in ctx.cat.RESOURCE_FIELDS:
        raise fail("SYS_INVALID_INPUT_PARAM", f"cannot modify resource {option}")
    ctx.cat.set_resource_field(row["resc_id"], option, value)


def _require_group_admin(ctx: Session) -> None:
    if ctx.user_type not in ("rodsadmin", "groupadmin"):
        raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "needs rodsadmin or groupadmin")


@api(ApiNumber.USER_ADMIN_AN)
def api_user_admin(ctx: Session, msg):
    """iRODS's user-level administration: one's own password; a groupadmin's users and groups.

    As chlModGroup, a groupadmin changes the members of a group it belongs to, or of a group
    with no members yet (so it can add itself to a group it just made)."""
    args = _args(msg)
    action, target, option, value, *_ = args
    if action == "mkuser":
        _require_group_admin(ctx)
        name, _, zone = target.partition("#")
        with ctx.cat.transaction():
            _add_user(ctx, name, "rodsuser", zone or ctx.zone, option)
        return 0, b""
    if action == "mkgroup":
        _require_group_admin(ctx)
        with ctx.cat.transaction():
            _add_user(ctx, target, "rodsgroup", ctx.zone, "")
        return 0, b""
    if action == "modify" and target == "group":
        _, _, group_name, operation, user_name, user_zone, *_ = args
        _require_group_admin(ctx)
        with ctx.cat.transaction():
            group = ctx.cat.user(group_name, ctx.zone)
            if group is None or group["user_type_name"] != "rodsgroup":
                raise fail("CAT_INVALID_GROUP", f"no group {group_name}")
            members = ctx.cat.members(group["user_id"])
            if not ctx.is_admin() and members and ctx.user_id not in members:
                raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", f"{ctx.user} is not a member of {group_name}")
            _modify_group(ctx, group_name, operation, user_name, user_zone)
        return 0, b""
    if action != "userpw" or option != "password":
        raise fail("SYS_INVALID_INPUT_PARAM", f"user admin operation {action} not supported")
    if target != ctx.user and not ctx.is_admin():
        raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "can only change one's own password")
    password = _decode_v2(ctx, value)
    with ctx.cat.transaction():
        row = ctx.cat.user(target, ctx.zone)
        ctx.cat.set_password(row["user_id"], password)
    return 0, b""
