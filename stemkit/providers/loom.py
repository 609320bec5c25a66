"""Loom transcription job API client (vendor doc: ``shared/api/loom-get-job-details.txt``).

=========================  ====================================================
:meth:`upload_audio`       ``POST /upload/audio`` – form-data file + key + secret
:meth:`submit_job`         ``POST /jobs/submit``
:meth:`poll`               ``POST /jobs/<id>/poll``
:meth:`details`            ``POST /jobs/<id>/details``
=========================  ====================================================

``key`` and ``secret`` travel in the body of every call and nowhere else: not in URLs, logs,
errors or returned objects. Completion is decided from ``success``, the ``msg`` prefix
(``SUCCESS`` / ``NOTICE`` / ``ERROR``) and ``output_files``, never from ``job_info.status``
alone: the vendor's own in-progress example says ``"status": "completed"``.

Examples
--------
>>> from stemkit.providers.loom import job_state
>>> job_state({"success": True, "msg": "NOTICE: Job is currently being processed.",
...            "job_data": {"job_info": {"status": "completed"}, "job_files": {}}})
'running'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stemkit.errors import AuthError, LinkExpired, ProviderError, RequestError
from stemkit.providers.base import Provider
from stemkit.providers.files import safe_join
from stemkit.providers.records import Event, Job, JobStatus, Observation, utcnow
from stemkit.providers.transport import creates_job, idempotent
from stemkit.timing import parse_time

PROFILE_NAME = "General Transcription"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class FileEntry(_Model):
    """One input or output file of a Loom job."""

    filename: str | None = None
    file_type: str | None = None
    file_subtype: str | None = None
    file_size: int | str | None = None
    download_url: str | None = None
    language_code: str | None = None


class OutputFiles(_Model):
    """``job_files.output_files``: transcripts and processed input media."""

    transcripts: list[FileEntry] = Field(default_factory=list)
    processed_input_media: list[FileEntry] = Field(default_factory=list)
    extracted_fields_url: str | None = None


class JobInfo(_Model):
    """``job_data.job_info``: the job's reference, name, status and timestamps."""

    job_reference_id: str | None = None
    job_name: str | None = None
    status: str | None = None
    profile_name: str | None = None
    #: timestamps as sent (ISO text or epoch numbers), read by :func:`stemkit.timing.parse_time`
    submitted_at: str | int | float | None = None
    completed_at: str | int | float | None = None
    total_audio_length: float | str | None = None
    is_blank_audio: bool | None = None
    error_message: str | None = None


class JobFiles(_Model):
    """``job_data.job_files``: the job's input and output files."""

    input_files: list[FileEntry] = Field(default_factory=list)
    output_files: OutputFiles | None = None


class JobData(_Model):
    """``job_data`` of a details answer: job info and files."""

    job_info: JobInfo = Field(default_factory=JobInfo)
    job_files: JobFiles = Field(default_factory=JobFiles)


class Details(_Model):
    """The body of ``POST /job/details``: ``success``, ``msg`` and ``job_data``."""

    success: bool = False
    msg: str = ""
    job_data: JobData = Field(default_factory=JobData)


@dataclass
class TranscriptResult:
    """A finished transcription: text, words with timings, blank flag, files, timing."""

    text: str
    words: list[dict[str, Any]]
    is_blank: bool
    audio_seconds: float | None
    files: dict[str, Path] = field(default_factory=dict)
    job_id: str = ""
    vendor_stages: list[dict[str, Any]] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    #: our own instants around the vendor's stamps (see :func:`stemkit.timing.event_bounds`)
    clock_bounds: list[dict[str, Any]] = field(default_factory=list)


def _observation(o: Observation | dict[str, Any]) -> Observation:
    """An observation of this run, or one read back from the ledger (a resumed job)."""
    if isinstance(o, Observation):
        return o
    return Observation(o["step"], parse_time(o["start"]), parse_time(o["end"]))


