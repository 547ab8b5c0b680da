"""The narrow transport: one method per operation over a python-irodsclient session.

This is the only module that imports python-irodsclient (PRC), like httpx's
``_transports/default.py`` is the only one importing httpcore.  :class:`PrcBackend`
holds one ``iRODSSession`` that is used for one operation at a time, so it holds at
most one connection to the zone (the client's throttle slot accounts for it).

Stall guard
-----------
PRC 3.3 can spin forever when the server closes a connection in the middle of a
``DATA_OBJ_READ`` reply: ``irods.message._recv_message_into`` loops ``while size_left``
and a closed socket's ``recv_into`` returns 0 bytes forever.  A socket time-out cannot
help there (a 0-byte read returns at once).  Two guards together make every call end:

1. :func:`install_stall_guard` replaces ``irods.message._recv_message_into`` (looked
   up as a module global by ``iRODSMessage.recv_into``) with a copy that raises
   ``ConnectionResetError`` on a 0-byte read.  PRC's ``Connection.recv`` turns that
   into a ``NetworkException``, which :func:`~secure_irods.errors.classify` calls
   transient, so the retry policy reconnects (and a get resumes).
2. every socket of the session gets a time-out (``session.connection_timeout``, also
   applied to open connections by :meth:`PrcBackend.set_timeout`): a server that
   stops sending without closing raises ``socket.timeout`` -> transient.

The guard is installed once per process, idempotently, when a backend is created.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from typing import BinaryIO

from irods import keywords as kw
from irods.column import Like
from irods.models import Collection, DataObject
from irods.password_obfuscation import decode
from irods.session import iRODSSession
import irods.message as _prc_message

from .errors import NotFoundError, PermanentError, register_secret

__all__ = ["RemoteStat", "PrcBackend", "install_stall_guard"]

GOOD = "1"

_guard_lock = threading.Lock()


def _recv_message_into_guarded(sock, buffer, size):
    """PRC's ``_recv_message_into``, but a closed connection raises instead of spinning."""
    size_left = size
    index = 0
    mv = memoryview(buffer)
    while size_left > 0:
        try:
            rsize = sock.recv_into(mv[index:], size_left, socket.MSG_WAITALL)
        except (AttributeError, ValueError):  # SSL sockets do not take flags
            rsize = sock.recv_into(mv[index:], size_left)
        if rsize == 0:
            raise ConnectionResetError(f"connection closed with {size_left} of {size} bytes still expected")
        size_left -= rsize
        index += rsize
    return mv[:index]


def install_stall_guard() -> None:
    """Patch PRC once so a connection closed mid-reply raises (see module docstring)."""
    with _guard_lock:
        if _prc_message._recv_message_into is not _recv_message_into_guarded:
            _prc_message._recv_message_into = _recv_message_into_guarded


@dataclass(frozen=True)
class RemoteStat:
    """What the catalogue says about a path: a data object (size, checksum of a good replica) or a collection."""

    path: str
    kind: str  # "data" or "coll"
    size: int = 0
    checksum: str = ""

    @property
    def is_collection(self) -> bool:
        return self.kind == "coll"


class RawReader:
    """PRC's raw data-object file, kept with its buffered wrapper (whose collection would close it)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.raw = handle.raw  # type: ignore[attr-defined]

    def seek(self, offset: int) -> int:
        return self.raw.seek(offset)

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` with one DATA_OBJ_READ; 0 at the end of the object."""
        return self.raw.readinto(buffer)

    def read(self, size: int) -> bytes:
        buffer = bytearray(size)
        got = self.raw.readinto(buffer)
        del buffer[got:]
        return bytes(buffer)

    def close(self) -> None:
        self.raw.close()  # closes the replica, releases the connection; the wrapper then is closed too


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rstrip("/").rpartition("/")
    return parent or "/", name


