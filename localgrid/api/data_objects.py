"""Data objects through descriptors: create, open, read, write, seek, close, as rsDataObjOpen.cpp,
rsDataObjRead.cpp, rsDataObjWrite.cpp, rsDataObjLseek.cpp, rsDataObjClose.cpp and rs_replica_close.cpp;
the descriptor table (the server's L1 table) and replica tokens (rs_get_file_descriptor_info.cpp).

A replica is *intermediate* while open for writing and its siblings *write-locked*
(logical_locking.cpp): a second open for writing, an unlink, a trim or a replication of the
object is refused with INTERMEDIATE_REPLICA_ACCESS or LOCKED_DATA_OBJECT_ACCESS until the
writer closes.  A clean close leaves the replica *good* (its siblings *stale* if it was
written, else as they were); a connection that ends before close, a parallel upload one of
whose connections died, or a close whose size or checksum does not match leaves it *stale*
(with the checksum it computed) and its siblings as they were.
"""

from __future__ import annotations

import base64
import hashlib
import os
import select
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from .. import protocol as p
from ..catalog import GOOD, INTERMEDIATE, STALE, AccessLevel, ReplicaStatus, now, split
from ..errors import fail
from ..link import CHUNK
from ..resources import physical_path
from ..vault import create_exclusive, place
from . import api
from .checksums import sha2_of_fd, wants_checksum
from .requests import RESC_HIER_KW, SIZE_KW, open_request
from .numbers import ApiNumber, OpenFlag, Whence
from .copies import replicate_within
from .session import Session


class Dropped(Exception):
    """Fault injection decided this connection dies now."""


@dataclass
class Descriptor:
    path: str
    data_id: int
    repl_num: int
    resc_id: int
    phys: Path
    fd: int
    writing: bool
    token: str
    options: dict[str, str]
    offset: int = 0
    written: bool = False
    truncated: bool = False
    hasher: "hashlib._Hash | None" = None   # sha256 of a sequential write, when a checksum is asked
    hashed: int = 0


def try_lock(replicas, target=None) -> None:
    """Refuse to open ``target`` (or, None, a new replica of the object) for writing while a writer holds the
    object (logical_locking.cpp's try_lock): the writer's replica is intermediate, its siblings write-locked."""
    if target is not None:
        if target["data_is_dirty"] == INTERMEDIATE:
            raise fail("INTERMEDIATE_REPLICA_ACCESS", f"replica {target['data_repl_num']} is open for writing")
        if not ReplicaStatus(target["data_is_dirty"]).at_rest:
            raise fail("LOCKED_DATA_OBJECT_ACCESS", f"replica {target['data_repl_num']} is locked by a writer")
        return
    if any(not ReplicaStatus(r["data_is_dirty"]).at_rest for r in replicas):
        raise fail("LOCKED_DATA_OBJECT_ACCESS", "the data object is locked by a writer")


@api(ApiNumber.DATA_OBJ_CREATE_AN)
def api_create(ctx: Session, msg):
    body, path, kv = open_request(msg)
    return open_object(ctx, path, OpenFlag.O_RDWR | OpenFlag.O_CREAT | OpenFlag.O_TRUNC, kv, create_api=True)


@api(ApiNumber.DATA_OBJ_OPEN_AN)
def api_open(ctx: Session, msg):
    body, path, kv = open_request(msg)
    return open_object(ctx, path, p.integer(body, "openFlags"), kv)


