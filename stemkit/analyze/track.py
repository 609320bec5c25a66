"""The analysis of one track of a batch, in named steps.

``notebooks/analyze.ipynb`` runs these steps one cell at a time; :func:`analyze_track` runs them
all (what the batch does for every track):

1. :func:`open_track`: the mixture, and what each provider's job delivered;
2. :func:`load_providers`: each provider's stems, checked (reference-free QA) and let go;
3. :func:`score_track`: BSS Eval v4, MDX nSDR and SI-SDR of every provider and the SiSEC
   bracket against the references, streamed from the files;
4. :func:`time_jobs`: the vendors' stages and our own steps as one timeline, plus job checks;
5. :func:`judge_track`: every QA row judged by the QA profile;
6. :func:`draw_figures`: the spectrogram grid and the timeline chart (and :func:`load_clips`:
   any source's audio over a time range, for listening);
7. :func:`save_track`: ``metrics.csv``, ``verdicts.csv``, ``timeline.csv``,
   ``intelligibility.csv``, the figures and ``status.json`` in ``<batch>/analysis/<track>/``.

Writing: only :func:`save_track` (and the bracket's cache, ``bracket.json``) writes into the
batch, and only when the analysis was opened with ``save=True`` (what the batch does); with
``save=False`` (the notebook's default, for a person looking closer) the scratch audio goes to
a temporary folder and the batch is left as it was.

Determinism: the same inputs give the same numbers, bit for bit: the scores are computed with
one BLAS thread (:func:`deterministic`), whatever the machine or the worker's thread count.

Memory: a block of every file, whatever the length of the track. The mixture stays in its
file (:attr:`TrackAnalysis.mixture_file`); the QA checks and the spectrogram panels read it and
each provider's stems a block at a time (:func:`stemkit.analyze.qa.check_stems`,
:meth:`stemkit.plots.Panel.of_source`); the reference metrics of all providers and the bracket
are computed from the files in blocks (:class:`stemkit.analyze.bsseval.BSSEval` over
:class:`stemkit.audio.StemFiles`). What still grows with the track: the 16 kHz downmix of a
speech or music stem while the VAD judges it (3.8 MB a minute), and, while the bracket's DSP
baseline runs (once per track: its scores are cached), the mixture and the engine's REPET-SIM
grid (:mod:`stemkit.dsp.engine`).

Examples
--------
>>> a = analyze_track("reports/demo", "01-sunday-drive")   # doctest: +SKIP
>>> a.metrics.pivot_table(index="stem", columns="provider", values="value")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stemkit.analyze import bracket as B
from stemkit.analyze import metrics as M
from stemkit.analyze import qa
from stemkit.analyze.intelligibility import intelligibility_table
from stemkit.atomic import atomic_path
from stemkit.audio import (
    SEEKABLE,
    FileSource,
    align,
    check_audio,
    load_audio,
    resample,
    resample_file,
    write_float,
)
from stemkit.batchdir import BatchFolder
from stemkit.errors import StemkitError
from stemkit.stems import canonical, reference_recipe
from stemkit.timing import summarize, timeline_from_record

#: columns of ``analysis/<track>/metrics.csv`` (tidy: one value a row)
METRIC_COLUMNS = ["track", "provider", "stem", "metric", "variant", "value"]
#: columns of ``analysis/<track>/verdicts.csv``
VERDICT_COLUMNS = ["track", "provider", "stem", "check", "value", "unit", "verdict"]
#: resolution of the saved figures (dots per inch): the report and the notebook show these
FIGURE_DPI = 80
#: pseudo-providers of the score bracket (see :mod:`stemkit.analyze.bracket`)
BRACKET = B.BRACKET


@dataclass
class TrackAnalysis:
    """One track's analysis as it goes: each step fills in its part.

    Attributes
    ----------
    batch : BatchFolder
        The batch folder.
    track : str
        Track name.
    info : dict
        The track's ``batch.json`` entry (mixture, references, transcript).
    providers : list of str
        The batch's providers.
    mixture_file : Path or None
        The mixture as a file readable in blocks at ``sr`` (the manifest's file, or a float
        copy in the scratch folder when its format cannot be read in blocks); None when it
        could not be read (see ``failures``). :attr:`mixture` loads it;
        :meth:`mixture_source` reads it a block at a time.
    shape : tuple of int
        The mixture's ``(channels, samples)``.
    sr : int
        The mixture's rate (Hz); every stem is scored at it.
    stems : list of str or None
        Only these canonical stems are analysed (None: all).
    save : bool
        Write the results (and caches) into the batch; False: leave the batch as it was, the
        scratch audio in a temporary folder (``scratch``).
    """

    batch: BatchFolder
    track: str
    info: dict[str, Any]
    providers: list[str]
    mixture_file: Path | None = None
    shape: tuple[int, int] = (0, 0)
    sr: int = 0
    stems: list[str] | None = None
    save: bool = True
    #: the scratch folder when ``save`` is False (a temporary folder outside the batch)
    scratch: Path | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: per provider that delivered: ``{stem: file scored}`` (the stem file, or a float copy)
    files: dict[str, dict[str, Path]] = field(default_factory=dict)
    #: spectrogram panels: ``{"reference" | provider: {stem: Panel}}``
    panels: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric_rows: list[dict[str, Any]] = field(default_factory=list)
    qa_rows: list[dict[str, Any]] = field(default_factory=list)
    metrics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=METRIC_COLUMNS))
    timeline: pd.DataFrame = field(default_factory=lambda: timeline_from_record({}))
    timing: pd.DataFrame | None = None
    #: WER per transcribed source (mixture, reference, each provider) when there is a script
    intelligibility: pd.DataFrame | None = None
    #: reference-free QA checks of every stem and job, judged by the QA profile
    verdicts: pd.DataFrame | None = None
    #: the SiSEC bracket's scores: ``"computed"``, ``"cached"`` (from ``bracket.json``) or
    #: ``"off"``
    bracket: str = "off"
    figures: dict[str, Path] = field(default_factory=dict)
    spectrogram_figure: Any = None
    timeline_figure: Any = None

    @property
    def work(self) -> Path:
        """Scratch folder of this analysis (float copies to score in blocks)."""
        return self.scratch if self.scratch is not None else self.batch.work_dir(self.track)

    @property
    def seconds(self) -> float:
        """Duration of the mixture in seconds (0 when it could not be read)."""
        return self.shape[1] / self.sr if self.mixture_file is not None else 0.0

    @property
    def mixture(self) -> np.ndarray | None:
        """The mixture, float32 ``(channels, samples)`` at ``sr``, read from its file at each
        access (the analysis itself reads it a block at a time); None when it could not be
        read."""
        return None if self.mixture_file is None else load_audio(self.mixture_file)[0]

    def mixture_source(self) -> FileSource:
        """The mixture read a block at a time (:class:`stemkit.audio.FileSource`)."""
        if self.mixture_file is None:
            raise StemkitError(f"{self.track}: the mixture could not be read (see failures)")
        return FileSource(self.mixture_file, self.sr, channels=self.shape[0], n=self.shape[1])

    @property
    def sources(self) -> pd.DataFrame:
        """What this track has: the mixture, each reference, each provider's job and stems."""
        rows = [{"source": "mixture", "state": "ok", "files": Path(self.info["mixture"]).name}]
        rows += [
            {"source": f"reference {k}", "state": "ok", "files": Path(v).name}
            for k, v in self.info.get("references", {}).items()
        ]
        for p in self.providers:
            rec = self.records.get(p) or {}
            rows.append(
                {
                    "source": p,
                    "state": rec.get("state", "never ran"),
                    "files": ", ".join(sorted(rec.get("stems") or {})) or rec.get("error", ""),
                }
            )
        return pd.DataFrame(rows)

    def _wanted(self, stem: str) -> bool:
        return self.stems is None or stem in self.stems


