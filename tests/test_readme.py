"""The README runs as written: its blocks marked `run` execute in order, in a fresh directory.

```sh run``` blocks are shell, ```python run``` blocks run with the `python` the README put on
PATH, ```python file=NAME``` blocks are written to NAME (job scripts) for later blocks.  All
of them become one bash script (`set -euo pipefail`), so what a block exports the next one
sees.  The environment holds only PATH with `.venv/bin` first (the README activates the
virtual environment) and a HOME of its own: the README itself starts the local grid and
says what to set.  Unmarked blocks (a real zone, a real scheduler) are shown, not run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(language, info after the language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer(text)]


def script(text: str) -> str:
    parts = ["set -euo pipefail", f"cd {ROOT}", ". .venv/bin/activate", 'cd "$README_DIR"']
    for n, (lang, info, body) in enumerate(blocks(text)):
        words = info.split()
        target = next((w.split("=", 1)[1] for w in words if w.startswith("file=")), None)
        if target:
            parts.append(f"cat > {target} <<'README_EOF_{n}'\n{body}README_EOF_{n}")
        elif "run" in words and lang == "sh":
            parts.append(f"echo '--- README block {n}' >&2\n{body}")
        elif "run" in words and lang == "python":
            parts.append(f"echo '--- README block {n}' >&2\npython - <<'README_EOF_{n}'\n{body}README_EOF_{n}")
    return "\n".join(parts) + "\n"


def test_the_readme_marks_blocks_to_run():
    found = blocks((ROOT / "README.md").read_text())
    assert sum("run" in info.split() for _, info, _ in found) >= 8
    assert any(info.startswith("file=") for _, info, _ in found)


def test_the_readme_runs_as_written(tmp_path):
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path),
           "README_DIR": str(tmp_path), "LANG": "C.UTF-8"}
    (tmp_path / "readme.sh").write_text(script((ROOT / "README.md").read_text()))
    proc = subprocess.Popen(["bash", str(tmp_path / "readme.sh")], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)       # the grid the README started in the background
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    check_effects(tmp_path, out)


def block_outputs(text: str, out: str) -> dict[str, str]:
    """The output of each run block, keyed by the block's body (the script echoes a marker per block)."""
    bodies = {n: body for n, (_, _, body) in enumerate(blocks(text))}
    parts = re.split(r"^--- README block (\d+)\n", out, flags=re.M)
    return {bodies[int(n)]: chunk for n, chunk in zip(parts[1::2], parts[2::2])}


def output_of(outputs: dict[str, str], command: str) -> str:
    return next(chunk for body, chunk in outputs.items() if command in body)


def check_effects(tmp: Path, out: str) -> None:
    """What each step of the tour is for, checked on its results, not on its exit code."""
    import json

    import h5py
    import numpy as np

    from secure_irods.transfer import sha2_of_file

    outputs = block_outputs((ROOT / "README.md").read_text(), out)
    assert output_of(outputs, "secure-irods check").rstrip().endswith("all good")
    # 1. the day file went up and came back, alone and with -r (into the existing data/: data/2012/...)
    first = output_of(outputs, "secure-iput -f CH.DIX")
    assert "17\n" in first                                                           # - wrote it to stdout
    assert "data/CH.DIX..HHZ.2012.100: skipped (identical)" in first                  # -P: a line per object
    assert "CH.DIX..HHZ.2012.100" in (tmp / "restart.txt").read_text()              # -X recorded it
    assert (tmp / "data" / "CH.DIX..HHZ.2012.100").read_text() == "a day of samples\n"
    assert (tmp / "data" / "2012" / "CH.DIX..HHZ.2012.100").read_text() == "a day of samples\n"
    # 3. ingest stored one day file per station; the rms job read its sublist and wrote a value per day
    report = json.loads((tmp / "ingest.json").read_text())
    stored = sorted(report["day_files"]["stored"])
    assert report["exit_code"] == 0 and [p.rsplit("/", 1)[1] for p in stored] == \
        [f"XX.STA{k}.00.HHZ.D.2011.060" for k in (1, 2, 3)]
    rows = [line.split(",") for line in (tmp / "rms1_0_3_0.csv").read_text().splitlines()]
    assert rows and all(r[0].startswith("XX.STA") and r[1] == "2011-03-01" and float(r[2]) > 0 for r in rows)
    # 4. the stacks find the lags the synthetic noise was built with (STA2 4 s after STA1, STA3 8 s)
    with h5py.File(tmp / "stacks.h5") as h5:
        lags = h5["lags"][()]
        peaks = sorted(abs(float(lags[np.argmax(np.abs(h5[f"stacks/{p}"][()]))])) for p in h5["stacks"])
    assert peaks == [4.0, 4.0, 8.0]
    assert sorted(p.name for p in (tmp / "sac").iterdir()) == ["STA1_STA2.SAC", "STA1_STA3.SAC", "STA2_STA3.SAC"]
    assert (tmp / "gather.png").stat().st_size > 10_000
    # 5. the rebalance moved every byte of the archive off demoResc onto the two sites, and nothing was lost
    lines = (tmp / "plan.jsonl").read_text().splitlines()
    head, moves = json.loads(lines[0])["plan"], [json.loads(line) for line in lines[1:]]
    assert head["before"]["demoResc"] == report["day_files"]["bytes_written"] > 0
    assert head["after"]["demoResc"] == 0 and head["after"]["siteA"] > 0 and head["after"]["siteB"] > 0
    assert sum(m["size"] for m in moves) == head["bytes"] == report["day_files"]["bytes_written"]
    journal = [json.loads(line) for line in (tmp / "plan.jsonl.journal").read_text().splitlines()]
    done = {r["i"]: r["moved"] for r in journal if r.get("state") == "done"}
    assert sorted(done) == list(range(len(moves))) and sum(done.values()) == head["bytes"]
    rebalance = output_of(outputs, "rebalance plan")
    du_before, du_after = rebalance.split("GenQuery calls")[0], rebalance.rsplit("good replicas by group", 1)[1]
    assert "demoResc" in du_before and "100.0%" in du_before
    assert "demoResc" not in du_after and "siteA" in du_after and "siteB" in du_after
    du = json.loads((tmp / "du.json").read_text())
    assert {u["group"] for u in du["usage"]} == {"siteA", "siteB"} and du["objects"] == len(moves)
    assert sum(u["bytes"] for u in du["usage"]) == head["bytes"]
    back = {p.relative_to(tmp / "moved").as_posix(): p for p in (tmp / "moved").rglob("*") if p.is_file()}
    assert len(back) == len(moves)
    for m in moves:     # each object, read back after the moves, has the checksum it had when planned
        local = back[m["path"].split("/archive/", 1)[1]]
        assert sha2_of_file(local) == m["checksum"] and local.stat().st_size == m["size"]
