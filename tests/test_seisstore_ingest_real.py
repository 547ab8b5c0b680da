"""Ingest of files as data centres deliver them: every encoding ObsPy reads, other formats,
header gaps, damaged files; one run, every readable sample in the archive bit for bit."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import obspy
import pytest
from click.testing import CliRunner
from obspy import Stream, Trace, UTCDateTime

from seisstore.catalogue import Catalogue
from seisstore.dayfiles import split_days
from seisstore.cli import main
from seisstore.encodings import same_samples
from seisstore.ingest import CodeMap, ingest
from seisstore.layout import SDSLayout

#: Encodings ObsPy reads but cannot write: samples shipped with the installed ObsPy, found here.
SHIPPED = ["SRO_encoding.mseed", "DWWSSN_encoding.mseed", "CDSN_encoding.mseed", "GEOSCOPE16_4_encoding.mseed"]
#: Encodings ObsPy writes, with the dtype each takes.
WRITTEN = {"INT16": np.int16, "INT32": np.int32, "STEIM1": np.int32, "STEIM2": np.int32,
           "FLOAT32": np.float32, "FLOAT64": np.float64, "ASCII": "S1"}
START = UTCDateTime("2021-03-01T22:00:00")


def shipped_dir() -> Path:
    return Path(obspy.__file__).parent / "io" / "mseed" / "tests" / "data"


def trace(sta, cha, dtype, n=9000, net="FR", loc="00", start=START, rate=1.0, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "S1":
        data = np.frombuffer(bytes(rng.integers(32, 127, n, dtype=np.uint8)), dtype="S1").copy()
    elif np.dtype(dtype).kind == "f":
        data = rng.normal(0, 1e3, n).astype(dtype)
    else:
        data = np.cumsum(rng.integers(-300, 300, n)).astype(dtype)
    return Trace(data=data, header={"network": net, "station": sta, "location": loc, "channel": cha,
                                    "sampling_rate": rate, "starttime": start})


def build(local: Path) -> dict[str, Stream]:
    """The input directory; returns what each good file holds, as ObsPy reads it, by final id."""
    local.mkdir()
    for i, (encoding, dtype) in enumerate(WRITTEN.items()):
        tr = trace("ENC", f"H{'ZNE123456'[i]}{'Z'}"[:2] + "Z", dtype, seed=i)
        tr.stats.channel = f"HZ{i}"
        Stream([tr]).write(str(local / f"enc_{encoding}.mseed"), format="MSEED", encoding=encoding)
    found = []
    for name in SHIPPED:
        if (shipped_dir() / name).exists():
            (local / "shipped").mkdir(exist_ok=True)
            os.symlink(shipped_dir() / name, local / "shipped" / name)  # not copied into the repo
            found.append(name)
    if len(found) < 2:
        pytest.skip("the installed ObsPy ships no samples of its read-only encodings")
    # SAC with an empty network code (mapped by --default-network), GSE2 and pickled
    sac = trace("SACST", "BHZ", np.float32, net="", loc="", seed=20)
    sac.write(str(local / "nonet.sac"), format="SAC")
    trace("GSEST", "BHZ", np.int32, loc="", seed=21).write(str(local / "a.gse2"), format="GSE2")
    trace("PKL", "BHZ", np.float64, seed=22).write(str(local / "a.pickle"), format="PICKLE")
    # gaps and an overlap with different samples, across midnight
    a = trace("GAP", "HHZ", np.int32, n=7200 + 3600, seed=30)
    b = trace("GAP", "HHZ", np.int32, n=600, start=START + 3 * 3600 + 600, seed=31)        # after a gap
    c = trace("GAP", "HHZ", np.int32, n=500, start=START + 100, seed=32)                    # overlaps a
    Stream([a, b, c]).write(str(local / "gaps.mseed"), format="MSEED")
    # damaged: truncated miniSEED and SAC, and a text file
    whole = (local / "gaps.mseed").read_bytes()
    (local / "truncated.mseed").write_bytes(whole[:len(whole) - 2000])  # a partial last record
    sac_bytes = (local / "nonet.sac").read_bytes()
    (local / "truncated.sac").write_bytes(sac_bytes[:len(sac_bytes) // 2])
    (local / "README.txt").write_text("station list, not seismic data\n")
    expected = {}
    for path in sorted(local.rglob("*")):
        if path.is_file() and path.name not in ("truncated.mseed", "truncated.sac", "README.txt"):
            for tr in obspy.read(str(path)):
                if not tr.stats.network:
                    tr.stats.network = "XX"
                expected.setdefault(tr.id, Stream()).append(tr)
    return expected


def archive_traces(client, coll, tmp_path) -> dict[str, Stream]:
    got: dict[str, Stream] = {}
    out = tmp_path / "back"
    out.mkdir(exist_ok=True)
    for key, entry in Catalogue(client, coll, SDSLayout(), cache=False).select():
        target = out / entry.path.rsplit("/", 1)[1]
        client.get(entry.path, target, force=True)
        for tr in obspy.read(str(target)):
            got.setdefault(tr.id, Stream()).append(tr)
    return got


def assert_contains(got: Stream, want: Stream) -> None:
    """Every sample of ``want`` is in ``got`` at its time, same dtype, same bits (day by day)."""
    for t in [piece for day in split_days(want).values() for piece in day]:
        rate = t.stats.sampling_rate
        for g in got:
            offset = round((t.stats.starttime - g.stats.starttime) * rate)
            if 0 <= offset and offset + t.stats.npts <= g.stats.npts and \
                    same_samples(g.data[offset:offset + t.stats.npts], t.data.astype(g.data.dtype)) and \
                    g.data.dtype == (np.int32 if t.data.dtype == np.int16 else t.data.dtype):
                break
        else:
            pytest.fail(f"{t} is not in the archive bit for bit: {got}")


def test_ingest_every_encoding_and_format_one_run(grid, client, coll, tmp_path):
    local = tmp_path / "in"
    expected = build(local)
    report = ingest(client, local, coll, SDSLayout(), progress=False, codes=CodeMap.parse([], "XX"), jobs=2)

    assert set(report.skipped_files) == {str(local / n) for n in ("truncated.mseed", "truncated.sac", "README.txt")}
    assert "damaged" in report.skipped_files[str(local / "truncated.mseed")]
    assert report.exit_code == 3 and not report.failed and not report.rejected
    assert report.mapped == {".SACST..BHZ -> XX.SACST..BHZ": 1}

    got = archive_traces(client, coll, tmp_path)
    assert set(got) == set(expected)
    for trace_id, want in expected.items():
        assert_contains(got[trace_id], want)
    # the overlap with different samples is kept as its own record, not averaged away
    gap = got["FR.GAP.00.HHZ"].copy()
    gap.merge(method=-1)
    assert len(gap) >= 3
    # every day file says how it was encoded and where it came from
    cat = Catalogue(client, coll, SDSLayout(), cache=False)
    sro = next(e.path for k, e in cat.select(stations="CTAO"))
    assert client.avus(sro)["source_encoding"] == ["SRO"] and client.avus(sro)["encoding"] == ["STEIM2"]
    geo = next(e.path for k, e in cat.select(stations="NOUC"))
    assert client.avus(geo)["encoding"] == ["FLOAT32"]

    again = ingest(client, local, coll, SDSLayout(), progress=False, codes=CodeMap.parse([], "XX"), jobs=2)
    assert again.stored == [] and again.merged == [] and len(again.existing) == len(report.stored)
    merged = ingest(client, local, coll, SDSLayout(), progress=False, codes=CodeMap.parse([], "XX"),
                    merge_existing=True, jobs=0)
    assert merged.stored == [] and merged.merged == []


def test_invalid_codes_reported_once_per_id_and_renamed(grid, client, coll, tmp_path):
    local = tmp_path / "in"
    local.mkdir()
    for i in range(3):
        trace("NONET", "BHZ", np.float32, net="", loc="", seed=i, start=START + 86400 * i).write(
            str(local / f"{i}.sac"), format="SAC")
    report = ingest(client, local, coll, SDSLayout(), progress=False, jobs=0)
    assert report.rejected == {".NONET..BHZ": 3} and report.exit_code == 3 and report.stored == []
    rules = tmp_path / "rules.txt"
    rules.write_text("# from the station book\n.NONET..BHZ = ZZ.NONET.00.BHZ\n")
    report = ingest(client, local, coll, SDSLayout(), progress=False, codes=CodeMap.parse([f"@{rules}"]))
    assert report.exit_code == 0 and report.mapped == {".NONET..BHZ -> ZZ.NONET.00.BHZ": 3}
    assert {p.rsplit("/", 1)[1] for p in report.stored} >= {"ZZ.NONET.00.BHZ.D.2021.060"}
    with pytest.raises(ValueError):
        CodeMap.parse(["a=b"])
    with pytest.raises(ValueError):
        CodeMap.parse([".X..BHZ=.X..BHZ"])


def test_merge_extends_an_existing_day_file(grid, client, coll, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    whole = trace("MRG", "HHZ", np.int32, n=7200, start=UTCDateTime("2021-03-02T00:00:00"))
    whole.slice(endtime=whole.stats.starttime + 3599).write(str(first / "a.mseed"), format="MSEED")
    whole.slice(starttime=whole.stats.starttime + 3600).write(str(second / "b.mseed"), format="MSEED")
    ingest(client, first, coll, SDSLayout(), progress=False)
    skipped = ingest(client, second, coll, SDSLayout(), progress=False)
    assert skipped.stored == [] and len(skipped.existing) == 1 and skipped.exit_code == 0
    merged = ingest(client, second, coll, SDSLayout(), progress=False, merge_existing=True)
    assert len(merged.merged) == 1
    got = archive_traces(client, coll, tmp_path)["FR.MRG.00.HHZ"]
    got.merge(method=-1)
    assert len(got) == 1 and np.array_equal(got[0].data, whole.data)
    assert client.avus(merged.merged[0])["npts"] == ["7200"]
    again = ingest(client, second, coll, SDSLayout(), progress=False, merge_existing=True)
    assert again.merged == [] and len(again.existing) == 1


def test_cli_report_json_and_exit_3(grid, client, coll, tmp_path):
    local = tmp_path / "in"
    local.mkdir()
    trace("CLI", "BHZ", np.int32).write(str(local / "a.mseed"), format="MSEED")
    (local / "b.txt").write_text("hello\n")
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["ingest", str(local), coll, "--report", str(out), "-j", "2",
                                       "--default-network", "XX"])
    assert result.exit_code == 3, result.output
    assert "files read" in result.output and "skipped" in result.output
    data = json.loads(out.read_text())
    assert data["files"]["skipped"][0]["path"].endswith("b.txt") and data["exit_code"] == 3
    assert len(data["day_files"]["stored"]) == 2
    (local / "b.txt").unlink()
    result = CliRunner().invoke(main, ["ingest", str(local), coll])
    assert result.exit_code == 0 and "2 already there" in result.output
    bad = CliRunner().invoke(main, ["ingest", str(local), coll, "--rename", "nonsense"])
    assert bad.exit_code == 1


def test_a_log_channel_nan_samples_and_a_damaged_file_never_stop_the_run(grid, client, coll, tmp_path):
    """Real archives hold log channels (rate 0) and NaN: reported, every good trace stored."""
    from helpers import BIN, command_env, run

    local = tmp_path / "in"
    local.mkdir()
    log_channel = shipped_dir() / "rt130_sr0_cropped.mseed"          # GR.FUR..LOG, ASCII, rate 0
    damaged = shipped_dir() / "brokenlastrecord.mseed"                # ObsPy warns once per bad record
    if not (log_channel.exists() and damaged.exists()):
        pytest.skip("the installed ObsPy does not ship its LOG-channel and damaged samples")
    os.symlink(log_channel, local / "log.mseed")
    os.symlink(damaged, local / "broken.mseed")
    good = [trace(f"GOOD{i}", "HHZ", np.int32, n=9000, seed=40 + i) for i in range(2)]
    for tr in good:
        tr.write(str(local / f"{tr.stats.station}.mseed"), format="MSEED")
    nan = trace("NANS", "HHZ", np.float64, n=9000, seed=50)
    nan.data[100:110] = np.nan
    nan.data[5000] = np.inf
    nan.write(str(local / "nan.mseed"), format="MSEED")

    out = tmp_path / "report.json"
    assert BIN.joinpath("seisstore").exists()
    result = run("seisstore", "ingest", str(local), coll, "--report", str(out), env=command_env(grid, tmp_path))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 3, result.stderr
    report = json.loads(out.read_text())
    assert [s["path"] for s in report["files"]["skipped"]] == [str(local / "broken.mseed")]
    assert report["traces"]["rejected"][0]["id"] == "GR.FUR..LOG"
    assert "sampling rate 0" in report["traces"]["rejected"][0]["why"]
    assert report["traces"]["nonfinite"] == [{"id": "FR.NANS.00.HHZ", "samples": 11, "file": str(local / "nan.mseed"),
                                              "why": "NaN or inf samples, left out as gaps"}]
    assert report["warnings"][0]["where"] == str(local / "broken.mseed") and report["warnings"][0]["count"] > 5

    got = archive_traces(client, coll, tmp_path)
    for tr in good:
        assert_contains(got[tr.id], Stream([tr]))
    # the finite samples around the NaN and inf are stored, at their times; no sample invented
    stored = got["FR.NANS.00.HHZ"]
    assert sum(t.stats.npts for t in stored) == 9000 - 11
    finite = np.isfinite(nan.data)
    assert_contains(stored, Stream([nan.slice(endtime=nan.stats.starttime + 99)]))
    assert all(np.isfinite(t.data).all() for t in stored) and finite.sum() == 9000 - 11


def test_a_zone_failure_midway_still_writes_the_report(grid, client, coll, tmp_path):
    """The resource goes down after the scan: exit 2 at the deadline, and the report says so."""
    from helpers import command_env, run

    if not grid.local:
        pytest.skip("needs the local grid's fault injection")
    local = tmp_path / "in"
    local.mkdir()
    trace("DOWN", "HHZ", np.int32, n=9000).write(str(local / "a.mseed"), format="MSEED")
    (local / "notes.txt").write_text("not seismic\n")
    out = tmp_path / "report.json"
    grid.set_faults(down=[grid.env["irods_default_resource"]])
    try:
        result = run("seisstore", "ingest", str(local), coll, "--report", str(out),
                     env=command_env(grid, tmp_path, SECURE_IRODS_DEADLINE="3"))
    finally:
        grid.clear_faults()
    assert result.returncode == 2, result.stderr
    report = json.loads(out.read_text())
    assert report["exit_code"] == 2 and "ingest into" in report["error"]
    assert report["files"]["skipped"][0]["path"].endswith("notes.txt")
    assert report["files"]["read"] == 1 and report["day_files"]["stored"] == []
