"""Child processes stop with the command that started them.

Python's default SIGTERM kills the interpreter on the spot: no ``finally`` runs, so a
local grid, ``start.bash`` jobs (each in its own session, as a batch system runs them)
and their ``secure-iget`` calls would live on, retrying against a grid that is gone.
:func:`unwind_on_sigterm` turns SIGTERM into :class:`Terminated`, a ``KeyboardInterrupt``
as Ctrl-C raises, so both unwind the same way through the code that owns each child;
:func:`stop_groups` is how the owner stops children and everything they started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "stop_groups", "unwind_on_sigterm"]


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


def stop_groups(procs: list[subprocess.Popen], grace: float = 3.0) -> None:
    """Stop the process groups ``procs`` lead (``start_new_session=True``): TERM to all, then KILL.

    TERM first lets a job's own handlers remove its temporaries; after ``grace`` seconds
    (shared: the groups stop together) KILL goes to every group, always, so a grandchild
    that ignored TERM, or outlived its leader, does not live on."""
    import time

    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
