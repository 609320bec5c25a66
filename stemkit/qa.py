"""Reference-free QA of separated stems, judged against a QA profile.

:func:`stem_checks` measures every stem of one provider's result for one track against the
mixture that was sent; :func:`job_checks` turns the job's timing summary row into the same kind
of rows. Every row is tidy: ``{"stem", "check", "value", "unit", "detail"}`` (the caller adds
``provider`` and ``track``). :func:`verdicts` judges each row against a profile
(:func:`load_profile`: the packaged ``qa_profile.toml``, a batch file merged over it) and
:func:`summary_verdicts` keeps the worst verdict per provider x track x stem, with what failed
and by how much: the table a report opens with.

=====================  =====  ==========================================================
check                  unit   what it measures
=====================  =====  ==========================================================
``recon_db``           dB     energy of mixture - sum of stems, re the mixture (stem ``(all)``)
``duration_diff_s``    s      stem duration - input duration
``sample_rate_match``         1 if the stem's rate equals the input's
``channels_match``            1 if the stem's channel count equals the input's
``clip_pct``           %      share of samples with ``|x| >= 0.999``
``sample_peak_dbfs``   dBFS   largest ``|x|``
``true_peak_dbtp``     dBTP   largest ``|x|`` of the 4x oversampled signal
``silent``             dBFS   RMS of the loudest 400 ms window (all channels)
``lufs``               LUFS   integrated loudness, ITU-R BS.1770-4 (NaN for silence)
``dc_offset``          FS     largest ``|mean|`` over channels (full scale = 1)
``offset_ms``          ms     lag of the stem against the mixture (+ = stem late)
``polarity``           corr   min over channels of corr(stem ch, mixture ch) at that lag
``channel_swap``       corr   corr(stem side, mixture side) x sign of the mids', stereo only
``processing_s``       s      vendor processing time (:func:`job_checks`)
``rtf``                x      processing / audio duration (:func:`job_checks`)
``end_to_end_s``       s      submit to download (:func:`job_checks`)
=====================  =====  ==========================================================

:func:`integrated_loudness` and :func:`true_peak` are the BS.1770 meters behind ``lufs`` and
``true_peak_dbtp``; :func:`judge` is the rule of one row. :func:`oracle_irm` is the upper end of
the SiSEC bracket: the ideal ratio mask computed from the references, applied to the mixture.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> stems = {k: 0.1 * rng.standard_normal((2, 8000)).astype(np.float32) for k in ("a", "b")}
>>> mix = stems["a"] + stems["b"]
>>> rows = pd.DataFrame(stem_checks(mix, stems, 8000))
>>> v = verdicts(rows, load_profile())
>>> sorted(set(v["verdict"]))
['pass']
>>> stems["b"] = -stems["b"]                       # polarity-inverted stem
>>> v = verdicts(pd.DataFrame(stem_checks(mix, stems, 8000)), load_profile())
>>> summary_verdicts(v)[["stem", "verdict"]].head(2).to_dict("records")
[{'stem': '(all)', 'verdict': 'fail'}, {'stem': 'b', 'verdict': 'fail'}]
"""

from __future__ import annotations

import math
import tomllib
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import fft as sfft
from scipy import signal

#: ``stem`` of the rows that concern all stems together / the job
ALL = "(all)"
JOB = "(job)"
#: a sample at or above this magnitude counts as clipped
CLIP_LEVEL = 0.999
#: dB value reported for exact zeros (instead of -inf)
FLOOR_DB = -200.0
#: the lag search of ``offset_ms`` spans +-this many seconds
LAG_SEARCH_S = 0.25
#: a lag other than 0 is reported only when it correlates this much better than lag 0
LAG_MARGIN = 1.2
#: a stem whose side (L - R) is this far below its mid (L + R) is mono: no swap check
MONO_SIDE_DB = -30.0
#: severity order of verdicts (worst last)
SEVERITY = {"n/a": 0, "pass": 1, "warn": 2, "fail": 3}
#: the keys a rule may have (see :func:`verdicts`)
RULE_KEYS = {"warn_above", "fail_above", "warn_below", "fail_below", "abs", "nan", "enabled"}

_GATE_S, _HOP_S = 0.4, 0.1  # BS.1770 gating block and hop
_CH_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)  # BS.1770 channel weights L, R, C, Ls, Rs


def _row(stem: str, check: str, value: float, unit: str, detail: str = "") -> dict[str, Any]:
    return {"stem": stem, "check": check, "value": float(value), "unit": unit, "detail": detail}


def _db(power: float) -> float:
    """10·log10 of a power ratio, :data:`FLOOR_DB` for zero."""
    return float(10 * np.log10(power)) if power > 0 else FLOOR_DB


def _as_audio(y: np.ndarray) -> np.ndarray:
    """float32 ``(channels, samples)``, mono 1-D arrays as one channel."""
    return np.atleast_2d(np.asarray(y, dtype=np.float32))


def _channel_names(n: int) -> list[str]:
    return ["L", "R"] if n == 2 else [f"ch{i}" for i in range(n)]


# --------------------------------------------------------------------------- conforming stems


