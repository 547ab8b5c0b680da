"""secure-iget/secure-iput as drop-ins for iget/iput 4.3 (issue 20): every flag, -, -r targets, -X.

The reference list of flags is iRODS 4.3's own option parser (irods/irods 4-3-stable,
lib/core/src/irods_parse_command_line_options.cpp), shared by iget and iput; the exit
codes are those iget.cpp and iput.cpp return (0 done, 1 bad options, 3 failed).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_file
from secure_irods.icommand_flags import ACCEPTED, FLAGS, IMPLEMENTED, REFUSED
from secure_irods.transfer import get_temp_name, sha2_of_file

BIN = Path(sys.executable).parent
DOCS = Path(__file__).resolve().parents[1] / "docs" / "icommands.md"
MiB = 1024 * 1024

# Every option of iRODS 4.3's iget/iput parser (4-3-stable), long spellings with the short one.
ICOMMANDS_43 = {
    "-a": "--all", "-b": "--bulk", "-f": "--force", "-I": "--redirect", "-k": "--checksum",
    "-K": "--verify_checksum", "-n": "--repl_num", "-N": "--num_threads", "-P": "--progress", "-Q": "--rbudp",
    "-r": "--recursive", "-R": "--dest_resc", "-t": "--ticket", "-T": "--renew_socket", "-v": "--verbose",
    "-V": "--very_verbose", "-D": "--data_type", "-X": "--restart_file", "--link": None,
    "--ignore-symlinks": None, "--lfrestart": None, "--retries": None, "--wlock": None, "--rlock": None,
    "--purgec": None, "--kv_pass": None, "--metadata": None, "--acl": None,
}
VALUES = {"-D": "generic", "-n": "0", "-N": "2", "-R": "demoResc", "-t": "no-such-ticket", "-X": None,
          "--lfrestart": "lf.txt", "--retries": "1", "--kv_pass": "a=b", "--metadata": "a;1;u",
          "--acl": "read rods"}


def run(tool: str, *args: str, env: dict, cwd: Path | None = None, stdin: bytes | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], env=env, cwd=cwd, input=stdin, capture_output=True,
                          timeout=timeout)


@pytest.fixture
def env(grid, tmp_path) -> dict:
    return dict(grid.environ(), SECURE_IRODS_THROTTLE_DIR=str(tmp_path / "throttle"), SECURE_IRODS_MAX_WAIT="0.1",
                SECURE_IRODS_COOLDOWN="0.3")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ the table


def test_the_table_covers_every_flag_of_the_43_parser_and_nothing_else():
    ours = {flag.names[0]: (flag.names[1] if len(flag.names) > 1 else None) for flag in FLAGS}
    assert ours == ICOMMANDS_43


def test_docs_table_lists_every_flag_with_what_it_does_in_each_command():
    rows = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`-"):
            rows[re.match(r"`([^`]+)`", cells[0]).group(1)] = cells
    assert set(rows) == {flag.names[0] for flag in FLAGS}
    for flag in FLAGS:
        _, get_kind, get_text, put_kind, put_text = rows[flag.names[0]]
        assert (get_kind, put_kind) == (flag.get.kind, flag.put.kind), flag.names
        assert get_text == flag.get.text and put_text == flag.put.text, flag.names


@pytest.mark.parametrize("tool", ["secure-iget", "secure-iput"])
def test_every_flag_is_known_to_both_commands(tool, tmp_path):
    """No flag of 4.3 is "No such option" (exit 1): --help after it proves it parsed."""
    for name in ICOMMANDS_43:
        args = [name] + ([VALUES.get(name) or str(tmp_path / "r.txt")] if _takes_value(name) else [])
        result = run(tool, *args, "--help", env={})
        assert result.returncode == 0, (name, result.stderr)


def _takes_value(name: str) -> bool:
    return next(f for f in FLAGS if name in f.names).metavar is not None


@pytest.mark.parametrize("command", ["get", "put"])
def test_walk_the_table_accepted_flags_note_and_work_refused_ones_exit_1(grid, coll, env, tmp_path, command):
    """Each accepted flag: one note line, the transfer done, exit 0; each refused one: exit 1, one line,
    nothing transferred.  (Implemented flags have their own tests below.)"""
    src = make_file(tmp_path / "src.bin", 3000, seed=1)
    assert run("secure-iput", str(src), f"{coll}/obj.bin", env=env).returncode == 0
    for flag in FLAGS:
        use = flag.get if command == "get" else flag.put
        if use.kind == IMPLEMENTED:
            continue
        name = flag.names[0]
        args = [name] + ([VALUES.get(name) or "x"] if flag.metavar else [])
        if command == "get":
            target = tmp_path / f"got{len(name)}{name.strip('-')}"
            result = run("secure-iget", *args, f"{coll}/obj.bin", str(target), env=env, cwd=tmp_path)
        else:
            target = None
            result = run("secure-iput", *args, "-f", str(src), f"{coll}/obj.bin", env=env, cwd=tmp_path)
        err = result.stderr.decode()
        assert "Traceback" not in err
        if use.kind == REFUSED:
            assert result.returncode == 1 and err.strip().splitlines() == [f"secure-i{command}: "
                                                                             f"InvalidInputError: {use.text}"], name
            assert target is None or not target.exists()
        else:
            assert use.kind == ACCEPTED
            assert result.returncode == 0, (name, err)
            assert err.strip().splitlines() == [f"secure-i{command}: note: {use.text}"], (name, err)
            if target is not None:
                assert _sha(target) == _sha(src)


# ------------------------------------------------------------------ the job script (done-when of issue 20)

JOB_SCRIPT = """\
set -u
cd "$WORK"
iput -f -K -k -P data.bin "$COLL/data.bin";                          echo "put $?"
iput -K data.bin "$COLL/data.bin" 2>/dev/null;                       echo "put-exists $?"
iget -f -K -P -X restart.txt -N 0 "$COLL/data.bin" got.bin;          echo "get $?"
iget -f -K -P -X restart.txt -N 0 "$COLL/data.bin" got.bin;          echo "get-again $?"
iget "$COLL/data.bin" - > piped.bin;                                 echo "pipe $?"
iget "$COLL/data.bin" "$COLL/data.bin" - > twice.bin;                echo "pipe-two $?"
iget "$COLL/no-such.bin" nothing.bin 2>/dev/null;                    echo "missing $?"
iget --no-such-flag "$COLL/data.bin" x.bin 2>/dev/null;             echo "bad-flag $?"
iput -r -f -K results "$COLL/results";                               echo "put-r $?"
iget -r -f -K "$COLL/results" gotdir;                                echo "get-r $?"
"""

# What iget/iput 4.3 return for each line (iget.cpp/iput.cpp: 0, 1 usage, 3 failure).
EXPECTED = ["put 0", "put-exists 3", "get 0", "get-again 0", "pipe 0", "pipe-two 0", "missing 3", "bad-flag 1",
            "put-r 0", "get-r 0"]


def test_a_job_script_written_for_icommands_runs_with_the_names_swapped(grid, coll, env, tmp_path):
    work = tmp_path / "work"
    (work / "results" / "sub").mkdir(parents=True)
    data = make_file(work / "data.bin", 3 * MiB + 17, seed=3)
    make_file(work / "results" / "a.txt", 100, seed=4)
    make_file(work / "results" / "sub" / "b.txt", 200, seed=5)
    script = re.sub(r"\bi(get|put)\b", r"secure-i\1", JOB_SCRIPT)
    env = dict(env, WORK=str(work), COLL=coll, PATH=f"{BIN}:{env['PATH']}")
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, timeout=300)
    codes = [line for line in result.stdout.decode().splitlines() if re.fullmatch(r"[a-z-]+ \d+", line)]
    assert codes == EXPECTED, result.stderr.decode()[-3000:]
    assert _sha(work / "got.bin") == _sha(data)
    assert _sha(work / "piped.bin") == _sha(data)
    assert (work / "twice.bin").read_bytes() == data.read_bytes() * 2
    assert not (work / "-").exists() and not (work / "nothing.bin").exists()
    assert _sha(work / "gotdir" / "sub" / "b.txt") == _sha(work / "results" / "sub" / "b.txt")
    assert (work / "restart.txt").read_text().count("data.bin") >= 1     # -X recorded the finished get
    err = result.stderr.decode()
    assert "got.bin: 3.0 MiB" in err                                    # -P: one line per object


# ------------------------------------------------------------------ implemented flags, one by one


def test_resumed_get_says_so_and_counts_the_kept_bytes(grid, coll, env, tmp_path):
    src = make_file(tmp_path / "big.bin", 40 * MiB, seed=7)
    assert run("secure-iput", str(src), f"{coll}/big.bin", env=env).returncode == 0
    target = tmp_path / "out" / "big.bin"
    target.parent.mkdir()
    temp = get_temp_name(f"{coll}/big.bin", sha2_of_file(src), target)
    temp.write_bytes(src.read_bytes()[:8 * MiB])             # an interrupted earlier run kept 8 MiB
    result = run("secure-iget", "-P", f"{coll}/big.bin", str(target), env=env)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert _sha(target) == _sha(src)
    assert "40.0 MiB in" in err and "resumed: 8.0 MiB kept from an interrupted run, 32.0 MiB moved" in err


def test_resumed_get_progress_counts_the_whole_object(client, coll, tmp_path):
    src = make_file(tmp_path / "p.bin", 5 * MiB, seed=8)
    client.put(src, f"{coll}/p.bin")
    target = tmp_path / "p-out.bin"
    get_temp_name(f"{coll}/p.bin", sha2_of_file(src), target).write_bytes(src.read_bytes()[:2 * MiB])
    seen: list[int] = []
    result = client.get(f"{coll}/p.bin", target, progress=seen.append)
    assert result.resumed_from == 2 * MiB and sum(seen) == 5 * MiB and seen[0] == 2 * MiB


def test_recursive_targets_are_created_and_repeat_runs_do_not_nest(grid, coll, env, tmp_path):
    local = tmp_path / "localdir"
    (local / "sub").mkdir(parents=True)
    make_file(local / "a.bin", 500, seed=1)
    make_file(local / "sub" / "b.bin", 700, seed=2)
    for _ in range(2):
        put = run("secure-iput", "-r", "-f", str(local), f"{coll}/newcoll", env=env)
        assert put.returncode == 0, put.stderr
        got = run("secure-iget", "-r", "-f", f"{coll}/newcoll", str(tmp_path / "gotdir"), env=env)
        assert got.returncode == 0, got.stderr
        assert sorted(p.relative_to(tmp_path / "gotdir").as_posix() for p in (tmp_path / "gotdir").rglob("*")) \
            == ["a.bin", "sub", "sub/b.bin"]
    ls = run("secure-iget", "-r", f"{coll}/newcoll/localdir", str(tmp_path / "x"), env=env)
    assert ls.returncode == 3                                  # nothing nested in the zone either
    trailing = run("secure-iget", "-r", f"{coll}/newcoll", f"{tmp_path}/fresh/", env=env)
    assert trailing.returncode == 0 and (tmp_path / "fresh" / "sub" / "b.bin").exists(), trailing.stderr
    into = run("secure-iget", "-r", f"{coll}/newcoll", str(tmp_path / "gotdir"), env=env)   # someone else's dir
    (tmp_path / "plain").mkdir()
    plain = run("secure-iget", "-r", f"{coll}/newcoll", str(tmp_path / "plain"), env=env)
    assert plain.returncode == 0 and (tmp_path / "plain" / "newcoll" / "a.bin").exists()    # iget's nesting
    assert into.returncode == 3 and b"exists" in into.stderr                               # no -f: as iget
    orphan = run("secure-iget", "-r", f"{coll}/newcoll", str(tmp_path / "no" / "parent"), env=env)
    assert orphan.returncode == 3 and b"parent must exist" in orphan.stderr


def test_stdin_put_is_atomic_and_lands_whole(grid, coll, env, tmp_path):
    payload = make_file(tmp_path / "payload", 2 * MiB + 5, seed=9).read_bytes()
    put = run("secure-iput", "-", f"{coll}/from-stdin.bin", env=env, stdin=payload)
    assert put.returncode == 0, put.stderr
    back = run("secure-iget", f"{coll}/from-stdin.bin", "-", env=env)
    assert back.returncode == 0 and back.stdout == payload
    again = run("secure-iput", "-", f"{coll}/from-stdin.bin", env=env, stdin=b"other")
    assert again.returncode == 3 and b"exists" in again.stderr     # no -f: the object is untouched
    assert run("secure-iget", f"{coll}/from-stdin.bin", "-", env=env).stdout == payload
    nodest = run("secure-iput", "-", env=env, stdin=b"x")
    assert nodest.returncode == 1


def test_metadata_acl_and_data_type_arrive_with_the_object(grid, coll, env, tmp_path, session):
    from irods.models import Collection, DataObject

    src = make_file(tmp_path / "m.bin", 1000, seed=2)
    put = run("secure-iput", "--metadata", "station;OGDI;;rate;100;Hz", "--acl", "read public;", "-D", "mseed",
              str(src), f"{coll}/m.bin", env=env)
    assert put.returncode == 0, put.stderr
    obj = session.data_objects.get(f"{coll}/m.bin")
    assert sorted((m.name, m.value, m.units or "") for m in obj.metadata.items()) == \
        [("rate", "100", "Hz"), ("station", "OGDI", "")]
    assert ("read_object", "public") in {(a.access_name, a.user_name) for a in session.acls.get(obj)}
    row = next(iter(session.query(DataObject.type).filter(Collection.name == coll).filter(DataObject.name == "m.bin")))
    assert row[DataObject.type] == "mseed"
    bad = run("secure-iput", "--metadata", "a;b;c;d", str(src), f"{coll}/m2.bin", env=env)
    assert bad.returncode == 1 and not session.data_objects.exists(f"{coll}/m2.bin")


def test_restart_file_skips_what_a_killed_run_finished(grid, coll, env, tmp_path):
    local = tmp_path / "many"
    local.mkdir()
    for i in range(4):
        make_file(local / f"f{i}.bin", 10_000 + i, seed=i)
    put = run("secure-iput", "-r", "-X", str(tmp_path / "put.restart"), str(local), f"{coll}/many", env=env)
    assert put.returncode == 0, put.stderr
    assert len((tmp_path / "put.restart").read_text().splitlines()) == 4
    got = run("secure-iget", "-r", "-X", str(tmp_path / "get.restart"), "-v", f"{coll}/many", str(tmp_path / "g"),
              env=env)
    assert got.returncode == 0, got.stderr
    again = run("secure-iget", "-r", "-X", str(tmp_path / "get.restart"), "-v", f"{coll}/many", str(tmp_path / "g"),
                env=env)
    assert again.returncode == 0 and b" in " not in again.stderr, again.stderr
    assert len((tmp_path / "get.restart").read_text().splitlines()) == 4    # nothing fetched twice


def test_replica_number_reads_that_replica(grid, coll, env, tmp_path, client):
    src = make_file(tmp_path / "r.bin", 5000, seed=11)
    client.put(src, f"{coll}/r.bin")
    good = run("secure-iget", "-n", "0", f"{coll}/r.bin", str(tmp_path / "r0.bin"), env=env)
    assert good.returncode == 0 and _sha(tmp_path / "r0.bin") == _sha(src), good.stderr
    missing = run("secure-iget", "-n", "7", f"{coll}/r.bin", str(tmp_path / "r7.bin"), env=env)
    assert missing.returncode == 3 and b"no replica number 7" in missing.stderr
    assert not (tmp_path / "r7.bin").exists()


def test_version_on_both_commands():
    for tool in ("secure-iget", "secure-iput"):
        result = run(tool, "--version", env={})
        assert result.returncode == 0 and re.match(rb"secure-i(get|put) \S+ \(python-irodsclient \S+\)",
                                                   result.stdout)


def test_all_replicas_get_the_new_content_with_a(grid, coll, env, tmp_path, session):
    import uuid

    from irods.models import Collection, DataObject, Resource

    other = f"copyResc{uuid.uuid4().hex[:6]}"
    session.resources.create(other, "unixfilesystem", host="localhost", path=str(tmp_path / "vault"))
    old = make_file(tmp_path / "old.bin", 4000, seed=1)
    new = make_file(tmp_path / "new.bin", 6000, seed=2)
    assert run("secure-iput", str(old), f"{coll}/a.bin", env=env).returncode == 0
    session.data_objects.replicate(f"{coll}/a.bin", resource=other)

    def replicas():
        rows = session.query(Resource.name, DataObject.replica_status, DataObject.size).filter(
            Collection.name == coll).filter(DataObject.name == "a.bin")
        return sorted((r[Resource.name], str(r[DataObject.replica_status]), int(r[DataObject.size])) for r in rows)

    assert [r[0] for r in replicas()] == sorted(["demoResc", other])
    put = run("secure-iput", "-f", "-a", str(new), f"{coll}/a.bin", env=env)
    assert put.returncode == 0, put.stderr
    assert replicas() == sorted([("demoResc", "1", 6000), (other, "1", 6000)])
    got = run("secure-iget", "-n", "1", "-f", f"{coll}/a.bin", str(tmp_path / "back.bin"), env=env)
    assert got.returncode == 0 and _sha(tmp_path / "back.bin") == _sha(new), got.stderr
    one = run("secure-iput", "-f", str(old), f"{coll}/a.bin", env=env)       # without -a: one replica
    assert one.returncode == 0 and [r[0] for r in replicas()] == ["demoResc"]


def test_renew_socket_reconnects_between_objects(grid, coll, env, tmp_path, monkeypatch):
    """-T: a connection older than RENEW_AFTER is replaced between objects (here: after every one)."""
    from secure_irods import cli
    from secure_irods.exitcodes import run as run_command

    local = tmp_path / "four"
    local.mkdir()
    for i in range(4):
        make_file(local / f"{i}.bin", 100 + i, seed=i)
    assert run("secure-iput", "-r", str(local), f"{coll}/four", env=env).returncode == 0
    for name, value in env.items():
        if name.startswith(("IRODS_", "SECURE_IRODS_")):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli, "RENEW_AFTER", 0.0)
    logins = []
    for flags in (["-T"], []):
        before = grid.control.stats()["logins"]
        assert run_command(cli.iget, "secure-iget", [*flags, "-r", f"{coll}/four", str(tmp_path / f"g{len(flags)}")]) == 0
        logins.append(grid.control.stats()["logins"] - before)
    assert logins[1] == 1 and logins[0] >= 4, logins


def test_ticket_is_presented_or_refused_in_one_line(grid, coll, env, tmp_path, session):
    """-t: against a zone with tickets the get uses one; a zone without them ends the command in one line."""
    from irods.ticket import Ticket

    src = make_file(tmp_path / "t.bin", 3000, seed=5)
    assert run("secure-iput", str(src), f"{coll}/t.bin", env=env).returncode == 0
    target = tmp_path / "t-back.bin"
    try:
        ticket = Ticket(session).issue("read", f"{coll}/t.bin").string
    except Exception:      # this zone has no tickets (the local grid until it implements TICKET_ADMIN_AN)
        refused = run("secure-iget", "-t", "sometickt", f"{coll}/t.bin", str(target), env=env)
        err = refused.stderr.decode()
        assert refused.returncode == 3 and len(err.strip().splitlines()) == 1 and "TICKET_ADMIN" in err, err
        assert not target.exists()
        return
    used = run("secure-iget", "-t", ticket, f"{coll}/t.bin", str(target), env=env)
    assert used.returncode == 0 and _sha(target) == _sha(src), used.stderr
    wrong = run("secure-iget", "-t", "no-such-ticket", f"{coll}/t.bin", str(tmp_path / "w.bin"), env=env)
    assert wrong.returncode == 3 and not (tmp_path / "w.bin").exists()
