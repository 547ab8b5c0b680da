"""Every python-irodsclient (PRC) internal secure_irods relies on, checked when imported.

Our guarantees rest on a few PRC details that are not public API: the module global
that reads a reply's bytes (the stall guard replaces it), the pool's sets of open
connections (socket time-outs reach open connections through them), the account's
authentication-file attribute, the raw GenQuery request and reply (the fast bulk
path) and the raw DATA_OBJ_WRITE request (a put's chunk sent without copies).  A PRC
release that renames one of them must not silently drop a guarantee, so
:func:`self_check` runs at import and raises :class:`PrcCompatibilityError` with one
line naming the PRC version and the missing piece.  Nothing else in the project touches
PRC internals; public PRC API is used from :mod:`secure_irods.backend`.

Supported: the range declared in ``setup.cfg`` (CI runs the suite on its oldest and
newest release).
"""

from __future__ import annotations

import inspect
import socket
import threading
from typing import Any, Callable, Iterator

import irods
import irods.exception as prc_exception
import irods.message as prc_message
from irods.api_number import api_number
from irods.column import Criterion
from irods.models import ModelBase
from irods.password_obfuscation import decode, encode
from irods.pool import Pool

from .errors import AuthenticationError, InvalidInputError

__all__ = ["PRC_VERSION", "PrcCompatibilityError", "self_check", "install_stall_guard", "open_sockets",
           "use_auth_file", "run_genquery", "column", "is_pam_error", "send_write", "write_reply",
           "UNMATCHED_API"]

PRC_VERSION = getattr(irods, "__version__", None) or __import__("irods.version").version.__version__

#: Error code of a server that lacks an API (e.g. the atomic metadata API before iRODS 4.2.8).
UNMATCHED_API = -12000


class PrcCompatibilityError(InvalidInputError):
    """The installed python-irodsclient lacks an internal secure_irods needs (exit 1: environment)."""


# ------------------------------------------------------------------------ stall guard


def _recv_message_into_guarded(sock, buffer, size):
    """PRC's ``_recv_message_into``, but a closed connection raises instead of spinning.

    PRC loops ``while size_left`` and a closed socket's ``recv_into`` returns 0 forever;
    a socket time-out cannot help (a 0-byte read returns at once).  Raising
    ``ConnectionResetError`` makes PRC raise ``NetworkException``: transient, retried.
    """
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


_guard_lock = threading.Lock()


def install_stall_guard() -> None:
    """Replace PRC's reply reader once per process (idempotent); quiet old finalizers."""
    with _guard_lock:
        if prc_message._recv_message_into is not _recv_message_into_guarded:
            prc_message._recv_message_into = _recv_message_into_guarded
        _quiet_connection_finalizer()


def _quiet_connection_finalizer() -> None:
    """PRC before 3.2 lets ``Connection.__del__`` raise on a dead socket, which Python prints
    to stderr as "Exception ignored in ..." (our commands promise one line); 3.2 catches it."""
    from irods.connection import Connection

    original = Connection.__dict__.get("__del__")
    if original is None or getattr(original, "_secure_irods_quiet", False):
        return

    def __del__(self) -> None:
        try:
            original(self)
        except Exception:
            pass

    __del__._secure_irods_quiet = True  # type: ignore[attr-defined]
    Connection.__del__ = __del__


# ----------------------------------------------------------------------- connections


def open_sockets(session: Any) -> list[socket.socket]:
    """Sockets of every connection the session's pool holds (idle or in use)."""
    pool = session.pool
    return [conn.socket for conn in (*pool.idle, *pool.active) if getattr(conn, "socket", None) is not None]


def use_auth_file(session: Any, path: str) -> str:
    """Make ``path`` the session's authentication file, as the icommands do; returns the password.

    PRC lets the environment file's ``irods_authentication_file`` win over the argument;
    the icommands let ``$IRODS_AUTHENTICATION_FILE`` win.  A missing, empty or
    undecodable file is an :class:`AuthenticationError` naming it (exit 7), never a
    silent fall-back to another file.
    """
    hint = "run iinit, or point IRODS_AUTHENTICATION_FILE at the file iinit wrote"
    try:
        with open(path) as f:
            scrambled = f.read().rstrip("\n")
    except FileNotFoundError:
        raise AuthenticationError(f"authentication file {path} does not exist: {hint}") from None
    except OSError as exc:
        raise AuthenticationError(f"authentication file {path} is unreadable ({exc.strerror}): {hint}") from None
    if not scrambled:
        raise AuthenticationError(f"authentication file {path} is empty: {hint}")
    try:
        password = decode(scrambled)
    except Exception:
        raise AuthenticationError(f"authentication file {path} cannot be decoded: {hint}") from None
    if not password:
        raise AuthenticationError(f"authentication file {path} holds no password: {hint}")
    account = session.pool.account
    account.password = password
    account._auth_file = str(path)
    return password


