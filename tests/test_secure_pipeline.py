"""secure_irods' transfer paths over an in-memory backend that fails exactly where a test says.

The end-to-end tests reach the resume and give-back paths only through random drops on the
local grid; here each is reached on purpose: the primary reader of a pipelined get dies at
chunk k, a spare reader dies, a put's writer dies after n bytes, a rename's reply is lost
after the rename happened.  ``FakeZone`` implements the ``Backend`` protocol of
:mod:`secure_irods.transfer`; :class:`secure_irods.Client` gets it through ``opener=`` where
the retry path matters (each connection is a new ``FakeConnection`` on the same zone).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from secure_irods import RetryPolicy
from secure_irods.client import Client, IrodsEnvironment
from secure_irods.errors import ExistsError, TransientError
from secure_irods.transfer import CHUNK, PIPELINE_MIN, _get_pipelined, get_temp_name
from secure_irods.policy import Deadline

KiB = 1024


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


class Dropped(TransientError):
    """The connection died (what a dropped socket becomes once classified)."""


class Refused(TransientError):
    """The zone answered one request with an error; the connection lives on."""


@dataclass
class Stat:
    path: str
    kind: str
    size: int = 0
    checksum: str = ""

    @property
    def is_collection(self) -> bool:
        return self.kind == "coll"


@dataclass
class Obj:
    data: bytearray
    checksum: str = ""
    writing: bool = False  # a replica still open for writing (intermediate)


@dataclass
class FakeZone:
    """The catalogue and bytes every connection sees, and the faults still to fire."""

    objects: dict[str, Obj] = field(default_factory=dict)
    collections: set[str] = field(default_factory=lambda: {"/z/home/u"})
    lock: threading.Lock = field(default_factory=threading.Lock)
    log: list[tuple] = field(default_factory=list)      # (event, connection, ...) in order
    connections: int = 0
    read_fault: object = None     # f(connection, reader_index, offset) -> raise to fail that read
    write_limit: int | None = None   # the next writer dies once it has this many bytes in the object
    corrupt_kept: bool = False       # the bytes kept by a dead writer are not what was sent
    refuse_write_at: int | None = None   # the write of the chunk at this offset is answered with an error
    lose_rename_reply: int = 0       # renames whose reply is lost after they happened
    drop_leftovers: int = 0          # leftovers queries (the step after a put's rename) dropped
    on_rename: object = None         # f(source, target): called before a rename, for observations

    def connect(self, io_timeout: float = 60.0) -> "FakeConnection":
        with self.lock:
            self.connections += 1
            return FakeConnection(self, self.connections)

    def put_object(self, path: str, data: bytes) -> None:
        self.objects[path] = Obj(bytearray(data), sha2(data))


class FakeReader:
    def __init__(self, conn: "FakeConnection", path: str, offset: int, index: int) -> None:
        self.conn, self.path, self.position, self.index = conn, path, offset, index
        self.offsets: list[int] = []
        self.closed = False

    def seek(self, offset: int) -> int:
        self.position = offset
        return offset

    def readinto(self, buffer) -> int:
        zone = self.conn.zone
        if self.conn.dead:
            raise Dropped("connection already dropped")
        if zone.read_fault is not None:
            try:
                zone.read_fault(self.conn.number, self.index, self.position)
            except Dropped:
                self.conn.dead = True
                raise
        data = zone.objects[self.path].data[self.position:self.position + len(buffer)]
        buffer[:len(data)] = data
        self.offsets.append(self.position)
        zone.log.append(("read", self.conn.number, self.index, self.position, len(data)))
        self.position += len(data)
        return len(data)

    def read(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[:self.readinto(buffer)])

    def close(self) -> None:
        self.closed = True


class FakeWriter:
    def __init__(self, conn: "FakeConnection", path: str, append: bool) -> None:
        self.conn, self.path = conn, path
        zone = conn.zone
        obj = zone.objects.get(path)
        if obj is None or not append:
            obj = zone.objects[path] = Obj(bytearray())
        obj.writing, obj.checksum = True, ""
        self.obj, self.position = obj, len(obj.data)
        self.replies: list[int] = []

    def seek(self, offset: int) -> int:
        self.position = offset
        return offset

    def write(self, data: bytes) -> int:
        zone = self.conn.zone
        limit = zone.write_limit
        if limit is not None and self.position + len(data) > limit:
            self.obj.data[self.position:] = data[:max(0, limit - self.position)]
            if zone.corrupt_kept:
                self.obj.data[0] ^= 0xFF
            self.obj.writing = False     # the server marks the replica of a dead upload stale
            zone.write_limit = None
            self.conn.dead = True
            zone.log.append(("writer died", self.conn.number, self.path, len(self.obj.data)))
            raise Dropped(f"connection dropped after {limit} bytes")
        self.obj.data[self.position:self.position + len(data)] = data
        self.position += len(data)
        return len(data)

    def send(self, data) -> None:
        """The zone handles a request as it arrives; its reply waits for ``reply``."""
        if self.conn.zone.refuse_write_at == self.position:   # an error reply: nothing written, offset kept
            self.conn.zone.refuse_write_at = None
            self.conn.zone.log.append(("write refused", self.conn.number, self.path, self.position))
            self.replies.append(Refused(f"write at {self.position} refused"))
            return
        self.replies.append(self.write(data))

    def reply(self) -> int:
        answer = self.replies.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        if self.conn.dead:
            raise Dropped("connection already dropped")
        self.obj.writing = False
        self.obj.checksum = sha2(bytes(self.obj.data))   # regChksum: registered on close


class FakeConnection:
    """One connection to the zone: the Backend protocol, plus what the Client calls."""

    def __init__(self, zone: FakeZone, number: int) -> None:
        self.zone, self.number = zone, number
        self.dead = False
        self.readers: list[FakeReader] = []

    def _alive(self) -> None:
        if self.dead:
            raise Dropped("connection already dropped")

    def set_timeout(self, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass

    def stat(self, path: str) -> Stat | None:
        self._alive()
        obj = self.zone.objects.get(path)
        if obj is not None and not obj.writing:
            return Stat(path, "data", len(obj.data), obj.checksum)
        if path in self.zone.collections:
            return Stat(path, "coll")
        return None

    def checksum(self, path: str) -> str:
        self._alive()
        obj = self.zone.objects[path]
        obj.checksum = sha2(bytes(obj.data))
        return obj.checksum

    def open_read(self, path: str, offset: int = 0, resource: str | None = None,
                  replica: int | None = None) -> FakeReader:
        self._alive()
        reader = FakeReader(self, path, offset, len(self.readers))
        self.readers.append(reader)
        self.zone.log.append(("open_read", self.number, path, offset))
        return reader

    def open_write(self, path: str, resource: str | None = None, append: bool = False) -> FakeWriter:
        self._alive()
        self.zone.log.append(("open_write", self.number, path, append))
        return FakeWriter(self, path, append)

    def partial(self, path: str) -> tuple[int, bool] | None:
        self._alive()
        obj = self.zone.objects.get(path)
        return None if obj is None else (len(obj.data), obj.writing)

    def rename(self, source: str, target: str) -> None:
        self._alive()
        if self.zone.on_rename is not None:
            self.zone.on_rename(source, target)
        if target in self.zone.objects:
            raise ExistsError(f"{target} exists")
        self.zone.objects[target] = self.zone.objects.pop(source)
        self.zone.log.append(("rename", self.number, source, target))
        if self.zone.lose_rename_reply:
            self.zone.lose_rename_reply -= 1
            self.dead = True
            raise Dropped("connection dropped before the rename's reply")

    def unlink(self, path: str) -> None:
        self._alive()
        self.zone.objects.pop(path, None)
        self.zone.log.append(("unlink", self.number, path))

    def leftovers(self, collection: str, pattern: str) -> list[str]:
        self._alive()
        if self.zone.drop_leftovers:
            self.zone.drop_leftovers -= 1
            self.dead = True
            raise Dropped("connection dropped during the query after the rename")
        prefix = f"{collection.rstrip('/')}/{pattern.rstrip('%')}"
        return sorted(p for p, o in self.zone.objects.items() if p.startswith(prefix) and not o.writing)


def fake_client(zone: FakeZone, tmp_path: Path, streams: int = 2) -> Client:
    env_file = tmp_path / "irods_environment.json"
    env_file.write_text(json.dumps({"irods_host": "fake", "irods_port": 1247, "irods_user_name": "u",
                                    "irods_zone_name": "z"}))
    environment = IrodsEnvironment(env_file, tmp_path / "irodsA", environ={})
    policy = RetryPolicy(attempts=5, deadline=60, initial=0, increment=0, max_wait=0, sleep=lambda s: None)
    return Client(zone.connect, environment, policy=policy, streams=streams)


class CountingHasher:
    """sha256 that tells how many bytes it has taken (the pipeline's hashed prefix)."""

    name = "sha256"

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.taken = 0
        self.cv = threading.Condition()

    def update(self, data) -> None:
        self._h.update(data)
        with self.cv:
            self.taken += len(data)
            self.cv.notify_all()

    def wait_for(self, n: int) -> None:
        with self.cv:
            assert self.cv.wait_for(lambda: self.taken >= n, timeout=10), (self.taken, n)

    def digest(self) -> bytes:
        return self._h.digest()


def pipelined(zone: FakeZone, path: str, out: Path, *, chunk: int, streams: int, spares=None):
    """Run _get_pipelined of the whole object into ``out``; returns (hasher, error or None)."""
    hasher = CountingHasher()
    size = len(zone.objects[path].data)
    primary = zone.connect()
    with open(out, "wb", buffering=0) as f:
        try:
            _get_pipelined(primary, path, f.fileno(), 0, size, hasher, deadline=Deadline(60), resource=None,
                           chunk=chunk, progress=None, spares=spares, streams=streams, flush_every=0)
        except Exception as exc:
            return hasher, exc, primary
    return hasher, None, primary


def lend(zone: FakeZone, lent: list):
    """A ``spares`` callable lending new connections to the zone (and keeping them for the test)."""
    import contextlib

    @contextlib.contextmanager
    def spares(n: int):
        conns = [zone.connect() for _ in range(n)]
        lent.extend(conns)
        yield conns

    return spares


DATA = os.urandom(1024 * KiB)   # 16 chunks of 64 KiB
PATH = "/z/home/u/obj.bin"


# ------------------------------------------------------------------ the pipeline alone


@pytest.mark.parametrize("k", [0, 1, 5, 15])
def test_primary_dying_at_chunk_k_truncates_to_the_hashed_prefix(tmp_path, k):
    zone = FakeZone()
    zone.put_object(PATH, DATA)
    chunk = 64 * KiB
    state: dict = {}

    def fault(conn, reader, offset):
        if offset == k * chunk:
            state["hasher"].wait_for(k * chunk)   # every chunk before k is hashed: the prefix is exact
            raise Dropped(f"dropped at chunk {k}")

    zone.read_fault = fault
    hasher = CountingHasher()
    state["hasher"] = hasher
    out = tmp_path / "out"
    primary = zone.connect()
    with open(out, "wb", buffering=0) as f, pytest.raises(Dropped, match=f"chunk {k}"):
        _get_pipelined(primary, PATH, f.fileno(), 0, len(DATA), hasher, deadline=Deadline(60), resource=None,
                       chunk=chunk, progress=None, spares=None, streams=1, flush_every=0)
    assert out.read_bytes() == DATA[:k * chunk]           # truncated to the hashed prefix, nothing after it
    assert hasher.taken == k * chunk and hasher.digest() == hashlib.sha256(DATA[:k * chunk]).digest()
    assert primary.readers[0].closed


def test_bytes_written_beyond_the_hashed_prefix_are_cut_off(tmp_path):
    """Reads run ahead of the hash (up to the window); when the transfer fails, the chunks
    written but not hashed are truncated away: the file holds exactly the resume point."""
    zone = FakeZone()
    zone.put_object(PATH, DATA)
    chunk, h = 64 * KiB, 4
    out = tmp_path / "out"

    class FailingHasher(CountingHasher):
        def update(self, data) -> None:
            if self.taken == h * chunk:
                deadline = Deadline(10)
                while out.stat().st_size < (h + 3) * chunk:   # the reader wrote chunks h, h+1, h+2
                    assert not deadline.expired
                    threading.Event().wait(0.001)
                raise Dropped("hash stage failed")
            super().update(data)

    hasher = FailingHasher()
    primary = zone.connect()
    with open(out, "wb", buffering=0) as f, pytest.raises(Dropped, match="hash stage"):
        _get_pipelined(primary, PATH, f.fileno(), 0, len(DATA), hasher, deadline=Deadline(60), resource=None,
                       chunk=chunk, progress=None, spares=None, streams=1, flush_every=0)
    assert out.read_bytes() == DATA[:h * chunk] and hasher.taken == h * chunk


def test_spare_dying_gives_its_chunk_back_and_the_others_finish(tmp_path):
    zone = FakeZone()
    zone.put_object(PATH, DATA)
    chunk = 64 * KiB
    failed: list[int] = []
    gate = threading.Event()

    def fault(conn, reader, offset):
        if conn != 1 and not failed:      # the spare's first read: it dies holding that chunk
            failed.append(offset)
            gate.set()
            raise Dropped("spare dropped")
        if conn == 1 and offset > 0:      # the primary waits until the spare has taken and lost one
            assert gate.wait(10)

    zone.read_fault = fault
    lent: list = []
    hasher, error, primary = pipelined(zone, PATH, tmp_path / "out", chunk=chunk, streams=2, spares=lend(zone, lent))
    assert error is None
    assert (tmp_path / "out").read_bytes() == DATA and hasher.digest() == hashlib.sha256(DATA).digest()
    (offset,) = failed
    assert offset in primary.readers[0].offsets          # given back, and read again by the primary
    assert lent[0].readers[0].offsets == [] and lent[0].readers[0].closed   # the spare retired
    reads = [e[3] for e in zone.log if e[0] == "read"]
    assert sorted(reads) == list(range(0, len(DATA), chunk))   # every chunk read exactly once in the end


def test_the_primary_reads_while_a_spare_is_still_connecting(tmp_path):
    """A spare's connection and log-in happen beside the first chunks, not before them."""
    import contextlib

    zone = FakeZone()
    zone.put_object(PATH, DATA)
    chunk = 64 * KiB
    primary_read_3 = threading.Event()
    lent: list[bool] = []

    def fault(conn, reader, offset):
        if conn == 1 and offset == 3 * chunk:
            primary_read_3.set()

    @contextlib.contextmanager
    def slow_spares(n: int):
        lent.append(primary_read_3.wait(5))   # the spare's log-in ends only once the primary has read on
        yield [zone.connect()] if lent[-1] else []

    zone.read_fault = fault
    hasher, error, primary = pipelined(zone, PATH, tmp_path / "out", chunk=chunk, streams=2, spares=slow_spares)
    assert error is None and lent == [True]
    assert (tmp_path / "out").read_bytes() == DATA and hasher.digest() == hashlib.sha256(DATA).digest()
    reads = sorted(e[3] for e in zone.log if e[0] == "read")
    assert reads == list(range(0, len(DATA), chunk))     # each chunk read once, by whichever stream took it


def test_primary_dying_fails_the_get_even_with_a_healthy_spare(tmp_path):
    zone = FakeZone()
    zone.put_object(PATH, DATA)
    chunk = 64 * KiB

    def fault(conn, reader, offset):
        if conn == 1 and offset >= 4 * chunk:
            raise Dropped("primary dropped")

    zone.read_fault = fault
    lent: list = []
    hasher, error, primary = pipelined(zone, PATH, tmp_path / "out", chunk=chunk, streams=2, spares=lend(zone, lent))
    assert isinstance(error, Dropped)
    kept = (tmp_path / "out").read_bytes()
    assert kept == DATA[:len(kept)] and len(kept) % chunk == 0 and len(kept) == hasher.taken < len(DATA)
    assert lent[0].readers[0].closed


# ------------------------------------------------------------------ through the Client: retries resume


BIG = os.urandom(PIPELINE_MIN + 3 * CHUNK + 12345)   # pipelined: 7 chunks of 8 MiB, the last short


def test_get_retried_after_the_primary_died_resumes_at_the_hashed_prefix(tmp_path):
    zone = FakeZone()
    zone.put_object(PATH, BIG)
    k = 3
    hashed = [0]

    def progress(n):
        hashed[0] += n

    def fault(conn, reader, offset):
        if conn == 1 and offset == k * CHUNK:
            deadline = Deadline(10)
            while hashed[0] < k * CHUNK:      # progress is reported after each chunk is hashed
                assert not deadline.expired
                threading.Event().wait(0.001)
            raise Dropped("primary dropped at chunk 3")

    zone.read_fault = fault
    target = tmp_path / "got.bin"
    with fake_client(zone, tmp_path, streams=1) as client:
        result = client.get(PATH, target, progress=progress)
    assert target.read_bytes() == BIG and result.checksum == sha2(BIG)
    assert result.resumed_from == k * CHUNK
    opens = [e for e in zone.log if e[0] == "open_read"]
    assert [(c, off) for _, c, _, off in opens] == [(1, 0), (2, k * CHUNK)]   # 2nd connection starts there
    second_reads = [e[3] for e in zone.log if e[0] == "read" and e[1] == 2]
    assert second_reads == list(range(k * CHUNK, len(BIG), CHUNK))           # no byte read twice
    assert not get_temp_name(PATH, sha2(BIG), target).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".got")) == []


