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
