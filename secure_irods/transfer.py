"""Atomic, checksummed, resumable single-object transfers over a narrow backend.

One private transfer per direction moves bytes (:func:`_get_object`, :func:`_put_object`);
the client's ``get``, ``put``, ``sync``, ``get_many`` and ``put_many`` loop over them,
each call under the retry policy.  Guarantees, whatever is killed when:

**put** streams the file to ``<collection>/.<name>.part-<key>`` with ``regChksum`` (the
server registers a sha2 checksum on close), compares that checksum with the sha256 of the
whole local file, and only then renames the temporary object to ``<name>``.  ``key``
derives from the local file (path, size, mtime): a retry after a dropped or killed upload
finds the temporary and appends after the bytes the server kept (the whole-object checksum
verifies them; on a mismatch the upload is redone from zero).  With
``force`` an existing ``<name>`` is first unlinked and then the temporary renamed: between
those two catalogue calls (a few milliseconds) ``<name>`` does not exist, but it never
holds partial bytes.  A temporary left by a killed or dropped upload is a stale replica
under a dot-name; the next successful put of the same name removes it (but not one whose
replica is still being written: that is another job's upload in progress).  The bytes go
out one stream, with one write request in flight ahead of its reply, and are hashed in a
second thread beside the sending (:func:`_send_hashing`).

**get** streams into ``<dir>/.<name>.part-<key>`` where ``key`` is derived from the object
path and its checksum (``sha256(path + NUL + checksum)[:16]``), fsyncs it, checks the whole
file against the catalogue checksum (asking the server to compute one if the catalogue has
none), then ``os.replace``-s it onto ``<name>`` and fsyncs the directory.  Because the key is
deterministic, a retry or a re-run after SIGKILL finds the same temporary file and resumes
from its end: the bytes already there are re-hashed locally (no network) and the read
seeks past them.  The final check covers the resumed prefix too; if it fails after a
resume, the temporary file is discarded and the object fetched once more from zero.
From :data:`PIPELINE_MIN` bytes on, a get reads with up to ``streams`` connections (extra
ones only from free throttle slots), hashes the chunks in order in a thread of its own
while they arrive, and fdatasyncs behind them; a dropped get keeps exactly the prefix it
hashed (:func:`_get_pipelined`).

**sync** (``sync=True``) skips a transfer whose destination has the same size and checksum.

Costs per object on the zone: get = 1 GenQuery (+1 if it is a collection, +1 chksum if
the catalogue has no checksum) + open + ceil(size/chunk) reads + close; put = 1 GenQuery +
create + ceil(size/chunk) writes + close + 1 GenQuery + rename (+ unlink with force).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import glob
import hashlib
import logging
import os
import queue
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

from .errors import (
    ChecksumMismatchError,
    ExistsError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    TransientError,
    check_path,
    classify,
)
from .policy import Deadline
from .protocols import Reader, RemoteStatLike, TransferBackend, Writer

__all__ = ["Leftover", "TransferResult", "CHUNK", "PIPELINE_MIN", "FLUSH_EVERY", "sha2_of_file", "split_remote"]

logger = logging.getLogger("secure_irods.transfer")

CHUNK = 8 * 1024 * 1024  # bytes per DATA_OBJ_READ/WRITE call
PIPELINE_MIN = 32 * 1024 * 1024  # gets from this size on: hashing in its own thread, parallel streams (like PRC)
FLUSH_EVERY = 64 * 1024 * 1024  # a pipelined get fdatasyncs in the background every this many bytes

Progress = Callable[[int], None]
Spares = Callable[[int], ContextManager[list]]  # spares(n): up to n more connected backends, for a while


@dataclass(frozen=True)
class Leftover:
    """A temporary object an interrupted upload left (``.NAME.part-KEY``): see ``Client.leftovers``."""

    path: str
    size: int
    modified: float   # seconds since the epoch


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


# --------------------------------------------------------------------------------- get


def get_temp_name(remote: str, checksum: str, local: Path) -> Path:
    """The deterministic temporary file a get of ``remote`` into ``local`` writes (and resumes)."""
    key = hashlib.sha256(f"{remote}\0{checksum}".encode()).hexdigest()[:16]
    return local.parent / f".{local.name}.part-{key}"


def _get_object(
    backend: TransferBackend,
    remote: str,
    local: Path,
    *,
    deadline: Deadline,
    force: bool = False,
    sync: bool = False,
    resource: str | None = None,
    chunk: int = CHUNK,
    progress: Progress | None = None,
    spares: Spares | None = None,
    streams: int = 2,
) -> TransferResult:
    """Fetch one data object to ``local`` atomically; see the module docstring.

    From :data:`PIPELINE_MIN` bytes on, the bytes are read by up to ``streams``
    connections (``backend`` plus what ``spares`` lends) and hashed in order in a thread
    of their own: see :func:`_get_pipelined`.
    """
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
    try:
        offset = _receive(backend, remote, temp, stat, checksum, deadline=deadline, resource=resource, chunk=chunk,
                          progress=progress, spares=spares, streams=streams)
    except BaseException as exc:
        _discard_temp(temp, exc, local, stat.size)
        raise
    os.replace(temp, local)
    _fsync_dir(local.parent)
    for stale in local.parent.glob(f".{glob.escape(local.name)}.part-*"):
        if stale != temp:
            stale.unlink(missing_ok=True)  # older versions of the object, killed runs
    return TransferResult(remote, str(local), stat.size, checksum, resumed_from=offset)


def _write_all(out, data: bytes) -> None:
    """An unbuffered write may write less than asked (a disk filling up): loop until all is
    written, so a full disk raises ENOSPC instead of leaving a hole the hash never saw."""
    view = memoryview(data)
    while view:
        view = view[out.write(view):]


def _discard_temp(temp: Path, exc: BaseException, local: Path, size: int) -> None:
    """After a failed get: keep the temporary only if a retry can resume from it.

    An empty one, or one behind a permanent failure, goes; on a full disk it goes too
    (the next get into that directory would fail the same way) and the error says how
    much room the object needs."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        temp.unlink(missing_ok=True)
        free = shutil.disk_usage(local.parent).free
        raise PermanentError(f"no space left for {local}: the object needs {size} bytes, {free} are free in "
                             f"{local.parent} (its partial copy was removed)") from exc
    try:
        empty = temp.stat().st_size == 0
    except OSError:
        return
    if empty or (isinstance(exc, Exception) and not classify(exc).transient):
        temp.unlink(missing_ok=True)


