"""Local caches of what the zone said (the day-file catalogue, the bundle index).

One JSON file per cached thing under ``$XDG_CACHE_HOME/seisstore`` (else
``~/.cache/seisstore``), named by a digest of what identifies it (zone, collection,
layout...).  A cache only saves queries: written atomically (a temporary file renamed
over it) so a reader never sees half of one, and one that cannot be read or written is
logged and ignored, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["default_cache_dir", "cache_file", "read_cache", "write_cache"]

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/seisstore``, else ``~/.cache/seisstore``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seisstore"


def cache_file(kind: str, identity: list[Any], directory: str | os.PathLike[str] | None = None) -> Path:
    """``<directory>/<kind>-<digest of identity>.json``."""
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:24]
    return Path(directory or default_cache_dir()) / f"{kind}-{digest}.json"


def read_cache(path: Path) -> Any | None:
    """The cached JSON value, or None when there is none or it is unreadable (logged)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable cache %s: %s", path, exc)
        return None


def write_cache(path: Path, data: Any) -> None:
    """Replace the cache at ``path`` with ``data`` atomically; a failure is logged, not raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        log.warning("cannot write cache %s: %s", path, exc)
