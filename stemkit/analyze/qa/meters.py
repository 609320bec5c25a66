"""Level meters of ITU-R BS.1770-4: integrated loudness (LUFS) and true peak (dBTP).

Examples
--------
>>> import numpy as np
>>> t = np.arange(48000) / 48000
>>> x = 0.5 * np.sin(2 * np.pi * 997 * t)[None].repeat(2, 0)
>>> round(integrated_loudness(x, 48000), 1)   # a -6 dBFS sine reads about -6 LUFS
-6.1
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

from stemkit.audio import as_audio

#: dB value reported for exact zeros (instead of -inf)
FLOOR_DB = -200.0
_GATE_S, _HOP_S = 0.4, 0.1  # BS.1770 gating block and hop
_CH_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)  # BS.1770 channel weights L, R, C, Ls, Rs


def _db(power: float) -> float:
    """10·log10 of a power ratio, :data:`FLOOR_DB` for zero."""
    return float(10 * np.log10(power)) if power > 0 else FLOOR_DB


def _segment_power(x: np.ndarray, seg: int, count: int) -> np.ndarray:
    """Sum of squares per channel over ``count`` consecutive segments of ``seg`` samples
    (missing samples count as zeros): ``(channels, count)`` float64."""
    out = np.zeros((x.shape[0], count))
    full = min(x.shape[-1] // seg, count)
    body = x[:, : full * seg].reshape(x.shape[0], full, seg)
    out[:, :full] = np.einsum("csh,csh->cs", body, body)
    if full < count:
        rest = x[:, full * seg : (full + 1) * seg]
        out[:, full] = np.einsum("cs,cs->c", rest, rest)
    return out


def _blocks_of(power: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Mean square per channel of 400 ms blocks every 100 ms (BS.1770 gating blocks, laid out
    as pyloudnorm does) from the sums of squares of consecutive 100 ms segments
    ``(channels, segments)`` (the last one partial) of audio ``n`` samples long; audio
    shorter than one block is one block."""
    if n < round(_GATE_S * sr):
        return power.sum(axis=-1, keepdims=True) / max(n, 1)
    seg = round(_HOP_S * sr)
    per_block = round(_GATE_S / _HOP_S)
    blocks = int(round((n / sr - _GATE_S) / _HOP_S)) + 1
    count = blocks + per_block - 1
    power = power[:, :count]
    if power.shape[-1] < count:  # missing segments count as zeros
        power = np.pad(power, ((0, 0), (0, count - power.shape[-1])))
    csum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=-1)], axis=-1)
    return (csum[:, per_block:] - csum[:, :-per_block])[:, :blocks] / (per_block * seg)


class _Segments:
    """Sums of squares per channel of consecutive 100 ms segments, fed block by block."""

    def __init__(self, channels: int, sr: int) -> None:
        self.seg = round(_HOP_S * sr)
        self._rest = np.zeros((channels, 0), np.float32)
        self._parts: list[np.ndarray] = []

    def update(self, x: np.ndarray) -> None:
        if self._rest.shape[-1]:
            x = np.concatenate([self._rest, x], axis=-1)
        full = x.shape[-1] // self.seg
        if full:
            self._parts.append(_segment_power(x, self.seg, full))
        self._rest = x[:, full * self.seg :].copy()  # the caller may reuse its block

    def power(self) -> np.ndarray:
        parts = list(self._parts)
        if self._rest.shape[-1]:
            parts.append(_segment_power(self._rest, self.seg, 1))
        return np.concatenate(parts, axis=-1) if parts else np.zeros((self._rest.shape[0], 0))