def _to_rate(y: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    if from_sr == to_sr:
        return y
    g = math.gcd(int(from_sr), int(to_sr))
    return signal.resample_poly(y, to_sr // g, from_sr // g, axis=-1).astype(np.float32)


def _conform(y: np.ndarray, channels: int, length: int) -> np.ndarray:
    """``y`` as ``(channels, length)``: mono copied to every channel, else downmixed; the tail
    cut or zero-padded."""
    if y.shape[0] != channels:
        y = np.repeat(y, channels, axis=0) if y.shape[0] == 1 else y.mean(axis=0, keepdims=True)
        y = np.broadcast_to(y, (channels, y.shape[-1]))
    if y.shape[-1] == length:
        return y
    out = np.zeros((channels, length), np.float32)
    n = min(length, y.shape[-1])
    out[:, :n] = y[:, :n]
    return out


# --------------------------------------------------------------------------- level checks


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


def _block_power(x: np.ndarray, sr: int) -> np.ndarray:
    """Mean square per channel of 400 ms blocks every 100 ms (BS.1770 gating blocks, blocks
    laid out as pyloudnorm does); audio shorter than one block is one block."""
    n = x.shape[-1]
    if n < round(_GATE_S * sr):
        return np.einsum("cs,cs->c", x, x)[:, None] / max(n, 1)
    seg = round(_HOP_S * sr)
    per_block = round(_GATE_S / _HOP_S)
    blocks = int(round((n / sr - _GATE_S) / _HOP_S)) + 1
    power = _segment_power(x, seg, blocks + per_block - 1)
    csum = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(power, axis=-1)], axis=-1)
    return (csum[:, per_block:] - csum[:, :-per_block])[:, :blocks] / (per_block * seg)


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
    x = _as_audio(x)
    if x.shape[-1] == 0:
        return float("nan")
    weighted = signal.sosfilt(_k_weighting(sr), x, axis=-1)
    z = _block_power(weighted, sr)
    weights = np.array([*_CH_WEIGHTS, *[1.0] * max(0, x.shape[0] - 5)])[: x.shape[0]]
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


