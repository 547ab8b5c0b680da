"""seisstore.display: sizes in IEC units, and the one progress helper off a terminal (a batch log)."""

from __future__ import annotations

import io

from rich.console import Console

from clocks import FakeClock
from seisstore.display import Meter, format_size


def test_sizes_are_iec():
    assert [format_size(n) for n in (0, 1023, 1024, 1536, 5 * 1024 ** 2, 3 * 1024 ** 4, 2 * 1024 ** 6)] == \
        ["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB", "3.0 TiB", "2048.0 PiB"]


def test_off_a_terminal_the_bar_is_off_and_a_line_comes_every_period():
    out = io.StringIO()
    fake = FakeClock()
    with Meter(Console(file=out, force_terminal=False, width=200), label="move", every=10, clock=fake.clock) as m:
        assert not m.is_bar
        moves, moved = m.task("moves", 8), m.task("bytes", 8 * 1024 ** 2, bytes=True)
        for _ in range(8):
            fake.now += 4                   # a move of 1 MiB every 4 s, for 32 s
            m.advance(moves)                # the first advance at or past a period prints the line
            m.advance(moved, 1024 ** 2, note="done")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines           # at 12 s and 24 s; the next would be at 34 s
    assert lines[0].endswith("move: moves 3 of 8; bytes 2.0 MiB of 8.0 MiB, 170.7 KiB/s, ETA 36 s"), lines
    assert lines[1].endswith("move: moves 6 of 8; bytes 5.0 MiB of 8.0 MiB, 213.3 KiB/s, ETA 14 s"), lines


def test_every_zero_prints_nothing_off_a_terminal():
    out = io.StringIO()
    with Meter(Console(file=out, force_terminal=False), every=0) as m:
        task = m.task("jobs", 2)
        m.advance(task)
        m.advance(task)
    assert out.getvalue() == ""
