"""Run python-irodsclient's own test modules against the local grid and count the results.

Each module gets a fresh grid in a temporary directory (``secure-irods-grid serve --root
TMP --port 0``), reached through ``IRODS_ENVIRONMENT_FILE`` / ``IRODS_AUTHENTICATION_FILE``
as PRC's tests expect, and runs in its own ``pytest -q`` subprocess; the counts come from
its JUnit XML.  ``--causes`` also lists the most frequent failure messages, which is how
the remaining gaps in docs/localgrid.md were found.

    .venv/bin/python scripts/prc_conformance.py                 # the default modules
    .venv/bin/python scripts/prc_conformance.py meta_test query_test --causes
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import irods.test

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from localgrid.spawn import spawn  # noqa: E402

TEST_DIR = Path(irods.test.__file__).parent
MODULES = ["access_test", "collection_test", "data_obj_test", "meta_test", "query_test", "resource_test",
           "user_group_test", "admin_test", "ticket_test"]


def run_module(module: str, timeout: float) -> dict:
    """Counts of one module against a fresh grid: passed, failed (incl. errors), skipped, causes."""
    with tempfile.TemporaryDirectory(prefix="prc-conformance-") as tmp:
        grid_dir, report = Path(tmp) / "grid", Path(tmp) / "report.xml"
        grid = spawn(grid_dir)
        # a client account as `iinit` leaves it: some tests read ~/.irods directly
        home = Path(tmp) / "home"
        (home / ".irods").mkdir(parents=True)
        shutil.copy(grid.env_file, home / ".irods" / "irods_environment.json")
        shutil.copy(grid.auth_file, home / ".irods" / ".irodsA")
        env = grid.environ(HOME=str(home))
        started = time.monotonic()
        try:
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-c", os.devnull, "-p", "no:cacheprovider",
                            f"--junitxml={report}", "-o", "junit_family=xunit1", str(TEST_DIR / f"{module}.py")],
                           env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            grid.stop()
        elapsed = time.monotonic() - started
        if not report.exists():
            return {"passed": 0, "failed": 0, "skipped": 0, "seconds": elapsed, "causes": ["no report (timeout?)"],
                    "outcomes": {}}
        return _counts(ET.parse(report).getroot()) | {"seconds": elapsed}


def _counts(root: ET.Element) -> dict:
    """Per test, not per JUnit entry: a test failing in its body and in tearDown is one failure."""
    outcome: dict[tuple[str, str], str] = {}
    causes = []
    for case in root.iter("testcase"):
        key = (case.get("classname", ""), case.get("name", ""))
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            if outcome.get(key) != "failed":
                causes.append((bad.get("message") or "?").splitlines()[0][:110] if bad.get("message") else "?")
            outcome[key] = "failed"
        elif case.find("skipped") is not None:
            outcome.setdefault(key, "skipped")
        else:
            outcome.setdefault(key, "passed")
    counts = collections.Counter(outcome.values())
    return {"passed": counts["passed"], "failed": counts["failed"], "skipped": counts["skipped"], "causes": causes,
            "outcomes": {f"{cls}::{name}": result for (cls, name), result in outcome.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=MODULES, help=f"PRC test modules (default: {' '.join(MODULES)})")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per module")
    parser.add_argument("--causes", action="store_true", help="list the most frequent failure messages")
    parser.add_argument("--outcomes", metavar="FILE", help="write each test's outcome (passed/failed/skipped) there")
    args = parser.parse_args(argv)
    print(f"python-irodsclient {_prc_version()} tests against the local grid")
    print("| module | passed | failed | skipped | seconds |\n|---|---:|---:|---:|---:|")
    totals = collections.Counter()
    all_causes = collections.Counter()
    outcomes: dict[str, str] = {}
    for module in args.modules:
        r = run_module(module.removesuffix(".py"), args.timeout)
        totals.update({k: r[k] for k in ("passed", "failed", "skipped")})
        all_causes.update(f"{module}: {c}" for c in r["causes"])
        outcomes.update(r["outcomes"])
        print(f"| {module} | {r['passed']} | {r['failed']} | {r['skipped']} | {r['seconds']:.0f} |", flush=True)
    print(f"| **total** | {totals['passed']} | {totals['failed']} | {totals['skipped']} | |")
    if args.outcomes:
        Path(args.outcomes).write_text("".join(f"{test} {result}\n" for test, result in sorted(outcomes.items())))
    if args.causes:
        print("\nmost frequent failure messages:")
        for cause, n in all_causes.most_common(40):
            print(f"{n:4d}  {cause}")
    return 0


def _prc_version() -> str:
    from importlib.metadata import version
    return version("python-irodsclient")


if __name__ == "__main__":
    sys.exit(main())
