"""Tests of the sandbox's offline speech recogniser (:mod:`stemkit.sandbox.asr`)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import jiwer
import numpy as np
import pytest
import soxr

from stemkit.demo.speech import load_clip
from stemkit.sandbox import asr
from stemkit.sandbox.asr import ENGINE, Transcript, Word, is_blank, transcribe

CLIPS = ("kitchen", "station", "office")
MAX_WER = 0.25


def _normalise(text: str) -> str:
    """Lower case, punctuation dropped (apostrophes kept: the dictionary spells ``let's``)."""
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def _wer(script: str, heard: str) -> float:
    return jiwer.wer(_normalise(script), _normalise(heard))


@pytest.fixture(scope="module")
def clips() -> dict[str, tuple[np.ndarray, int, str]]:
    return {name: load_clip(name) for name in CLIPS}


HEAD_SECONDS = 4.8  # the first two sentences of the kitchen clip
HEAD_WORDS = 13  # "Could you pass me the salt, please? The soup needs a little more flavor."


def _inputs(clips) -> dict[str, tuple[np.ndarray, int]]:
    """What the tests transcribe: each clip as (1, n) at 16 kHz, and other shapes and rates."""
    inputs = {name: (x[None, :].astype(np.float32), sr) for name, (x, sr, _) in clips.items()}
    x, sr, _ = clips["station"]
    y = soxr.resample(x, sr, 8000).astype(np.float32)
    inputs["station-8000-stereo"] = (np.stack([0.6 * y, 0.4 * y]), 8000)
    x, sr, _ = clips["kitchen"]
    head = x[: round(HEAD_SECONDS * sr)].astype(np.float32)
    inputs["head"] = (head[None, :], sr)
    inputs["head-1d"] = (head, sr)
    y = soxr.resample(head, sr, 44100).astype(np.float32)
    inputs["head-44100-stereo"] = (np.stack([0.4 * y, 0.6 * y]), 44100)
    return inputs


@pytest.fixture(scope="module")
def heard(clips) -> dict[str, Transcript]:
    """Every input transcribed, from several threads at once (as the sandbox does)."""
    inputs = _inputs(clips)
    with ThreadPoolExecutor(len(inputs)) as pool:
        futures = {key: pool.submit(transcribe, x, sr) for key, (x, sr) in inputs.items()}
        return {key: f.result() for key, f in futures.items()}


@pytest.mark.parametrize("name", CLIPS)
def test_clean_speech_is_recognised(name, clips, heard):
    _, _, script = clips[name]
    t = heard[name]
    assert not t.is_blank
    assert t.engine == ENGINE and ENGINE.startswith("pocketsphinx-")
    assert _wer(script, t.text) < MAX_WER, t.text
    assert t.text == " ".join(w.word for w in t.words)


@pytest.mark.parametrize("key", ["kitchen", "station", "office", "station-8000-stereo"])
def test_words_have_sane_times_and_no_fillers(key, heard):
    t = heard[key]
    assert t.words
    starts = [w.start for w in t.words]
    assert starts == sorted(starts)
    for prev, w in zip(t.words, t.words[1:], strict=False):
        assert w.start >= prev.end
    for w in t.words:
        assert 0.0 <= w.start < w.end <= t.duration
        assert w.confidence is None or 0.0 <= w.confidence <= 1.0
        assert re.fullmatch(r"[a-z0-9'.\-_]+", w.word), w.word


def test_same_audio_gives_same_words(heard):
    # two calls with the same samples, as (1, n) and as (n,), run in parallel threads
    assert heard["head-1d"] == heard["head"]


def test_8k_stereo(clips, heard):
    x, sr, script = clips["station"]
    t = heard["station-8000-stereo"]
    assert t.duration == pytest.approx(x.size / sr, abs=1e-3)
    assert _wer(script, t.text) < MAX_WER, t.text


def test_44k_stereo(clips, heard):
    script = " ".join(clips["kitchen"][2].split()[:HEAD_WORDS])
    t = heard["head-44100-stereo"]
    assert t.duration == pytest.approx(HEAD_SECONDS, abs=1e-3)
    assert _wer(script, t.text) < MAX_WER, t.text
    assert _wer(script, heard["head"].text) < MAX_WER


def test_other_threads_keep_running_while_it_decodes(clips):
    """The sandbox's HTTP server shares the process: the decoder must not hold the GIL."""
    x, sr, _ = clips["kitchen"]
    head = x[None, : round(HEAD_SECONDS * sr)]
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(transcribe, head, sr)
        gaps, last = [], time.perf_counter()
        while not job.done():
            time.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        assert job.result().words
    assert len(gaps) > 20
    assert max(gaps) < 0.5


@pytest.mark.parametrize(
    "audio",
    [
        np.zeros((2, 44100), np.float32),
        np.zeros((1, 0), np.float32),
        1e-4 * np.random.default_rng(1).standard_normal((2, 44100)).astype(np.float32),
    ],
    ids=["digital-silence", "empty", "hiss-at-minus-80-dbfs"],
)
def test_silence_is_blank_and_never_decoded(audio):
    def fail(pcm: bytes) -> None:
        raise AssertionError("the recogniser ran on blank audio")

    assert is_blank(audio, 44100)
    t = transcribe(audio, 44100, decoder=fail)
    assert t.is_blank and t.words == [] and t.text == ""
    assert t.duration == pytest.approx(audio.shape[-1] / 44100)


def test_blank_threshold():
    sr = 16000
    tone = np.sin(2 * np.pi * 300 * np.arange(sr) / sr)  # -3 dBFS RMS at full scale
    assert not is_blank(10 ** (-40 / 20) * tone, sr)
    assert is_blank(10 ** (-60 / 20) * tone, sr)
    assert is_blank(10 ** (-40 / 20) * tone, sr, threshold_dbfs=-30.0)
    # a short burst in a long silence is not blank: the loudest window counts
    burst = np.zeros(10 * sr)
    burst[5 * sr : 5 * sr + sr // 5] = 0.1 * tone[: sr // 5]
    assert not is_blank(burst[None, :], sr)


def test_filler_tokens_and_alternates_are_stripped():
    segments = [
        ("<s>", 0, 9, 1.0),
        ("hello", 10, 49, 0.9),
        ("<sil>", 50, 59, 1.0),
        ("[NOISE]", 60, 69, 0.5),
        ("++BREATH++", 70, 79, 0.5),
        ("read(2)", 80, 119, 0.7),
        ("</s>", 120, 129, 1.0),
    ]
    words = asr.words_from_segments(segments, 100, 1.25)
    assert words == [Word("hello", 0.1, 0.5, 0.9), Word("read", 0.8, 1.2, 0.7)]


def test_word_times_are_clipped_to_the_duration():
    words = asr.words_from_segments([("late", 90, 140, 1.0)], 100, 1.0)
    assert words == [Word("late", 0.9, 1.0, 1.0)]


def test_recogniser_failure_is_reported():
    broken = "import sys; sys.stderr.write('model gone'); sys.exit(3)"
    tone = 0.1 * np.sin(2 * np.pi * 300 * np.arange(8000) / 8000)
    with pytest.raises(RuntimeError, match="exit 3.*model gone"):
        transcribe(tone, 8000, decoder=lambda pcm: asr.decode(pcm, script=broken))


def test_bad_shapes_and_rates_are_rejected():
    with pytest.raises(ValueError, match="channels, samples"):
        is_blank(np.zeros((1, 2, 3)), 16000)
    with pytest.raises(ValueError, match="sample rate"):
        is_blank(np.zeros(10), 0)
