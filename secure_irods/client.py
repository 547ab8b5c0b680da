"""The job-script API: ``with connect() as irods: irods.get(...)``.

:func:`connect` reads the standard iRODS environment (``$IRODS_ENVIRONMENT_FILE`` or
``~/.irods/irods_environment.json``, ``$IRODS_AUTHENTICATION_FILE`` or the file the
environment names or ``~/.irods/.irodsA``) and returns a :class:`Client`.  Every call
runs under the :class:`~secure_irods.policy.RetryPolicy` (transient failures only); the
client holds at most one connection, opened lazily, and holds a node-wide
:class:`~secure_irods.throttle.Throttle` slot exactly while that connection is open.
Before connecting it waits out the node's :class:`~secure_irods.throttle.Cooldown`; a
refusal by the zone (:class:`~secure_irods.errors.ZoneBusyError`) starts one.

The client has states (like httpx's ``ClientState``): ``unopened`` -> ``open`` (a
connection and slot held) <-> ``idle`` (dropped after a transient failure) ->
``closed``; using a closed client raises ``RuntimeError``.

Example::

    from secure_irods import connect

    with connect() as irods:
        irods.get("/zone/home/me/run1/a.mseed", "data/a.mseed")       # atomic, verified
        irods.put("out/result.h5", "results/result.h5", force=True)   # relative to irods_cwd
        irods.sync("i:/zone/home/me/run1/b.mseed", "data/b.mseed")    # no bytes if identical
        irods.get_many([(f"run1/{n}", f"data/{n}") for n in irods.listdir("run1")])
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar, cast

from .errors import InvalidInputError, NotFoundError, TransientError, ZoneBusyError, check_path, classify
from .policy import Deadline, RetryPolicy
from .policy import Progress as RetryProgress
from .protocols import Backend, Opener
from .query import Query
from .throttle import Cooldown, RetryBudget, Throttle
from .transfer import Leftover, TransferResult, _get_object, _put_object
from .window import HostWindows, Lease, node_window, parse_hosts

if TYPE_CHECKING:
    from .remote import RemoteFile

__all__ = ["Client", "connect", "TransferResult", "IrodsEnvironment", "DEFAULT_IO_TIMEOUT"]

logger = logging.getLogger("secure_irods.client")

T = TypeVar("T")

DEFAULT_IO_TIMEOUT = 60.0  # longest wait for one socket read/write: the stall guard
DEFAULT_STREAMS = 2  # connections a get of >= 32 MiB may use, extra ones only from free throttle slots
ENV_IO_TIMEOUT = "SECURE_IRODS_IO_TIMEOUT"
ENV_COOLDOWN = "SECURE_IRODS_COOLDOWN"
ENV_HOSTS = "SECURE_IRODS_HOSTS"  # host:port,host:port... of one zone served by several hosts
ENV_LOAD_CONTROL = "SECURE_IRODS_LOAD_CONTROL"  # "adaptive" (default): the node window; "fixed": slots + cool-down
Progress = Callable[[int], None]


class IrodsEnvironment:
    """The environment file, authentication file and the paths in them (no secrets kept)."""

    def __init__(self, env_file: str | os.PathLike | None = None, auth_file: str | os.PathLike | None = None,
                 environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        home = Path(os.path.expanduser("~/.irods"))
        self.env_file = Path(env_file or env.get("IRODS_ENVIRONMENT_FILE") or home / "irods_environment.json")
        try:
            self.settings: dict[str, Any] = json.loads(self.env_file.read_text())
        except FileNotFoundError:
            raise InvalidInputError(f"no iRODS environment file at {self.env_file}") from None
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"unreadable iRODS environment file {self.env_file}: {exc}") from None
        for key in ("irods_host", "irods_port", "irods_user_name", "irods_zone_name"):
            if key not in self.settings:
                raise InvalidInputError(f"{self.env_file} lacks {key}")
        self.auth_file = Path(auth_file) if auth_file else self.auth_path(self.settings, env)
        zone, user = self.settings["irods_zone_name"], self.settings["irods_user_name"]
        self.home = self.settings.get("irods_home") or f"/{zone}/home/{user}"
        self.cwd = env.get("IRODS_CWD") or self.settings.get("irods_cwd") or self.home
        self.default_resource = self.settings.get("irods_default_resource")

    @staticmethod
    def auth_path(settings: dict[str, Any], environ: dict[str, str] | None = None) -> Path:
        """The authentication file the icommands read for these settings: ``$IRODS_AUTHENTICATION_FILE``,
        else the environment's ``irods_authentication_file``, else ``~/.irods/.irodsA``."""
        env = os.environ if environ is None else environ
        return Path(env.get("IRODS_AUTHENTICATION_FILE") or settings.get("irods_authentication_file")
                    or os.path.expanduser("~/.irods/.irodsA"))

    @property
    def zone_address(self) -> str:
        """``host:port`` of the zone: the key of the node's cool-down and retry budget."""
        return f"{self.settings['irods_host']}:{self.settings['irods_port']}"

    def hosts(self, environ: dict[str, str] | None = None) -> list[str]:
        """Every ``host:port`` serving the zone: ``$SECURE_IRODS_HOSTS`` (comma-separated), else the
        environment file's ``secure_irods_hosts`` (a list), else ``irods_host:irods_port`` alone."""
        env = os.environ if environ is None else environ
        raw = env.get(ENV_HOSTS, "").strip() or self.settings.get("secure_irods_hosts")
        return parse_hosts(raw, self.zone_address)

    def resolve(self, path: str) -> str:
        """An absolute iRODS path; relative paths are taken from ``irods_cwd`` (like the icommands).

        One longer than iRODS allows is refused here, before anything is sent (exit 3)."""
        if not path.startswith("/"):
            path = f"{self.cwd.rstrip('/')}/{path}"
        parts: list[str] = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return check_path("/" + "/".join(parts))


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    IDLE = "idle"
    CLOSED = "closed"


