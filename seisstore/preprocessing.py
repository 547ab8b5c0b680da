"""The preprocessing chain applied once per station-day, before any correlation.

A chain is data: a list of steps, each ``{"op": name, ...parameters}``, applied in
order to one day's samples (numpy/scipy, no ObsPy processing state)::

    [{"op": "detrend"}, {"op": "taper", "fraction": 0.01},
     {"op": "bandpass", "freqmin": 0.05, "freqmax": 2.0},
     {"op": "resample", "rate": 5.0},
     {"op": "ram", "window_s": 20.0},            # or {"op": "onebit"} or {"op": "clip", "factor": 3}
     {"op": "whiten", "freqmin": 0.05, "freqmax": 2.0}]

:func:`chain_text` is its canonical JSON, stored in the ``chain`` AVU of every processed
day file and in the correlation bundles, so a result names exactly how its inputs were
made.  :func:`process_day` gives a trace of the whole UTC day: gaps and missing ends are
zeros (after the chain), sample 0 at midnight (to the nearest sample of the trace).
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["DEFAULT_CHAIN", "OPS", "apply_chain", "chain_text", "check_chain", "process_day"]

DEFAULT_CHAIN: list[dict[str, Any]] = [
    {"op": "detrend"},
    {"op": "taper", "fraction": 0.01},
    {"op": "bandpass", "freqmin": 0.05, "freqmax": 2.0},
    {"op": "resample", "rate": 5.0},
    {"op": "onebit"},
    {"op": "whiten", "freqmin": 0.05, "freqmax": 2.0},
]


def _detrend(x, rate, kind="linear"):
    from scipy.signal import detrend

    return detrend(x, type="linear" if kind == "linear" else "constant"), rate


def _demean(x, rate):
    return x - x.mean(), rate


def _taper(x, rate, fraction=0.05):
    from scipy.signal.windows import tukey

    return x * tukey(len(x), min(1.0, 2 * fraction)), rate


def _bandpass(x, rate, freqmin, freqmax, corners=4):
    from scipy.signal import butter, sosfiltfilt

    nyq = rate / 2.0
    if not 0 < freqmin < freqmax:
        raise ValueError("bandpass needs 0 < freqmin < freqmax")
    if freqmax >= nyq:
        sos = butter(corners, freqmin / nyq, btype="highpass", output="sos")
    else:
        sos = butter(corners, [freqmin / nyq, freqmax / nyq], btype="bandpass", output="sos")
    return sosfiltfilt(sos, x), rate


def _resample(x, fs, rate):
    """Decimate or resample from ``fs`` to ``rate`` (polyphase filter, anti-aliased)."""
    from scipy.signal import resample_poly

    target = float(rate)
    if target == fs:
        return x, fs
    ratio = Fraction(target / fs).limit_denominator(1000)
    if abs(float(ratio) * fs - target) > 1e-9 * target:
        raise ValueError(f"cannot resample {fs} Hz to {target} Hz with a rational ratio")
    return resample_poly(x, ratio.numerator, ratio.denominator), target


def _onebit(x, rate):
    return np.sign(x), rate


def _ram(x, rate, window_s=20.0, freqmin=None, freqmax=None):
    """Running absolute mean: divide by the mean of |x| over ``window_s`` (optionally of a band-passed copy)."""
    from scipy.ndimage import uniform_filter1d

    ref = _bandpass(x, rate, freqmin, freqmax)[0] if freqmin and freqmax else x
    n = max(1, int(round(window_s * rate)))
    weight = uniform_filter1d(np.abs(ref), n, mode="nearest")
    out = np.zeros_like(x)
    ok = weight > 0
    out[ok] = x[ok] / weight[ok]
    return out, rate


def _clip(x, rate, factor=3.0):
    limit = factor * np.std(x)
    return np.clip(x, -limit, limit), rate


def _whiten(x, rate, freqmin, freqmax, smooth_hz=0.0, taper_hz=None):
    """Spectral whitening: unit amplitude (or amplitude over a running mean of ``smooth_hz``)
    within ``[freqmin, freqmax]``, cosine tapers of ``taper_hz`` outside, zero elsewhere."""
    from scipy import fft

    n = len(x)
    nfft = fft.next_fast_len(n, real=True)
    spec = fft.rfft(x, n=nfft)
    freqs = np.fft.rfftfreq(nfft, 1.0 / rate)
    amp = np.abs(spec)
    if smooth_hz:
        from scipy.ndimage import uniform_filter1d

        amp = uniform_filter1d(amp, max(1, int(round(smooth_hz / (freqs[1] - freqs[0])))), mode="nearest")
    taper_hz = taper_hz if taper_hz is not None else 0.1 * (freqmax - freqmin)
    gain = np.zeros_like(freqs)
    gain[(freqs >= freqmin) & (freqs <= freqmax)] = 1.0
    if taper_hz > 0:
        lo = (freqs >= freqmin - taper_hz) & (freqs < freqmin)
        gain[lo] = 0.5 * (1 - np.cos(np.pi * (freqs[lo] - (freqmin - taper_hz)) / taper_hz))
        hi = (freqs > freqmax) & (freqs <= freqmax + taper_hz)
        gain[hi] = 0.5 * (1 + np.cos(np.pi * (freqs[hi] - freqmax) / taper_hz))
    with np.errstate(divide="ignore", invalid="ignore"):
        white = np.where(amp > 0, spec / amp, 0) * gain
    return fft.irfft(white, n=nfft)[:n], rate


OPS = {"detrend": _detrend, "demean": _demean, "taper": _taper, "bandpass": _bandpass, "resample": _resample,
       "decimate": _resample, "onebit": _onebit, "ram": _ram, "clip": _clip, "whiten": _whiten}


def check_chain(chain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chain as plain dicts; ``ValueError`` naming an unknown step or a bad one."""
    if not isinstance(chain, list):
        raise ValueError("a chain is a list of steps")
    out = []
    for k, step in enumerate(chain):
        if not isinstance(step, dict) or step.get("op") not in OPS:
            raise ValueError(f"chain step {k}: {step!r} is not one of {sorted(OPS)}")
        out.append(dict(step))
    return out


