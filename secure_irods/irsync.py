"""``secure-irsync``: ``irsync`` with our retries, throttle, atomic targets and verification.

Same arguments as irsync 4.3: iRODS paths are written ``i:path``; local -> zone, zone ->
local and zone -> zone; ``-r`` for directories and collections.  A file is transferred
when the target is missing or differs in size or checksum (``-s``: size only); identical
ones cost no bytes.  As irsync, ``secure-irsync -r dir i:coll`` always syncs the *contents*
of ``dir`` into ``coll`` (no ``coll/dir``), whether ``coll`` exists or not.  Zone -> zone
copies pass through a private temporary file on this node (verified at both ends).

A batch never stops for one item: a file that fails permanently is reported on one line
and the others go on; the exit code is then 3.  A transient failure outlasting the
deadline stops the run with 2 (resubmit: a rerun transfers only what still differs).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import click

from .cli import CONTEXT, _Job, _replicas, _setup_logging, size_text, version_option
from .errors import InvalidInputError, NotFoundError, PermanentError, SecureIrodsError
from .exitcodes import run
from .transfer import _same

__all__ = ["irsync", "irsync_main"]

PROG = "secure-irsync"


class _Pair:
    """One source file and its target; ``kind`` is put, get or copy."""

    def __init__(self, kind: str, source: str, target: str, size: int, checksum: str = "", mtime: float = 0.0):
        self.kind, self.source, self.target, self.size, self.checksum, self.mtime = \
            kind, source, target, size, checksum, mtime


def _local_files(root: Path, skip_links: bool) -> Iterator[tuple[Path, str]]:
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        if skip_links:
            dirs[:] = [d for d in dirs if not (Path(directory) / d).is_symlink()]
        for name in sorted(files):
            path = Path(directory) / name
            if not (skip_links and path.is_symlink()):
                yield path, path.relative_to(root).as_posix()


def _plan(client: Any, sources: tuple[str, ...], dest: str, recursive: bool, skip_links: bool) -> list[_Pair]:
    """The (source, target) pairs irsync's rules give: a single directory source syncs its contents."""
    to_zone = dest.startswith("i:")
    dest_path = client.resolve(dest[2:]) if to_zone else dest
    if to_zone:
        dest_stat = client.stat(dest_path)
        dest_is_dir = dest_stat is not None and dest_stat.is_collection
    else:
        dest_is_dir = Path(dest).is_dir()
    if len(sources) > 1 and not dest_is_dir:
        raise InvalidInputError(f"target {dest} must be an existing directory or collection for several sources")
    join = (lambda a, b: f"{a.rstrip('/')}/{b}") if to_zone else (lambda a, b: str(Path(a) / b))
    pairs: list[_Pair] = []
    for source in sources:
        from_zone = source.startswith("i:")
        kind = "copy" if from_zone and to_zone else "get" if from_zone else "put"
        if from_zone:
            path = client.resolve(source[2:])
            stat = client.stat(path)
            if stat is None:
                raise NotFoundError(f"no such data object or collection: {path}")
            name = path.rstrip("/").rsplit("/", 1)[1]
            if not stat.is_collection:
                target = join(dest_path, name) if dest_is_dir else dest_path
                pairs.append(_Pair(kind, path, target, stat.size, stat.checksum))
                continue
            if not recursive:
                raise InvalidInputError(f"{path} is a collection: use -r")
            top = dest_path if len(sources) == 1 else join(dest_path, name)
            for obj in client.scan(path):
                pairs.append(_Pair(kind, obj.path, join(top, obj.path[len(path.rstrip("/")) + 1:]), obj.size,
                                   obj.checksum))
            continue
        local = Path(source)
        if skip_links and local.is_symlink():
            continue
        if not local.exists():
            raise NotFoundError(f"no such local file or directory: {source}")
        if local.is_file():
            target = join(dest_path, local.resolve().name) if dest_is_dir else dest_path
            pairs.append(_Pair(kind, str(local), target, local.stat().st_size, mtime=local.stat().st_mtime))
            continue
        if not recursive:
            raise InvalidInputError(f"{local} is a directory: use -r")
        top = dest_path if len(sources) == 1 else join(dest_path, local.resolve().name)
        for path, relative in _local_files(local, skip_links):
            pairs.append(_Pair(kind, str(path), join(top, relative), path.stat().st_size, mtime=path.stat().st_mtime))
    return pairs


def _differs(client: Any, pair: _Pair, size_only: bool) -> bool:
    """irsync's test: target missing, or another size, or (unless -s) another checksum."""
    if pair.kind == "get":
        local = Path(pair.target)
        if not local.is_file() or local.stat().st_size != pair.size:
            return True
        return not size_only and not (pair.checksum and _same(local, pair.size, pair.checksum))
    stat = client.stat(pair.target)
    if stat is None or stat.is_collection or stat.size != pair.size:
        return True
    if size_only:
        return False
    if pair.kind == "put":
        return not (stat.checksum and _same(Path(pair.source), pair.size, stat.checksum))
    return not (stat.checksum and stat.checksum == pair.checksum)


