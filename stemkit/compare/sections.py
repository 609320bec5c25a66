"""The report's larger sections, as the parts a notebook cell displays in turn.

``notebooks/compare.ipynb`` stays a thin source: each of these returns a list of parts
(Markdown, tables, figures) and :func:`show` displays them, closing each figure once shown.
They are built for a batch of any size: a table of thousands of rows is interactive
(:mod:`stemkit.compare.interactive`), a figure per metric or view, never one per track.

==================== ==========================================================================
function             what
==================== ==========================================================================
verdicts_section     verdict counts, the flagged stems (or their counts), the worst per check
distributions        one box-and-dots figure per headline metric
gantt_section        the Gantt chart of every job of a small batch, of the slowest of a large
tracks_section       the lowest SDR per stem, every track's table row, the track pages
==================== ==========================================================================

Examples
--------
>>> b = load_batch("reports/demo")         # doctest: +SKIP
>>> show(tracks_section(b))                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: flagged stems up to which the verdict section lists them all (beyond: counts per check)
FLAGGED_LISTED = 50


def _md(text: str) -> Any:
    from IPython.display import Markdown

    return Markdown(text)


def show(parts: Iterable[Any]) -> None:
    """Display each part in the notebook; a matplotlib figure is closed once shown (it is
    not shown a second time when the cell ends).

    Parameters
    ----------
    parts : iterable
        What a section function returns (Markdown, tables, figures), in order.
    """
    import matplotlib.pyplot as plt
    from IPython.display import display
    from matplotlib.figure import Figure

    for part in parts:
        display(part)
        if isinstance(part, Figure):
            plt.close(part)


def verdicts_section(tables: Any) -> list[Any]:
    """Verdict counts per provider; every flagged stem when there are few
    (:data:`FLAGGED_LISTED`), else how many failed or warned each check
    (:func:`~stemkit.compare.tracks.flag_counts`: each is in the track table); then the worst
    rows of each check that warned or failed (:func:`~stemkit.compare.tracks.worst_checks`).

    Parameters
    ----------
    tables : BatchTables
        The batch's tables (:func:`stemkit.compare.report.load_batch`).

    Returns
    -------
    list
        The parts to :func:`show`: Markdown, DataFrames, interactive tables, figures.
    """
    from stemkit.compare.interactive import interactive_table
    from stemkit.compare.tracks import flag_counts, worst_checks

    v = tables.verdict_summary
    if v.empty:
        return [_md("No stem was checked (no job finished).")]
    parts: list[Any] = [tables.verdict_counts]
    flagged = v[v["verdict"] != "pass"]
    if flagged.empty:
        return [*parts, _md("Every stem and job passes every check.")]
    if len(flagged) <= FLAGGED_LISTED:
        parts.append(flagged)
    else:
        parts += [
            _md(
                f"**{len(flagged)} stems or jobs warned or failed.** How many of each provider "
                "failed or warned each check; every one of them is in the track table below "
                "(filter by `fail`, or a check's name) and in `tables/verdicts.csv`."
            ),
            flag_counts(tables),
        ]
    return [
        *parts,
        _md(
            "**The worst of each check that warned or failed** (at most 10 rows a check, "
            "failures first, then the furthest past the limit)"
        ),
        interactive_table(worst_checks(tables), html_columns=["track"]),
    ]


def distributions(tables: Any) -> list[Any]:
    """One :func:`~stemkit.plots.distribution_chart` per headline metric
    (:data:`stemkit.compare.stats.HEADLINE`, WER aside) and SI-SDR, of the rows there are.

    Parameters
    ----------
    tables : BatchTables
        The batch's tables (:func:`stemkit.compare.report.load_batch`).

    Returns
    -------
    list
        The parts to :func:`show`: Markdown, DataFrames, interactive tables, figures.
    """
    from stemkit.compare.stats import HEADLINE
    from stemkit.plots import distribution_chart

    shown = [(h.metric, h.variant, h.label) for h in HEADLINE if h.metric != "wer"]
    shown.append(("si_sdr", "scale-invariant", "SI-SDR"))
    m = tables.metrics
    parts = []
    for metric, variant, label in shown:
        rows = m[(m["metric"] == metric) & (m["variant"] == variant)] if not m.empty else m
        if not rows.empty:
            parts.append(
                distribution_chart(rows, metric, variant=variant, title=f"{label} ({variant})")
            )
    return parts or [_md("No scores to draw (no references, or no job finished).")]


def gantt_section(tables: Any) -> list[Any]:
    """The Gantt chart of the jobs' vendor stages and our own steps: every job of a small
    batch, the slowest of a large one, saying which (:func:`~stemkit.compare.timing_stats.
    gantt_jobs`).

    Parameters
    ----------
    tables : BatchTables
        The batch's tables (:func:`stemkit.compare.report.load_batch`).

    Returns
    -------
    list
        The parts to :func:`show`: Markdown, DataFrames, interactive tables, figures.
    """
    from stemkit.compare.timing_stats import gantt_jobs
    from stemkit.plots import timeline_chart

    if tables.timeline.empty:
        return []
    rows, note = gantt_jobs(tables.timeline)
    return [
        _md(f"**Gantt chart, vendor stages and our own steps.** {note}"),
        timeline_chart(rows, title="Vendor stages and our own steps per job"),
    ]


def tracks_section(tables: Any) -> list[Any]:
    """Write every track's page (:func:`~stemkit.compare.tracks.write_track_pages`), then:
    what is not analysed yet, the lowest SiSEC18 SDR of each stem, and the table of every
    track × provider (``id="track-table"``), each name a link to its page.

    Parameters
    ----------
    tables : BatchTables
        The batch's tables (:func:`stemkit.compare.report.load_batch`).

    Returns
    -------
    list
        The parts to :func:`show`: Markdown, DataFrames, interactive tables, figures.
    """
    from stemkit.compare.coverage import unanalysed_note
    from stemkit.compare.interactive import interactive_table, link_table
    from stemkit.compare.tracks import track_index, worst_tracks, write_track_pages

    pages = write_track_pages(tables)
    parts: list[Any] = []
    note = unanalysed_note(tables.folder)
    if note:
        parts.append(_md(note))
    for stem, worst in worst_tracks(tables).items():
        parts += [
            _md(f"**{stem}: the {len(worst)} lowest SDR** (BSS Eval v4, dB)"),
            link_table(worst, html_columns=["track"]),
        ]
    return [
        *parts,
        _md(f"**Every track** ({len(tables.tracks)} tracks, {len(pages)} pages)"),
        interactive_table(track_index(tables), html_columns=["track"], table_id="track-table"),
    ]