class Client:
    """Retried, throttled, atomic transfers; one connection, one throttle slot at most.

    ``opener(io_timeout)`` returns a connected :class:`~secure_irods.protocols.Backend`
    (:class:`~secure_irods.backend.PrcBackend` by default); tests may pass their own.
    :meth:`copy` makes another client like this one (its own connection).
    """

    def __init__(
        self,
        opener: Opener,
        environment: IrodsEnvironment,
        *,
        policy: RetryPolicy | None = None,
        throttle: Throttle | None = None,
        cooldown: Cooldown | None = None,
        io_timeout: float = DEFAULT_IO_TIMEOUT,
        streams: int = DEFAULT_STREAMS,
        deadline: Deadline | None = None,
        window: Any = None,
        host_openers: dict[str, Opener] | None = None,
        family: "weakref.WeakSet[Client] | None" = None,
    ) -> None:
        if streams < 1:
            raise InvalidInputError(f"streams must be >= 1, got {streams}")
        self.streams = streams
        self._opener = opener
        self.environment = environment
        self.policy = policy or RetryPolicy.from_env()
        self.throttle = throttle
        self.cooldown = cooldown
        self.io_timeout = io_timeout
        self._backend: Backend | None = None
        self._slot: contextlib.ExitStack | None = None
        self.window = window  # the node's adaptive Window (or None: the fixed throttle and cool-down)
        self.host_openers = host_openers or {}  # host:port -> opener, for a zone served by several hosts
        self._lease: Any = None
        self._state = _State.UNOPENED
        self.connections_opened = 0
        self.deadline = deadline
        self.queries = 0  # GenQuery round trips (batches) answered, retries included
        self._renames: dict[tuple, str] = {}   # puts whose rename was sent, until they return (see transfer)
        # The clients of this process that copy() made from one another: when the node's
        # window admits no more connections, an idle one among them hands its connection
        # over (a process holding an idle connection while it waits for a second would
        # otherwise wait for itself: ingest's parent and its upload threads, for one).
        self._family: weakref.WeakSet[Client] = family if family is not None else weakref.WeakSet()
        self._family.add(self)
        self._mutex = threading.Lock()  # guards _busy against a peer's reclaim
        self._busy = 0  # attempts running on this client's connection

    def copy(self, **changes: Any) -> "Client":
        """A new client like this one (as tenacity's ``copy``): the same environment, opener,
        policy, throttle, cool-down, stall guard, streams and deadline, but for ``changes``
        (any argument of :class:`Client`), and a connection of its own."""
        settings: dict[str, Any] = dict(opener=self._opener, environment=self.environment, policy=self.policy,
                                        throttle=self.throttle, cooldown=self.cooldown, io_timeout=self.io_timeout,
                                        streams=self.streams, deadline=self.deadline, window=self.window,
                                        host_openers=self.host_openers, family=self._family)
        unknown = set(changes) - (set(settings) - {"family"})
        if unknown:
            raise TypeError(f"Client.copy() got unknown settings: {', '.join(sorted(unknown))}")
        settings.update(changes)
        return Client(**settings)

    # ------------------------------------------------------------ lifecycle

    @property
    def state(self) -> str:
        return self._state.value

    def __enter__(self) -> "Client":
        if self._state is _State.CLOSED:
            raise RuntimeError("cannot reopen a closed secure_irods Client")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect and free the throttle slot; the client cannot be used again."""
        self._drop()
        self._state = _State.CLOSED

    def disconnect(self) -> None:
        """Close the connection and free the throttle slot now; the next call reconnects."""
        self._drop()

    def _drop(self, failed: bool = False) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.close(dropped=failed)
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.close()
        if self._state is _State.OPEN:
            self._state = _State.IDLE

    def _connected(self, deadline: Deadline) -> Backend:
        if self._state is _State.CLOSED:
            raise RuntimeError("this secure_irods Client is closed")
        if self._backend is not None:
            return self._backend
        if self.window is not None:
            return self._connect_in_window(deadline)
        if self.cooldown is not None:
            self.cooldown.wait(deadline)
        slot = contextlib.ExitStack()
        try:
            if self.throttle is not None:
                slot.enter_context(self.throttle.acquire(deadline))
            self.connections_opened += 1
            backend = self._opener(deadline.socket_timeout(self.io_timeout))
        except BaseException as exc:
            slot.close()
            if isinstance(exc, Exception) and isinstance(classify(exc), ZoneBusyError) and self.cooldown:
                self.cooldown.refused()
            raise
        if self.cooldown is not None:
            self.cooldown.succeeded()
        self._backend, self._slot, self._state = backend, slot, _State.OPEN
        return backend

    def _lease_in_window(self, deadline: Deadline) -> Any:
        """A lease from the window, first taking back the idle connections of this client's family
        if the window has no room (their next call reconnects, within the window)."""
        got = self.window.try_acquire()
        if isinstance(got, Lease):
            return got
        if self._reclaim_idle_peers():
            got = self.window.try_acquire()
            if isinstance(got, Lease):
                return got
        return self.window.acquire(deadline)

    def _reclaim_idle_peers(self) -> int:
        """Close the connections of this process's sibling clients that no call is using."""
        freed = 0
        for peer in list(self._family):
            if peer is self or peer._backend is None:
                continue
            with peer._mutex:
                if peer._busy == 0 and peer._backend is not None:
                    peer._drop()
                    freed += 1
        if freed:
            logger.debug("window full: took back %d idle connection(s) of this process", freed)
        return freed

    def _connect_in_window(self, deadline: Deadline) -> Any:
        """Connect within the node's adaptive window; a refusal backs this process off, with
        jitter, and tries again: only the deadline ends a call the zone keeps refusing (the
        window and the breaker, not a count of attempts, bound the load; see window.py)."""
        refusals = 0
        last: BaseException | None = None
        while True:
            try:
                if self.cooldown is not None:
                    self.cooldown.wait(deadline)  # the breaker: the zone refuses nearly everything
                lease = self._lease_in_window(deadline)
            except TransientError:
                if last is not None:
                    raise last from None  # the deadline came while the zone refused: say so
                raise
            opener = self.host_openers.get(lease.window.zone, self._opener)
            try:
                if last is not None and deadline.expired:
                    lease.close()
                    raise last from None
                self.connections_opened += 1
                backend = opener(deadline.socket_timeout(self.io_timeout))
            except BaseException as exc:
                if exc is last:
                    raise
                if not (isinstance(exc, Exception) and isinstance(classify(exc), ZoneBusyError)):
                    lease.close()
                    raise
                lease.refused()
                refusals += 1
                last = exc
                pause = self.window.backoff(refusals)
                if pause >= deadline.remaining():
                    raise
                if refusals & (refusals - 1) == 0:  # the 1st, 2nd, 4th, 8th... refusal: a job's log says why it waits
                    err = classify(exc)
                    logger.warning("zone %s: %s: %s; refusal %d in a row, backing off %.1fs (node window %.2f), "
                                   "deadline in %.1fs", lease.window.zone, type(err).__name__, err.message, refusals,
                                   pause, lease.window.state().limit, deadline.remaining())
                self.policy.sleep(pause)
                continue
            lease.accepted()
            self._backend, self._lease, self._state = backend, lease, _State.OPEN
            return backend

    @contextlib.contextmanager
    def _spares(self, wanted: int, deadline: Deadline) -> Iterator[list[Backend]]:
        """Up to ``wanted`` extra connections for a parallel get, each in a free throttle slot.

        Never waits: no spare during a cool-down, none beyond the slots free right now,
        and a spare that cannot connect is simply not lent (a refusal starts the
        cool-down).  Each is closed, and its slot freed, when the ``with`` ends.
        """
        with contextlib.ExitStack() as lent:
            spares: list[Backend] = []
            if self._state is not _State.CLOSED and (self.cooldown is None or self.cooldown.remaining() <= 0):
                for _ in range(wanted):
                    if self.window is not None:
                        pair = self._spare_in_window(deadline)
                        if pair is None:
                            break
                        lent.callback(pair[1].close)
                        lent.callback(pair[0].close)
                        spares.append(pair[0])
                        continue
                    slot = contextlib.ExitStack()
                    try:
                        if self.throttle is not None:
                            slot.enter_context(self.throttle.acquire(Deadline(0)))
                        self.connections_opened += 1
                        backend = self._opener(deadline.socket_timeout(self.io_timeout))
                    except Exception as exc:
                        slot.close()
                        err = classify(exc)
                        if isinstance(err, ZoneBusyError) and self.cooldown is not None:
                            self.cooldown.refused()
                        if not isinstance(err, TransientError) or "throttle" not in err.message:
                            logger.info("no spare connection: %s: %s", type(err).__name__, err.message)
                        break
                    lent.callback(slot.close)
                    lent.callback(backend.close)
                    spares.append(backend)
            yield spares

    def _spare_in_window(self, deadline: Deadline) -> tuple[Any, Any] | None:
        """One spare connection and its lease if the window admits one right now, else None."""
        lease = self.window.try_acquire(nested=False)  # a spare never exceeds the window
        if not hasattr(lease, "accepted"):
            return None
        try:
            self.connections_opened += 1
            backend = self.host_openers.get(lease.window.zone, self._opener)(deadline.socket_timeout(self.io_timeout))
        except Exception as exc:
            err = classify(exc)
            lease.refused() if isinstance(err, ZoneBusyError) else lease.close()
            logger.info("no spare connection: %s: %s", type(err).__name__, err.message)
            return None
        lease.accepted()
        return backend, lease

    def call(self, fn: Callable[[Backend, Deadline], T], deadline: Deadline | None = None) -> T:
        """Run ``fn(backend, deadline)`` as every method of this client does (see :meth:`_call`).

        The entry point for code that needs the connection itself (:class:`~secure_irods.remote.
        RemoteFile` keeps a reader open on it): ``fn`` may be run again, on a new connection,
        after a transient failure; :attr:`connections_opened` then grows.
        """
        return self._call(fn, deadline)

    def _call(self, fn: Callable[[Backend, Deadline], T], deadline: Deadline | None = None) -> T:
        """Run ``fn(backend, deadline)`` under the retry policy; a transient failure drops the connection.

        Every answered request (a connection accepted, a log-in, a backend call that
        returned, a GenQuery batch) is progress for the policy (see
        :mod:`secure_irods.policy`): a run of attempts the zone refused or never answered
        (connection refused or capped, time-outs) ends the call; others go on until the
        deadline, under the node's cool-down and retry budget.
        """
        deadline = deadline or self.deadline or self.policy.start_deadline()
        progress = RetryProgress()

        def attempt() -> T:
            with self._mutex:
                self._busy += 1
            try:
                return attempt_in_use()
            finally:
                with self._mutex:
                    self._busy -= 1

        def attempt_in_use() -> T:
            opened = self.connections_opened
            try:
                backend = self._connected(deadline)
            except Exception as exc:
                if _accepted_then_dropped(exc):
                    progress.note()  # the zone took the connection: it is up, the link is lossy
                raise
            if self.connections_opened != opened:
                progress.note()  # the zone accepted and logged us in
            backend.set_timeout(deadline.socket_timeout(self.io_timeout))
            try:
                return fn(cast(Backend, _Answered(backend, progress)), deadline)
            except Exception as exc:
                err = classify(exc)
                if err.transient:
                    self._drop(failed=True)  # the link may be half dead: never reuse it
                    if isinstance(err, ZoneBusyError) and self.cooldown is not None and self.window is None:
                        self.cooldown.refused()
                raise

        result = self.policy.call_within(deadline, attempt, progress=progress)
        if self.policy.budget is not None:
            self.policy.budget.credit()
        return result

    # ------------------------------------------------------------ paths

    @property
    def home(self) -> str:
        return self.environment.home

    def resolve(self, path: str) -> str:
        return self.environment.resolve(path)

    # ------------------------------------------------------------ catalogue

    def exists(self, path: str) -> bool:
        """True if ``path`` is a data object (with a good replica) or a collection."""
        path = self.resolve(path)
        return self._call(lambda b, d: b.stat(path) is not None)

    def stat(self, path: str) -> Any:
        """:class:`~secure_irods.backend.RemoteStat` of ``path``, or None."""
        path = self.resolve(path)
        return self._call(lambda b, d: b.stat(path))

    def listdir(self, path: str = ".") -> list[str]:
        """Names of the sub-collections and data objects of a collection (sorted; 3 queries)."""
        path = self.resolve(path)
        return [s.path.rsplit("/", 1)[1] for s in self._call(lambda b, d: b.listdir(path))]

    def walk(self, path: str) -> Iterator[tuple[str, list[str], list[str]]]:
        """Like ``os.walk`` over a collection: ``(collection, subcollections, data objects)``."""
        todo = [self.resolve(path)]
        while todo:
            coll = todo.pop(0)
            entries = self._call(lambda b, d: b.listdir(coll))
            subs = [s.path.rsplit("/", 1)[1] for s in entries if s.is_collection]
            objs = [s.path.rsplit("/", 1)[1] for s in entries if not s.is_collection]
            yield coll, subs, objs
            todo.extend(f"{coll.rstrip('/')}/{s}" for s in subs)

    def scan(self, path: str) -> list[Any]:
        """Every data object under a collection, recursively, as ``RemoteStat`` (2 queries per collection)."""
        found: list[Any] = []
        todo = [self.resolve(path)]
        while todo:
            coll = todo.pop(0)
            entries = self._call(lambda b, d: b.listdir(coll))
            found.extend(s for s in entries if not s.is_collection)
            todo.extend(s.path for s in entries if s.is_collection)
        return found

    def require_collection(self, path: str, *, create: bool = False) -> str:
        """The absolute path of an existing collection; a missing one is a ``NotFoundError``
        naming it (and the zone, if the path is outside it), unless ``create`` makes it."""
        path = self.resolve(path)
        stat = self.stat(path)
        if stat is not None and stat.is_collection:
            return path
        if stat is not None:
            raise NotFoundError(f"{path} is a data object, not a collection")
        if create:
            self.mkdir(path)
            return path
        zone = self.environment.settings["irods_zone_name"]
        outside = "" if path.startswith(f"/{zone}/") else f", and it is outside your zone /{zone}"
        raise NotFoundError(f"no such collection: {path}{outside}")

    def mkdir(self, path: str) -> None:
        """Create a collection and its parents."""
        path = self.resolve(path)
        self._call(lambda b, d: b.mkdir(path))

    def query(self, query: Query, *, on_batch: Callable[[], None] | None = None,
              deadline: Deadline | None = None) -> list[tuple[str, ...]]:
        """All rows of a GenQuery (tuples of strings), one round trip per 500 rows.

        A transient failure restarts the query on a new connection (the server's cursor
        died with the old one) and the rows of the failed attempt are dropped, so rows
        are never lost or doubled.  Each answered batch is progress for the retry budget;
        ``on_batch()`` is called after each.
        """
        def rows(backend: Backend, deadline: Deadline) -> list[tuple[str, ...]]:
            def batch() -> None:
                cast(_Answered, backend).note()   # the zone answered: progress, within one call
                self.queries += 1
                if on_batch is not None:
                    on_batch()

            return list(backend.genquery(query, on_batch=batch))

        return self._call(rows, deadline)

    def leftovers(self, collection: str) -> list[Leftover]:
        """Temporaries that killed or dropped uploads left under ``collection``, recursively.

        An upload writes ``.NAME.part-KEY`` and renames it once verified; the next put of
        NAME removes what earlier runs left, so these are the targets never put again.
        Temporaries still being written (an upload running now) are not listed.  One
        GenQuery (a call per 500 rows)."""
        root = self.resolve(collection)
        q = (Query("COLL_NAME", "DATA_NAME", "DATA_SIZE", "D_REPL_STATUS", "D_MODIFY_TIME")
             .where_any("COLL_NAME", [("=", root), ("like", f"{root.rstrip('/')}/%")])
             .where("DATA_NAME", "like", ".%.part-%"))
        found: dict[str, Leftover] = {}
        busy = set()
        for coll, name, size, status, modified in self.query(q):
            path = f"{coll.rstrip('/')}/{name}"
            if status == "2":
                busy.add(path)
            found[path] = Leftover(path, max(int(size or 0), found[path].size if path in found else 0),
                                   float(modified or 0))
        return sorted((v for k, v in found.items() if k not in busy), key=lambda v: v.path)

    def remove_leftovers(self, collection: str, *, older_than: float = 3600.0) -> list[Leftover]:
        """Remove the :meth:`leftovers` untouched for ``older_than`` seconds; returns them.

        The age spares an upload that is between two attempts of its retries (its next
        attempt would resume from the temporary)."""
        import time

        removed = []
        for left in self.leftovers(collection):
            if time.time() - left.modified >= older_than:
                self._call(lambda b, d, path=left.path: b.unlink(path))
                removed.append(left)
        return removed

    def avus(self, path: str) -> dict[str, list[str]]:
        """Attribute -> values of a data object (one GenQuery)."""
        path = self.resolve(path)
        return _by_attribute(self._call(lambda b, d: b.avus(path)))

    def set_avus(self, path: str, avus: dict[str, str]) -> int:
        """Set each attribute of a data object to its one value (like ``imeta set``), atomically.

        One GenQuery and one atomic metadata call (API 20002) per object whatever the
        number of AVUs; a retry after a drop sends only what is still missing.  Returns
        the AVU operations sent by the last attempt.
        """
        path = self.resolve(path)
        return self._call(lambda b, d: b.set_avus(path, avus))

    def add_resource(self, name: str, kind: str, *, host: str = "", vault: str = "", parent: str = "") -> None:
        """Create a resource (admins only): a storage resource with ``host`` and ``vault``, or a
        coordinating one (``random``, ``replication``, ...); ``parent`` adds it as a child."""
        self._call(lambda b, d: b.add_resource(name, kind, host, vault, parent))

    # ------------------------------------------------------------ replicas (rebalance)

    def replicate(self, path: str, resource: str, *, source: str = "", hierarchy: str = "",
                  io_timeout: float | None = None, deadline: Deadline | None = None) -> None:
        """A good replica of ``path`` in ``resource`` (read from ``source`` if named; ``hierarchy``
        picks the leaf); nothing happens when ``resource`` already holds a good one.
        ``io_timeout``: longest wait for the answer, which comes once the zone has copied the
        bytes (default: the client's stall guard)."""
        path = self.resolve(path)
        wait = io_timeout or self.io_timeout
        self._call(lambda b, d: b.replicate(path, resource, source, hierarchy, d.socket_timeout(wait)), deadline)

    def replica_checksum(self, path: str, replica: int, *, io_timeout: float | None = None,
                         deadline: Deadline | None = None) -> str:
        """Checksum of one replica, computed now by the zone from its bytes (``io_timeout`` as
        for :meth:`replicate`)."""
        path = self.resolve(path)
        wait = io_timeout or self.io_timeout
        return self._call(lambda b, d: b.replica_checksum(path, replica, d.socket_timeout(wait)), deadline)

    def trim_replica(self, path: str, replica: int, *, min_copies: int = 1, deadline: Deadline | None = None) -> None:
        """Remove one replica; the zone refuses to go below ``min_copies`` good replicas."""
        path = self.resolve(path)
        self._call(lambda b, d: b.trim_replica(path, replica, min_copies), deadline)

    def collection_avus(self, path: str) -> dict[str, list[str]]:
        """Attribute -> values of a collection (one GenQuery)."""
        path = self.resolve(path)
        return _by_attribute(self._call(lambda b, d: b.collection_avus(path)))

    def change_collection_avus(self, path: str, *, add: Iterable[tuple[str, str]] = (),
                               remove: Iterable[tuple[str, str]] = ()) -> None:
        """Remove then add AVUs of a collection, atomically (API 20002)."""
        path = self.resolve(path)
        add, remove = list(add), list(remove)
        self._call(lambda b, d: b.change_collection_avus(path, add, remove))

    # ------------------------------------------------------------ selective reads

    def open(self, path: str, *, block_size: int | None = None, cache_bytes: int | None = None,
             readahead: int = 0, head: int = 0, resource: str | None = None) -> "RemoteFile":
        """A seekable, block-cached, read-only file object over a data object (h5py accepts it).

        One GenQuery here (size, checksum); then reads fetch only the blocks asked for,
        on a connection of the file's own (a throttle slot held until the file is
        closed), with this client's retries, cool-down and deadline.  This client's
        connection is closed first (its next call reconnects), so one process never
        waits for a slot while holding one.  See :mod:`secure_irods.remote`.
        """
        from .remote import DEFAULT_BLOCK, DEFAULT_CACHE, RemoteFile

        path = self.resolve(path)
        stat = self.stat(path)
        self.disconnect()
        own = self.copy(streams=1)
        try:
            return RemoteFile(own, path, stat=stat, block_size=block_size or DEFAULT_BLOCK,
                              cache_bytes=cache_bytes or DEFAULT_CACHE, readahead=readahead, head=head,
                              resource=resource)
        except BaseException:
            own.close()
            raise

    # ------------------------------------------------------------ transfers

    def get(self, remote: str, local: str | os.PathLike | None = None, *, force: bool = False,
            resource: str | None = None, progress: Progress | None = None,
            deadline: Deadline | None = None) -> TransferResult:
        """Fetch a data object to ``local`` (a file, or a directory to put it in; default: here)."""
        remote = self.resolve(remote)
        target = _local_target(remote, local)
        return self._call(lambda b, d: _get_object(b, remote, target, deadline=d, force=force,
                                                   resource=resource, progress=progress,
                                                   spares=lambda n: self._spares(n, d), streams=self.streams),
                          deadline)

    def put(self, local: str | os.PathLike, remote: str | None = None, *, force: bool = False,
            resource: str | None = None, progress: Progress | None = None,
            deadline: Deadline | None = None) -> TransferResult:
        """Upload a file to ``remote`` (an object path, or a collection to put it in; default: cwd)."""
        source = Path(local)
        target = self._remote_target(source, remote, deadline)
        return self._put(source, target, deadline, force=force,
                         resource=resource or self.environment.default_resource, progress=progress)

    def _put(self, source: Path, target: str, deadline: Deadline | None, **options: Any) -> TransferResult:
        """One retried upload (a retry that finds its own renamed result succeeds: see transfer)."""
        return self._call(lambda b, d: _put_object(b, source, target, deadline=d, renames=self._renames, **options),
                          deadline)

    def sync(self, source: str | os.PathLike, destination: str | os.PathLike, **options: Any) -> TransferResult:
        """Like ``irsync``: exactly one side is an iRODS path written ``i:/path``.

        Transfers (overwriting) unless the destination already has the same size and
        checksum; then returns a result with ``skipped=True`` having moved no bytes.
        """
        src, dst = str(source), str(destination)
        deadline = options.pop("deadline", None)
        if src.startswith("i:") == dst.startswith("i:"):
            raise InvalidInputError("sync: exactly one of source and destination must start with 'i:'")
        if src.startswith("i:"):
            remote = self.resolve(src[2:])
            target = _local_target(remote, dst)
            return self._call(lambda b, d: _get_object(b, remote, target, deadline=d, force=True, sync=True,
                                                       spares=lambda n: self._spares(n, d), streams=self.streams,
                                                       **options), deadline)
        source = Path(src)
        destination = self._remote_target(source, dst[2:], None)
        return self._call(lambda b, d: _put_object(b, source, destination, deadline=d, force=True, sync=True,
                                                   renames=self._renames, **options), deadline)

    def get_many(self, items: Iterable[tuple[str, str | os.PathLike]], *, force: bool = False, sync: bool = False,
                 resource: str | None = None, progress: Progress | None = None,
                 deadline: Deadline | None = None) -> list[TransferResult]:
        """Fetch many ``(remote, local)`` pairs over this client's one connection, in order.

        Each object gets its own retries (and its own deadline unless ``deadline`` is
        shared); the first permanent failure, or a transient one outlasting the
        deadline, is raised.
        """
        def one(path: str, target: Path) -> TransferResult:
            return self._call(lambda b, d: _get_object(
                b, path, target, deadline=d, force=force, sync=sync, resource=resource, progress=progress,
                spares=lambda n: self._spares(n, d), streams=self.streams), deadline)

        return [one(path, _local_target(path, local)) for path, local in
                ((self.resolve(remote), local) for remote, local in items)]

    def put_many(self, items: Iterable[tuple[str | os.PathLike, str]], *, force: bool = False, sync: bool = False,
                 resource: str | None = None, progress: Progress | None = None,
                 deadline: Deadline | None = None,
                 before_rename: Callable[[Any, str], None] | None = None) -> list[TransferResult]:
        """Upload many ``(local, remote)`` pairs (remote: full object paths) over one connection.

        ``before_rename(backend, temporary)``: see :func:`secure_irods.transfer._put_object`
        (``secure-iput --metadata/--acl`` use it so an object never appears without them).
        """
        resc = resource or self.environment.default_resource
        return [self._put(Path(local), self.resolve(remote), deadline, force=force, sync=sync, resource=resc,
                          progress=progress, before_rename=before_rename) for local, remote in items]

    def _remote_target(self, local: Path, remote: str | None, deadline: Deadline | None) -> str:
        if remote is None:
            return self.resolve(local.name)
        path = self.resolve(remote)
        stat = self._call(lambda b, d: b.stat(path), deadline)
        if remote.endswith("/") and (stat is None or not stat.is_collection):
            raise NotFoundError(f"no such collection: {path} (a target ending in / must exist)")
        if stat is not None and stat.is_collection:
            return f"{path.rstrip('/')}/{local.name}"
        return path

    def __repr__(self) -> str:
        return f"<secure_irods.Client {self.environment.home} {self._state.value}>"


