"""BSS Eval v4 (stemkit.analyze.bsseval) against museval's own implementation, on small fixtures.

Two kinds of material: noise-like multitracks, and rendered instruments (harmonic notes, some
panned centre so both channels hold the same samples, silent spans, very quiet sources, mono).
Every reference has some noise (breath, dither): where a reference is pure partials, or its
channels are proportional up to rounding, museval's ISR/SIR/SAR are rounding noise themselves
(see ``stemkit.analyze.bsseval``).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.signal

from stemkit.analyze import metrics
from stemkit.analyze.bsseval import VARIANTS, BSSResult, bss_eval_v4, museval_metrics, nsdr, si_sdr

SR = 8000  # low rate keeps museval quick; window = hop = 1 s as museval.evaluate
TOL_DB = 0.01
METRICS = ("sdr", "isr", "sir", "sar")


def multitrack(
    n_src: int, n_chan: int, seconds: float = 6.0, seed: int = 0, sr: int = SR
) -> np.ndarray:
    """References ``(n_src, n_samples, n_chan)``: tones with vibrato, band-passed noise, floor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = np.empty((n_src, n, n_chan))
    for s in range(n_src):
        f0 = 110 * 2 ** ((5 * s + rng.integers(0, 3)) / 12)
        phase = 2 * np.pi * f0 * np.cumsum(1 + 0.003 * np.sin(2 * np.pi * 5 * t)) / sr
        tone = sum(np.sin(k * phase) / k for k in range(1, 6))
        b, a = scipy.signal.butter(2, [80 * (s + 1), min(0.45 * sr, 1500 * (s + 1))], "band", fs=sr)
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * (0.4 + 0.15 * s) * t + s) ** 2
        for c in range(n_chan):
            noise = scipy.signal.lfilter(b, a, rng.standard_normal(n))
            voice = np.roll(tone, 3 * c * (s + 1)) * (0.6 + 0.4 * c / max(1, n_chan - 1))
            out[s, :, c] = envelope * (0.2 * voice + 0.3 * noise) + 1e-3 * rng.standard_normal(n)
    return out


def imperfect(refs: np.ndarray, seed: int = 1) -> np.ndarray:
    """Estimates: scaled reference, leakage of the others, a little noise."""
    rng = np.random.default_rng(seed)
    mix = refs.sum(axis=0)
    return (
        0.8 * refs
        + 0.15 * (mix - refs) / max(1, len(refs) - 1)
        + 0.02 * rng.normal(size=refs.shape)
    )


@pytest.fixture(scope="module")
def museval():
    """museval's metrics module; the parity tests skip, saying why, when it is not installed."""
    try:
        return museval_metrics()
    except ImportError as exc:
        pytest.skip(f"museval not installed (a test dependency of stemkit): {exc}")


def reference_v4(mm, refs: np.ndarray, ests: np.ndarray, **kw) -> dict[str, np.ndarray]:
    """museval's numbers with the settings of ``museval.evaluate(mode='v4')``."""
    kw = {"window": SR, "hop": SR, "filters_len": 512, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = mm.bss_eval(
            refs,
            ests,
            compute_permutation=False,
            framewise_filters=False,
            bsseval_sources_version=False,
            **kw,
        )
    return dict(zip(METRICS, out[:4], strict=True))


def assert_parity(mm, refs: np.ndarray, ests: np.ndarray, **kw) -> BSSResult:
    """Ours equals museval's within TOL_DB, with NaN and inf in the same places."""
    ours = bss_eval_v4(refs, ests, **{"window": SR, "hop": SR, **kw})
    theirs = reference_v4(mm, refs, ests, **kw)
    for m in METRICS:
        a, b = getattr(ours, m), theirs[m]
        assert a.shape == b.shape, m
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=m)
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b), err_msg=m)
        finite = np.isfinite(b)
        assert np.max(np.abs(a[finite] - b[finite]), initial=0.0) < TOL_DB, m
    return ours


