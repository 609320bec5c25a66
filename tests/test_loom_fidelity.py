"""The sandbox's Loom API answers with every field the vendor's doc prints, at every level
(``tests/fixtures/loom_job_details.json``); scalar types are not compared, because the doc's
examples print placeholders ("audio length in seconds") where the values are numbers, and the
client accepts both (see ``stemkit.providers.loom``)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from stemkit.sandbox import loom_schema as L

from .conftest import CREDS, ROOT, vendor_fixture


def fields(value: Any, where: str = "") -> set[str]:
    """Every field path of a JSON value (list items merged): ``job_data.job_info.status``."""
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            path = f"{where}.{k}" if where else k
            out |= {path} | fields(v, path)
        return out
    if isinstance(value, list):
        return set().union(*(fields(v, f"{where}[]") for v in value)) if value else set()
    return set()


@pytest.fixture(scope="module")
def details(sandbox) -> dict[str, dict]:
    base = f"{sandbox.url}/loom"
    auth = {"key": CREDS["key"], "secret": CREDS["secret"]}
    clip = ROOT / "data" / "speech" / "kitchen.flac"
    with open(clip, "rb") as fh:
        up = requests.post(f"{base}/upload/audio", data=auth, files={"file": (clip.name, fh)})
    assert up.status_code == 200, up.text
    job = requests.post(
        f"{base}/jobs/submit",
        json={
            **auth,
            "profile_name": "General Transcription",
            "job_name": "fidelity",
            "audio_files": [up.json()["audio_url"]],
        },
    ).json()
    job_id = job["job_reference_id"]
    running = requests.post(f"{base}/jobs/{job_id}/details", json=auth).json()
    poll = requests.post(f"{base}/jobs/{job_id}/poll", json=auth).json()
    deadline = time.monotonic() + 120
    while True:
        done = requests.post(f"{base}/jobs/{job_id}/details", json=auth).json()
        if done["msg"].startswith(("SUCCESS", "ERROR")) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return {"upload": up.json(), "submit": job, "poll": poll, "running": running, "done": done}


def test_a_finished_job_has_every_field_of_the_docs_example(details):
    example = vendor_fixture("loom_job_details")["bodies"][0]
    assert details["done"]["msg"].startswith("SUCCESS"), details["done"]["msg"]
    missing = fields(example) - fields(details["done"])
    assert missing == set(), sorted(missing)


def test_a_job_in_flight_has_every_field_but_the_outputs(details):
    example = vendor_fixture("loom_job_details")["bodies"][1]
    assert example["msg"].startswith("NOTICE")
    wanted = {f for f in fields(example) if ".output_files." not in f}
    if details["running"]["msg"].startswith("NOTICE"):
        assert wanted - fields(details["running"]) == set()
    else:  # finished before the first look: then it must be complete
        assert fields(example) - fields(details["running"]) == set()


def test_every_answer_passes_the_sandbox_schema(details):
    L.Upload.model_validate(details["upload"])
    L.Submitted.model_validate(details["submit"])
    L.Poll.model_validate(details["poll"])
    for key in ("running", "done"):
        L.Details.model_validate(details[key])
    assert details["done"]["job_data"]["job_files"]["output_files"]["transcripts"]
