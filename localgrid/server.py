"""The listening server: accepts clients, enforces the connection cap, runs one agent each.

A connection first waits, threadless, in one selector until its first bytes arrive; then
a thread reads its startup pack, which must be complete within ``handshake_timeout``
seconds of the accept, or the connection is closed (counted ``handshake_timeouts``).  Only
then is it admitted against the cap -- the fault cap (``--max-connections``) or the
server's own ``connection_limit`` (:data:`DEFAULT_CONNECTION_LIMIT`) -- or refused with
``SYS_MAX_CONNECT_COUNT_EXCEEDED``, as rodsServer refuses after reading the startup pack.
So silent or dribbling sockets (a port scanner, a slowloris) never hold a slot a client
needs nor an agent's memory, and an admitted agent idle for ``idle_timeout`` seconds is
closed.  An agent holds a transfer buffer only while it has a data object open.

A grid lives in one directory: ``catalog.sqlite`` (the iCAT), ``vault/<resource>/``
(the bytes), ``irods_environment.json`` and ``.irodsA`` (what a client needs to log in),
and ``control.sock`` (faults and counters while it runs).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import selectors
import socket
import threading
import time
from pathlib import Path

from . import protocol as p
from .agent import Agent, version_pack
from .catalog import open_catalog
from .errors import ErrorCode
from .faults import FaultPolicy
from .state import GridState

log = logging.getLogger("localgrid.server")

ADMIN = "rods"
#: Agents at most (connections past their startup pack): a laptop's grid, not a zone's.
DEFAULT_CONNECTION_LIMIT = 500
#: Seconds a connection has, from its accept, to send its whole startup pack.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0


def _raise_fd_limit() -> None:
    """Each connection is a descriptor: take the hard limit, as servers do (``ulimit -n`` is often 1024)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        except (ValueError, OSError):
            pass


class GridBusyError(RuntimeError):
    """A second server asked for a root a live server holds."""


