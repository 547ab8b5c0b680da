"""Reader and writer: Streams out of and into a catalogue on the local grid, with prefetch."""
from __future__ import annotations

import datetime
import threading

import numpy as np
import obspy
import pytest
from click.testing import CliRunner
from obspy import Stream, UTCDateTime

from seisstore.catalogue import Catalogue
from seisstore.cli import main
from seisstore.layout import Key, SDSLayout

from helpers import synthetic

DAY0 = UTCDateTime("2021-03-01T00:00:00")


def _streams() -> Stream:
    """2 stations x 1 channel x 4 days at 1 Hz, as single 4-day traces."""
    return Stream([synthetic(sta=sta, start=DAY0, seconds=4 * 86400, seed=i)
                   for i, sta in enumerate(("AAA", "BBB"))])


@pytest.fixture
def filled(session, coll, client, tmp_path):
    cat = Catalogue(client, coll, SDSLayout(), cache=False)
    paths = cat.write(_streams(), client)
    assert len(paths) == 8 and len(cat) == 8
    return cat


def _same(a: Stream, b: Stream) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(sorted(a, key=lambda t: t.id), sorted(b, key=lambda t: t.id)):
        if x.id != y.id or x.stats.starttime != y.stats.starttime or x.stats.sampling_rate != y.stats.sampling_rate:
            return False
        if not np.array_equal(x.data, y.data):
            return False
    return True


def test_write_sets_layout_paths_and_avus(filled, session):
    key = Key("FR", "BBB", "00", "HHZ", datetime.date(2021, 3, 2))
    entry = filled[key]
    assert entry.path == f"{filled.root}/2021/FR/BBB/HHZ.D/FR.BBB.00.HHZ.D.2021.061"
    avus = {m.name: m.value for m in session.data_objects.get(entry.path).metadata.items()}
    assert avus["npts"] == "86400" and avus["start"] == "2021-03-02T00:00:00.000000Z"
    assert avus["end"] == "2021-03-02T23:59:59.000000Z" and avus["station"] == "BBB"


def test_write_refuses_to_overwrite_without_force(filled, client):
    from secure_irods.errors import ExistsError

    st = Stream([synthetic(sta="AAA", start=DAY0, seconds=3600, seed=9)])
    with pytest.raises(ExistsError):
        filled.write(st, client)
    filled.write(st, client, force=True)
    key = Key("FR", "AAA", "00", "HHZ", datetime.date(2021, 3, 1))
    (got,) = [s for k, s in filled.read([key], client=client)]
    assert _same(got, st)


@pytest.mark.parametrize("prefetch", [0, 3])
def test_reader_yields_the_same_streams_as_local_reads(filled, client, tmp_path, prefetch):
    selection = list(filled.select())
    out = list(filled.read(selection, client=client, prefetch=prefetch, tmpdir=tmp_path / "r"))
    assert [k for k, _ in out] == [k for k, _ in selection]
    local = tmp_path / "local"
    local.mkdir()
    for key, stream in out:
        target = local / filled[key].path.rsplit("/", 1)[1]
        client.get(filled[key].path, target)
        assert _same(stream, obspy.read(str(target)))
    # and together they are the written data, exactly
    merged = Stream([t for _, s in out for t in s]).merge(method=-1)
    assert _same(merged, _streams())
    assert list((tmp_path / "r").iterdir()) == []


def test_temp_files_removed_when_breaking_out_and_on_error(filled, client, tmp_path):
    tmp = tmp_path / "r"
    gen = filled.read(client=client, prefetch=4, tmpdir=tmp)
    key, stream = next(gen)
    (inside,) = list(tmp.iterdir())
    assert len(list(inside.iterdir())) <= 4          # at most `prefetch` files ahead, the read one is gone
    gen.close()
    assert list(tmp.iterdir()) == []

    for _ in filled.read(client=client, prefetch=2, tmpdir=tmp):
        break
    assert list(tmp.iterdir()) == []

    bad = [next(iter(filled))] + [Key("FR", "ZZZ", "00", "HHZ", datetime.date(2021, 3, 1))]
    with pytest.raises(KeyError):
        list(filled.read(bad, client=client, prefetch=2, tmpdir=tmp))
    assert list(tmp.iterdir()) == []


