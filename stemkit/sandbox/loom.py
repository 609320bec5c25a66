"""The Loom transcription API, served by the sandbox under ``/loom``.

``key`` and ``secret`` in the body of every call (form fields for the upload). Real offline
speech recognition by :mod:`stemkit.sandbox.asr`. ``job_info`` carries real ``submitted_at`` /
``completed_at``, ``total_audio_length``, ``is_blank_audio`` (silence is reported blank, not as an
empty transcript) and ``error_message`` on failure; ``output_files.transcripts`` lists a ``.txt``
transcript and a ``.json`` with word timings. Status codes: 200, 400, 401, 404, 500.

Examples
--------
>>> from stemkit.sandbox import create_app
>>> app = create_app(tmp_path)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stemkit.errors import AudioError
from stemkit.sandbox.common import (
    SandboxConfig,
    Signer,
    Workers,
    file_response,
    new_id,
    parse_body,
    same_secret,
    utc_iso,
)
from stemkit.sandbox.state import SandboxState
from stemkit.sandbox.uploads import decode, read_form

log = logging.getLogger("stemkit.sandbox.loom")
MAX_UPLOAD = 250 * 1024 * 1024


class _Auth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    secret: str


class SubmitBody(_Auth):
    """The body of ``POST /job/submit``: key, secret, media and options."""

    profile_name: str = Field(min_length=1, max_length=200)
    job_name: str = Field(min_length=1, max_length=200)
    audio_files: list[str] = Field(min_length=1, max_length=20)
    documents: list[str] | None = None


@dataclass
class LoomJob:
    """A transcription job as the sandbox stores it."""

    id: str
    owner: str
    name: str
    profile: str
    inputs: list[Path]
    folder: Path
    submitted_at: str = field(default_factory=utc_iso)
    completed_at: str | None = None
    state: str = "processing"  # processing | completed | error
    audio_length: float | None = None
    is_blank: bool = False
    error_message: str | None = None
    outputs: list[Path] = field(default_factory=list)
    created: float = field(default_factory=time.time)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _msg(status: int, msg: str) -> JSONResponse:
    return JSONResponse({"success": False, "msg": msg, "message": msg}, status_code=status)


class LoomAPI:
    """State and routes of the sandbox's Loom API."""

    def __init__(
        self,
        config: SandboxConfig,
        signer: Signer,
        workers: Workers,
        state: SandboxState | None = None,
    ) -> None:
        self.config = config
        self.separator = config.separator("loom")  # defects of the audio it hears
        self.signer = signer
        self.workers = workers
        self.root = Path(config.data_dir) / "loom"
        self.root.mkdir(parents=True, exist_ok=True)
        state = state or SandboxState(None)
        # audio url id -> (owner, file)
        self.uploads = state.records(
            "loom",
            "uploads",
            encode=lambda u: {"owner": u[0], "path": self._rel(u[1])},
            decode=lambda r: (r["owner"], self.root / r["path"]),
        )
        self.jobs = state.records("loom", "jobs", encode=self._job_record, decode=self._job_from)
        self.stats = state.counters("loom", {"uploads": 0, "jobs": 0})
        self._lock = threading.Lock()

    # -- durable records (stemkit.sandbox.state) ----------------------------------------------
    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _job_record(self, job: LoomJob) -> dict:
        return {
            "id": job.id,
            "owner": job.owner,
            "name": job.name,
            "profile": job.profile,
            "inputs": [self._rel(p) for p in job.inputs],
            "folder": self._rel(job.folder),
            "submitted_at": job.submitted_at,
            "completed_at": job.completed_at,
            "state": job.state,
            "audio_length": job.audio_length,
            "is_blank": job.is_blank,
            "error_message": job.error_message,
            "outputs": [self._rel(p) for p in job.outputs],
            "created": job.created,
        }

    def _job_from(self, r: dict) -> LoomJob:
        return LoomJob(
            r["id"], r["owner"], r["name"], r["profile"], [self.root / p for p in r["inputs"]],
            self.root / r["folder"], r["submitted_at"], r["completed_at"], r["state"],
            r["audio_length"], r["is_blank"], r["error_message"],
            [self.root / p for p in r["outputs"]], r["created"],
        )  # fmt: skip

    def resume(self) -> int:
        """Queue again the transcriptions a restart interrupted; how many."""
        pending = sorted(
            (j for j in self.jobs.values() if j.state == "processing"), key=lambda j: j.created
        )
        for job in pending:
            self.workers.heavy.submit(self._process, job)
        return len(pending)

    def routes(self) -> list[Route]:
        return [
            Route("/upload/audio", self.upload, methods=["POST"]),
            Route("/jobs/submit", self.submit, methods=["POST"]),
            Route("/jobs/{job_id}/poll", self.poll, methods=["POST"]),
            Route("/jobs/{job_id}/details", self.details, methods=["POST"]),
            Route("/files/{key:path}", self.files, methods=["GET"]),
        ]

    def _owner(self, key: str | None, secret: str | None) -> str | None:
        expected = self.config.loom_keys.get(key or "")
        if key and expected is not None and secret is not None and same_secret(expected, secret):
            return key
        return None

    def _url(self, request: Request, path: Path) -> str:
        return self.signer.url(request, "/loom/files", self.root, path, "GET", self.config.url_ttl)[
            0
        ]

    def _authorize(self, fields: dict[str, str]) -> bool | None:
        """Key and secret, checked as soon as the file part begins (None: not sent yet)."""
        if "key" not in fields or "secret" not in fields:
            return None
        return self._owner(fields["key"], fields["secret"]) is not None

    async def upload(self, request: Request) -> Response:
        try:
            cap = min(MAX_UPLOAD, self.config.max_upload_bytes)
            form = await read_form(request, cap, authorize=self._authorize)
        except HTTPException as exc:
            if exc.status_code == 400:
                return _msg(
                    400, f"ERROR: expected form-data with file, key and secret ({exc.detail})"
                )
            return _msg(exc.status_code, f"ERROR: {exc.detail}")
        owner = self._owner(form.get("key"), form.get("secret"))
        if owner is None:
            return _msg(401, "ERROR: invalid key or secret")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return _msg(400, "ERROR: form field 'file' is missing")
        if not upload.size:
            return _msg(400, "ERROR: the uploaded file is empty")
        audio_id = new_id()
        path = self.root / owner / "uploads" / audio_id / (Path(upload.filename or "a").name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            shutil.copyfileobj(upload.file, fh, 1 << 20)
        await form.close()
        with self._lock:
            self.uploads[audio_id] = (owner, path)
            self.stats.bump("uploads")
        return JSONResponse(
            {"msg": "SUCCESS: audio uploaded", "audio_url": f"loom://audio/{audio_id}"}
        )

    async def submit(self, request: Request) -> Response:
        body = await parse_body(request, SubmitBody)
        owner = self._owner(body.key, body.secret)
        if owner is None:
            return _msg(401, "ERROR: invalid key or secret")
        inputs = []
        for url in body.audio_files:
            audio_id = url.removeprefix("loom://audio/")
            entry = self.uploads.get(audio_id)
            if entry is None or entry[0] != owner:
                return _msg(400, f"ERROR: unknown audio file {url!r}: upload it first")
            inputs.append(entry[1])
        job_id = new_id()
        job = LoomJob(
            job_id,
            owner,
            body.job_name,
            body.profile_name,
            inputs,
            self.root / owner / "jobs" / job_id,
            submitted_at=utc_iso(self.config.faults.vendor_clock()),
        )
        job.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.jobs[job_id] = job
            self.stats.bump("jobs")
        self.workers.heavy.submit(self._process, job)
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "message": "Job submitted successfully",
                "poll_endpoint": f"{base}/loom/jobs/{job_id}/poll",
                "job_reference_id": job_id,
            }
        )

    async def _job(self, request: Request) -> LoomJob | Response:
        body = await parse_body(request, _Auth)
        owner = self._owner(body.key, body.secret)
        if owner is None:
            return _msg(401, "ERROR: invalid key or secret")
        job = self.jobs.get(request.path_params["job_id"])
        if job is None or job.owner != owner:
            return _msg(404, f"ERROR: no job {request.path_params['job_id']!r}")
        return job

    async def poll(self, request: Request) -> Response:
        job = await self._job(request)
        if isinstance(job, Response):
            return job
        if job.state == "processing":
            return JSONResponse(
                {
                    "msg": "NOTICE: Job is currently being processed.",
                    "transcript_url": [],
                    "media_files": [],
                    "extracted_fields": [],
                }
            )
        if job.state == "error":
            return JSONResponse(
                {
                    "msg": f"ERROR: Job processing failed. {job.error_message}",
                    "transcript_url": [],
                    "media_files": [],
                    "extracted_fields": [],
                }
            )
        return JSONResponse(
            {
                "msg": "SUCCESS: Job completed successfully.",
                "transcript_url": [self._url(request, p) for p in job.outputs],
                "media_files": [self._url(request, p) for p in job.inputs],
                "extracted_fields": [],
            }
        )

    async def details(self, request: Request) -> Response:
        job = await self._job(request)
        if isinstance(job, Response):
            return job
        info = {
            "job_reference_id": job.id,
            "job_name": job.name,
            "status": job.state,
            "profile_name": job.profile,
            "submitted_at": job.submitted_at,
            "completed_at": job.completed_at,
            "total_audio_length": job.audio_length,
            "is_blank_audio": job.is_blank,
            "error_message": job.error_message,
        }
        inputs = [
            {
                "filename": p.name,
                "file_type": "audio",
                "file_size": p.stat().st_size,
                "download_url": self._url(request, p),
            }
            for p in job.inputs
        ]
        outputs = None
        if job.state == "completed":
            outputs = {
                "transcripts": [
                    {
                        "filename": p.name,
                        "file_subtype": "final_transcript",
                        "download_url": self._url(request, p),
                        "language_code": "en",
                    }
                    for p in job.outputs
                ],
                # the media the recogniser processed, as the doc's example lists it
                "processed_input_media": [
                    {
                        "filename": p.name,
                        "file_subtype": "merged_filename",
                        "download_url": self._url(request, p),
                    }
                    for p in job.inputs
                ],
                "extracted_fields_url": None,
            }
        success = job.state != "error"
        msg = {
            "processing": "NOTICE: Job is currently being processed.",
            "completed": "SUCCESS: Job completed successfully.",
            "error": "ERROR: Job processing failed.",
        }[job.state]
        return JSONResponse(
            {
                "success": success,
                "msg": msg,
                "job_data": {
                    "job_info": info,
                    "job_files": {"input_files": inputs, "output_files": outputs},
                },
            }
        )

    async def files(self, request: Request) -> Response:
        path = self.signer.resolve(request, self.root)
        if path == 403:
            return _msg(403, "ERROR: download URL is invalid or expired: poll again")
        if not path.is_file():
            return _msg(404, "ERROR: no such file")
        return file_response(path)

    def duplicates(self) -> int:
        """Jobs on the same audio beyond the first that did not fail."""
        live: dict[tuple, int] = {}
        for job in list(self.jobs.values()):
            if job.state == "error":
                continue
            key = (job.owner, job.profile, tuple(_sha(p) for p in job.inputs))
            live[key] = live.get(key, 0) + 1
        return sum(n - 1 for n in live.values())

    def _process(self, job: LoomJob) -> None:
        from stemkit.sandbox import asr

        if self.config.faults.roll("stuck", job.id):
            return  # injected: the job stays in progress for ever
        try:
            if self.config.faults.roll("job_failure", job.id):
                raise AudioError("injected failure of the transcription worker")
            texts, words, total, blank = [], [], 0.0, True
            for path in job.inputs:
                y, sr = decode(path, self.config)
                t = asr.transcribe(self.separator.hear(y, sr), sr)
                words += [
                    {
                        "word": w.word,
                        "start": round(total + w.start, 3),
                        "end": round(total + w.end, 3),
                        "confidence": w.confidence,
                    }
                    for w in t.words
                ]
                texts.append(t.text)
                total += t.duration
                blank = blank and t.is_blank
            job.audio_length = round(total, 3)
            job.is_blank = blank
            txt = job.folder / f"{Path(job.name).name[:80] or 'transcript'}.txt"
            txt.write_text(" ".join(t for t in texts if t) + "\n")
            js = job.folder / f"{txt.stem}.words.json"
            js.write_text(json.dumps(words, indent=1))
            job.outputs = [txt, js]
            job.state = "completed"
        except AudioError as exc:
            job.state, job.error_message = "error", f"unreadable audio: {exc.detail}"
        except Exception as exc:  # noqa: BLE001 - report, never crash the server
            log.exception("loom job %s", job.id)
            job.state, job.error_message = "error", f"internal error: {type(exc).__name__}"
        job.completed_at = utc_iso(self.config.faults.vendor_clock())
        self.jobs.save(job.id)
