"""The reference-free checks: every stem of one provider's result against the mixture sent.

Every check streams: :func:`check_stems` reads the mixture and the stems block by block
(:mod:`stemkit.audio`), once for each stem on its own (format, levels, speech), once for all
of them together (grams, spectra, silent runs, the coarse lag search), and again only where a
first read found something to look at closer (a silent run to weigh, a lag to refine, a
stem to correlate at its lag). :func:`stem_checks` measures arrays the same way.

Every row is tidy: ``{"stem", "check", "value", "unit", "detail"}`` (the caller adds
``provider`` and ``track``); the table of checks is in :mod:`stemkit.analyze.qa`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import fft as sfft

from stemkit.analyze.qa.meters import (
    _GATE_S,
    FLOOR_DB,
    LoudnessMeter,
    TruePeakMeter,
    _db,
)
from stemkit.analyze.qa.spectral import (
    LOSS_DB,
    LOSS_RISE_DB,
    MIN_SHARE_DB,
    ClipCounter,
    Dropouts,
    Spectrum,
    find_cliff,
)
from stemkit.analyze.qa.speech import VoiceStream, needs_speech, speech_rows
from stemkit.audio import BLOCK, ArraySource, Source, as_audio, blocks, conform, lockstep, resample

#: ``stem`` of the rows that concern all stems together / the job
ALL = "(all)"
JOB = "(job)"
#: a sample at or above this magnitude counts as clipped
CLIP_LEVEL = 0.999
#: the lag search of ``offset_ms`` spans +-this many seconds
LAG_SEARCH_S = 0.25
#: a lag other than 0 is reported only when it correlates this much better than lag 0
LAG_MARGIN = 1.2
#: a stem whose side (L - R) is this far below its mid (L + R) is mono: no swap check
MONO_SIDE_DB = -30.0
#: ``gain_db`` is measured only when the stems explain the mixture to this level (dB re it)
GAIN_FIT_DB = -15.0


def _row(stem: str, check: str, value: float, unit: str, detail: str = "") -> dict[str, Any]:
    return {"stem": stem, "check": check, "value": float(value), "unit": unit, "detail": detail}


def _channel_names(n: int) -> list[str]:
    return ["L", "R"] if n == 2 else [f"ch{i}" for i in range(n)]


def _level_rows(
    name: str, src: Source, clipped: int, peak: TruePeakMeter, loud: LoudnessMeter, sums: np.ndarray
) -> list[dict[str, Any]]:
    """Checks of the stem on its own: clipping, peaks, near-silence, loudness, DC."""
    lufs = loud.lufs()
    short = src.n < round(_GATE_S * src.sr)
    means = sums / max(src.n, 1)
    shown = np.round(means, 4) + 0.0  # no "-0.0000" for rounding noise around zero
    dc = " ".join(f"{c} {m:+.4f}" for c, m in zip(_channel_names(len(means)), shown, strict=True))
    size = src.n * src.channels
    return [
        _row(
            name,
            "clip_pct",
            100 * clipped / max(size, 1),
            "%",
            f"{clipped} samples at full scale or on a flat ceiling",
        ),
        _row(name, "sample_peak_dbfs", _db(peak.sample_peak**2), "dBFS"),
        _row(name, "true_peak_dbtp", _db(peak.peak() ** 2), "dBTP", "4x oversampled"),
        _row(name, "silent", _db(loud.loudest()), "dBFS", "loudest 400 ms window (RMS)"),
        _row(name, "lufs", lufs, "LUFS", _lufs_note(lufs, short)),
        _row(name, "dc_offset", float(np.abs(means).max(initial=0.0)), "FS", dc),
    ]


def _lufs_note(lufs: float, short: bool) -> str:
    if math.isnan(lufs):
        return "every block below the -70 LUFS gate"
    return "shorter than 400 ms: one block" if short else ""


def _format_rows(
    name: str, n: int, stem_channels: int, stem_rate: int, expected: tuple[float, int, int]
) -> list[dict[str, Any]]:
    """Duration, sample rate and channel count of a stem ``n`` samples long against the
    input's."""
    duration, rate, channels = expected
    stem_duration = n / stem_rate
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
            float(stem_channels == channels),
            "",
            f"stem {stem_channels}, input {channels}",
        ),
    ]


# --------------------------------------------------------------------------- against the mixture


