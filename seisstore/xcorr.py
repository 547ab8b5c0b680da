"""The correlation kernel: every pair of a day's traces, stacked in the frequency domain.

For one day of ``n`` preprocessed traces (same sampling rate, sample 0 at midnight) and
``p`` station pairs ``(i, j)``:

1. the day is cut into windows (``window_s``, step ``step_s``); a window of a trace is
   kept when at least ``min_data_fraction`` of its samples are data (``mask``, from
   :func:`seisstore.preprocessing.process_day`; default 0.9), and each kept window is
   demeaned and detrended over its data samples, zeroed elsewhere, and tapered
   (``taper``: Tukey, that fraction at each end, default 0.04 as MSNoise's);
2. each window of each trace is Fourier-transformed once (``scipy.fft.rfft``, length
   ``next_fast_len(window + max_lag)`` so that lags up to ``max_lag`` do not wrap, with
   ``workers``) -- ``n`` transforms per window, not ``2 p``; a rejected window's
   transform is zero;
3. the cross-spectra of every pair, summed over the windows of a substack, come from one
   batched complex matrix product per block of frequencies:
   ``S[f] = F[f]^H F[f]`` (stations x windows times windows x stations; BLAS), of
   which the pairs' entries are kept -- a linear stack is linear, so it is done before
   the inverse transform; the windows both traces kept are counted the same way
   (``K^T K`` of the 0/1 keep matrix);
4. one ``irfft`` per pair and substack (not per window), cut to ``-max_lag..+max_lag``,
   divided by that pair's count of windows (``n_windows``; a pair with none is zeros).

Sign convention: ``cc[k] = mean over windows of sum_t a(t) b(t + lag_k)`` for the pair
``(a, b)``: if ``b`` records ``a``'s noise delayed by ``L`` seconds, ``cc`` peaks at
``+L`` (a wave travelling from the first station to the second arrives at positive lags).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["lag_axis", "correlate_day", "stack", "Stacker", "FREQ_BLOCK"]

#: Frequencies per batched matrix product (bounds the memory of one Gram block).
FREQ_BLOCK = 2048


def lag_axis(rate: float, max_lag_s: float) -> np.ndarray:
    """Lags in seconds of a correlation cut to +/- ``max_lag_s``."""
    m = int(round(max_lag_s * rate))
    return np.arange(-m, m + 1) / float(rate)


def _windows(npts: int, wlen: int, step: int) -> np.ndarray:
    if npts < wlen:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, npts - wlen + 1, step, dtype=np.int64)


def _prepare(segs: np.ndarray, keep: np.ndarray, masks: np.ndarray | None, taper: float) -> None:
    """Windows ``(w, n, wlen)``, in place: demeaned and detrended over their data samples,
    zeroed elsewhere and where not kept, then tapered (one window at a time: memory)."""
    from scipy.signal.windows import tukey

    wlen = segs.shape[-1]
    t = np.linspace(-1.0, 1.0, wlen, dtype=np.float32)
    window = tukey(wlen, min(1.0, 2 * taper)).astype(np.float32) if taper > 0 else np.ones(wlen, np.float32)
    for k in range(segs.shape[0]):
        x = segs[k]
        w = np.ones(x.shape, np.float32) if masks is None else masks[k].astype(np.float32)
        count = np.maximum(w.sum(axis=-1, keepdims=True), 1.0)
        mean = (x * w).sum(axis=-1, keepdims=True) / count
        tm = (t * w).sum(axis=-1, keepdims=True) / count
        var = ((t - tm) ** 2 * w).sum(axis=-1, keepdims=True)
        slope = ((t - tm) * (x - mean) * w).sum(axis=-1, keepdims=True) / np.maximum(var, 1e-30)
        segs[k] = (x - mean - slope * (t - tm)) * w * keep[k][:, None] * window


def correlate_day(data: np.ndarray, rate: float, pairs: Sequence[tuple[int, int]], *, window_s: float = 3600.0,
                  step_s: float | None = None, max_lag_s: float = 200.0, substack_s: float | None = None,
                  workers: int | None = None, mask: np.ndarray | None = None, min_data_fraction: float = 0.9,
                  taper: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Correlations of ``pairs`` (row indices of ``data``) over one day; see the module docstring.

    ``data``: ``(n_traces, npts)``, sample 0 at the start of the day; ``mask``: same shape,
    True where a sample is data (default: all of them).  ``substack_s``: length of a
    substack (``None``: the whole day is one).  Returns ``cc`` of shape
    ``(n_pairs, n_substacks, 2 * max_lag + 1)`` (float32) and ``n_windows`` of shape
    ``(n_pairs, n_substacks)``: the windows both traces of the pair kept.
    """
    from scipy import fft

    data = np.asarray(data, dtype=np.float32)
    n_traces, npts = data.shape
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != data.shape:
            raise ValueError(f"mask shape {mask.shape} is not the data's {data.shape}")
    workers = workers or os.cpu_count() or 1
    wlen = int(round(window_s * rate))
    step = int(round((step_s or window_s) * rate))
    maxlag = int(round(max_lag_s * rate))
    if wlen < 1 or step < 1 or maxlag < 0 or maxlag >= wlen:
        raise ValueError("need 0 <= max_lag < window and a positive window and step")
    if not 0 <= min_data_fraction <= 1 or not 0 <= taper <= 0.5:
        raise ValueError("need 0 <= min_data_fraction <= 1 and 0 <= taper <= 0.5")
    nfft = fft.next_fast_len(wlen + maxlag, real=True)
    starts = _windows(npts, wlen, step)
    sublen = int(round(substack_s * rate)) if substack_s else max(npts, 1)
    n_sub = max(1, -(-npts // sublen))
    which = starts // sublen
    pi = np.array([p[0] for p in pairs], dtype=np.int64)
    pj = np.array([p[1] for p in pairs], dtype=np.int64)
    used = np.unique(np.concatenate([pi, pj])) if len(pi) else np.zeros(0, dtype=np.int64)
    pos = {int(s): k for k, s in enumerate(used)}
    ri = np.array([pos[int(i)] for i in pi], dtype=np.int64)
    rj = np.array([pos[int(j)] for j in pj], dtype=np.int64)
    nfreq = nfft // 2 + 1
    out = np.zeros((len(pi), n_sub, 2 * maxlag + 1), dtype=np.float32)
    counts = np.zeros((len(pi), n_sub), dtype=np.int64)
    if not len(pi):
        return out, counts
    for s in range(n_sub):
        mine = starts[which == s]
        if not len(mine):
            continue
        segs = np.stack([data[used, a:a + wlen] for a in mine])            # (w, n, wlen)
        masks = None if mask is None else np.stack([mask[used, a:a + wlen] for a in mine])
        keep = np.ones(segs.shape[:2], dtype=bool) if masks is None else masks.mean(axis=-1) >= min_data_fraction
        both = keep.T.astype(np.int64) @ keep.astype(np.int64)            # (n, n): windows both kept
        counts[:, s] = both[ri, rj]
        if not counts[:, s].any():
            continue
        _prepare(segs, keep, masks, taper)
        spec = fft.rfft(segs, n=nfft, axis=-1, workers=workers)            # (w, n, nfreq) complex64
        del segs, masks
        cross = np.empty((len(pi), nfreq), dtype=np.complex64)
        for f0 in range(0, nfreq, FREQ_BLOCK):
            block = np.ascontiguousarray(spec[:, :, f0:f0 + FREQ_BLOCK].transpose(2, 1, 0))  # (f, n, w)
            gram = np.matmul(block.conj(), block.transpose(0, 2, 1))       # (f, n, n): sum_w conj(Fi) Fj
            cross[:, f0:f0 + FREQ_BLOCK] = gram[:, ri, rj].T
        del spec
        for p0 in range(0, len(pi), 256):
            cc = fft.irfft(cross[p0:p0 + 256], n=nfft, axis=-1, workers=workers)
            out[p0:p0 + 256, s, :maxlag] = cc[:, nfft - maxlag:]
            out[p0:p0 + 256, s, maxlag:] = cc[:, :maxlag + 1]
        out[:, s] /= np.maximum(counts[:, s], 1)[:, None]
    return out, counts


class Stacker:
    """A running stack: rows are added as they are read.

    ``linear``: the mean, each row weighted by ``weights`` (e.g. its ``n_windows``: a day
    that kept 6 windows counts a quarter of one that kept 24).  ``pws``: the phase-weighted
    stack (Schimmel and Paulssen 1997), the mean times ``|mean of the unit phasors of the
    rows' analytic signals| ** power``.  ``nroot``: the n-th root stack (``power`` = n,
    Muirhead 1968), ``sign(s) |s| ** n`` of the mean ``s`` of ``sign(x) |x| ** (1 / n)``.
    These three are sums, memory one row's worth.  ``robust``: Pavlis and Vernon (2010),
    rows weighted by their fit to the stack, iterated to convergence; it keeps the rows.
    Rows with NaNs, or weight 0, are skipped.
    """

    METHODS = ("linear", "pws", "nroot", "robust")

    def __init__(self, method: str = "linear", power: float = 2.0) -> None:
        if method not in self.METHODS:
            raise ValueError(f"unknown stack method {method!r} ({', '.join(self.METHODS)})")
        self.method, self.power = method, power
        self.count = 0
        self.weight = 0.0
        self._sum: np.ndarray | None = None
        self._phase: np.ndarray | None = None
        self._rows: list[np.ndarray] = []

    def add(self, rows: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add ``(n, n_lag)`` rows (or one 1-D row), with a weight each (default 1)."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        w = np.ones(len(rows)) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64),
                                                                        (len(rows),))
        ok = np.isfinite(rows).all(axis=1) & (w > 0)
        rows, w = rows[ok], w[ok]
        if not len(rows):
            return
        if self._sum is None:
            self._sum = np.zeros(rows.shape[1])
            if self.method == "pws":
                self._phase = np.zeros(rows.shape[1], dtype=np.complex128)
        if self.method == "nroot":
            self._sum += (w[:, None] * np.sign(rows) * np.abs(rows) ** (1.0 / self.power)).sum(axis=0)
        else:
            self._sum += (w[:, None] * rows).sum(axis=0)
        if self._phase is not None:
            from scipy.signal import hilbert

            analytic = hilbert(rows, axis=1)
            self._phase += (w[:, None] * analytic / np.maximum(np.abs(analytic), 1e-30)).sum(axis=0)
        if self.method == "robust":
            self._rows.extend(rows * w[:, None] / w.mean())
        self.count += len(rows)
        self.weight += float(w.sum())

    def result(self) -> np.ndarray:
        if not self.count:
            raise ValueError("nothing to stack")
        mean = self._sum / self.weight
        if self.method == "nroot":
            return np.sign(mean) * np.abs(mean) ** self.power
        if self.method == "robust":
            return _robust(np.array(self._rows), np.asarray(mean))
        if self._phase is None:
            return mean
        return mean * np.abs(self._phase / self.weight) ** self.power


def _robust(rows: np.ndarray, start: np.ndarray, tol: float = 1e-6, max_iter: int = 50) -> np.ndarray:
    """Pavlis and Vernon (2010): weight each row by ``|<row, s>| / (|row| |row - <row, s> s|)``
    with ``s`` the unit stack, restack, until the stack stops changing."""
    stack = start
    for _ in range(max_iter):
        unit = stack / (np.linalg.norm(stack) or 1.0)
        proj = rows @ unit
        resid = np.linalg.norm(rows - proj[:, None] * unit, axis=1)
        w = np.abs(proj) / np.maximum(np.linalg.norm(rows, axis=1) * resid, 1e-30)
        new = (w[:, None] * rows).sum(axis=0) / w.sum()
        if np.linalg.norm(new - stack) <= tol * (np.linalg.norm(stack) or 1.0):
            return new
        stack = new
    return stack


def stack(rows: np.ndarray, method: str = "linear", power: float = 2.0) -> np.ndarray:
    """Stack correlations ``(n, n_lag)`` over their first axis (see :class:`Stacker`)."""
    stacker = Stacker(method, power)
    stacker.add(rows)
    return stacker.result()
