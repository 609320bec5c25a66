"""The report's tracks: one row per track and provider, the worst tracks, a page per track.

A report of a thousand tracks cannot show every track's scores and spectrograms on its main
page (600 kB a track). The main page gets :func:`track_index` (one row per track × provider:
state, worst verdict, SDR per stem, nSDR, WER, time, cost; the track name links to its page),
:func:`worst_tracks` (the N lowest SDR per stem) and :func:`worst_checks` (the N worst rows
of every QA check that warned or failed); each track's detail goes on its own page,
``tracks/<track>.html`` (:meth:`stemkit.batchdir.BatchFolder.track_page`), written by
:func:`write_track_pages`: its jobs, scores, verdicts, timing, intelligibility, and its
figures (linked from ``analysis/<track>/``, not copied).

Examples
--------
>>> b = load_batch("reports/demo")                 # doctest: +SKIP
>>> pages = write_track_pages(b)                   # doctest: +SKIP
>>> track_index(b).columns[:4].tolist()            # doctest: +SKIP
['track', 'provider', 'state', 'verdict']
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from stemkit.batchdir import BatchFolder

#: the bracket's pseudo-providers: scored on every track, not vendors (kept off the index)
BRACKET = ("oracle", "baseline", "mixture")
#: rows per stem of :func:`worst_tracks` and per check of :func:`worst_checks`
WORST_N = 10
_SEVERITY = {"fail": 3, "warn": 2, "pass": 1, "n/a": 0}


def _link(batch: BatchFolder, track: str) -> str:
    return f'<a href="{html.escape(batch.track_page_href(track))}">{html.escape(track)}</a>'


def _by_track(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One table split by track, once (not filtered again for every track)."""
    if df is None or df.empty or "track" not in df:
        return {}
    return {str(t): g for t, g in df.groupby("track", sort=False)}


def track_index(tables: Any, *, links: bool = True) -> pd.DataFrame:
    """One row per track and provider of the batch: what the report's track table shows.

    Parameters
    ----------
    tables : BatchTables
        From :func:`stemkit.compare.report.load_batch`.
    links : bool
        The ``track`` cell as a link to the track's page (HTML); else the plain name.

    Returns
    -------
    DataFrame
        ``track``, ``provider``, ``state``, ``verdict`` (the worst of its stems; ``not
        analysed`` when the track has no analysis yet), ``failed checks``, ``SDR <stem>``
        (SiSEC18: BSS Eval v4, median of the track's frames, dB) per stem, ``nSDR`` (MDX'23
        song score: the mean over stems of the global SDR, dB), ``WER``, ``end to end (s)``,
        ``cost`` and ``error``; columns with no value in any row are left out.

    Examples
    --------
    >>> from stemkit.compare.report import BatchTables
    >>> jobs = pd.DataFrame({"track": ["t"], "provider": ["a"], "state": ["done"]})
    >>> m = pd.DataFrame({"track": ["t"] * 2, "provider": ["a"] * 2, "stem": ["vocals"] * 2,
    ...                   "metric": ["sdr", "nsdr"], "variant": ["bsseval_v4", "global"],
    ...                   "value": [6.0, 7.0]})
    >>> e = pd.DataFrame()
    >>> b = BatchTables(Path("/tmp/x"), {"providers": ["a"], "tracks": [{"name": "t"}]},
    ...                 jobs, m, e, e, e, e)
    >>> row = track_index(b, links=False).iloc[0]   # no status.json here: not analysed
    >>> row["track"], row["verdict"], float(row["SDR vocals"]), float(row["nSDR"])
    ('t', 'not analysed', 6.0, 7.0)
    """
    batch = BatchFolder(tables.folder)
    jobs = tables.jobs
    if jobs.empty:
        return pd.DataFrame(columns=["track", "provider", "state"])
    out = jobs[["track", "provider", "state"]].copy()
    key = ["track", "provider"]

    v = tables.verdicts
    if not v.empty:
        judged = v.assign(_sev=v["verdict"].map(_SEVERITY).fillna(0))
        worst = judged.groupby(key)["_sev"].max()
        names = {s: k for k, s in _SEVERITY.items()}
        failed = (
            judged[judged["verdict"] == "fail"]
            .groupby(key)["check"]
            .agg(lambda s: ", ".join(dict.fromkeys(s)))
        )
        out = out.join(worst.map(names).rename("verdict"), on=key)
        out = out.join(failed.rename("failed checks"), on=key)
    analysed = {t for t in tables.tracks if batch.status_path(t).is_file()}
    if "verdict" not in out:
        out["verdict"] = np.nan
    out["verdict"] = out["verdict"].where(
        out["track"].isin(analysed) | out["verdict"].notna(), "not analysed"
    )

    m = tables.metrics
    if not m.empty:
        sdr = m[(m["metric"] == "sdr") & (m["variant"] == "bsseval_v4")]
        if not sdr.empty:
            wide = sdr.pivot_table(index=key, columns="stem", values="value", aggfunc="median")
            wide.columns = [f"SDR {s}" for s in wide.columns]
            out = out.join(wide.round(2), on=key)
        nsdr = m[(m["metric"] == "nsdr") & (m["variant"] == "global") & (m["stem"] != "mean")]
        if not nsdr.empty:
            out = out.join(nsdr.groupby(key)["value"].mean().round(2).rename("nSDR"), on=key)

    intel = tables.intelligibility
    if not intel.empty and "wer" in intel:
        wer = intel.groupby(["track", "source"])["wer"].min().round(3)
        wer.index = wer.index.set_names(key)
        out = out.join(wer.rename("WER"), on=key)
    timing = tables.timing
    if not timing.empty and "end to end" in timing:
        e2e = timing.set_index(key)["end to end"].round(1)
        out = out.join(e2e[~e2e.index.duplicated()].rename("end to end (s)"), on=key)
    for col in ("cost", "error"):
        if col in jobs:
            out[col] = jobs[col].to_numpy()
    out = out.dropna(axis=1, how="all")
    if links:
        out["track"] = [_link(batch, t) for t in out["track"]]
    return out.reset_index(drop=True)


