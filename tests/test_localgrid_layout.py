"""The local grid's house rules, checked on its sources: SQL only in the catalog package,
a small session loop, handler modules of a readable size."""

from __future__ import annotations

import re
from pathlib import Path

GRID = Path(__file__).resolve().parent.parent / "localgrid"
SQL = re.compile(r"\b(SELECT\s+\S|INSERT\s+INTO|UPDATE\s+r_\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))|\.execute\(")


def _sources(pattern: str) -> list[Path]:
    return sorted(p for p in GRID.glob(pattern) if "__pycache__" not in p.parts)


def test_sql_lives_only_in_the_catalog_package():
    offenders = [f"{p.relative_to(GRID.parent)}:{n}: {line.strip()}"
                 for p in _sources("**/*.py") if "catalog" not in p.relative_to(GRID).parts
                 for n, line in enumerate(p.read_text().splitlines(), 1) if SQL.search(line)]
    assert offenders == []
    assert any(SQL.search(p.read_text()) for p in _sources("catalog/*.py"))   # the pattern does find SQL


def test_the_session_loop_and_the_handlers_stay_small():
    assert len((GRID / "agent.py").read_text().splitlines()) < 400
    sizes = {p.name: len(p.read_text().splitlines()) for p in _sources("api/*.py")}
    assert sizes and max(sizes.values()) <= 500, sizes


def test_no_module_of_the_grid_is_over_400_lines():
    """Issue 23: the catalogue split by table family, the handlers one module per API family."""
    sizes = {str(p.relative_to(GRID)): len(p.read_text().splitlines()) for p in _sources("**/*.py")}
    assert len(sizes) > 20 and {name: n for name, n in sizes.items() if n > 400} == {}


def test_handlers_are_functions_over_one_declared_session():
    """Issue 23: no mixins; every handler takes the agent as ``ctx: Session`` (api/session.py declares it)."""
    import ast
    import inspect

    from localgrid.agent import Agent
    from localgrid.api import HANDLERS

    assert Agent.__bases__ == (object,)
    for number, handler in HANDLERS.items():
        assert inspect.isfunction(handler) and "." not in handler.__qualname__, number
        assert list(inspect.signature(handler).parameters)[0] == "ctx", number
    for path in _sources("api/*.py"):
        classes = [n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)]
        assert not [c for c in classes if c.endswith("Api")], path
