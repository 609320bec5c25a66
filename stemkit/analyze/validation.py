"""Known-answer validation of the QA checks and the metrics.

Every reference-free check exists to catch a defect. :func:`validate_checks` proves it does:
it takes clean stems whose answer is known (the references of a MUSDB18-layout folder, i.e.
what the sandbox's known-answer vendor returns), injects each defect of
:mod:`stemkit.dsp.defects` at several strengths at or beyond the level the check documents
(:data:`CASES`), and runs the checks exactly as an analysis does. It reports, per defect and
strength, how often the check meant for it flags the damaged stem (warn or fail at the QA
profile's thresholds: the *recall*), how often any check flags the clean stems (*false
alarms*), and, for ``bleed_db``, the nSDR measured against the known value ``-bleed_db``.

``stemkit validate [FOLDER]`` and ``bench/validate.py`` print the tables.

Examples
--------
>>> result = validate_checks("data/demo", tracks=2, seconds=8)  # doctest: +SKIP
>>> result.recall.query("recall < 1").empty                     # doctest: +SKIP
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from stemkit.analyze.bsseval import ArraySignals
from stemkit.analyze.metrics import global_metrics
from stemkit.analyze.qa import ALL, load_profile, stem_checks, verdicts
from stemkit.dsp.defects import Defects
from stemkit.errors import StemkitError
from stemkit.stems import MUSIC_STEMS, canonical

__all__ = ["CASES", "Case", "Validation", "validate_checks"]

FLAGGED = {"warn", "fail"}


@dataclass(frozen=True)
class Case:
    """One defect at one strength, and the check that must flag it.

    ``make(stems, mixture, sr)`` returns the :class:`~stemkit.dsp.defects.Defects` to inject
    and the row that must be flagged (a stem name, or ``"(all)"``), or None when the track
    has nothing the defect can act on (e.g. no stem with a stereo image for a channel swap).
    """

    defect: str
    strength: str
    check: str
    make: Callable[[dict[str, np.ndarray], np.ndarray, int], tuple[Defects, str] | None]
    #: the level from which the check is documented to flag this defect
    threshold: str
    #: the check's row is the stems-together row ``(all)``, not the damaged stem's
    on_all: bool = False
    #: False for a strength below the documented threshold (shown, not held to recall 1)
    at_threshold: bool = True


def _main_stem(stems: dict[str, np.ndarray]) -> str:
    """The stem a single-stem defect goes to: the voice when there is one, else the loudest."""
    for name in ("vocals", "dialogue"):
        if name in stems:
            return name
    return max(stems, key=lambda s: float(np.mean(stems[s] ** 2)))


def _brightest(stems: dict[str, np.ndarray], sr: int, above_hz: float) -> str:
    """The stem with the most energy above ``above_hz`` (a cut there takes something away)."""

    def high(y: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(y.mean(axis=0))) ** 2
        return float(spec[int(above_hz / (sr / 2) * (len(spec) - 1)) :].sum())

    return max(stems, key=lambda s: high(stems[s]))


def _loudest_second(y: np.ndarray, sr: int) -> float:
    """Start (s) of the loudest second of ``y``: where a dropout surely cuts something."""
    power = np.mean(y.astype(np.float64) ** 2, axis=0)
    window = max(1, sr)
    if power.size <= window:
        return 0.0
    csum = np.concatenate(([0.0], np.cumsum(power)))
    energy = csum[window:] - csum[:-window]
    return float(np.argmax(energy[:: sr // 10]) * (sr // 10) / sr)


def _stereo(stems: dict[str, np.ndarray]) -> str | None:
    """A stem with a real stereo image (side within 20 dB of mid), or None."""
    best, best_ratio = None, -20.0
    for name, y in stems.items():
        if y.shape[0] != 2:
            continue
        side, mid = float(np.mean((y[0] - y[1]) ** 2)), float(np.mean((y[0] + y[1]) ** 2))
        ratio = 10 * math.log10(side / mid) if side > 0 and mid > 0 else -300.0
        if ratio > best_ratio:
            best, best_ratio = name, ratio
    return best


def _single(**defect) -> Callable:
    def make(stems, mixture, sr):
        stem = _main_stem(stems)
        return Defects(**defect, stems=[stem]), stem

    return make


def _everywhere(**defect) -> Callable:
    return lambda stems, mixture, sr: (Defects(**defect), ALL)


def _one_cut(hz: float) -> Callable:
    def make(stems, mixture, sr):
        stem = _brightest(stems, sr, hz)
        return Defects(lowpass_hz=hz, stems=[stem]), stem

    return make


def _clip(percent: float) -> Callable:
    """A hard clip at the level that ``percent`` of the stem's samples exceed."""

    def make(stems, mixture, sr):
        stem = _main_stem(stems)
        level = float(np.percentile(np.abs(stems[stem]), 100 - percent))
        if level <= 0:
            return None
        return Defects(clip_db=20 * math.log10(level), stems=[stem]), stem

    return make


