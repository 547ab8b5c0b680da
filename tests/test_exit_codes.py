"""One exit-code table for every command (secure_irods.exitcodes), checked per failure class.

0 ok; 1 bad options or environment; 2 transient at the deadline; 3 permanent; 7 authentication.
Every case runs the real command against the local grid (or a port nothing listens on).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from seisstore.cli import main as seisstore_main

BIN = Path(sys.executable).parent


def _leaves(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _leaves(cmd, (*prefix, name))
        else:
            yield (*prefix, name)


SEISSTORE_COMMANDS = sorted(_leaves(seisstore_main))


@pytest.mark.parametrize("command", SEISSTORE_COMMANDS, ids=" ".join)
def test_every_seisstore_subcommand_exits_1_on_a_bad_option(command):
    result = CliRunner().invoke(seisstore_main, [*command, "--no-such-option"])
    assert result.exit_code == 1, result.output
    assert "no such option" in result.output.lower() and "Traceback" not in result.output


@pytest.mark.parametrize("command", SEISSTORE_COMMANDS, ids=" ".join)
def test_every_seisstore_subcommand_has_help(command):
    result = CliRunner().invoke(seisstore_main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


SECURE_TOOLS = [["secure-iget"], ["secure-iput"], ["secure-irsync"], ["secure-iinit"], ["secure-irods", "check"],
                ["secure-irods-grid", "stats"]]


@pytest.mark.parametrize("tool", SECURE_TOOLS, ids=" ".join)
def test_secure_commands_exit_1_on_a_bad_option(tool):
    result = subprocess.run([str(BIN / tool[0]), *tool[1:], "--no-such-option", "x"], capture_output=True, text=True)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("tool", SECURE_TOOLS, ids=" ".join)
def test_every_command_has_version(tool):
    result = subprocess.run([str(BIN / tool[0]), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith(tool[0] + " "), result.stdout + result.stderr


# ------------------------------------------------------------------ zone-facing failures


@pytest.fixture
def env_for(grid, tmp_path):
    """Environment variables for a subprocess reaching the grid, or a broken variant of it."""
    def make(*, port: int | None = None, password: str | None = None) -> dict[str, str]:
        env = grid.environ()
        settings = json.loads(grid.env_file.read_text())
        if port is not None:
            settings["irods_port"] = port
        path = tmp_path / f"env-{port}-{password}.json"
        path.write_text(json.dumps(settings))
        env["IRODS_ENVIRONMENT_FILE"] = str(path)
        if password is not None:
            from irods.password_obfuscation import encode

            auth = tmp_path / f"auth-{password}"
            auth.write_text(encode(password))
            env["IRODS_AUTHENTICATION_FILE"] = str(auth)
        env.update(SECURE_IRODS_THROTTLE_DIR=str(tmp_path / "throttle"), SECURE_IRODS_DEADLINE="2",
                   SECURE_IRODS_COOLDOWN="0.2", SECURE_IRODS_MAX_WAIT="0.5")
        return env
    return make


def _free_port() -> int:
    with socket.socket() as probe:      # bound, then released: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _commands(home: str, local: Path, tmp_path: Path) -> dict[str, list[str]]:
    job = tmp_path / "job.py"
    job.write_text("print('job')\n")
    return {
        "secure-iget": [str(BIN / "secure-iget"), f"{home}/no-such-object", str(tmp_path)],
        "secure-iput": [str(BIN / "secure-iput"), str(local), f"{home}/no-such-collection/"],
        "seisstore ls": [str(BIN / "seisstore"), "ls", f"{home}/no-such-archive"],
        "seisstore coverage": [str(BIN / "seisstore"), "coverage", f"{home}/no-such-archive"],
        "seisstore campaign new --upload": [
            str(BIN / "seisstore"), "campaign", "new", "c", "--dates", "2011-01-01", "--stations", "A",
            "--n-dates", "1", "--n-stations", "1", "--script", str(job), "--out", str(tmp_path / "camp"),
            "--collection", f"{home}/no-such-parent/c", "--upload", "--force"],
    }


CASES = ["secure-iget", "secure-iput", "seisstore ls", "seisstore coverage", "seisstore campaign new --upload"]


@pytest.mark.parametrize("name", CASES)
def test_zone_down_at_the_deadline_is_2(grid, env_for, tmp_path, name):
    local = tmp_path / "f.txt"
    local.write_text("x")
    cmd = _commands(grid.home, local, tmp_path)[name]
    result = subprocess.run(cmd, env=env_for(port=_free_port()), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "refused" in result.stderr.lower()


@pytest.mark.parametrize("name", CASES)
def test_missing_object_or_collection_is_3(grid, env_for, tmp_path, name):
    local = tmp_path / "f.txt"
    local.write_text("x")
    cmd = _commands(grid.home, local, tmp_path)[name]
    result = subprocess.run(cmd, env=env_for(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "no-such" in last and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", CASES)
def test_wrong_password_is_7(grid, env_for, tmp_path, name):
    if not grid.local:
        pytest.skip("would count failed log-ins against a real account")
    local = tmp_path / "f.txt"
    local.write_text("x")
    cmd = _commands(grid.home, local, tmp_path)[name]
    result = subprocess.run(cmd, env=env_for(password="not-the-password"), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 7, result.stderr
    assert "not-the-password" not in result.stderr and "Traceback" not in result.stderr


def test_ingest_exit_codes(grid, env_for, tmp_path):
    """ingest: a missing local directory is 1; a zone refusing until the deadline is 2."""
    seis = str(BIN / "seisstore")
    missing = subprocess.run([seis, "ingest", str(tmp_path / "nope"), f"{grid.home}/a"], env=env_for(),
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1, missing.stderr
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "x.txt").write_text("not seismic")
    down = subprocess.run([seis, "ingest", str(raw), f"{grid.home}/a"], env=env_for(port=_free_port()),
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 2, down.stderr


# ------------------------------------------------------------------ one exit path
# Every entry point (each seisstore subcommand that reaches the zone, and each job module)
# meets the same error at its first zone contact, and must exit with the same code: the
# one mapping in secure_irods.exitcodes, never a per-command choice.

def _zone_commands(tmp: Path) -> dict[str, list[str]]:
    job = tmp / "job.py"
    job.write_text("print('job')\n")
    local = tmp / "raw"
    local.mkdir(exist_ok=True)
    plan = tmp / "p.plan"
    plan.write_text(json.dumps({"plan": {"collection": "/z/c", "mode": "spread", "targets": ["a"], "sources": [],
                                         "weights": {}, "min_copies": 1, "threshold": 5, "seed": 0}}) + "\n")
    return {
        "mkdir": ["mkdir", "/z/c"],
        "ingest": ["ingest", str(local), "/z/c"],
        "ls": ["ls", "/z/c"],
        "coverage": ["coverage", "/z/c"],
        "du": ["du", "/z/c"],
        "rebalance plan": ["rebalance", "plan", "/z/c", "--to", "a", "-o", str(tmp / "out.plan")],
        "rebalance apply": ["rebalance", "apply", str(plan)],
        "rebalance verify": ["rebalance", "verify", "/z/c"],
        "bundles ls": ["bundles", "ls", "/z/c"],
        "stack": ["stack", "/z/c", "--all", "-o", str(tmp / "s.h5")],
        "campaign new --upload": ["campaign", "new", "c", "--dates", "2011-01-01", "--stations", "A", "--n-dates",
                                  "1", "--n-stations", "1", "--script", str(job), "--out", str(tmp / "camp"),
                                  "--collection", "/z/c", "--upload", "--force"],
    }


def _job_workdir(tmp: Path) -> Path:
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    (work / "dates.txt").write_text("2011-01-01\n")
    (work / "stations.txt").write_text("A\nB\n")
    return work


ERRORS = [
    pytest.param(lambda: _errors().ZoneBusyError("connection refused"), 2, id="zone-busy"),
    pytest.param(lambda: ConnectionRefusedError(111, "Connection refused"), 2, id="os-refused"),
    pytest.param(lambda: _errors().NotFoundError("no such collection: /z/c"), 3, id="not-found"),
    pytest.param(lambda: _errors().PermissionDeniedError("CAT_NO_ACCESS_PERMISSION"), 3, id="permission"),
    pytest.param(lambda: _errors().AuthenticationError("CAT_INVALID_AUTHENTICATION"), 7, id="authentication"),
    pytest.param(lambda: _errors().InvalidInputError("bad irods_host"), 1, id="invalid-input"),
]


def _errors():
    from secure_irods import errors

    return errors


@pytest.fixture
def failing_connect(monkeypatch):
    """Make every way of connecting raise ``make()``; counts the attempts."""
    import secure_irods
    import secure_irods.client

    calls = []

    def use(make):
        def connect(*args, **kwargs):
            calls.append(args)
            raise make()
        monkeypatch.setattr(secure_irods.client, "connect", connect)
        monkeypatch.setattr(secure_irods, "connect", connect)
        return calls
    return use


@pytest.mark.parametrize("make, code", ERRORS)
def test_every_entry_point_maps_the_same_error_to_the_same_code(failing_connect, tmp_path, monkeypatch, make, code):
    calls = failing_connect(make)
    monkeypatch.chdir(tmp_path)
    seen = {}
    for name, args in _zone_commands(tmp_path).items():
        before = len(calls)
        result = CliRunner().invoke(seisstore_main, args)
        assert len(calls) > before, f"{name} did not reach the zone: {result.output}"
        assert "Traceback" not in result.output, result.output
        seen[f"seisstore {name}"] = result.exit_code
    work = _job_workdir(tmp_path)
    from seisstore.jobs import correlate, preprocess

    for module, config in ((correlate, {"processed": "/z/p", "bundles": "/z/b"}),
                           (preprocess, {"archive": "/z/a", "processed": "/z/p"})):
        monkeypatch.chdir(work)
        monkeypatch.setenv("SEISSTORE_WORKDIR", str(work))
        with pytest.raises(SystemExit) as ended:
            module.main(["1", "0", "1", "0"], config=config)
        seen[module.__name__] = ended.value.code
    assert seen == dict.fromkeys(seen, code)


def test_a_job_outside_its_work_directory_is_1(tmp_path, monkeypatch, capsys):
    """Missing dates.txt/stations.txt: the job's environment is wrong (1), as a bad setting is."""
    from seisstore.jobs import correlate

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as ended:
        correlate.main(["1", "0", "1", "0"], config={"processed": "/z/p", "bundles": "/z/b"})
    assert ended.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dates.txt" in err[0], err


