"""The SiSEC bracket's oracle streams from the files: its memory does not grow with the track."""

from __future__ import annotations

import tracemalloc

import numpy as np

from stemkit.analyze.bracket import oracle_irm, oracle_irm_files
from stemkit.audio import ArraySource, load_audio, write_float

SR = 8000


def _track(tmp_path, seconds: float):
    rng = np.random.default_rng(1)
    n = int(seconds * SR)
    refs = {k: (0.1 * rng.standard_normal((2, n))).astype(np.float32) for k in ("a", "b")}
    files = {k: [write_float(tmp_path / f"{k}-{seconds:g}.wav", y, SR)] for k, y in refs.items()}
    return refs["a"] + refs["b"], refs, files


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_oracle_from_files_runs_in_flat_memory(tmp_path):
    peaks, whole = {}, {}
    for seconds in (60.0, 240.0):
        mix, refs, files = _track(tmp_path, seconds)
        out = tmp_path / f"oracle-{seconds:g}"
        peaks[seconds] = _peak(lambda: oracle_irm_files(mix, files, SR, out))  # noqa: B023
        whole[seconds] = _peak(lambda: oracle_irm(mix, refs, SR))  # noqa: B023
    # the same estimates as the whole-array oracle
    est = load_audio(out / "a.wav")[0]
    np.testing.assert_allclose(est, oracle_irm(mix, refs, SR)["a"], atol=1e-6)
    # 4x the track: the whole-array oracle holds 3 more tracks' worth (its outputs, the
    # a copy of the mixture: ~2 x 11.5 MB here); the streamed one a few segments whatever
    # the length
    track_bytes = mix.nbytes * 3 / 4  # what 180 s more of one stereo float32 signal takes
    assert whole[240.0] - whole[60.0] > 1.5 * track_bytes, whole
    assert peaks[240.0] - peaks[60.0] < 0.1 * track_bytes, peaks


def test_true_peak_holds_a_chunk_not_the_track():
    """The true-peak meter (every stem's ``true_peak_dbtp``) works a chunk at a time: its
    working memory does not grow with the signal (it held ~3 signals' worth before)."""
    from stemkit.analyze.qa import true_peak

    rng = np.random.default_rng(2)
    peaks = {}
    for n in (1 << 20, 1 << 22):
        x = (0.3 * rng.standard_normal((2, n))).astype(np.float32)
        peaks[n] = _peak(lambda: true_peak(x))  # noqa: B023
    grown = peaks[1 << 22] - peaks[1 << 20]
    assert grown < 0.1 * x.nbytes, peaks  # x: the long signal, 32 MB


def test_dsp_baseline_streams_its_stems_to_files(tmp_path, monkeypatch):
    """The bracket's DSP baseline goes to its files block by block (engine.separate_blocks):
    the same samples as the whole-array engine; what grows with the track is the engine's
    whole-track analysis grid (REPET-SIM compares every frame with every other), not stems."""
    from stemkit.analyze.bracket import estimates
    from stemkit.dsp import engine

    # one REPET-SIM thread: the analysis grid's peak then does not depend on thread timing
    monkeypatch.setattr(engine, "_WORKERS", 1)
    names = ["vocals", "drums", "bass", "other"]
    peaks: dict[str, dict[float, int]] = {"streamed": {}, "whole": {}, "analysis": {}}
    for seconds in (20.0, 60.0, 240.0):  # the first one warms the caches up, not measured
        mix, _, files = _track(tmp_path, seconds)
        parts = {k: files["a" if k == "vocals" else "b"] for k in names}  # not a partition
        mixture_path = write_float(tmp_path / f"mix-{seconds:g}.wav", mix, SR)
        work = tmp_path / f"work-{seconds:g}"

        def streamed(work=work, parts=parts, mix=mix, mixture_path=mixture_path):
            source = ArraySource(mix, SR)  # the mixture the test holds anyway: no copy
            return estimates(work, source, mixture_path, parts, [["vocals", "accompaniment"]])

        grid = engine._Grid.for_rate(SR)
        peaks["streamed"][seconds] = _peak(streamed)
        peaks["whole"][seconds] = _peak(lambda: engine.separate(mix, SR, names))  # noqa: B023
        peaks["analysis"][seconds] = _peak(
            lambda: engine._analysis_masks(mix.mean(axis=0), grid)  # noqa: B023
        )
    out = streamed()
    assert set(out) == {"baseline", "mixture"}  # no oracle: the references are no partition
    expected = engine.separate(mix, SR, names)
    for stem in names:
        assert np.array_equal(load_audio(out["baseline"][stem])[0], expected[stem]), stem
    grown = {k: v[240.0] - v[60.0] for k, v in peaks.items()}
    track_bytes = mix.nbytes * 3 / 4  # 180 s more of the stereo float32 mixture
    # the whole-array engine holds its 4 stems, 3 atoms and their accumulators: ~7 tracks
    assert grown["whole"] > 5 * track_bytes, peaks
    # streamed: the analysis grid and nothing else that grows (a few segments of slack)
    assert grown["streamed"] < grown["analysis"] + 0.1 * track_bytes, peaks
    assert grown["streamed"] < 0.5 * grown["whole"], peaks
