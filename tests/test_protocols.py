"""The two challenge protocols (SiSEC18, MDX'23) and the silence policy (PES / EPS)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stemkit.analyze import metrics
from stemkit.analyze.bsseval import ArraySignals, BSSEval, bss_eval_v4
from stemkit.analyze.protocols import (
    PROTOCOLS,
    SILENCE_EPS,
    challenge_summary,
    pes_eps,
    silence_metrics,
)
from stemkit.compare.report import BatchTables

SR = 4000


def mdx_sdr(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """The SDX'23 / MDX'21 evaluator's global SDR, written out: per source, δ = 1e-7."""
    delta = 1e-7
    num = np.sum(np.square(references), axis=(1, 2)) + delta
    den = np.sum(np.square(references - estimates), axis=(1, 2)) + delta
    return 10 * np.log10(num / den)


def tidy(values: dict[tuple[str, str, str, str, str], float]) -> pd.DataFrame:
    rows = [
        {"track": t, "provider": p, "stem": s, "metric": m, "variant": v, "value": x}
        for (t, p, s, m, v), x in values.items()
    ]
    return pd.DataFrame(rows)


def test_sisec_is_median_of_medians_and_mdx_is_mean_of_songs():
    values = {}
    for k, (sisec, mdx) in enumerate([(1.0, 2.0), (2.0, 4.0), (10.0, 30.0)]):
        values[(f"t{k}", "p", "vocals", "sdr", "bsseval_v4")] = sisec
        values[(f"t{k}", "p", "vocals", "nsdr", "global")] = mdx
        values[(f"t{k}", "p", "bass", "nsdr", "global")] = 0.0
        values[(f"t{k}", "p", "bass", "si_sdr", "scale-invariant")] = 99.0  # never read
    df = tidy(values)
    sisec = challenge_summary(df, "SiSEC18")
    mdx = challenge_summary(df, "MDX23")
    assert sisec.loc["p", "vocals"] == 2.0  # median over tracks, the outlier does not pull
    assert mdx.loc["p", "vocals"] == 12.0  # mean over songs
    assert mdx.loc["p", "mean"] == 6.0  # song score: mean over stems, then over songs
    assert "bass" not in sisec.columns  # no v4 rows for bass: nothing made up
    assert sisec.attrs["protocol"].startswith("SiSEC18") and "median" in sisec.attrs["protocol"]
    assert mdx.attrs["protocol"].startswith("MDX'23") and "mean" in mdx.attrs["protocol"]
    with pytest.raises(ValueError, match="unknown protocol"):
        challenge_summary(df, "SiSEC08")


def test_global_sdr_is_the_challenge_formula_including_silence():
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((3, 2 * SR, 2))
    ests = refs + 0.3 * rng.standard_normal(refs.shape)
    refs[1] = 0.0  # a silent reference with a non-silent estimate: very negative
    ests[2] = 0.0  # a silent estimate: 0 dB
    ours = np.array([metrics.sdr(r, e) for r, e in zip(refs, ests, strict=True)])
    np.testing.assert_allclose(ours, mdx_sdr(refs, ests), atol=1e-9)
    assert ours[1] < -80 and ours[2] == pytest.approx(0.0, abs=1e-9)
    joint = metrics.global_metrics(ArraySignals(refs), ArraySignals(ests))[0]["nsdr"]
    np.testing.assert_allclose(joint, mdx_sdr(refs, ests), atol=1e-6)


def test_global_sdr_from_the_bsseval_pass_is_the_challenge_formula():
    rng = np.random.default_rng(1)
    refs = rng.standard_normal((2, 3 * SR, 2))
    ests = 0.7 * refs + 0.2 * rng.standard_normal(refs.shape)
    res = bss_eval_v4(refs, ests, window=SR, hop=SR, filters_len=16)
    from stemkit.analyze.bsseval import BSSEval

    [full] = BSSEval(refs, window=SR, hop=SR, filters_len=16).evaluate(ests)
    np.testing.assert_allclose(full.nsdr, mdx_sdr(refs, ests), atol=1e-8)
    assert res.sdr.shape == (2, 3)


def test_pes_and_eps_where_bss_eval_says_nothing():
    rng = np.random.default_rng(2)
    refs = rng.standard_normal((2, 4 * SR, 1))
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    refs[0, SR : 2 * SR] = 0.0  # reference 0 silent in frame 1, the estimate leaks 0.1² there
    ests[1, 3 * SR :] = 0.0  # estimate 1 silent in frame 3: it drops that reference energy
    [m] = silence_metrics(ArraySignals(refs), ArraySignals(ests), window=SR, hop=SR, block=999)
    leak = np.sum(ests[0, SR : 2 * SR] ** 2)
    dropped = np.sum(refs[1, 3 * SR :] ** 2)
    assert m["pes"][0] == pytest.approx(10 * np.log10(leak + 1e-10))
    assert m["eps"][1] == pytest.approx(10 * np.log10(dropped + 1e-10))
    assert np.isnan(m["pes"][1]) and np.isnan(m["eps"][0])  # no such frame: NaN, not 0
    # BSS Eval: those frames are NaN for every source, as museval
    res = bss_eval_v4(refs, ests, window=SR, hop=SR, filters_len=32)
    assert np.isnan(res.sdr[:, [1, 3]]).all() and np.isfinite(res.sdr[:, [0, 2]]).all()


def test_a_silent_estimate_in_a_silent_reference_frame_scores_minus_100_db():
    refs = np.ones((1, 3 * SR, 2))
    refs[0, :SR] = 0.0
    ests = refs.copy()
    [m] = silence_metrics(ArraySignals(refs), ArraySignals(ests), window=SR, hop=SR)
    assert m["pes"][0] == pytest.approx(-100.0)  # ε = 1e-10: exact silence where it should be