def worst_tracks(
    tables: Any, n: int = WORST_N, *, metric: str = "sdr", variant: str = "bsseval_v4"
) -> dict[str, pd.DataFrame]:
    """Per stem: the ``n`` tracks × providers with the lowest score (SiSEC18 SDR by default),
    lowest first, with the track's link.

    Returns
    -------
    dict of str to DataFrame
        Stem -> ``track``, ``provider``, ``<metric> (dB)``; the bracket is left out.

    Examples
    --------
    >>> from stemkit.compare.report import BatchTables
    >>> m = pd.DataFrame({"track": ["t1", "t2"], "provider": ["a", "a"],
    ...                   "stem": ["vocals"] * 2, "metric": ["sdr"] * 2,
    ...                   "variant": ["bsseval_v4"] * 2, "value": [6.0, -2.0]})
    >>> e = pd.DataFrame()
    >>> b = BatchTables(Path("/tmp/x"), {"providers": ["a"]}, e, m, e, e, e, e)
    >>> worst_tracks(b, 1)["vocals"]["track"].tolist()
    ['<a href="tracks/t2.html">t2</a>']
    """
    batch = BatchFolder(tables.folder)
    m = tables.metrics
    if m.empty:
        return {}
    m = m[(m["metric"] == metric) & (m["variant"] == variant) & ~m["provider"].isin(BRACKET)]
    m = m.dropna(subset=["value"])
    out = {}
    for stem, g in m.groupby("stem", sort=False):
        low = g.nsmallest(n, "value")
        out[str(stem)] = pd.DataFrame(
            {
                "track": [_link(batch, t) for t in low["track"]],
                "provider": low["provider"].to_numpy(),
                f"{metric.upper()} (dB)": low["value"].round(2).to_numpy(),
            }
        )
    return out


def _direction(profile: Mapping, check: str) -> int:
    """+1 when a high value is bad (``*_above`` limits), -1 when a low one is, 0 unknown."""
    rule = (profile.get("checks") or {}).get(check) or {}
    if any(k in rule for k in ("fail_above", "warn_above")):
        return 1
    if any(k in rule for k in ("fail_below", "warn_below")):
        return -1
    return 0


