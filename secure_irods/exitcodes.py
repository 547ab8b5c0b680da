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

:func:`run` runs a click command and turns every outcome into one of these codes
and at most one line on stderr, never a traceback.  click's own usage errors exit 2,
which a scheduler would read as "resubmit"; here they are 1.
"""

from __future__ import annotations

import enum
import logging

import click

from .errors import SecureIrodsError, classify

__all__ = ["ExitCode", "run"]

logger = logging.getLogger("secure_irods.cli")


class ExitCode(enum.IntEnum):
    OK = 0
    USAGE = 1
    TRANSIENT = 2
    PERMANENT = 3
    AUTHENTICATION = 7
    INTERRUPTED = 130


def run(command: click.Command, prog: str, args: list[str] | None = None) -> int:
    """Run ``command``; return its exit code from the table, having printed at most one line."""
    try:
        returned = command.main(args=args, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, ctx.exit(n)
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo(f"{prog}: interrupted", err=True)
        return ExitCode.INTERRUPTED
    except click.UsageError as exc:
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"{prog}: error: {exc.format_message()}{hint}", err=True)
        return ExitCode.USAGE
    except click.ClickException as exc:
        click.echo(f"{prog}: error: {' '.join(exc.format_message().split())}", err=True)
        return exc.exit_code if exc.exit_code in set(ExitCode) else ExitCode.PERMANENT
    except Exception as exc:  # ours, or anything unforeseen: classified, never a traceback
        err = exc if isinstance(exc, SecureIrodsError) else classify(exc)
        click.echo(f"{prog}: {type(err).__name__}: {' '.join(err.message.split())}", err=True)
        logger.debug("failure", exc_info=exc)
        return err.exit_code
    if isinstance(returned, int) and returned in set(ExitCode):   # click returns ctx.exit(n) of a group's command
        return returned
    return ExitCode.OK
