"""Replicas and whole-object operations: touch (TOUCH_APN, rs_touch.cpp), copy (DATA_OBJ_COPY_AN,
rsDataObjCopy.cpp), truncate (DATA_OBJ_TRUNCATE_AN, REPLICA_TRUNCATE_AN: rs_replica_truncate.cpp),
checksum (DATA_OBJ_CHKSUM_AN, rsDataObjChksum.cpp), replicate (DATA_OBJ_REPL_AN, rsDataObjRepl.cpp)
and trim (DATA_OBJ_TRIM_AN, rsDataObjTrim.cpp).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from .. import protocol as p
from ..catalog import GOOD, STALE, AccessLevel, ReplicaStatus, normalize, now
from ..errors import fail
from ..resources import COORDINATING_TYPES, physical_path
from . import api
from .numbers import ApiNumber, OpenFlag
from .copies import copy_replica
from .data_objects import create_replica, open_object, release, set_status, try_lock, write_target
from .requests import RESC_HIER_KW, open_request
from .session import Session

DEF_MIN_COPY_CNT = 2   # trim keeps at least this many good replicas unless told otherwise


@api(ApiNumber.TOUCH_APN)
def api_touch(ctx: Session, msg):
    """TOUCH_APN (itouch): set a replica's or a collection's mtime; create an empty object if missing."""
    req = p.json_request(msg.xml())
    path = req.get("logical_path")
    if not isinstance(path, str) or not path:
        raise fail("INPUT_ARG_NOT_WELL_FORMED_ERR", "[logical_path] is a required argument.")
    path = normalize(path)
    opts = req.get("options", {})
    if not isinstance(opts, dict):
        raise fail("INPUT_ARG_NOT_WELL_FORMED_ERR", "[options] must be a JSON object.")
    if "replica_number" in opts and "leaf_resource_name" in opts:
        raise fail("USER_INCOMPATIBLE_PARAMS", "[replica_number] and [leaf_resource_name] cannot be used together.")
    if "reference" in opts and "seconds_since_epoch" in opts:
        raise fail("USER_INCOMPATIBLE_PARAMS", "[reference] and [seconds_since_epoch] cannot be used together.")
    for key, kind in (("no_create", bool), ("replica_number", int), ("leaf_resource_name", str),
                      ("reference", str), ("seconds_since_epoch", int)):
        if key in opts and (not isinstance(opts[key], kind) or (kind is int and isinstance(opts[key], bool))):
            raise fail("SYS_INVALID_INPUT_PARAM", f"Incorrect value for [{key}].")
        if key in opts and kind is not bool and (opts[key] == "" or (kind is int and opts[key] < 0)):
            raise fail("INPUT_ARG_NOT_WELL_FORMED_ERR", f"[{key}] cannot be empty or less than zero.")
    with ctx.cat.transaction():
        kind = ctx.cat.kind(path)
        if kind is None:
            if opts.get("no_create"):
                return 0, b""
            if "replica_number" in opts:
                raise fail("OBJ_PATH_DOES_NOT_EXIST", "Replica numbers cannot be used when creating new data objects.")
            kv = {}
            if "leaf_resource_name" in opts:
                leaf = ctx.cat.resource(opts["leaf_resource_name"])
                if leaf is None or leaf["resc_type_name"] in COORDINATING_TYPES:
                    raise fail("USER_INVALID_RESC_INPUT", f"[{opts['leaf_resource_name']}] is not a leaf resource.")
                kv[RESC_HIER_KW] = ctx.cat.hierarchy(leaf["resc_id"])
            desc = create_replica(ctx, path, kv)
            try:
                set_status(ctx, desc, GOOD, "")
            finally:
                os.close(desc.fd)
            return 0, b""
        if "reference" in opts:
            ref = normalize(opts["reference"])
            ref_coll = ctx.cat.coll(ref)
            ref_reps = ctx.cat.replicas(ref) if ref_coll is None else []
            if ref_coll is None and not ref_reps:
                raise fail("OBJ_PATH_DOES_NOT_EXIST", f"reference {ref} does not exist")
            mtime = ref_coll["modify_ts"] if ref_coll is not None else max(r["modify_ts"] for r in ref_reps)
        elif "seconds_since_epoch" in opts:
            mtime = "%011d" % opts["seconds_since_epoch"]
        else:
            mtime = now()
        if kind == "coll":
            if "replica_number" in opts or "leaf_resource_name" in opts:
                raise fail("USER_INCOMPATIBLE_PARAMS",
                           "[replica_number] and [leaf_resource_name] cannot be used for collections.")
            coll = ctx.cat.coll(path)
            ctx.require(coll["coll_id"], AccessLevel.MODIFY_OBJECT, path)
            ctx.cat.set_collection_mtime(coll["coll_id"], mtime)
            return 0, b""
        reps = ctx.cat.replicas(path)
        ctx.require(reps[0]["data_id"], AccessLevel.MODIFY_OBJECT, path)
        if "replica_number" in opts:
            target = next((r for r in reps if r["data_repl_num"] == opts["replica_number"]), None)
        elif "leaf_resource_name" in opts:
            target = next((r for r in reps if r["resc_name"] == opts["leaf_resource_name"]), None)
        else:
            good = [r for r in reps if r["data_is_dirty"] == GOOD]
            if not good:
                raise fail("SYS_NO_GOOD_REPLICA", "No good replicas found.")
            target = max(good, key=lambda r: r["modify_ts"])
        if target is None:
            raise fail("SYS_REPLICA_DOES_NOT_EXIST", "Replica does not exist.")
        ctx.cat.update_replica(target["data_id"], target["data_repl_num"], modify_ts=mtime)
    return 0, b""


@api(ApiNumber.DATA_OBJ_COPY_AN)
def api_copy(ctx: Session, msg):
    """DATA_OBJ_COPY (icp): a new object, or a forced overwrite, from a good replica of the source."""
    parts = msg.xml().findall("DataObjInp_PI")
    if len(parts) != 2:
        raise p.ProtocolError("copy needs source and destination")
    raw_src, raw_dst = p.text(parts[0], "objPath"), p.text(parts[1], "objPath")
    for raw in (raw_src, raw_dst):   # irods#4796: rsDataObjCopy refuses relative paths
        if not raw.startswith("/"):
            raise fail("USER_INPUT_PATH_ERR", f"not an absolute path: {raw!r}")
    src, dst = normalize(raw_src), normalize(raw_dst)
    kv = p.keyvals(parts[1])
    src_reps = ctx.cat.replicas(src)
    if not src_reps:
        raise fail("USER_INPUT_PATH_ERR", f"source {src} is not a data object")
    dst_reps = ctx.cat.replicas(dst)
    if dst_reps:
        if "forceFlag" not in kv:
            raise fail("OVERWRITE_WITHOUT_FORCE_FLAG", dst)
        if kv.get("destRescName"):
            under = ctx.res.under(kv["destRescName"])
            if not any(r["resc_id"] in under for r in dst_reps):
                raise fail("HIERARCHY_ERROR", f"cannot overwrite {dst} on {kv['destRescName']}: no replica there")
    if src == dst:
        raise fail("USER_INPUT_PATH_ERR", "same source and destination")
    ctx.require(src_reps[0]["data_id"], AccessLevel.READ_OBJECT, src)
    source = ctx.res.readable(src_reps, p.keyvals(parts[0]).get("rescName"))
    if source["data_checksum"]:
        kv.setdefault("regChksum", "")
    inx, _ = open_object(ctx, dst, OpenFlag.O_RDWR | OpenFlag.O_CREAT | OpenFlag.O_TRUNC, {**kv, "forceFlag": ""}, create_api=True)
    desc = ctx.descriptors[inx]
    try:
        with open(source["data_path"], "rb") as f:
            while chunk := f.read(8 * 1024 * 1024):
                os.write(desc.fd, chunk)
                if desc.hasher is not None:
                    desc.hasher.update(chunk)
                    desc.hashed += len(chunk)
        desc.written = True
        with ctx.cat.transaction():
            ctx.cat.update_data_object(desc.data_id, data_type_name=source["data_type_name"])
    except BaseException:
        release(ctx, inx, aborted=True)
        raise
    release(ctx, inx, finalize=True)
    return 0, p.pack("TransferStat_PI", [("numThreads", 0), ("bytesWritten", source["data_size"])])


def _truncate_replica(ctx: Session, r, size: int) -> None:
    os.truncate(r["data_path"], size)
    ctx.cat.update_replica(r["data_id"], r["data_repl_num"], data_size=size, data_checksum="", modify_ts=now())


@api(ApiNumber.DATA_OBJ_TRUNCATE_AN)
def api_truncate(ctx: Session, msg):
    """DATA_OBJ_TRUNCATE: every good replica cut (or zero-extended) to dataSize, checksums cleared."""
    body, path, kv = open_request(msg)
    size = p.integer(body, "dataSize", -1)
    if size < 0:
        raise fail("SYS_INVALID_INPUT_PARAM", "dataSize must be given")
    with ctx.cat.transaction():
        reps = ctx.replicas_or_fail(path, AccessLevel.MODIFY_OBJECT, "OBJ_PATH_DOES_NOT_EXIST")
        for r in reps:
            if r["data_is_dirty"] == GOOD and r["data_size"] != size and ctx.res.leaf_is_up(r["resc_id"]):
                _truncate_replica(ctx, r, size)
    return 0, b""


@api(ApiNumber.REPLICA_TRUNCATE_AN)
def api_replica_truncate(ctx: Session, msg):
    """REPLICA_TRUNCATE (4.3.3): one replica cut to dataSize, the others stale; JSON in a STR_PI either way."""
    body, path, kv = open_request(msg)
    size = p.integer(body, "dataSize", -1)

    def out(message: str, r=None) -> bytes:
        return p.pack_str(json.dumps({"message": message,
                                      "resource_hierarchy": ctx.cat.hierarchy(r["resc_id"]) if r else None,
                                      "replica_number": r["data_repl_num"] if r else None}))

    def error(name: str, message: str, r=None):
        return fail(name, message, out(message, r))

    if "destRescName" in kv or "destRescHier" in kv:
        raise error("SYS_INVALID_INPUT_PARAM", "rs_replica_truncate: destination keywords not supported.")
    if "rescName" in kv and "replNum" in kv:
        raise error("SYS_INVALID_INPUT_PARAM", "rs_replica_truncate: [rescName] and [replNum] cannot be used together.")
    if "irodsAdmin" in kv and not ctx.is_admin():
        raise error("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "rs_replica_truncate: admin keyword used by non-admin.")
    with ctx.cat.transaction():
        reps = ctx.cat.replicas(path)
        if not reps:
            raise error("OBJ_PATH_DOES_NOT_EXIST", f"rs_replica_truncate: no data object [{path}].")
        if "irodsAdmin" not in kv:
            ctx.require(reps[0]["data_id"], AccessLevel.MODIFY_OBJECT, path)
        if any(not ReplicaStatus(r["data_is_dirty"]).at_rest for r in reps):
            raise error("LOCKED_DATA_OBJECT_ACCESS", f"rs_replica_truncate: [{path}] is locked.")
        if "replNum" in kv:
            target = next((r for r in reps if str(r["data_repl_num"]) == kv["replNum"]), None)
        elif kv.get("rescName") or kv.get(RESC_HIER_KW):
            under = ctx.res.under(kv.get("rescName") or kv[RESC_HIER_KW].split(";")[-1])
            target = next((r for r in reps if r["resc_id"] in under), None)
        else:
            target = write_target(ctx, reps, kv)
        if target is None:
            raise error("SYS_REPLICA_INACCESSIBLE" if "rescName" in kv else "SYS_REPLICA_DOES_NOT_EXIST",
                        f"rs_replica_truncate: [{path}] has no such replica.")
        if size < 0:    # what truncate(2) says, as the unixfilesystem plugin reports it
            message = "rs_replica_truncate: negative size."
            raise fail("UNIX_FILE_TRUNCATE_ERR", message, out(message, target), errno_=errno.EINVAL)
        if not ctx.res.leaf_is_up(target["resc_id"]):
            raise error("SYS_RESC_IS_DOWN", f"rs_replica_truncate: resource {target['resc_name']} is down.", target)
        if target["data_size"] == size:
            return 0, out(f"rs_replica_truncate: Replica of [{path}] already has size [{size}].", target)
        _truncate_replica(ctx, target, size)
        ctx.cat.stale_other_replicas(target["data_id"], target["data_repl_num"])
        ctx.cat.set_replica_status(target["data_id"], target["data_repl_num"], GOOD)
    return 0, out("", target)


@api(ApiNumber.DATA_OBJ_REPL_AN)
def api_repl(ctx: Session, msg):
    body, path, kv = open_request(msg)
    reps = ctx.replicas_or_fail(path, AccessLevel.READ_OBJECT)
    try_lock(reps)   # the destination is opened for writing: a writer's lock refuses it
    source = ctx.res.readable(reps, kv.get("rescName"))
    if source["data_is_dirty"] != GOOD:    # rsDataObjRepl replicates only from a good replica
        raise fail("SYS_NO_GOOD_REPLICA", f"{path} has no good replica to replicate from")
    if "updateRepl" in kv or "all" in kv:
        targets = [r for r in reps if r["data_is_dirty"] == STALE and ctx.res.leaf_is_up(r["resc_id"])]
        for r in targets:
            copy_replica(ctx, source, r["resc_id"], r["data_repl_num"], Path(r["data_path"]))
        if "destRescName" not in kv:
            return 0, b""
    dest = kv.get("destRescName") or kv.get("defRescName") or ctx.state.default_resource
    have = {r["resc_id"]: r for r in reps}
    under = ctx.res.under(dest)
    if kv.get("dest_resc_hier"):     # DEST_RESC_HIER_STR_KW: this leaf of the destination's hierarchy
        leaf = ctx.res.root(kv["dest_resc_hier"].split(";")[-1])
        if leaf["resc_id"] not in under:
            raise fail("HIERARCHY_ERROR", f"{kv['dest_resc_hier']} is not below {dest}")
        if not any(i in have and have[i]["data_is_dirty"] == GOOD for i in under):
            if leaf["resc_id"] not in have:
                if not ctx.res.leaf_is_up(leaf["resc_id"]):
                    raise fail("SYS_RESC_IS_DOWN", f"resource {leaf['resc_name']} is down")
                repl_num = max(r["data_repl_num"] for r in reps) + 1
                copy_replica(ctx, source, leaf["resc_id"], repl_num,
                                   physical_path(leaf["resc_def_path"], path), new=True)
                return 0, b""
    stale_there = [have[i] for i in under if i in have and have[i]["data_is_dirty"] != GOOD]
    if any(i in have and have[i]["data_is_dirty"] == GOOD for i in under) and not stale_there:
        return 0, b""       # already replicated there: nothing to do
    if stale_there:
        r = stale_there[0]
        copy_replica(ctx, source, r["resc_id"], r["data_repl_num"], Path(r["data_path"]))
        return 0, b""
    leaf = ctx.res.pick_leaf(dest, exclude=set(have))
    repl_num = max(r["data_repl_num"] for r in reps) + 1
    copy_replica(ctx, source, leaf["resc_id"], repl_num, physical_path(leaf["resc_def_path"], path), new=True)
    return 0, b""


@api(ApiNumber.DATA_OBJ_TRIM_AN)
def api_trim(ctx: Session, msg):
    body, path, kv = open_request(msg)
    files = []
    with ctx.cat.transaction():
        reps = ctx.replicas_or_fail(path, AccessLevel.MODIFY_OBJECT)
        try:
            min_copies = int(kv.get("copies", DEF_MIN_COPY_CNT) or DEF_MIN_COPY_CNT)
        except ValueError:
            raise fail("SYS_INVALID_INPUT_PARAM", "copies must be an integer") from None
        if "replNum" in kv:     # one replica named: its own lock's error (try_lock for a replica number)
            try_lock(reps, next((r for r in reps if str(r["data_repl_num"]) == kv["replNum"]), None))
        try_lock(reps)
        candidates = reps
        if "rescName" in kv:
            under = ctx.res.under(kv["rescName"])
            candidates = [r for r in reps if r["resc_id"] in under]
        if "replNum" in kv:
            candidates = [r for r in candidates if str(r["data_repl_num"]) == kv["replNum"]]
        good = sum(1 for r in reps if r["data_is_dirty"] == GOOD)
        trimmed = 0
        for r in sorted(candidates, key=lambda r: r["data_is_dirty"] == GOOD):
            if r["data_is_dirty"] == GOOD:
                if good <= max(min_copies, 1):
                    continue
                good -= 1
            if not ctx.res.leaf_is_up(r["resc_id"]):
                raise fail("SYS_RESC_IS_DOWN", f"cannot unlink replica {r['data_repl_num']}: resource down")
            ctx.cat.delete_replica(r["data_id"], r["data_repl_num"])
            files.append(Path(r["data_path"]))
            trimmed += 1
    for f in files:
        f.unlink(missing_ok=True)
    return trimmed, b""