class LoudnessMeter:
    """Integrated loudness (:func:`integrated_loudness`) and the loudest 400 ms block of audio
    fed block by block, in order: memory of one block plus ten numbers a second.

    Parameters
    ----------
    channels : int
        Channel count.
    sr : int
        Rate in Hz.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(48000) / 48000
    >>> x = (0.1 * np.sin(2 * np.pi * 997 * t))[None].astype(np.float32)
    >>> m = LoudnessMeter(1, 48000)
    >>> for i in range(0, 48000, 10000):
    ...     m.update(x[:, i : i + 10000])
    >>> m.lufs() == integrated_loudness(x, 48000)
    True
    """

    def __init__(self, channels: int, sr: int) -> None:
        self.sr, self.channels, self.n = int(sr), int(channels), 0
        self._sos = _k_weighting(self.sr)
        self._zi = np.zeros((self._sos.shape[0], self.channels, 2), np.float32)
        self._raw = _Segments(self.channels, self.sr)
        self._weighted = _Segments(self.channels, self.sr)

    def update(self, x: np.ndarray) -> None:
        """The next samples, float32 ``(channels, samples)``."""
        self.n += x.shape[-1]
        self._raw.update(x)
        weighted, self._zi = signal.sosfilt(self._sos, x, axis=-1, zi=self._zi)
        self._weighted.update(weighted.astype(np.float32, copy=False))

    def loudest(self) -> float:
        """Mean square (channels averaged) of the loudest 400 ms block."""
        return float(_blocks_of(self._raw.power(), self.n, self.sr).mean(axis=0).max(initial=0.0))

    def lufs(self) -> float:
        """Integrated loudness in LUFS, NaN when every block is gated out (or no audio)."""
        if self.n == 0:
            return float("nan")
        return _gated(_blocks_of(self._weighted.power(), self.n, self.sr))


@lru_cache(maxsize=8)
def _k_weighting(sr: int) -> np.ndarray:
    """BS.1770 K-weighting (pyloudnorm's coefficients) as float32 second-order sections."""
    from pyloudnorm.iirfilter import IIRfilter

    shelf = IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sr, "high_shelf")
    high_pass = IIRfilter(0.0, 0.5, 38.0, sr, "high_pass")
    return np.array([np.r_[f.b, f.a] for f in (shelf, high_pass)], dtype=np.float32)


def integrated_loudness(x: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4), NaN when every block is gated out.

    pyloudnorm's K-weighting filters and gating, vectorised (pyloudnorm's own meter loops over
    blocks in Python, ~1 s for a 3-min stereo track); agrees with ``pyloudnorm.Meter`` to
    within 0.01 LU. Audio shorter than one 400 ms gating block is measured as one block
    (BS.1770 leaves it undefined; pyloudnorm refuses it). Channels are weighted in
    pyloudnorm's order (L, R, C: 1; Ls, Rs: 1.41; any further channel: 1).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(48000) / 48000
    >>> tone = np.stack([np.sin(2 * np.pi * 997 * t)] * 2) * 10 ** (-20 / 20)  # -20 dBFS sine
    >>> round(integrated_loudness(tone, 48000), 1)                   # stereo: +3 dB
    -20.0
    """
    x = as_audio(x)
    meter = LoudnessMeter(x.shape[0], sr)
    meter.update(x)
    return meter.lufs()


def _gated(z: np.ndarray) -> float:
    """BS.1770's gated loudness of the block powers ``z`` ``(channels, blocks)``."""
    weights = np.array([*_CH_WEIGHTS, *[1.0] * max(0, z.shape[0] - 5)])[: z.shape[0]]
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10 * np.log10(weights @ z)
        gated = block_lufs >= -70.0
        if not gated.any():
            return float("nan")
        relative = -0.691 + 10 * np.log10(weights @ z[:, gated].mean(axis=-1)) - 10.0
        gated &= block_lufs > relative
        if not gated.any():
            return float("nan")
        return float(-0.691 + 10 * np.log10(weights @ z[:, gated].mean(axis=-1)))


