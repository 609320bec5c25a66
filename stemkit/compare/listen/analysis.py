"""Analyse a listening test: post-screening, means, paired statistics, metrics vs listeners.

* **Post-screening** (ITU-R BS.1534-3, 4.1.2): a listener who rates the hidden reference below
  90 on more than 15 % of their trials, or the mid anchor (7 kHz low-pass) above 90 on more
  than 15 %, is excluded from everything that follows, and listed with the reason.
* **Means**: per stem and condition, the mean score of the kept listeners with its 95 %
  confidence interval (Student's t over the ratings, as BS.1534-3 reports them).
* **Paired comparisons** of the providers, by the batch's own statistics
  (:func:`stemkit.compare.stats.paired_comparisons`): the pairing unit is the item (its mean
  over the kept listeners), the metric ``mushra``.
* **Metrics vs listeners**: per stem and metric, Kendall's tau and Spearman's rho between the
  track's metric value and the item's mean score, over every (item, provider) pair, plus the
  mixture anchor (scored as the ``mixture`` row of the metrics); and the items where the two
  disagree most: the largest gap between the listeners' percentile rank and the metric's.

Tables, under ``tables/``: ``listening_ratings``, ``listening_screening``, ``listening_means``,
``listening_comparisons``, ``listening_agreement``, ``listening_disagreements``.

Examples
--------
>>> r = pd.DataFrame({"listener": ["a"] * 2 + ["b"] * 2, "trial": ["t1", "t2"] * 2,
...                   "condition": ["reference"] * 4, "score": [100, 95, 60, 100.0]})
>>> screen(r)[["listener", "hidden_ref_below_90", "excluded"]].values.tolist()
[['a', 0.0, False], ['b', 0.5, True]]
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from stemkit.batchdir import BatchFolder
from stemkit.compare.listen.design import ANCHORS, HIDDEN_REFERENCE, MID_ANCHOR, Design
from stemkit.compare.listen.results import read_results, unblind
from stemkit.compare.stats import Headline, paired_comparisons, sentences
from stemkit.errors import StemkitError

__all__ = [
    "LISTENING",
    "ListeningAnalysis",
    "analyze_listening",
    "condition_means",
    "listening_section",
    "metric_agreement",
    "screen",
]

#: the listening score as a headline of :mod:`stemkit.compare.stats`
LISTENING = Headline("mushra", "listening", "MUSHRA score", "points", True)
#: a listener is excluded above this share of failed trials
MAX_FAILED_SHARE = 0.15
#: the anchor condition that stands for the metrics' ``mixture`` row
MIXTURE_ANCHOR = "anchor_mixture"
TABLES = ("ratings", "screening", "means", "comparisons", "agreement", "disagreements")


def screen(ratings: pd.DataFrame) -> pd.DataFrame:
    """BS.1534-3 post-screening of every listener.

    Parameters
    ----------
    ratings : DataFrame
        Unblinded ratings: ``listener, trial, condition, score``.

    Returns
    -------
    DataFrame
        Per listener: ``trials``, the shares ``hidden_ref_below_90`` and
        ``mid_anchor_above_90`` of their trials, ``excluded`` and ``reason``.
    """
    rows = []
    for who, r in ratings.groupby("listener", sort=True):
        trials = r["trial"].nunique()
        ref = r[r["condition"] == HIDDEN_REFERENCE]
        mid = r[r["condition"] == MID_ANCHOR]
        ref_bad = ref.loc[ref["score"] < 90, "trial"].nunique() / trials if trials else 0.0
        mid_bad = mid.loc[mid["score"] > 90, "trial"].nunique() / trials if trials else 0.0
        reasons = []
        if ref_bad > MAX_FAILED_SHARE:
            reasons.append(f"hidden reference below 90 on {ref_bad:.0%} of trials")
        if mid_bad > MAX_FAILED_SHARE:
            reasons.append(f"mid anchor (7 kHz) above 90 on {mid_bad:.0%} of trials")
        rows.append(
            {
                "listener": who,
                "trials": trials,
                "hidden_ref_below_90": round(ref_bad, 4),
                "mid_anchor_above_90": round(mid_bad, 4),
                "excluded": bool(reasons),
                "reason": "; ".join(reasons),
            }
        )
    return pd.DataFrame(
        rows,
        columns=["listener", "trials", "hidden_ref_below_90", "mid_anchor_above_90",
                 "excluded", "reason"],
    )  # fmt: skip


def condition_means(kept: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean score per stem and condition with its t-interval.

    Returns
    -------
    DataFrame
        ``stem, condition, n_ratings, n_listeners, mean, ci_low, ci_high, sd``; providers
        first (best first), then the hidden reference and the anchors.

    Examples
    --------
    >>> k = pd.DataFrame({"stem": ["vocals"] * 3, "condition": ["a"] * 3,
    ...                   "listener": ["x", "y", "z"], "score": [60.0, 70.0, 80.0]})
    >>> condition_means(k)[["mean", "ci_low"]].round(1).values.tolist()
    [[70.0, 45.2]]
    """
    rows = []
    for (stem, cond), r in kept.groupby(["stem", "condition"], sort=True):
        x = r["score"].to_numpy(float)
        n, m = len(x), float(np.mean(x))
        sd = float(np.std(x, ddof=1)) if n > 1 else math.nan
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
        rows.append(
            {
                "stem": stem,
                "condition": cond,
                "n_ratings": n,
                "n_listeners": r["listener"].nunique(),
                "mean": m,
                "ci_low": m - half,
                "ci_high": m + half,
                "sd": sd,
            }
        )
    out = pd.DataFrame(
        rows,
        columns=["stem", "condition", "n_ratings", "n_listeners", "mean", "ci_low", "ci_high",
                 "sd"],
    )  # fmt: skip
    fixed = [HIDDEN_REFERENCE, *ANCHORS]
    out["_o"] = [fixed.index(c) + 1 if c in fixed else 0 for c in out["condition"]]
    out = out.sort_values(["stem", "_o", "mean"], ascending=[True, True, False])
    return out.drop(columns="_o").reset_index(drop=True)


