"""Where replica files go in a vault, so that no replica's file is ever written over by another's.

The physical path of a replica is its logical path grafted onto the vault (``physical_path``).
Two rules of the server (server/core/src/physPath.cpp) keep that mapping safe:

* a new replica's file is created exclusively (the unixfilesystem plugin opens with
  ``O_CREAT | O_EXCL``); when its path is taken, ``resolveDupFilePath`` gives it another
  one: the path plus ``.<replica number>`` (``place``);
* a rename moves the files of the renamed replicas that live in their vault to the path of
  the new name (``syncDataObjPhyPath``, ``syncCollPhyPath``); a replica registered outside
  its vault keeps its path (``isInVault``) (``FileMoves``).

A path is *taken* when a file is there or a replica's row names it (``chkOrphanFile`` asks
the catalogue the same question).  Unlike the server, the grid never moves a file it finds
in the way, registered or not (the server moves an orphan to ``<vault>/orphan/`` and a
registered file to ``<vault>/replica/``, re-registering it): replication here creates a
replica's file before its row is committed, so a file without a row may be about to be
registered, and moving a registered file changes another object's row as a side effect of
this one's create.  The new replica goes beside the file instead, which is as safe.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from .catalog import Catalog
from .errors import fail
from .resources import physical_path

T = TypeVar("T")

MAX_TRIES = 100   # create_physical_file_for_replica's maximum_retries


def in_vault(data_path: str | Path, vault: str) -> bool:
    """isInVault: a file the resource placed itself (under its vault) follows renames; one registered elsewhere stays."""
    return bool(vault) and Path(data_path).is_relative_to(vault)


def candidates(phys: Path, repl_num: int) -> Iterator[Path]:
    """The paths a replica may take, best first: the graft path, resolveDupFilePath's ``<path>.<replica number>``,
    then ``<path>.<replica number>.<k>`` (the server appends ``.<replica number>`` again on each retry)."""
    yield phys
    dup = phys.with_name(f"{phys.name}.{repl_num}")
    yield dup
    for k in range(1, MAX_TRIES - 1):
        yield dup.with_name(f"{dup.name}.{k}")


def is_free(cat: Catalog, path: Path) -> bool:
    """No file there (registered or not) and no replica registered at it (its file may be missing for now)."""
    return not os.path.lexists(path) and not cat.path_registered(str(path))


def place(cat: Catalog, phys: Path, repl_num: int, make: Callable[[Path], T]) -> tuple[Path, T]:
    """Create a replica's file at the first free candidate path; returns the path and what ``make`` returned.

    ``make`` must create the file exclusively (``O_EXCL``, ``os.link``) and raise ``FileExistsError`` if a file
    appeared there since the check: the next candidate is tried, as the server retries on ``EEXIST``."""
    for path in candidates(phys, repl_num):
        if not is_free(cat, path):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return path, make(path)
        except FileExistsError:
            continue
    raise fail("UNIX_FILE_CREATE_ERR", f"no free physical path for {phys}", errno_=errno.EEXIST)


def create_exclusive(path: Path) -> int:
    """A new empty replica file, open for reading and writing; never one that is already there."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)


def move_exclusive(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (then ``FileExistsError``): a hard link is the atomic
    no-clobber rename POSIX offers; a file system without hard links gets a checked rename."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "file exists", str(dst)) from None
        os.rename(src, dst)
        return
    try:
        os.unlink(src)
    except BaseException:
        os.unlink(dst)
        raise


class FileMoves:
    """The physical renames that go with one catalogue change.

    They are made inside its transaction, after the rows changed; ``undo`` puts every file back
    if the transaction rolls back (syncDataObjPhyPathS renames the file back when registering
    the new path fails), so catalogue and vault agree whichever way the change ends."""

    def __init__(self, cat: Catalog) -> None:
        self.cat = cat
        self.done: list[tuple[Path, Path]] = []

    def follow(self, data_path: str, vault: str, target: Path, repl_num: int) -> Path:
        """Where a renamed replica's file ends up: ``target``, or beside it when taken; where it was when it is
        outside its vault, already there, or missing (its path stays registered, so no new file lands on it)."""
        old = Path(data_path)
        if not in_vault(old, vault) or old == target or not os.path.lexists(old):
            return old
        try:
            new, _ = place(self.cat, target, repl_num, lambda path: move_exclusive(old, path))
        except OSError as e:    # the client gets the plugin's error; the caller's transaction rolls back
            raise fail("UNIX_FILE_RENAME_ERR", f"cannot move {old} to {target}: {e.strerror}",
                       errno_=e.errno or 0) from None
        self.done.append((old, new))
        return new

    def sync(self, placements: Iterable[sqlite3.Row]) -> None:
        """syncDataObjPhyPathS for each replica (rows of ``Catalog.placements``, read after the rename): its file
        follows its new logical path and the row records where the file went."""
        for row in placements:
            vault = row["resc_def_path"]
            new = self.follow(row["data_path"], vault, physical_path(vault, row["logical"]), row["data_repl_num"])
            if str(new) != row["data_path"]:
                self.cat.update_replica(row["data_id"], row["data_repl_num"], data_path=str(new))

    def undo(self) -> None:
        for old, new in reversed(self.done):
            os.replace(new, old)
        self.done.clear()


@contextlib.contextmanager
def renaming(cat: Catalog) -> Iterator[FileMoves]:
    """One catalogue transaction and the file moves that go with it: the moves are undone if it does not commit."""
    moves = FileMoves(cat)
    try:
        with cat.transaction():
            yield moves
    except BaseException:
        moves.undo()
        raise
