"""Per-track analysis: load the stems, score them, time the jobs, draw the figures.

:func:`analyze_track` is what ``notebooks/analyze.ipynb`` runs for one track of a batch. It
writes, in ``<batch>/analysis/<track>/``: ``metrics.csv`` (tidy: track, provider, stem, metric,
variant, value), ``verdicts.csv``, ``timeline.csv``, ``intelligibility.csv``,
``spectrograms.png``, ``timeline.png``, ``status.json`` and ``bracket.json`` (the SiSEC
bracket's scores, reused while the mixture and references are unchanged).

Memory: the mixture and one provider's stems at a time; the reference metrics of all
providers and the bracket are computed from the files in blocks (:class:`stemkit.bsseval.BSSEval`
over :class:`stemkit.audio.StemFiles`).

Examples
--------
>>> a = analyze_track("reports/demo", "01-sunday-drive")   # doctest: +SKIP
>>> a.metrics.pivot_table(index="stem", columns="provider", values="value")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stemkit import metrics as M
from stemkit import qa
from stemkit.audio import SEEKABLE, align, load_audio
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


def _reference_parts(track: dict[str, Any], stems: list[str]) -> dict[str, list[Path]]:
    """Files whose sum is the reference of each stem (several for e.g. accompaniment)."""
    files = {k: Path(v) for k, v in track.get("references", {}).items()}
    out = {}
    for stem in stems:
        parts = reference_recipe(stem, set(files))
        if parts is not None:
            out[stem] = [files[p] for p in parts]
    return out


def _load_sum(paths: list[Path], length: int) -> np.ndarray:
    """The sum of some audio files, conformed to ``length`` samples."""
    total = None
    for path in paths:
        y = align({"y": load_audio(path)[0]}, length)["y"]
        total = y if total is None else total + y
    return total


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


def _load_native(folder: Path) -> dict[str, tuple[np.ndarray, int, Path]]:
    """Every stem file of a provider folder at its own rate: ``{stem: (audio, sr, path)}``."""
    from stemkit.stems import canonical

    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in {".wav", ".flac", ".mp3", ".m4a", ".aiff", ".ogg"}:
            y, sr = load_audio(p)
            out[canonical(p.name)] = (y, sr, p)
    if not out:
        raise StemkitError(f"no audio files in {folder}")
    return out


def _resample(y: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    if from_sr == to_sr:
        return y
    import librosa

    return librosa.resample(y, orig_sr=from_sr, target_sr=to_sr)


def _write_float(path: Path, y: np.ndarray, sr: int) -> Path:
    """A float32 WAV (lossless for estimates computed here), written atomically."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    sf.write(tmp, np.asarray(y, np.float32).T, sr, subtype="FLOAT", format="WAV")
    tmp.replace(path)
    return path


#: version of the bracket computation: bracket scores cached by another version are redone
_BRACKET_VERSION = 1


def _file_stamp(path: Path) -> list[Any]:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def _bracket_stamp(
    mixture_path: Path, ref_parts: dict[str, list[Path]], provider_sets: list[list[str]]
) -> str:
    """What the bracket's scores depend on: the mixture, the references, the stem sets."""
    return json.dumps(
        {
            "version": _BRACKET_VERSION,
            "mixture": _file_stamp(mixture_path),
            "references": {k: [_file_stamp(p) for p in v] for k, v in sorted(ref_parts.items())},
            "provider_sets": sorted(provider_sets),
        },
        sort_keys=True,
    )