def _receive(backend: TransferBackend, remote: str, temp: Path, stat: RemoteStatLike, checksum: str, *, deadline: Deadline,
             resource: str | None, chunk: int, progress: Progress | None, spares: Spares | None,
             streams: int) -> int:
    """Fill ``temp`` with ``remote``'s bytes, resuming after what it holds; returns where it resumed."""
    for attempt in ("resume", "fresh"):
        offset = temp.stat().st_size if temp.exists() else 0
        if offset > stat.size:
            offset = 0
        hasher = _hasher_for(checksum)
        if offset:
            _hash_file(temp, hasher, offset)
            logger.info("get of %s resumes at byte %d of %d", remote, offset, stat.size)
            if progress and attempt == "resume":
                progress(offset)   # the kept prefix counts: progress reads against the whole object
        with open(temp, "r+b" if offset else "wb", buffering=0) as out:
            out.truncate(offset)
            out.seek(offset)
            position = offset
            if stat.size - position >= PIPELINE_MIN:
                _get_pipelined(backend, remote, out.fileno(), position, stat.size, hasher, deadline=deadline,
                               resource=resource, chunk=chunk, progress=progress, spares=spares, streams=streams)
            elif position < stat.size:
                reader = backend.open_read(remote, position, resource)
                ok = False
                try:
                    while position < stat.size:
                        _check_deadline(deadline, f"get of {remote}")
                        data = reader.read(min(chunk, stat.size - position))
                        if not data:
                            raise TransientError(f"{remote}: stream ended at byte {position} of {stat.size}")
                        _write_all(out, data)
                        hasher.update(data)
                        position += len(data)
                        if progress:
                            progress(len(data))
                    ok = True
                finally:
                    if ok:
                        reader.close()
                    else:
                        with contextlib.suppress(Exception):   # the transfer's own error matters
                            reader.close()
            os.fsync(out.fileno())
        if _formatted(hasher) == checksum:
            break
        temp.unlink(missing_ok=True)
        if not offset or attempt == "fresh":
            raise ChecksumMismatchError(f"{remote}: received bytes do not match the checksum {checksum}")
    return offset


