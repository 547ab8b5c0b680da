"""What every ``seisstore`` command shares: the console, :class:`Failure`, the zone context
object, the layout and selection options, and the parsers of dates and stations.

Exit codes are not chosen here: a command raises our error types (or :class:`Failure`
with a code from the table) and ``secure_irods.exitcodes`` maps every one of them, once,
for every entry point.  :func:`doing` only names what failed in that one line.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

import click
from rich.console import Console

from secure_irods.exitcodes import ExitCode, exit_code
from seisstore.display import Meter, format_size

if TYPE_CHECKING:
    from secure_irods.client import Client
    from seisstore.layout import Layout

__all__ = ["console", "Failure", "doing", "Zone", "pass_zone", "format_size", "Meter", "LAYOUT_HELP",
           "layout_of", "selection_options", "parse_dates", "parse_stations", "json_option", "emit_json",
           "results_console"]

F = TypeVar("F", bound=Callable[..., Any])

#: Messages and progress for a person go to stderr; stdout carries only results.
console = Console(stderr=True)


#: Off a terminal (a pipe, a log), results are printed this wide: no id or path is cut or wrapped.
PIPE_WIDTH = 10_000


def results_console() -> Console:
    """stdout for results: a terminal's width on a terminal; off one, wide enough that tables
    keep whole ids and paths (``seisstore ls -l | cat``, ``> listing.txt``)."""
    out = Console()
    return out if out.is_terminal else Console(width=PIPE_WIDTH, highlight=False)


def json_option(fn: F) -> F:
    """``--json``: one JSON document on stdout instead of the tables, for scripts."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON document on stdout (for scripts) instead of tables.")(fn)


def emit_json(data: Any) -> None:
    """The one way a command prints JSON: indented, dates and paths as strings."""
    click.echo(json.dumps(data, indent=2, default=str))


class Failure(click.ClickException):
    """One clear line on stderr and a code from the toolkit's table, never a traceback."""

    def __init__(self, message: str, code: int = ExitCode.PERMANENT) -> None:
        super().__init__(message)
        self.exit_code = int(code)  # type: ignore[misc]  # click reads it per instance, as its docs show


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Prefix the one failure line with ``what`` (``ingest into /zone/x``); the exit code
    stays the one :func:`secure_irods.exitcodes.exit_code` gives the error."""
    try:
        yield
    except click.ClickException:
        raise
    except Exception as exc:
        code, line = exit_code(exc)
        raise Failure(f"{what}: {line}", code) from exc


class Zone:
    """The group's context object: the command's ``secure_irods`` client, made on first use.

    Building nothing up front keeps ``--help`` and local-only commands free of any iRODS
    environment.  ``shared_deadline``: a short command (``ls``, ``mkdir``...) gives all its
    calls one deadline, so it ends in bounded time; a long one (``ingest``, ``rebalance``)
    gives each call its own.  The client is closed when the command's context closes.
    """

    def __init__(self, connect: Callable[[], "Client"] | None = None) -> None:
        if connect is None:
            from secure_irods.client import connect as default_connect

            connect = default_connect
        self.connect = connect
        self._client: Client | None = None

    def client(self, *, shared_deadline: bool = True) -> "Client":
        if self._client is None:
            client = self.connect()
            if shared_deadline:
                client.deadline = client.policy.start_deadline()
            self._client = client
        return self._client

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()


pass_zone = click.make_pass_decorator(Zone, ensure=True)

LAYOUT_HELP = "sds, whisper, or a format string such as '{date}/{net}.{sta}.{loc}.{cha}.mseed'."


def layout_of(spec: str) -> "Layout":
    from seisstore.layout import get_layout

    try:
        return get_layout(spec)
    except ValueError as exc:
        raise Failure(str(exc).splitlines()[0], ExitCode.USAGE) from None


def selection_options(fn: F) -> F:
    """``--layout --station --date --channel``: which day files of an archive a command reads."""
    for option in reversed([
        click.option("--layout", "layout_spec", default="sds", show_default=True, help=LAYOUT_HELP),
        click.option("--station", "stations", default=None, help="STA or NET.STA codes: comma list or @file."),
        click.option("--date", "dates", default=None, help="2011-03-01..2011-03-31, a comma list, or @file."),
        click.option("--channel", "channels", default=None, help="Channel codes, comma list."),
    ]):
        fn = option(fn)
    return fn


def parse_dates(text: str) -> list[datetime.date]:
    """`2011-03-01..2011-03-31`, a comma list, or `@file` with one ISO date a line."""
    if text.startswith("@"):
        return [_date(i) for i in _lines_of(text[1:], "dates")]
    if ".." in text:
        first, _, last = text.partition("..")
        start, end = _date(first), _date(last)
        if end < start:
            raise Failure(f"date range {text!r} ends before it starts", ExitCode.USAGE)
        return [start + datetime.timedelta(days=d) for d in range((end - start).days + 1)]
    return [_date(i) for i in text.split(",") if i.strip()]


def parse_stations(text: str) -> list[str]:
    """A comma list, or `@file` with one station a line."""
    if text.startswith("@"):
        return _lines_of(text[1:], "stations")
    return [s.strip() for s in text.split(",") if s.strip()]


def _lines_of(path: str, what: str) -> list[str]:
    try:
        return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise Failure(f"cannot read {what} from {path}: {exc.strerror}", ExitCode.USAGE) from None


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise Failure(f"not a date (YYYY-MM-DD): {text.strip()!r}", ExitCode.USAGE) from None


def save_figure(fig: Any, output: Path, what: str) -> None:
    """Write a plot command's figure (its directory made), free it, and say where it went on stderr."""
    import matplotlib.pyplot as plt

    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)
    click.echo(f"{what} -> {output}", err=True)
