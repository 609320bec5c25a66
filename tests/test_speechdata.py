"""Tests of the speech-over-music demo tracks (:mod:`stemkit.demo.speech`) and their clips."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemkit.demo import speech as speechdata
from stemkit.demo.speech import (
    SPEECH_TRACKS,
    SpeechTrack,
    load_clip,
    render_speech_track,
    write_speech_tracks,
)
from stemkit.demo.synth import DEMO_TRACKS
from stemkit.resources import bundled

SR = 44100
FILES = ("mixture", "dialogue", "music_fx")
PEAK = round(10 ** (-1 / 20) * 32767)


def _read(folder: Path, name: str) -> np.ndarray:
    """A written file as int16 ``(2, n)``, checking its format on the way."""
    info = sf.info(folder / f"{name}.wav")
    assert (info.samplerate, info.channels, info.subtype) == (SR, 2, "PCM_16")
    data, _ = sf.read(folder / f"{name}.wav", dtype="int16", always_2d=True)
    return data.T


def _db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2))


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("speech")
    folders = write_speech_tracks(out, sr=SR)
    assert folders == [out / t.name for t in SPEECH_TRACKS]
    return out


@pytest.fixture(scope="module")
def tracks(out_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    return {t.name: {f: _read(out_dir / t.name, f) for f in FILES} for t in SPEECH_TRACKS}


def test_committed_clips_are_small_16k_mono_flac_with_scripts():
    total = 0
    for track in SPEECH_TRACKS:
        path = bundled("speech") / f"{track.clip}.flac"
        info = sf.info(path)
        assert (info.format, info.subtype, info.samplerate, info.channels) == (
            "FLAC",
            "PCM_16",
            16000,
            1,
        )
        assert 8.0 <= info.duration <= 14.0
        script = (bundled("speech") / f"{track.clip}.txt").read_text(encoding="utf-8")
        assert len(script.split()) >= 20
        total += path.stat().st_size
    assert total < 1_000_000
    scripts = {load_clip(t.clip)[2] for t in SPEECH_TRACKS}
    assert len(scripts) == len(SPEECH_TRACKS)


def test_layout(out_dir):
    assert sorted(p.name for p in out_dir.iterdir()) == [t.name for t in SPEECH_TRACKS]
    for track in SPEECH_TRACKS:
        files = sorted(p.name for p in (out_dir / track.name).iterdir())
        assert files == ["dialogue.wav", "mixture.wav", "music_fx.wav", "transcript.txt"]


@pytest.mark.parametrize("track", SPEECH_TRACKS, ids=lambda t: t.name)
def test_mixture_is_exact_sum_with_headroom(track, tracks):
    x = tracks[track.name]
    total = x["dialogue"].astype(np.int32) + x["music_fx"].astype(np.int32)
    assert np.array_equal(x["mixture"].astype(np.int32), total)
    loudest = max(int(np.abs(v.astype(np.int32)).max()) for v in x.values())
    assert abs(loudest - PEAK) <= 1


@pytest.mark.parametrize("track", SPEECH_TRACKS, ids=lambda t: t.name)
def test_transcript_is_the_clip_script(track, out_dir):
    written = (out_dir / track.name / "transcript.txt").read_text(encoding="utf-8")
    assert written == load_clip(track.clip)[2] + "\n"


@pytest.mark.parametrize("track", SPEECH_TRACKS, ids=lambda t: t.name)
def test_dialogue_is_centred_speech_after_a_lead_in(track, tracks):
    d = tracks[track.name]["dialogue"]
    assert np.array_equal(d[0], d[1])
    lead = round(track.lead_in * SR)
    assert not d[:, : lead - 1].any()
    clip, clip_sr, _ = load_clip(track.clip)
    speech = d[:, lead : lead + round(clip.size * SR / clip_sr)]
    assert _db(speech) > _db(np.full(1, 0.02 * 32768))  # well above -34 dBFS
    expected = lead + clip.size * SR / clip_sr + track.tail * SR
    assert abs(d.shape[1] - expected) <= 2


@pytest.mark.parametrize("track", SPEECH_TRACKS, ids=lambda t: t.name)
def test_music_is_present_below_the_speech(track, tracks):
    x = tracks[track.name]
    music, dialogue = x["music_fx"], x["dialogue"]
    lead = round(track.lead_in * SR)
    assert np.abs(music[:, lead // 4 : lead]).max() > 300  # music plays in the lead-in
    assert not np.array_equal(music[0], music[1])  # a stereo bed
    # per-second level: music sounds throughout (but the fades)
    n = music.shape[1] // SR
    seconds = music[:, : n * SR].astype(np.float64).reshape(2, n, SR)
    assert (np.sqrt(np.mean(seconds**2, axis=(0, 2))) > 100).all()
    frames = dialogue[0, : dialogue.shape[1] // 882 * 882].astype(np.float64).reshape(-1, 882)
    power = np.mean(frames**2, axis=1)
    speech_db = 10 * np.log10(np.mean(power[power >= power.max() * 10**-3.5]))
    ratio = _db(music) - speech_db
    assert track.music_db - 3.0 < ratio < track.music_db + 3.0, ratio
    assert ratio < -4.0


def test_tracks_differ_in_level_voice_and_effects():
    assert len({t.music_db for t in SPEECH_TRACKS}) == len(SPEECH_TRACKS)
    assert len({t.music.name for t in SPEECH_TRACKS}) == len(SPEECH_TRACKS)
    assert all(-10.0 <= t.music_db <= -6.0 for t in SPEECH_TRACKS)
    assert {fx for t in SPEECH_TRACKS for fx in t.effects} == {"knocks", "swells"}


def test_deterministic(out_dir, tmp_path):
    again = write_speech_tracks(tmp_path, sr=SR, tracks=SPEECH_TRACKS[:1])[0]
    for name in (*FILES, "transcript"):
        suffix = ".txt" if name == "transcript" else ".wav"
        first = (out_dir / again.name / f"{name}{suffix}").read_bytes()
        assert (
            hashlib.sha256(first).digest()
            == hashlib.sha256((again / f"{name}{suffix}").read_bytes()).digest()
        )


def test_render_matches_written_files(tracks):
    track = SPEECH_TRACKS[2]
    stems = render_speech_track(track, sr=SR)
    for name in FILES:
        assert np.array_equal(stems[name], tracks[track.name][name] / np.float32(32768))


def test_other_rate_and_own_clip_folder(tmp_path):
    (tmp_path / "hello.txt").write_text("Hello there.\n", encoding="utf-8")
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "hello.flac", 0.3 * np.sin(2 * np.pi * 200 * t), 16000, subtype="PCM_16")
    track = SpeechTrack("99-speech-test", "hello", DEMO_TRACKS[2], music_db=-9.0, lead_in=0.5)
    folder = speechdata.write_speech_track(track, tmp_path / "out", sr=8000, speech_dir=tmp_path)
    assert sf.info(folder / "mixture.wav").samplerate == 8000
    assert sf.info(folder / "mixture.wav").duration == pytest.approx(0.5 + 1.0 + 1.5)
    assert (folder / "transcript.txt").read_text(encoding="utf-8") == "Hello there.\n"


def test_bad_specs_are_rejected():
    with pytest.raises(ValueError, match="unknown effects"):
        SpeechTrack("x", "kitchen", DEMO_TRACKS[0], music_db=-8.0, effects=("thunder",))
    with pytest.raises(ValueError, match="lead_in"):
        SpeechTrack("x", "kitchen", DEMO_TRACKS[0], music_db=-8.0, lead_in=-1.0)


def test_cli(tmp_path):
    from typer.testing import CliRunner

    from stemkit.cli import app

    result = CliRunner().invoke(app, ["demo-data", str(tmp_path), "--sr", "8000", "--no-music"])
    assert result.exit_code == 0, result.output
    assert "3 tracks" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [t.name for t in SPEECH_TRACKS]
