"""The narrow transport: one method per operation over a python-irodsclient session.

This module and :mod:`secure_irods._prc` are the only ones that import
python-irodsclient (PRC), like httpx's ``_transports/default.py`` is the only one
importing httpcore; this one uses PRC's public API only, ``_prc`` holds (and checks at
import) every internal we rely on.  :class:`PrcBackend` holds one ``iRODSSession``
used for one operation at a time, so it holds at most one connection to the zone (the
client's throttle slot accounts for it).

Stall guard: PRC can spin forever when the server closes a connection in the middle of
a ``DATA_OBJ_READ`` reply; :func:`secure_irods._prc.install_stall_guard` makes that
raise (transient, retried), and every socket of the session gets a time-out
(:meth:`PrcBackend.set_timeout`, also applied to open connections) so a server that
stops sending without closing raises ``socket.timeout`` (transient) too.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Sequence

from irods import keywords as kw
from irods.access import iRODSAccess
from irods.column import Like
from irods.meta import AVUOperation, iRODSMeta
from irods.models import Collection, DataObject
from irods.session import iRODSSession
from irods.ticket import Ticket

from . import _prc
from ._prc import install_stall_guard
from .errors import NotFoundError, PermanentError, register_secret
from .query import Query, ReplicaStatus
from .transfer import split_remote

__all__ = ["RemoteStat", "PrcBackend", "install_stall_guard"]



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

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` with one DATA_OBJ_READ; 0 at the end of the object."""
        return self.raw.readinto(buffer)

    def read(self, size: int) -> bytes:
        buffer = bytearray(size)
        got = self.raw.readinto(buffer)
        del buffer[got:]
        return bytes(buffer)

    def close(self) -> None:
        self.raw.close()  # closes the replica, releases the connection; the wrapper then is closed too


