"""dv/v by stretching and MWCS: a known stretch recovered, and MSNoise's own functions on the same input."""

from __future__ import annotations

import numpy as np
import pytest

from seisstore.dvv import lag_window, moving_stacks, mwcs, mwcs_dvv, stretching

RATE, MAX_LAG = 10.0, 100.0
LAGS = np.arange(-int(MAX_LAG * RATE), int(MAX_LAG * RATE) + 1) / RATE
BAND = (0.1, 1.0)
TRUTH = -0.005                                    # -0.5 %: a slower medium, later arrivals


def coda(t, seed=0, n=400):
    """A synthetic correlation: band-limited scattered waves on both sides, decaying as exp(-|t| / 25 s).

    A continuous function of lag, so stretching it is exact: ``coda(t * (1 + dv/v))``.
    """
    rng = np.random.default_rng(seed)
    f = rng.uniform(*BAND, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    wave = np.cos(2 * np.pi * np.outer(t, f) + phase).sum(axis=1)
    return wave * np.exp(-np.abs(t) / 25.0)


REFERENCE = coda(LAGS)
CURRENT = coda(LAGS * (1 + TRUTH))


def test_stretching_recovers_a_known_velocity_change():
    got = stretching(REFERENCE, CURRENT, LAGS, tmin=5, tmax=80, freqmin=BAND[0], freqmax=BAND[1])
    assert abs(got.dvv - TRUTH) < 0.0005 and got.cc > 0.99 and 0 <= got.error < 0.0005
    same = stretching(REFERENCE, REFERENCE, LAGS, tmin=5, tmax=80)
    assert abs(same.dvv) < 1e-5 and same.cc > 0.9999
    assert stretching(REFERENCE, CURRENT, LAGS, tmin=5, tmax=80, sides="causal").dvv == pytest.approx(TRUTH, abs=5e-4)


def test_mwcs_recovers_a_known_velocity_change():
    delays = mwcs(REFERENCE, CURRENT, RATE, freqmin=BAND[0], freqmax=BAND[1], window_s=10, step_s=5, tmin=-MAX_LAG)
    got = mwcs_dvv(delays, tmin=5, tmax=80)
    assert abs(got.dvv - TRUTH) < 0.0005 and got.error < 0.0005
    late = lag_window(delays.time, 20, 60, "causal")
    assert np.all(delays.dt[late] > 0)            # a slower medium: the current arrives later


def test_mwcs_equals_msnoise_on_the_same_input():
    from msnoise.move2obspy import mwcs as msnoise_mwcs
    from obspy.signal.regression import linear_regression

    theirs = msnoise_mwcs(CURRENT.copy(), REFERENCE.copy(), BAND[0], BAND[1], RATE, -MAX_LAG, 10, 5, 5)
    ours = mwcs(REFERENCE, CURRENT, RATE, freqmin=BAND[0], freqmax=BAND[1], window_s=10, step_s=5, tmin=-MAX_LAG)
    assert theirs.shape == (len(ours.time), 4)
    np.testing.assert_allclose(ours.time, theirs[:, 0], rtol=1e-12)
    for mine, col in ((ours.dt, 1), (ours.error, 2), (ours.coherence, 3)):
        assert np.max(np.abs(mine - theirs[:, col])) <= 1e-3 * np.max(np.abs(theirs[:, col]))
    # and the dv/v of compute_dtt's fit through the origin on MSNoise's own delays
    sel = lag_window(theirs[:, 0], 5, 80) & (theirs[:, 3] >= 0.65) & (theirs[:, 2] <= 0.1) & (np.abs(theirs[:, 1]) <= 0.1)
    m0, _ = linear_regression(theirs[sel, 0], theirs[sel, 1], 1.0 / theirs[sel, 2])
    assert mwcs_dvv(ours, tmin=5, tmax=80).dvv == pytest.approx(-m0, rel=1e-3)


def test_stretching_agrees_with_msnoise_stretch_matrix():
    from msnoise.stretch import stretch_mat_creation

    sel = lag_window(LAGS, 5, 80)
    ref, cur = np.where(sel, REFERENCE, 0.0), np.where(sel, CURRENT, 0.0)
    rows, deltas = stretch_mat_creation(ref, str_range=0.02, nstr=401)
    best = deltas[np.argmax([np.corrcoef(cur, row)[0, 1] for row in rows])]
    ours = stretching(REFERENCE, CURRENT, LAGS, tmin=5, tmax=80, max_dvv=0.02, steps=401)
    assert abs(ours.dvv - (best - 1)) <= 1e-4            # one step of MSNoise's grid


def test_moving_stacks_weight_days_by_their_windows():
    rows = np.array([[1.0, 1.0], [3.0, 3.0], [np.nan, 0.0], [5.0, 5.0]])
    out = moving_stacks(rows, np.array([1, 3, 2, 0]), days=2)
    assert out[0].tolist() == [1.0, 1.0] and out[1].tolist() == [2.5, 2.5]
    assert out[2].tolist() == [3.0, 3.0] and np.isnan(out[3]).all()
