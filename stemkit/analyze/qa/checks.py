"""The reference-free checks: every stem of one provider's result against the mixture sent.

Every row is tidy: ``{"stem", "check", "value", "unit", "detail"}`` (the caller adds
``provider`` and ``track``); the table of checks is in :mod:`stemkit.analyze.qa`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import fft as sfft

from stemkit.analyze.qa.meters import (
    _GATE_S,
    FLOOR_DB,
    _block_power,
    _db,
    _true_peak,
    integrated_loudness,
)
from stemkit.analyze.qa.spectral import (
    LOSS_DB,
    LOSS_RISE_DB,
    MIN_SHARE_DB,
    band_levels,
    clipped_samples,
    find_cliff,
    longest_dropout,
)
from stemkit.analyze.qa.speech import speech_rows
from stemkit.audio import as_audio, conform, resample

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


def _level_rows(name: str, y: np.ndarray, sr: int) -> list[dict[str, Any]]:
    """Checks of the stem on its own: clipping, peaks, near-silence, loudness, DC."""
    clipped = clipped_samples(y, full_scale=CLIP_LEVEL)
    peak = float(max(y.max(initial=0.0), -y.min(initial=0.0)))
    loudest = float(_block_power(y, sr).mean(axis=0).max(initial=0.0))
    lufs = integrated_loudness(y, sr)
    short = y.shape[-1] < round(_GATE_S * sr)
    means = y.sum(axis=-1) / max(y.shape[-1], 1)  # float32 pairwise sums: accurate, 5x faster
    dc = " ".join(f"{c} {m:+.4f}" for c, m in zip(_channel_names(len(means)), means, strict=True))
    return [
        _row(
            name,
            "clip_pct",
            100 * clipped / max(y.size, 1),
            "%",
            f"{clipped} samples at full scale or on a flat ceiling",
        ),
        _row(name, "sample_peak_dbfs", _db(peak**2), "dBFS"),
        _row(name, "true_peak_dbtp", _db(_true_peak(y) ** 2), "dBTP", "4x oversampled"),
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
    band_edges: np.ndarray = field(init=False)
    band_db: np.ndarray = field(init=False)
    _spectra: dict[int, np.ndarray] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.q = max(1, self.sr // 4000)  # the lag search runs at ~4 kHz
        self.pooled = _pooled(self.x, self.q)
        self.gram = _gram(self.x, self.x)
        self.band_edges, self.band_db = band_levels(self.x, self.sr)
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


def _defect_rows(mix: _Mixture, names: list[str], conformed: list[np.ndarray]) -> list[dict]:
    """The checks that use what the stems together miss of the mixture: ``bandwidth_hz``
    (stem ``(all)``), and per stem ``cutoff_hz`` and ``dropout_s``."""
    total = np.zeros_like(mix.x)
    for stem in conformed:
        total += stem
    audible = mix.band_db >= mix.band_db.max() - 70.0  # bands where the mixture has content
    top = int(np.flatnonzero(audible).max()) + 1 if audible.any() else 0
    edges, mix_db = mix.band_edges[: top + 1], mix.band_db[:top]
    total_db = band_levels(total, mix.sr)[1][:top] - mix_db
    missing = np.subtract(mix.x, total, out=total)  # in place: one track-sized array, not two
    del total
    miss_db = band_levels(missing, mix.sr)[1][:top] - mix_db
    rows, cuts = [], {}
    for name, y in zip(names, conformed, strict=True):
        share = band_levels(y, mix.sr)[1][:top] - mix_db
        cut = find_cliff(edges, share, min_level_db=MIN_SHARE_DB) if top > 8 else None
        if cut is not None and not _lost_above(edges, miss_db, cut):
            cut = None  # the source itself ends there: nothing of the mixture went missing
        if cut is not None:
            cuts[name] = cut
        rows.append(
            _row(
                name,
                "cutoff_hz",
                cut if cut is not None else math.nan,
                "Hz",
                "" if cut is None else "cut off: the stems together miss the mixture above",
            )
        )
        length, start = longest_dropout(y, mix.x, missing, mix.sr)
        detail = f"silent from {start:.3f} s while the mixture still needs it" if length else ""
        rows.append(_row(name, "dropout_s", length, "s", detail))
    whole = find_cliff(edges, total_db) if top > 8 else None
    found = [f for f in (whole, *cuts.values()) if f is not None]
    top_khz = float(mix.band_edges[top]) / 1000 if top else math.nan
    if found:
        who = "every stem (their sum is cut)" if whole is not None else ", ".join(cuts)
        detail = f"content of the mixture missing above this: {who}; mixture to {top_khz:.1f} kHz"
    else:
        detail = f"no content missing below the mixture's {top_khz:.1f} kHz"
    all_row = _row(ALL, "bandwidth_hz", min(found) if found else math.nan, "Hz", detail)
    return [all_row, *rows]


def _gain_rows(mix: _Mixture, names: list[str], conformed: list[np.ndarray]) -> list[dict]:
    """``gain_db`` of each stem: the least-squares fit ``mixture = sum_k a_k stem_k`` gives
    ``a_k = 1`` for stems that add up to the mixture and ``1/g`` for a stem scaled by ``g``.
    NaN when fewer than two stems, or when the stems do not explain the mixture."""
    nan_rows = [
        _row(name, "gain_db", math.nan, "dB", "needs stems that add up to the mixture")
        for name in names
    ]
    if len(conformed) < 2:
        return nan_rows

    def inner(s: np.ndarray, t: np.ndarray) -> float:
        return sum(_dot(a, b) for a, b in zip(s, t, strict=True))

    gram = np.array([[inner(s, t) for t in conformed] for s in conformed])
    proj = np.array([inner(s, mix.x) for s in conformed])
    energy = float(np.trace(mix.gram))
    live = np.diag(gram) > 1e-10 * energy
    if energy <= 0 or live.sum() < 2:
        return nan_rows
    coef = np.full(len(conformed), math.nan)
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
        stems, ``channel_swap``; for a ``dialogue`` (or ``speech``) stem ``dialogue_bak``.
        NaN where a value is undefined (loudness, lag or polarity of
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
    mix = _Mixture(as_audio(mixture), int(sr))
    info = input_info or {}
    expected = (
        float(info.get("duration", mix.x.shape[-1] / mix.sr)),
        int(info.get("sample_rate", mix.sr)),
        int(info.get("channels", mix.x.shape[0])),
    )
    rates = {name: int((stem_sr or {}).get(name, mix.sr)) for name in stems}

    def one(name: str) -> tuple[list[dict[str, Any]], np.ndarray]:
        return _stem_rows(name, as_audio(stems[name]), rates[name], mix, expected)

    if min(len(stems), workers) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(one, stems))
    else:
        done = [one(name) for name in stems]
    rows = [row for stem_rows, _ in done for row in stem_rows]
    conformed = [c for _, c in done]
    gains = _gain_rows(mix, list(stems), conformed)
    return [_recon_row(mix, conformed), *rows, *gains, *_defect_rows(mix, list(stems), conformed)]


def _stem_rows(
    name: str, y: np.ndarray, rate: int, mix: _Mixture, expected: tuple[float, int, int]
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Every row of one stem, and the stem conformed to the mixture (for ``recon_db``)."""
    rows = _format_rows(name, y, rate, expected) + _level_rows(name, y, rate)
    rows += speech_rows(name, y, rate)
    conformed = conform(resample(y, rate, mix.sr), mix.x.shape[0], mix.x.shape[-1])
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
