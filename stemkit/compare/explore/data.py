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
#: Shortest range the explorer plays and draws (s): a zero-length range is widened to it.
MIN_SECONDS = 0.1
#: How the metrics of ``metrics.csv`` are named on screen, by ``(metric, variant)`` (as in the
#: report's per-track table, :func:`stemkit.compare.report.track_table`).
METRIC_NAMES = {
    ("sdr", "bsseval_v4"): "SDR v4 (dB)",
    ("sir", "bsseval_v4"): "SIR v4 (dB)",
    ("sar", "bsseval_v4"): "SAR v4 (dB)",
    ("isr", "bsseval_v4"): "ISR v4 (dB)",
    ("nsdr", "global"): "nSDR (dB)",
    ("sdr", "global"): "nSDR (dB)",
    ("si_sdr", "scale-invariant"): "SI-SDR (dB)",
    ("recon_db", "mixture"): "mixture − Σ stems (dB)",
}
#: The same names by metric alone (a ``metrics.csv`` without the variant, or an unknown one).
_BY_METRIC = {
    "sdr": "SDR v4 (dB)",
    "sir": "SIR v4 (dB)",
    "sar": "SAR v4 (dB)",
    "isr": "ISR v4 (dB)",
    "nsdr": "nSDR (dB)",
    "si_sdr": "SI-SDR (dB)",
    "recon_db": "mixture − Σ stems (dB)",
}
#: Pseudo-providers of the score bracket: shown after the providers (ceiling, baseline, floor).
BRACKET_ORDER = ("oracle", "baseline", "mixture")
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
    start, end = clamp_range(start, end, duration)
    return Selection(track, stem, sr, start, end, duration, sources, missing)


def clamp_range(start: float, end: float | None, duration: float) -> tuple[float, float]:
    """``(start, end)`` inside ``0``–``duration`` and at least :data:`MIN_SECONDS` long (a
    zero-length range, both handles of the slider on one spot, is widened: forward, or back
    from the end of the track); ``end=None`` is the end of the track.

    Examples
    --------
    >>> clamp_range(5.0, 5.0, 12.0), clamp_range(12.0, 12.0, 12.0), clamp_range(-1, 99, 3.0)
    ((5.0, 5.1), (11.9, 12.0), (0.0, 3.0))
    """
    end = duration if end is None else min(float(end), duration)
    start = min(max(0.0, float(start)), end)
    if end - start < MIN_SECONDS and duration > 0:
        width = min(MIN_SECONDS, duration)
        end = min(duration, start + width)
        start = max(0.0, end - width)
    return round(start, 6), round(end, 6)


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
    if y.shape[1] == 0:  # nothing selected: a silent sample rather than an error
        y = np.zeros((y.shape[0] or 1, 1), np.float32)
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


def metric_name(metric: str, variant: str | None = None) -> str:
    """The on-screen name of a metric of ``metrics.csv`` (one name per metric everywhere).

    Examples
    --------
    >>> metric_name("sdr", "global"), metric_name("sir", "bsseval_v4"), metric_name("isr")
    ('nSDR (dB)', 'SIR v4 (dB)', 'ISR v4 (dB)')
    >>> metric_name("pesq", "wb")
    'pesq (wb)'
    """
    if (metric, variant) in METRIC_NAMES:
        return METRIC_NAMES[(metric, variant)]
    if variant is None or (isinstance(variant, float) and np.isnan(variant)):
        return _BY_METRIC.get(metric, metric)
    return f"{metric} ({variant})"