def _dropout(seconds: float) -> Callable:
    def make(stems, mixture, sr):
        stem = _main_stem(stems)
        start = _loudest_second(stems[stem], sr) + 0.5 - seconds / 2
        start = max(0.0, start)
        return Defects(dropout_s=(start, start + seconds), stems=[stem]), stem

    return make


def _invert(which: str) -> Callable:
    def make(stems, mixture, sr):
        names = [s for s in stems if s != _main_stem(stems)] if which == "other" else []
        stem = names[0] if names else _main_stem(stems)
        return Defects(invert=[stem], stems=[stem]), stem

    return make


def _swap(stems, mixture, sr):
    stem = _stereo(stems)
    return None if stem is None else (Defects(swap_channels=True, stems=[stem]), stem)


def _bleed(db: float) -> Callable:
    def make(stems, mixture, sr):
        stem = _main_stem(stems)
        return Defects(bleed_db=db, stems=[stem]), stem

    return make


def _bleed_into(kinds: tuple[str, ...], db: float) -> Callable:
    """Bleed into the first stem of one of ``kinds`` (canonical names), if the track has one:
    the rest of the mix, i.e. the voice for a music stem and the music for a dialogue stem."""

    def make(stems, mixture, sr):
        stem = next((s for s in stems if canonical(s) in kinds), None)
        return None if stem is None else (Defects(bleed_db=db, stems=[stem]), stem)

    return make


#: Every defect at the strengths validated, with the check meant for it and the level from
#: which that check is documented to flag it (the README's table of checks).
CASES: list[Case] = [
    *(
        Case("delay_ms", f"{ms} ms", "offset_ms", _single(delay_ms=ms), ">= 2 ms")
        for ms in (2, 5, 20, 100)
    ),
    *(
        Case("gain_db", f"{db:+g} dB", "gain_db", _single(gain_db=db), "|gain| >= 1 dB")
        for db in (-1, 1, -3, -6, 6)
    ),
    *(
        Case(
            "lowpass_hz",
            f"{hz / 1000:g} kHz, all stems",
            "bandwidth_hz",
            _everywhere(lowpass_hz=hz),
            "cut <= 16 kHz (mixture content to 20 kHz)",
        )
        for hz in (16000, 11000, 8000, 4000)
    ),
    *(
        Case(
            "lowpass_hz",
            f"{hz / 1000:g} kHz, one stem",
            "cutoff_hz",
            _one_cut(hz),
            "cut below the stem's content",
        )
        for hz in (11000, 8000, 4000)
    ),
    *(
        Case(
            "codec",
            f"{codec}, all stems",
            "bandwidth_hz",
            _everywhere(codec=codec),
            "encoders cutting at or below 18 kHz (mp3 <= 128 kbit/s)",
        )
        for codec in ("mp3-128", "mp3-96", "mp3-64", "mp3-32")
    ),
    Case("invert", "voice stem", "polarity", _invert("main"), "any inverted stem"),
    Case("invert", "another stem", "polarity", _invert("other"), "any inverted stem"),
    Case(
        "swap_channels",
        "stem with a stereo image",
        "channel_swap",
        _swap,
        "stems whose side is within 30 dB of their mid",
    ),
    *(
        Case(
            "bleed_db",
            f"{db} dB re the stem",
            "recon_db",
            _bleed(db),
            "bleed_db + the stem's share of the mixture > -40 dB",
            on_all=True,
        )
        for db in (-30, -20, -10)
    ),
    *(
        Case(
            "bleed_db",
            f"{db} dB into the music stem",
            "speech_in_music_pct",
            _bleed_into(MUSIC_STEMS, db),
            "speech within 3 dB of the music (bleed_db >= -3 dB)",
            at_threshold=db >= -3,
        )
        for db in (0, -3, -6, -10)
    ),
    *(
        Case(
            "bleed_db",
            f"{db} dB into the dialogue stem",
            "music_in_dialogue_db",
            _bleed_into(("dialogue",), db),
            "music at bleed_db >= -30 dB re the dialogue",
            at_threshold=db >= -30,
        )
        for db in (-10, -20, -30, -40)
    ),
    *(
        Case(
            "clip_db",
            f"{pct:g} % of samples flattened",
            "clip_pct",
            _clip(pct),
            "a clip that flattens >= 0.2 % of the samples",
            at_threshold=pct >= 0.2,
        )
        for pct in (0.05, 0.2, 1.0)
    ),
    *(
        Case("dropout_s", f"{s * 1000:g} ms", "dropout_s", _dropout(s), ">= 10 ms of silence")
        for s in (0.01, 0.05, 0.5)
    ),
]


