"""The AudioShake stem job API, served by the sandbox under ``/audioshake``.

Bearer-token auth (``demo-token`` by default); assets uploaded by multipart or by a link to one
of the sandbox's own signed files; one job per stem, ``created → processing → completed`` (or
``failed`` with ``statusInfo``), real ``createdAt``/``startedAt``/``updatedAt``; real separation
by :mod:`stemkit.dsp.engine`; ``residual`` = mixture − stem; ``preview`` = the first 30 s
as MP3; ``watermarkInterval`` puts a short quiet beep every N seconds; ``maxTrackLength``
truncates the input; a POST to ``callbackUrl`` on completion when it is a loopback URL.

Stem names the vendor documents but this engine cannot make (guitar, piano, wind,
transcription, alignment, other-x-guitar) are accepted and then *fail* with a statusInfo
message, as a vendor job would.

The answers follow the vendor's published contract, field by field (``docs/vendors.md``):
``statusInfo`` is ``{}`` when completed and has a numeric ``code`` when failed; ``fileType`` is a
MIME type; ``format`` comes from the file's content; output assets are named with their
extension; requests are checked by :mod:`stemkit.sandbox.audioshake_rules` and answers match
:mod:`stemkit.sandbox.audioshake_schema`.

Examples
--------
>>> from stemkit.sandbox import create_app
>>> app = create_app(tmp_path)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stemkit.audio import write_audio
from stemkit.errors import AudioError
from stemkit.sandbox.audioshake_rules import JobMetadata, JobRequest, parse_job_request
from stemkit.sandbox.common import (
    Callbacks,
    SandboxConfig,
    Signer,
    Workers,
    error,
    file_response,
    new_id,
    parse_body,
    same_secret,
    utc_iso,
)
from stemkit.sandbox.state import SandboxState
from stemkit.sandbox.uploads import decode, read_form, read_json

log = logging.getLogger("stemkit.sandbox.audioshake")
#: documented stem name -> the engine's stem name
ENGINE_STEMS = {
    "vocals": "vocals", "instrumental": "instrumental", "drums": "drums", "bass": "bass",
    "other": "other", "dialogue": "dialogue", "music_fx": "music_fx", "music": "music",
    "speech": "speech", "music_removal": "music_removal",
}  # fmt: skip
PREVIEW_SECONDS = 30.0


#: container format -> the MIME type the vendor's examples show as ``fileType``
MIME_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "aiff": "audio/aiff",
    "mp4": "audio/mp4",
    "ogg": "audio/ogg",
    "json": "application/json",
}
#: what libsndfile calls the containers it reads
_SNDFILE_FORMATS = {"WAV": "wav", "WAVEX": "wav", "FLAC": "flac", "AIFF": "aiff", "MP3": "mp3",
                    "MPEG": "mp3", "OGG": "ogg"}  # fmt: skip


def sniff_format(path: Path) -> str:
    """The container format of a file from its content (``wav``, ``flac``, ``mp3``, ...;
    ``bin`` when it is no audio the sandbox knows), whatever its name says.

    Examples
    --------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> p = Path(tempfile.mkdtemp()) / "song"            # a link upload's name: no extension
    >>> sf.write(p, np.zeros(800), 8000, format="FLAC")
    >>> sniff_format(p)
    'flac'
    """
    head = path.read_bytes()[:12] if path.is_file() else b""
    if head[4:8] == b"ftyp":
        return "mp4"
    try:
        fmt = sf.info(path).format
    except (sf.LibsndfileError, RuntimeError, TypeError):
        fmt = ""
    if fmt in _SNDFILE_FORMATS:
        return _SNDFILE_FORMATS[fmt]
    if head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "mp3"
    return "bin"


def mime_type(fmt: str) -> str:
    """``fileType`` of an asset of format ``fmt`` (``application/octet-stream`` if unknown)."""
    return MIME_TYPES.get(fmt, "application/octet-stream")


class LinkBody(BaseModel):
    """The body of ``POST /upload/link``: the file's URL and a name."""

    model_config = ConfigDict(extra="forbid")
    link: str = Field(min_length=1, max_length=4096)
    name: str = Field(min_length=1, max_length=255)


@dataclass
class AssetRecord:
    """An uploaded asset as the sandbox stores it."""

    id: str
    owner: str
    name: str
    path: Path
    format: str
    sha256: str = ""


