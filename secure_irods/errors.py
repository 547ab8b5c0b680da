"""Our exception hierarchy, and the one place that maps client errors onto it.

Thousands of grid jobs must decide one thing per failure: retry (the zone or the
network is briefly unwell) or stop (retrying cannot help and only adds load).  Retry
policies and exit codes therefore read only these classes, never python-irodsclient's
(PRC's) exceptions; :func:`classify` is the single translation, most specific first,
like httpx's ``map_httpcore_exceptions``.

Exit codes follow ``iget``'s conventions so batch scripts can branch on them:
``1`` bad input, ``2`` transient (try the job again later), ``3`` permanent transfer
failure, ``7`` authentication.

PRC is imported lazily (inside :func:`classify`) so importing this module stays cheap
and independent of the client library.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import re
import socket
import threading
from typing import Iterable

__all__ = [
    "SecureIrodsError",
    "TransientError",
    "ZoneBusyError",
    "PermanentError",
    "AuthenticationError",
    "NotFoundError",
    "PermissionDeniedError",
    "ExistsError",
    "ChecksumMismatchError",
    "InvalidInputError",
    "NameTooLongError",
    "NothingListeningError",
    "IRODS_CODES",
    "MAX_PATH_ALLOWED",
    "check_path",
    "classify",
    "register_secret",
    "redact",
    "LogFilter",
]


class SecureIrodsError(Exception):
    """Base of every error this package raises; carries the iRODS code and name if any."""

    exit_code: int = 3
    transient: bool = False

    def __init__(self, message: str, *, code: int | None = None, name: str | None = None) -> None:
        super().__init__(redact(message))
        self.code = code
        self.name = name

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class TransientError(SecureIrodsError):
    """Worth retrying: the network or the zone is briefly unavailable or overloaded."""

    exit_code = 2
    transient = True


class ZoneBusyError(TransientError):
    """The zone refused a new connection (connection cap, nothing accepting).

    Seeing this is the signal for the node-wide cool-down (:class:`~secure_irods.throttle.Cooldown`):
    every process on the node should back off, not just the one that was refused.
    """


class NothingListeningError(ZoneBusyError):
    """Connection refused at TCP level: no server at that host and port (down, or a wrong port).

    Still retried (a server restarting refuses for a while), but the message says what it
    is, names the address and points at ``--deadline``: a wrong port would otherwise wait
    out the whole deadline looking like a busy zone."""


class PermanentError(SecureIrodsError):
    """Retrying cannot help; the job should fail (exit 3 unless a subclass says otherwise)."""

    exit_code = 3


class AuthenticationError(PermanentError):
    """Wrong password, unknown user, PAM failure: retrying risks locking the account."""

    exit_code = 7


class NotFoundError(PermanentError):
    """The data object, collection or local file does not exist."""


class PermissionDeniedError(PermanentError):
    """The user lacks the permission for this operation."""


class ExistsError(PermanentError):
    """The target exists and we were not asked to overwrite it."""


class ChecksumMismatchError(PermanentError):
    """The bytes that arrived do not match the catalogue checksum."""


class NameTooLongError(PermanentError):
    """A logical path longer than iRODS allows (``MAX_PATH_ALLOWED``): refused before sending,
    since the server would drop the connection, which reads as transient."""


class InvalidInputError(PermanentError):
    """The request itself is malformed (bad path, option, host name, setting)."""

    exit_code = 1


# iRODS error names -> (code from rodsErrorTable.h, our class).  Codes are listed here,
# not looked up in PRC, because PRC 3.3.0 lacks some (e.g. SYS_MAX_CONNECT_COUNT_EXCEEDED,
# for which it raises KeyError(-118000)); tests check every code PRC does know agrees.
IRODS_CODES: dict[str, tuple[int, type[SecureIrodsError]]] = {
    # Transient: sockets, agents, connection caps, resources that are down or busy.
    "SYS_SOCK_OPEN_ERR": (-1000, TransientError),
    "SYS_SOCK_BIND_ERR": (-2000, TransientError),
    "SYS_SOCK_ACCEPT_ERR": (-3000, TransientError),
    "SYS_HEADER_READ_LEN_ERR": (-4000, TransientError),
    "SYS_HEADER_WRITE_LEN_ERR": (-5000, TransientError),
    "SYS_CAUGHT_SIGNAL": (-7000, TransientError),
    "SYS_EXCEED_CONNECT_CNT": (-9000, ZoneBusyError),
    "SYS_SVR_TO_SVR_CONNECT_FAILED": (-22000, TransientError),
    "SYS_AGENT_INIT_ERR": (-38000, TransientError),
    "SYS_STRUCT_FILE_BUSY_ERR": (-75000, TransientError),
    "SYS_UDP_CONNECT_ERR": (-86000, TransientError),
    "CROSS_ZONE_SOCK_CONNECT_ERR": (-92000, TransientError),
    "SYS_RESC_IS_DOWN": (-105000, TransientError),
    "SYS_SOCK_READ_TIMEDOUT": (-115000, TransientError),
    "SYS_SOCK_READ_ERR": (-116000, TransientError),
    "SYS_MAX_CONNECT_COUNT_EXCEEDED": (-118000, ZoneBusyError),
    "SYS_REPLICA_INACCESSIBLE": (-168000, TransientError),
    "USER_SOCK_OPEN_ERR": (-304000, TransientError),
    "USER_SOCK_CONNECT_ERR": (-305000, TransientError),
    "USER_SOCK_CONNECT_TIMEDOUT": (-347000, TransientError),
    "LOCKED_DATA_OBJECT_ACCESS": (-406000, TransientError),
    "CATALOG_NOT_CONNECTED": (-801000, TransientError),
    "CAT_CONNECT_ERR": (-803000, TransientError),
    "CAT_STATEMENT_TABLE_FULL": (-860000, TransientError),
    # Authentication.
    "SYS_USER_NOT_ALLOWED_TO_CONN": (-10000, AuthenticationError),
    "USER_AUTH_SCHEME_ERR": (-300000, AuthenticationError),
    "USER_AUTH_STRING_EMPTY": (-301000, AuthenticationError),
    "CAT_INVALID_AUTHENTICATION": (-826000, AuthenticationError),
    "CAT_INVALID_USER": (-827000, AuthenticationError),
    "CAT_PASSWORD_EXPIRED": (-840000, AuthenticationError),
    "CAT_PASSWORD_ENCODING_ERROR": (-850000, AuthenticationError),
    "AUTH_FILE_NOT_ENCRYPTED": (-906000, AuthenticationError),
    "AUTH_FILE_DOES_NOT_EXIST": (-907000, AuthenticationError),
    "NO_PASSWORD_ENTERED": (-909000, AuthenticationError),
    "REMOTE_SERVER_AUTHENTICATION_FAILURE": (-910000, AuthenticationError),
    "PAM_AUTH_NOT_BUILT_INTO_CLIENT": (-991000, AuthenticationError),
    "PAM_AUTH_NOT_BUILT_INTO_SERVER": (-992000, AuthenticationError),
    "PAM_AUTH_PASSWORD_FAILED": (-993000, AuthenticationError),
    "PAM_AUTH_PASSWORD_INVALID_TTL": (-994000, AuthenticationError),
    # Not found.
    "SYS_RESC_DOES_NOT_EXIST": (-78000, NotFoundError),
    "SYS_REPLICA_DOES_NOT_EXIST": (-164000, NotFoundError),
    "USER_FILE_DOES_NOT_EXIST": (-310000, NotFoundError),
    "OBJ_PATH_DOES_NOT_EXIST": (-358000, NotFoundError),
    "CAT_NO_ROWS_FOUND": (-808000, NotFoundError),
    "CAT_UNKNOWN_COLLECTION": (-814000, NotFoundError),
    "CAT_UNKNOWN_FILE": (-817000, NotFoundError),
    # Permission.
    "SYS_NO_API_PRIV": (-13000, PermissionDeniedError),
    "SYS_NO_PATH_PERMISSION": (-36000, PermissionDeniedError),
    "SYS_PROXYUSER_NO_PRIV": (-39000, PermissionDeniedError),
    "SYS_NO_DATA_OBJ_PERMISSION": (-40000, PermissionDeniedError),
    "SYS_USER_NO_PERMISSION": (-121000, PermissionDeniedError),
    "SYS_NOT_ALLOWED": (-169000, PermissionDeniedError),
    "USER_ACCESS_DENIED": (-350000, PermissionDeniedError),
    "CAT_NO_ACCESS_PERMISSION": (-818000, PermissionDeniedError),
    "CAT_INSUFFICIENT_PRIVILEGE_LEVEL": (-830000, PermissionDeniedError),
    "CAT_TABLE_ACCESS_DENIED": (-851000, PermissionDeniedError),
    # Exists.
    "OVERWRITE_WITHOUT_FORCE_FLAG": (-312000, ExistsError),
    "CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME": (-809000, ExistsError),
    "CAT_NAME_EXISTS_AS_COLLECTION": (-833000, ExistsError),
    "CAT_NAME_EXISTS_AS_DATAOBJ": (-834000, ExistsError),
    # Checksum.
    "USER_CHKSUM_MISMATCH": (-314000, ChecksumMismatchError),
    # Bad input.
    "SYS_API_INPUT_ERR": (-14000, InvalidInputError),
    "SYS_INVALID_FILE_PATH": (-31000, InvalidInputError),
    "SYS_INVALID_RESC_INPUT": (-32000, InvalidInputError),
    "SYS_INVALID_INPUT_PARAM": (-130000, InvalidInputError),
    "SYS_BAD_INPUT": (-158000, InvalidInputError),
    "USER__NULL_INPUT_ERR": (-316000, InvalidInputError),
    "USER_INPUT_PATH_ERR": (-317000, InvalidInputError),
    "USER_INPUT_OPTION_ERR": (-318000, InvalidInputError),
    "USER_INVALID_USERNAME_FORMAT": (-319000, InvalidInputError),
    "USER_PATH_EXCEEDS_MAX": (-346000, InvalidInputError),
    "USER_INPUT_FORMAT_ERR": (-349000, InvalidInputError),
    "USER_INCOMPATIBLE_PARAMS": (-402000, InvalidInputError),
    "CAT_INVALID_ARGUMENT": (-816000, InvalidInputError),
}

_BY_CODE: dict[int, tuple[str, type[SecureIrodsError]]] = {
    code: (name, cls) for name, (code, cls) in IRODS_CODES.items()
}

# Socket-level errnos that mean "the connection went away", not "you asked wrongly".
_TRANSIENT_ERRNOS = frozenset(
    getattr(errno, n)
    for n in (
        "ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH",
        "ENETDOWN", "ENETRESET", "EHOSTDOWN", "ENOTCONN", "ESHUTDOWN", "EAGAIN", "EINTR",
        "ENOBUFS", "EADDRNOTAVAIL",
    )
    if hasattr(errno, n)
)
_REFUSED_ERRNOS = frozenset({errno.ECONNREFUSED})
_PRC_ADDRESS = re.compile(r"host and port: (\S+)")

# ---------------------------------------------------------------------------- paths

#: ``rodsDef.h``: ``MAX_PATH_ALLOWED`` 1024; ``MAX_NAME_LEN`` = MAX_PATH_ALLOWED + 64 is the
#: buffer.  The icommands (``parseRodsPath``, ``putUtil``) refuse a logical path of
#: ``MAX_PATH_ALLOWED - 1`` bytes or more (C ``strlen``: UTF-8 bytes, not characters).
MAX_PATH_ALLOWED = 1024
#: A unixfilesystem resource stores an object under its logical name: one file-name
#: component of the vault's file system (``NAME_MAX``, 255 bytes on Linux).
NAME_MAX = 255


def check_path(path: str, *, extra: int = 0, what: str = "path", vault_name: bool = False) -> str:
    """``path`` if iRODS can hold it, else :class:`NameTooLongError` (exit 3, nothing sent).

    ``extra``: bytes a temporary name adds (to the path and to its last component);
    ``vault_name``: the last component becomes a vault file name (a put), so it must fit
    ``NAME_MAX`` too.  A NUL byte, which no C string holds, is refused as bad input."""
    if "\0" in path:
        raise InvalidInputError(f"{what} contains a NUL byte: {path[:60]!r}")
    shown = path if len(path) <= 80 else f"{path[:40]}...{path[-20:]}"
    room = f" ({extra} of them for the upload's temporary name)" if extra else ""
    size = len(path.encode("utf-8", "surrogateescape")) + extra
    if size >= MAX_PATH_ALLOWED - 1:
        raise NameTooLongError(f"{what} too long for iRODS: {size} bytes{room}, at most {MAX_PATH_ALLOWED - 2} "
                               f"(MAX_PATH_ALLOWED): {shown}")
    name = len(path.rstrip("/").rpartition("/")[2].encode("utf-8", "surrogateescape")) + extra
    if vault_name and name > NAME_MAX:
        raise NameTooLongError(f"{what}'s name too long for a resource's vault: {name} bytes{room}, at most "
                               f"{NAME_MAX} (a file name): {shown}")
    return path

# ---------------------------------------------------------------------------- secrets

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_SECRET_FIELDS = re.compile(
    r"(?i)\b(password|passwd|pam_password|a_pw|pwd|secret|token)(\s*[=:]\s*)([^\s;,&'\"]+)"
)


def register_secret(secret: str | None) -> None:
    """Remember a secret (the iRODS password) so no message of ours ever shows it."""
    if secret:
        with _SECRETS_LOCK:
            _SECRETS.add(secret)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Blank registered secrets and ``password=...``-style fields out of ``text``."""
    text = str(text)
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS.union(s for s in extra if s), key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return _SECRET_FIELDS.sub(lambda m: m.group(1) + m.group(2) + "***", text)