class _Pipeline:
    """Chunks of ``[start, end)`` handed to readers, written at their offset, hashed in order.

    Readers ``take`` an offset (a chunk not yet read, or one given back by a reader that
    failed), read it, ``pwrite`` it and ``give`` it; one thread hashes the given chunks in
    order, another fdatasyncs the file every :data:`FLUSH_EVERY` hashed bytes.  Readers run
    at most ``window`` bytes ahead of the hash, which bounds the memory held.  ``hashed``
    is always a prefix whose bytes are in the file and in the hash: the resume point.
    """

    def __init__(self, fd: int, start: int, end: int, chunk: int, hasher: "hashlib._Hash", window: int,
                 progress: Progress | None, flush_every: int) -> None:
        self.fd, self.end, self.chunk, self.hasher, self.window = fd, end, chunk, hasher, window
        self.progress, self.flush_every = progress, flush_every
        self.cv = threading.Condition()
        self.next = start
        self.given_back: list[int] = []
        self.in_flight = 0
        self.ready: dict[int, memoryview] = {}
        self.hashed = start
        self.error: BaseException | None = None
        # Chunk buffers are reused: a fresh 8 MiB bytearray per chunk is a fresh mmap whose
        # pages the kernel zeroes and faults in again, a cost the size of the transfer.
        self.free: list[bytearray] = []

    @property
    def done(self) -> bool:
        """Every chunk is handed out, or the transfer failed: a new reader would find nothing to do."""
        with self.cv:
            return self.error is not None or (self.next >= self.end and not self.given_back)

    def take(self) -> int | None:
        """The next chunk to read, or None when every chunk is read (or the transfer failed)."""
        with self.cv:
            while True:
                if self.error is not None:
                    return None
                if self.given_back:
                    offset = self.given_back.pop()
                elif self.next < self.end and self.next - self.hashed < self.window:
                    offset, self.next = self.next, self.next + self.chunk
                elif self.next >= self.end and not self.in_flight:
                    return None
                else:
                    self.cv.wait()
                    continue
                self.in_flight += 1
                return offset

    def buffer(self) -> bytearray:
        with self.cv:
            return self.free.pop() if self.free else bytearray(self.chunk)

    def recycle(self, data: memoryview) -> None:
        buffer = data.obj
        data.release()
        with self.cv:
            self.free.append(buffer)  # type: ignore[arg-type]

    def give(self, offset: int, data: memoryview) -> None:
        with self.cv:
            self.in_flight -= 1
            self.ready[offset] = data
            self.cv.notify_all()

    def give_back(self, offset: int) -> None:
        with self.cv:
            self.in_flight -= 1
            self.given_back.append(offset)
            self.cv.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self.cv:
            if self.error is None:
                self.error = exc
            self.cv.notify_all()

    def read_with(self, reader: Reader, remote: str, deadline: Deadline, primary: bool) -> None:
        """Read chunks until none is left.  A spare reader that fails gives its chunk back and retires."""
        position = -1
        offset = None
        try:
            while (offset := self.take()) is not None:
                _check_deadline(deadline, f"get of {remote}")
                size = min(self.chunk, self.end - offset)
                if position != offset:
                    reader.seek(offset)
                view = memoryview(self.buffer())[:size]
                got = 0
                while got < size:
                    n = reader.readinto(view[got:])
                    if not n:
                        raise TransientError(f"{remote}: stream ended at byte {offset + got} of {self.end}")
                    got += n
                written = 0
                while written < size:
                    written += os.pwrite(self.fd, view[written:], offset + written)
                position = offset + size
                self.give(offset, view)
                offset = None
        except BaseException as exc:
            if primary:
                self.fail(exc)
            else:
                logger.info("parallel stream of %s stopped (%s: %s); the others go on",
                            remote, type(exc).__name__, exc)
            if offset is not None:
                self.give_back(offset)

    def hash_in_order(self) -> None:
        try:
            while True:
                with self.cv:
                    while self.hashed not in self.ready and self.error is None and self.hashed < self.end:
                        self.cv.wait()
                    if self.error is not None or self.hashed >= self.end:
                        return
                    data = self.ready.pop(self.hashed)
                self.hasher.update(data)  # releases the GIL: overlaps the reads
                size = len(data)
                self.recycle(data)
                with self.cv:
                    self.hashed += size
                    self.cv.notify_all()
                if self.progress:
                    self.progress(size)
        except BaseException as exc:
            self.fail(exc)

    def flush_behind(self) -> None:
        """fdatasync every ``flush_every`` hashed bytes, so the final fsync has little left."""
        flushed = self.hashed
        try:
            while True:
                with self.cv:
                    while (self.error is None and self.hashed < self.end
                           and self.hashed - flushed < self.flush_every):
                        self.cv.wait()
                    if self.error is not None or self.hashed >= self.end:
                        return
                    target = self.hashed
                os.fdatasync(self.fd)
                flushed = target
        except BaseException as exc:
            self.fail(exc)


