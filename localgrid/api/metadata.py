"""Metadata and access control: AVUs (MOD_AVU_METADATA_AN, rsModAVUMetadata.cpp; the atomic JSON
form ATOMIC_APPLY_METADATA_OPERATIONS_APN, rs_atomic_apply_metadata_operations.cpp) and ACLs
(MOD_ACCESS_CONTROL_AN, rsModAccessControl.cpp).
"""

from __future__ import annotations

from .. import protocol as p
from ..catalog import AccessLevel, normalize
from ..errors import IrodsError, fail
from . import api
from .numbers import ApiNumber
from .session import Session


@api(ApiNumber.MOD_AVU_METADATA_AN)
def api_mod_avu(ctx: Session, msg):
    body = msg.xml()
    args = [p.text(body, f"arg{i}") for i in range(10)]
    op, kind, name, attr, value, unit = args[:6]
    if op == "cp":
        return _copy_avus(ctx, *args[1:5])
    with ctx.cat.transaction():
        obj = ctx.cat.avu_targets(kind, name, ctx.zone)
        if kind in ("-d", "-C"):
            ctx.require(obj, AccessLevel.CREATE_METADATA, name)
        elif not ctx.is_admin() and not (kind == "-u" and name.split("#")[0] == ctx.user):
            raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "needs rodsadmin")
        if op in ("add", "adda"):
            if not attr or not value:
                raise fail("CAT_INVALID_ARGUMENT", "attribute and value must be non-empty")
            ctx.cat.add_avu(obj, attr, value, unit)
        elif op in ("rm", "rmw"):
            if ctx.cat.remove_avu(obj, attr, value, unit, wildcard=(op == "rmw")) == 0 and op == "rm":
                raise fail("CAT_SUCCESS_BUT_WITH_NO_INFO", "no such AVU")
        elif op == "rmi":
            ctx.cat.remove_avu_by_id(obj, int(attr))
        elif op == "set":
            ctx.cat.set_avu(obj, attr, value, unit)
        elif op == "mod":
            if ctx.cat.remove_avu(obj, attr, value, unit) == 0:
                raise fail("CAT_SUCCESS_BUT_WITH_NO_INFO", "no such AVU")
            new = {"n": attr, "v": value, "u": unit}
            for extra in args[6:]:
                if len(extra) > 2 and extra[1] == ":" and extra[0] in new:
                    new[extra[0]] = extra[2:]
            ctx.cat.add_avu(obj, new["n"], new["v"], new["u"])
        else:
            raise fail("CAT_INVALID_ARGUMENT", f"unknown metadata operation {op!r}")
    return 0, b""


def _copy_avus(ctx: Session, from_kind: str, to_kind: str, from_name: str, to_name: str):
    with ctx.cat.transaction():
        source = ctx.cat.avu_targets(from_kind, from_name, ctx.zone)
        target = ctx.cat.avu_targets(to_kind, to_name, ctx.zone)
        if from_kind in ("-d", "-C"):
            ctx.require(source, AccessLevel.READ_METADATA, from_name)
        if to_kind in ("-d", "-C"):
            ctx.require(target, AccessLevel.CREATE_METADATA, to_name)
        elif not ctx.is_admin():
            raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "needs rodsadmin")
        ctx.cat.copy_avus(source, target)
    return 0, b""

_ENTITY_KINDS = {"data_object": "-d", "collection": "-C", "resource": "-R", "user": "-u"}


@api(ApiNumber.ATOMIC_APPLY_METADATA_OPERATIONS_APN)
def api_atomic_metadata(ctx: Session, msg):
    """ATOMIC_APPLY_METADATA_OPERATIONS_APN: all operations in one transaction, or none.

    As rs_atomic_apply_metadata_operations: adding an AVU the object already has and
    removing one it lacks are no-ops; a failing operation rolls everything back and the
    reply carries {"operation", "operation_index", "error_message"}.
    """
    req = p.json_request(msg.xml())

    def error(name: str, text: str, op=None, index: int = 0):
        return fail(name, text, p.pack_json({"operation": op or {}, "operation_index": index,
                                            "error_message": text}))

    kind = _ENTITY_KINDS.get(req.get("entity_type"))
    name = req.get("entity_name")
    if kind is None or not isinstance(name, str):
        raise error("SYS_INVALID_INPUT_PARAM", "Invalid entity type or name")
    operations = req.get("operations")
    if not isinstance(operations, list):
        raise error("SYS_INTERNAL_ERR", "operations must be a list")
    with ctx.cat.transaction():
        try:
            obj = ctx.cat.avu_targets(kind, name, ctx.zone)
        except IrodsError:
            raise error("SYS_INVALID_INPUT_PARAM", f"Entity does not exist [entity_name={name}]") from None
        allowed = ctx.is_admin() or (kind in ("-d", "-C") and ctx.cat.access_level(obj, ctx.groups) >=
                                         AccessLevel.CREATE_METADATA)
        if not allowed:
            raise error("CAT_NO_ACCESS_PERMISSION", "User not allowed to modify metadata")
        for index, op in enumerate(operations):
            if not isinstance(op, dict) or not all(isinstance(op.get(k), str) for k in ("operation", "attribute",
                                                                                        "value")):
                raise error("JSON_VALIDATION_ERROR", "operation lacks operation, attribute or value", op, index)
            attr, value, units = op["attribute"], op["value"], op.get("units", "")
            if not isinstance(units, str):
                raise error("JSON_VALIDATION_ERROR", "units must be a string", op, index)
            if not attr or not value:
                raise error("SYS_INVALID_INPUT_PARAM", "Empty metadata attribute name or value", op, index)
            if op["operation"] == "add":
                ctx.cat.add_avu(obj, attr, value, units, exist_ok=True)
            elif op["operation"] == "remove":
                ctx.cat.remove_avu(obj, attr, value, units)
            else:
                raise error("INVALID_OPERATION", "Invalid metadata operation.", op, index)
    return 0, p.pack_json({})