def direct_pes_eps(refs: np.ndarray, ests: np.ndarray, window: int, hop: int) -> dict:
    """PES and EPS written out on whole arrays, frame by frame."""
    starts = np.arange(0, refs.shape[1] - window + 1, hop)

    def frames(x):
        cut = [x[:, t : t + window] for t in starts]
        energy = np.stack([np.sum(f**2, axis=(1, 2)) for f in cut], axis=1)
        silent = np.stack([~np.any(f.sum(axis=2) != 0, axis=1) for f in cut], axis=1)
        return silent, energy

    def mean_db(energy, where):
        db = np.where(where, 10 * np.log10(energy + SILENCE_EPS), 0.0).sum(axis=1)
        count = where.sum(axis=1)
        return np.where(count > 0, db / np.maximum(count, 1), np.nan)

    (ref_silent, ref_energy), (est_silent, est_energy) = frames(refs), frames(ests)
    return {"pes": mean_db(est_energy, ref_silent), "eps": mean_db(ref_energy, est_silent)}


@pytest.mark.parametrize("window,hop", [(SR, SR), (2 * SR, SR)])
def test_pes_eps_of_the_bss_eval_pass_are_the_silence_metrics(window, hop):
    # the scorer gathers the frame statistics on its own pass (no second read of the files):
    # the same numbers as silence_metrics' own pass and as the frames written out, for frames
    # side by side and overlapping, with blocks that do not line up with the frames
    rng = np.random.default_rng(5)
    refs = rng.standard_normal((3, 8 * SR + 123, 2))
    refs[0, : 3 * SR] = 0.0  # reference 0 silent in frames 0-2 (overlapping: 0-1)
    refs[2, 5 * SR : 7 * SR] = 0.0
    ests = refs + 0.1 * rng.standard_normal(refs.shape)
    ests[0, : 3 * SR] *= 1e-4  # a faint leak where reference 0 is silent
    ests[1, 3 * SR : 6 * SR] = 0.0  # estimate 1 drops three frames of its reference
    scorer = BSSEval(ArraySignals(refs), window=window, hop=hop, filters_len=64)
    [result] = scorer.evaluate(ArraySignals(ests))
    from_bss = pes_eps(scorer.reference_frames, result.frames)
    [own] = silence_metrics(
        ArraySignals(refs), ArraySignals(ests), window=window, hop=hop, block=777
    )
    expected = direct_pes_eps(refs, ests, window, hop)
    for key, sources in (("pes", [0, 2]), ("eps", [1])):  # where such frames were made
        assert np.flatnonzero(np.isfinite(expected[key])).tolist() == sources
        np.testing.assert_allclose(from_bss[key], expected[key], rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(own[key], expected[key], rtol=1e-12, equal_nan=True)


def test_score_has_pes_eps_for_every_set_even_one_bss_eval_refuses():
    rng = np.random.default_rng(3)
    refs = rng.standard_normal((2, 3 * SR, 2))
    refs[1, :SR] = 0.0
    good = refs + 0.1 * rng.standard_normal(refs.shape)
    silent = good.copy()
    silent[0] = 0.0  # a whole stem silent: museval refuses the set
    sets = {"good": ArraySignals(good), "silent": ArraySignals(silent)}
    out = metrics.score(ArraySignals(refs), sets, ["a", "b"], SR)
    assert ("sdr", "bsseval_v4") in out["good"]["a"]
    assert ("sdr", "bsseval_v4") not in out["silent"]["a"]  # absent, never zero
    assert out["silent"]["a"][("eps", "silence")] == pytest.approx(
        np.mean([10 * np.log10(np.sum(refs[0, k * SR : (k + 1) * SR] ** 2)) for k in range(3)])
    )
    noise = np.sum(good[1, :SR] ** 2)  # the 0.1 noise where b is silent
    assert out["good"]["b"][("pes", "silence")] == pytest.approx(10 * np.log10(noise))
    assert ("pes", "silence") not in out["good"]["a"]  # no silent frame: no row
    assert out["silent"]["a"][("nsdr", "global")] == pytest.approx(0.0, abs=1e-6)


def test_report_summary_shows_both_protocols_each_labelled():
    values = {}
    for t, (v4, glob) in {"t1": (3.0, 4.0), "t2": (5.0, 8.0)}.items():
        for provider, shift in (("acme", 0.0), ("mixture", -6.0), ("oracle", 6.0)):
            values[(t, provider, "vocals", "sdr", "bsseval_v4")] = v4 + shift
            values[(t, provider, "vocals", "nsdr", "global")] = glob + shift
            values[(t, provider, "vocals", "pes", "silence")] = -40.0 + shift
    empty = pd.DataFrame()
    b = BatchTables(
        folder=None,
        info={"providers": ["acme"]},
        jobs=empty,
        metrics=tidy(values),
        timeline=empty,
        timing=empty,
        intelligibility=empty,
        verdicts=empty,
    )
    tables = b.protocol_summaries()
    assert list(tables) == [PROTOCOLS["SiSEC18"].label, PROTOCOLS["MDX23"].label]
    sisec, mdx = tables.values()
    assert sisec.index.tolist() == ["oracle", "acme", "mixture"]
    assert sisec.loc["acme", "vocals"] == 4.0 and mdx.loc["acme", "vocals"] == 6.0
    assert b.summary.equals(sisec)
    assert b.silence_summary.loc["acme", ("pes", "vocals")] == -40.0