def _get_pipelined(backend: TransferBackend, remote: str, fd: int, start: int, end: int, hasher, *, deadline: Deadline,
                   resource: str | None, chunk: int, progress: Progress | None, spares: Spares | None,
                   streams: int, flush_every: int | None = None) -> None:
    """Receive ``[start, end)`` of ``remote`` into ``fd``, hashing in order as it arrives.

    ``backend``'s own reader is the primary stream: its failure fails the transfer.  Up
    to ``streams - 1`` spare connections (only if ``spares`` lends them: free throttle
    slots, no cool-down) read other chunks in parallel, as PRC's parallel get does; a
    spare that fails retires and the others re-read its chunk.  On failure the file is
    truncated to the hashed prefix (the bytes a retry resumes from) and the error raised.
    """
    flush_every = FLUSH_EVERY if flush_every is None else flush_every
    pipe = _Pipeline(fd, start, end, chunk, hasher, (max(1, streams) + 2) * chunk, progress,
                     flush_every or end)
    primary = backend.open_read(remote, start, resource)
    threads = [threading.Thread(target=pipe.hash_in_order, name="secure-irods-hash", daemon=True)]
    if flush_every:
        threads.append(threading.Thread(target=pipe.flush_behind, name="secure-irods-flush", daemon=True))
    if spares is not None and streams > 1:
        threads.append(threading.Thread(target=_read_with_spares, name="secure-irods-spares", daemon=True,
                                        args=(pipe, spares, streams - 1, remote, start, resource, deadline)))
    ok = False
    try:
        for t in threads:
            t.start()
        pipe.read_with(primary, remote, deadline, True)
        for t in threads:
            t.join()
        if pipe.error is not None:
            raise pipe.error
        if pipe.hashed != end:  # cannot happen unless a stage misbehaves: refuse rather than guess
            raise TransientError(f"{remote}: pipeline ended at byte {pipe.hashed} of {end}")
        ok = True
    finally:
        if ok:
            primary.close()
        else:
            pipe.fail(pipe.error or TransientError("aborted"))
            for t in threads:
                t.join()
            with contextlib.suppress(Exception):   # the transfer's own error matters
                primary.close()
            os.ftruncate(fd, pipe.hashed)  # keep only the verified-in-order prefix: the resume point


