"""One exit-code table for every command of the toolkit, because schedulers act on it.

====  ==========================================================  =================
code  meaning                                                     scheduler action
====  ==========================================================  =================
0     done
1     bad options or environment (usage errors included)          fix the job
2     transient failure still there at the deadline               resubmit later
3     permanent failure (missing object, exists, permission,      fail the job
      checksum mismatch, bad data)
7     authentication refused (never retried)                      fix credentials
====  ==========================================================  =================

:func:`exit_code` is the one mapping from a failure to the table, read from our error
classes (``SecureIrodsError.exit_code``; anything else is classified first), never from
a message.  :func:`call` runs any entry point (a job module's ``run``) under it, and
:func:`run` a click command, so every outcome is one of these codes and at most one line
on stderr, never a traceback.  click's own usage errors exit 2, which a scheduler would
read as "resubmit"; here they are 1.
"""

from __future__ import annotations

import enum
import logging
from typing import Callable

import click

from .errors import classify

__all__ = ["ExitCode", "exit_code", "call", "run"]

logger = logging.getLogger("secure_irods.cli")


class ExitCode(enum.IntEnum):
    OK = 0
    USAGE = 1
    TRANSIENT = 2
    PERMANENT = 3
    AUTHENTICATION = 7
    INTERRUPTED = 130


def exit_code(exc: BaseException) -> tuple[int, str]:
    """The table's code for ``exc`` and the one line that says why (redacted, on one line)."""
    if isinstance(exc, click.UsageError):
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        return ExitCode.USAGE, f"error: {exc.format_message()}{hint}"
    if isinstance(exc, click.ClickException):
        code = exc.exit_code if exc.exit_code in set(ExitCode) else ExitCode.PERMANENT
        return code, f"error: {' '.join(exc.format_message().split())}"
    if isinstance(exc, (click.exceptions.Abort, KeyboardInterrupt)):
        return ExitCode.INTERRUPTED, "interrupted"
    err = classify(exc)    # ours as they are; anything unforeseen classified, never a traceback
    return err.exit_code, f"{type(err).__name__}: {' '.join(err.message.split())}"


def call(fn: Callable[[], object], prog: str) -> int:
    """Run ``fn()``; return its exit code from the table, having printed at most one line.

    ``fn`` returning an int returns it (a job's own status); ``SystemExit`` passes its code.
    """
    try:
        result = fn()
    except click.exceptions.Exit as exc:  # --help, ctx.exit(n)
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.OK if exc.code is None else ExitCode.USAGE
    except BaseException as exc:
        if not isinstance(exc, (Exception, KeyboardInterrupt)):
            raise
        code, line = exit_code(exc)
        click.echo(f"{prog}: {line}", err=True)
        logger.debug("failure", exc_info=exc)
        return code
    return result if isinstance(result, int) else ExitCode.OK


def run(command: click.Command, prog: str, args: list[str] | None = None) -> int:
    """Run a click ``command`` under :func:`call` (what its callback returns is not a code)."""
    def invoke() -> None:
        command.main(args=args, prog_name=prog, standalone_mode=False)

    return call(invoke, prog)
