"""The grid's command line: serve, faults, stats; errors are one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from localgrid.cli import main
from localgrid.catalog.genquery import build_sql, parse_condition
from localgrid.errors import IrodsError


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["faults", "--help"], ["stats", "--help"]])
def test_help(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "Usage" in result.output


def test_faults_and_stats_of_a_running_grid(grid):
    if not grid.local:
        pytest.skip("local grid only")
    run = lambda *a: subprocess.run([sys.executable, "-m", "localgrid", *a, "--root", str(grid.root)],
                                    capture_output=True, text=True, timeout=30)
    changed = run("faults", "--latency", "5", "--down", "nowhere")
    assert changed.returncode == 0 and "latency_ms=5.0" in changed.stdout and "down=['nowhere']" in changed.stdout
    assert grid.control.faults()["down"] == ["nowhere"]
    back = run("faults", "--latency", "0", "--up")
    assert "down=[]" in back.stdout
    shaped = run("faults", "--bandwidth", "125", "--total-bandwidth", "1250")
    assert shaped.returncode == 0 and "bandwidth_mbps=125.0" in shaped.stdout
    assert "total_bandwidth_mbps=1250.0" in shaped.stdout
    assert run("faults", "--bandwidth", "0", "--total-bandwidth", "0").returncode == 0
    stats = run("stats")
    assert stats.returncode == 0 and "accepted=" in stats.stdout


def test_unreachable_grid_is_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["stats", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "not reachable" in result.output and "Traceback" not in result.output


def test_bad_fault_values_are_refused(tmp_path):
    """Usage errors exit 1, the toolkit's "bad options" (click's own 2 would read as "transient")."""
    result = CliRunner().invoke(main, ["serve", "--root", str(tmp_path), "--drop-rate", "2"])
    assert result.exit_code == 1 and "drop-rate" in result.output
    result = CliRunner().invoke(main, ["serve", "--root", str(tmp_path), "--bandwidth", "-1"])
    assert result.exit_code == 1 and "bandwidth" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_condition_parsing():
    sql, args = parse_condition("x", "in ('a','b') || = 'c'")
    assert sql == "(x IN (?,?) OR x = ?)" and args == ["a", "b", "c"]
    assert parse_condition("x", "between '1' '5'") == ("(x BETWEEN ? AND ?)", ["1", "5"])
    assert parse_condition("x", "not like 'a%'") == ("(x NOT LIKE ?)", ["a%"])
    for bad in ("", "'a'", "= ", "drop table"):
        with pytest.raises(IrodsError):
            parse_condition("x", bad)


def test_unknown_column_is_an_irods_error():
    with pytest.raises(IrodsError) as info:
        build_sql([(99999, 0)], [], 0)
    assert info.value.name == "CAT_INVALID_ARGUMENT"
