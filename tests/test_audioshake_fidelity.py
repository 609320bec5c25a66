"""The sandbox's AudioShake legacy API as the vendor publishes it: what a client generated from
the vendor's spec meets (issue: sandbox fidelity). Every answer is validated against the strict
models of :mod:`stemkit.sandbox.audioshake_schema`, which the vendor's own example passes too."""

from __future__ import annotations

import time

import pytest
import requests

from stemkit.providers import connect
from stemkit.sandbox.audioshake_schema import Asset, JobResponse

from .conftest import CREDS, vendor_fixture


@pytest.fixture()
def api(sandbox):
    """A session on the sandbox's /audioshake with the test token."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {CREDS['token']}"
    s.base = f"{sandbox.url}/audioshake"
    return s


def upload(api, path) -> dict:
    with open(path, "rb") as fh:
        resp = api.post(f"{api.base}/upload/", files={"file": (path.name, fh, "audio/wav")})
    assert resp.status_code == 200, resp.text
    return Asset.model_validate(resp.json()).model_dump()


def create(api, asset_id: str, metadata: dict) -> requests.Response:
    return api.post(f"{api.base}/job/", json={"assetId": asset_id, "metadata": metadata})


def finished(api, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = api.get(f"{api.base}/job/{job_id}")
        assert resp.status_code == 200, resp.text
        body = JobResponse.model_validate(resp.json()).model_dump(exclude_none=True)
        if body["job"]["status"] in ("completed", "failed"):
            return body["job"]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_the_vendors_completed_example_passes_the_sandbox_schema():
    job = JobResponse.model_validate(vendor_fixture("audioshake_completed_job")["body"]).job
    assert job.statusInfo.code is None and job.outputAssets[0].name == "instrumental.wav"


def test_status_info_code_is_a_number_and_completed_jobs_show_an_empty_status_info(api, track_dir):
    asset = upload(api, track_dir / "alpha" / "mixture.wav")
    done = create(api, asset["id"], {"name": "vocals", "format": "wav"})
    failed = create(api, asset["id"], {"name": "transcription", "format": "wav"})
    assert done.status_code == failed.status_code == 200
    JobResponse.model_validate(done.json())  # the created job: the strict schema too
    ok = finished(api, done.json()["job"]["id"])
    bad = finished(api, failed.json()["job"]["id"])
    assert ok["status"] == "completed" and ok["statusInfo"] == {}
    assert bad["status"] == "failed"
    assert isinstance(bad["statusInfo"]["code"], int | float) and bad["statusInfo"]["message"]


def test_audio_link_upload_is_served(api, track_dir):
    source = upload(api, track_dir / "alpha" / "mixture.wav")
    for route in ("upload/link", "upload/audio-link"):
        resp = api.post(f"{api.base}/{route}", json={"link": source["link"], "name": "song"})
        assert resp.status_code == 200, (route, resp.text)
        Asset.model_validate(resp.json())


def test_a_link_upload_named_without_extension_gets_its_format_from_the_content(
    api, track_dir, tmp_path
):
    source = upload(api, track_dir / "alpha" / "mixture.wav")
    asset = api.post(
        f"{api.base}/upload/link", json={"link": source["link"], "name": "song"}
    ).json()
    assert (asset["name"], asset["format"], asset["fileType"]) == ("song", "wav", "audio/wav")
    assert source["fileType"] == "audio/wav"  # a MIME type, as the vendor's examples show


def test_every_documented_metadata_field_is_accepted_and_unknown_ones_refused(api, track_dir):
    asset = upload(api, track_dir / "alpha" / "mixture.wav")
    resp = create(api, asset["id"], {"name": "vocals", "format": "wav", "licenseId": "lic-7"})
    assert resp.status_code == 200, resp.text
    job = finished(api, resp.json()["job"]["id"])
    assert job["licenseId"] == "lic-7"
    refused = create(api, asset["id"], {"name": "vocals", "colour": "blue"})
    assert refused.status_code == 400 and "colour" in refused.json()["message"]


def test_output_assets_are_named_with_their_extension_and_a_mime_type(api, track_dir):
    asset = upload(api, track_dir / "alpha" / "mixture.wav")
    resp = create(api, asset["id"], {"name": "vocals", "format": "flac", "residual": True})
    job = finished(api, resp.json()["job"]["id"])
    names = {(a["name"], a["fileType"], a["format"]) for a in job["outputAssets"]}
    assert names == {
        ("vocals.flac", "audio/flac", "flac"),
        ("vocals_residual.flac", "audio/flac", "flac"),
    }


def test_stem_name_is_accepted_for_name_but_not_both_differently(api, track_dir):
    asset = upload(api, track_dir / "alpha" / "mixture.wav")
    resp = create(api, asset["id"], {"stemName": "bass", "format": "wav"})
    assert resp.status_code == 200, resp.text
    job = finished(api, resp.json()["job"]["id"])
    assert job["metadata"]["name"] == "bass" and job["stemMetadata"]["stemName"] == "bass"
    both = create(api, asset["id"], {"stemName": "bass", "name": "drums"})
    assert both.status_code == 400 and "stemName" in both.json()["message"]


def test_our_client_still_separates_against_the_faithful_sandbox(
    sandbox, fast_profile, track_dir, tmp_path
):
    """The client sends ``name`` (see docs/vendors.md), reads numeric codes, names with
    extensions, and a licenseId when given."""
    client = connect("audioshake")
    result = client.separate(track_dir / "alpha" / "mixture.wav", tmp_path, stems=["vocals"])
    assert sorted(result.stems) == ["vocals"] and result.stems["vocals"].suffix == ".wav"
    job = client.create_job(
        client.upload_file(track_dir / "alpha" / "mixture.wav").id,
        {"name": "drums", "licenseId": "lic-9"},
    )
    assert job.id
