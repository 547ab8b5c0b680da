"""Noise correlations end to end: preprocessing and correlation campaigns through `campaign run-local`,
bundles in the zone, the bundle index, selective reads, stacks, export and the gather plot.

Synthetic noise: S2 records S1's noise delayed by LAG seconds and S3 by 2 LAG (plus noise of
their own), so the stacked correlation of (S1, S2) and (S2, S3) peaks at +LAG and (S1, S3)
at +2 LAG.  Small on purpose (3 stations, 2 days at 4 Hz, processed to 2 Hz).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from secure_irods.query import Query
from seisstore.bundles import BundleIndex, read_pairs
from seisstore.cli import main
from seisstore.xcorr import stack

ROOT = Path(__file__).resolve().parent.parent
STATIONS = ["S1", "S2", "S3"]
DAYS = [datetime.date(2011, 3, 1), datetime.date(2011, 3, 2)]
RAW_RATE, RATE, LAG = 4.0, 2.0, 4.0
EXPECTED = {("S1", "S2"): LAG, ("S1", "S3"): 2 * LAG, ("S2", "S3"): LAG}
CHAIN = [{"op": "detrend"}, {"op": "taper", "fraction": 0.01}, {"op": "bandpass", "freqmin": 0.1, "freqmax": 0.8},
         {"op": "resample", "rate": RATE}, {"op": "onebit"}, {"op": "whiten", "freqmin": 0.1, "freqmax": 0.8}]
COORDS = {"S1": [45.0, 5.0, 200.0], "S2": [45.0, 5.1, 300.0], "S3": [45.0, 5.3, 100.0]}


def _raw_days(tmp: Path):
    from obspy import Stream, Trace, UTCDateTime

    rng = np.random.default_rng(15)
    npts = int(86400 * RAW_RATE)
    shift = int(LAG * RAW_RATE)
    traces = []
    for day in DAYS:
        common = rng.standard_normal(npts + 2 * shift)
        for k, sta in enumerate(STATIONS):
            data = common[2 * shift - k * shift:2 * shift - k * shift + npts] + 0.5 * rng.standard_normal(npts)
            traces.append(Trace((data * 1000).astype(np.int32),
                                header=dict(network="XX", station=sta, channel="HHZ", sampling_rate=RAW_RATE,
                                            starttime=UTCDateTime(day.isoformat()))))
    return Stream(traces)


def _cli(args, **kw):
    result = CliRunner().invoke(main, args, catch_exceptions=False, **kw)
    return result


@pytest.fixture(scope="module")
def world(grid, tmp_path_factory):
    """Raw archive ingested, preprocessing and correlation campaigns run through `campaign run-local`."""
    from secure_irods.client import connect
    from seisstore.dayfiles import split_days, store_days
    from seisstore.layout import SDSLayout

    tmp = tmp_path_factory.mktemp("xcorr")
    mp = pytest.MonkeyPatch()
    for name, value in grid.environ().items():
        if name.startswith("IRODS_"):
            mp.setenv(name, value)
    mp.setenv("SECURE_IRODS_THROTTLE_DIR", str(tmp / "throttle"))
    mp.setenv("SECURE_IRODS_MAX_CONNECTIONS", "16")
    mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
    base = f"{grid.home}/xc-{uuid.uuid4().hex[:8]}"
    raw, processed, bundles = f"{base}/raw", f"{base}/processed", f"{base}/bundles"
    settings = {"preprocess": {"archive": raw, "processed": processed, "chain": CHAIN},
                "correlate": {"processed": processed, "bundles": bundles, "window_s": 3600, "max_lag_s": 20,
                              "bundle_size": 1, "coordinates": COORDS}}
    mp.setenv("SEISSTORE_CONFIG", json.dumps(settings))
    with connect() as client:
        for coll in (raw, f"{base}/campaigns/pre", f"{base}/campaigns/xc"):
            client.mkdir(coll)
        store_days(client, raw, SDSLayout(), split_days(_raw_days(tmp)))
    common = ["--dates", f"{DAYS[0]}..{DAYS[-1]}", "--stations", ",".join(STATIONS),
              "--interpreter", sys.executable, "--upload"]
    camps = {}
    for name, kind, script, n_dates, n_sta in (("pre", "processing", "job_preprocess.py", 2, 1),
                                               ("xc", "correlation", "job_correlate.py", 1, 2)):
        camp = tmp / name
        made = _cli(["campaign", "new", name, "--kind", kind, "--script", str(ROOT / "scripts" / script),
                     "--n-dates", str(n_dates), "--n-stations", str(n_sta), "--collection", f"{base}/campaigns/{name}",
                     "--out", str(camp), *common])
        assert made.exit_code == 0, made.output
        ran = _cli(["campaign", "run-local", str(camp), "-j", "2"])
        assert ran.exit_code == 0, ran.output + "".join(p.read_text() for p in (camp / ".run" / "logs").iterdir())
        camps[name] = camp
    yield {"tmp": tmp, "raw": raw, "processed": processed, "bundles": bundles, "camps": camps, "mp": mp}
    mp.undo()
    with grid.session() as s:
        try:
            s.collections.remove(base, recurse=True, force=True)
        except Exception:
            pass


@pytest.fixture
def zone(world):
    from secure_irods.client import connect

    with connect() as client:
        yield client


def _objects(client, coll):
    q = Query("COLL_NAME", "DATA_NAME", "D_DATA_ID", "D_MODIFY_TIME", "DATA_SIZE").under(coll)
    return sorted(client.query(q))


def test_processed_day_files_name_their_chain_and_input(world, zone):
    objs = _objects(zone, world["processed"])
    assert len(objs) == len(STATIONS) * len(DAYS)
    coll, name = objs[0][0], objs[0][1]
    avus = zone.avus(f"{coll}/{name}")
    assert json.loads(avus["chain"][0]) == json.loads(json.dumps(CHAIN, sort_keys=True))
    raw = {n: zone.stat(f"{c.replace(world['processed'], world['raw'])}/{n}").checksum for c, n, *_ in objs}
    assert avus["input_checksum"] == [raw[name]]
    assert avus["sampling_rate"] == [repr(RATE)]


def test_a_finished_preprocessing_line_rerun_writes_nothing(world, zone):
    before = _objects(zone, world["processed"])
    camp = world["camps"]["pre"]
    fields = (camp / "param.txt").read_text().splitlines()[0].split()
    done = subprocess.run([sys.executable, "-m", "seisstore.jobs.preprocess", *fields[1:]], cwd=camp,
                          env=dict(os.environ, SEISSTORE_JOB_NAME=fields[0], SEISSTORE_LOG="INFO"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "0 station-days to process, 3 already done" in done.stderr
    assert _objects(zone, world["processed"]) == before


def test_stacked_correlations_peak_at_the_known_lag(world, zone):
    index = BundleIndex(zone, world["bundles"], cache=False)
    rows: dict = {}
    for c in read_pairs(zone, index):
        rows.setdefault(c.pair, []).append(c.data[0])
    assert set(rows) == set(EXPECTED)
    for pair, lag in EXPECTED.items():
        stacked = stack(np.array(rows[pair]))
        lags = np.arange(-len(stacked) // 2 + 1, len(stacked) // 2 + 1) / RATE
        peak = lags[np.argmax(stacked)]
        assert abs(peak - lag) <= 1 / RATE, (pair, peak, lag)
        assert stacked.max() > 3 * np.abs(stacked[np.abs(lags - lag) > 2]).max()     # a clear, positive peak


def test_bundle_index_finds_every_pair_date_once(world, zone):
    index = BundleIndex(zone, world["bundles"], cache=False)
    table = index.table()
    assert set(table) == {(p, d) for p in EXPECTED for d in DAYS}
    assert all(len(paths) == 1 for paths in table.values())
    assert index.queries <= 2
    cached = BundleIndex(zone, world["bundles"])       # builds the cache
    again = BundleIndex(zone, world["bundles"])        # stamp query only
    assert again.queries == 1 and again.table() == cached.table() == table
    listed = _cli(["bundles", "ls", world["bundles"], "--cells"])
    assert listed.exit_code == 0 and len([line for line in listed.stdout.splitlines() if "\t" in line]) == 6


def test_a_bundle_opens_with_plain_h5py_and_holds_what_the_writer_put(world, zone, tmp_path):
    index = BundleIndex(zone, world["bundles"], cache=False)
    path = index.find(("S1", "S3"), DAYS[1])
    zone.get(path, tmp_path / "b.h5")
    remote = {c.date: c for c in read_pairs(zone, index, [("S1", "S3")])}
    with h5py.File(tmp_path / "b.h5", "r") as h5:
        assert h5.attrs["format"] == "seisstore-bundle/1"
        assert h5.attrs["sampling_rate"] == RATE and h5.attrs["max_lag_s"] == 20
        ds = h5["pairs/S1:S3"]
        assert ds.shape == (2, 1, 81) and list(ds.attrs["dates"]) == [d.isoformat() for d in DAYS]
        assert list(ds.attrs["coords_a"]) == COORDS["S1"]
        assert abs(ds.attrs["distance_m"] - 23_600) < 200
        assert (ds.attrs["n_windows"] == 24).all()
        for k, d in enumerate(DAYS):
            assert np.array_equal(ds[k], remote[d].data)
        assert np.allclose(h5["lags"][()], np.arange(-40, 41) / RATE)
    avus = zone.avus(path)
    assert avus["bundle.pairs.0"] == ["S1:S3"] and avus["bundle.dates.0"] == ["2011-03-01,2011-03-02"]
    assert len(avus["provenance.inputs.0"][0].split(",")) == 4


def _run_line(world, line: str, hold: float = 0.0, **env):
    """The correlation job of one param.txt line; ``hold``: seconds it waits before storing each bundle."""
    camp = world["camps"]["xc"]
    fields = next(f.split() for f in (camp / "param.txt").read_text().splitlines() if f.split()[0] == line)
    job = ["-m", "seisstore.jobs.correlate"] if not hold else [str(Path(__file__).parent / "correlate_holding.py"),
                                                              str(hold)]
    return subprocess.Popen([sys.executable, *job, *fields[1:]], cwd=camp,
                            env=dict(os.environ, SEISSTORE_JOB_NAME=line, SEISSTORE_LOG="INFO", **env),
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_a_finished_line_rerun_writes_nothing(world, zone):
    before = _objects(zone, world["bundles"])
    proc = _run_line(world, "xc1_0_2_0_0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "0 to write" in err
    assert _objects(zone, world["bundles"]) == before


def test_a_correlation_line_writes_to_seisstore_results_when_no_bundles_collection_is_set(world, zone):
    """``campaign new --results`` exports SEISSTORE_RESULTS, where ``campaign status`` looks."""
    elsewhere = f"{world['bundles']}-results"
    zone.mkdir(elsewhere)
    settings = json.loads(os.environ["SEISSTORE_CONFIG"])
    del settings["correlate"]["bundles"]
    proc = _run_line(world, "xc1_0_2_0_0", SEISSTORE_CONFIG=json.dumps(settings), SEISSTORE_RESULTS=elsewhere)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [name for _, name, *_ in _objects(zone, elsewhere)] == ["xc1_0_2_0_0.b000.h5"]


def test_a_killed_correlation_job_leaves_nothing_partial_and_its_rerun_completes(world, zone, session):
    line = "xc1_0_2_0_1"                    # pairs (S1, S3) and (S2, S3): two bundles of 1 pair
    bundles = world["bundles"]
    mine = [f"{bundles}/{line}.b000.h5", f"{bundles}/{line}.b001.h5"]
    for path in mine:
        session.data_objects.unlink(path, force=True)
    proc = _run_line(world, line, hold=1.5)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if BundleIndex(zone, bundles, cache=False).find(("S1", "S3"), DAYS[0]):
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)   # during the hold before the second upload
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    index = BundleIndex(zone, bundles, cache=False)
    assert index.find(("S1", "S3"), DAYS[0]) and index.find(("S2", "S3"), DAYS[0]) is None
    names = {n for _, n, *_ in _objects(zone, bundles)}
    assert f"{line}.b001.h5" not in names
    assert all(n.startswith(".") or n.endswith(".h5") for n in names)
    rerun = _run_line(world, line)
    _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert "1 to write" in err
    table = BundleIndex(zone, bundles, cache=False).table()
    assert set(table) == {(p, d) for p in EXPECTED for d in DAYS} and all(len(v) == 1 for v in table.values())


@pytest.mark.faults
def test_selective_reads_under_connection_drops_return_identical_correlations(world, zone, grid):
    from secure_irods import RetryPolicy, connect

    index = BundleIndex(zone, world["bundles"], cache=False)
    clean = {(c.pair, c.date): c.data.tobytes() for c in read_pairs(zone, index)}
    grid.control.reset_stats()
    grid.set_faults(drop_rate=0.2, seed=3)
    try:
        with connect(policy=RetryPolicy(attempts=40, initial=0.0, increment=0.0, max_wait=0.01),
                     cooldown=False) as patient:
            dropped = {(c.pair, c.date): c.data.tobytes() for c in read_pairs(patient, index)}
        drops = grid.control.stats()["drops"]
    finally:
        grid.clear_faults()
    assert drops > 0 and dropped == clean


def test_stack_export_and_gather(world, tmp_path):
    out = tmp_path / "stacks.h5"
    stacked = _cli(["stack", world["bundles"], "--all", "-o", str(out)])
    assert stacked.exit_code == 0, stacked.output
    with h5py.File(out, "r") as h5:
        lags = h5["lags"][()]
        for (a, b), lag in EXPECTED.items():
            assert abs(lags[np.argmax(h5[f"stacks/{a}:{b}"][()])] - lag) <= 1 / RATE
    one = _cli(["stack", world["bundles"], "--pair", "S1", "S2", "--dates", str(DAYS[0]), "--method", "pws",
                "-o", str(tmp_path / "one.h5")])
    assert one.exit_code == 0, one.output
    with h5py.File(tmp_path / "one.h5", "r") as h5:
        assert list(h5["stacks"]) == ["S1:S2"] and list(h5["stacks/S1:S2"].attrs["dates"]) == [str(DAYS[0])]
    sac = _cli(["export", str(out), "--format", "SAC", "-o", str(tmp_path / "sac")])
    assert sac.exit_code == 0, sac.output
    from obspy import read

    tr = read(str(tmp_path / "sac" / "S1_S3.SAC"))[0]
    assert abs(tr.stats.sac.dist - 23.6) < 0.2 and tr.stats.sac.evla == 45.0 and abs(tr.stats.sac.b + 20) < 1e-6
    ms = _cli(["export", str(out), "--format", "MSEED", "-o", str(tmp_path / "ms")])
    assert ms.exit_code == 0 and len(list((tmp_path / "ms").glob("*.mseed"))) == 3
    png = tmp_path / "gather.png"
    plotted = _cli(["plot", "gather", str(out), "-o", str(png)])
    assert plotted.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stack_of_an_empty_selection_is_one_line(world):
    result = CliRunner().invoke(main, ["stack", world["bundles"], "--pair", "S9", "S8", "-o", "/tmp/none.h5"])
    assert result.exit_code == 3 and "Traceback" not in result.output


@pytest.mark.parametrize("args", [["bundles", "ls", "--help"], ["stack", "--help"], ["export", "--help"],
                                  ["plot", "gather", "--help"], ["dvv", "--help"], ["plot", "dvv", "--help"],
                                  ["plot", "interferogram", "--help"]])
def test_help_of_the_new_subcommands(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "Usage" in result.output


def test_job_settings_from_a_file_in_the_zone_or_the_workdir(world, zone, tmp_path, monkeypatch):
    from seisstore.jobs import load_config

    local = tmp_path / "settings.json"
    local.write_text(json.dumps({"correlate": {"max_lag_s": 7}}))
    remote = f"{world['bundles'].rsplit('/', 1)[0]}/campaigns/xc/settings.json"
    zone.put(local, remote)
    monkeypatch.setenv("SEISSTORE_CONFIG", f"i:{remote}")
    assert load_config("correlate", tmp_path) == {"max_lag_s": 7}
    monkeypatch.delenv("SEISSTORE_CONFIG")
    (tmp_path / "preprocess.json").write_text('{"channels": ["HHZ"]}')
    assert load_config("preprocess", tmp_path) == {"channels": ["HHZ"]}
    assert load_config("correlate", tmp_path / "nowhere") == {}


def test_dvv_of_the_bundles_stored_with_avus_and_plotted(world, zone, tmp_path):
    out = tmp_path / "dvv.h5"
    results = f"{world['bundles'].rsplit('/', 1)[0]}/dvv"
    ran = _cli(["dvv", world["bundles"], "--all", "--tmin", "2", "--tmax", "15", "--freqmin", "0.1", "--freqmax", "0.8",
                "--reference", str(DAYS[0]), "-o", str(out), "--to", results, "--json"])
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.stdout)
    assert summary["pairs"] == 3 and summary["dates"] == [str(d) for d in DAYS]
    # the reference is day 1 alone: day 1 against itself is no change; day 2 is the same medium
    assert abs(summary["network"]["stretching"][0]) < 1e-5 and abs(summary["network"]["stretching"][1]) < 0.002
    assert abs(summary["network"]["mwcs"][1]) < 0.002
    with h5py.File(out, "r") as h5:
        assert h5["pairs/S1:S3/rows"].shape == (2, 81) and h5["pairs/S1:S3"].attrs["tmax"] == 15
        assert np.isfinite(h5["network/stretching_error"][()]).all()
    avus = {k: v for k, v in zone.avus(summary["stored"]).items()}
    assert avus["dvv.format"] == ["seisstore-dvv/1"] and avus["dvv.pairs"] == ["3"]
    for args in (["plot", "dvv", str(out), "--method", "mwcs"], ["plot", "interferogram", str(out), "--pair", "S1", "S3"]):
        png = tmp_path / f"{args[1]}.png"
        plotted = _cli([*args, "-o", str(png)])
        assert plotted.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plotted.output
    bad = _cli(["dvv", world["bundles"], "--all", "-o", str(out)])
    assert bad.exit_code == 1 and "lag window" in bad.output


def test_many_rows_coalesced_over_several_streams_within_the_throttle(client, grid, tmp_path, monkeypatch):
    """Rows of one bundle read exactly; neighbours share a read; spare streams only for free slots."""
    import random

    from secure_irods.client import connect
    from seisstore.bundles import LocalBundle, bundle_avus

    pairs = [(f"A{k:02d}", f"B{k:02d}") for k in range(40)]
    days = [datetime.date(2011, 3, 1) + datetime.timedelta(days=d) for d in range(5)]
    bundle = LocalBundle(tmp_path / "b.h5", pairs, {p: days for p in pairs}, rate=10.0, max_lag_s=20, n_sub=1,
                         attrs={"job": "t"})
    for k, pair in enumerate(pairs):
        for j, d in enumerate(days):
            bundle.write(pair, d, np.full((1, 401), k * 10 + j, dtype="f4"), np.array([j]))
    bundle.close()
    coll = f"{grid.home}/ranges-{uuid.uuid4().hex[:8]}"
    client.mkdir(coll)
    client.put(bundle.path, f"{coll}/b.h5")
    client.set_avus(f"{coll}/b.h5", bundle_avus(bundle, job="t", code="t", rate=10.0, chain="-", inputs={}))
    cells = random.Random(2).sample([(p, d) for p in pairs for d in days], 30)
    index = BundleIndex(client, coll, cache=False)
    for slots, streams in (("16", 4), ("2", 2)):
        monkeypatch.setenv("SECURE_IRODS_MAX_CONNECTIONS", slots)
        with connect() as c:
            stats: dict = {}
            got = {(x.pair, x.date): x for x in read_pairs(c, index, cells=cells, stats=stats, streams=4,
                                                           max_gap=4096)}
        assert set(got) == set(cells) and stats["streams"] == streams
        assert streams < stats["spans"] < len(cells)    # rows 1.6 KB apart: a pair's neighbours share a read
        for (pair, d), x in got.items():
            k, j = pairs.index(pair), days.index(d)
            assert x.data.shape == (1, 401) and (x.data == k * 10 + j).all() and x.n_windows.tolist() == [j]
    # a zone that refuses connections beyond 2 while the node's throttle allows 16 (the demo's
    # grid): spares are refused and dropped, the first stream reads on, nothing is lost
    monkeypatch.setenv("SECURE_IRODS_MAX_CONNECTIONS", "16")
    monkeypatch.setenv("SECURE_IRODS_COOLDOWN", "0.2")
    index = BundleIndex(client, coll, cache=False)
    client.disconnect()
    grid.set_faults(max_connections=2)
    try:
        with connect() as c:
            stats = {}
            capped = {(x.pair, x.date): x.data.tobytes() for x in read_pairs(c, index, cells=cells, stats=stats,
                                                                              streams=4, max_gap=4096)}
    finally:
        grid.clear_faults()
    assert capped == {cell: x.data.tobytes() for cell, x in got.items()} and stats["streams"] <= 2


def test_coalesce_merges_only_close_ranges():
    from seisstore.ranges import MAX_SPAN, coalesce

    spans = coalesce([(1000, 10), (0, 100), (150, 50), (5000, 10)], max_gap=100)
    assert [(s.start, s.stop, s.members) for s in spans] == [(0, 200, (1, 2)), (1000, 1010, (0,)), (5000, 5010, (3,))]
    big = coalesce([(0, MAX_SPAN), (MAX_SPAN, 10)], max_gap=1 << 20)
    assert len(big) == 2
