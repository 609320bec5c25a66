"""Batch-level tables and the HTML report.

:func:`load_batch` gathers what the separate and analyze steps wrote into a few DataFrames;
``notebooks/compare.ipynb`` displays them; :func:`render_html` turns the executed compare
notebook into one self-contained ``report.html`` (code hidden, images embedded).

Examples
--------
>>> b = load_batch("reports/demo")          # doctest: +SKIP
>>> b.summary                               # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from stemkit.analyze.intelligibility import COLUMNS as INTEL_COLUMNS
from stemkit.analyze.protocols import PROTOCOLS, challenge_summary
from stemkit.analyze.track import METRIC_COLUMNS, VERDICT_COLUMNS
from stemkit.atomic import write_text
from stemkit.batchdir import BatchFolder
from stemkit.compare.stats import paired_comparisons, sentences
from stemkit.timing import COLUMNS as TIMELINE_COLUMNS
from stemkit.timing import summarize


@dataclass
class BatchTables:
    """Everything a comparison report needs, as tables."""

    folder: Path
    info: dict
    jobs: pd.DataFrame  # one row per track × provider: state, cost, failed stems, error
    metrics: pd.DataFrame  # tidy metrics of every track
    timeline: pd.DataFrame  # every job's stages
    timing: pd.DataFrame  # per job: queue wait, processing, end to end, rtf
    intelligibility: pd.DataFrame  # WER per track and transcribed source
    verdicts: pd.DataFrame  # every QA check with its verdict
    #: paired statistics per provider pair, stem and metric (:mod:`stemkit.compare.stats`)
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def compared(self) -> list[str]:
        """The providers the statistics compare: the batch's, and the DSP baseline."""
        scored = set(self.metrics["provider"]) if not self.metrics.empty else set()
        return [p for p in [*self.info.get("providers", []), "baseline"] if p in scored]

    @property
    def known_answer(self) -> list[str]:
        """Providers that answered with the references (the sandbox's known-answer vendor):
        their scores validate the evaluation, they say nothing about a vendor."""
        personas = self.info.get("sandbox") or {}
        return [
            p for p in self.info.get("providers", []) if personas.get(p, {}).get("known_answer")
        ]

    def statistics(self, metrics: list[str] | None = None) -> list[str]:
        """The comparisons as sentences (see :func:`stemkit.compare.stats.sentences`)."""
        return sentences(self.comparisons, metrics=metrics)

    @property
    def failures(self) -> pd.DataFrame:
        """Failed jobs, and failed stems of jobs whose other stems completed, with their
        messages (never hidden from the report)."""
        cols = ["track", "provider", "stem", "state", "error_kind", "step", "error"]
        df = self.jobs[self.jobs["state"] != "done"]
        rows = [
            {"track": r.track, "provider": r.provider, "stem": stem, "state": r.state,
             "error_kind": "stem failed", "step": "separate", "error": message}
            for r in self.jobs.itertuples()
            for stem, message in _failed_stems(getattr(r, "failed_stems", None)).items()
        ]  # fmt: skip
        parts = [df.reindex(columns=cols)] + ([pd.DataFrame(rows)] if rows else [])
        return pd.concat(parts, ignore_index=True).reindex(columns=cols)

    @property
    def cost(self) -> pd.DataFrame:
        """Credits per provider (total, per track, per audio minute), for the vendors that
        report a cost (see :mod:`stemkit.compare.cost`)."""
        from stemkit.compare.cost import cost_summary

        return cost_summary(self.jobs)

    @property
    def summary(self) -> pd.DataFrame:
        """The SiSEC18 summary (:meth:`protocol_summary`): median over tracks of each track's
        median BSS Eval v4 SDR (dB) per provider × stem, the providers framed by the
        bracket: oracle (ideal ratio mask, the ceiling), the DSP baseline, and the mixture as
        estimate (the floor)."""
        return self.protocol_summary("SiSEC18")

    def protocol_summary(self, protocol: str) -> pd.DataFrame:
        """Provider × stem table of one challenge protocol, ``"SiSEC18"`` or ``"MDX23"``
        (:func:`stemkit.analyze.protocols.challenge_summary`; its label in ``attrs``), the
        providers in the batch's order between the bracket."""
        table = challenge_summary(self.metrics, protocol)
        if table.empty:
            return table
        order = ["oracle", *self.info.get("providers", []), "baseline", "mixture"]
        order += [p for p in table.index if p not in order]
        out = table.loc[[p for p in order if p in table.index]]
        out.attrs = dict(table.attrs)
        return out

    def protocol_summaries(self) -> dict[str, pd.DataFrame]:
        """Both protocols' tables, keyed by their labels (what the report prints above each)."""
        return {PROTOCOLS[name].label: self.protocol_summary(name) for name in ("SiSEC18", "MDX23")}

    @property
    def silence_summary(self) -> pd.DataFrame:
        """PES and EPS (dB, lower is better; the silence policy of
        :mod:`stemkit.analyze.protocols`): mean over tracks per provider × stem, NaN where no
        track has such a frame."""
        m = self.metrics
        m = m[(m["variant"] == "silence") & m["metric"].isin(["pes", "eps"])].dropna(
            subset=["value"]
        )
        if m.empty:
            return pd.DataFrame()
        table = m.pivot_table(
            index="provider", columns=["metric", "stem"], values="value", aggfunc="mean"
        )
        return table.round(1)

    def leakage_matrices(self) -> dict[str, pd.DataFrame]:
        """Per provider (bracket included): stem (rows) × leaked source (columns), dB, median
        over tracks of the ``leakage`` rows (:attr:`stemkit.analyze.bsseval.BSSResult.leakage`:
        the energy of each reference's part of the stem's BSS Eval projection relative to the
        stem's energy; the diagonal is the target's share, off it what leaked in)."""
        m = self.metrics
        m = m[m["metric"] == "leakage"]
        if m.empty:
            return {}
        m = m.assign(source=m["variant"].str.removeprefix("from_"))
        order = ["oracle", *self.info.get("providers", []), "baseline", "mixture"]
        providers = [p for p in order if p in set(m["provider"])]
        providers += sorted(set(m["provider"]) - set(providers))
        out = {}
        for provider in providers:
            one = m[m["provider"] == provider]
            table = one.pivot_table(
                index="stem", columns="source", values="value", aggfunc="median"
            )
            stems = list(dict.fromkeys(one["stem"]))
            out[provider] = table.reindex(
                index=stems, columns=[s for s in stems if s in table.columns]
            ).round(1)
        return out

    @cached_property
    def verdict_summary(self) -> pd.DataFrame:
        """Worst QA verdict per provider × track × stem, failures first, with what failed and
        by how much (see :mod:`stemkit.analyze.qa`)."""
        from stemkit.analyze.qa import summary_verdicts

        if self.verdicts.empty:
            return pd.DataFrame()
        return summary_verdicts(self.verdicts)

    @property
    def verdict_counts(self) -> pd.DataFrame:
        """Per provider: how many stems/jobs pass, warn, fail."""
        v = self.verdict_summary
        if v.empty:
            return pd.DataFrame()
        return v.pivot_table(
            index="provider", columns="verdict", values="stem", aggfunc="count", fill_value=0
        )

    @property
    def timing_summary(self) -> pd.DataFrame:
        """Median seconds per provider: queue wait, processing, end to end; real-time factor;
        the vendor retries of all its jobs (see :mod:`stemkit.compare.timing_stats` for the
        distributions)."""
        if self.timing.empty:
            return pd.DataFrame()
        cols = ["queue wait", "processing", "end to end", "rtf"]
        table = self.timing.groupby("provider")[cols].median().round(3)
        if "retries" in self.timing:
            table["retries"] = self.timing.groupby("provider")["retries"].sum().astype(int)
        return table

    @property
    def intelligibility_summary(self) -> pd.DataFrame:
        """WER per track (rows) and source (columns: mixture, reference, each provider);
        ``blank`` where the transcription service found no speech."""
        df = self.intelligibility
        if df.empty:
            return pd.DataFrame()
        df = df.assign(
            value=[
                ("blank" if b is True else round(w, 3) if pd.notna(w) else "failed")
                for w, b in zip(df["wer"], df["is_blank"], strict=True)
            ]
        )
        table = df.pivot(index="track", columns="source", values="value")
        order = [
            c
            for c in ["mixture", "reference", *self.info.get("providers", [])]
            if c in table.columns
        ]
        return table[order]

    @property
    def speech_quality(self) -> pd.DataFrame:
        """Per speech track and source (mixture, reference, each provider's speech stem): WER
        (and, where recorded, the WER before words outside speech were dropped, and how many
        were), STOI / ESTOI against the reference dialogue, DNSMOS P.835 OVRL / SIG / BAK
        (:mod:`stemkit.analyze.speech_quality`)."""
        df = self.intelligibility
        cols = ["wer", "stoi", "estoi", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"]
        if df.empty or not set(cols) <= set(df.columns):
            return pd.DataFrame()
        extra = [c for c in ("wer_unfiltered", "words_dropped") if c in df.columns]
        cols = [cols[0], *extra, *cols[1:]]
        order = ["mixture", "reference", *self.info.get("providers", [])]
        rank = {s: i for i, s in enumerate(order)}
        df = df.assign(order=df["source"].map(lambda s: rank.get(s, len(order))))
        table = df.sort_values(["track", "order"]).set_index(["track", "source"])[cols]
        # a column some tracks lack reads as missing values (pd.NA), not as a type error
        return table.apply(lambda c: pd.to_numeric(c, errors="coerce")).astype(float).round(3)

    @property
    def tracks(self) -> list[str]:
        return [t["name"] for t in self.info.get("tracks", [])]


def _failed_stems(cell) -> dict[str, str]:
    """The ``failed_stems`` cell of the jobs table (JSON text, or empty) as a dict."""
    return json.loads(cell) if isinstance(cell, str) and cell else {}


def load_batch(folder: str | Path | BatchFolder) -> BatchTables:
    """Collect the tables of a batch folder and write the batch-wide ones to ``tables/``.

    Parameters
    ----------
    folder : path or BatchFolder
        A batch folder after the separate (and analyze) phases.

    Returns
    -------
    BatchTables
        Jobs, metrics, timeline, timing, intelligibility and verdicts of every track.

    Examples
    --------
    >>> load_batch("reports/demo").failures   # doctest: +SKIP
    """
    batch = BatchFolder(folder)
    info = batch.info()
    jobs = []
    for track in batch.tracks:
        for provider in info["providers"]:
            rec = batch.read_record(track, provider) or {
                "state": "failed",
                "error": "the separate step never ran for this job",
                "error_kind": "missing",
            }
            jobs.append(
                {
                    "track": track,
                    "provider": provider,
                    "state": rec.get("state"),
                    "job_id": rec.get("job_id"),
                    "audio_seconds": rec.get("audio_seconds"),
                    "cost": rec.get("cost"),
                    # stem -> message, as JSON text (a table cell that Parquet keeps)
                    "failed_stems": json.dumps(rec["failed_stems"])
                    if rec.get("failed_stems")
                    else None,
                    "error_kind": rec.get("error_kind"),
                    "step": rec.get("step"),
                    "error": rec.get("error"),
                }
            )
    jobs_df = pd.DataFrame(jobs)
    metrics = batch.read_all("metrics", METRIC_COLUMNS)
    timeline = batch.read_all("timeline", TIMELINE_COLUMNS)
    intel = batch.read_all("intelligibility", INTEL_COLUMNS)
    verdicts = batch.read_all("verdicts", VERDICT_COLUMNS)
    if not timeline.empty:
        for col in ("start", "end"):
            timeline[col] = pd.to_datetime(timeline[col], utc=True, format="ISO8601")
    audio = {r["track"]: r["audio_seconds"] for r in jobs if r.get("audio_seconds")}
    timing = summarize(timeline, audio)
    scored = set(metrics["provider"]) if not metrics.empty else set()
    compared = [p for p in [*info.get("providers", []), "baseline"] if p in scored]
    comparisons = paired_comparisons(metrics, compared, intelligibility=_wer_rows(intel))
    for name, df in (
        ("metrics", metrics),
        ("timeline", timeline),
        ("timing", timing),
        ("jobs", jobs_df),
        ("intelligibility", intel),
        ("verdicts", verdicts),
        ("comparisons", comparisons),
    ):
        batch.write_table(name, df)
    return BatchTables(
        batch.root, info, jobs_df, metrics, timeline, timing, intel, verdicts, comparisons
    )


def _wer_rows(intel: pd.DataFrame) -> pd.DataFrame:
    """WER rows of the providers' stems (not of the mixture or the reference)."""
    if intel.empty:
        return intel
    keep = ~intel["source"].isin(["mixture", "reference"]) & (intel["state"] == "done")
    return intel[keep]


def sandbox_note(info: dict) -> str:
    """What the sandbox's emulated vendors ran (from ``batch.json``), as Markdown; empty for
    a batch against real vendors.

    Examples
    --------
    >>> sandbox_note({"providers": ["a"], "sandbox": {"a": {"engine": "reference",
    ...     "defects": {"bleed_db": -10}, "known_answer": True}}})  # doctest: +ELLIPSIS
    '**Emulated vendors** (stemkit sandbox): `a`: engine `reference`, defects bleed_db=-10...'
    """
    personas = info.get("sandbox") or {}
    shown = [p for p in info.get("providers", []) if p in personas]
    if not shown:
        return ""
    parts = []
    for p in shown:
        d = personas[p]
        defects = ", ".join(f"{k}={v}" for k, v in (d.get("defects") or {}).items()) or "none"
        parts.append(f"`{p}`: engine `{d.get('engine')}`, defects {defects}")
    text = "**Emulated vendors** (stemkit sandbox): " + "; ".join(parts) + "."
    known = [p for p in shown if personas[p].get("known_answer")]
    if known:
        text += (
            f" **Known-answer run:** {', '.join(f'`{k}`' for k in known)} answered with the "
            "reference stems (plus the leakage set by `bleed_db`): its scores validate the "
            "evaluation and say nothing about a vendor."
        )
    return text


def notebook_setup() -> None:
    """Display settings for report notebooks: full error messages, compact floats, and
    every column and row of a table (no "3 rows × 21 columns" with "…"; wide tables scroll).

    Examples
    --------
    >>> notebook_setup()
    """
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.precision", 3)
    pd.set_option("display.max_rows", 200)
    pd.set_option("display.min_rows", 200)  # a longer table is cut to this many, not to 10
    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", None)


#: nbconvert's lab template without the CDN scripts (require.js, MathJax, mermaid): the report
#: is one self-contained file that opens offline with nothing failing in the console
_OFFLINE_TEMPLATE = {
    "stemkit-report.html.j2": "{%- extends 'lab/index.html.j2' -%}\n"
    "{%- block html_head_js_requirejs -%}{%- endblock -%}\n"
    "{%- block html_head_js_mathjax -%}{%- endblock -%}\n"
    "{%- block html_head_js_mermaidjs -%}{%- endblock -%}\n"
}


def render_html(notebook: str | Path, html: str | Path) -> Path:
    """Convert an executed notebook to one self-contained HTML page without code cells.

    Examples
    --------
    >>> render_html("notebooks/compare.ipynb", "report.html")  # doctest: +SKIP
    """
    import logging

    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    # figures are described by the headings around them; nbconvert's alt-text notice is noise
    logging.getLogger("traitlets").setLevel(logging.ERROR)

    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
        extra_loaders=[DictLoader(_OFFLINE_TEMPLATE)],
        template_file="stemkit-report.html.j2",
    )
    body, _ = exporter.from_notebook_node(nb)
    html = Path(html)
    write_text(html, body)
    return html


