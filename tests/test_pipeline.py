"""The separate phase: bad tracks become failed rows, reruns resume without paying twice."""

from __future__ import annotations

import json
import shutil

from stemkit.batchdir import BatchFolder
from stemkit.separate.ledger import Ledger
from stemkit.separate.run import separate_batch


def stats(sandbox) -> dict:
    return sandbox.stats()["sourceress"]


def bad_manifest(track_dir, tmp_path):
    """Two good tracks, one text file named .wav, one empty file."""
    root = tmp_path / "manifest"
    shutil.copytree(track_dir, root)
    (root / "notaudio").mkdir()
    (root / "notaudio" / "mixture.wav").write_text("hello, I am not audio\n" * 50)
    (root / "empty").mkdir()
    (root / "empty" / "mixture.wav").write_bytes(b"")
    return root


def test_bad_tracks_fail_cleanly_and_the_rest_completes(sandbox, fast_profile, track_dir, tmp_path):
    manifest = bad_manifest(track_dir, tmp_path)
    out = tmp_path / "batch"
    table = separate_batch(manifest, ["sourceress", "local"], out, progress=False)
    states = table.set_index(["track", "provider"])["state"].to_dict()
    assert states[("alpha", "sourceress")] == "done" and states[("beta", "local")] == "done"
    for track in ("notaudio", "empty"):
        for provider in ("sourceress", "local"):
            assert states[(track, provider)] == "failed"
            rec = BatchFolder(out).read_record(track, provider)
            assert rec["error_kind"] == "audio"
            assert track in rec["error"] and provider in rec["error"]
    assert "empty (0 bytes)" in BatchFolder(out).read_record("empty", "sourceress")["error"]
    assert "not readable audio" in BatchFolder(out).read_record("notaudio", "local")["error"]
    rec = BatchFolder(out).read_record("alpha", "sourceress")
    assert sorted(rec["stems"]) == ["accompaniment", "vocals"]
    assert [e["event"] for e in rec["events"]][-1] == "Finalising"
    assert json.loads((out / "batch.json").read_text())["providers"] == ["sourceress", "local"]
    assert (out / "tables" / "separate.csv").is_file()


def test_rerun_skips_verified_downloads_and_resumes_submitted_jobs(
    sandbox, fast_profile, track_dir, tmp_path
):
    out = tmp_path / "batch"
    separate_batch(track_dir, ["sourceress"], out, progress=False)
    before = stats(sandbox)
    table = separate_batch(track_dir, ["sourceress"], out, progress=False)
    assert set(table["state"]) == {"done"}
    assert table["resumed"].str.startswith("skipped").all()
    assert stats(sandbox) == before  # nothing uploaded or submitted again

    # a corrupted stem is downloaded again from the same job, not separated again
    vocals = out / "stems" / "alpha" / "sourceress" / "vocals.wav"
    vocals.write_bytes(b"garbage")
    table = separate_batch(track_dir, ["sourceress"], out, progress=False)
    row = table.set_index("track").loc["alpha"]
    assert row["state"] == "done" and "resumed, not submitted again" in row["resumed"]
    assert stats(sandbox)["separations"] == before["separations"]
    assert vocals.stat().st_size > 1000

    # a job killed after submission (ledger says submitted) is resumed, not resubmitted
    led = Ledger(out)
    key = next(iter(led._db.execute("SELECT request_key FROM jobs WHERE track='beta'")))[0]
    led.mark("beta", "sourceress", key, "submitted")
    led.close()
    table = separate_batch(track_dir, ["sourceress"], out, progress=False)
    assert table.set_index("track").loc["beta", "resumed"].endswith("not submitted again")
    assert stats(sandbox)["separations"] == before["separations"]

    # --force pays again, on purpose
    separate_batch(track_dir, ["sourceress"], out, progress=False, force=True)
    assert stats(sandbox)["separations"] == before["separations"] + 2


def test_unreachable_service_is_a_failed_row(track_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMKIT_SOURCERESS_BASE_URL", "http://127.0.0.1:9/sourceress")
    monkeypatch.setenv("STEMKIT_SOURCERESS_TIMEOUT", "2")
    table = separate_batch(track_dir, ["sourceress"], tmp_path / "b", progress=False)
    assert set(table["state"]) == {"failed"}
    assert table["error"].str.contains("reachable").all()


def test_failed_audioshake_job_message_reaches_the_record(
    sandbox, fast_profile, track_dir, tmp_path
):
    from stemkit.compare.report import load_batch

    out = tmp_path / "b"
    table = separate_batch(
        track_dir, ["audioshake"], out, stems=["vocals", "guitar"], progress=False
    )
    assert set(table["state"]) == {"failed"}
    rec = BatchFolder(out).read_record("alpha", "audioshake")
    assert rec["error_kind"] == "job_failed"
    assert "guitar job" in rec["error"] and "not available in the sandbox engine" in rec["error"]
    failures = load_batch(out).failures
    assert failures["error"].str.contains("not available in the sandbox engine").all()
