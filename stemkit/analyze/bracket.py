"""The SiSEC score bracket: estimates that frame every provider's scores.

``oracle`` (the ideal ratio mask from the references, applied to the mixture: the ceiling),
``baseline`` (stemkit's DSP separation, :mod:`stemkit.dsp`, run here) and ``mixture`` (the
mixture as every estimate: the floor a separation must beat). Their scores depend only on the
mixture and the references, so the analysis caches them per track (:func:`stamp`).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> refs = {k: rng.standard_normal((2, 22050)).astype(np.float32) for k in ("a", "b")}
>>> est = oracle_irm(refs["a"] + refs["b"], refs, 22050)
>>> sorted(est), est["a"].shape
(['a', 'b'], (2, 22050))
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import fft as sfft
from scipy import signal

from stemkit.analyze.metrics import reconstruction_db
from stemkit.audio import as_audio, conform, float_writers

if TYPE_CHECKING:
    from stemkit.audio import Source

#: pseudo-providers of the score bracket, drawn and reported next to the real ones
BRACKET = ("oracle", "baseline", "mixture")
#: version of the bracket computation: bracket scores cached by another version are redone
VERSION = 1


def _file_stamp(path: Path) -> list[Any]:
    st = Path(path).stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def stamp(
    mixture_path: Path, ref_parts: dict[str, list[Path]], provider_sets: list[list[str]]
) -> str:
    """What the bracket's scores depend on: the mixture, the references, the stem sets.

    Returns
    -------
    str
        JSON text; a cached bracket is reused only while its stamp is equal.
    """
    return json.dumps(
        {
            "version": VERSION,
            "mixture": _file_stamp(mixture_path),
            "references": {k: [_file_stamp(p) for p in v] for k, v in sorted(ref_parts.items())},
            "provider_sets": sorted(provider_sets),
        },
        sort_keys=True,
    )


def estimates(
    work: Path,
    mixture: Source,
    mixture_path: Path,
    ref_parts: dict[str, list[Path]],
    provider_sets: list[list[str]],
) -> dict[str, dict[str, Path]]:
    """The bracket's estimates, as files to score: ``{"oracle"|"baseline"|"mixture": {stem:
    path}}``.

    The oracle is computed for the first stem set a provider delivered whose references
    partition the mixture; the baseline for every stem the DSP engine knows. Both are written
    to ``work`` (float32 WAV) block by block, so no estimate sits in memory whole. The oracle
    reads the mixture a segment at a time; the DSP engine needs the whole mixture (its
    REPET-SIM analysis compares every frame with every other), which is read for it and let
    go when it is done.

    Parameters
    ----------
    work : path
        Scratch folder.
    mixture : Source
        The mixture at its rate ``mixture.sr`` (:class:`stemkit.audio.FileSource` or
        :class:`~stemkit.audio.ArraySource`).
    mixture_path : path
        The mixture as a file readable in blocks at that rate (the floor's estimate).
    ref_parts : dict of str to list of path
        Files whose sum is each stem's reference, readable at that rate.
    provider_sets : list of list of str
        The stem sets the providers delivered.
    """
    from stemkit.dsp import engine

    files: dict[str, dict[str, Path]] = {}
    sr, n_chan, n_samples = mixture.sr, mixture.channels, mixture.n
    for names in provider_sets:
        parts = {s: ref_parts[s] for s in names if s in ref_parts}
        if len(parts) == len(names) and _reconstruction_db(mixture, parts) < -40:
            files["oracle"] = oracle_irm_files(mixture, parts, sr, work / "oracle")
            break
    names = [s for s in ref_parts if s in engine.STEM_RECIPES]
    if names:  # written block by block as the engine completes them: no stem held whole
        paths = {stem: work / "baseline" / f"{stem}.wav" for stem in names}
        whole = mixture.read(0, n_samples)  # the engine's input, held while it runs
        with float_writers(paths, sr, n_chan) as out:
            for block in engine.separate_blocks(whole, sr, names):
                for stem, y in block.items():
                    out[stem].write(np.ascontiguousarray(y.T, np.float32))
        del whole
        files["baseline"] = paths
    files["mixture"] = {stem: mixture_path for stem in ref_parts}
    return files


def _reconstruction_db(mixture: Source, ref_parts: dict[str, list[Path]]) -> float:
    """:func:`~stemkit.analyze.metrics.reconstruction_db` of the references, read in blocks."""
    from stemkit.audio import StemFiles

    n_chan, n = mixture.channels, mixture.n
    error = power = 0.0
    with StemFiles(list(ref_parts.values()), n_samples=n, n_channels=n_chan) as refs:
        for i in range(0, n, _BLOCK):
            j = min(n, i + _BLOCK)
            part = np.asarray(mixture.read(i, j).T, np.float64)
            err = part - refs.read(i, j).sum(axis=0, dtype=np.float64)
            error += float(np.sum(err * err))
            power += float(np.sum(part * part))
    return float(10 * np.log10((error + 1e-12) / (power + 1e-12)))


#: samples read at a time when the bracket streams from files
_BLOCK = 1 << 18


def oracle_irm_files(
    mixture: np.ndarray | Source,
    ref_parts: dict[str, list[Path]],
    sr: int,
    out_dir: Path,
    *,
    power: float = 2.0,
    n_fft: int = 4096,
    hop: int = 1024,
) -> dict[str, Path]:
    """:func:`oracle_irm` with the references read from their files and the estimates
    written to ``out_dir/<stem>.wav`` (float32) a segment at a time: memory stays a few
    segments of the references, whatever the track's length (the same samples as
    :func:`oracle_irm` on the loaded references).

    Parameters
    ----------
    mixture : np.ndarray or Source
        ``(channels, samples)`` float32 at ``sr``, or a source of it read a segment at a time
        (:class:`stemkit.audio.FileSource`: then nothing of the track is held whole).
    ref_parts : dict of str to list of path
        Files whose sum is each reference, seekable and at ``sr``.
    sr : int
        Rate of the files written (Hz).
    out_dir : Path
        Where the estimates go.
    power, n_fft, hop : float, int, int
        As for :func:`oracle_irm`.

    Returns
    -------
    dict of str to Path
        The estimate file of each reference name.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from stemkit.audio import load_audio, write_float
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> t = np.arange(16000) / 8000
    >>> refs = {"low": np.sin(2 * np.pi * 110 * t)[None], "high": np.sin(2 * np.pi * 2000 * t)[None]}
    >>> files = {k: [write_float(d / f"{k}.wav", v, 8000)] for k, v in refs.items()}
    >>> mix = (refs["low"] + refs["high"]).astype(np.float32)
    >>> out = oracle_irm_files(mix, files, 8000, d / "oracle", n_fft=1024, hop=256)
    >>> whole = oracle_irm(mix, {k: load_audio(v[0])[0] for k, v in files.items()}, 8000,
    ...                    n_fft=1024, hop=256)
    >>> bool(np.allclose(load_audio(out["low"])[0], whole["low"], atol=1e-6))
    True
    """  # noqa: E501
    import contextlib

    from stemkit.audio import ArraySource, StemFiles

    x = mixture if hasattr(mixture, "read") else ArraySource(mixture, sr)
    n_chan, n = x.channels, x.n
    names = list(ref_parts)
    out_dir.mkdir(parents=True, exist_ok=True)
    stft = _SegmentSTFT(n, n_fft, hop)
    equal = np.float32(1.0 / len(names))
    paths = {k: out_dir / f"{k}.wav" for k in names}
    with contextlib.ExitStack() as stack:
        refs = stack.enter_context(
            StemFiles([ref_parts[k] for k in names], n_samples=n, n_channels=n_chan)
        )
        writers = stack.enter_context(float_writers(paths, sr, n_chan))
        outs = [writers[k] for k in names]
        for segment in stft.segments():
            lo, hi = stft.span(segment)
            region = refs.read(lo, hi)  # (n_src, hi - lo, n_chan)
            mix_region = x.read(lo, hi)
            block = np.zeros((len(names), segment.stop - segment.start, n_chan), np.float32)
            for channel in range(n_chan):
                mix_spec = stft.forward(mix_region[channel], segment, offset=lo)
                mags = [
                    _magnitude(stft.forward(region[j, :, channel], segment, offset=lo), power)
                    for j in range(len(names))
                ]
                total = sum(mags)
                for j, mag in enumerate(mags):
                    mask = np.divide(mag, total, out=np.full_like(mag, equal), where=total > 0)
                    block[j, :, channel] = stft.inverse(mask * mix_spec, segment)
            for j, f in enumerate(outs):
                f.write(block[j])
    return paths


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
    >>> from stemkit.analyze.metrics import sdr
    >>> sdr(refs["low"], est["low"]) > 40 and float(np.abs(sum(est.values()) - mix).max()) < 1e-4
    True
    """  # noqa: E501
    x = as_audio(mixture)
    refs = {k: conform(as_audio(r), x.shape[0], x.shape[-1]) for k, r in references.items()}
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

    def span(self, segment: slice) -> tuple[int, int]:
        """The samples ``lo:hi`` of the signal that :meth:`forward` reads for ``segment``."""
        first, last = self._frames(segment)
        begin = first * self.hop - self.n_fft // 2
        return max(begin, 0), min(last * self.hop + self.n_fft // 2, self.n)

    def forward(self, y: np.ndarray, segment: slice, offset: int = 0) -> np.ndarray:
        """Spectra ``(frames, bins)`` of the frames touching ``segment`` of 1-D ``y`` (which
        starts at sample ``offset`` of the signal: the whole signal, or its :meth:`span`)."""
        first, last = self._frames(segment)
        begin = first * self.hop - self.n_fft // 2
        end = last * self.hop + self.n_fft // 2
        region = np.zeros(end - begin, np.float32)
        lo, hi = max(begin, 0), min(end, self.n)
        region[lo - begin : hi - begin] = y[lo - offset : hi - offset]
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