def test_get_with_a_dying_spare_needs_no_retry(tmp_path):
    zone = FakeZone()
    zone.put_object(PATH, BIG)

    def fault(conn, reader, offset):
        if conn == 2:
            raise Dropped("spare dropped")

    zone.read_fault = fault
    target = tmp_path / "got.bin"
    with fake_client(zone, tmp_path, streams=2) as client:
        result = client.get(PATH, target)
        assert client.connections_opened == 2            # the client's and one spare: no reconnection
    assert target.read_bytes() == BIG and result.resumed_from == 0


def test_get_whose_resumed_prefix_is_corrupt_is_fetched_again_whole(tmp_path):
    zone = FakeZone()
    zone.put_object(PATH, BIG)
    target = tmp_path / "got.bin"
    temp = get_temp_name(PATH, sha2(BIG), target)
    temp.write_bytes(b"\0" * (2 * CHUNK))   # a killed run's temporary file, but not these bytes
    with fake_client(zone, tmp_path, streams=1) as client:
        result = client.get(PATH, target)
    assert target.read_bytes() == BIG and result.resumed_from == 0
    assert [off for e, _, _, off in [x for x in zone.log if x[0] == "open_read"]] == [2 * CHUNK, 0]
    assert not temp.exists()


# ------------------------------------------------------------------ puts


