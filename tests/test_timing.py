"""Timing: the vendor doc's own progress example gives the documented stage durations."""

from __future__ import annotations

import re

import pytest

from stemkit.timing import stages_from_events, stages_from_stamps, summarize, timeline

from .conftest import vendor_fixture


def doc_progress_bodies() -> list[dict]:
    """The 'during' and 'finished' progress bodies printed in the Sourceress doc."""
    return vendor_fixture("sourceress_progress")["bodies"]


def test_doc_example_gives_documented_stage_durations():
    during, finished = doc_progress_bodies()
    assert during["outputFiles"] is None
    assert finished["outputFiles"] == ["track.wav", "vocals.wav"]
    stages = {r["stage"]: r["seconds"] for r in stages_from_events(finished["events"])}
    assert stages == {
        "formatting": 8.062,
        "metadata": 0.006,
        "trial chunking": 6.409,
        "queue wait": 3.226,
        "processing": 50.161,
    }


def test_unfinished_stage_is_left_out():
    during, _ = doc_progress_bodies()
    stages = [r["stage"] for r in stages_from_events(during["events"])]
    assert "processing" not in stages  # Processing has no Finalising yet
    assert stages[-1] == "queue wait"


def test_stamps_give_queue_and_processing():
    rows = stages_from_stamps(
        "2024-05-01T10:00:00Z", "2024-05-01T10:00:04.5Z", "2024-05-01T10:01:04.5Z"
    )
    assert [(r["stage"], r["seconds"]) for r in rows] == [("queue wait", 4.5), ("processing", 60.0)]


def test_timeline_adds_client_steps_and_end_to_end():
    _, finished = doc_progress_bodies()
    obs = [
        {"step": "upload", "start": "2020-07-21T14:50:50Z", "end": "2020-07-21T14:50:56Z"},
        {"step": "download", "start": "2020-07-21T14:52:10Z", "end": "2020-07-21T14:52:12Z"},
    ]
    tl = timeline(finished["events"], obs, provider="sourceress", track="t", job_id="j")
    client = tl[tl["source"] == "client"].set_index("stage")["seconds"]
    assert client["upload"] == 6.0
    assert client["end to end"] == 82.0
    assert set(tl["provider"]) == {"sourceress"}
    summary = summarize(tl, {"t": 33.827868})
    assert summary.loc[0, "processing"] == pytest.approx(50.161)
    assert summary.loc[0, "rtf"] == pytest.approx(50.161 / 33.827868)


def test_timestamps_are_utc():
    rows = stages_from_events(
        [
            ("Processing", "2020-07-21T16:51:15.846+02:00"),
            ("Finalising", "2020-07-21T14:52:06.007Z"),
        ]
    )
    assert rows[0]["seconds"] == 50.161
    assert re.search(r"\+00:00$", rows[0]["start"].isoformat())
