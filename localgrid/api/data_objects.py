"""Data objects through descriptors: create, open, read, write, seek, close, as rsDataObjOpen.cpp,
rsDataObjRead.cpp, rsDataObjWrite.cpp, rsDataObjLseek.cpp, rsDataObjClose.cpp and rs_replica_close.cpp;
the descriptor table (the server's L1 table) and replica tokens (rs_get_file_descriptor_info.cpp);
unlink (rsDataObjUnlink.cpp) and stat (rsObjStat.cpp).

A replica is *intermediate* while open for writing, *good* after a clean close (other
replicas of an overwritten object become *stale*), *stale* if the connection ends before
close or any connection of a parallel upload died.
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
from ..catalog import GOOD, INTERMEDIATE, STALE, AccessLevel, normalize, now, split
from ..errors import fail
from ..link import CHUNK
from ..resources import physical_path
from ..vault import create_exclusive, place, renaming
from . import api
from .numbers import ApiNumber, ObjType, OpenFlag, Whence


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


def sha2(path: Path) -> str:
    """iRODS's sha2 checksum: 'sha2:' + base64 of the SHA-256 digest."""
    with open(path, "rb") as f:
        return sha2_of_fd(f.fileno())


def sha2_of_fd(fd: int) -> str:
    """``sha2`` of an open file, read by offset: a rename may have moved the file since it was opened."""
    h = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 8 * 1024 * 1024, offset):
        h.update(chunk)
        offset += len(chunk)
    return "sha2:" + base64.b64encode(h.digest()).decode()


def wants_checksum(kv: dict) -> bool:
    """iput -k / -K: the server computes (and for -K compares) the checksum at close."""
    return "regChksum" in kv or "verifyChksum" in kv


