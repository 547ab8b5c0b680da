"""``seisstore``: the seismic catalogue and its grid campaigns from the command line.

This module only assembles the group: one module per command family under
:mod:`seisstore.commands` (``archive``, ``campaign``, ``bundles``, ``rebalance``) and the
demo.  The group puts a :class:`~seisstore.commands.common.Zone` in click's context object
(the command's client, made on first use), and every outcome goes through
``secure_irods.exitcodes.run``: the one exit-code table.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from secure_irods.exitcodes import run
from seisstore.commands.archive import coverage_cmd, ingest_cmd, leftovers_cmd, ls_cmd, mkdir_cmd
from seisstore.commands.bundles import bundles, export_cmd, plot, stack_cmd
from seisstore.commands.campaign import campaign
from seisstore.commands.common import Zone
from seisstore.commands.dvv import dvv_cmd, plot_dvv_cmd, plot_interferogram_cmd
from seisstore.commands.rebalance import du_cmd, rebalance
from seisstore.demo import demo_cmd
from secure_irods.cli import version_option
from secure_irods.doctor import check as doctor_cmd

__all__ = ["main"]


class _Group(click.Group):
    """The ``seisstore`` group: every outcome mapped onto the toolkit's exit-code table."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        sys.exit(run(self, prog_name or "seisstore", args))


@click.group(cls=_Group, context_settings={"auto_envvar_prefix": "SEISSTORE", "help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log to stderr (-v info, -vv debug).")
@version_option
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Seismic recordings in iRODS: catalogue, ingest, and grid campaigns."""
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    fmt = "seisstore: %(message)s" if not verbose else "%(asctime)s %(name)s %(levelname)s %(message)s"
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt, force=True)   # warnings: one line per wait
    from secure_irods.errors import LogFilter

    for handler in logging.getLogger().handlers:
        handler.addFilter(LogFilter())
    # PRC logs every dropped connection at CRITICAL (they are retried) and, at debug, its
    # login exchange, which no verbosity may print (-vvv shows its warnings).
    logging.getLogger("irods").setLevel(logging.CRITICAL + 1 if verbose < 3 else logging.WARNING)
    zone = ctx.ensure_object(Zone)     # connects only when a command asks for its client
    ctx.call_on_close(zone.close)


for command in (campaign, mkdir_cmd, ingest_cmd, ls_cmd, coverage_cmd, du_cmd, leftovers_cmd, rebalance, bundles,
                stack_cmd, export_cmd, plot, dvv_cmd, demo_cmd):
    main.add_command(command)
for command in (plot_dvv_cmd, plot_interferogram_cmd):
    plot.add_command(command)
main.add_command(doctor_cmd, "doctor")     # secure-irods check: is this node's set-up ready for a campaign?


if __name__ == "__main__":
    main()