@dataclass
class JobRecord:
    """A job as the sandbox stores it: owner, asset, request, timestamps, outputs."""

    id: str
    owner: str
    asset: AssetRecord
    request: JobRequest
    folder: Path
    created_at: str = field(default_factory=utc_iso)
    started_at: str | None = None
    updated_at: str = field(default_factory=utc_iso)
    status: str = "created"
    status_info: dict[str, Any] | None = None
    outputs: list[tuple[str, Path]] = field(default_factory=list)  # (asset name, file)
    created: float = field(default_factory=time.time)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class AudioShakeAPI:
    """State and routes of the sandbox's AudioShake API."""

    def __init__(
        self,
        config: SandboxConfig,
        signer: Signer,
        workers: Workers,
        state: SandboxState | None = None,
    ) -> None:
        self.config = config
        self.separator = config.separator("audioshake")
        self.signer = signer
        self.workers = workers
        self.root = Path(config.data_dir) / "audioshake"
        self.root.mkdir(parents=True, exist_ok=True)
        self.callbacks = Callbacks()
        state = state or SandboxState(None)
        self.assets = state.records(
            "audioshake", "assets", encode=self._asset_record, decode=self._asset_from
        )
        self.jobs = state.records(
            "audioshake", "jobs", encode=self._job_record, decode=self._job_from
        )
        self.stats = state.counters("audioshake", {"uploads": 0, "jobs": 0})
        self._lock = threading.Lock()

    # -- durable records (stemkit.sandbox.state) ----------------------------------------------
    def _asset_record(self, a: AssetRecord) -> dict[str, Any]:
        return {"id": a.id, "owner": a.owner, "name": a.name,
                "path": a.path.relative_to(self.root).as_posix(), "format": a.format,
                "sha256": a.sha256}  # fmt: skip

    def _asset_from(self, r: dict[str, Any]) -> AssetRecord:
        return AssetRecord(r["id"], r["owner"], r["name"], self.root / r["path"], r["format"],
                           r["sha256"])  # fmt: skip

    def _job_record(self, job: JobRecord) -> dict[str, Any]:
        req = job.request
        return {
            "id": job.id,
            "owner": job.owner,
            "asset": job.asset.id,
            "request": {
                "assetId": req.assetId,
                "metadata": req.metadata.as_dict(),
                "callbackUrl": req.callbackUrl,
            },  # fmt: skip
            "folder": job.folder.relative_to(self.root).as_posix(),
            "created_at": job.created_at,
            "started_at": job.started_at,
            "updated_at": job.updated_at,
            "status": job.status,
            "status_info": job.status_info,
            "outputs": [[n, p.relative_to(self.root).as_posix()] for n, p in list(job.outputs)],
            "created": job.created,
        }

    def _job_from(self, r: dict[str, Any]) -> JobRecord:
        q = r["request"]
        request = JobRequest(q["assetId"], JobMetadata(**q["metadata"]), q["callbackUrl"])
        return JobRecord(
            r["id"], r["owner"], self.assets[r["asset"]], request, self.root / r["folder"],
            created_at=r["created_at"], started_at=r["started_at"], updated_at=r["updated_at"],
            status=r["status"], status_info=r["status_info"],
            outputs=[(n, self.root / p) for n, p in r["outputs"]], created=r["created"],
        )  # fmt: skip

    def resume(self) -> int:
        """Queue again the jobs a restart interrupted (created or processing); how many."""
        pending = [j for j in self.jobs.values() if j.status in ("created", "processing")]
        for job in sorted(pending, key=lambda j: j.created):
            self.workers.heavy.submit(self._process, job)
        return len(pending)

    def routes(self) -> list[Route]:
        return [
            Route("/upload/", self.upload, methods=["POST"]),
            Route("/upload", self.upload, methods=["POST"]),
            Route("/upload/link", self.upload_link, methods=["POST"]),
            # the vendor's spec has a second link upload beside /upload/link
            Route("/upload/audio-link", self.upload_link, methods=["POST"]),
            Route("/job/", self.create_job, methods=["POST"]),
            Route("/job", self.create_job, methods=["POST"]),
            Route("/job/{job_id}", self.get_job, methods=["GET"]),
            Route("/storage/{key:path}", self.storage, methods=["GET"]),
        ]

    # -- helpers ------------------------------------------------------------------------------
    def _client(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip()
        client = next(
            (c for t, c in self.config.audioshake_tokens.items() if same_secret(t, token)), None
        )
        if not header.startswith("Bearer ") or client is None:
            raise HTTPException(401, "invalid or missing bearer token")
        return client

    def _link(self, request: Request, path: Path) -> str:
        return self.signer.url(
            request, "/audioshake/storage", self.root, path, "GET", self.config.url_ttl
        )[0]

    def _asset_json(self, request: Request, a: AssetRecord) -> dict[str, Any]:
        return {
            "name": a.name,
            "id": a.id,
            "fileType": mime_type(a.format),
            "format": a.format,
            "link": self._link(request, a.path),
        }

    def _new_asset(self, owner: str, name: str, source: Path | bytes | BinaryIO) -> AssetRecord:
        asset_id = new_id(10)  # 20 characters: inside the documented 8-30
        safe_name = Path(name).name or "upload"
        folder = self.root / owner / "assets" / asset_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / safe_name
        if isinstance(source, bytes):
            path.write_bytes(source)
        elif isinstance(source, Path):
            shutil.copyfile(source, path)
        else:  # an uploaded file (spooled to disk), copied in blocks
            with open(path, "wb") as fh:
                shutil.copyfileobj(source, fh, 1 << 20)
        asset = AssetRecord(
            asset_id,
            owner,
            safe_name,  # as given: the vendor's link uploads name assets without extension
            path,
            sniff_format(path),  # from the content, not the name
            _sha256(path),
        )
        with self._lock:
            self.assets[asset_id] = asset
            self.stats.bump("uploads")
        return asset

    # -- routes -------------------------------------------------------------------------------
    async def upload(self, request: Request) -> Response:
        owner = self._client(request)  # the token first: nothing is read for a stranger
        try:
            form = await read_form(request, self.config.max_upload_bytes)
        except HTTPException as exc:
            if exc.status_code != 400:
                raise
            return error(400, f"expected multipart/form-data with a 'file' field ({exc.detail})")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return error(400, "multipart field 'file' is missing")
        if not upload.size:
            return error(400, "the uploaded file is empty")
        asset = self._new_asset(owner, upload.filename or "upload", upload.file)
        await form.close()
        return JSONResponse(self._asset_json(request, asset))

    async def upload_link(self, request: Request) -> Response:
        owner = self._client(request)
        body = await parse_body(request, LinkBody)
        source = self._own_file(request, body.link)
        if source is None:
            return error(400, "link must be a valid, unexpired signed URL of this sandbox")
        asset = self._new_asset(owner, body.name, source)
        return JSONResponse(self._asset_json(request, asset))

    def _own_file(self, request: Request, link: str) -> Path | None:
        """The local file behind a signed link of this sandbox, else None (no outside fetch)."""
        parts = urlsplit(link)
        base = urlsplit(str(request.base_url))
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            return None
        for api, prefix in (
            ("audioshake", "/audioshake/storage/"),
            ("sourceress", "/sourceress/storage/"),
        ):
            if parts.path.startswith(prefix):
                key = parts.path[len(prefix) :]
                q = parse_qs(parts.query)
                if self.signer.verify("GET", key, q.get("expires", [""])[0], q.get("sig", [""])[0]):
                    root = (Path(self.config.data_dir) / api).resolve()
                    path = (root / key).resolve()
                    if path.is_relative_to(root) and path.is_file():
                        return path
        return None

    async def create_job(self, request: Request) -> Response:
        owner = self._client(request)
        data = await read_json(request)
        try:
            req = parse_job_request(data)
        except ValueError as exc:
            return error(400, str(exc))
        asset = self.assets.get(req.assetId)
        if asset is None or asset.owner != owner:
            return error(404, f"no asset {req.assetId!r}")
        job_id = new_id(12)
        now = utc_iso(self.config.faults.vendor_clock())
        job = JobRecord(
            job_id,
            owner,
            asset,
            req,
            self.root / owner / "jobs" / job_id,
            created_at=now,
            updated_at=now,
        )
        job.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.jobs[job_id] = job
            self.stats.bump("jobs")
        self.workers.heavy.submit(self._process, job)
        return JSONResponse({"job": self._job_json(request, job)})

    async def get_job(self, request: Request) -> Response:
        owner = self._client(request)
        job_id = request.path_params["job_id"]
        if not 3 <= len(job_id) <= 60:
            return error(400, "job id must be 3-60 characters")
        job = self.jobs.get(job_id)
        if job is None or job.owner != owner:
            return error(404, f"no job {job_id!r}")
        return JSONResponse({"job": self._job_json(request, job)})

    async def storage(self, request: Request) -> Response:
        path = self.signer.resolve(request, self.root)
        if path == 403:
            return error(403, "link is invalid or expired: get the job again for a fresh one")
        if not path.is_file():
            return error(404, "no such file")
        return file_response(path)

    def _job_json(self, request: Request, job: JobRecord) -> dict[str, Any]:
        # licenseId is the job's own field (top level), not part of the metadata echoed
        meta = {k: v for k, v in job.request.metadata.as_dict().items() if k != "licenseId"}
        stem_meta = {("stemName" if k == "name" else k): v for k, v in meta.items()}
        outputs = [
            {
                "name": name,
                "id": f"{job.id}-{i}",
                "fileType": mime_type(path.suffix.lstrip(".")),
                "format": path.suffix.lstrip("."),
                "link": self._link(request, path),
            }
            for i, (name, path) in enumerate(job.outputs)
        ]
        return {
            "id": job.id,
            "clientId": job.owner,
            "createdAt": job.created_at,
            "startedAt": job.started_at,
            "updatedAt": job.updated_at,
            "requestId": f"req-{job.id[:12]}",
            "licenseId": job.request.metadata.licenseId or "",
            "metadata": meta,
            "stemMetadata": stem_meta,
            "callbackUrl": job.request.callbackUrl,
            "status": job.status,
            "statusInfo": job.status_info,
            "sourceAsset": self._asset_json(request, job.asset),
            "stemAssets": outputs,
            "outputAssets": outputs,
        }

    def duplicates(self) -> int:
        """Jobs of the same content and metadata beyond the first that did not fail."""
        live: dict[tuple, int] = {}
        for job in list(self.jobs.values()):
            if job.status == "failed":
                continue
            key = (job.owner, job.asset.sha256, job.request.metadata.key())
            live[key] = live.get(key, 0) + 1
        return sum(n - 1 for n in live.values())

    # -- the work -----------------------------------------------------------------------------
    def _process(self, job: JobRecord) -> None:
        meta = job.request.metadata
        job.started_at = job.updated_at = utc_iso(self.config.faults.vendor_clock())
        job.status = "processing"
        self.jobs.save(job.id)
        t0 = time.monotonic()
        if self.config.faults.roll("stuck", job.id):
            return  # injected: the job stays "processing" for ever
        try:
            if self.config.faults.roll("job_failure", job.id):
                raise ValueError("injected failure of the stem worker")
            if meta.name not in ENGINE_STEMS:
                raise ValueError(f"stem {meta.name!r} is not available in the sandbox engine")
            y, sr = decode(job.asset.path, self.config)
            if meta.maxTrackLength:
                y = y[:, : int(meta.maxTrackLength * sr)]
            stem = self.separator.separate(y, sr, [ENGINE_STEMS[meta.name]])[
                ENGINE_STEMS[meta.name]
            ]
            if self.config.processing_delay:
                time.sleep(self.config.processing_delay)
            # output assets are named with their extension, as the vendor names them
            paths = [self._write(job, meta.name, stem, sr, meta)]
            if meta.residual:
                paths.append(self._write(job, f"{meta.name}_residual", y - stem, sr, meta))
            if meta.preview:
                part = stem[:, : int(PREVIEW_SECONDS * sr)]
                preview = job.folder / f"{meta.name}_preview.mp3"
                paths.append(write_audio(preview, part, sr, "mp3"))
            job.outputs = [(path.name, path) for path in paths]
            job.status = "completed"
            job.status_info = {}  # the vendor's completed-job example
        except (AudioError, ValueError) as exc:
            job.status = "failed"
            job.status_info = {"code": 422, "message": str(exc)}  # the spec types code a number
        except Exception as exc:  # noqa: BLE001 - report, never crash the server
            log.exception("audioshake job %s", job.id)
            job.status = "failed"
            job.status_info = {"code": 500, "message": type(exc).__name__}
        job.updated_at = utc_iso(self.config.faults.vendor_clock())
        self.jobs.save(job.id)
        log.debug("job %s %s in %.2f s", job.id, job.status, time.monotonic() - t0)
        self.callbacks.send(
            job.request.callbackUrl,
            {"id": job.id, "status": job.status, "statusInfo": job.status_info},
        )

    def _write(self, job: JobRecord, name: str, y: np.ndarray, sr: int, meta) -> Path:
        if meta.watermarkInterval:
            y = self._watermark(y, sr, meta.watermarkInterval)
        fmt = meta.format
        path = job.folder / f"{name}.{fmt}"
        if fmt == "wav":
            sf.write(path, y.T, sr, subtype="FLOAT")
            return path
        if fmt == "aiff":
            sf.write(path, np.clip(y, -1, 1).T, sr, format="AIFF", subtype="PCM_16")
            return path
        return write_audio(path, y, sr, "m4a" if fmt == "mp4" else fmt)

    @staticmethod
    def _watermark(y: np.ndarray, sr: int, interval: float) -> np.ndarray:
        """A 60 ms 1 kHz beep at -30 dBFS every ``interval`` seconds."""
        out = y.copy()
        n = int(0.06 * sr)
        beep = 10 ** (-30 / 20) * np.sin(2 * np.pi * 1000 * np.arange(n) / sr) * np.hanning(n)
        for start in range(int(interval * sr), y.shape[1] - n, int(interval * sr)):
            out[:, start : start + n] += beep.astype(y.dtype)
        return out
