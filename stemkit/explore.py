"""Explore a batch by ear and by eye: players, spectrograms, a quick A/B, scores, timelines.

``notebooks/explore.ipynb`` is two cells around :func:`explore`. The logic below it is plain
functions on a batch folder, tested without a browser:

* finding batches: :func:`list_batches`, :func:`resolve_batch`;
* what a batch holds: :class:`BatchIndex` (tracks, providers, each provider's stem files);
* audio for a selection: :func:`load_selection` (mixture, reference, each provider's stem, at
  :data:`PLAYER_SR`, cached), :func:`player` (16-bit WAV for ``IPython.display.Audio``);
* pictures: :func:`spectrogram` (linear, log or mel frequency, a time range, at most a few
  hundred rows × columns), :func:`spectrogram_png`, :func:`timeline_png`;
* comparisons: :func:`ab_pair` (A then B, or A and B alternating), :func:`ab_metrics`;
* a track's tables: :func:`track_tables` (metrics, timeline, jobs, WER, and ``verdicts.csv``
  when the analysis wrote one).

:class:`Explorer` wires them to ipywidgets. Nothing here writes into the batch folder.

Examples
--------
>>> from stemkit.explore import explore
>>> explore("../reports/demo")     # the last line of a notebook cell    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Sample rate of everything the explorer plays and draws (small payloads, full speech band).
PLAYER_SR = 22050
#: Frequency scales of :func:`spectrogram`.
SCALES = ("mel", "log", "linear")
#: Longest stretch a player carries (seconds); longer ranges play from their start.
MAX_PLAY_SECONDS = 60.0
#: Range selected when a track opens (seconds from its start).
DEFAULT_SECONDS = 30.0
#: How the metrics of ``metrics.csv`` are named on screen (as in the report).
METRIC_NAMES = {"sdr": "SDR (dB)", "si_sdr": "SI-SDR (dB)", "recon_db": "mixture − Σ stems (dB)"}
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".aiff"}
NO_BATCH = (
    "No batch to explore: {where} holds no <code>batch.json</code>, and neither do the "
    "folders beside it. Run <code>make demo</code> (about 3 minutes; it writes "
    "<code>reports/demo</code>) or <code>stemkit batch … --out reports/NAME</code>, "
    "then run this cell again."
)


# ---------------------------------------------------------------------------- finding batches


def is_batch(folder: str | os.PathLike) -> bool:
    """True if ``folder`` is a batch folder (it holds ``batch.json``).

    Examples
    --------
    >>> is_batch("/nonexistent")
    False
    """
    return (Path(folder) / "batch.json").is_file()


def list_batches(root: str | os.PathLike) -> list[Path]:
    """The batch folders directly under ``root``, newest ``batch.json`` first.

    Examples
    --------
    >>> list_batches("/nonexistent")
    []
    >>> [p.name for p in list_batches("reports")]       # doctest: +SKIP
    ['demo', 'scratch']
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and is_batch(p)]
    return sorted(found, key=lambda p: ((p / "batch.json").stat().st_mtime, p.name), reverse=True)


def resolve_batch(batch_dir: str | os.PathLike | None) -> Path | None:
    """The batch to open for ``batch_dir``: itself if it is a batch; else the newest batch in
    it (a folder of batches) or beside it (its parent); None when there is none.

    Examples
    --------
    >>> resolve_batch("/nonexistent/demo") is None
    True
    >>> resolve_batch("../reports/demo")          # demo not built: the newest other one
    ...                                           # doctest: +SKIP
    PosixPath('../reports/scratch')
    """
    path = Path(batch_dir if batch_dir is not None else "reports")
    if is_batch(path):
        return path
    for root in (path, path.parent):
        batches = list_batches(root)
        if batches:
            return batches[0]
    return None


# -------------------------------------------------------------------------- what a batch holds


@dataclass
class BatchIndex:
    """The tracks, providers and stem files of a batch folder (read once, from disk).

    Examples
    --------
    >>> b = BatchIndex.open("reports/demo")                  # doctest: +SKIP
    >>> b.stems("01-sunday-drive"), b.providers_with("01-sunday-drive", "vocals")  # doctest: +SKIP
    (['vocals', 'accompaniment'], ['sourceress', 'audioshake'])
    """

    folder: Path
    info: dict[str, Any]
    files: dict[tuple[str, str], dict[str, Path]] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: str | os.PathLike) -> BatchIndex:
        """Read ``batch.json`` and list ``stems/<track>/<provider>/`` of every track."""
        from stemkit.stems import canonical

        folder = Path(folder)
        info = json.loads((folder / "batch.json").read_text())
        index = cls(folder, info)
        for track in index.tracks:
            for provider in index.providers:
                d = folder / "stems" / track / provider
                if d.is_dir():
                    index.files[(track, provider)] = {
                        canonical(p.name): p
                        for p in sorted(d.iterdir())
                        if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
                    }
        return index

    @property
    def name(self) -> str:
        return self.folder.resolve().name

    @property
    def tracks(self) -> list[str]:
        return [t["name"] for t in self.info.get("tracks", [])]

    @property
    def providers(self) -> list[str]:
        return list(self.info.get("providers", []))

    def track_info(self, track: str) -> dict[str, Any]:
        """The ``batch.json`` entry of ``track`` (mixture and reference paths, script)."""
        for t in self.info.get("tracks", []):
            if t["name"] == track:
                return t
        raise KeyError(f"track {track!r} is not in batch {self.name}")

    def provider_stems(self, track: str, provider: str) -> dict[str, Path]:
        """``{canonical stem: file}`` a provider delivered for a track (empty if none)."""
        return self.files.get((track, provider), {})

    def stems(self, track: str) -> list[str]:
        """Stems of a track: those any provider delivered, else those with a reference;
        in the order of :data:`stemkit.stems.ALIASES` (vocals first)."""
        from stemkit.stems import ALIASES, canonical

        found = [s for p in self.providers for s in self.provider_stems(track, p)]
        if not found:
            found = [canonical(s) for s in self.track_info(track).get("references", {})]
        order = list(ALIASES)
        return sorted(dict.fromkeys(found), key=lambda s: (order.index(s) if s in order else 99, s))

    def providers_with(self, track: str, stem: str) -> list[str]:
        """Providers that delivered ``stem`` for ``track``."""
        return [p for p in self.providers if stem in self.provider_stems(track, p)]

    def duration(self, track: str) -> float:
        """Length of the track's mixture in seconds (0.0 if unreadable)."""
        from stemkit.audio import audio_info

        try:
            return float(audio_info(self.track_info(track)["mixture"]).duration)
        except Exception:  # noqa: BLE001 - a missing mixture is shown, not raised
            return 0.0


