"""Per-track analysis: load the stems, score them, time the jobs, draw the figures.

:func:`analyze_track` is what ``notebooks/analyze.ipynb`` runs for one track of a batch. It
writes, in ``<batch>/analysis/<track>/``: ``metrics.csv`` (tidy: track, provider, stem, metric,
variant, value), ``timeline.csv``, ``spectrograms.png``, ``timeline.png`` and ``status.json``.

Examples
--------
>>> a = analyze_track("reports/demo", "01-sunday-drive")   # doctest: +SKIP
>>> a.metrics.pivot_table(index="stem", columns="provider", values="value")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stemkit import metrics as M
from stemkit import qa
from stemkit.audio import align, load_audio
from stemkit.errors import StemkitError
from stemkit.intelligibility import intelligibility_table
from stemkit.stems import reference_recipe
from stemkit.timing import summarize, timeline_from_record

METRIC_COLUMNS = ["track", "provider", "stem", "metric", "variant", "value"]


@dataclass
class TrackAnalysis:
    """Everything the analysis of one track produced."""

    track: str
    metrics: pd.DataFrame
    timeline: pd.DataFrame
    failures: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)
    spectrogram_figure: Any = None
    timeline_figure: Any = None
    #: WER per transcribed source (mixture, reference, each provider) when there is a script
    intelligibility: pd.DataFrame | None = None
    #: reference-free QA checks of every stem and job, judged by the QA profile
    verdicts: pd.DataFrame | None = None


def _batch(batch_dir: Path) -> dict[str, Any]:
    path = batch_dir / "batch.json"
    if not path.is_file():
        raise StemkitError(f"{batch_dir} is not a batch folder (no batch.json)")
    return json.loads(path.read_text())


def _references(track: dict[str, Any], stems: list[str], length: int) -> dict[str, np.ndarray]:
    """Reference of each stem, summing reference stems where needed (accompaniment)."""
    files = {k: Path(v) for k, v in track.get("references", {}).items()}
    cache: dict[str, np.ndarray] = {}
    out = {}
    for stem in stems:
        parts = reference_recipe(stem, set(files))
        if parts is None:
            continue
        for p in parts:
            if p not in cache:
                cache[p] = load_audio(files[p])[0]
        out[stem] = sum(align({p: cache[p] for p in parts}, length).values())
    return out


#: pseudo-providers of the score bracket, drawn and reported next to the real ones
BRACKET = ("oracle", "baseline", "mixture")


def _metric_row(
    track: str, provider: str, stem: str, metric_variant: tuple[str, str], value: float
) -> dict[str, Any]:
    metric, variant = metric_variant
    return {
        "track": track,
        "provider": provider,
        "stem": stem,
        "metric": metric,
        "variant": variant,
        "value": value,
    }


def _load_native(folder: Path) -> dict[str, tuple[np.ndarray, int]]:
    """Every stem file of a provider folder at its own rate: ``{stem: (audio, sr)}``."""
    from stemkit.stems import canonical

    out = {
        canonical(p.name): load_audio(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in {".wav", ".flac", ".mp3", ".m4a", ".aiff", ".ogg"}
    }
    if not out:
        raise StemkitError(f"no audio files in {folder}")
    return out


def _resample(y: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    if from_sr == to_sr:
        return y
    import librosa

    return librosa.resample(y, orig_sr=from_sr, target_sr=to_sr)


def _bracket(
    mixture: np.ndarray,
    sr: int,
    refs: dict[str, np.ndarray],
    provider_stems: dict[str, dict[str, np.ndarray]],
) -> dict[str, dict]:
    """Estimates that frame the providers' scores, as in SiSEC: the oracle ideal ratio mask
    (IRM2, an upper bound), the sandbox's DSP separation run locally (a baseline), and the
    mixture itself as every estimate (the floor)."""
    from stemkit.sandbox import engine

    out: dict[str, dict[str, np.ndarray]] = {"mixture": {s: mixture for s in refs}}
    # the stem set a provider delivered, if its references partition the mixture
    for stems in provider_stems.values():
        names = [s for s in stems if s in refs]
        if (
            len(names) == len(stems)
            and M.reconstruction_db(mixture, [refs[s] for s in names]) < -40
        ):
            out["oracle"] = qa.oracle_irm(mixture, {s: refs[s] for s in names}, sr)
            break
    names = [s for s in refs if s in engine.STEM_RECIPES]
    if names:
        out["baseline"] = engine.separate(mixture, sr, names)
    return out


def analyze_track(batch_dir: str | Path, track: str, *, figures: bool = True) -> TrackAnalysis:
    """Analyse one track of a batch folder: metrics, timeline, figures (written to disk).

    Parameters
    ----------
    batch_dir : path
        The batch folder written by the separate step (holds ``batch.json``).
    track : str
        Track name, as in the manifest.
    figures : bool
        Draw and save the spectrogram grid and the timeline chart.
    """
    from stemkit.pipeline import read_record

    batch_dir = Path(batch_dir)
    batch = _batch(batch_dir)
    info = next((t for t in batch["tracks"] if t["name"] == track), None)
    if info is None:
        raise StemkitError(f"track {track!r} is not in this batch", track=track, step="analyze")
    out = batch_dir / "analysis" / track
    out.mkdir(parents=True, exist_ok=True)

    try:
        mixture, sr = load_audio(info["mixture"])
    except StemkitError as exc:  # a bad input is a failed row, not a failed notebook
        failure = {
            "track": track,
            "provider": None,
            "error": str(exc.at(track=track)),
            "step": "load mixture",
        }
        (out / "status.json").write_text(
            json.dumps({"track": track, "failures": [failure], "providers_ok": []}, indent=2)
        )
        empty = pd.DataFrame(columns=METRIC_COLUMNS)
        empty.to_csv(out / "metrics.csv", index=False)
        return TrackAnalysis(track, empty, timeline_from_record({}), [failure])
    rows: list[dict[str, Any]] = []
    qa_rows: list[dict[str, Any]] = []
    timelines = []
    failures = []
    provider_stems: dict[str, dict[str, np.ndarray]] = {}
    for provider in batch["providers"]:
        record = read_record(batch_dir, track, provider) or {
            "state": "failed",
            "error": f"{provider} / {track}: never ran",
            "provider": provider,
        }
        if record.get("events") or record.get("observations"):
            timelines.append(timeline_from_record(record))
        if record.get("state") != "done":
            failures.append(
                {
                    "track": track,
                    "provider": provider,
                    "error": record.get("error"),
                    "step": record.get("step"),
                }
            )
            continue
        folder = batch_dir / "stems" / track / provider
        try:
            native = _load_native(folder)
        except StemkitError as exc:
            failures.append(
                {"track": track, "provider": provider, "error": str(exc), "step": "load stems"}
            )
            continue
        qa_rows += [
            {"track": track, "provider": provider, **r}
            for r in qa.stem_checks(
                mixture,
                {k: y for k, (y, _) in native.items()},
                sr,
                stem_sr={k: r for k, (_, r) in native.items()},
                input_info={
                    "duration": mixture.shape[1] / sr,
                    "sample_rate": sr,
                    "channels": mixture.shape[0],
                },
            )
        ]
        stems = align({k: _resample(y, r, sr) for k, (y, r) in native.items()}, mixture.shape[1])
        provider_stems[provider] = stems
        rows.append(
            _metric_row(
                track,
                provider,
                "(all)",
                ("recon_db", "mixture"),
                M.reconstruction_db(mixture, list(stems.values())),
            )
        )
    all_stems = list(dict.fromkeys(s for st in provider_stems.values() for s in st))
    refs = _references(info, all_stems, mixture.shape[1])
    estimates = dict(provider_stems)
    if refs:  # the SiSEC bracket: mixture as estimate (floor), DSP baseline, oracle (ceiling)
        estimates.update(_bracket(mixture, sr, refs, provider_stems))
    for provider, stems in estimates.items():
        for stem, values in M.separation_metrics(refs, stems, sr).items():
            rows += [_metric_row(track, provider, stem, mv, v) for mv, v in values.items()]
    timing = summarize(
        pd.concat(timelines, ignore_index=True) if timelines else timeline_from_record({}),
        {track: mixture.shape[1] / sr},
    )
    for _, row in timing.iterrows():
        if row["provider"] in provider_stems:
            qa_rows += [
                {"track": track, "provider": row["provider"], **r}
                for r in qa.job_checks(row.to_dict())
            ]
    verdicts = (
        qa.verdicts(pd.DataFrame(qa_rows), qa.load_profile(batch.get("qa_profile")))
        if qa_rows
        else pd.DataFrame(
            columns=["track", "provider", "stem", "check", "value", "unit", "verdict"]
        )
    )
    verdicts.to_csv(out / "verdicts.csv", index=False)

    metrics_df = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    intel = intelligibility_table(batch_dir, info)
    for path in sorted((batch_dir / "transcripts" / track).glob("*/record.json")):
        timelines.append(timeline_from_record(json.loads(path.read_text())))
    tl = pd.concat(timelines, ignore_index=True) if timelines else timeline_from_record({})
    metrics_df.to_csv(out / "metrics.csv", index=False)
    intel.to_csv(out / "intelligibility.csv", index=False)
    tl.to_csv(out / "timeline.csv", index=False)
    result = TrackAnalysis(
        track, metrics_df, tl, failures, intelligibility=intel, verdicts=verdicts
    )
    if figures:
        _draw(result, out, mixture, sr, refs, provider_stems)
    (out / "status.json").write_text(
        json.dumps(
            {"track": track, "failures": failures, "providers_ok": sorted(provider_stems)}, indent=2
        )
    )
    return result


def _draw(result: TrackAnalysis, out: Path, mixture, sr, refs, provider_stems) -> None:
    import matplotlib.pyplot as plt

    from stemkit.plots import spectrogram_grid, timeline_chart

    rows = ({"reference": refs} if refs else {}) | provider_stems
    if rows:
        fig = spectrogram_grid(rows, sr, mixture=mixture, title=result.track)
        fig.savefig(out / "spectrograms.png", dpi=80)
        result.spectrogram_figure = fig
        result.figures["spectrograms"] = out / "spectrograms.png"
    if not result.timeline.empty:
        fig = timeline_chart(result.timeline, title=f"{result.track}: job timeline")
        fig.savefig(out / "timeline.png", dpi=80)
        result.timeline_figure = fig
        result.figures["timeline"] = out / "timeline.png"
    plt.close("all")
