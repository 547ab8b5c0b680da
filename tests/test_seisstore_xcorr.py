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
    assert counts.tolist() == [[4]] * 3 and cc.shape == (3, 1, 121)
    assert lags[np.argmax(cc[0, 0])] == shift / rate and lags[np.argmax(cc[1, 0])] == -shift / rate
    assert lags[np.argmax(cc[2, 0])] == 2 * shift / rate
    wlen, m = 7200, 60
    # each window detrended (linear) and tapered (Tukey, 4 % at each end), as the kernel prepares it
    from scipy.signal import detrend
    from scipy.signal.windows import tukey

    def prep(x):
        return detrend(x, type="linear") * tukey(wlen, 0.08)

    plain = np.mean([correlate(prep(data[1, s:s + wlen]), prep(data[0, s:s + wlen]), method="fft")[wlen - 1 - m:wlen + m]
                     for s in range(0, 4 * wlen, wlen)], axis=0)
    assert np.allclose(cc[0, 0], plain, rtol=1e-3, atol=1e-2 * np.abs(plain).max())


def test_hourly_substacks():
    data = _delayed(2, 4, seconds=6 * 3600)
    cc, counts = correlate_day(data, 2.0, [(0, 1)], window_s=1800, max_lag_s=10, substack_s=3600)
    assert cc.shape == (1, 6, 41) and counts.tolist() == [[2] * 6]


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


def test_nroot_and_robust_stacks_resist_an_outlier_and_linear_weights_days():
    from seisstore.xcorr import Stacker

    rng = np.random.default_rng(3)
    signal = np.zeros(101)
    signal[60] = 1.0
    rows = signal + 0.2 * rng.standard_normal((30, 101))
    rows[0] = 40 * rng.standard_normal(101)               # one day full of a transient
    for method in ("nroot", "robust"):
        got = stack(rows, method)
        assert np.argmax(got) == 60, method
        ratio = got[60] / np.abs(np.delete(got, 60)).max()
        assert ratio > 3 * signal[60] / np.abs(np.delete(stack(rows), 60)).max(), method   # better than linear
    s = Stacker("linear")
    s.add(np.array([[1.0, 1.0], [4.0, 4.0]]), weights=np.array([3, 1]))
    s.add(np.array([9.0, 9.0]), weights=0)                 # a day that kept no window counts for nothing
    assert s.result().tolist() == [1.75, 1.75] and s.count == 2


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


# ---------------------------------------------------------------- real-data defects (issue 22)

CHAIN_5HZ = [{"op": "detrend"}, {"op": "taper", "fraction": 0.01}, {"op": "bandpass", "freqmin": 0.1, "freqmax": 1.5},
             {"op": "qc", "max_over_std": 10.0, "pad_s": 60.0}, {"op": "onebit"},
             {"op": "whiten", "freqmin": 0.1, "freqmax": 1.5, "outer": [0.05, 2.0]}]
DAY = datetime.date(2011, 3, 1)