# ----------------------------------------------------------------------------------- audio


@lru_cache(maxsize=24)
def _load_cached(path: str, _stamp: tuple[int, int], sr: int) -> np.ndarray:
    import soxr

    from stemkit.audio import load_audio

    y, file_sr = load_audio(path)
    if file_sr != sr:
        y = soxr.resample(y.T, file_sr, sr).T
    y = np.ascontiguousarray(y, dtype=np.float32)
    y.setflags(write=False)  # shared by the cache
    return y


def load_at(path: str | os.PathLike, sr: int = PLAYER_SR) -> np.ndarray:
    """Audio of a file as float32 ``(channels, samples)`` at ``sr``, cached until the file
    changes.

    Examples
    --------
    >>> import tempfile, os
    >>> from stemkit.audio import write_audio
    >>> p = write_audio(os.path.join(tempfile.mkdtemp(), "a.wav"), np.zeros((2, 44100)), 44100)
    >>> load_at(p).shape
    (2, 22050)
    """
    st = Path(path).stat()
    return _load_cached(str(Path(path).resolve()), (st.st_mtime_ns, st.st_size), sr)


@dataclass
class Selection:
    """The audio of one track and stem: ``sources`` maps ``mixture``, ``reference`` and each
    provider to a full-length ``(channels, samples)`` array at ``sr``; ``start``/``end`` is the
    selected time range (s); ``missing`` says why a wanted source is absent."""

    track: str
    stem: str
    sr: int
    start: float
    end: float
    duration: float
    sources: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def providers(self) -> list[str]:
        return [s for s in self.sources if s not in ("mixture", "reference")]

    def clip(self, source: str, *, limit: float | None = None) -> np.ndarray:
        """The selected range of one source (at most ``limit`` seconds from its start)."""
        end = self.end if limit is None else min(self.end, self.start + limit)
        y = self.sources[source]
        return y[:, int(round(self.start * self.sr)) : int(round(end * self.sr))]


def _reference(info: dict[str, Any], stem: str, sr: int) -> np.ndarray | None:
    from stemkit.audio import align
    from stemkit.stems import reference_recipe

    refs = info.get("references") or {}
    parts = reference_recipe(stem, set(refs))
    if not parts:
        return None
    arrays = align({p: load_at(refs[p], sr) for p in parts})
    return np.sum(list(arrays.values()), axis=0, dtype=np.float32)


def load_selection(
    batch: BatchIndex,
    track: str,
    stem: str,
    providers: Sequence[str] | None = None,
    *,
    start: float = 0.0,
    end: float | None = None,
    sr: int = PLAYER_SR,
) -> Selection:
    """Load the mixture, the reference of ``stem`` and each provider's ``stem`` of a track.

    Sources that cannot be loaded are listed in ``missing`` with the reason, never raised.
    Every array is padded or trimmed to the mixture's length (the longest source when the
    mixture is missing); the range is clamped to it.

    Examples
    --------
    >>> sel = load_selection(BatchIndex.open("reports/demo"), "01-sunday-drive", "vocals",
    ...                      start=2, end=6)                       # doctest: +SKIP
    >>> list(sel.sources), sel.clip("mixture").shape               # doctest: +SKIP
    (['mixture', 'reference', 'sourceress', 'audioshake'], (2, 88200))
    """
    from stemkit.audio import align

    info = batch.track_info(track)
    wanted = batch.providers_with(track, stem) if providers is None else list(providers)
    sources: dict[str, np.ndarray] = {}
    missing: dict[str, str] = {}
    loaders: list[tuple[str, Any]] = [
        ("mixture", lambda: load_at(info["mixture"], sr)),
        ("reference", lambda: _reference(info, stem, sr)),
    ]
    for p in wanted:
        path = batch.provider_stems(track, p).get(stem)
        loaders.append((p, (lambda path=path: load_at(path, sr) if path else None)))
    for name, load in loaders:
        try:
            y = load()
        except Exception as exc:  # noqa: BLE001 - shown next to the player instead
            missing[name] = str(exc)
            continue
        if y is None:
            missing[name] = f"no {stem} " + ("reference" if name == "reference" else "stem")
        else:
            sources[name] = y
    length = sources["mixture"].shape[1] if "mixture" in sources else None
    sources = align(sources, length) if sources else {}
    duration = (length or max((y.shape[1] for y in sources.values()), default=0)) / sr
    end = duration if end is None else min(float(end), duration)
    start = min(max(0.0, float(start)), end)
    return Selection(track, stem, sr, start, end, duration, sources, missing)


