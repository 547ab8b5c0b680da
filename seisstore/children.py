"""Child processes stop with the command that started them.

Python's default SIGTERM kills the interpreter on the spot: no ``finally`` runs, so a
local grid, ``start.bash`` jobs (each in its own session, as a batch system runs them)
and their ``secure-iget`` calls would live on, retrying against a grid that is gone.
:func:`unwind_on_sigterm` turns SIGTERM into :class:`Terminated`, a ``KeyboardInterrupt``
as Ctrl-C raises, so both unwind the same way through the code that owns each child;
:func:`stop_group` is how the owner stops a child and everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "stop_group", "unwind_on_sigterm"]


class Terminated(KeyboardInterrupt):
    """SIGTERM reached the command: unwind as for Ctrl-C (exit 130, one line)."""


@contextlib.contextmanager
def unwind_on_sigterm() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread while the block runs.

    Elsewhere than the main thread (where Python cannot install handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_group(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """Stop ``proc``'s process group (it leads one: ``start_new_session=True``): TERM, then KILL.

    TERM first lets a job's own handlers remove its temporaries; KILL after ``grace``
    seconds, and always to the whole group, so a grandchild that ignored TERM (or was
    busy) does not outlive it."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:   # the leader is gone; its group may not be
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        return
