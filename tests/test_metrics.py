"""separation_metrics: museval's numbers whatever the order of the sources, even with a
centre-panned (identical-channel) reference, the case that made G singular."""

from __future__ import annotations

import numpy as np
import pytest

from stemkit.analyze.bsseval import museval_metrics
from stemkit.analyze.metrics import separation_metrics


def test_centre_panned_reference_in_any_position_matches_museval():
    rng = np.random.default_rng(4)
    sr, n = 8000, 3 * 8000
    voice = rng.standard_normal(n).astype(np.float32)
    refs = {
        "accompaniment": rng.standard_normal((2, n)).astype(np.float32),
        "vocals": np.stack([voice, voice]),
    }  # identical channels, listed second
    mix = refs["accompaniment"] + refs["vocals"]
    ests = {
        "accompaniment": 0.7 * refs["accompaniment"] + 0.3 * mix,
        "vocals": mix - (0.7 * refs["accompaniment"] + 0.3 * mix),
    }
    ours = separation_metrics(refs, ests, sr)
    order = ["vocals", "accompaniment"]
    out = museval_metrics().bss_eval(
        np.stack([refs[s].T for s in order]),
        np.stack([ests[s].T for s in order]),
        window=sr,
        hop=sr,
        compute_permutation=False,
        filters_len=512,
        framewise_filters=False,
        bsseval_sources_version=False,
    )
    for i, stem in enumerate(order):
        for k, metric in enumerate(("sdr", "isr", "sir", "sar")):
            assert ours[stem][(metric, "bsseval_v4")] == pytest.approx(
                float(np.nanmedian(out[k][i])), abs=0.01
            ), (stem, metric)


def _fixture(seconds: float = 4.0, sr: int = 8000, seed: int = 7):
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    refs = rng.standard_normal((3, n, 2)).astype(np.float32)
    refs[1, :, 1] = refs[1, :, 0]  # a centre-panned source
    refs[2, :sr] = 0.0  # a silent first frame (1 s) in one source
    mix = refs.sum(axis=0)
    good = (0.8 * refs + 0.1 * mix + 0.05 * rng.standard_normal(refs.shape)).astype(np.float32)
    poor = (0.4 * refs + 0.3 * mix + 0.3 * rng.standard_normal(refs.shape)).astype(np.float32)
    return refs, {"good": good, "poor": poor}, sr


def test_many_sets_in_one_pass_equal_each_set_alone():
    from stemkit.analyze.bsseval import BSSEval, bss_eval_v4

    refs, sets, sr = _fixture()
    together = BSSEval(refs, window=sr, hop=sr, filters_len=64).evaluate(*sets.values())
    for (name, est), joint in zip(sets.items(), together, strict=True):
        alone = bss_eval_v4(refs, est, window=sr, hop=sr, filters_len=64)
        for metric in ("sdr", "isr", "sir", "sar"):
            np.testing.assert_allclose(
                getattr(joint, metric), getattr(alone, metric), atol=1e-9, err_msg=name
            )
        assert np.isnan(joint.sdr[2, 0]) and not np.isnan(joint.sdr[2, 1])  # silent frame


def test_global_metrics_from_the_pass_equal_the_array_functions():
    from stemkit.analyze.bsseval import ArraySignals, BSSEval
    from stemkit.analyze.metrics import global_metrics, sdr, si_sdr

    refs, sets, sr = _fixture()
    results = BSSEval(refs, window=sr, hop=sr, filters_len=64).evaluate(*sets.values())
    streamed = global_metrics(ArraySignals(refs), *(ArraySignals(e) for e in sets.values()))
    for est, result, stream in zip(sets.values(), results, streamed, strict=True):
        for j in range(len(refs)):
            assert result.nsdr[j] == pytest.approx(sdr(refs[j], est[j]), abs=1e-6)
            assert result.si_sdr[j] == pytest.approx(si_sdr(refs[j], est[j]), abs=1e-6)
            assert stream["nsdr"][j] == pytest.approx(sdr(refs[j], est[j]), abs=1e-9)
            assert stream["si_sdr"][j] == pytest.approx(si_sdr(refs[j], est[j]), abs=1e-9)


def test_scores_from_files_in_blocks_equal_scores_from_arrays(tmp_path):
    """StemFiles (what the analysis scores, in bounded memory) give the arrays' numbers,
    including a mono file copied to both channels and an accompaniment summed from parts."""
    import soundfile as sf

    from stemkit.analyze.bsseval import ArraySignals
    from stemkit.analyze.metrics import score
    from stemkit.audio import StemFiles

    refs, sets, sr = _fixture()
    paths = {}
    for name, arrays in {"ref": refs, **sets}.items():
        for j, y in enumerate(arrays):
            paths[name, j] = tmp_path / f"{name}{j}.wav"
            sf.write(paths[name, j], y, sr, subtype="FLOAT")
    mono = tmp_path / "mono.wav"
    sf.write(mono, refs[1, :, 0], sr, subtype="FLOAT")
    stems = ["a", "b", "c"]
    ref_sources = [[paths["ref", 0]], [mono], [paths["ref", 2]]]
    n = refs.shape[1]
    with StemFiles(ref_sources, n_samples=n, n_channels=2) as references:
        from_files = score(
            references,
            {
                k: StemFiles([[paths[k, j]] for j in range(3)], n_samples=n, n_channels=2)
                for k in sets
            },
            stems,
            sr,
        )
    from_arrays = score(
        ArraySignals(refs), {k: ArraySignals(v) for k, v in sets.items()}, stems, sr
    )
    for k in sets:
        for stem in stems:
            for key, value in from_arrays[k][stem].items():
                assert from_files[k][stem][key] == pytest.approx(value, abs=1e-9), (k, stem, key)
    parts = StemFiles([[paths["ref", 0], paths["ref", 2]]], n_samples=n + 5, n_channels=2)
    np.testing.assert_allclose(parts.read(n - 2, n + 5)[0, :2], (refs[0] + refs[2])[-2:])
    assert not parts.read(n - 2, n + 5)[0, 2:].any()  # zeros past the end of the files
