"""The QA checks stream: the rows of a track read block by block from its files are those of
the whole arrays, for any block size, and their memory does not grow with the track."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stemkit.analyze.qa import StemAudio, check_stems, stem_checks, true_peak
from stemkit.analyze.qa.meters import LoudnessMeter, TruePeakMeter, integrated_loudness
from stemkit.analyze.qa.spectral import ClipCounter, Dropouts, clipped_samples, longest_dropout
from stemkit.audio import ArraySource, FileSource, write_float

from .test_bracket_memory import _peak
from .test_qa import SR, clean, delayed, music

BLOCK = 5000  # samples: not a multiple of the 100 ms segments, the pooling or the frames


@pytest.fixture(scope="module")
def track() -> dict[str, np.ndarray]:
    return {name: 0.6 * y for name, y in music(seconds=4.0, sr=SR).items()}


def _sources(stems: dict[str, np.ndarray], mix: np.ndarray) -> dict[str, StemAudio]:
    out = {}
    for k, y in stems.items():
        conformed = np.zeros_like(mix)
        n = min(y.shape[-1], mix.shape[-1])
        conformed[:, :n] = y[:, :n] if y.shape[0] == mix.shape[0] else y[:1, :n]
        out[k] = StemAudio(ArraySource(y, SR), ArraySource(conformed, SR))
    return out


def _same(rows_a: list[dict], rows_b: list[dict]) -> None:
    assert [(r["stem"], r["check"]) for r in rows_a] == [(r["stem"], r["check"]) for r in rows_b]
    for a, b in zip(rows_a, rows_b, strict=True):
        if a["check"] == "recon_db" and a["value"] < -100:  # float32 rounding of an exact sum
            assert b["value"] < -100
            continue
        if math.isnan(a["value"]):
            assert math.isnan(b["value"]), (a, b)
        else:
            # levels to a thousandth of a dB (a gain fit from float32 sums moves by 1e-6 dB)
            tol = 1e-3 if a["unit"] in ("dB", "dBFS", "dBTP", "LUFS") else 1e-7
            assert b["value"] == pytest.approx(a["value"], rel=1e-4, abs=tol), (a, b)
        assert a["detail"] == b["detail"], (a, b)


CASES = {
    "clean": lambda st: st,
    "shifted": lambda st: {**st, "vocals": delayed(st["vocals"], 0.1)},
    "early": lambda st: {**st, "drums": np.roll(st["drums"], -int(0.05 * SR), axis=-1)},
    "dropout": lambda st: {
        **st,
        "bass": st["bass"] * (np.arange(st["bass"].shape[-1]) % SR > 4000),
    },
    "clipped": lambda st: {**st, "vocals": np.clip(8 * st["vocals"], -1, 1)},
    "inverted": lambda st: {**st, "drums": -st["drums"]},
    "silent": lambda st: {**st, "other": np.zeros_like(st["other"])},
}


@pytest.mark.parametrize("case", list(CASES))
def test_small_blocks_give_the_rows_of_whole_arrays(track, case):
    """Seen failing: a block buffered by reference (the caller's block reused in place)
    changed the missing spectrum, and a cut went unreported."""
    stems = {k: v.astype(np.float32) for k, v in CASES[case](clean(track)).items()}
    mix = track["mixture"]
    whole = stem_checks(mix, stems, SR)
    streamed = check_stems(ArraySource(mix, SR), _sources(stems, mix), block=BLOCK)
    _same(whole, streamed)
    if case == "dropout":
        row = next(r for r in streamed if r["stem"] == "bass" and r["check"] == "dropout_s")
        assert row["value"] > 0.1  # the defect is still found across block boundaries


def test_files_read_in_blocks_give_the_rows_of_arrays(track, tmp_path):
    stems = clean(track)
    stems["vocals"] = delayed(stems["vocals"], 0.1)
    mix = track["mixture"]
    paths = {k: write_float(tmp_path / f"{k}.wav", y, SR) for k, y in stems.items()}
    n, ch = mix.shape[-1], mix.shape[0]
    sources = {
        k: StemAudio(FileSource(p, SR, channels=ch, n=n), FileSource(p, SR, channels=ch, n=n))
        for k, p in paths.items()
    }
    _same(stem_checks(mix, stems, SR), check_stems(ArraySource(mix, SR), sources, block=BLOCK))


def test_meters_fed_in_blocks_read_as_the_whole_signal():
    rng = np.random.default_rng(3)
    x = (0.3 * rng.standard_normal((2, 50_000))).astype(np.float32)
    x[:, 20_000:20_050] = np.clip(4 * x[:, 20_000:20_050], -0.9, 0.9)  # a flat ceiling
    x[:, 4_999:5_002] = 0.9  # a run across a block boundary
    peak, loud = TruePeakMeter(2, x.shape[-1]), LoudnessMeter(2, 48000)
    clips = ClipCounter(2)
    for i in range(0, x.shape[-1], BLOCK):
        for meter in (peak, loud, clips):
            meter.update(x[:, i : i + BLOCK])
    assert peak.peak() == true_peak(x)
    assert loud.lufs() == pytest.approx(integrated_loudness(x, 48000), abs=1e-9)
    assert clips.count() == clipped_samples(x) > 0


def test_dropouts_found_across_blocks():
    mix = np.full((1, 20_000), 0.1, np.float32)
    stem = mix.copy()
    stem[:, 4_000:6_500] = 0  # crosses the boundary at 5000
    finder = Dropouts(mix.shape[-1], 8000)
    for i in range(0, 20_000, BLOCK):
        finder.update(i, stem[:, i : i + BLOCK])
    for i in range(0, 20_000, BLOCK):
        finder.measure(i, mix[:, i : i + BLOCK], (mix - stem)[:, i : i + BLOCK])
    assert finder.longest() == longest_dropout(stem, mix, mix - stem, 8000) == (0.3125, 0.5)


def test_checks_from_files_run_in_flat_memory(tmp_path):
    """4x the track read from files: the checks hold blocks (2 s here, so that both lengths
    are many blocks), not stems (the whole-array stem_checks held the stems and their
    conformed copies: ~10 signals)."""
    rng = np.random.default_rng(4)
    peaks, sizes = {}, {}
    for seconds in (20.0, 80.0):
        n = int(seconds * SR)
        stems = {k: (0.1 * rng.standard_normal((2, n))).astype(np.float32) for k in "ab"}
        mix = stems["a"] + stems["b"]
        mix_path = write_float(tmp_path / f"mix-{seconds:g}.wav", mix, SR)
        paths = {k: write_float(tmp_path / f"{k}-{seconds:g}.wav", y, SR) for k, y in stems.items()}
        del stems, mix

        def run(paths=paths, mix_path=mix_path, n=n):
            src = {
                k: StemAudio(FileSource(p, SR, channels=2, n=n), FileSource(p, SR, channels=2, n=n))
                for k, p in paths.items()
            }
            return check_stems(FileSource(mix_path, SR, channels=2, n=n), src, block=16_000)

        peaks[seconds] = _peak(run)
        sizes[seconds] = n * 2 * 4
    grown = peaks[80.0] - peaks[20.0]
    track_bytes = sizes[80.0] - sizes[20.0]  # 60 s more of one stereo float32 signal
    assert grown < 0.2 * track_bytes, peaks
