"""DNSMOS P.835 (speechmos' ONNX model) and STOI / ESTOI beside WER, on rendered speech tracks."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from stemkit.analyze.intelligibility import COLUMNS, intelligibility_table
from stemkit.analyze.speech_quality import dnsmos, stoi_scores
from stemkit.batchdir import BatchFolder
from stemkit.demo.speech import SPEECH_TRACKS, render_speech_track

SR = 16000


@pytest.fixture(scope="module")
def kitchen() -> dict[str, np.ndarray]:
    """The demo's kitchen track at 16 kHz: dialogue on a music-and-effects bed."""
    return render_speech_track(SPEECH_TRACKS[0], sr=SR)


def test_dnsmos_hears_the_music_under_the_speech(kitchen):
    clean = dnsmos(kitchen["dialogue"], SR)
    mixed = dnsmos(kitchen["mixture"], SR)
    assert set(clean) == {"sig", "bak", "ovrl"}
    assert all(1.0 <= v <= 5.0 for v in (*clean.values(), *mixed.values()))
    assert clean["bak"] > mixed["bak"] + 1.0  # background: the music is intrusive
    assert clean["ovrl"] > mixed["ovrl"] + 0.5
    assert dnsmos(kitchen["dialogue"][:, : SR * 3], SR)["ovrl"] > 1.0  # short clips repeat
    assert np.isnan(dnsmos(np.zeros((2, SR)), SR)["ovrl"])


def test_stoi_orders_clean_mixture_music(kitchen):
    ref = kitchen["dialogue"]
    same = stoi_scores(ref, ref, SR)
    mixed = stoi_scores(ref, kitchen["mixture"], SR)
    music = stoi_scores(ref, kitchen["music_fx"], SR)
    assert same["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert same["stoi"] > mixed["stoi"] > music["stoi"]
    assert same["estoi"] > mixed["estoi"] > music["estoi"]
    assert np.isnan(stoi_scores(np.zeros(SR), ref, SR)["stoi"])


def test_intelligibility_table_has_dnsmos_and_stoi_beside_wer(kitchen, tmp_path):
    batch = BatchFolder(tmp_path)
    paths = {}
    for name in ("dialogue", "mixture", "music_fx"):
        paths[name] = tmp_path / f"{name}.wav"
        sf.write(paths[name], kitchen[name].T, SR)
    script = "could you pass me the salt please"
    sources = {"mixture": "mixture", "reference": "dialogue", "acme": "music_fx"}
    for source, stem in sources.items():
        record = {
            "source": source,
            "audio": str(paths[stem]),
            "state": "done",
            "text": script if source == "reference" else "could you pass",
            "is_blank": False,
        }
        batch.transcript_dir("t", source).mkdir(parents=True)
        batch.write_transcript_record("t", source, record)
    table = intelligibility_table(batch, {"name": "t", "transcript": script})
    assert list(table.columns) == COLUMNS
    df = table.set_index("source")
    assert df.loc["reference", "wer"] == 0.0
    assert df.loc["reference", "stoi"] == pytest.approx(1.0, abs=1e-6)
    assert df.loc["reference", "stoi"] > df.loc["mixture", "stoi"] > df.loc["acme", "stoi"]
    assert df.loc["reference", "dnsmos_bak"] > df.loc["mixture", "dnsmos_bak"]
    assert df[["dnsmos_sig", "dnsmos_ovrl", "estoi"]].notna().all().all()


def test_qa_gate_fails_a_dialogue_stem_full_of_music(kitchen):
    import pandas as pd

    from stemkit.analyze.qa import load_profile, stem_checks, verdicts

    mix = kitchen["mixture"]
    good = {"dialogue": kitchen["dialogue"], "music_fx": kitchen["music_fx"]}
    leaky = {"dialogue": mix, "music_fx": np.zeros_like(mix)}
    judged = {}
    for name, stems in (("good", good), ("leaky", leaky)):
        rows = pd.DataFrame(stem_checks(mix, stems, SR))
        v = verdicts(rows, load_profile())
        judged[name] = v[v["check"] == "dialogue_bak"].set_index("stem")
    assert judged["good"].loc["dialogue", "verdict"] == "pass"
    assert judged["leaky"].loc["dialogue", "verdict"] == "fail"
    assert "music_fx" not in judged["good"].index  # only dialogue stems are scored