@dataclass
class StemAudio:
    """One stem to check, read block by block: as delivered (its own rate, channels and
    length) and conformed to the mixture (resampled to its rate, its channels, cut or
    zero-padded to its length; see :func:`stemkit.audio.conform`).

    Attributes
    ----------
    native : Source
        The stem as decoded (:class:`stemkit.audio.ArraySource` or ``FileSource``).
    conformed : Source
        The stem at the mixture's rate, channel count and length.
    """

    native: Source
    conformed: Source


def _pooled(x: np.ndarray, q: int) -> np.ndarray:
    """Each channel averaged over ``q`` consecutive samples (box filter, then decimation)."""
    m = x.shape[-1] // q
    kernel = np.full(q, 1 / q, np.float32)  # einsum: no BLAS threads (see _dot)
    return np.einsum("cmq,q->cm", x[:, : m * q].reshape(x.shape[0], m, q), kernel)


def _parabolic(left: float, mid: float, right: float) -> float:
    """Sub-sample position of a peak from three neighbouring values."""
    den = left - 2 * mid + right
    return 0.0 if den == 0 else float(np.clip(0.5 * (left - right) / den, -0.5, 0.5))


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product of two float32 vectors: einsum, as fast as BLAS here, ~40x more accurate
    than OpenBLAS's float32 sdot on millions of samples, and never spawns BLAS threads."""
    return float(np.einsum("i,i->", a, b))


