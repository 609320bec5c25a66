"""Transcription of a batch's speech (the separate phase's second half).

For every track with a known script, the transcription vendor (``loom``) transcribes the
mixture, the reference dialogue and each separation provider's dialogue (or vocals) stem; the
analyze phase scores them (:mod:`stemkit.analyze.intelligibility`).

Outputs, per track and source, in ``<out>/transcripts/<track>/<source>/``: ``transcript.txt``,
``words.json`` and ``record.json`` (state, error, timings), like the stems' records.

Examples
--------
>>> transcribe_batch("reports/demo")   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from stemkit.batchdir import BatchFolder
from stemkit.errors import StemkitError
from stemkit.providers import connect
from stemkit.providers.files import sha256_file
from stemkit.separate.ledger import Ledger
from stemkit.separate.run import unexpected
from stemkit.stems import SPEECH_STEMS

log = logging.getLogger("stemkit.separate.transcribe")


def speech_sources(
    out: str | Path | BatchFolder, track: dict[str, Any], providers: list[str]
) -> dict[str, Path]:
    """What to transcribe for one track: ``{source: audio file}`` for the mixture, the
    reference dialogue and each provider's speech stem that exists on disk.

    Examples
    --------
    >>> speech_sources("/nonexistent", {"name": "t", "mixture": "m.wav"}, ["local"])
    {'mixture': PosixPath('m.wav')}
    """
    sources = {"mixture": Path(track["mixture"])}
    refs = track.get("references", {})
    ref = next((refs[s] for s in SPEECH_STEMS if s in refs), None)
    if ref:
        sources["reference"] = Path(ref)
    batch = BatchFolder(out)
    for provider in providers:
        files = batch.stem_files(track["name"], provider)
        found = next((files[s] for s in SPEECH_STEMS if s in files), None)
        if found is not None:
            sources[provider] = found
    return sources


def transcribe_one(
    loom, out: str | Path | BatchFolder, ledger: Ledger, track: str, source: str, audio: Path
) -> dict[str, Any]:
    """Transcribe one source of one track (or reuse a verified earlier transcript)."""
    batch = BatchFolder(out)
    folder = batch.transcript_dir(track, source)
    record: dict[str, Any] = {
        "provider": "loom",
        "track": track,
        "source": source,
        "audio": str(audio),
        "state": "failed",
    }
    try:
        key = ledger.request_key(sha256_file(audio), ["transcript"], {"source": source})
        row = ledger.get(track, f"loom:{source}", key)
        old = batch.read_transcript_record(track, source)
        if row and row["state"] == "done" and old and (folder / "transcript.txt").is_file():
            return old
        ledger.mark(track, f"loom:{source}", key, "submitting")
        result = loom.transcribe(audio, folder, track=f"{track}-{source}")
        ledger.mark(track, f"loom:{source}", key, "done", job={"job_id": result.job_id})
        record.update(
            state="done",
            job_id=f"{source}:{result.job_id}",
            text=result.text,
            is_blank=result.is_blank,
            audio_seconds=result.audio_seconds,
            vendor_stages=[
                {
                    **r,
                    "start": r["start"].isoformat(),
                    "end": r["end"].isoformat(),
                    "job_id": f"{source}:{r['job_id']}",
                }
                for r in result.vendor_stages
            ],
            observations=[
                {"step": o.step, "start": o.start.isoformat(), "end": o.end.isoformat()}
                for o in result.observations
            ],
        )
    except StemkitError as exc:
        exc.at(provider="loom", track=track)
        record.update(exc.to_dict(), state="failed")
        if "key" in locals():
            ledger.mark(track, f"loom:{source}", key, "failed", error=exc.message)
    except Exception as exc:  # noqa: BLE001 - one job's failure never stops the batch
        err = unexpected(exc, provider="loom", track=track)
        record.update(err.to_dict(), state="failed")
        log.warning("%s", err.message)
    batch.write_transcript_record(track, source, record)
    return record


def transcribe_batch(
    out: str | Path, *, profile: str | None = None, progress: bool = True, wait: float = 0
) -> pd.DataFrame:
    """Transcribe every speech source of every track with a script in a batch folder.

    Runs after the separate step (it needs the stems); jobs run concurrently up to the loom
    profile's ``max_in_flight``. Returns one row per (track, source) with state and error.
    Holds the folder's ``separate`` lock (one writer per batch; ``wait`` as in
    :func:`stemkit.separate.run.separate_batch`).

    Examples
    --------
    >>> transcribe_batch("reports/demo")   # doctest: +SKIP
    """

    out = BatchFolder(out)
    info = out.info()
    todo = [
        (t["name"], source, path)
        for t in info["tracks"]
        if t.get("transcript")
        for source, path in speech_sources(out, t, info["providers"]).items()
    ]
    if not todo:
        return pd.DataFrame(columns=["track", "source", "state", "error"])
    loom = connect("loom", profile)
    with out.lock("separate", wait=wait):
        return _transcribe_all(loom, out, todo, progress)


def _transcribe_all(loom, out: BatchFolder, todo: list, progress: bool) -> pd.DataFrame:
    from tqdm.auto import tqdm

    ledger = Ledger(out.root)
    with ThreadPoolExecutor(max(1, loom.profile.max_in_flight)) as pool:
        futures = [pool.submit(transcribe_one, loom, out, ledger, *item) for item in todo]
        records = [
            f.result()
            for f in tqdm(
                futures, desc="transcribe", unit="job", disable=not progress, mininterval=1.0
            )
        ]
    ledger.close()
    return pd.DataFrame(
        [{k: r.get(k) for k in ("track", "source", "state", "error")} for r in records]
    )