class DataObjectApi:
    def _open_request(self, msg):
        body = msg.xml()
        return body, normalize(p.text(body, "objPath")), p.keyvals(body)

    @api(ApiNumber.DATA_OBJ_CREATE_AN)
    def api_create(self, msg):
        body, path, kv = self._open_request(msg)
        return self._open(path, OpenFlag.O_RDWR | OpenFlag.O_CREAT | OpenFlag.O_TRUNC, kv, create_api=True)

    @api(ApiNumber.DATA_OBJ_OPEN_AN)
    def api_open(self, msg):
        body, path, kv = self._open_request(msg)
        return self._open(path, p.integer(body, "openFlags"), kv)

    def _open(self, path: str, flags: int, kv: dict, create_api: bool = False):
        writing = (flags & OpenFlag.O_ACCMODE) in (OpenFlag.O_WRONLY, OpenFlag.O_RDWR) or create_api
        token = kv.get("replicaToken", "")
        with self.cat.transaction():
            if self.cat.coll(path) is not None:
                raise fail("CAT_NAME_EXISTS_AS_COLLECTION" if writing else "SYS_NOT_ALLOWED", path)
            replicas = self.cat.replicas(path)
            if token and writing:   # a read ignores the token: any good replica will do
                return self._join_token(path, token, replicas, writing, kv)
            if not replicas:
                if not flags & OpenFlag.O_CREAT:
                    raise fail("OBJ_PATH_DOES_NOT_EXIST", path)
                desc = self._create_replica(path, kv)
            elif writing:
                # 4.3's create over an existing object truncates it, as PRC's create(force=True)
                # expects (its own tests: test_create_and_put_forcing_based_on_truth_table__issue_132)
                self.require(replicas[0]["data_id"], AccessLevel.MODIFY_OBJECT, path)
                target = self._write_target(replicas, kv)
                truncate = bool(flags & OpenFlag.O_TRUNC)
                if isinstance(target, str):   # a named resource without a replica: a new one there
                    desc = self._add_replica(path, replicas, target, truncate, kv)
                else:
                    desc = self._open_replica(path, target, writing=True, truncate=truncate, kv=kv)
            else:
                self.require(replicas[0]["data_id"], AccessLevel.READ_OBJECT, path)
                target = self.res.readable(replicas, kv.get("rescName") or kv.get("rescHier", "").split(";")[0])
                desc = self._open_replica(path, target, writing=False, truncate=False, kv=kv)
        return self._register(desc)

    def _register(self, desc: Descriptor):
        inx = max(self.descriptors, default=2) + 1
        self.descriptors[inx] = desc
        if desc.writing:
            self.state.replicas.acquire(desc.token, desc.data_id, desc.repl_num)
        return inx, b""

    def _join_token(self, path, token, replicas, writing, kv):
        entry = self.state.replicas.get(token)
        if entry is None:
            raise fail("SYS_REPLICA_INACCESSIBLE", "unknown replica token")
        target = next((r for r in replicas if (r["data_id"], r["data_repl_num"]) == entry[:2]), None)
        if target is None:
            raise fail("SYS_REPLICA_DOES_NOT_EXIST", path)
        desc = self._open_replica(path, target, writing=writing, truncate=False, kv=kv, token=token, status=False)
        return self._register(desc)

    def _named_root(self, kv: dict) -> str | None:
        """The resource a write names; 4.3 refuses a child of a hierarchy (DIRECT_CHILD_ACCESS)."""
        name = kv.get("rescName") or kv.get("destRescName")
        if not name:
            return None
        row = self.res.root(name)
        if row["resc_parent"]:
            raise fail("DIRECT_CHILD_ACCESS", f"{name} is not the root of its hierarchy")
        return name

    def _write_target(self, replicas, kv):
        """The replica a write goes to, or the name of the resource that gets a new replica.

        As in 4.3, naming a resource that holds no replica of the object creates one there
        (the others become stale when the write completes)."""
        if kv.get("rescHier"):
            leaf = self.res.root(kv["rescHier"].split(";")[-1])
            chosen = [r for r in replicas if r["resc_id"] == leaf["resc_id"]]
            if chosen:
                return chosen[0]
        want = self._named_root(kv)
        if want:
            under = self.res.under(want)
            chosen = [r for r in replicas if r["resc_id"] in under]
            return sorted(chosen, key=lambda r: r["data_is_dirty"] != GOOD)[0] if chosen else want
        good = [r for r in replicas if r["data_is_dirty"] == GOOD] or replicas
        return good[0]

    def _add_replica(self, path: str, replicas, resc_name: str, truncate: bool, kv: dict) -> Descriptor:
        leaf = self.res.pick_leaf(resc_name, exclude={r["resc_id"] for r in replicas})
        repl_num = max(r["data_repl_num"] for r in replicas) + 1
        phys, fd = place(self.cat, physical_path(leaf["resc_def_path"], path), repl_num, create_exclusive)
        os.close(fd)
        if not truncate:      # "a" or "r+": the new replica starts as a copy of a good one
            shutil.copyfile(self.res.readable(replicas)["data_path"], phys)
        src = replicas[0]
        self.cat.copy_replica_row(src, data_repl_num=repl_num, data_size=0, resc_id=leaf["resc_id"],
                                  data_path=str(phys), data_is_dirty=INTERMEDIATE, data_checksum="",
                                  data_status="", data_expiry="", data_version="", data_map_id=0, r_comment="")
        row = self.cat.replica(src["data_id"], repl_num)
        return self._open_replica(path, row, writing=True, truncate=truncate, kv=kv, status=False)

    def _create_replica(self, path: str, kv: dict) -> Descriptor:
        parent = self.coll_or_fail(split(path)[0])
        self.require(parent["coll_id"], AccessLevel.MODIFY_OBJECT, parent["coll_name"])
        root = self._named_root(kv) or self.state.default_resource
        if kv.get("rescHier"):
            leaf = self.res.root(kv["rescHier"].split(";")[-1])
        else:
            leaf = self.res.pick_leaf(root)
        if not self.res.leaf_is_up(leaf["resc_id"]):
            raise fail("SYS_RESC_IS_DOWN", leaf["resc_name"])
        data_id = self.cat.new_id()
        # created exclusively, beside any file already there (create_physical_file_for_replica)
        phys, fd = place(self.cat, physical_path(leaf["resc_def_path"], path), 0, create_exclusive)
        try:
            self.cat.insert_replica(data_id=data_id, coll_id=parent["coll_id"], data_name=split(path)[1],
                                    data_repl_num=0, data_type_name=kv.get("dataType", "generic"), data_size=0,
                                    resc_id=leaf["resc_id"], data_path=str(phys), data_owner_name=self.user,
                                    data_owner_zone=self.zone, data_is_dirty=INTERMEDIATE, data_mode="33188")
            self.cat.grant(data_id, self.user_id, "own")
            if parent["coll_inheritance"] == "1":
                self.cat.inherit(parent["coll_id"], data_id)
        except BaseException:   # the rows roll back: the file must go too, or it would sit there unregistered
            os.close(fd)
            phys.unlink(missing_ok=True)
            raise
        return Descriptor(path, data_id, 0, leaf["resc_id"], phys, fd, True, uuid.uuid4().hex, kv, truncated=True,
                          hasher=hashlib.sha256() if wants_checksum(kv) else None)

    def _open_replica(self, path, row, writing, truncate, kv, token="", status=True) -> Descriptor:
        if not self.res.leaf_is_up(row["resc_id"]):
            raise fail("SYS_RESC_IS_DOWN", f"resource {row['resc_name']} is down")
        phys = Path(row["data_path"])
        if writing:
            phys.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(phys, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if truncate else 0), 0o600)
            if status:
                self.cat.set_replica_status(row["data_id"], row["data_repl_num"], INTERMEDIATE)
        else:
            try:
                fd = os.open(phys, os.O_RDONLY)
            except FileNotFoundError:
                raise fail("SYS_REPLICA_INACCESSIBLE", f"replica file missing for {path}") from None
        return Descriptor(path, row["data_id"], row["data_repl_num"], row["resc_id"], phys, fd, writing,
                          token or uuid.uuid4().hex, kv, truncated=truncate,
                          hasher=hashlib.sha256() if truncate and wants_checksum(kv) else None)

    def _desc(self, body) -> tuple[int, Descriptor]:
        inx = p.integer(body, "l1descInx")
        desc = self.descriptors.get(inx)
        if desc is None:
            raise fail("SYS_BAD_FILE_DESCRIPTOR" if inx > 0 else "SYS_FILE_DESC_OUT_OF_RANGE", f"descriptor {inx}")
        return inx, desc

    @api(ApiNumber.DATA_OBJ_READ_AN)
    def api_read(self, msg, drop: bool):
        body = msg.xml()
        _, desc = self._desc(body)
        length = max(0, p.integer(body, "len"))
        size = os.fstat(desc.fd).st_size
        count = max(0, min(length, size - desc.offset))
        self.state.faults.delay()
        self.sock.sendall(p.frame("RODS_API_REPLY", count, b"", bs_len=count))
        sent = 0
        if drop:   # die in the middle of the bytes, as a reset connection does
            self.state.counters.count("drops")
            count = int(count * self.state.faults.fraction())
        shaped = self.link.shaped
        while sent < count:
            piece = min(count - sent, CHUNK) if shaped else count - sent
            if shaped:
                self.link.consume(piece)
            try:
                n = os.sendfile(self.sock.fileno(), desc.fd, desc.offset + sent, piece)
            except BlockingIOError:   # the socket has a timeout, hence is non-blocking underneath
                poll = select.poll()   # not select.select: it fails on descriptors past 1023
                poll.register(self.sock, select.POLLOUT)
                if not poll.poll(self.state.idle_timeout * 1000):
                    raise Dropped("client stopped reading") from None
                continue
            if n == 0:
                break
            sent += n
        self.state.counters.count("bytes_sent", sent)
        if drop:
            raise Dropped("fault injection mid-read")
        desc.offset += sent
        return None

    @api(ApiNumber.DATA_OBJ_WRITE_AN)
    def api_write(self, msg, drop: bool):
        body = msg.xml()
        _, desc = self._desc(body)
        if not desc.writing:
            raise fail("SYS_NOT_ALLOWED", "descriptor is open for reading")
        data = msg.bs if isinstance(msg.bs, (bytes, memoryview)) else b""
        self.state.counters.count("bytes_received", len(data))
        self.link.consume(len(data))     # the next chunk waits for this one's reply: the link's pace
        if drop:   # write part of the chunk, then die
            self.state.counters.count("drops")
            part = int(len(data) * self.state.faults.fraction())
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
    def api_lseek(self, msg):
        body = msg.xml()
        _, desc = self._desc(body)
        offset, whence = p.integer(body, "offset"), p.integer(body, "whence")
        base = {Whence.SEEK_SET: 0, Whence.SEEK_CUR: desc.offset, Whence.SEEK_END: os.fstat(desc.fd).st_size}.get(whence)
        if base is None or base + offset < 0:
            raise fail("SYS_INVALID_INPUT_PARAM", "bad seek")
        desc.offset = base + offset
        return 0, p.pack("fileLseekOut_PI", [("offset", desc.offset)])

    @api(ApiNumber.DATA_OBJ_CLOSE_AN)
    def api_close(self, msg):
        body = msg.xml()
        inx, desc = self._desc(body)
        desc.options = {**desc.options, **p.keyvals(body)}
        self.release(inx, finalize=True)
        return 0, b""

    @api(ApiNumber.REPLICA_CLOSE_APN)
    def api_replica_close(self, msg):
        req = p.json_request(msg.xml())
        inx = int(req.get("fd", -1))
        if inx not in self.descriptors:
            raise fail("SYS_BAD_FILE_DESCRIPTOR", f"descriptor {inx}")
        self.release(inx, finalize=bool(req.get("update_status")) or bool(req.get("update_size")))
        return 0, b""

    @api(ApiNumber.GET_FILE_DESCRIPTOR_INFO_APN)
    def api_fd_info(self, msg):
        req = p.json_request(msg.xml())
        desc = self.descriptors.get(int(req.get("fd", -1)))
        if desc is None:
            raise fail("SYS_BAD_FILE_DESCRIPTOR", "unknown descriptor")
        hier = self.cat.hierarchy(desc.resc_id)
        info = {"replica_token": desc.token, "data_object_info": {
            "object_path": desc.path, "resource_hierarchy": hier, "replica_number": desc.repl_num,
            "data_id": desc.data_id, "physical_path": "", "resource_name": hier.split(";")[0]}}
        return 0, p.pack_json(info)

    def release(self, inx: int, finalize: bool = False, aborted: bool = False) -> None:
        """Close a descriptor; a writer either finalizes the replica or leaves it stale."""
        desc = self.descriptors.pop(inx)
        table = self.state.replicas
        try:
            if desc.writing:
                if aborted:
                    table.poison(desc.token)
                poisoned = table.release(desc.token)
                if aborted:
                    with self.cat.transaction():
                        self._set_status(desc, STALE)
                elif finalize:
                    self._finalize(desc, poisoned=poisoned)
        finally:
            os.close(desc.fd)

    def _set_status(self, desc: Descriptor, status: int, checksum: str | None = None) -> None:
        columns = {"data_is_dirty": int(status), "data_size": os.fstat(desc.fd).st_size, "modify_ts": now()}
        if checksum is not None:
            columns["data_checksum"] = checksum
        self.cat.update_replica(desc.data_id, desc.repl_num, **columns)

    def _finalize(self, desc: Descriptor, poisoned: bool) -> None:
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
        with self.cat.transaction():
            if broken:
                self._set_status(desc, STALE, "")
                raise fail("SYS_COPY_LEN_ERR", "replica incomplete: marked stale")
            want = desc.options.get("verifyChksum")
            if want and want != checksum:
                self._set_status(desc, STALE, checksum)
                raise fail("USER_CHKSUM_MISMATCH", "checksum mismatch")
            self._set_status(desc, GOOD, checksum)
            if desc.written or desc.truncated:
                self.cat.stale_other_replicas(desc.data_id, desc.repl_num)
        self._replicate_within(desc)

    def _replicate_within(self, desc: Descriptor) -> None:
        """Under a ``replication`` resource, bring every other up leaf to the new content."""
        root = self.res.replicating_ancestor(desc.resc_id)
        if root is None:
            return
        reps = self.cat.replicas(desc.path)
        source = next(r for r in reps if r["data_repl_num"] == desc.repl_num)
        have = {r["resc_id"]: r for r in reps}
        next_num = max(r["data_repl_num"] for r in reps) + 1
        for leaf in self.res.leaves(root):
            if leaf["resc_id"] == desc.resc_id or not self.res.leaf_is_up(leaf["resc_id"]):
                continue
            if leaf["resc_id"] not in have:
                self._copy_replica(source, leaf["resc_id"], next_num,
                                   physical_path(leaf["resc_def_path"], desc.path), new=True)
                next_num += 1
            elif have[leaf["resc_id"]]["data_is_dirty"] != GOOD:
                r = have[leaf["resc_id"]]
                self._copy_replica(source, r["resc_id"], r["data_repl_num"], Path(r["data_path"]))

    @api(ApiNumber.DATA_OBJ_UNLINK_AN)
    def api_unlink(self, msg):
        body, path, kv = self._open_request(msg)
        files = []
        with renaming(self.cat) as moves:
            reps = self.replicas_or_fail(path, AccessLevel.MODIFY_OBJECT)
            if "forceFlag" in kv or path.startswith(f"/{self.zone}/trash/"):
                files = [Path(r["data_path"]) for r in reps]
                self.cat.delete_data_object(reps[0]["data_id"])
            else:
                target = self.trash_path(path)
                self.ensure_colls(split(target)[0])
                coll = self.cat.coll(split(target)[0])
                self.cat.move_data_object(reps[0]["data_id"], coll["coll_id"], split(target)[1])
                moves.sync(self.cat.placements(reps[0]["data_id"]))   # rsMvDataObjToTrash renames, files too
        for f in files:
            f.unlink(missing_ok=True)
        return 0, b""


    @api(ApiNumber.OBJ_STAT_AN)
    def api_obj_stat(self, msg):
        body, path, kv = self._open_request(msg)
        coll = self.cat.coll(path)
        if coll is not None:
            return ObjType.COLL_OBJ_T, p.pack("RodsObjStat_PI", [
                ("objSize", 0), ("objType", ObjType.COLL_OBJ_T), ("dataMode", 0), ("dataId", coll["coll_id"]), ("chksum", ""),
                ("ownerName", coll["coll_owner_name"]), ("ownerZone", coll["coll_owner_zone"]),
                ("createTime", coll["create_ts"]), ("modifyTime", coll["modify_ts"]), ("rescHier", "")])
        reps = self.cat.replicas(path)
        if not reps:
            raise fail("USER_FILE_DOES_NOT_EXIST", path)
        r = next((r for r in reps if r["data_is_dirty"] == GOOD), reps[0])
        return ObjType.DATA_OBJ_T, p.pack("RodsObjStat_PI", [
            ("objSize", r["data_size"]), ("objType", ObjType.DATA_OBJ_T), ("dataMode", 0), ("dataId", r["data_id"]),
            ("chksum", r["data_checksum"] or ""), ("ownerName", r["data_owner_name"]),
            ("ownerZone", r["data_owner_zone"]), ("createTime", r["create_ts"]), ("modifyTime", r["modify_ts"]),
            ("rescHier", self.cat.hierarchy(r["resc_id"]))])
