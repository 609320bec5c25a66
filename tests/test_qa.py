"""Reference-free QA: deliberately broken stems are flagged, clean ones pass; oracle IRM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyloudnorm
import pytest
from scipy import signal

from stemkit.analyze.bracket import oracle_irm
from stemkit.analyze.metrics import sdr
from stemkit.analyze.qa import (
    integrated_loudness,
    job_checks,
    load_profile,
    stem_checks,
    summary_verdicts,
    true_peak,
    verdicts,
)
from stemkit.analyze.qa.meters import ITU_TRUE_PEAK_PHASES

from .conftest import music

SR = 22050


@pytest.fixture(scope="module")
def track() -> dict[str, np.ndarray]:
    """music() at 0.6 gain: no clean stem near full scale, and vocals x8 do clip."""
    return {name: 0.6 * y for name, y in music(seconds=4.0, sr=SR).items()}


def judged(track: dict[str, np.ndarray], stems: dict, profile: dict | None = None, **kw):
    rows = pd.DataFrame(stem_checks(track["mixture"], stems, SR, **kw))
    return verdicts(rows, profile or load_profile())


def clean(track: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in track.items() if k != "mixture"}


def delayed(y: np.ndarray, seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    return np.concatenate([np.zeros((y.shape[0], n), y.dtype), y[:, :-n]], axis=1)


def test_clean_stems_pass_every_check(track):
    v = judged(track, clean(track))
    assert set(v["verdict"]) <= {"pass", "n/a"}, v[v["verdict"] != "pass"]
    assert v.query("check == 'recon_db'")["value"].item() < -100
    # n/a only where a value is undefined: the swap of a mono stem
    assert set(v[v["verdict"] == "n/a"]["check"]) == {"channel_swap"}
    offsets = v.query("check == 'offset_ms'")["value"]
    assert (offsets == 0).all()


BROKEN = {
    # case: (stem, how to break it, the check that must fail, extra stem_checks arguments)
    "clipped": ("vocals", lambda y: np.clip(8 * y, -1, 1), "clip_pct", {}),
    "silent": ("bass", np.zeros_like, "silent", {}),
    "shifted 100 ms": ("vocals", lambda y: delayed(y, 0.1), "offset_ms", {}),
    "shifted drums": ("drums", lambda y: delayed(y, 0.1), "offset_ms", {}),
    "polarity-inverted": ("vocals", lambda y: -y, "polarity", {}),
    "one channel inverted": ("drums", lambda y: y * np.array([[1], [-1]], y.dtype), "polarity", {}),
    "wrong length": ("bass", lambda y: y[:, : -SR // 2], "duration_diff_s", {}),
    "left/right swapped": ("drums", lambda y: y[::-1].copy(), "channel_swap", {}),
    "DC offset": ("other", lambda y: y + 0.05, "dc_offset", {}),
    "mono": ("vocals", lambda y: y[:1], "channels_match", {}),
    "wrong sample rate": (
        "bass",
        lambda y: signal.resample_poly(y, 2, 1, axis=-1).astype(np.float32),
        "sample_rate_match",
        {"stem_sr": {"bass": 2 * SR}},
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_stem_fails_and_the_others_pass(track, case):
    stem, breaker, check, kwargs = BROKEN[case]
    stems = clean(track)
    stems[stem] = breaker(stems[stem])
    v = judged(track, stems, **kwargs)
    row = v[(v["stem"] == stem) & (v["check"] == check)]
    assert row["verdict"].item() == "fail", row
    others = v[~v["stem"].isin([stem, "(all)"])]
    assert set(others["verdict"]) <= {"pass", "n/a"}, others[others["verdict"] != "pass"]


def test_shift_is_measured_and_does_not_look_like_inversion(track):
    stems = clean(track)
    stems["vocals"] = delayed(stems["vocals"], 0.1)
    v = judged(track, stems)
    failed = summary_verdicts(v).set_index("stem").loc["vocals", "failed"]
    assert failed.startswith("offset_ms 100 ms, |value| > 20 ms (stem late")
    v = v.set_index(["stem", "check"])
    assert v.loc[("vocals", "offset_ms"), "value"] == pytest.approx(100.0, abs=0.5)
    assert v.loc[("vocals", "polarity"), "verdict"] == "pass"  # measured at the found lag
    early = clean(track)
    early["drums"] = np.roll(early["drums"], -int(0.05 * SR), axis=-1)
    v = judged(track, early).set_index(["stem", "check"])
    assert v.loc[("drums", "offset_ms"), "value"] == pytest.approx(-50.0, abs=0.5)


def test_inversion_is_not_a_swap_and_a_swap_is_not_an_inversion(track):
    for breaker, failing, passing in (
        (lambda y: -y, "polarity", "channel_swap"),
        (lambda y: y[::-1].copy(), "channel_swap", "polarity"),
    ):
        stems = clean(track)
        stems["drums"] = breaker(stems["drums"])
        drums = judged(track, stems).query("stem == 'drums'").set_index("check")["verdict"]
        assert (drums[failing], drums[passing], drums["offset_ms"]) == ("fail", "pass", "pass")


def test_resampled_stem_fails_the_rate_only(track):
    stems = clean(track)
    stems["bass"] = signal.resample_poly(stems["bass"], 2, 1, axis=-1).astype(np.float32)
    v = judged(track, stems, stem_sr={"bass": 2 * SR})
    bass = v[v["stem"] == "bass"].set_index("check")["verdict"]
    assert bass["sample_rate_match"] == "fail"
    assert bass["duration_diff_s"] == bass["offset_ms"] == bass["polarity"] == "pass"


def test_threads_give_the_same_rows(track):
    args = (track["mixture"], clean(track), SR)
    assert pd.DataFrame(stem_checks(*args, workers=3)).equals(pd.DataFrame(stem_checks(*args)))


def test_missing_stem_fails_reconstruction(track):
    stems = clean(track)
    del stems["vocals"]
    v = judged(track, stems)
    recon = v[v["check"] == "recon_db"]
    assert recon["stem"].item() == "(all)"
    assert recon["verdict"].item() == "fail"
    assert recon["value"].item() > -20


def test_input_info_is_the_reference_for_format_checks(track):
    info = {"duration": 4.0, "sample_rate": 44100, "channels": 2}
    v = judged(track, clean(track), input_info=info)
    assert set(v[v["check"] == "sample_rate_match"]["verdict"]) == {"fail"}
    assert set(v[v["check"] == "duration_diff_s"]["verdict"]) == {"pass"}


def test_override_profile_changes_a_verdict(track, tmp_path):
    stems = clean(track)
    stems["vocals"] = np.clip(8 * stems["vocals"], -1, 1)
    stems["bass"] = np.zeros_like(stems["bass"])
    override = tmp_path / "batch_qa.toml"
    override.write_text(
        "[checks.clip_pct]\nfail_above = 50.0\n\n[checks.silent.stems.bass]\nenabled = false\n"
    )
    default = judged(track, stems).set_index(["stem", "check"])["verdict"]
    custom = judged(track, stems, load_profile(override)).set_index(["stem", "check"])["verdict"]
    assert default[("vocals", "clip_pct")] == "fail"
    assert custom[("vocals", "clip_pct")] == "warn"  # warn_above kept from the default
    assert default[("bass", "silent")] == "fail"
    assert custom[("bass", "silent")] == "n/a"
    assert custom[("drums", "silent")] == "pass"  # the per-stem override touches bass only


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[checks.clip_pct]\nfail_abve = 1.0\n", "fail_abve"),
        ('[checks.clip_pct]\nfail_above = "1 %"\n', "must be a number"),
        ("[checks.silent.stems.vocals]\nenabled = 0\n", "true or false"),
        ('[checks.lufs]\nnan = "bad"\n', "nan must be one of"),
    ],
)
def test_profile_rejects_malformed_rules(tmp_path, text, match):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_profile(bad)


def test_job_checks_judged():
    rows = pd.DataFrame(job_checks({"processing": 400.0, "rtf": 2.2, "end to end": 420.0}))
    v = verdicts(rows, load_profile()).set_index("check")
    assert v.loc["rtf", "verdict"] == "fail"
    assert v.loc["processing_s", "verdict"] == "warn"
    assert v.loc["end_to_end_s", "verdict"] == "warn"
    missing = verdicts(pd.DataFrame(job_checks({"rtf": float("nan")})), load_profile())
    assert set(missing["verdict"]) == {"n/a"}


def test_job_checks_read_a_timing_summary_row():
    from stemkit.timing import summarize, timeline

    tl = timeline(
        [("Processing", "2020-07-21T14:51:15.846Z"), ("Finalising", "2020-07-21T14:52:06.007Z")],
        provider="s",
        track="t",
    )
    row = summarize(tl, {"t": 100.0}).iloc[0].to_dict()
    values = {r["check"]: r["value"] for r in job_checks(row)}
    assert values["processing_s"] == pytest.approx(50.161)
    assert values["rtf"] == pytest.approx(0.50161)


def test_summary_lists_failures_first_with_values(track):
    stems = clean(track)
    stems["vocals"] = -stems["vocals"]
    rows = pd.DataFrame(stem_checks(track["mixture"], stems, SR)).assign(
        provider="acme", track="alpha"
    )
    s = summary_verdicts(verdicts(rows, load_profile()))
    assert list(s.columns[:3]) == ["provider", "track", "stem"]
    assert list(s["verdict"][:2]) == ["fail", "fail"]
    assert set(s["stem"][:2]) == {"vocals", "(all)"}
    vocals = s[s["stem"] == "vocals"].iloc[0]
    assert vocals["failed"].startswith("polarity -0.")
    assert "< -0.02 corr" in vocals["failed"]
    assert set(s["verdict"][2:]) == {"pass"}


def test_oracle_irm_separates_and_sums_to_the_mixture(track):
    refs = {k: track[k] for k in ("vocals", "bass")}
    mix = refs["vocals"] + refs["bass"]
    est = oracle_irm(mix, refs, SR)
    for name, ref in refs.items():
        assert est[name].shape == ref.shape and est[name].dtype == np.float32
        assert sdr(ref, est[name]) > 10, name
    assert np.abs(sum(est.values()) - mix).max() < 1e-4
    four = oracle_irm(track["mixture"], clean(track), SR, power=1.0)
    assert np.abs(sum(four.values()) - track["mixture"]).max() < 1e-4


def test_oracle_irm_warns_when_references_do_not_partition(track):
    with pytest.warns(UserWarning, match="partition"):
        oracle_irm(track["mixture"], {"vocals": track["vocals"]}, SR)


def _brute_true_peak(x: np.ndarray) -> float:
    x = np.atleast_2d(x).astype(np.float64)
    phases = [np.abs(np.convolve(ch, h)).max() for ch in x for h in ITU_TRUE_PEAK_PHASES]
    return max(np.abs(x).max(), *phases)


@pytest.mark.parametrize(
    "x",
    [
        np.clip(3 * np.random.default_rng(0).standard_normal((2, 20000)), -1, 1),
        np.r_[np.sin(np.arange(5000) * 0.05), -np.sin(np.arange(5000) * 0.07)][None],
        np.r_[np.full(3000, 0.1), 1.0][None],
        np.array([[0.5, -0.9, 0.2]]),
        0.6 * music(seconds=1.0, sr=SR)["mixture"],
    ],
    ids=["clipped-noise", "phase-jump", "step-at-end", "three-samples", "music"],
)
def test_true_peak_equals_full_oversampling(x):
    assert true_peak(x) == pytest.approx(_brute_true_peak(x), rel=1e-5)


def test_loudness_matches_pyloudnorm(track):
    for sr, y in ((SR, track["mixture"]), (48000, track["drums"])):
        expected = pyloudnorm.Meter(sr).integrated_loudness(y.T.astype(np.float64))
        assert integrated_loudness(y, sr) == pytest.approx(expected, abs=0.01)
    assert np.isnan(integrated_loudness(np.zeros((2, SR), np.float32), SR))
    short = integrated_loudness(track["vocals"][:, : SR // 5], SR)  # 200 ms: one block
    assert -40 < short < 0