def test_help_and_local_commands_never_connect(failing_connect, tmp_path):
    """The group's context object connects on first use only: --help needs no iRODS environment."""
    calls = failing_connect(lambda: AssertionError("connected"))
    for command in SEISSTORE_COMMANDS:
        assert CliRunner().invoke(seisstore_main, [*command, "--help"]).exit_code == 0
    assert calls == []


# ------------------------------------------------------------------ permanent in seconds


def test_refused_connection_names_host_and_port_in_its_first_line(grid, env_for, tmp_path):
    port = _free_port()
    result = subprocess.run([str(BIN / "secure-iget"), f"{grid.home}/x", str(tmp_path)], env=env_for(port=port),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert f"nothing listening at 127.0.0.1:{port}" in first and "--deadline" in first, first


def test_a_resource_without_a_replica_and_an_over_long_name_fail_in_seconds(grid, client, coll, env_for, tmp_path):
    import time

    if not grid.local:
        pytest.skip("adds a resource to the zone")
    from secure_irods.errors import ExistsError

    try:
        client.add_resource("noreplicaResc", "unixfilesystem", host="localhost", vault=str(tmp_path / "vault"))
    except ExistsError:
        pass
    local = tmp_path / "f.txt"
    local.write_text("x" * 1000)
    client.put(local, f"{coll}/obj")
    client.disconnect()        # the node's connection window may admit one: the commands below need it
    env = dict(env_for(), SECURE_IRODS_DEADLINE="600")        # a transient verdict would wait 10 minutes
    out = tmp_path / "out"
    out.mkdir()
    long_name = f"{coll}/{'L' * 1100}"
    for cmd in ([str(BIN / "secure-iget"), "-R", "noreplicaResc", f"{coll}/obj", str(out / "obj")],
                [str(BIN / "secure-iget"), long_name, str(out / "long")],
                [str(BIN / "secure-iput"), "-f", str(local), long_name],
                [str(BIN / "secure-iput"), "-f", str(local), f"{coll}/{'M' * 240}"]):
        started = time.monotonic()
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 3, result.stderr
        assert time.monotonic() - started < 10
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert list(out.iterdir()) == []                           # no temporary left behind
    assert "no replica on resource noreplicaResc" in subprocess.run(
        [str(BIN / "secure-iget"), "-R", "noreplicaResc", f"{coll}/obj", str(out / "obj")], env=env,
        capture_output=True, text=True, timeout=60).stderr
    assert sorted(client.listdir(coll)) == ["obj"]                 # nothing partial in the zone either


def test_a_get_into_a_full_disk_removes_its_temporary_and_says_how_much_it_needs(grid, client, coll, env_for,
                                                                                 tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        big = tmp_path / "big.bin"
        big.write_bytes(bytes(range(256)) * 4096)                   # 1 MiB
        client.put(big, f"{coll}/big.bin")
        client.disconnect()    # the node's connection window may admit one: secure-iget needs it
        result = subprocess.run([str(BIN / "secure-iget"), f"{coll}/big.bin", str(small / "big.bin")],
                                env=env_for(), capture_output=True, text=True, timeout=60)
        assert result.returncode == 3, result.stderr
        assert f"needs {1 << 20} bytes" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)