def open_object(ctx: Session, path: str, flags: int, kv: dict, create_api: bool = False):
    writing = (flags & OpenFlag.O_ACCMODE) in (OpenFlag.O_WRONLY, OpenFlag.O_RDWR) or create_api
    token = kv.get("replicaToken", "")
    with ctx.cat.transaction():
        if ctx.cat.coll(path) is not None:
            raise fail("CAT_NAME_EXISTS_AS_COLLECTION" if writing else "SYS_NOT_ALLOWED", path)
        replicas = ctx.cat.replicas(path)
        if token and writing:   # a read ignores the token: any good replica will do
            return _join_token(ctx, path, token, replicas, writing, kv)
        if not replicas:
            if not flags & OpenFlag.O_CREAT:
                raise fail("OBJ_PATH_DOES_NOT_EXIST", path)
            desc = create_replica(ctx, path, kv)
        elif writing:
            # 4.3's create over an existing object truncates it, as PRC's create(force=True)
            # expects (its own tests: test_create_and_put_forcing_based_on_truth_table__issue_132)
            ctx.require(replicas[0]["data_id"], AccessLevel.MODIFY_OBJECT, path)
            target = write_target(ctx, replicas, kv)
            try_lock(replicas, None if isinstance(target, str) else target)
            truncate = bool(flags & OpenFlag.O_TRUNC)
            if isinstance(target, str):   # a named resource without a replica: a new one there
                desc = _add_replica(ctx, path, replicas, target, truncate, kv)
            else:
                desc = _open_replica(ctx, path, target, writing=True, truncate=truncate, kv=kv)
        else:
            ctx.require(replicas[0]["data_id"], AccessLevel.READ_OBJECT, path)
            # a hierarchy names one leaf, hence one replica (resolve_hierarchy_for_open keeps it)
            target = ctx.res.readable(replicas, kv.get(RESC_HIER_KW, "").split(";")[-1] or kv.get("rescName"),
                                       repl_num=int(kv["replNum"]) if kv.get("replNum", "").isdigit() else None,
                                       hierarchy=bool(kv.get(RESC_HIER_KW)))
            desc = _open_replica(ctx, path, target, writing=False, truncate=False, kv=kv)
    return _register(ctx, desc)


def _register(ctx: Session, desc: Descriptor):
    inx = max(ctx.descriptors, default=2) + 1
    ctx.descriptors[inx] = desc
    if desc.writing:
        ctx.state.replicas.acquire(desc.token, desc.data_id, desc.repl_num)
    return inx, b""


def _join_token(ctx: Session, path, token, replicas, writing, kv):
    entry = ctx.state.replicas.get(token)
    if entry is None:
        raise fail("SYS_REPLICA_INACCESSIBLE", "unknown replica token")
    target = next((r for r in replicas if (r["data_id"], r["data_repl_num"]) == entry[:2]), None)
    if target is None:
        raise fail("SYS_REPLICA_DOES_NOT_EXIST", path)
    desc = _open_replica(ctx, path, target, writing=writing, truncate=False, kv=kv, token=token, status=False)
    return _register(ctx, desc)


def _named_root(ctx: Session, kv: dict) -> str | None:
    """The resource a write names; 4.3 refuses a child of a hierarchy (DIRECT_CHILD_ACCESS)."""
    name = kv.get("rescName") or kv.get("destRescName")
    if not name:
        return None
    row = ctx.res.root(name)
    if row["resc_parent"]:
        raise fail("DIRECT_CHILD_ACCESS", f"{name} is not the root of its hierarchy")
    return name


def write_target(ctx: Session, replicas, kv):
    """The replica a write goes to, or the name of the resource that gets a new replica.

    As in 4.3, naming a resource that holds no replica of the object creates one there
    (the others become stale when the write completes)."""
    if kv.get(RESC_HIER_KW):
        leaf = ctx.res.root(kv[RESC_HIER_KW].split(";")[-1])
        chosen = [r for r in replicas if r["resc_id"] == leaf["resc_id"]]
        return chosen[0] if chosen else leaf["resc_name"]    # a hierarchy names its leaf: a new replica there
    want = _named_root(ctx, kv)
    if want:
        under = ctx.res.under(want)
        chosen = [r for r in replicas if r["resc_id"] in under]
        return sorted(chosen, key=lambda r: r["data_is_dirty"] != GOOD)[0] if chosen else want
    good = [r for r in replicas if r["data_is_dirty"] == GOOD] or replicas
    return good[0]


