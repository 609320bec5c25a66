"""The Sourceress client against the real sandbox over HTTP: every documented step."""

from __future__ import annotations

import io
import re
import time
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf

from stemkit.audio import load_audio
from stemkit.errors import AudioError, AuthError, RequestError
from stemkit.providers import connect
from stemkit.providers.sourceress import MixTrack, SourceressProvider

EVENT_ORDER = [
    "Formatting Request File",
    "Request Formatting Done",
    "Requesting Metadata",
    "Metadata Task Done",
    "Starting Separation",
    "Queue message received",
    "Processing",
    "Finalising",
]


@pytest.fixture()
def client(sandbox, fast_profile) -> SourceressProvider:
    return connect("sourceress")


@pytest.fixture(scope="module")
def finished(sandbox, track_dir):
    """One 4-stem separation of track alpha, shared by the download/mix/zip tests."""
    c = connect("sourceress", poll_interval=0.05, poll_max=0.2)
    job = c.submit(
        track_dir / "alpha" / "mixture.wav",
        track="alpha",
        stems=["vocals", "drums", "bass", "other"],
    )
    status = c.wait(job, timeout=120)
    return c, job, status


def test_auth_token_is_reused_until_expiry(client, sandbox):
    before = sandbox.stats()["sourceress"]["auth"]
    token = client.authenticate()
    assert token.startswith("Bearer ")
    assert client.authenticate() == token
    client.create_upload()
    after = sandbox.stats()["sourceress"]["auth"]
    assert after == before + 1


def test_wrong_password_is_a_clear_auth_error(sandbox):
    bad = connect("sourceress", password="wrong")
    with pytest.raises(AuthError) as err:
        bad.authenticate()
    assert "sourceress" in str(err.value) and "auth" in str(err.value)
    assert "wrong" not in str(err.value)


def test_expired_token_is_renewed_once(client, sandbox):
    client.authenticate()
    sandbox.app.state.sourceress.tokens.expire_all()
    assert client.create_upload().upload_id  # 401, log in again, succeed


def test_upload_metadata_202_then_200(client, track_dir):
    slot = client.create_upload()
    assert slot.method == "PUT" and "sig=" in slot.signed_url
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", slot.expiry)
    client.upload(slot, track_dir / "alpha" / "mixture.wav")
    meta = client.metadata(slot.upload_id)
    info = sf.info(track_dir / "alpha" / "mixture.wav")
    assert meta.success and meta.message == "completed"
    assert (meta.num_channels, meta.sample_rate) == (2, 22050)
    assert meta.duration == pytest.approx(info.duration)


def test_two_stem_separation_sums_to_mixture(client, track_dir, tmp_path):
    result = client.separate(track_dir / "alpha" / "mixture.wav", tmp_path, track="alpha")
    assert sorted(result.stems) == ["accompaniment", "vocals"]
    mix, sr = load_audio(track_dir / "alpha" / "mixture.wav")
    stems = {k: load_audio(p) for k, p in result.stems.items()}
    for y, stem_sr in stems.values():
        assert stem_sr == sr and y.shape == mix.shape
    total = sum(y for y, _ in stems.values())
    assert np.max(np.abs(total - mix)) < 1e-4
    names = [e.name for e in result.events]
    assert names == EVENT_ORDER
    stamps = [e.timestamp for e in result.events]
    assert stamps == sorted(stamps) and all(t.tzinfo is not None for t in stamps)
    assert {o.step for o in result.observations} >= {"upload", "submit", "wait", "download"}


def test_progress_is_iso_z_and_output_files_appear_last(finished, sandbox):
    c, job, status = finished
    raw = requests.get(
        f"{c.profile.base_url}/separation/progress",
        params={"separationId": job.job_id},
        headers={"Authorization": c.authenticate()},
    ).json()
    for e in raw["events"]:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["timestamp"])
        datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        assert set(e) == {"event", "guid", "timestamp", "message"}
    assert raw["outputFiles"] == ["vocals.wav", "drums.wav", "bass.wav", "other.wav"]
    sep = sandbox.app.state.sourceress.separations[job.job_id]
    assert all(p.is_file() for p in sep.stems.values())


