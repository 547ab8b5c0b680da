"""Seismic velocity changes (dv/v) from correlations: stretching and MWCS against a reference.

Both compare a *current* correlation (a day's, or a moving-window stack of days) with a
*reference* (usually the stack of every day) inside a lag window ``tmin <= |lag| <= tmax``
(``sides``: ``both``, ``causal`` (lag > 0) or ``acausal``), where the coda or the waves
chosen travel.  A homogeneous relative change ``dv/v`` of the medium's velocity scales
every travel time by ``1 / (1 + dv/v)``: the current correlation is the reference
stretched, ``current(t) = reference(t * (1 + dv/v))``; a slower medium (``dv/v < 0``)
moves arrivals to later lags.

* :func:`stretching` (Sens-Schoenfelder and Wegler 2006; as MSNoise's ``stretch`` step):
  the ``dv/v`` whose stretched reference best correlates with the current one, searched on
  a grid of ``steps`` values in ``[-max_dvv, max_dvv]`` then refined between the grid's
  neighbours; error from Weaver et al. (2011), eq. 12, which needs the band (``freqmin``,
  ``freqmax``) the correlations were filtered to.
* :func:`mwcs` (Clarke et al. 2011; MSNoise's ``move2obspy.mwcs``): in moving windows, the
  delay ``dt`` of the current against the reference is the slope of the cross-spectrum's
  phase against frequency in ``[freqmin, freqmax]``, fitted with weights from the
  coherence, with its error and the mean coherence; :func:`mwcs_dvv` then fits
  ``dt = -dv/v * t`` through the origin over the windows of the lag window that pass
  ``min_coherence``, ``max_error`` and ``max_dt`` (MSNoise's ``compute_dtt`` defaults:
  0.65, 0.1 s, 0.1 s), weighting each by ``1 / error`` as MSNoise does.

``tests/test_seisstore_dvv.py`` checks both against a known stretch and against MSNoise's
own functions on the same input (``docs/benchmarks.md`` has the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: MSNoise's defaults for the MWCS windows (``mwcs_wlen``, ``mwcs_step``), seconds.
MWCS_WINDOW_S, MWCS_STEP_S = 10.0, 5.0

__all__ = ["MWCS", "Stretch", "dvv_series", "lag_window", "moving_stacks", "mwcs", "mwcs_dvv", "network_average",
           "stretching", "upsampled"]


def lag_window(lags: np.ndarray, tmin: float, tmax: float, sides: str = "both") -> np.ndarray:
    """Boolean selection of ``lags`` with ``tmin <= |lag| <= tmax`` on ``sides``."""
    lags = np.asarray(lags, dtype=np.float64)
    if not 0 <= tmin < tmax:
        raise ValueError(f"the lag window needs 0 <= tmin < tmax, got {tmin}, {tmax}")
    inside = (np.abs(lags) >= tmin) & (np.abs(lags) <= tmax)
    if sides == "both":
        return inside
    if sides == "causal":
        return inside & (lags > 0)
    if sides == "acausal":
        return inside & (lags < 0)
    raise ValueError(f"sides must be both, causal or acausal, not {sides!r}")


@dataclass(frozen=True)
class Stretch:
    """One stretching measurement: ``dvv`` (relative, 0.01 = 1 %), its ``error``, and ``cc``,
    the correlation coefficient of the best-stretched reference with the current."""

    dvv: float
    error: float
    cc: float


def _stretched(reference: np.ndarray, lags: np.ndarray, at: np.ndarray, factors: np.ndarray) -> np.ndarray:
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(lags, reference)
    return spline(np.outer(factors, at))


def _coefficients(rows: np.ndarray, cur: np.ndarray) -> np.ndarray:
    rows = rows - rows.mean(axis=-1, keepdims=True)
    cur = cur - cur.mean()
    norm = np.sqrt((rows ** 2).sum(axis=-1) * (cur ** 2).sum())
    return np.where(norm > 0, rows @ cur / np.where(norm > 0, norm, 1), 0.0)


def stretching(reference: np.ndarray, current: np.ndarray, lags: np.ndarray, *, tmin: float, tmax: float,
               sides: str = "both", max_dvv: float = 0.02, steps: int = 401, freqmin: float | None = None,
               freqmax: float | None = None) -> Stretch:
    """``dv/v`` of ``current`` against ``reference`` (both sampled at ``lags``, seconds).

    The reference is interpolated (cubic spline) at ``lag * (1 + dv/v)`` for each candidate;
    the best of the grid is refined by a bounded scalar search between its neighbours.
    ``error`` is NaN unless ``freqmin`` and ``freqmax`` are given.
    """
    from scipy.optimize import minimize_scalar

    lags = np.asarray(lags, dtype=np.float64)
    sel = lag_window(lags, tmin, tmax, sides)
    if sel.sum() < 4:
        raise ValueError("the lag window holds fewer than 4 samples")
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    at = lags[sel]
    grid = np.linspace(-max_dvv, max_dvv, steps)
    cc = _coefficients(_stretched(ref, lags, at, 1 + grid), cur[sel])
    k = int(np.argmax(cc))
    lo, hi = grid[max(0, k - 1)], grid[min(steps - 1, k + 1)]
    best = minimize_scalar(lambda e: -_coefficients(_stretched(ref, lags, at, np.array([1 + e])), cur[sel])[0],
                           bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
    dvv, x = float(best.x), float(-best.fun)
    if x < cc[k]:
        dvv, x = float(grid[k]), float(cc[k])
    error = float("nan")
    if freqmin and freqmax and 0 < x < 1:
        # Weaver et al. (2011), eq. 12: T the inverse bandwidth, wc the central angular frequency
        t1, t2 = tmin, tmax
        big_t = 1.0 / (freqmax - freqmin)
        wc = np.pi * (freqmin + freqmax)
        error = float(np.sqrt(1 - x ** 2) / (2 * x)
                      * np.sqrt(6 * np.sqrt(np.pi / 2) * big_t / (wc ** 2 * (t2 ** 3 - t1 ** 3))))
    return Stretch(dvv, error, x)


@dataclass(frozen=True)
class MWCS:
    """Moving-window cross-spectral delays: per window, its central ``time`` (lag, s), the
    delay ``dt`` of the current against the reference (s; > 0: the current arrives later),
    ``error`` (s) and mean ``coherence`` in the band."""

    time: np.ndarray
    dt: np.ndarray
    error: np.ndarray
    coherence: np.ndarray


def _smooth(x: np.ndarray, half: int) -> np.ndarray:
    """Running mean under a Hann window of ``2 half + 1`` samples, mirrored at the ends."""
    from scipy.ndimage import convolve1d
    from scipy.signal.windows import hann

    w = hann(2 * half + 1)
    w = w / w.sum()
    if np.iscomplexobj(x):
        return convolve1d(x.real, w, mode="mirror") + 1j * convolve1d(x.imag, w, mode="mirror")
    return convolve1d(x, w, mode="mirror")


def mwcs(reference: np.ndarray, current: np.ndarray, rate: float, *, freqmin: float, freqmax: float,
         window_s: float, step_s: float, tmin: float, smoothing_half_win: int = 5) -> MWCS:
    """Delays of ``current`` against ``reference`` in windows of ``window_s`` every ``step_s``.

    ``tmin``: lag of the first sample (e.g. ``-max_lag``), which dates the windows.  Each
    window is detrended and tapered (cosine, 85 %), zero-padded to four times the next
    power of two, and its spectra smoothed over ``2 smoothing_half_win + 1`` bins (Hann).
    """
    from obspy.signal.invsim import cosine_taper

    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError("reference and current must be 1-D and of one length")
    wlen = int(window_s * rate)
    step = int(step_s * rate)
    if wlen < 4 or step < 1 or wlen > len(cur):
        raise ValueError("the MWCS window must hold at least 4 samples and fit in the correlation")
    padd = int(2 ** (np.ceil(np.log2(wlen)) + 2))
    taper = cosine_taper(wlen, 0.85)
    freqs = np.arange(padd // 2) * rate / padd
    band = (freqs >= freqmin) & (freqs <= freqmax)
    if band.sum() < 2:
        raise ValueError("fewer than two frequencies in the MWCS band: widen it or lengthen the window")
    v = 2 * np.pi * freqs[band]
    times, dts, errs, cohs = [], [], [], []
    from scipy.signal import detrend

    for k, start in enumerate(range(0, len(cur) - wlen + 1, step)):
        fcur = np.fft.fft(detrend(cur[start:start + wlen]) * taper, padd)[:padd // 2]
        fref = np.fft.fft(detrend(ref[start:start + wlen]) * taper, padd)[:padd // 2]
        cross = fref * fcur.conj()
        pcur, pref = np.abs(fcur) ** 2, np.abs(fref) ** 2
        if smoothing_half_win:
            cross = _smooth(cross, smoothing_half_win)
            pcur, pref = _smooth(pcur, smoothing_half_win), _smooth(pref, smoothing_half_win)
        dcur, dref, dcs = np.sqrt(pcur), np.sqrt(pref), np.abs(cross)
        coh = np.zeros_like(dcs)
        ok = (dref > 0) & (dcur > 0)
        coh[ok] = np.minimum(dcs[ok] / (dref[ok] * dcur[ok]), 1.0)
        c = coh[band]
        with np.errstate(divide="ignore"):
            w = 1.0 / (1.0 / c ** 2 - 1.0)
        w[c >= 0.99] = 1.0 / (1.0 / 0.9801 - 1.0)
        w = np.sqrt(w * np.sqrt(dcs[band]))
        phase = np.angle(cross)
        phase[0] = 0.0
        phi = np.unwrap(phase)[band]
        m = float(np.sum(w ** 2 * v * phi) / np.sum(w ** 2 * v ** 2))    # weighted LS through the origin
        misfit = np.sum((phi - m * v) ** 2) / (len(v) - 1)
        err = float(np.sqrt(misfit * np.sum(v ** 2 * w ** 2) / np.sum(w * v ** 2) ** 2))
        times.append(tmin + window_s / 2.0 + k * step_s)
        dts.append(m)
        errs.append(err)
        cohs.append(float(c.mean()))
    return MWCS(np.array(times), np.array(dts), np.array(errs), np.array(cohs))


def mwcs_dvv(result: MWCS, *, tmin: float, tmax: float, sides: str = "both", min_coherence: float = 0.65,
             max_error: float = 0.1, max_dt: float = 0.1) -> Stretch:
    """``dv/v`` from MWCS delays: ``-slope`` of ``dt`` against lag through the origin, over the
    windows centred in the lag window that pass the thresholds (weights ``1 / error``); the
    error is the slope's standard error.  ``cc`` is the mean coherence of those windows."""
    sel = lag_window(result.time, tmin, tmax, sides)
    sel &= (result.coherence >= min_coherence) & (result.error <= max_error) & (np.abs(result.dt) <= max_dt)
    if sel.sum() < 2:
        raise ValueError(f"only {int(sel.sum())} MWCS windows pass the lag window and thresholds (2 needed)")
    t, dt = result.time[sel], result.dt[sel]
    with np.errstate(divide="ignore"):
        w = 1.0 / result.error[sel]
    w[~np.isfinite(w)] = 1.0
    w2 = w ** 2                                   # 1 / sigma^2 with sigma = error
    slope = float(np.sum(w2 * t * dt) / np.sum(w2 * t ** 2))
    chi2 = float(np.sum(w2 * (dt - slope * t) ** 2))
    err = float(np.sqrt(chi2 / (len(t) - 1) / np.sum(w2 * t ** 2))) if len(t) > 1 else float("nan")
    return Stretch(-slope, err, float(result.coherence[sel].mean()))


