"""BSS Eval v4 (images variant) at museval's numbers, vectorised; plus SI-SDR and nSDR.

:func:`bss_eval_v4` computes what ``museval.evaluate`` computes (``mode="v4"``): the
``bss_eval_images`` decomposition with *time-invariant* 512-tap distortion filters fitted once
on the whole track, then SDR, ISR, SIR and SAR per window (1 s windows, 1 s hop at 44.1 kHz),
``NaN`` in every window where any reference or any estimate is silent. museval aggregates the
frames of a track with ``nanmedian``: :meth:`BSSResult.medians`.

Same numbers, different arithmetic. On a 3-min 4-stem stereo track (``bench/metrics.py`` on 2
busy shared cores): 5-9 s and 0.9 GB peak RSS against 80-140 s and 2.9 GB for museval 0.4.1.

* the lag correlations (Gram matrix ``G``, cross-correlations ``D``) are accumulated over
  8192-point FFT blocks, in chunks, instead of one FFT of the whole zero-padded track;
* the projection filters are solved once for all estimates: one LU factorisation of
  ``G + eps·I`` (``np.linalg.solve``, ``lstsq`` if exactly singular) where museval factorises
  the same matrix once per estimate; LU like museval's, so rounding follows the same path;
* the per-frame energies come from one batched FFT per frame and Parseval's theorem, with the
  differences (``e - P_all`` ...) formed before squaring, as museval does in time domain.

Numerical notes. Parity with museval (tests: within 0.01 dB; in practice ~1e-10 dB) holds
where museval's numbers are defined. They are not when ``G`` is singular up to rounding, e.g.
a stereo reference whose channels are scaled copies of each other rounded to float32 (a mono
source panned off-centre): then museval's own ISR/SIR/SAR move by dB under a mere ×3 rescaling
of its inputs, and ours differ from it by as much. Exact copies (centre-panned, ``L == R``),
hard-panned sources (a zero channel) and any noise floor are fine. Ratios above ~150 dB (a
perfect estimate) are rounding noise in both implementations.

Variants, so that columns never mix definitions (see :data:`VARIANTS`): ``bsseval_v4`` is this
module (images variant, time-invariant filters); BSS Eval v3 (``bss_eval_sources`` or
framewise filters) is a different metric and is not computed here. :func:`nsdr` (MDX "global
SDR") and :func:`si_sdr` are the one-number metrics of :mod:`stemkit.metrics`, re-exported.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> refs = rng.standard_normal((2, 8000, 2))           # (n_sources, n_samples, n_channels)
>>> ests = refs + 0.1 * rng.standard_normal(refs.shape)
>>> res = bss_eval_v4(refs, ests, window=4000, hop=4000, filters_len=32)
>>> res.sdr.shape
(2, 2)
>>> bool(np.all(res.medians()["sdr"] > 15))
True
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from stemkit import metrics as _metrics

__all__ = ["VARIANTS", "BSSResult", "bss_eval_v4", "museval_metrics", "nsdr", "si_sdr"]

#: The ``variant`` column of each function's metric in tidy tables (``sdr`` of
#: :func:`bss_eval_v4` is ``("sdr", "bsseval_v4")``; :func:`nsdr` is ``("sdr", "global")``).
VARIANTS: dict[str, str] = {
    "sdr": "bsseval_v4",
    "isr": "bsseval_v4",
    "sir": "bsseval_v4",
    "sar": "bsseval_v4",
    "si_sdr": "scale-invariant",
    "nsdr": "global",
}

_EPS = np.finfo(float).eps  # museval's regulariser of G
_BLOCK_FFT = 8192  # FFT size of the blocks that accumulate the lag correlations
_CHUNK_BYTES = 64 * 2**20  # rough working set of one chunk of blocks or frames


@dataclass(eq=False)
class BSSResult:
    """Framewise BSS Eval v4 metrics, each of shape ``(n_sources, n_frames)`` in dB.

    ``NaN`` marks the frames where a reference or an estimate is silent (as museval does);
    ``+inf`` a zero denominator (e.g. SIR with a single source).

    Examples
    --------
    >>> import numpy as np
    >>> r = BSSResult(*(np.array([[1.0, np.nan, 3.0]]) for _ in range(4)), window=1, hop=1)
    >>> r.medians()["sdr"]
    array([2.])
    """

    sdr: np.ndarray
    isr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray
    window: int
    hop: int
    variant: str = "bsseval_v4"

    def medians(self) -> dict[str, np.ndarray]:
        """Median over frames ignoring NaN, per source: museval's track aggregate.

        A source whose frames are all NaN gets NaN (without a warning).

        Examples
        --------
        >>> import numpy as np
        >>> r = BSSResult(*(np.full((2, 3), 7.0) for _ in range(4)), window=1, hop=1)
        >>> sorted(r.medians()), r.medians()["sar"].tolist()
        (['isr', 'sar', 'sdr', 'sir'], [7.0, 7.0])
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
            return {m: np.nanmedian(getattr(self, m), axis=1) for m in ("sdr", "isr", "sir", "sar")}


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SI-SDR in dB of one stem, channels concatenated (:func:`stemkit.metrics.si_sdr`).

    Any layout works (``(n_samples, n_channels)`` as here, or channels first) as long as both
    arrays share it.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> s, noise = rng.standard_normal((1000, 2)), rng.standard_normal((1000, 2))
    >>> round(si_sdr(s, 0.5 * (s + 0.1 * noise)), 1)  # the scale does not matter
    20.0
    """
    return _metrics.si_sdr(reference, estimate)


def nsdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """MDX-style global SDR ("nSDR") in dB of one stem (:func:`stemkit.metrics.sdr`).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.random.default_rng(2).standard_normal((1000, 2))
    >>> round(nsdr(s, 0.9 * s), 2)
    20.0
    """
    return _metrics.sdr(reference, estimate)


def bss_eval_v4(
    references: np.ndarray,
    estimates: np.ndarray,
    *,
    window: int = 44100,
    hop: int = 44100,
    filters_len: int = 512,
) -> BSSResult:
    """BSS Eval v4 framewise SDR, ISR, SIR, SAR, as ``museval.evaluate`` computes them.

    Equals ``museval.metrics.bss_eval(references, estimates, window, hop,
    compute_permutation=False, filters_len=filters_len, framewise_filters=False,
    bsseval_sources_version=False)`` up to floating-point rounding (see the module notes on
    ill-conditioned references).

    Parameters
    ----------
    references, estimates : np.ndarray
        Shape ``(n_sources, n_samples, n_channels)``: source first, then samples, then channels
        (museval's layout; ``(n_sources, n_samples)`` is read as one channel, ``(n_samples,)``
        as one source with one channel). Estimate ``j`` is scored against reference ``j`` (no
        permutation). Estimates longer than the references are truncated, shorter ones
        zero-padded, as ``museval.evaluate`` does. Any float dtype; the maths is float64.
    window, hop : int
        Frame length and hop in samples (museval: 1 s each). A window of at least the signal
        length gives one frame over the whole signal; samples after the last full frame count
        for the filters but belong to no frame.
    filters_len : int
        Taps of the distortion filters.

    Returns
    -------
    BSSResult
        ``sdr``, ``isr``, ``sir``, ``sar`` of shape ``(n_sources, n_frames)``.

    Raises
    ------
    ValueError
        On mismatched shapes, or a reference or an estimate that is all zeros (as museval).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> refs = rng.standard_normal((3, 6000, 1))
    >>> res = bss_eval_v4(refs, refs + rng.standard_normal(refs.shape), window=2000, hop=2000,
    ...                   filters_len=16)
    >>> res.sir.shape, bool(abs(np.median(res.sdr)) < 1)
    ((3, 3), True)
    """
    refs, ests = _prepare(references, estimates)
    window, hop, filters_len = int(window), int(hop), int(filters_len)
    if window < 1 or hop < 1 or filters_len < 1:
        raise ValueError("window, hop and filters_len must be positive")
    starts, frame_len = _frames(refs.shape[1], window, hop)
    silent = _silent_frames(refs, starts, frame_len, "reference")
    silent |= _silent_frames(ests, starts, frame_len, "estimate")
    corr = _lag_correlations(refs, ests, filters_len)
    c_all, c_own = _projection_filters(corr, refs.shape[0], refs.shape[2], filters_len)
    del corr
    out = _criteria(_frame_energies(refs, ests, c_all, c_own, starts, frame_len))
    out[:, :, silent] = np.nan
    return BSSResult(*out, window=window, hop=hop)


@functools.cache
def museval_metrics() -> ModuleType:
    """museval's ``metrics`` module, the reference implementation, for parity checks.

    ``import museval`` needs the ffmpeg and ffprobe programs (museval imports musdb, which
    imports stempeg, which refuses to load without them), while ``museval/metrics.py`` needs
    only numpy and scipy: when the package import fails for that reason, the installed
    ``metrics.py`` is loaded on its own. museval is a test and benchmark dependency only.

    Raises
    ------
    ImportError
        museval is not installed.

    Examples
    --------
    >>> mm = museval_metrics()  # doctest: +SKIP
    >>> sdr, isr, sir, sar, _ = mm.bss_eval(refs, ests, 44100, 44100)  # doctest: +SKIP
    """
    try:
        from museval import metrics
    except ImportError:
        raise
    except Exception:  # stempeg raises RuntimeError when ffmpeg is missing
        spec = importlib.util.find_spec("museval")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("museval is not installed") from None
        path = Path(next(iter(spec.submodule_search_locations))) / "metrics.py"
        spec = importlib.util.spec_from_file_location("_museval_metrics", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}") from None
        metrics = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(metrics)
    return metrics


# --- input ---------------------------------------------------------------------------------


def _prepare(references: np.ndarray, estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as ``(n_sources, n_samples, n_channels)``, estimates cut/padded to the references."""
    refs = np.atleast_3d(np.asarray(references))
    ests = np.atleast_3d(np.asarray(estimates))
    if refs.ndim > 3 or ests.ndim > 3:
        raise ValueError("expected arrays of shape (n_sources, n_samples, n_channels)")
    if refs.shape[0] != ests.shape[0] or refs.shape[2] != ests.shape[2]:
        raise ValueError(
            f"references {refs.shape} and estimates {ests.shape} differ in sources or channels"
        )
    if refs.size == 0:
        raise ValueError("empty references")
    n = refs.shape[1]
    if ests.shape[1] > n:
        ests = ests[:, :n]
    elif ests.shape[1] < n:
        ests = np.pad(ests, [(0, 0), (0, n - ests.shape[1]), (0, 0)])
    return refs, ests