#: ITU-R BS.1770-4 Annex 2: the 48-tap 4x interpolation filter, as its 4 phases of 12 taps
#: (phases 2 and 3 are phases 1 and 0 reversed)
ITU_TRUE_PEAK_PHASES = np.array(
    [
        [0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000,
         -0.0594482421875, 0.1373291015625, 0.9721679687500, -0.1022949218750,
         0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500],
        [-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250,
         -0.1665039062500, 0.4650878906250, 0.7797851562500, -0.2003173828125,
         0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375],
    ]
)  # fmt: skip
ITU_TRUE_PEAK_PHASES = np.vstack([ITU_TRUE_PEAK_PHASES, ITU_TRUE_PEAK_PHASES[::-1, ::-1]])
_TP_TAPS = ITU_TRUE_PEAK_PHASES.shape[1]
_TP_LEFT = _TP_TAPS // 2 - 1  # the window of the interval (k, k+1) is x[k-5 : k+7]
_TP_BLOCK = 256
#: samples a true-peak pass holds at a time (a multiple of _TP_BLOCK)
_TP_CHUNK = _TP_BLOCK * 1024


@lru_cache(maxsize=1)
def _tp_filters() -> tuple[np.ndarray, float, float]:
    """``(taps (12, 4), S, G)``: the phases as columns over the window ``x[k-5 : k+7]`` of the
    interval ``(x[k], x[k+1])`` they interpolate, and the constants of the bound
    ``|y| <= S·max(|x[k]|, |x[k+1]|) + G·max|Δ²x|`` (Δ² over the window).

    The bound is exact: each phase is split into a 2-tap interpolation with the phase's DC gain
    and centroid (hence ``S``) plus a remainder with a double zero at DC, which is a filter
    ``g`` applied to the second difference Δ²x (``G = max ||g||₁``).
    """
    taps = ITU_TRUE_PEAK_PHASES[:, ::-1].T.copy()
    gain, reach = 0.0, 0.0
    offsets = np.arange(_TP_TAPS) - _TP_LEFT
    for t in taps.T:
        dc = t.sum()
        centroid = (t * offsets).sum() / dc
        rest = t.copy()
        rest[_TP_LEFT] -= dc * (1 - centroid)
        rest[_TP_LEFT + 1] -= dc * centroid
        g = np.cumsum(np.cumsum(rest))  # rest / (1 - z^-1)^2: exact, rest has a double zero
        gain, reach = max(gain, abs(dc)), max(reach, float(np.abs(g).sum()))
    return taps.astype(np.float32), gain, reach


def _block_max(v: np.ndarray, block: int) -> np.ndarray:
    """Max of each run of ``block`` values (the last run may be shorter)."""
    full = len(v) // block
    out = v[: full * block].reshape(full, block).max(axis=1)
    return np.append(out, v[full * block :].max()) if len(v) % block else out


