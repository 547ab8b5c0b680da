"""``secure-iget`` and ``secure-iput``: drop-in replacements for ``iget``/``iput`` in job scripts.

Same positional arguments and every flag iget/iput 4.3 accept (the table, and what each
does here, is :mod:`secure_irods.icommand_flags`; ``docs/icommands.md`` lists it), plus
``--deadline``, ``--max-connections`` and ``--progress-interval``.  ``-`` is stdout for a
get and stdin for a put.  Exit codes, one meaning each, for a scheduler:

* 0 done;
* 1 bad options or environment (fix the job);
* 2 a transient failure still there at the deadline (zone refusing, connections dropped:
  resubmit later);
* 3 a permanent transfer failure (no such object, exists without ``-f``, permission,
  checksum mismatch);
* 7 authentication refused (never retried, so an account is not locked).

Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from .errors import InvalidInputError, LogFilter, NotFoundError
from .exitcodes import run
from .icommand_flags import ACCEPTED, FLAGS, REFUSED
from .policy import RetryPolicy
from .query import Query
from .throttle import Throttle

__all__ = ["iget_main", "iput_main", "iget", "iput", "version_option", "size_text"]

logger = logging.getLogger("secure_irods.cli")

CONTEXT = {"help_option_names": ["-h", "--help"]}
RENEW_AFTER = 600.0   # -T: seconds after which a connection is renewed between objects (as the icommands)
SOURCE_MARK = "secure_irods.source"   # names the source a -r target was created for (xattr / AVU)


def package_version() -> str:
    try:
        return version("secure-irods-seisstore")
    except PackageNotFoundError:   # a checkout run without installing
        return "unknown"


def version_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--version`` for every command of the toolkit: our version and python-irodsclient's."""
    def show(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if not value or ctx.resilient_parsing:
            return
        try:
            prc = version("python-irodsclient")
        except PackageNotFoundError:
            prc = "not installed"
        click.echo(f"{ctx.info_name} {package_version()} (python-irodsclient {prc})")
        ctx.exit(0)

    return click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=show,
                        help="Print the version and exit.")(fn)


