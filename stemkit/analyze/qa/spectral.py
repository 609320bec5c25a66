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

Everything streams over the signal in blocks, so memory stays flat on long tracks.

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


def _power_spectrum(x: np.ndarray, n_fft: int) -> np.ndarray:
    """Mean power spectrum over channels and Hann frames (hop n_fft/2), in blocks."""
    x = np.asarray(x, np.float32)
    hop = n_fft // 2
    window = np.hanning(n_fft).astype(np.float32)
    total = np.zeros(n_fft // 2 + 1)
    count = 0
    n = x.shape[-1]
    if n < n_fft:
        x = np.pad(x, ((0, 0), (0, n_fft - n)))
        n = n_fft
    starts = np.arange(0, n - n_fft + 1, hop)
    for ch in x:
        for i in range(0, len(starts), _BLOCK):
            idx = starts[i : i + _BLOCK, None] + np.arange(n_fft)
            spec = sfft.rfft(ch[idx] * window, axis=-1)
            total += (spec.real**2 + spec.imag**2).sum(axis=0)
            count += len(idx)
    return total / max(count, 1)


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
    n_fft = max(256, int(2 ** round(math.log2(_N_FFT * sr / 44100))))
    power = _power_spectrum(x, n_fft)
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
    """
    silent = (np.abs(y) <= SILENCE).all(axis=0)
    flips = np.flatnonzero(np.diff(np.concatenate(([0], silent.astype(np.int8), [0]))))
    best = (0.0, math.nan)
    for a, b in zip(flips[::2], flips[1::2], strict=True):
        length = (b - a) / sr
        if length < min_s or length <= best[0]:
            continue
        mix_energy = _energy(mixture[:, a:b])
        lost = _energy(missing[:, a:b])
        if mix_energy <= 0 or lost < mix_energy * 10 ** (DROPOUT_MISSING_DB / 10):
            continue
        pad = max(b - a, round(DROPOUT_CONTEXT_S * sr))
        around = _energy(missing[:, max(0, a - pad) : a]) + _energy(missing[:, b : b + pad])
        width = (a - max(0, a - pad)) + (min(missing.shape[-1], b + pad) - b)
        if width == 0 or lost / (b - a) >= (around / width) * 10 ** (DROPOUT_RISE_DB / 10):
            best = (length, a / sr)
    return best


def _energy(x: np.ndarray) -> float:
    return float(np.einsum("ij,ij->", x, x, dtype=np.float64))


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
    total = 0
    for ch in np.asarray(y):
        mag = np.abs(ch)
        peak = float(mag.max(initial=0.0))
        if peak == 0.0:
            continue
        flat = mag == peak
        flat = flat & (np.roll(flat, 1) | np.roll(flat, -1))  # in runs of two or more
        ceiling = int(np.count_nonzero(flat))
        full = int(np.count_nonzero(mag >= full_scale))
        # samples at a full-scale peak are counted among the full-scale ones
        total += max(full, ceiling if ceiling >= at_peak else 0)
    return total