def _failure(track: str, provider: str | None, error: Any, step: str | None) -> dict[str, Any]:
    return {"track": track, "provider": provider, "error": error, "step": step}


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Compute with one BLAS/OpenMP thread: a multi-threaded matrix product sums in an order
    that depends on the thread count, and the ill-conditioned BSS Eval projections (SIR, SAR,
    ISR) then differ in their last digits from one machine, or worker, to the next.

    Examples
    --------
    >>> import numpy as np
    >>> with deterministic():
    ...     float(np.ones((64, 64)) @ np.ones(64) @ np.ones(64))
    4096.0
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def open_track(
    batch_dir: str | Path | BatchFolder,
    track: str,
    *,
    stems: list[str] | None = None,
    save: bool = True,
) -> TrackAnalysis:
    """Step 1: read the track's mixture and every provider's job record.

    Parameters
    ----------
    batch_dir : path or BatchFolder
        The batch folder written by the separate phase (holds ``batch.json``).
    track : str
        Track name, as in the manifest.
    stems : list of str, optional
        Analyse only these canonical stems (e.g. ``["vocals"]``); default all.
    save : bool
        The analysis writes its tables, figures and caches into the batch (the batch's run);
        False: nothing in the batch changes (scratch audio goes to a temporary folder).

    Returns
    -------
    TrackAnalysis
        With ``mixture`` and ``sr``; a mixture that cannot be read becomes a failure (the
        analysis still saves a status), never an exception.

    Examples
    --------
    >>> a = open_track("reports/demo", "01-sunday-drive")   # doctest: +SKIP
    >>> a.sources                                           # doctest: +SKIP
    """
    batch = BatchFolder(batch_dir)
    info = batch.track(track)
    a = TrackAnalysis(batch, track, info, batch.providers, stems=stems, save=save)
    if save:
        a.batch.analysis_dir(track).mkdir(parents=True, exist_ok=True)
        if a.work.exists():
            shutil.rmtree(a.work, ignore_errors=True)
    else:
        a.scratch = Path(tempfile.mkdtemp(prefix=f"stemkit-analyze-{track[:40]}-"))
    a.records = {p: r for p in a.providers if (r := batch.read_record(track, p)) is not None}
    try:
        path = Path(info["mixture"])
        checked = check_audio(path)  # decodable, finite: read in blocks, never whole
        frames = checked.frames
        if path.suffix.lower() not in SEEKABLE:  # decoded once into a file read in blocks
            y, _ = load_audio(path)
            path, frames = write_float(a.work / "mixture.wav", y, checked.sample_rate), y.shape[1]
            del y
        a.mixture_file, a.sr = path, checked.sample_rate
        a.shape = (checked.channels, frames)
    except StemkitError as exc:  # a bad input is a failed row, not a failed notebook
        a.failures.append(_failure(track, None, str(exc.at(track=track)), "load mixture"))
    return a