@dataclass
class Validation:
    """What :func:`validate_checks` found."""

    #: one row per case and track: defect, strength, check, track, stem, value, verdict, flagged
    detections: pd.DataFrame
    #: one row per check: clean stems judged, false alarms (warn or fail), which
    false_alarms: pd.DataFrame
    #: bleed cases: track, stem, known nSDR (-bleed_db), measured, error
    nsdr: pd.DataFrame

    @property
    def recall(self) -> pd.DataFrame:
        """Per defect and strength: tracks tested, flagged, recall (flagged / tested)."""
        d = self.detections.dropna(subset=["flagged"])
        keys = ["defect", "strength", "check", "threshold", "at_threshold"]
        out = d.groupby(keys, sort=False)["flagged"].agg(tested="size", flagged="sum")
        out = out.reset_index()
        out["recall"] = out["flagged"] / out["tested"]
        return out

    @property
    def goal_met(self) -> bool:
        """Recall 1 at and beyond every documented threshold, no false alarm, nSDR within
        0.05 dB of the known value."""
        r = self.recall
        nsdr_ok = self.nsdr.empty or float(self.nsdr["error"].abs().max()) <= 0.05
        at = r[r["at_threshold"]]
        return bool(
            (at["recall"] == 1).all() and self.false_alarms["false_alarms"].sum() == 0 and nsdr_ok
        )

    def table(self) -> str:
        """The three tables as plain text."""
        fa = self.false_alarms
        lines = [
            "Detection of each defect by the check meant for it (warn or fail; * = a strength"
            " below the documented threshold, shown for information):",
            self.recall.assign(
                strength=lambda r: r["strength"] + np.where(r["at_threshold"], "", " *")
            )
            .drop(columns=["at_threshold"])
            .to_string(index=False),
            "",
            f"False alarms on clean stems ({int(fa['judged'].max() if len(fa) else 0)} stems "
            f"and track rows per check):",
            fa.to_string(index=False),
            "",
            "nSDR of the known-answer stems with bleed vs the known value (-bleed_db):",
            self.nsdr.groupby("known")["error"]
            .agg(n="size", max_abs_error=lambda e: float(np.abs(e).max()))
            .reset_index()
            .to_string(index=False),
        ]
        return "\n".join(lines)


def _tracks(folder: Path, tracks: int | None, seconds: float | None) -> Iterator[tuple]:
    found = sorted(p.parent for p in folder.glob("*/mixture.wav"))
    if not found:
        raise StemkitError(
            f"{folder} holds no track folders with a mixture.wav (MUSDB18 layout)",
            step="validate",
            hint="run `stemkit demo-data data/demo` and validate that folder",
        )
    for track in found[:tracks] if tracks else found:
        mix, sr = sf.read(track / "mixture.wav", dtype="float32", always_2d=True)
        stems = {
            p.stem: sf.read(p, dtype="float32", always_2d=True)[0].T
            for p in sorted(track.glob("*.wav"))
            if p.stem != "mixture"
        }
        n = int(seconds * sr) if seconds else mix.shape[0]
        yield track.name, mix.T[:, :n].copy(), {k: v[:, :n].copy() for k, v in stems.items()}, sr