def chain_text(chain: list[dict[str, Any]]) -> str:
    """Canonical JSON of a chain (sorted keys, no spaces): the ``chain`` AVU."""
    return json.dumps(check_chain(chain), sort_keys=True, separators=(",", ":"))


def apply_chain(x: np.ndarray, rate: float, chain: list[dict[str, Any]]) -> tuple[np.ndarray, float]:
    """``(samples, sampling rate)`` after every step of ``chain``."""
    x = np.asarray(x, dtype=np.float64)
    for step in check_chain(chain):
        params = {k: v for k, v in step.items() if k != "op"}
        try:
            x, rate = OPS[step["op"]](x, rate, **params)
        except TypeError as exc:
            raise ValueError(f"chain step {step!r}: {exc}") from None
    return x, rate


def process_day(stream, day, chain: list[dict[str, Any]]):
    """One ObsPy Trace (float32) of the whole UTC ``day``: merged (gaps as zeros), processed, padded."""
    from obspy import UTCDateTime

    st = stream.copy()
    st.merge(method=0, fill_value=0)
    if len(st) != 1:
        raise ValueError(f"{len(st)} channels in one day file; select one")
    tr = st[0]
    data, rate = apply_chain(tr.data, float(tr.stats.sampling_rate), chain)
    tr.data = data.astype(np.float32)
    tr.stats.sampling_rate = rate
    start = UTCDateTime(day.isoformat())
    tr.trim(start, start + 86400 - 1.0 / rate, pad=True, fill_value=0, nearest_sample=True)
    tr.data = np.require(tr.data, dtype=np.float32)
    return tr
