"""One agent per client connection, as the iRODS server forks one per client.

The agent reads the startup pack, authenticates, then answers API requests until the
client disconnects.  It owns the open data-object descriptors (the server's L1 table);
if the connection ends with a replica still open for writing, that replica is marked
stale: a dropped upload never leaves a replica marked good with partial bytes.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
import os
import secrets
import select
import shutil
import socket
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import protocol as p
from .catalog import GOOD, INTERMEDIATE, STALE, Catalog, normalize, now, split
from .errors import IrodsError, fail
from .genquery import QueryEngine
from .resources import COORDINATING_TYPES, TYPES, Resources, physical_path

log = logging.getLogger("localgrid.agent")

SERVER_VERSION = "rods4.3.4"
API_VERSION = "d"
MAX_PASSWORD_LENGTH = 50
O_ACCMODE, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC = 3, 1, 2, 64, 512
DATA_OBJ_T, COLL_OBJ_T = 1, 2


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
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * 1024 * 1024):
            h.update(chunk)
    return "sha2:" + base64.b64encode(h.digest()).decode()


class Agent:
    def __init__(self, server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.cat = Catalog(server.catalog_path)
        self.queries = QueryEngine(Catalog(server.catalog_path).db)
        self.res = Resources(self.cat, server.faults, server.rng)
        self.zone = server.zone
        self.user: str | None = None
        self.user_id: int | None = None
        self.user_type = ""
        self.groups: list[int] = []
        self.challenge = b""
        self.signature = ""
        self.descriptors: dict[int, Descriptor] = {}
        self.stream = bytearray(8 * 1024 * 1024)
        self.handlers: dict[int, Callable] = {
            110000: self.api_authenticate, 703: self.api_auth_request, 704: self.api_auth_response,
            681: self.api_coll_create, 679: self.api_rm_coll, 627: self.api_rename,
            601: self.api_create, 602: self.api_open, 675: self.api_read, 676: self.api_write,
            674: self.api_lseek, 673: self.api_close, 20000: self.api_fd_info, 20004: self.api_replica_close,
            615: self.api_unlink, 629: self.api_chksum, 695: self.api_repl, 632: self.api_trim,
            702: self.api_genquery, 706: self.api_mod_avu, 707: self.api_mod_acl,
            701: self.api_general_admin, 714: self.api_user_admin, 633: self.api_obj_stat,
            20002: self.api_atomic_metadata, 20007: self.api_touch, 696: self.api_copy, 652: self.api_truncate, 802: self.api_replica_truncate,
        }

    # ================================================================ session ====
    def run(self) -> None:
        try:
            self.sock.settimeout(self.server.idle_timeout)
            self.startup()
            while True:
                msg = p.read_message(self.sock, self.stream)
                if msg.type == "RODS_DISCONNECT":
                    break
                if msg.type != "RODS_API_REQ":
                    raise p.ProtocolError(f"unexpected message type {msg.type!r}")
                self.server.count("api_calls")
                self.dispatch(msg)
        except (p.PeerClosed, p.ProtocolError, Dropped, OSError) as exc:
            log.debug("agent ends: %s", exc)
        finally:
            self.cleanup()

    def startup(self) -> None:
        msg = p.read_message(self.sock)
        if msg.type != "RODS_CONNECT":
            raise p.ProtocolError("expected a startup pack")
        pack = msg.xml()
        self.proxy = (p.text(pack, "proxyUser"), p.text(pack, "proxyRcatZone"))
        self.client = (p.text(pack, "clientUser"), p.text(pack, "clientRcatZone"))
        if "request_server_negotiation" in p.text(pack, "option"):
            body = p.pack("CS_NEG_PI", [("status", 1), ("result", "CS_NEG_REFUSE")])
            self.sock.sendall(p.frame("RODS_CS_NEG_T", 0, body))
            answer = p.read_message(self.sock).xml()
            if "CS_NEG_USE_TCP" not in p.text(answer, "result"):
                raise p.ProtocolError("client wants SSL, which the local grid does not offer")
        self.send_version(0)

    def send_version(self, status: int) -> None:
        body = p.pack("Version_PI", [("status", status), ("relVersion", SERVER_VERSION), ("apiVersion", API_VERSION),
                                     ("reconnPort", 0), ("reconnAddr", ""), ("cookie", 400)])
        self.sock.sendall(p.frame("RODS_VERSION", status, body))

    def dispatch(self, msg: p.Message) -> None:
        handler = self.handlers.get(msg.int_info)
        faults = self.server.faults
        try:
            if handler is None:
                raise fail("SYS_UNMATCHED_API_NUM", f"API {msg.int_info} is not implemented by the local grid")
            if self.user is None and msg.int_info not in (110000, 703, 704):
                raise fail("SYS_NO_API_PRIV", "not authenticated")
            drop = faults.should_drop()
            if drop and msg.int_info not in (675, 676):
                self.server.count("drops")
                raise Dropped("fault injection before reply")
            result = handler(msg, drop) if msg.int_info in (675, 676) else handler(msg)
            if result is None:
                return  # the handler streamed its own reply
            int_info, body = result
            faults.delay()
            self.sock.sendall(p.frame("RODS_API_REPLY", int_info, body))
        except IrodsError as err:
            faults.delay()
            self.sock.sendall(p.frame("RODS_API_REPLY", err.code, err.body, p.pack_error(err.code, err.message)))
        except p.ProtocolError as err:
            # a malformed request inside a well-framed message: answer, do not die
            self.sock.sendall(p.frame("RODS_API_REPLY", -14000, b"", p.pack_error(-14000, str(err))))

    def cleanup(self) -> None:
        for inx in list(self.descriptors):
            self.release(inx, aborted=True)
        self.queries.close()
        self.cat.close()
        try:
            self.sock.close()
        except OSError:
            pass

    # ================================================================ auth ========
    def _check_user(self, name: str, zone: str) -> None:
        row = self.cat.user(name, zone or self.zone)
        if row is None or row["user_type_name"] == "rodsgroup":
            raise fail("CAT_INVALID_USER", f"unknown user {name}#{zone}")

    def _verify(self, name: str, zone: str, digest: bytes) -> None:
        row = self.cat.user(name, zone or self.zone)
        if row is None or row["user_type_name"] == "rodsgroup":
            raise fail("CAT_INVALID_USER", f"unknown user {name}")
        password = (row["rcat_password"] or "").encode()
        expected = hashlib.md5(self.challenge + struct.pack(f"{MAX_PASSWORD_LENGTH}s", password)).digest()
        expected = expected.replace(b"\0", b"\1")
        if not row["rcat_password"] or not secrets.compare_digest(expected, digest[:16]):
            self.server.count("auth_failures")
            raise fail("CAT_INVALID_AUTHENTICATION", "authentication failed")
        self.login(row)

    def login(self, row) -> None:
        self.user, self.user_id, self.user_type = row["user_name"], row["user_id"], row["user_type_name"]
        client_name, client_zone = self.client
        if self.user_type == "rodsadmin" and client_name and client_name != self.user:
            other = self.cat.user(client_name, client_zone or self.zone)
            if other is None:
                raise fail("CAT_INVALID_USER", f"unknown client user {client_name}")
            self.user, self.user_id, self.user_type = other["user_name"], other["user_id"], other["user_type_name"]
        self.groups = self.cat.group_ids(self.user_id) + [self.user_id]
        self.server.count("logins")

    def _new_challenge(self) -> bytes:
        self.challenge = secrets.token_hex(32).encode()   # 64 printable bytes, as get64RandomBytes
        self.signature = self.challenge[:16].hex()
        return self.challenge

    def api_authenticate(self, msg):
        req = p.json_request(msg.xml())
        if req.get("scheme") != "native":
            raise fail("SYS_INVALID_INPUT_PARAM", f"authentication scheme {req.get('scheme')!r} not offered")
        op = req.get("next_operation")
        name, zone = req.get("user_name", ""), req.get("zone_name", "")
        if op == "auth_agent_start":
            return 0, p.pack_json(req)
        if op == "auth_agent_auth_request":
            self._check_user(name, zone)
            resp = dict(req, request_result=self._new_challenge().decode())
            return 0, p.pack_json(resp)
        if op == "auth_agent_auth_response":
            if not self.challenge:
                raise fail("CAT_INVALID_AUTHENTICATION", "no challenge issued")
            try:
                digest = base64.b64decode(req.get("digest", ""))
            except ValueError:
                raise fail("CAT_INVALID_AUTHENTICATION", "bad digest") from None
            self._verify(name, zone, digest)
            return 0, p.pack_json({})
        raise fail("SYS_INVALID_INPUT_PARAM", f"unknown auth operation {op!r}")

    def api_auth_request(self, msg):
        return 0, p.pack("authRequestOut_PI", [("challenge", p.Bin(self._new_challenge()))])

    def api_auth_response(self, msg):
        body = msg.xml()
        try:
            digest = base64.b64decode(p.text(body, "response"))
        except ValueError:
            raise fail("CAT_INVALID_AUTHENTICATION", "bad response") from None
        user = p.text(body, "username")
        name, _, zone = user.partition("#")
        if not self.challenge:
            raise fail("CAT_INVALID_AUTHENTICATION", "no challenge issued")
        self._verify(name, zone, digest)
        return 0, b""

    # ================================================================ helpers =====
    def is_admin(self) -> bool:
        return self.user_type == "rodsadmin"

    def require_admin(self) -> None:
        if not self.is_admin():
            raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "needs rodsadmin")

    def require(self, object_id: int, level: int, what: str) -> None:
        if self.is_admin():
            return
        if self.cat.access_level(object_id, self.groups) < level:
            raise fail("CAT_NO_ACCESS_PERMISSION", f"no permission on {what}")

    def replicas_or_fail(self, path: str, level: int, missing: str = "CAT_UNKNOWN_FILE") -> list:
        """The replicas of a data object the user may act on at ``level``; the error a zone gives if none."""
        reps = self.cat.replicas(path)
        if not reps:
            raise fail(missing, path)
        self.require(reps[0]["data_id"], level, path)
        return reps

    def coll_or_fail(self, path: str):
        row = self.cat.coll(path)
        if row is None:
            raise fail("CAT_UNKNOWN_COLLECTION", f"no collection {path}")
        return row

    def trash_path(self, path: str) -> str:
        """Where a non-forced remove puts things: /zone/trash/home/<user>/<rest of the path>."""
        prefix = f"/{self.zone}/home/"
        rest = path[len(prefix):] if path.startswith(prefix) else path.strip("/")
        if rest.split("/")[0] != self.user:
            rest = f"{self.user}/{rest.split('/', 1)[-1]}"
        target = f"/{self.zone}/trash/home/{rest}"
        if self.cat.kind(target):
            target += f".{secrets.randbelow(10**9)}"
        return target

    def ensure_colls(self, path: str) -> None:
        missing = []
        while self.cat.coll(path) is None:
            missing.append(path)
            path = split(path)[0]
        for coll in reversed(missing):
            self.cat.insert_coll(coll, self.user, self.zone)

    # ================================================================ collections ==
    def api_coll_create(self, msg):
        body = msg.xml()
        path = normalize(p.text(body, "collName"))
        kv = p.keyvals(body)
        recursive = "recursiveOpr" in kv
        with self.cat.transaction():
            kind = self.cat.kind(path)
            if kind == "data":
                raise fail("CAT_NAME_EXISTS_AS_DATAOBJ", path)
            if kind == "coll":
                if recursive:
                    return 0, b""
                raise fail("CAT_NAME_EXISTS_AS_COLLECTION", path)
            parent = split(path)[0]
            if self.cat.coll(parent) is None:
                if not recursive:
                    raise fail("CAT_UNKNOWN_COLLECTION", f"no parent collection {parent}")
                anc = parent
                while self.cat.coll(anc) is None:
                    anc = split(anc)[0]
                self.require(self.cat.coll(anc)["coll_id"], 1120, anc)
                self.ensure_colls(path)
            else:
                self.require(self.cat.coll(parent)["coll_id"], 1120, parent)
                self.cat.insert_coll(path, self.user, self.zone)
        return 0, b""

    def api_rm_coll(self, msg):
        body = msg.xml()
        path = normalize(p.text(body, "collName"))
        kv = p.keyvals(body)
        with self.cat.transaction():
            row = self.coll_or_fail(path)
            self.require(row["coll_id"], 1200, path)
            if path.count("/") <= 3 and not self.is_admin():
                raise fail("SYS_NOT_ALLOWED", f"cannot remove {path}")
            has_children = self.cat.one("SELECT 1 FROM r_coll_main WHERE parent_coll_name=?", path) or \
                self.cat.one("SELECT 1 FROM r_data_main WHERE coll_id=?", row["coll_id"])
            if has_children and "recursiveOpr" not in kv:
                raise fail("CAT_COLLECTION_NOT_EMPTY", path)
            if "forceFlag" in kv or path.startswith(f"/{self.zone}/trash/"):
                files = self._delete_tree(path)
            else:
                self.ensure_colls(split(target := self.trash_path(path))[0])
                self._rename_coll(path, target)
                files = []
        for f in files:
            f.unlink(missing_ok=True)
        return 0, b""

    def _delete_tree(self, path: str) -> list[Path]:
        colls = self.cat.all("SELECT coll_id FROM r_coll_main WHERE coll_name=? OR coll_name LIKE ? ESCAPE '\\'",
                             path, _like_prefix(path))
        files = []
        for c in colls:
            for d in self.cat.all("SELECT DISTINCT data_id FROM r_data_main WHERE coll_id=?", c[0]):
                files += [Path(r["data_path"]) for r in
                          self.cat.all("SELECT data_path FROM r_data_main WHERE data_id=?", d[0])]
                self.cat.db.execute("DELETE FROM r_data_main WHERE data_id=?", (d[0],))
                self.cat.drop_object(d[0])
            self.cat.db.execute("DELETE FROM r_coll_main WHERE coll_id=?", (c[0],))
            self.cat.drop_object(c[0])
        return files

    def _rename_coll(self, src: str, dst: str) -> None:
        ts = now()
        self.cat.db.execute("UPDATE r_coll_main SET coll_name = ? || substr(coll_name, ?), modify_ts=?"
                            " WHERE coll_name LIKE ? ESCAPE '\\'", (dst, len(src) + 1, ts, _like_prefix(src)))
        self.cat.db.execute("UPDATE r_coll_main SET parent_coll_name = ? || substr(parent_coll_name, ?)"
                            " WHERE parent_coll_name = ? OR parent_coll_name LIKE ? ESCAPE '\\'",
                            (dst, len(src) + 1, src, _like_prefix(src)))
        self.cat.db.execute("UPDATE r_coll_main SET coll_name=?, parent_coll_name=?, modify_ts=? WHERE coll_name=?",
                            (dst, split(dst)[0], ts, src))

    def api_rename(self, msg):
        body = msg.xml()
        parts = body.findall("DataObjInp_PI")
        if len(parts) != 2:
            raise p.ProtocolError("rename needs source and destination")
        src_el, dst_el = parts
        src, dst = normalize(p.text(src_el, "objPath")), normalize(p.text(dst_el, "objPath"))
        opr = p.integer(src_el, "oprType")
        moves = []
        with self.cat.transaction():
            kind = self.cat.kind(src)
            if kind is None or (opr == 11 and kind != "data") or (opr == 12 and kind != "coll"):
                raise fail("CAT_UNKNOWN_FILE" if opr != 12 else "CAT_UNKNOWN_COLLECTION", src)
            existing = self.cat.kind(dst)
            if existing:
                raise fail("CAT_NAME_EXISTS_AS_DATAOBJ" if existing == "data" else "CAT_NAME_EXISTS_AS_COLLECTION",
                           dst)
            parent = self.coll_or_fail(split(dst)[0])
            self.require(parent["coll_id"], 1120, parent["coll_name"])
            if kind == "coll":
                if dst.startswith(src + "/"):
                    raise fail("SYS_NOT_ALLOWED", "cannot move a collection into itself")
                self.require(self.cat.coll(src)["coll_id"], 1200, src)
                self._rename_coll(src, dst)
            else:
                reps = self.cat.replicas(src)
                self.require(reps[0]["data_id"], 1200, src)
                for r in reps:
                    leaf = self.cat.resource_by_id(r["resc_id"])
                    new_phys = physical_path(leaf["resc_def_path"], dst)
                    moves.append((Path(r["data_path"]), new_phys))
                    self.cat.db.execute("UPDATE r_data_main SET coll_id=?, data_name=?, data_path=?, modify_ts=?"
                                        " WHERE data_id=? AND data_repl_num=?",
                                        (parent["coll_id"], split(dst)[1], str(new_phys), now(),
                                         r["data_id"], r["data_repl_num"]))
                for old, new in moves:   # physical renames inside the transaction: undone if one fails
                    new.parent.mkdir(parents=True, exist_ok=True)
                    if old.exists():
                        os.replace(old, new)
        return 0, b""

    # ================================================================ data objects ==
    def _open_request(self, msg):
        body = msg.xml()
        return body, normalize(p.text(body, "objPath")), p.keyvals(body)

    def api_create(self, msg):
        body, path, kv = self._open_request(msg)
        return self._open(path, O_RDWR | O_CREAT | O_TRUNC, kv, create_api=True)

    def api_open(self, msg):
        body, path, kv = self._open_request(msg)
        return self._open(path, p.integer(body, "openFlags"), kv)

    def _open(self, path: str, flags: int, kv: dict, create_api: bool = False):
        writing = (flags & O_ACCMODE) in (O_WRONLY, O_RDWR) or create_api
        token = kv.get("replicaToken", "")
        with self.cat.transaction():
            if self.cat.coll(path) is not None:
                raise fail("CAT_NAME_EXISTS_AS_COLLECTION" if writing else "SYS_NOT_ALLOWED", path)
            replicas = self.cat.replicas(path)
            if token and writing:   # a read ignores the token: any good replica will do
                return self._join_token(path, token, replicas, writing, kv)
            if not replicas:
                if not flags & O_CREAT:
                    raise fail("OBJ_PATH_DOES_NOT_EXIST", path)
                desc = self._create_replica(path, kv)
            elif writing:
                # 4.3's create over an existing object truncates it, as PRC's create(force=True)
                # expects (its own tests: test_create_and_put_forcing_based_on_truth_table__issue_132)
                self.require(replicas[0]["data_id"], 1120, path)
                target = self._write_target(replicas, kv)
                truncate = bool(flags & O_TRUNC)
                if isinstance(target, str):   # a named resource without a replica: a new one there
                    desc = self._add_replica(path, replicas, target, truncate, kv)
                else:
                    desc = self._open_replica(path, target, writing=True, truncate=truncate, kv=kv)
            else:
                self.require(replicas[0]["data_id"], 1050, path)
                target = self.res.readable(replicas, kv.get("rescName") or kv.get("rescHier", "").split(";")[0])
                desc = self._open_replica(path, target, writing=False, truncate=False, kv=kv)
        return self._register(desc)

    def _register(self, desc: Descriptor):
        inx = max(self.descriptors, default=2) + 1
        self.descriptors[inx] = desc
        if desc.writing:
            self.server.replica_table.acquire(desc.token, desc.data_id, desc.repl_num)
        return inx, b""

    def _join_token(self, path, token, replicas, writing, kv):
        entry = self.server.replica_table.get(token)
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
        phys = physical_path(leaf["resc_def_path"], path)
        phys.parent.mkdir(parents=True, exist_ok=True)
        if not truncate:      # "a" or "r+": the new replica starts as a copy of a good one
            shutil.copyfile(self.res.readable(replicas)["data_path"], phys)
        src = replicas[0]
        ts = now()
        self.cat.db.execute(
            "INSERT INTO r_data_main (data_id, coll_id, data_name, data_repl_num, data_type_name, data_size, resc_id,"
            " data_path, data_owner_name, data_owner_zone, data_is_dirty, create_ts, modify_ts, data_mode)"
            " VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
            (src["data_id"], src["coll_id"], src["data_name"], repl_num, src["data_type_name"], leaf["resc_id"],
             str(phys), src["data_owner_name"], src["data_owner_zone"], INTERMEDIATE, ts, ts, src["data_mode"]))
        row = self.cat.one("SELECT d.*, r.resc_name FROM r_data_main d JOIN r_resc_main r ON r.resc_id = d.resc_id"
                           " WHERE d.data_id=? AND d.data_repl_num=?", src["data_id"], repl_num)
        return self._open_replica(path, row, writing=True, truncate=truncate, kv=kv, status=False)

    def _create_replica(self, path: str, kv: dict) -> Descriptor:
        parent = self.coll_or_fail(split(path)[0])
        self.require(parent["coll_id"], 1120, parent["coll_name"])
        root = self._named_root(kv) or self.server.default_resource
        if kv.get("rescHier"):
            leaf = self.res.root(kv["rescHier"].split(";")[-1])
        else:
            leaf = self.res.pick_leaf(root)
        if not self.res.leaf_is_up(leaf["resc_id"]):
            raise fail("SYS_RESC_IS_DOWN", leaf["resc_name"])
        data_id, ts = self.cat.new_id(), now()
        phys = physical_path(leaf["resc_def_path"], path)
        self.cat.db.execute(
            "INSERT INTO r_data_main (data_id, coll_id, data_name, data_repl_num, data_type_name, data_size,"
            " resc_id, data_path, data_owner_name, data_owner_zone, data_is_dirty, create_ts, modify_ts, data_mode)"
            " VALUES (?, ?, ?, 0, ?, 0, ?, ?, ?, ?, ?, ?, ?, '33188')",
            (data_id, parent["coll_id"], split(path)[1], kv.get("dataType", "generic"), leaf["resc_id"], str(phys),
             self.user, self.zone, INTERMEDIATE, ts, ts))
        owner = self.user_id
        self.cat.grant(data_id, owner, "own")
        if parent["coll_inheritance"] == "1":
            self.cat.inherit(parent["coll_id"], data_id)
        phys.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(phys, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        return Descriptor(path, data_id, 0, leaf["resc_id"], phys, fd, True, uuid.uuid4().hex, kv, truncated=True,
                          hasher=hashlib.sha256() if _wants_checksum(kv) else None)

    def _open_replica(self, path, row, writing, truncate, kv, token="", status=True) -> Descriptor:
        if not self.res.leaf_is_up(row["resc_id"]):
            raise fail("SYS_RESC_IS_DOWN", f"resource {row['resc_name']} is down")
        phys = Path(row["data_path"])
        if writing:
            phys.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(phys, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if truncate else 0), 0o600)
            if status:
                self.cat.db.execute("UPDATE r_data_main SET data_is_dirty=? WHERE data_id=? AND data_repl_num=?",
                                    (INTERMEDIATE, row["data_id"], row["data_repl_num"]))
        else:
            try:
                fd = os.open(phys, os.O_RDONLY)
            except FileNotFoundError:
                raise fail("SYS_REPLICA_INACCESSIBLE", f"replica file missing for {path}") from None
        return Descriptor(path, row["data_id"], row["data_repl_num"], row["resc_id"], phys, fd, writing,
                          token or uuid.uuid4().hex, kv, truncated=truncate,
                          hasher=hashlib.sha256() if truncate and _wants_checksum(kv) else None)

    def _desc(self, body) -> tuple[int, Descriptor]:
        inx = p.integer(body, "l1descInx")
        desc = self.descriptors.get(inx)
        if desc is None:
            raise fail("SYS_BAD_FILE_DESCRIPTOR" if inx > 0 else "SYS_FILE_DESC_OUT_OF_RANGE", f"descriptor {inx}")
        return inx, desc

    def api_read(self, msg, drop: bool):
        body = msg.xml()
        _, desc = self._desc(body)
        length = max(0, p.integer(body, "len"))
        size = os.fstat(desc.fd).st_size
        count = max(0, min(length, size - desc.offset))
        self.server.faults.delay()
        self.sock.sendall(p.frame("RODS_API_REPLY", count, b"", bs_len=count))
        sent = 0
        if drop:   # die in the middle of the bytes, as a reset connection does
            self.server.count("drops")
            count = int(count * self.server.faults.fraction())
        while sent < count:
            try:
                n = os.sendfile(self.sock.fileno(), desc.fd, desc.offset + sent, count - sent)
            except BlockingIOError:   # the socket has a timeout, hence is non-blocking underneath
                if not select.select([], [self.sock], [], self.server.idle_timeout)[1]:
                    raise Dropped("client stopped reading") from None
                continue
            if n == 0:
                break
            sent += n
        if drop:
            raise Dropped("fault injection mid-read")
        desc.offset += sent
        return None

    def api_write(self, msg, drop: bool):
        body = msg.xml()
        _, desc = self._desc(body)
        if not desc.writing:
            raise fail("SYS_NOT_ALLOWED", "descriptor is open for reading")
        data = msg.bs if isinstance(msg.bs, (bytes, memoryview)) else b""
        if drop:   # write part of the chunk, then die
            self.server.count("drops")
            part = int(len(data) * self.server.faults.fraction())
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

    def api_lseek(self, msg):
        body = msg.xml()
        _, desc = self._desc(body)
        offset, whence = p.integer(body, "offset"), p.integer(body, "whence")
        base = {0: 0, 1: desc.offset, 2: os.fstat(desc.fd).st_size}.get(whence)
        if base is None or base + offset < 0:
            raise fail("SYS_INVALID_INPUT_PARAM", "bad seek")
        desc.offset = base + offset
        return 0, p.pack("fileLseekOut_PI", [("offset", desc.offset)])

    def api_close(self, msg):
        body = msg.xml()
        inx, desc = self._desc(body)
        desc.options = {**desc.options, **p.keyvals(body)}
        self.release(inx, finalize=True)
        return 0, b""

    def api_replica_close(self, msg):
        req = p.json_request(msg.xml())
        inx = int(req.get("fd", -1))
        if inx not in self.descriptors:
            raise fail("SYS_BAD_FILE_DESCRIPTOR", f"descriptor {inx}")
        self.release(inx, finalize=bool(req.get("update_status")) or bool(req.get("update_size")))
        return 0, b""

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
        table = self.server.replica_table
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
        size = os.fstat(desc.fd).st_size
        sets, args = "data_is_dirty=?, data_size=?, modify_ts=?", [status, size, now()]
        if checksum is not None:
            sets += ", data_checksum=?"
            args.append(checksum)
        self.cat.db.execute(f"UPDATE r_data_main SET {sets} WHERE data_id=? AND data_repl_num=?",
                            (*args, desc.data_id, desc.repl_num))

    def _finalize(self, desc: Descriptor, poisoned: bool) -> None:
        size = os.fstat(desc.fd).st_size
        expected = desc.options.get("dataSize")
        broken = poisoned or (expected not in (None, "", "-1") and desc.written and int(expected) != size)
        checksum = ""
        wants_sum = _wants_checksum(desc.options)
        if wants_sum and not broken:
            if desc.hasher is not None and desc.hashed == size:
                checksum = "sha2:" + base64.b64encode(desc.hasher.digest()).decode()
            else:
                checksum = sha2(desc.phys)
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
                self.cat.db.execute("UPDATE r_data_main SET data_is_dirty=? WHERE data_id=? AND data_repl_num<>?",
                                    (STALE, desc.data_id, desc.repl_num))
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

    def api_unlink(self, msg):
        body, path, kv = self._open_request(msg)
        files = []
        with self.cat.transaction():
            reps = self.replicas_or_fail(path, 1120)
            if "forceFlag" in kv or path.startswith(f"/{self.zone}/trash/"):
                files = [Path(r["data_path"]) for r in reps]
                self.cat.db.execute("DELETE FROM r_data_main WHERE data_id=?", (reps[0]["data_id"],))
                self.cat.drop_object(reps[0]["data_id"])
            else:
                target = self.trash_path(path)
                self.ensure_colls(split(target)[0])
                coll = self.cat.coll(split(target)[0])
                self.cat.db.execute("UPDATE r_data_main SET coll_id=?, data_name=? WHERE data_id=?",
                                    (coll["coll_id"], split(target)[1], reps[0]["data_id"]))
        for f in files:
            f.unlink(missing_ok=True)
        return 0, b""

    def api_touch(self, msg):
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
        with self.cat.transaction():
            kind = self.cat.kind(path)
            if kind is None:
                if opts.get("no_create"):
                    return 0, b""
                if "replica_number" in opts:
                    raise fail("OBJ_PATH_DOES_NOT_EXIST", "Replica numbers cannot be used when creating new data objects.")
                kv = {}
                if "leaf_resource_name" in opts:
                    leaf = self.cat.resource(opts["leaf_resource_name"])
                    if leaf is None or leaf["resc_type_name"] in COORDINATING_TYPES:
                        raise fail("USER_INVALID_RESC_INPUT", f"[{opts['leaf_resource_name']}] is not a leaf resource.")
                    kv["rescHier"] = self.cat.hierarchy(leaf["resc_id"])
                desc = self._create_replica(path, kv)
                try:
                    self._set_status(desc, GOOD, "")
                finally:
                    os.close(desc.fd)
                return 0, b""
            if "reference" in opts:
                ref = normalize(opts["reference"])
                ref_coll = self.cat.coll(ref)
                ref_reps = self.cat.replicas(ref) if ref_coll is None else []
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
                coll = self.cat.coll(path)
                self.require(coll["coll_id"], 1120, path)
                self.cat.db.execute("UPDATE r_coll_main SET modify_ts=? WHERE coll_id=?", (mtime, coll["coll_id"]))
                return 0, b""
            reps = self.cat.replicas(path)
            self.require(reps[0]["data_id"], 1120, path)
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
            self.cat.db.execute("UPDATE r_data_main SET modify_ts=? WHERE data_id=? AND data_repl_num=?",
                                (mtime, target["data_id"], target["data_repl_num"]))
        return 0, b""

    def api_copy(self, msg):
        """DATA_OBJ_COPY (icp): a new object, or a forced overwrite, from a good replica of the source."""
        parts = msg.xml().findall("DataObjInp_PI")
        if len(parts) != 2:
            raise p.ProtocolError("copy needs source and destination")
        src, dst = normalize(p.text(parts[0], "objPath")), normalize(p.text(parts[1], "objPath"))
        kv = p.keyvals(parts[1])
        src_reps = self.cat.replicas(src)
        if not src_reps:
            raise fail("USER_INPUT_PATH_ERR", f"source {src} is not a data object")
        dst_reps = self.cat.replicas(dst)
        if dst_reps:
            if "forceFlag" not in kv:
                raise fail("OVERWRITE_WITHOUT_FORCE_FLAG", dst)
            if kv.get("destRescName"):
                under = self.res.under(kv["destRescName"])
                if not any(r["resc_id"] in under for r in dst_reps):
                    raise fail("HIERARCHY_ERROR", f"cannot overwrite {dst} on {kv['destRescName']}: no replica there")
        if src == dst:
            raise fail("USER_INPUT_PATH_ERR", "same source and destination")
        self.require(src_reps[0]["data_id"], 1050, src)
        source = self.res.readable(src_reps, p.keyvals(parts[0]).get("rescName"))
        if source["data_checksum"]:
            kv.setdefault("regChksum", "")
        inx, _ = self._open(dst, O_RDWR | O_CREAT | O_TRUNC, {**kv, "forceFlag": ""}, create_api=True)
        desc = self.descriptors[inx]
        try:
            with open(source["data_path"], "rb") as f:
                while chunk := f.read(8 * 1024 * 1024):
                    os.write(desc.fd, chunk)
                    if desc.hasher is not None:
                        desc.hasher.update(chunk)
                        desc.hashed += len(chunk)
            desc.written = True
            with self.cat.transaction():
                self.cat.db.execute("UPDATE r_data_main SET data_type_name=? WHERE data_id=?",
                                    (source["data_type_name"], desc.data_id))
        except BaseException:
            self.release(inx, aborted=True)
            raise
        self.release(inx, finalize=True)
        return 0, p.pack("TransferStat_PI", [("numThreads", 0), ("bytesWritten", source["data_size"])])

    def _truncate_replica(self, r, size: int) -> None:
        os.truncate(r["data_path"], size)
        self.cat.db.execute("UPDATE r_data_main SET data_size=?, data_checksum='', modify_ts=?"
                            " WHERE data_id=? AND data_repl_num=?", (size, now(), r["data_id"], r["data_repl_num"]))

    def api_truncate(self, msg):
        """DATA_OBJ_TRUNCATE: every good replica cut (or zero-extended) to dataSize, checksums cleared."""
        body, path, kv = self._open_request(msg)
        size = p.integer(body, "dataSize", -1)
        if size < 0:
            raise fail("SYS_INVALID_INPUT_PARAM", "dataSize must be given")
        with self.cat.transaction():
            reps = self.replicas_or_fail(path, 1120, "OBJ_PATH_DOES_NOT_EXIST")
            for r in reps:
                if r["data_is_dirty"] == GOOD and r["data_size"] != size and self.res.leaf_is_up(r["resc_id"]):
                    self._truncate_replica(r, size)
        return 0, b""

    def api_replica_truncate(self, msg):
        """REPLICA_TRUNCATE (4.3.3): one replica cut to dataSize, the others stale; JSON in a STR_PI either way."""
        body, path, kv = self._open_request(msg)
        size = p.integer(body, "dataSize", -1)

        def out(message: str, r=None) -> bytes:
            return p.pack_str(json.dumps({"message": message,
                                          "resource_hierarchy": self.cat.hierarchy(r["resc_id"]) if r else None,
                                          "replica_number": r["data_repl_num"] if r else None}))

        def error(name: str, message: str, r=None):
            return fail(name, message, out(message, r))

        if "destRescName" in kv or "destRescHier" in kv:
            raise error("SYS_INVALID_INPUT_PARAM", "rs_replica_truncate: destination keywords not supported.")
        if "rescName" in kv and "replNum" in kv:
            raise error("SYS_INVALID_INPUT_PARAM", "rs_replica_truncate: [rescName] and [replNum] cannot be used together.")
        if "irodsAdmin" in kv and not self.is_admin():
            raise error("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "rs_replica_truncate: admin keyword used by non-admin.")
        with self.cat.transaction():
            reps = self.cat.replicas(path)
            if not reps:
                raise error("OBJ_PATH_DOES_NOT_EXIST", f"rs_replica_truncate: no data object [{path}].")
            if "irodsAdmin" not in kv:
                self.require(reps[0]["data_id"], 1120, path)
            if any(r["data_is_dirty"] == INTERMEDIATE for r in reps):
                raise error("LOCKED_DATA_OBJECT_ACCESS", f"rs_replica_truncate: [{path}] is locked.")
            if "replNum" in kv:
                target = next((r for r in reps if str(r["data_repl_num"]) == kv["replNum"]), None)
            elif kv.get("rescName") or kv.get("rescHier"):
                under = self.res.under(kv.get("rescName") or kv["rescHier"].split(";")[-1])
                target = next((r for r in reps if r["resc_id"] in under), None)
            else:
                target = self._write_target(reps, kv)
            if target is None:
                raise error("SYS_REPLICA_INACCESSIBLE" if "rescName" in kv else "SYS_REPLICA_DOES_NOT_EXIST",
                            f"rs_replica_truncate: [{path}] has no such replica.")
            if size < 0:    # what truncate(2) says, as the unixfilesystem plugin reports it
                err = error("UNIX_FILE_TRUNCATE_ERR", "rs_replica_truncate: negative size.", target)
                err.code -= errno.EINVAL
                raise err
            if not self.res.leaf_is_up(target["resc_id"]):
                raise error("SYS_RESC_IS_DOWN", f"rs_replica_truncate: resource {target['resc_name']} is down.", target)
            if target["data_size"] == size:
                return 0, out(f"rs_replica_truncate: Replica of [{path}] already has size [{size}].", target)
            self._truncate_replica(target, size)
            self.cat.db.execute("UPDATE r_data_main SET data_is_dirty = CASE WHEN data_repl_num=? THEN ? ELSE ? END"
                                " WHERE data_id=?", (target["data_repl_num"], GOOD, STALE, target["data_id"]))
        return 0, out("", target)

    def api_chksum(self, msg):
        body, path, kv = self._open_request(msg)
        reps = self.replicas_or_fail(path, 1050)
        if "replNum" in kv:
            targets = [r for r in reps if str(r["data_repl_num"]) == kv["replNum"]]
        elif "ChksumAll" in kv:
            targets = [r for r in reps if r["data_is_dirty"] == GOOD]
        elif kv.get("rescName"):   # the replica there, even a stale one (its checksum is its own)
            under = self.res.under(kv["rescName"])
            targets = sorted((r for r in reps if r["resc_id"] in under), key=lambda r: r["data_is_dirty"] != GOOD)[:1]
        else:
            targets = [self.res.readable(reps, kv.get("rescName"))]
        if not targets:
            raise fail("SYS_REPLICA_DOES_NOT_EXIST", path)
        result = ""
        for r in targets:
            stored = r["data_checksum"] or ""
            if stored and "forceChksum" not in kv and "verifyChksum" not in kv:
                result = result or stored
                continue
            if not self.res.leaf_is_up(r["resc_id"]):   # the bytes must be read: the resource must be up
                raise fail("SYS_RESC_IS_DOWN", f"resource of replica {r['data_repl_num']} is down")
            actual = sha2(Path(r["data_path"]))
            if "verifyChksum" in kv and stored and stored != actual:
                raise fail("USER_CHKSUM_MISMATCH", f"replica {r['data_repl_num']} does not match its checksum")
            with self.cat.transaction():
                self.cat.db.execute("UPDATE r_data_main SET data_checksum=? WHERE data_id=? AND data_repl_num=?",
                                    (actual, r["data_id"], r["data_repl_num"]))
            result = result or actual
        return 0, p.pack_str(result)

    def api_repl(self, msg):
        body, path, kv = self._open_request(msg)
        reps = self.replicas_or_fail(path, 1050)
        source = self.res.readable(reps, kv.get("rescName"))
        if "updateRepl" in kv or "all" in kv:
            targets = [r for r in reps if r["data_is_dirty"] == STALE and self.res.leaf_is_up(r["resc_id"])]
            for r in targets:
                self._copy_replica(source, r["resc_id"], r["data_repl_num"], Path(r["data_path"]))
            if not ("destRescName" in kv):
                return 0, b""
        dest = kv.get("destRescName") or kv.get("defRescName") or self.server.default_resource
        have = {r["resc_id"]: r for r in reps}
        under = self.res.under(dest)
        if kv.get("dest_resc_hier"):     # DEST_RESC_HIER_STR_KW: this leaf of the destination's hierarchy
            leaf = self.res.root(kv["dest_resc_hier"].split(";")[-1])
            if leaf["resc_id"] not in under:
                raise fail("HIERARCHY_ERROR", f"{kv['dest_resc_hier']} is not below {dest}")
            if not any(i in have and have[i]["data_is_dirty"] == GOOD for i in under):
                if leaf["resc_id"] not in have:
                    if not self.res.leaf_is_up(leaf["resc_id"]):
                        raise fail("SYS_RESC_IS_DOWN", f"resource {leaf['resc_name']} is down")
                    repl_num = max(r["data_repl_num"] for r in reps) + 1
                    self._copy_replica(source, leaf["resc_id"], repl_num,
                                       physical_path(leaf["resc_def_path"], path), new=True)
                    return 0, b""
        stale_there = [have[i] for i in under if i in have and have[i]["data_is_dirty"] != GOOD]
        if any(i in have and have[i]["data_is_dirty"] == GOOD for i in under) and not stale_there:
            return 0, b""       # already replicated there: nothing to do
        if stale_there:
            r = stale_there[0]
            self._copy_replica(source, r["resc_id"], r["data_repl_num"], Path(r["data_path"]))
            return 0, b""
        leaf = self.res.pick_leaf(dest, exclude=set(have))
        repl_num = max(r["data_repl_num"] for r in reps) + 1
        self._copy_replica(source, leaf["resc_id"], repl_num, physical_path(leaf["resc_def_path"], path), new=True)
        return 0, b""

    def _copy_replica(self, src, resc_id: int, repl_num: int, dest: Path, new: bool = False) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + f".repl-{uuid.uuid4().hex[:8]}")
        shutil.copyfile(src["data_path"], tmp)
        os.replace(tmp, dest)
        with self.cat.transaction():
            ts = now()
            if new:
                self.cat.db.execute(
                    "INSERT INTO r_data_main (data_id, coll_id, data_name, data_repl_num, data_version, data_type_name,"
                    " data_size, resc_id, data_path, data_owner_name, data_owner_zone, data_is_dirty, data_status,"
                    " data_checksum, data_expiry, data_map_id, data_mode, r_comment, create_ts, modify_ts)"
                    " SELECT data_id, coll_id, data_name, ?, data_version, data_type_name, data_size, ?, ?,"
                    " data_owner_name, data_owner_zone, ?, data_status, data_checksum, data_expiry, data_map_id,"
                    " data_mode, r_comment, ?, ? FROM r_data_main WHERE data_id=? AND data_repl_num=?",
                    (repl_num, resc_id, str(dest), GOOD, ts, ts, src["data_id"], src["data_repl_num"]))
            else:
                self.cat.db.execute("UPDATE r_data_main SET data_is_dirty=?, data_size=?, data_checksum=?,"
                                    " modify_ts=? WHERE data_id=? AND data_repl_num=?",
                                    (GOOD, src["data_size"], src["data_checksum"], ts, src["data_id"], repl_num))

    def api_trim(self, msg):
        body, path, kv = self._open_request(msg)
        files = []
        with self.cat.transaction():
            reps = self.replicas_or_fail(path, 1120)
            try:
                min_copies = int(kv.get("copies", 2) or 2)   # DEF_MIN_COPY_CNT
            except ValueError:
                raise fail("SYS_INVALID_INPUT_PARAM", "copies must be an integer") from None
            candidates = reps
            if "rescName" in kv:
                under = self.res.under(kv["rescName"])
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
                elif r["data_is_dirty"] == INTERMEDIATE:
                    continue
                if not self.res.leaf_is_up(r["resc_id"]):
                    raise fail("SYS_RESC_IS_DOWN", f"cannot unlink replica {r['data_repl_num']}: resource down")
                self.cat.db.execute("DELETE FROM r_data_main WHERE data_id=? AND data_repl_num=?",
                                    (r["data_id"], r["data_repl_num"]))
                files.append(Path(r["data_path"]))
                trimmed += 1
        for f in files:
            f.unlink(missing_ok=True)
        return trimmed, b""

    def api_obj_stat(self, msg):
        body, path, kv = self._open_request(msg)
        coll = self.cat.coll(path)
        if coll is not None:
            return COLL_OBJ_T, p.pack("RodsObjStat_PI", [
                ("objSize", 0), ("objType", COLL_OBJ_T), ("dataMode", 0), ("dataId", coll["coll_id"]), ("chksum", ""),
                ("ownerName", coll["coll_owner_name"]), ("ownerZone", coll["coll_owner_zone"]),
                ("createTime", coll["create_ts"]), ("modifyTime", coll["modify_ts"]), ("rescHier", "")])
        reps = self.cat.replicas(path)
        if not reps:
            raise fail("USER_FILE_DOES_NOT_EXIST", path)
        r = next((r for r in reps if r["data_is_dirty"] == GOOD), reps[0])
        return DATA_OBJ_T, p.pack("RodsObjStat_PI", [
            ("objSize", r["data_size"]), ("objType", DATA_OBJ_T), ("dataMode", 0), ("dataId", r["data_id"]),
            ("chksum", r["data_checksum"] or ""), ("ownerName", r["data_owner_name"]),
            ("ownerZone", r["data_owner_zone"]), ("createTime", r["create_ts"]), ("modifyTime", r["modify_ts"]),
            ("rescHier", self.cat.hierarchy(r["resc_id"]))])

    # ================================================================ queries =====
    def api_genquery(self, msg):
        body = msg.xml()
        sel = body.find("InxIvalPair_PI")
        cond = body.find("InxValPair_PI")
        selects = list(zip([int(x.text) for x in sel.findall("inx")], [int(x.text) for x in sel.findall("ivalue")])) \
            if sel is not None else []
        conditions = list(zip([int(x.text) for x in cond.findall("inx")], [x.text or "" for x in cond.findall("svalue")])) \
            if cond is not None else []
        max_rows, cont = p.integer(body, "maxRows"), p.integer(body, "continueInx")
        options, offset = p.integer(body, "options"), p.integer(body, "partialStartIndex")
        kv = p.keyvals(body)
        if kv.get("zone", self.zone) not in (self.zone, ""):
            raise fail("CAT_INVALID_ARGUMENT", f"unknown zone {kv.get('zone')}")
        rows, columns, next_inx, total = self.queries.run(selects, conditions, max_rows, cont, options, offset,
                                                          None if self.is_admin() else self.groups)
        results = []
        for i, col in enumerate(columns):
            values = ["" if r[i] is None else str(r[i]) for r in rows]
            results.append(p.pack("SqlResult_PI", [("attriInx", col),
                                                   ("reslen", max((len(v) for v in values), default=0) + 1),
                                                   ("value", values)]))
        out = p.pack("GenQueryOut_PI", [("rowCnt", len(rows)), ("attriCnt", len(columns)),
                                        ("continueInx", next_inx), ("totalRowCount", total),
                                        ("SqlResult_PI", results)])
        return 0, out

    # ================================================================ metadata ====
    def api_mod_avu(self, msg):
        body = msg.xml()
        args = [p.text(body, f"arg{i}") for i in range(10)]
        op, kind, name, attr, value, unit = args[:6]
        if op == "cp":
            return self._copy_avus(*args[1:5])
        with self.cat.transaction():
            obj = self.cat.avu_targets(kind, name, self.zone)
            if kind in ("-d", "-C"):
                self.require(obj, 1070, name)
            elif not self.is_admin() and not (kind == "-u" and name.split("#")[0] == self.user):
                raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "needs rodsadmin")
            if op in ("add", "adda"):
                if not attr or not value:
                    raise fail("CAT_INVALID_ARGUMENT", "attribute and value must be non-empty")
                self.cat.add_avu(obj, attr, value, unit)
            elif op in ("rm", "rmw"):
                if self.cat.remove_avu(obj, attr, value, unit, wildcard=(op == "rmw")) == 0 and op == "rm":
                    raise fail("CAT_SUCCESS_BUT_WITH_NO_INFO", "no such AVU")
            elif op == "rmi":
                self.cat.db.execute("DELETE FROM r_objt_metamap WHERE object_id=? AND meta_id=?", (obj, int(attr)))
            elif op == "set":
                self.cat.set_avu(obj, attr, value, unit)
            elif op == "mod":
                if self.cat.remove_avu(obj, attr, value, unit) == 0:
                    raise fail("CAT_SUCCESS_BUT_WITH_NO_INFO", "no such AVU")
                new = {"n": attr, "v": value, "u": unit}
                for extra in args[6:]:
                    if len(extra) > 2 and extra[1] == ":" and extra[0] in new:
                        new[extra[0]] = extra[2:]
                self.cat.add_avu(obj, new["n"], new["v"], new["u"])
            else:
                raise fail("CAT_INVALID_ARGUMENT", f"unknown metadata operation {op!r}")
        return 0, b""

    def _copy_avus(self, from_kind: str, to_kind: str, from_name: str, to_name: str):
        with self.cat.transaction():
            source = self.cat.avu_targets(from_kind, from_name, self.zone)
            target = self.cat.avu_targets(to_kind, to_name, self.zone)
            if from_kind in ("-d", "-C"):
                self.require(source, 1040, from_name)
            if to_kind in ("-d", "-C"):
                self.require(target, 1070, to_name)
            elif not self.is_admin():
                raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "needs rodsadmin")
            self.cat.copy_avus(source, target)
        return 0, b""

    _ENTITY_KINDS = {"data_object": "-d", "collection": "-C", "resource": "-R", "user": "-u"}

    def api_atomic_metadata(self, msg):
        """ATOMIC_APPLY_METADATA_OPERATIONS_APN: all operations in one transaction, or none.

        As rs_atomic_apply_metadata_operations: adding an AVU the object already has and
        removing one it lacks are no-ops; a failing operation rolls everything back and the
        reply carries {"operation", "operation_index", "error_message"}.
        """
        req = p.json_request(msg.xml())

        def error(name: str, text: str, op=None, index: int = 0):
            return fail(name, text, p.pack_json({"operation": op or {}, "operation_index": index,
                                                "error_message": text}))

        kind = self._ENTITY_KINDS.get(req.get("entity_type"))
        name = req.get("entity_name")
        if kind is None or not isinstance(name, str):
            raise error("SYS_INVALID_INPUT_PARAM", "Invalid entity type or name")
        operations = req.get("operations")
        if not isinstance(operations, list):
            raise error("SYS_INTERNAL_ERR", "operations must be a list")
        with self.cat.transaction():
            try:
                obj = self.cat.avu_targets(kind, name, self.zone)
            except IrodsError:
                raise error("SYS_INVALID_INPUT_PARAM", f"Entity does not exist [entity_name={name}]") from None
            allowed = self.is_admin() or (kind in ("-d", "-C") and self.cat.access_level(obj, self.groups) >= 1070)
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
                    self.cat.add_avu(obj, attr, value, units, exist_ok=True)
                elif op["operation"] == "remove":
                    self.cat.remove_avu(obj, attr, value, units)
                else:
                    raise error("INVALID_OPERATION", "Invalid metadata operation.", op, index)
        return 0, p.pack_json({})

    def api_mod_acl(self, msg):
        body = msg.xml()
        level = p.text(body, "accessLevel")
        user, zone = p.text(body, "userName"), p.text(body, "zone") or self.zone
        path = normalize(p.text(body, "path"))
        recursive = p.integer(body, "recursiveFlag") == 1
        admin_mode = level.startswith("admin:")
        level = level.split(":", 1)[1] if admin_mode else level
        if admin_mode:
            self.require_admin()
        with self.cat.transaction():
            coll = self.cat.coll(path)
            reps = self.cat.replicas(path) if coll is None else []
            if coll is None and not reps:
                raise fail("CAT_UNKNOWN_FILE", path)
            targets = [coll["coll_id"]] if coll is not None else [reps[0]["data_id"]]
            if coll is not None and recursive:
                colls = self.cat.all("SELECT coll_id FROM r_coll_main WHERE coll_name LIKE ? ESCAPE '\\'",
                                     _like_prefix(path))
                targets += [c[0] for c in colls]
                ids = [coll["coll_id"]] + [c[0] for c in colls]
                marks = ",".join("?" * len(ids))
                targets += [d[0] for d in self.cat.all(
                    f"SELECT DISTINCT data_id FROM r_data_main WHERE coll_id IN ({marks})", *ids)]
            for t in targets:
                self.require(t, 1200, path)
            if level in ("inherit", "noinherit"):
                if coll is None:
                    raise fail("CAT_INVALID_ARGUMENT", "inheritance applies to collections")
                flag = "1" if level == "inherit" else "0"
                colls = [t for t in targets if self.cat.one("SELECT 1 FROM r_coll_main WHERE coll_id=?", t)]
                for c in colls:
                    self.cat.db.execute("UPDATE r_coll_main SET coll_inheritance=? WHERE coll_id=?", (flag, c))
                return 0, b""
            row = self.cat.user(user, zone)
            if row is None:
                raise fail("CAT_INVALID_USER", f"unknown user {user}")
            for t in targets:
                self.cat.grant(t, row["user_id"], level)
        return 0, b""

    # ================================================================ admin =======
    def _admin_password(self) -> str:
        row = self.cat.one("SELECT rcat_password FROM r_user_password WHERE user_id=?", self.user_id)
        return row[0] if row else ""

    def api_general_admin(self, msg):
        body = msg.xml()
        a = [p.text(body, f"arg{i}") for i in range(10)]
        self.require_admin()
        with self.cat.transaction():
            handler = {("add", "user"): self._add_user, ("rm", "user"): self._rm_user,
                       ("modify", "user"): self._modify_user, ("add", "resource"): self._add_resource,
                       ("rm", "resource"): self._rm_resource, ("add", "childtoresc"): self._add_child,
                       ("rm", "childfromresc"): self._rm_child, ("modify", "resource"): self._modify_resource,
                       ("modify", "group"): self._modify_group, ("add", "group"): self._add_user,
                       ("rm", "group"): self._rm_user, ("rm", "unusedAVUs"): self._rm_unused_avus,
                       }.get((a[0], a[1]))
            if handler is None:
                raise fail("SYS_INVALID_INPUT_PARAM", f"admin operation {a[0]} {a[1]} not supported by the local grid")
            handler(a)
        return 0, b""

    def _rm_unused_avus(self, a):
        """iadmin rum: drop AVUs no object refers to any more (chlDelUnusedAVUs)."""
        self.cat.db.execute("DELETE FROM r_meta_main WHERE meta_id NOT IN (SELECT meta_id FROM r_objt_metamap)")

    def _add_user(self, a):
        name, utype, zone, auth = a[2], a[3] or "rodsuser", a[4] or self.zone, a[5]
        if a[1] == "group":
            utype = "rodsgroup"
        if utype not in ("rodsuser", "rodsadmin", "rodsgroup", "groupadmin"):
            raise fail("CAT_INVALID_ARGUMENT", f"bad user type {utype}")
        password = None
        if auth:
            from irods.password_obfuscation import unscramble
            password = _strip_padding(unscramble(auth, key=self._admin_password(), scramble_prefix=""))
        self.cat.add_user(name.split("#")[0], utype, zone, password)
        if utype != "rodsgroup":
            home = f"/{self.zone}/home/{name}"
            for coll in (home, f"/{self.zone}/trash/home/{name}"):
                if self.cat.coll(coll) is None:
                    cid = self.cat.insert_coll(coll, name, self.zone)
                    self.cat.grant(cid, self.user_id, "own")

    def _rm_user(self, a):
        """iadmin rmuser/rmgroup; as acDeleteUser, a user's empty home and trash go too."""
        row = self.cat.user(a[2].split("#")[0], a[3] or self.zone)
        if row is None:
            raise fail("CAT_INVALID_USER", a[2])
        if row["user_type_name"] != "rodsgroup" and row["zone_name"] == self.zone:
            for path in (f"/{self.zone}/home/{row['user_name']}", f"/{self.zone}/trash/home/{row['user_name']}"):
                coll = self.cat.coll(path)
                if coll is None:
                    continue
                if self.cat.one("SELECT 1 FROM r_coll_main WHERE parent_coll_name=?", path) or \
                        self.cat.one("SELECT 1 FROM r_data_main WHERE coll_id=?", coll["coll_id"]):
                    raise fail("CAT_COLLECTION_NOT_EMPTY", path)
                self.cat.db.execute("DELETE FROM r_coll_main WHERE coll_id=?", (coll["coll_id"],))
                self.cat.drop_object(coll["coll_id"])
        self.cat.db.execute("DELETE FROM r_user_main WHERE user_id=?", (row["user_id"],))
        self.cat.db.execute("DELETE FROM r_user_password WHERE user_id=?", (row["user_id"],))
        self.cat.db.execute("DELETE FROM r_user_group WHERE user_id=? OR group_user_id=?",
                            (row["user_id"], row["user_id"]))
        self.cat.db.execute("DELETE FROM r_objt_access WHERE user_id=?", (row["user_id"],))
        self.cat.db.execute("DELETE FROM r_objt_metamap WHERE object_id=?", (row["user_id"],))

    def _modify_user(self, a):
        name, option, value = a[2].split("#")[0], a[3], a[4]
        row = self.cat.user(name, self.zone)
        if row is None:
            raise fail("CAT_INVALID_USER", name)
        if option == "password":
            password = self._decode_v2(value)
            self.cat.db.execute("INSERT OR REPLACE INTO r_user_password VALUES (?, ?)", (row["user_id"], password))
        elif option == "type":
            self.cat.db.execute("UPDATE r_user_main SET user_type_name=? WHERE user_id=?", (value, row["user_id"]))
        elif option in ("info", "comment"):
            column = "user_info" if option == "info" else "r_comment"
            self.cat.db.execute(f"UPDATE r_user_main SET {column}=? WHERE user_id=?", (value, row["user_id"]))
        else:
            raise fail("SYS_INVALID_INPUT_PARAM", f"cannot modify user {option}")

    def _decode_v2(self, scrambled: str) -> str:
        """Undo obfuscate_new_password: scramble_v2 keyed by the admin password and the session signature."""
        from irods.password_obfuscation import unscramble
        key = (self._admin_password()[:90] + self.signature[:100]).ljust(100, "\0")
        hashed = hashlib.md5(key.encode()).hexdigest()
        plain = unscramble(scrambled, key=hashed, scramble_prefix="", block_chaining=True)
        return _strip_padding(plain[len("A.ObfV2"):])   # a random character, then ".ObfV2"

    def _modify_group(self, a):
        group = self.cat.user(a[2], self.zone)
        member = self.cat.user(a[4], a[5] or self.zone)
        if group is None or member is None:
            raise fail("CAT_INVALID_USER", "unknown group or user")
        if a[3] == "add":
            self.cat.db.execute("INSERT OR IGNORE INTO r_user_group VALUES (?, ?)", (group["user_id"], member["user_id"]))
        elif a[3] == "remove":
            self.cat.db.execute("DELETE FROM r_user_group WHERE group_user_id=? AND user_id=?",
                                (group["user_id"], member["user_id"]))
        else:
            raise fail("SYS_INVALID_INPUT_PARAM", f"group operation {a[3]}")

    def _add_resource(self, a):
        name, rtype, location, context = a[2], a[3], a[4], a[5]
        if rtype not in TYPES:
            raise fail("CAT_INVALID_RESOURCE_TYPE", f"the local grid offers {sorted(TYPES)}")
        host, _, vault = location.partition(":")
        if rtype in COORDINATING_TYPES:
            host, vault = "EMPTY_RESC_HOST", "EMPTY_RESC_PATH"
        else:
            # a vault named by the client must stay inside the grid's directory
            vault = str(self.server.vault_root / name)
        if not name or "/" in name or ";" in name:
            raise fail("CAT_INVALID_ARGUMENT", f"bad resource name {name!r}")
        self.cat.add_resource(name, rtype, self.zone, host or "localhost", vault, context)

    def _rm_resource(self, a):
        row = self.res.root(a[2])
        if self.cat.one("SELECT 1 FROM r_data_main WHERE resc_id=?", row["resc_id"]) or self.cat.children(row["resc_id"]):
            raise fail("CAT_RESOURCE_NOT_EMPTY", a[2])
        if row["resc_parent"]:
            raise fail("SYS_NOT_ALLOWED", f"{a[2]} still has a parent")
        self.cat.db.execute("DELETE FROM r_resc_main WHERE resc_id=?", (row["resc_id"],))
        self.cat.drop_object(row["resc_id"])

    def _add_child(self, a):
        parent, child = self.res.root(a[2]), self.res.root(a[3])
        if parent["resc_type_name"] not in COORDINATING_TYPES:
            raise fail("SYS_NOT_ALLOWED", f"{a[2]} is a storage resource and cannot have children")
        if child["resc_parent"]:
            raise fail("SYS_NOT_ALLOWED", f"{a[3]} already has a parent")
        if parent["resc_type_name"] == "passthru" and self.cat.children(parent["resc_id"]):
            raise fail("SYS_NOT_ALLOWED", "a passthru resource takes one child")
        anc = parent
        while anc is not None:
            if anc["resc_id"] == child["resc_id"]:
                raise fail("HIERARCHY_ERROR", "a resource cannot be its own ancestor")
            anc = self.cat.resource_by_id(int(anc["resc_parent"])) if anc["resc_parent"] else None
        self.cat.db.execute("UPDATE r_resc_main SET resc_parent=?, resc_parent_context=? WHERE resc_id=?",
                            (str(parent["resc_id"]), a[4], child["resc_id"]))

    def _rm_child(self, a):
        parent, child = self.res.root(a[2]), self.res.root(a[3])
        if child["resc_parent"] != str(parent["resc_id"]):
            raise fail("SYS_NOT_ALLOWED", f"{a[3]} is not a child of {a[2]}")
        self.cat.db.execute("UPDATE r_resc_main SET resc_parent='', resc_parent_context='' WHERE resc_id=?",
                            (child["resc_id"],))

    def _modify_resource(self, a):
        row = self.res.root(a[2])
        column = {"status": "resc_status", "comment": "r_comment", "context": "resc_context",
                  "info": "resc_info", "free_space": "free_space"}.get(a[3])
        if column is None:
            raise fail("SYS_INVALID_INPUT_PARAM", f"cannot modify resource {a[3]}")
        self.cat.db.execute(f"UPDATE r_resc_main SET {column}=?, modify_ts=? WHERE resc_id=?",
                            (a[4], now(), row["resc_id"]))

    def api_user_admin(self, msg):
        body = msg.xml()
        a = [p.text(body, f"arg{i}") for i in range(10)]
        if a[0] == "mkuser":
            self.require_admin()
            name, _, zone = a[1].partition("#")
            with self.cat.transaction():
                self._add_user(["add", "user", name, "rodsuser", zone or self.zone, a[2]])
            return 0, b""
        if a[0] != "userpw" or a[2] != "password":
            raise fail("SYS_INVALID_INPUT_PARAM", f"user admin operation {a[0]} not supported")
        if a[1] != self.user and not self.is_admin():
            raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "can only change one's own password")
        password = self._decode_v2(a[3])
        with self.cat.transaction():
            row = self.cat.user(a[1], self.zone)
            self.cat.db.execute("INSERT OR REPLACE INTO r_user_password VALUES (?, ?)", (row["user_id"], password))
        return 0, b""


def _wants_checksum(kv: dict) -> bool:
    """iput -k / -K: the server computes (and for -K compares) the checksum at close."""
    return "regChksum" in kv or "verifyChksum" in kv


_PADDING = "1gCBizHWbwIYyWLoysGzTe6SyzqFKMniZX05faZHWAwQKXf6Fs"


def _strip_padding(plain: str) -> str:
    """Clients pad short new passwords to 40 characters with a fixed string (db_plugin.cpp)."""
    if len(plain) == MAX_PASSWORD_LENGTH - 10:
        for k in range(1, 25):
            if plain[k:] == _PADDING[:len(plain) - k]:
                return plain[:k]
    return plain


def _like_prefix(path: str) -> str:
    return path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"