def test_four_stems_sum_and_keep_panning(finished, tmp_path, track_dir):
    c, job, status = finished
    files = c.fetch(job, status, tmp_path, fmt="wav")
    assert sorted(files) == ["bass", "drums", "other", "vocals"]
    mix, _ = load_audio(track_dir / "alpha" / "mixture.wav")
    total = sum(load_audio(p)[0] for p in files.values())
    assert np.max(np.abs(total - mix)) < 1e-4
    drums, _ = load_audio(files["drums"])
    assert drums.shape == mix.shape


@pytest.mark.parametrize("fmt", ["flac", "mp3", "m4a"])
def test_download_formats(finished, tmp_path, fmt):
    c, job, _ = finished
    path = c.fetch_file(job.job_id, "vocals", fmt, tmp_path / f"vocals.{fmt}")
    y, sr = load_audio(path)
    assert sr == 22050 and y.shape[0] == 2
    assert abs(y.shape[1] - 4 * 22050) < 4096  # lossy codecs pad a little


def test_download_accepts_dotted_format_and_refuses_unknown(finished, tmp_path):
    c, job, _ = finished
    url = c.download_url(job.job_id, "bass", ".wav")
    assert url.method == "GET"
    resp = requests.get(
        f"{c.profile.base_url}/separation/download",
        params={"separationId": job.job_id, "fileName": "bass", "fileFormat": "ogg"},
        headers={"Authorization": c.authenticate()},
    )
    assert resp.status_code == 400 and "fileFormat" in resp.json()["message"]


def test_signed_urls_are_signed_and_expire(finished, sandbox):
    c, job, _ = finished
    url = c.download_url(job.job_id, "vocals", "wav").signed_url
    assert requests.get(url).status_code == 200
    tampered = re.sub(r"sig=[0-9a-f]{4}", "sig=0000", url)
    assert requests.get(tampered).status_code == 403
    past = re.sub(r"expires=\d+", f"expires={int(time.time()) - 5}", url)
    resp = requests.get(past)
    assert resp.status_code == 403 and "expired" in resp.json()["message"]


def test_mix_renders_volume_and_pan(finished, tmp_path):
    c, job, _ = finished
    mix_id = c.mix(
        job.job_id,
        [
            MixTrack(fileName="vocals.wav", volume=0.5, pan=-1),
            {"fileName": "bass.wav", "volume": 1.0, "pan": 1},
        ],
        "my mix",
    )
    assert mix_id.startswith("mix/mix_")
    y, _ = load_audio(c.fetch_file(job.job_id, mix_id, "wav", tmp_path / "mix.wav"))
    vocals, _ = load_audio(c.fetch_file(job.job_id, "vocals", "wav", tmp_path / "v.wav"))
    bass, _ = load_audio(c.fetch_file(job.job_id, "bass", "wav", tmp_path / "b.wav"))
    np.testing.assert_allclose(y[0], 0.5 * vocals[0], atol=1e-5)  # left: half the vocals
    np.testing.assert_allclose(y[1], bass[1], atol=1e-5)  # right: the bass only
    mp3 = c.fetch_file(job.job_id, mix_id, "mp3", tmp_path / "mix.mp3")
    assert load_audio(mp3)[0].shape[0] == 2


def test_mix_validates_tracks(finished):
    c, job, _ = finished
    with pytest.raises(RequestError, match="invalid mix track"):
        c.mix(job.job_id, [{"fileName": "vocals.wav", "volume": 2}], "loud")
    with pytest.raises(RequestError, match="no output file"):
        c.mix(job.job_id, [{"fileName": "piano.wav"}], "nope")


def test_zip_holds_the_chosen_stems(finished, tmp_path):
    c, job, _ = finished
    path = c.zip(job.job_id, ["bass", "vocals"], "flac", "myzipfile")
    assert re.fullmatch(r"zip/[0-9a-f-]{36}\.zip", path)
    dest = c.fetch_file(job.job_id, path, "zip", tmp_path / "stems.zip")
    with zipfile.ZipFile(dest) as zf:
        assert sorted(zf.namelist()) == ["bass.flac", "vocals.flac"]
        y, sr = sf.read(io.BytesIO(zf.read("bass.flac")))
    assert sr == 22050 and y.shape[1] == 2


def test_trial_separates_the_requested_section(client, track_dir, tmp_path):
    result = client.separate(
        track_dir / "beta" / "mixture.wav",
        tmp_path,
        track="beta",
        trial_seconds=1.5,
        trial_start=1.0,
    )
    names = [e.name for e in result.events]
    assert "Trial Chunking Start" in names and "Trial Chunking Done" in names
    mix, sr = load_audio(track_dir / "beta" / "mixture.wav")
    total = sum(load_audio(p)[0] for p in result.stems.values())
    assert total.shape[1] == int(1.5 * sr)
    np.testing.assert_allclose(total, mix[:, sr : sr + total.shape[1]], atol=1e-4)


