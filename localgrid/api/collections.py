"""The name space: create (COLL_CREATE_AN), remove (RM_COLL_AN) and rename (DATA_OBJ_RENAME_AN, which moves
data objects too) collections, unlink data objects (DATA_OBJ_UNLINK_AN), as rsCollCreate.cpp, rsRmColl.cpp,
rsDataObjRename.cpp and rsDataObjUnlink.cpp.

A rename, and a remove to the trash (a rename too), moves the files of the replicas in their
vaults to the paths of the new names in the same transaction (syncCollPhyPath,
syncDataObjPhyPath): a file left at the old path would be overwritten by the next object
created under the old name.
"""

from __future__ import annotations

from pathlib import Path

from .. import protocol as p
from ..catalog import AccessLevel, normalize, now, split
from ..errors import fail
from ..vault import renaming
from . import api
from .data_objects import try_lock
from .numbers import ApiNumber, OprType
from .requests import open_request
from .session import Session


@api(ApiNumber.COLL_CREATE_AN)
def api_coll_create(ctx: Session, msg):
    body = msg.xml()
    path = normalize(p.text(body, "collName"))
    kv = p.keyvals(body)
    recursive = "recursiveOpr" in kv
    ctx.validate_logical_path(path)
    with ctx.cat.transaction():
        kind = ctx.cat.kind(path)
        if kind == "data":
            raise fail("CAT_NAME_EXISTS_AS_DATAOBJ", path)
        if kind == "coll":
            if recursive:
                return 0, b""
            raise fail("CAT_NAME_EXISTS_AS_COLLECTION", path)
        parent = split(path)[0]
        if ctx.cat.coll(parent) is None:
            if not recursive:
                raise fail("CAT_UNKNOWN_COLLECTION", f"no parent collection {parent}")
            anc = parent
            while ctx.cat.coll(anc) is None:
                anc = split(anc)[0]
            ctx.require(ctx.cat.coll(anc)["coll_id"], AccessLevel.MODIFY_OBJECT, anc)
            ctx.ensure_colls(path)
        else:
            ctx.require(ctx.cat.coll(parent)["coll_id"], AccessLevel.MODIFY_OBJECT, parent)
            ctx.cat.insert_coll(path, ctx.user, ctx.zone)
    return 0, b""


@api(ApiNumber.RM_COLL_AN)
def api_rm_coll(ctx: Session, msg):
    body = msg.xml()
    path = normalize(p.text(body, "collName"))
    kv = p.keyvals(body)
    with renaming(ctx.cat) as moves:
        row = ctx.coll_or_fail(path)
        ctx.require(row["coll_id"], AccessLevel.OWN, path)
        if path.count("/") <= 3 and not ctx.is_admin():
            raise fail("SYS_NOT_ALLOWED", f"cannot remove {path}")
        if ctx.cat.has_children(row["coll_id"], path) and "recursiveOpr" not in kv:
            raise fail("CAT_COLLECTION_NOT_EMPTY", path)
        if "forceFlag" in kv or path.startswith(f"/{ctx.zone}/trash/"):
            files = ctx.cat.delete_tree(path)
        else:
            ctx.ensure_colls(split(target := ctx.trash_path(path))[0])
            ctx.cat.rename_collection(path, target)
            moves.sync(ctx.cat.placements_below(target))
            files = []
    for f in files:
        f.unlink(missing_ok=True)
    return 0, b""


@api(ApiNumber.DATA_OBJ_RENAME_AN)
def api_rename(ctx: Session, msg):
    body = msg.xml()
    parts = body.findall("DataObjInp_PI")
    if len(parts) != 2:
        raise p.ProtocolError("rename needs source and destination")
    src_el, dst_el = parts
    src, dst = normalize(p.text(src_el, "objPath")), normalize(p.text(dst_el, "objPath"))
    opr = p.integer(src_el, "oprType")
    with renaming(ctx.cat) as moves:
        kind = ctx.cat.kind(src)
        if kind is None or (opr == OprType.RENAME_DATA_OBJ and kind != "data") or \
                (opr == OprType.RENAME_COLL and kind != "coll"):
            raise fail("CAT_UNKNOWN_FILE" if opr != OprType.RENAME_COLL else "CAT_UNKNOWN_COLLECTION", src)
        existing = ctx.cat.kind(dst)
        if existing:
            raise fail("CAT_NAME_EXISTS_AS_DATAOBJ" if existing == "data" else "CAT_NAME_EXISTS_AS_COLLECTION",
                       dst)
        parent = ctx.coll_or_fail(split(dst)[0])
        ctx.require(parent["coll_id"], AccessLevel.MODIFY_OBJECT, parent["coll_name"])
        if kind == "coll":
            if dst.startswith(src + "/"):
                raise fail("SYS_NOT_ALLOWED", "cannot move a collection into itself")
            ctx.require(ctx.cat.coll(src)["coll_id"], AccessLevel.OWN, src)
            ctx.cat.rename_collection(src, dst)
            moves.sync(ctx.cat.placements_below(dst))
        else:
            data_id = ctx.cat.replicas(src)[0]["data_id"]
            ctx.require(data_id, AccessLevel.OWN, src)
            ctx.cat.update_data_object(data_id, coll_id=parent["coll_id"], data_name=split(dst)[1],
                                        modify_ts=now())
            moves.sync(ctx.cat.placements(data_id))
    return 0, b""


@api(ApiNumber.DATA_OBJ_UNLINK_AN)
def api_unlink(ctx: Session, msg):
    body, path, kv = open_request(msg)
    files = []
    with renaming(ctx.cat) as moves:
        reps = ctx.replicas_or_fail(path, AccessLevel.MODIFY_OBJECT)
        try_lock(reps)
        if "forceFlag" in kv or path.startswith(f"/{ctx.zone}/trash/"):
            files = [Path(r["data_path"]) for r in reps]
            ctx.cat.delete_data_object(reps[0]["data_id"])
        else:
            target = ctx.trash_path(path)
            ctx.ensure_colls(split(target)[0])
            coll = ctx.cat.coll(split(target)[0])
            ctx.cat.move_data_object(reps[0]["data_id"], coll["coll_id"], split(target)[1])
            moves.sync(ctx.cat.placements(reps[0]["data_id"]))   # rsMvDataObjToTrash renames, files too
    for f in files:
        f.unlink(missing_ok=True)
    return 0, b""
