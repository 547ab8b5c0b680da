"""classify() maps real python-irodsclient exceptions onto our transient/permanent classes."""

from __future__ import annotations

import errno
import socket

import irods.exception as prc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secure_irods import errors
from secure_irods.errors import (
    IRODS_CODES,
    AuthenticationError,
    ChecksumMismatchError,
    ExistsError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    SecureIrodsError,
    TransientError,
    NothingListeningError,
    ZoneBusyError,
    classify,
    redact,
    register_secret,
)


def _raised_inside(outer: Exception, inner: BaseException) -> Exception:
    """Raise ``outer`` while handling ``inner``, as PRC does, and return it with its context."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer
    except Exception as exc:
        return exc


def _err(name: str) -> BaseException:
    """PRC's exception class for an iRODS error name; where an older PRC has none, what PRC
    raises for a code it does not know (``KeyError(code)``), which classify() must read too."""
    cls = getattr(prc, name, None)
    return cls() if cls is not None else KeyError(IRODS_CODES[name][0])


TABLE = [
    # transient
    (prc.NetworkException("Could not receive server response"), TransientError, 2),
    (socket.timeout(), TransientError, 2),
    (TimeoutError("timed out"), TransientError, 2),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), TransientError, 2),
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), TransientError, 2),
    (OSError(errno.ECONNRESET, "reset"), TransientError, 2),
    (OSError(errno.EPIPE, "pipe"), TransientError, 2),
    (OSError(errno.EHOSTUNREACH, "no route"), TransientError, 2),
    (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), TransientError, 2),
    (_err("SYS_SOCK_READ_TIMEDOUT"), TransientError, 2),
    (_err("SYS_HEADER_READ_LEN_ERR"), TransientError, 2),
    (_err("SYS_SOCK_OPEN_ERR"), TransientError, 2),
    (_err("SYS_AGENT_INIT_ERR"), TransientError, 2),
    (_err("SYS_RESC_IS_DOWN"), TransientError, 2),
    (_err("USER_SOCK_CONNECT_TIMEDOUT"), TransientError, 2),
    (_err("CAT_CONNECT_ERR"), TransientError, 2),
    # the zone refusing us: transient, and the node-wide cool-down signal
    (KeyError(-118000), ZoneBusyError, 2),  # PRC 3.3.0 has no class for SYS_MAX_CONNECT_COUNT_EXCEEDED
    (_err("SYS_EXCEED_CONNECT_CNT"), ZoneBusyError, 2),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), NothingListeningError, 2),
    (OSError(errno.ECONNREFUSED, "refused"), NothingListeningError, 2),
    # authentication
    (_err("CAT_INVALID_AUTHENTICATION"), AuthenticationError, 7),
    (_err("CAT_INVALID_USER"), AuthenticationError, 7),
    (_err("CAT_PASSWORD_EXPIRED"), AuthenticationError, 7),
    (_err("PAM_AUTH_PASSWORD_FAILED"), AuthenticationError, 7),
    (_err("PAM_AUTH_NOT_BUILT_INTO_SERVER"), AuthenticationError, 7),
    # not found
    (_err("CAT_UNKNOWN_FILE"), NotFoundError, 3),
    (_err("CAT_UNKNOWN_COLLECTION"), NotFoundError, 3),
    (_err("USER_FILE_DOES_NOT_EXIST"), NotFoundError, 3),
    (prc.DataObjectDoesNotExist(), NotFoundError, 3),
    (prc.CollectionDoesNotExist("/zone/home/x"), NotFoundError, 3),
    (prc.NoResultFound(), NotFoundError, 3),
    (FileNotFoundError(errno.ENOENT, "No such file", "/data/x.mseed"), NotFoundError, 3),
    # permission
    (_err("CAT_NO_ACCESS_PERMISSION"), PermissionDeniedError, 3),
    (_err("CAT_INSUFFICIENT_PRIVILEGE_LEVEL"), PermissionDeniedError, 3),
    (_err("SYS_NO_API_PRIV"), PermissionDeniedError, 3),
    (KeyError(-121000), PermissionDeniedError, 3),  # SYS_USER_NO_PERMISSION, unknown to PRC
    (PermissionError(errno.EACCES, "Permission denied"), PermissionDeniedError, 3),
    # exists
    (_err("OVERWRITE_WITHOUT_FORCE_FLAG"), ExistsError, 3),
    (_err("CAT_NAME_EXISTS_AS_DATAOBJ"), ExistsError, 3),
    (_err("CAT_NAME_EXISTS_AS_COLLECTION"), ExistsError, 3),
    *([(prc.DataObjectExistsAtLogicalPath(), ExistsError, 3)]     # PRC >= 3.2 only
      if hasattr(prc, "DataObjectExistsAtLogicalPath") else []),
    # checksum
    (_err("USER_CHKSUM_MISMATCH"), ChecksumMismatchError, 3),
    # bad input
    (_err("USER_INPUT_PATH_ERR"), InvalidInputError, 1),
    (_err("SYS_INVALID_INPUT_PARAM"), InvalidInputError, 1),
    (prc.InvalidInputArgument("bad"), InvalidInputError, 1),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), InvalidInputError, 1),
    (ValueError("bad negotiation setting"), InvalidInputError, 1),
    # unknown -> permanent
    (_err("SYS_COPY_LEN_ERR"), PermanentError, 3),
    (_err("CAT_SQL_ERR"), PermanentError, 3),
    (KeyError(-9999000), PermanentError, 3),
    (prc.MultipleResultsFound(), PermanentError, 3),
    (OSError(errno.ENOSPC, "No space left on device"), PermanentError, 3),
    (RuntimeError("boom"), PermanentError, 3),
]


@pytest.mark.parametrize(
    "exc, expected, exit_code", TABLE, ids=[f"{type(e).__name__}-{i}" for i, (e, _, _) in enumerate(TABLE)]
)
def test_classification_table(exc, expected, exit_code):
    err = classify(exc)
    assert type(err) is expected
    assert err.exit_code == exit_code
    assert err.transient == (exit_code == 2)
    if not isinstance(exc, SecureIrodsError):
        assert err.__cause__ is exc


def test_message_keeps_irods_name_and_code():
    err = classify(prc.CAT_NO_ACCESS_PERMISSION("no write on /zone/home/x"))
    assert err.name == "CAT_NO_ACCESS_PERMISSION" and err.code == -818000
    assert "CAT_NO_ACCESS_PERMISSION" in str(err) and "-818000" in str(err)
    assert "/zone/home/x" in str(err)


def test_code_with_errno_from_server_reply():
    try:
        exc = prc.get_exception_by_code(-115104, "read timed out")  # what connection.recv() raises
    except KeyError as unknown:   # a PRC without a class for the code raises this instead
        exc = unknown
    err = classify(exc)
    assert isinstance(err, TransientError) and err.name == "SYS_SOCK_READ_TIMEDOUT"
    if not isinstance(exc, KeyError):   # PRC 3.1 drops the errno part of the code before raising
        assert err.code == -115104 and "ECONNRESET" in str(err)


def test_unknown_server_code_as_prc_raises_it():
    with pytest.raises(KeyError) as info:
        prc.get_exception_by_code(-118000, "too many connections")
    err = classify(info.value)
    assert isinstance(err, ZoneBusyError)
    assert err.name == "SYS_MAX_CONNECT_COUNT_EXCEEDED" and "-118000" in str(err)


def test_network_exception_wrapping_refused_connect_says_nothing_listens_there():
    exc = _raised_inside(
        prc.NetworkException("Could not connect to specified host and port: h:1247"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    )
    err = classify(exc)
    assert isinstance(err, NothingListeningError) and isinstance(err, ZoneBusyError) and err.transient
    assert "nothing listening at h:1247" in str(err) and "--deadline" in str(err)


@pytest.mark.parametrize("path, extra, vault, ok", [
    ("/z/home/u/" + "a" * 1000, 0, False, True),       # 1010 bytes
    ("/z/home/u/" + "a" * 1012, 0, False, True),       # 1022 bytes: MAX_PATH_ALLOWED - 2, the longest
    ("/z/home/u/" + "a" * 1013, 0, False, False),      # 1023: refused by the icommands' parseRodsPath
    ("/z/home/u/" + "é" * 507, 0, False, False),       # 1024 bytes in UTF-8, 517 characters
    ("/z/home/u/" + "a" * 216, 39, True, True),        # a vault file name of 255 bytes
    ("/z/home/u/" + "a" * 217, 39, True, False),
    ("/z/home/u/" + "a" * 300, 0, False, True),        # a get: no vault name to make
])
def test_path_limits_are_irods_own(path, extra, vault, ok):
    from secure_irods.errors import NameTooLongError, check_path

    if ok:
        assert check_path(path, extra=extra, vault_name=vault) == path
    else:
        with pytest.raises(NameTooLongError) as info:
            check_path(path, extra=extra, vault_name=vault)
        assert info.value.exit_code == 3 and len(str(info.value)) < 300


def test_network_exception_wrapping_timeout_is_plain_transient():
    exc = _raised_inside(prc.NetworkException("Could not receive server response"), socket.timeout("timed out"))
    err = classify(exc)
    assert type(err) is TransientError and "timed out" in str(err)


def test_code_table_agrees_with_prc():
    for name, (code, cls) in IRODS_CODES.items():
        assert issubclass(cls, SecureIrodsError)
        prc_cls = getattr(prc, name, None)
        if prc_cls is not None:
            assert prc_cls.code == code, name
    codes = [code for code, _ in IRODS_CODES.values()]
    assert len(codes) == len(set(codes))


def test_transient_names_from_the_brief_are_transient():
    for name in (
        "SYS_SOCK_OPEN_ERR", "SYS_SOCK_READ_TIMEDOUT", "SYS_SOCK_READ_ERR", "SYS_HEADER_READ_LEN_ERR",
        "SYS_MAX_CONNECT_COUNT_EXCEEDED", "SYS_AGENT_INIT_ERR", "SYS_RESC_IS_DOWN",
    ):
        assert IRODS_CODES[name][1].transient, name


def test_own_errors_pass_through_unchanged():
    err = NotFoundError("gone")
    assert classify(err) is err


def test_interrupts_are_not_transient():
    assert not classify(KeyboardInterrupt()).transient
    assert not classify(SystemExit(1)).transient


def test_classify_never_raises_even_if_str_fails():
    class Nasty(Exception):
        def __str__(self):
            raise RuntimeError("no str for you")

    err = classify(Nasty())
    assert isinstance(err, PermanentError) and "Nasty" in str(err)


def test_passwords_never_in_messages():
    secret = "s3cr3t-Passw0rd!"
    register_secret(secret)
    for exc in (
        prc.CAT_INVALID_AUTHENTICATION(f"login failed for alice with {secret}"),
        prc.NetworkException(f"oops {secret}"),
        ValueError(f"a_pw={secret}"),
        OSError(errno.ECONNRESET, f"reset {secret}"),
    ):
        assert secret not in str(classify(exc))
    assert redact("password=hunter2; user=bob") == "password=***; user=bob"
    assert "hunter3" not in str(TransientError("connect pwd: hunter3"))


def test_exit_codes_follow_iget():
    assert TransientError.exit_code == 2
    assert PermanentError.exit_code == 3
    assert NotFoundError.exit_code == 3 and ExistsError.exit_code == 3
    assert AuthenticationError.exit_code == 7
    assert InvalidInputError.exit_code == 1


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-2_000_000, max_value=0), st.text(max_size=40))
def test_any_server_code_classifies_without_raising(code, message):
    try:
        exc: Exception = prc.get_exception_by_code(code, message)
    except KeyError as missing:
        exc = missing
    err = classify(exc)
    assert isinstance(err, SecureIrodsError)
    assert err.__cause__ is exc
    assert err.exit_code in (1, 2, 3, 7)


def test_module_does_not_import_prc_eagerly():
    import subprocess
    import sys

    code = "import sys, secure_irods; print('irods' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert errors.__name__ == "secure_irods.errors"