def _never_partial_at_the_name(zone: FakeZone, name: str, data: bytes):
    """Check at every rename that the final name holds nothing or all of ``data``."""
    seen = []

    def check(source, target):
        obj = zone.objects.get(source)
        seen.append((source, target))
        assert target != name or (obj is not None and bytes(obj.data) == data and obj.checksum == sha2(data))
        held = zone.objects.get(name)
        assert held is None or bytes(held.data) == data

    zone.on_rename = check
    return seen


@pytest.mark.parametrize("n", [1, CHUNK, CHUNK + 777, 3 * CHUNK - 1])
def test_put_retried_after_its_writer_died_appends_after_the_kept_bytes(tmp_path, n):
    data = os.urandom(3 * CHUNK + 100)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    zone = FakeZone(write_limit=n)
    renames = _never_partial_at_the_name(zone, "/z/home/u/out.bin", data)
    with fake_client(zone, tmp_path) as client:
        result = client.put(src, "/z/home/u/out.bin")
    assert result.resumed_from == n and result.checksum == sha2(data)
    assert bytes(zone.objects["/z/home/u/out.bin"].data) == data
    assert [p for p in zone.objects if "/.out.bin.part-" in p] == []      # the temporary is gone
    (died,) = [e for e in zone.log if e[0] == "writer died"]
    temp = died[2]
    assert renames == [(temp, "/z/home/u/out.bin")]
    writes = [e for e in zone.log if e[0] == "open_write"]
    assert [(c, p, append) for _, c, p, append in writes] == [(1, temp, False), (2, temp, True)]