def test_other_user_cannot_see_separations(finished):
    c, job, _ = finished
    other = connect("sourceress", username="other-user", password="other-password")
    with pytest.raises(RequestError) as err:
        other.progress(job.job_id)
    assert err.value.status == 404


def test_not_audio_fails_at_metadata_with_a_clear_message(client, tmp_path):
    bogus = tmp_path / "notes.wav"
    bogus.write_text("this is a text file, not audio\n" * 10)
    slot = client.create_upload()
    client.upload(slot, bogus)
    meta = client.metadata(slot.upload_id)
    assert not meta.success and "unreadable audio" in meta.message
    with pytest.raises(AudioError, match="cannot read"):
        client.submit(bogus, track="bogus", stems=["vocals", "accompaniment"])
    with pytest.raises(RequestError) as err:
        client.start_separation(slot.upload_id, 6)
    assert err.value.status == 422


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "words"),
    [
        ("POST", "/auth/", {"data": "{not json"}, 400, "not valid JSON"),
        ("POST", "/auth/", {"json": {"username": "qa-user"}}, 400, "password"),
        (
            "POST",
            "/separation/separate",
            {"json": {"uploadId": "x", "separationAlgorithm": 5}},
            400,
            "separationAlgorithm",
        ),
        ("POST", "/separation/separate", {"json": ["a list"]}, 400, "JSON object"),
        (
            "POST",
            "/separation/separate",
            {"json": {"uploadId": "nope", "separationAlgorithm": 6}},
            404,
            "upload",
        ),
        (
            "POST",
            "/separation/trial",
            {"json": {"uploadId": "x", "separationAlgorithm": 6, "trialSectionSeconds": -1}},
            400,
            "trial",
        ),
        ("GET", "/separation/progress", {}, 400, "separationId"),
        ("GET", "/separation/progress", {"params": {"separationId": "zzz"}}, 404, "zzz"),
        ("GET", "/separation/metadata", {"params": {"uploadId": "zzz"}}, 404, "upload"),
        (
            "POST",
            "/separation/mix",
            {"json": {"separationId": "zzz", "tracks": [], "mixName": "m"}},
            400,
            "tracks",
        ),
        (
            "POST",
            "/separation/zip",
            {"json": {"separationId": "zzz", "tracks": ["vocals"]}},
            404,
            "zzz",
        ),
    ],
)
def test_bad_requests_get_4xx_with_a_message(client, method, path, kwargs, status, words):
    headers = {"Authorization": client.authenticate(), "Content-Type": "application/json"}
    resp = requests.request(method, client.profile.base_url + path, headers=headers, **kwargs)
    assert resp.status_code == status, resp.text
    assert words.lower() in resp.json()["message"].lower()


def test_calls_without_token_are_refused(sandbox):
    resp = requests.post(f"{sandbox.url}/sourceress/separation/create")
    assert resp.status_code == 401 and resp.json()["message"]


def test_callback_is_posted_to_loopback_only(client, track_dir, sandbox):
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/done"
        job = client.submit(
            track_dir / "beta" / "mixture.wav",
            track="beta",
            callback_url=url,
            custom_metadata="bless the rains",
        )
        client.wait(job, timeout=60)
        job2 = client.submit(
            track_dir / "beta" / "mixture.wav", track="beta", callback_url="example-url.com"
        )
        client.wait(job2, timeout=60)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
    assert got and b"outputFiles" in got[0]
    log = sandbox.stats()["callbacks"]
    assert any(e["url"] == "example-url.com" and not e["sent"] for e in log)


def test_upload_streams_from_disk(client, tmp_path, monkeypatch):
    path = tmp_path / "x.wav"
    sf.write(path, np.zeros((22050, 1), np.float32), 22050)
    seen = {}
    original = client.session.request

    def spy(method, url, **kw):
        if method == "PUT":
            seen["body"] = kw.get("data")
        return original(method, url, **kw)

    monkeypatch.setattr(client.session, "request", spy)
    client.upload(client.create_upload(), path)
    assert hasattr(seen["body"], "read")  # a file object, not bytes in memory
    assert Path(seen["body"].name) == path