def _gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Inner products of every channel of ``a`` with every channel of ``b``."""
    return np.array([[_dot(ai, bj) for bj in b] for ai in a])


def _corr(num: float, a: float, b: float) -> float:
    return num / math.sqrt(a * b) if a > 0 and b > 0 else float("nan")


class _LagSearch:
    """The coarse lag search of one stem on signals pooled to ~4 kHz, fed block by block:
    ``sum_c |corr(stem ch, mixture ch)|`` at every lag within +-:data:`LAG_SEARCH_S`. A block
    of the mixture is correlated once the stem's next block (the lags reach into it) arrives.
    """

    def __init__(self, channels: int, max_lag: int) -> None:
        self.max_lag = max_lag
        self.corr = np.zeros(2 * max_lag + 1)
        self.norm_s = np.zeros(channels)
        self.norm_x = np.zeros(channels)
        self._before = np.zeros((channels, max_lag), np.float32)
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._per_channel = np.zeros((channels, 2 * max_lag + 1))

    def update(self, s: np.ndarray, x: np.ndarray) -> None:
        """The next pooled samples of the stem ``s`` and the mixture ``x`` (same shape)."""
        self.norm_s += np.einsum("ij,ij->i", s, s)
        self.norm_x += np.einsum("ij,ij->i", x, x)
        if self._prev is not None:
            self._correlate(*self._prev, s[:, : self.max_lag])
        self._prev = (s, x)

    def _correlate(self, s: np.ndarray, x: np.ndarray, after: np.ndarray) -> None:
        lag = self.max_lag
        if after.shape[-1] < lag:
            after = np.pad(after, ((0, 0), (0, lag - after.shape[-1])))
        seg = np.concatenate([self._before, s, after], axis=-1)
        if x.shape[-1]:
            n_fft = sfft.next_fast_len(seg.shape[-1] + x.shape[-1], real=True)
            spec = sfft.rfft(seg, n_fft, axis=-1) * np.conj(sfft.rfft(x, n_fft, axis=-1))
            self._per_channel += sfft.irfft(spec, n_fft, axis=-1)[:, : 2 * lag + 1]
        self._before = seg[:, -2 * lag : -lag] if lag else seg[:, :0]

    def finish(self) -> np.ndarray:
        """``sum_c |corr|`` per lag, ``-max_lag .. +max_lag``."""
        if self._prev is not None:
            self._correlate(*self._prev, self._prev[0][:, :0])
            self._prev = None
        return np.abs(self._per_channel).sum(axis=0)


class _Stem:
    """What pass 1 gathers of one conformed stem."""

    def __init__(self, name: str, channels: int, n: int, sr: int, max_lag: int) -> None:
        self.name = name
        self.cross = np.zeros((channels, channels))  # stem x mixture channels, lag 0
        self.gram = np.zeros((channels, channels))
        self.spectrum = Spectrum(channels, sr)
        self.dropouts = Dropouts(n, sr)
        self.lags = _LagSearch(channels, max_lag)
        self.lag, self.strength = 0.0, math.nan
        self.refine: np.ndarray | None = None  # full-rate lags to try (pass 2)
        self.scores: np.ndarray | None = None  # per lag and channel (pass 2)


def _coarse_lag(st: _Stem, q: int) -> None:
    """The lag of the stem from pass 1 (0 unless another lag correlates LAG_MARGIN times
    better; NaN for a silent stem); sets ``refine`` when it needs pass 2 at full rate."""
    corr = st.lags.finish()
    norms = np.sqrt(st.lags.norm_s * st.lags.norm_x)
    if not norms.any():
        st.lag = st.strength = math.nan
        return
    lag_max = st.lags.max_lag
    k = int(np.argmax(corr))
    if corr[k] <= LAG_MARGIN * corr[lag_max]:
        st.lag, st.strength = 0.0, float(corr[lag_max] / norms.sum())
        return
    st.strength = float(corr[k] / norms.sum())
    st.refine = np.arange(-q - 1, q + 2) + (k - lag_max) * q


def _refined_lag(st: _Stem) -> None:
    score = np.abs(st.scores).sum(axis=1)  # sum over channels of |sum over time|
    i = int(np.clip(np.argmax(score), 1, len(score) - 2))
    st.lag = float(st.refine[i] + _parabolic(*score[i - 1 : i + 2]))


def _image_rows(st: _Stem, gram_x: np.ndarray, sr: int, shift: int) -> list[dict[str, Any]]:
    """Offset, polarity and channel swap of a stem, from its grams at the lag found."""
    name, lag, strength = st.name, st.lag, st.strength
    if math.isnan(lag):
        return [
            _row(name, check, float("nan"), unit, "silent stem")
            for check, unit in (("offset_ms", "ms"), ("polarity", "corr"), ("channel_swap", "corr"))
        ]
    cross, gram_s = st.cross, st.gram
    names = _channel_names(cross.shape[0])
    per_channel = [_corr(cross[c, c], gram_s[c, c], gram_x[c, c]) for c in range(len(names))]
    polarity = float(np.nanmin(per_channel)) if not np.isnan(per_channel).all() else math.nan
    ms = 1000 * lag / sr
    where = f"at lag {1000 * shift / sr:+.1f} ms"
    if ms:
        found = f"stem {'late' if ms > 0 else 'early'}, corr {strength:.2f}"
    else:
        found = f"no lag beats 0 by x{LAG_MARGIN}, corr {strength:.2f}"
    signs = " ".join(f"{c} {r:+.2f}" for c, r in zip(names, per_channel, strict=True))
    rows = [
        _row(name, "offset_ms", ms, "ms", found),
        _row(name, "polarity", polarity, "corr", f"{signs} {where}"),
    ]
    if cross.shape[0] == 2:
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


def _lost_above(edges: np.ndarray, miss_db: np.ndarray, cut: float) -> bool:
    """Whether the stems together miss the mixture's content right above ``cut`` (the band a
    sixth of an octave above it) and much more than in the half octave below it: a cut stem's
    content goes missing right where it is cut."""
    low = edges[:-1]
    above = (low >= cut * 2 ** (1 / 7)) & (low < cut * 2 ** (1 / 3))
    below = (low >= cut / 2 ** (1 / 2)) & (low < cut / 2 ** (1 / 6))
    if not above.any() or not below.any():
        return False
    lost, before = float(np.median(miss_db[above])), float(np.median(miss_db[below]))
    return lost >= LOSS_DB and lost - before >= LOSS_RISE_DB


@dataclass
class _Pass1:
    """Pass 1 over the mixture and every conformed stem, block by block."""

    stems: list[_Stem]
    sr: int
    mix_gram: np.ndarray
    stem_gram: np.ndarray
    proj: np.ndarray
    mix: Spectrum
    total: Spectrum
    missing: Spectrum
    err_energy: float = 0.0


def _defect_rows(p1: _Pass1) -> list[dict]:
    """The checks that use what the stems together miss of the mixture: ``bandwidth_hz``
    (stem ``(all)``), and per stem ``cutoff_hz`` and ``dropout_s``."""
    band_edges, band_db = p1.mix.bands()
    audible = band_db >= band_db.max() - 70.0  # bands where the mixture has content
    top = int(np.flatnonzero(audible).max()) + 1 if audible.any() else 0
    edges, mix_db = band_edges[: top + 1], band_db[:top]
    total_db = p1.total.bands()[1][:top] - mix_db
    miss_db = p1.missing.bands()[1][:top] - mix_db
    rows, cuts = [], {}
    for st in p1.stems:
        share = st.spectrum.bands()[1][:top] - mix_db
        cut = find_cliff(edges, share, min_level_db=MIN_SHARE_DB) if top > 8 else None
        if cut is not None and not _lost_above(edges, miss_db, cut):
            cut = None  # the source itself ends there: nothing of the mixture went missing
        if cut is not None:
            cuts[st.name] = cut
        rows.append(
            _row(
                st.name,
                "cutoff_hz",
                cut if cut is not None else math.nan,
                "Hz",
                "" if cut is None else "cut off: the stems together miss the mixture above",
            )
        )
        length, start = st.dropouts.longest()
        detail = f"silent from {start:.3f} s while the mixture still needs it" if length else ""
        rows.append(_row(st.name, "dropout_s", length, "s", detail))
    whole = find_cliff(edges, total_db) if top > 8 else None
    found = [f for f in (whole, *cuts.values()) if f is not None]
    top_khz = float(band_edges[top]) / 1000 if top else math.nan
    if found:
        who = "every stem (their sum is cut)" if whole is not None else ", ".join(cuts)
        detail = f"content of the mixture missing above this: {who}; mixture to {top_khz:.1f} kHz"
    else:
        detail = f"no content missing below the mixture's {top_khz:.1f} kHz"
    all_row = _row(ALL, "bandwidth_hz", min(found) if found else math.nan, "Hz", detail)
    return [all_row, *rows]


def _gain_rows(p1: _Pass1) -> list[dict]:
    """``gain_db`` of each stem: the least-squares fit ``mixture = sum_k a_k stem_k`` gives
    ``a_k = 1`` for stems that add up to the mixture and ``1/g`` for a stem scaled by ``g``.
    NaN when fewer than two stems, or when the stems do not explain the mixture."""
    names = [st.name for st in p1.stems]
    nan_rows = [
        _row(name, "gain_db", math.nan, "dB", "needs stems that add up to the mixture")
        for name in names
    ]
    if len(names) < 2:
        return nan_rows
    gram, proj = p1.stem_gram, p1.proj
    energy = float(np.trace(p1.mix_gram))
    live = np.diag(gram) > 1e-10 * energy
    if energy <= 0 or live.sum() < 2:
        return nan_rows
    coef = np.full(len(names), math.nan)
    sol = np.linalg.lstsq(gram[np.ix_(live, live)], proj[live], rcond=None)[0]
    coef[live] = sol
    explained = float(sol @ proj[live])  # energy of the fitted part
    residual_db = _db(max(energy - explained, 0.0) / energy)
    if residual_db > GAIN_FIT_DB:
        return [
            {**r, "detail": f"the stems explain the mixture only to {residual_db:.0f} dB"}
            for r in nan_rows
        ]
    rows = []
    for name, a in zip(names, coef, strict=True):
        value = -20 * math.log10(a) if a > 0 else math.nan
        rows.append(_row(name, "gain_db", value, "dB", f"mixture fit: {a:.3f} x stem"))
    return rows


def _recon_row(p1: _Pass1) -> dict[str, Any]:
    mix_energy = float(np.trace(p1.mix_gram))
    value = _db(p1.err_energy / mix_energy) if mix_energy > 0 else math.nan
    return _row(ALL, "recon_db", value, "dB", f"mixture - sum of {len(p1.stems)} stems")


def _block_size(q: int, block: int) -> int:
    return max(q, block - block % q)


def _pass1(mixture: Source, stems: dict[str, StemAudio], block: int) -> _Pass1:
    """Grams, spectra, silent runs and the coarse lag search, in one read of everything."""
    sr, n, ch = mixture.sr, mixture.n, mixture.channels
    q = max(1, sr // 4000)  # the lag search runs at ~4 kHz
    max_lag = max(1, round(LAG_SEARCH_S * sr / q))
    k = len(stems)
    p1 = _Pass1(
        stems=[_Stem(name, ch, n, sr, max_lag) for name in stems],
        sr=sr,
        mix_gram=np.zeros((ch, ch)),
        stem_gram=np.zeros((k, k)),
        proj=np.zeros(k),
        mix=Spectrum(ch, sr),
        total=Spectrum(ch, sr),
        missing=Spectrum(ch, sr),
    )
    sources = [mixture, *(s.conformed for s in stems.values())]
    for start, (x, *ys) in lockstep(sources, n, _block_size(q, block)):
        p1.mix_gram += _gram(x, x)
        p1.mix.update(x)
        xp = _pooled(x, q)
        total = np.zeros_like(x)
        for i, (st, y) in enumerate(zip(p1.stems, ys, strict=True)):
            total += y
            cross, gram = _gram(y, x), _gram(y, y)
            st.cross += cross
            st.gram += gram
            p1.proj[i] += np.trace(cross)
            p1.stem_gram[i, i] += np.trace(gram)
            for j in range(i):
                p1.stem_gram[i, j] += sum(_dot(a, b) for a, b in zip(y, ys[j], strict=True))
                p1.stem_gram[j, i] = p1.stem_gram[i, j]
            st.spectrum.update(y)
            st.dropouts.update(start, y)
            st.lags.update(_pooled(y, q), xp)
        p1.total.update(total)
        missing = np.subtract(x, total, out=total)  # in place: one block, not two
        p1.missing.update(missing)
        p1.err_energy += float(np.einsum("ij,ij->", missing, missing, dtype=np.float64))
    for st in p1.stems:
        _coarse_lag(st, q)
    return p1


def _pass2(mixture: Source, stems: dict[str, StemAudio], p1: _Pass1, block: int) -> None:
    """The dropouts' energies and the full-rate lag refinement, in a second read (only when a
    stem has silent runs or a lag to refine)."""
    pairs = zip(p1.stems, stems.values(), strict=True)
    refine = [(st, s) for st, s in pairs if st.refine is not None]
    runs = any(st.dropouts.candidates for st in p1.stems)
    if not refine and not runs:
        return
    for st, _ in refine:
        st.scores = np.zeros((len(st.refine), mixture.channels))
    sources = [mixture, *(s.conformed for s in stems.values())] if runs else [mixture]
    for start, (x, *ys) in lockstep(sources, mixture.n, block):
        stop = start + x.shape[-1]
        if runs:
            missing = x - np.sum(ys, axis=0, dtype=np.float32)
            for st in p1.stems:
                st.dropouts.measure(start, x, missing)
        for st, src in refine:
            lo, hi = int(st.refine[0]), int(st.refine[-1])
            ext = src.conformed.read(start + lo, stop + hi)
            for i, lag in enumerate(st.refine):
                seg = ext[:, lag - lo : lag - lo + x.shape[-1]]
                st.scores[i] += [_dot(a, b) for a, b in zip(seg, x, strict=True)]
    for st, _ in refine:
        _refined_lag(st)


def _shifted_grams(
    mixture: Source, src: StemAudio, st: _Stem, shift: int, block: int
) -> np.ndarray:
    """The stem's grams with the mixture at ``shift`` (the overlapping parts only), set on
    ``st``; returns the mixture's gram over its overlapping part."""
    ch, n = mixture.channels, mixture.n
    st.cross, st.gram = np.zeros((ch, ch)), np.zeros((ch, ch))
    gram_x = np.zeros((ch, ch))
    for start, (x,) in lockstep([mixture], n, block):
        stop = start + x.shape[-1]
        y = src.conformed.read(start + shift, stop + shift)
        lo, hi = max(start, -shift), min(stop, n - shift)  # mixture samples with a partner
        if lo > start or hi < stop:
            x = x.copy()
            x[:, : max(0, lo - start)] = 0
            x[:, max(0, hi - start) :] = 0
        st.cross += _gram(y, x)
        st.gram += _gram(y, y)
        gram_x += _gram(x, x)
    return gram_x