@dataclass
class _StemFile:
    """One delivered stem: the file read as delivered and the file scored at the mixture's
    rate (the stem's own file when it is readable in blocks at that rate, else a float copy
    in the scratch folder)."""

    native: Path
    rate: int
    channels: int
    frames: int
    scored: Path


def _stem_files(a: TrackAnalysis, provider: str) -> dict[str, _StemFile]:
    """Every stem file of one job, checked (decodable, finite), with the file it is scored
    from; a format that cannot be read in blocks is decoded once, a stem at another rate is
    resampled block by block."""
    delivered = a.batch.stem_files(a.track, provider)
    if not delivered:
        raise StemkitError(f"no audio files in {a.batch.job_dir(a.track, provider)}")
    out = {}
    for path in delivered.values():
        name = canonical(path.name)
        if not a._wanted(name):
            continue
        info = check_audio(path)
        native, frames = path, info.frames
        if path.suffix.lower() not in SEEKABLE:  # decoded once, one stem at a time
            y, _ = load_audio(path)
            native = write_float(a.work / provider / "native" / f"{name}.wav", y, info.sample_rate)
            frames = y.shape[1]  # the decoder's count (a compressed header's can differ)
            del y
        scored = native
        if info.sample_rate != a.sr:
            scored = resample_file(native, a.work / provider / f"{name}.wav", a.sr)
        out[name] = _StemFile(native, info.sample_rate, info.channels, frames, scored)
    return out


