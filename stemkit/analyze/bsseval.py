"""BSS Eval v4 (images variant) at museval's numbers, vectorised; plus SI-SDR and nSDR.

:func:`bss_eval_v4` computes what ``museval.evaluate`` computes (``mode="v4"``): the
``bss_eval_images`` decomposition with *time-invariant* 512-tap distortion filters fitted once
on the whole track, then SDR, ISR, SIR and SAR per window (1 s windows, 1 s hop at 44.1 kHz),
``NaN`` in every window where any reference or any estimate is silent. museval aggregates the
frames of a track with ``nanmedian``: :meth:`BSSResult.medians`.

Same numbers, different arithmetic. On a 3-min 4-stem stereo track (``bench/metrics.py``, 2
shared cores): 4.7 s and 1.06 GB peak RSS (0.59 GB of it the input arrays) against 73 s and
2.9 GB for museval 0.4.1, largest difference 2e-10 dB. With the bench's bass panned centre
(identical channels), on 60 s at a load of 4.4: 6.1 s against 65.8 s, largest difference
3e-8 dB, NaN frames identical.

* the lag correlations (Gram matrix ``G``, cross-correlations ``D``) are accumulated over
  8192-point FFT blocks, in chunks on two threads, instead of one FFT of the whole
  zero-padded track;
* the projection filters of every estimate share one LU factorisation of ``G + eps·I``
  (:class:`_Solver`; LU like ``np.linalg.solve``, so rounding follows museval's path) where
  museval factorises the same matrix once per estimate; a reference whose channels are
  identical (centre-panned) enters that system by one channel with ``eps/n_channels`` on its
  diagonal, which gives museval's projection exactly (no extra regularisation);
* the per-frame energies come from one batched FFT per frame and Parseval's theorem, with the
  differences (``e - P_all`` ...) formed before squaring, as museval does in time domain;
* :class:`BSSEval` keeps the references' part (correlations, factorisation) for any number of
  estimate sets, scored in one pass that reads signals in blocks (:class:`Signals`), so
  memory does not grow with the track's length or the number of sets.

Numerical notes. Parity with museval (tests: within 0.01 dB on every frame, NaN frames in the
same places; in practice 1e-4 dB or better) holds where museval's numbers are defined: any
noise floor, identical channels (centre-panned, ``L == R``) in any source position, hard-panned
sources (a zero channel), silent spans, mono, very quiet sources (museval's ``eps`` is kept, so
its scale dependence is too). They are not defined when ``G`` is singular up to rounding and
nothing fills its null space: references of pure partials with no noise at all, or channels
that are scaled copies rounded to float32 (a mono source panned off-centre). Then museval's own
SIR/SAR move by dB under a ×3 rescaling or a 1e-12 perturbation of its inputs, and ours differ
from it by as much. Ratios above ~150 dB (a perfect estimate) are rounding noise in both.

Variants, so that columns never mix definitions (see :data:`VARIANTS`): ``bsseval_v4`` is this
module (images variant, time-invariant filters); BSS Eval v3 (``bss_eval_sources`` or
framewise filters) is a different metric and is not computed here. :func:`nsdr` (MDX "global
SDR") and :func:`si_sdr` are the one-number metrics of :mod:`stemkit.analyze.metrics`, re-exported.

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
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

import numpy as np
import scipy.fft
import scipy.linalg
from numpy.lib.stride_tricks import sliding_window_view

from stemkit.analyze import sdr as _sdr

__all__ = [
    "VARIANTS",
    "ArraySignals",
    "BSSEval",
    "BSSResult",
    "FrameStats",
    "Signals",
    "bss_eval_v4",
    "museval_metrics",
    "nsdr",
    "si_sdr",
]

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
#: leakage below this (dB relative to the estimate) is reported as this: none to speak of
LEAKAGE_FLOOR_DB = -120.0
_BLOCK_FFT = 8192  # FFT size of the blocks that accumulate the lag correlations
_CHUNK_BYTES = 64 * 2**20  # rough working set of one chunk of blocks or frames


@dataclass(eq=False)
class FrameStats:
    """Per source and BSS Eval frame, what the pass over a signal saw of it.

    ``silent`` ``(n_sources, n_frames)``: museval's test (the channels sum to zero at every
    sample of the frame); ``energy`` ``(n_sources, n_frames)``: the sum of squares over the
    frame's samples and channels. :func:`stemkit.analyze.protocols.pes_eps` makes the
    silence metrics of these.

    Examples
    --------
    >>> import numpy as np
    >>> scorer = BSSEval(np.ones((1, 4, 1)), window=2, hop=2, filters_len=2)
    >>> [r] = scorer.evaluate(np.r_[0.0, 0.0, 1.0, 2.0].reshape(1, 4, 1))
    >>> r.frames.silent.tolist(), r.frames.energy.tolist()
    ([[True, False]], [[0.0, 5.0]])
    """

    silent: np.ndarray
    energy: np.ndarray


@dataclass(eq=False)
class BSSResult:
    """Framewise BSS Eval v4 metrics, each of shape ``(n_sources, n_frames)`` in dB.

    ``NaN`` marks the frames where a reference or an estimate is silent (as museval does);
    ``+inf`` a zero denominator (e.g. SIR with a single source). :class:`BSSEval` also fills
    ``nsdr`` and ``si_sdr`` (one value per source over the whole track), which cost nothing
    extra there.

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
    #: per source, from the same pass (:meth:`BSSEval.evaluate`): MDX global SDR and SI-SDR
    #: (variants ``global`` and ``scale-invariant``, not ``bsseval_v4``), or ``None``
    nsdr: np.ndarray | None = None
    si_sdr: np.ndarray | None = None
    #: ``(n_sources, n_sources)`` dB, from the same pass: ``leakage[j, k]`` is the energy of
    #: reference ``k``'s part of estimate ``j``'s projection onto all references (its filters
    #: applied to reference ``k`` alone, over the whole track) relative to the estimate's
    #: energy; the diagonal is the target's share, the rest how much of each other source
    #: leaked in (:meth:`BSSEval.evaluate`); floored at :data:`LEAKAGE_FLOOR_DB`
    leakage: np.ndarray | None = None
    #: the estimate's silent frames and frame energies, per source (:class:`FrameStats`),
    #: from the same pass (:meth:`BSSEval.evaluate`); the references' are
    #: :attr:`BSSEval.reference_frames`
    frames: FrameStats | None = None

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
    """SI-SDR in dB of one stem, channels concatenated (:func:`stemkit.analyze.sdr.si_sdr`).

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
    return _sdr.si_sdr(reference, estimate)


def nsdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """MDX-style global SDR ("nSDR") in dB of one stem (:func:`stemkit.analyze.sdr.sdr`).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.random.default_rng(2).standard_normal((1000, 2))
    >>> round(nsdr(s, 0.9 * s), 2)
    20.0
    """
    return _sdr.sdr(reference, estimate)


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
    refs, ests = _as_array(references), _as_array(estimates)
    if refs.shape[0] != ests.shape[0] or refs.shape[2] != ests.shape[2]:
        raise ValueError(
            f"references {refs.shape} and estimates {ests.shape} differ in sources or channels"
        )
    scorer = BSSEval(refs, window=window, hop=hop, filters_len=filters_len)
    return scorer.evaluate(ests)[0]


class BSSEval:
    """BSS Eval v4 against one set of references, for as many estimate sets as wanted.

    What depends only on the references is done once: their lag correlations and the LU
    factorisation of their Gram matrix ``G`` (4096 x 4096 at 4 stereo sources and 512 taps,
    the largest single cost of museval's method), in the first :meth:`evaluate`'s pass.
    :meth:`evaluate` scores any number of estimate sets in one pass over time, transforming
    each block of the references once for all of them. Signals are read in blocks
    (:class:`Signals`: arrays, or files through :class:`stemkit.audio.StemFiles`), so memory
    does not grow with the track's length.

    Parameters are those of :func:`bss_eval_v4`; ``references`` may also be :class:`Signals`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> refs = rng.standard_normal((2, 8000, 2))
    >>> scorer = BSSEval(refs, window=4000, hop=4000, filters_len=32)
    >>> close, far = scorer.evaluate(refs + 0.1 * rng.standard_normal(refs.shape),
    ...                              refs + rng.standard_normal(refs.shape))
    >>> bool(np.all(close.medians()["sdr"] > far.medians()["sdr"] + 15))
    True
    """

    def __init__(
        self,
        references: np.ndarray | Signals,
        *,
        window: int = 44100,
        hop: int = 44100,
        filters_len: int = 512,
    ) -> None:
        self.window, self.hop, self.filters_len = int(window), int(hop), int(filters_len)
        if self.window < 1 or self.hop < 1 or self.filters_len < 1:
            raise ValueError("window, hop and filters_len must be positive")
        self.references = _signals(references)
        n_src, n_samples, n_chan = self.references.shape
        if n_src * n_samples * n_chan == 0:
            raise ValueError("empty references")
        self.starts, self.frame_len = _frames(n_samples, self.window, self.hop)
        self._all: _Solver | None = None  # set by the first pass (:meth:`_prepare`)
        #: the references' silent frames and frame energies (:class:`FrameStats`), from the
        #: first :meth:`evaluate`
        self.reference_frames: FrameStats | None = None

    @property
    def ready(self) -> bool:
        """Whether the references' part is done (by the first :meth:`evaluate`)."""
        return self._all is not None

    def _prepare(self, corr: np.ndarray, stats: _BlockStats) -> None:
        """The references' part, from their own lag correlations and block statistics:
        silent frames, sums, and the factorisations of ``G`` and of its diagonal blocks."""
        n_src, _, n_chan = self.references.shape
        self.silent = stats.silent("reference")
        self.reference_frames = stats.frames()  # per source, for PES and EPS
        self._sums = stats.sums()
        centred = stats.identical_channels()
        taps = self.filters_len
        # a source whose channels are identical spans what its first channel spans: solve on
        # that channel alone (see :class:`_Solver`)
        keep = np.ones((n_src, n_chan), dtype=bool)
        keep[centred, 1:] = False
        copies = np.where(centred, n_chan, 1)[:, None].repeat(n_chan, axis=1)
        self._own = [
            _Solver(
                corr[:, j * n_chan : (j + 1) * n_chan, j * n_chan : (j + 1) * n_chan],
                keep[j],
                copies[j],
                taps,
            )
            for j in range(n_src if n_src > 1 else 0)
        ]
        self._all = _Solver(corr, keep.ravel(), copies.ravel(), taps)
        # each source's own Gram block, for the energies of its part of a projection
        self._blocks = [
            _gram(
                corr[:, j * n_chan : (j + 1) * n_chan, j * n_chan : (j + 1) * n_chan], n_chan, taps
            )
            for j in range(n_src)
        ]

    def evaluate(self, *estimates: np.ndarray | Signals) -> list[BSSResult]:
        """Framewise SDR, ISR, SIR, SAR of each estimate set, in the order given.

        Each set is shaped like the references (``(n_sources, n_samples, n_channels)``;
        longer ones are truncated, shorter ones zero-padded). Raises ``ValueError`` on a shape
        mismatch, a reference that is all zeros (then :attr:`ready` stays false) or an
        estimate that is all zeros.
        """
        n_src, n_samples, n_chan = self.references.shape
        sets = []
        for e in estimates:
            s = _signals(e, n_samples)
            if s.shape[0] != n_src or s.shape[2] != n_chan:
                raise ValueError(
                    f"references {self.references.shape} and estimates {s.shape} differ in "
                    "sources or channels"
                )
            sets.append(s)
        if not sets:
            return []
        # the first pass also correlates the references with themselves (their blocks are
        # read and transformed for the estimates anyway), then factorises their G
        targets = sets if self.ready else [self.references, *sets]
        activity = [_BlockStats(n_src, self.starts, self.frame_len) for _ in targets]
        corr = _lag_correlations(self.references, targets, self.filters_len, activity)
        if not self.ready:
            self._prepare(corr[0], activity[0])
            corr, activity = corr[1:], activity[1:]
        silent = [self.silent | a.silent("estimate") for a in activity]
        filters = [self._projection_filters(c) for c in corr]
        energies = _frame_energies(self.references, sets, filters, self.starts, self.frame_len)
        out = []
        for k, (frame_energies, mask) in enumerate(zip(energies, silent, strict=True)):
            frames = activity[k].frames()
            criteria = _criteria(frame_energies)
            criteria[:, :, mask] = np.nan
            lag0 = corr[k][0].reshape(n_src, n_chan, n_src, n_chan)
            own = np.einsum("jcjc->j", lag0)  # Σ e·s over each source's own channels
            est_sums = activity[k].sums()
            nsdr, si_sdr = _global(self._sums, est_sums, own, n_samples)
            leakage = self._leakage(filters[k][0], est_sums[1].sum(axis=1))
            out.append(
                BSSResult(
                    *criteria,
                    window=self.window,
                    hop=self.hop,
                    nsdr=nsdr,
                    si_sdr=si_sdr,
                    leakage=leakage,
                    frames=frames,
                )
            )
        return out

    def _leakage(self, c_all: np.ndarray, est_energy: np.ndarray) -> np.ndarray:
        """``(n_src, n_src)`` dB: energy of reference ``k``'s part of estimate ``j``'s joint
        projection, ``Σ_c v^T G_k v`` with ``v`` the filters from ``k``'s channels to the
        estimate's channel ``c``, over the estimate's energy."""
        n_src, _, n_chan = self.references.shape
        out = np.empty((n_src, n_src))
        for k, gram in enumerate(self._blocks):
            v = c_all[k * n_chan : (k + 1) * n_chan]  # (n_chan, n_src, n_chan, taps)
            v = v.transpose(1, 2, 0, 3).reshape(n_src * n_chan, -1)  # rows (j, c)
            # v^T G v per row: the product with G through BLAS (einsum of three would not)
            energy = np.einsum("ra,ra->r", v @ gram, v).reshape(n_src, n_chan).sum(axis=1)
            out[:, k] = energy
        floor = LEAKAGE_FLOOR_DB
        return np.maximum(
            10 * np.log10(np.maximum(out / est_energy[:, None], 10 ** (floor / 10))), floor
        )

    def _projection_filters(self, corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distortion filters of one estimate set, from all references and from its own.

        ``corr[k, a, b]``: lag correlations of estimate channel ``a`` with reference channel
        ``b``. Returns ``c_all[k, j, c, p]`` (reference channel ``k``, estimate ``j``, its
        channel ``c``, tap ``p``) and ``c_own[j, cs, c, p]`` (channel ``cs`` of reference
        ``j``).
        """
        n_src, _, n_chan = self.references.shape
        n_ref, taps = n_src * n_chan, self.filters_len
        # D[(k, p), (j, c)] = <reference channel k delayed by p, estimate channel (j, c)>
        rhs = corr.transpose(2, 0, 1).reshape(n_ref * taps, n_ref)
        c_all = self._all.solve(rhs).reshape(n_ref, taps, n_src, n_chan).transpose(0, 2, 3, 1)
        if n_src == 1:
            return c_all, c_all.transpose(1, 0, 2, 3).copy()  # museval's C and Cj are equal too
        size = n_chan * taps
        c_own = np.empty((n_src, n_chan, n_chan, taps))
        for j, solver in enumerate(self._own):
            own = solver.solve(rhs[j * size : (j + 1) * size, j * n_chan : (j + 1) * n_chan])
            c_own[j] = own.reshape(n_chan, taps, n_chan).transpose(0, 2, 1)
        return c_all, c_own


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


class Signals(Protocol):
    """Sources read in blocks, so that no whole track has to be in memory.

    ``shape`` is ``(n_sources, n_samples, n_channels)``; ``read(start, stop)`` returns those
    samples as a float array of shape ``(n_sources, stop - start, n_channels)``, zeros past the
    end. Arrays are wrapped in :class:`ArraySignals`; :class:`stemkit.audio.StemFiles` reads
    WAV/FLAC files.
    """

    @property
    def shape(self) -> tuple[int, int, int]: ...

    def read(self, start: int, stop: int) -> np.ndarray: ...


class ArraySignals:
    """An array in museval's layout as :class:`Signals`, cut or zero-padded to ``n_samples``.

    Examples
    --------
    >>> import numpy as np
    >>> s = ArraySignals(np.ones((2, 3, 1)), n_samples=5)
    >>> s.shape, s.read(2, 5)[0, :, 0].tolist()
    ((2, 5, 1), [1.0, 0.0, 0.0])
    """

    def __init__(self, data: np.ndarray, n_samples: int | None = None) -> None:
        self.data = data
        self.n_samples = data.shape[1] if n_samples is None else int(n_samples)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.data.shape[0], self.n_samples, self.data.shape[2])

    def read(self, start: int, stop: int) -> np.ndarray:
        have = self.data[:, start : min(stop, self.data.shape[1], self.n_samples)]
        if have.shape[1] == stop - start:
            return have
        return np.pad(have, [(0, 0), (0, stop - start - have.shape[1]), (0, 0)])


def _as_array(x: np.ndarray) -> np.ndarray:
    out = np.atleast_3d(np.asarray(x))
    if out.ndim > 3:
        raise ValueError("expected arrays of shape (n_sources, n_samples, n_channels)")
    return out


def _signals(x: np.ndarray | Signals, n_samples: int | None = None) -> Signals:
    if hasattr(x, "read") and hasattr(x, "shape"):
        return x  # type: ignore[return-value]
    return ArraySignals(_as_array(x), n_samples)  # type: ignore[arg-type]


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


class _BlockStats:
    """What the passes learn of a signal besides the correlations, from blocks of samples that
    together cover it once, in any order (from threads): which frames are silent (museval's
    test: the channels sum to zero at every sample of the frame) and their energies, and each
    channel's sum and energy (for nSDR and SI-SDR).

    Counts the active samples of each source up to every frame boundary, and sums the energy
    of each stretch between two boundaries, so frames may overlap and blocks need not line up
    with them.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[0.0, 0.0, 1.0, 2.0, 0.0, 0.0].reshape(1, 6, 1)
    >>> stats = _BlockStats(1, np.array([0, 2, 4]), 2)
    >>> stats.add(3, x[:, 3:]); stats.add(0, x[:, :3])      # any blocks, any order
    >>> f = stats.frames()
    >>> f.silent.tolist(), f.energy.tolist()
    ([[True, False, True]], [[0.0, 5.0, 0.0]])
    """

    def __init__(self, n_src: int, starts: np.ndarray, frame_len: int) -> None:
        self.n_src = n_src
        self.starts, self.ends = starts, starts + frame_len
        self.points = np.unique(np.concatenate([starts, self.ends]))
        self._blocks: list[
            tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
        ] = []
        self._energy: list[tuple[int, np.ndarray]] = []

    def add(self, start: int, block: np.ndarray) -> None:
        """Count ``block`` ``(n_src, m, n_chan)``, the samples from ``start`` on."""
        m = block.shape[1]
        self._channels = block.shape[2]
        cumulative = np.cumsum(_channel_sum(block) != 0, axis=1)
        inside = np.flatnonzero((self.points > start) & (self.points <= start + m))
        at = cumulative[:, self.points[inside] - start - 1]
        total = cumulative[:, -1].copy() if m else np.zeros(self.n_src, dtype=np.int64)
        x = np.ascontiguousarray(block.transpose(0, 2, 1), dtype=np.float64)  # (n_src, ch, m)
        sums = np.stack([x.sum(axis=2), np.einsum("scm,scm->sc", x, x)])  # (2, n_src, n_chan)
        same = (x[:, 1:] == x[:, :1]).all(axis=(1, 2))  # channels identical, per source
        self._blocks.append((start, inside, at, total, sums, same))  # list.append is atomic
        if m:  # the energy of each stretch between two frame boundaries the block touches
            power = np.einsum("scm,scm->sm", x, x)
            cuts = self.points[(self.points > start) & (self.points < start + m)] - start
            first = int(np.searchsorted(self.points, start, side="right")) - 1
            pieces = np.add.reduceat(power, np.r_[0, cuts], axis=1)
            self._energy.append((first, pieces))

    def sums(self) -> np.ndarray:
        """``(2, n_src, n_chan)``: each channel's sum and energy."""
        return sum(b[4] for b in sorted(self._blocks, key=lambda b: b[0]))

    def identical_channels(self) -> np.ndarray:
        """Per source: whether all its channels are equal at every sample (a mono source
        panned to the centre), which makes the references' ``G`` exactly singular."""
        return np.logical_and.reduce([b[5] for b in self._blocks]) & (self._channels > 1)

    def _silent_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """Per source and frame whether it is silent, and per source its active samples."""
        counts = np.zeros((self.n_src, len(self.points)), dtype=np.int64)
        total = np.zeros(self.n_src, dtype=np.int64)
        for _, inside, at, block_total, *_ in sorted(self._blocks, key=lambda b: b[0]):
            counts[:, inside] = total[:, None] + at
            total += block_total
        begin = counts[:, np.searchsorted(self.points, self.starts)]
        end = counts[:, np.searchsorted(self.points, self.ends)]
        return end == begin, total

    def silent(self, name: str) -> np.ndarray:
        """Silent frames; ``ValueError`` if a source is silent throughout (museval refuses)."""
        per_source, total = self._silent_frames()
        dead = np.flatnonzero(total == 0)
        if dead.size:
            raise ValueError(f"{name} source(s) {dead.tolist()} are all zeros: nothing to evaluate")
        return np.any(per_source, axis=0)

    def frames(self) -> FrameStats:
        """Each source's silent frames and frame energies (:class:`FrameStats`)."""
        # stretch i runs from points[i] to points[i + 1]; the last one is past every frame
        stretch = np.zeros((self.n_src, len(self.points)))
        for first, pieces in sorted(self._energy, key=lambda e: e[0]):
            stretch[:, first : first + pieces.shape[1]] += pieces
        begin = np.searchsorted(self.points, self.starts)
        end = np.searchsorted(self.points, self.ends)
        if np.all(end - begin == 1):  # frames side by side (window == hop): one stretch each
            energy = stretch[:, begin]
        else:
            pairs = zip(begin, end, strict=True)
            energy = np.stack([stretch[:, b:e].sum(axis=1) for b, e in pairs], axis=1)
        return FrameStats(self._silent_frames()[0], energy)


def _threads() -> int:
    """Threads for the chunks of a pass: numpy's FFTs and matrix products release the GIL."""
    return max(1, min(4, os.cpu_count() or 1))


def _map_chunks(fn, chunks: list) -> list:
    """``[fn(c) for c in chunks]``, on :func:`_threads` threads when there is more than one."""
    threads = _threads()
    if threads == 1 or len(chunks) < 2:
        return [fn(c) for c in chunks]
    with ThreadPoolExecutor(threads, thread_name_prefix="bsseval") as pool:
        return list(pool.map(fn, chunks))


def _sum_chunks(fn, chunks: list) -> np.ndarray:
    """``sum(fn(c) for c in chunks)``, each thread adding up its own share of the chunks (so
    only one partial sum per thread is ever held)."""
    threads = min(_threads(), len(chunks))

    def share(i: int) -> np.ndarray:
        total = fn(chunks[i])
        for c in chunks[i + threads :: threads]:
            total += fn(c)
        return total

    return sum(_map_chunks(share, list(range(threads))))


def _blocks(region: np.ndarray, starts: np.ndarray, length: int, n_fft: int) -> np.ndarray:
    """``region[:, start : start + length]`` for each start, float64 ``(blocks, k, n_fft)``.

    ``k`` runs over sources, then channels; each block is zero-padded to ``n_fft`` samples (and
    where it runs past the end of the region), ready for an FFT of the last axis.
    """
    n_src, n_samples, n_chan = region.shape
    out = np.empty((len(starts), n_src, n_chan, n_fft))
    for i, start in enumerate(starts.tolist()):
        size = max(0, min(start + length, n_samples) - start)
        out[i, :, :, :size] = region[:, start : start + size].transpose(0, 2, 1)
        out[i, :, :, size:] = 0.0
    return out.reshape(len(starts), n_src * n_chan, n_fft)


def _spectra(blocks: np.ndarray) -> np.ndarray:
    """Real FFT of ``(blocks, k, n_fft)``, laid out ``(bins, blocks, k)`` for matrix products.

    One FFT thread: the passes run their chunks on threads of their own (:func:`_map_chunks`).
    """
    spec = scipy.fft.rfft(blocks, axis=-1)
    return np.ascontiguousarray(np.moveaxis(spec, -1, 0))


# --- filters --------------------------------------------------------------------------------


def _lag_correlations(
    refs: Signals, targets: list[Signals], filters_len: int, activity: list[_BlockStats]
) -> np.ndarray:
    """``r[t, k, a, b] = Σ_n a[n + k] · b[n]`` for lags ``0 <= k < filters_len``.

    ``a`` runs over the channels of target ``t`` (the references themselves, or an estimate
    set), ``b`` over the reference channels (index ``source * n_channels + channel``). One pass
    over time for all targets: blocks of ``B`` samples of ``b`` against the block of ``a``
    extended by ``filters_len - 1`` samples, both zero-padded to one FFT size, the
    cross-spectra summed over blocks (a matrix product per frequency). The references'
    blocks are transformed once for every target; ``activity[t]`` counts target ``t``'s
    active samples on the way.
    """
    n_src, n_samples, n_chan = refs.shape
    n_fft = max(_BLOCK_FFT, int(2 ** np.ceil(np.log2(8 * filters_len))))
    block = n_fft - filters_len + 1
    n_ref = n_src * n_chan
    starts = np.arange(0, n_samples, block)
    per_chunk = max(1, _CHUNK_BYTES // (4 * n_ref * n_fft * 16))

    def chunk(sel: np.ndarray) -> np.ndarray:
        lo, rel = int(sel[0]), sel - sel[0]
        plain_end = min(int(sel[-1]) + block, n_samples)
        extended_end = min(int(sel[-1]) + block + filters_len - 1, n_samples)
        ref_region = refs.read(lo, extended_end)
        spec_b = np.conjugate(_spectra(_blocks(ref_region, rel, block, n_fft)))
        cross = np.empty((len(targets), n_fft // 2 + 1, n_ref, n_ref), dtype=complex)
        for t, target in enumerate(targets):
            region = ref_region if target is refs else target.read(lo, extended_end)
            activity[t].add(lo, region[:, : plain_end - lo])
            spec_a = _spectra(_blocks(region, rel, block + filters_len - 1, n_fft))
            np.matmul(spec_a.transpose(0, 2, 1), spec_b, out=cross[t])
        return cross

    chunks = [starts[c0 : c0 + per_chunk] for c0 in range(0, len(starts), per_chunk)]
    cross = _sum_chunks(chunk, chunks)
    return scipy.fft.irfft(cross, n=n_fft, axis=1, workers=-1)[:, :filters_len]


def _gram(corr: np.ndarray, n_ref: int, filters_len: int) -> np.ndarray:
    """``G[(a, p), (b, q)] = <a delayed by p, b delayed by q>`` over the reference channels,
    from the references' own lag correlations ``corr[k, a, b]``."""
    # lag d = q - p: r_ab[d] for d >= 0, r_ba[-d] for d < 0; row d + filters_len - 1
    lags = np.concatenate([corr[:0:-1].transpose(0, 2, 1), corr])
    toeplitz = sliding_window_view(lags, filters_len, axis=0)[::-1]  # [p, a, b, q]
    size = n_ref * filters_len
    return np.ascontiguousarray(toeplitz.transpose(1, 0, 2, 3)).reshape(size, size)


class _Solver:
    """museval's ``solve(G + eps·I, D)``, with ``G + eps·I`` factorised once for every ``D``.

    LU with partial pivoting (LAPACK ``getrf``, what ``np.linalg.solve`` runs), so rounding
    follows museval's path. ``corr[k, a, b]`` are the lag correlations of the reference
    channels the system is about; ``keep[a]`` says which of them enter it and ``copies[a]``
    how many identical channels a kept one stands for.

    A source whose ``m`` channels are identical (a centre-panned mono source) makes ``G``
    exactly singular: its channels span the same space as one of them. The projection onto
    the references' span, all that the energies use, is still unique, and it is what museval's
    ``solve`` returns where its answer is stable. By symmetry the solution puts ``c/m`` on each
    of the ``m`` copies, where ``c`` solves the system of the first channel alone with
    ``eps/m`` on its diagonal, so that system is solved exactly (no extra regularisation) and
    ``c`` is put on the first channel, zeros on the others: the same filters, hence the same
    projection, at a smaller matrix. Should the reduced ``G + eps·I`` still meet a zero pivot,
    ``lstsq(G, D)`` (numpy's default rank cut-off), museval's fallback, solves it.

    Only one matrix of the reduced size is ever held (134 MB at 4 stereo sources and 512 taps):
    it is factorised in place.
    """

    def __init__(
        self, corr: np.ndarray, keep: np.ndarray, copies: np.ndarray, filters_len: int
    ) -> None:
        self.taps = filters_len
        self.keep = np.asarray(keep, dtype=bool)
        self._rows = np.repeat(self.keep, filters_len)  # rows (channel, tap) of the full system
        kept = np.flatnonzero(self.keep)
        sub = corr[:, kept][:, :, kept]
        matrix = _gram(sub, len(kept), filters_len)
        ridge = np.repeat(_EPS / np.asarray(copies, dtype=float)[kept], filters_len)
        matrix[np.diag_indices_from(matrix)] += ridge
        self._lstsq: np.ndarray | None = None
        self._lu = self._factor(matrix)
        if self._lu is None:
            self._lstsq = _gram(sub, len(kept), filters_len)

    @staticmethod
    def _factor(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            lu, piv = scipy.linalg.lu_factor(matrix, overwrite_a=True, check_finite=False)
        return None if np.any(np.diag(lu) == 0) else (lu, piv)  # np.linalg.solve would raise

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """Filters ``(n_channels · filters_len, n_rhs)`` for ``rhs`` of that shape; zeros on
        the rows of the channels left out."""
        part = rhs[self._rows] if not self.keep.all() else rhs
        if self._lu is None:
            solved = np.linalg.lstsq(self._lstsq, part, rcond=None)[0]
        else:
            solved = scipy.linalg.lu_solve(self._lu, part, check_finite=False)
        if self.keep.all():
            return solved
        out = np.zeros((len(self._rows), rhs.shape[1]))
        out[self._rows] = solved
        return out


# --- per-frame energies ---------------------------------------------------------------------


def _filter_spectra(
    c_all: np.ndarray, c_own: np.ndarray, n_fft: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spectra ``(bins, k, n_ref)`` of the own filters (block-diagonal) and of all filters.

    ``spec_refs @ own`` and ``spec_refs @ all`` are the spectra of ``P_own`` and ``P_all`` for
    every estimate channel ``(j, c)``.
    """
    n_ref, n_src, n_chan, filters_len = c_all.shape
    own = np.zeros((n_ref, n_ref, filters_len))
    for j in range(n_src):
        rows = slice(j * n_chan, (j + 1) * n_chan)
        own[rows, rows] = c_own[j]
    everything = c_all.reshape(n_ref, n_ref, filters_len)
    pad = [(0, 0), (0, 0), (0, n_fft - filters_len)]
    return tuple(_spectra(np.pad(c, pad)[None])[:, 0] for c in (own, everything))


def _frame_energies(
    refs: Signals,
    estimates: list[Signals],
    filters: list[tuple[np.ndarray, np.ndarray]],
    starts: np.ndarray,
    frame_len: int,
) -> list[np.ndarray]:
    """The seven energies of museval's decomposition, ``(7, n_sources, n_frames)`` per set.

    Per frame, with ``s`` the reference image, ``e`` the estimate, ``P_own``/``P_all`` the
    projections of the frame's reference(s) through the filters (full convolution, length
    ``frame_len + filters_len - 1``): ``|s|², |e - s|², |P_own - s|², |P_own|²,
    |P_all - P_own|², |P_all|², |e - P_all|²``. The five with a projection come from the
    spectra by Parseval, so no projection is ever transformed back. ``filters`` holds each
    set's ``(c_all, c_own)``; the references' frames are transformed once for all sets.
    """
    n_src, _, n_chan = refs.shape
    filters_len = filters[0][0].shape[-1]
    n_fft = scipy.fft.next_fast_len(frame_len + filters_len - 1, real=True)
    n_bins = n_fft // 2 + 1
    weight = np.full(n_bins, 2.0 / n_fft)  # Parseval for a real signal's half spectrum
    weight[0] = 1.0 / n_fft
    if n_fft % 2 == 0:
        weight[-1] = 1.0 / n_fft
    spectra = [_filter_spectra(c_all, c_own, n_fft) for c_all, c_own in filters]
    per_chunk = max(1, _CHUNK_BYTES // (6 * n_src * n_chan * n_bins * 16))

    def chunk(sel: np.ndarray) -> list[np.ndarray]:
        lo, hi = int(sel[0]), int(sel[-1]) + frame_len
        ref = _blocks(refs.read(lo, hi), sel - lo, frame_len, n_fft)
        s_time = ref[..., :frame_len]
        s_energy = np.einsum("tkn,tkn->tk", s_time, s_time)
        spec_s = _spectra(ref)  # (bins, t, n_ref)
        out = []
        for k, estimate in enumerate(estimates):
            est = _blocks(estimate.read(lo, hi), sel - lo, frame_len, n_fft)
            energies = _chunk_energies(ref, spec_s, s_energy, est, spectra[k], weight, frame_len)
            out.append(energies.reshape(7, len(sel), n_src, n_chan).sum(3).mT)
        return out

    chunks = [starts[t0 : t0 + per_chunk] for t0 in range(0, len(starts), per_chunk)]
    parts = _map_chunks(chunk, chunks)
    return [np.concatenate([p[k] for p in parts], axis=2) for k in range(len(estimates))]


def _chunk_energies(
    ref: np.ndarray,
    spec_s: np.ndarray,
    s_energy: np.ndarray,
    est: np.ndarray,
    filters: tuple[np.ndarray, np.ndarray],
    weight: np.ndarray,
    frame_len: int,
) -> np.ndarray:
    """:func:`_frame_energies` per channel of a few frames of one set, ``(7, t, n_ref)``.

    ``ref``, ``est``: zero-padded frames ``(t, n_ref, n_fft)``; ``spec_s`` the spectra of
    ``ref`` and ``s_energy`` its energies. The differences are formed before squaring, as
    museval does, so large ratios keep their precision.
    """

    def energy(z: np.ndarray) -> np.ndarray:  # spectra (bins, t, n_ref) -> (t, n_ref)
        zr = z.view(np.float64)
        power = np.einsum("ftk,ftk,f->tk", zr, zr, weight)
        return power.reshape(z.shape[1], z.shape[2], 2).sum(axis=2)

    err_time = est[..., :frame_len] - ref[..., :frame_len]
    out = np.empty((7, *ref.shape[:2]))
    out[0] = s_energy
    out[1] = np.einsum("tkn,tkn->tk", err_time, err_time)
    del err_time
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


def _global(
    ref_sums: np.ndarray, est_sums: np.ndarray, cross: np.ndarray, n_samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """nSDR and SI-SDR per source (:func:`nsdr`, :func:`si_sdr`: channels joined) from the
    channel sums and energies of both signals and their inner product ``cross``.

    From sums, without a pass of its own: the error energies are differences of sums, so a
    value above ~100 dB (an estimate equal to its reference) is only rounding noise.
    """
    eps = _sdr.EPS
    ref_sum, ref_power = ref_sums.sum(axis=2)
    est_sum, est_power = est_sums.sum(axis=2)
    error = np.maximum(ref_power - 2 * cross + est_power, 0.0)
    delta = _sdr.MDX_DELTA
    nsdr = 10 * np.log10((ref_power + delta) / (error + delta))
    count = n_samples * ref_sums.shape[2]
    mean_ref, mean_est = ref_sum / count, est_sum / count
    centred_cross = cross - count * mean_ref * mean_est
    centred_ref = ref_power - count * mean_ref**2
    centred_est = est_power - count * mean_est**2
    alpha = centred_cross / (centred_ref + eps)
    target = alpha**2 * centred_ref
    noise = np.maximum(centred_est - 2 * alpha * centred_cross + target, 0.0)
    return nsdr, 10 * np.log10((target + eps) / (noise + eps))


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