def _native_rows(name: str, src: Source, expected: tuple[float, int, int], block: int) -> list:
    """The rows of one stem on its own (format, levels, speech), in one read of it."""
    rate = src.sr
    rows = _format_rows(name, src.n, src.channels, rate, expected)
    clip = ClipCounter(src.channels, full_scale=CLIP_LEVEL)
    loud = LoudnessMeter(src.channels, rate)
    peak = TruePeakMeter(src.channels, src.n)
    sums = np.zeros(src.channels)
    voice = VoiceStream(rate) if needs_speech(name) else None
    seg = round(0.1 * rate)
    for _, y in blocks(src, max(seg, block - block % seg)):
        clip.update(y)
        loud.update(y)
        peak.update(y)
        sums += y.sum(axis=-1)  # float32 pairwise sums of a block: accurate, 5x faster
        if voice is not None:
            voice.update(y)
    rows += _level_rows(name, src, clip.count(), peak, loud, sums)
    if voice is not None:
        rows += speech_rows(name, voice.audio(), VoiceStream.SR)
    return rows


def check_stems(
    mixture: Source,
    stems: Mapping[str, StemAudio],
    *,
    input_info: dict | None = None,
    workers: int = 1,
    block: int = BLOCK,
) -> list[dict]:
    """Reference-free checks of every stem against the mixture that was separated, read
    block by block (:mod:`stemkit.audio`): memory holds a block of each, whatever the
    length of the track.

    Parameters
    ----------
    mixture : Source
        The input, ``(channels, samples)`` at its rate (``mixture.sr``).
    stems : dict of str to StemAudio
        Each stem as delivered and conformed to the mixture.
    input_info : dict, optional
        ``duration`` (s), ``sample_rate`` and ``channels`` of the file that was submitted;
        by default those of ``mixture``.
    workers : int, default 1
        Stems measured on their own in parallel threads (1: sequential).
    block : int
        Samples read at a time.

    Returns
    -------
    list of dict
        The rows of :func:`stem_checks`, in its order.

    Examples
    --------
    >>> import numpy as np
    >>> from stemkit.audio import ArraySource
    >>> rng = np.random.default_rng(0)
    >>> a, b = (0.1 * rng.standard_normal((2, 8000)).astype(np.float32) for _ in range(2))
    >>> stems = {k: StemAudio(ArraySource(y, 8000), ArraySource(y, 8000))
    ...          for k, y in (("vocals", a), ("drums", b))}
    >>> rows = check_stems(ArraySource(a + b, 8000), stems, block=3000)
    >>> [round(r["value"]) for r in rows if r["check"] == "recon_db"]
    [-200]
    """
    sr = mixture.sr
    info = input_info or {}
    expected = (
        float(info.get("duration", mixture.n / sr)),
        int(info.get("sample_rate", sr)),
        int(info.get("channels", mixture.channels)),
    )

    def one(name: str) -> list[dict[str, Any]]:
        return _native_rows(name, stems[name].native, expected, block)

    if min(len(stems), workers) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            native = dict(zip(stems, pool.map(one, stems), strict=True))
    else:
        native = {name: one(name) for name in stems}
    p1 = _pass1(mixture, dict(stems), block)
    _pass2(mixture, dict(stems), p1, block)
    rows = []
    for st, (name, src) in zip(p1.stems, stems.items(), strict=True):
        shift = 0 if math.isnan(st.lag) else round(st.lag)
        gram_x = _shifted_grams(mixture, src, st, shift, block) if shift else p1.mix_gram
        rows += native[name] + _image_rows(st, gram_x, sr, shift)
    return [_recon_row(p1), *rows, *_gain_rows(p1), *_defect_rows(p1)]


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
        ``silent``, ``lufs``, ``dc_offset``, the speech rows of its kind
        (:func:`~stemkit.analyze.qa.speech.speech_rows`), ``offset_ms``, ``polarity`` and,
        for stereo stems, ``channel_swap``; then ``gain_db`` per stem, ``bandwidth_hz``
        (stem ``"(all)"``), and per stem ``cutoff_hz`` and ``dropout_s``. NaN where a value
        is undefined (loudness, lag or polarity of a silent stem; channel swap of a mono
        stem).

    Notes
    -----
    The arrays are measured by :func:`check_stems`, block by block, as files are in a
    batch's analysis. Stems are compared with the mixture after conforming them to its shape
    (resampled to ``sr``, mono copied to every channel, the tail cut or zero-padded: a short
    stem's missing tail counts in ``recon_db``).

    ``offset_ms`` is the lag, within +-250 ms, that maximises the sum over channels of
    ``|cross-correlation(stem channel, mixture channel)|`` (both box-filtered to ~4 kHz,
    then refined at full rate), so an inverted stem or channel still aligns. A lag other
    than 0 is kept only when it correlates ``LAG_MARGIN`` (1.2) times better than lag 0: a
    tone correlates about as well one period away, and no evidence of a shift means no
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
    x = as_audio(mixture)
    sr = int(sr)
    sources = {}
    for name, y in stems.items():
        rate = int((stem_sr or {}).get(name, sr))
        y = as_audio(y)
        conformed = conform(resample(y, rate, sr), x.shape[0], x.shape[-1])
        sources[name] = StemAudio(ArraySource(y, rate), ArraySource(conformed, sr))
    return check_stems(ArraySource(x, sr), sources, input_info=input_info, workers=workers)


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