class _Answered:
    """A backend whose calls note :class:`~secure_irods.policy.Progress` when they return (the zone answered)."""

    def __init__(self, backend: Any, progress: RetryProgress) -> None:
        self._backend = backend
        self._progress = progress

    def note(self) -> None:
        """The zone answered part of a longer call (a GenQuery batch): progress."""
        self._progress.note()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._backend, name)
        if not callable(value):
            return value

        def answered(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            self._progress.note()
            return result

        return answered


def _by_attribute(rows: Iterable[tuple[str, str, str]]) -> dict[str, list[str]]:
    """``(attribute, value, unit)`` rows as attribute -> values (units dropped), in row order."""
    found: dict[str, list[str]] = {}
    for name, value, _ in rows:
        found.setdefault(name, []).append(value)
    return found


def _accepted_then_dropped(exc: BaseException) -> bool:
    """A connection the zone accepted and then dropped (not refused, capped or silent)."""
    err = classify(exc)
    if not err.transient or isinstance(err, ZoneBusyError):
        return False
    link: BaseException | None = exc
    seen: set[int] = set()
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, (TimeoutError, ConnectionRefusedError)):
            return False
        link = link.__cause__ or link.__context__
    return True


def _local_target(remote: str, local: str | os.PathLike | None) -> Path:
    name = remote.rstrip("/").rsplit("/", 1)[1]
    if local is None:
        return Path.cwd() / name
    path = Path(local)
    if path.is_dir() or str(local).endswith(os.sep):
        return path / name
    return path


