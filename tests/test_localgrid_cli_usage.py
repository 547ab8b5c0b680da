"""secure-irods-grid as a user meets it (issue 20): usage errors exit 1, --version, env and stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import start_grid

BIN = Path(sys.executable).parent


def grid_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "secure-irods-grid"), *args], capture_output=True, text=True, timeout=60)


def test_usage_errors_exit_1_and_version(tmp_path):
    for args in (["--no-such"], ["serve"], ["serve", "--root", str(tmp_path), "--drop-rate", "2"], ["nosuchcmd"]):
        result = grid_cli(*args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, (args, result.stderr)
    version = grid_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("secure-irods-grid ")
    missing = grid_cli("stop", "--root", str(tmp_path))
    assert missing.returncode == 1 and "no grid has served" in missing.stderr


def test_env_prints_exports_and_stop_stops(tmp_path):
    grid = start_grid(tmp_path / "g")
    try:
        exports = grid_cli("env", "--root", str(grid.root))
        assert exports.returncode == 0
        assert exports.stdout.splitlines() == [f"export IRODS_ENVIRONMENT_FILE={grid.env_file.resolve()}",
                                               f"export IRODS_AUTHENTICATION_FILE={grid.auth_file.resolve()}"]
        stopped = grid_cli("stop", "--root", str(grid.root))
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
        assert grid.process.wait(timeout=5) is not None
        again = grid_cli("stop", "--root", str(grid.root))
        assert again.returncode == 0 and "no grid is serving" in again.stdout
    finally:
        grid.stop()
