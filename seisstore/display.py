"""What seisstore's long commands show a person: sizes and progress, on stderr.

Sizes and rates are written in IEC binary units everywhere (1 KiB = 1024 B, 1 MiB =
1024 KiB): :func:`format_size`.  Progress is one :class:`Meter`: a rich bar when stderr
is a terminal; off a terminal (a batch job's log, where redraws would fill the file) the
bar is disabled and a plain line is printed every ``every`` seconds instead (``0``: none).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskID,
                           TextColumn, TimeRemainingColumn)
from rich.text import Text

__all__ = ["format_size", "Meter"]

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_size(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``: IEC units, one decimal above a byte."""
    for unit in UNITS:
        if abs(n) < 1024 or unit == UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class _Amount(ProgressColumn):
    """Bytes as sizes (``DownloadColumn``), anything else as ``done/total``."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes, self._count = DownloadColumn(binary_units=True), MofNCompleteColumn()

    def render(self, task: Task) -> Text:
        return (self._bytes if task.fields.get("bytes") else self._count).render(task)


class _Speed(ProgressColumn):
    """Bytes per second in the same IEC units (rich's own speed column is decimal)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not task.fields.get("bytes") or speed is None:
            return Text("")
        return Text(f"{format_size(speed)}/s", style="progress.data.speed")


_M = TypeVar("_M", bound="Meter")


class Meter:
    """``with Meter(console) as meter: t = meter.task("moves", total, bytes=True); meter.advance(t, n)``.

    Thread-safe.  ``line`` writes the periodic line off a terminal (default: each task's
    progress, rate and time left); ``clock`` is injectable for tests.
    """

    def __init__(self, console: Console | None = None, *, label: str = "", every: float = 30.0,
                 line: Callable[["Meter"], str] | None = None, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console or Console(stderr=True)
        self.label, self.every, self.clock = label, every, clock
        self._line = line or Meter.default_line
        on = self.console.is_terminal if enabled is None else enabled
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), _Amount(), _Speed(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[note]}"), console=self.console,
                                 disable=not on, get_time=clock)
        self.started = clock()
        self._next = self.started + every
        self._lock = threading.Lock()

    @property
    def is_bar(self) -> bool:
        return not self.progress.disable

    def task(self, description: str, total: float | None = None, *, bytes: bool = False, completed: int = 0,
             start: bool = True) -> TaskID:
        return self.progress.add_task(description, total=total, completed=completed, start=start, bytes=bytes,
                                      note="")

    def update(self, task: TaskID, *, total: float | None = None) -> None:
        with self._lock:
            self.progress.update(task, total=total)

    def start(self, task: TaskID) -> None:
        self.progress.start_task(task)

    def advance(self, task: TaskID, amount: float = 1, note: str | None = None) -> None:
        with self._lock:
            if note is None:
                self.progress.update(task, advance=amount)
            else:
                self.progress.update(task, advance=amount, note=note)
            now = self.clock()
            if not self.is_bar and self.every and now >= self._next:
                self._next = now + self.every
                self.console.print(self._line(self), markup=False, highlight=False)

    def print(self, text: str) -> None:
        """A line above the bar (or in the log), e.g. a failure."""
        self.progress.console.print(text)

    def default_line(self) -> str:
        parts = []
        for task in self.progress.tasks:
            amount = format_size if task.fields.get("bytes") else (lambda n: f"{n:.0f}")
            text = f"{task.description} {amount(task.completed)}"
            if task.total is not None:
                text += f" of {amount(task.total)}"
            elapsed = self.clock() - self.started
            if task.fields.get("bytes") and elapsed > 0 and task.completed:
                rate = task.completed / elapsed
                text += f", {format_size(rate)}/s"
                if task.total is not None:
                    text += f", ETA {(task.total - task.completed) / rate:.0f} s"
            parts.append(text)
        return f"{time.strftime('%H:%M:%S')} {self.label + ': ' if self.label else ''}{'; '.join(parts)}"

    def __enter__(self: _M) -> _M:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)