def connect(
    env_file: str | os.PathLike | None = None,
    auth_file: str | os.PathLike | None = None,
    *,
    policy: RetryPolicy | None = None,
    throttle: Throttle | bool | None = None,
    cooldown: Cooldown | bool | None = None,
    io_timeout: float | None = None,
    opener: Opener | None = None,
    streams: int = DEFAULT_STREAMS,
    deadline: Deadline | None = None,
    ticket: str | None = None,
) -> Client:
    """A :class:`Client` for the standard iRODS environment; connects lazily, on first use.

    ``policy`` defaults to :meth:`RetryPolicy.from_env`, given the zone's node-wide
    :class:`RetryBudget` when throttled; ``throttle`` to :meth:`Throttle.from_env`
    (``False``: none); ``cooldown`` to this zone's :class:`Cooldown` in the throttle's
    directory (base from ``$SECURE_IRODS_COOLDOWN``, default 5 s; ``False``: none); ``io_timeout`` (the stall guard: longest silence of a socket) to
    ``$SECURE_IRODS_IO_TIMEOUT`` or 60 s.  The password is read only by
    python-irodsclient; the backend registers it for redaction from every message.
    ``streams``: connections a get of 32 MiB or more may read with (the extra ones only
    from throttle slots free at that moment, as PRC's parallel get; 1: one stream).
    ``deadline``: one :class:`Deadline` shared by every call of this client (a command's
    or a job's whole run); by default each call starts its own from the policy.
    ``ticket``: an iRODS ticket presented on every connection (``iget -t``).
    """
    environment = IrodsEnvironment(env_file, auth_file)
    zone = environment.zone_address
    if throttle is None or throttle is True:
        throttle = Throttle.from_env()
    directory = throttle.directory if isinstance(throttle, Throttle) else None
    if cooldown is None or cooldown is True:
        base = _float_env(ENV_COOLDOWN, 5.0)
        cooldown = Cooldown(directory, zone=zone, base=base, step=base)
    policy = policy or RetryPolicy.from_env()
    policy = policy.replace(zone=policy.zone or zone,
                            budget=policy.budget or (RetryBudget.from_env(directory, zone=zone) if throttle else None))
    if io_timeout is None:
        io_timeout = _float_env(ENV_IO_TIMEOUT, DEFAULT_IO_TIMEOUT)
    if opener is None:
        opener = _prc_opener(environment, ticket)
    window: Any = None
    hosts = environment.hosts()
    host_openers = {}
    if len(hosts) > 1:  # a zone served by several hosts: one window each, an opener each
        if not isinstance(throttle, Throttle) or _load_control() != "adaptive":
            raise InvalidInputError(f"{ENV_HOSTS}: several hosts need the adaptive load control and a throttle")
        window = HostWindows([node_window(throttle, h, cooldown=cooldown or None) for h in hosts])
        host_openers = {h: _prc_opener(environment, ticket, h) for h in hosts}
    elif isinstance(throttle, Throttle) and _load_control() == "adaptive":
        window = node_window(throttle, zone, cooldown=cooldown or None)
    return Client(opener, environment, policy=policy, throttle=throttle or None, cooldown=cooldown or None,
                  io_timeout=io_timeout, streams=streams, deadline=deadline, window=window, host_openers=host_openers)


def _load_control() -> str:
    raw = os.environ.get(ENV_LOAD_CONTROL, "").strip().lower() or "adaptive"
    if raw not in ("adaptive", "fixed"):
        raise InvalidInputError(f"{ENV_LOAD_CONTROL}={raw!r}: use adaptive or fixed")
    return raw


def _prc_opener(environment: IrodsEnvironment, ticket: str | None = None, address: str | None = None) -> Opener:
    def open_backend(io_timeout: float) -> Backend:
        from .backend import PrcBackend  # lazy: importing secure_irods stays free of PRC

        anonymous = environment.settings.get("irods_user_name") == "anonymous"
        return PrcBackend.connect(environment.env_file, None if anonymous else environment.auth_file, io_timeout,
                                  ticket=ticket, address=address)

    return open_backend


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInputError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise InvalidInputError(f"{name} must be > 0")
    return value

