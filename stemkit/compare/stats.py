"""Statistics of a comparison: is one provider better than another, and how sure are we?

For every pair of providers, stem and headline metric, :func:`paired_comparisons` takes the
tracks both providers were scored on and gives the **paired difference** ``a - b`` per track,
its median, a **bootstrap 95 % confidence interval** of that median (percentile method,
:func:`scipy.stats.bootstrap`, seeded), and a **Wilcoxon signed-rank test**
(:func:`scipy.stats.wilcoxon`, two-sided; exact for small samples) with ``n``. The p-values of
one metric are adjusted together for multiple comparisons by Holm's step-down method
(:func:`statsmodels.stats.multitest.multipletests`), over every pair of providers and stem:
a batch asks "who is better on SDR?" of many pairs and stems, and some would look significant
by chance. (Each metric is its own question, so its own family.) :func:`sentences` turns the
table into plain text, with "too few tracks to call" below :data:`MIN_TRACKS`.

Examples
--------
>>> import pandas as pd
>>> rows = [{"track": f"t{i}", "provider": p, "stem": "vocals", "metric": "sdr",
...          "variant": "bsseval_v4", "value": v + (2.0 if p == "a" else 0.0)}
...         for i, v in enumerate([3.1, 4.0, 2.2, 5.3, 4.4, 3.9, 2.8, 4.1])
...         for p in ("a", "b")]
>>> c = paired_comparisons(pd.DataFrame(rows), ["a", "b"])
>>> r = c.iloc[0]
>>> r.provider_a, r.provider_b, r.stem, r.metric, int(r.n_tracks), float(r.median_diff)
('a', 'b', 'vocals', 'sdr', 8, 2.0)
>>> print(sentences(c)[0])
a beats b on vocals SDR by 2.00 dB [2.00, 2.00], p = 0.0078 (Holm 0.0078), 8 tracks
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

__all__ = ["COLUMNS", "HEADLINE", "Headline", "MIN_TRACKS", "paired_comparisons", "sentences"]

#: below this many paired tracks a comparison is shown but not called
MIN_TRACKS = 5
#: significance level, after the Holm adjustment
ALPHA = 0.05


@dataclass(frozen=True)
class Headline:
    """A metric the comparison tests."""

    metric: str
    variant: str
    label: str
    unit: str
    higher_is_better: bool


#: the headline metrics, in report order (WER comes from the intelligibility table)
HEADLINE: tuple[Headline, ...] = (
    Headline("sdr", "bsseval_v4", "SDR", "dB", True),
    Headline("nsdr", "global", "nSDR", "dB", True),
    Headline("sir", "bsseval_v4", "SIR", "dB", True),
    Headline("sar", "bsseval_v4", "SAR", "dB", True),
    Headline("wer", "asr", "WER", "", False),
)

#: columns of ``tables/comparisons.{csv,parquet}``
COLUMNS = [
    "provider_a",
    "provider_b",
    "stem",
    "metric",
    "n_tracks",
    "median_diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "higher_is_better",
]


def _long(
    metrics: pd.DataFrame, intelligibility: pd.DataFrame | None, headlines: Sequence[Headline]
) -> pd.DataFrame:
    """One ``track, provider, stem, metric, value`` table of every headline metric."""
    parts = []
    if not metrics.empty:
        for h in headlines:
            sel = metrics[(metrics["metric"] == h.metric) & (metrics["variant"] == h.variant)]
            parts.append(sel[["track", "provider", "stem", "metric", "value"]])
    if intelligibility is not None and not intelligibility.empty:
        wer = intelligibility.rename(columns={"source": "provider", "wer": "value"})
        parts.append(wer.assign(metric="wer")[["track", "provider", "stem", "metric", "value"]])
    if not parts:
        return pd.DataFrame(columns=["track", "provider", "stem", "metric", "value"])
    out = pd.concat(parts, ignore_index=True)
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    return out


def _median_ci(diff: np.ndarray, confidence: float, n_resamples: int, seed: int):
    if len(diff) < 2 or np.ptp(diff) == 0:
        m = float(np.median(diff)) if len(diff) else math.nan
        return (m, m) if len(diff) >= 2 else (math.nan, math.nan)
    res = stats.bootstrap(
        (diff,),
        np.median,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _wilcoxon(diff: np.ndarray) -> float:
    if len(diff) < 2:
        return math.nan
    if not np.any(diff):
        return 1.0  # identical on every track: no evidence of a difference
    return float(stats.wilcoxon(diff, alternative="two-sided").pvalue)


def paired_comparisons(
    metrics: pd.DataFrame,
    providers: Sequence[str],
    *,
    intelligibility: pd.DataFrame | None = None,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    headlines: Sequence[Headline] = HEADLINE,
) -> pd.DataFrame:
    """Paired differences between every two providers, per stem and headline metric.

    Parameters
    ----------
    metrics : pd.DataFrame
        The tidy metrics table (``track, provider, stem, metric, variant, value``).
    providers : sequence of str
        Providers to compare, in order: each pair ``(a, b)`` has ``a`` before ``b``.
    intelligibility : pd.DataFrame, optional
        The intelligibility table (``track, source, stem, wer``): adds ``wer`` (lower is
        better).
    confidence : float
        Level of the bootstrap interval.
    n_resamples : int
        Bootstrap resamples.
    seed : int
        Seed of the bootstrap: the same batch gives the same intervals.
    headlines : sequence of Headline
        The metrics to compare (default :data:`HEADLINE`; a listening test passes its own).

    Returns
    -------
    pd.DataFrame
        :data:`COLUMNS`: per pair, stem and metric, the tracks both were scored on
        (``n_tracks``), the median of ``a - b`` with its interval, the Wilcoxon p-value and the
        Holm-adjusted one (over every row of the same metric). NaN where fewer than 2 tracks
        pair up.
    """
    long = _long(metrics, intelligibility, headlines)
    rows = []
    for h in headlines:
        sel = long[long["metric"] == h.metric]
        for stem in sorted(sel["stem"].dropna().unique()):
            table = sel[sel["stem"] == stem].pivot_table(
                index="track", columns="provider", values="value", aggfunc="first"
            )
            for a, b in itertools.combinations([p for p in providers if p in table], 2):
                both = table[[a, b]].dropna()
                diff = (both[a] - both[b]).to_numpy(dtype=float)
                low, high = _median_ci(diff, confidence, n_resamples, seed)
                rows.append(
                    {
                        "provider_a": a,
                        "provider_b": b,
                        "stem": stem,
                        "metric": h.metric,
                        "n_tracks": len(diff),
                        "median_diff": float(np.median(diff)) if len(diff) else math.nan,
                        "ci_low": low,
                        "ci_high": high,
                        "p_value": _wilcoxon(diff),
                        "higher_is_better": h.higher_is_better,
                    }
                )
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "p_holm"])
    out["p_holm"] = math.nan
    for _, group in out[out["p_value"].notna()].groupby("metric"):
        out.loc[group.index, "p_holm"] = multipletests(group["p_value"], method="holm")[1]
    return out[COLUMNS]


def _fmt(x: float, unit: str) -> str:
    return f"{x:.2f} {unit}".rstrip() if unit else f"{x:.3f}"


def sentences(
    comparisons: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    headlines: Sequence[Headline] = HEADLINE,
) -> list[str]:
    """The comparisons as plain sentences, the significant ones first.

    Parameters
    ----------
    comparisons : pd.DataFrame
        From :func:`paired_comparisons`.
    metrics : sequence of str, optional
        Only these metrics (default: all).
    headlines : sequence of Headline
        The metrics of the table (as given to :func:`paired_comparisons`).

    Returns
    -------
    list of str
        ``"A beats B on STEM METRIC by X [low, high], p = P (Holm Q), N tracks"`` when the
        Holm-adjusted p is below 0.05; ``"no clear difference ..."`` otherwise; ``"too few
        tracks to call"`` below :data:`MIN_TRACKS`.
    """
    heads = {h.metric: h for h in headlines}
    called, open_ = [], []
    for r in comparisons.itertuples(index=False):
        if metrics is not None and r.metric not in metrics:
            continue
        h = heads[r.metric]
        what = f"{r.stem} {h.label}"
        if r.n_tracks < MIN_TRACKS:
            open_.append(
                f"{r.provider_a} vs {r.provider_b} on {what}: too few tracks to call "
                f"({r.n_tracks}; at least {MIN_TRACKS} needed)"
            )
            continue
        d, lo, hi = r.median_diff, r.ci_low, r.ci_high
        a_better = (d > 0) == h.higher_is_better
        win, lose = (r.provider_a, r.provider_b) if a_better else (r.provider_b, r.provider_a)
        if not a_better:
            d, lo, hi = -d, -hi, -lo
        if not h.higher_is_better:
            d, lo, hi = -d, -hi, -lo  # "by" is how much better: lower WER is better
        p = f"p = {r.p_value:.2g} (Holm {r.p_holm:.2g}), {r.n_tracks} tracks"
        if r.p_holm < ALPHA and d != 0:
            called.append(
                f"{win} beats {lose} on {what} by {_fmt(d, h.unit)} [{lo:.2f}, {hi:.2f}], {p}"
            )
        else:
            open_.append(
                f"no clear difference between {r.provider_a} and {r.provider_b} on {what}: "
                f"{win} ahead by {_fmt(d, h.unit)} [{lo:.2f}, {hi:.2f}], {p}"
            )
    return called + open_