def _frames(n_samples: int, window: int, hop: int) -> tuple[np.ndarray, int]:
    """Start of each frame and the frame length, as museval's ``Framing``."""
    if window >= n_samples:
        return np.zeros(1, dtype=np.int64), n_samples
    n_frames = (n_samples - window + hop) // hop
    return hop * np.arange(n_frames, dtype=np.int64), window


def _channel_sum(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=2)`` in x's dtype, without numpy's slow reduction over a short last axis."""
    total = x[:, :, 0].copy()
    for c in range(1, x.shape[2]):
        total += x[:, :, c]
    return total


def _silent_frames(x: np.ndarray, starts: np.ndarray, frame_len: int, name: str) -> np.ndarray:
    """Frames where a source sums to zero over channels at every sample (museval's test).

    Raises ``ValueError`` if a source is silent throughout, as museval's ``validate`` does.
    """
    active = _channel_sum(x) != 0
    dead = np.flatnonzero(~active.any(axis=1))
    if dead.size:
        raise ValueError(f"{name} source(s) {dead.tolist()} are all zeros: nothing to evaluate")
    n_frames = len(starts)
    if n_frames == 1 or starts[1] - starts[0] == frame_len:  # frames tile the signal
        tiled = active[:, starts[0] : starts[0] + n_frames * frame_len]
        return ~tiled.reshape(x.shape[0], n_frames, frame_len).any(axis=2).all(axis=0)
    count = np.zeros((x.shape[0], x.shape[1] + 1), dtype=np.int64)
    np.cumsum(active, axis=1, out=count[:, 1:])
    return np.any(count[:, starts + frame_len] == count[:, starts], axis=0)


def _blocks(xs: list[np.ndarray], starts: np.ndarray, length: int, n_fft: int) -> np.ndarray:
    """``x[:, start : start + length]`` of each x for each start, float64 ``(blocks, k, n_fft)``.

    ``k`` runs over the arrays, then sources, then channels; each block is zero-padded to
    ``n_fft`` samples (and where it runs past the end), ready for an FFT of the last axis.
    """
    n_src, n_samples, n_chan = xs[0].shape
    out = np.empty((len(starts), len(xs), n_src, n_chan, n_fft))
    for i, start in enumerate(starts.tolist()):
        size = min(start + length, n_samples) - start
        for a, x in enumerate(xs):
            out[i, a, :, :, :size] = x[:, start : start + size].transpose(0, 2, 1)
        out[i, :, :, :, size:] = 0.0
    return out.reshape(len(starts), len(xs) * n_src * n_chan, n_fft)


def _spectra(blocks: np.ndarray) -> np.ndarray:
    """Real FFT of ``(blocks, k, n_fft)``, laid out ``(bins, blocks, k)`` for matrix products."""
    spec = scipy.fft.rfft(blocks, axis=-1, workers=-1)
    return np.ascontiguousarray(np.moveaxis(spec, -1, 0))


# --- filters --------------------------------------------------------------------------------


def _lag_correlations(refs: np.ndarray, ests: np.ndarray, filters_len: int) -> np.ndarray:
    """``r[k, a, b] = Σ_n a[n + k] · b[n]`` for lags ``0 <= k < filters_len``.

    ``a`` runs over every reference channel then every estimate channel, ``b`` over the
    reference channels (index ``source * n_channels + channel``). Accumulated over blocks of
    ``B`` samples: each block of ``b`` against the block of ``a`` extended by ``filters_len - 1``
    samples, both zero-padded to one FFT size, the cross-spectra summed over blocks (a
    matrix product per frequency).
    """
    n_fft = max(_BLOCK_FFT, int(2 ** np.ceil(np.log2(8 * filters_len))))
    block = n_fft - filters_len + 1
    n_ref = refs.shape[0] * refs.shape[2]
    starts = np.arange(0, refs.shape[1], block)
    per_chunk = max(1, _CHUNK_BYTES // (4 * n_ref * n_fft * 16))
    cross = np.zeros((n_fft // 2 + 1, 2 * n_ref, n_ref), dtype=complex)
    for c0 in range(0, len(starts), per_chunk):
        sel = starts[c0 : c0 + per_chunk]
        extended = _blocks([refs, ests], sel, block + filters_len - 1, n_fft)
        spec_a = _spectra(extended)  # (bins, m, a)
        plain = extended[:, :n_ref]
        plain[:, :, block:] = 0.0  # the blocks of the references themselves
        spec_b = _spectra(plain)
        np.conjugate(spec_b, out=spec_b)
        cross += spec_a.transpose(0, 2, 1) @ spec_b
    return scipy.fft.irfft(cross, n=n_fft, axis=0, workers=-1)[:filters_len]


def _gram(corr: np.ndarray, n_ref: int, filters_len: int) -> np.ndarray:
    """``G[(a, p), (b, q)] = <a delayed by p, b delayed by q>`` over the reference channels."""
    rr = corr[:, :n_ref, :]
    # lag d = q - p: r_ab[d] for d >= 0, r_ba[-d] for d < 0; row d + filters_len - 1
    lags = np.concatenate([rr[:0:-1].transpose(0, 2, 1), rr])
    toeplitz = sliding_window_view(lags, filters_len, axis=0)[::-1]  # [p, a, b, q]
    size = n_ref * filters_len
    return np.ascontiguousarray(toeplitz.transpose(1, 0, 2, 3)).reshape(size, size)


def _solve(regularised: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """museval's ``solve(G + eps·I, D)``; when that is exactly singular (a reference whose
    channels are identical: a centre-panned mono source) museval takes ``lstsq(G, D)``, an SVD
    of the whole matrix that costs minutes at 512 taps. Any solution of the normal equations
    gives the same projection, which is all the energies use, so a slightly more regularised
    LU solve (``G + 1e-9·mean(diag G)·I``) gives museval's numbers (to ~1e-8 dB) in a second.
    """
    try:
        return np.linalg.solve(regularised, rhs)
    except np.linalg.LinAlgError:
        gram = regularised.copy()
        gram[np.diag_indices_from(gram)] += 1e-9 * float(np.mean(np.diag(regularised)))
        try:
            return np.linalg.solve(gram, rhs)
        except np.linalg.LinAlgError:
            gram[np.diag_indices_from(gram)] -= _EPS
            return np.linalg.lstsq(regularised, rhs, rcond=None)[0]


def _projection_filters(
    corr: np.ndarray, n_src: int, n_chan: int, filters_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distortion filters of every estimate, from all references and from its own.

    Returns ``c_all[k, j, c, p]`` (reference channel ``k``, estimate ``j``, its channel ``c``,
    tap ``p``) and ``c_own[j, cs, c, p]`` (channel ``cs`` of reference ``j``). All estimates
    share one factorisation of ``G``, where museval solves the same system once per estimate.
    """
    n_ref = n_src * n_chan
    gram = _gram(corr, n_ref, filters_len)
    gram[np.diag_indices_from(gram)] += _EPS  # G + eps·I, in place: G is the big array
    # D[(k, p), (j, c)] = <reference channel k delayed by p, estimate channel (j, c)>
    rhs = corr[:, n_ref:, :].transpose(2, 0, 1).reshape(n_ref * filters_len, n_ref)
    c_all = _solve(gram, rhs).reshape(n_ref, filters_len, n_src, n_chan).transpose(0, 2, 3, 1)
    if n_src == 1:
        return c_all, c_all.transpose(1, 0, 2, 3).copy()  # museval's C and Cj are equal too
    size = n_chan * filters_len
    c_own = np.empty((n_src, n_chan, n_chan, filters_len))
    for j in range(n_src):
        rows = slice(j * size, (j + 1) * size)
        own = _solve(gram[rows, rows], rhs[rows, j * n_chan : (j + 1) * n_chan])
        c_own[j] = own.reshape(n_chan, filters_len, n_chan).transpose(0, 2, 1)
    return c_all, c_own


