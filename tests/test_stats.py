"""Statistics of a comparison: paired differences, bootstrap intervals, Wilcoxon, Holm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stemkit.compare.stats import COLUMNS, MIN_TRACKS, paired_comparisons, sentences


def scores(diffs: dict[str, np.ndarray], stem: str = "vocals", seed: int = 0) -> pd.DataFrame:
    """Tidy SDR rows: provider ``b`` at a random level per track, the others ``b + diff``."""
    n = len(next(iter(diffs.values())))
    base = np.random.default_rng(seed).normal(5.0, 2.0, n)
    rows = [
        {"track": f"t{i:02d}", "provider": p, "stem": stem, "metric": "sdr",
         "variant": "bsseval_v4", "value": v}
        for p, values in {"b": base, **{k: base + d for k, d in diffs.items()}}.items()
        for i, v in enumerate(values)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_a_real_difference_is_called_with_its_interval():
    rng = np.random.default_rng(1)
    diff = 2.0 + rng.normal(0, 0.5, 30)
    c = paired_comparisons(scores({"a": diff}), ["a", "b"])
    assert list(c.columns) == COLUMNS
    row = c.iloc[0]
    assert row.n_tracks == 30
    assert row.median_diff == pytest.approx(np.median(diff))
    assert row.ci_low < np.median(diff) < row.ci_high
    assert row.ci_low > 1.5 and row.ci_high < 2.5
    assert row.p_value == pytest.approx(stats.wilcoxon(diff).pvalue)
    text = sentences(c)[0]
    assert text.startswith("a beats b on vocals SDR by 2.")
    assert "30 tracks" in text


def test_no_difference_is_not_called():
    rng = np.random.default_rng(2)
    c = paired_comparisons(scores({"a": rng.normal(0, 1, 12)}), ["a", "b"])
    assert c.iloc[0].ci_low < 0 < c.iloc[0].ci_high
    assert sentences(c)[0].startswith("no clear difference between a and b")


def test_few_tracks_are_not_called_even_when_every_track_agrees():
    c = paired_comparisons(scores({"a": np.full(MIN_TRACKS - 1, 3.0)}), ["a", "b"])
    assert "too few tracks to call" in sentences(c)[0]


def test_holm_adjusts_over_every_pair_and_stem_of_a_metric():
    rng = np.random.default_rng(3)
    parts = [scores({"a": 0.8 + rng.normal(0, 1, 10)}, stem=s, seed=i) for i, s in
             enumerate(["vocals", "drums", "bass", "other"])]  # fmt: skip
    c = paired_comparisons(pd.concat(parts), ["a", "b"])
    order = np.argsort(c["p_value"].to_numpy())
    p = c["p_value"].to_numpy()[order]
    expected = np.minimum(1, np.maximum.accumulate(p * (len(p) - np.arange(len(p)))))
    np.testing.assert_allclose(c["p_holm"].to_numpy()[order], expected)
    assert (c["p_holm"] >= c["p_value"]).all()


def test_wer_is_better_when_lower():
    intel = pd.DataFrame(
        [{"track": f"t{i}", "source": src, "stem": "dialogue", "wer": w}
         for i in range(8) for src, w in (("a", 0.10 + 0.01 * i), ("b", 0.30 + 0.01 * i))]
    )  # fmt: skip
    empty = pd.DataFrame(columns=["track", "provider", "stem", "metric", "variant", "value"])
    c = paired_comparisons(empty, ["a", "b"], intelligibility=intel)
    assert c.iloc[0].metric == "wer" and c.iloc[0].median_diff == pytest.approx(-0.2)
    assert sentences(c)[0].startswith("a beats b on dialogue WER by 0.200")


def test_the_bootstrap_is_reproducible():
    diff = np.random.default_rng(4).normal(1, 1, 15)
    a = paired_comparisons(scores({"a": diff}), ["a", "b"])
    b = paired_comparisons(scores({"a": diff}), ["a", "b"])
    pd.testing.assert_frame_equal(a, b)
