"""One agent per client connection, as the iRODS server forks one per client.

The agent reads the startup pack, authenticates, then answers API requests until the
client disconnects.  The handlers live in ``localgrid.api``, one module per API family,
each registered under its iRODS API number; the agent keeps the session loop, dispatch,
the permission helpers every family uses and the open data-object descriptors (the
server's L1 table): if the connection ends with a replica still open for writing, that
replica is marked stale, so a dropped upload never leaves a replica marked good with
partial bytes.
"""

from __future__ import annotations

import logging
import mmap
import secrets
import socket

from . import protocol as p
from .api import HANDLERS
from .api.admin import AdminApi
from .api.auth import AuthApi
from .api.collections import CollectionApi
from .api.data_objects import DataObjectApi, Descriptor, Dropped
from .api.metadata import MetadataApi
from .api.numbers import STREAMING, UNAUTHENTICATED, ApiNumber
from .api.queries import QueryApi
from .api.replicas import ReplicaApi
from .catalog import AccessLevel, Catalog, split
from .errors import ErrorCode, IrodsError, fail
from .catalog.genquery import QueryEngine
from .resources import Resources
from .state import GridState

log = logging.getLogger("localgrid.agent")

SERVER_VERSION = "rods4.3.4"
API_VERSION = "d"
CS_NEG_STATUS_SUCCESS = 1
COOKIE = 400


def version_pack(status: int) -> bytes:
    """RODS_VERSION: the server's answer to a startup pack (``status`` < 0: refused)."""
    return p.frame("RODS_VERSION", status, p.pack("Version_PI", [
        ("status", status), ("relVersion", SERVER_VERSION), ("apiVersion", API_VERSION),
        ("reconnPort", 0), ("reconnAddr", ""), ("cookie", COOKIE)]))


class Agent(AuthApi, CollectionApi, DataObjectApi, ReplicaApi, MetadataApi, QueryApi, AdminApi):
    def __init__(self, state: GridState, sock: socket.socket) -> None:
        self.state = state
        self.sock = sock
        self.cat = Catalog(state.catalog_path)
        self.queries = QueryEngine(Catalog(state.catalog_path).db)
        self.res = Resources(self.cat, state.faults, state.random)
        self.zone = state.zone
        self.user: str | None = None
        self.user_id: int | None = None
        self.user_type = ""
        self.groups: list[int] = []
        self.challenge = b""
        self.signature = ""
        self.descriptors: dict[int, Descriptor] = {}
        self.stream: mmap.mmap | None = None     # see stream_buffer
        self.link = state.link()

    # ================================================================ session ====
    def run(self, startup: p.Message | None = None) -> None:
        """Serve the connection; ``startup``: its startup pack if the server already read it."""
        try:
            self.sock.settimeout(self.state.idle_timeout)
            self.startup(startup)
            while True:
                msg = p.read_message(self.sock, self.stream_buffer)
                if msg.type == "RODS_DISCONNECT":
                    break
                if msg.type != "RODS_API_REQ":
                    raise p.ProtocolError(f"unexpected message type {msg.type!r}")
                self.state.counters.count("api_calls")
                self.dispatch(msg)
                del msg
                if not self.descriptors:
                    self.stream = None   # the transfer is over: its buffer goes back to the system
        except TimeoutError as exc:
            self.state.counters.count("idle_closed")
            log.debug("agent ends: idle for %ss (%s)", self.state.idle_timeout, exc)
        except (p.PeerClosed, p.ProtocolError, Dropped, OSError) as exc:
            log.debug("agent ends: %s", exc)
        finally:
            self.stream = None
            self.cleanup()

    def stream_buffer(self, size: int) -> mmap.mmap:
        """Where a request's byte stream lands: made when a transfer first needs one, kept while
        a data object is open (the next chunk reuses its pages), unmapped when none is, so an
        idle connection holds no buffer and a finished transfer returns its memory."""
        if self.stream is None or len(self.stream) < size:
            self.stream = mmap.mmap(-1, max(size, 8 * 1024 * 1024))
        return self.stream

    def startup(self, msg: p.Message | None = None) -> None:
        msg = msg or p.read_message(self.sock)
        if msg.type != "RODS_CONNECT":
            raise p.ProtocolError("expected a startup pack")
        pack = msg.xml()
        self.proxy = (p.text(pack, "proxyUser"), p.text(pack, "proxyRcatZone"))
        self.client = (p.text(pack, "clientUser"), p.text(pack, "clientRcatZone"))
        if "request_server_negotiation" in p.text(pack, "option"):
            body = p.pack("CS_NEG_PI", [("status", CS_NEG_STATUS_SUCCESS), ("result", "CS_NEG_REFUSE")])
            self.sock.sendall(p.frame("RODS_CS_NEG_T", 0, body))
            answer = p.read_message(self.sock).xml()
            if "CS_NEG_USE_TCP" not in p.text(answer, "result"):
                raise p.ProtocolError("client wants SSL, which the local grid does not offer")
        self.sock.sendall(version_pack(0))

    def dispatch(self, msg: p.Message) -> None:
        faults = self.state.faults
        try:
            try:
                number = ApiNumber(msg.int_info)
            except ValueError:
                raise fail("SYS_UNMATCHED_API_NUM", f"API {msg.int_info} is not implemented by the local grid") from None
            handler = HANDLERS.get(number)
            if handler is None:
                raise fail("SYS_UNMATCHED_API_NUM", f"API {number.name} is not implemented by the local grid")
            if self.user is None and number not in UNAUTHENTICATED:
                raise fail("SYS_NO_API_PRIV", "not authenticated")
            drop = faults.should_drop()
            if drop and number not in STREAMING:
                self.state.counters.count("drops")
                raise Dropped("fault injection before reply")
            result = handler(self, msg, drop) if number in STREAMING else handler(self, msg)
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
            code = ErrorCode.SYS_API_INPUT_ERR
            self.sock.sendall(p.frame("RODS_API_REPLY", code, b"", p.pack_error(code, str(err))))

    def cleanup(self) -> None:
        for inx in list(self.descriptors):
            self.release(inx, aborted=True)
        self.queries.close()
        self.cat.close()
        try:
            self.sock.close()
        except OSError:
            pass

    # ================================================================ permissions =
    def is_admin(self) -> bool:
        return self.user_type == "rodsadmin"

    def require_admin(self) -> None:
        if not self.is_admin():
            raise fail("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "needs rodsadmin")

    def require(self, object_id: int, level: AccessLevel, what: str) -> None:
        if self.is_admin():
            return
        if self.cat.access_level(object_id, self.groups) < level:
            raise fail("CAT_NO_ACCESS_PERMISSION", f"no permission on {what}")

    def replicas_or_fail(self, path: str, level: AccessLevel, missing: str = "CAT_UNKNOWN_FILE") -> list:
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
