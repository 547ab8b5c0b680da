"""The demo (kept for old habits): the same as `seisstore demo` / `make demo`; see seisstore/demo.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seisstore.cli import main  # noqa: E402

main(["demo", *sys.argv[1:]])