def _add_replica(ctx: Session, path: str, replicas, resc_name: str, truncate: bool, kv: dict) -> Descriptor:
    leaf = ctx.res.pick_leaf(resc_name, exclude={r["resc_id"] for r in replicas})
    repl_num = max(r["data_repl_num"] for r in replicas) + 1
    phys, fd = place(ctx.cat, physical_path(leaf["resc_def_path"], path), repl_num, create_exclusive)
    os.close(fd)
    if not truncate:      # "a" or "r+": the new replica starts as a copy of a good one
        shutil.copyfile(ctx.res.readable(replicas)["data_path"], phys)
    src = replicas[0]
    ctx.cat.copy_replica_row(src, data_repl_num=repl_num, data_size=0, resc_id=leaf["resc_id"],
                              data_path=str(phys), data_is_dirty=INTERMEDIATE, data_checksum="",
                              data_status="", data_expiry="", data_version="", data_map_id=0, r_comment="")
    ctx.cat.lock_siblings(src["data_id"], repl_num)
    row = ctx.cat.replica(src["data_id"], repl_num)
    return _open_replica(ctx, path, row, writing=True, truncate=truncate, kv=kv, status=False)


def create_replica(ctx: Session, path: str, kv: dict) -> Descriptor:
    parent = ctx.coll_or_fail(split(path)[0])
    ctx.require(parent["coll_id"], AccessLevel.MODIFY_OBJECT, parent["coll_name"])
    root = _named_root(ctx, kv) or ctx.state.default_resource
    if kv.get(RESC_HIER_KW):
        leaf = ctx.res.root(kv[RESC_HIER_KW].split(";")[-1])
    else:
        leaf = ctx.res.pick_leaf(root)
    if not ctx.res.leaf_is_up(leaf["resc_id"]):
        raise fail("SYS_RESC_IS_DOWN", leaf["resc_name"])
    size = kv.get(SIZE_KW, "")
    ctx.res.check_free_space(leaf, int(size) if size.lstrip("-").isdigit() else -1)
    data_id = ctx.cat.new_id()
    # created exclusively, beside any file already there (create_physical_file_for_replica)
    phys, fd = place(ctx.cat, physical_path(leaf["resc_def_path"], path), 0, create_exclusive)
    try:
        ctx.cat.insert_replica(data_id=data_id, coll_id=parent["coll_id"], data_name=split(path)[1],
                                data_repl_num=0, data_type_name=kv.get("dataType", "generic"), data_size=0,
                                resc_id=leaf["resc_id"], data_path=str(phys), data_owner_name=ctx.user,
                                data_owner_zone=ctx.zone, data_is_dirty=INTERMEDIATE, data_mode="33188")
        ctx.cat.grant(data_id, ctx.user_id, "own")
        if parent["coll_inheritance"] == "1":
            ctx.cat.inherit(parent["coll_id"], data_id)
    except BaseException:   # the rows roll back: the file must go too, or it would sit there unregistered
        os.close(fd)
        phys.unlink(missing_ok=True)
        raise
    return Descriptor(path, data_id, 0, leaf["resc_id"], phys, fd, True, uuid.uuid4().hex, kv, truncated=True,
                      hasher=hashlib.sha256() if wants_checksum(kv) else None)


def _open_replica(ctx: Session, path, row, writing, truncate, kv, token="", status=True) -> Descriptor:
    if not ctx.res.leaf_is_up(row["resc_id"]):
        raise fail("SYS_RESC_IS_DOWN", f"resource {row['resc_name']} is down")
    phys = Path(row["data_path"])
    if writing:
        phys.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(phys, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if truncate else 0), 0o600)
        if status:
            ctx.cat.set_replica_status(row["data_id"], row["data_repl_num"], INTERMEDIATE)
            ctx.cat.lock_siblings(row["data_id"], row["data_repl_num"])
    else:
        try:
            fd = os.open(phys, os.O_RDONLY)
        except FileNotFoundError:
            raise fail("SYS_REPLICA_INACCESSIBLE", f"replica file missing for {path}") from None
    return Descriptor(path, row["data_id"], row["data_repl_num"], row["resc_id"], phys, fd, writing,
                      token or uuid.uuid4().hex, kv, truncated=truncate,
                      hasher=hashlib.sha256() if truncate and wants_checksum(kv) else None)


