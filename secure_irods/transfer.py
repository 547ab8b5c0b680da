"""Atomic, checksummed, resumable single-object transfers over a narrow backend.

One private transfer per direction moves bytes (:func:`_get_object`, :func:`_put_object`);
the client's ``get``, ``put``, ``sync``, ``get_many`` and ``put_many`` loop over them,
each call under the retry policy.  Guarantees, whatever is killed when:

**put** streams the file to ``<collection>/.<name>.part-<uuid4>`` with ``regChksum`` (the
server registers a sha2 checksum on close), compares that checksum with the sha256 we
computed while reading, and only then renames the temporary object to ``<name>``.  With
``force`` an existing ``<name>`` is first unlinked and then the temporary renamed: between
those two catalogue calls (a few milliseconds) ``<name>`` does not exist, but it never
holds partial bytes.  A temporary left by a killed or dropped upload is a stale replica
under a dot-name; the next successful put of the same name removes it.

**get** streams into ``<dir>/.<name>.part-<key>`` where ``key`` is derived from the object
path and its checksum (``sha256(path + NUL + checksum)[:16]``), fsyncs it, checks the whole
file against the catalogue checksum (asking the server to compute one if the catalogue has
none), then ``os.replace``-s it onto ``<name>`` and fsyncs the directory.  Because the key is
deterministic, a retry or a re-run after SIGKILL finds the same temporary file and resumes
from its end: the bytes already there are re-hashed locally (no network) and the read
seeks past them.  The final check covers the resumed prefix too; if it fails after a
resume, the temporary file is discarded and the object fetched once more from zero.

**sync** (``sync=True``) skips a transfer whose destination has the same size and checksum.

Costs per object on the zone: get = 1 GenQuery (+1 if it is a collection, +1 chksum if
the catalogue has no checksum) + open + ceil(size/chunk) reads + close; put = 1 GenQuery +
create + ceil(size/chunk) writes + close + 1 GenQuery + rename (+ unlink with force).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Protocol

from .errors import (
    ChecksumMismatchError,
    ExistsError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from .policy import Deadline

__all__ = ["Backend", "RemoteStatLike", "TransferResult", "CHUNK", "sha2_of_file", "split_remote"]

CHUNK = 8 * 1024 * 1024  # bytes per DATA_OBJ_READ/WRITE call

Progress = Callable[[int], None]


class RemoteStatLike(Protocol):
    path: str
    kind: str
    size: int
    checksum: str

    @property
    def is_collection(self) -> bool: ...


class Backend(Protocol):
    """What a transfer needs from the zone (see :class:`secure_irods.backend.PrcBackend`)."""

    def stat(self, path: str) -> RemoteStatLike | None: ...
    def checksum(self, path: str) -> str: ...
    def open_read(self, path: str, offset: int = 0, resource: str | None = None) -> BinaryIO: ...
    def open_write(self, path: str, resource: str | None = None) -> BinaryIO: ...
    def rename(self, source: str, target: str) -> None: ...
    def unlink(self, path: str) -> None: ...
    def leftovers(self, collection: str, pattern: str) -> list[str]: ...


@dataclass(frozen=True)
class TransferResult:
    """One finished transfer: ``skipped`` if sync found the destination identical."""

    source: str
    destination: str
    size: int
    checksum: str
    skipped: bool = False
    resumed_from: int = 0


# --------------------------------------------------------------------------- checksums

_MD5 = re.compile(r"^[0-9a-f]{32}$")


def _hasher_for(checksum: str):
    if checksum.startswith("sha2:"):
        return hashlib.sha256()
    if _MD5.match(checksum):
        return hashlib.md5()
    raise PermanentError(f"unsupported checksum format {checksum[:20]!r}")


def _formatted(hasher) -> str:
    if hasher.name == "sha256":
        return "sha2:" + base64.b64encode(hasher.digest()).decode()
    return hasher.hexdigest()


def _hash_file(path: Path, hasher, upto: int | None = None):
    left = upto
    with open(path, "rb", buffering=0) as f:
        while left is None or left > 0:
            data = f.read(CHUNK if left is None else min(CHUNK, left))
            if not data:
                break
            hasher.update(data)
            if left is not None:
                left -= len(data)
    return hasher


def sha2_of_file(path: str | os.PathLike) -> str:
    """The iRODS sha2 checksum (``sha2:`` + base64 sha256) of a local file."""
    return _formatted(_hash_file(Path(path), hashlib.sha256()))


def _same(path: Path, size: int, checksum: str) -> bool:
    """Local file has this size and checksum (size first: it costs no read)."""
    try:
        if path.stat().st_size != size or not checksum:
            return False
    except FileNotFoundError:
        return False
    return _formatted(_hash_file(path, _hasher_for(checksum))) == checksum


def split_remote(path: str) -> tuple[str, str]:
    parent, _, name = path.rstrip("/").rpartition("/")
    return parent or "/", name


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_deadline(deadline: Deadline, what: str) -> None:
    if deadline.expired:
        raise TransientError(f"deadline of {deadline.seconds:g}s passed during {what}")


def _close_quietly(handle: BinaryIO) -> None:
    try:
        handle.close()
    except Exception:
        pass


# --------------------------------------------------------------------------------- get


def get_temp_name(remote: str, checksum: str, local: Path) -> Path:
    """The deterministic temporary file a get of ``remote`` into ``local`` writes (and resumes)."""
    key = hashlib.sha256(f"{remote}\0{checksum}".encode()).hexdigest()[:16]
    return local.parent / f".{local.name}.part-{key}"


def _get_object(
    backend: Backend,
    remote: str,
    local: Path,
    *,
    deadline: Deadline,
    force: bool = False,
    sync: bool = False,
    resource: str | None = None,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> TransferResult:
    """Fetch one data object to ``local`` atomically; see the module docstring."""
    stat = backend.stat(remote)
    if stat is None:
        raise NotFoundError(f"no such data object: {remote}")
    if stat.is_collection:
        raise InvalidInputError(f"{remote} is a collection (use -r)")
    checksum = stat.checksum or backend.checksum(remote)
    _hasher_for(checksum)  # fail early on a format we cannot verify
    if local.is_dir():
        raise InvalidInputError(f"local target {local} is a directory")
    if local.exists():
        if (sync or force) and _same(local, stat.size, checksum):
            return TransferResult(remote, str(local), stat.size, checksum, skipped=True)
        if not force:
            raise ExistsError(f"{local} exists (use -f to overwrite)")
    if not local.parent.is_dir():
        raise NotFoundError(f"no such local directory: {local.parent}")

    temp = get_temp_name(remote, checksum, local)
    for attempt in ("resume", "fresh"):
        offset = temp.stat().st_size if temp.exists() else 0
        if offset > stat.size:
            offset = 0
        hasher = _hasher_for(checksum)
        if offset:
            _hash_file(temp, hasher, offset)
        with open(temp, "r+b" if offset else "wb", buffering=0) as out:
            out.truncate(offset)
            out.seek(offset)
            position = offset
            if position < stat.size:
                reader = backend.open_read(remote, position, resource)
                ok = False
                try:
                    while position < stat.size:
                        _check_deadline(deadline, f"get of {remote}")
                        data = reader.read(min(chunk, stat.size - position))
                        if not data:
                            raise TransientError(f"{remote}: stream ended at byte {position} of {stat.size}")
                        out.write(data)
                        hasher.update(data)
                        position += len(data)
                        if progress:
                            progress(len(data))
                    ok = True
                finally:
                    if ok:
                        reader.close()
                    else:
                        _close_quietly(reader)
            os.fsync(out.fileno())
        if _formatted(hasher) == checksum:
            break
        temp.unlink(missing_ok=True)
        if not offset or attempt == "fresh":
            raise ChecksumMismatchError(f"{remote}: received bytes do not match the checksum {checksum}")
    os.replace(temp, local)
    _fsync_dir(local.parent)
    for stale in local.parent.glob(f".{glob_escape(local.name)}.part-*"):
        if stale != temp:
            stale.unlink(missing_ok=True)  # older versions of the object, killed runs
    return TransferResult(remote, str(local), stat.size, checksum, resumed_from=offset)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


# --------------------------------------------------------------------------------- put


def _put_object(
    backend: Backend,
    local: Path,
    remote: str,
    *,
    deadline: Deadline,
    force: bool = False,
    sync: bool = False,
    resource: str | None = None,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> TransferResult:
    """Upload one file to ``remote`` atomically; see the module docstring."""
    if local.is_dir():
        raise InvalidInputError(f"{local} is a directory (use -r)")
    size = local.stat().st_size  # FileNotFoundError -> NotFoundError
    existing = backend.stat(remote)
    if existing is not None:
        if existing.is_collection:
            raise ExistsError(f"{remote} is a collection")
        if (sync or force) and existing.size == size and existing.checksum and _same(local, size, existing.checksum):
            return TransferResult(str(local), remote, size, existing.checksum, skipped=True)
        if not force:
            raise ExistsError(f"{remote} exists (use -f to overwrite)")

    parent, name = split_remote(remote)
    temp = f"{parent}/.{name}.part-{uuid.uuid4().hex}"
    hasher = hashlib.sha256()
    writer = backend.open_write(temp, resource)
    ok = False
    try:
        with open(local, "rb", buffering=0) as src:
            while True:
                _check_deadline(deadline, f"put of {local}")
                data = src.read(chunk)
                if not data:
                    break
                writer.write(data)
                hasher.update(data)
                if progress:
                    progress(len(data))
        ok = True
    finally:
        if ok:
            writer.close()
        else:
            _close_quietly(writer)
    uploaded = backend.stat(temp)
    server_sum = (uploaded.checksum if uploaded else "") or backend.checksum(temp)
    local_sum = _formatted(hasher) if server_sum.startswith("sha2:") else _formatted(
        _hash_file(local, _hasher_for(server_sum)))
    if server_sum != local_sum:
        _quietly(backend.unlink, temp)
        raise ChecksumMismatchError(f"{local}: server checksum {server_sum} != local {local_sum}")
    if existing is not None:
        backend.unlink(remote)  # the window: <name> absent until the rename below
    backend.rename(temp, remote)
    for stale in backend.leftovers(parent, f".{name}.part-%"):
        if stale != temp and split_remote(stale)[1].startswith(f".{name}.part-"):
            _quietly(backend.unlink, stale)
    return TransferResult(str(local), remote, size, server_sum)


def _quietly(fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except Exception:
        pass