# --- parity with museval ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_src", "n_chan", "taps"),
    # 512 taps as museval.evaluate; 4 stereo sources x 512 taps (museval factorises a
    # 4096 x 4096 matrix 4 times, ~10 s on a busy 2-core machine) is left to bench/metrics.py
    [(2, 1, 512), (4, 1, 512), (2, 2, 512), (4, 2, 256)],
)
def test_parity_mono_stereo_two_four_sources(museval, n_src, n_chan, taps):
    refs = multitrack(n_src, n_chan, seconds=4.0, seed=n_src + n_chan)
    res = assert_parity(museval, refs, imperfect(refs), filters_len=taps)
    assert res.sdr.shape == (n_src, 4)
    assert np.all(np.isfinite(res.sdr))


def test_parity_unequal_panning_one_source_hard_left(museval):
    refs = multitrack(2, 2, seconds=4.0, seed=7)
    refs[0, :, 1] = 0.0  # source 0 only in the left channel
    refs[1, :, 0] *= 0.2  # source 1 mostly right
    ests = imperfect(refs)
    ests[0, :, 1] = 0.01 * np.random.default_rng(3).standard_normal(ests.shape[1])
    assert_parity(museval, refs, ests, filters_len=256)


def test_parity_centre_panned_mono_source(museval):
    refs = multitrack(2, 2, seconds=4.0, seed=12)
    refs[1, :, 1] = refs[1, :, 0]  # L == R exactly: G is singular, the same way in both
    assert_parity(museval, refs, imperfect(refs), filters_len=256)


@pytest.mark.parametrize("which", ["reference", "estimate"])
def test_parity_silent_frame_gives_nan_in_the_same_place(museval, which):
    refs = multitrack(2, 2, seconds=4.0, seed=11)
    ests = imperfect(refs)
    target = refs if which == "reference" else ests
    target[1, 2 * SR : 3 * SR] = 0.0  # source 1 silent throughout frame 2
    res = assert_parity(museval, refs, ests, filters_len=256)  # short filters: a quicker test
    assert np.all(np.isnan(res.sdr[:, 2]))  # museval: NaN for every source in that frame
    assert np.all(np.isfinite(np.delete(res.sdr, 2, axis=1)))
    assert np.all(np.isfinite(res.medians()["sdr"]))


def test_parity_filtered_delayed_estimate(museval):
    refs = multitrack(2, 2, seconds=4.0, seed=5)
    b, a = scipy.signal.butter(4, 1800, fs=SR)  # IIR: not exactly 512 taps
    delayed = np.roll(refs, 37, axis=1)
    delayed[:, :37] = 0.0
    ests = scipy.signal.lfilter(b, a, delayed, axis=1)
    ests += 1e-3 * np.random.default_rng(2).standard_normal(ests.shape)
    res = assert_parity(museval, refs, ests, filters_len=256)
    # the filter is distortion, not artefact: ISR is poor but SAR stays high
    assert np.median(res.sar) > np.median(res.isr) + 10


def test_parity_noise_estimate(museval):
    refs = multitrack(2, 1, seconds=4.0, seed=9)
    ests = np.random.default_rng(4).standard_normal(refs.shape)
    res = assert_parity(museval, refs, ests)
    assert np.all(res.sdr < -10)