def test_prefetch_overlaps_downloads(filled, client, tmp_path, monkeypatch):
    """With prefetch=4 a second download starts while the first is still running, and never
    more than 4 run at once: events, not timings (the first get waits for a second to start)."""
    from secure_irods.client import Client

    selection = list(filled.select())
    real_get = Client.get
    lock = threading.Lock()
    running, peak, gets = [0], [0], [0]
    second_started = threading.Event()

    def get(self, remote, local=None, **kw):
        with lock:
            gets[0] += 1
            first = gets[0] == 1
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            if running[0] >= 2:
                second_started.set()
        try:
            if first:
                second_started.wait(timeout=10)   # serial downloads would never set it
            return real_get(self, remote, local, **kw)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(Client, "get", get)
    opened = client.connections_opened
    n4 = sum(1 for _ in filled.read(selection, client=client, prefetch=4, tmpdir=tmp_path))
    assert client.connections_opened == opened   # workers use their own clients
    assert n4 == gets[0] == len(selection) == 8
    assert second_started.is_set() and 2 <= peak[0] <= 4, peak

    running[0] = peak[0] = gets[0] = 0
    second_started.clear()
    n0 = sum(1 for _ in filled.read(selection, client=client, prefetch=0, tmpdir=tmp_path))
    assert n0 == gets[0] == 8 and peak[0] == 1    # prefetch=0: one at a time, in the caller's thread


def test_ls_and_coverage_cli(grid, filled, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(main, ["ls", filled.root, "--station", "AAA", "-l"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "FR.AAA.00.HHZ" in result.output and "4 files" in result.output and "BBB" not in result.output
    result = runner.invoke(main, ["ls", filled.root, "--date", "2021-03-02..2021-03-03"])
    assert result.exit_code == 0 and "4 files" in result.output
    result = runner.invoke(main, ["coverage", filled.root])
    assert result.exit_code == 0, result.output
    assert "FR.AAA" in result.output and "2 stations x 4 days" in result.output
    bad = runner.invoke(main, ["ls", filled.root, "--layout", "{net}"])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1


def test_ls_unreachable_zone_is_one_line(grid, tmp_path, monkeypatch):
    import json

    import socket

    with socket.socket() as probe:          # a port nothing listens on: bound, then released
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    env = json.loads(grid.env_file.read_text())
    env["irods_port"] = free_port
    bad = tmp_path / "env.json"
    bad.write_text(json.dumps(env))
    monkeypatch.setenv("IRODS_ENVIRONMENT_FILE", str(bad))
    if grid.auth_file:
        monkeypatch.setenv("IRODS_AUTHENTICATION_FILE", str(grid.auth_file))
    monkeypatch.setenv("SECURE_IRODS_THROTTLE_DIR", str(tmp_path / "throttle"))
    monkeypatch.setenv("SECURE_IRODS_DEADLINE", "3")
    monkeypatch.setenv("SECURE_IRODS_COOLDOWN", "0.2")
    result = CliRunner().invoke(main, ["ls", "/tempZone/home"])
    # a refused connection is transient: secure_irods' exit code for it
    from secure_irods.errors import TransientError

    assert result.exit_code == TransientError.exit_code, result.output
    *waits, last = result.output.strip().splitlines()
    assert last.startswith("main: error: cannot index /tempZone/home: ")        # one line says why it ended
    # wait lines: the retry policy's ("; retry N") or the node window's after a refusal ("backing off")
    assert all(w.startswith("seisstore: zone 127.0.0.1:") and ("; retry " in w or "backing off" in w)
               for w in waits), waits


@pytest.mark.parametrize("args", [["ingest"], ["ls"], ["coverage"]])
def test_help(args):
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0 and "--layout" in result.output
