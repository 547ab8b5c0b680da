"""Start a throw-away local grid for a benchmark (the same command the tests use)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LocalGrid:
    root: Path
    process: subprocess.Popen
    env_file: Path
    auth_file: Path
    home: str

    @property
    def control(self):
        from localgrid import GridControl

        return GridControl(self.root)

    def environ(self, **extra: str) -> dict[str, str]:
        import os

        return dict(os.environ, IRODS_ENVIRONMENT_FILE=str(self.env_file),
                    IRODS_AUTHENTICATION_FILE=str(self.auth_file), **extra)

    def session(self):
        from irods.session import iRODSSession

        return iRODSSession(irods_env_file=str(self.env_file), irods_authentication_file=str(self.auth_file))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def start(root: Path, *args: str) -> LocalGrid:
    proc = subprocess.Popen([sys.executable, "-m", "localgrid", "serve", "--root", str(root), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    line = proc.stdout.readline().split()
    if len(line) != 3 or line[0] != "ready":
        proc.kill()
        raise RuntimeError(f"grid did not start: {line}")
    env_file = root / "irods_environment.json"
    env = json.loads(env_file.read_text())
    return LocalGrid(root, proc, env_file, root / ".irodsA", env["irods_home"])
