"""``secure-iget`` and ``secure-iput``: drop-in replacements for ``iget``/``iput`` in job scripts.

Same positional arguments and the shared flags (``-f -K -r -N -R -v --retries``), plus
``--deadline`` and ``--max-connections``.  Exit codes, one meaning each, for a scheduler:

* 0 done;
* 1 bad options or environment (fix the job);
* 2 a transient failure still there at the deadline (zone refusing, connections dropped:
  resubmit later);
* 3 a permanent transfer failure (no such object, exists without ``-f``, permission,
  checksum mismatch);
* 7 authentication refused (never retried, so an account is not locked).

Every error is one line on stderr, never a traceback.  A ``rich`` progress bar is shown
on stderr only when it is a terminal.  ``-K`` is accepted for compatibility: every
transfer is checksum-verified anyway.  ``-N`` is accepted and ignored: one stream per
connection keeps the node within its connection budget.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from .errors import InvalidInputError, LogFilter, NotFoundError
from .exitcodes import run
from .policy import RetryPolicy
from .throttle import Throttle

__all__ = ["iget_main", "iput_main", "iget", "iput"]

logger = logging.getLogger("secure_irods.cli")

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("-f", "force", is_flag=True, help="Overwrite an existing target."),
        click.option("-K", "verify", is_flag=True, help="Verify checksums (always done; accepted for iget/iput)."),
        click.option("-r", "recursive", is_flag=True, help="Transfer collections/directories recursively."),
        click.option("-N", "threads", type=click.IntRange(min=0), help="Accepted for compatibility; ignored."),
        click.option("-R", "resource", help="Resource to read from (get) or write to (put)."),
        click.option("-v", "verbose", count=True, help="One line per file; -vv also logs each retry."),
        click.option("--retries", type=click.IntRange(min=0),
                     help="Retries after the first attempt that get no answer from the zone "
                          "[env: SECURE_IRODS_RETRIES, attempts, 8; at most 4x as many in all]."),
        click.option("--deadline", type=click.FloatRange(min=0, min_open=True),
                     help="Seconds after which no new attempt starts; the whole command shares it [600]."),
        click.option("--progress-interval", type=click.FloatRange(min=0), default=30.0, show_default=True,
                     help="Off a terminal (a batch job's log): one progress line every this many seconds (0: none)."),
        click.option("--max-connections", type=click.IntRange(min=0),
                     help="Node-wide connection cap, shared by all processes (0: no throttle) [env: SECURE_IRODS_MAX_CONNECTIONS, 4]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


class _Job:
    """The one context object: a connected client, a shared deadline, progress and verbosity."""

    def __init__(self, prog: str, verbose: int, retries: int | None, deadline: float | None,
                 max_connections: int | None, progress_interval: float = 30.0) -> None:
        from .client import connect

        self.prog, self.verbose, self.progress_interval = prog, verbose, progress_interval
        overrides: dict[str, Any] = {}
        if retries is not None:
            overrides["attempts"] = retries + 1
        if deadline is not None:
            overrides["deadline"] = deadline
        self.policy = RetryPolicy.from_env(**overrides)
        throttle: Throttle | bool | None = None
        if max_connections == 0:
            throttle = False
        elif max_connections is not None:
            throttle = Throttle(max_connections)
        self.deadline = self.policy.start_deadline()   # one for the whole command, listings included
        self.client = connect(policy=self.policy, throttle=throttle, deadline=self.deadline)

    @contextlib.contextmanager
    def progress(self, total: int) -> Iterator[Callable[[int], None]]:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        if not console.is_terminal:
            yield _PeriodicLine(self.prog, total, self.progress_interval)
            return
        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                      disable=not console.is_terminal or self.verbose > 0) as bar:
            task = bar.add_task(self.prog, total=total)
            yield lambda n: bar.advance(task, n)

    def report(self, results: list[Any]) -> None:
        if self.verbose:
            for r in results:
                state = "skipped (identical)" if r.skipped else f"{r.size} bytes"
                click.echo(f"   {r.destination}  {state}")


class _PeriodicLine:
    """Byte progress for batch logs: one stderr line every ``interval`` seconds, none if 0."""

    def __init__(self, prog: str, total: int, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.prog, self.total, self.interval, self.clock = prog, total, interval, clock
        self.done = 0
        self.start = self.last = clock()

    def __call__(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if self.interval and now - self.last >= self.interval:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            left = (self.total - self.done) / rate if rate else float("inf")
            click.echo(f"{self.prog}: {_size(self.done)} of {_size(self.total)}"
                       f" ({100 * self.done / max(self.total, 1):.0f}%), {_size(rate)}/s, {left:.0f}s left", err=True)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} GiB"


def _setup_logging(prog: str, verbose: int) -> None:
    """Warnings (each wait: zone, reason, retry, deadline) always; -vv adds info, -vvv debug.

    PRC's own logger stays quiet: it logs every dropped connection at CRITICAL (we retry
    them) and, at debug level, its log-in exchange, which no verbosity may print.
    """
    level = logging.WARNING if verbose < 2 else logging.INFO if verbose == 2 else logging.DEBUG
    fmt = f"{prog}: %(message)s" if verbose < 2 else f"{prog}: %(name)s: %(levelname)s: %(message)s"
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(LogFilter())
    logging.getLogger("irods").setLevel(logging.CRITICAL + 1 if verbose < 3 else logging.WARNING)


# ------------------------------------------------------------------------------ get


@click.command(context_settings=CONTEXT)
@_common
@click.argument("paths", nargs=-1, required=True)
def iget(paths: tuple[str, ...], force: bool, verify: bool, recursive: bool, threads: int | None,
         resource: str | None, verbose: int, retries: int | None, deadline: float | None,
         max_connections: int | None, progress_interval: float) -> None:
    """secure-iget [options] srcDataObj|srcCollection ... [destLocalFile|destLocalDir]

    Atomic, checksum-verified, resumable iget with retries and a node-wide connection cap.
    """
    _setup_logging("secure-iget", verbose)
    sources, dest = (paths[:-1], Path(paths[-1])) if len(paths) > 1 else (paths, Path("."))
    if len(paths) > 1 and paths[-1].endswith("/") and not dest.is_dir():   # a path that says "directory"
        raise NotFoundError(f"no such local directory: {paths[-1]} (a target ending in / must exist)")
    if len(sources) > 1 and not dest.is_dir():
        raise InvalidInputError(f"target {dest} must be an existing directory for several sources")
    job = _Job("secure-iget", verbose, retries, deadline, max_connections, progress_interval)
    with job.client as client:
        items: list[tuple[str, Path]] = []
        total = 0
        for source in sources:
            remote = client.resolve(source)
            stat = client.stat(remote)
            if stat is None:
                raise NotFoundError(f"no such data object or collection: {remote}")
            name = remote.rstrip("/").rsplit("/", 1)[1]
            target = dest / name if dest.is_dir() else dest
            if not stat.is_collection:
                items.append((remote, target))
                total += stat.size
                continue
            if not recursive:
                raise InvalidInputError(f"{remote} is a collection: use -r")
            for obj in client.scan(remote):
                relative = obj.path[len(remote.rstrip("/")) + 1:]
                local = target / relative
                local.parent.mkdir(parents=True, exist_ok=True)
                items.append((obj.path, local))
                total += obj.size
        with job.progress(total) as advance:
            results = client.get_many(items, force=force, resource=resource, progress=advance, deadline=job.deadline)
        job.report(results)


def iget_main(args: list[str] | None = None) -> None:
    """Console script ``secure-iget``."""
    sys.exit(run(iget, "secure-iget", args))


# ------------------------------------------------------------------------------ put


@click.command(context_settings=CONTEXT)
@_common
@click.argument("paths", nargs=-1, required=True)
@click.option("--parents", is_flag=True, help="Create the target collection and its parents if missing.")
def iput(paths: tuple[str, ...], force: bool, verify: bool, recursive: bool, threads: int | None,
         resource: str | None, verbose: int, retries: int | None, deadline: float | None,
         max_connections: int | None, progress_interval: float, parents: bool) -> None:
    """secure-iput [options] localSrcFile|localSrcDir ... [destDataObj|destCollection]

    Uploads to a temporary name, verifies the server's checksum, then renames into place.
    """
    _setup_logging("secure-iput", verbose)
    sources, dest = (paths[:-1], paths[-1]) if len(paths) > 1 else (paths, None)
    for source in sources:      # before any connection: a typo costs the zone nothing
        if not Path(source).exists():
            raise NotFoundError(f"no such local file or directory: {source}")
    job = _Job("secure-iput", verbose, retries, deadline, max_connections, progress_interval)
    with job.client as client:
        dest_path = client.resolve(dest if dest is not None else ".")
        dest_stat = client.stat(dest_path)
        dest_is_coll = dest is None or (dest_stat is not None and dest_stat.is_collection)
        if dest is not None and dest.endswith("/") and not dest_is_coll:   # a path that says "collection"
            if dest_stat is not None or not parents:
                raise NotFoundError(f"no such collection: {dest_path} (a target ending in / must exist;"
                                    " --parents creates it)")
            client.mkdir(dest_path)
            dest_is_coll = True
        if len(sources) > 1 and not dest_is_coll:
            raise InvalidInputError(f"target {dest_path} must be an existing collection for several sources")
        items: list[tuple[Path, str]] = []
        total = 0
        for source in sources:
            local = Path(source)
            target = f"{dest_path.rstrip('/')}/{local.resolve().name}" if dest_is_coll else dest_path
            if local.is_file():
                items.append((local, target))
                total += local.stat().st_size
                continue
            if not recursive:
                raise InvalidInputError(f"{local} is a directory: use -r")
            for root, dirs, files in os.walk(local):
                dirs.sort()
                relative = Path(root).relative_to(local).as_posix()
                coll = target if relative == "." else f"{target}/{relative}"
                client.mkdir(coll)
                for name in sorted(files):
                    path = Path(root) / name
                    items.append((path, f"{coll}/{name}"))
                    total += path.stat().st_size
        with job.progress(total) as advance:
            results = client.put_many(items, force=force, resource=resource, progress=advance, deadline=job.deadline)
        job.report(results)


def iput_main(args: list[str] | None = None) -> None:
    """Console script ``secure-iput``."""
    sys.exit(run(iput, "secure-iput", args))