def track_table(metrics: pd.DataFrame, track: str | None = None) -> pd.DataFrame:
    """One track's scores as a person reads them: a row per stem, a column per
    (metric, provider); the reconstruction error as its own row.

    Examples
    --------
    >>> df = pd.DataFrame({"track": ["t"] * 2, "provider": ["a", "mixture"],
    ...                    "stem": ["vocals"] * 2, "metric": ["sdr"] * 2,
    ...                    "variant": ["global"] * 2, "value": [5.0, -3.0]})
    >>> track_table(df).columns.tolist()
    [('nSDR (dB)', 'a'), ('nSDR (dB)', 'mixture')]
    """
    m = metrics if track is None else metrics[metrics["track"] == track]
    if m.empty:
        return pd.DataFrame()
    keys = list(zip(m["metric"], m["variant"], strict=True))
    m = m.assign(
        metric=[SCORE_NAMES.get(k, f"{k[0]} ({k[1]})") for k in keys],
        stem=m["stem"].replace({"(all)": "all stems"}),
    )
    bracket = ("oracle", "baseline", "mixture")
    providers = list(dict.fromkeys(p for p in m["provider"] if p not in bracket))
    table = m.pivot_table(index="stem", columns=["metric", "provider"], values="value")
    order = [
        (met, p)
        for met in SCORE_COLUMNS
        for p in ["oracle", *providers, "baseline", "mixture"]
        if (met, p) in table.columns
    ]
    return table[order].round(2)


#: a track's scores as :func:`track_table` names them: (metric, variant) -> column
SCORE_NAMES = {
    ("sdr", "bsseval_v4"): "SDR v4 (dB)",
    ("sir", "bsseval_v4"): "SIR v4 (dB)",
    ("sar", "bsseval_v4"): "SAR v4 (dB)",
    ("isr", "bsseval_v4"): "ISR v4 (dB)",
    ("nsdr", "global"): "nSDR (dB)",
    ("si_sdr", "scale-invariant"): "SI-SDR (dB)",
    ("recon_db", "mixture"): "mixture − Σ stems (dB)",
    ("sdr", "global"): "nSDR (dB)",
}
#: the columns :func:`track_table` shows, in order
SCORE_COLUMNS = [
    "SDR v4 (dB)",
    "SIR v4 (dB)",
    "SAR v4 (dB)",
    "SI-SDR (dB)",
    "nSDR (dB)",
    "mixture − Σ stems (dB)",
]