def load_providers(a: TrackAnalysis, *, figures: bool = True) -> TrackAnalysis:
    """Step 2: check each provider's stems (reference-free QA) and draw their spectrogram
    panels, reading the files a block at a time.

    Parameters
    ----------
    a : TrackAnalysis
        From :func:`open_track`.
    figures : bool
        Keep spectrogram panels of every stem for :func:`draw_figures`.

    Returns
    -------
    TrackAnalysis
        ``a``, with ``files``, ``qa_rows``, ``panels`` and the reconstruction rows; a provider
        that failed or whose stems cannot be read becomes a failure.
    """
    from stemkit.plots import Panel

    if a.mixture_file is None:
        return a
    sr = a.sr
    channels, length = a.shape
    for provider in a.providers:
        record = a.records.get(provider) or {
            "state": "failed",
            "error": f"{provider} / {a.track}: never ran",
        }
        if record.get("state") != "done":
            a.failures.append(_failure(a.track, provider, record.get("error"), record.get("step")))
            continue
        try:
            files = _stem_files(a, provider)
        except StemkitError as exc:
            a.failures.append(_failure(a.track, provider, str(exc), "load stems"))
            continue
        if not files:
            continue
        with contextlib.ExitStack() as stack:
            opened = stack.enter_context
            stems = {
                k: qa.StemAudio(
                    opened(FileSource(f.native, f.rate, channels=f.channels, n=f.frames)),
                    opened(FileSource(f.scored, sr, channels=channels, n=length)),
                )
                for k, f in files.items()
            }
            rows = qa.check_stems(
                opened(a.mixture_source()),
                stems,
                input_info={"duration": length / sr, "sample_rate": sr, "channels": channels},
            )
            if figures:
                a.panels[provider] = {k: Panel.of_source(s.conformed) for k, s in stems.items()}
        a.qa_rows += [{"track": a.track, "provider": provider, **r} for r in rows]
        if a.stems is None:  # the reconstruction needs the whole stem set
            recon = next(r["value"] for r in rows if r["check"] == "recon_db")
            a.metric_rows.append(
                _metric_row(a.track, provider, "(all)", ("recon_db", "mixture"), recon)
            )
        a.files[provider] = {k: f.scored for k, f in files.items()}
    return a


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


def _reference_parts(info: dict[str, Any], stems: list[str]) -> dict[str, list[Path]]:
    """Files whose sum is the reference of each stem (several for e.g. accompaniment)."""
    files = {k: Path(v) for k, v in info.get("references", {}).items()}
    out = {}
    for stem in stems:
        parts = reference_recipe(stem, set(files))
        if parts is not None:
            out[stem] = [files[p] for p in parts]
    return out


def _readable(path: Path, sr: int, work: Path, name: str, length: int) -> Path:
    """``path`` if it can be read in blocks at ``sr``, else a float32 copy in ``work``."""
    import soundfile as sf

    if path.suffix.lower() in SEEKABLE:
        if sf.info(path).samplerate == sr:
            return path
        return resample_file(path, work / name, sr)  # block by block
    y, rate = load_audio(path)
    return write_float(work / name, align({"y": resample(y, rate, sr)}, length)["y"], sr)


