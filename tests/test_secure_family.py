"""Clients of one process that share a node window hand each other idle connections.

A process that keeps an idle connection (a catalogue lookup done) while one of its copies
needs another would wait for itself once the node's window is down to one connection:
ingest's parent and its upload threads did, until the deadline.  Real PRC over TCP.
"""

from __future__ import annotations

import threading

from secure_irods.client import connect
from secure_irods.policy import Deadline


def test_a_copy_takes_the_idle_connection_of_its_parent_when_the_window_holds_one(grid, coll, monkeypatch, tmp_path):
    for name, value in grid.environ().items():
        if name.startswith("IRODS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SECURE_IRODS_THROTTLE_DIR", str(tmp_path / "throttle"))
    monkeypatch.setenv("SECURE_IRODS_MAX_CONNECTIONS", "1")   # the window: one connection for the node
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 4096)
    with connect(deadline=Deadline(20)) as parent:
        assert parent.window is not None
        assert parent.exists(coll)                             # the parent now holds an idle connection
        assert parent.state == "open"
        done: list[object] = []
        worker = threading.Thread(target=lambda: done.append(parent.copy().put(src, f"{coll}/a.bin")))
        worker.start()
        worker.join(30)
        assert not worker.is_alive() and done, "the copy waited for its own parent's idle connection"
        assert parent.state == "idle"                          # it handed its connection over
        assert parent.exists(f"{coll}/a.bin")                  # and reconnects, within the window, when used