# --- per-frame energies ---------------------------------------------------------------------


def _filter_spectra(
    c_all: np.ndarray, c_own: np.ndarray, n_fft: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spectra ``(bins, k, n_ref)`` of the own filters (block-diagonal) and of all filters.

    ``spec_refs @ own`` and ``spec_refs @ all`` are the spectra of ``P_own`` and ``P_all`` for
    every estimate channel ``(j, c)``.
    """
    n_ref, n_src, n_chan, filters_len = c_all.shape
    own = np.zeros((1, n_ref, n_ref, filters_len))
    for j in range(n_src):
        rows = slice(j * n_chan, (j + 1) * n_chan)
        own[0, rows, rows] = c_own[j]
    everything = c_all.reshape(1, n_ref, n_ref, filters_len)
    pad = [(0, 0), (0, 0), (0, 0), (0, n_fft - filters_len)]
    return _spectra(np.pad(own, pad))[:, 0], _spectra(np.pad(everything, pad))[:, 0]


def _frame_energies(
    refs: np.ndarray,
    ests: np.ndarray,
    c_all: np.ndarray,
    c_own: np.ndarray,
    starts: np.ndarray,
    frame_len: int,
) -> np.ndarray:
    """The seven energies of museval's decomposition, ``(7, n_sources, n_frames)``.

    Per frame, with ``s`` the reference image, ``e`` the estimate, ``P_own``/``P_all`` the
    projections of the frame's reference(s) through the filters (full convolution, length
    ``frame_len + filters_len - 1``): ``|s|², |e - s|², |P_own - s|², |P_own|²,
    |P_all - P_own|², |P_all|², |e - P_all|²``. The five with a projection come from the
    spectra by Parseval, so no projection is ever transformed back.
    """
    n_src, _, n_chan = refs.shape
    n_fft = scipy.fft.next_fast_len(frame_len + c_all.shape[-1] - 1, real=True)
    n_bins = n_fft // 2 + 1
    weight = np.full(n_bins, 2.0 / n_fft)  # Parseval for a real signal's half spectrum
    weight[0] = 1.0 / n_fft
    if n_fft % 2 == 0:
        weight[-1] = 1.0 / n_fft
    filters = _filter_spectra(c_all, c_own, n_fft)
    out = np.empty((7, n_src, len(starts)))
    per_chunk = max(1, _CHUNK_BYTES // (6 * n_src * n_chan * n_bins * 16))
    for t0 in range(0, len(starts), per_chunk):
        sel = starts[t0 : t0 + per_chunk]
        ref, est = _blocks([refs], sel, frame_len, n_fft), _blocks([ests], sel, frame_len, n_fft)
        energies = _chunk_energies(ref, est, filters, weight, frame_len)
        out[:, :, t0 : t0 + len(sel)] = energies.reshape(7, len(sel), n_src, n_chan).sum(3).mT
    return out


def _chunk_energies(
    ref: np.ndarray,
    est: np.ndarray,
    filters: tuple[np.ndarray, np.ndarray],
    weight: np.ndarray,
    frame_len: int,
) -> np.ndarray:
    """:func:`_frame_energies` per channel of a few frames, ``(7, t, n_ref)``.

    ``ref``, ``est``: zero-padded frames ``(t, n_ref, n_fft)``. The differences are formed
    before squaring, as museval does, so large ratios keep their precision.
    """

    def energy(z: np.ndarray) -> np.ndarray:  # spectra (bins, t, n_ref) -> (t, n_ref)
        zr = z.view(np.float64)
        power = np.einsum("ftk,ftk,f->tk", zr, zr, weight)
        return power.reshape(z.shape[1], z.shape[2], 2).sum(axis=2)

    s_time = ref[..., :frame_len]
    err_time = est[..., :frame_len] - s_time
    out = np.empty((7, *ref.shape[:2]))
    out[0] = np.einsum("tkn,tkn->tk", s_time, s_time)
    out[1] = np.einsum("tkn,tkn->tk", err_time, err_time)
    del err_time
    spec_s = _spectra(ref)  # (bins, t, n_ref)
    p_own, p_all = spec_s @ filters[0], spec_s @ filters[1]
    spec_e = _spectra(est)
    spec_e -= p_all
    out[6] = energy(spec_e)  # |e - P_all|²
    out[5] = energy(p_all)
    p_all -= p_own
    out[4] = energy(p_all)  # |P_all - P_own|²
    out[3] = energy(p_own)
    p_own -= spec_s
    out[2] = energy(p_own)  # |P_own - s|²
    return out


def _safe_db(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``10·log10(num / den)``, ``+inf`` where ``den == 0`` (museval's ``_safe_db``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10 * np.log10(num / den)
    return np.where(den == 0, np.inf, db)


def _criteria(energies: np.ndarray) -> np.ndarray:
    """SDR, ISR, SIR, SAR ``(4, n_sources, n_frames)`` from :func:`_frame_energies`."""
    s, e_minus_s, own_minus_s, own, all_minus_own, p_all, e_minus_all = energies
    return np.stack(
        [
            _safe_db(s, e_minus_s),
            _safe_db(s, own_minus_s),
            _safe_db(own, all_minus_own),
            _safe_db(p_all, e_minus_all),
        ]
    )
