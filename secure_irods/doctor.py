"""``secure-irods check``: is this set-up ready for a campaign?  One line per layer, in seconds.

Checks run in the order a connection needs them (environment file, authentication file,
DNS, TCP, log-in, home collection, clock skew) plus the node's throttle directory and
python-irodsclient's version.  A check whose prerequisite failed is ``skip``.  The exit code is
the table's for the first failure (1 environment, 2 zone unreachable: try later, 3 home
missing or not writable, 7 log-in refused); every network step has a short time-out, so a
stopped server is named within seconds.  ``--json`` prints the same as one JSON document.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import click

from .cli import CONTEXT, version_option
from .errors import SecureIrodsError, classify
from .exitcodes import ExitCode, run

__all__ = ["Check", "run_checks", "main", "check"]

TIMEOUT = 3.0            # seconds for each network step: a stopped zone is named in seconds
MAX_SKEW = 60.0          # seconds between this node's clock and the zone's before a warning
PRC_OLDEST = (3, 1, 0)   # the oldest python-irodsclient setup.cfg admits


@dataclass
class Check:
    """One line of the report."""

    name: str
    verdict: str          # ok, warn, FAIL, skip
    detail: str
    seconds: float = 0.0
    exit_code: int = 0


class _Run:
    """The checks share what earlier ones found (the environment, the connected backend)."""

    def __init__(self) -> None:
        self.results: list[Check] = []
        self.env: Any = None
        self.backend: Any = None
        self.address: list[Any] = []

    def step(self, name: str, needs: bool, fn: Callable[[], tuple[str, str]], code: int) -> bool:
        if not needs:
            self.results.append(Check(name, "skip", "an earlier check failed"))
            return False
        started = time.monotonic()
        try:
            verdict, detail = fn()
            exit_code = 0
        except Exception as exc:
            err = exc if isinstance(exc, SecureIrodsError) else classify(exc)
            verdict, detail = "FAIL", " ".join(err.message.split())
            exit_code = err.exit_code if code is None else code
        self.results.append(Check(name, verdict, detail, round(time.monotonic() - started, 3), exit_code))
        return verdict != "FAIL"


def run_checks() -> list[Check]:
    """Every check, in order; never raises."""
    from .client import IrodsEnvironment

    r = _Run()

    def environment() -> tuple[str, str]:
        r.env = IrodsEnvironment()
        s = r.env.settings
        return "ok", f"{r.env.env_file}: {s['irods_user_name']}@{s['irods_zone_name']} on {r.env.zone_address}"

    def auth_file() -> tuple[str, str]:
        if r.env.settings.get("irods_user_name") == "anonymous":
            return "ok", "anonymous: no password needed"
        path = r.env.auth_file
        if not path.is_file() or not path.read_text().strip():
            raise SecureIrodsError(f"{path} is missing or empty: run secure-iinit (or iinit)")
        mode = path.stat().st_mode & 0o077
        return ("warn", f"{path} is readable by others: chmod 600 it") if mode else ("ok", str(path))

    def dns() -> tuple[str, str]:
        host, port = r.env.settings["irods_host"], int(r.env.settings["irods_port"])
        try:
            r.address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise SecureIrodsError(f"cannot resolve {host}: {exc.strerror}") from None
        return "ok", f"{host} -> {', '.join(sorted({a[4][0] for a in r.address}))}"

    def tcp() -> tuple[str, str]:
        host, port = r.env.settings["irods_host"], int(r.env.settings["irods_port"])
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=TIMEOUT):
                pass
        except ConnectionRefusedError:
            raise SecureIrodsError(f"{host}:{port}: connection refused (is the zone's server running?)") from None
        except TimeoutError:
            raise SecureIrodsError(f"{host}:{port}: no answer in {TIMEOUT:g} s (server down or a firewall)") from None
        except OSError as exc:
            raise SecureIrodsError(f"{host}:{port}: {exc.strerror or exc}") from None
        return "ok", f"{host}:{port} accepts connections ({1000 * (time.monotonic() - started):.1f} ms)"

    def login() -> tuple[str, str]:
        from .backend import PrcBackend

        anonymous = r.env.settings.get("irods_user_name") == "anonymous"
        r.backend = PrcBackend.connect(r.env.env_file, None if anonymous else r.env.auth_file, TIMEOUT * 3)
        return "ok", f"logged in as {r.env.settings['irods_user_name']}; server iRODS {r.backend.server_version}"

    def home() -> tuple[str, str]:
        stat = r.backend.stat(r.env.home)
        if stat is None or not stat.is_collection:
            raise SecureIrodsError(f"home collection {r.env.home} does not exist (irods_home in {r.env.env_file}?)")
        return "ok", f"{r.env.home} exists"

    def clock() -> tuple[str, str]:
        before = time.time()
        zone = r.backend.server_time(r.env.home)
        after = time.time()
        skew = (before + after) / 2 - zone
        text = f"this node is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the zone; {r.env.home} writable"
        return ("warn", text + f" (more than {MAX_SKEW:g} s: fix NTP)") if abs(skew) > MAX_SKEW + (after - before) \
            else ("ok", text)

    def throttle() -> tuple[str, str]:
        from .throttle import Throttle

        t = Throttle.from_env()
        probe = t.directory / f".check-{socket.gethostname()}-{id(t)}"
        probe.write_text("")
        probe.unlink()
        return "ok", f"{t.directory} writable, {t.slots} connections per node"

    def prc_version() -> tuple[str, str]:
        from ._prc import PRC_VERSION

        parts = tuple(int(p) for p in str(PRC_VERSION).split(".")[:3] if p.isdigit())
        if parts < PRC_OLDEST:
            raise SecureIrodsError(f"python-irodsclient {PRC_VERSION} is older than {'.'.join(map(str, PRC_OLDEST))}")
        return "ok", f"python-irodsclient {PRC_VERSION}"

    try:
        ok = r.step("environment", True, environment, ExitCode.USAGE)
        authed = r.step("auth file", ok, auth_file, ExitCode.AUTHENTICATION)
        named = r.step("DNS", ok, dns, ExitCode.USAGE)
        reached = r.step("TCP", named, tcp, ExitCode.TRANSIENT)
        logged = r.step("log-in", reached and authed, login, None)
        r.step("home", logged, home, ExitCode.PERMANENT)
        r.step("clock skew", logged, clock, None)
        r.step("throttle dir", True, throttle, ExitCode.USAGE)
        r.step("PRC version", True, prc_version, ExitCode.USAGE)
    finally:
        if r.backend is not None:
            r.backend.close()
    return r.results


@click.group(context_settings=CONTEXT)
@version_option
def main() -> None:
    """secure-irods: the toolkit's own commands (see also secure-iget, secure-iput, secure-irsync, secure-iinit)."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of lines.")
def check(as_json: bool) -> None:
    """Check this node's iRODS set-up, one line per layer; exit code from the toolkit's table."""
    results = run_checks()
    failed = next((c for c in results if c.verdict == "FAIL"), None)
    if as_json:
        click.echo(json.dumps({"ok": failed is None, "checks": [asdict(c) for c in results]}, indent=2))
    else:
        for c in results:
            click.echo(f"{c.name:<13} {c.verdict:<5} {c.detail}" + (f"  [{c.seconds:.2f} s]" if c.seconds >= 0.05 else ""))
        click.echo("all good" if failed is None else f"not ready: {failed.name}: {failed.detail}")
    if failed is not None:
        sys.exit(failed.exit_code)   # the report said why: no second line


def main_entry(args: list[str] | None = None) -> None:
    """Console script ``secure-irods``."""
    sys.exit(run(main, "secure-irods", args))
