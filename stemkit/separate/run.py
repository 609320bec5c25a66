"""The separate phase of a batch: every track × provider, concurrently, resumable.

For each (track, provider) the job goes submit → wait → fetch; the ledger records each step, so
a rerun resumes a submitted job instead of submitting (and paying for) it again, and skips
stems that are already downloaded and still match their checksum. Remote waits happen in
threads (they hold no CPU); each provider has a cap on jobs in flight.

Outputs, per track and provider, in ``<out>/stems/<track>/<provider>/``: the stems as
``<canonical stem>.<fmt>`` and ``record.json`` (state, error, vendor events, the client's own
observations). ``<out>/tables/separate.csv`` has one row per job.

Examples
--------
>>> from stemkit.separate.run import separate_batch
>>> table = separate_batch("data/demo", ["sourceress"], "reports/demo")   # doctest: +SKIP
>>> table[["track", "provider", "state"]].head(2)                         # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pandas as pd

from stemkit.batchdir import BatchFolder
from stemkit.errors import (
    Abandoned,
    AmbiguousSubmission,
    AudioError,
    IntegrityError,
    JobFailed,
    JobLost,
    StemkitError,
)
from stemkit.providers import Provider, connect
from stemkit.providers.files import sha256_file
from stemkit.providers.records import Job, Observation, SeparationResult, utcnow
from stemkit.providers.transport import AMBIGUOUS_HINT
from stemkit.separate.ledger import Ledger
from stemkit.separate.manifest import Track, load_manifest
from stemkit.separate.states import check_retry, state_after, unexpected
from stemkit.timing import parse_time

log = logging.getLogger("stemkit.separate.run")


def _verified(ledger: Ledger, track: str, provider: str, stems: Sequence[str]) -> dict | None:
    """The recorded files if every stem is on disk with its recorded checksum."""
    files = {f["stem"]: f for f in ledger.files(track, provider)}
    if not stems or set(stems) - set(files):
        return None
    for stem in stems:
        path = Path(files[stem]["path"])
        if not path.is_file() or path.stat().st_size != files[stem]["size"]:
            return None
        if sha256_file(path) != files[stem]["sha256"]:
            return None
    return {s: Path(files[s]["path"]) for s in stems}


def run_job(
    provider: Provider,
    track: Track,
    out: str | Path | BatchFolder,
    ledger: Ledger,
    *,
    stems: Sequence[str] | None = None,
    fmt: str = "wav",
    options: dict[str, Any] | None = None,
    force: bool = False,
    retry: Collection[str] = (),
) -> dict[str, Any]:
    """Run (or resume) one track on one provider; never raises.

    The ledger decides what happens (``force`` ignores it and submits again; a state named
    in ``retry``, e.g. ``"ambiguous"``, is submitted again):

    ==============  =============================================================
    ledger state    this run
    ==============  =============================================================
    (none), failed  submit (a job the vendor failed is submitted again)
    submitting      the last run died before the paid call: submit
    creating        the last run died during the paid call: ambiguous (see below)
    submitted       resume the job: wait and download; nothing is submitted
    done            skip if every stem is on disk with its checksum, else download again
    ambiguous       a submission may have been accepted: report it, do not submit
    abandoned       a person gave it up (``stemkit jobs resolve``): do not submit
    lost            the vendor answered 404 for the job: report it, do not submit
    ==============  =============================================================

    A provider that can find a lost create again (``provider.reconciles``, e.g. AudioShake's
    Tasks API by the submission key in its ``metadata``) is asked instead, for ``creating``
    and ``ambiguous`` rows that kept what it needs (``pending_create``): found → the job is
    resumed; not found after its bounded look → submitted again (nothing was created); the
    vendor cannot be asked → stays ambiguous.

    Returns the record written to ``record.json``: ``state`` is ``done`` or ``failed``, with
    ``error`` (a message naming provider, track and step) when failed.
    """
    from stemkit.audio import check_audio

    options = dict(options or {})
    stems = tuple(stems or provider.stem_sets[0])
    batch = BatchFolder(out)
    folder = batch.job_dir(track.name, provider.name)
    record: dict[str, Any] = {
        "provider": provider.name,
        "track": track.name,
        "mixture": str(track.mixture),
        "state": "failed",
    }
    key = None
    submitted = False
    creating: list[bool] = []  # set once the paid call may have been sent
    try:
        with provider.step("check", track=track.name):
            info = check_audio(track.mixture)
            record["audio_seconds"] = info.duration
            key = ledger.request_key(sha256_file(track.mixture), stems, {**options, "fmt": fmt})
        row = None if force else ledger.get(track.name, provider.name, key)
        state = row["state"] if row else None
        if state in retry or (state == "creating" and "ambiguous" in retry):
            row = None  # a person asked for jobs in this state to be submitted again
        previous = batch.read_record(track.name, provider.name)
        if row and row["state"] == "done" and previous and previous.get("state") == "done":
            files = _verified(ledger, track.name, provider.name, list(previous["stems"]))
            if files is not None:
                previous["resumed"] = "skipped: already downloaded and verified"
                return previous
        if row and row["state"] in ("creating", "ambiguous") and _pending(row, provider):
            # the vendor can tell: find the lost create, or learn that it never happened
            found = _reconcile(provider, track.name, row)
            if found is not None:
                ledger.mark(track.name, provider.name, key, "submitted", job=found.to_dict())
                row = ledger.get(track.name, provider.name, key)
                record["reconciled"] = f"lost create found: task {found.job_id} resumed"
            else:
                row = None  # not found after a bounded look: nothing was created
                record["reconciled"] = "lost create not found at the vendor: submitted again"
        if row and row["state"] == "creating":  # killed while a paid job was being created
            ledger.mark(
                track.name,
                provider.name,
                key,
                "ambiguous",
                error="the last run stopped while the job was being created",
            )
            row = ledger.get(track.name, provider.name, key)
        if row and row["state"] == "ambiguous":
            raise AmbiguousSubmission(
                f"an earlier submission may have been accepted ({row['error']})",
                hint=AMBIGUOUS_HINT,
                step="submit",
            )
        if row and row["state"] == "lost":
            raise JobLost(
                f"lost at the vendor ({row['error']})",
                job_id=row["job_id"],
                hint="not submitted again by itself: rerun with --retry lost, or `stemkit jobs "
                f"resolve OUT {track.name} {provider.name} --resubmit` (pays again)",
                step="poll",
            )
        if row and row["state"] == "abandoned":
            raise Abandoned(
                f"abandoned by hand ({row['error']})",
                hint=f"`stemkit jobs resolve OUT {track.name} {provider.name} --resubmit` "
                "or --retry abandoned submits it again",
                step="submit",
            )
        if row and row["state"] in ("submitted", "done") and row["job"]:
            job = Job.from_dict(row["job"])
            observations = [_observation(o) for o in job.meta.get("observations", [])]
            record["resumed"] = f"job {job.job_id} resumed, not submitted again"
        else:
            ledger.mark(track.name, provider.name, key, "submitting")

            def before_create(pending=None) -> None:
                creating.append(True)
                job = {"pending_create": pending} if pending else None
                ledger.mark(track.name, provider.name, key, "creating", job=job)

            def on_partial(partial: Job) -> None:  # a multi-call submission, part way
                ledger.mark(track.name, provider.name, key, "submitting", job=partial.to_dict())

            provider.hooks.before_create = before_create
            provider.hooks.on_partial = on_partial
            provider.hooks.resume_from = (
                None if force else _partial(ledger.get(track.name, provider.name, key))
            )
            t0 = utcnow()
            try:
                job = provider.submit(
                    track.mixture, track=track.name, stems=stems, fmt=fmt, **options
                )
            finally:
                provider.hooks.before_create = None
                provider.hooks.on_partial = None
                provider.hooks.resume_from = None
            job.meta.setdefault("observations", [Observation("submit", t0, utcnow())])
            observations = list(job.meta["observations"])
            ledger.mark(track.name, provider.name, key, "submitted", job=job.to_dict())
        submitted = True
        record["job_id"] = job.job_id
        t1 = utcnow()
        try:
            final = provider.wait(job)
        except JobFailed as exc:
            record["events"] = [
                {"event": e.name, "timestamp": e.timestamp.isoformat(), "message": e.message}
                for e in exc.events
            ]
            record["clock_bounds"] = exc.clock_bounds
            raise
        t2 = utcnow()
        files = provider.fetch(job, final, folder, fmt=fmt)
        for stem, path in files.items():
            _check_stem(path, provider.name, track.name)
            ledger.record_file(track.name, provider.name, stem, path, sha256_file(path))
        observations += [Observation("wait", t1, t2), Observation("download", t2, utcnow())]
        result = SeparationResult(
            provider.name,
            track.name,
            job.job_id,
            files,
            final.events,
            observations,
            info.duration,
            final.vendor_stages,
            clock_bounds=final.clock_bounds,
            cost=final.cost,
            failed_stems=dict(final.failed_stems),
        )
        record.update(result.to_dict(), state="done", error=None)
        record["stems"] = {k: Path(v).name for k, v in files.items()}
        ledger.mark(track.name, provider.name, key, "done")
    except StemkitError as exc:
        exc.at(provider=provider.name, track=track.name)
        record.update(exc.to_dict(), state="failed")
        if key is not None:
            salvage = getattr(exc, "salvage", None)  # a failed job's parts that succeeded
            ledger.mark(
                track.name,
                provider.name,
                key,
                state_after(exc, submitted),
                error=exc.message,
                job=salvage.to_dict() if salvage is not None else None,
            )
        log.warning("%s", exc.message)
    except Exception as exc:  # noqa: BLE001 - one job's failure never stops the batch
        err = unexpected(exc, provider=provider.name, track=track.name)
        record.update(err.to_dict(), state="failed")
        if key is not None:
            state = "submitted" if submitted else "ambiguous" if creating else "failed"
            ledger.mark(track.name, provider.name, key, state, error=err.message)
        log.warning("%s", err.message)
        log.debug("traceback of %s", err.message, exc_info=True)
    try:
        batch.write_record(track.name, provider.name, record)
    except OSError as exc:  # the disk is full or the folder unwritable: the row still says so
        record["error"] = f"{record.get('error') or 'done'}; record.json not written: {exc}"
        log.warning("%s / %s: record.json not written: %s", provider.name, track.name, exc)
    return record


def _speech_of(batch: BatchFolder, track: str, providers: Sequence[str], loom) -> dict:
    """What to transcribe of a track whose jobs have ended (nothing without a script)."""
    from stemkit.separate.transcribe import speech_sources

    entry = batch.track(track)
    if loom is None or not entry.get("transcript"):
        return {}
    return speech_sources(batch, entry, list(providers))


def _transcribe_one(loom, batch, ledger, track, source, audio, retry) -> dict[str, Any]:
    from stemkit.separate.transcribe import transcribe_one

    try:
        return transcribe_one(loom, batch, ledger, track, source, audio, retry=retry)
    except Exception as exc:  # noqa: BLE001 - transcribe_one never raises; a bug must not hang
        err = unexpected(exc, provider="loom", track=track)
        return {"track": track, "source": source, **err.to_dict(), "state": "failed"}


def _pending(row: dict[str, Any], provider: Provider) -> dict[str, Any] | None:
    """What the provider needs to find a lost create, if it can and the ledger kept it."""
    job = row.get("job") or {}
    return job.get("pending_create") if provider.reconciles else None


def _reconcile(provider: Provider, track: str, row: dict[str, Any]) -> Job | None:
    """Ask the vendor for the lost create of ``row``; a failure to ask leaves it ambiguous."""
    try:
        with provider.step("reconcile", track=track):
            return provider.reconcile(row["job"]["pending_create"], track=track)
    except StemkitError as exc:
        raise AmbiguousSubmission(
            f"an earlier submission may have been accepted, and looking it up failed "
            f"({exc.detail})",
            hint="rerun later to look again; --force submits again without looking",
            step="reconcile",
        ) from None


def _check_stem(path: Path, provider: str, track: str) -> None:
    """A downloaded stem must decode as audio (a broken or hostile server may send anything)."""
    from stemkit.audio import check_audio

    try:
        check_audio(path)
    except AudioError as exc:
        raise IntegrityError(
            f"downloaded stem {path.name} is not audio ({exc.detail})",
            provider=provider,
            track=track,
            step="verify",
            hint="the service sent something else; rerun to download again",
        ) from None


def _partial(row: dict[str, Any] | None) -> Job | None:
    """The partial submission an earlier run recorded (some of a job's paid calls made)."""
    if row and row.get("job") and row["job"].get("meta", {}).get("partial"):
        return Job.from_dict(row["job"])
    return None


def forced(force: bool | Sequence[str] | None, track: str, provider: str) -> bool:
    """Whether ``force`` names this job: ``True`` (all), or ``TRACK`` / ``TRACK/PROVIDER``.

    Examples
    --------
    >>> forced(["alpha"], "alpha", "local"), forced(["alpha/sourceress"], "alpha", "local")
    (True, False)
    """
    if isinstance(force, bool) or force is None:
        return bool(force)
    names = {force} if isinstance(force, str) else set(force)
    return "all" in names or track in names or f"{track}/{provider}" in names


def _observation(o: Any) -> Observation:
    if isinstance(o, Observation):
        return o
    return Observation(o["step"], parse_time(o["start"]), parse_time(o["end"]))


def write_batch_info(
    out: str | Path | BatchFolder,
    tracks: Sequence[Track],
    providers: Sequence[str],
    *,
    profile: str | None,
    stems: Sequence[str] | None,
    fmt: str,
) -> Path:
    """Write ``batch.json``: what this batch is (tracks, providers, settings; no secrets)."""
    batch = BatchFolder(out)
    info = {
        "created_at": utcnow().isoformat(),
        "providers": list(providers),
        "profile": profile or "default",
        "stems": list(stems) if stems else None,
        "format": fmt,
        "tracks": [
            {
                "name": t.name,
                "mixture": str(Path(t.mixture).resolve()),
                "references": {k: str(Path(v).resolve()) for k, v in t.references.items()},
                "transcript": t.transcript,
            }
            for t in tracks
        ],
    }
    batch.write_info(info)
    return batch.info_path


def separate_batch(
    manifest: str | Path | Sequence[Track],
    providers: Sequence[str],
    out: str | Path,
    *,
    profile: str | None = None,
    stems: Sequence[str] | None = None,
    fmt: str = "wav",
    options: dict[str, Any] | None = None,
    force: bool | Sequence[str] = False,
    progress: bool = True,
    wait: float = 0,
    retry: Sequence[str] = (),
    transcribe: bool = False,
) -> pd.DataFrame:
    """Separate every track of ``manifest`` with every provider; return one row per job.

    Jobs run concurrently, at most ``profile.max_in_flight`` per provider. A failing track or
    provider becomes a ``failed`` row; the others go on. One process at a time writes a batch
    folder: another one already separating there makes this wait ``wait`` seconds, then raise
    :class:`~stemkit.errors.BatchBusy` (see :meth:`stemkit.batchdir.BatchFolder.lock`).

    ``force`` submits again (and pays again) what it names: ``True`` every job, or a list of
    ``TRACK`` / ``TRACK/PROVIDER`` names. ``retry`` names ledger states to submit again
    (``["ambiguous", "abandoned"]``); a ``failed`` job is always submitted again.

    As soon as every job of a track has ended, its speech is transcribed (``transcribe``, for
    tracks with a script: :func:`stemkit.separate.transcribe.transcribe_one` for each source)
    and then ``stems/<track>/ended.json`` is written
    (:meth:`~stemkit.batchdir.BatchFolder.write_ended`): the batch starts that track's analysis
    then, while the other tracks are still being separated.

    Examples
    --------
    >>> df = separate_batch("data/demo", ["sourceress", "local"], "reports/x")  # doctest: +SKIP
    >>> df.groupby("provider")["state"].value_counts()                        # doctest: +SKIP
    """
    out = Path(out)
    tracks = list(manifest) if not isinstance(manifest, str | Path) else load_manifest(manifest)
    with BatchFolder(out).lock("separate", wait=wait):
        return _separate_locked(
            tracks, providers, out, profile, stems, fmt, options, force, progress, retry, transcribe
        )


def _separate_locked(
    tracks: Sequence[Track],
    providers: Sequence[str],
    out: Path,
    profile: str | None,
    stems: Sequence[str] | None,
    fmt: str,
    options: dict[str, Any] | None,
    force: bool | Sequence[str],
    progress: bool,
    retry: Sequence[str],
    transcribe: bool = False,
) -> pd.DataFrame:
    """:func:`separate_batch`, with the folder's ``separate`` lock held."""
    retry = check_retry(retry)
    from tqdm.auto import tqdm

    clients = {name: connect(name, profile) for name in providers}
    caps = {name: threading.Semaphore(c.profile.max_in_flight) for name, c in clients.items()}
    # connected before any paid job: a missing transcription profile fails the batch up front
    loom = connect("loom", profile) if transcribe and any(t.transcript for t in tracks) else None
    ledger = Ledger(out)
    batch = BatchFolder(out)
    write_batch_info(out, tracks, providers, profile=profile, stems=stems, fmt=fmt)
    batch.clear_ended()

    def task(track: Track, name: str) -> dict[str, Any]:
        with caps[name]:
            try:
                return run_job(
                    clients[name],
                    track,
                    out,
                    ledger,
                    stems=stems,
                    fmt=fmt,
                    options=options,
                    force=forced(force, track.name, name),
                    retry=retry,
                )
            except Exception as exc:  # noqa: BLE001 - e.g. the ledger's disk is full
                err = unexpected(exc, provider=name, track=track.name)
                log.warning("%s", err.message)
                return {"track": track.name, "provider": name, **err.to_dict(), "state": "failed"}

    workers = sum(c.profile.max_in_flight for c in clients.values())
    records = []
    jobs_left = {t.name: len(providers) for t in tracks}
    states: dict[str, dict[str, str]] = {t.name: {} for t in tracks}
    speech: dict[Any, str] = {}  # transcription future -> track
    with (
        ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="separate") as pool,
        ThreadPoolExecutor(
            max_workers=max(1, loom.profile.max_in_flight if loom else 1),
            thread_name_prefix="transcribe",
        ) as speech_pool,
    ):
        pending = {pool.submit(task, t, p) for t in tracks for p in providers}
        bar = tqdm(
            total=len(pending), desc="separate", unit="job", disable=not progress, mininterval=1.0
        )
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                rec = fut.result()
                if fut in speech:  # one transcription of a track whose jobs have ended
                    name = speech.pop(fut)
                    states[name][f"loom:{rec.get('source')}"] = rec["state"]
                    if name not in speech.values():
                        batch.write_ended(name, states[name])
                    continue
                name = rec["track"]
                records.append(rec)
                bar.set_postfix_str(f"{name}/{rec['provider']}: {rec['state']}")
                bar.update()
                states[name][rec["provider"]] = rec["state"]
                jobs_left[name] -= 1
                if jobs_left[name]:
                    continue
                try:
                    for source, audio in _speech_of(batch, name, providers, loom).items():
                        f = speech_pool.submit(
                            _transcribe_one, loom, batch, ledger, name, source, audio, retry
                        )
                        speech[f] = name
                        pending.add(f)
                    if name not in speech.values():
                        batch.write_ended(name, states[name])
                except Exception as exc:  # noqa: BLE001 - e.g. a full disk: this track only
                    # no end marker: the batch analyses the track when this phase is over
                    err = unexpected(exc, provider="loom", track=name)
                    log.warning("after the jobs of %s: %s", name, err.message)
        bar.close()
    ledger.close()
    table = pd.DataFrame(
        [
            {
                k: r.get(k)
                for k in (
                    "track",
                    "provider",
                    "state",
                    "job_id",
                    "audio_seconds",
                    "cost",
                    "error_kind",
                    "error",
                    "resumed",
                )
            }
            for r in records
        ]
    ).sort_values(["track", "provider"], ignore_index=True)
    BatchFolder(out).write_table("separate", table, parquet=False)
    return table