def _judge(mixture: np.ndarray, stems: dict[str, np.ndarray], sr: int, profile) -> pd.DataFrame:
    return verdicts(pd.DataFrame(stem_checks(mixture, stems, sr)), profile)


def validate_checks(
    folder: str | Path,
    *,
    tracks: int | None = None,
    seconds: float | None = None,
    cases: list[Case] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Validation:
    """Inject every defect into known-answer stems and see which checks flag it.

    Parameters
    ----------
    folder : str or Path
        Tracks in the MUSDB18 layout (``<track>/mixture.wav`` and one WAV per stem), e.g.
        the demo data.
    tracks : int, optional
        Use only the first this many tracks (default: all).
    seconds : float, optional
        Crop every track to its first this many seconds (default: whole).
    cases : list of Case, optional
        Default :data:`CASES`.
    progress : callable, optional
        Called with a short text per track.

    Returns
    -------
    Validation
        ``detections``, ``false_alarms``, ``nsdr``, and ``recall`` / ``table()``.
    """
    profile = load_profile()
    cases = CASES if cases is None else cases
    found, clean_rows, nsdr = [], [], []
    for name, mixture, stems, sr in _tracks(Path(folder), tracks, seconds):
        if progress:
            progress(name)
        clean = _judge(mixture, stems, sr, profile)
        clean_rows.append(clean.assign(track=name))
        for case in cases:
            made = case.make(stems, mixture, sr)
            if made is None:
                found.append(_row(case, name, None, math.nan, "n/a", None))
                continue
            defects, target = made
            damaged = defects.apply(stems, mixture, sr)
            v = _judge(mixture, damaged, sr, profile)
            row = ALL if case.on_all else target
            hit = v[(v["stem"] == row) & (v["check"] == case.check)]
            value = float(hit["value"].iloc[0]) if len(hit) else math.nan
            verdict = str(hit["verdict"].iloc[0]) if len(hit) else "missing"
            applicable = verdict != "n/a" or case.defect != "swap_channels"
            flagged = verdict in FLAGGED if applicable else None
            found.append(_row(case, name, target, value, verdict, flagged))
            if case.defect == "bleed_db":
                nsdr.append(_nsdr_row(name, target, stems[target], damaged[target], defects))
    return Validation(
        detections=pd.DataFrame(found),
        false_alarms=_false_alarms(pd.concat(clean_rows, ignore_index=True)),
        nsdr=pd.DataFrame(nsdr),
    )


def _row(case: Case, track: str, stem, value, verdict, flagged) -> dict:
    return {
        "defect": case.defect,
        "strength": case.strength,
        "check": case.check,
        "threshold": case.threshold,
        "at_threshold": case.at_threshold,
        "track": track,
        "stem": stem,
        "value": value,
        "verdict": verdict,
        "flagged": flagged,
    }


def _nsdr_row(track: str, stem: str, ref: np.ndarray, est: np.ndarray, d: Defects) -> dict:
    # the report's own code path: global_metrics over (sources, samples, channels)
    refs, ests = ArraySignals(ref.T[None]), ArraySignals(est.T[None])
    measured = float(global_metrics(refs, ests)[0]["nsdr"][0])
    known = -float(d.bleed_db)
    error = measured - known
    return {"track": track, "stem": stem, "known": known, "measured": measured, "error": error}


def _false_alarms(clean: pd.DataFrame) -> pd.DataFrame:
    clean = clean[clean["stem"] != "(job)"]
    flagged = clean[clean["verdict"].isin(FLAGGED)]
    out = clean.groupby("check").size().rename("judged").to_frame()
    out["false_alarms"] = flagged.groupby("check").size()
    out["false_alarms"] = out["false_alarms"].fillna(0).astype(int)
    out["which"] = (
        flagged.assign(w=flagged["track"] + "/" + flagged["stem"])
        .groupby("check")["w"]
        .agg(lambda w: ", ".join(w))
    )
    return out.fillna({"which": ""}).reset_index()
