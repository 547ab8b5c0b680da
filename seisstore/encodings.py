"""Day-file encodings: every trace ObsPy reads is written back as miniSEED, losslessly.

ObsPy reads miniSEED in encodings it cannot write (SRO, DWWSSN, CDSN, the GEOSCOPE
family, ...) and other formats with no miniSEED encoding at all (SAC, GSE2, ...).  A day
file's encoding is chosen from the samples' dtype as ObsPy returns them, never from the
source encoding, and the dtype is kept:

============  ==========================================================================
dtype         day-file encoding
============  ==========================================================================
``int32``     ``STEIM2`` when every first difference (from 0) fits its 30 bits, else ``INT32``
``int16``     ``INT16``
``int8/int64``  cast to ``int32`` when every value fits (then as ``int32``), else refused
``float32``   ``FLOAT32``
``float64``   ``FLOAT64``
``|S1``       ``ASCII`` (log channels)
============  ==========================================================================

:func:`write_day` writes one day, reads the file back and compares every sample with
:func:`same_samples` (bit for bit, NaNs included); a ``STEIM2`` file that does not
read back exactly is rewritten as ``INT32``.  It returns the encodings used, which
:func:`seisstore.dayfiles.day_avus` records as the ``encoding`` AVU.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from obspy import Stream, Trace

__all__ = ["UnencodableError", "choose_encoding", "planned_encoding", "same_samples", "source_encoding", "write_day"]

log = logging.getLogger(__name__)

_STEIM2_MIN, _STEIM2_MAX = -(2 ** 29), 2 ** 29 - 1
_BY_DTYPE = {"int16": "INT16", "float32": "FLOAT32", "float64": "FLOAT64"}


class UnencodableError(ValueError):
    """Samples no miniSEED encoding holds losslessly (e.g. 64-bit integers beyond 32 bits)."""


def _native(data: np.ndarray) -> np.ndarray:
    return data if data.dtype.isnative or data.dtype.itemsize == 1 else data.astype(data.dtype.newbyteorder("="))


def choose_encoding(data: np.ndarray) -> tuple[np.ndarray, str]:
    """``(samples, encoding)``: the samples (cast only when lossless) and their day-file encoding."""
    data = _native(np.asarray(data))
    kind, name = data.dtype.kind, data.dtype.name
    if kind == "S" and data.dtype.itemsize == 1:
        return data, "ASCII"
    if name in _BY_DTYPE:
        return data, _BY_DTYPE[name]
    if kind in "iu" and name != "int32":
        if data.size and (data.min() < np.iinfo(np.int32).min or data.max() > np.iinfo(np.int32).max):
            raise UnencodableError(f"{name} samples beyond 32 bits")
        data = data.astype(np.int32)
        name = "int32"
    if name == "int32":
        if data.size == 0:
            return data, "STEIM2"
        diffs = np.diff(data.astype(np.int64), prepend=0)
        fits = diffs.min() >= _STEIM2_MIN and diffs.max() <= _STEIM2_MAX
        return data, "STEIM2" if fits else "INT32"
    raise UnencodableError(f"no lossless miniSEED encoding for {data.dtype} samples")


def planned_encoding(stream: "Stream") -> str:
    """The encodings :func:`write_day` would choose for ``stream`` (it may still fall back to ``INT32``)."""
    return ",".join(sorted({choose_encoding(tr.data)[1] for tr in stream}))


def source_encoding(trace: "Trace") -> str:
    """How a trace came: its miniSEED encoding (``SRO``, ``STEIM1``...) or its format (``SAC``)."""
    stats = trace.stats
    if "mseed" in stats and stats.mseed.get("encoding"):
        return str(stats.mseed.encoding)
    return str(stats.get("_format") or "unknown")


def same_samples(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype and the same bits, whatever the byte order (NaN equals NaN)."""
    a, b = _native(np.asarray(a)), _native(np.asarray(b))
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _prepared(stream, fallback: bool):
    from obspy import Stream, Trace
    from obspy.core.util import AttribDict

    out = Stream()
    for tr in stream:
        data, encoding = choose_encoding(tr.data)
        if fallback and encoding == "STEIM2":
            encoding = "INT32"
        header = {k: v for k, v in tr.stats.items() if k not in ("npts", "endtime", "mseed")}
        mseed = AttribDict(tr.stats.mseed) if "mseed" in tr.stats else AttribDict()
        mseed.update({"encoding": encoding, "byteorder": ">"})
        mseed.pop("record_length", None)
        piece = Trace(data=data, header=header)   # the samples are shared, not copied
        piece.stats.mseed = mseed
        out.append(piece)
    return out


def _key(tr):
    return (tr.id, tr.stats.starttime.ns, len(tr.data))


def _same_trace(a, b) -> bool:
    # miniSEED keeps start times to the microsecond: a start may move by less than one
    return (a.id == b.id and abs(a.stats.starttime.ns - b.stats.starttime.ns) < 1000
            and math.isclose(a.stats.sampling_rate, b.stats.sampling_rate, rel_tol=1e-7)
            and same_samples(a.data, b.data))


def verify(stream: "Stream", path: Path) -> bool:
    """True if the miniSEED file at ``path`` holds exactly ``stream``'s traces and samples."""
    import obspy

    try:
        back = obspy.read(str(path), format="MSEED")
    except Exception as exc:  # noqa: BLE001 - any failure to read back is a failed check
        log.debug("read-back of %s failed: %s", path, exc)
        return False
    if len(back) != len(stream):
        back, stream = back.copy(), stream.copy()
        for st in (back, stream):
            st.merge(method=-1)
    want, got = sorted(stream, key=_key), sorted(back, key=_key)
    return len(want) == len(got) and all(
        _same_trace(a, b) for a, b in zip(want, got))


def write_day(stream: "Stream", path: Path, *, reclen: int = 4096) -> str:
    """Write ``stream`` as miniSEED at ``path``, verified; returns the encodings used (``STEIM2``, ``INT32,FLOAT32``).

    Raises :class:`UnencodableError` if a trace has no lossless encoding, or if the file
    does not read back exactly even without compression.
    """
    for fallback in (False, True):
        prepared = _prepared(stream, fallback)
        prepared.write(str(path), format="MSEED", reclen=reclen)
        if verify(prepared, path):
            return ",".join(sorted({tr.stats.mseed.encoding for tr in prepared}))
        if not any(tr.stats.mseed.encoding == "STEIM2" for tr in prepared):
            break
        log.info("%s: STEIM2 did not read back exactly, writing INT32", path)
    raise UnencodableError("the day file does not read back sample for sample")