def job_state(details: dict[str, Any] | Details) -> str:
    """``done``, ``failed`` or ``running`` from a details/poll body, by the rules above.

    Examples
    --------
    >>> job_state({"success": False, "msg": "ERROR: Job processing failed."})
    'failed'
    """
    d = details if isinstance(details, Details) else Details.model_validate(details)
    msg = d.msg.strip().upper()
    if not d.success or msg.startswith("ERROR") or d.job_data.job_info.error_message:
        return "failed"
    if msg.startswith("SUCCESS") and d.job_data.job_files.output_files is not None:
        return "done"
    return "running"


class LoomProvider(Provider):
    """Client of the Loom transcription API (key + secret in every body)."""

    name = "loom"
    stem_sets = (("transcript",),)

    def _auth(self) -> dict[str, str]:
        p = self.profile
        if p.key is None or p.secret is None:
            raise AuthError(
                "no key/secret configured",
                provider=self.name,
                hint="set STEMKIT_LOOM_KEY / STEMKIT_LOOM_SECRET or a profile",
            )
        return {"key": p.key.get_secret_value(), "secret": p.secret.get_secret_value()}

    def _post(self, path: str, what: str, **kw) -> dict[str, Any]:
        with self.step(what):  # network failures become stemkit errors (redacted)
            resp = self.session.post(f"{self.profile.base_url}{path}", **kw)
        self.check_response(resp, what)
        body = self.json(resp, what)
        if not isinstance(body, dict):
            raise ProviderError(f"{what}: expected a JSON object")
        return body

    # -- endpoints -------------------------------------------------------------------------
    @idempotent
    def upload_audio(self, path: Path) -> str:
        """Upload a file (form-data, streamed) and return its ``audio_url``."""
        with open(path, "rb") as fh:
            body = self._post(
                "/upload/audio",
                "upload",
                data=self._auth(),
                files={"file": (Path(path).name, fh, "application/octet-stream")},
            )
        if not body.get("audio_url"):
            raise ProviderError(f"upload: no audio_url in the answer ({body.get('msg')})")
        return body["audio_url"]

    @creates_job
    def submit_job(
        self,
        audio_urls: Sequence[str],
        *,
        job_name: str,
        profile_name: str = PROFILE_NAME,
        documents: Sequence[str] | None = None,
    ) -> str:
        """Submit a transcription job; returns ``job_reference_id``."""
        payload = {
            **self._auth(),
            "profile_name": profile_name,
            "job_name": job_name,
            "audio_files": list(audio_urls),
        }
        if documents:
            payload["documents"] = list(documents)
        body = self._post("/jobs/submit", "submit", json=payload)
        if not body.get("job_reference_id"):
            raise ProviderError(f"submit: no job_reference_id ({body.get('message')})")
        return str(body["job_reference_id"])

    @idempotent
    def poll(self, job_id: str) -> dict[str, Any]:
        """The short poll answer: ``msg``, ``transcript_url``, ``media_files``, ..."""
        return self._post(f"/jobs/{job_id}/poll", "poll", json=self._auth())

    @idempotent
    def details(self, job_id: str) -> Details:
        """Everything about a job (job_info stamps, input and output files)."""
        body = self._post(f"/jobs/{job_id}/details", "details", json=self._auth())
        return self.parse(Details, body, "details")

    # -- life cycle ------------------------------------------------------------------------
    def submit(
        self,
        audio_path: Path,
        *,
        track: str,
        stems: Sequence[str] = ("transcript",),
        fmt: str = "txt",
        job_name: str | None = None,
        **options,
    ) -> Job:
        obs = []
        with self.step("upload", track=track):
            t0 = utcnow()
            url = self.upload_audio(Path(audio_path))
            obs.append(Observation("upload", t0, utcnow()))
        with self.step("submit", track=track):
            t0 = utcnow()
            job_id = self.submit_job([url], job_name=job_name or track, **options)
            obs.append(Observation("submit", t0, utcnow()))
        return Job(self.name, job_id, track, ["transcript"], meta={"observations": obs})

    def status(self, job: Job) -> JobStatus:
        d = self.details(job.job_id)
        state = job_state(d)
        info = d.job_data.job_info
        rows = []
        events = [
            Event(name, parse_time(stamp, event=f"job {job.job_id} {name}_at"), info.status)
            for name, stamp in (("submitted", info.submitted_at), ("completed", info.completed_at))
            if stamp
        ]  # the job's stamps as events, so the life cycle bounds them on our clock
        if state == "done" and info.submitted_at and info.completed_at:
            start = parse_time(info.submitted_at, event=f"job {job.job_id} submitted_at")
            end = parse_time(info.completed_at, event=f"job {job.job_id} completed_at")
            rows.append(
                {
                    "stage": "processing",
                    "start": start,
                    "end": end,
                    "seconds": (end - start).total_seconds(),
                    "job_id": job.job_id,
                }
            )
        message = None
        if state == "failed":
            message = info.error_message or d.msg or "transcription failed"
        outputs = [
            t.filename
            for t in (d.job_data.job_files.output_files or OutputFiles()).transcripts
            if t.filename
        ]
        return JobStatus(state, events, message=message, outputs=outputs, raw=d, vendor_stages=rows)

    def fetch(
        self, job: Job, status: JobStatus, out_dir: Path, *, fmt: str = "txt"
    ) -> dict[str, Path]:
        """Download the transcripts; their URLs expire, so a refused one means poll again."""
        try:
            return self._download(status.raw, out_dir)
        except LinkExpired:
            return self._download(self.details(job.job_id), out_dir)

    def _download(self, d: Details, out_dir: Path) -> dict[str, Path]:
        out = {}
        for t in (d.job_data.job_files.output_files or OutputFiles()).transcripts:
            if not t.download_url or not t.filename:
                continue
            kind = "words" if t.filename.endswith(".json") else "transcript"
            suffix = Path(t.filename).suffix or ".txt"
            with self.step(f"download {kind}"):
                out[kind] = self.download(t.download_url, safe_join(out_dir, f"{kind}{suffix}"))
        if "transcript" not in out:
            raise RequestError("the job finished but lists no text transcript")
        return out

    def transcribe(
        self,
        audio_path: str | Path,
        out_dir: str | Path,
        *,
        track: str | None = None,
        timeout: float | None = None,
    ) -> TranscriptResult:
        """Upload, submit, wait, download: one file's transcript with word timings.

        Examples
        --------
        >>> r = connect("loom").transcribe("dialogue.wav", "out/")   # doctest: +SKIP
        >>> r.text, r.is_blank                                          # doctest: +SKIP
        ('where did you put the keys', False)
        """
        audio_path = Path(audio_path)
        track = track or audio_path.stem
        job = self.submit(audio_path, track=track)
        return self.finish(job, out_dir, timeout=timeout)

    def finish(
        self, job: Job, out_dir: str | Path, *, timeout: float | None = None
    ) -> TranscriptResult:
        """Wait for a submitted job (this run's or a resumed one) and download its transcript.

        Examples
        --------
        >>> r = loom.finish(Job.from_dict(ledger_row["job"]), "out/")   # doctest: +SKIP
        """
        t1 = utcnow()
        final = self.wait(job, timeout=timeout)
        t2 = utcnow()
        files = self.fetch(job, final, Path(out_dir))
        obs = [
            *(_observation(o) for o in job.meta.get("observations", [])),
            Observation("wait", t1, t2),
            Observation("download", t2, utcnow()),
        ]
        info = final.raw.job_data.job_info
        words = json.loads(files["words"].read_text()) if "words" in files else []
        length = info.total_audio_length
        return TranscriptResult(
            text=files["transcript"].read_text().strip(),
            words=words,
            is_blank=bool(info.is_blank_audio),
            audio_seconds=float(length) if length not in (None, "") else None,
            files=files,
            job_id=job.job_id,
            vendor_stages=final.vendor_stages or [],
            observations=obs,
            clock_bounds=final.clock_bounds,
        )