class PrcBackend:
    """One iRODS session, one operation at a time.  Every method may raise PRC errors; callers classify."""

    def __init__(self, session: iRODSSession, io_timeout: float = 60.0) -> None:
        install_stall_guard()
        self.session = session
        self.set_timeout(io_timeout)

    @classmethod
    def connect(cls, env_file: str | os.PathLike, auth_file: str | os.PathLike | None = None,
                io_timeout: float = 60.0) -> "PrcBackend":
        """Open a session from an environment file and log in (one connection, authenticated)."""
        install_stall_guard()
        kwargs = {"irods_env_file": str(env_file)}
        if auth_file:
            kwargs["irods_authentication_file"] = str(auth_file)
        session = iRODSSession(**kwargs)
        account = session.pool.account
        if auth_file and getattr(account, "authentication_scheme", "native") == "native":
            # PRC lets the environment file's irods_authentication_file win over the argument;
            # the icommands let $IRODS_AUTHENTICATION_FILE win.  Do as the icommands do.
            with open(auth_file) as f:
                account.password = decode(f.read().rstrip("\n"))
            account._auth_file = str(auth_file)
        register_secret(getattr(account, "password", None))
        backend = cls(session, io_timeout)
        try:
            # Logs in on the pool's connection and caches the version, so later opens reuse that
            # connection instead of PRC fetching the version over a second one.
            session.server_version  # noqa: B018
        except BaseException:
            backend.close()
            raise
        return backend

    # --------------------------------------------------------------- session

    @property
    def zone(self) -> str:
        return self.session.zone

    @property
    def home(self) -> str:
        return f"/{self.session.zone}/home/{self.session.username}"

    def set_timeout(self, seconds: float) -> None:
        """Time-out of every socket operation, for new and already open connections."""
        seconds = max(0.05, float(seconds))
        self.session.connection_timeout = seconds
        pool = self.session.pool
        for conn in list(getattr(pool, "idle", ())) + list(getattr(pool, "active", ())):
            sock = getattr(conn, "socket", None)
            if sock is not None:
                try:
                    sock.settimeout(seconds)
                except OSError:
                    pass

    def close(self) -> None:
        """Disconnect every connection of the session (best effort: the link may be dead)."""
        try:
            self.session.cleanup()
        except Exception:
            pass

    # ------------------------------------------------------------ catalogue

    def stat(self, path: str) -> RemoteStat | None:
        """A data object (one GenQuery) or, failing that, a collection (one more); None if neither."""
        parent, name = _split(path)
        rows = list(
            self.session.query(DataObject.size, DataObject.checksum, DataObject.replica_status)
            .filter(Collection.name == parent)
            .filter(DataObject.name == name)
        )
        if rows:
            good = [r for r in rows if str(r[DataObject.replica_status]) == GOOD]
            if not good:
                raise PermanentError(f"{path}: no good replica (all stale or being written)")
            row = next((r for r in good if r[DataObject.checksum]), good[0])
            return RemoteStat(path, "data", int(row[DataObject.size]), row[DataObject.checksum] or "")
        if self.session.collections.exists(path):
            return RemoteStat(path, "coll")
        return None

    def checksum(self, path: str) -> str:
        """Ask the server for the checksum of ``path``, computing it if the catalogue has none."""
        return self.session.data_objects.chksum(path)

    def listdir(self, path: str) -> list[RemoteStat]:
        """Sub-collections then data objects (good replicas) of a collection: two GenQueries."""
        path = path.rstrip("/") or "/"
        if not self.session.collections.exists(path):
            raise NotFoundError(f"no such collection: {path}")
        out: list[RemoteStat] = []
        prefix = "/" if path == "/" else path + "/"
        for row in self.session.query(Collection.name).filter(Like(Collection.name, prefix + "%")):
            name = row[Collection.name]
            rest = name[len(prefix):]
            if rest and "/" not in rest:
                out.append(RemoteStat(name, "coll"))
        seen: dict[str, RemoteStat] = {}
        for row in (self.session.query(DataObject.name, DataObject.size, DataObject.checksum, DataObject.replica_status)
                    .filter(Collection.name == path)):
            if str(row[DataObject.replica_status]) != GOOD:
                continue
            full = prefix + row[DataObject.name]
            if full not in seen or (row[DataObject.checksum] and not seen[full].checksum):
                seen[full] = RemoteStat(full, "data", int(row[DataObject.size]), row[DataObject.checksum] or "")
        out.sort(key=lambda s: s.path)
        return out + sorted(seen.values(), key=lambda s: s.path)

    def mkdir(self, path: str) -> None:
        """Create a collection and its parents (no error if it exists)."""
        self.session.collections.create(path, recurse=True)

    # ----------------------------------------------------------------- data

    def open_read(self, path: str, offset: int = 0, resource: str | None = None) -> "RawReader":
        """An unbuffered reader positioned at ``offset``; the caller closes it.

        Requests: open, one seek (PRC's buffer asks where it is), one more seek if
        ``offset``, one DATA_OBJ_READ per ``read``/``readinto``, close.  Reading through
        PRC's ``BufferedRandom`` would add a seek per read.
        """
        options = {kw.RESC_NAME_KW: resource} if resource else {}
        handle = self.session.data_objects.open(path, "r", create=False, auto_close=False, **options)
        reader = RawReader(handle)
        if offset:
            reader.seek(offset)
        return reader

    def open_write(self, path: str, resource: str | None = None, append: bool = False) -> BinaryIO:
        """A writer (large writes bypass its buffer) creating ``path``, or continuing it at its end
        with ``append``; the server registers a checksum on close."""
        options = {kw.REG_CHKSUM_KW: ""}
        if resource:
            options[kw.DEST_RESC_NAME_KW] = resource
        return self.session.data_objects.open(path, "a" if append else "w", auto_close=False, **options)

    def partial(self, path: str) -> tuple[int, bool] | None:
        """Bytes held by the largest replica of ``path``, and whether a replica is still being
        written (intermediate); None if there is no such data object.  One GenQuery."""
        parent, name = _split(path)
        rows = list(self.session.query(DataObject.size, DataObject.replica_status)
                    .filter(Collection.name == parent).filter(DataObject.name == name))
        if not rows:
            return None
        return (max(int(r[DataObject.size]) for r in rows),
                any(str(r[DataObject.replica_status]) == "2" for r in rows))

    def rename(self, source: str, target: str) -> None:
        """Rename a data object (``target`` must not exist)."""
        self.session.data_objects.move(source, target)

    def unlink(self, path: str) -> None:
        """Delete a data object for good (no trash)."""
        self.session.data_objects.unlink(path, force=True)

    def leftovers(self, collection: str, pattern: str) -> list[str]:
        """Abandoned temporary objects of ``collection`` (name LIKE ``pattern``).

        Only objects with no replica still open for writing count: the server marks the
        replica of an upload whose connection died stale, while one still being written
        (another job's put of the same name) is intermediate and must be left alone.
        """
        rows = list(self.session.query(DataObject.name, DataObject.replica_status)
                    .filter(Collection.name == collection).filter(Like(DataObject.name, pattern)))
        busy = {r[DataObject.name] for r in rows if str(r[DataObject.replica_status]) == "2"}
        prefix = collection.rstrip("/") + "/"
        return sorted({prefix + r[DataObject.name] for r in rows if r[DataObject.name] not in busy})

