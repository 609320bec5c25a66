"""What the explorer shows, as plain functions on a batch folder (tested without a browser).

* finding batches: :func:`resolve_batch` (over :func:`stemkit.batchdir.list_batches`);
* what a batch holds: :class:`BatchIndex` (tracks, providers, each provider's stem files);
* audio for a selection: :func:`load_selection` (mixture, reference, each provider's stem, at
  :data:`PLAYER_SR`, cached), :func:`player` (16-bit WAV for ``IPython.display.Audio``);
* pictures: :func:`selection_spectrograms` (through :func:`stemkit.plots.spectrogram`),
  :func:`timeline_png`;
* comparisons: :func:`ab_pair` (A then B, or A and B alternating), :func:`ab_metrics`;
* a track's tables: :func:`track_tables` (metrics, timeline, jobs, WER, verdicts).

Nothing here writes into the batch folder.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stemkit.batchdir import BatchFolder, list_batches
from stemkit.plots import (  # noqa: F401  (re-exported: the explorer's pictures)
    SCALES,
    Spectrogram,
    band_edges,
    spectrogram,
    spectrogram_png,
)

#: Sample rate of everything the explorer plays and draws (small payloads, full speech band).
PLAYER_SR = 22050
#: Longest stretch a player carries (seconds); longer ranges play from their start.
MAX_PLAY_SECONDS = 60.0
#: Range selected when a track opens (seconds from its start).
DEFAULT_SECONDS = 30.0
#: How the metrics of ``metrics.csv`` are named on screen (as in the report).
METRIC_NAMES = {"sdr": "SDR (dB)", "si_sdr": "SI-SDR (dB)", "recon_db": "mixture − Σ stems (dB)"}
NO_BATCH = (
    "No batch to explore: {where} holds no <code>batch.json</code>, and neither do the "
    "folders beside it. Run <code>make demo</code> (about 3 minutes; it writes "
    "<code>reports/demo</code>) or <code>stemkit batch … --out reports/NAME</code>, "
    "then run this cell again."
)


# ---------------------------------------------------------------------------- finding batches


def is_batch(folder: str | os.PathLike) -> bool:
    """True if ``folder`` is a batch folder (see :meth:`stemkit.batchdir.BatchFolder.is_batch`).

    Examples
    --------
    >>> is_batch("/nonexistent")
    False
    """
    return BatchFolder.is_batch(folder)


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

        batch = BatchFolder(folder)
        index = cls(Path(folder), batch.info())
        for track in index.tracks:
            for provider in index.providers:
                files = batch.stem_files(track, provider)
                if files:
                    index.files[(track, provider)] = {canonical(p.name): p for p in files.values()}
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
    from stemkit.audio import load_audio, resample

    y, file_sr = load_audio(path)
    y = np.ascontiguousarray(resample(y, file_sr, sr), dtype=np.float32)
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
        """The metrics as a person reads them (:func:`stemkit.compare.report.track_table`)."""
        from stemkit.compare.report import track_table

        return track_table(self.metrics) if not self.metrics.empty else pd.DataFrame()


def track_tables(batch: BatchIndex, track: str) -> TrackTables:
    """Metrics, timeline, job states, WER rows and verdicts (when written) of one track.

    Examples
    --------
    >>> t = track_tables(BatchIndex.open("reports/demo"), "01-sunday-drive")   # doctest: +SKIP
    >>> t.jobs["state"].tolist()                                              # doctest: +SKIP
    ['done', 'done']
    """
    from stemkit.analyze.intelligibility import COLUMNS as INTEL_COLUMNS
    from stemkit.analyze.track import METRIC_COLUMNS
    from stemkit.timing import COLUMNS as TIMELINE_COLUMNS

    folder = BatchFolder(batch.folder)
    metrics = folder.read_analysis(track, "metrics", METRIC_COLUMNS)
    timeline = folder.read_analysis(track, "timeline", TIMELINE_COLUMNS)
    if not timeline.empty:
        for col in ("start", "end"):
            timeline[col] = pd.to_datetime(timeline[col], utc=True, format="ISO8601")
    intel = folder.read_analysis(track, "intelligibility", INTEL_COLUMNS)
    path = folder.analysis_table(track, "verdicts")
    verdicts = folder.read_analysis(track, "verdicts") if path.is_file() else None
    jobs = []
    for provider in batch.providers:
        rec = folder.read_record(track, provider) or {"state": "never ran"}
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