def _candidate_intervals(ch: np.ndarray, mag: np.ndarray, best: float) -> np.ndarray:
    """Intervals ``k`` (between ``x[k]`` and ``x[k+1]``) whose interpolated values may exceed
    ``best``, sorted; the filter's ramps at both edges always."""
    _, gain, reach = _tp_filters()
    n, block = len(ch), _TP_BLOCK
    d2 = ch[2:] - ch[1:-1]
    d2 -= ch[1:-1]
    d2 += ch[:-2]
    np.abs(d2, out=d2)
    curv = _block_max(d2, block) if len(d2) else np.zeros(1, np.float32)
    curv = np.maximum(curv, np.maximum(np.r_[curv[1:], 0], np.r_[0, curv[:-1]]))  # neighbours
    curv = np.append(curv, curv[-1])[: -(-n // block)]
    limit = ((best - reach * curv) / gain).astype(np.float32)  # samples below cannot reach it
    full = n // block
    above = np.empty(n, bool)
    np.greater_equal(mag[: full * block].reshape(full, block), limit[:full, None],
                     out=above[: full * block].reshape(full, block))  # fmt: skip
    above[full * block :] = mag[full * block :] >= limit[-1]
    inner = np.flatnonzero(above[:-1] | above[1:])
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


def _edge_peak(ch: np.ndarray) -> float:
    """:func:`_interpolated_peak` of the first and last blocks, where the filter ramps in and
    out over zeros (all of a short signal)."""
    n, block, pad = len(ch), _TP_BLOCK, _TP_TAPS
    first = np.arange(-_TP_LEFT - 1, min(block, n) if n >= 4 * block else n + _TP_LEFT)
    if n < 4 * block:
        return _interpolated_peak(np.pad(ch, pad), first + pad)
    head = _interpolated_peak(np.pad(ch[: 2 * block], (pad, 0)), first + pad)
    tail = _interpolated_peak(np.pad(ch[-2 * block :], (0, pad)), np.arange(block, 2 * block + 5))
    return max(head, tail)


def _true_peak(x: np.ndarray, mag: np.ndarray) -> float:
    best = float(mag.max(initial=0.0))
    if best == 0.0:
        return 0.0
    for ch, a in zip(x, mag, strict=True):
        best = max(best, _edge_peak(ch))
        if len(ch) >= 4 * _TP_BLOCK:
            best = max(best, _interpolated_peak(ch, _candidate_intervals(ch, a, best)))
    return best


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
    x = _as_audio(x)
    return _true_peak(x, np.abs(x))


def _level_rows(name: str, y: np.ndarray, sr: int) -> list[dict[str, Any]]:
    """Checks of the stem on its own: clipping, peaks, near-silence, loudness, DC."""
    mag = np.abs(y)
    clipped = int(np.count_nonzero(mag >= CLIP_LEVEL))
    peak = float(mag.max(initial=0.0))
    loudest = float(_block_power(y, sr).mean(axis=0).max(initial=0.0))
    lufs = integrated_loudness(y, sr)
    short = y.shape[-1] < round(_GATE_S * sr)
    means = y.sum(axis=-1) / max(y.shape[-1], 1)  # float32 pairwise sums: accurate, 5x faster
    dc = " ".join(f"{c} {m:+.4f}" for c, m in zip(_channel_names(len(means)), means, strict=True))
    return [
        _row(name, "clip_pct", 100 * clipped / max(y.size, 1), "%", f"{clipped} samples"),
        _row(name, "sample_peak_dbfs", _db(peak**2), "dBFS"),
        _row(name, "true_peak_dbtp", _db(_true_peak(y, mag) ** 2), "dBTP", "4x oversampled"),
        _row(name, "silent", _db(loudest), "dBFS", "loudest 400 ms window (RMS)"),
        _row(name, "lufs", lufs, "LUFS", _lufs_note(lufs, short)),
        _row(name, "dc_offset", float(np.abs(means).max(initial=0.0)), "FS", dc),
    ]


def _lufs_note(lufs: float, short: bool) -> str:
    if math.isnan(lufs):
        return "every block below the -70 LUFS gate"
    return "shorter than 400 ms: one block" if short else ""


def _format_rows(
    name: str, y: np.ndarray, stem_rate: int, expected: tuple[float, int, int]
) -> list[dict[str, Any]]:
    """Duration, sample rate and channel count against the input's."""
    duration, rate, channels = expected
    stem_duration = y.shape[-1] / stem_rate
    return [
        _row(
            name,
            "duration_diff_s",
            stem_duration - duration,
            "s",
            f"stem {stem_duration:.3f} s, input {duration:.3f} s",
        ),
        _row(
            name,
            "sample_rate_match",
            float(stem_rate == rate),
            "",
            f"stem {stem_rate} Hz, input {rate} Hz",
        ),
        _row(
            name,
            "channels_match",
            float(y.shape[0] == channels),
            "",
            f"stem {y.shape[0]}, input {channels}",
        ),
    ]


# --------------------------------------------------------------------------- against the mixture


@dataclass
class _Mixture:
    """The mixture, with what every stem's comparison reuses."""

    x: np.ndarray
    sr: int
    q: int = field(init=False)
    pooled: np.ndarray = field(init=False)
    gram: np.ndarray = field(init=False)
    _spectra: dict[int, np.ndarray] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.q = max(1, self.sr // 4000)  # the lag search runs at ~4 kHz
        self.pooled = _pooled(self.x, self.q)
        self.gram = _gram(self.x, self.x)
        self.spectrum(self.n_fft)  # computed once, before any thread needs it

    @property
    def n_fft(self) -> int:
        """FFT length of the cross-correlations (stems are conformed to the mixture's length)."""
        return sfft.next_fast_len(self.pooled.shape[-1] + self.max_lag + 1, real=True)

    @property
    def max_lag(self) -> int:
        """Search range in pooled samples."""
        return max(1, round(LAG_SEARCH_S * self.sr / self.q))

    def spectrum(self, n_fft: int) -> np.ndarray:
        if n_fft not in self._spectra:
            self._spectra[n_fft] = sfft.rfft(self.pooled, n_fft, axis=-1)
        return self._spectra[n_fft]


def _pooled(x: np.ndarray, q: int) -> np.ndarray:
    """Each channel averaged over ``q`` consecutive samples (box filter, then decimation)."""
    m = x.shape[-1] // q
    kernel = np.full(q, 1 / q, np.float32)  # einsum: no BLAS threads (see _dot)
    return np.einsum("cmq,q->cm", x[:, : m * q].reshape(x.shape[0], m, q), kernel)


def _parabolic(left: float, mid: float, right: float) -> float:
    """Sub-sample position of a peak from three neighbouring values."""
    den = left - 2 * mid + right
    return 0.0 if den == 0 else float(np.clip(0.5 * (left - right) / den, -0.5, 0.5))


def _lag_dot(s: np.ndarray, x: np.ndarray, lag: int) -> float:
    """``sum_t |sum_c x_c(t)·s_c(t + lag)|`` over channels: equally long ``(channels, n)``."""
    n = s.shape[-1]
    a, b = (s[:, lag:], x[:, : n - lag]) if lag >= 0 else (s[:, : n + lag], x[:, -lag:])
    return sum(abs(_dot(ac, bc)) for ac, bc in zip(a, b, strict=True))


def _estimate_lag(y: np.ndarray, mix: _Mixture) -> tuple[float, float]:
    """``(lag in samples, normalised correlation at the coarse lag)``, positive when the stem
    is late; ``y`` has the mixture's shape. The lag maximises the sum over channels of
    ``|corr(stem ch, mixture ch)|`` (an inverted stem or channel still aligns): searched on
    the pooled signals, refined at full rate. 0 unless another lag correlates
    :data:`LAG_MARGIN` times better (a tone correlates as well one period away)."""
    s = _pooled(y, mix.q)
    norms = np.sqrt(np.einsum("ij,ij->i", s, s) * np.einsum("ij,ij->i", mix.pooled, mix.pooled))
    if not norms.any():
        return float("nan"), float("nan")
    lag_max, n_fft = mix.max_lag, mix.n_fft
    corr = sfft.irfft(np.conj(mix.spectrum(n_fft)) * sfft.rfft(s, n_fft, axis=-1), n_fft)
    corr = np.abs(np.concatenate([corr[:, -lag_max:], corr[:, : lag_max + 1]], axis=-1))
    corr = corr.sum(axis=0)  # lags -max..+max
    k = int(np.argmax(corr))
    if corr[k] <= LAG_MARGIN * corr[lag_max]:
        return 0.0, float(corr[lag_max] / norms.sum())
    lags = np.arange(-mix.q - 1, mix.q + 2) + (k - lag_max) * mix.q  # refine at full rate
    score = np.array([_lag_dot(y, mix.x, int(lag)) for lag in lags])
    i = int(np.clip(np.argmax(score), 1, len(lags) - 2))
    return float(lags[i] + _parabolic(*score[i - 1 : i + 2])), float(corr[k] / norms.sum())


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product of two float32 vectors: einsum, as fast as BLAS here, ~40x more accurate
    than OpenBLAS's float32 sdot on millions of samples, and never spawns BLAS threads."""
    return float(np.einsum("i,i->", a, b))


def _gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Inner products of every channel of ``a`` with every channel of ``b``."""
    return np.array([[_dot(ai, bj) for bj in b] for ai in a])


def _shifted(s: np.ndarray, x: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The overlapping parts of ``s`` and ``x`` with ``s`` moved ``lag`` samples earlier."""
    n = s.shape[-1]
    if lag >= 0:
        return s[:, lag:], x[:, : n - lag]
    return s[:, : n + lag], x[:, -lag:]


def _corr(num: float, a: float, b: float) -> float:
    return num / math.sqrt(a * b) if a > 0 and b > 0 else float("nan")


def _image_rows(name: str, y: np.ndarray, mix: _Mixture) -> list[dict[str, Any]]:
    """Offset, polarity and channel swap of a stem conformed to the mixture's shape."""
    lag, strength = _estimate_lag(y, mix)
    if math.isnan(lag):
        return [
            _row(name, check, float("nan"), unit, "silent stem")
            for check, unit in (("offset_ms", "ms"), ("polarity", "corr"), ("channel_swap", "corr"))
        ]
    shift = round(lag)
    s, x = _shifted(y, mix.x, shift)
    cross, gram_s = _gram(s, x), _gram(s, s)
    gram_x = mix.gram if shift == 0 else _gram(x, x)
    names = _channel_names(y.shape[0])
    per_channel = [_corr(cross[c, c], gram_s[c, c], gram_x[c, c]) for c in range(len(names))]
    polarity = float(np.nanmin(per_channel)) if not np.isnan(per_channel).all() else math.nan
    ms = 1000 * lag / mix.sr
    where = f"at lag {1000 * shift / mix.sr:+.1f} ms"
    if ms:
        found = f"stem {'late' if ms > 0 else 'early'}, corr {strength:.2f}"
    else:
        found = f"no lag beats 0 by x{LAG_MARGIN}, corr {strength:.2f}"
    signs = " ".join(f"{c} {r:+.2f}" for c, r in zip(names, per_channel, strict=True))
    rows = [
        _row(name, "offset_ms", ms, "ms", found),
        _row(name, "polarity", polarity, "corr", f"{signs} {where}"),
    ]
    if y.shape[0] == 2:
        rows.append(_swap_row(name, cross, gram_s, gram_x, where))
    return rows


def _swap_row(
    name: str, cross: np.ndarray, gram_s: np.ndarray, gram_x: np.ndarray, where: str
) -> dict[str, Any]:
    """Correlation of the side signals (L - R), times the sign of the mids' (L + R): a swap
    negates the side and keeps the mid (an inverted stem negates both). Equivalently, for a
    stem of the right polarity: negative when its L and R correlate better (summed) with the
    mixture's opposite channels than with their own."""
    side, mid = np.array([1.0, -1.0]), np.ones(2)
    side_s, mid_s = float(side @ gram_s @ side), float(mid @ gram_s @ mid)
    ratio = _db(side_s / mid_s) if mid_s > 0 and side_s > 0 else FLOOR_DB
    if ratio < MONO_SIDE_DB:
        return _row(
            name, "channel_swap", math.nan, "corr", f"stem side {ratio:.0f} dB re mid: mono"
        )
    value = _corr(float(side @ cross @ side), side_s, float(side @ gram_x @ side))
    value *= 1.0 if float(mid @ cross @ mid) >= 0 else -1.0
    return _row(name, "channel_swap", value, "corr", f"stem side {ratio:.0f} dB re mid, {where}")


def _recon_row(mix: _Mixture, conformed: list[np.ndarray]) -> dict[str, Any]:
    err = mix.x.copy()
    for stem in conformed:
        err -= stem
    err_energy = sum(_dot(ch, ch) for ch in err)
    mix_energy = float(np.trace(mix.gram))
    value = _db(err_energy / mix_energy) if mix_energy > 0 else math.nan
    return _row(ALL, "recon_db", value, "dB", f"mixture - sum of {len(conformed)} stems")


def stem_checks(
    mixture: np.ndarray,
    stems: dict[str, np.ndarray],
    sr: int,
    *,
    stem_sr: dict[str, int] | None = None,
    input_info: dict | None = None,
    workers: int = 1,
) -> list[dict]:
    """Reference-free checks of every stem against the mixture that was separated.

    Parameters
    ----------
    mixture : np.ndarray
        The input, float32 ``(channels, samples)`` at ``sr``.
    stems : dict of str to np.ndarray
        The provider's stems as decoded, ``(channels, samples)`` at their own rate.
    sr : int
        Rate of ``mixture`` (and of every stem not in ``stem_sr``).
    stem_sr : dict of str to int, optional
        Rate of each stem array that is not at ``sr``. Such stems are resampled to ``sr`` for
        the comparisons with the mixture, so a wrong rate fails ``sample_rate_match`` only.
    input_info : dict, optional
        ``duration`` (s), ``sample_rate`` and ``channels`` of the file that was submitted
        (e.g. ``dataclasses.asdict(stemkit.audio.audio_info(path))``); by default those of
        ``mixture``.
    workers : int, default 1
        Stems measured in parallel threads (1: sequential). numpy and scipy release
        the GIL, so threads can help on an otherwise idle multi-core machine; on a busy one
        they cost more than they save.

    Returns
    -------
    list of dict
        Tidy rows ``{"stem", "check", "value", "unit", "detail"}``: one ``recon_db`` row for
        stem ``"(all)"``, then for each stem ``duration_diff_s``, ``sample_rate_match``,
        ``channels_match``, ``clip_pct``, ``sample_peak_dbfs``, ``true_peak_dbtp``,
        ``silent``, ``lufs``, ``dc_offset``, ``offset_ms``, ``polarity`` and, for stereo
        stems, ``channel_swap``. NaN where a value is undefined (loudness, lag or polarity of
        a silent stem; channel swap of a mono stem).

    Notes
    -----
    Stems are compared with the mixture after conforming them to its shape (resampled to
    ``sr``, mono copied to every channel, the tail cut or zero-padded: a short stem's missing
    tail counts in ``recon_db``).

    ``offset_ms`` is the lag, within +-250 ms, that maximises the sum over channels of
    ``|cross-correlation(stem channel, mixture channel)|`` (FFT of both box-filtered to
    ~4 kHz, then refined at full rate), so an inverted stem or channel still aligns. A lag
    other than 0 is kept only when it correlates ``LAG_MARGIN`` (1.2) times better than lag
    0: a tone correlates about as well one period away, and no evidence of a shift means no
    shift.

    ``polarity`` and ``channel_swap`` are measured at that lag. ``polarity`` is the smallest
    per-channel correlation with the mixture: a correct stem is part of the mix, so it
    correlates positively (about by its share of the mixture's RMS); an inverted stem or one
    inverted channel is negative. ``channel_swap`` is the correlation of the side signals
    (L - R), which a swap negates, times the sign of the mids' correlation (L + R), so that an
    inverted stem is not also a swapped one. Stems whose side is more than 30 dB below their
    mid get NaN: swapping them is inaudible.

    ``silent`` is an RMS in dBFS where a full-scale sine is -3 dBFS; ``lufs`` is
    :func:`integrated_loudness`; ``true_peak_dbtp`` is :func:`true_peak`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> vocals = 0.1 * rng.standard_normal((2, 16000)).astype(np.float32)
    >>> drums = 0.1 * rng.standard_normal((2, 16000)).astype(np.float32)
    >>> late = np.roll(drums, 800, axis=-1)                           # 100 ms at 8 kHz
    >>> rows = stem_checks(vocals + drums, {"vocals": vocals, "drums": late}, 8000)
    >>> [(r["stem"], round(r["value"], 1)) for r in rows if r["check"] == "offset_ms"]
    [('vocals', 0.0), ('drums', 100.0)]
    """
    mix = _Mixture(_as_audio(mixture), int(sr))
    info = input_info or {}
    expected = (
        float(info.get("duration", mix.x.shape[-1] / mix.sr)),
        int(info.get("sample_rate", mix.sr)),
        int(info.get("channels", mix.x.shape[0])),
    )
    rates = {name: int((stem_sr or {}).get(name, mix.sr)) for name in stems}

    def one(name: str) -> tuple[list[dict[str, Any]], np.ndarray]:
        return _stem_rows(name, _as_audio(stems[name]), rates[name], mix, expected)

    if min(len(stems), workers) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(one, stems))
    else:
        done = [one(name) for name in stems]
    rows = [row for stem_rows, _ in done for row in stem_rows]
    return [_recon_row(mix, [conformed for _, conformed in done]), *rows]


def _stem_rows(
    name: str, y: np.ndarray, rate: int, mix: _Mixture, expected: tuple[float, int, int]
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Every row of one stem, and the stem conformed to the mixture (for ``recon_db``)."""
    rows = _format_rows(name, y, rate, expected) + _level_rows(name, y, rate)
    conformed = _conform(_to_rate(y, rate, mix.sr), mix.x.shape[0], mix.x.shape[-1])
    return rows + _image_rows(name, conformed, mix), conformed


def job_checks(timing_row: Mapping[str, Any]) -> list[dict]:
    """Processing time, real-time factor and end-to-end time of one job, as QA rows.

    ``timing_row`` is a row of :func:`stemkit.timing.summarize` (keys ``processing``,
    ``rtf``, ``end to end``) or any mapping with ``processing_s``/``rtf``/``end_to_end_s``;
    missing values are NaN (verdict ``n/a``). Rows have stem ``"(job)"``.

    Examples
    --------
    >>> [(r["check"], r["value"]) for r in job_checks({"processing": 30.0, "rtf": 0.25})]
    [('processing_s', 30.0), ('rtf', 0.25), ('end_to_end_s', nan)]
    """

    def pick(*keys: str) -> float:
        for key in keys:
            value = timing_row.get(key)
            if value is not None and not pd.isna(value):
                return float(value)
        return math.nan

    return [
        _row(JOB, "processing_s", pick("processing_s", "processing"), "s", "vendor processing"),
        _row(JOB, "rtf", pick("rtf"), "x", "processing / audio duration"),
        _row(JOB, "end_to_end_s", pick("end_to_end_s", "end to end"), "s", "submit to download"),
    ]


# --------------------------------------------------------------------------- profiles, verdicts


def _merge(base: dict, override: Mapping) -> dict:
    out = dict(base)
    for key, value in override.items():
        is_table = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _merge(out[key], value) if is_table else value
    return out


def _validate(profile: Mapping, source: str) -> None:
    for check, rule in profile.get("checks", {}).items():
        tables = [
            (check, rule),
            *((f"{check}.stems.{s}", r) for s, r in rule.get("stems", {}).items()),
        ]
        for where, table in tables:
            unknown = set(table) - RULE_KEYS - ({"stems"} if where == check else set())
            if unknown:
                raise ValueError(f"{source}: unknown key(s) {sorted(unknown)} in [checks.{where}]")
            if table.get("nan", "n/a") not in SEVERITY:
                raise ValueError(f"{source}: [checks.{where}] nan must be one of {list(SEVERITY)}")
            for key in RULE_KEYS & set(table) - {"nan"}:
                flag = key in ("abs", "enabled")
                ok = isinstance(table[key], bool) == flag and isinstance(table[key], int | float)
                if not ok:
                    kind = "true or false" if flag else "a number"
                    raise ValueError(f"{source}: [checks.{where}] {key} must be {kind}")


def load_profile(path: str | Path | None = None) -> dict:
    """The QA profile: the packaged ``qa_profile.toml``, with ``path`` merged over it.

    An override file names only what it changes (a key, a check, a per-stem table); everything
    else keeps the default. Unknown keys raise ``ValueError`` (a typo never silently passes).

    Examples
    --------
    >>> load_profile()["checks"]["offset_ms"]["fail_above"]
    20.0
    """
    text = resources.files("stemkit").joinpath("qa_profile.toml").read_text(encoding="utf-8")
    profile = tomllib.loads(text)
    _validate(profile, "qa_profile.toml")
    if path is not None:
        override = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        _validate(override, str(path))
        profile = _merge(profile, override)
    return profile


def _rule(profile: Mapping, check: str, stem: str) -> dict | None:
    rule = profile.get("checks", {}).get(check)
    if rule is None:
        return None
    return _merge(
        {k: v for k, v in rule.items() if k != "stems"}, rule.get("stems", {}).get(stem, {})
    )


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"


def _conditions(rule: Mapping, level: str, unit: str) -> list[tuple[str, float, str]]:
    """``(op, limit, text)`` of a rule's conditions at ``level`` ("fail"/"warn")."""
    var = "|value| " if rule.get("abs") else ""
    out = []
    for side, op in (("above", ">"), ("below", "<")):
        limit = rule.get(f"{level}_{side}")
        if limit is not None:
            out.append((op, float(limit), f"{var}{op} {_fmt(float(limit))} {unit}".strip()))
    return out


def judge(value: float, rule: Mapping | None, unit: str = "") -> tuple[str, str]:
    """``(verdict, threshold text)`` of one value under one rule (see :func:`verdicts`).

    Examples
    --------
    >>> judge(3.2, {"fail_above": 1.0, "warn_above": 0.1}, "%")
    ('fail', 'fail if > 1 %')
    >>> judge(-0.4, {"fail_above": 20.0, "abs": True}, "ms")
    ('pass', 'fail if |value| > 20 ms')
    """
    if rule is None:
        return "n/a", "no rule"
    if not rule.get("enabled", True):
        return "n/a", "disabled"
    every = [(lvl, *c) for lvl in ("fail", "warn") for c in _conditions(rule, lvl, unit)]
    if value is None or math.isnan(value):
        return str(rule.get("nan", "n/a")), "not measurable"
    x = abs(value) if rule.get("abs") else value
    for level, op, limit, text in every:
        if (x > limit) if op == ">" else (x < limit):
            return level, f"{level} if {text}"
    return "pass", "; ".join(f"{level} if {text}" for level, _, _, text in every) or "no limit"


def verdicts(rows: pd.DataFrame, profile: dict) -> pd.DataFrame:
    """Judge every QA row: adds ``verdict`` (pass / warn / fail / n/a) and ``threshold``.

    Rule format (``[checks.NAME]`` in the profile TOML, all keys optional)::

        fail_above = 0.1     # fail when value > 0.1
        warn_above = 0.01    # else warn when value > 0.01
        fail_below / warn_below   # the same, for value < limit
        abs = true           # compare |value| (signed checks: offset_ms, duration_diff_s)
        nan = "n/a"          # verdict of a NaN (unmeasurable) value: n/a, pass, warn or fail
        enabled = false      # keep the value, judge nothing (n/a)
        [checks.NAME.stems.STEM]  # the same keys, for one stem name only

    Fail conditions are tested first, then warn; a row passes when none holds. A check
    without a rule is ``n/a`` ("no rule"). ``threshold`` is the condition that fired
    (``"fail if > 0.1 %"``, ``"fail if |value| > 20 ms"``), or every condition for a pass.

    Examples
    --------
    >>> rows = pd.DataFrame([_row("vocals", "clip_pct", 3.2, "%")])
    >>> verdicts(rows, load_profile())[["verdict", "threshold"]].iloc[0].tolist()
    ['fail', 'fail if > 0.1 %']
    """
    out = pd.DataFrame(rows).copy()
    judged = [
        judge(value, _rule(profile, check, stem), unit)
        for check, stem, value, unit in zip(
            out["check"], out["stem"], out["value"], out["unit"], strict=True
        )
    ]
    out["verdict"] = [v for v, _ in judged]
    out["threshold"] = [t for _, t in judged]
    return out


def _reason(row: Mapping[str, Any]) -> str:
    """``"clip_pct 3.2 % > 0.1 %"`` or ``"offset_ms -100 ms, |value| > 20 ms"`` from a judged
    row, with its detail in parentheses."""
    if pd.isna(row["value"]):
        text = f"{row['check']} not measurable"
    else:
        cond = row["threshold"].split(" if ", 1)[-1]
        text = f"{row['check']} {_fmt(row['value'])} {row['unit']}".strip()
        text += f", {cond}" if cond.startswith("|") else f" {cond}"
    return f"{text} ({row['detail']})" if row.get("detail") else text


def _reasons(group: pd.DataFrame, level: str) -> str:
    return "; ".join(_reason(row) for _, row in group[group["verdict"] == level].iterrows())


def summary_verdicts(v: pd.DataFrame) -> pd.DataFrame:
    """Worst verdict per provider x track x stem, failures first, with what failed.

    Groups by whichever of ``provider``, ``track``, ``stem`` are columns of ``v`` (the output
    of :func:`verdicts`). ``failed`` / ``warned`` list the checks with value and limit, e.g.
    ``"clip_pct 3.2 % > 0.1 % (5645 samples)"``, joined by ``"; "``.

    Examples
    --------
    >>> rows = pd.DataFrame([_row("bass", "clip_pct", 3.2, "%"), _row("bass", "lufs", -20, "LUFS")])
    >>> summary_verdicts(verdicts(rows, load_profile())).iloc[0].to_dict()
    {'stem': 'bass', 'verdict': 'fail', 'n_fail': 1, 'n_warn': 0, 'failed': 'clip_pct 3.2 % > 0.1 %', 'warned': ''}
    """  # noqa: E501
    keys = [k for k in ("provider", "track", "stem") if k in v.columns]
    records = []
    for key, group in v.groupby(keys, sort=False, dropna=False):
        worst = max(group["verdict"], key=SEVERITY.__getitem__)
        records.append(
            {
                **dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                "verdict": worst,
                "n_fail": int((group["verdict"] == "fail").sum()),
                "n_warn": int((group["verdict"] == "warn").sum()),
                "failed": _reasons(group, "fail"),
                "warned": _reasons(group, "warn"),
            }
        )
    out = pd.DataFrame(records, columns=[*keys, "verdict", "n_fail", "n_warn", "failed", "warned"])
    worst_first = out.sort_values("verdict", key=lambda v: -v.map(SEVERITY), kind="stable")
    return worst_first.reset_index(drop=True)


# --------------------------------------------------------------------------- oracle


def _magnitude(spec: np.ndarray, power: float) -> np.ndarray:
    """``|spec| ** power`` (for the usual power 2 without the square root)."""
    return spec.real**2 + spec.imag**2 if power == 2 else np.abs(spec) ** power


def oracle_irm(
    mixture: np.ndarray,
    references: dict[str, np.ndarray],
    sr: int,
    *,
    power: float = 2.0,
    n_fft: int = 4096,
    hop: int = 1024,
) -> dict[str, np.ndarray]:
    """Oracle ideal-ratio-mask estimates: the upper end of the SiSEC score bracket.

    Each reference's mask is ``|S_j|^p / sum_k |S_k|^p`` (``p = 2``: SiSEC's IRM2, ``p = 1``:
    IRM1), from per-channel STFTs (Hann, ``n_fft``, ``hop``), applied to the mixture's STFT and
    inverted to the mixture's length. Bins where every reference is zero are shared equally.

    The references must partition the mixture (``sum(references) == mixture``, as MUSDB's
    four stems do; add the residual as its own reference otherwise): the masks always sum
    to one, so the estimates always sum to the mixture, and a missing source would leak into
    the others. A warning is emitted when the references miss the mixture by more than -30 dB.

    Parameters
    ----------
    mixture : np.ndarray
        ``(channels, samples)`` float32.
    references : dict of str to np.ndarray
        True stems at ``sr``; mono references are copied to every channel, lengths conformed.
    sr : int
        Sample rate (kept for symmetry with the other checks; the masks do not depend on it).
    power, n_fft, hop : float, int, int
        Mask exponent and STFT geometry.

    Returns
    -------
    dict of str to np.ndarray
        Estimate per reference name, float32 like ``mixture``.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(16000) / 8000
    >>> refs = {"low": np.sin(2 * np.pi * 110 * t)[None], "high": np.sin(2 * np.pi * 2000 * t)[None]}
    >>> mix = refs["low"] + refs["high"]
    >>> est = oracle_irm(mix, refs, 8000, n_fft=1024, hop=256)
    >>> from stemkit.metrics import sdr
    >>> sdr(refs["low"], est["low"]) > 40 and float(np.abs(sum(est.values()) - mix).max()) < 1e-4
    True
    """  # noqa: E501
    from stemkit.metrics import reconstruction_db

    x = _as_audio(mixture)
    refs = {k: _conform(_as_audio(r), x.shape[0], x.shape[-1]) for k, r in references.items()}
    recon = reconstruction_db(x, list(refs.values())) if refs else 0.0
    if refs and recon > -30:
        warnings.warn(
            f"oracle_irm: references miss the mixture by {recon:.1f} dB; "
            "they should partition it (add the residual as a reference)",
            stacklevel=2,
        )
    out = {k: np.zeros_like(x) for k in refs}
    if not refs:
        return out
    stft = _SegmentSTFT(x.shape[-1], n_fft, hop)
    equal = np.float32(1.0 / len(refs))
    for channel in range(x.shape[0]):
        for segment in stft.segments():
            mix_spec = stft.forward(x[channel], segment)
            mags = [_magnitude(stft.forward(r[channel], segment), power) for r in refs.values()]
            total = sum(mags)
            for name, mag in zip(refs, mags, strict=True):
                mask = np.divide(mag, total, out=np.full_like(mag, equal), where=total > 0)
                out[name][channel, segment.start : segment.stop] = stft.inverse(
                    mask * mix_spec, segment
                )
    return out


class _SegmentSTFT:
    """STFT and inverse of a long signal, a segment of output samples at a time (bounded
    memory), equal to one whole-signal transform: Hann windows, centred frames, zero padding
    (librosa's ``stft(center=True, pad_mode="constant")`` framing), inverse by weighted
    overlap-add with the window's squared sum over the frames that exist.
    """

    def __init__(self, n_samples: int, n_fft: int, hop: int, frames_per_segment: int = 256):
        self.n, self.n_fft, self.hop = n_samples, n_fft, hop
        self.last = n_samples // hop  # frames 0..last, frame k centred on sample k·hop
        self.window = signal.get_window("hann", n_fft).astype(np.float32)
        self.step = frames_per_segment * hop

    def segments(self):
        for start in range(0, self.n, self.step):
            yield slice(start, min(start + self.step, self.n))

    def _frames(self, segment: slice) -> tuple[int, int]:
        """First and last frame that touch the segment's samples."""
        half = self.n_fft // 2
        first = max(0, -(-(segment.start - half + 1) // self.hop))
        return first, min(self.last, (segment.stop - 1 + half) // self.hop)

    def forward(self, y: np.ndarray, segment: slice) -> np.ndarray:
        """Spectra ``(frames, bins)`` of the frames touching ``segment`` of 1-D ``y``."""
        first, last = self._frames(segment)
        begin = first * self.hop - self.n_fft // 2
        end = last * self.hop + self.n_fft // 2
        region = np.zeros(end - begin, np.float32)
        lo, hi = max(begin, 0), min(end, self.n)
        region[lo - begin : hi - begin] = y[lo:hi]
        frames = np.lib.stride_tricks.sliding_window_view(region, self.n_fft)[:: self.hop]
        return sfft.rfft(frames * self.window, axis=-1, workers=-1)

    def inverse(self, spec: np.ndarray, segment: slice) -> np.ndarray:
        """The samples of ``segment`` from the spectra :meth:`forward` gave for it."""
        first, _ = self._frames(segment)
        frames = sfft.irfft(spec, n=self.n_fft, axis=-1, workers=-1).astype(np.float32)
        frames *= self.window
        begin = first * self.hop - self.n_fft // 2
        total = np.zeros((len(frames) - 1) * self.hop + self.n_fft, np.float32)
        weight = np.zeros_like(total)
        square = self.window**2
        for i in range(len(frames)):  # a few hundred slices: cheaper than a scatter-add
            total[i * self.hop : i * self.hop + self.n_fft] += frames[i]
            weight[i * self.hop : i * self.hop + self.n_fft] += square
        part = slice(segment.start - begin, segment.stop - begin)
        w = weight[part]
        return np.divide(total[part], w, out=np.zeros_like(w), where=w > 1e-8)
