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
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from stemkit.batchdir import BatchFolder
from stemkit.errors import Abandoned, AmbiguousSubmission, JobLost, StemkitError
from stemkit.providers import connect
from stemkit.providers.files import sha256_file
from stemkit.providers.records import Job
from stemkit.providers.transport import AMBIGUOUS_HINT
from stemkit.separate.ledger import Ledger
from stemkit.separate.states import check_retry, state_after, unexpected
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


def _name_the_row(exc: StemkitError, track: str, source: str) -> None:
    """Errors of a transcription name the batch's track and the ledger's row (``loom:SOURCE``,
    what ``stemkit jobs resolve`` takes), not the job name the vendor was given.

    Examples
    --------
    >>> from stemkit.errors import JobLost
    >>> e = JobLost("gone", provider="loom", track="t1-reference",
    ...             hint="`stemkit jobs resolve OUT t1-reference loom --resubmit`")
    >>> _name_the_row(e, "t1", "reference")
    >>> e.where, e.hint
    ('loom / t1', '`stemkit jobs resolve OUT t1 loom:reference --resubmit`')
    """
    vendor_name = f"{track}-{source}"
    if exc.track in (None, vendor_name):
        exc.track = track
    if exc.hint:
        exc.hint = exc.hint.replace(f"{vendor_name} loom ", f"{track} loom:{source} ")
    exc.provider = exc.provider or "loom"
    exc.args = (exc.message,)


def transcribe_one(
    loom,
    out: str | Path | BatchFolder,
    ledger: Ledger,
    track: str,
    source: str,
    audio: Path,
    *,
    retry: Collection[str] = (),
) -> dict[str, Any]:
    """Transcribe one source of one track (or reuse a verified earlier transcript); never
    raises. The ledger protocol is the separation's (:func:`stemkit.separate.run.run_job`):
    ``submitting → creating → submitted → done``; a job killed during its creation is
    ``ambiguous`` and never sent again by itself, a submitted one is resumed."""
    batch = BatchFolder(out)
    folder = batch.transcript_dir(track, source)
    name = f"loom:{source}"
    record: dict[str, Any] = {
        "provider": "loom",
        "track": track,
        "source": source,
        "audio": str(audio),
        "state": "failed",
    }
    key = None
    submitted = False
    creating: list[bool] = []
    try:
        key = ledger.request_key(sha256_file(audio), ["transcript"], {"source": source})
        row = ledger.get(track, name, key)
        state = row["state"] if row else None
        if state in retry or (state == "creating" and "ambiguous" in retry):
            row = None
        old = batch.read_transcript_record(track, source)
        if row and row["state"] == "done" and old and (folder / "transcript.txt").is_file():
            return old
        if row and row["state"] == "creating":
            ledger.mark(
                track,
                name,
                key,
                "ambiguous",
                error="the last run stopped while the job was being created",
            )
            row = ledger.get(track, name, key)
        if row and row["state"] == "ambiguous":
            raise AmbiguousSubmission(
                f"an earlier submission may have been accepted ({row['error']})",
                hint=AMBIGUOUS_HINT,
                step="submit",
            )
        if row and row["state"] == "abandoned":
            raise Abandoned(f"abandoned by hand ({row['error']})", step="submit")
        if row and row["state"] == "lost":
            raise JobLost(
                f"lost at the vendor ({row['error']})", hint="rerun with --retry lost", step="poll"
            )
        if row and row["state"] in ("submitted", "done") and row["job"]:
            job = Job.from_dict(row["job"])
            record["resumed"] = f"job {job.job_id} resumed, not submitted again"
        else:
            ledger.mark(track, name, key, "submitting")

            def before_create(pending=None) -> None:  # Loom cannot find a lost create
                creating.append(True)
                ledger.mark(track, name, key, "creating")

            loom.hooks.before_create = before_create
            try:
                job = loom.submit(audio, track=f"{track}-{source}")
            finally:
                loom.hooks.before_create = None
            ledger.mark(track, name, key, "submitted", job=job.to_dict())
        submitted = True
        result = loom.finish(job, folder)
        ledger.mark(track, name, key, "done", job={"job_id": result.job_id})
        record.update(
            state="done",
            error=None,
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
            clock_bounds=result.clock_bounds,
        )
    except StemkitError as exc:
        _name_the_row(exc, track, source)
        record.update(exc.to_dict(), state="failed")
        if key is not None:
            ledger.mark(track, name, key, state_after(exc, submitted), error=exc.message)
        log.warning("%s", exc.message)
    except Exception as exc:  # noqa: BLE001 - one job's failure never stops the batch
        err = unexpected(exc, provider="loom", track=track)
        record.update(err.to_dict(), state="failed")
        if key is not None:
            state = "submitted" if submitted else "ambiguous" if creating else "failed"
            ledger.mark(track, name, key, state, error=err.message)
        log.warning("%s", err.message)
    try:
        batch.write_transcript_record(track, source, record)
    except OSError as exc:
        log.warning("loom / %s: transcript record not written: %s", track, exc)
    return record


def transcribe_batch(
    out: str | Path,
    *,
    profile: str | None = None,
    progress: bool = True,
    wait: float = 0,
    retry: Sequence[str] = (),
) -> pd.DataFrame:
    """Transcribe every speech source of every track with a script in a batch folder.

    Runs after the separate step (it needs the stems); jobs run concurrently up to the loom
    profile's ``max_in_flight``. Returns one row per (track, source) with state and error.
    Holds the folder's ``separate`` lock (one writer per batch; ``wait`` and ``retry`` as in
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
        return _transcribe_all(loom, out, todo, progress, check_retry(retry))


def transcript_table(out: str | Path | BatchFolder) -> pd.DataFrame:
    """One row per transcription of the batch (track, source, state, error), from the
    ``record.json`` files the separate phase wrote.

    Examples
    --------
    >>> import tempfile
    >>> b = BatchFolder(tempfile.mkdtemp())
    >>> b.write_info({"tracks": [{"name": "t1", "mixture": "m.wav"}], "providers": ["local"]})
    >>> transcript_table(b).empty
    True
    """
    batch = BatchFolder(out)
    cols = ["track", "source", "state", "error"]
    rows = [{k: r.get(k) for k in cols} for t in batch.tracks for r in batch.transcript_records(t)]
    return pd.DataFrame(rows, columns=cols)


def _transcribe_all(
    loom, out: BatchFolder, todo: list, progress: bool, retry: frozenset[str]
) -> pd.DataFrame:
    from tqdm.auto import tqdm

    ledger = Ledger(out.root)
    with ThreadPoolExecutor(max(1, loom.profile.max_in_flight)) as pool:
        futures = [
            pool.submit(transcribe_one, loom, out, ledger, *item, retry=retry) for item in todo
        ]
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
