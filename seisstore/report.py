"""What one ingest did: counts, what went where, and everything left out and why.

The same :class:`IngestReport` is printed as a table at the end of ``seisstore ingest``
(:meth:`IngestReport.render`) and written as JSON with ``--report FILE``
(:meth:`IngestReport.to_dict`).  Anything left out -- a file ObsPy cannot read or that is
damaged, traces whose codes make no valid key or that cannot be day files (sampling rate 0,
no samples), NaN and inf samples (left out as gaps), a station whose data ObsPy could not
merge or cut, a day file that could not be encoded or stored -- makes
:attr:`IngestReport.exit_code` 3; day files already in the archive do not.  ObsPy's warnings
are kept per file (at most :data:`WARNINGS_KEPT` distinct texts each, all counted): the
terminal shows their count, ``-v`` and the JSON report their text.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["IngestReport"]

#: Distinct warning texts kept per file (a damaged file makes ObsPy warn once per record).
WARNINGS_KEPT = 5


@dataclass
class IngestReport:
    """Counters and lists of one :func:`seisstore.ingest.ingest`; thread-safe through :attr:`lock`."""

    files_seen: int = 0
    files_read: int = 0
    bytes_read: int = 0
    traces: int = 0
    stored: list[str] = field(default_factory=list)       # new day files
    merged: list[str] = field(default_factory=list)       # existing day files extended (--merge)
    existing: list[str] = field(default_factory=list)     # already there: left as they are
    repaired: list[str] = field(default_factory=list)     # already there, AVUs completed
    bytes_written: int = 0
    skipped_files: dict[str, str] = field(default_factory=dict)     # path -> why
    rejected: Counter = field(default_factory=Counter)              # trace id as read -> traces
    rejected_why: dict[str, str] = field(default_factory=dict)      # trace id as read -> why
    mapped: Counter = field(default_factory=Counter)                # "old -> new" -> traces
    failed: dict[str, str] = field(default_factory=dict)            # day file or station -> why
    nonfinite: Counter = field(default_factory=Counter)             # trace id -> NaN/inf samples left out
    nonfinite_files: dict[str, str] = field(default_factory=dict)   # trace id -> a file holding them
    warned: Counter = field(default_factory=Counter)                # file or station -> ObsPy warnings
    warnings: dict[str, list[str]] = field(default_factory=dict)    # file or station -> distinct texts
    seconds: float = 0.0
    error: str = ""              # what ended the run early (a zone failure), if anything
    error_code: int = 0          # its exit code (2 transient, 3 permanent, 7 authentication)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def unreadable(self) -> list[str]:
        return list(self.skipped_files)

    @property
    def skipped(self) -> int:
        """Files, traces and day files left out (exit 3 if any)."""
        return len(self.skipped_files) + sum(self.rejected.values()) + len(self.failed) + len(self.nonfinite)

    @property
    def exit_code(self) -> int:
        return self.error_code or (3 if self.skipped else 0)

    def skip_file(self, path: str | Path, why: str) -> None:
        with self.lock:
            self.skipped_files.setdefault(str(path), why)

    def reject(self, trace_id: str, why: str, n: int = 1) -> None:
        with self.lock:
            self.rejected[trace_id] += n
            self.rejected_why.setdefault(trace_id, why)

    def nonfinite_samples(self, trace_id: str, n: int, path) -> None:
        with self.lock:
            self.nonfinite[trace_id] += n
            self.nonfinite_files.setdefault(trace_id, str(path))

    def warn(self, where, texts: list[str]) -> None:
        """Keep ObsPy's warnings about ``where`` (a file or a station): counted, a few texts kept."""
        if not texts:
            return
        with self.lock:
            self.warned[str(where)] += len(texts)
            kept = self.warnings.setdefault(str(where), [])
            for text in texts:
                line = text.strip().splitlines()[0] if text.strip() else text
                if len(kept) < WARNINGS_KEPT and line not in kept:
                    kept.append(line)

    def summary(self) -> str:
        parts = [f"{self.files_read} files read ({len(self.skipped_files)} skipped)",
                 f"{self.traces} traces", f"{len(self.stored)} day files stored"]
        if self.merged:
            parts.append(f"{len(self.merged)} merged")
        parts.append(f"{len(self.existing)} already there"
                     + (f" ({len(self.repaired)} given their missing AVUs)" if self.repaired else ""))
        if self.rejected:
            parts.append(f"{sum(self.rejected.values())} traces with invalid codes")
        if self.nonfinite:
            parts.append(f"{sum(self.nonfinite.values())} NaN/inf samples left out")
        if self.failed:
            parts.append(f"{len(self.failed)} day files or stations failed")
        if self.warned:
            parts.append(f"{sum(self.warned.values())} ObsPy warnings on {len(self.warned)} files")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "files": {"seen": self.files_seen, "read": self.files_read, "bytes_read": self.bytes_read,
                      "skipped": [{"path": p, "why": w} for p, w in sorted(self.skipped_files.items())]},
            "traces": {"read": self.traces,
                       "rejected": [{"id": i, "traces": n, "why": self.rejected_why.get(i, "")}
                                    for i, n in sorted(self.rejected.items())],
                       "mapped": [{"codes": c, "traces": n} for c, n in sorted(self.mapped.items())],
                       "nonfinite": [{"id": i, "samples": n, "file": self.nonfinite_files.get(i, ""),
                                      "why": "NaN or inf samples, left out as gaps"}
                                     for i, n in sorted(self.nonfinite.items())]},
            "day_files": {"stored": sorted(self.stored), "merged": sorted(self.merged),
                          "existing": len(self.existing), "repaired": sorted(self.repaired),
                          "bytes_written": self.bytes_written,
                          "failed": [{"path": p, "why": w} for p, w in sorted(self.failed.items())]},
            "warnings": [{"where": w, "count": n, "texts": self.warnings.get(w, [])}
                         for w, n in sorted(self.warned.items())],
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "exit_code": self.exit_code,
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def render(self, console: "Console", verbose: bool = False) -> None:
        """The summary table, then one line per file skipped and per distinct invalid trace id.

        ObsPy's warnings: a count per file, their text only if ``verbose``."""
        from rich.table import Table

        table = Table(title="ingest", show_header=True, header_style="bold")
        table.add_column("what")
        table.add_column("count", justify="right")
        table.add_column("bytes", justify="right")
        rows = [("files read", self.files_read, self.bytes_read),
                ("files skipped", len(self.skipped_files), None),
                ("traces read", self.traces, None),
                ("traces with invalid codes", sum(self.rejected.values()), None),
                ("traces renamed", sum(self.mapped.values()), None),
                ("day files stored", len(self.stored), self.bytes_written),
                ("day files merged", len(self.merged), None),
                ("day files already there", len(self.existing), None),
                ("NaN/inf samples left out", sum(self.nonfinite.values()), None),
                ("day files or stations failed", len(self.failed), None),
                ("ObsPy warnings", sum(self.warned.values()), None)]
        for what, count, size in rows:
            table.add_row(what, str(count), "" if size is None else str(size))
        console.print(table)
        for path, why in sorted(self.skipped_files.items()):
            console.print(f"skipped {path}: {why}", markup=False, highlight=False)
        for trace_id, n in sorted(self.rejected.items()):
            console.print(f"invalid codes {trace_id!r}: {n} traces, {self.rejected_why.get(trace_id, '')}",
                          markup=False, highlight=False)
        for trace_id, n in sorted(self.nonfinite.items()):
            console.print(f"NaN/inf {trace_id}: {n} samples left out as gaps ({self.nonfinite_files[trace_id]})",
                          markup=False, highlight=False)
        for path, why in sorted(self.failed.items()):
            console.print(f"failed {path}: {why}", markup=False, highlight=False)
        for where, n in sorted(self.warned.items()):
            texts = self.warnings.get(where, [])
            console.print(f"warnings {where}: {n}" + (": " + " | ".join(texts) if verbose and texts else ""),
                          markup=False, highlight=False)