def _curvature(ch: np.ndarray) -> np.ndarray:
    """Max ``|Δ²x|`` of each run of :data:`_TP_BLOCK` second differences, with its
    neighbours' (one value a block), computed a chunk at a time."""
    n, block = len(ch), _TP_BLOCK
    parts = []
    for a in range(0, max(n - 2, 0), _TP_CHUNK):  # chunks of second differences
        seg = ch[a : min(a + _TP_CHUNK, n - 2) + 2]
        d2 = seg[2:] - seg[1:-1]
        d2 -= seg[1:-1]
        d2 += seg[:-2]
        np.abs(d2, out=d2)
        parts.append(_block_max(d2, block))
    curv = np.concatenate(parts) if parts else np.zeros(1, np.float32)
    curv = np.maximum(curv, np.maximum(np.r_[curv[1:], 0], np.r_[0, curv[:-1]]))  # neighbours
    return np.append(curv, curv[-1])[: -(-n // block)]


def _candidate_intervals(ch: np.ndarray, limit: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Intervals ``k`` in ``start:stop`` (between ``x[k]`` and ``x[k+1]``) whose interpolated
    values may exceed the level ``limit`` of their block gives; ``start`` is a multiple of
    :data:`_TP_BLOCK`. The filter's ramps at both edges are left out (see :func:`_edge_peak`)."""
    n, block = len(ch), _TP_BLOCK
    mag = np.abs(ch[start : min(stop + 1, n)])
    full = len(mag) // block
    first = start // block
    above = np.empty(len(mag), bool)
    np.greater_equal(mag[: full * block].reshape(full, block), limit[first : first + full, None],
                     out=above[: full * block].reshape(full, block))  # fmt: skip
    if len(mag) > full * block:
        above[full * block :] = mag[full * block :] >= limit[first + full]
    inner = np.flatnonzero(above[:-1] | above[1:]) + start
    return inner[(inner >= block) & (inner < n - block)]


def _interpolated_peak(ch: np.ndarray, intervals: np.ndarray, chunk: int = 1 << 13) -> float:
    """Largest ``|y|`` of the 4 phases over ``intervals``, whose windows lie inside ``ch``
    (in chunks small enough that OpenBLAS runs them on one thread: much faster)."""
    taps = _tp_filters()[0]
    windows = np.lib.stride_tricks.sliding_window_view(ch, _TP_TAPS)
    best = 0.0
    for start in range(0, len(intervals), chunk):  # the window of interval k starts at x[k-5]
        values = windows[intervals[start : start + chunk] - _TP_LEFT] @ taps
        best = max(best, float(np.abs(values).max(initial=0.0)))
    return best


def _edge_peak(head: np.ndarray, tail: np.ndarray, n: int) -> float:
    """:func:`_interpolated_peak` of the first and last blocks of a channel ``n`` samples
    long, where the filter ramps in and out over zeros: ``head`` and ``tail`` are its first and
    last ``2 * _TP_BLOCK`` samples (the whole channel when shorter than ``4 * _TP_BLOCK``)."""
    block, pad = _TP_BLOCK, _TP_TAPS
    first = np.arange(-_TP_LEFT - 1, min(block, n) if n >= 4 * block else n + _TP_LEFT)
    if n < 4 * block:
        return _interpolated_peak(np.pad(head, pad), first + pad)
    head_peak = _interpolated_peak(np.pad(head, (pad, 0)), first + pad)
    tail_peak = _interpolated_peak(np.pad(tail, (0, pad)), np.arange(block, 2 * block + 5))
    return max(head_peak, tail_peak)


class TruePeakMeter:
    """:func:`true_peak` of audio fed block by block, in order (exact: the same value as the
    whole signal's); memory: two blocks.

    A block is measured once the next one arrives (its last intervals need the samples after
    it). The level below which a sample cannot reach the peak is set by the largest sample
    seen so far, never above the final one, so no interval that could hold the peak is
    skipped.

    Parameters
    ----------
    channels, n : int
        Channel count and total length in samples.

    Examples
    --------
    >>> import numpy as np
    >>> n = np.arange(4000)
    >>> x = (np.sin(np.pi / 2 * n + np.pi / 4) * np.hanning(4000))[None].astype(np.float32)
    >>> m = TruePeakMeter(1, 4000)
    >>> for i in range(0, 4000, 1500):
    ...     m.update(x[:, i : i + 1500])
    >>> m.peak() == true_peak(x)
    True
    """

    def __init__(self, channels: int, n: int) -> None:
        self.channels, self.n = int(channels), int(n)
        self.sample_peak = 0.0
        self._level = 0.0
        self._seen = 0
        self._short = self.n < 4 * _TP_BLOCK
        self._parts: list[np.ndarray] = []  # a short signal whole; else the first samples
        self._prev: np.ndarray | None = None
        self._before = np.zeros((self.channels, _TP_BLOCK), np.float32)
        self._tail = np.zeros((self.channels, 0), np.float32)

    def update(self, x: np.ndarray) -> None:
        """The next samples, float32 ``(channels, samples)``."""
        if x.shape[-1] == 0:
            return
        self.sample_peak = max(self.sample_peak, float(max(x.max(), -x.min())))
        if self._short:
            self._parts.append(x)
        elif self._seen < 2 * _TP_BLOCK:  # the head, for the filter's ramp-in at the start
            self._parts.append(x[:, : 2 * _TP_BLOCK - self._seen])
        self._tail = np.concatenate([self._tail, x], axis=-1)[:, -2 * _TP_BLOCK :]
        if not self._short:
            if self._prev is not None:
                self._scan(self._prev, self._seen - self._prev.shape[-1], x[:, :_TP_BLOCK])
                ctx = np.concatenate([self._before, self._prev], axis=-1)
                self._before = ctx[:, -_TP_BLOCK:]
            self._prev = x
        self._seen += x.shape[-1]

    def _scan(self, x: np.ndarray, start: int, after: np.ndarray) -> None:
        """The inner intervals of ``x`` (samples ``start:`` of the signal), ``after`` the
        samples that follow it (fewer at the end of the signal: zeros past it)."""
        if self.sample_peak == 0.0:
            return
        _, gain, reach = _tp_filters()
        block, length = _TP_BLOCK, x.shape[-1]
        if after.shape[-1] < block:
            after = np.pad(after, ((0, 0), (0, block - after.shape[-1])))
        best = max(self.sample_peak, self._level)
        lo, hi = max(start, block), min(start + length, self.n - block)  # inner: not the edges
        if hi <= lo:
            return
        for c in range(self.channels):
            ext = np.concatenate([self._before[c], x[c], after[c]])
            limit = ((best - reach * _curvature(ext)) / gain).astype(np.float32)
            found = _candidate_intervals(ext, limit, block, block + length)
            found = found[(found >= lo - start + block) & (found < hi - start + block)]
            self._level = max(self._level, _interpolated_peak(ext, found))

    def peak(self) -> float:
        """The true peak (linear) of everything fed."""
        if self._short:
            whole = np.concatenate(self._parts, axis=-1) if self._parts else None
            if whole is None or self.sample_peak == 0.0:
                return self.sample_peak
            return max(self.sample_peak, *(_edge_peak(ch, ch, self.n) for ch in whole))
        if self._prev is not None:
            self._scan(self._prev, self._seen - self._prev.shape[-1], self._prev[:, :0])
            self._prev = None
        if self.sample_peak == 0.0:
            return 0.0
        head = np.concatenate(self._parts, axis=-1)[:, : 2 * _TP_BLOCK]
        edges = max(_edge_peak(h, t, self.n) for h, t in zip(head, self._tail, strict=True))
        return max(self.sample_peak, self._level, edges)


def _true_peak(x: np.ndarray) -> float:
    """:func:`true_peak` of float32 ``(channels, samples)``; memory: a chunk at a time."""
    meter = TruePeakMeter(x.shape[0], x.shape[-1])
    for a in range(0, x.shape[-1], _TP_CHUNK):
        meter.update(x[:, a : a + _TP_CHUNK])
    return meter.peak()


def true_peak(x: np.ndarray) -> float:
    """True peak (linear; ``20·log10`` of it is dBTP): the largest of ``|x|`` and of the 4x
    oversampled signal through ITU-R BS.1770-4's interpolation filter.

    Exact, but the filter runs only where the oversampled value can exceed the sample peak:
    between samples whose level plus a bound on the overshoot (from the local second
    difference, see ``_tp_filters``) reaches it. Smooth audio is skipped after a few cheap
    passes; clipped edges, transients and near-Nyquist content get the filter.

    Examples
    --------
    >>> import numpy as np
    >>> n = np.arange(400)
    >>> x = (np.sin(np.pi / 2 * n + np.pi / 4) * np.hanning(400))[None]  # fs/4 at 45 degrees
    >>> round(20 * np.log10(np.abs(x).max()), 2), round(20 * np.log10(true_peak(x)), 2)
    (np.float64(-3.01), np.float64(0.04))
    """
    x = as_audio(x)
    return _true_peak(x)