class LogFilter(logging.Filter):
    """For the handlers of our commands: no secret in any line, and nothing from inside
    python-irodsclient below a warning (some releases log their log-in exchange, challenge
    and digest included, through the root logger)."""

    def __init__(self) -> None:
        super().__init__()
        spec = importlib.util.find_spec("irods")   # locates the package without importing it
        self._prc_dirs = tuple(spec.submodule_search_locations or ()) if spec else ()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and self._prc_dirs and record.pathname.startswith(self._prc_dirs):
            return False
        record.msg, record.args = redact(record.getMessage()), None
        return True


# ---------------------------------------------------------------------------- classify


def classify(exc: BaseException) -> SecureIrodsError:
    """Map any exception to one of ours, most specific first; never raises.

    The returned error has ``__cause__`` set to ``exc`` and keeps the iRODS code and
    name (if any) in its message and attributes.  Our own errors are returned as-is.
    """
    if isinstance(exc, SecureIrodsError):
        return exc
    try:
        err = _classify(exc)
    except Exception as bug:  # classification must never hide the original failure
        err = PermanentError(f"{type(exc).__name__}: {_text(exc)} (unclassifiable: {bug!r})")
    err.__cause__ = exc
    return err


def _classify(exc: BaseException) -> SecureIrodsError:
    from irods import exception as prc  # lazy: only classification needs PRC

    from ._prc import is_pam_error

    kind = type(exc).__name__
    if isinstance(exc, prc.iRODSException):
        return _from_code(getattr(exc, "code", None), kind, _text(exc), exc)
    if isinstance(exc, KeyError) and _is_irods_code(exc.args):
        # PRC raises KeyError(code) for server codes it has no class for.
        return _from_code(exc.args[0], None, "", exc)
    if isinstance(exc, prc.NetworkException):
        detail = _text(exc)
        root = _root_os_error(exc)
        if root is not None:
            detail = f"{detail} ({type(root).__name__}: {_text(root)})"
            if _errno_of(root) in _REFUSED_ERRNOS:
                address = _PRC_ADDRESS.search(_text(exc))
                return _refused(address.group(1) if address else "")
        return TransientError(f"NetworkException: {detail}")
    if isinstance(exc, _optional(prc, "DataObjectExistsAtLogicalPath")):   # PRC >= 3.2
        return ExistsError(_join(kind, _text(exc)))
    if isinstance(exc, (prc.DoesNotExist, prc.NoResultFound)):
        return NotFoundError(_join(kind, _text(exc)))
    if isinstance(exc, prc.InvalidInputArgument):
        return InvalidInputError(_join(kind, _text(exc)))
    if is_pam_error(exc):  # e.g. PRC's PlainTextPAMPasswordError: PAM over an unencrypted link
        return AuthenticationError(f"{kind}: PAM password refused on an unencrypted connection")
    if isinstance(exc, OSError):
        return _from_os_error(exc)
    if isinstance(exc, ValueError):
        return InvalidInputError(_join(kind, _text(exc)))
    return PermanentError(_join(kind, _text(exc)))


