"""Hostile inputs against every command of secure-iget, secure-iput, seisstore and secure-irods-grid
(and secure-irsync, secure-irods check).

Each row runs the installed command in a subprocess against the local grid (or a broken
environment) and checks what the developers' guide promises for bad input: the exit code
of the table (0 ok, 1 bad options or environment, 2 transient at the deadline, 3 permanent),
one line on stderr (besides the wait lines of retries), no traceback, and nothing partial
at a final name, locally or in the zone.  A new seisstore command must get a row: a test
checks every leaf command of the group appears.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest

from seisstore.cli import main as seisstore_main

BIN = Path(sys.executable).parent
LONG = "L" * 1100
WAIT_LINE = re.compile(r"; retry \d+ in [\d.]+s|; refusal \d+ in a row, backing off")

# (id, command and arguments, environment, exit codes allowed, a final name that must not appear)
# In arguments: {home} the zone's home, {w} the work directory, {LONG} an over-long name.
ROWS = [
    # secure-iget
    ("iget missing object", ["secure-iget", "{home}/nope", "{w}/out1"], "ok", {3}, "{w}/out1"),
    ("iget name with a newline", ["secure-iget", "{home}/a\nb-missing", "{w}/out2"], "ok", {3}, "{w}/out2"),
    ("iget over-long name", ["secure-iget", "{home}/{LONG}", "{w}/out3"], "ok", {3}, "{w}/out3"),
    ("iget unicode name", ["secure-iget", "{home}/séisme—日本", "{w}/out4"], "ok", {3}, "{w}/out4"),
    ("iget outside the zone", ["secure-iget", "/otherZone/home/x", "{w}/out5"], "ok", {3}, "{w}/out5"),
    ("iget into a missing directory", ["secure-iget", "{home}/corpus.txt", "{w}/nodir/x"], "ok", {3}, None),
    ("iget over-long local name", ["secure-iget", "{home}/corpus.txt", "{w}/" + "x" * 300], "ok", {3}, None),
    ("iget onto an existing file", ["secure-iget", "{home}/corpus.txt", "{w}/file.txt"], "ok", {3}, None),
    ("iget empty environment file", ["secure-iget", "{home}/corpus.txt", "{w}/out6"], "empty", {1}, "{w}/out6"),
    ("iget non-JSON environment", ["secure-iget", "{home}/corpus.txt", "{w}/out7"], "nonjson", {1}, "{w}/out7"),
    ("iget server down", ["secure-iget", "{home}/corpus.txt", "{w}/out8"], "down", {2}, "{w}/out8"),
    ("iget wrong port", ["secure-iget", "{home}/corpus.txt", "{w}/out9"], "wrong", {2}, "{w}/out9"),
    # secure-iput
    ("iput missing file", ["secure-iput", "{w}/nope", "{home}/p1"], "ok", {3}, None),
    ("iput a directory", ["secure-iput", "{w}/adir", "{home}/p2"], "ok", {1}, None),
    ("iput over-long name", ["secure-iput", "{w}/file.txt", "{home}/{LONG}"], "ok", {3}, None),
    ("iput outside the zone", ["secure-iput", "{w}/file.txt", "/otherZone/home/x"], "ok", {3}, None),
    ("iput name with a newline", ["secure-iput", "-f", "{w}/file.txt", "{home}/a\nb"], "ok", {0}, None),
    ("iput unicode name", ["secure-iput", "-f", "{w}/file.txt", "{home}/séisme—日本"], "ok", {0}, None),
    ("iput existing without -f", ["secure-iput", "{w}/file.txt", "{home}/corpus.txt"], "ok", {3}, None),
    ("iput server down", ["secure-iput", "{w}/file.txt", "{home}/p3"], "down", {2}, None),
    ("iput non-JSON environment", ["secure-iput", "{w}/file.txt", "{home}/p4"], "nonjson", {1}, None),
    # secure-irsync, secure-irods (dropin's companions)
    ("irsync missing local file", ["secure-irsync", "{w}/nope", "i:{home}/s1"], "ok", {3}, None),
    ("irsync missing object", ["secure-irsync", "i:{home}/nope", "{w}/s2"], "ok", {3}, "{w}/s2"),
    ("irsync over-long name", ["secure-irsync", "{w}/file.txt", "i:{home}/{LONG}"], "ok", {3}, None),
    ("irods check server down", ["secure-irods", "check"], "down", {2}, None),
    # seisstore
    ("ingest missing input", ["seisstore", "ingest", "{w}/nope", "{home}/arch"], "ok", {1}, None),
    ("ingest glob matching nothing", ["seisstore", "ingest", "{w}/*.nothing", "{home}/arch"], "ok", {1}, None),
    ("ingest a text file", ["seisstore", "ingest", "{w}/file.txt", "{home}/arch", "--create"], "ok", {3}, None),
    ("ingest into an over-long name", ["seisstore", "ingest", "{w}/file.txt", "{home}/{LONG}", "--create"], "ok",
     {3}, None),
    ("ingest server down", ["seisstore", "ingest", "{w}/file.txt", "{home}/arch"], "down", {2}, None),
    ("ingest report into a missing dir", ["seisstore", "ingest", "{w}/file.txt", "{home}/arch", "--report",
                                          "{w}/nodir/r.json"], "ok", {1}, None),
    ("ls missing collection", ["seisstore", "ls", "{home}/nope"], "ok", {3}, None),
    ("ls a name with a newline", ["seisstore", "ls", "{home}/a\nb-missing"], "ok", {3}, None),
    ("ls empty environment file", ["seisstore", "ls", "{home}/nope"], "empty", {1}, None),
    ("ls wrong port", ["seisstore", "ls", "{home}/nope"], "wrong", {2}, None),
    ("coverage unicode name", ["seisstore", "coverage", "{home}/séisme"], "ok", {3}, None),
    ("leftovers missing collection", ["seisstore", "leftovers", "{home}/nope"], "ok", {3}, None),
    ("leftovers over-long name", ["seisstore", "leftovers", "{home}/{LONG}", "--remove"], "ok", {3}, None),
    ("doctor non-JSON environment", ["seisstore", "doctor"], "nonjson", {1}, None),
    ("doctor server down", ["seisstore", "doctor"], "down", {2}, None),
    ("du missing collection", ["seisstore", "du", "{home}/nope"], "ok", {3}, None),
    ("du server down", ["seisstore", "du", "{home}/nope"], "down", {2}, None),
    ("mkdir over-long name", ["seisstore", "mkdir", "{home}/{LONG}"], "ok", {3}, None),
    ("mkdir outside the zone", ["seisstore", "mkdir", "/otherZone/x"], "ok", {3}, None),
    ("bundles ls missing", ["seisstore", "bundles", "ls", "{home}/nope"], "ok", {3}, None),
    ("stack missing", ["seisstore", "stack", "{home}/nope", "--all", "-o", "{w}/st.h5"], "ok", {3}, "{w}/st.h5"),
    ("stack non-JSON environment", ["seisstore", "stack", "{home}/nope", "--all", "-o", "{w}/st2.h5"], "nonjson", {1},
     "{w}/st2.h5"),
    ("dvv missing collection", ["seisstore", "dvv", "{home}/nope", "--all", "--velocity", "2500", "-o",
                                "{w}/d.h5"], "ok", {3}, "{w}/d.h5"),
    ("dvv without a lag window", ["seisstore", "dvv", "{home}/nope", "--all", "-o", "{w}/d2.h5"], "ok", {1},
     "{w}/d2.h5"),
    ("plot dvv a text file", ["seisstore", "plot", "dvv", "{w}/file.txt", "-o", "{w}/d.png"], "ok", {1, 3},
     "{w}/d.png"),
    ("plot interferogram missing", ["seisstore", "plot", "interferogram", "{w}/nope.h5", "-o", "{w}/i.png"], "ok",
     {1}, "{w}/i.png"),
    ("export missing stacks", ["seisstore", "export", "{w}/nope.h5"], "ok", {1}, None),
    ("export a directory", ["seisstore", "export", "{w}/adir"], "ok", {1}, None),
    ("export a text file", ["seisstore", "export", "{w}/file.txt"], "ok", {1, 3}, None),
    ("plot gather missing", ["seisstore", "plot", "gather", "{w}/nope.h5", "-o", "{w}/g.png"], "ok", {1}, "{w}/g.png"),
    ("plot gather a text file", ["seisstore", "plot", "gather", "{w}/file.txt", "-o", "{w}/g2.png"], "ok", {1, 3},
     "{w}/g2.png"),
    ("rebalance plan missing", ["seisstore", "rebalance", "plan", "{home}/nope", "--to", "demoResc", "-o",
                                "{w}/p.jsonl"], "ok", {3}, "{w}/p.jsonl"),
    ("rebalance apply missing plan", ["seisstore", "rebalance", "apply", "{w}/nope.jsonl"], "ok", {1}, None),
    ("rebalance apply not a plan", ["seisstore", "rebalance", "apply", "{w}/file.txt"], "ok", {1}, None),
    ("rebalance status not a plan", ["seisstore", "rebalance", "status", "{w}/file.txt"], "ok", {1}, None),
    ("rebalance verify missing", ["seisstore", "rebalance", "verify", "{home}/nope"], "ok", {3}, None),
    ("campaign new missing script", ["seisstore", "campaign", "new", "c", "--dates", "2011-01-01", "--stations", "A",
                                     "--n-dates", "1", "--n-stations", "1", "--script", "{w}/nope.py",
                                     "--collection", "{home}/c", "--out", "{w}/camp"], "ok", {1}, "{w}/camp"),
    ("campaign new unreadable dates", ["seisstore", "campaign", "new", "c", "--dates", "@{w}/nope.txt",
                                       "--stations", "A", "--n-dates", "1", "--n-stations", "1", "--script",
                                       "{w}/file.txt", "--collection", "{home}/c", "--out", "{w}/camp2"], "ok", {1},
     "{w}/camp2"),
    ("campaign run-local not a campaign", ["seisstore", "campaign", "run-local", "{w}/adir"], "ok", {1}, None),
    ("campaign status a file", ["seisstore", "campaign", "status", "{w}/file.txt"], "ok", {1}, None),
    ("demo workdir is a file", ["seisstore", "demo", "--workdir", "{w}/file.txt"], "ok", {1}, None),
    ("demo workdir holds a foreign file", ["seisstore", "demo", "--workdir", "{w}/adir"], "ok", {1}, None),
    # secure-irods-grid
    ("grid serve on a file", ["secure-irods-grid", "serve", "--root", "{w}/file.txt"], "ok", {1}, None),
    ("grid stats missing root", ["secure-irods-grid", "stats", "--root", "{w}/nope"], "ok", {1}, None),
    ("grid stats not a grid", ["secure-irods-grid", "stats", "--root", "{w}/adir"], "ok", {1}, None),
    ("grid faults not a grid", ["secure-irods-grid", "faults", "--root", "{w}/adir", "--drop-rate", "0.1"], "ok",
     {1}, None),
    ("grid faults bad value", ["secure-irods-grid", "faults", "--root", "{w}/adir", "--drop-rate", "7"], "ok", {1},
     None),
]


def _leaves(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _leaves(cmd, (*prefix, name))
        else:
            yield " ".join((*prefix, name))


def test_every_seisstore_command_has_a_row():
    covered = set()
    for _, argv, *_ in ROWS:
        if argv[0] == "seisstore":
            words = [a for a in argv[1:4] if not a.startswith(("{", "-", "@"))]
            covered |= {" ".join(words[:n]) for n in (1, 2)}
    assert set(_leaves(seisstore_main)) <= covered, set(_leaves(seisstore_main)) - covered


@pytest.fixture(scope="module")
def corpus(grid, tmp_path_factory):
    """The work directory, the environments (good and broken) and an object to read."""
    w = tmp_path_factory.mktemp("hostile")
    (w / "adir").mkdir()
    (w / "adir" / "precious.txt").write_text("not the demo's\n")
    (w / "file.txt").write_text("hello\n")
    settings = json.loads(grid.env_file.read_text())
    (w / "empty.json").write_text("")
    (w / "nonjson.json").write_text("{not json")
    with socket.socket() as probe:                       # bound, then released: nothing listens there
        probe.bind(("127.0.0.1", 0))
        (w / "down.json").write_text(json.dumps(dict(settings, irods_port=probe.getsockname()[1])))
    wrong = socket.create_server(("127.0.0.1", 0))      # something else listens: it answers garbage
    (w / "wrong.json").write_text(json.dumps(dict(settings, irods_port=wrong.getsockname()[1])))

    def answer_garbage() -> None:
        while True:
            try:
                conn, _ = wrong.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                    conn.recv(64)
                except OSError:
                    pass

    threading.Thread(target=answer_garbage, daemon=True).start()
    base = dict(grid.environ(), SECURE_IRODS_THROTTLE_DIR=str(w / "throttle"), SECURE_IRODS_DEADLINE="2",
                SECURE_IRODS_COOLDOWN="0.2", SECURE_IRODS_MAX_WAIT="0.5")
    envs = {"ok": base, **{k: dict(base, IRODS_ENVIRONMENT_FILE=str(w / f"{k}.json"))
                           for k in ("empty", "nonjson", "down", "wrong")}}
    with grid.session() as session:
        with session.data_objects.open(f"{grid.home}/corpus.txt", "w") as f:
            f.write(b"an object to read\n")
    yield w, envs, grid.home
    wrong.close()


def _fill(arg: str, w: Path, home: str) -> str:
    return arg.replace("{home}", home).replace("{w}", str(w)).replace("{LONG}", LONG)


@pytest.mark.parametrize("name, argv, env, codes, final", ROWS, ids=[r[0] for r in ROWS])
def test_hostile_input(corpus, name, argv, env, codes, final):
    w, envs, home = corpus
    before = {p for p in w.rglob("*")}
    args = [_fill(a, w, home) for a in argv]
    result = subprocess.run([str(BIN / args[0]), *args[1:]], env=envs[env], capture_output=True, text=True,
                            timeout=120, cwd=w)
    assert result.returncode in codes, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not WAIT_LINE.search(ln)]
    if name.startswith(("doctor", "irods check")):       # a report of its own, a line per layer: its verdict is one line
        assert len([ln for ln in result.stdout.splitlines() if ln.startswith("not ready")]) == 1, result.stdout
    else:
        assert len(lines) == (0 if result.returncode == 0 else 1), result.stderr
    if final is not None:
        assert not Path(_fill(final, w, home)).exists()
    assert not [p for p in w.rglob("*") if ".part-" in p.name]
    if name.startswith("demo"):
        assert {p for p in w.rglob("*")} == before                 # the demo touched nothing it did not make


def test_a_full_disk_leaves_nothing_at_the_final_name(corpus):
    w, envs, home = corpus
    small = w / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        big = w / "big.bin"
        big.write_bytes(bytes(range(256)) * 1024)                  # 256 KiB
        put = subprocess.run([str(BIN / "secure-iput"), "-f", str(big), f"{home}/big.bin"], env=envs["ok"],
                             capture_output=True, text=True, timeout=60)
        assert put.returncode == 0, put.stderr
        result = subprocess.run([str(BIN / "secure-iget"), f"{home}/big.bin", str(small / "big.bin")],
                                env=envs["ok"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 3 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr and list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_nothing_partial_is_left_in_the_zone(corpus, grid):
    w, envs, home = corpus
    with grid.session() as session:
        names = [o.name for o in session.collections.get(home).data_objects]
    assert not [n for n in names if ".part-" in n], names
