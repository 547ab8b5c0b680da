"""``secure-irods-grid``: run the local iRODS grid and steer its faults."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from .control import GridControl
from .faults import FaultPolicy
from .server import DEFAULT_CONNECTION_LIMIT, DEFAULT_HANDSHAKE_TIMEOUT


class _Group(click.Group):
    """Exit codes as the toolkit's table has them: a usage error is 1 (click's own 2 reads as
    "transient, resubmit" to a scheduler), and every failure is one line on stderr."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        prog = prog_name or "secure-irods-grid"
        try:
            super().main(args, prog, complete_var, False, **extra)
        except click.exceptions.Exit as exc:      # --help
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            click.echo(f"{prog}: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"{prog}: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo(f"{prog}: interrupted", err=True)
            sys.exit(130)
        sys.exit(0)


@click.group(cls=_Group, context_settings={"auto_envvar_prefix": "LOCALGRID", "help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log to stderr (-v info, -vv debug).")
@click.version_option(package_name="secure-irods-seisstore", message="%(prog)s %(version)s")
def main(verbose: int) -> None:
    """A local iRODS grid: the real wire protocol over a directory and an SQLite catalogue."""
    level = logging.WARNING if not verbose else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")


@main.command()
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Grid directory: created if new, reopened if it exists.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--zone", default="tempZone", show_default=True, help="Zone name of a new grid.")
@click.option("--max-connections", default=0, type=click.IntRange(min=0),
              help="Fault injection: a connection cap, changeable while it runs (0: none but --connection-limit).")
@click.option("--drop-rate", default=0.0, type=click.FloatRange(0, 1), help="Chance an API call drops the connection.")
@click.option("--latency", "latency_ms", default=0.0, type=click.FloatRange(min=0), help="Milliseconds added per reply.")
@click.option("--bandwidth", "bandwidth_mbps", default=0.0, type=click.FloatRange(min=0),
              help="MB/s each connection's data transfers may use (0: unlimited; 1250 is 10 GbE, 125 is 1 GbE).")
@click.option("--total-bandwidth", "total_bandwidth_mbps", default=0.0, type=click.FloatRange(min=0),
              help="MB/s all connections together may use (0: unlimited).")
@click.option("--seed", default=None, type=int, help="Seed of the fault generator and the random resources.")
@click.option("--down", multiple=True, help="A resource that is down (repeatable).")
@click.option("--consumer", is_flag=True,
              help="Serve a grid another server (its provider) already serves: own port and connection cap, "
                   "same catalogue and vault (a zone served by several hosts).")
@click.option("--connection-limit", default=DEFAULT_CONNECTION_LIMIT, show_default=True, type=click.IntRange(min=0),
              help="Agents at most; more are refused with SYS_MAX_CONNECT_COUNT_EXCEEDED (0: no limit).")
@click.option("--handshake-timeout", default=DEFAULT_HANDSHAKE_TIMEOUT, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds a new connection has to send its startup pack; never counted before.")
@click.option("--idle-timeout", default=600.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds an agent waits for its client's next request before closing the connection.")
def serve(root: Path, host: str, port: int, zone: str, max_connections: int, drop_rate: float,
          latency_ms: float, bandwidth_mbps: float, total_bandwidth_mbps: float, seed: int | None,
          down: tuple[str, ...], consumer: bool, connection_limit: int, handshake_timeout: float,
          idle_timeout: float) -> None:
    """Start the grid; print `ready HOST PORT` once it accepts connections."""
    from .server import GridBusyError, GridServer

    faults = FaultPolicy(max_connections=max_connections, drop_rate=drop_rate, latency_ms=latency_ms,
                         bandwidth_mbps=bandwidth_mbps, total_bandwidth_mbps=total_bandwidth_mbps,
                         seed=seed, down=set(down))
    try:
        server = GridServer(root, host=host, port=port, zone=zone, faults=faults, consumer=consumer,
                            connection_limit=connection_limit, handshake_timeout=handshake_timeout,
                            idle_timeout=idle_timeout)
    except GridBusyError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start the grid: {exc.strerror or exc}") from None
    if not consumer:
        server.write_client_files()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.stop())
    click.echo(f"ready {server.host} {server.port}", nl=True)
    sys.stdout.flush()
    server.serve_forever()


@main.command()
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", type=int, default=None, help="A consumer's port (default: the provider).")
@click.option("--max-connections", type=click.IntRange(min=0))
@click.option("--drop-rate", type=click.FloatRange(0, 1))
@click.option("--latency", "latency_ms", type=click.FloatRange(min=0))
@click.option("--bandwidth", "bandwidth_mbps", type=click.FloatRange(min=0), help="MB/s per connection (0: unlimited).")
@click.option("--total-bandwidth", "total_bandwidth_mbps", type=click.FloatRange(min=0),
              help="MB/s for all connections (0: unlimited).")
@click.option("--seed", type=int)
@click.option("--down", multiple=True, help="Resources down from now on (replaces the list).")
@click.option("--up", is_flag=True, help="Bring every resource back up.")
def faults(root: Path, port: int | None, up: bool, down: tuple[str, ...], **values) -> None:
    """Change the faults of a running grid."""
    changes = {k: v for k, v in values.items() if v is not None}
    if down or up:
        changes["down"] = [] if up else list(down)
    try:
        control = GridControl(root, port)
        now = control.set(**changes) if changes else control.faults()
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"grid at {root} not reachable: {exc}") from None
    click.echo(" ".join(f"{k}={v}" for k, v in now.items()))


@main.command()
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", type=int, default=None, help="A consumer's port (default: the provider).")
def stats(root: Path, port: int | None) -> None:
    """Print the counters of a running grid (connections, drops, API calls)."""
    try:
        values = GridControl(root, port).stats()
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"grid at {root} not reachable: {exc}") from None
    click.echo(" ".join(f"{k}={v}" for k, v in values.items()))


@main.command()
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--wait", default=20.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds to wait for the grid to exit.")
def stop(root: Path, wait: float) -> None:
    """Stop the grid serving ROOT (SIGTERM to the process holding its lock); the data stays."""
    import fcntl
    import os
    import time

    try:
        fd = os.open(root / "serve.lock", os.O_RDWR)
    except FileNotFoundError:
        raise click.ClickException(f"no grid has served {root}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = int(os.pread(fd, 32, 0).decode().split()[0])
        else:
            click.echo(f"no grid is serving {root}")
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(0.1)
                continue
            click.echo(f"stopped the grid serving {root} (pid {pid})")
            return
        raise click.ClickException(f"the grid serving {root} (pid {pid}) did not exit in {wait:g} s")
    finally:
        os.close(fd)


@main.command()
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
def env(root: Path) -> None:
    """Print the export lines that point iRODS clients (icommands, PRC, secure-iget) at the grid."""
    env_file, auth_file = root.resolve() / "irods_environment.json", root.resolve() / ".irodsA"
    if not env_file.exists():
        raise click.ClickException(f"{root} has no irods_environment.json: start the grid once with serve")
    click.echo(f"export IRODS_ENVIRONMENT_FILE={env_file}")
    click.echo(f"export IRODS_AUTHENTICATION_FILE={auth_file}")


def entry() -> None:
    """Console script ``secure-irods-grid``: usage errors exit 1 (bad options), as every command
    of the toolkit; click's own 2 means "transient" in our table."""
    try:
        main.main(standalone_mode=False, prog_name="secure-irods-grid")
    except click.UsageError as exc:   # one line, as every command of the toolkit
        hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"secure-irods-grid: error: {exc.format_message()}{hint}", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"secure-irods-grid: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.exit(130)


if __name__ == "__main__":
    entry()
