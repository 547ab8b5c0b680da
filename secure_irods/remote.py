"""A seekable, block-cached, read-only file object over one data object: selective reads.

``client.open(path)`` returns a :class:`RemoteFile`, an :class:`io.RawIOBase` that
``h5py.File(fileobj)``, ``numpy.load`` or ``zipfile`` accept.  Reads go to the zone only
for the blocks not cached yet, and each miss costs one contiguous fetch of the missing
run of blocks (plus the blocks of ``readahead``), whatever its length::

    with client.open("/zone/home/me/bundles/c1.b0.h5") as f, h5py.File(f, "r") as h5:
        cc = h5["pairs/A:B/cc"][3]          # one correlation of a 500 MB bundle

Costs on the zone (counted in :attr:`RemoteFile.round_trips`): the first fetch opens the
object (DATA_OBJ_OPEN, plus the seek PRC's buffer makes, plus one seek if not at 0);
each later fetch is one seek (DATA_OBJ_LSEEK) if not where the last one ended, then
one DATA_OBJ_READ.  The size comes from one GenQuery at :meth:`Client.open`.

Every fetch runs through :meth:`Client.call`: the client's retry policy, node throttle,
cool-down and deadline.  A fetch that fails (a dropped connection, a short read) keeps
nothing: the reader is closed, the retry reconnects, reopens the object and seeks to
the offset, and only a whole fetch enters the cache, so a read never returns bytes
other than the object's.  The object is assumed not to change while open (bundles are
written once: a put renames a verified temporary onto the name).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import TYPE_CHECKING

from .errors import NotFoundError, PermanentError, TransientError
from .protocols import Backend, Reader, RemoteStatLike

if TYPE_CHECKING:
    from .client import Client

__all__ = ["RemoteFile", "DEFAULT_BLOCK", "DEFAULT_CACHE"]

DEFAULT_BLOCK = 64 * 1024          # cache granularity (bytes)
DEFAULT_CACHE = 64 * 1024 * 1024   # cached bytes kept at most (least recently used dropped)


class RemoteFile(io.RawIOBase):
    """Read-only, seekable view of a data object; see the module docstring.

    Made by :meth:`secure_irods.Client.open`, which gives it a client of its own (so its
    open reader is the only use of that connection); closing the file closes it.

    ``head``: bytes fetched by the first read at offset 0 (an HDF5 file keeps its
    superblock and, written by :mod:`seisstore.bundles`, all its metadata there).
    """

    def __init__(self, client: "Client", path: str, *, stat: RemoteStatLike | None = None,
                 block_size: int = DEFAULT_BLOCK,
                 cache_bytes: int = DEFAULT_CACHE, readahead: int = 0, head: int = 0,
                 resource: str | None = None) -> None:
        super().__init__()
        if block_size < 512 or cache_bytes < block_size:
            raise ValueError("block_size must be >= 512 and cache_bytes >= block_size")
        self.client = client   # this file's own client (one connection), closed with the file
        self.path = client.resolve(path)
        if stat is None:
            stat = client.stat(self.path)
        if stat is None or stat.is_collection:
            raise NotFoundError(f"no such data object: {self.path}")
        self.size = int(stat.size)
        self.checksum = stat.checksum
        self.block_size = block_size
        self.max_blocks = max(1, cache_bytes // block_size)
        self.readahead = readahead
        self.head = head
        self.resource = resource
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._reader: Reader | None = None
        self._reader_connection = -1   # the client's connection (by count) the reader is open on
        self._reader_pos = -1
        self.round_trips = 0   # requests to the zone for data: opens, seeks, reads (retries included)
        self.bytes_fetched = 0  # bytes received from the zone (kept fetches only)
        self.fetches = 0       # cache misses served

    # ------------------------------------------------------------ io.RawIOBase

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self._pos))
        if n:
            self._copy(self._pos, view[:n])
            self._pos += n
        return n

    def readall(self) -> bytes:
        return self.read(max(0, self.size - self._pos))

    def pread(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (fewer at the end), without moving the position."""
        length = max(0, min(length, self.size - offset))
        out = bytearray(length)
        if length:
            self._copy(offset, memoryview(out))
        return bytes(out)

    def close(self) -> None:
        if not self.closed:
            self._close_reader()
            self._blocks.clear()
            self.client.close()
        super().close()

    # ------------------------------------------------------------ cache

    def _copy(self, offset: int, out: memoryview) -> None:
        bs = self.block_size
        first, last = offset // bs, (offset + len(out) - 1) // bs
        missing = [b for b in range(first, last + 1) if b not in self._blocks]
        if missing:
            self._fill(missing)
        done = 0
        for b in range(first, last + 1):
            block = self._blocks[b]
            self._blocks.move_to_end(b)
            start = offset + done - b * bs
            take = min(len(block) - start, len(out) - done)
            out[done:done + take] = block[start:start + take]
            done += take

    def _fill(self, missing: list[int]) -> None:
        """Fetch each run of consecutive missing blocks in one request (plus read-ahead)."""
        bs = self.block_size
        last_block = (self.size - 1) // bs
        runs: list[list[int]] = []
        for b in missing:
            if runs and b == runs[-1][-1] + 1:
                runs[-1].append(b)
            else:
                runs.append([b])
        for run in runs:
            lo, hi = run[0], run[-1]
            extra = self.readahead
            if lo == 0 and self.head:
                extra = max(extra, (self.head + bs - 1) // bs - 1 - hi)
            hi = min(last_block, hi + max(0, extra))
            while hi > lo and hi in self._blocks:
                hi -= 1
            data = self._fetch(lo * bs, min(self.size, (hi + 1) * bs) - lo * bs)
            for b in range(lo, hi + 1):
                self._blocks[b] = data[(b - lo) * bs:(b - lo + 1) * bs]
                self._blocks.move_to_end(b)
            while len(self._blocks) > self.max_blocks:
                self._blocks.popitem(last=False)

    # ------------------------------------------------------------ the zone

    def _fetch(self, offset: int, length: int) -> bytes:
        def attempt(backend: Backend, deadline: object) -> bytes:
            try:
                return self._read_exactly(backend, offset, length)
            except BaseException:
                self._close_reader()   # the link or the position is unknown: never reuse it
                raise

        data = self.client.call(attempt)
        self.fetches += 1
        self.bytes_fetched += len(data)
        return data

    def _read_exactly(self, backend: Backend, offset: int, length: int) -> bytes:
        connection = self.client.connections_opened   # a new connection since: the reader died with the old
        if self._reader is None or self._reader_connection != connection:
            self._close_reader()
            self.round_trips += 2 + (1 if offset else 0)   # open, PRC's position query, seek
            self._reader = backend.open_read(self.path, offset, self.resource)
            self._reader_connection, self._reader_pos = connection, offset
        elif self._reader_pos != offset:
            self.round_trips += 1
            self._reader.seek(offset)
            self._reader_pos = offset
        out = bytearray(length)
        view = memoryview(out)
        got = 0
        while got < length:
            self.round_trips += 1
            n = self._reader.readinto(view[got:])
            if not n:
                raise TransientError(f"{self.path}: short read at {offset + got} of {self.size} bytes")
            got += n
            self._reader_pos += n
        if got != length:
            raise PermanentError(f"{self.path}: read past the requested range")
        return bytes(out)

    def _close_reader(self) -> None:
        reader, self._reader, self._reader_connection = self._reader, None, -1
        self._reader_pos = -1
        if reader is not None:
            try:
                reader.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"<secure_irods.RemoteFile {self.path} {self.size} bytes at {self._pos}>"
