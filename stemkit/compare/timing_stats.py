"""Timing a QA team can hold a vendor to: latency percentiles, load, throughput, retries and
failures over time, and each vendor's clock offset.

All functions read the batch's timeline (:data:`stemkit.timing.COLUMNS`, one row per job,
attempt and stage); :func:`clock_table` reads the job records. :func:`timing_details` gathers
them for the report's timing section.

==================== ==========================================================================
function             what
==================== ==========================================================================
stage_percentiles    per provider × stage: n, p50, p90, p95, p99, max (s) over jobs
in_flight            jobs in flight over time per provider (a step function)
finished             jobs finished per minute over time, per provider (throughput over time)
throughput           per provider: audio minutes delivered per wall minute
gantt_jobs           the timeline rows a Gantt chart can draw: every job, or the slowest
incidents            vendor retries and failed jobs per time bin, per provider
clock_table          per provider: clock offset (vendor − ours) ± uncertainty, warning
==================== ==========================================================================

Examples
--------
>>> from stemkit.timing import timeline
>>> tl = timeline([("Processing", "2024-01-01T00:00:00Z"), ("Finalising", "2024-01-01T00:00:30Z")],
...               provider="s", track="t", job_id="j")
>>> stage_percentiles(tl)[["provider", "stage", "n", "p50", "max"]].to_dict("records")
[{'provider': 's', 'stage': 'processing', 'n': 1, 'p50': 30.0, 'max': 30.0}]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stemkit.batchdir import BatchFolder
from stemkit.timing import STAGE_ORDER, clock_offset, delivering, flags

#: the percentiles of :func:`stage_percentiles`
PERCENTILES = (50, 90, 95, 99)
PERCENTILE_COLUMNS = [
    "provider",
    "stage",
    "source",
    "n",
    "p50",
    "p90",
    "p95",
    "p99",
    "max",
    "open_end",
]


def stage_percentiles(tl: pd.DataFrame) -> pd.DataFrame:
    """Per provider and stage (and clock: ``source``): how many jobs, the 50/90/95/99th
    percentiles and the maximum of the stage's seconds (linear interpolation between jobs,
    numpy's default).

    A job's stage is that of its delivering attempt (failed attempts are counted by
    :func:`incidents`, not mixed into the latency); ``open_end`` counts jobs whose stage had
    no end event. With few jobs the high percentiles approach the maximum: read ``n``.

    Parameters
    ----------
    tl : DataFrame
        A timeline (:func:`stemkit.timing.timeline` rows of many jobs).

    Returns
    -------
    DataFrame
        :data:`PERCENTILE_COLUMNS`, seconds; stages in chart order.
    """
    if tl.empty:
        return pd.DataFrame(columns=PERCENTILE_COLUMNS)
    use = delivering(tl).copy()
    use["open_end"] = flags(use["open_end"]) if "open_end" in use else False
    per_job = (
        use.groupby(["provider", "track", "job_id", "stage", "source"], dropna=False)
        .agg(seconds=("seconds", "sum"), open_end=("open_end", "any"))
        .reset_index()
    )
    rows = []
    for (provider, stage, source), g in per_job.groupby(
        ["provider", "stage", "source"], sort=False
    ):
        s = g["seconds"].astype(float).dropna().to_numpy()
        if not len(s):
            continue
        q = np.percentile(s, PERCENTILES)
        rows.append(
            {
                "provider": provider,
                "stage": stage,
                "source": source,
                "n": len(s),
                **{f"p{p}": round(float(v), 3) for p, v in zip(PERCENTILES, q, strict=True)},
                "max": round(float(s.max()), 3),
                "open_end": int(g["open_end"].sum()),
            }
        )
    out = pd.DataFrame(rows, columns=PERCENTILE_COLUMNS)
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    out["_r"] = out["stage"].map(lambda s: rank.get(s, len(rank)))
    out["_s"] = out["source"] != "vendor"
    return (
        out.sort_values(["provider", "_s", "_r"], kind="stable")
        .drop(columns=["_r", "_s"])
        .reset_index(drop=True)
    )


def _jobs(tl: pd.DataFrame) -> pd.DataFrame:
    """One row per job: provider, track, job_id, start, end (its ``end to end`` step, or the
    span of its rows when the job has none)."""
    e2e = tl[tl["stage"] == "end to end"]
    spans = tl.groupby(["provider", "track"], dropna=False).agg(
        start=("start", "min"), end=("end", "max")
    )
    if not e2e.empty:
        e2e_spans = e2e.groupby(["provider", "track"], dropna=False).agg(
            start=("start", "min"), end=("end", "max")
        )
        spans.update(e2e_spans)
    out = spans.reset_index()
    for col in ("start", "end"):
        out[col] = pd.to_datetime(out[col], utc=True)
    return out


def in_flight(tl: pd.DataFrame) -> pd.DataFrame:
    """Jobs in flight over time, per provider: a step function (``jobs`` holds from ``time``
    until the next row of the same provider).

    A job is one provider's work on one track, from our first step to our last (its
    ``end to end`` row).

    Examples
    --------
    >>> from stemkit.timing import timeline
    >>> obs = [{"step": "wait", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T00:01:00Z"}]
    >>> in_flight(timeline([], obs, provider="p", track="t"))["jobs"].tolist()
    [1, 0]
    """
    cols = ["provider", "time", "jobs"]
    if tl.empty:
        return pd.DataFrame(columns=cols)
    jobs = _jobs(tl)
    rows = []
    for provider, g in jobs.groupby("provider", sort=False):
        steps = pd.concat(
            [pd.DataFrame({"time": g["start"], "d": 1}), pd.DataFrame({"time": g["end"], "d": -1})]
        ).sort_values(["time", "d"], kind="stable")
        steps = steps.groupby("time", sort=True)["d"].sum().cumsum()
        rows += [{"provider": provider, "time": t, "jobs": int(n)} for t, n in steps.items()]
    return pd.DataFrame(rows, columns=cols)


def finished(tl: pd.DataFrame, freq: str | None = None) -> pd.DataFrame:
    """Jobs finished per minute over time, per provider: how many jobs ended (their last
    step) in each time bin of ``freq`` (a pandas frequency; by default one that cuts the batch
    into about 20 bins), divided by the bin's minutes. Bins with none are rows of 0.

    Examples
    --------
    >>> from stemkit.timing import timeline
    >>> obs = [{"step": "wait", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T00:00:30Z"}]
    >>> f = finished(timeline([], obs, provider="p", track="t"), "1min")
    >>> f[["provider", "jobs", "per_minute"]].to_dict("records")
    [{'provider': 'p', 'jobs': 1, 'per_minute': 1.0}]
    """
    cols = ["provider", "time", "jobs", "per_minute"]
    if tl.empty:
        return pd.DataFrame(columns=cols)
    freq = freq or _auto_freq(tl)
    minutes = pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).total_seconds() / 60
    jobs = _jobs(tl).dropna(subset=["end"])
    jobs["time"] = jobs["end"].dt.floor(freq)
    bins = pd.date_range(jobs["time"].min(), jobs["time"].max(), freq=freq)
    rows = []
    for provider, g in jobs.groupby("provider", sort=False):
        counts = g.groupby("time").size().reindex(bins, fill_value=0)
        rows += [
            {"provider": provider, "time": t, "jobs": int(c), "per_minute": round(c / minutes, 3)}
            for t, c in counts.items()
        ]
    return pd.DataFrame(rows, columns=cols)


#: jobs up to which the report's Gantt charts draw every job
GANTT_ALL = 40
#: jobs a Gantt chart draws of a larger batch: the slowest, end to end
GANTT_SLOWEST = 20


def gantt_jobs(
    tl: pd.DataFrame, *, limit: int = GANTT_ALL, slowest: int = GANTT_SLOWEST
) -> tuple[pd.DataFrame, str]:
    """The timeline rows a Gantt chart draws (one lane per job: its height grows with the
    jobs): every job of a batch of up to ``limit`` jobs, else only the ``slowest`` jobs end to
    end, and a sentence that says which.

    Examples
    --------
    >>> from stemkit.timing import timeline
    >>> obs = lambda s: [{"step": "wait", "start": "2024-01-01T00:00:00Z",
    ...                   "end": f"2024-01-01T00:00:{s:02d}Z"}]
    >>> tl = pd.concat([timeline([], obs(s), provider="p", track=f"t{s}") for s in range(1, 6)])
    >>> rows, note = gantt_jobs(tl, limit=3, slowest=2)
    >>> sorted(set(rows["track"])), note
    (['t4', 't5'], 'The 2 slowest of 5 jobs, end to end (a Gantt chart of more than 3 jobs does not read; the percentiles, throughput and load above cover every job).')
    """  # noqa: E501
    if tl.empty:
        return tl, "No job recorded a timeline."
    jobs = _jobs(tl)
    if len(jobs) <= limit:
        return tl, f"Every job ({len(jobs)})."
    jobs["seconds"] = (jobs["end"] - jobs["start"]).dt.total_seconds()
    top = jobs.nlargest(slowest, "seconds")[["provider", "track"]]
    keys = set(zip(top["provider"], top["track"], strict=True))
    keep = [k in keys for k in zip(tl["provider"], tl["track"], strict=True)]
    note = (
        f"The {len(top)} slowest of {len(jobs)} jobs, end to end (a Gantt chart of more than "
        f"{limit} jobs does not read; the percentiles, throughput and load above cover every "
        "job)."
    )
    return tl[keep], note


def throughput(tl: pd.DataFrame, audio_seconds: Mapping[str, float] | None) -> pd.DataFrame:
    """Per provider: jobs, audio minutes delivered, wall minutes from its first job's start to
    its last job's end, and ``audio_min_per_wall_min`` (higher is faster; 1 = real time at
    the batch's concurrency).

    Examples
    --------
    >>> from stemkit.timing import timeline
    >>> obs = [{"step": "wait", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T00:02:00Z"}]
    >>> t = throughput(timeline([], obs, provider="p", track="t"), {"t": 240.0})
    >>> float(t.loc[0, "audio_min_per_wall_min"])
    2.0
    """
    cols = ["provider", "jobs", "audio_minutes", "wall_minutes", "audio_min_per_wall_min"]
    if tl.empty:
        return pd.DataFrame(columns=cols)
    jobs = _jobs(tl)
    jobs["audio"] = jobs["track"].map(audio_seconds or {}).astype(float) / 60
    rows = []
    for provider, g in jobs.groupby("provider", sort=False):
        wall = (g["end"].max() - g["start"].min()).total_seconds() / 60
        audio = float(g["audio"].sum(min_count=1)) if g["audio"].notna().any() else math.nan
        rows.append(
            {
                "provider": provider,
                "jobs": len(g),
                "audio_minutes": round(audio, 3),
                "wall_minutes": round(wall, 3),
                "audio_min_per_wall_min": round(audio / wall, 3) if wall > 0 else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _auto_freq(tl: pd.DataFrame) -> str:
    """A time bin giving a batch's span about 20 bins: 1 s, 10 s, 1 min, 10 min or 1 h."""
    span = (
        pd.to_datetime(tl["end"], utc=True).max() - pd.to_datetime(tl["start"], utc=True).min()
    ).total_seconds()
    for seconds, freq in ((20, "1s"), (200, "10s"), (1200, "1min"), (12000, "10min")):
        if span <= seconds:
            return freq
    return "1h"


def incidents(tl: pd.DataFrame, freq: str | None = None) -> pd.DataFrame:
    """Vendor retries (attempts followed by another) and failed jobs (whose last attempt
    failed), per provider and time bin of ``freq`` (a pandas frequency; by default one that
    cuts the batch into about 20 bins), at the time the attempt ended. Pass a timeline on
    our clock (:func:`stemkit.timing.on_our_clock`) to compare the times with our own.

    Examples
    --------
    >>> from stemkit.timing import timeline
    >>> tl = timeline([("Processing", "2024-01-01T00:00:00Z"),
    ...                ("Processing", "2024-01-01T00:00:10Z"),
    ...                ("Finalising", "2024-01-01T00:00:40Z")], provider="p", track="t")
    >>> incidents(tl)[["retries", "failures"]].values.tolist()
    [[1, 0]]
    """
    cols = ["provider", "time", "retries", "failures"]
    vendor = tl[tl["source"] == "vendor"].copy() if not tl.empty else tl
    if vendor.empty or "attempt" not in vendor:
        return pd.DataFrame(columns=cols)
    vendor["attempt"] = pd.to_numeric(vendor["attempt"], errors="coerce").fillna(1)
    vendor["failed"] = flags(vendor["failed"])
    vendor["end"] = pd.to_datetime(vendor["end"], utc=True)
    attempts = (
        vendor.groupby(["provider", "track", "job_id", "attempt"], dropna=False)
        .agg(end=("end", "max"), failed=("failed", "any"))
        .reset_index()
    )
    keys = ["provider", "track", "job_id"]
    last = attempts.groupby(keys, dropna=False)["attempt"].transform("max")
    attempts["retry"] = attempts["attempt"] < last  # the vendor queued the job again after it
    attempts["failure"] = attempts["failed"] & (attempts["attempt"] == last)
    hit = attempts[attempts["retry"] | attempts["failure"]]
    if hit.empty:
        return pd.DataFrame(columns=cols)
    hit = hit.assign(time=hit["end"].dt.floor(freq or _auto_freq(tl)))
    out = (
        hit.groupby(["provider", "time"])
        .agg(retries=("retry", "sum"), failures=("failure", "sum"))
        .reset_index()
    )
    return out.astype({"retries": int, "failures": int})[cols]


CLOCK_COLUMNS = [
    "provider",
    "offset_s",
    "uncertainty_s",
    "low_s",
    "high_s",
    "events",
    "jobs",
    "consistent",
    "warning",
]


def clock_table(records: Any) -> pd.DataFrame:
    """Per provider: how far its clock is ahead of ours (``offset_s``, negative: behind), ±
    ``uncertainty_s``, from every recorded bound of its events (see
    :func:`stemkit.timing.clock_offset`), and a warning when it is off by minutes.

    Parameters
    ----------
    records : batch folder, path, or iterable of record dicts
        Job records (``record.json``); records without ``clock_bounds`` (written before they
        were recorded) are skipped.

    Returns
    -------
    DataFrame
        :data:`CLOCK_COLUMNS`, one row per provider with bounds.

    Examples
    --------
    >>> rec = {"provider": "p", "clock_bounds": [{"timestamp": "2024-01-01T00:05:01Z",
    ...        "after": "2024-01-01T00:00:00Z", "before": "2024-01-01T00:00:02Z"}]}
    >>> clock_table([rec]).loc[0, ["offset_s", "uncertainty_s"]].tolist()
    [300.0, 1.0]
    """
    if isinstance(records, str | Path | BatchFolder):
        records = _batch_records(BatchFolder(records))
    bounds: dict[str, list] = {}
    jobs: dict[str, int] = {}
    for r in records:
        if r and r.get("clock_bounds"):
            p = r.get("provider", "")
            bounds.setdefault(p, []).extend(r["clock_bounds"])
            jobs[p] = jobs.get(p, 0) + 1
    rows = []
    for provider, b in bounds.items():
        est = clock_offset(b)
        if est is None:
            continue
        rows.append(
            {
                "provider": provider,
                "offset_s": round(est.offset, 3),
                "uncertainty_s": round(est.uncertainty, 3),
                "low_s": round(est.low, 3),
                "high_s": round(est.high, 3),
                "events": est.events,
                "jobs": jobs[provider],
                "consistent": est.consistent,
                "warning": est.warning
                or ("" if est.consistent else "the bounds disagree: the clock drifts or jumps"),
            }
        )
    return pd.DataFrame(rows, columns=CLOCK_COLUMNS)


def _batch_records(batch: BatchFolder) -> list[dict]:
    """Every separation and transcription record of a batch."""
    info = batch.info()
    records = [
        rec
        for track in batch.tracks
        for provider in info.get("providers", [])
        if (rec := batch.read_record(track, provider))
    ]
    return records + [r for track in batch.tracks for r in batch.transcript_records(track)]


@dataclass
class TimingDetails:
    """The report's attempts / clocks / percentiles section, as tables and figures."""

    percentiles: pd.DataFrame
    throughput: pd.DataFrame
    in_flight: pd.DataFrame
    incidents: pd.DataFrame
    clocks: pd.DataFrame
    retries: pd.DataFrame  # per provider: jobs, vendor retries, open-ended processing stages
    warnings: list[str] = field(default_factory=list)
    timeline_on_our_clock: pd.DataFrame | None = None
    #: jobs finished per minute over time (:func:`finished`)
    finished: pd.DataFrame = field(default_factory=pd.DataFrame)

    def gantt(self) -> tuple[pd.DataFrame, str]:
        """The rows of the corrected Gantt chart and what they are (:func:`gantt_jobs`)."""
        tl = self.timeline_on_our_clock
        return gantt_jobs(tl if tl is not None else pd.DataFrame())

    def figures(self) -> dict[str, Any]:
        """``{"latency": fig, "load": fig, "gantt": fig}`` of what there is to draw."""
        from stemkit.plots import latency_chart, load_chart, timeline_chart

        figs = {}
        if not self.percentiles.empty:
            figs["latency"] = latency_chart(
                self.percentiles, order=STAGE_ORDER, title="Latency per stage and provider"
            )
        if not self.in_flight.empty:
            figs["load"] = load_chart(
                self.in_flight,
                self.incidents,
                finished=self.finished,
                title="Load, throughput, retries and failures",
            )
        tl, note = self.gantt()
        if not tl.empty:
            which = "Every job" if note.startswith("Every") else "The slowest jobs"
            figs["gantt"] = timeline_chart(
                tl, title=f"{which} on our clock (vendor stamps corrected by the clock offset)"
            )
        return figs

    def show(self) -> None:
        """Display the section in a notebook: retries, clocks (with any warning), latency
        percentiles, throughput, then the latency, load and corrected Gantt charts."""
        import matplotlib.pyplot as plt
        from IPython.display import Markdown, display

        display(Markdown(SECTION_INTRO))
        display(Markdown("**Vendor retries and stages without an end event**"))
        display(self.retries if not self.retries.empty else Markdown("No vendor stage recorded."))
        display(Markdown("**Clock offset per provider** (vendor − ours, seconds)"))
        for w in self.warnings:
            display(Markdown(f"⚠ **{w}**"))
        display(
            self.clocks
            if not self.clocks.empty
            else Markdown("No job recorded clock bounds (records written before they existed).")
        )
        display(Markdown("**Latency percentiles per provider and stage** (seconds)"))
        display(self.percentiles)
        display(Markdown("**Throughput**"))
        display(self.throughput)
        for name, fig in self.figures().items():
            if name == "gantt":
                display(Markdown(self.gantt()[1]))
            display(fig)
            plt.close(fig)


SECTION_INTRO = """### Attempts, clocks and latency percentiles
A vendor that failed a job and queued it again shows it as attempts (hatched in the charts:
failed attempts; dashed: a stage whose end event never came, ended at the best evidence).
Each vendor's clock offset is estimated from our own send/receive instants around its events;
vendor stamps are corrected by it where they meet ours. Latency is given as a distribution
(p50/p90/p95/p99/max over jobs, the delivering attempt's stage), with jobs in flight,
throughput (audio minutes per wall minute; over time: jobs finished per minute) and
retries/failures over time. A Gantt chart draws every job of a small batch, else only the
slowest jobs."""


def timing_details(tables: Any, records: Any = None) -> TimingDetails:
    """Everything of the timing section from a loaded batch
    (:func:`stemkit.compare.report.load_batch`'s tables: ``timeline``, ``timing``, ``jobs``,
    ``folder``); ``records`` replaces the folder's job records for the clock offsets.

    Examples
    --------
    >>> d = timing_details(load_batch("reports/demo"))   # doctest: +SKIP
    >>> d.percentiles, d.clocks, d.warnings              # doctest: +SKIP
    """
    from stemkit.timing import on_our_clock

    tl = tables.timeline
    audio = {}
    if "audio_seconds" in tables.jobs:
        audio = {
            r["track"]: r["audio_seconds"]
            for _, r in tables.jobs.iterrows()
            if pd.notna(r.get("audio_seconds"))
        }
    clocks = clock_table(tables.folder if records is None else records)
    warnings = [f"{r['provider']}: {r['warning']}" for _, r in clocks.iterrows() if r["warning"]]
    timing = tables.timing
    retries = pd.DataFrame(columns=["provider", "jobs", "vendor retries", "open-ended processing"])
    if not timing.empty and "retries" in timing:
        retries = (
            timing.groupby("provider")
            .agg(
                jobs=("track", "count"),
                **{
                    "vendor retries": ("retries", "sum"),
                    "open-ended processing": ("open_end", lambda s: int(flags(s).sum())),
                },
            )
            .reset_index()
        )
    offsets = {
        r["provider"]: r["offset_s"]
        for _, r in clocks.iterrows()
        if r["consistent"] and math.isfinite(r["uncertainty_s"])
    }
    ours = on_our_clock(tl, offsets) if not tl.empty else None
    return TimingDetails(
        percentiles=stage_percentiles(tl),
        throughput=throughput(tl, audio),
        in_flight=in_flight(tl),
        incidents=incidents(ours if ours is not None else tl),
        clocks=clocks,
        retries=retries,
        warnings=warnings,
        timeline_on_our_clock=ours,
        finished=finished(tl),
    )
