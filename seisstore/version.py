"""The version stamped on what seisstore computes (processed day files, bundles), for provenance."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["code_version"]


@lru_cache(maxsize=1)
def code_version() -> str:
    """``seisstore <version>`` of this installation (``seisstore unknown`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"seisstore {version('secure-irods-seisstore')}"
    except PackageNotFoundError:
        return "seisstore unknown"