def moving_stacks(rows: np.ndarray, weights: np.ndarray | None = None, days: int = 1) -> np.ndarray:
    """Moving-window stacks: row ``k`` is the weighted mean of rows ``k - days + 1 .. k``
    (fewer at the start); rows with zero weight (no windows kept) count for nothing."""
    rows = np.asarray(rows, dtype=np.float64)
    weights = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=np.float64)
    if days < 1:
        raise ValueError("a moving stack spans at least one day")
    weights = np.where(np.isfinite(rows).all(axis=1), weights, 0.0)
    clean = np.where(weights[:, None] > 0, np.nan_to_num(rows), 0.0)
    csum = np.cumsum(np.vstack([np.zeros(rows.shape[1]), clean * weights[:, None]]), axis=0)
    wsum = np.cumsum(np.concatenate([[0.0], weights]))
    lo = np.maximum(np.arange(len(rows)) - days + 1, 0)
    hi = np.arange(len(rows)) + 1
    total = (wsum[hi] - wsum[lo])[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (csum[hi] - csum[lo]) / total, np.nan)


def upsampled(x: np.ndarray, factor: int) -> np.ndarray:
    """``x`` at ``factor`` times its rate (Fourier interpolation: exact for a band-limited
    correlation that is ~0 at its ends), so a spline stretch of it stays exact near Nyquist."""
    from scipy.signal import resample

    if factor <= 1:
        return np.asarray(x, dtype=np.float64)
    n = len(x)
    return resample(x, (n - 1) * factor + 1)