def _desc(ctx: Session, body) -> tuple[int, Descriptor]:
    inx = p.integer(body, "l1descInx")
    desc = ctx.descriptors.get(inx)
    if desc is None:
        raise fail("SYS_BAD_FILE_DESCRIPTOR" if inx > 0 else "SYS_FILE_DESC_OUT_OF_RANGE", f"descriptor {inx}")
    return inx, desc


@api(ApiNumber.DATA_OBJ_READ_AN)
def api_read(ctx: Session, msg, drop: bool):
    body = msg.xml()
    _, desc = _desc(ctx, body)
    length = max(0, p.integer(body, "len"))
    size = os.fstat(desc.fd).st_size
    count = max(0, min(length, size - desc.offset))
    ctx.state.faults.delay()
    ctx.sock.sendall(p.frame("RODS_API_REPLY", count, b"", bs_len=count))
    sent = 0
    if drop:   # die in the middle of the bytes, as a reset connection does
        ctx.state.counters.count("drops")
        count = int(count * ctx.state.faults.fraction())
    shaped = ctx.link.shaped
    while sent < count:
        piece = min(count - sent, CHUNK) if shaped else count - sent
        if shaped:
            ctx.link.consume(piece)
        try:
            n = os.sendfile(ctx.sock.fileno(), desc.fd, desc.offset + sent, piece)
        except BlockingIOError:   # the socket has a timeout, hence is non-blocking underneath
            poll = select.poll()   # not select.select: it fails on descriptors past 1023
            poll.register(ctx.sock, select.POLLOUT)
            if not poll.poll(ctx.state.idle_timeout * 1000):
                raise Dropped("client stopped reading") from None
            continue
        if n == 0:
            break
        sent += n
    ctx.state.counters.count("bytes_sent", sent)
    if drop:
        raise Dropped("fault injection mid-read")
    desc.offset += sent
    return None


@api(ApiNumber.DATA_OBJ_WRITE_AN)
def api_write(ctx: Session, msg, drop: bool):
    body = msg.xml()
    _, desc = _desc(ctx, body)
    if not desc.writing:
        raise fail("SYS_NOT_ALLOWED", "descriptor is open for reading")
    data = msg.bs if isinstance(msg.bs, (bytes, memoryview)) else b""
    ctx.state.counters.count("bytes_received", len(data))
    ctx.link.consume(len(data))     # the next chunk waits for this one's reply: the link's pace
    if drop:   # write part of the chunk, then die
        ctx.state.counters.count("drops")
        part = int(len(data) * ctx.state.faults.fraction())
        os.pwrite(desc.fd, data[:part], desc.offset)
        raise Dropped("fault injection mid-write")
    written = os.pwrite(desc.fd, data, desc.offset)
    if desc.hasher is not None:
        if desc.offset == desc.hashed:
            desc.hasher.update(data)
            desc.hashed += written
        else:
            desc.hasher = None
    desc.offset += written
    desc.written = True
    return written, b""


@api(ApiNumber.DATA_OBJ_LSEEK_AN)
def api_lseek(ctx: Session, msg):
    body = msg.xml()
    _, desc = _desc(ctx, body)
    offset, whence = p.integer(body, "offset"), p.integer(body, "whence")
    base = {Whence.SEEK_SET: 0, Whence.SEEK_CUR: desc.offset, Whence.SEEK_END: os.fstat(desc.fd).st_size}.get(whence)
    if base is None or base + offset < 0:
        raise fail("SYS_INVALID_INPUT_PARAM", "bad seek")
    desc.offset = base + offset
    return 0, p.pack("fileLseekOut_PI", [("offset", desc.offset)])


