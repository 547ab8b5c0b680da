"""Correlation kernel speed: seisstore.xcorr against a plain scipy loop and NoisePy's own kernel.

One day of synthetic preprocessed noise for N stations (default 50, 20 Hz): station k
records a common noise delayed by its own lag plus noise of its own, so every pair has a
known lag.  Printed, in one run, for the same traces, 1-hour windows, +/- 200 s lags:

* pair-days per second of ``seisstore.xcorr.correlate_day`` (every pair of the day);
* of a plain loop of ``scipy.signal.correlate(..., method="fft")`` per pair and window
  (what a seismologist writes first), timed on ``--loop-pairs`` pairs;
* of NoisePy's kernel: ``noise_module.noise_processing`` for the spectra of each station,
  then ``noise_module.correlate`` per pair, as ``noisepy.seis.correlate.cross_correlation``
  calls them (run by the Python of ``--noisepy-python``, a separate environment; timed on
  ``--noisepy-pairs`` pairs, its spectra time amortised over the day's pairs);
* whether each recovers every pair's lag (the same lags).  NoisePy 0.9.93's
  ``correlate`` cuts its output one sample off centre (its lag axis
  ``arange(-Nfft2 + 1, Nfft2) * dt`` against an ``ifftshift`` whose zero lag is at
  ``Nfft2``), so its lags, read with a centred axis, come out one sample late; the
  benchmark prints that offset.

    .venv/bin/python benchmarks/correlate.py --noisepy-python /tmp/noisepy-venv/bin/python

NoisePy's environment (its wheel declares Python < 3.11): ``pip install --no-deps
--ignore-requires-python noisepy-seis numba noisepy-seis-io`` then what its imports need
(llvmlite, pydantic, pydantic-yaml, fsspec, psutil, tqdm, obspy, scipy, h5py); its
``noisepy.seis`` package ``__init__`` imports ``pyasdf`` (FDSN download), so the worker
loads ``noise_module`` without running that ``__init__``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def synthetic(n: int, rate: float, seed: int = 1, max_delay_s: float = 90.0):
    rng = np.random.default_rng(seed)
    npts = int(86400 * rate)
    delays = rng.integers(0, int(max_delay_s * rate), n)
    pad = int(max_delay_s * rate) + 1
    common = rng.standard_normal(npts + pad).astype(np.float32)
    data = np.empty((n, npts), dtype=np.float32)
    for k in range(n):
        data[k] = common[pad - delays[k]:pad - delays[k] + npts] + rng.standard_normal(npts).astype(np.float32)
    return data, delays / rate


def plain_loop(data, rate, pairs, window_s, max_lag_s):
    from scipy.signal import correlate

    wlen, maxlag = int(window_s * rate), int(max_lag_s * rate)
    out = []
    for a, b in pairs:
        acc = np.zeros(2 * maxlag + 1)
        n = 0
        for s in range(0, data.shape[1] - wlen + 1, wlen):
            cc = correlate(data[b, s:s + wlen], data[a, s:s + wlen], mode="full", method="fft")
            acc += cc[wlen - 1 - maxlag:wlen + maxlag]
            n += 1
        out.append(acc / n)
    return np.array(out)


NOISEPY_WORKER = r'''
import importlib, json, sys, time, types
import numpy as np
import noisepy
pkg = types.ModuleType("noisepy.seis"); pkg.__path__ = [noisepy.__path__[0] + "/seis"]
sys.modules["noisepy.seis"] = pkg                 # skip noisepy/seis/__init__ (it imports pyasdf)
nm = importlib.import_module("noisepy.seis.noise_module")
from noisepy.seis.io.datatypes import ConfigParameters, FreqNorm, TimeNorm, CCMethod
args = json.loads(sys.argv[1])
data = np.load(args["data"], mmap_mode="r")
rate, wlen_s, maxlag = args["rate"], args["window_s"], args["max_lag_s"]
p = ConfigParameters(sampling_rate=rate, cc_len=wlen_s, step=wlen_s, maxlag=maxlag, substack=False,
                     freq_norm=FreqNorm.NO, time_norm=TimeNorm.NO, cc_method=CCMethod.XCORR)
wlen = int(wlen_s * rate)
pairs = [tuple(x) for x in args["pairs"]]
used = sorted({s for pr in pairs for s in pr})
t0 = time.perf_counter()
spectra = {}
for s in used:
    segs = np.stack([np.asarray(data[s, k:k + wlen]) for k in range(0, data.shape[1] - wlen + 1, wlen)])
    white = nm.noise_processing(p, segs)
    nfft = white.shape[1]
    spectra[s] = white[:, :nfft // 2]
t1 = time.perf_counter()
times = np.arange(len(spectra[used[0]])) * wlen_s
lags = []
for a, b in pairs:
    corr, _, _ = nm.correlate(np.conj(spectra[a]), spectra[b], p, nfft, times)
    cc = corr[0]
    t = (np.arange(len(cc)) - len(cc) // 2) / rate
    lags.append(float(t[np.argmax(cc)]))
t2 = time.perf_counter()
print(json.dumps({"spectra_s": t1 - t0, "stations": len(used), "pairs_s": t2 - t1, "lags": lags}))
'''


def run_noisepy(python, data, rate, pairs, window_s, max_lag_s):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npy"
        np.save(path, data)
        args = {"data": str(path), "rate": rate, "window_s": window_s, "max_lag_s": max_lag_s,
                "pairs": [list(map(int, pr)) for pr in pairs]}
        done = subprocess.run([python, "-c", NOISEPY_WORKER, json.dumps(args)], capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from seisstore.xcorr import correlate_day, lag_axis

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--window", type=float, default=3600.0)
    ap.add_argument("--max-lag", type=float, default=200.0)
    ap.add_argument("--loop-pairs", type=int, default=20)
    ap.add_argument("--noisepy-pairs", type=int, default=300)
    ap.add_argument("--noisepy-python", default=os.environ.get("NOISEPY_PYTHON"))
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args()

    data, delays = synthetic(a.stations, a.rate)
    pairs = [(i, j) for i in range(a.stations) for j in range(i + 1, a.stations)]
    truth = np.array([delays[j] - delays[i] for i, j in pairs])
    lags = lag_axis(a.rate, a.max_lag)
    print(f"{a.stations} stations, 1 day at {a.rate:g} Hz, {a.window:g} s windows, +/-{a.max_lag:g} s lags,"
          f" {len(pairs)} pairs, {os.cpu_count()} cores")

    t = time.perf_counter()
    cc, counts = correlate_day(data, a.rate, pairs, window_s=a.window, max_lag_s=a.max_lag, workers=a.workers)
    ours_s = time.perf_counter() - t
    ours_lags = lags[np.argmax(cc[:, 0], axis=1)]
    ours_ok = np.abs(ours_lags - truth) <= 1 / a.rate + 1e-9
    ours = len(pairs) / ours_s
    print(f"seisstore kernel : {ours:9.1f} pair-days/s  ({len(pairs)} pairs in {ours_s:.2f} s;"
          f" {counts[0]} windows)  lags right: {ours_ok.sum()}/{len(pairs)}")

    sub = pairs[:a.loop_pairs]
    t = time.perf_counter()
    loop_cc = plain_loop(data, a.rate, sub, a.window, a.max_lag)
    loop_s = time.perf_counter() - t
    loop = len(sub) / loop_s
    loop_lags = lags[np.argmax(loop_cc, axis=1)]
    same = np.abs(loop_lags - ours_lags[:len(sub)]) <= 1 / a.rate + 1e-9
    print(f"plain scipy loop : {loop:9.1f} pair-days/s  ({len(sub)} pairs in {loop_s:.2f} s)"
          f"  same lags as ours: {same.sum()}/{len(sub)}  -> ours is {ours / loop:.1f}x")

    if not a.noisepy_python:
        print("NoisePy kernel   : not run (give --noisepy-python or $NOISEPY_PYTHON)")
        return
    subset = pairs[:a.noisepy_pairs]
    try:
        res = run_noisepy(a.noisepy_python, data, a.rate, subset, a.window, a.max_lag)
    except RuntimeError as exc:
        print(f"NoisePy kernel   : failed: {exc}")
        return
    # spectra: once per station of the day; charged in proportion to the pairs timed
    spectra_share = res["spectra_s"] / res["stations"] * a.stations * len(subset) / len(pairs)
    np_s = res["pairs_s"] + spectra_share
    npy = len(subset) / np_s
    offset = (np.array(res["lags"]) - ours_lags[:len(subset)]) * a.rate     # in samples
    same = np.abs(offset) <= 1 + 1e-6
    shift = np.unique(np.round(offset).astype(int))
    print(f"NoisePy kernel   : {npy:9.1f} pair-days/s  ({len(subset)} pairs in {res['pairs_s']:.2f} s"
          f" + {spectra_share:.2f} s share of {res['spectra_s']:.2f} s spectra)"
          f"  same lags as ours (+/-1 sample): {same.sum()}/{len(subset)}, offsets {shift.tolist()} samples"
          f"  -> ours is {ours / npy:.1f}x")


if __name__ == "__main__":
    main()