def scramble(password: str) -> str:
    """The password as iinit writes it to ``.irodsA`` (PRC's own obfuscation, which the icommands read)."""
    return encode(password)


def is_pam_error(exc: BaseException) -> bool:
    """A PAM refusal (PRC raises it as a plain exception when the link is not encrypted)."""
    from irods import connection as prc_connection

    kinds = tuple(k for k in (getattr(prc_exception, "PAMException", None),
                              getattr(prc_connection, "PlainTextPAMPasswordError", None)) if k)
    return bool(kinds) and isinstance(exc, kinds)


# -------------------------------------------------------------------------- GenQuery


def column(name: str) -> Any:
    """PRC's column object for an iRODS column name (``COLL_NAME``, ``META_DATA_ATTR_NAME``...)."""
    found = _COLUMNS.get(name)
    if found is None:
        raise InvalidInputError(f"unknown GenQuery column {name!r}")
    return found


class _Condition(Criterion):
    """A GenQuery condition given as iquest writes it after the column: ``= 'a' || like 'b%'``."""

    def __init__(self, query_key: Any, text: str) -> None:
        super().__init__("", query_key, text)

    @property
    def irods_value(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"{self.query_key.icat_key} {self.value}"


def _prepared(session: Any, select: list[tuple[str | None, str]], where: list[tuple[str, str]],
              case_insensitive: bool) -> Any:
    query = session.query(*(column(name) for _, name in select))
    for func, name in select:
        if func:
            query = getattr(query, func)(column(name))
    if where:
        query = query.filter(*(_Condition(column(name), text) for name, text in where))
    if case_insensitive:
        query.case_sensitive = False
    return query


def run_genquery(session: Any, select: list[tuple[str | None, str]], where: list[tuple[str, str]], *,
                 case_insensitive: bool = False, on_batch: Callable[[], None] | None = None) -> Iterator[tuple]:
    """Rows (tuples of strings, in ``select`` order) of one GenQuery, batch after batch.

    ``select`` is ``[(aggregate or None, column name)]``.  One round trip per batch of
    PRC's row limit (500); ``on_batch()`` after each answered batch.  The raw reply is
    read directly rather than through PRC's ``ResultSet``, whose per-cell conversion
    costs more than the whole server round trip.  A query with no rows yields nothing.
    """
    query = _prepared(session, select, where, case_insensitive)
    order = [column(name).icat_id for _, name in select]
    inx = 0
    while True:
        q = query.continue_index(inx) if inx else query
        with session.pool.get_connection() as conn:
            conn.send(prc_message.iRODSMessage("RODS_API_REQ", msg=q._message(), int_info=api_number["GEN_QUERY_AN"]))
            try:
                raw = conn.recv().get_main_message(prc_message.GenQueryResponse)
            except prc_exception.CAT_NO_ROWS_FOUND:
                if on_batch:
                    on_batch()
                return
        if on_batch:
            on_batch()
        by_id = {c.attriInx: c.value for c in raw.SqlResult_PI[:raw.attriCnt]}
        yield from list(zip(*(by_id[i] for i in order)))[:raw.rowCnt]
        try:
            inx = raw.continueInx
        except KeyError:
            inx = 0
        if not inx or inx <= 0:
            return


_COLUMNS: dict[str, Any] = {}


# ------------------------------------------------------------------------ data-object write


def send_write(raw: Any, data: Any) -> None:
    """Send one DATA_OBJ_WRITE of ``data`` (any contiguous buffer) on PRC's raw file ``raw``.

    PRC's ``write`` turns a memoryview into bytes and its message ``pack`` copies those
    again behind the header: two copies of every chunk, each into freshly allocated pages.
    This sends the same bytes on the wire -- header, request body, then the buffer itself
    -- with no copy, and does not wait for the reply (:func:`write_reply`), so that the
    caller may send the next chunk while the server writes this one.
    """
    conn = raw.conn
    body = prc_message.OpenedDataObjRequest(l1descInx=raw.desc, len=len(data), whence=0, oprType=0, offset=0,
                                            bytesWritten=0, KeyValPair_PI=prc_message.StringStringMap())
    main = prc_message.iRODSMessage.encode_unicode(body.pack())
    header = prc_message.iRODSMessage.pack_header("RODS_API_REQ", len(main), 0, len(data),
                                                  api_number["DATA_OBJ_WRITE_AN"])
    try:
        conn.socket.sendall(header + main)
        conn.socket.sendall(data)
    except OSError as exc:   # as PRC's own send: the connection is done for
        conn.release(True)
        raise prc_exception.NetworkException(f"Unable to send message: {exc}") from exc


def write_reply(raw: Any) -> int:
    """The reply to the oldest DATA_OBJ_WRITE sent on ``raw`` and not yet answered: bytes written."""
    return raw.conn.recv().int_info


# ------------------------------------------------------------------------ self-check


def self_check() -> None:
    """Fail loudly, in one line, if a PRC internal we rely on is missing or changed."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise PrcCompatibilityError(f"python-irodsclient {PRC_VERSION} is not supported by secure_irods: {what}")

    recv = getattr(prc_message, "_recv_message_into", None)
    need(callable(recv) and list(inspect.signature(recv).parameters) == ["sock", "buffer", "size"],
         "irods.message._recv_message_into(sock, buffer, size) not found (stall guard)")
    pool_init = inspect.getsource(Pool.__init__)
    need("self.idle" in pool_init and "self.active" in pool_init,
         "irods.pool.Pool no longer keeps .idle/.active connection sets (socket time-outs)")
    need(hasattr(Pool, "get_connection"), "irods.pool.Pool.get_connection not found (GenQuery)")
    from irods.query import Query
    need(all(hasattr(Query, a) for a in ("_message", "continue_index", "count", "sum", "max", "min")),
         "irods.query.Query lacks _message/continue_index/aggregates (bulk GenQuery)")
    need("GEN_QUERY_AN" in api_number and hasattr(prc_message, "GenQueryResponse"),
         "GEN_QUERY_AN or irods.message.GenQueryResponse not found (bulk GenQuery)")
    need(isinstance(Criterion.__dict__.get("irods_value"), property),
         "irods.column.Criterion.irods_value is no longer a property (GenQuery conditions)")
    need(hasattr(prc_exception, "CAT_NO_ROWS_FOUND"), "irods.exception.CAT_NO_ROWS_FOUND not found")
    need(all(hasattr(prc_message, c) for c in ("OpenedDataObjRequest", "StringStringMap"))
         and "DATA_OBJ_WRITE_AN" in api_number
         and list(inspect.signature(prc_message.iRODSMessage.pack_header).parameters)
         == ["type", "msg_len", "err_len", "bs_len", "int_info"],
         "irods.message lacks OpenedDataObjRequest/pack_header(type, msg_len, err_len, bs_len, int_info) (put)")
    from irods.data_object import iRODSDataObjectFileRaw
    from irods.connection import Connection
    raw_init = inspect.getsource(iRODSDataObjectFileRaw.__init__)
    need("self.conn = " in raw_init and "self.desc = " in raw_init
         and "self.socket" in inspect.getsource(Connection) and hasattr(Connection, "release"),
         "irods.data_object.iRODSDataObjectFileRaw no longer keeps .conn/.desc, or Connection .socket (put)")
    from irods.session import iRODSSession
    need("self._auth_file" in inspect.getsource(iRODSSession.__init__),
         "iRODSSession no longer keeps _auth_file (authentication file choice)")
    found = ModelBase.columns() if callable(ModelBase.columns) else ModelBase.columns   # a dict before PRC 3
    columns = {col.icat_key: col for col in found.values()}
    need("COLL_NAME" in columns and "DATA_NAME" in columns, "irods.models.ModelBase.columns() lacks COLL_NAME")
    # PRC keeps some C macro names (COL_META_DATA_ATTR_NAME); iquest's name drops the prefix.
    _COLUMNS.update({key.removeprefix("COL_"): col for key, col in columns.items()})
    _COLUMNS.update(columns)


self_check()
