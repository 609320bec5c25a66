"""The Sourceress doc's own example bodies parse into the client's typed models."""

from __future__ import annotations

import pytest

from stemkit.errors import RequestError
from stemkit.providers.sourceress import (
    AuthResponse,
    Metadata,
    MixCreated,
    Progress,
    SeparationStarted,
    SignedUrl,
    SourceressProvider,
    UploadSlot,
    ZipCreated,
    algorithm_for,
)

from .conftest import vendor_fixture


def doc_bodies() -> list[dict]:
    """Every JSON object printed in the doc, with its prose annotations removed."""
    return vendor_fixture("sourceress_doc_bodies")["bodies"]


def find(keys: set[str]) -> dict:
    return next(b for b in doc_bodies() if keys <= set(b))


def test_every_response_example_parses():
    assert AuthResponse.model_validate(find({"token", "expiry"})).expiry == 86400
    slot = UploadSlot.model_validate(find({"uploadId", "signedUrl"}))
    assert slot.upload_id == "5f0c5fbab669c67bbbd1e2eb" and slot.method == "PUT"
    meta = Metadata.model_validate(find({"duration", "numChannels"}))
    assert (meta.duration, meta.num_channels, meta.sample_rate, meta.success) == (
        33.827868,
        2,
        44100,
        True,
    )
    assert SeparationStarted.model_validate(find({"separationId"})).separation_id
    url = SignedUrl.model_validate(find({"signedUrl", "method"} | {"expiry"}))
    assert url.signed_url.startswith("https://")
    assert MixCreated.model_validate(find({"mixId"})).mix_id.startswith("mix/mix_")
    assert ZipCreated.model_validate(find({"zipFilePath"})).zip_file_path.endswith(".zip")


def test_progress_examples_parse_and_finish_rule():
    bodies = [b for b in doc_bodies() if "events" in b]
    assert len(bodies) == 2
    during, finished = (Progress.model_validate(b) for b in bodies)
    assert not during.finished and finished.finished
    assert finished.output_files == ["track.wav", "vocals.wav"]
    assert finished.events[-1].event == "Finalising"
    assert finished.events[0].timestamp.tzinfo is not None


def test_request_examples_match_client_bodies():
    sep = find({"uploadId", "separationAlgorithm", "customMetadata"})
    body = SourceressProvider._separation_body(
        sep["uploadId"],
        sep["separationAlgorithm"],
        custom_metadata=sep["customMetadata"],
        callback_url=sep["callbackUrl"],
    )
    assert body == {
        k: sep[k] for k in ("uploadId", "separationAlgorithm", "customMetadata", "callbackUrl")
    }
    trial = find({"trialSectionSeconds"})
    body = SourceressProvider._separation_body(
        trial["uploadId"],
        6,
        trial_section_seconds=trial["trialSectionSeconds"],
        trial_section_start=trial["trialSectionStart"],
    )
    assert body["trialSectionSeconds"] == 50.6 and body["trialSectionStart"] == 10.2
    mix = find({"tracks", "mixName"})
    assert {t["fileName"] for t in mix["tracks"]} == {"track.wav", "vocals.wav"}
    zipped = find({"tracks", "zipFileName"})
    assert zipped["format"] == "mp3"


def test_algorithm_choice_and_bad_options():
    assert algorithm_for(["vocals", "track"]) == 6
    assert algorithm_for(["vocals", "drums", "bass", "other"]) == 7
    with pytest.raises(RequestError, match="cannot deliver"):
        algorithm_for(["piano"])
    with pytest.raises(RequestError, match="6 or 7"):
        SourceressProvider._separation_body("u", 5)
    with pytest.raises(RequestError, match="unknown separation option"):
        SourceressProvider._separation_body("u", 6, colour="blue")
