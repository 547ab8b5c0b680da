"""The listening server: accepts clients, enforces the connection cap, runs one agent each.

A grid lives in one directory: ``catalog.sqlite`` (the iCAT), ``vault/<resource>/``
(the bytes), ``irods_environment.json`` and ``.irodsA`` (what a client needs to log in),
and ``control.sock`` (faults and counters while it runs).
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import socket
import threading
from pathlib import Path

from .agent import Agent
from .catalog import open_catalog
from .faults import FaultPolicy

log = logging.getLogger("localgrid.server")

ADMIN = "rods"


class ReplicaAccessTable:
    """Open-for-write replicas by token, shared by agents (the server's replica access table).

    A token lets the extra connections of a parallel transfer write the replica the first
    connection opened; if any of them dies, the replica is poisoned and will not be
    finalized as good.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, list] = {}

    def acquire(self, token: str, data_id: int, repl_num: int) -> None:
        with self._lock:
            entry = self._entries.setdefault(token, [data_id, repl_num, 0, False])
            entry[2] += 1

    def get(self, token: str) -> tuple | None:
        with self._lock:
            entry = self._entries.get(token)
            return tuple(entry) if entry else None

    def poison(self, token: str) -> None:
        with self._lock:
            if token in self._entries:
                self._entries[token][3] = True

    def release(self, token: str) -> bool:
        """Drop one reference; returns whether the replica was poisoned."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return False
            entry[2] -= 1
            if entry[2] <= 0:
                del self._entries[token]
            return entry[3]


class GridServer:
    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0, zone: str = "tempZone",
                 faults: FaultPolicy | None = None, password: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.zone = zone
        self.host = host
        self.faults = faults or FaultPolicy()
        self.rng = random.Random(self.faults.seed)
        self.vault_root = self.root / "vault"
        self.catalog_path = self.root / "catalog.sqlite"
        self.default_resource = "demoResc"
        self.idle_timeout = 600.0
        self.replica_table = ReplicaAccessTable()
        self._stats_lock = threading.Lock()
        self.stats = {"accepted": 0, "refused": 0, "active": 0, "max_active": 0, "api_calls": 0,
                      "drops": 0, "logins": 0, "auth_failures": 0, "bad_clients": 0}
        self._stop = threading.Event()
        self.password = self._bootstrap(password)
        self.listener = socket.create_server((host, port), backlog=512, reuse_port=False)
        self.port = self.listener.getsockname()[1]
        self._control = None

    # ---------------------------------------------------------------- setup ------
    def _bootstrap(self, password: str | None) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)   # the catalogue holds the users' passwords
        (self.vault_root / "demoResc").mkdir(parents=True, exist_ok=True)
        cat = open_catalog(self.root)
        try:
            fresh_password = password or secrets.token_urlsafe(12)
            if cat.bootstrap(self.zone, ADMIN, fresh_password, self.vault_root):
                return fresh_password
            zone = cat.one("SELECT zone_name FROM r_zone_main WHERE zone_type_name='local'")[0]
            self.zone = zone
            with cat.transaction() as db:
                # replicas that were open for writing when the server stopped never finished:
                # nothing holds them any more, so they are stale, not locked forever
                db.execute("UPDATE r_data_main SET data_is_dirty=0 WHERE data_is_dirty=2")
            row = cat.user(ADMIN, zone)
            if password:   # an explicit password on restart resets the admin's
                with cat.transaction() as db:
                    db.execute("INSERT OR REPLACE INTO r_user_password VALUES (?, ?)", (row["user_id"], password))
                return password
            return row["rcat_password"]
        finally:
            cat.close()

    def write_client_files(self) -> None:
        """irods_environment.json and .irodsA, as `iinit` leaves them for the admin."""
        from irods.password_obfuscation import encode

        auth = self.root / ".irodsA"
        env = {
            "irods_host": self.host, "irods_port": self.port, "irods_user_name": ADMIN,
            "irods_zone_name": self.zone, "irods_default_resource": self.default_resource,
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
        with self._stats_lock:
            self.stats[key] += delta
            if key == "active":
                self.stats["max_active"] = max(self.stats["max_active"], self.stats["active"])

    def snapshot(self) -> dict:
        with self._stats_lock:
            return dict(self.stats)

    def reset_stats(self) -> None:
        with self._stats_lock:
            for key in self.stats:
                if key != "active":
                    self.stats[key] = 0
            self.stats["max_active"] = self.stats["active"]

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
        with self._stats_lock:
            self.stats["accepted"] += 1
            cap = self.faults.max_connections
            refused = bool(cap) and self.stats["active"] >= cap
            if refused:
                self.stats["refused"] += 1
            else:
                self.stats["active"] += 1
                self.stats["max_active"] = max(self.stats["max_active"], self.stats["active"])
        if refused:
            threading.Thread(target=self._refuse, args=(sock,), daemon=True).start()
            return
        threading.Thread(target=self._run_agent, args=(sock,), daemon=True).start()

    def _refuse(self, sock: socket.socket) -> None:
        """rodsServer.cpp: after accept, chkAgentProcCnt fails, sendVersion(status), close."""
        from . import protocol as p
        from .agent import API_VERSION, SERVER_VERSION

        code = -118000  # SYS_MAX_CONNECT_COUNT_EXCEEDED
        body = p.pack("Version_PI", [("status", code), ("relVersion", SERVER_VERSION), ("apiVersion", API_VERSION),
                                     ("reconnPort", 0), ("reconnAddr", ""), ("cookie", 400)])
        try:
            sock.sendall(p.frame("RODS_VERSION", code, body))
        except OSError:
            pass
        finally:
            sock.close()

    def _run_agent(self, sock: socket.socket) -> None:
        try:
            Agent(self, sock).run()
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
