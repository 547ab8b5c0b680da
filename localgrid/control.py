"""Control socket of a running grid: read its counters, change its faults.

A UNIX socket in the grid directory (only its owner can reach it), one JSON request and
one JSON answer per connection, so a test or an operator flips a fault between two calls.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

SOCKET_NAME = "control.sock"


class ControlServer:
    def __init__(self, server) -> None:
        self.server = server
        self.path = server.root / socket_name(server.port if getattr(server, "consumer", False) else None)
        self.path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        try:
            self.sock.close()
        finally:
            self.path.unlink(missing_ok=True)

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    request = json.loads(_read_line(conn))
                    answer = self.handle(request)
                except (ValueError, TypeError, KeyError) as exc:
                    answer = {"ok": False, "error": str(exc)}
                conn.sendall(json.dumps(answer).encode() + b"\n")

    def handle(self, request: dict) -> dict:
        cmd = request.get("cmd")
        if cmd == "stats":
            return {"ok": True, "stats": self.server.snapshot(), "faults": self.server.faults.as_dict()}
        if cmd == "reset-stats":
            self.server.reset_stats()
            return {"ok": True}
        if cmd == "set":
            self.server.faults.update(**request.get("faults", {}))
            return {"ok": True, "faults": self.server.faults.as_dict()}
        if cmd == "stop":
            self.server.stop()
            return {"ok": True}
        raise ValueError(f"unknown command {cmd!r}")


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def socket_name(port: int | None = None) -> str:
    """The provider's control socket, or a consumer's (``port``: the port it listens on)."""
    return SOCKET_NAME if port is None else f"control-{port}.sock"


class GridControl:
    """Client side: ``GridControl(root).set(drop_rate=0.1)``, ``.stats()``; ``port``: a consumer's."""

    def __init__(self, root: str | Path, port: int | None = None) -> None:
        self.path = Path(root) / socket_name(port)

    def request(self, **request) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.path))
            s.sendall(json.dumps(request).encode() + b"\n")
            answer = json.loads(_read_line(s))
        if not answer.get("ok"):
            raise ValueError(answer.get("error", "control request failed"))
        return answer

    def stats(self) -> dict:
        return self.request(cmd="stats")["stats"]

    def faults(self) -> dict:
        return self.request(cmd="stats")["faults"]

    def set(self, **faults) -> dict:
        if "down" in faults:
            faults["down"] = sorted(faults["down"])
        return self.request(cmd="set", faults=faults)["faults"]

    def reset_stats(self) -> None:
        self.request(cmd="reset-stats")