def _read_with_spares(pipe: _Pipeline, spares: Spares, wanted: int, remote: str, start: int,
                      resource: str | None, deadline: Deadline) -> None:
    """Borrow up to ``wanted`` spare connections and read chunks with them until none is left.

    Runs beside the primary stream, which starts at once: connecting and logging in a spare
    (a round trip or three) is hidden behind the first chunks rather than added before them.
    """
    try:
        with spares(wanted) as lent:
            readers: list[Reader] = []
            for spare in lent:
                if pipe.done:
                    break
                try:
                    readers.append(spare.open_read(remote, start, resource))
                except Exception as exc:
                    logger.info("no parallel stream for %s: %s: %s", remote, type(exc).__name__, exc)
            threads = [threading.Thread(target=pipe.read_with, args=(r, remote, deadline, False),
                                        name="secure-irods-read", daemon=True) for r in readers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for r in readers:
                with contextlib.suppress(Exception):
                    r.close()
    except Exception as exc:   # lending or returning spares failed: the primary reads on alone
        logger.info("no parallel streams for %s: %s: %s", remote, type(exc).__name__, exc)


# --------------------------------------------------------------------------------- put


def _put_object(
    backend: TransferBackend,
    local: Path,
    remote: str,
    *,
    deadline: Deadline,
    force: bool = False,
    sync: bool = False,
    resource: str | None = None,
    chunk: int = CHUNK,
    progress: Progress | None = None,
    resume: bool = True,
    renames: dict[tuple, str] | None = None,
    before_rename: Callable[[Any, str], None] | None = None,
) -> TransferResult:
    """Upload one file to ``remote`` atomically; see the module docstring.

    ``renames``: the caller's memory, across the retries of this put, of the renames it
    sent: (local file, remote) -> checksum.  A retry whose rename happened but whose reply,
    or a later step's, was lost finds ``<name>`` there; this tells it the object is its own
    upload rather than another one's ("exists").  The client keeps one per client.
    ``before_rename(backend, temporary)`` runs once the upload is verified, before it takes
    its name: metadata and permissions set there arrive with the object, never after it.
    """
    renames = {} if renames is None else renames
    if local.is_dir():
        raise InvalidInputError(f"{local} is a directory (use -r)")
    size = local.stat().st_size  # FileNotFoundError -> NotFoundError
    key = _rename_key(local, remote)
    existing = backend.stat(remote)
    sent = renames.get(key)
    if existing is not None:
        if existing.is_collection:
            raise ExistsError(f"{remote} is a collection")
        if sent is not None and existing.size == size and existing.checksum == sent:
            # our rename happened, then a reply (its own or a later step's) was lost: this is our
            # upload, verified, at its name
            logger.info("put of %s: the rename of an earlier attempt had happened", local)
            renames.pop(key, None)
            return TransferResult(str(local), remote, size, existing.checksum)
        if (sync or force) and existing.size == size and existing.checksum and _same(local, size, existing.checksum):
            _remove_leftovers(backend, *split_remote(remote))   # the target is right: what killed runs left goes
            return TransferResult(str(local), remote, size, existing.checksum, skipped=True)
        if not force:
            raise ExistsError(f"{remote} exists (use -f to overwrite)")

    parent, name = split_remote(remote)
    check_path(remote, extra=TEMP_EXTRA, what="target", vault_name=True)
    temp, offset = _put_temp(backend, local, parent, name) if resume else (_fresh_temp(parent, name), 0)
    hasher = _hash_file(local, hashlib.sha256(), upto=offset) if offset else hashlib.sha256()
    if offset:
        logger.info("put of %s resumes at byte %d of %d", local, offset, size)
        if progress:
            progress(offset)
    writer = backend.open_write(temp, resource, append=bool(offset))
    ok = False
    try:
        if offset:
            writer.seek(offset)   # after the bytes the catalogue counts, whatever the file holds
        _send_hashing(local, offset, writer, hasher, chunk=chunk, deadline=deadline, progress=progress)
        ok = True
    finally:
        if ok:
            writer.close()
        else:
            with contextlib.suppress(Exception):   # the transfer's own error matters
                writer.close()
    uploaded = backend.stat(temp)
    server_sum = (uploaded.checksum if uploaded else "") or backend.checksum(temp)
    local_sum = _formatted(hasher) if server_sum.startswith("sha2:") else _formatted(
        _hash_file(local, _hasher_for(server_sum)))
    if server_sum != local_sum:
        with contextlib.suppress(Exception):
            backend.unlink(temp)
        if offset:   # the kept prefix was not what we sent: start again, from zero this time
            logger.warning("put of %s: resumed upload failed verification; uploading it whole", local)
            return _put_object(backend, local, remote, deadline=deadline, force=force, sync=sync,
                               resource=resource, chunk=chunk, progress=None, resume=False, renames=renames,
                               before_rename=before_rename)
        raise ChecksumMismatchError(f"{local}: server checksum {server_sum} != local {local_sum}")
    if before_rename is not None:
        before_rename(backend, temp)
    if existing is not None:
        backend.unlink(remote)  # the window: <name> absent until the rename below
    renames[key] = server_sum  # if a reply is lost from here on, a retry finds <name> holding these bytes
    backend.rename(temp, remote)
    _remove_leftovers(backend, parent, name, keep=temp)
    renames.pop(key, None)
    return TransferResult(str(local), remote, size, server_sum, resumed_from=offset)


def _remove_leftovers(backend: TransferBackend, parent: str, name: str, keep: str = "") -> None:
    """Remove the temporaries of ``parent/name`` that killed or dropped uploads left (never
    one still being written: another job's upload); a failure to remove one is not the put's."""
    try:
        stale = backend.leftovers(parent, f".{name}.part-%")
    except Exception as exc:
        logger.info("cannot list the leftovers of %s/%s: %s", parent, name, exc)
        return
    for path in stale:
        if path != keep and split_remote(path)[1].startswith(f".{name}.part-"):
            with contextlib.suppress(Exception):
                backend.unlink(path)


def _send_hashing(local: Path, offset: int, writer: Writer, hasher, *, chunk: int, deadline: Deadline,
                  progress: Progress | None) -> None:
    """Send ``local`` from ``offset`` through ``writer`` while a second thread hashes what was sent.

    On loopback, hashing a chunk takes about as long as sending it: done beside the send of
    the next chunk it costs no time.  One request stays in flight: chunk k+1 is sent before
    the reply to chunk k is read, so the server writes k while k+1 travels (an error reply
    still fails the put; the whole-object checksum then refuses anything written after it).
    A few buffers go round between the two threads (a fresh 8 MiB buffer per chunk is fresh
    pages for the kernel to zero and fault in, every time).
    """
    free: queue.Queue = queue.Queue()
    for _ in range(3):
        free.put(bytearray(chunk))
    sent: queue.Queue = queue.Queue()
    failure: list[BaseException] = []

    def hash_sent() -> None:
        while (item := sent.get()) is not None:
            buffer, size = item
            try:
                if not failure:
                    with memoryview(buffer) as view:
                        hasher.update(view[:size])   # releases the GIL: overlaps the next send
            except BaseException as exc:
                failure.append(exc)
            free.put(buffer)

    thread = threading.Thread(target=hash_sent, name="secure-irods-hash", daemon=True)
    thread.start()
    unanswered = 0   # size of the chunk sent whose reply is still to read (0: none)

    def answered() -> None:
        writer.reply()
        if progress:
            progress(unanswered)

    try:
        with open(local, "rb", buffering=0) as src:
            src.seek(offset)
            while not failure:
                _check_deadline(deadline, f"put of {local}")
                buffer = free.get()
                with memoryview(buffer) as view:
                    size = src.readinto(view)
                    if not size:
                        break
                    writer.send(view[:size])
                sent.put((buffer, size))
                if unanswered:
                    answered()
                unanswered = size
        if unanswered:
            answered()
    finally:
        sent.put(None)
        thread.join()
    if failure:
        raise failure[0]


def _rename_key(local: Path, remote: str) -> tuple:
    st = local.stat()
    return (str(local.resolve()), remote, st.st_size, st.st_mtime_ns)


#: Bytes the longest temporary name of a put adds to its target's path (``/.NAME.part-<32 hex>``).
TEMP_EXTRA = len("..part-") + 32


def _fresh_temp(parent: str, name: str) -> str:
    return f"{parent}/.{name}.part-{uuid.uuid4().hex}"


def _put_temp(backend: TransferBackend, local: Path, parent: str, name: str) -> tuple[str, int]:
    """The temporary of a put, and how many of its bytes the server already holds.

    The name is the same for the same local file (path, size, mtime), so a retry after a
    dropped upload appends to the bytes the server kept instead of sending them again; the
    checksum of the whole object, compared once the upload ends, verifies the kept part
    too.  A temporary still being written is another job's upload: a fresh name then.
    """
    st = local.stat()
    key = hashlib.sha256(f"{local.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:20]
    temp = f"{parent}/.{name}.part-{key}"
    prior = backend.partial(temp)
    if prior is None:
        return temp, 0
    held, busy = prior
    if busy:
        return _fresh_temp(parent, name), 0
    if held > st.st_size:
        with contextlib.suppress(Exception):
            backend.unlink(temp)
        return temp, 0
    return temp, held