def worst_checks(tables: Any, n: int = WORST_N, profile: Mapping | None = None) -> pd.DataFrame:
    """Per QA check that warned or failed anywhere: its ``n`` worst rows, failures first, then
    the furthest past the limit (the profile says which way is bad).

    Returns
    -------
    DataFrame
        ``check``, ``verdict``, ``track`` (link), ``provider``, ``stem``, ``value``, ``unit``.

    Examples
    --------
    >>> from stemkit.compare.report import BatchTables
    >>> v = pd.DataFrame({"track": ["t1", "t2", "t3"], "provider": ["a"] * 3,
    ...                   "stem": ["bass"] * 3, "check": ["clip_pct"] * 3,
    ...                   "value": [0.5, 3.0, 0.0], "unit": ["%"] * 3,
    ...                   "verdict": ["fail", "fail", "pass"]})
    >>> e = pd.DataFrame()
    >>> b = BatchTables(Path("/tmp/x"), {"providers": ["a"]}, e, e, e, e, e, v)
    >>> worst_checks(b, 5)["value"].tolist()
    [3.0, 0.5]
    """
    from stemkit.analyze.qa import load_profile

    batch = BatchFolder(tables.folder)
    cols = ["check", "verdict", "track", "provider", "stem", "value", "unit"]
    v = tables.verdicts
    if v.empty:
        return pd.DataFrame(columns=cols)
    profile = load_profile() if profile is None else profile
    bad = v[v["verdict"].isin(["fail", "warn"])]
    parts = []
    for check, g in bad.groupby("check", sort=True):
        sign = _direction(profile, str(check))
        value = pd.to_numeric(g["value"], errors="coerce")
        rule = (profile.get("checks") or {}).get(check) or {}
        value = value.abs() if rule.get("abs") else value
        ranked = g.assign(
            _sev=-g["verdict"].map(_SEVERITY), _v=(-sign * value).fillna(np.inf)
        ).sort_values(["_sev", "_v"], kind="stable")
        parts.append(ranked.head(n))
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    out["track"] = [_link(batch, t) for t in out["track"]]
    return out.reindex(columns=cols)


def flag_counts(tables: Any) -> pd.DataFrame:
    """Per provider and QA check: how many stems (or jobs) failed and warned, the checks
    with most failures first (the summary of a batch too large to list every flagged stem).

    Examples
    --------
    >>> from stemkit.compare.report import BatchTables
    >>> v = pd.DataFrame({"track": ["t1", "t2", "t3"], "provider": ["a"] * 3,
    ...                   "stem": ["bass"] * 3, "check": ["clip_pct"] * 3,
    ...                   "verdict": ["fail", "warn", "pass"]})
    >>> e = pd.DataFrame()
    >>> b = BatchTables(Path("/tmp/x"), {"providers": ["a"]}, e, e, e, e, e, v)
    >>> flag_counts(b).to_dict("records")
    [{'provider': 'a', 'check': 'clip_pct', 'fail': 1, 'warn': 1}]
    """
    v = tables.verdicts
    cols = ["provider", "check", "fail", "warn"]
    if v.empty:
        return pd.DataFrame(columns=cols)
    bad = v[v["verdict"].isin(["fail", "warn"])]
    if bad.empty:
        return pd.DataFrame(columns=cols)
    table = bad.groupby(["provider", "check", "verdict"]).size().unstack(fill_value=0)
    table = table.reindex(columns=["fail", "warn"], fill_value=0).reset_index()
    table.columns.name = None
    return table.sort_values(["provider", "fail", "warn"], ascending=[True, False, False])[
        cols
    ].reset_index(drop=True)


