"""Ingest: local files of any ObsPy format -> day files with AVUs on the local grid."""
from __future__ import annotations

import datetime

import numpy as np
import obspy
from click.testing import CliRunner
from obspy import Stream, UTCDateTime

from seisstore.catalogue import Catalogue
from seisstore.cli import main
from seisstore.dayfiles import EMPTY_LOCATION, split_days
from seisstore.ingest import ingest
from seisstore.layout import Key, PatternLayout, SDSLayout, WHISPER_FMTSTR

from helpers import synthetic

START = UTCDateTime("2021-01-01T12:00:00")
DAYS = [datetime.date(2021, 1, d) for d in (1, 2, 3, 4)]


def test_split_days_is_exact_and_cuts_at_midnight():
    tr = synthetic(rate=10.0, start=UTCDateTime("2021-01-01T23:59:59.9"), seconds=2 * 86400 + 1)
    days = split_days(Stream([tr]))
    assert [k.day for k in sorted(days)] == [datetime.date(2021, 1, d) for d in (1, 2, 3, 4)]
    pieces = [t for k in sorted(days) for t in days[k]]
    assert np.array_equal(np.concatenate([t.data for t in pieces]), tr.data)
    for key in sorted(days):
        for t in days[key]:
            assert t.stats.starttime.date == key.day and t.stats.endtime.date == key.day
    # the sample at exactly midnight opens the new day
    assert days[Key("FR", "OGDI", "00", "HHZ", datetime.date(2021, 1, 2))][0].stats.starttime \
        == UTCDateTime("2021-01-02T00:00:00")
    assert len(days[Key("FR", "OGDI", "00", "HHZ", datetime.date(2021, 1, 1))][0]) == 1


def test_ingest_multiday_miniseed(grid, session, coll, client, tmp_path):
    local = tmp_path / "in"
    (local / "sub").mkdir(parents=True)
    z, n = synthetic(cha="HHZ", seed=1), synthetic(cha="HHN", loc="", seed=2)
    Stream([z, n]).write(str(local / "both.mseed"), format="MSEED")
    synthetic(sta="ECH", seed=3).write(str(local / "sub" / "ech.sac"), format="SAC")  # another format
    (local / "notes.txt").write_text("not seismic data\n")
    layout = SDSLayout()

    report = ingest(client, local, coll, layout, progress=False)
    assert report.files_read == 2 and len(report.unreadable) == 1
    assert len(report.stored) == 3 * 4 and not report.existing
    assert report.exit_code == 3 and report.traces == 3

    cat = Catalogue(client, coll, layout, cache=False)
    assert {k.day for k in cat} == set(DAYS)
    assert len(cat) == 12
    # the concatenated day files equal the original samples, exactly
    for tr in (z, n):
        got = Stream()
        for key, entry in cat.select(stations=tr.stats.station, channels=tr.stats.channel):
            target = tmp_path / "out" / key.cha / entry.path.rsplit("/", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.get(entry.path, target)
            got += obspy.read(str(target))
        got.sort()
        got.merge(method=-1)
        assert len(got) == 1
        assert got[0].stats.starttime == tr.stats.starttime
        assert got[0].data.dtype == tr.data.dtype
        assert np.array_equal(got[0].data, tr.data)

    # AVUs of a partial first day and a full middle day
    first = cat[Key("FR", "OGDI", "", "HHN", DAYS[0])].path
    avus = {m.name: m.value for m in session.data_objects.get(first).metadata.items()}
    assert avus == {"network": "FR", "station": "OGDI", "location": EMPTY_LOCATION, "channel": "HHN",
                    "start": "2021-01-01T12:00:00.000000Z", "end": "2021-01-01T23:59:59.000000Z",
                    "sampling_rate": "1.0", "npts": str(12 * 3600),
                    "encoding": "STEIM2", "source_encoding": "STEIM2"}
    middle = cat[Key("FR", "OGDI", "00", "HHZ", DAYS[1])].path
    avus = {m.name: m.value for m in session.data_objects.get(middle).metadata.items()}
    assert avus["npts"] == "86400" and avus["location"] == "00"
    assert avus["start"] == "2021-01-02T00:00:00.000000Z"

    # re-running stores nothing new and skips what is there
    again = ingest(client, local, coll, layout, progress=False)
    assert again.stored == [] and len(again.existing) == 12 and again.repaired == []

    # a run killed between the put and the AVUs: the next run labels what it skips
    for meta in session.data_objects.get(middle).metadata.items():
        session.data_objects.get(middle).metadata.remove(meta)
    third = ingest(client, local, coll, layout, progress=False)
    assert third.stored == [] and third.repaired == [middle]
    assert {m.name: m.value for m in session.data_objects.get(middle).metadata.items()} == avus


def test_ingest_cli_whisper_layout(grid, session, coll, client, tmp_path, monkeypatch):
    local = tmp_path / "in"
    local.mkdir()
    synthetic(seconds=86400 + 3600).write(str(local / "a.mseed"), format="MSEED")
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", str(local), coll, "--layout", "whisper"])
    assert result.exit_code == 0, result.output
    names = sorted(f"{c.name}/{o.name}" for c in session.collections.get(coll).subcollections
                   for o in c.data_objects)
    assert names == ["20210101/FR.OGDI.00.HHZ.mseed", "20210102/FR.OGDI.00.HHZ.mseed"]
    result = runner.invoke(main, ["ingest", str(local), coll, "--layout", "whisper"])
    assert result.exit_code == 0 and "2 already there" in result.output
    # errors are one line with a sysexits code
    bad = runner.invoke(main, ["ingest", str(local), coll, "--layout", "{net}/{sta}"])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1
    missing = runner.invoke(main, ["ingest", str(tmp_path / "nope"), coll])
    assert missing.exit_code == 1


def test_whisper_layout_round_trip_of_ingested_keys():
    layout = PatternLayout(WHISPER_FMTSTR)
    for key in split_days(Stream([synthetic()])):
        assert layout.parse(layout.path(key)) == key
