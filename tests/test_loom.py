"""Loom: the doc's examples parse, completion is decided from msg/success/output_files, key and
secret travel only in bodies, real transcription over HTTP, WER normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import soundfile as sf

from stemkit.analyze.intelligibility import normalize, wer
from stemkit.errors import AuthError, JobFailed, RequestError
from stemkit.providers import connect
from stemkit.providers.loom import Details, LoomProvider, job_state

from .conftest import CREDS, ROOT, vendor_fixture

SPEECH = ROOT / "data" / "speech"


def doc_examples() -> list[dict]:
    """The five example bodies of the doc, placeholders filled (``file size in bytes``)."""
    return vendor_fixture("loom_job_details")["bodies"]


def test_doc_examples_parse_and_completion_ignores_the_status_field():
    bodies = doc_examples()
    assert len(bodies) == 5
    states = [job_state(b) for b in bodies]
    assert states == ["done", "running", "done", "running", "failed"]
    # the in-progress examples still say "completed": the client must not trust it
    assert all(b["job_data"]["job_info"]["status"] == "completed" for b in bodies)
    done = Details.model_validate(bodies[0])
    assert [t.filename for t in done.job_data.job_files.output_files.transcripts][0] == (
        "IME Doc Extraction.txt"
    )
    assert done.job_data.job_files.input_files[0].file_size == 1024


@pytest.fixture()
def loom(sandbox, fast_profile, monkeypatch) -> LoomProvider:
    monkeypatch.setenv("STEMKIT_LOOM_POLL_INTERVAL", "0.1")
    return connect("loom")


def test_transcribes_real_speech(loom, tmp_path):
    script = (SPEECH / "kitchen.txt").read_text()
    result = loom.transcribe(SPEECH / "kitchen.flac", tmp_path)
    assert wer(script, result.text) < 0.25
    assert not result.is_blank and result.audio_seconds == pytest.approx(
        sf.info(SPEECH / "kitchen.flac").duration, abs=0.01
    )
    assert result.words and all(w["start"] <= w["end"] for w in result.words)
    assert (tmp_path / "transcript.txt").is_file() and (tmp_path / "words.json").is_file()
    assert [r["stage"] for r in result.vendor_stages] == ["processing"]


def test_blank_audio_is_blank_not_an_empty_transcript(loom, tmp_path):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros((3 * 16000, 2), np.float32), 16000)
    result = loom.transcribe(silence, tmp_path / "out")
    assert result.is_blank and result.text == "" and result.words == []


def test_not_audio_fails_with_the_vendor_error_message(loom, tmp_path):
    bogus = tmp_path / "memo.wav"
    bogus.write_text("meeting notes, not audio")
    with pytest.raises(JobFailed) as err:
        loom.transcribe(bogus, tmp_path / "out")
    assert "unreadable audio" in str(err.value) and "loom" in str(err.value)


def test_wrong_secret_is_a_clear_auth_error_without_the_secret(sandbox, tmp_path):
    bad = connect("loom", secret="not-the-right-secret-42")
    with pytest.raises(AuthError) as err:
        bad.transcribe(SPEECH / "office.flac", tmp_path)
    text = str(err.value)
    assert "401" in text and "invalid key or secret" in text and "loom" in text
    assert "not-the-right-secret-42" not in text


def test_key_and_secret_only_in_bodies(loom, monkeypatch, tmp_path):
    sent = []
    real = loom.session.request

    def spy(method, url, **kw):
        sent.append((url, kw.get("headers"), kw.get("json"), kw.get("data")))
        return real(method, url, **kw)

    monkeypatch.setattr(loom.session, "request", spy)
    loom.transcribe(SPEECH / "station.flac", tmp_path)
    for url, headers, body, form in sent:
        assert "secret" not in url and "key=" not in url
        assert not headers or "secret" not in json.dumps(dict(headers))
        if "/loom/files/" not in url:
            assert (body or form)["secret"] == CREDS["secret"]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/jobs/submit", {"key": CREDS["key"], "secret": CREDS["secret"]}, 400, "profile_name"),
        (
            "/jobs/submit",
            {
                "key": CREDS["key"],
                "secret": CREDS["secret"],
                "profile_name": "p",
                "job_name": "j",
                "audio_files": ["loom://audio/none"],
            },
            400,
            "upload it first",
        ),
        ("/jobs/abc/details", {"key": CREDS["key"], "secret": CREDS["secret"]}, 404, "no job"),
        ("/jobs/abc/poll", {"key": CREDS["key"]}, 400, "secret"),
        ("/jobs/abc/poll", {"key": CREDS["key"], "secret": "x"}, 401, "invalid key or secret"),
    ],
)
def test_malformed_requests_get_4xx(sandbox, path, body, status, words):
    resp = requests.post(f"{sandbox.url}/loom{path}", json=body)
    assert resp.status_code == status
    assert words in (resp.json().get("msg") or resp.json().get("message"))


def test_expired_transcript_urls_are_refreshed(loom, tmp_path, monkeypatch):
    job = loom.submit(SPEECH / "office.flac", track="office")
    status = loom.wait(job, timeout=120)
    for t in status.raw.job_data.job_files.output_files.transcripts:
        t.download_url = t.download_url.replace("sig=", "sig=0")
    files = loom.fetch(job, status, tmp_path)
    assert files["transcript"].read_text().strip()


def test_normalisation_and_wer():
    assert normalize("Don't STOP — it's 10:30!") == "dont stop its 10 30"
    assert wer("a b c d", "a b c d") == 0.0
    assert wer("a b c d", "") == 1.0
    assert wer("one two three four", "one too three") == pytest.approx(0.5)
    with pytest.raises(ValueError):
        wer("", "x")


def test_job_state_rules():
    assert (
        job_state(
            {
                "success": True,
                "msg": "SUCCESS: done",
                "job_data": {"job_files": {"output_files": None}},
            }
        )
        == "running"
    )
    assert (
        job_state(
            {
                "success": True,
                "msg": "SUCCESS: x",
                "job_data": {"job_info": {"error_message": "boom"}, "job_files": {}},
            }
        )
        == "failed"
    )
    with pytest.raises(RequestError):
        from stemkit.providers.loom import LoomProvider as P

        P._download(
            connect("loom"),
            Details.model_validate(
                {
                    "success": True,
                    "msg": "SUCCESS",
                    "job_data": {"job_files": {"output_files": {"transcripts": []}}},
                }
            ),
            ROOT,
        )