class RawWriter:
    """PRC's raw data-object file for writing: each chunk is one DATA_OBJ_WRITE of the
    caller's buffer, sent without PRC's copies; ``send`` does not wait for the reply, which
    ``reply`` reads (replies come in the order of the requests)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.raw = handle.raw  # type: ignore[attr-defined]

    def seek(self, offset: int) -> int:
        return self.raw.seek(offset)

    def send(self, data: bytes | memoryview) -> None:
        _prc.send_write(self.raw, data)

    def reply(self) -> int:
        return _prc.write_reply(self.raw)

    def close(self) -> None:
        self.raw.close()  # the server registers the checksum here (regChksum)


class PrcBackend:
    """One iRODS session, one operation at a time.  Every method may raise PRC errors; callers classify."""

    def __init__(self, session: iRODSSession, io_timeout: float = 60.0) -> None:
        install_stall_guard()
        self.session = session
        self.set_timeout(io_timeout)

    @classmethod
    def connect(cls, env_file: str | os.PathLike, auth_file: str | os.PathLike | None = None,
                io_timeout: float = 60.0, ticket: str | None = None,
                password: str | None = None, address: str | None = None) -> "PrcBackend":
        """Open a session from an environment file and log in (one connection, authenticated).

        ``address`` (``host:port``) overrides the environment's host, for a zone served by several.

        ``auth_file`` (the icommands' choice: ``$IRODS_AUTHENTICATION_FILE``, else the
        environment's, else ``~/.irods/.irodsA``) is read for the native scheme; a
        missing, empty or undecodable one is an ``AuthenticationError`` naming it.
        """
        install_stall_guard()
        if password is None:
            session = iRODSSession(irods_env_file=str(env_file))
        else:   # iinit: the password typed, before any authentication file holds it
            register_secret(password)
            with open(env_file) as f:
                session = iRODSSession(password=password, **json.load(f))
        if address:  # one host of a zone served by several (secure_irods_hosts): same account, another server
            host, _, port = address.rpartition(":")
            session.pool.account.host, session.pool.account.port = host, int(port)
        try:
            if password is None and auth_file and getattr(session.pool.account, "authentication_scheme", "native") == "native":
                register_secret(_prc.use_auth_file(session, str(auth_file)))
            register_secret(getattr(session.pool.account, "password", None))
            if ticket:   # PRC presents it on each connection it opens, after the log-in (iget -t)
                register_secret(ticket)
                Ticket(session, ticket).supply()
            backend = cls(session, io_timeout)
            # Logs in on the pool's connection and caches the version, so later opens reuse that
            # connection instead of PRC fetching the version over a second one.
            session.server_version  # noqa: B018
        except BaseException:
            try:
                session.cleanup()
            except Exception:
                pass
            raise
        return backend

    # --------------------------------------------------------------- session

    @property
    def server_version(self) -> str:
        return ".".join(map(str, self.session.server_version))

    @property
    def zone(self) -> str:
        return self.session.zone

    @property
    def home(self) -> str:
        return f"/{self.session.zone}/home/{self.session.username}"

    def server_time(self, collection: str) -> float:
        """The zone's clock (seconds since the epoch): the modify time the catalogue gives an empty
        object created now in ``collection``, which is then removed (a write: it also proves the
        collection writable)."""
        import uuid

        path = f"{collection.rstrip('/')}/.secure-irods-clock-{uuid.uuid4().hex[:12]}"
        self.session.data_objects.create(path)
        try:
            row = next(iter(self.session.query(DataObject.modify_time)
                            .filter(Collection.name == split_remote(path)[0]).filter(DataObject.name == split_remote(path)[1])))
            return row[DataObject.modify_time].replace(tzinfo=datetime.timezone.utc).timestamp()
        finally:
            self.unlink(path)

    def set_timeout(self, seconds: float) -> None:
        """Time-out of every socket operation, for new and already open connections."""
        seconds = max(0.05, float(seconds))
        self.session.connection_timeout = seconds
        for sock in _prc.open_sockets(self.session):
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
        parent, name = split_remote(path)
        rows = list(
            self.session.query(DataObject.size, DataObject.checksum, DataObject.replica_status)
            .filter(Collection.name == parent)
            .filter(DataObject.name == name)
        )
        if rows:
            good = [r for r in rows if str(r[DataObject.replica_status]) == ReplicaStatus.GOOD]
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
            if str(row[DataObject.replica_status]) != ReplicaStatus.GOOD:
                continue
            full = prefix + row[DataObject.name]
            if full not in seen or (row[DataObject.checksum] and not seen[full].checksum):
                seen[full] = RemoteStat(full, "data", int(row[DataObject.size]), row[DataObject.checksum] or "")
        out.sort(key=lambda s: s.path)
        return out + sorted(seen.values(), key=lambda s: s.path)

    def mkdir(self, path: str) -> None:
        """Create a collection and its parents (no error if it exists)."""
        self.session.collections.create(path, recurse=True)

    def genquery(self, query: Query, on_batch: Callable[[], None] | None = None) -> Iterator[tuple]:
        """Rows of ``query`` (tuples of strings), one round trip per 500 rows; see ``_prc.run_genquery``."""
        return _prc.run_genquery(self.session, list(query.select), list(query.conditions),
                                 case_insensitive=query.case_insensitive, on_batch=on_batch)

    def avus(self, path: str) -> list[tuple[str, str, str]]:
        """``(attribute, value, units)`` of a data object (one GenQuery)."""
        parent, name = split_remote(path)
        q = (Query("META_DATA_ATTR_NAME", "META_DATA_ATTR_VALUE", "META_DATA_ATTR_UNITS")
             .where("COLL_NAME", "=", parent).where("DATA_NAME", "=", name))
        return [(a, v, u or "") for a, v, u in self.genquery(q)]

    def set_avus(self, path: str, avus: dict[str, str]) -> int:
        """Give each attribute of ``path`` exactly its one value (``imeta set`` for each) in one call.

        Reads the current AVUs (one GenQuery), then applies the difference with the
        atomic metadata API (one call; iRODS >= 4.2.8), or AVU by AVU on an older zone.
        Idempotent: a retry after a drop finds the work done and sends nothing.
        Returns the number of AVU operations sent.
        """
        current = self.avus(path)
        wanted = {a: str(v) for a, v in avus.items()}
        ops = [AVUOperation(operation="remove", avu=iRODSMeta(a, v, u or None))
               for a, v, u in current if a in wanted and (v, u) != (wanted[a], "")]
        have = {(a, v) for a, v, u in current if not u}
        ops += [AVUOperation(operation="add", avu=iRODSMeta(a, v)) for a, v in wanted.items() if (a, v) not in have]
        if not ops:
            return 0
        try:
            self.session.metadata.apply_atomic_operations(DataObject, path, *ops)
        except Exception as exc:
            if getattr(exc, "code", None) != _prc.UNMATCHED_API:
                raise
            for a, v in wanted.items():   # a zone without the atomic API: imeta set, AVU by AVU
                self.session.metadata.set(DataObject, path, iRODSMeta(a, v))
        return len(ops)

    def add_avus(self, path: str, avus: list[tuple[str, str, str]]) -> None:
        """Add ``(attribute, value, units)`` to a data object in one atomic metadata call (API 20002)."""
        ops = [AVUOperation(operation="add", avu=iRODSMeta(a, v, u or None)) for a, v, u in avus]
        if ops:
            self.session.metadata.apply_atomic_operations(DataObject, path, *ops)

    def set_permission(self, path: str, level: str, user: str, zone: str = "") -> None:
        """``ichmod LEVEL USER PATH`` (``null`` removes the user's permission)."""
        self.session.acls.set(iRODSAccess(level, path, user, zone or self.session.zone))

    def set_data_type(self, path: str, data_type: str) -> None:
        """The data type of every replica of ``path`` (``isysmeta mod PATH datatype TYPE``)."""
        self.session.data_objects.modDataObjMeta({"objPath": path}, {"dataType": data_type})

    def add_resource(self, name: str, kind: str, host: str = "", vault: str = "", parent: str = "") -> None:
        """``iadmin mkresc NAME KIND [HOST:VAULT]``, then ``iadmin addchildtoresc PARENT NAME`` (admins)."""
        self.session.resources.create(name, kind, host=host or "EMPTY_RESC_HOST", path=vault or "EMPTY_RESC_PATH")
        if parent:
            self.session.resources.add_child(parent, name)

    # ----------------------------------------------------------------- data

    def open_read(self, path: str, offset: int = 0, resource: str | None = None) -> "RawReader":
        """An unbuffered reader positioned at ``offset``; the caller closes it.

        Requests: open, one seek (PRC's buffer asks where it is), one more seek if
        ``offset``, one DATA_OBJ_READ per ``read``/``readinto``, close.  Reading through
        PRC's ``BufferedRandom`` would add a seek per read.
        """
        options = {kw.RESC_NAME_KW: resource} if resource else {}
        try:
            handle = self.session.data_objects.open(path, "r", create=False, auto_close=False, **options)
        except Exception as exc:
            if resource:
                self._no_replica_on(path, resource, exc)
            raise
        reader = RawReader(handle)
        if offset:
            reader.seek(offset)
        return reader

    def _no_replica_on(self, path: str, resource: str, exc: Exception) -> None:
        """After a failed open on ``resource``: raise a permanent error if it holds no good replica.

        The zone answers ``SYS_REPLICA_INACCESSIBLE`` both for a replica it cannot reach now
        (a resource down: transient) and for one that is not there or stale (retrying
        cannot help); one GenQuery, made only on failure, tells them apart."""
        parent, name = split_remote(path)
        rows = list(self.session.query(DataObject.resc_hier, DataObject.replica_status)
                    .filter(Collection.name == parent).filter(DataObject.name == name))
        if not rows:
            return
        there = [r for r in rows if resource in str(r[DataObject.resc_hier]).split(";")]
        if not there:
            held = ", ".join(sorted({str(r[DataObject.resc_hier]).split(";")[0] for r in rows}))
            raise NotFoundError(f"{path} has no replica on resource {resource} (replicas on: {held})") from exc
        if not any(str(r[DataObject.replica_status]) == ReplicaStatus.GOOD for r in there):
            raise PermanentError(f"{path} has no good replica on resource {resource} (stale or being written)") from exc

    def open_write(self, path: str, resource: str | None = None, append: bool = False) -> "RawWriter":
        """An unbuffered writer creating ``path``, or continuing it at its end with ``append``;
        the server registers a checksum on close."""
        options = {kw.REG_CHKSUM_KW: ""}
        if resource:
            options[kw.DEST_RESC_NAME_KW] = resource
        return RawWriter(self.session.data_objects.open(path, "a" if append else "w", auto_close=False, **options))

    def partial(self, path: str) -> tuple[int, bool] | None:
        """Bytes held by the largest replica of ``path``, and whether a replica is still being
        written (intermediate); None if there is no such data object.  One GenQuery."""
        parent, name = split_remote(path)
        rows = list(self.session.query(DataObject.size, DataObject.replica_status)
                    .filter(Collection.name == parent).filter(DataObject.name == name))
        if not rows:
            return None
        return (max(int(r[DataObject.size]) for r in rows),
                any(str(r[DataObject.replica_status]) == ReplicaStatus.INTERMEDIATE for r in rows))

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
        busy = {r[DataObject.name] for r in rows
                if str(r[DataObject.replica_status]) == ReplicaStatus.INTERMEDIATE}
        prefix = collection.rstrip("/") + "/"
        return sorted({prefix + r[DataObject.name] for r in rows if r[DataObject.name] not in busy})


    # ------------------------------------------------------- replicas (rebalance)

    def replicate(self, path: str, resource: str, source: str = "", hierarchy: str = "",
                  timeout: float | None = None) -> None:
        """``irepl -R RESOURCE [-S SOURCE] PATH``: a good replica of ``path`` in ``resource``.

        ``hierarchy`` (``root;...;leaf``) names the leaf of ``resource`` the replica goes to
        (``DEST_RESC_HIER_STR_KW``); without it the coordinating resources choose.  The
        zone does nothing when ``resource`` already holds a good replica.  ``timeout``: the
        socket time-out for this call (the zone answers only once the copy is done).
        """
        if timeout:
            self.set_timeout(timeout)
        options = {}
        if source:
            options[kw.RESC_NAME_KW] = source
        if hierarchy:
            options[kw.DEST_RESC_HIER_STR_KW] = hierarchy
        self.session.data_objects.replicate(path, resource=resource, **options)

    def replica_checksum(self, path: str, replica: int, timeout: float | None = None) -> str:
        """The checksum of replica ``replica`` computed now by the zone from its bytes (``ichksum -f -n``)."""
        if timeout:
            self.set_timeout(timeout)
        return self.session.data_objects.chksum(path, **{kw.REPL_NUM_KW: str(replica), kw.FORCE_CHKSUM_KW: ""})

    def trim_replica(self, path: str, replica: int, min_copies: int) -> None:
        """``itrim -n REPLICA -N MIN_COPIES PATH``; the zone keeps at least ``min_copies`` good replicas."""
        self.session.data_objects.trim(path, **{kw.REPL_NUM_KW: str(replica), kw.COPIES_KW: str(max(1, min_copies))})

    def collection_avus(self, path: str) -> list[tuple[str, str, str]]:
        """``(attribute, value, units)`` of a collection (one GenQuery)."""
        q = (Query("META_COLL_ATTR_NAME", "META_COLL_ATTR_VALUE", "META_COLL_ATTR_UNITS")
             .where("COLL_NAME", "=", path))
        return [(a, v, u or "") for a, v, u in self.genquery(q)]

    def change_collection_avus(self, path: str, add: Sequence[tuple[str, str]] = (),
                               remove: Sequence[tuple[str, str]] = ()) -> None:
        """Remove then add AVUs of a collection in one atomic metadata call (API 20002)."""
        ops = [AVUOperation(operation="remove", avu=iRODSMeta(a, v)) for a, v in remove]
        ops += [AVUOperation(operation="add", avu=iRODSMeta(a, v)) for a, v in add]
        if ops:
            self.session.metadata.apply_atomic_operations(Collection, path, *ops)
