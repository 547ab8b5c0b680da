"""Campaign jobs run by ``start.bash`` (``python -m seisstore.jobs.<name> <param line>``).

:class:`Job` (``seisstore.jobs.line``) is one ``param.txt`` line as a job script sees it;
``preprocess`` and ``correlate`` are the toolkit's own job modules.

Each takes its settings from its job script (``main(config={...})``: the script is what
``start.bash`` fetches with the campaign), else a small JSON file (:func:`load_config`),
environment variables filling in; reaches the zone only through ``secure_irods``; and
exits with the toolkit's codes (``secure_irods.exitcodes``, the same mapping as every
command): 0 done, 1 bad options or environment (our ``InvalidInputError``, or a
``ValueError``), 2 transient at the deadline (the runner resubmits), 3 permanent, 7
authentication.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from secure_irods.errors import InvalidInputError
from seisstore.jobs.line import Job

__all__ = ["Job", "load_config", "main_wrapper", "ENV_CONFIG"]

ENV_CONFIG = "SEISSTORE_CONFIG"


def load_config(kind: str, workdir: str | os.PathLike = ".", client_factory: Callable[[], Any] | None = None) -> dict:
    """Settings of a ``kind`` job (``preprocess``, ``correlate``).

    From ``$SEISSTORE_CONFIG`` if set: inline JSON (starts with ``{``), a local file, or
    ``i:/zone/path.json`` fetched from the zone (e.g. the campaign's collection);
    otherwise ``<kind>.json`` in the work directory if there is one; otherwise ``{}``.
    A file may hold ``{"preprocess": {...}, "correlate": {...}}`` for both jobs.
    """
    raw = os.environ.get(ENV_CONFIG, "").strip()
    text = None
    if raw.startswith("{"):
        text = raw
    elif raw.startswith("i:"):
        from secure_irods import connect

        local = Path(workdir) / f".{kind}-config.json"
        with (client_factory or connect)() as client:
            client.get(raw[2:], local, force=True)
        text = local.read_text()
    elif raw:
        try:
            text = Path(raw).read_text()
        except OSError as exc:
            raise InvalidInputError(f"${ENV_CONFIG}: cannot read {raw}: {exc.strerror}") from None
    elif (Path(workdir) / f"{kind}.json").is_file():
        text = (Path(workdir) / f"{kind}.json").read_text()
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{kind} settings are not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{kind} settings must be a JSON object")
    if isinstance(data.get(kind), dict):
        data = data[kind]
    return data


def setting(config: dict, key: str, env: str, default: Any = None) -> Any:
    """``config[key]``, else ``$env``, else ``default``."""
    if config.get(key) not in (None, ""):
        return config[key]
    return os.environ.get(env) or default


def output_collection(config: dict, key: str, env: str) -> str | None:
    """Where a job writes: ``config[key]``, else ``$env``, else ``$SEISSTORE_RESULTS``.

    ``campaign new --results`` exports ``SEISSTORE_RESULTS`` and ``campaign status`` looks
    for each line's results there, so a campaign given ``--results`` needs no other setting.
    """
    return setting(config, key, env) or os.environ.get("SEISSTORE_RESULTS") or None


def main_wrapper(run: Callable[[list[str]], int], argv: list[str] | None = None, prog: str = "job") -> None:
    """Run a job under ``secure_irods.exitcodes.call``: one line on stderr and the table's exit code."""
    from secure_irods.exitcodes import call

    logging.basicConfig(level=os.environ.get("SEISSTORE_LOG", "WARNING").upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("irods").setLevel(logging.CRITICAL + 1)
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["-h"], ["--help"]):    # a job module says what it is, and connects to nothing
        import importlib

        print(f"usage: python -m {prog} <param.txt line: n_dates idate n_stations istation [jstation]>\n")
        print((importlib.import_module(prog).__doc__ or "").strip())
        sys.exit(0)
    sys.exit(call(lambda: run(args), prog))
