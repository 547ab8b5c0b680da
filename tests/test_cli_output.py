"""Output that scripts and people can both use (issue 20): --json on every listing and report
command (found by walking the click tree), whole ids and paths in pipes, --version, job modules'
--help, campaign new's help and --show-chain, `seisstore doctor`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from helpers import synthetic
from seisstore.cli import main as seisstore_main

BIN = Path(sys.executable).parent

#: The listing and report commands of issue 20; the walk below must find each with --json.
LISTINGS = {("ls",), ("bundles", "ls"), ("du",), ("coverage",), ("rebalance", "plan"), ("rebalance", "status"),
            ("rebalance", "verify"), ("campaign", "status"), ("ingest",), ("doctor",)}


def _leaves(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _leaves(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def _with_json() -> set[tuple[str, ...]]:
    return {path for path, cmd in _leaves(seisstore_main) if any("--json" in p.opts for p in cmd.params)}


def test_the_walk_finds_json_on_every_listing_command():
    assert LISTINGS <= _with_json()


@pytest.fixture(scope="module")
def archive(grid, tmp_path_factory):
    """An ingested archive, a plan and a campaign directory: something for every listing to show."""
    import uuid

    work = tmp_path_factory.mktemp("listings")
    raw = work / "raw"
    raw.mkdir()
    for k, sta in enumerate(["AAA", "BBB"]):
        synthetic(sta=sta, seconds=2 * 86400, seed=k).write(str(raw / f"{sta}.mseed"), format="MSEED")
    coll = f"{grid.home}/listings-{uuid.uuid4().hex[:8]}"
    env = dict(grid.environ(), SECURE_IRODS_THROTTLE_DIR=str(work / "throttle"))
    script = work / "job.py"
    script.write_text("print('job')\n")
    for args in (["ingest", str(raw), f"{coll}/archive", "--create"], ["mkdir", "-p", f"{coll}/xc"],
                 ["rebalance", "plan", f"{coll}/archive", "--to", "demoResc", "-o", str(work / "plan.jsonl")],
                 ["campaign", "new", "camp", "--dates", "2021-01-01..2021-01-02", "--stations", "AAA,BBB",
                  "--n-dates", "1", "--n-stations", "2", "--script", str(script), "--collection", f"{coll}/c",
                  "--out", str(work / "camp")]):
        done = subprocess.run([str(BIN / "seisstore"), *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stderr)
    return {"coll": coll, "work": work, "env": env, "raw": raw}


def _json_args(path: tuple[str, ...], a: dict) -> list[str]:
    coll, work = a["coll"], a["work"]
    return {("ls",): ["ls", f"{coll}/archive", "-l"],
            ("bundles", "ls"): ["bundles", "ls", f"{coll}/xc"],
            ("du",): ["du", f"{coll}/archive", "--by", "station"],
            ("coverage",): ["coverage", f"{coll}/archive"],
            ("rebalance", "plan"): ["rebalance", "plan", f"{coll}/archive", "--to", "demoResc",
                                    "-o", str(work / "plan2.jsonl")],
            ("rebalance", "status"): ["rebalance", "status", str(work / "plan.jsonl")],
            ("rebalance", "verify"): ["rebalance", "verify", f"{coll}/archive"],
            ("campaign", "status"): ["campaign", "status", str(work / "camp"), "--results", f"{coll}/archive"],
            ("ingest",): ["ingest", str(a["raw"]), f"{coll}/archive"],
            ("doctor",): ["doctor"]}[path]


@pytest.mark.parametrize("path", sorted(LISTINGS), ids=" ".join)
def test_json_of_every_listing_command_goes_through_json_tool(archive, path):
    """`seisstore ... --json | python -m json.tool` exits 0 for every listing command."""
    args = " ".join(f"'{a}'" for a in _json_args(path, archive))
    piped = subprocess.run(["bash", "-c", f"set -o pipefail; '{BIN}/seisstore' {args} --json | "
                            f"'{sys.executable}' -m json.tool"], env=archive["env"], capture_output=True, text=True,
                           timeout=120)
    assert piped.returncode == 0, piped.stderr[-2000:]
    data = json.loads(piped.stdout)
    assert isinstance(data, dict) and data


def test_json_says_what_the_table_says(archive):
    coll, env = archive["coll"], archive["env"]

    def run(*args: str) -> dict:
        done = subprocess.run([str(BIN / "seisstore"), *args, "--json"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    files = run("ls", f"{coll}/archive")["files"]
    assert sorted({f["sta"] for f in files}) == ["AAA", "BBB"] and all(f["path"].startswith(coll) for f in files)
    usage = run("du", f"{coll}/archive")["usage"]
    assert sum(u["bytes"] for u in usage) == sum(f["size"] for f in files)
    cov = run("coverage", f"{coll}/archive")
    assert [s["station"] for s in cov["stations"]] == ["FR.AAA", "FR.BBB"]
    again = run("ingest", str(archive["raw"]), f"{coll}/archive")
    assert again["day_files"]["stored"] == [] and again["day_files"]["existing"] == len(files)


def test_ls_in_a_pipe_keeps_whole_ids_and_paths(archive):
    coll, env = archive["coll"], archive["env"]
    piped = subprocess.run(["bash", "-c", f"set -o pipefail; COLUMNS=40 '{BIN}/seisstore' ls -l '{coll}/archive' | cat"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    files = json.loads(subprocess.run([str(BIN / "seisstore"), "ls", f"{coll}/archive", "--json"], env=env,
                                      capture_output=True, text=True, timeout=120).stdout)["files"]
    lines = piped.stdout.splitlines()
    for f in files:       # one line holds the whole id, the whole path and the whole checksum
        assert any(f["id"] in line and f["path"] in line and f["checksum"] in line for line in lines), f["path"]


def test_versions_help_and_chain():
    assert _invoke_ok(["--version"]).startswith("seisstore ")
    help_text = " ".join(_invoke_ok(["campaign", "new", "--help"]).split())
    assert "not stations per job" in help_text
    chain = json.loads(_invoke_ok(["campaign", "new", "--show-chain"]))
    assert [step["op"] for step in chain["preprocess"]["chain"]][:3] == ["detrend", "taper", "bandpass"]
    assert chain["correlate"]["window_s"] == 3600.0 and chain["correlate"]["max_lag_s"] == 200.0
    for module in ("preprocess", "correlate"):
        done = subprocess.run([sys.executable, "-m", f"seisstore.jobs.{module}", "--help"], capture_output=True,
                              text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
        assert done.returncode == 0 and f"seisstore.jobs.{module}" in done.stdout, done.stderr


def _invoke_ok(args: list[str]) -> str:
    from click.testing import CliRunner

    result = CliRunner().invoke(seisstore_main, args, prog_name="seisstore")
    assert result.exit_code == 0, result.output
    return result.output


def test_campaign_words_are_the_command_lines(tmp_path):
    """No Python wording (overwrite=True) or raw list (['squeue: ...']) reaches a person."""
    from seisstore.status import slurm_tasks

    def no_slurm(args):
        return subprocess.CompletedProcess(args, 1, "", f"{args[0]}: fatal: Could not establish a configuration source\n")

    _, note = slurm_tasks("camp", run=no_slurm)
    assert note == "no sacct (accounting disabled); squeue failed: squeue: fatal: Could not establish a configuration source"
    script = tmp_path / "job.py"
    script.write_text("")
    (tmp_path / "camp").mkdir()
    (tmp_path / "camp" / "other").write_text("x")
    args = ["campaign", "new", "camp", "--dates", "2021-01-01", "--stations", "A", "--n-dates", "1", "--n-stations",
            "1", "--script", str(script), "--collection", "/z/c", "--out", str(tmp_path / "camp")]
    from click.testing import CliRunner

    result = CliRunner().invoke(seisstore_main, args)
    assert result.exit_code == 1 and "--force" in result.output
