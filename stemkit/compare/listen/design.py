"""Design a blind MUSHRA test (ITU-R BS.1534-3) from a batch: items, excerpts, anchors, key.

**Conditions** of every trial: each provider's stem, the hidden reference (the reference stem
itself), and three anchors suited to separation: the reference low-passed at 3.5 kHz (the
low anchor of BS.1534-3) and at 7 kHz (its mid anchor), and the mixture (the most
interference a separator can leave).

**Item rule** (:func:`pick_items`), per stem, over the tracks that have a reference and a
stem from every provider (a provider that delivered the stem on no track is left out): the
tracks are ranked by their headline metric averaged over the providers (SDR of BSS Eval v4;
nSDR when v4 is missing). Half the items (rounded up) are the
tracks at evenly spaced ranks, so the test spans the metric range ("spread"); the rest are
the tracks where the providers disagree most (largest max - min of the metric, "disagree")
among those not picked yet. With more items than tracks the rule repeats over the tracks, each
repeat a new excerpt. Without metrics the tracks are taken in manifest order.

**Excerpts**: each item's excerpt is the loudest ``seconds`` of its reference stem (RMS over
windows on a 0.5 s hop), a repeat of a track the next loudest window that starts at least half
an excerpt away from the track's earlier ones (they overlap by at most half).
Every stimulus is cut from there, resampled to the reference's rate and channel count, faded
in and out over 20 ms and normalised to :data:`TARGET_LUFS` (integrated loudness, ITU-R
BS.1770, :func:`stemkit.analyze.qa.meters.integrated_loudness`); a trial whose loudest
stimulus would clip is turned down as a whole, so its stimuli stay matched.

**Blinding**: every stimulus gets a random 6-hex-digit name, the trials a random order and
each trial a random order of its stimuli (all from ``seed``). What listeners see,
``listening/design.json`` and ``listening/stimuli/``, names no condition; the key,
``listening/key.csv``, says which name is which.

Examples
--------
>>> from stemkit.batchdir import BatchFolder
>>> d = design_test(BatchFolder("reports/demo"), stems=["vocals"], items=12)  # doctest: +SKIP
>>> d.key.condition.unique()                                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from stemkit.analyze.qa.meters import integrated_loudness
from stemkit.audio import conform, load_audio, resample, write_audio
from stemkit.batchdir import BatchFolder
from stemkit.errors import StemkitError
from stemkit.stems import canonical, reference_recipe

__all__ = [
    "ANCHORS",
    "HIDDEN_REFERENCE",
    "KEY_COLUMNS",
    "MID_ANCHOR",
    "Design",
    "design_test",
    "lowpass",
    "pick_items",
    "public_trials",
]

#: the hidden reference's condition name
HIDDEN_REFERENCE = "reference"
#: anchor condition -> what it is
ANCHORS = {
    "anchor_lp3.5k": "reference low-passed at 3.5 kHz (BS.1534-3 low anchor)",
    "anchor_lp7k": "reference low-passed at 7 kHz (BS.1534-3 mid anchor)",
    "anchor_mixture": "the mixture (all the interference)",
}
#: the mid anchor of BS.1534-3 post-screening
MID_ANCHOR = "anchor_lp7k"
#: integrated loudness every stimulus is matched to (LUFS)
TARGET_LUFS = -23.0
#: peak ceiling of a trial after loudness matching (dBFS)
PEAK_CEILING_DB = -1.0
FADE_S = 0.02
HOP_S = 0.5
#: columns of ``listening/key.csv``
KEY_COLUMNS = [
    "trial", "stimulus", "condition", "stem", "item", "track", "start_s", "seconds",
    "gain_db", "lufs",
]  # fmt: skip
ITEM_COLUMNS = [
    "item", "stem", "track", "start_s", "seconds", "rule", "metric", "metric_mean",
    "metric_spread",
]  # fmt: skip


@dataclass
class Design:
    """A designed test: what listeners see (``trials``), the key, the items."""

    folder: BatchFolder
    trials: list[dict]  # {"trial", "stem", "reference", "stimuli": [name, ...]}
    key: pd.DataFrame  # KEY_COLUMNS
    items: pd.DataFrame  # ITEM_COLUMNS

    @classmethod
    def load(cls, folder: str | Path | BatchFolder) -> Design:
        """Read a designed test back from a batch folder (``stemkit listen design`` first)."""
        folder = folder if isinstance(folder, BatchFolder) else BatchFolder(folder)
        trials = public_trials(folder)
        key = pd.read_csv(folder.listening_key_path, dtype={"stimulus": str})
        items = pd.read_csv(folder.listening_items_path)
        return cls(folder, trials, key, items)


def public_trials(folder: str | Path | BatchFolder) -> list[dict]:
    """The trials as listeners see them (``listening/design.json``), without reading the key.

    Returns
    -------
    list of dict
        ``trial, stem, reference, stimuli`` (blinded names, in the order shown).

    Examples
    --------
    >>> public_trials("/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    StemkitError: /nonexistent has no listening test (no listening/design.json)
    """
    folder = folder if isinstance(folder, BatchFolder) else BatchFolder(folder)
    if not folder.listening_design_path.is_file():
        raise StemkitError(
            f"{folder.root} has no listening test (no listening/design.json)",
            hint="run `stemkit listen design BATCH` first",
        )
    return json.loads(folder.listening_design_path.read_text())["trials"]


def lowpass(y: np.ndarray, sr: int, cutoff_hz: float) -> np.ndarray:
    """``y`` low-passed at ``cutoff_hz``: a 12th-order Butterworth, run forward and back
    (zero phase; the first and last few ms ring, which the excerpts' fades cover).

    Parameters
    ----------
    y : ndarray, shape (channels, samples)
    sr : int
        Sample rate (Hz).
    cutoff_hz : float
        Cut-off; at or above Nyquist ``y`` is returned unchanged.

    Examples
    --------
    >>> sr = 16000
    >>> t = np.arange(sr) / sr
    >>> y = np.sin(2 * np.pi * 6000 * t)[None]
    >>> float(np.abs(lowpass(y, sr, 3500)[:, 800:-800]).max()) < 1e-6   # away from the ends
    True
    """
    if cutoff_hz >= sr / 2:
        return y
    sos = signal.butter(12, cutoff_hz, btype="low", fs=sr, output="sos")
    return signal.sosfiltfilt(sos, y, axis=-1).astype(np.float32)


def _metric_table(folder: BatchFolder, stem: str) -> tuple[str, pd.DataFrame]:
    """The headline metric of ``stem``: ``(name, track x provider values)``."""
    m = folder.read_all("metrics", ["track", "provider", "stem", "metric", "variant", "value"])
    m = m[m["stem"] == stem]
    for metric, variant in (("sdr", "bsseval_v4"), ("nsdr", "global"), ("sdr", "global")):
        sel = m[(m["metric"] == metric) & (m["variant"] == variant)]
        if not sel.empty:
            table = sel.pivot_table(index="track", columns="provider", values="value")
            return f"{metric} ({variant})", table
    return "", pd.DataFrame()


def pick_items(
    tracks: Sequence[str], metric: pd.DataFrame, n: int, providers: Sequence[str]
) -> list[tuple[str, str]]:
    """Pick ``n`` items (a track each, repeats allowed) by the rule of the module docstring.

    Parameters
    ----------
    tracks : sequence of str
        Candidate tracks, in manifest order.
    metric : DataFrame
        Track (index) x provider (columns) headline metric; empty without metrics.
    n : int
        Items wanted.
    providers : sequence of str
        The providers whose mean and spread rank the tracks.

    Returns
    -------
    list of (track, rule)
        ``rule`` is ``"spread"``, ``"disagree"`` or ``"order"`` (no metrics).

    Examples
    --------
    >>> m = pd.DataFrame({"a": [1.0, 5.0, 9.0, 3.0], "b": [1.0, 9.0, 9.0, 3.0]},
    ...                  index=["w", "x", "y", "z"])
    >>> pick_items(["w", "x", "y", "z"], m, 3, ["a", "b"])
    [('w', 'spread'), ('y', 'spread'), ('x', 'disagree')]
    >>> pick_items(["w", "x"], pd.DataFrame(), 3, ["a", "b"])   # no metrics: manifest order
    [('w', 'order'), ('x', 'order'), ('w', 'order')]
    """
    cols = [p for p in providers if p in metric.columns]
    scored = [t for t in tracks if t in metric.index] if cols else []
    if not scored:
        return [(tracks[i % len(tracks)], "order") for i in range(n)]
    values = metric.loc[scored, cols]
    mean, spread = values.mean(axis=1), values.max(axis=1) - values.min(axis=1)
    picked: list[tuple[str, str]] = []
    while len(picked) < n:
        want = n - len(picked)
        n_spread = min(math.ceil(want / 2), len(scored))
        ranked = mean.sort_values(kind="stable").index.tolist()
        idx = np.unique(np.round(np.linspace(0, len(ranked) - 1, n_spread)).astype(int))
        round_ = [(ranked[i], "spread") for i in idx]
        chosen = {t for t, _ in round_}
        others = spread.drop(index=list(chosen)).sort_values(ascending=False, kind="stable")
        round_ += [(t, "disagree") for t in others.index[: want - len(round_)]]
        picked += round_
    return picked[:n]


def _windows(ref: np.ndarray, sr: int, seconds: float) -> list[int]:
    """Window starts (samples) of ``ref`` from loudest to quietest, each at least half a
    window from the earlier ones."""
    length = int(round(seconds * sr))
    if ref.shape[-1] <= length:
        return [0]
    power = np.cumsum(np.concatenate([[0.0], (ref.astype(np.float64) ** 2).mean(axis=0)]))
    hop = max(1, int(HOP_S * sr))
    starts = np.arange(0, ref.shape[-1] - length + 1, hop)
    energy = power[starts + length] - power[starts]
    out: list[int] = []
    for s in starts[np.argsort(-energy, kind="stable")]:
        if all(abs(int(s) - o) >= length / 2 for o in out):
            out.append(int(s))
    return out


def _fade(y: np.ndarray, sr: int) -> np.ndarray:
    n = min(int(FADE_S * sr), y.shape[-1] // 2)
    if n:
        ramp = np.sin(np.linspace(0, np.pi / 2, n, dtype=np.float32)) ** 2
        y = y.copy()
        y[:, :n] *= ramp
        y[:, -n:] *= ramp[::-1]
    return y


def _read(path: str | Path, sr: int, channels: int) -> np.ndarray:
    y, file_sr = load_audio(path)
    if file_sr != sr:
        y = resample(y, file_sr, sr)
    return np.ascontiguousarray(conform(y, channels, y.shape[-1]))


def _sources(folder: BatchFolder, track: str, stem: str) -> tuple[dict[str, np.ndarray], int]:
    """The full-length signals of every condition of one track and stem."""
    info = folder.track(track)
    refs = {canonical(k): v for k, v in (info.get("references") or {}).items()}
    recipe = reference_recipe(stem, set(refs))
    if recipe is None:
        raise StemkitError(
            f"track {track!r} has no reference for {stem!r}", track=track, step="listen design"
        )
    first, sr = load_audio(refs[recipe[0]])
    channels, length = first.shape
    ref = sum(conform(_read(refs[r], sr, channels), channels, length) for r in recipe)
    out = {HIDDEN_REFERENCE: ref}
    for provider in folder.providers:
        files = {canonical(k): p for k, p in folder.stem_files(track, provider).items()}
        if stem in files:
            out[provider] = _read(files[stem], sr, channels)
    out["anchor_lp3.5k"] = lowpass(ref, sr, 3500.0)
    out["anchor_lp7k"] = lowpass(ref, sr, 7000.0)
    out["anchor_mixture"] = _read(info["mixture"], sr, channels)
    return out, sr


def _blind_name(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        name = f"{int(rng.integers(16**6)):06x}"
        if name not in taken and name != HIDDEN_REFERENCE:
            taken.add(name)
            return name


def design_test(
    folder: str | Path | BatchFolder,
    *,
    stems: Sequence[str] = ("vocals",),
    items: int = 12,
    seconds: float = 10.0,
    seed: int = 0,
) -> Design:
    """Design the test and write it under ``listening/`` (replacing an earlier design).

    Parameters
    ----------
    folder : path or BatchFolder
        A separated (and preferably analysed) batch.
    stems : sequence of str
        Canonical stems to test; ``items`` trials each.
    items : int
        Items (track x excerpt) per stem.
    seconds : float
        Excerpt length (s); BS.1534-3 suggests about 10 s.
    seed : int
        Seed of the item order, the blinded names and the stimulus order.

    Returns
    -------
    Design
        With the key (one row per trial and stimulus) and the items.

    Raises
    ------
    StemkitError
        No track has a reference and every provider's stem for a stem asked for.

    Examples
    --------
    >>> design_test("reports/demo", stems=["vocals"], items=2, seconds=3)  # doctest: +SKIP
    """
    folder = folder if isinstance(folder, BatchFolder) else BatchFolder(folder)
    rng = np.random.default_rng(seed)
    taken: set[str] = set()
    trials, key_rows, item_rows = [], [], []
    if folder.listening_dir.exists():
        import shutil

        for sub in ("stimuli", "page", "webmushra"):
            shutil.rmtree(folder.listening_dir / sub, ignore_errors=True)
    for stem in [canonical(s) for s in stems]:
        metric_name, metric = _metric_table(folder, stem)
        delivered = {
            p: {t for t in folder.tracks if stem in map(canonical, folder.stem_files(t, p))}
            for p in folder.providers
        }
        # a provider whose every job failed is left out (the batch's report lists it)
        providers = [p for p in folder.providers if delivered[p]]
        usable = [
            t
            for t in folder.tracks
            if reference_recipe(
                stem,
                {canonical(k) for k in (folder.track(t).get("references") or {})},
            )
            and all(t in delivered[p] for p in providers)
        ]
        if not usable:
            raise StemkitError(
                f"no track has a {stem!r} reference and a {stem!r} stem from every provider "
                f"({', '.join(providers)})",
                step="listen design",
                hint="pick another --stems, or rerun the failed jobs of the batch",
            )
        picks = pick_items(usable, metric, items, providers)
        used: dict[str, int] = {}
        for track, rule in picks:
            signals, sr = _sources(folder, track, stem)
            windows = _windows(signals[HIDDEN_REFERENCE], sr, seconds)
            k = used.get(track, 0)
            used[track] = k + 1
            if k >= len(windows):
                continue  # the track is too short for another excerpt
            start = windows[k]
            length = min(int(round(seconds * sr)), signals[HIDDEN_REFERENCE].shape[-1] - start)
            item = f"{stem}:{track}@{start / sr:.1f}"
            vals = metric.loc[track] if track in metric.index else pd.Series(dtype=float)
            vals = vals[[p for p in providers if p in vals.index]]
            item_rows.append(
                {
                    "item": item, "stem": stem, "track": track, "start_s": round(start / sr, 3),
                    "seconds": round(length / sr, 3), "rule": rule, "metric": metric_name,
                    "metric_mean": vals.mean() if len(vals) else math.nan,
                    "metric_spread": vals.max() - vals.min() if len(vals) else math.nan,
                }
            )  # fmt: skip
            cut = {}
            for cond, y in signals.items():
                y = _fade(conform(y[:, start : start + length], y.shape[0], length), sr)
                lufs = integrated_loudness(y, sr)
                gain = TARGET_LUFS - lufs if np.isfinite(lufs) else 0.0
                cut[cond] = (y * np.float32(10 ** (gain / 20)), gain, lufs)
            peak = max(float(np.abs(y).max()) for y, _, _ in cut.values())
            trim = min(0.0, PEAK_CEILING_DB - 20 * math.log10(peak)) if peak > 0 else 0.0
            scratch = f".unordered-{len(trials):04d}"  # renamed to its trial id after the shuffle
            names = {cond: _blind_name(rng, taken) for cond in cut}
            rows = []
            for cond, (y, gain, lufs) in cut.items():
                y = y * np.float32(10 ** (trim / 20))
                write_audio(folder.stimulus_path(scratch, names[cond]), y, sr)
                if cond == HIDDEN_REFERENCE:
                    write_audio(folder.stimulus_path(scratch, "reference"), y, sr)
                rows.append(
                    {
                        "stimulus": names[cond], "condition": cond, "stem": stem, "item": item,
                        "track": track, "start_s": round(start / sr, 3),
                        "seconds": round(length / sr, 3), "gain_db": round(gain + trim, 2),
                        "lufs": round(lufs, 2),
                    }
                )  # fmt: skip
            trials.append({"scratch": scratch, "stem": stem, "rows": rows})
    out_trials = []
    for number, i in enumerate(rng.permutation(len(trials)), start=1):
        t = trials[i]
        tid = f"t{number:02d}"
        folder.stimulus_path(t["scratch"], "x").parent.rename(folder.stimulus_path(tid, "x").parent)
        shown = [t["rows"][j] for j in rng.permutation(len(t["rows"]))]
        key_rows += [{"trial": tid, **row} for row in shown]
        out_trials.append(
            {
                "trial": tid,
                "stem": t["stem"],
                "reference": "reference",
                "stimuli": [row["stimulus"] for row in shown],
            }
        )
    key = pd.DataFrame(key_rows, columns=KEY_COLUMNS)
    items_df = pd.DataFrame(item_rows, columns=ITEM_COLUMNS)
    folder.listening_dir.mkdir(parents=True, exist_ok=True)
    public = {"stems": list(stems), "seconds": seconds, "trials": out_trials}
    folder.listening_design_path.write_text(json.dumps(public, indent=2))
    key.to_csv(folder.listening_key_path, index=False)
    items_df.to_csv(folder.listening_items_path, index=False)
    return Design(folder, out_trials, key, items_df)
