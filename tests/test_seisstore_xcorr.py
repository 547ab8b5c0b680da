"""The preprocessing chain, the correlation kernel and the bundle packing (no zone needed)."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from seisstore.bundles import FORMAT, LocalBundle, _from_avus, bundle_avus, pack
from seisstore.preprocessing import apply_chain, chain_text, check_chain
from seisstore.xcorr import correlate_day, lag_axis, stack


def _delayed(n, shift, rate=2.0, seconds=86400, seed=0):
    rng = np.random.default_rng(seed)
    npts = int(seconds * rate)
    common = rng.standard_normal(npts + n * shift + 1)
    return np.stack([common[n * shift - k * shift:n * shift - k * shift + npts] for k in range(n)])


def test_kernel_matches_a_plain_correlation_and_its_sign():
    from scipy.signal import correlate

    rate, shift = 2.0, 6
    data = _delayed(3, shift, rate, seconds=4 * 3600)
    cc, counts = correlate_day(data, rate, [(0, 1), (1, 0), (0, 2)], window_s=3600, max_lag_s=30)
    lags = lag_axis(rate, 30)
    assert counts.tolist() == [4] and cc.shape == (3, 1, 121)
    assert lags[np.argmax(cc[0, 0])] == shift / rate and lags[np.argmax(cc[1, 0])] == -shift / rate
    assert lags[np.argmax(cc[2, 0])] == 2 * shift / rate
    wlen, m = 7200, 60
    plain = np.mean([correlate(data[1, s:s + wlen], data[0, s:s + wlen], method="fft")[wlen - 1 - m:wlen + m]
                     for s in range(0, 4 * wlen, wlen)], axis=0)
    assert np.allclose(cc[0, 0], plain, rtol=1e-3, atol=1e-2 * np.abs(plain).max())


def test_hourly_substacks():
    data = _delayed(2, 4, seconds=6 * 3600)
    cc, counts = correlate_day(data, 2.0, [(0, 1)], window_s=1800, max_lag_s=10, substack_s=3600)
    assert cc.shape == (1, 6, 41) and counts.tolist() == [2] * 6


def test_chain_steps_and_their_text():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(8000) * 10
    for chain, rate_out in (([{"op": "onebit"}], 4.0), ([{"op": "clip", "factor": 1.0}], 4.0),
                            ([{"op": "ram", "window_s": 10}], 4.0), ([{"op": "resample", "rate": 2.0}], 2.0),
                            ([{"op": "decimate", "rate": 1.0}], 1.0),
                            ([{"op": "whiten", "freqmin": 0.2, "freqmax": 1.0}], 4.0)):
        y, rate = apply_chain(x, 4.0, chain)
        assert rate == rate_out and len(y) == int(8000 * rate_out / 4.0) and np.isfinite(y).all()
    assert set(np.unique(apply_chain(x, 4.0, [{"op": "onebit"}])[0])) <= {-1.0, 0.0, 1.0}
    assert chain_text([{"op": "taper", "fraction": 0.1}]) == '[{"fraction":0.1,"op":"taper"}]'
    with pytest.raises(ValueError, match="not one of"):
        check_chain([{"op": "fft-magic"}])
    with pytest.raises(ValueError, match="bandpass"):
        apply_chain(x, 4.0, [{"op": "bandpass", "freqmin": 0.2}])


def test_pws_keeps_the_coherent_peak():
    rows = np.random.default_rng(2).standard_normal((20, 101)) * 0.3
    rows[:, 60] += 1.0
    assert np.argmax(stack(rows, "pws")) == 60 and np.argmax(stack(rows)) == 60
    with pytest.raises(ValueError):
        stack(rows, "median")


def test_pack_is_deterministic_and_never_splits_a_pair():
    pairs = [("A", "B"), ("A", "C"), ("B", "C"), ("C", "D")]
    days = [datetime.date(2011, 3, d) for d in (1, 2, 3)]
    dates_of = {p: days for p in pairs}
    dates_of[("B", "C")] = []
    assert pack(pairs, dates_of, 100, target=600) == [[("A", "B"), ("A", "C")], [("C", "D")]]
    assert pack(pairs, dates_of, 100, target=1) == [[("A", "B")], [("A", "C")], [("C", "D")]]


def test_avus_round_trip_with_missing_dates(tmp_path):
    days = [datetime.date(2011, 3, d) for d in (1, 2, 3)]
    pairs = [(f"N.S{k:03d}", f"N.S{k + 1:03d}") for k in range(300)]
    dates_of = {p: days for p in pairs}
    dates_of[pairs[5]] = [days[0], days[2]]
    b = LocalBundle(tmp_path / "b.h5", pairs, dates_of, rate=1.0, max_lag_s=5, n_sub=1, attrs={"job": "j"})
    b.write(pairs[5], days[2], np.ones((1, 11)), np.array([3]))
    head = b.close()
    with h5py.File(tmp_path / "b.h5", "r") as h5:
        assert h5.attrs["format"] == FORMAT and h5[f"pairs/{pairs[5][0]}:{pairs[5][1]}"].shape == (2, 1, 11)
        assert h5[f"pairs/{pairs[5][0]}:{pairs[5][1]}"].attrs["n_windows"].tolist() == [[0], [3]]
    avus = bundle_avus(b, job="j", code="c", rate=1.0, chain="[]", inputs={})
    assert all(len(v) < 2000 and v for v in avus.values()) and len([k for k in avus if "pairs" in k]) > 1
    info = _from_avus("/z/b.h5", avus)
    assert info.head == head and info.pairs == {p: dates_of[p] for p in pairs}


def test_a_job_without_settings_exits_1_with_one_line(tmp_path):
    (tmp_path / "dates.txt").write_text("2011-03-01\n")
    (tmp_path / "stations.txt").write_text("S1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEISSTORE_")}
    for module in ("seisstore.jobs.preprocess", "seisstore.jobs.correlate"):
        done = subprocess.run([sys.executable, "-m", module, "1", "0", "1", "0"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