def _noise(npts, rate, seed=0, shift_s=0.0, band=(0.05, 2.0)):
    """Band-limited noise sampled at ``shift_s + k / rate`` (exact: a phase ramp of one spectrum)."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(npts))
    f = np.fft.rfftfreq(npts, 1.0 / rate)
    spec[(f < band[0]) | (f > band[1])] = 0
    return np.fft.irfft(spec * np.exp(2j * np.pi * f * shift_s), npts)


def _trace(data, rate, start_s=0.0, sta="A"):
    from obspy import Trace, UTCDateTime

    return Trace(np.asarray(data, dtype=np.float64),
                 header=dict(network="XX", station=sta, channel="HHZ", sampling_rate=rate,
                             starttime=UTCDateTime(DAY.isoformat()) + start_s))


def test_a_gap_stays_empty_and_its_windows_are_not_counted():
    from obspy import Stream

    from seisstore.preprocessing import process_day

    rate = 5.0
    n = int(86400 * rate)
    x = _noise(n, rate, seed=3)
    gap = slice(int(6 * 3600 * rate), int(12 * 3600 * rate))
    a = process_day(Stream([_trace(x, rate)]), DAY, CHAIN_5HZ)
    b = process_day(Stream([_trace(x[:gap.start], rate), _trace(x[gap.stop:], rate, gap.stop / rate)]), DAY, CHAIN_5HZ)
    assert not b.mask[gap].any() and b.mask[:gap.start].all() and b.mask[gap.stop:].all()
    assert np.count_nonzero(b.trace.data[gap]) == 0 and b.segments == 2 and 0.74 < b.data_fraction < 0.76
    assert np.count_nonzero(b.trace.data[:gap.start]) > 0.9 * gap.start
    data = np.stack([a.trace.data, b.trace.data])
    cc, counts = correlate_day(data, rate, [(0, 1), (0, 0)], window_s=3600, max_lag_s=20,
                               mask=np.stack([a.mask, b.mask]))
    assert counts.tolist() == [[18], [24]]
    assert np.argmax(cc[0, 0]) == 100          # zero lag: same noise
    # the stored form keeps the gap as a gap: two runs of data, nothing written in between
    pieces = b.stream()
    assert len(pieces) == 2 and sum(len(tr.data) for tr in pieces) == int(b.mask.sum())


def _peak(lags, cc):
    k = int(np.argmax(cc))
    y0, y1, y2 = cc[k - 1], cc[k], cc[k + 1]
    return lags[k] + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2) * (lags[1] - lags[0])


def test_a_sub_sample_start_time_is_corrected():
    from obspy import Stream

    from seisstore.preprocessing import process_day

    rate = 5.0
    n = int(86400 * rate) - 5
    chain = [{"op": "detrend"}, {"op": "taper", "fraction": 0.01}, {"op": "bandpass", "freqmin": 0.1, "freqmax": 1.5}]
    on_grid = process_day(Stream([_trace(_noise(n, rate, seed=4), rate)]), DAY, chain)
    late = process_day(Stream([_trace(_noise(n, rate, seed=4, shift_s=0.09), rate, 0.09, "B")]), DAY, chain)
    assert late.trace.stats.starttime == on_grid.trace.stats.starttime
    cc, _ = correlate_day(np.stack([on_grid.trace.data, late.trace.data]), rate, [(0, 1)], window_s=3600,
                          max_lag_s=5, mask=np.stack([on_grid.mask, late.mask]))
    assert abs(_peak(lag_axis(rate, 5), cc[0, 0])) < 0.01


def _amplitude(x, rate):
    return np.fft.rfftfreq(len(x), 1.0 / rate), np.abs(np.fft.rfft(x))


def test_whitening_passes_nothing_below_the_outer_band():
    rate = 5.0
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.standard_normal(20000))            # red noise: most energy far below the band
    for step, lower in (({"op": "whiten", "freqmin": 0.1, "freqmax": 1.5, "outer": [0.05, 2.0]}, 0.05),
                        ({"op": "whiten", "freqmin": 0.05, "freqmax": 2.0}, 0.025)):
        y, _ = apply_chain(x, rate, [step])
        f, amp = _amplitude(y, rate)
        inband = np.median(amp[(f >= step["freqmin"]) & (f <= step["freqmax"])])
        assert amp[f < lower].max() < 0.01 * inband, step
    with pytest.raises(ValueError, match="outer"):
        apply_chain(x, rate, [{"op": "whiten", "freqmin": 0.1, "freqmax": 1.5, "outer": [0.2, 2.0]}])


def test_non_finite_input_is_processed_and_flagged():
    from obspy import Stream

    from seisstore.preprocessing import process_day

    rate = 5.0
    x = _noise(int(86400 * rate), rate, seed=6)
    x[1000:1010] = np.nan
    x[50000] = np.inf
    day = process_day(Stream([_trace(x, rate)]), DAY, CHAIN_5HZ)
    assert np.isfinite(day.trace.data).all() and day.nonfinite == 11
    assert not day.mask[1000:1010].any() and not day.mask[50000] and day.mask[2000:40000].all()
    assert day.qc_avus()["qc.nonfinite"] == "11"


def test_a_transient_is_cut_out_and_its_window_rejected():
    from obspy import Stream

    from seisstore.preprocessing import process_day

    rate = 5.0
    x = _noise(int(86400 * rate), rate, seed=7)
    quake = int(3.5 * 3600 * rate)
    x[quake:quake + 3000] += 200 * np.std(x) * np.sin(np.arange(3000) / 5.0) * np.exp(-np.arange(3000) / 600)
    day = process_day(Stream([_trace(x, rate)]), DAY, CHAIN_5HZ)
    assert day.transients > 0 and not day.mask[quake:quake + 100].any()
    assert np.count_nonzero(day.trace.data[quake:quake + 100]) == 0
    _, counts = correlate_day(day.trace.data[None], rate, [(0, 0)], window_s=3600, max_lag_s=20, mask=day.mask[None])
    assert counts.tolist() == [[23]]