def _transfer(job: _Job, client: Any, pair: _Pair, options: dict[str, Any], advance: Any, scratch: Path) -> Any:
    resource = options["resource"]
    if pair.kind == "get":
        Path(pair.target).parent.mkdir(parents=True, exist_ok=True)
        return client.get_many([(pair.source, pair.target)], force=True, sync=True, progress=advance,
                               deadline=job.deadline)[0]
    client.mkdir(pair.target.rsplit("/", 1)[0] or "/")
    before = {h.split(";")[0] for _, h in _replicas(client, pair.target)} if options["all_replicas"] else set()
    if pair.kind == "put":
        result = client.put_many([(pair.source, pair.target)], force=True, sync=True, resource=resource,
                                 progress=advance, deadline=job.deadline)[0]
    else:   # zone -> zone through a private temporary file, verified on the way in and on the way out
        local = scratch / "copy"
        client.get_many([(pair.source, local)], force=True, deadline=job.deadline)
        try:
            result = client.put_many([(local, pair.target)], force=True, sync=True, resource=resource,
                                     progress=advance, deadline=job.deadline)[0]
        finally:
            local.unlink(missing_ok=True)
    if before and not result.skipped:
        now = {h.split(";")[0] for _, h in _replicas(client, pair.target)}
        for root in sorted(before - now):
            client.replicate(pair.target, root, deadline=job.deadline)
    return result


@click.command(context_settings=CONTEXT)
@click.option("-r", "--recursive", is_flag=True, help="Directories and collections, recursively.")
@click.option("-a", "--all", "all_replicas", is_flag=True,
              help="Zone targets: every resource that held a replica of a changed object gets the new content.")
@click.option("-K", "--verify_checksum", "verify", is_flag=True, help="Accepted: every transfer is verified anyway.")
@click.option("-s", "--size", "size_only", is_flag=True, help="Compare sizes only, not checksums.")
@click.option("-l", "--list", "list_only", is_flag=True, help="List what would be transferred (and its size); transfer nothing.")
@click.option("-N", "--num_threads", "threads", type=click.IntRange(min=0), help="Connections per get of 32 MiB or more.")
@click.option("-R", "--dest_resc", "resource", help="Resource the zone targets are written to.")
@click.option("-v", "--verbose", count=True, help="One line per file; -vv also logs each retry.")
@click.option("-V", "--very_verbose", is_flag=True, help="As -vv.")
@click.option("--ignore-symlinks", "--link", "ignore_symlinks", is_flag=True, help="Skip local symbolic links.")
@click.option("--age", type=click.FloatRange(min=0, min_open=True), metavar="MINUTES",
              help="Sync only local sources modified within this many minutes.")
@click.option("--retries", type=click.IntRange(min=0), help="Retries after the first attempt that gets no answer.")
@click.option("--deadline", type=click.FloatRange(min=0, min_open=True), help="Seconds for the whole run [600].")
@click.option("--max-connections", type=click.IntRange(min=0), help="Node-wide connection cap (0: no throttle).")
@click.option("--progress-interval", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Off a terminal: one progress line every this many seconds (0: none).")
@click.option("-P", "--progress", is_flag=True, help="One line per file transferred.")
@version_option
@click.argument("paths", nargs=-1, required=True)
def irsync(paths: tuple[str, ...], **options: Any) -> None:
    """secure-irsync [options] source... target   (iRODS paths as i:path)

    Synchronise local -> zone, zone -> local or zone -> zone: transfer what is missing or
    differs in size or checksum, verified and atomic.
    """
    _setup_logging(PROG, options["verbose"] + (2 if options["very_verbose"] else 0))
    if options["verify"]:
        click.echo(f"{PROG}: note: -K: done anyway: every transfer is checksum-verified", err=True)
    if len(paths) < 2:
        raise InvalidInputError("give at least one source and a target")
    sources, dest = paths[:-1], paths[-1]
    if len({s.startswith("i:") for s in sources}) > 1:
        raise InvalidInputError("sources must all be local or all be iRODS paths (i:...)")
    if not dest.startswith("i:") and not sources[0].startswith("i:"):
        raise InvalidInputError("one side must be an iRODS path, written i:path")
    if options["age"] is not None and sources[0].startswith("i:"):
        raise InvalidInputError("--age applies to local sources only here")
    job = _Job(PROG, dict(options, renew=False, ticket=None))
    with job.client as client, tempfile.TemporaryDirectory(prefix="secure-irsync-") as scratch:
        pairs = _plan(client, sources, dest, options["recursive"], options["ignore_symlinks"])
        if options["age"] is not None:
            oldest = time.time() - 60 * options["age"]
            pairs = [p for p in pairs if p.mtime >= oldest]
        if options["list_only"]:
            for pair in pairs:
                if _differs(client, pair, options["size_only"]):
                    click.echo(f"   {pair.source}   {pair.size}   N")
            return
        moved = identical = 0
        failed: list[str] = []
        with job.progress(sum(p.size for p in pairs)) as advance:
            for pair in pairs:
                if options["size_only"] and not _differs(client, pair, True):
                    identical += 1
                    advance(pair.size)
                    continue
                started = time.monotonic()
                try:
                    result = _transfer(job, client, pair, options, advance, Path(scratch))
                except SecureIrodsError as exc:
                    if not isinstance(exc, PermanentError):
                        raise
                    failed.append(pair.source)
                    click.echo(f"{PROG}: {pair.source}: {type(exc).__name__}: {exc.message}", err=True)
                    continue
                if result.skipped:
                    identical += 1
                    advance(pair.size)
                else:
                    moved += result.size
                job.finished(result, time.monotonic() - started)
        click.echo(f"{PROG}: {len(pairs) - identical - len(failed)} transferred ({size_text(moved)}), "
                   f"{identical} identical, {len(failed)} failed", err=True)
        if failed:
            raise PermanentError(f"{len(failed)} of {len(pairs)} files failed (first: {failed[0]})")


def irsync_main(args: list[str] | None = None) -> None:
    """Console script ``secure-irsync``."""
    sys.exit(run(irsync, PROG, args))
