"""The journal next to a plan (``PLAN.journal``) and the one-rebalance-per-collection lock.

Journal: JSON lines appended and fsynced, ``{"i": 3, "state": "done", ...}`` or a run
header ``{"run": ..., "host": ..., "pid": ...}``.  ``done`` and ``skipped`` are final:
a later ``apply`` never redoes them; ``begin`` without an end is a half-done move, which
``apply`` finishes from what the zone says (the journal is never trusted to say what the
zone holds).  A line cut short by a kill is ignored.

Lock: two layers.  ``PLAN.lock`` is ``flock``-ed (the kernel frees it when the holder
dies); the collection carries an AVU ``seisstore.rebalance.lock = HOST PID START TOKEN``
(one rebalance per collection, whichever plan, whichever node).  A lock whose holder is
gone (same host, no such process, or a process started at another time) is taken over;
a holder on another host is only taken over with ``force`` (the admin says it is dead).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from secure_irods.errors import PermanentError

if TYPE_CHECKING:
    from secure_irods.client import Client

__all__ = ["Journal", "CollectionLock", "LockedError", "FINAL"]

FINAL = ("done", "skipped")
LOCK_ATTR = "seisstore.rebalance.lock"


class Journal:
    def __init__(self, plan_path: str | Path) -> None:
        self.path = Path(f"{plan_path}.journal")
        self._lock = threading.Lock()
        self._fd: int | None = None

    def states(self) -> dict[int, dict]:
        """Last record of each move, and the number of ``done`` records of each (``"dones"``)."""
        out: dict[int, dict] = {}
        dones: dict[int, int] = {}
        for rec in self._records():
            if "i" not in rec:
                continue
            out[rec["i"]] = rec
            if rec.get("state") == "done":
                dones[rec["i"]] = dones.get(rec["i"], 0) + 1
        for i, n in dones.items():
            out[i]["dones"] = n
        return out

    def copied(self) -> int:
        """Bytes replicated by every run so far (a trim-only move copies none)."""
        return sum(rec.get("moved", 0) for rec in self._records() if rec.get("state") == "done")

    def _records(self) -> list[dict]:
        """Every whole record, in order (a line cut short by a kill is skipped)."""
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def runs(self) -> list[dict]:
        """The header of every ``apply`` run, oldest first."""
        return [rec for rec in self._records() if "run" in rec]

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if size:
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":      # a record cut short by a kill: start a new line
                    os.write(self._fd, b"\n")

    def write(self, **record: object) -> None:
        """Append one record, fsynced (between :meth:`open` and :meth:`close`)."""
        if self._fd is None:
            raise RuntimeError(f"journal {self.path} is not open")
        record.setdefault("t", round(time.time(), 3))
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, data)
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LockedError(PermanentError):
    """Another rebalance of this collection is running."""

    exit_code = 1


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    start: str
    token: str

    @classmethod
    def me(cls) -> "Holder":
        return cls(socket.gethostname(), os.getpid(), _start_time(os.getpid()), uuid.uuid4().hex[:12])

    @classmethod
    def parse(cls, text: str) -> "Holder | None":
        parts = text.split()
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3])

    def __str__(self) -> str:
        return f"{self.host} {self.pid} {self.start} {self.token}"

    def alive(self) -> bool | None:
        """True/False on this host; None when it runs elsewhere (cannot tell)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        started = _start_time(self.pid)
        return not (self.start != "-" and started != "-" and started != self.start)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (guards against a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "-"


class CollectionLock:
    """``with CollectionLock(client, coll, plan_path):`` -- see the module docstring."""

    def __init__(self, client: "Client", collection: str, plan_path: str | Path, *, force: bool = False) -> None:
        self.client = client
        self.collection = collection
        self.file = Path(f"{plan_path}.lock")
        self.force = force
        self.me = Holder.me()
        self.took_over: list[str] = []
        self._fd: int | None = None

    def holders(self) -> list[str]:
        return self.client.collection_avus(self.collection).get(LOCK_ATTR, [])

    def acquire(self) -> "CollectionLock":
        self._fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = Path(self.file).read_text().strip()
            os.close(self._fd)
            self._fd = None
            raise LockedError(f"another apply of this plan is running ({held or 'holder unknown'})") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{self.me}\n".encode())
        try:
            self._take_avu()
        except BaseException:
            self._unlock_file()
            raise
        return self

    def _take_avu(self) -> None:
        stale = []
        for value in self.holders():
            holder = Holder.parse(value)
            alive = holder.alive() if holder else False
            if holder is not None and (alive or (alive is None and not self.force)):
                raise LockedError(f"{self.collection} is being rebalanced by {holder.host} pid {holder.pid}"
                                  + ("" if alive else " (another host: --force-lock if it is gone)"))
            stale.append(value)
        self.client.change_collection_avus(self.collection, remove=[(LOCK_ATTR, v) for v in stale],
                                           add=[(LOCK_ATTR, str(self.me))])
        self.took_over = [str(Holder.parse(v) or v) for v in stale]
        now = self.holders()
        if now != [str(self.me)]:   # another process took it at the same moment: the smallest token wins
            others = [Holder.parse(v) for v in now if v != str(self.me)]
            if any(o and o.alive() is not False and o.token < self.me.token for o in others):
                self.client.change_collection_avus(self.collection, remove=[(LOCK_ATTR, str(self.me))])
                raise LockedError(f"{self.collection} is being rebalanced by another process")

    def release(self) -> None:
        try:
            self.client.change_collection_avus(self.collection, remove=[(LOCK_ATTR, str(self.me))])
        finally:
            self._unlock_file()

    def _unlock_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "CollectionLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