def _score_sets(
    track: str,
    ref_parts: dict[str, list[Path]],
    sets: dict[str, dict[str, Path]],
    sr: int,
    shape: tuple[int, int],
) -> list[dict[str, Any]]:
    """Metric rows of every estimate set against the references, streamed from the files.

    Sets with the same stems share one :class:`~stemkit.analyze.bsseval.BSSEval` (one
    factorisation of the references' Gram matrix, one read of the references for all).
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


def score_track(a: TrackAnalysis, *, bracket: bool = True) -> pd.DataFrame:
    """Step 3: score every provider's stems (and the SiSEC bracket) against the references.

    Parameters
    ----------
    a : TrackAnalysis
        After :func:`load_providers`.
    bracket : bool
        Score the bracket (oracle, DSP baseline, mixture) too. Its scores depend only on the
        mixture and the references, so they are kept in the track's ``bracket.json`` with a
        stamp of those files and reused while it matches.

    Returns
    -------
    DataFrame
        Tidy rows (:data:`METRIC_COLUMNS`), also set as ``a.metrics``; empty without
        references.
    """
    rows = list(a.metric_rows)
    all_stems = list(dict.fromkeys(s for st in a.files.values() for s in st))
    ref_parts = _reference_parts(a.info, all_stems)
    if a.mixture_file is not None and ref_parts:
        sr, work = a.sr, a.work
        length = a.shape[1]
        readable = {
            s: [_readable(p, sr, work, f"reference/{s}-{i}.wav", length) for i, p in enumerate(ps)]
            for s, ps in ref_parts.items()
        }
        mixture_path = a.mixture_file
        stem_sets = [list(files) for files in a.files.values()]
        stamp = B.stamp(Path(a.info["mixture"]), ref_parts, stem_sets)
        cached = a.batch.read_bracket(a.track)
        sets = dict(a.files)
        fresh = bracket and cached.get("stamp") != stamp
        with deterministic():
            if fresh:  # the SiSEC bracket: mixture (floor), DSP baseline, oracle (ceiling)
                with a.mixture_source() as mixture:
                    sets |= B.estimates(work, mixture, mixture_path, readable, stem_sets)
            scored = _score_sets(a.track, readable, sets, sr, a.shape)
        rows += [r for r in scored if r["provider"] not in BRACKET]
        bracket_rows = [r for r in scored if r["provider"] in BRACKET]
        if fresh and a.save:  # a look closer (save=False) leaves the cache as it was
            a.batch.write_bracket(a.track, {"stamp": stamp, "rows": bracket_rows})
        # the bracket depends on none of the providers' stems: a rerun reuses its scores
        rows += bracket_rows if fresh else cached["rows"] if bracket else []
        a.bracket = "computed" if fresh else "cached" if bracket else "off"
        if a.panels:  # figures wanted: the references' panels go first in the grid
            from stemkit.plots import Panel

            refs = {}
            for s, parts in readable.items():
                with FileSource(parts, sr, channels=a.shape[0], n=length) as src:
                    refs[s] = Panel.of_source(src)
            a.panels = {"reference": refs} | a.panels
    a.metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    return a.metrics


def time_jobs(a: TrackAnalysis) -> pd.DataFrame:
    """Step 4: every job's timeline (vendor stages and our own steps) and the job checks
    (processing time, real-time factor, end to end).

    Returns
    -------
    DataFrame
        The timeline (:data:`stemkit.timing.COLUMNS`), also set as ``a.timeline``;
        ``a.timing`` gets the per-job summary.
    """
    jobs = [
        timeline_from_record(r)
        for p in a.providers
        if (r := a.records.get(p)) and (r.get("events") or r.get("observations"))
    ]
    tl = pd.concat(jobs, ignore_index=True) if jobs else timeline_from_record({})
    a.timing = summarize(tl, {a.track: a.seconds} if a.seconds else None)
    for _, row in a.timing.iterrows():
        if row["provider"] in a.files:
            a.qa_rows += [
                {"track": a.track, "provider": row["provider"], **r}
                for r in qa.job_checks(row.to_dict())
            ]
    transcripts = [timeline_from_record(r) for r in a.batch.transcript_records(a.track)]
    parts = [df for df in [tl, *transcripts] if not df.empty]
    a.timeline = pd.concat(parts, ignore_index=True) if parts else tl
    return a.timeline


def judge_track(a: TrackAnalysis, profile: str | Path | None = None) -> pd.DataFrame:
    """Step 5: judge every QA row by the QA profile (the batch's own, if it names one).

    Returns
    -------
    DataFrame
        One row per check with its verdict (:data:`VERDICT_COLUMNS` and more), also set as
        ``a.verdicts``; see :func:`stemkit.analyze.qa.summary_verdicts` for the worst per stem.
    """
    if profile is None:
        profile = a.batch.info().get("qa_profile")
    a.verdicts = (
        qa.verdicts(pd.DataFrame(a.qa_rows), qa.load_profile(profile))
        if a.qa_rows
        else pd.DataFrame(columns=VERDICT_COLUMNS)
    )
    return a.verdicts


def draw_figures(
    a: TrackAnalysis, *, save: bool | None = None, start: float = 0.0, end: float | None = None
) -> dict[str, Any]:
    """Step 6: the spectrogram grid (mixture, references, every provider's stems) and the
    timeline chart.

    Parameters
    ----------
    a : TrackAnalysis
        After :func:`load_providers` (with ``figures=True``) and :func:`time_jobs`.
    save : bool, optional
        Also write them as PNG in the track's analysis folder (default: ``a.save``).
    start, end : float
        The time range of the spectrograms, in seconds (``end`` None: to the end).

    Returns
    -------
    dict of str to matplotlib Figure
        ``{"spectrograms": fig, "timeline": fig}`` (those that have something to draw).
    """
    from stemkit.plots import Panel, spectrogram_grid, timeline_chart

    figs: dict[str, Any] = {}
    if a.panels and a.mixture_file is not None:
        rows = {k: {s: p.crop(start, end) for s, p in v.items()} for k, v in a.panels.items()}
        with a.mixture_source() as source:
            mixture = Panel.of_source(source).crop(start, end)
        figs["spectrograms"] = a.spectrogram_figure = spectrogram_grid(
            rows, a.sr, mixture=mixture, title=a.track
        )
    if not a.timeline.empty:
        figs["timeline"] = a.timeline_figure = timeline_chart(
            a.timeline, title=f"{a.track}: job timeline"
        )
    if a.save if save is None else save:
        for name, fig in figs.items():
            path = a.batch.figure(a.track, name)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=FIGURE_DPI, format=path.suffix.lstrip("."))
            a.figures[name] = path
    return figs


def figure_images(a: TrackAnalysis, figs: dict[str, Any]) -> list[Any]:
    """The figures of :func:`draw_figures` as PNG images to display, each rendered once.

    A notebook shows the file :func:`draw_figures` saved (a batch run) instead of rendering
    the figure a second time inline; a figure that was not saved is rendered to PNG here at
    the same resolution. Either way the matplotlib figures are closed (so the inline backend
    does not draw them again as the cell ends).

    Parameters
    ----------
    a : TrackAnalysis
        After :func:`draw_figures`.
    figs : dict of str to Figure
        What :func:`draw_figures` returned.

    Returns
    -------
    list of IPython.display.Image
        One per figure, in the order of ``figs``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> a = TrackAnalysis(BatchFolder("."), "t", {}, [])
    >>> [type(i).__name__ for i in figure_images(a, {"timeline": plt.figure(figsize=(2, 1))})]
    ['Image']
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image

    images = []
    for name, fig in figs.items():
        path = a.figures.get(name)
        if path is not None and Path(path).is_file():
            images.append(Image(filename=str(path)))
        else:
            buf = io.BytesIO()
            fig.savefig(buf, dpi=FIGURE_DPI, format="png")
            images.append(Image(data=buf.getvalue(), format="png"))
        plt.close(fig)
    return images


def load_clips(
    a: TrackAnalysis,
    *,
    start: float = 0.0,
    end: float | None = None,
    sources: list[str] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """The audio of the mixture, the references and each provider's stems between ``start``
    and ``end``, loaded with librosa at the mixture's rate: for listening and for a closer look.

    Parameters
    ----------
    a : TrackAnalysis
        From :func:`open_track`.
    start, end : float
        Seconds of the track (``end`` None: to the end).
    sources : list of str, optional
        ``"mixture"``, ``"reference"`` and provider keys (default all of them).

    Returns
    -------
    dict
        ``{source: {stem: ndarray (channels, samples) at a.sr}}``; the mixture as
        ``{"mixture": {"mixture": y}}``. A file that cannot be read is left out.
    """
    import librosa

    duration = None if end is None else max(0.0, float(end) - float(start))
    wanted = sources or ["mixture", "reference", *a.providers]

    def load(path: str | Path) -> np.ndarray | None:
        try:
            y, _ = librosa.load(
                path, sr=a.sr or None, mono=False, offset=float(start), duration=duration
            )
        except Exception:  # noqa: BLE001 - an unreadable file is already a failure row
            return None
        return np.atleast_2d(y)

    files: dict[str, dict[str, Path]] = {"mixture": {"mixture": Path(a.info["mixture"])}}
    refs = {k: Path(v) for k, v in a.info.get("references", {}).items()}
    files["reference"] = {k: v for k, v in refs.items() if a._wanted(k)}
    for p in a.providers:
        stems = a.batch.stem_files(a.track, p)
        files[p] = {canonical(f.name): f for f in stems.values() if a._wanted(canonical(f.name))}
    out: dict[str, dict[str, np.ndarray]] = {}
    for source in wanted:
        loaded = {k: y for k, f in files.get(source, {}).items() if (y := load(f)) is not None}
        if loaded:
            out[source] = loaded
    return out


def save_track(a: TrackAnalysis) -> TrackAnalysis:
    """Step 7: write the track's tables and ``status.json``; remove the scratch audio. With
    ``a.save`` False nothing is written (the tables stay on ``a``); the scratch is removed.

    Returns
    -------
    TrackAnalysis
        ``a``, with ``intelligibility`` filled in.
    """
    b, t = a.batch, a.track
    a.intelligibility = intelligibility_table(b, a.info)
    if a.verdicts is None:
        a.verdicts = pd.DataFrame(columns=VERDICT_COLUMNS)
    if not a.save:
        shutil.rmtree(a.work, ignore_errors=True)
        return a
    b.write_analysis(t, "metrics", a.metrics)
    b.write_analysis(t, "verdicts", a.verdicts)
    b.write_analysis(t, "timeline", a.timeline)
    b.write_analysis(t, "intelligibility", a.intelligibility)
    b.write_status(t, {"track": t, "failures": a.failures, "providers_ok": sorted(a.files)})
    shutil.rmtree(a.work, ignore_errors=True)
    return a


def analyze_track(
    batch_dir: str | Path | BatchFolder,
    track: str,
    *,
    figures: bool = True,
    bracket: bool = True,
    stems: list[str] | None = None,
    save: bool = True,
) -> TrackAnalysis:
    """Analyse one track of a batch folder: every step above, the results written to disk
    (with ``save``; else only returned, the batch left as it was).

    Memory stays flat: the mixture and every provider's stems are checked (QA) and drawn
    (spectrogram panels) from their files a block at a time, and the reference metrics are
    computed from the files, block by block, for all providers and the bracket at once.

    Parameters
    ----------
    batch_dir, track, stems, save
        As for :func:`open_track`.
    figures : bool
        Draw and save the spectrogram grid and the timeline chart.
    bracket : bool
        Score the SiSEC bracket (oracle, DSP baseline, mixture) next to the providers.

    Returns
    -------
    TrackAnalysis
        Metrics, verdicts, timeline, intelligibility, failures and figure paths.
    """
    import matplotlib.pyplot as plt

    a = open_track(batch_dir, track, stems=stems, save=save)
    load_providers(a, figures=figures)
    score_track(a, bracket=bracket)
    time_jobs(a)
    judge_track(a)
    if figures:
        draw_figures(a)
        plt.close("all")
    return save_track(a)