def test_parity_overlapping_windows_and_single_window(museval):
    refs = multitrack(2, 1, seconds=5.0, seed=3)
    ests = imperfect(refs)
    res = assert_parity(museval, refs, ests, window=2 * SR, hop=SR // 2, filters_len=64)
    assert res.sdr.shape == (2, 7)
    whole = assert_parity(museval, refs, ests, window=10 * SR, hop=10 * SR, filters_len=64)
    assert whole.sdr.shape == (2, 1)


def test_parity_single_source_has_infinite_sir(museval):
    refs = multitrack(1, 2, seconds=3.0, seed=8)
    res = assert_parity(museval, refs, imperfect(refs))
    assert np.all(np.isposinf(res.sir))


# --- parity on rendered instruments (identical channels, silence, quiet sources) ------------


def instrument(n: int, f0: float, seed: int, sr: int = SR) -> np.ndarray:
    """A rendered mono instrument: half-second notes of nine decaying partials with vibrato, a
    bow/breath noise under each note, and a -100 dB dither floor (no reference is pure
    partials: museval's own numbers are undefined there, see ``stemkit.analyze.bsseval``)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n)
    note = sr // 2
    b, a = scipy.signal.butter(2, [300, 2500], "band", fs=sr)
    for start in range(0, n, note):
        f = f0 * 2 ** (rng.integers(0, 7) / 12)
        m = min(note, n - start)
        t = np.arange(m) / sr
        env = np.minimum(t / 0.01, 1.0) * np.exp(-3 * t)
        phase = 2 * np.pi * f * np.cumsum(1 + 0.004 * np.sin(2 * np.pi * 5.5 * t)) / sr
        partials = sum(np.sin(k * phase) / k**1.5 for k in range(1, 10) if k * f < 0.45 * sr)
        breath = 0.02 * scipy.signal.lfilter(b, a, rng.standard_normal(m))
        out[start : start + m] = env * (partials + breath)
    return 0.3 * out + 1e-5 * rng.standard_normal(n)


def rendered(
    n_src: int, *, centre=(), n_chan: int = 2, seconds: float = 5.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """References (sources in ``centre`` panned centre: both channels the same samples, the
    others panned left with a delayed quieter right) and estimates with leakage and noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    refs = np.zeros((n_src, n, n_chan))
    for s in range(n_src):
        x = instrument(n, 110 * 2 ** (5 * s / 12), seed + s)
        if n_chan == 1:
            refs[s, :, 0] = x
        elif s in centre:
            refs[s] = x[:, None]
        else:
            refs[s, :, 0] = 0.7 * x
            refs[s, :, 1] = 0.4 * np.roll(x, 5) + 1e-5 * rng.standard_normal(n)
    return refs, estimates_of(refs, rng)


def estimates_of(refs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mix = refs.sum(axis=0)
    return 0.8 * refs + 0.1 * (mix - refs) + 0.01 * rng.standard_normal(refs.shape)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_parity_centre_panned_instrument_at_any_source_position(museval, position):
    # the 1e-9 ridge once used for this singular G was off by up to 1 dB on SIR/SAR here
    refs, ests = rendered(3, centre={position}, seed=position)
    assert np.array_equal(refs[position, :, 0], refs[position, :, 1])
    assert_parity(museval, refs, ests, filters_len=256 if position else 512)


def test_parity_two_centre_panned_sources_and_a_silent_two_seconds(museval):
    refs, _ = rendered(3, centre={0, 2}, seed=4)
    refs[2, SR : 3 * SR] = 0.0  # the centre-panned source rests for 2 s: frames 1 and 2
    ests = estimates_of(refs, np.random.default_rng(5))
    res = assert_parity(museval, refs, ests, filters_len=256)
    assert np.all(np.isnan(res.sdr[:, 1:3])) and np.all(np.isfinite(res.sdr[:, [0, 3, 4]]))


def test_parity_very_quiet_sources(museval):
    refs, _ = rendered(3, centre={1}, seed=6)
    refs[1] *= 1e-4  # -80 dB: museval's eps is no longer negligible against this G
    refs[2] *= 1e-3
    ests = estimates_of(refs, np.random.default_rng(7))
    ests[1] = 0.8 * refs[1] + 1e-6 * np.random.default_rng(8).standard_normal(refs[1].shape)
    assert_parity(museval, refs, ests, filters_len=256)


def test_parity_mono_instruments_with_silence(museval):
    refs, _ = rendered(3, n_chan=1, seed=9)
    refs[0, 2 * SR : 4 * SR] = 0.0
    ests = estimates_of(refs, np.random.default_rng(10))
    res = assert_parity(museval, refs, ests)
    assert np.isnan(res.sar[:, 2:4]).all()


def test_parity_exactly_zero_estimates(museval):
    refs, ests = rendered(2, centre={0}, seed=11)
    ests[0, 3 * SR :] = 0.0  # the estimate stops: NaN in frames 3 and 4, for every source
    res = assert_parity(museval, refs, ests, filters_len=256)
    assert np.isnan(res.sdr[:, 3:]).all() and np.isfinite(res.sdr[:, :3]).all()
    ests[1] = 0.0  # an estimate that is zero throughout: both refuse it
    with pytest.raises(ValueError):
        reference_v4(museval, refs, ests, filters_len=32)
    with pytest.raises(ValueError, match="estimate source"):
        bss_eval_v4(refs, ests, window=SR, hop=SR, filters_len=32)


# --- behaviour -------------------------------------------------------------------------------


def test_float32_input_and_length_mismatch():
    refs = multitrack(2, 2, seconds=3.0, seed=1)
    ests = imperfect(refs)
    kw = {"window": SR, "hop": SR, "filters_len": 64}
    exact = bss_eval_v4(refs.astype(np.float32), ests.astype(np.float32), **kw)
    longer = np.concatenate([ests, np.ones((2, 100, 2))], axis=1).astype(np.float32)
    cut = bss_eval_v4(refs.astype(np.float32), longer, **kw)  # truncated, as museval.evaluate
    np.testing.assert_array_equal(exact.sdr, cut.sdr)
    shorter = bss_eval_v4(refs, ests[:, :-10], **kw)  # zero-padded
    assert shorter.sdr.shape == exact.sdr.shape
    f64 = bss_eval_v4(refs.astype(np.float32).astype(np.float64), ests.astype(np.float32), **kw)
    np.testing.assert_allclose(f64.sdr, exact.sdr, atol=1e-9)


def test_layouts_and_errors():
    refs = multitrack(2, 1, seconds=2.0)
    ests = imperfect(refs)
    two_d = bss_eval_v4(refs[..., 0], ests[..., 0], window=SR, hop=SR, filters_len=32)
    three_d = bss_eval_v4(refs, ests, window=SR, hop=SR, filters_len=32)
    np.testing.assert_array_equal(two_d.sar, three_d.sar)
    with pytest.raises(ValueError, match="sources or channels"):
        bss_eval_v4(refs, ests[:1])
    silent = ests.copy()
    silent[1] = 0.0
    with pytest.raises(ValueError, match="estimate source"):
        bss_eval_v4(refs, silent)
    with pytest.raises(ValueError, match="positive"):
        bss_eval_v4(refs, ests, hop=0)


def test_medians_are_nanmedians_and_all_nan_is_quiet():
    sdr = np.array([[1.0, np.nan, 5.0, 2.0], [np.nan] * 4])
    res = BSSResult(sdr, sdr, sdr, sdr, window=1, hop=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        med = res.medians()
    assert set(med) == set(METRICS)
    assert med["sdr"][0] == 2.0 and np.isnan(med["sdr"][1])


def test_one_number_metrics_and_variant_names():
    rng = np.random.default_rng(0)
    s, e = rng.standard_normal((500, 2)), rng.standard_normal((500, 2))
    assert si_sdr(s, s + e) == metrics.si_sdr(s, s + e)
    assert nsdr(s, s + e) == metrics.sdr(s, s + e)
    # v4 framewise numbers never share a variant name with the one-number metrics
    assert {VARIANTS[m] for m in METRICS} == {"bsseval_v4"}
    assert VARIANTS["nsdr"] != "bsseval_v4" and VARIANTS["si_sdr"] != "bsseval_v4"


def test_importable_and_usable_without_museval():
    code = (
        "import sys; sys.modules['museval'] = None\n"
        "import numpy as np\n"
        "from stemkit.analyze.bsseval import bss_eval_v4, museval_metrics\n"
        "x = np.random.default_rng(0).standard_normal((2, 4000, 1))\n"
        "r = bss_eval_v4(x, x + 0.1, window=2000, hop=2000, filters_len=16)\n"
        "assert r.sdr.shape == (2, 2)\n"
        "try:\n"
        "    museval_metrics()\n"
        "except ImportError:\n"
        "    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
