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
from typing import Any

from rich.console import Console

from .display import format_size
from .layout import Key

__all__ = ["Coverage", "FULL", "MISSING", "PARTIAL", "render_coverage", "render_ls", "ls_records"]

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

    def to_dict(self) -> dict:
        """For ``--json``: the days, each station's channels, its state per day and its share of full days."""
        return {"days": [d.isoformat() for d in self.days],
                "stations": [{"station": s, "channels": sorted(self.channels[s]), "full": round(self.fraction(s), 4),
                              "states": {d.isoformat(): self.state(s, d) for d in self.days}}
                             for s in self.stations]}

    def fraction(self, station: str) -> float:
        """Share of station-days with every channel, over :attr:`days`."""
        if not self.days:
            return 0.0
        return sum(self.state(station, d) == "full" for d in self.days) / len(self.days)


def ls_records(items: Iterable[tuple[Key, object]]) -> list[dict]:
    """``(Key, Entry)`` items as plain records (``seisstore ls --json``): every field, sizes in bytes."""
    return [{"id": key.seed_id, "net": key.net, "sta": key.sta, "loc": key.loc, "cha": key.cha,
             "day": key.day.isoformat(), "size": entry.size, "checksum": entry.checksum,
             "resources": list(entry.resources), "path": entry.path,
             "modified": entry.modify_time.isoformat() if entry.modify_time else None}
            for key, entry in items]


def render_ls(console: Console, items: Iterable[tuple[Key, Any]], *, long: bool = False,
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
        row = [key.seed_id, key.day.isoformat(), format_size(entry.size), ",".join(entry.resources)]
        if long:
            row += [entry.checksum or "-", entry.path]
        table.add_row(*row)
        n += 1
        total += entry.size
    if n:
        console.print(table)
    suffix = " (more not shown)" if more else ""
    console.print(f"{n} files, {format_size(total)}{suffix}")
    return n


#: Runs of at least this many days without any data are folded into one column.
FOLD_DAYS = 7
GAP = "┆"


def _columns(coverage: Coverage, room: int) -> list[tuple[datetime.date, ...]]:
    """Day groups to draw, one per column: long runs with no data at all fold into an empty
    group (one ``┆``), and what remains is binned so it fits in ``room`` columns."""
    have = {day for _, day in coverage.cells}
    groups: list[list[datetime.date]] = []
    run: list[datetime.date] = []
    for day in coverage.days:
        if day in have:
            if len(run) >= FOLD_DAYS:
                groups.append([])           # the folded gap
            else:
                groups.extend([d] for d in run)
            run = []
            groups.append([day])
        else:
            run.append(day)
    shown = sum(1 for g in groups if g)
    per = max(1, -(-shown // max(room - sum(1 for g in groups if not g), 1)))
    columns: list[tuple[datetime.date, ...]] = []
    for group in groups:
        if not group:
            columns.append(())
        elif columns and columns[-1] and len(columns[-1]) < per:
            columns[-1] = (*columns[-1], *group)
        else:
            columns.append(tuple(group))
    return columns


def _cell(coverage: Coverage, station: str, days: tuple[datetime.date, ...]) -> str:
    if not days:
        return GAP
    states = {coverage.state(station, d) for d in days}
    if states == {"full"}:
        return FULL
    return MISSING if states == {"missing"} else PARTIAL


def render_coverage(console: Console, coverage: Coverage, *, width: int | None = None) -> None:
    """Print one line per station: one character per day (█ all channels, ▄ some, · none).

    The axis spans the days that have data: runs of :data:`FOLD_DAYS` or more days with
    no data for any station fold into one ``┆``, and when more days remain than fit the
    console, each column stands for several days (█ only if every one is complete).
    The percentage is the share of complete station-days over the days drawn.
    """
    from rich.table import Table

    if not coverage.stations:
        console.print("nothing available")
        return
    label = max(len(s) for s in coverage.stations)
    room = max((width or console.width) - label - 12, 10)
    columns = _columns(coverage, room)
    drawn = [d for col in columns for d in col]
    per = max((len(c) for c in columns), default=1)
    table = Table(show_edge=False, header_style="bold", box=None, pad_edge=False)
    table.add_column("station", no_wrap=True)
    table.add_column(f"{drawn[0].isoformat()} .. {drawn[-1].isoformat()}", no_wrap=True)
    table.add_column("full", justify="right", no_wrap=True)
    styles = {FULL: "green", PARTIAL: "yellow", MISSING: "red", GAP: "dim"}
    for station in coverage.stations:
        line = "".join(_cell(coverage, station, col) for col in columns)
        text = "".join(f"[{styles[c]}]{c}[/]" for c in line)
        full = sum(coverage.state(station, d) == "full" for d in drawn) / len(drawn)
        table.add_row(station, text, f"{full:.0%}")
    console.print(table)
    folded = len(coverage.days) - len(drawn)
    notes = [f"1 column = {per} days" if per > 1 else "",
             f"{folded} days without data folded ({GAP})" if folded else ""]
    note = "; ".join(n for n in notes if n)
    console.print(f"{len(coverage.stations)} stations x {len(drawn)} days{f' ({note})' if note else ''}; "
                  f"{FULL} all channels, {PARTIAL} some, {MISSING} none")