def _item_means(kept: pd.DataFrame) -> pd.DataFrame:
    """Mean score per stem, item, track and condition."""
    return kept.groupby(["stem", "item", "track", "condition"], as_index=False)["score"].mean()


def metric_agreement(
    kept: pd.DataFrame, metrics: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank agreement between each metric and the listeners, and the worst disagreements.

    Parameters
    ----------
    kept : DataFrame
        Unblinded ratings of the kept listeners.
    metrics : DataFrame
        The batch's tidy metrics (``track, provider, stem, metric, variant, value``).

    Returns
    -------
    agreement : DataFrame
        Per stem and metric: ``n`` pairs, ``kendall_tau`` and its p, ``spearman_rho`` and its p.
    disagreements : DataFrame
        Per stem, for its headline metric (the first of SDR v4 / nSDR / SDR found), the five
        (item, provider) pairs with the largest gap between the listeners' percentile rank and
        the metric's: ``gap`` > 0 where listeners liked it better than the metric did.
    """
    items = _item_means(kept)
    items = items[~items["condition"].isin([HIDDEN_REFERENCE, *ANCHORS]) |
                  (items["condition"] == MIXTURE_ANCHOR)]  # fmt: skip
    items = items.assign(provider=items["condition"].replace({MIXTURE_ANCHOR: "mixture"}))
    agree, worst = [], []
    if metrics.empty or items.empty:
        return pd.DataFrame(columns=_AGREE), pd.DataFrame(columns=_WORST)
    m = metrics.assign(value=pd.to_numeric(metrics["value"], errors="coerce")).dropna(
        subset=["value"]
    )
    for (stem, metric, variant), sel in m.groupby(["stem", "metric", "variant"], sort=True):
        joined = items[items["stem"] == stem].merge(
            sel[["track", "provider", "value"]], on=["track", "provider"], how="inner"
        )
        if len(joined) < 3 or joined["value"].nunique() < 2 or joined["score"].nunique() < 2:
            continue
        tau = stats.kendalltau(joined["value"], joined["score"])
        rho = stats.spearmanr(joined["value"], joined["score"])
        agree.append(
            {
                "stem": stem,
                "metric": metric,
                "variant": variant,
                "n": len(joined),
                "kendall_tau": float(tau.statistic),
                "kendall_p": float(tau.pvalue),
                "spearman_rho": float(rho.statistic),
                "spearman_p": float(rho.pvalue),
            }
        )
    agreement = pd.DataFrame(agree, columns=_AGREE)
    for stem in sorted(items["stem"].unique()):
        for metric, variant in (("sdr", "bsseval_v4"), ("nsdr", "global"), ("sdr", "global")):
            sel = m[(m["stem"] == stem) & (m["metric"] == metric) & (m["variant"] == variant)]
            joined = items[items["stem"] == stem].merge(
                sel[["track", "provider", "value"]], on=["track", "provider"], how="inner"
            )
            if len(joined) >= 2:
                break
        else:
            continue
        joined = joined.assign(
            metric=metric,
            variant=variant,
            metric_rank_pct=joined["value"].rank(pct=True),
            listener_rank_pct=joined["score"].rank(pct=True),
        )
        joined["gap"] = joined["listener_rank_pct"] - joined["metric_rank_pct"]
        top = joined.reindex(joined["gap"].abs().sort_values(ascending=False).index).head(5)
        worst.append(top.rename(columns={"value": "metric_value", "score": "listener_mean"}))
    disagreements = (
        pd.concat(worst, ignore_index=True)[_WORST] if worst else pd.DataFrame(columns=_WORST)
    )
    return agreement, disagreements


_AGREE = ["stem", "metric", "variant", "n", "kendall_tau", "kendall_p", "spearman_rho",
          "spearman_p"]  # fmt: skip
_WORST = ["stem", "item", "track", "provider", "metric", "variant", "metric_value",
          "listener_mean", "metric_rank_pct", "listener_rank_pct", "gap"]  # fmt: skip


@dataclass
class ListeningAnalysis:
    """The tables of an analysed listening test (see the module docstring)."""

    ratings: pd.DataFrame  # unblinded, every listener, with ``kept``
    screening: pd.DataFrame
    means: pd.DataFrame
    comparisons: pd.DataFrame
    agreement: pd.DataFrame
    disagreements: pd.DataFrame

    @property
    def excluded(self) -> list[str]:
        """Listeners excluded by the post-screening."""
        return self.screening.loc[self.screening["excluded"].astype(bool), "listener"].tolist()

    def sentences(self) -> list[str]:
        """The paired comparisons as sentences; the pairing unit is the item."""
        said = sentences(self.comparisons, headlines=(LISTENING,))
        return [s.replace(" tracks", " items").replace("tracks to call", "items to call")
                for s in said]  # fmt: skip

    def write(self, folder: BatchFolder) -> list[Path]:
        """Write every table as ``tables/listening_<name>.csv``."""
        return [folder.write_table(f"listening_{n}", getattr(self, n), parquet=False)
                for n in TABLES]  # fmt: skip

    @classmethod
    def read(cls, folder: BatchFolder) -> ListeningAnalysis | None:
        """The tables written by :meth:`write`, or None when no test was analysed."""
        if not (folder.tables_dir / "listening_screening.csv").is_file():
            return None
        tables = {n: folder.read_batch_table(f"listening_{n}") for n in TABLES}
        tables["screening"]["reason"] = tables["screening"]["reason"].fillna("")
        return cls(**tables)


def analyze_listening(
    folder: str | Path | BatchFolder,
    results: Sequence[str | Path] = (),
    *,
    seed: int = 0,
) -> ListeningAnalysis:
    """Screen and analyse the results of the batch's listening test; write the tables.

    Parameters
    ----------
    folder : path or BatchFolder
        The batch folder of the designed test.
    results : sequence of path
        Results files (tidy CSV/JSON or webMUSHRA CSV); once they are read and match the
        test, each is copied to ``listening/results/``. Default: every file already there.
    seed : int
        Seed of the bootstrap intervals.

    Returns
    -------
    ListeningAnalysis

    Raises
    ------
    StemkitError
        No results, results of another design, or no listener left after screening.
    """
    folder = folder if isinstance(folder, BatchFolder) else BatchFolder(folder)
    design = Design.load(folder)
    store = folder.listening_results_dir
    if not results:
        results = sorted(p for p in store.glob("*") if p.suffix.lower() in (".csv", ".json"))
    if not results:
        raise StemkitError(
            f"no results for the listening test of {folder.root}",
            step="listen analyze",
            hint="pass the saved results files: stemkit listen analyze BATCH FILE...",
        )
    ratings = unblind(read_results(results, design.key), design.key)
    store.mkdir(parents=True, exist_ok=True)
    for src in results:  # kept with the batch once they are known to belong to this test
        if Path(src).resolve().parent != store.resolve():
            shutil.copy2(src, store / Path(src).name)
    screening = screen(ratings)
    out = set(screening.loc[screening["excluded"], "listener"])
    ratings["kept"] = ~ratings["listener"].isin(out)
    kept = ratings[ratings["kept"]]
    if kept.empty:
        raise StemkitError(
            f"every listener failed the post-screening ({', '.join(sorted(out))})",
            step="listen analyze",
            hint="see tables/listening_screening.csv; the test needs listeners who find the "
            "hidden reference",
        )
    providers = [p for p in folder.providers if p in set(kept["condition"])]
    per_item = _item_means(kept[kept["condition"].isin(providers)])
    long = per_item.rename(columns={"item": "track_", "condition": "provider"}).assign(
        metric=LISTENING.metric, variant=LISTENING.variant
    )
    long = long.drop(columns="track").rename(columns={"track_": "track", "score": "value"})
    comparisons = paired_comparisons(long, providers, headlines=(LISTENING,), seed=seed)
    metrics = folder.read_all(
        "metrics", ["track", "provider", "stem", "metric", "variant", "value"]
    )
    agreement, disagreements = metric_agreement(kept, metrics)
    analysis = ListeningAnalysis(
        ratings, screening, condition_means(kept), comparisons, agreement, disagreements
    )
    analysis.write(folder)
    return analysis


def listening_section(folder: str | Path | BatchFolder) -> list:
    """The report's "Listening test" section, as objects to ``display``; empty without results.

    Examples
    --------
    >>> listening_section("/nonexistent")
    []
    """
    from IPython.display import Markdown

    folder = folder if isinstance(folder, BatchFolder) else BatchFolder(folder)
    a = ListeningAnalysis.read(folder)
    if a is None:
        return []
    n = len(a.screening)
    out: list = [
        Markdown(
            "## Listening test\n"
            "A blind MUSHRA test (ITU-R BS.1534-3) of loudness-matched excerpts: every "
            "provider's stem, the hidden reference, the reference low-passed at 3.5 and 7 kHz, "
            f"and the mixture. {n} listeners; {len(a.excluded)} excluded by the post-screening "
            "(hidden reference below 90, or the 7 kHz anchor above 90, on more than 15 % of "
            "their trials)" + (f": {', '.join(a.excluded)}." if a.excluded else ".")
        ),
        a.screening,
        Markdown("Mean score per stem and condition, kept listeners, 95 % CI (t)."),
        a.means.round(1),
    ]
    said = a.sentences()
    if said:
        out.append(Markdown("\n".join(f"- {s}" for s in said)))
    if not a.agreement.empty:
        out += [
            Markdown(
                "Do the metrics rank the stimuli as the listeners do? Kendall's τ and "
                "Spearman's ρ between each metric and the mean score, over items × providers "
                "(and the mixture)."
            ),
            a.agreement.round(3),
        ]
    if not a.disagreements.empty:
        out += [
            Markdown(
                "Where metrics and listeners disagree most (percentile ranks; gap > 0: the "
                "listeners liked it better than the metric did)."
            ),
            a.disagreements.round(3),
        ]
    return out
