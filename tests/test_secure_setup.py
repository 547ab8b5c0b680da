"""Setting up and checking a node without icommands (issue 20): secure-iinit, secure-irods check,
and secure-irsync, each run as a user would, against the grid over TCP."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import make_file

BIN = Path(sys.executable).parent


def run(tool: str, *args: str, env: dict, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def _password(grid) -> str:
    from irods.password_obfuscation import decode

    return decode(Path(grid.auth_file).read_text().strip())


@pytest.fixture
def empty_home(tmp_path) -> dict:
    """A user with nothing set up: a fresh HOME, no IRODS_* variables."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRODS_")}
    env.update(HOME=str(home), SECURE_IRODS_THROTTLE_DIR=str(tmp_path / "throttle"))
    return env


def _init_args(grid) -> list[str]:
    return ["--host", grid.host or grid.env["irods_host"], "--port", str(grid.port or grid.env["irods_port"]),
            "--user", grid.env["irods_user_name"], "--zone", grid.zone]


def test_iinit_then_check_from_an_empty_home_is_all_good(grid, empty_home):
    home = Path(empty_home["HOME"])
    before = run("secure-irods", "check", env=empty_home)
    assert before.returncode == 1 and "environment" in before.stdout.splitlines()[0] and "FAIL" in before.stdout
    init = run("secure-iinit", *_init_args(grid), env=empty_home, stdin=_password(grid) + "\n")
    assert init.returncode == 0, init.stderr
    assert _password(grid) not in init.stdout + init.stderr
    auth = home / ".irods" / ".irodsA"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600 and _password(grid) not in auth.read_text()
    settings = json.loads((home / ".irods" / "irods_environment.json").read_text())
    assert settings["irods_zone_name"] == grid.zone
    check = run("secure-irods", "check", env=empty_home)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().splitlines()[-1] == "all good"
    names = [line.split()[0] for line in check.stdout.strip().splitlines()[:-1]]
    assert names == ["environment", "auth", "DNS", "TCP", "log-in", "home", "clock", "throttle", "PRC"]
    doctor = run("seisstore", "doctor", env=empty_home)          # the same checks, from seisstore
    assert doctor.returncode == 0 and doctor.stdout.strip().endswith("all good"), doctor.stdout + doctor.stderr
    assert [line.split()[0] for line in doctor.stdout.strip().splitlines()[:-1]] == names
    report = json.loads(run("secure-irods", "check", "--json", env=empty_home).stdout)
    assert report["ok"] and all(c["verdict"] in ("ok", "warn") for c in report["checks"])
    # what iinit wrote is what the transfers read
    data = make_file(home / "x.bin", 1000)
    assert run("secure-iput", "-f", str(data), f"{grid.home}/iinit-{os.getpid()}.bin", env=empty_home).returncode == 0


def test_iinit_refuses_a_wrong_password_and_overwriting_without_f(grid, empty_home):
    home = Path(empty_home["HOME"])
    wrong = run("secure-iinit", *_init_args(grid), env=empty_home, stdin="not-the-password\n")
    assert wrong.returncode == 7 and "not-the-password" not in wrong.stderr
    assert not (home / ".irods" / ".irodsA").exists() and not (home / ".irods" / "irods_environment.json").exists()
    assert run("secure-iinit", *_init_args(grid), env=empty_home, stdin=_password(grid) + "\n").returncode == 0
    again = run("secure-iinit", env=empty_home, stdin=_password(grid) + "\n")
    assert again.returncode == 3 and ".irodsA exists: -f overwrites it" in again.stderr
    other = run("secure-iinit", "--zone", "otherZone", env=empty_home, stdin=_password(grid) + "\n")
    assert other.returncode == 3 and "exists with other settings" in other.stderr
    forced = run("secure-iinit", "-f", env=empty_home, stdin=_password(grid) + "\n")
    assert forced.returncode == 0, forced.stderr


