"""Hostile or broken servers and files: clear errors, nothing outside the output folder,
never a crashed batch."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
import soundfile as sf

from stemkit.audio import check_audio
from stemkit.batchdir import BatchFolder
from stemkit.errors import AudioError, IntegrityError, RequestError
from stemkit.providers import connect
from stemkit.providers.files import safe_extract
from stemkit.sandbox import SandboxConfig, SandboxServer
from stemkit.separate.run import separate_batch


def _wav(path, y, sr, subtype="PCM_16"):
    sf.write(path, y, sr, subtype=subtype)
    return path


def corpus(root):
    """One track folder per kind of bad or unusual audio: name -> (expect, mixture path)."""
    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(22050 * 2) / 22050)).astype(np.float32)
    cases = {}

    def case(name, expect, write):
        folder = root / name
        folder.mkdir(parents=True)
        cases[name] = (expect, write(folder))

    case("empty", "fail", lambda d: _raw(d, b""))
    good = _wav(root / "good.wav", tone, 22050)
    case("truncated-header", "fail", lambda d: _raw(d, good.read_bytes()[:30]))
    case("text-as-wav", "fail", lambda d: _raw(d, b"not audio\n" * 100))
    case("flac-named-wav", "ok", lambda d: _flac_as_wav(d, tone))
    case("zero-length-data", "fail", lambda d: _wav(d / "mixture.wav", np.zeros(0), 22050))
    case("pcm-u8", "ok", lambda d: _wav(d / "mixture.wav", tone, 22050, "PCM_U8"))
    case("pcm-24", "ok", lambda d: _wav(d / "mixture.wav", tone, 22050, "PCM_24"))
    case("pcm-32", "ok", lambda d: _wav(d / "mixture.wav", tone, 22050, "PCM_32"))
    nan = tone.copy()
    nan[100:200] = np.nan
    case("float-nan", "fail", lambda d: _wav(d / "mixture.wav", nan, 22050, "FLOAT"))
    case("mono", "ok", lambda d: _wav(d / "mixture.wav", tone, 22050))
    case(
        "six-channel",
        "ok",
        lambda d: _wav(d / "mixture.wav", np.stack([tone] * 6, 1) * rng.uniform(0.2, 1, 6), 22050),
    )
    case("8k", "ok", lambda d: _wav(d / "mixture.wav", tone[::3], 8000))
    case("192k", "ok", lambda d: _wav(d / "mixture.wav", np.repeat(tone, 4)[:192000], 192000))
    case("silent", "ok", lambda d: _wav(d / "mixture.wav", np.zeros(22050), 22050))
    long = (0.1 * rng.standard_normal(8000 * 600)).astype(np.float32)
    case("ten-minutes", "ok", lambda d: _wav(d / "mixture.wav", long, 8000))
    return cases


def _raw(folder, data: bytes):
    path = folder / "mixture.wav"
    path.write_bytes(data)
    return path


def _flac_as_wav(folder, y):
    path = folder / "mixture.wav"
    sf.write(path, y, 22050, format="FLAC")
    return path


def test_bad_audio_corpus_gives_clear_errors_or_works(tmp_path, fast_profile):
    cases = corpus(tmp_path / "corpus")
    for name, (expect, path) in cases.items():
        if expect == "fail":
            with pytest.raises(AudioError) as err:
                check_audio(path)
            assert path.name in str(err.value) or "mixture" in str(err.value), name
    out = tmp_path / "batch"
    table = separate_batch(tmp_path / "corpus", ["local"], out, progress=False)
    states = table.set_index("track")["state"].to_dict()
    for name, (expect, _) in cases.items():
        assert states[name] == ("done" if expect == "ok" else "failed"), (name, states[name])
        rec = BatchFolder(out).read_record(name, "local")
        if expect == "fail":
            assert rec["error_kind"] == "audio" and name in rec["error"]
        else:
            info = sf.info(out / "stems" / name / "local" / "vocals.wav")
            src = check_audio(cases[name][1])
            assert (info.samplerate, info.channels, info.frames) == (
                src.sample_rate,
                src.channels,
                src.frames,
            )


def _zip(tmp_path, entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    path = tmp_path / "server.zip"
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize(
    ("name", "mode", "words"),
    [
        ("../escape.wav", 0, "leaves the output folder"),
        ("/etc/evil.wav", 0, "absolute"),
        ("stems/../../escape.wav", 0, "leaves the output folder"),
        ("link.wav", stat.S_IFLNK | 0o777, "symlink"),
        ("C:/windows.wav", 0, "absolute"),
    ],
)
def test_zip_entries_that_escape_are_refused(tmp_path, name, mode, words):
    archive = _zip(tmp_path, [("ok.wav", b"fine", 0), (name, b"/etc/passwd", mode)])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(IntegrityError, match=words):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []  # checked before anything was written
    assert not (tmp_path / "escape.wav").exists()


def test_sandbox_zip_is_extracted_safely(sandbox, fast_profile, track_dir, tmp_path):
    client = connect("sourceress")
    job = client.submit(track_dir / "alpha" / "mixture.wav", track="alpha")
    client.wait(job, timeout=60)
    files = client.fetch_zip(job.job_id, ["vocals", "track"], tmp_path / "z", fmt="flac")
    assert sorted(p.name for p in files) == ["track.flac", "vocals.flac"]
    assert not list((tmp_path / "z").glob(".*.zip"))


def test_non_audio_download_is_detected_and_retried_next_run(
    sandbox, fast_profile, track_dir, tmp_path, monkeypatch
):
    from stemkit.providers.sourceress import SourceressProvider

    real = SourceressProvider.fetch

    def hostile(self, job, status, out_dir, *, fmt="wav"):
        files = real(self, job, status, out_dir, fmt=fmt)
        files["vocals"].write_text("<html>503 from a proxy</html>")
        return files

    monkeypatch.setattr(SourceressProvider, "fetch", hostile)
    out = tmp_path / "b"
    separate_batch(track_dir, ["sourceress"], out, progress=False)
    rec = BatchFolder(out).read_record("alpha", "sourceress")
    assert rec["error_kind"] == "integrity" and "is not audio" in rec["error"]
    monkeypatch.setattr(SourceressProvider, "fetch", real)
    table = separate_batch(track_dir, ["sourceress"], out, progress=False)
    assert set(table["state"]) == {"done"}
    assert table["resumed"].str.contains("not submitted again").all()


def test_upload_size_limit_is_a_clear_4xx(tmp_path, track_dir, monkeypatch):
    config = SandboxConfig(
        data_dir=tmp_path / "sb", max_upload_bytes=10_000, sourceress_users={"u": "p"}
    )
    with SandboxServer(config, set_env=False) as server:
        client = connect(
            "sourceress", base_url=f"{server.url}/sourceress", username="u", password="p"
        )
        slot = client.create_upload()
        with pytest.raises(RequestError) as err:
            client.upload(slot, track_dir / "alpha" / "mixture.wav")
        assert err.value.status == 413 and "larger than" in str(err.value)
