"""The sandbox's Sourceress API answers in the shapes the vendor's doc prints: for every
response example of the doc (``tests/fixtures/sourceress_doc_bodies.json``), the sandbox's answer
to the same call has the same fields with the same JSON types, nested lists and objects too."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from stemkit.sandbox import sourceress_schema as S

from .conftest import CREDS, vendor_fixture

#: each answer of the flow, and its strict model written from the doc
MODELS = {
    "auth": S.Auth,
    "create": S.UploadSlot,
    "metadata": S.Metadata,
    "separate": S.SeparationStarted,
    "progress_done": S.Progress,
    "download": S.SignedUrl,
    "mix": S.MixCreated,
    "zip": S.ZipCreated,
}


def shape(value: Any) -> Any:
    """The JSON type structure of a value: objects by key, lists by their first item, numbers
    as one type (the doc prints ``86400`` and ``33.827868`` alike)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def doc_example(*keys: str) -> dict:
    """The doc's example body with exactly these fields."""
    return next(b for b in vendor_fixture("sourceress_doc_bodies")["bodies"] if set(keys) == set(b))


@pytest.fixture(scope="module")
def answers(sandbox, track_dir) -> dict[str, dict]:
    """One call of each documented kind against the sandbox, raw HTTP, answers by name."""
    base = f"{sandbox.url}/sourceress"
    s = requests.Session()
    out: dict[str, dict] = {}
    out["auth"] = s.post(
        f"{base}/auth/", json={"username": CREDS["username"], "password": CREDS["password"]}
    ).json()
    s.headers["Authorization"] = out["auth"]["token"]
    out["create"] = s.post(f"{base}/separation/create").json()
    audio = (track_dir / "alpha" / "mixture.wav").read_bytes()
    assert s.put(out["create"]["signedUrl"], data=audio).status_code == 200
    upload = out["create"]["uploadId"]
    deadline = time.monotonic() + 60
    while (
        r := s.get(f"{base}/separation/metadata", params={"uploadId": upload})
    ).status_code == 202:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out["metadata"] = r.json()
    out["separate"] = s.post(
        f"{base}/separation/separate", json={"uploadId": upload, "separationAlgorithm": 6}
    ).json()
    sep = out["separate"]["separationId"]
    out["progress_during"] = s.get(
        f"{base}/separation/progress", params={"separationId": sep}
    ).json()
    while not (p := s.get(f"{base}/separation/progress", params={"separationId": sep}).json())[
        "outputFiles"
    ]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out["progress_done"] = p
    params = {"separationId": sep, "fileName": "vocals", "fileFormat": "wav"}
    while (r := s.get(f"{base}/separation/download", params=params)).status_code == 202:
        time.sleep(0.05)
    out["download"] = r.json()
    tracks = [{"fileName": "vocals", "volume": 1.0, "pan": 0.0}]
    out["mix"] = s.post(
        f"{base}/separation/mix", json={"separationId": sep, "tracks": tracks, "mixName": "m"}
    ).json()
    out["zip"] = s.post(
        f"{base}/separation/zip",
        json={"separationId": sep, "tracks": ["vocals"], "format": "wav", "zipFileName": "z"},
    ).json()
    return out


@pytest.mark.parametrize(
    ("call", "keys"),
    [
        ("auth", ("token", "expiry", "token_type")),
        ("create", ("uploadId", "signedUrl", "expiry", "method")),
        ("metadata", ("duration", "numChannels", "sampleRate", "message", "success")),
        ("separate", ("separationId",)),
        ("progress_done", ("events", "outputFiles")),
        ("download", ("signedUrl", "expiry", "method")),
        ("mix", ("mixId",)),
        ("zip", ("zipFilePath",)),
    ],
)
def test_every_answer_has_the_shape_of_the_docs_example(answers, call, keys):
    example = doc_example(*keys)
    if call == "progress_done":
        example = vendor_fixture("sourceress_progress")["bodies"][1]
    assert shape(answers[call]) == shape(example)


def test_every_answer_and_every_doc_example_passes_the_sandbox_schema(answers):
    for call, model in MODELS.items():
        model.model_validate(answers[call])
    # the doc's examples: each response body validates against the model with its fields; the
    # rest are the request bodies the doc prints (credentials, separate, trial, mix, zip)
    responses = requests_ = 0
    for body in vendor_fixture("sourceress_doc_bodies")["bodies"]:
        model = next((m for m in MODELS.values() if set(m.model_fields) == set(body)), None)
        if model is None:
            assert {"username", "uploadId", "tracks"} & set(body), body
            requests_ += 1
        else:
            model.model_validate(body)
            responses += 1
    assert (responses, requests_) == (10, 5)
