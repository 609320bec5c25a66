"""Reference-free measurements for delivery defects: band limits, dropouts, clipped plateaus.

Each function reads a stem (and the mixture where it needs one) and returns numbers that
:mod:`stemkit.analyze.qa.checks` turns into rows:

- :func:`band_levels` / :func:`find_cliff`: long-term spectra in 1/6-octave bands and the
  lowest frequency above which a spectrum falls off a *cliff* (:data:`CLIFF_DB` within a
  third of an octave and never recovers). Applied to the stem's share of the mixture
  (stem/mixture per band) it finds a stem cut off against the mixture (``bandwidth_hz``: a
  low-pass, a codec, a separator that only works up to 11 kHz). Because a source can be
  band-limited itself (a 16 kHz dialogue recording, a synth pad), a stem's cut only counts
  where the stems *together* then miss the mixture's content; the sum of the stems cut off
  against the mixture means every stem was. Soft masks and natural roll-offs fall far less
  steeply.
- :func:`longest_dropout`: the longest stretch of digital silence in a stem during which the
  stems together miss part of the mixture.
- :func:`clipped_samples`: samples at full scale or on flat plateaus at the channel's peak.

Each has a streaming form (:class:`Spectrum`, :class:`Dropouts`, :class:`ClipCounter`) that
takes the signal block by block, so memory stays flat on long tracks.

Examples
--------
>>> import numpy as np
>>> import scipy.signal
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((1, 44100 * 4)).astype(np.float32) * 0.1
>>> sos = scipy.signal.butter(8, 8000, fs=44100, output="sos")
>>> cut = scipy.signal.sosfiltfilt(sos, x).astype(np.float32)
>>> edges, mix = band_levels(x, 44100)
>>> _, stem = band_levels(cut, 44100)
>>> round(find_cliff(edges, stem - mix) / 1000, 1)           # kHz
8.0
>>> find_cliff(edges, mix - mix) is None
True
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft

#: a cliff: the spectrum falls this many dB within a third of an octave and stays down
CLIFF_DB = 30.0
#: a stem's cut is not judged where its share is below this (it is barely there)
MIN_SHARE_DB = -40.0
#: a silent stretch of a stem is a dropout when the stems together miss this much of the
#: mixture there (dB re the mixture's energy in the stretch)
DROPOUT_MISSING_DB = -20.0
#: ... and what is missing rises by this much against the DROPOUT_CONTEXT_S around it (what
#: a broken other stem leaves out is missing there too)
DROPOUT_RISE_DB = 10.0
DROPOUT_CONTEXT_S = 0.5
#: a stem's cut counts when what the stems miss right above it is at least this loud (dB re
#: the mixture) and LOSS_RISE_DB louder than what they miss below it
LOSS_DB = -30.0
LOSS_RISE_DB = 10.0
#: samples at or below this magnitude are digital silence (-100 dBFS)
SILENCE = 1e-5
#: bands start here (below, 1/6 octave is a few bins wide)
LOW_HZ = 500.0
_N_FFT = 4096
_BLOCK = 256  # frames transformed at once


class Spectrum:
    """Mean power spectrum over channels and Hann frames (hop ``n_fft / 2``, frames from the
    first sample while they fit; a signal shorter than one frame is zero-padded to one) of
    audio fed block by block, in order. :func:`band_levels` turns it into band levels.

    Parameters
    ----------
    channels : int
        Channel count.
    sr : int
        Rate in Hz (sets the frame length, :data:`_N_FFT` at 44.1 kHz).
    """

    def __init__(self, channels: int, sr: int) -> None:
        self.sr = int(sr)
        self.n_fft = max(256, int(2 ** round(math.log2(_N_FFT * self.sr / 44100))))
        self._window = np.hanning(self.n_fft).astype(np.float32)
        self._buf = np.zeros((channels, 0), np.float32)
        self._total = np.zeros(self.n_fft // 2 + 1)
        self._count = 0
        self._frames = 0  # frames taken: none means the signal is shorter than one

    def update(self, x: np.ndarray) -> None:
        """The next samples, float32 ``(channels, samples)``."""
        buf = np.concatenate([self._buf, x], axis=-1) if self._buf.shape[-1] else x
        hop = self.n_fft // 2
        frames = (buf.shape[-1] - self.n_fft) // hop + 1 if buf.shape[-1] >= self.n_fft else 0
        if frames:
            self._add(buf, frames)
        self._buf = buf[:, frames * hop :].copy()  # the caller may reuse its block

    def _add(self, buf: np.ndarray, frames: int) -> None:
        starts = np.arange(frames) * (self.n_fft // 2)
        for ch in buf:
            for i in range(0, frames, _BLOCK):
                idx = starts[i : i + _BLOCK, None] + np.arange(self.n_fft)
                spec = sfft.rfft(ch[idx] * self._window, axis=-1)
                self._total += (spec.real**2 + spec.imag**2).sum(axis=0)
                self._count += len(idx)
        self._frames += frames

    def power(self) -> np.ndarray:
        """``(n_fft / 2 + 1,)`` mean power per FFT bin."""
        if not self._frames:  # shorter than one frame: one zero-padded frame
            rest = self._buf
            self._add(np.pad(rest, ((0, 0), (0, self.n_fft - rest.shape[-1]))), 1)
            self._buf = rest[:, :0]
        return self._total / max(self._count, 1)

    def bands(self) -> tuple[np.ndarray, np.ndarray]:
        """``(edges, levels)`` as :func:`band_levels` gives them."""
        return _bands(self.power(), self.sr, self.n_fft)


def band_levels(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Long-term level of ``x`` in 1/6-octave bands from 500 Hz to 95 % of Nyquist.

    Parameters
    ----------
    x : np.ndarray
        ``(channels, samples)`` float audio.
    sr : int
        Sample rate, Hz.

    Returns
    -------
    edges : np.ndarray
        ``(bands + 1,)`` band edges, Hz.
    levels : np.ndarray
        ``(bands,)`` mean power per band, dB (``-inf``-safe: floored at -300 dB).
    """
    x = np.asarray(x, np.float32)
    spectrum = Spectrum(x.shape[0], sr)
    spectrum.update(x)
    return spectrum.bands()


