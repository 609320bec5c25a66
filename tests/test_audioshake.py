"""AudioShake: the doc's example parses; documented rules are enforced by the client (no request
sent) and by the sandbox (4xx); jobs run for real over HTTP."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from stemkit.audio import load_audio
from stemkit.errors import JobFailed, RequestError
from stemkit.providers import connect
from stemkit.providers.audioshake import AudioShakeProvider, JobInfo
from stemkit.providers.records import Job

from .conftest import CREDS, vendor_fixture


@pytest.fixture()
def client(sandbox, fast_profile) -> AudioShakeProvider:
    return connect("audioshake")


def doc_job() -> dict:
    return vendor_fixture("audioshake_get_job")["body"]


def test_doc_example_parses():
    body = doc_job()
    job = JobInfo.model_validate(body["job"])
    assert job.id == "string" and job.metadata["format"] == "wav"
    assert job.stemAssets[0].link == "string"
    assert job.outputAssets[0].jobs[0]["stemAssets"][0]["path"] == "string"


RULES = [
    ({"name": "kazoo"}, "name must be one of"),
    ({"name": "vocals", "format": "ogg"}, "format must be one of"),
    ({"name": "vocals", "language": "english"}, "language"),
    ({"name": "vocals", "language": "xx"}, "language"),
    ({"name": "vocals", "customProperty": "x" * 1001}, "1000"),
    ({"name": "vocals", "maxTrackLength": 19}, "20"),
    ({"name": "vocals", "watermarkInterval": 9}, "10"),
    ({"name": "vocals", "colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("metadata", "words"), RULES)
def test_client_validates_before_sending(client, monkeypatch, metadata, words):
    def no_network(*a, **k):
        raise AssertionError("a request was sent")

    monkeypatch.setattr(client.session, "request", no_network)
    with pytest.raises(RequestError, match=words):
        client.create_job("asset-12345", metadata)


def test_client_validates_ids_and_submit_checks_every_stem_first(client, monkeypatch, tmp_path):
    monkeypatch.setattr(
        client.session, "request", lambda *a, **k: (_ for _ in ()).throw(AssertionError("sent"))
    )
    with pytest.raises(RequestError, match="assetId"):
        client.create_job("short", {"name": "vocals"})
    with pytest.raises(RequestError, match="assetId"):
        client.create_job("a" * 31, {"name": "vocals"})
    with pytest.raises(RequestError, match="3-60"):
        client.get_job("ab")
    with pytest.raises(RequestError, match="3-60"):
        client.get_job("x" * 61)
    with pytest.raises(RequestError, match="name must be one of"):  # nothing uploaded either
        client.submit(tmp_path / "mix.wav", track="t", stems=["vocals", "ukulele"])


@pytest.fixture(scope="module")
def asset_id(sandbox, track_dir):
    return connect("audioshake").upload_file(track_dir / "alpha" / "mixture.wav").id


@pytest.mark.parametrize(("metadata", "words"), RULES)
def test_sandbox_answers_4xx_with_a_message(sandbox, asset_id, metadata, words):
    resp = requests.post(
        f"{sandbox.url}/audioshake/job/",
        json={"assetId": asset_id, "metadata": metadata},
        headers={"Authorization": f"Bearer {CREDS['token']}"},
    )
    assert resp.status_code == 400
    assert words in resp.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "words"),
    [
        (
            "POST",
            "/job/",
            {"json": {"assetId": "short", "metadata": {"name": "vocals"}}},
            400,
            "assetId",
        ),
        ("POST", "/job/", {"data": "{oops"}, 400, "JSON"),
        (
            "POST",
            "/job/",
            {"json": {"assetId": "x" * 20, "metadata": {"name": "vocals"}}},
            404,
            "asset",
        ),
        ("GET", "/job/ab", {}, 400, "3-60"),
        ("GET", "/job/nosuchjob", {}, 404, "nosuchjob"),
        ("POST", "/upload/", {"data": b"not multipart"}, 400, "file"),
        (
            "POST",
            "/upload/link",
            {"json": {"link": "https://example.com/a.wav", "name": "a"}},
            400,
            "signed URL of this sandbox",
        ),
    ],
)
def test_sandbox_bad_requests(sandbox, method, path, kwargs, status, words):
    resp = requests.request(
        method,
        f"{sandbox.url}/audioshake{path}",
        headers={"Authorization": f"Bearer {CREDS['token']}"},
        **kwargs,
    )
    assert resp.status_code == status, resp.text
    assert words in resp.json()["message"]


def test_bad_token_is_refused(sandbox):
    resp = requests.get(
        f"{sandbox.url}/audioshake/job/abcdef", headers={"Authorization": "Bearer nope"}
    )
    assert resp.status_code == 401


def test_upload_by_link_accepts_only_own_signed_files(client, asset_id):
    own = client.upload_link(_asset_link(client, asset_id), "copy.wav")
    assert own.id != asset_id and own.name == "copy.wav"
    with pytest.raises(RequestError) as err:
        client.upload_link(_asset_link(client, asset_id).replace("sig=", "sig=0"), "x.wav")
    assert err.value.status == 400


def _asset_link(client, asset_id) -> str:
    info = client.create_job(asset_id, {"name": "bass"})
    return client.get_job(info.id).sourceAsset.link


def test_job_lifecycle_timestamps_residual_and_formats(client, track_dir, tmp_path):
    asset = client.upload_file(track_dir / "alpha" / "mixture.wav")
    created = client.create_job(
        asset.id, {"name": "vocals", "format": "flac", "residual": True, "customProperty": "take 2"}
    )
    assert created.status == "created" and created.createdAt
    seen = {created.status}
    deadline = time.monotonic() + 60
    info = created
    while info.status != "completed" and time.monotonic() < deadline:
        time.sleep(0.05)
        info = client.get_job(created.id)
        seen.add(info.status)
    assert info.status == "completed" and info.startedAt
    assert info.createdAt <= info.startedAt <= info.updatedAt
    assert info.metadata["customProperty"] == "take 2"
    assert info.stemMetadata["stemName"] == "vocals"
    names = sorted(a.name for a in info.outputAssets)
    assert names == ["vocals.flac", "vocals_residual.flac"]  # named with extension, as the vendor
    job = Job("audioshake", asset.id, "alpha", ["vocals"], meta={"jobs": {"vocals": info.id}})
    files = client.fetch(job, client.status(job), tmp_path)
    stem, _ = load_audio(files["vocals"])
    residual, _ = load_audio(tmp_path / "extras" / "vocals.residual.flac")
    mix, _ = load_audio(track_dir / "alpha" / "mixture.wav")
    ok = np.abs(mix).max(axis=0) < 0.95  # 16-bit FLAC clips the few louder samples
    np.testing.assert_allclose((stem + residual)[:, ok], mix[:, ok], atol=3e-4)


def test_two_stem_separation_through_the_life_cycle(client, track_dir, tmp_path):
    result = client.separate(
        track_dir / "beta" / "mixture.wav",
        tmp_path,
        track="beta",
        stems=["vocals", "accompaniment"],
    )
    assert sorted(result.stems) == ["accompaniment", "vocals"]
    stages = {(r["stage"], r["job_id"]) for r in result.vendor_stages}
    assert len({j for _, j in stages}) == 2  # one vendor job per stem
    assert {s for s, _ in stages} == {"queue wait", "processing"}
    mix, _ = load_audio(track_dir / "beta" / "mixture.wav")
    total = sum(load_audio(p)[0] for p in result.stems.values())
    np.testing.assert_allclose(total, mix, atol=1e-4)


@pytest.mark.parametrize("stem", ["drums", "bass", "other", "dialogue", "music_fx"])
def test_every_engine_stem(client, track_dir, tmp_path, stem):
    r = client.separate(track_dir / "alpha" / "mixture.wav", tmp_path, stems=[stem])
    y, _ = load_audio(r.stems[stem])
    assert y.shape == load_audio(track_dir / "alpha" / "mixture.wav")[0].shape
    assert np.abs(y).max() > 1e-3


def test_failed_job_passes_the_status_message(client, track_dir, tmp_path):
    with pytest.raises(JobFailed) as err:
        client.separate(track_dir / "alpha" / "mixture.wav", tmp_path, stems=["guitar"])
    assert "guitar" in str(err.value) and "not available in the sandbox engine" in str(err.value)
    assert "audioshake" in str(err.value)


def test_unknown_status_is_not_terminal(client, monkeypatch):
    info = JobInfo(id="job-123", status="warming_up", createdAt="2024-01-01T00:00:00Z")
    monkeypatch.setattr(client, "get_job", lambda jid: info)
    job = Job("audioshake", "asset-123", "t", ["vocals"], meta={"jobs": {"vocals": "job-123"}})
    assert client.status(job).state == "queued"
    from stemkit.errors import JobTimeout

    with pytest.raises(JobTimeout) as err:
        client.wait(job, timeout=0.3)
    assert err.value.job_id == "asset-123"


def test_expired_links_are_refreshed_by_getting_the_job_again(
    client, track_dir, tmp_path, monkeypatch
):
    job = client.submit(track_dir / "alpha" / "mixture.wav", track="alpha", stems=["bass"])
    status = client.wait(job, timeout=60)
    info = status.raw["bass"]
    for asset in info.outputAssets:
        asset.link = asset.link.replace("sig=", "sig=dead")
    calls = []
    real = client.get_job
    monkeypatch.setattr(client, "get_job", lambda jid: calls.append(jid) or real(jid))
    files = client.fetch(job, status, tmp_path)
    assert calls == [info.id] and files["bass"].stat().st_size > 1000


def test_other_client_cannot_see_the_job(client, track_dir, sandbox):
    job = client.submit(track_dir / "beta" / "mixture.wav", track="beta", stems=["bass"])
    other = connect("audioshake", token="other-token")
    with pytest.raises(RequestError) as err:
        other.get_job(job.meta["jobs"]["bass"])
    assert err.value.status == 404


def test_max_track_length_watermark_and_preview(client, track_dir, tmp_path, sandbox):
    long = tmp_path / "long.wav"
    import soundfile as sf

    y, sr = load_audio(track_dir / "alpha" / "mixture.wav")
    sf.write(long, np.tile(y, 7).T, sr)  # 28 s
    r = client.separate(
        long,
        tmp_path / "out",
        stems=["bass"],
        maxTrackLength=20,
        watermarkInterval=10,
        preview=True,
    )
    bass, _ = load_audio(r.stems["bass"])
    assert bass.shape[1] == 20 * sr
    assert (tmp_path / "out" / "extras" / "bass.preview.mp3").is_file()
    plain = client.separate(long, tmp_path / "plain", stems=["bass"], maxTrackLength=20)
    diff = bass - load_audio(plain.stems["bass"])[0]
    at = np.flatnonzero(np.abs(diff[0]) > 1e-3)
    assert at.size and abs(at[0] / sr - 10.0) < 0.1  # the beep sits at 10 s