def test_put_whose_chunk_is_refused_while_the_next_is_in_flight_is_redone_whole(tmp_path):
    """Chunk k+1 is sent before chunk k's reply: when k is refused, k+1 lands at k's offset.

    The attempt fails on k's reply; the retry resumes after the bytes the zone holds, the
    whole-object checksum refuses them, and the upload is redone from zero: the name only
    ever gets the right bytes.
    """
    data = os.urandom(3 * CHUNK + 100)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    zone = FakeZone(refuse_write_at=CHUNK)
    renames = _never_partial_at_the_name(zone, "/z/home/u/out.bin", data)
    with fake_client(zone, tmp_path) as client:
        result = client.put(src, "/z/home/u/out.bin")
    assert bytes(zone.objects["/z/home/u/out.bin"].data) == data and result.checksum == sha2(data)
    assert result.resumed_from == 0 and len(renames) == 1
    (refused,) = [e for e in zone.log if e[0] == "write refused"]
    assert refused[3] == CHUNK
    assert [p for p in zone.objects if "/.out.bin.part-" in p] == []


def test_put_whose_kept_bytes_are_corrupt_is_redone_whole(tmp_path):
    data = os.urandom(2 * CHUNK + 5)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    zone = FakeZone(write_limit=CHUNK, corrupt_kept=True)
    _never_partial_at_the_name(zone, "/z/home/u/out.bin", data)
    with fake_client(zone, tmp_path) as client:
        result = client.put(src, "/z/home/u/out.bin")
    assert result.resumed_from == 0 and bytes(zone.objects["/z/home/u/out.bin"].data) == data
    writes = [(c, append) for e, c, p, append in [x for x in zone.log if x[0] == "open_write"]]
    assert writes == [(1, False), (2, True), (2, False)]   # the resumed upload failed its check: whole again
    assert [p for p in zone.objects if "/.out.bin.part-" in p] == []