@api(ApiNumber.MOD_ACCESS_CONTROL_AN)
def api_mod_acl(ctx: Session, msg):
    body = msg.xml()
    level = p.text(body, "accessLevel")
    user, zone = p.text(body, "userName"), p.text(body, "zone") or ctx.zone
    path = normalize(p.text(body, "path"))
    recursive = p.integer(body, "recursiveFlag") == 1
    admin_mode = level.startswith("admin:")
    level = level.split(":", 1)[1] if admin_mode else level
    if admin_mode:
        ctx.require_admin()
    with ctx.cat.transaction():
        coll = ctx.cat.coll(path)
        reps = ctx.cat.replicas(path) if coll is None else []
        if coll is None and not reps:
            raise fail("CAT_UNKNOWN_FILE", path)
        targets = [coll["coll_id"]] if coll is not None else [reps[0]["data_id"]]
        if coll is not None and recursive:
            colls = ctx.cat.subcollection_ids(path)
            targets += colls + ctx.cat.data_ids_in([coll["coll_id"]] + colls)
        for t in targets:
            ctx.require(t, AccessLevel.OWN, path)
        if level in ("inherit", "noinherit"):
            if coll is None:
                raise fail("CAT_INVALID_ARGUMENT", "inheritance applies to collections")
            for t in targets:
                if ctx.cat.is_collection_id(t):
                    ctx.cat.set_inheritance(t, level == "inherit")
            return 0, b""
        row = ctx.cat.user(user, zone)
        if row is None:
            raise fail("CAT_INVALID_USER", f"unknown user {user}")
        for t in targets:
            ctx.cat.grant(t, row["user_id"], level)
    return 0, b""

# Keywords of MOD_DATA_OBJ_META's regParam and the replica columns they set (rsModDataObjMeta.cpp).
DATA_OBJ_META_KEYWORDS = {"dataComments": "r_comment", "dataExpiry": "data_expiry", "dataType": "data_type_name",
                          "dataSize": "data_size", "dataModify": "modify_ts", "dataCreate": "create_ts",
                          "chksum": "data_checksum", "dataMode": "data_mode", "version": "data_version",
                          "statusString": "data_status", "replStatus": "data_is_dirty"}
TIMESTAMPS = ("modify_ts", "create_ts", "data_expiry")


@api(ApiNumber.MOD_DATA_OBJ_META_AN)
def api_mod_data_obj_meta(ctx: Session, msg):
    """Set system metadata of a replica (rescHier, rescName or replNum) or, with ``all``, of every replica."""
    body = msg.xml()
    info = body.find("DataObjInfo_PI")
    if info is None:
        raise p.ProtocolError("MOD_DATA_OBJ_META needs a DataObjInfo_PI")
    path = normalize(p.text(info, "objPath"))
    params = p.keyvals(body)
    columns = {}
    for keyword, value in params.items():
        column = DATA_OBJ_META_KEYWORDS.get(keyword)
        if column is None:
            continue
        if column in TIMESTAMPS and value.strip().isdigit():
            value = "%011d" % int(value)
        elif column in ("data_size", "data_is_dirty"):
            try:
                value = int(value)
            except ValueError:
                raise fail("SYS_INVALID_INPUT_PARAM", f"{keyword} must be an integer") from None
        columns[column] = value
    if not columns:
        raise fail("SYS_INVALID_INPUT_PARAM", "no metadata to modify")
    with ctx.cat.transaction():
        reps = ctx.replicas_or_fail(path, AccessLevel.MODIFY_OBJECT, "OBJ_PATH_DOES_NOT_EXIST")
        hier, resc = p.text(info, "rescHier"), p.text(info, "rescName")
        if "all" in params:
            targets = reps
        elif hier:
            leaf = ctx.res.root(hier.split(";")[-1])
            targets = [r for r in reps if r["resc_id"] == leaf["resc_id"]]
        elif resc:
            under = ctx.res.under(resc)
            targets = [r for r in reps if r["resc_id"] in under]
        else:
            targets = [r for r in reps if r["data_repl_num"] == p.integer(info, "replNum")]
        if not targets:
            raise fail("SYS_REPLICA_DOES_NOT_EXIST", f"no such replica of {path}")
        for r in targets:
            ctx.cat.update_replica(r["data_id"], r["data_repl_num"], **columns)
    return 0, b""
