"""``secure-iinit``: what ``iinit`` does, for clusters with python-irodsclient but no icommands.

Writes the environment file (``$IRODS_ENVIRONMENT_FILE`` or ``~/.irods/irods_environment.json``)
and the scrambled password (the file the icommands read: ``$IRODS_AUTHENTICATION_FILE``, else
the environment's ``irods_authentication_file``, else ``~/.irods/.irodsA``), with PRC's own
obfuscation, so ``iget``, PRC and ``secure-iget`` all read it.  The password is asked without
echo on a terminal, or read as the first line of stdin (``echo "$PW" | secure-iinit``, as
iinit); it is checked by logging in before anything is written, and never printed.
Existing files are not overwritten without ``-f``.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from .cli import CONTEXT, version_option
from .errors import ExistsError, InvalidInputError, register_secret
from .exitcodes import run

__all__ = ["iinit", "iinit_main"]

PROMPTS = (("host", "irods_host", "Enter the host name (DNS) of the server to connect to", str),
           ("port", "irods_port", "Enter the port number", int),
           ("user", "irods_user_name", "Enter your iRODS user name", str),
           ("zone", "irods_zone_name", "Enter your iRODS zone", str))


def _env_path() -> Path:
    return Path(os.environ.get("IRODS_ENVIRONMENT_FILE") or os.path.expanduser("~/.irods/irods_environment.json"))


def _settings(given: dict[str, Any], existing: dict[str, Any], interactive: bool) -> dict[str, Any]:
    """The environment to write: the existing file's, updated by the options, the rest asked for."""
    settings = dict(existing)
    for option, key, prompt, kind in PROMPTS:
        if given.get(option) is not None:
            settings[key] = given[option]
        elif key not in settings:
            if not interactive:
                raise InvalidInputError(f"no {key}: give --{option} (stdin is not a terminal to ask on)")
            settings[key] = click.prompt(prompt, type=kind, err=True)
    if given.get("default_resource"):
        settings["irods_default_resource"] = given["default_resource"]
    return settings


def _password(interactive: bool) -> str:
    if interactive:
        password = getpass.getpass("Enter your current iRODS password: ", stream=sys.stderr)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise InvalidInputError("no password given")
    register_secret(password)
    return password


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, atomically (a temporary, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


@click.command(context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing environment or authentication file.")
@click.option("--host", help="Host name of the zone's server.")
@click.option("--port", type=click.IntRange(1, 65535), help="Port of the zone [1247].")
@click.option("--user", help="iRODS user name.")
@click.option("--zone", help="iRODS zone name.")
@click.option("--default-resource", help="irods_default_resource to write.")
@version_option
def iinit(force: bool, **given: Any) -> None:
    """secure-iinit [-f] [--host H] [--port P] [--user U] [--zone Z]

    Write the iRODS environment file and scrambled password (like iinit), after checking the
    password by logging in.  Values not given are taken from an existing environment file or
    asked for; the password is asked without echo (or read from stdin when it is not a terminal).
    """
    from .backend import PrcBackend
    from ._prc import scramble
    from .client import IrodsEnvironment

    interactive = sys.stdin.isatty()
    env_path = _env_path()
    existing: dict[str, Any] = {}
    if env_path.exists():
        try:
            existing = json.loads(env_path.read_text())
        except (OSError, ValueError) as exc:
            if not force:
                raise InvalidInputError(f"unreadable environment file {env_path} ({exc}); -f replaces it") from None
    settings = _settings(given, existing, interactive)
    new_env = json.dumps(settings, indent=4) + "\n"
    env_changes = existing != settings
    if env_changes and env_path.exists() and not force:
        raise ExistsError(f"{env_path} exists with other settings: -f overwrites it")
    auth_path = IrodsEnvironment.auth_path(settings)
    if auth_path.exists() and not force:
        raise ExistsError(f"{auth_path} exists: -f overwrites it")
    password = _password(interactive)

    written_env = False
    if env_changes or not env_path.exists():
        _write_private(env_path, new_env)
        written_env = True
    try:
        backend = PrcBackend.connect(env_path, None, 30.0, password=password)   # refused: exit 7, nothing kept
        backend.close()
    except BaseException:
        if written_env and not existing:
            env_path.unlink(missing_ok=True)
        elif written_env:
            _write_private(env_path, json.dumps(existing, indent=4) + "\n")
        raise
    _write_private(auth_path, scramble(password))
    click.echo(f"secure-iinit: wrote {env_path} and {auth_path}", err=True)


def iinit_main(args: list[str] | None = None) -> None:
    """Console script ``secure-iinit``."""
    sys.exit(run(iinit, "secure-iinit", args))