def test_put_leaves_another_jobs_upload_in_progress_alone(tmp_path):
    data = os.urandom(1000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    zone = FakeZone()
    busy = "/z/home/u/.out.bin.part-otherjob"
    zone.objects[busy] = Obj(bytearray(b"half"), writing=True)
    stale = "/z/home/u/.out.bin.part-killedrun"
    zone.objects[stale] = Obj(bytearray(b"old"))
    with fake_client(zone, tmp_path) as client:
        client.put(src, "/z/home/u/out.bin")
    assert busy in zone.objects and stale not in zone.objects
    assert bytes(zone.objects["/z/home/u/out.bin"].data) == data


def test_put_with_force_whose_rename_reply_was_lost_finds_its_object(tmp_path):
    data = os.urandom(CHUNK + 1)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    zone = FakeZone(lose_rename_reply=1)
    zone.put_object("/z/home/u/out.bin", b"an older version")
    with fake_client(zone, tmp_path) as client:
        result = client.put(src, "/z/home/u/out.bin", force=True)
    assert bytes(zone.objects["/z/home/u/out.bin"].data) == data and result.checksum == sha2(data)
    assert [p for p in zone.objects if "/.out.bin.part-" in p] == []
    assert len([e for e in zone.log if e[0] == "rename"]) == 1


def test_put_whose_rename_reply_was_lost_succeeds(tmp_path):
    """The rename happened; only its reply was lost.  The retry finds the object it renamed
    there: the put succeeded and must say so rather than 'exists'."""
    data = os.urandom(CHUNK + 1)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    zone = FakeZone(lose_rename_reply=1)
    with fake_client(zone, tmp_path) as client:
        result = client.put(src, "/z/home/u/out.bin")
    assert bytes(zone.objects["/z/home/u/out.bin"].data) == data and result.checksum == sha2(data)
    assert [p for p in zone.objects if "/.out.bin.part-" in p] == []
    assert not result.skipped and len([e for e in zone.log if e[0] == "rename"]) == 1


def test_put_dropped_after_its_rename_succeeds(tmp_path):
    """Regression (CI, 10 % drops): the rename's reply came back, then the next step's query
    was dropped; the retry finds the object this put renamed: success, not 'exists'."""
    data = os.urandom(1000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    zone = FakeZone(drop_leftovers=1)
    with fake_client(zone, tmp_path) as client:
        result = client.put(src, "/z/home/u/out.bin")
    assert bytes(zone.objects["/z/home/u/out.bin"].data) == data and result.checksum == sha2(data)
    assert len([e for e in zone.log if e[0] == "rename"]) == 1


def test_put_without_force_onto_an_identical_object_still_says_exists(tmp_path):
    """The lost-reply rule applies only to this process's own rename: an object that was
    there before is another upload, even with the same bytes."""
    data = os.urandom(1000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    zone = FakeZone()
    zone.put_object("/z/home/u/out.bin", data)
    with fake_client(zone, tmp_path) as client, pytest.raises(ExistsError):
        client.put(src, "/z/home/u/out.bin")