def _bands(power: np.ndarray, sr: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    freqs = np.arange(len(power)) * sr / n_fft
    top = 0.95 * sr / 2
    n_bands = max(1, int(6 * math.log2(top / LOW_HZ))) if top > LOW_HZ else 1
    edges = LOW_HZ * 2.0 ** (np.arange(n_bands + 1) / 6)
    levels = np.empty(n_bands)
    for b in range(n_bands):
        sel = (freqs >= edges[b]) & (freqs < edges[b + 1])
        levels[b] = power[sel].mean() if sel.any() else 0.0
    return edges, 10 * np.log10(np.maximum(levels, 1e-30))


def find_cliff(
    edges: np.ndarray,
    levels: np.ndarray,
    *,
    depth_db: float = CLIFF_DB,
    low_hz: float = 0.0,
    high_hz: float = math.inf,
    min_level_db: float = -math.inf,
) -> float | None:
    """The lowest frequency where ``levels`` fall off a cliff, or None.

    A cliff at band ``c``: the median level over the octave below ``c`` exceeds by
    ``depth_db`` the highest level from a third of an octave above ``c`` to the top band.

    Parameters
    ----------
    edges, levels : np.ndarray
        From :func:`band_levels` (or differences of levels: a share).
    depth_db : float
        How far the level must fall, dB.
    low_hz, high_hz : float
        Only cliffs in this range count, Hz.
    min_level_db : float
        The octave below must be at least this loud (else nothing is there to cut).

    Returns
    -------
    float or None
        Where the fall starts: the lower edge of the lowest band from which on every band
        lies 6 dB or more under the median of the octave below ``c``, Hz.
    """
    n = len(levels)
    for c in range(6, n - 2):
        f = float(edges[c + 1])
        if not low_hz <= f <= high_hz:
            continue
        below = float(np.median(levels[c - 5 : c + 1]))
        above = float(levels[c + 2 :].max())
        if below >= min_level_db and below - above > depth_db:
            first = c + 2
            while first > c - 5 and levels[first - 1] <= below - 6.0:
                first -= 1
            return float(edges[first])
    return None


def longest_dropout(
    y: np.ndarray, mixture: np.ndarray, missing: np.ndarray, sr: int, *, min_s: float = 0.005
) -> tuple[float, float]:
    """The longest dropout in a stem: digital silence where the mixture still needed it.

    Parameters
    ----------
    y : np.ndarray
        ``(channels, samples)`` float stem, conformed to the mixture.
    mixture : np.ndarray
        The mixture, same shape.
    missing : np.ndarray
        ``mixture - sum of all stems``, same shape: what the stems together leave out.
    sr : int
        Sample rate, Hz.
    min_s : float
        Shorter silences are ignored, s.

    Returns
    -------
    length_s, start_s : float
        Length and start of the longest dropout, s (``0.0, nan`` when there is none). A
        dropout is a run of samples at or below :data:`SILENCE` on every channel during which
        the stems together miss at least :data:`DROPOUT_MISSING_DB` of the mixture's energy,
        :data:`DROPOUT_RISE_DB` more (per sample) than in the :data:`DROPOUT_CONTEXT_S` on
        either side: a stem that is silent because its source is (a vocal between phrases)
        leaves nothing missing, and another broken stem leaves as much missing around.
        :class:`Dropouts` measures the same in two passes over blocks.

    Examples
    --------
    >>> import numpy as np
    >>> mix = np.full((1, 8000), 0.1, np.float32)
    >>> stem = mix.copy(); stem[:, 2000:3000] = 0
    >>> longest_dropout(stem, mix, mix - stem, 8000)
    (0.125, 0.25)
    """
    finder = Dropouts(y.shape[-1], sr, min_s=min_s)
    finder.update(0, y)
    finder.measure(0, mixture, missing)
    return finder.longest()


class Dropouts:
    """:func:`longest_dropout` over blocks: pass 1 (:meth:`update`) finds the stem's silent
    runs; pass 2 (:meth:`measure`) sums the mixture's and the missing energy over each run
    and around it; :meth:`longest` judges them. Memory: the runs (a few numbers each).

    Parameters
    ----------
    n : int
        Length of the stem (and mixture) in samples.
    sr : int
        Rate in Hz.
    min_s : float
        Shorter silences are ignored, s.
    """

    def __init__(self, n: int, sr: int, *, min_s: float = 0.005) -> None:
        self.n, self.sr = int(n), int(sr)
        self._min_s = min_s
        self._open: int | None = None  # start of the silent run the last block ended in
        self._runs: list[tuple[int, int]] = []
        self._sums: np.ndarray | None = None

    def update(self, start: int, y: np.ndarray) -> None:
        """Pass 1: the stem's samples ``start : start + len``, in order."""
        silent = (np.abs(y) <= SILENCE).all(axis=0)
        flips = np.flatnonzero(np.diff(np.concatenate(([0], silent.astype(np.int8), [0]))))
        runs = [(start + a, start + b) for a, b in zip(flips[::2], flips[1::2], strict=True)]
        if self._open is not None:
            if runs and runs[0][0] == start:  # the run goes on from the last block
                runs[0] = (self._open, runs[0][1])
            else:
                self._close(self._open, start)
            self._open = None
        end = start + y.shape[-1]
        if runs and runs[-1][1] == end and end < self.n:
            self._open = runs.pop()[0]
        for a, b in runs:
            self._close(a, b)

    @property
    def candidates(self) -> int:
        """Silent runs found so far (pass 2 is needed only when there are some)."""
        return len(self._runs) + (self._open is not None)

    def _close(self, a: int, b: int) -> None:
        if (b - a) / self.sr >= self._min_s:
            self._runs.append((a, b))

    def _queries(self) -> np.ndarray:
        """Per run: the run, and the context before and after it, as ``(lo, hi)`` rows."""
        if self._open is not None:
            self._close(self._open, self.n)
            self._open = None
        runs = np.array(self._runs, np.int64).reshape(-1, 2)
        a, b = runs[:, 0], runs[:, 1]
        pad = np.maximum(b - a, round(DROPOUT_CONTEXT_S * self.sr))
        return np.stack([a, b, np.maximum(0, a - pad), a, b, np.minimum(self.n, b + pad)], axis=1)

    def measure(self, start: int, mixture: np.ndarray, missing: np.ndarray) -> None:
        """Pass 2: the mixture's and the missing samples ``start : start + len``."""
        if self._sums is None:
            self._q = self._queries()
            self._sums = np.zeros((len(self._q), 4))  # mixture in run, missing: run, before, after
        if not len(self._q):
            return
        stop = start + mixture.shape[-1]
        energy = []
        for x in (mixture, missing):
            e = np.einsum("ij,ij->j", x, x, dtype=np.float64)
            energy.append(np.concatenate([[0.0], np.cumsum(e)]))
        spans = [(0, 1, 0), (0, 1, 1), (2, 3, 1), (4, 5, 1)]  # (lo col, hi col, signal)
        for k, (lo_col, hi_col, which) in enumerate(spans):
            lo = np.clip(self._q[:, lo_col], start, stop) - start
            hi = np.clip(self._q[:, hi_col], start, stop) - start
            self._sums[:, k] += energy[which][hi] - energy[which][lo]

    def longest(self) -> tuple[float, float]:
        """``(length_s, start_s)`` of the longest dropout (``0.0, nan`` when none)."""
        if self._sums is None:
            self.measure(0, np.zeros((1, 0), np.float32), np.zeros((1, 0), np.float32))
        best = (0.0, math.nan)
        for (a, b, lo, _, _, hi), (mix_energy, lost, before, after) in zip(
            self._q, self._sums, strict=True
        ):
            length = (b - a) / self.sr
            if length <= best[0] or mix_energy <= 0:
                continue
            if lost < mix_energy * 10 ** (DROPOUT_MISSING_DB / 10):
                continue
            width = (a - lo) + (hi - b)
            around = before + after
            if width == 0 or lost / (b - a) >= (around / width) * 10 ** (DROPOUT_RISE_DB / 10):
                best = (float(length), float(a / self.sr))
        return best


def clipped_samples(y: np.ndarray, *, full_scale: float = 0.999, at_peak: int = 3) -> int:
    """Samples that are clipped: at full scale, or exactly at the channel's own peak magnitude
    in runs of two or more, when at least ``at_peak`` samples are (hard clipping below full
    scale flattens crests to one value; a natural peak is one sample, even a steady tone's).

    Parameters
    ----------
    y : np.ndarray
        ``(channels, samples)`` float stem.
    full_scale : float
        Magnitude that counts as full scale.
    at_peak : int
        Fewest samples on flat runs at the peak magnitude that count as a clipped ceiling.

    Returns
    -------
    int
        Clipped samples over all channels.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(8000) / 8000
    >>> y = 0.8 * np.sin(2 * np.pi * 5.3 * t)[None].astype(np.float32)
    >>> clipped_samples(y), clipped_samples(np.clip(y, -0.4, 0.4)) > 1000
    (0, True)
    """
    counter = ClipCounter(np.asarray(y).shape[0], full_scale=full_scale, at_peak=at_peak)
    counter.update(np.asarray(y))
    return counter.count()


class ClipCounter:
    """:func:`clipped_samples` of audio fed block by block, in order.

    Per channel it keeps the peak magnitude so far and how many samples sit on flat runs at
    it; a block is counted once the next one arrives (a run can cross the boundary).

    Parameters
    ----------
    channels : int
        Channel count.
    full_scale, at_peak
        As for :func:`clipped_samples`.
    """

    def __init__(self, channels: int, *, full_scale: float = 0.999, at_peak: int = 3) -> None:
        self.full_scale, self.at_peak = full_scale, at_peak
        self._peak = np.zeros(channels)
        self._flat = np.zeros(channels, np.int64)
        self._flat_at = np.zeros(channels)  # the peak ``_flat`` was counted at
        self._full = np.zeros(channels, np.int64)
        self._prev: np.ndarray | None = None
        self._before = np.zeros(channels, np.float32)  # the sample before ``_prev`` (0: none)

    def update(self, y: np.ndarray) -> None:
        """The next samples, float ``(channels, samples)``."""
        if y.shape[-1] == 0:
            return
        mag = np.abs(y)
        self._peak = np.maximum(self._peak, mag.max(axis=-1))
        self._full += np.count_nonzero(mag >= self.full_scale, axis=-1)
        if self._prev is not None:
            self._count(self._prev, mag[:, 0])
        self._prev = mag

    def _count(self, mag: np.ndarray, after: np.ndarray) -> None:
        for c, peak in enumerate(self._peak):
            if peak == 0.0 or mag[c].max() != peak:
                continue
            if self._flat_at[c] != peak:  # a new peak: the runs at the old one do not count
                self._flat[c], self._flat_at[c] = 0, peak
            at = np.concatenate([[self._before[c]], mag[c], [after[c]]]) == peak
            self._flat[c] += int(np.count_nonzero(at[1:-1] & (at[:-2] | at[2:])))
        self._before = mag[:, -1].copy()

    def count(self) -> int:
        """Clipped samples over all channels."""
        if self._prev is not None:
            self._count(self._prev, np.full(self._prev.shape[0], -1.0, np.float32))
            self._prev = None
        flat = np.where(self._flat_at == self._peak, self._flat, 0)
        ceiling = np.where(flat >= self.at_peak, flat, 0)
        # samples at a full-scale peak are counted among the full-scale ones
        return int(np.maximum(self._full, ceiling).sum())