@api(ApiNumber.DATA_OBJ_CLOSE_AN)
def api_close(ctx: Session, msg):
    body = msg.xml()
    inx, desc = _desc(ctx, body)
    desc.options = {**desc.options, **p.keyvals(body)}
    release(ctx, inx, finalize=True)
    return 0, b""


@api(ApiNumber.REPLICA_CLOSE_APN)
def api_replica_close(ctx: Session, msg):
    req = p.json_request(msg.xml())
    inx = int(req.get("fd", -1))
    if inx not in ctx.descriptors:
        raise fail("SYS_BAD_FILE_DESCRIPTOR", f"descriptor {inx}")
    release(ctx, inx, finalize=bool(req.get("update_status")) or bool(req.get("update_size")))
    return 0, b""


@api(ApiNumber.GET_FILE_DESCRIPTOR_INFO_APN)
def api_fd_info(ctx: Session, msg):
    req = p.json_request(msg.xml())
    desc = ctx.descriptors.get(int(req.get("fd", -1)))
    if desc is None:
        raise fail("SYS_BAD_FILE_DESCRIPTOR", "unknown descriptor")
    hier = ctx.cat.hierarchy(desc.resc_id)
    info = {"replica_token": desc.token, "data_object_info": {
        "object_path": desc.path, "resource_hierarchy": hier, "replica_number": desc.repl_num,
        "data_id": desc.data_id, "physical_path": "", "resource_name": hier.split(";")[0]}}
    return 0, p.pack_json(info)


def release(ctx: Session, inx: int, finalize: bool = False, aborted: bool = False) -> None:
    """Close a descriptor; a writer either finalizes the replica or leaves it stale."""
    desc = ctx.descriptors.pop(inx)
    table = ctx.state.replicas
    try:
        if desc.writing:
            if aborted:
                table.poison(desc.token)
            poisoned = table.release(desc.token)
            if aborted:
                with ctx.cat.transaction():
                    set_status(ctx, desc, STALE)
                    ctx.cat.unlock_siblings(desc.data_id, desc.repl_num, changed=False)
            elif finalize:
                _finalize(ctx, desc, poisoned=poisoned)
    finally:
        os.close(desc.fd)


def set_status(ctx: Session, desc: Descriptor, status: int, checksum: str | None = None) -> None:
    columns = {"data_is_dirty": int(status), "data_size": os.fstat(desc.fd).st_size, "modify_ts": now()}
    if checksum is not None:
        columns["data_checksum"] = checksum
    ctx.cat.update_replica(desc.data_id, desc.repl_num, **columns)


def _finalize(ctx: Session, desc: Descriptor, poisoned: bool) -> None:
    size = os.fstat(desc.fd).st_size
    expected = desc.options.get("dataSize")
    broken = poisoned or (expected not in (None, "", "-1") and desc.written and int(expected) != size)
    checksum = ""
    wants_sum = wants_checksum(desc.options)
    if wants_sum and not broken:
        if desc.hasher is not None and desc.hashed == size:
            checksum = "sha2:" + base64.b64encode(desc.hasher.digest()).decode()
        else:
            checksum = sha2_of_fd(desc.fd)
    want = desc.options.get("verifyChksum")
    error = fail("SYS_COPY_LEN_ERR", "replica incomplete: marked stale") if broken else \
        fail("USER_CHKSUM_MISMATCH", "checksum mismatch: replica marked stale") if want and want != checksum else None
    with ctx.cat.transaction():   # the failure is recorded first, then reported (finalize_replica_after_failed_operation)
        set_status(ctx, desc, STALE if error else GOOD, checksum)
        ctx.cat.unlock_siblings(desc.data_id, desc.repl_num, changed=not error and (desc.written or desc.truncated))
    if error:
        raise error
    replicate_within(ctx, desc)