def _icommand_options(command: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click options of every iget/iput 4.3 flag, from the table; the help says what each does here."""
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for flag in reversed(FLAGS):
            use = flag.use(command)
            help_text = use.text if use.kind != ACCEPTED else f"accepted: {use.text}"
            if flag.dest == "verbose":
                fn = click.option(*flag.names, flag.dest, count=True, help=help_text)(fn)
            elif flag.metavar is None:
                fn = click.option(*flag.names, flag.dest, is_flag=True, help=help_text)(fn)
            else:
                kind: Any = click.IntRange(min=0) if flag.dest in ("threads", "retries") else str
                fn = click.option(*flag.names, flag.dest, type=kind, metavar=flag.metavar, help=help_text)(fn)
        return fn
    return decorate


def _ours(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--deadline", type=click.FloatRange(min=0, min_open=True),
                     help="Seconds after which no new attempt starts; the whole command shares it [600]."),
        click.option("--progress-interval", type=click.FloatRange(min=0), default=30.0, show_default=True,
                     help="Off a terminal (a batch job's log): one progress line every this many seconds (0: none)."),
        click.option("--max-connections", type=click.IntRange(min=0),
                     help="Node-wide connection cap, shared by all processes (0: no throttle) "
                          "[env: SECURE_IRODS_MAX_CONNECTIONS, 4]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return version_option(fn)


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE


def _check_flags(ctx: click.Context, command: str, prog: str) -> None:
    """Refused flags stop the command (exit 1) before any connection; accepted ones get their note."""
    for flag in FLAGS:
        if not _given(ctx, flag.dest):
            continue
        use = flag.use(command)
        if use.kind == REFUSED:
            raise InvalidInputError(use.text)
        if use.kind == ACCEPTED:
            click.echo(f"{prog}: note: {use.text}", err=True)


class _Job:
    """The one context object: a connected client, a shared deadline, progress and verbosity."""

    def __init__(self, prog: str, options: dict[str, Any]) -> None:
        from .client import DEFAULT_STREAMS, connect

        self.prog = prog
        self.verbose = options["verbose"] + (2 if options["very_verbose"] else 0)
        self.show_progress = options["progress"]
        self.progress_interval = options["progress_interval"]
        self.renew = options["renew"]
        overrides: dict[str, Any] = {}
        if options["retries"] is not None:
            overrides["attempts"] = options["retries"] + 1
        if options["deadline"] is not None:
            overrides["deadline"] = options["deadline"]
        self.policy = RetryPolicy.from_env(**overrides)
        throttle: Throttle | bool | None = None
        if options["max_connections"] == 0:
            throttle = False
        elif options["max_connections"] is not None:
            throttle = Throttle(options["max_connections"])
        threads = options.get("threads")
        streams = DEFAULT_STREAMS if threads is None else max(1, threads)
        self.deadline = self.policy.start_deadline()   # one for the whole command, listings included
        self.client = connect(policy=self.policy, throttle=throttle, deadline=self.deadline, streams=streams,
                              ticket=options["ticket"])
        self.connected_at = time.monotonic()

    def renew_if_old(self) -> None:
        """-T: reopen the connection between objects once it is :data:`RENEW_AFTER` seconds old."""
        if self.renew and time.monotonic() - self.connected_at >= RENEW_AFTER:
            self.client.disconnect()
            self.connected_at = time.monotonic()

    @contextlib.contextmanager
    def progress(self, total: int) -> Iterator[Callable[[int], None]]:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

        console = Console(stderr=True)
        if not console.is_terminal or self.verbose > 0:
            yield _PeriodicLine(self.prog, total, self.progress_interval)
            return
        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(binary_units=True),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task(self.prog, total=total)
            yield lambda n: bar.advance(task, n)

    def finished(self, result: Any, seconds: float) -> None:
        """One line per object: always if it resumed (saying so), with -P or -v otherwise."""
        if result.skipped:
            if self.verbose or self.show_progress:
                click.echo(f"{self.prog}: {result.destination}: skipped (identical)", err=True)
            return
        resumed = getattr(result, "resumed_from", 0)
        if not (resumed or self.verbose or self.show_progress):
            return
        moved = result.size - resumed
        rate = moved / max(seconds, 1e-9)
        text = f"{self.prog}: {result.destination}: {size_text(result.size)} in {seconds:.1f} s"
        if resumed:
            text += f" (resumed: {size_text(resumed)} kept from an interrupted run, {size_text(moved)} moved)"
        click.echo(f"{text}, {size_text(rate)}/s", err=True)


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
            click.echo(f"{self.prog}: {size_text(self.done)} of {size_text(self.total)}"
                       f" ({100 * self.done / max(self.total, 1):.0f}%), {size_text(rate)}/s, {left:.0f}s left",
                       err=True)


def size_text(n: float) -> str:
    """Bytes in IEC units (KiB, MiB, GiB, TiB): the one size convention of the toolkit."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


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


class _RestartFile:
    """-X: one JSON line per finished transfer; a rerun skips those whose target is unchanged.

    Not the icommands' format (a line it cannot read is ignored, with a note): their file
    records a position in one collection walk, ours the transfers themselves.
    """

    def __init__(self, path: Path, prog: str) -> None:
        self.path = path
        self.done: set[tuple[str, str, int, str]] = set()
        if path.exists():
            ignored = 0
            for line in path.read_text(errors="replace").splitlines():
                try:
                    row = json.loads(line)
                    self.done.add((row["source"], row["target"], int(row["size"]), row["checksum"]))
                except (ValueError, KeyError, TypeError):
                    ignored += line.strip() != ""
            if ignored:
                click.echo(f"{prog}: note: {ignored} line(s) of {path} are not ours; ignored", err=True)
        elif not path.parent.is_dir():
            raise InvalidInputError(f"-X {path}: no such directory {path.parent}")
        path.touch()

    def skips(self, source: str, target: str, size: int, checksum: str, present: bool) -> bool:
        return present and (source, target, size, checksum) in self.done

    def checksum_for(self, source: str, target: str, size: int) -> str | None:
        return next((c for s, t, n, c in self.done if (s, t, n) == (source, target, size)), None)

    def record(self, result: Any) -> None:
        row = {"source": result.source, "target": result.destination, "size": result.size,
               "checksum": result.checksum}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def _replicas(client: Any, path: str) -> list[tuple[int, str]]:
    """``(replica number, resource hierarchy)`` of every replica of a data object (one GenQuery)."""
    parent, _, name = path.rpartition("/")
    q = (Query("DATA_REPL_NUM", "D_RESC_HIER")
         .where("COLL_NAME", "=", parent or "/").where("DATA_NAME", "=", name))
    return sorted((int(n), hier) for n, hier in client.query(q))


def _replica_resource(client: Any, path: str, number: str) -> str:
    """The root resource holding replica ``number`` of ``path`` (-n)."""
    try:
        wanted = int(number)
    except ValueError:
        raise InvalidInputError(f"-n {number!r}: a replica number is an integer") from None
    for n, hier in _replicas(client, path):
        if n == wanted:
            return hier.split(";")[0]
    raise NotFoundError(f"{path} has no replica number {wanted}")


# ------------------------------------------------------------------------------ -r targets


def _local_mark(directory: Path) -> str | None:
    try:
        return os.getxattr(directory, f"user.{SOURCE_MARK}").decode()
    except OSError:
        return None


def _set_local_mark(directory: Path, source: str) -> None:
    """Remember which collection a directory was created for, so a rerun fills it again.

    An extended attribute (invisible to ``ls``, never uploaded back); on a file system
    without them a rerun nests, as iget does.
    """
    with contextlib.suppress(OSError):
        os.setxattr(directory, f"user.{SOURCE_MARK}", source.encode())


def _local_collection_target(remote: str, dest: Path, dest_given: bool) -> Path:
    """Where ``iget -r remote dest`` puts the collection's contents.

    An existing directory gets ``dest/<name>`` (as iget), unless this command created it
    for this very collection in an earlier run; a missing one is created if its parent
    exists and gets the contents directly.
    """
    name = remote.rstrip("/").rsplit("/", 1)[1]
    if dest.is_dir():
        if dest_given and _local_mark(dest) == remote:
            return dest
        return dest / name
    if dest.exists():
        raise InvalidInputError(f"target {dest} is a file, not a directory")
    if not dest.parent.is_dir():
        raise NotFoundError(f"no such local directory: {dest.parent} (the target's parent must exist)")
    dest.mkdir()
    _set_local_mark(dest, remote)
    return dest


def _remote_collection_target(client: Any, local: Path, dest: str, dest_stat: Any, parents: bool) -> str:
    """Where ``iput -r local dest`` puts the directory's contents (see :func:`_local_collection_target`)."""
    source = str(local.resolve())
    if dest_stat is not None and dest_stat.is_collection:
        if source in client.collection_avus(dest).get(SOURCE_MARK, []):
            return dest
        return f"{dest.rstrip('/')}/{local.resolve().name}"
    if dest_stat is not None:
        raise InvalidInputError(f"target {dest} is a data object, not a collection")
    parent = dest.rstrip("/").rsplit("/", 1)[0] or "/"
    parent_stat = client.stat(parent)
    if (parent_stat is None or not parent_stat.is_collection) and not parents:
        raise NotFoundError(f"no such collection: {parent} (the target's parent must exist; --parents creates it)")
    client.mkdir(dest)
    client.change_collection_avus(dest, add=[(SOURCE_MARK, source)])
    return dest


# ------------------------------------------------------------------------------ get


@click.command(context_settings=CONTEXT)
@_icommand_options("get")
@_ours
@click.argument("paths", nargs=-1, required=True)
def iget(paths: tuple[str, ...], **options: Any) -> None:
    """secure-iget [options] srcDataObj|srcCollection ... [destLocalFile|destLocalDir|-]

    Atomic, checksum-verified, resumable iget with retries and a node-wide connection cap.
    A destination of - writes the objects, verified, to stdout.
    """
    ctx = click.get_current_context()
    prog = "secure-iget"
    job_verbose = options["verbose"] + (2 if options["very_verbose"] else 0)
    _setup_logging(prog, job_verbose)
    _check_flags(ctx, "get", prog)
    to_stdout = len(paths) > 1 and paths[-1] == "-"
    dest_given = len(paths) > 1
    sources, dest = (paths[:-1], Path(paths[-1])) if dest_given else (paths, Path("."))
    if not to_stdout and len(sources) > 1 and not dest.is_dir():
        raise InvalidInputError(f"target {dest} must be an existing directory for several sources")
    if not to_stdout and dest_given and paths[-1].endswith("/") and not dest.is_dir() and not options["recursive"]:
        raise NotFoundError(f"no such local directory: {paths[-1]} (a target ending in / must exist)")
    restart = _RestartFile(Path(options["restart_file"]), prog) if options["restart_file"] else None
    job = _Job(prog, options)
    with job.client as client:
        items: list[tuple[str, Path, Any]] = []
        for source in sources:
            remote = client.resolve(source)
            stat = client.stat(remote)
            if stat is None:
                raise NotFoundError(f"no such data object or collection: {remote}")
            if not stat.is_collection:
                if to_stdout:
                    items.append((remote, Path(), stat))
                else:
                    name = remote.rstrip("/").rsplit("/", 1)[1]
                    items.append((remote, dest / name if dest.is_dir() else dest, stat))
                continue
            if to_stdout:
                raise InvalidInputError(f"{remote} is a collection: only data objects can go to stdout")
            if not options["recursive"]:
                raise InvalidInputError(f"{remote} is a collection: use -r")
            target = _local_collection_target(remote, dest, dest_given)
            for obj in client.scan(remote):
                local = target / obj.path[len(remote.rstrip("/")) + 1:]
                local.parent.mkdir(parents=True, exist_ok=True)
                items.append((obj.path, local, obj))
        resources = {remote: _replica_resource(client, remote, options["replica"]) for remote, _, _ in items} \
            if options["replica"] is not None else {}
        if to_stdout:
            _get_to_stdout(job, client, items, options, resources)
            return
        total = sum(stat.size for _, _, stat in items)
        with job.progress(total) as advance:
            for remote, local, stat in items:
                if restart and restart.skips(remote, str(local), stat.size, stat.checksum,
                                             local.is_file() and local.stat().st_size == stat.size):
                    advance(stat.size)
                    continue
                job.renew_if_old()
                started = time.monotonic()
                result = client.get_many([(remote, local)], force=options["force"], sync=restart is not None,
                                         resource=resources.get(remote, options["resource"]),
                                         progress=advance, deadline=job.deadline)[0]
                if result.skipped:
                    advance(result.size)     # identical already: counted as done
                job.finished(result, time.monotonic() - started)
                if restart:
                    restart.record(result)


def _get_to_stdout(job: _Job, client: Any, items: list[tuple[str, Path, Any]], options: dict[str, Any],
                   resources: dict[str, str]) -> None:
    """``iget obj... -``: each object is fetched and verified in a private temporary directory,
    then copied to stdout: nothing unverified ever reaches the pipe."""
    out = sys.stdout.buffer
    with tempfile.TemporaryDirectory(prefix="secure-iget-") as scratch:
        total = sum(stat.size for _, _, stat in items)
        with job.progress(total) as advance:
            for i, (remote, _, _) in enumerate(items):
                job.renew_if_old()
                local = Path(scratch) / f"{i}"
                started = time.monotonic()
                result = client.get_many([(remote, local)], resource=resources.get(remote, options["resource"]),
                                         progress=advance, deadline=job.deadline)[0]
                job.finished(result, time.monotonic() - started)
                with open(local, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
                out.flush()
                local.unlink()


def iget_main(args: list[str] | None = None) -> None:
    """Console script ``secure-iget``."""
    sys.exit(run(iget, "secure-iget", args))


# ------------------------------------------------------------------------------ put


def _parse_metadata(text: str) -> list[tuple[str, str, str]]:
    """``--metadata 'a;v;u;a2;v2;'``: attribute, value, units triples (units may be empty)."""
    fields = text.split(";")
    if fields and fields[-1] == "":
        fields = fields[:-1]
    if len(fields) == 2:          # 'a;v' alone: no units
        fields.append("")
    if len(fields) % 3 or not fields:
        raise InvalidInputError(f"--metadata {text!r}: expected attr;value;unit;attr;value;unit...")
    triples = [tuple(fields[i:i + 3]) for i in range(0, len(fields), 3)]
    for a, v, _ in triples:
        if not a or not v:
            raise InvalidInputError(f"--metadata {text!r}: every AVU needs an attribute and a value")
    return triples  # type: ignore[return-value]


def _parse_acl(text: str) -> list[tuple[str, str, str]]:
    """``--acl 'read alice;own bob#otherZone;'``: level, user, zone."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        level, _, who = part.partition(" ")
        who = who.strip()
        if level not in ("null", "read", "write", "own") or not who:
            raise InvalidInputError(f"--acl {text!r}: expected 'read|write|own|null user;...'")
        user, _, zone = who.partition("#")
        out.append((level, user, zone))
    if not out:
        raise InvalidInputError(f"--acl {text!r}: no permission given")
    return out


def _before_rename(options: dict[str, Any]) -> Callable[[Any, str], None] | None:
    """Metadata, permissions and data type applied to the verified temporary, before it takes its name."""
    avus = _parse_metadata(options["metadata"]) if options["metadata"] is not None else []
    acls = _parse_acl(options["acl"]) if options["acl"] is not None else []
    data_type = options["data_type"]
    if not (avus or acls or data_type):
        return None

    def apply(backend: Any, temporary: str) -> None:
        if data_type:
            backend.set_data_type(temporary, data_type)
        if avus:
            backend.add_avus(temporary, avus)
        for level, user, zone in acls:
            backend.set_permission(temporary, level, user, zone)

    return apply


@contextlib.contextmanager
def _stdin_file() -> Iterator[Path]:
    """``iput - obj``: stdin spooled to a private temporary file, then uploaded like any file."""
    with tempfile.TemporaryDirectory(prefix="secure-iput-") as scratch:
        path = Path(scratch) / "stdin"
        with open(path, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        yield path


def _walk(local: Path, target: str, client: Any, skip_links: bool) -> Iterator[tuple[Path, str]]:
    for root, dirs, files in os.walk(local):
        dirs.sort()
        if skip_links:
            dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
        relative = Path(root).relative_to(local).as_posix()
        coll = target if relative == "." else f"{target}/{relative}"
        client.mkdir(coll)
        for name in sorted(files):
            path = Path(root) / name
            if skip_links and path.is_symlink():
                continue
            yield path, f"{coll}/{name}"


@click.command(context_settings=CONTEXT)
@_icommand_options("put")
@_ours
@click.argument("paths", nargs=-1, required=True)
@click.option("--parents", is_flag=True, help="Create the target collection and its parents if missing.")
def iput(paths: tuple[str, ...], **options: Any) -> None:
    """secure-iput [options] localSrcFile|localSrcDir|- ... [destDataObj|destCollection]

    Uploads to a temporary name, verifies the server's checksum, then renames into place.
    A source of - reads stdin (spooled to a temporary file first: the same atomicity).
    """
    ctx = click.get_current_context()
    prog = "secure-iput"
    _setup_logging(prog, options["verbose"] + (2 if options["very_verbose"] else 0))
    _check_flags(ctx, "put", prog)
    sources, dest = (paths[:-1], paths[-1]) if len(paths) > 1 else (paths, None)
    skip_links = options["ignore_symlinks"] or options["link"]
    for source in sources:      # before any connection: a typo costs the zone nothing
        if source == "-":
            if dest is None or len(sources) > 1:
                raise InvalidInputError("stdin (-) needs a destination data object, and is the only source")
        elif not Path(source).exists() and not Path(source).is_symlink():
            raise NotFoundError(f"no such local file or directory: {source}")
    hook = _before_rename(options)
    restart = _RestartFile(Path(options["restart_file"]), prog) if options["restart_file"] else None
    with contextlib.ExitStack() as stack:
        job = _Job(prog, options)
        client = stack.enter_context(job.client)
        if sources == ("-",):
            sources = (str(stack.enter_context(_stdin_file())),)
            stdin_target = client.resolve(dest)  # type: ignore[arg-type]
            stat = client.stat(stdin_target)
            if stat is not None and stat.is_collection:
                raise InvalidInputError(f"{stdin_target} is a collection: name the data object stdin goes to")
            items = [(Path(sources[0]), stdin_target)]
        else:
            items = _put_items(client, sources, dest, options, skip_links)
        _put_all(job, client, items, options, hook, restart)


def _put_items(client: Any, sources: tuple[str, ...], dest: str | None, options: dict[str, Any],
               skip_links: bool) -> list[tuple[Path, str]]:
    dest_path = client.resolve(dest if dest is not None else ".")
    dest_stat = client.stat(dest_path)
    dest_is_coll = dest_stat is not None and dest_stat.is_collection
    if dest is not None and dest.endswith("/") and not dest_is_coll and not options["recursive"]:
        if dest_stat is not None or not options["parents"]:   # a path that says "collection"
            raise NotFoundError(f"no such collection: {dest_path} (a target ending in / must exist;"
                                " --parents creates it)")
        client.mkdir(dest_path)
        dest_stat, dest_is_coll = client.stat(dest_path), True
    if len(sources) > 1 and not dest_is_coll:
        raise InvalidInputError(f"target {dest_path} must be an existing collection for several sources")
    items: list[tuple[Path, str]] = []
    for source in sources:
        local = Path(source)
        if skip_links and local.is_symlink():
            click.echo(f"secure-iput: note: {local} is a symbolic link: skipped (--ignore-symlinks)", err=True)
            continue
        if local.is_file():
            target = f"{dest_path.rstrip('/')}/{local.resolve().name}" if dest_is_coll else dest_path
            items.append((local, target))
            continue
        if not options["recursive"]:
            raise InvalidInputError(f"{local} is a directory: use -r")
        target = _remote_collection_target(client, local, dest_path, dest_stat, options["parents"])
        items.extend(_walk(local, target, client, skip_links))
    return items


def _put_all(job: _Job, client: Any, items: list[tuple[Path, str]], options: dict[str, Any],
             hook: Callable[[Any, str], None] | None, restart: _RestartFile | None) -> None:
    total = sum(local.stat().st_size for local, _ in items)
    with job.progress(total) as advance:
        for local, remote in items:
            size = local.stat().st_size
            recorded = restart.checksum_for(str(local), remote, size) if restart else None
            if recorded is not None:
                stat = client.stat(remote)
                if stat is not None and (stat.size, stat.checksum) == (size, recorded):
                    advance(size)
                    continue
            job.renew_if_old()
            resource = options["resource"]
            if options["replica"] is not None:
                resource = _replica_resource(client, remote, options["replica"])
            before = {hier.split(";")[0] for _, hier in _replicas(client, remote)} \
                if options["all_replicas"] and options["force"] else set()
            started = time.monotonic()
            result = client.put_many([(local, remote)], force=options["force"], sync=restart is not None,
                                     resource=resource, progress=advance, deadline=job.deadline,
                                     before_rename=hook)[0]
            if result.skipped:
                advance(size)
            job.finished(result, time.monotonic() - started)
            if before and not result.skipped:
                now = {hier.split(";")[0] for _, hier in _replicas(client, remote)}
                for root in sorted(before - now):       # -a: every resource that held a copy holds the new one
                    client.replicate(remote, root, deadline=job.deadline)
            if restart:
                restart.record(result)


def iput_main(args: list[str] | None = None) -> None:
    """Console script ``secure-iput``."""
    sys.exit(run(iput, "secure-iput", args))
