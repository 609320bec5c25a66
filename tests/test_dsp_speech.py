"""The sandbox's speech-aware dialogue path (stemkit.dsp.speech) on rendered demo material."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stemkit.analyze.sdr import sdr
from stemkit.demo.speech import SPEECH_TRACKS, render_speech_track
from stemkit.demo.synth import DEMO_TRACKS, render_track
from stemkit.dsp import engine, speech
from tests.conftest import music

SR = 16000


@pytest.fixture(scope="module")
def kitchen() -> dict[str, np.ndarray]:
    return render_speech_track(SPEECH_TRACKS[0], sr=SR)


@pytest.fixture(scope="module", params=[0, 3])
def song(request) -> dict[str, np.ndarray]:
    return render_track(replace(DEMO_TRACKS[request.param], duration=20.0), sr=SR)


def test_speech_is_told_from_a_sung_line(kitchen, song):
    voice = engine.separate(kitchen["mixture"], SR, ["vocals"])["vocals"]
    assert speech.is_speech(voice, SR)
    sung = engine.separate(song["mixture"], SR, ["vocals"])["vocals"]
    assert not speech.is_speech(sung, SR)
    assert not speech.is_speech(np.zeros((2, SR)), SR)
    # the suite's 4 s legato 'voice' (no pauses) is no speech either
    legato = engine.separate(music(seed=0)["mixture"], 22050, ["vocals"])["vocals"]
    assert not speech.is_speech(legato, 22050)


def test_a_voice_is_pitch_tracked_once_however_often_and_concurrently_it_is_asked(
    kitchen, song, monkeypatch
):
    from concurrent.futures import ThreadPoolExecutor

    voice = engine.separate(kitchen["mixture"], SR, ["vocals"])["vocals"]
    sung = engine.separate(song["mixture"], SR, ["vocals"])["vocals"]
    expected = {"voice": speech._judge(voice.mean(axis=0), SR), "sung": False}
    monkeypatch.setattr(speech, "_memo", type(speech._memo)())
    calls = []
    judge = speech._judge
    monkeypatch.setattr(speech, "_judge", lambda m, sr: calls.append(m.size) or judge(m, sr))
    asks = [voice, sung, voice.copy(), sung, voice] * 2
    with ThreadPoolExecutor(4) as pool:  # AudioShake's stem jobs on one upload, at once
        verdicts = list(pool.map(lambda v: speech.is_speech(v, SR), asks))
    assert verdicts == [expected["voice"], False, expected["voice"], False, expected["voice"]] * 2
    assert len(calls) == 2  # one pitch track per distinct voice
    assert speech.is_speech(voice, 22050) == judge(voice.mean(axis=0), 22050)  # rate is keyed
    assert len(calls) == 3
    assert expected["voice"] is True


def test_speech_path_gives_dialogue_and_rest_that_sum_to_the_mixture(kitchen):
    mix = kitchen["mixture"]
    out = speech.separate(mix, SR, ["vocals", "accompaniment"])
    assert out["vocals"].shape == mix.shape and out["vocals"].dtype == mix.dtype
    np.testing.assert_allclose(out["vocals"] + out["accompaniment"], mix, atol=1e-4)
    engine_voice = engine.separate(mix, SR, ["vocals"])["vocals"]
    assert not np.allclose(out["vocals"], engine_voice)  # the speech path was taken
    # the dialogue holds most of the speech: closer to the reference than the engine's voice
    ref = kitchen["dialogue"]
    assert sdr(ref, out["vocals"]) > sdr(ref, engine_voice)
    # AudioShake asks one stem per job: each job gives the same split
    alone = speech.separate(mix, SR, ["dialogue"])["dialogue"]
    np.testing.assert_array_equal(alone, out["vocals"])


def test_songs_and_four_stem_requests_keep_the_engine(song):
    mix = song["mixture"]
    for stems in (["vocals", "accompaniment"], ["vocals", "drums", "bass", "other"]):
        ours, theirs = speech.separate(mix, SR, stems), engine.separate(mix, SR, stems)
        for s in stems:
            np.testing.assert_allclose(ours[s], theirs[s], atol=1e-5, err_msg=s)