def _bracket(
    work: Path,
    mixture: np.ndarray,
    sr: int,
    mixture_path: Path,
    ref_parts: dict[str, list[Path]],
    provider_sets: list[list[str]],
) -> dict[str, dict[str, Path]]:
    """Estimates that frame the providers' scores, as in SiSEC, as files to score: the oracle
    ideal ratio mask (IRM2, an upper bound), the sandbox's DSP separation run locally (a
    baseline), and the mixture itself as every estimate (the floor). The oracle and baseline
    are written to ``work`` (float32 WAV) one at a time, so they never sit in memory together.
    """
    from stemkit.sandbox import engine

    files: dict[str, dict[str, Path]] = {}
    refs = {s: _load_sum(parts, mixture.shape[1]) for s, parts in ref_parts.items()}
    # the stem set a provider delivered, if its references partition the mixture
    for names in provider_sets:
        if all(s in refs for s in names) and (
            M.reconstruction_db(mixture, [refs[s] for s in names]) < -40
        ):
            oracle = qa.oracle_irm(mixture, {s: refs[s] for s in names}, sr)
            files["oracle"] = {
                stem: _write_float(work / "oracle" / f"{stem}.wav", y, sr)
                for stem, y in oracle.items()
            }
            del oracle
            break
    del refs
    names = [s for s in ref_parts if s in engine.STEM_RECIPES]
    if names:
        files["baseline"] = {
            stem: _write_float(work / "baseline" / f"{stem}.wav", y, sr)
            for stem, y in engine.separate(mixture, sr, names).items()
        }
    files["mixture"] = {stem: mixture_path for stem in ref_parts}
    return files


def _readable(path: Path, sr: int, work: Path, name: str, length: int) -> Path:
    """``path`` if it can be read in blocks at ``sr``, else a float32 copy in ``work``."""
    import soundfile as sf

    if path.suffix.lower() in SEEKABLE and sf.info(path).samplerate == sr:
        return path
    y, rate = load_audio(path)
    return _write_float(work / name, align({"y": _resample(y, rate, sr)}, length)["y"], sr)


def _score(
    track: str,
    ref_parts: dict[str, list[Path]],
    sets: dict[str, dict[str, Path]],
    sr: int,
    shape: tuple[int, int],
) -> list[dict[str, Any]]:
    """Metric rows of every estimate set against the references, streamed from the files.

    Sets with the same stems share one :class:`~stemkit.bsseval.BSSEval` (one factorisation
    of the references' Gram matrix, one read of the references for all of them).
    """
    from stemkit.audio import StemFiles

    n_chan, n_samples = shape
    groups: dict[tuple[str, ...], dict[str, StemFiles]] = {}
    for name, files in sets.items():
        stems = tuple(s for s in ref_parts if s in files)
        if stems:
            groups.setdefault(stems, {})[name] = StemFiles(
                [[files[s]] for s in stems], n_samples=n_samples, n_channels=n_chan
            )
    rows = []
    for stems, estimates in groups.items():
        with StemFiles(
            [ref_parts[s] for s in stems], n_samples=n_samples, n_channels=n_chan
        ) as references:
            scores = M.score(references, estimates, list(stems), sr)
        for name, by_stem in scores.items():
            estimates[name].close()
            for stem, values in by_stem.items():
                rows += [_metric_row(track, name, stem, mv, v) for mv, v in values.items()]
    return rows


