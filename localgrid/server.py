"""The listening server: accepts clients, enforces the connection cap, runs one agent each.

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
import socket
import threading
from pathlib import Path

from .agent import Agent, version_pack
from .catalog import open_catalog
from .errors import ErrorCode
from .faults import FaultPolicy
from .state import GridState

log = logging.getLogger("localgrid.server")

ADMIN = "rods"


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
                 faults: FaultPolicy | None = None, password: str | None = None, consumer: bool = False) -> None:
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
                               faults=self.faults)
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
        from .control import ControlServer

        self._control = ControlServer(self)
        self._control.start()
        self.listener.settimeout(0.5)
        try:
            while not self._stop.is_set():
                try:
                    sock, addr = self.listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                self._admit(sock)
        finally:
            self.listener.close()
            self._control.stop()

    def _admit(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):   # 4-8 MiB messages: fewer wake-ups per chunk
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        if not self.state.counters.admit(self.faults.max_connections):
            threading.Thread(target=self._refuse, args=(sock,), daemon=True).start()
            return
        threading.Thread(target=self._run_agent, args=(sock,), daemon=True).start()

    def _refuse(self, sock: socket.socket) -> None:
        """rodsServer.cpp: after accept, chkAgentProcCnt fails, sendVersion(status), close."""
        try:
            sock.sendall(version_pack(ErrorCode.SYS_MAX_CONNECT_COUNT_EXCEEDED))
        except OSError:
            pass
        finally:
            sock.close()

    def _run_agent(self, sock: socket.socket) -> None:
        try:
            Agent(self.state, sock).run()
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