def player(y: np.ndarray, sr: int, *, stereo: bool = False) -> Any:
    """An ``IPython.display.Audio`` of ``y`` as 16-bit WAV at its own level (no
    normalisation, so sources compare by loudness too); mono downmix unless ``stereo``.

    Examples
    --------
    >>> a = player(np.zeros((2, 2205), np.float32), 22050)
    >>> a.data[:4], len(a.data)
    (b'RIFF', 4454)
    """
    from IPython.display import Audio

    y = np.atleast_2d(np.asarray(y, dtype=np.float32))
    if not stereo or y.shape[0] > 2:
        y = y.mean(axis=0, keepdims=True)
    y = np.clip(y, -1.0, 1.0)
    return Audio(data=y if y.shape[0] > 1 else y[0], rate=sr, normalize=False)


# ----------------------------------------------------------------------------- spectrograms


@dataclass
class Spectrogram:
    """A display spectrogram: ``db`` is ``(rows, columns)`` power in dB (ref 1.0), row ``i``
    centred on ``freqs[i]`` Hz; columns span ``start``–``end`` seconds."""

    db: np.ndarray
    freqs: np.ndarray
    start: float
    end: float
    scale: str

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """For ``imshow(origin="lower")``: time in seconds, rows by index."""
        return (self.start, self.end, -0.5, self.db.shape[0] - 0.5)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=float) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=float) / 2595.0) - 1.0)


def band_edges(scale: str, sr: int, rows: int, fmin: float = 30.0) -> np.ndarray:
    """``rows + 1`` band edges (Hz) from low to ``sr / 2`` on a ``linear``, ``log`` or
    ``mel`` axis.

    Examples
    --------
    >>> band_edges("linear", 8000, 4).tolist()
    [0.0, 1000.0, 2000.0, 3000.0, 4000.0]
    >>> band_edges("log", 8000, 2, fmin=40).round().tolist()
    [40.0, 400.0, 4000.0]
    """
    nyquist = sr / 2
    if scale == "linear":
        return np.linspace(0.0, nyquist, rows + 1)
    if scale == "log":
        return np.geomspace(fmin, nyquist, rows + 1)
    if scale == "mel":
        return _mel_to_hz(np.linspace(0.0, _hz_to_mel(nyquist), rows + 1))
    raise ValueError(f"unknown frequency scale {scale!r}; one of {', '.join(SCALES)}")


