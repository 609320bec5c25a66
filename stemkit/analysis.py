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
from stemkit.audio import align, load_audio, load_stems
from stemkit.errors import StemkitError
from stemkit.intelligibility import intelligibility_table
from stemkit.stems import reference_recipe
from stemkit.timing import timeline_from_record

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
            stems = load_stems(folder, sr=sr)
        except StemkitError as exc:
            failures.append(
                {"track": track, "provider": provider, "error": str(exc), "step": "load stems"}
            )
            continue
        stems = align(stems, mixture.shape[1])
        provider_stems[provider] = stems
        rows.append(
            {
                "track": track,
                "provider": provider,
                "stem": "(all)",
                "metric": "recon_db",
                "variant": "mixture",
                "value": M.reconstruction_db(mixture, list(stems.values())),
            }
        )
        refs = _references(info, list(stems), mixture.shape[1])
        for stem, est in stems.items():
            if stem in refs:
                for (metric, variant), value in M.stem_metrics(refs[stem], est).items():
                    rows.append(
                        {
                            "track": track,
                            "provider": provider,
                            "stem": stem,
                            "metric": metric,
                            "variant": variant,
                            "value": value,
                        }
                    )
    all_stems = list(dict.fromkeys(s for st in provider_stems.values() for s in st))
    refs = _references(info, all_stems, mixture.shape[1])
    for stem, ref in refs.items():  # the "mixture as estimate" floor, for orientation
        for (metric, variant), value in M.stem_metrics(ref, mixture).items():
            rows.append(
                {
                    "track": track,
                    "provider": "mixture",
                    "stem": stem,
                    "metric": metric,
                    "variant": variant,
                    "value": value,
                }
            )

    metrics_df = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    intel = intelligibility_table(batch_dir, info)
    for path in sorted((batch_dir / "transcripts" / track).glob("*/record.json")):
        timelines.append(timeline_from_record(json.loads(path.read_text())))
    tl = pd.concat(timelines, ignore_index=True) if timelines else timeline_from_record({})
    metrics_df.to_csv(out / "metrics.csv", index=False)
    intel.to_csv(out / "intelligibility.csv", index=False)
    tl.to_csv(out / "timeline.csv", index=False)
    result = TrackAnalysis(track, metrics_df, tl, failures, intelligibility=intel)
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