def analyze_track(
    batch_dir: str | Path, track: str, *, figures: bool = True, bracket: bool = True
) -> TrackAnalysis:
    """Analyse one track of a batch folder: metrics, timeline, figures (written to disk).

    Memory stays near one provider's stems on top of the mixture: each provider's stems are
    checked (QA), drawn (spectrogram panels) and then let go, and the reference metrics are
    computed from the files, block by block, for all providers and the bracket at once.

    Parameters
    ----------
    batch_dir : path
        The batch folder written by the separate step (holds ``batch.json``).
    track : str
        Track name, as in the manifest.
    figures : bool
        Draw and save the spectrogram grid and the timeline chart.
    bracket : bool
        Score the SiSEC bracket (oracle, DSP baseline, mixture) next to the providers. Its
        scores depend only on the mixture and the references, so they are kept in the track's
        ``bracket.json`` with a stamp of those files and reused while it matches.
    """
    from stemkit.pipeline import read_record
    from stemkit.plots import Panel

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
    panels: dict[str, dict[str, Panel]] = {}
    provider_files: dict[str, dict[str, Path]] = {}
    work = out / ".work"  # float32 files to score: bracket, stems not readable in blocks
    if work.exists():
        shutil.rmtree(work, ignore_errors=True)
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
                {k: y for k, (y, _, _) in native.items()},
                sr,
                stem_sr={k: r for k, (_, r, _) in native.items()},
                input_info={
                    "duration": mixture.shape[1] / sr,
                    "sample_rate": sr,
                    "channels": mixture.shape[0],
                },
            )
        ]
        stems = align({k: _resample(y, r, sr) for k, (y, r, _) in native.items()}, mixture.shape[1])
        rows.append(
            _metric_row(
                track,
                provider,
                "(all)",
                ("recon_db", "mixture"),
                M.reconstruction_db(mixture, list(stems.values())),
            )
        )
        if figures:
            panels[provider] = {k: Panel.of(y, sr) for k, y in stems.items()}
        provider_files[provider] = {
            k: path
            if rate == sr and path.suffix.lower() in SEEKABLE
            else _write_float(work / provider / f"{k}.wav", stems[k], sr)
            for k, (_, rate, path) in native.items()
        }
        del native, stems
    all_stems = list(dict.fromkeys(s for st in provider_files.values() for s in st))
    ref_parts = _reference_parts(info, all_stems)
    if ref_parts:
        length = mixture.shape[1]
        readable = {
            s: [_readable(p, sr, work, f"reference/{s}-{i}.wav", length) for i, p in enumerate(ps)]
            for s, ps in ref_parts.items()
        }
        mixture_path = _readable(Path(info["mixture"]), sr, work, "mixture.wav", length)
        stem_sets = [list(files) for files in provider_files.values()]
        stamp = _bracket_stamp(Path(info["mixture"]), ref_parts, stem_sets)
        cache = out / "bracket.json"
        cached = json.loads(cache.read_text()) if cache.is_file() else {}
        sets = dict(provider_files)
        fresh = bracket and cached.get("stamp") != stamp
        if fresh:  # the SiSEC bracket: mixture (floor), DSP baseline, oracle (ceiling)
            sets |= _bracket(work, mixture, sr, mixture_path, readable, stem_sets)
        scored = _score(track, readable, sets, sr, mixture.shape)
        rows += [r for r in scored if r["provider"] not in BRACKET]
        if fresh:
            bracket_rows = [r for r in scored if r["provider"] in BRACKET]
            cache.write_text(json.dumps({"stamp": stamp, "rows": bracket_rows}))
        # the bracket depends on none of the providers' stems: a rerun reuses its scores
        rows += bracket_rows if fresh else cached["rows"] if bracket else []
        if figures:
            panels = {
                "reference": {s: Panel.of(_load_sum(p, length), sr) for s, p in readable.items()}
            } | panels
    timing = summarize(
        pd.concat(timelines, ignore_index=True) if timelines else timeline_from_record({}),
        {track: mixture.shape[1] / sr},
    )
    for _, row in timing.iterrows():
        if row["provider"] in provider_files:
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
        _draw(result, out, Panel.of(mixture, sr), sr, panels)
    (out / "status.json").write_text(
        json.dumps(
            {"track": track, "failures": failures, "providers_ok": sorted(provider_files)},
            indent=2,
        )
    )
    return result


def _draw(result: TrackAnalysis, out: Path, mixture, sr, panels) -> None:
    import matplotlib.pyplot as plt

    from stemkit.plots import spectrogram_grid, timeline_chart

    if panels:
        fig = spectrogram_grid(panels, sr, mixture=mixture, title=result.track)
        fig.savefig(out / "spectrograms.png", dpi=80)
        result.spectrogram_figure = fig
        result.figures["spectrograms"] = out / "spectrograms.png"
    if not result.timeline.empty:
        fig = timeline_chart(result.timeline, title=f"{result.track}: job timeline")
        fig.savefig(out / "timeline.png", dpi=80)
        result.timeline_figure = fig
        result.figures["timeline"] = out / "timeline.png"
    plt.close("all")