def _optional(module: object, name: str) -> tuple[type, ...]:
    """A class an older PRC may lack, as a tuple for ``isinstance`` (empty if absent)."""
    cls = getattr(module, name, None)
    return (cls,) if isinstance(cls, type) else ()


def _from_code(code: object, kind: str | None, text: str, exc: BaseException) -> SecureIrodsError:
    """Build our error from an iRODS integer code (which may carry an errno in its last 3 digits)."""
    if not isinstance(code, int):
        name = kind or "iRODSException"
        return PermanentError(f"{name}: {text}", name=name)
    nominal = -((abs(code) // 1000) * 1000) if code <= -1000 else code
    os_errno = abs(code) % 1000 if code <= -1000 else 0
    name, cls = _BY_CODE.get(nominal, (kind or "UNKNOWN_IRODS_ERROR", PermanentError))
    if cls is PermanentError and _is_pam(exc):
        cls = AuthenticationError
    parts = [f"{name} [{code}]"]
    if os_errno:
        parts.append(f"errno {errno.errorcode.get(os_errno, os_errno)}")
    message = ", ".join(parts) + (f": {text}" if text else "")
    return cls(message, code=code, name=name)


def _from_os_error(exc: OSError) -> SecureIrodsError:
    kind, number, text = type(exc).__name__, _errno_of(exc), _text(exc)
    if isinstance(exc, socket.gaierror):
        if number == socket.EAI_AGAIN:
            return TransientError(f"{kind}: name lookup failed temporarily: {text}")
        return InvalidInputError(f"{kind}: unknown host: {text}")
    if isinstance(exc, ConnectionRefusedError) or number in _REFUSED_ERRNOS:
        return _refused("")
    if isinstance(exc, (TimeoutError, ConnectionError)) or number in _TRANSIENT_ERRNOS:
        return TransientError(f"{kind}: {text or 'timed out'}")
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(_join(kind, text))
    if isinstance(exc, PermissionError):
        return PermissionDeniedError(_join(kind, text))
    if isinstance(exc, FileExistsError):
        return ExistsError(_join(kind, text))
    if isinstance(exc, (IsADirectoryError, NotADirectoryError)):
        return InvalidInputError(_join(kind, text))
    return PermanentError(_join(kind, text))  # local disk full, I/O error, ...


def _refused(address: str) -> NothingListeningError:
    where = address or "the zone's host and port"
    return NothingListeningError(f"connection refused: nothing listening at {where} (server down, or a wrong "
                                 "irods_host/irods_port in the environment file?); retried until the deadline "
                                 "(--deadline or SECURE_IRODS_DEADLINE shortens it)")


def _join(kind: str, text: str) -> str:
    return f"{kind}: {text}" if text else kind


def _is_irods_code(args: tuple) -> bool:
    return len(args) == 1 and isinstance(args[0], int) and args[0] <= -1000


def _is_pam(exc: BaseException) -> bool:
    from ._prc import is_pam_error

    return is_pam_error(exc)


def _errno_of(exc: BaseException) -> int | None:
    number = getattr(exc, "errno", None)
    return number if isinstance(number, int) else None


def _root_os_error(exc: BaseException) -> OSError | None:
    """Find the socket error PRC wrapped (it raises NetworkException inside ``except``)."""
    seen: set[int] = set()
    link: BaseException | None = exc.__cause__ or exc.__context__
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, OSError):
            return link
        link = link.__cause__ or link.__context__
    return None


def _text(exc: BaseException) -> str:
    """The exception's own message, never more than a line or two, secrets removed."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    text = text.strip() or ""
    if len(text) > 500:
        text = text[:500] + "..."
    return redact(text)
