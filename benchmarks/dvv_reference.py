"""dv/v of a known stretch by ``seisstore.dvv`` and by MSNoise's own functions, on the same input.

A synthetic correlation (400 band-limited waves, 0.1-1 Hz, both sides, decaying as
exp(-|t| / 25 s), 10 Hz, +/-100 s) and the same function of ``t (1 + dv/v)`` with
``dv/v = --truth`` (default -0.5 %).  Prints, in one run: the dv/v recovered by our
stretching and MWCS (lag window 5-80 s, both sides), by MSNoise's ``stretch_mat_creation``
(+ ``corrcoef``, as its stretching step) and ``move2obspy.mwcs`` (+ the through-origin fit
of ``compute_dtt``), and the largest relative difference between our MWCS and MSNoise's,
window by window.  Goals: both within 0.05 % of the truth; MWCS within 1e-3 relative.

    .venv/bin/python benchmarks/dvv_reference.py [--truth -0.005]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RATE, MAX_LAG, BAND, TMIN, TMAX = 10.0, 100.0, (0.1, 1.0), 5.0, 80.0


def coda(t: np.ndarray, seed: int = 0, n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = rng.uniform(*BAND, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    return np.cos(2 * np.pi * np.outer(t, f) + phase).sum(axis=1) * np.exp(-np.abs(t) / 25.0)


def main() -> None:
    import warnings

    from seisstore.dvv import lag_window, mwcs, mwcs_dvv, stretching

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truth", type=float, default=-0.005)
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    from msnoise.move2obspy import mwcs as msnoise_mwcs
    from msnoise.stretch import stretch_mat_creation
    from obspy.signal.regression import linear_regression

    lags = np.arange(-int(MAX_LAG * RATE), int(MAX_LAG * RATE) + 1) / RATE
    ref, cur = coda(lags), coda(lags * (1 + a.truth))
    print(f"truth: dv/v = {100 * a.truth:+.4f} %; lag window {TMIN:g}-{TMAX:g} s, both sides; band {BAND[0]}-{BAND[1]} Hz")

    t = time.perf_counter()
    ours_st = stretching(ref, cur, lags, tmin=TMIN, tmax=TMAX, freqmin=BAND[0], freqmax=BAND[1])
    took_st = time.perf_counter() - t
    sel = lag_window(lags, TMIN, TMAX)
    t = time.perf_counter()
    rows, deltas = stretch_mat_creation(np.where(sel, ref, 0.0), str_range=0.02, nstr=401)
    theirs_st = deltas[np.argmax([np.corrcoef(np.where(sel, cur, 0.0), row)[0, 1] for row in rows])] - 1
    took_mst = time.perf_counter() - t

    t = time.perf_counter()
    ours = mwcs(ref, cur, RATE, freqmin=BAND[0], freqmax=BAND[1], window_s=10, step_s=5, tmin=-MAX_LAG)
    ours_mw = mwcs_dvv(ours, tmin=TMIN, tmax=TMAX)
    took_mw = time.perf_counter() - t
    t = time.perf_counter()
    theirs = msnoise_mwcs(cur.copy(), ref.copy(), BAND[0], BAND[1], RATE, -MAX_LAG, 10, 5, 5)
    keep = lag_window(theirs[:, 0], TMIN, TMAX) & (theirs[:, 3] >= 0.65) & (theirs[:, 2] <= 0.1) & (
        np.abs(theirs[:, 1]) <= 0.1)
    m0, _ = linear_regression(theirs[keep, 0], theirs[keep, 1], 1.0 / theirs[keep, 2])
    took_mmw = time.perf_counter() - t

    print(f"stretching, seisstore : {100 * ours_st.dvv:+.4f} % (error estimate {100 * ours_st.error:.4f} %,"
          f" cc {ours_st.cc:.5f}), off by {100 * abs(ours_st.dvv - a.truth):.4f} %, {took_st * 1000:.0f} ms")
    print(f"stretching, MSNoise   : {100 * theirs_st:+.4f} % (grid step 0.01 %), off by"
          f" {100 * abs(theirs_st - a.truth):.4f} %, {took_mst * 1000:.0f} ms")
    print(f"MWCS, seisstore       : {100 * ours_mw.dvv:+.4f} % (error {100 * ours_mw.error:.4f} %), off by"
          f" {100 * abs(ours_mw.dvv - a.truth):.4f} %, {took_mw * 1000:.0f} ms")
    print(f"MWCS, MSNoise         : {100 * -m0:+.4f} %, off by {100 * abs(-m0 - a.truth):.4f} %,"
          f" {took_mmw * 1000:.0f} ms")
    for name, mine, col in (("delays", ours.dt, 1), ("errors", ours.error, 2), ("coherences", ours.coherence, 3)):
        rel = np.max(np.abs(mine - theirs[:, col])) / np.max(np.abs(theirs[:, col]))
        print(f"MWCS {name:<10} seisstore vs MSNoise, {len(mine)} windows: max |difference| / max |MSNoise|"
              f" = {rel:.2e}")
    print(f"dv/v from MWCS, seisstore vs MSNoise: relative difference {abs(ours_mw.dvv + m0) / abs(m0):.2e}")


if __name__ == "__main__":
    main()