def _stft_power(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(n_fft // 2 + 1, frames)`` power of Hann-windowed, centred frames."""
    pad = n_fft // 2
    x = np.pad(x, (pad, pad + max(0, n_fft - len(x) - 2 * pad)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    spec = np.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)
    return (np.abs(spec) ** 2).T.astype(np.float32)


def _pool(power: np.ndarray, bin_hz: float, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean power of the FFT bins in each band; bands narrower than a bin are interpolated."""
    n_bins = power.shape[0]
    lo = np.clip(np.ceil(edges[:-1] / bin_hz).astype(int), 0, n_bins)
    hi = np.clip(np.ceil(edges[1:] / bin_hz).astype(int), 0, n_bins)
    hi[-1] = n_bins  # the top band includes Nyquist
    cum = np.vstack([np.zeros((1, power.shape[1]), power.dtype), np.cumsum(power, axis=0)])
    counts = hi - lo
    out = (cum[hi] - cum[lo]) / np.maximum(counts, 1)[:, None]
    centres = np.sqrt(edges[:-1] * edges[1:]) if edges[0] > 0 else (edges[:-1] + edges[1:]) / 2
    empty = counts <= 0
    if empty.any():
        pos = np.clip(centres[empty] / bin_hz, 0, n_bins - 1)
        i = np.minimum(np.floor(pos).astype(int), n_bins - 2)
        w = (pos - i)[:, None]
        out[empty] = power[i] * (1 - w) + power[i + 1] * w
    return out, centres


def spectrogram(
    y: np.ndarray,
    sr: int,
    *,
    scale: str = "mel",
    start: float = 0.0,
    end: float | None = None,
    columns: int = 600,
    rows: int = 160,
    fmin: float = 30.0,
) -> Spectrogram:
    """Spectrogram of the mono downmix of ``y`` between ``start`` and ``end`` seconds, on a
    ``linear``, ``log`` or ``mel`` frequency axis, sized for display: about ``columns`` frames
    (the hop grows with the range) and ``rows`` frequency bands (FFT bins averaged per band).

    Examples
    --------
    >>> sr = 22050
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(2 * sr) / sr).astype(np.float32)
    >>> s = spectrogram(tone, sr, scale="log", start=0.5, end=1.5, rows=100)
    >>> s.db.shape[0], s.db.shape[1] <= 610, round(float(s.freqs[s.db.mean(axis=1).argmax()]), -2)
    (100, True, 1000.0)
    """
    x = np.asarray(y, dtype=np.float32)
    x = x.mean(axis=0) if x.ndim == 2 else x
    duration = len(x) / sr
    end = duration if end is None else min(float(end), duration)
    start = min(max(0.0, float(start)), end)
    seg = x[int(round(start * sr)) : int(round(end * sr))]
    n_fft = 2048 if sr <= 24000 else 4096
    hop = max(n_fft // 8, math.ceil(max(len(seg), 1) / columns))
    power = _stft_power(seg if len(seg) else np.zeros(1, np.float32), n_fft, hop)
    pooled, centres = _pool(power, sr / n_fft, band_edges(scale, sr, rows, fmin))
    db = 10.0 * np.log10(np.maximum(pooled, 1e-10))
    return Spectrogram(db.astype(np.float32), centres, start, end, scale)


def _freq_ticks(ax: Any, spec: Spectrogram) -> None:
    top = spec.freqs[-1]
    if spec.scale == "linear":
        step = 1000 if top <= 6000 else 2000 if top <= 12000 else 4000
        ticks = np.arange(0, top, step)
    else:
        ticks = [f for f in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if f < top]
    ticks = [t for t in ticks if spec.freqs[0] <= t <= top]
    ax.set_yticks(np.interp(ticks, spec.freqs, np.arange(len(spec.freqs))))
    ax.set_yticklabels([f"{t / 1000:g}k" if t >= 1000 else f"{t:g}" for t in ticks])


def spectrogram_png(
    panels: dict[str, Spectrogram],
    *,
    dynamic_range: float = 80.0,
    title: str | None = None,
    width: float = 9.0,
    panel_height: float = 1.55,
    dpi: int = 100,
) -> bytes:
    """PNG of spectrograms stacked one per row (label on the left, in the provider's colour),
    on one colour scale: the loudest cell of all panels down to ``dynamic_range`` dB below.
    ``width`` inches × ``dpi`` is the image width in pixels (900 by default).

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    >>> png = spectrogram_png({"mixture": spectrogram(x, 22050, scale="linear")})
    >>> png[:4]
    b'\\x89PNG'
    """
    from matplotlib.figure import Figure

    from stemkit.plots import provider_color

    n = max(1, len(panels))
    fig = Figure(figsize=(width, 0.7 + panel_height * n), dpi=dpi, layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False, sharex=True)[:, 0]
    vmax = max((float(s.db.max()) for s in panels.values()), default=0.0)
    image = None
    for ax, (label, spec) in zip(axes, panels.items(), strict=False):
        image = ax.imshow(
            spec.db,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=vmax - dynamic_range,
            vmax=vmax,
            extent=spec.extent,
            interpolation="nearest",
        )
        _freq_ticks(ax, spec)
        ax.set_ylabel(label, color=provider_color(label.split()[0]), fontweight="bold")
    if not panels:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "nothing to draw", ha="center", va="center")
    else:
        axes[-1].set_xlabel("time (s)")
        scale = next(iter(panels.values())).scale
        fig.colorbar(image, ax=list(axes), shrink=0.8, pad=0.01, label=f"dB · {scale} frequency")
    if title:
        fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def selection_spectrograms(
    sel: Selection, sources: Sequence[str] | None = None, *, scale: str = "mel", **kwargs: Any
) -> dict[str, Spectrogram]:
    """Spectrograms of the selected range of each source (all loaded sources by default).

    Examples
    --------
    >>> sel = Selection("t", "vocals", 8000, 0.0, 1.0, 1.0, {"mixture": np.zeros((1, 8000))})
    >>> selection_spectrograms(sel, scale="linear")["mixture"].scale
    'linear'
    """
    names = [s for s in (sources or list(sel.sources)) if s in sel.sources]
    return {
        name: spectrogram(
            sel.sources[name], sel.sr, scale=scale, start=sel.start, end=sel.end, **kwargs
        )
        for name in names
    }


# ---------------------------------------------------------------------------------- A/B


@dataclass
class ABPair:
    """Two sources of one selection played as one clip: ``segments`` lists
    ``(start s, end s, label)`` of the clip, so a listener knows which one is playing."""

    a: str
    b: str
    sr: int
    clip: np.ndarray
    segments: list[tuple[float, float, str]]

    @property
    def description(self) -> str:
        """``A = x, B = y: A 0.0–2.0 s, B 2.0–4.0 s, …`` (the first few segments)."""
        parts = [f"{lb} {s:.1f}–{e:.1f} s" for s, e, lb in self.segments[:6]]
        more = " …" if len(self.segments) > 6 else ""
        return f"A = {self.a}, B = {self.b}: " + ", ".join(parts) + more


def _fade(y: np.ndarray, n: int) -> np.ndarray:
    n = min(n, y.shape[-1] // 2)
    if n <= 0:
        return y
    ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
    y = y.copy()
    y[..., :n] *= ramp
    y[..., -n:] *= ramp[::-1]
    return y


def ab_pair(
    sel: Selection,
    a: str,
    b: str,
    *,
    segment: float | None = None,
    gap: float = 0.4,
    limit: float = MAX_PLAY_SECONDS,
) -> ABPair:
    """A quick A/B of two sources of a selection (two providers, or one and the reference).

    With ``segment=None`` the clip is A's range, ``gap`` seconds of silence, then B's range;
    with ``segment=s`` it switches between A and B every ``s`` seconds over the range (same
    length as the range: the same passage, heard alternately). Levels are left as they are.

    Examples
    --------
    >>> y = np.ones((1, 8000), np.float32)
    >>> sel = Selection("t", "vocals", 4000, 0.0, 2.0, 2.0, {"x": y, "y": -y})
    >>> ab = ab_pair(sel, "x", "y", segment=0.5)
    >>> ab.clip.shape, [lb for _, _, lb in ab.segments]
    ((1, 8000), ['A', 'B', 'A', 'B'])
    >>> ab_pair(sel, "x", "y", gap=0.5).clip.shape
    (1, 18000)
    """
    for name in (a, b):
        if name not in sel.sources:
            raise KeyError(f"{name} has no {sel.stem} audio for {sel.track}")
    each = limit / 2 if segment is None else limit
    xa, xb = sel.clip(a, limit=each), sel.clip(b, limit=each)
    channels = max(xa.shape[0], xb.shape[0])
    xa, xb = (np.broadcast_to(x, (channels, x.shape[1])) for x in (xa, xb))
    sr, fade = sel.sr, int(0.01 * sel.sr)
    if segment is None:
        silence = np.zeros((channels, int(gap * sr)), np.float32)
        clip = np.concatenate([_fade(xa, fade), silence, _fade(xb, fade)], axis=1)
        la, lg = xa.shape[1] / sr, gap
        segments = [(0.0, la, "A"), (la + lg, la + lg + xb.shape[1] / sr, "B")]
        return ABPair(a, b, sr, clip, segments)
    step = max(1, int(round(segment * sr)))
    pieces, segments = [], []
    for k, i in enumerate(range(0, xa.shape[1], step)):
        label, src = ("A", xa) if k % 2 == 0 else ("B", xb)
        piece = src[:, i : i + step]
        pieces.append(_fade(piece, fade))
        segments.append((i / sr, (i + piece.shape[1]) / sr, label))
    clip = np.concatenate(pieces, axis=1) if pieces else np.zeros((channels, 0), np.float32)
    return ABPair(a, b, sr, clip, segments)


def ab_metrics(metrics: pd.DataFrame, stem: str, a: str, b: str) -> pd.DataFrame:
    """A's and B's scores for ``stem`` side by side, with ``B − A`` (one row per metric).

    Examples
    --------
    >>> m = pd.DataFrame({"provider": ["x", "y"], "stem": ["vocals"] * 2, "metric": ["sdr"] * 2,
    ...                   "value": [5.0, 7.5]})
    >>> ab_metrics(m, "vocals", "x", "y").loc["SDR (dB)"].tolist()
    [5.0, 7.5, 2.5]
    """
    rows = metrics[(metrics["stem"] == stem) & metrics["provider"].isin([a, b])]
    if rows.empty:
        return pd.DataFrame(columns=[f"A: {a}", f"B: {b}", "B − A"])
    table = rows.pivot_table(index="metric", columns="provider", values="value", aggfunc="first")
    table = table.rename(index=METRIC_NAMES)
    out = pd.DataFrame(
        {
            f"A: {a}": table.get(a, np.nan),
            f"B: {b}": table.get(b, np.nan),
        },
        index=table.index,
    )
    out["B − A"] = out.iloc[:, 1] - out.iloc[:, 0]
    out.index.name = None
    return out.round(2)


# ----------------------------------------------------------------------------- track tables


@dataclass
class TrackTables:
    """One track's rows of the batch tables, read from ``analysis/<track>/`` and the records."""

    track: str
    metrics: pd.DataFrame
    timeline: pd.DataFrame
    jobs: pd.DataFrame
    intelligibility: pd.DataFrame
    verdicts: pd.DataFrame | None = None

    @property
    def scores(self) -> pd.DataFrame:
        """The metrics as a person reads them (:func:`stemkit.report.track_table`)."""
        from stemkit.report import track_table

        return track_table(self.metrics) if not self.metrics.empty else pd.DataFrame()


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns)
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=columns)


def track_tables(batch: BatchIndex, track: str) -> TrackTables:
    """Metrics, timeline, job states, WER rows and verdicts (when written) of one track.

    Examples
    --------
    >>> t = track_tables(BatchIndex.open("reports/demo"), "01-sunday-drive")   # doctest: +SKIP
    >>> t.jobs["state"].tolist()                                              # doctest: +SKIP
    ['done', 'done']
    """
    from stemkit.analysis import METRIC_COLUMNS
    from stemkit.intelligibility import COLUMNS as INTEL_COLUMNS
    from stemkit.pipeline import read_record
    from stemkit.timing import COLUMNS as TIMELINE_COLUMNS

    folder = batch.folder / "analysis" / track
    metrics = _read_csv(folder / "metrics.csv", METRIC_COLUMNS)
    timeline = _read_csv(folder / "timeline.csv", TIMELINE_COLUMNS)
    if not timeline.empty:
        for col in ("start", "end"):
            timeline[col] = pd.to_datetime(timeline[col], utc=True, format="ISO8601")
    intel = _read_csv(folder / "intelligibility.csv", INTEL_COLUMNS)
    verdicts = (
        _read_csv(folder / "verdicts.csv", []) if (folder / "verdicts.csv").is_file() else None
    )
    jobs = []
    for provider in batch.providers:
        rec = read_record(batch.folder, track, provider) or {"state": "never ran"}
        jobs.append(
            {
                "provider": provider,
                "state": rec.get("state"),
                "stems": ", ".join(batch.provider_stems(track, provider)),
                "error": rec.get("error") or "",
            }
        )
    return TrackTables(track, metrics, timeline, pd.DataFrame(jobs), intel, verdicts)


def timeline_png(timeline: pd.DataFrame, *, title: str | None = None, dpi: int = 90) -> bytes:
    """PNG of :func:`stemkit.plots.timeline_chart` (the figure is closed afterwards).

    Examples
    --------
    >>> from stemkit.timing import timeline
    >>> tl = timeline([("Processing", "2020-07-21T14:51:15Z"),
    ...                ("Finalising", "2020-07-21T14:52:06Z")], provider="sourceress", track="t")
    >>> timeline_png(tl)[:4]
    b'\\x89PNG'
    """
    import matplotlib.pyplot as plt

    from stemkit.plots import timeline_chart

    fig = timeline_chart(timeline, title=title)
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def stage_seconds(timeline: pd.DataFrame) -> pd.DataFrame:
    """Seconds per stage (columns) for each job lane (rows: provider), summed per stage.

    Examples
    --------
    >>> tl = pd.DataFrame({"provider": ["a", "a"], "stage": ["upload", "wait"],
    ...                    "seconds": [0.5, 2.0]})
    >>> stage_seconds(tl).loc["a"].tolist()
    [0.5, 2.0]
    """
    from stemkit.timing import STAGE_ORDER

    if timeline.empty:
        return pd.DataFrame()
    table = timeline.pivot_table(index="provider", columns="stage", values="seconds", aggfunc="sum")
    order = [s for s in STAGE_ORDER if s in table.columns]
    order += [s for s in table.columns if s not in order]
    table = table[order].round(3)
    table.columns.name = None
    return table


# --------------------------------------------------------------------------------- widgets


def _table_html(df: pd.DataFrame | None, empty: str) -> str:
    if df is None or df.empty:
        return f"<p><i>{html.escape(empty)}</i></p>"
    return df.to_html(na_rep="–", float_format=lambda v: f"{v:.3g}", border=0, classes="stemkit")


_STYLE = """<style>
.stemkit-explorer table.stemkit {border-collapse: collapse; font-size: 12px; margin: 4px 0 12px;}
.stemkit-explorer table.stemkit td, .stemkit-explorer table.stemkit th
  {padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right;}
.stemkit-explorer h4 {margin: 8px 0 2px;}
</style>"""


class Explorer:
    """The explorer's widget tree over a batch folder (``.widget`` is the top widget).

    Controls (each an ipywidget, ``.value`` settable from code): :attr:`batch`, :attr:`track`,
    :attr:`stem`, :attr:`providers`, :attr:`scale`, :attr:`time_range`, :attr:`stereo`,
    :attr:`ab_a`, :attr:`ab_b`, :attr:`ab_mode`. Views: :attr:`players` (an ``Output`` with one
    ``Audio`` per source), :attr:`spectrogram` (``Image``), :attr:`ab_player`,
    :attr:`ab_spectrogram`, :attr:`ab_table`, :attr:`metrics`, :attr:`timeline`,
    :attr:`timeline_table`, :attr:`status`. A failure is written to :attr:`status`, not raised.

    Examples
    --------
    >>> ex = Explorer("reports/demo")                        # doctest: +SKIP
    >>> ex.track.value = ex.track.options[1]                 # doctest: +SKIP
    >>> ex.widget                                            # doctest: +SKIP
    """

    def __init__(self, batch_dir: str | os.PathLike, *, root: str | os.PathLike | None = None):
        import ipywidgets as W

        folder = resolve_batch(batch_dir)
        if folder is None:
            raise FileNotFoundError(f"no batch at or beside {batch_dir}")
        #: shown above the status line: which batch was opened instead of the one asked for
        self.notice = (
            ""
            if Path(batch_dir).resolve() == folder.resolve()
            else f"{batch_dir} is not a batch; showing {folder}, the newest batch beside it."
        )
        self.root = Path(root) if root is not None else folder.parent
        self.index = BatchIndex.open(folder)
        self.selection: Selection | None = None
        self.tables: TrackTables | None = None
        self._quiet = False
        wide = W.Layout(width="auto")

        batches = list_batches(self.root)
        if not any(b.resolve() == folder.resolve() for b in batches):
            batches.insert(0, folder)
        self.batch = W.Dropdown(
            options=[(b.name, str(b)) for b in batches], value=str(folder), description="batch"
        )
        self.track = W.Dropdown(description="track", layout=W.Layout(width="300px"))
        self.stem = W.Dropdown(description="stem", layout=W.Layout(width="220px"))
        self.providers = W.SelectMultiple(description="providers", rows=3)
        self.scale = W.ToggleButtons(options=list(SCALES), value="mel", description="frequency")
        self.scale.style.button_width = "70px"
        self.time_range = W.FloatRangeSlider(
            value=(0.0, 1.0),
            min=0.0,
            max=1.0,
            step=0.1,
            description="time (s)",
            continuous_update=False,
            readout=False,  # shown by range_label: the slider's own range readout can say NaN
            layout=W.Layout(width="420px"),
        )
        self.range_label = W.Label()
        self.stereo = W.Checkbox(value=False, description="stereo players", indent=False)
        self.ab_a = W.Dropdown(description="A", layout=W.Layout(width="260px"))
        self.ab_b = W.Dropdown(description="B", layout=W.Layout(width="260px"))
        self.ab_mode = W.ToggleButtons(
            options=[("A then B", "sequence"), ("alternate every 2 s", "alternate")],
            value="sequence",
        )

        self.header = W.HTML()
        self.status = W.HTML()
        self.players = W.Output(layout=wide)
        picture = {"max_width": "100%", "align_self": "flex-start"}  # never stretched
        self.spectrogram = W.Image(format="png", layout=W.Layout(**picture))
        self.ab_player = W.Output(layout=wide)
        self.ab_spectrogram = W.Image(format="png", layout=W.Layout(**picture))
        self.ab_table = W.HTML()
        self.metrics = W.HTML()
        self.timeline = W.Image(format="png", layout=W.Layout(**picture))
        self.timeline_table = W.HTML()

        self.tabs = W.Tab(
            children=[
                self.players,
                self.spectrogram,
                W.VBox(
                    [
                        W.HBox([self.ab_a, self.ab_b]),
                        self.ab_mode,
                        self.ab_player,
                        self.ab_table,
                        self.ab_spectrogram,
                    ]
                ),
                self.metrics,
                W.VBox([self.timeline, self.timeline_table]),
            ],
            titles=["listen", "spectrogram", "A/B", "metrics", "timeline"],
        )
        controls = W.VBox(
            [
                W.HBox([self.batch, self.track, self.stem]),
                W.HBox(
                    [
                        self.providers,
                        W.VBox(
                            [self.scale, W.HBox([self.time_range, self.range_label]), self.stereo]
                        ),
                    ]
                ),
            ]
        )
        self.widget = W.VBox([W.HTML(_STYLE), self.header, controls, self.tabs, self.status])
        self.widget.add_class("stemkit-explorer")

        self.batch.observe(self._on_batch, "value")
        self.track.observe(self._on_track, "value")
        for w in (self.stem, self.providers, self.time_range):
            w.observe(self._on_selection, "value")
        self.stereo.observe(self._on_stereo, "value")
        self.scale.observe(self._on_scale, "value")
        for w in (self.ab_a, self.ab_b):
            w.observe(self._on_ab, "value")
        self.ab_mode.observe(self._on_ab_mode, "value")
        self._guard("open the batch", self._open_batch, folder)

    # -- event plumbing

    @contextlib.contextmanager
    def _muted(self) -> Iterator[None]:
        """Set several controls without each change triggering its own refresh."""
        was, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = was

    def _guard(self, what: str, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - a widget callback must never raise
            self.status.value = (
                f"<p style='color:#b00020'>could not {html.escape(what)}: "
                f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>"
            )

    def _on_batch(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("open the batch", self._open_batch, Path(change["new"]))

    def _on_track(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("open the track", self._open_track)

    def _on_selection(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("load the selection", self._refresh_selection)

    def _on_stereo(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("prepare the players", self._refresh_players)
            self._guard("prepare the A/B", self._refresh_ab_player)

    def _on_scale(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("draw the spectrograms", self._refresh_pictures)

    def _on_ab_mode(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("prepare the A/B", self._refresh_ab_player)

    def _on_ab(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._guard("prepare the A/B", self._refresh_ab)

    # -- state changes

    def _open_batch(self, folder: Path) -> None:
        self.index = BatchIndex.open(folder)
        info = self.index.info
        self.header.value = (
            f"<h3 style='margin:4px 0'>stemkit explorer: <code>{html.escape(self.index.name)}"
            f"</code></h3><p style='margin:0 0 6px'>{len(self.index.tracks)} tracks × "
            f"{html.escape(', '.join(self.index.providers))}; created "
            f"{html.escape(str(info.get('created_at', '?')))[:19]}</p>"
        )
        with self._muted():
            self.track.options = self.index.tracks
            self.track.value = self.index.tracks[0] if self.index.tracks else None
        self._open_track()

    def _open_track(self) -> None:
        track = self.track.value
        if track is None:
            self.status.value = "<p>This batch has no tracks.</p>"
            return
        stems = self.index.stems(track)
        duration = self.index.duration(track) or 1.0
        with self._muted():
            self.stem.options = stems
            self.stem.value = stems[0] if stems else None
            self._set_provider_options()
            self.time_range.max = max(duration, 0.1)
            self.time_range.value = (0.0, min(duration, DEFAULT_SECONDS))
        self.tables = track_tables(self.index, track)
        self._refresh_tables()
        self._refresh_selection()

    def _set_provider_options(self) -> None:
        track, stem = self.track.value, self.stem.value
        have = self.index.providers_with(track, stem) if stem else []
        self.providers.options = have
        self.providers.value = tuple(have)

    def _refresh_selection(self) -> None:
        with self._muted():
            if set(self.providers.options) != set(
                self.index.providers_with(self.track.value, self.stem.value or "")
            ):
                self._set_provider_options()
        start, end = self.time_range.value
        self.selection = load_selection(
            self.index,
            self.track.value,
            self.stem.value,
            list(self.providers.value),
            start=start,
            end=end,
        )
        self._set_ab_options()
        self._refresh_players()
        self._refresh_pictures()  # and the A/B one
        self._refresh_ab_player()
        self._refresh_ab_table()
        self._refresh_status()

    def _set_ab_options(self) -> None:
        sel = self.selection
        options = [p for p in self.index.providers_with(sel.track, sel.stem) if p in sel.sources]
        options += [s for s in ("reference", "mixture") if s in sel.sources]
        with self._muted():
            a, b = self.ab_a.value, self.ab_b.value
            self.ab_a.options = options
            self.ab_b.options = options
            if options:
                self.ab_a.value = a if a in options else options[0]
                rest = [o for o in options if o != self.ab_a.value] or options
                self.ab_b.value = b if b in options and b != self.ab_a.value else rest[0]

    def _refresh_players(self) -> None:
        from IPython.display import HTML

        from stemkit.plots import provider_color

        sel = self.selection
        self.players.outputs = ()
        order = ["mixture", "reference", *self.providers.value]
        for name in order:
            label = f"{name} ({sel.stem})" if name not in ("mixture",) else name
            color = provider_color(name)
            self.players.append_display_data(
                HTML(f"<b style='color:{color}'>{html.escape(label)}</b>")
            )
            if name in sel.sources:
                clip = sel.clip(name, limit=MAX_PLAY_SECONDS)
                self.players.append_display_data(player(clip, sel.sr, stereo=self.stereo.value))
            else:
                why = sel.missing.get(name, "not loaded")
                self.players.append_display_data(HTML(f"<i>{html.escape(why)}</i>"))

    def _refresh_pictures(self) -> None:
        sel = self.selection
        names = ["mixture", "reference", *self.providers.value]
        panels = selection_spectrograms(sel, names, scale=self.scale.value)
        title = f"{sel.track}: mixture, reference {sel.stem} and each provider's {sel.stem}"
        self.spectrogram.value = spectrogram_png(panels, title=title)
        self._refresh_ab_picture()

    def _ab_ready(self) -> bool:
        sel, a, b = self.selection, self.ab_a.value, self.ab_b.value
        return sel is not None and bool(a and b) and a in sel.sources and b in sel.sources

    def _refresh_ab_picture(self) -> None:
        if not self._ab_ready():
            self.ab_spectrogram.value = b""
            return
        sel, a, b = self.selection, self.ab_a.value, self.ab_b.value
        panels = selection_spectrograms(sel, [a, b], scale=self.scale.value)
        labelled = {f"{a}\n(A)": panels[a], f"{b}\n(B)": panels[b]}
        title = f"{sel.track}, {sel.stem}: A = {a}, B = {b}"
        self.ab_spectrogram.value = spectrogram_png(labelled, title=title)

    def _refresh_ab_player(self) -> None:
        from IPython.display import HTML

        self.ab_player.outputs = ()
        if not self._ab_ready():
            self.ab_player.append_display_data(HTML("<i>A/B needs two sources of this stem.</i>"))
            return
        segment = 2.0 if self.ab_mode.value == "alternate" else None
        pair = ab_pair(self.selection, self.ab_a.value, self.ab_b.value, segment=segment)
        self.ab_player.append_display_data(HTML(f"<p>{html.escape(pair.description)}</p>"))
        self.ab_player.append_display_data(player(pair.clip, pair.sr, stereo=self.stereo.value))

    def _refresh_ab_table(self) -> None:
        metrics = self.tables.metrics if self.tables is not None else pd.DataFrame()
        if not self._ab_ready() or metrics.empty:
            self.ab_table.value = _table_html(None, "No scores for these two yet.")
            return
        table = ab_metrics(metrics, self.selection.stem, self.ab_a.value, self.ab_b.value)
        self.ab_table.value = _STYLE + _table_html(table, "No scores for these two yet.")

    def _refresh_ab(self) -> None:
        self._refresh_ab_player()
        self._refresh_ab_table()
        self._refresh_ab_picture()

    def _refresh_tables(self) -> None:
        t = self.tables
        parts = [_STYLE, "<h4>Scores (dB)</h4>"]
        parts.append(_table_html(t.scores, "No metrics for this track yet (run the analyze step)."))
        if t.verdicts is not None:
            parts += ["<h4>Verdicts</h4>", _table_html(t.verdicts, "verdicts.csv is empty.")]
        parts += ["<h4>Jobs</h4>", _table_html(t.jobs.set_index("provider"), "No jobs.")]
        if not t.intelligibility.empty:
            cols = [
                c
                for c in ("source", "stem", "wer", "is_blank", "state", "text")
                if c in t.intelligibility
            ]
            wer = t.intelligibility[cols].set_index("source")
            parts += ["<h4>Intelligibility (word error rate)</h4>", _table_html(wer, "")]
        self.metrics.value = "".join(parts)
        if t.timeline.empty:
            self.timeline.value = b""
            self.timeline_table.value = _table_html(None, "No timeline for this track.")
        else:
            self.timeline.value = timeline_png(t.timeline, title=f"{t.track}: job timeline")
            self.timeline_table.value = (
                _STYLE + "<h4>Seconds per stage</h4>" + _table_html(stage_seconds(t.timeline), "")
            )

    def _refresh_status(self) -> None:
        sel = self.selection
        self.range_label.value = f"{sel.start:.1f} – {sel.end:.1f} s of {sel.duration:.1f} s"
        played = min(sel.end, sel.start + MAX_PLAY_SECONDS) - sel.start
        note = f"players: {played:.1f} s at {sel.sr} Hz" + (
            f" (first {MAX_PLAY_SECONDS:.0f} s of the range)"
            if played < sel.end - sel.start
            else ""
        )
        missing = "; ".join(f"{k}: {v}" for k, v in sel.missing.items())
        lines = [self.notice, note] + ([f"missing: {missing}"] if missing else [])
        self.status.value = (
            "<p style='color:#555'>" + "<br>".join(html.escape(x) for x in lines if x) + "</p>"
        )


def explore(batch_dir: str | os.PathLike = "../reports/demo") -> Any:
    """The explorer widget for ``batch_dir``, or for the newest batch beside it when that
    folder is not a batch; a message widget (never an exception) when there is no batch.

    Examples
    --------
    >>> explore("/nonexistent/demo").value.startswith("<p>No batch to explore")
    True
    """
    import ipywidgets as W

    folder = resolve_batch(batch_dir)
    if folder is None:
        where = html.escape(str(batch_dir))
        return W.HTML(f"<p>{NO_BATCH.format(where=f'<code>{where}</code>')}</p>")
    try:
        return Explorer(batch_dir).widget
    except Exception as exc:  # noqa: BLE001 - a notebook cell shows the reason instead
        return W.HTML(
            f"<p>Could not open {html.escape(str(folder))}: "
            f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>"
        )