# ------------------------------------------------------------------------------ track pages
_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1180px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 13px; margin: .4em 0; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: .5em 0; }
.note { color: #555; } .fail { color: #b00; font-weight: bold; }
.warn { color: #a60; } nav a { margin-right: 1em; }
.scroll { overflow-x: auto; max-width: 100%; }  /* a wide table scrolls, not the page */
"""


@dataclass
class Rows:
    """A small table as plain Python (a page is rendered from a thousand of them: pandas
    costs milliseconds per operation, these cost microseconds).

    Attributes
    ----------
    columns : list
        Column labels; a tuple label is a two-level header (metric, provider).
    rows : list of list
        The cells, row by row.
    index : list, optional
        Row labels, drawn as a first column headed ``index_name``.
    """

    columns: list
    rows: list
    index: list | None = None
    index_name: str = ""

    def keep(self, columns: list) -> Rows:
        """Only ``columns`` (those it has), in that order."""
        at = [self.columns.index(c) for c in columns if c in self.columns]
        return Rows([self.columns[k] for k in at], [[r[k] for k in at] for r in self.rows],
                    self.index, self.index_name)  # fmt: skip

    def filled(self) -> Rows:
        """Without the columns that hold no value in any row."""
        full = [c for k, c in enumerate(self.columns) if any(_cell(r[k]) for r in self.rows)]
        return self.keep(full)


def _split(df: pd.DataFrame | None, columns: list[str]) -> dict[str, Rows]:
    """A batch table as :class:`Rows` per track (its ``columns`` that exist), in one pass."""
    if df is None or df.empty or "track" not in df:
        return {}
    cols = [c for c in columns if c in df]
    values = df[cols].astype(object).to_numpy().tolist()
    out: dict[str, Rows] = {}
    for track, row in zip(df["track"].astype(str).tolist(), values, strict=True):
        if track not in out:
            out[track] = Rows(list(cols), [])
        out[track].rows.append(row)
    return out


def _cell(value: Any) -> str:
    """One table cell as HTML: numbers to 4 significant digits, missing as blank."""
    kind = type(value)
    if kind is str:
        return html.escape(value)
    if kind is float or isinstance(value, np.floating):
        return "" if value != value else f"{value:.4g}"  # NaN != NaN
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    return html.escape(str(value))


def _table(t: Rows | None, empty: str) -> str:
    """The HTML of a :class:`Rows`; tuple column labels share their first level's cell."""
    if t is None or not t.rows:
        return f'<p class="note">{html.escape(empty)}</p>'
    levels = 2 if t.columns and isinstance(t.columns[0], tuple) else 1
    head = []
    for level in range(levels):
        labels = [c[level] for c in t.columns] if levels == 2 else list(t.columns)
        cells, k = [], 0
        while k < len(labels):  # equal neighbours of the upper level share one cell
            span = 1
            while level < levels - 1 and k + span < len(labels) and labels[k + span] == labels[k]:
                span += 1
            attr = f' colspan="{span}"' if span > 1 else ""
            cells.append(f"<th{attr}>{html.escape(str(labels[k]))}</th>")
            k += span
        lead = ""
        if t.index is not None:
            lead = f"<th>{html.escape(t.index_name)}</th>" if level == levels - 1 else "<th></th>"
        head.append("<tr>" + lead + "".join(cells) + "</tr>")
    body = []
    for k, row in enumerate(t.rows):
        lead = f"<th>{_cell(t.index[k])}</th>" if t.index is not None else ""
        body.append("<tr>" + lead + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
    return (
        '<div class="scroll"><table><thead>' + "".join(head) + "</thead><tbody>\n"
        + "\n".join(body) + "\n</tbody></table></div>"
    )  # fmt: skip


def score_tables(metrics: pd.DataFrame, providers: list[str] | None = None) -> dict[str, Rows]:
    """Every track's scores as :func:`stemkit.compare.report.track_table` shows one (a row
    per stem, a column per metric and provider), from one pivot of the whole batch.

    Examples
    --------
    >>> df = pd.DataFrame({"track": ["t", "t", "u"], "provider": ["a", "mixture", "a"],
    ...                    "stem": ["vocals"] * 3, "metric": ["sdr"] * 3,
    ...                    "variant": ["global"] * 3, "value": [5.0, -3.0, 4.0]})
    >>> tables = score_tables(df)
    >>> tables["t"].columns, tables["u"].columns, tables["u"].rows
    ([('nSDR (dB)', 'a'), ('nSDR (dB)', 'mixture')], [('nSDR (dB)', 'a')], [[4.0]])
    """
    from stemkit.compare.report import SCORE_COLUMNS, SCORE_NAMES

    if metrics.empty:
        return {}
    keys = list(zip(metrics["metric"], metrics["variant"], strict=True))
    m = metrics.assign(
        metric=[SCORE_NAMES.get(k, f"{k[0]} ({k[1]})") for k in keys],
        stem=metrics["stem"].replace({"(all)": "all stems"}),
    )
    m = m[m["metric"].isin(SCORE_COLUMNS)]
    if m.empty:
        return {}
    wide = m.pivot_table(index=["track", "stem"], columns=["metric", "provider"], values="value")
    found = list(dict.fromkeys(p for p in m["provider"] if p not in BRACKET))
    ordered = [p for p in (providers or []) if p in found]
    ordered += [p for p in found if p not in ordered]
    order = [
        (met, p)
        for met in SCORE_COLUMNS
        for p in ["oracle", *ordered, "baseline", "mixture"]
        if (met, p) in wide.columns
    ]
    wide = wide[order].round(2)
    values = wide.to_numpy(dtype=float)
    tracks = wide.index.get_level_values("track").astype(str).to_numpy()
    stems = wide.index.get_level_values("stem").astype(str).tolist()
    cols = list(wide.columns)
    out = {}
    starts = np.flatnonzero(np.r_[True, tracks[1:] != tracks[:-1]])
    for a, b in zip(starts, [*starts[1:], len(tracks)], strict=True):
        block = values[a:b]
        has = ~np.isnan(block).all(axis=0)
        out[str(tracks[a])] = Rows(
            [c for c, h in zip(cols, has, strict=True) if h], block[:, has].tolist(),
            stems[a:b], "stem",
        )  # fmt: skip
    return out


def _rel(target: Path, page: Path) -> str:
    return quote(Path(os.path.relpath(target, page.parent)).as_posix())


def track_page_html(tables: Any, track: str, parts: Mapping[str, Rows]) -> str:
    """The HTML of one track's page (see :func:`write_track_pages`); ``parts`` are the
    batch's tables cut to this track as :class:`Rows`: ``jobs``, ``scores``
    (:func:`score_tables`), ``verdict_summary``, ``verdicts``, ``timing``,
    ``intelligibility``; a part may be missing."""
    from stemkit.compare.coverage import track_note

    batch = BatchFolder(tables.folder)
    page = batch.track_page(track)
    esc = html.escape
    body = [
        f'<nav><a href="{_rel(batch.report_path, page)}">← report of '
        f"{esc(batch.root.name)}</a>"
        f'<a href="{_rel(batch.notebook("analyze", track), page)}">executed analysis '
        "notebook</a></nav>",
        f"<h1>{esc(track)}</h1>",
    ]
    if "jobs" in parts:
        body += ["<h2>Jobs</h2>", _table(parts["jobs"].filled(), "")]
    body.append("<h2>Scores</h2>")
    if "scores" in parts:
        body.append(_table(parts["scores"], ""))
    else:
        body.append(f'<p class="note">{esc(track_note(batch, track))}</p>')
    body.append("<h2>Verdicts</h2>")
    if "verdicts" not in parts:
        body.append('<p class="note">No QA check of this track.</p>')
    else:
        if "verdict_summary" in parts:
            body.append(_table(parts["verdict_summary"], ""))
        body.append("<details><summary>every check</summary>")
        body.append(_table(parts["verdicts"], ""))
        body.append("</details>")
    if "timing" in parts:
        body += ["<h2>Timing (s)</h2>", _table(parts["timing"], "")]
    if "intelligibility" in parts:
        body += ["<h2>Intelligibility</h2>", _table(parts["intelligibility"].filled(), "")]
    figures = [(name, batch.figure(track, name)) for name in ("spectrograms", "timeline")]
    shown = [(n, p) for n, p in figures if p.is_file()]
    body.append("<h2>Figures</h2>")
    if not shown:
        body.append('<p class="note">No figure (the analysis drew none for this track).</p>')
    for name, path in shown:
        body.append(
            f'<img src="{_rel(path, page)}" alt="{esc(name)} of {esc(track)}" loading="lazy">'
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(track)} · {esc(batch.root.name)}</title><style>{_CSS}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


#: what each part of a track's page shows of its batch table
PAGE_COLUMNS = {
    "jobs": ["provider", "state", "job_id", "audio_seconds", "cost", "error"],
    "verdict_summary": ["provider", "stem", "verdict", "n_fail", "n_warn", "failed", "warned"],
    "verdicts": ["provider", "stem", "check", "value", "unit", "verdict", "threshold"],
    "timing": ["provider", "queue wait", "processing", "end to end", "rtf", "retries"],
    "intelligibility": ["source", "stem", "wer", "stoi", "estoi", "dnsmos_ovrl", "dnsmos_sig",
                        "dnsmos_bak", "state", "error"],
}  # fmt: skip


def write_track_pages(tables: Any) -> list[Path]:
    """Write ``tracks/<track>.html`` for every track of the batch (see
    :func:`track_page_html`); pages of tracks no longer in the batch are removed.

    Each page is written beside its name and renamed into place (a reader never sees half a
    page) but not fsynced: pages are made again from the tables by every compare run, which
    leaves a page alone when its content has not changed.

    Parameters
    ----------
    tables : BatchTables
        From :func:`stemkit.compare.report.load_batch`.

    Returns
    -------
    list of Path
        The pages, in batch order.
    """
    from stemkit.atomic import temp_name

    batch = BatchFolder(tables.folder)
    split = {name: _split(getattr(tables, name), cols) for name, cols in PAGE_COLUMNS.items()}
    split["scores"] = score_tables(tables.metrics, list(tables.info.get("providers", [])))
    batch.track_pages_dir.mkdir(parents=True, exist_ok=True)
    pages = []
    for track in tables.tracks:
        parts = {name: by[track] for name, by in split.items() if track in by}
        path = batch.track_page(track)
        text = track_page_html(tables, track, parts)
        if not (path.is_file() and path.read_text(encoding="utf-8") == text):
            tmp = temp_name(path)  # a rerun leaves unchanged pages alone
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        pages.append(path)
    keep = {p.name for p in pages}
    for old in batch.track_pages_dir.glob("*.html"):
        if old.name not in keep:
            old.unlink()
    return pages