def named_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` with a ``name`` column (:func:`metric_name` of metric and variant).

    Examples
    --------
    >>> m = pd.DataFrame({"metric": ["sdr", "isr"], "variant": ["global", "bsseval_v4"]})
    >>> named_metrics(m)["name"].tolist()
    ['nSDR (dB)', 'ISR v4 (dB)']
    """
    variants = metrics["variant"] if "variant" in metrics else [None] * len(metrics)
    names = [metric_name(m, v) for m, v in zip(metrics["metric"], variants, strict=True)]
    return metrics.assign(name=names)


def metric_choices(metrics: pd.DataFrame) -> list[str]:
    """The metric names a track has, in the order a reader compares them (nSDR first).

    Examples
    --------
    >>> m = pd.DataFrame({"metric": ["sar", "sdr"], "variant": ["bsseval_v4", "global"]})
    >>> metric_choices(m)
    ['nSDR (dB)', 'SAR v4 (dB)']
    """
    if metrics.empty:
        return []
    order = ["nSDR (dB)", "SI-SDR (dB)", "SDR v4 (dB)", "SIR v4 (dB)", "SAR v4 (dB)"]
    order += ["ISR v4 (dB)", "mixture − Σ stems (dB)"]
    have = list(dict.fromkeys(named_metrics(metrics)["name"]))
    return [n for n in order if n in have] + [n for n in have if n not in order]


def metric_table(metrics: pd.DataFrame, name: str) -> pd.DataFrame:
    """One metric of a track: a row per stem, the providers side by side (then the bracket:
    oracle, baseline, mixture), the best provider of each row named in ``best``.

    Examples
    --------
    >>> m = pd.DataFrame({"provider": ["b", "a", "mixture"], "stem": ["vocals"] * 3,
    ...                   "metric": ["sdr"] * 3, "variant": ["global"] * 3,
    ...                   "value": [5.0, 7.0, -1.0]})
    >>> t = metric_table(m, "nSDR (dB)")
    >>> list(t.columns), t.loc["vocals", "a"], t.loc["vocals", "best"]
    (['b', 'a', 'mixture', 'best'], np.float64(7.0), 'a')
    """
    if metrics.empty:
        return pd.DataFrame()
    m = named_metrics(metrics)
    m = m[m["name"] == name]
    if m.empty:
        return pd.DataFrame()
    m = m.assign(stem=m["stem"].replace({"(all)": "all stems"}))
    table = m.pivot_table(index="stem", columns="provider", values="value", aggfunc="first")
    providers = [p for p in dict.fromkeys(m["provider"]) if p not in BRACKET_ORDER]
    table = table[providers + [p for p in BRACKET_ORDER if p in table.columns]].round(2)
    table.columns.name = None
    if providers:
        lower = name.startswith("mixture −")  # a reconstruction error: smaller is better
        own = table[providers]
        best = own.abs().idxmin(axis=1) if lower else own.idxmax(axis=1)
        table["best"] = best.where(own.notna().any(axis=1), "–")
    return table


def flagged_verdicts(verdicts: pd.DataFrame | None, *, passes: bool = False) -> pd.DataFrame:
    """The verdicts a reader acts on: every row whose verdict is not ``pass`` (all rows with
    ``passes``), worst first (fail, warn, then the rest), without the ``track`` column.

    Examples
    --------
    >>> v = pd.DataFrame({"track": ["t"] * 3, "provider": ["a", "b", "a"],
    ...                   "check": ["clip", "gain", "dc"], "verdict": ["pass", "fail", "warn"]})
    >>> flagged_verdicts(v)[["provider", "check", "verdict"]].values.tolist()
    [['b', 'gain', 'fail'], ['a', 'dc', 'warn']]
    >>> len(flagged_verdicts(v, passes=True))
    3
    """
    if verdicts is None or verdicts.empty or "verdict" not in verdicts:
        return pd.DataFrame()
    v = verdicts.drop(columns=[c for c in ("track",) if c in verdicts])
    if not passes:
        v = v[v["verdict"].astype(str) != "pass"]
    rank = {"fail": 0, "warn": 1, "pass": 3}
    order = v["verdict"].astype(str).map(lambda x: rank.get(x, 2))
    return v.assign(_rank=order).sort_values("_rank", kind="stable").drop(columns="_rank")


@dataclass
class ABPair:
    """Two sources of one selection played as one clip: ``segments`` lists
    ``(start s, end s, label)`` of the clip, so a listener knows which one is playing."""

    a: str
    b: str
    sr: int
    clip: np.ndarray
    segments: list[tuple[float, float, str]]
    #: ``(start s, end s, label)`` of each segment in track time (where it is in the track)
    track_segments: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def description(self) -> str:
        """What plays when, in track time: ``A = x, B = y: A 5.0–7.0 s, then B 5.0–7.0 s of
        the track`` (the first few segments), and where B starts on the player's clock."""
        segs = self.track_segments or self.segments
        parts = [f"{lb} {s:.1f}–{e:.1f} s" for s, e, lb in segs[:6]]
        more = " …" if len(segs) > 6 else ""
        head = f"A = {self.a}, B = {self.b}: "
        if len(self.segments) == 2 and [lb for *_, lb in self.segments] == ["A", "B"]:
            b0 = self.segments[1][0]
            return (
                head + f"{parts[0]}, then {parts[1]} of the track "
                f"(B starts at {int(b0 // 60)}:{b0 % 60:04.1f} on the player)"
            )
        return head + ", ".join(parts) + more + " of the track, alternating"


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
        t0 = sel.start
        where = [(t0, t0 + la, "A"), (t0, t0 + xb.shape[1] / sr, "B")]
        return ABPair(a, b, sr, clip, segments, where)
    step = max(1, int(round(segment * sr)))
    pieces, segments = [], []
    for k, i in enumerate(range(0, xa.shape[1], step)):
        label, src = ("A", xa) if k % 2 == 0 else ("B", xb)
        piece = src[:, i : i + step]
        pieces.append(_fade(piece, fade))
        segments.append((i / sr, (i + piece.shape[1]) / sr, label))
    clip = np.concatenate(pieces, axis=1) if pieces else np.zeros((channels, 0), np.float32)
    where = [(sel.start + s, sel.start + e, lb) for s, e, lb in segments]
    return ABPair(a, b, sr, clip, segments, where)


def ab_metrics(metrics: pd.DataFrame, stem: str, a: str, b: str) -> pd.DataFrame:
    """A's and B's scores for ``stem`` side by side, with ``B − A`` (one row per metric).

    Examples
    --------
    >>> m = pd.DataFrame({"provider": ["x", "y"], "stem": ["vocals"] * 2, "metric": ["sdr"] * 2,
    ...                   "value": [5.0, 7.5]})
    >>> ab_metrics(m, "vocals", "x", "y").loc["SDR v4 (dB)"].tolist()
    [5.0, 7.5, 2.5]
    """
    rows = metrics[(metrics["stem"] == stem) & metrics["provider"].isin([a, b])]
    if rows.empty:
        return pd.DataFrame(columns=[f"A: {a}", f"B: {b}", "B − A"])
    rows = named_metrics(rows)
    table = rows.pivot_table(index="name", columns="provider", values="value", aggfunc="first")
    table = table.reindex([n for n in metric_choices(rows) if n in table.index])
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


def _union_seconds(starts: pd.Series, ends: pd.Series) -> float:
    """Length of the union of intervals (seconds): overlapping jobs are counted once."""
    spans = sorted(
        zip(pd.to_datetime(starts, utc=True), pd.to_datetime(ends, utc=True), strict=True)
    )
    total, cur_start, cur_end = 0.0, None, None
    for a, b in spans:
        if cur_end is None or a > cur_end:
            if cur_end is not None:
                total += (cur_end - cur_start).total_seconds()
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    if cur_end is not None:
        total += (cur_end - cur_start).total_seconds()
    return total


def stage_seconds(timeline: pd.DataFrame) -> pd.DataFrame:
    """Seconds per stage of each provider, two ways: ``wall (s)`` is the time span the stage
    covered (jobs that run in parallel, e.g. AudioShake's job per stem, overlap and count
    once: what the timeline chart shows), ``summed (s)`` adds every job's seconds (the work
    done, or waited for). ``jobs`` counts the jobs. One row per (provider, stage).

    Examples
    --------
    >>> t0 = pd.Timestamp("2026-01-01T00:00:00Z")
    >>> tl = pd.DataFrame({"provider": ["a", "a"], "stage": ["wait", "wait"],
    ...                    "job_id": ["j1", "j2"],
    ...                    "start": [t0, t0 + pd.Timedelta(seconds=1)],
    ...                    "end": [t0 + pd.Timedelta(seconds=2), t0 + pd.Timedelta(seconds=3)],
    ...                    "seconds": [2.0, 2.0]})
    >>> stage_seconds(tl).loc[("a", "wait")].tolist()
    [3.0, 4.0, 2.0]
    """
    from stemkit.timing import STAGE_ORDER

    columns = ["wall (s)", "summed (s)", "jobs"]
    if timeline.empty:
        return pd.DataFrame(columns=columns)
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    rows = []
    for (provider, stage), g in timeline.groupby(["provider", "stage"], sort=False):
        summed = float(g["seconds"].sum())
        wall = _union_seconds(g["start"], g["end"]) if {"start", "end"} <= set(g) else summed
        jobs = g["job_id"].nunique() if "job_id" in g else len(g)
        rows.append((provider, stage, round(wall, 3), round(summed, 3), int(jobs)))
    table = pd.DataFrame(rows, columns=["provider", "stage", *columns])
    providers = list(dict.fromkeys(timeline["provider"]))
    table = table.assign(
        _p=table["provider"].map(providers.index),
        _s=table["stage"].map(lambda s: rank.get(s, len(rank))),
    ).sort_values(["_p", "_s"], kind="stable")
    return table.drop(columns=["_p", "_s"]).set_index(["provider", "stage"])
