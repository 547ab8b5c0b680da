"""Station x day availability, and the terminal views of ``seisstore ls`` / ``seisstore coverage``.

:class:`Coverage` is computed from keys only (no query). The two ``render_*``
functions print to a :class:`rich.console.Console` the caller gives, so the
CLI passes its stdout console and tests a recording one.
"""
from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .layout import Key

__all__ = ["Coverage", "FULL", "MISSING", "PARTIAL", "render_coverage", "render_ls"]

#: One character per station-day: every channel of the station, some, none.
FULL, PARTIAL, MISSING = "█", "▄", "·"


@dataclass
class Coverage:
    """Which channels of which station exist on which day.

    ``stations`` are ``NET.STA`` codes, sorted; ``days`` is every day from the
    first to the last available one (gaps included), so it draws as a time axis.
    """

    stations: list[str] = field(default_factory=list)
    days: list[datetime.date] = field(default_factory=list)
    channels: dict[str, set[str]] = field(default_factory=dict)
    cells: dict[tuple[str, datetime.date], set[str]] = field(default_factory=dict)

    @classmethod
    def from_keys(cls, keys: Iterable[Key]) -> "Coverage":
        channels: dict[str, set[str]] = defaultdict(set)
        cells: dict[tuple[str, datetime.date], set[str]] = defaultdict(set)
        for key in keys:
            station = f"{key.net}.{key.sta}"
            cha = f"{key.loc}.{key.cha}" if key.loc else key.cha
            channels[station].add(cha)
            cells[station, key.day].add(cha)
        if not cells:
            return cls()
        first = min(day for _, day in cells)
        last = max(day for _, day in cells)
        days = [first + datetime.timedelta(n) for n in range((last - first).days + 1)]
        return cls(sorted(channels), days, dict(channels), dict(cells))

    def available(self, station: str, day: datetime.date) -> set[str]:
        """Channels of ``station`` (``NET.STA``) present on ``day``."""
        return self.cells.get((station, day), set())

    def state(self, station: str, day: datetime.date) -> str:
        """``"full"``, ``"partial"`` or ``"missing"``."""
        have = self.available(station, day)
        if not have:
            return "missing"
        return "full" if have >= self.channels[station] else "partial"

    def row(self, station: str) -> str:
        """One character per day of :attr:`days`."""
        chars = {"full": FULL, "partial": PARTIAL, "missing": MISSING}
        return "".join(chars[self.state(station, day)] for day in self.days)

    def fraction(self, station: str) -> float:
        """Share of station-days with every channel, over :attr:`days`."""
        if not self.days:
            return 0.0
        return sum(self.state(station, d) == "full" for d in self.days) / len(self.days)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def render_ls(console, items: Iterable[tuple[Key, object]], *, long: bool = False,
              limit: int | None = None) -> int:
    """Print ``(Key, Entry)`` items as a table; return how many were listed.

    Columns: seed id, day, size, replicas' resources (and path, checksum with
    ``long``). ``limit`` stops after that many rows and says so.
    """
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("id")
    table.add_column("day")
    table.add_column("size", justify="right")
    table.add_column("resources")
    if long:
        table.add_column("checksum", overflow="fold")
        table.add_column("path", overflow="fold")
    n = total = 0
    more = False
    for key, entry in items:
        if limit is not None and n >= limit:
            more = True
            break
        row = [key.seed_id, key.day.isoformat(), _size(entry.size), ",".join(entry.resources)]
        if long:
            row += [entry.checksum or "-", entry.path]
        table.add_row(*row)
        n += 1
        total += entry.size
    if n:
        console.print(table)
    suffix = " (more not shown)" if more else ""
    console.print(f"{n} files, {_size(total)}{suffix}")
    return n


def render_coverage(console, coverage: Coverage, *, width: int | None = None) -> None:
    """Print one line per station: one character per day (█ all channels, ▄ some, · none).

    With more days than ``width`` (default: the console width minus the
    labels) the most recent days are shown.
    """
    from rich.table import Table

    if not coverage.stations:
        console.print("nothing available")
        return
    label = max(len(s) for s in coverage.stations)
    room = (width or console.width) - label - 12
    days = coverage.days[-max(room, 10):]
    table = Table(show_edge=False, header_style="bold", box=None, pad_edge=False)
    table.add_column("station", no_wrap=True)
    table.add_column(f"{days[0].isoformat()} .. {days[-1].isoformat()}", no_wrap=True)
    table.add_column("full", justify="right", no_wrap=True)
    styles = {FULL: "green", PARTIAL: "yellow", MISSING: "red"}
    for station in coverage.stations:
        line = "".join(
            {"full": FULL, "partial": PARTIAL, "missing": MISSING}[coverage.state(station, d)]
            for d in days
        )
        text = "".join(f"[{styles[c]}]{c}[/]" for c in line)
        table.add_row(station, text, f"{coverage.fraction(station):.0%}")
    console.print(table)
    shown = "" if len(days) == len(coverage.days) else f" (last {len(days)} of {len(coverage.days)} days)"
    console.print(f"{len(coverage.stations)} stations x {len(coverage.days)} days{shown}; "
                  f"{FULL} all channels, {PARTIAL} some, {MISSING} none")