def test_check_names_a_stopped_server_within_seconds(grid, empty_home):
    assert run("secure-iinit", *_init_args(grid), env=empty_home, stdin=_password(grid) + "\n").returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]         # nothing listens here once the socket closes
    env_file = Path(empty_home["HOME"]) / ".irods" / "irods_environment.json"
    settings = json.loads(env_file.read_text())
    env_file.write_text(json.dumps(dict(settings, irods_port=closed)))
    started = time.monotonic()
    check = run("secure-irods", "check", env=empty_home)
    elapsed = time.monotonic() - started
    assert check.returncode == 2 and elapsed < 5, (elapsed, check.stdout)
    tcp = next(line for line in check.stdout.splitlines() if line.startswith("TCP"))
    assert "FAIL" in tcp and "connection refused" in tcp and str(closed) in tcp
    assert "log-in        skip" in check.stdout
    env_file.write_text(json.dumps(dict(settings, irods_host="no-such-host.invalid")))
    dns = run("secure-irods", "check", env=empty_home)
    assert dns.returncode == 1 and "cannot resolve no-such-host.invalid" in dns.stdout


# ------------------------------------------------------------------ secure-irsync


@pytest.fixture
def env(grid, tmp_path) -> dict:
    return dict(grid.environ(), SECURE_IRODS_THROTTLE_DIR=str(tmp_path / "throttle"), SECURE_IRODS_MAX_WAIT="0.1")


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _counts(stderr: str) -> tuple[int, int, int]:
    line = next(x for x in stderr.splitlines() if " transferred (" in x)
    words = line.replace(",", "").split()
    return int(words[1]), int(words[words.index("identical") - 1]), int(words[words.index("failed") - 1])


def test_irsync_local_zone_local_and_zone_zone(grid, coll, env, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(3):
        make_file(src / f"f{i}.bin", 2000 + i, seed=i)
    make_file(src / "sub" / "g.bin", 5000, seed=9)
    up = run("secure-irsync", "-r", str(src), f"i:{coll}/mirror", env=env)
    assert up.returncode == 0 and _counts(up.stderr) == (4, 0, 0), up.stderr
    again = run("secure-irsync", "-r", str(src), f"i:{coll}/mirror", env=env)
    assert again.returncode == 0 and _counts(again.stderr) == (0, 4, 0), again.stderr   # no nesting, no bytes
    make_file(src / "f1.bin", 2001, seed=77)                   # same size, other content: checksum says so
    listed = run("secure-irsync", "-r", "-l", str(src), f"i:{coll}/mirror", env=env)
    assert listed.returncode == 0 and [x.split()[0] for x in listed.stdout.splitlines()] == [str(src / "f1.bin")]
    assert run("secure-irsync", "-r", "-s", str(src), f"i:{coll}/mirror", env=env).stderr.count("0 transferred")
    changed = run("secure-irsync", "-r", str(src), f"i:{coll}/mirror", env=env)
    assert _counts(changed.stderr) == (1, 3, 0), changed.stderr
    down = run("secure-irsync", "-r", f"i:{coll}/mirror", str(tmp_path / "back"), env=env)
    assert down.returncode == 0 and _tree(tmp_path / "back") == _tree(src), down.stderr
    copy = run("secure-irsync", "-r", f"i:{coll}/mirror", f"i:{coll}/copy", env=env)
    assert copy.returncode == 0 and _counts(copy.stderr) == (4, 0, 0), copy.stderr
    assert run("secure-irsync", "-r", f"i:{coll}/copy", str(tmp_path / "back2"), env=env).returncode == 0
    assert _tree(tmp_path / "back2") == _tree(src)
    copy_again = run("secure-irsync", "-r", f"i:{coll}/mirror", f"i:{coll}/copy", env=env)
    assert _counts(copy_again.stderr) == (0, 4, 0)


def test_irsync_usage_errors_exit_1(env, tmp_path):
    assert run("secure-irsync", str(tmp_path), str(tmp_path / "x"), env=env).returncode == 1   # no i: side
    assert run("secure-irsync", "--no-such", "a", "i:b", env=env).returncode == 1
    version = run("secure-irsync", "--version", env=env)
    assert version.returncode == 0 and version.stdout.startswith("secure-irsync ")