class GridServer:
    """One listening server of a zone.

    The provider (the default) owns the root: it takes its lock, creates or reopens the
    catalogue and writes the client files.  A ``consumer`` serves a root a provider already
    serves, as an iRODS consumer serves the provider's zone: its own port and connection cap
    (its own agents), the same catalogue and vault; its control socket is ``control-<port>.sock``.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0, zone: str = "tempZone",
                 faults: FaultPolicy | None = None, password: str | None = None, consumer: bool = False,
                 connection_limit: int = DEFAULT_CONNECTION_LIMIT,
                 handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT, idle_timeout: float = 600.0) -> None:
        self.root = Path(root).resolve()
        self.zone = zone
        self.host = host
        self.consumer = consumer
        self.faults = faults or FaultPolicy()
        self.vault_root = self.root / "vault"
        self.catalog_path = self.root / "catalog.sqlite"
        self._stop = threading.Event()
        self._lock_fd = None if consumer else self._lock_root()
        self.password = self._join() if consumer else self._bootstrap(password)
        self.state = GridState(zone=self.zone, vault_root=self.vault_root, catalog_path=self.catalog_path,
                               faults=self.faults, idle_timeout=idle_timeout)
        self.connection_limit, self.handshake_timeout = connection_limit, handshake_timeout
        self._last_refusal_log = 0.0
        self.listener = socket.create_server((host, port), backlog=512, reuse_port=False)
        self.port = self.listener.getsockname()[1]
        self._control = None

    # ---------------------------------------------------------------- setup ------
    def _lock_root(self) -> int:
        """One server per root: an flock on ``serve.lock``, held for the server's life.

        The kernel drops it when the holder dies, even by SIGKILL, so a killed server's
        root is taken over by the next one; a live one makes the second refuse.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "serve.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise GridBusyError(f"another grid already serves {self.root} (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _bootstrap(self, password: str | None) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)   # the catalogue holds the users' passwords
        (self.vault_root / "demoResc").mkdir(parents=True, exist_ok=True)
        cat = open_catalog(self.root)
        try:
            fresh_password = password or secrets.token_urlsafe(12)
            if cat.bootstrap(self.zone, ADMIN, fresh_password, self.vault_root):
                return fresh_password
            zone = cat.local_zone()
            self.zone = zone
            with cat.transaction():
                # replicas that were open for writing when the server stopped never finished:
                # nothing holds them any more, so they are stale, not locked forever
                cat.stale_intermediate_replicas()
            row = cat.user(ADMIN, zone)
            if password:   # an explicit password on restart resets the admin's
                with cat.transaction():
                    cat.set_password(row["user_id"], password)
                return password
            return row["rcat_password"]
        finally:
            cat.close()

    def _join(self) -> str:
        """A consumer: the zone and admin password of the provider's catalogue, nothing changed."""
        if not self.catalog_path.exists():
            raise GridBusyError(f"no grid to serve as a consumer in {self.root} (start its provider first)")
        cat = open_catalog(self.root)
        try:
            self.zone = cat.local_zone()
            return cat.user(ADMIN, self.zone)["rcat_password"]
        finally:
            cat.close()

    def write_client_files(self) -> None:
        """irods_environment.json and .irodsA, as `iinit` leaves them for the admin."""
        from irods.password_obfuscation import encode

        auth = self.root / ".irodsA"
        env = {
            "irods_host": self.host, "irods_port": self.port, "irods_user_name": ADMIN,
            "irods_zone_name": self.zone, "irods_default_resource": self.state.default_resource,
            "irods_home": f"/{self.zone}/home/{ADMIN}", "irods_cwd": f"/{self.zone}/home/{ADMIN}",
            "irods_authentication_scheme": "native", "irods_authentication_file": str(auth),
            "irods_client_server_policy": "CS_NEG_REFUSE",
        }
        fd = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(encode(self.password))
        tmp = self.root / "irods_environment.json.tmp"
        tmp.write_text(json.dumps(env, indent=2) + "\n")
        os.replace(tmp, self.root / "irods_environment.json")

    # ---------------------------------------------------------------- counters ---
    def count(self, key: str, delta: int = 1) -> None:
        self.state.counters.count(key, delta)

    def snapshot(self) -> dict:
        return self.state.counters.snapshot()

    def reset_stats(self) -> None:
        self.state.counters.reset()

    # ---------------------------------------------------------------- serving ----
    def serve_forever(self) -> None:
        """Accept, and keep each new connection in the selector until its first bytes arrive."""
        from .control import ControlServer

        _raise_fd_limit()
        self._control = ControlServer(self)
        self._control.start()
        self.listener.setblocking(False)
        waiting: dict[socket.socket, float] = {}      # connection -> its handshake deadline
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            try:
                while not self._stop.is_set():
                    for key, _ in selector.select(timeout=0.5):
                        if key.fileobj is self.listener:
                            self._accept(selector, waiting)
                        else:   # bytes arrived: a thread reads the startup pack, bounded by the deadline
                            sock = key.fileobj
                            selector.unregister(sock)
                            threading.Thread(target=self._handshake, args=(sock, waiting.pop(sock)),
                                             daemon=True).start()
                    now = time.monotonic()
                    for sock in [s for s, deadline in waiting.items() if deadline <= now]:
                        selector.unregister(sock)
                        del waiting[sock]
                        self._close(sock, "handshake_timeouts")
            finally:
                for sock in waiting:
                    sock.close()
                self.listener.close()
                self._control.stop()

    def _accept(self, selector: selectors.BaseSelector, waiting: dict) -> None:
        for _ in range(64):   # a burst of connections, without starving the others
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:   # out of file descriptors: the others go on; this one waits
                log.warning("accept failed: %s", exc)
                return
            selector.register(sock, selectors.EVENT_READ)
            waiting[sock] = time.monotonic() + self.handshake_timeout

    def _handshake(self, sock: socket.socket, deadline: float) -> None:
        """Read the startup pack by ``deadline``, then admit the connection against the cap or refuse it."""
        try:
            sock.setblocking(True)
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            startup = p.read_message(sock)   # a dribbling client runs out of time here
        except TimeoutError:
            self._close(sock, "handshake_timeouts")
            return
        except (p.PeerClosed, p.ProtocolError, OSError):
            self._close(sock, "bad_clients")
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):   # 4-8 MiB messages: fewer wake-ups per chunk
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        caps = [c for c in (self.faults.max_connections, self.connection_limit) if c]
        if not self.state.counters.admit(min(caps) if caps else 0):
            self._refuse(sock)
            return
        self._run_agent(sock, startup)

    def _close(self, sock: socket.socket, counter: str) -> None:
        self.count(counter)
        try:
            sock.close()
        except OSError:
            pass

    def _refuse(self, sock: socket.socket) -> None:
        """rodsServer.cpp: after the startup pack, chkAgentProcCnt fails, sendVersion(status), close."""
        now = time.monotonic()
        if self.connection_limit and self.state.counters.snapshot()["active"] >= self.connection_limit \
                and now - self._last_refusal_log > 10:
            self._last_refusal_log = now
            log.warning("refusing connections: %d agents running, the limit (--connection-limit)",
                        self.connection_limit)
        try:
            sock.sendall(version_pack(ErrorCode.SYS_MAX_CONNECT_COUNT_EXCEEDED))
        except OSError:
            pass
        finally:
            sock.close()

    def _run_agent(self, sock: socket.socket, startup: p.Message | None = None) -> None:
        try:
            Agent(self.state, sock).run(startup)
        except Exception:   # an agent bug must never take the server down
            self.count("bad_clients")
            log.exception("agent crashed")
            try:
                sock.close()
            except OSError:
                pass
        finally:
            self.count("active", -1)

    def stop(self) -> None:
        self._stop.set()