def dvv_series(rows: np.ndarray, weights: np.ndarray, lags: np.ndarray, reference: np.ndarray, *,
               tmin: float, tmax: float, sides: str = "both", freqmin: float, freqmax: float, moving: int = 1,
               methods: tuple[str, ...] = ("stretching", "mwcs"), max_dvv: float = 0.02,
               mwcs_window_s: float | None = None, mwcs_step_s: float | None = None) -> dict[str, np.ndarray]:
    """dv/v of each date of one pair against the stack of the ``reference`` dates.

    ``rows``: ``(n_dates, n_lag)`` daily correlations; ``weights``: their windows kept (a
    day with none is skipped); ``reference``: boolean over dates.  Each date's current is the
    weighted stack of the ``moving`` days ending on it.  Returns arrays over dates:
    ``<method>`` (dv/v), ``<method>_error``, ``<method>_cc`` (coefficient or coherence);
    NaN where a date has no data or the measurement fails.
    """
    rows = np.asarray(rows, dtype=np.float64)
    lags = np.asarray(lags, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    ref = moving_stacks(rows[reference], weights[reference], days=max(1, int(reference.sum())))[-1]
    current = moving_stacks(rows, weights, days=moving)
    rate = 1.0 / (lags[1] - lags[0])
    factor = max(1, int(np.ceil(8 * freqmax / rate)))
    fine = np.arange((len(lags) - 1) * factor + 1) / (rate * factor) + lags[0]
    out = {f"{m}{s}": np.full(len(rows), np.nan) for m in methods for s in ("", "_error", "_cc")}
    if not np.isfinite(ref).all():
        return out
    ref_fine = upsampled(ref, factor)
    for k, cur in enumerate(current):
        if not np.isfinite(cur).all() or not weights[max(0, k - moving + 1):k + 1].sum():
            continue
        for method in methods:
            try:
                if method == "stretching":
                    got = stretching(ref_fine, upsampled(cur, factor), fine, tmin=tmin, tmax=tmax, sides=sides,
                                     max_dvv=max_dvv, freqmin=freqmin, freqmax=freqmax)
                elif method == "mwcs":
                    window = mwcs_window_s or MWCS_WINDOW_S
                    delays = mwcs(ref, cur, rate, freqmin=freqmin, freqmax=freqmax, window_s=window,
                                  step_s=mwcs_step_s or MWCS_STEP_S * window / MWCS_WINDOW_S, tmin=float(lags[0]))
                    got = mwcs_dvv(delays, tmin=tmin, tmax=tmax, sides=sides)
                else:
                    raise ValueError(f"unknown dv/v method {method!r} (stretching or mwcs)")
            except ValueError as exc:
                if "unknown" in str(exc):
                    raise
                continue
            out[method][k], out[f"{method}_error"][k], out[f"{method}_cc"][k] = got.dvv, got.error, got.cc
    return out


def network_average(values: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per date (columns), the mean over pairs (rows) weighted by ``1 / error^2`` (plain mean
    where errors are unknown) and its standard error; NaN where no pair has a value."""
    values, errors = np.atleast_2d(values), np.atleast_2d(errors)
    ok = np.isfinite(values)
    known = ok & np.isfinite(errors) & (errors > 0)
    w = np.where(known, 1.0 / np.where(known, errors, 1.0) ** 2, 0.0)
    plain = ok.any(axis=0) & ~known.any(axis=0)
    w = np.where(plain[None, :] & ok, 1.0, w)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(total > 0, (np.where(ok, values, 0.0) * w).sum(axis=0) / total, np.nan)
        err = np.where(total > 0, np.sqrt(1.0 / total), np.nan)
        n = ok.sum(axis=0)
        centred = np.where(ok, values - np.where(n > 0, np.where(ok, values, 0.0).sum(axis=0) / np.maximum(n, 1), 0), 0)
        spread = np.where(n > 1, np.sqrt((centred ** 2).sum(axis=0) / np.maximum(n, 1)) / np.sqrt(np.maximum(n - 1, 1)),
                          np.nan)
    return mean, np.where(plain, spread, err)
