"""The preprocessing chain applied once per station-day, before any correlation.

A chain is data: a list of steps, each ``{"op": name, ...parameters}``, applied in
order to each continuous segment of one day (numpy/scipy, no ObsPy processing state)::

    [{"op": "detrend"}, {"op": "taper", "fraction": 0.01},
     {"op": "bandpass", "freqmin": 0.05, "freqmax": 2.0},
     {"op": "resample", "rate": 5.0},
     {"op": "qc", "max_over_std": 10.0, "pad_s": 60.0},   # transients become gaps (see below)
     {"op": "onebit"},                           # or {"op": "ram", "window_s": 20} or {"op": "clip", "factor": 3}
     {"op": "whiten", "freqmin": 0.05, "freqmax": 2.0, "outer": [0.025, 2.5]}]

:func:`chain_text` is its canonical JSON, stored in the ``chain`` AVU of every processed
day file and in the correlation bundles, so a result names exactly how its inputs were
made.

:func:`process_day` does what NoisePy's ``preprocess_raw`` and MSNoise's preprocessing
do before them (see ``docs/processing.md`` for every default and the differences):

1. non-finite samples (NaN, inf) are cut out and counted: they become gaps;
2. the day is split into its continuous segments (gaps and overlaps end a segment);
   segments shorter than :data:`MIN_SEGMENT_S` are dropped;
3. each segment is moved onto the output sampling grid of the day (sub-sample start
   times, e.g. a day starting at 00:00:00.09, are shifted by a phase ramp in the
   frequency domain, as MSNoise's ``check_and_phase_shift`` does);
4. the chain runs on each segment alone, so filters, normalisation and whitening never
   see a gap; a ``qc`` step flags samples above ``max_over_std`` robust standard
   deviations (1.4826 MAD of the segment) and ``pad_s`` around them, and the rest of the
   chain runs on the unflagged pieces only;
5. the segments are placed on the day grid: zeros where there is no data, and a
   per-sample data mask that :func:`seisstore.xcorr.correlate_day` uses to reject windows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = ["DEFAULT_CHAIN", "MIN_SEGMENT_S", "OPS", "ProcessedDay", "apply_chain", "chain_text", "check_chain",
           "day_grid", "output_rate", "process_day"]

DEFAULT_CHAIN: list[dict[str, Any]] = [
    {"op": "detrend"},
    {"op": "taper", "fraction": 0.01},
    {"op": "bandpass", "freqmin": 0.05, "freqmax": 2.0},
    {"op": "resample", "rate": 5.0},
    {"op": "qc", "max_over_std": 10.0, "pad_s": 60.0},
    {"op": "onebit"},
    {"op": "whiten", "freqmin": 0.05, "freqmax": 2.0, "outer": [0.025, 2.5]},
]

#: Segments shorter than this (seconds) are dropped: a filter's edge effects would fill them.
MIN_SEGMENT_S = 60.0


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


def _whiten(x, rate, freqmin, freqmax, outer=None, smooth_hz=0.0):
    """Spectral whitening: unit amplitude (or amplitude over a running mean of ``smooth_hz``)
    in ``[freqmin, freqmax]``, cosine tapers down to zero at the ``outer`` band's edges
    (default: an octave below ``freqmin``, a quarter above ``freqmax`` or Nyquist), zero
    outside it, so nothing below ``outer[0]`` passes however weak it was before."""
    from scipy import fft

    nyq = rate / 2.0
    lo, hi = outer if outer is not None else (freqmin / 2.0, min(nyq, 1.25 * freqmax))
    if not 0 <= lo <= freqmin < freqmax <= hi:
        raise ValueError(f"whiten needs 0 <= outer[0] <= freqmin < freqmax <= outer[1], got {[lo, hi]}")
    n = len(x)
    spec = fft.rfft(x)                      # exact length: no padding to cut off afterwards (no leak)
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    amp = np.abs(spec)
    if smooth_hz and n > 1:
        from scipy.ndimage import uniform_filter1d

        amp = uniform_filter1d(amp, max(1, int(round(smooth_hz / (freqs[1] - freqs[0])))), mode="nearest")
    gain = np.zeros_like(freqs)
    gain[(freqs >= freqmin) & (freqs <= freqmax)] = 1.0
    up = (freqs > lo) & (freqs < freqmin)
    gain[up] = 0.5 * (1 - np.cos(np.pi * (freqs[up] - lo) / (freqmin - lo)))
    down = (freqs > freqmax) & (freqs < hi)
    gain[down] = 0.5 * (1 + np.cos(np.pi * (freqs[down] - freqmax) / (hi - freqmax)))
    with np.errstate(divide="ignore", invalid="ignore"):
        white = np.where(amp > 0, spec / amp, 0) * gain
    return fft.irfft(white, n=n), rate


def _qc(x, rate, max_over_std=10.0, pad_s=60.0):
    """Samples of a transient: ``|x|`` above ``max_over_std`` robust standard deviations
    (1.4826 x the median absolute deviation, which the transient itself hardly moves),
    widened by ``pad_s`` on each side.  Returns a boolean array (True: flagged)."""
    from scipy.ndimage import binary_dilation

    sigma = 1.4826 * np.median(np.abs(x - np.median(x))) if len(x) else 0.0
    if not sigma > 0:
        return np.zeros(len(x), dtype=bool)
    hot = np.abs(x - np.median(x)) > max_over_std * sigma
    pad = int(round(pad_s * rate))
    if hot.any() and pad:
        hot = binary_dilation(hot, structure=np.ones(2 * pad + 1, dtype=bool))
    return hot


OPS = {"detrend": _detrend, "demean": _demean, "taper": _taper, "bandpass": _bandpass, "resample": _resample,
       "decimate": _resample, "onebit": _onebit, "ram": _ram, "clip": _clip, "whiten": _whiten, "qc": _qc}


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


def output_rate(chain: list[dict[str, Any]], rate: float) -> float:
    """The sampling rate after ``chain`` of data sampled at ``rate``."""
    for step in check_chain(chain):
        if step["op"] in ("resample", "decimate"):
            rate = float(step["rate"])
    return float(rate)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of the runs of False in ``flags``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[1], flags.astype(np.int8), [1]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _run(x: np.ndarray, rate: float, steps: list[dict[str, Any]]) -> tuple[np.ndarray, float, np.ndarray]:
    """``(samples, rate, mask)`` of one continuous segment after ``steps``; a ``qc`` step cuts
    the segment at its flagged samples and the steps after it run on each piece alone."""
    for k, step in enumerate(steps):
        params = {key: v for key, v in step.items() if key != "op"}
        try:
            if step["op"] == "qc":
                flags = _qc(x, rate, **params)
                if not flags.any():
                    continue
                out, mask = np.zeros(len(x)), np.zeros(len(x), dtype=bool)
                after = output_rate(steps[k + 1:], rate)
                if after != rate:
                    raise ValueError("a qc step must come after the last resample")
                for a, b in _runs(flags):
                    if b - a >= MIN_SEGMENT_S * rate:
                        out[a:b], _, mask[a:b] = _run(x[a:b], rate, steps[k + 1:])
                return out, rate, mask
            x, rate = OPS[step["op"]](x, rate, **params)
        except TypeError as exc:
            raise ValueError(f"chain step {step!r}: {exc}") from None
    return x, rate, np.ones(len(x), dtype=bool)


def apply_chain(x: np.ndarray, rate: float, chain: list[dict[str, Any]]) -> tuple[np.ndarray, float]:
    """``(samples, sampling rate)`` of one continuous segment after every step of ``chain``
    (samples a ``qc`` step flagged are zeros)."""
    y, rate, _ = _run(np.asarray(x, dtype=np.float64), rate, check_chain(chain))
    return y, rate


def _shift(x: np.ndarray, samples: float) -> np.ndarray:
    """``x`` resampled at ``n + samples`` (a fraction of a sample or a few), exactly for a
    band-limited signal: a phase ramp in the frequency domain, the linear trend put back."""
    from scipy import fft

    n = len(x)
    t = np.arange(n)
    slope, offset = np.polyfit(t, x, 1) if n > 1 else (0.0, float(x.mean()))
    rest = x - (slope * t + offset)
    nfft = fft.next_fast_len(n + 2 * int(np.ceil(abs(samples))) + 2, real=True)
    spec = fft.rfft(rest, nfft) * np.exp(2j * np.pi * np.fft.rfftfreq(nfft) * samples)
    return fft.irfft(spec, nfft)[:n] + slope * (t + samples) + offset


@dataclass
class ProcessedDay:
    """One channel-day after the chain, on the day's grid.

    ``trace``: float32 ObsPy Trace of the whole UTC day (sample 0 at midnight), zeros
    where ``mask`` is False (no data: gaps, missing ends, non-finite input, transients).
    ``nonfinite``: input samples that were NaN or inf; ``transients``: output samples a
    ``qc`` step flagged; ``segments``: continuous input segments processed.
    """

    trace: Any
    mask: np.ndarray
    nonfinite: int = 0
    transients: int = 0
    segments: int = 0

    @property
    def data_fraction(self) -> float:
        return float(self.mask.mean()) if len(self.mask) else 0.0

    def stream(self):
        """The day as an ObsPy Stream of its data runs only: what is stored (miniSEED gaps)."""
        from obspy import Stream, Trace

        tr = self.trace
        out = Stream()
        for a, b in _runs(~self.mask):
            header = {k: tr.stats[k] for k in ("network", "station", "location", "channel", "sampling_rate")}
            piece = Trace(tr.data[a:b].copy(), header=header)
            piece.stats.starttime = tr.stats.starttime + a / tr.stats.sampling_rate
            out.append(piece)
        return out

    def qc_avus(self) -> dict[str, str]:
        """AVUs flagging what the day lost: ``qc.data_fraction``, ``qc.nonfinite``, ``qc.transients``."""
        return {"qc.data_fraction": f"{self.data_fraction:.6f}", "qc.nonfinite": str(self.nonfinite),
                "qc.transients": str(self.transients)}


def _segments(stream) -> tuple[list, int]:
    """Continuous, finite segments of ``stream`` (one channel) and the count of non-finite samples."""
    from obspy import Stream

    st = Stream()
    nonfinite = 0
    for tr in stream:
        data = np.asarray(tr.data, dtype=np.float64)
        bad = ~np.isfinite(data)
        nonfinite += int(bad.sum())
        tr = tr.copy()
        tr.data = np.ma.masked_array(data, mask=bad) if bad.any() else data
        st += tr.split() if bad.any() else tr
    if len({tr.id for tr in st}) > 1:
        raise ValueError(f"{len({tr.id for tr in st})} channels in one day file; select one")
    st.merge(method=0, fill_value=None)             # gaps and disagreeing overlaps: masked
    return list(st.split()), nonfinite


def process_day(stream, day, chain: list[dict[str, Any]]) -> ProcessedDay:
    """The whole UTC ``day`` of one channel after ``chain``; see the module docstring."""
    from obspy import Trace, UTCDateTime

    chain = check_chain(chain)
    start = UTCDateTime(day.isoformat())
    pieces, nonfinite = _segments(stream)
    if not pieces:
        raise ValueError("no data in the day file")
    fs = float(pieces[0].stats.sampling_rate)
    rate = output_rate(chain, fs)
    npts = int(round(86400 * rate))
    data, mask = np.zeros(npts), np.zeros(npts, dtype=bool)
    transients = used = 0
    for tr in pieces:
        if tr.stats.npts < MIN_SEGMENT_S * fs or abs(tr.stats.sampling_rate - fs) > 1e-9 * fs:
            continue
        offset = (tr.stats.starttime - start) * rate        # output samples after midnight
        first = int(round(offset))
        x = _shift(np.asarray(tr.data, dtype=np.float64), (first - offset) * fs / rate)
        y, _, ok = _run(x, fs, chain)
        transients += int((~ok).sum())
        lo, hi = max(0, first), min(npts, first + len(y))
        if hi > lo:
            data[lo:hi] = np.where(ok[lo - first:hi - first], y[lo - first:hi - first], 0.0)
            mask[lo:hi] = ok[lo - first:hi - first]
            used += 1
    header = {k: pieces[0].stats[k] for k in ("network", "station", "location", "channel")}
    header.update(sampling_rate=rate, starttime=start)
    trace = Trace(data.astype(np.float32), header=header)
    return ProcessedDay(trace, mask, nonfinite, transients, used)


def day_grid(stream, day, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """A processed day file read back: ``(samples float32, mask bool)`` on the day's grid at ``rate``.

    The stored file holds only the data runs (gaps are miniSEED gaps), so the mask is
    where a trace has samples; traces at another rate raise ``ValueError``.
    """
    from obspy import UTCDateTime

    start = UTCDateTime(day.isoformat())
    npts = int(round(86400 * rate))
    data, mask = np.zeros(npts, dtype=np.float32), np.zeros(npts, dtype=bool)
    for tr in stream:
        if abs(tr.stats.sampling_rate - rate) > 1e-9 * rate:
            raise ValueError(f"{tr.id}: {tr.stats.sampling_rate} Hz, expected {rate} Hz")
        first = int(round((tr.stats.starttime - start) * rate))
        values = np.asarray(tr.data, dtype=np.float32)
        ok = np.isfinite(values)
        lo, hi = max(0, first), min(npts, first + len(values))
        if hi > lo:
            data[lo:hi] = np.where(ok[lo - first:hi - first], values[lo - first:hi - first], 0)
            mask[lo:hi] = ok[lo - first:hi - first]
    return data, mask
