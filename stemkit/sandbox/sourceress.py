"""The Sourceress Separation API, served by the sandbox under ``/sourceress``.

Paths, bodies and status codes follow ``shared/api/NOTES.md``. The work is real: uploads are
decoded, separated by :mod:`stemkit.dsp.engine`, converted to the requested format; progress
events are appended by the processing stages as they happen, with their real UTC timestamps.

Sandbox choices where the vendor doc is silent:

- a failed separation gets an event ``"Separation Failed"`` whose message says why, and
  ``outputFiles`` stays null;
- stems are stored as 32-bit float WAV, so they sum back to the mixture exactly;
- ``pan`` in a mix is a balance control: ``-1`` keeps only the left channel, ``1`` only the right,
  ``0`` leaves both at unity; ``volume`` scales linearly;
- data belongs to the *account*: every token of a user sees that user's uploads and separations,
  no other user's (404 for those).

Examples
--------
>>> from stemkit.sandbox import create_app
>>> app = create_app(tmp_path)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
import zipfile
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stemkit.audio import write_audio
from stemkit.errors import AudioError
from stemkit.sandbox.common import (
    Callbacks,
    SandboxConfig,
    Signer,
    TokenStore,
    Workers,
    error,
    file_response,
    local_iso,
    new_id,
    parse_body,
    require_param,
    same_secret,
    vendor_stamp,
)
from stemkit.sandbox.state import SandboxState
from stemkit.sandbox.uploads import decode

log = logging.getLogger("stemkit.sandbox.sourceress")

#: separationAlgorithm -> (engine stem, vendor file name)
ALGORITHM_STEMS: dict[int, tuple[tuple[str, str], ...]] = {
    6: (("vocals", "vocals"), ("accompaniment", "track")),
    7: (("vocals", "vocals"), ("drums", "drums"), ("bass", "bass"), ("other", "other")),
}
FORMATS = ("wav", "mp3", "m4a", "flac")
#: seconds the failed first attempt of an injected vendor retry lasts
RETRY_PAUSE = 0.3


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthBody(_Body):
    """The body of ``POST /auth``: username and password."""

    username: str
    password: str


class SeparateBody(_Body):
    """The body of ``POST /separate``: upload id, algorithm and options."""

    uploadId: str = Field(min_length=1, max_length=64)
    separationAlgorithm: Literal[6, 7]
    customMetadata: str | None = Field(None, max_length=10_000)
    callbackUrl: str | None = Field(None, max_length=2048)
    outputFormats: list[str] | str | None = None
    priority: int | None = None
    priorityOffset: int | None = None


class TrialBody(SeparateBody):
    """The body of ``POST /separate/trial``: upload id and the trial window."""

    trialSectionSeconds: float = Field(30.0, gt=0, le=3600)
    trialSectionStart: float | None = Field(None, ge=0)


class MixTrackBody(_Body):
    """One stem of a mix request: file name, volume, pan."""

    fileName: str = Field(min_length=1)
    volume: float = Field(1.0, ge=0, le=1)
    pan: float = Field(0.0, ge=-1, le=1)


class MixBody(_Body):
    """The body of ``POST /mix``: the separation and its stems' levels."""

    separationId: str
    tracks: list[MixTrackBody] = Field(min_length=1)
    mixName: str = Field(min_length=1, max_length=200)


class ZipBody(_Body):
    """The body of ``POST /zip``: the separation and the zip's name."""

    separationId: str
    tracks: list[str] = Field(min_length=1)
    format: str = "wav"
    zipFileName: str = Field("stems", min_length=1, max_length=200)


@dataclass
class Upload:
    """An upload slot as the sandbox stores it: owner, file, metadata."""

    id: str
    owner: str
    path: Path
    uploaded: bool = False
    metadata: dict[str, Any] | None = None
    sha256: str = ""


@dataclass
class Separation:
    """A separation as the sandbox stores it: request, events, outputs."""

    id: str
    owner: str
    upload: Upload
    algorithm: int
    folder: Path
    trial: tuple[float, float | None] | None = None
    custom_metadata: str | None = None
    callback_url: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    output_files: list[str] | None = None
    stems: dict[str, Path] = field(default_factory=dict)  # vendor name -> float wav
    products: dict[str, Future] = field(default_factory=dict)  # "mix/..", "zip/..", conversions
    created: float = field(default_factory=time.time)

    @property
    def finished(self) -> bool:
        """Outputs are there, or it failed: nothing left to do for it."""
        return bool(self.output_files) or any(
            e["event"] == "Separation Failed" for e in self.events
        )


class SourceressAPI:
    """State and routes of the sandbox's Sourceress API."""

    def __init__(
        self,
        config: SandboxConfig,
        signer: Signer,
        workers: Workers,
        state: SandboxState | None = None,
    ) -> None:
        self.config = config
        self.separator = config.separator("sourceress")
        self.signer = signer
        self.workers = workers
        self.root = Path(config.data_dir) / "sourceress"
        self.root.mkdir(parents=True, exist_ok=True)
        state = state or SandboxState(None)
        self.tokens = TokenStore(state.records("sourceress", "tokens", encode=dict, decode=dict))
        self.callbacks = Callbacks()
        self.uploads = state.records(
            "sourceress", "uploads", encode=self._upload_record, decode=self._upload_from
        )
        self.separations = state.records(
            "sourceress", "separations", encode=self._sep_record, decode=self._sep_from
        )
        self.stats = state.counters(
            "sourceress", {"auth": 0, "uploads": 0, "separations": 0, "trials": 0}
        )
        self._lock = threading.Lock()

    # -- durable records (stemkit.sandbox.state) ----------------------------------------------
    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _upload_record(self, up: Upload) -> dict[str, Any]:
        return {"id": up.id, "owner": up.owner, "path": self._rel(up.path),
                "uploaded": up.uploaded, "metadata": up.metadata, "sha256": up.sha256}  # fmt: skip

    def _upload_from(self, r: dict[str, Any]) -> Upload:
        return Upload(r["id"], r["owner"], self.root / r["path"], r["uploaded"], r["metadata"],
                      r["sha256"])  # fmt: skip

    def _sep_record(self, sep: Separation) -> dict[str, Any]:
        products = {  # finished mixes, zips and conversions: their files
            key: self._rel(fut.result())
            for key, fut in list(sep.products.items())
            if fut.done() and fut.exception() is None and isinstance(fut.result(), Path)
        }
        return {
            "id": sep.id,
            "owner": sep.owner,
            "upload": sep.upload.id,
            "algorithm": sep.algorithm,
            "folder": self._rel(sep.folder),
            "trial": list(sep.trial) if sep.trial is not None else None,
            "custom_metadata": sep.custom_metadata,
            "callback_url": sep.callback_url,
            "events": list(sep.events),
            "output_files": sep.output_files,
            "stems": {k: self._rel(v) for k, v in list(sep.stems.items())},
            "products": products,
            "created": sep.created,
        }

    def _sep_from(self, r: dict[str, Any]) -> Separation:
        products = {}
        for key, rel in r["products"].items():
            fut: Future = Future()
            fut.set_result(self.root / rel)
            products[key] = fut
        return Separation(
            r["id"], r["owner"], self.uploads[r["upload"]], r["algorithm"],
            self.root / r["folder"], trial=tuple(r["trial"]) if r["trial"] else None,
            custom_metadata=r["custom_metadata"], callback_url=r["callback_url"],
            events=r["events"], output_files=r["output_files"],
            stems={k: self.root / v for k, v in r["stems"].items()}, products=products,
            created=r["created"],
        )  # fmt: skip

    def resume(self) -> int:
        """Queue again what a restart interrupted: metadata of uploads, unfinished
        separations (formatting again, or straight to the separation queue when the request
        was formatted). Returns how many separations were queued."""
        for up in self.uploads.values():
            if up.uploaded and up.metadata is None:
                self.workers.quick.submit(self._compute_metadata, up)
        queued = 0
        for sep in sorted(self.separations.values(), key=lambda s: s.created):
            if sep.finished:
                continue
            formatted = any(e["event"] == "Starting Separation" for e in sep.events)
            if formatted and (sep.folder / "request.wav").is_file():
                self.workers.heavy.submit(self._process, sep)
            else:
                self.workers.quick.submit(self._prepare, sep)
            queued += 1
        return queued

    # -- routing ------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("/auth/", self.auth, methods=["POST"]),
            Route("/auth", self.auth, methods=["POST"]),
            Route("/separation/create", self.create, methods=["POST"]),
            Route("/separation/metadata", self.metadata, methods=["GET"]),
            Route("/separation/separate", self.separate, methods=["POST"]),
            Route("/separation/trial", self.trial, methods=["POST"]),
            Route("/separation/progress", self.progress, methods=["GET"]),
            Route("/separation/download", self.download, methods=["GET"]),
            Route("/separation/mix", self.mix, methods=["POST"]),
            Route("/separation/zip", self.zip, methods=["POST"]),
            Route("/storage/{key:path}", self.storage, methods=["GET", "PUT"]),
        ]

    # -- helpers ------------------------------------------------------------------------------
    def _owner(self, request: Request) -> str:
        return self.tokens.owner(request.headers.get("authorization", "").removeprefix("Bearer "))

    def _signed_url(self, request: Request, method: str, path: Path) -> tuple[str, str]:
        url, expires = self.signer.url(
            request, "/sourceress/storage", self.root, path, method, self.config.url_ttl
        )
        return url, local_iso(expires)

    def _separation(self, owner: str, sid: str) -> Separation:
        sep = self.separations.get(sid)
        if sep is None or sep.owner != owner:
            raise HTTPException(404, f"no separation {sid!r}")
        return sep

    def _event(self, sep: Separation, name: str, message: str | None = "") -> None:
        faults = self.config.faults
        sep.events.append(
            {
                "event": name,
                "guid": str(uuid.uuid4()),
                "timestamp": vendor_stamp(faults.vendor_clock(), faults.timestamp_form),
                "message": message,
            }
        )
        self.separations.save(sep.id)

    def duplicates(self) -> int:
        """Separations of the same content and request beyond the first that did not fail."""
        live: dict[tuple, int] = {}
        for sep in list(self.separations.values()):
            if any(e["event"] == "Separation Failed" for e in sep.events):
                continue
            key = (sep.owner, sep.upload.sha256, sep.algorithm, sep.trial)
            live[key] = live.get(key, 0) + 1
        return sum(n - 1 for n in live.values())

    def _progress_body(self, sep: Separation) -> dict[str, Any]:
        return {"events": list(sep.events), "outputFiles": sep.output_files}

    # -- auth and upload ----------------------------------------------------------------------
    async def auth(self, request: Request) -> Response:
        body = await parse_body(request, AuthBody)
        expected = self.config.sourceress_users.get(body.username)
        if expected is None or not same_secret(expected, body.password):
            return error(401, "invalid username or password")
        token = self.tokens.issue(body.username, self.config.token_ttl)
        self.stats.bump("auth")
        return JSONResponse(
            {
                "token": f"Bearer {token}",
                "expiry": int(self.config.token_ttl),
                "token_type": "Bearer ",
            }
        )

    async def create(self, request: Request) -> Response:
        owner = self._owner(request)
        upload_id = new_id()
        folder = self.root / owner / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        up = Upload(upload_id, owner, folder / f"{upload_id}.requestData")
        with self._lock:
            self.uploads[upload_id] = up
        url, expiry = self._signed_url(request, "PUT", up.path)
        return JSONResponse(
            {"uploadId": upload_id, "signedUrl": url, "expiry": expiry, "method": "PUT"}
        )

    async def storage(self, request: Request) -> Response:
        path = self.signer.resolve(request, self.root)
        if path == 403:
            return error(403, "signed URL is invalid or expired: ask for a new one")
        if request.method == "GET":
            if not path.is_file():
                return error(404, "no such file")
            return file_response(path)
        upload = self.uploads.get(path.stem)
        if upload is None or upload.path.resolve() != path:
            return error(404, "no upload slot for this URL")
        size = 0
        digest = hashlib.sha256()
        tmp = path.with_suffix(".partial")
        with tmp.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                digest.update(chunk)
                if size > self.config.max_upload_bytes:
                    fh.close()
                    tmp.unlink(missing_ok=True)
                    return error(413, f"upload larger than {self.config.max_upload_bytes} bytes")
                fh.write(chunk)
        tmp.replace(path)
        upload.uploaded, upload.metadata, upload.sha256 = True, None, digest.hexdigest()
        self.uploads.save(upload.id)
        self.stats.bump("uploads")
        self.workers.quick.submit(self._compute_metadata, upload)
        return Response(status_code=200)

    def _compute_metadata(self, upload: Upload) -> None:
        try:
            info = sf.info(upload.path)
            meta = {
                "duration": info.frames / info.samplerate,
                "numChannels": info.channels,
                "sampleRate": info.samplerate,
            }
            if info.frames == 0:
                raise AudioError("the file holds no audio samples")
        except Exception:  # noqa: BLE001 - anything soundfile cannot read goes through ffmpeg
            try:
                y, sr = decode(upload.path, self.config)
                meta = {"duration": y.shape[1] / sr, "numChannels": y.shape[0], "sampleRate": sr}
            except AudioError as exc:
                upload.metadata = {"message": f"unreadable audio: {exc.detail}", "success": False}
                self.uploads.save(upload.id)
                return
        upload.metadata = {**meta, "message": "completed", "success": True}
        self.uploads.save(upload.id)

    async def metadata(self, request: Request) -> Response:
        owner = self._owner(request)
        upload = self.uploads.get(require_param(request, "uploadId"))
        if upload is None or upload.owner != owner:
            return error(404, "no such upload")
        if not upload.uploaded:
            return error(409, "nothing uploaded yet: PUT the file to the signed URL first")
        if upload.metadata is None:
            return JSONResponse(
                {"message": "computing metadata", "success": False}, status_code=202
            )
        return JSONResponse(upload.metadata)

    # -- separation ---------------------------------------------------------------------------
    async def separate(self, request: Request) -> Response:
        return await self._start(request, await parse_body(request, SeparateBody), trial=None)

    async def trial(self, request: Request) -> Response:
        body = await parse_body(request, TrialBody)
        return await self._start(
            request, body, trial=(body.trialSectionSeconds, body.trialSectionStart)
        )

    async def _start(self, request: Request, body: SeparateBody, trial) -> Response:
        owner = self._owner(request)
        upload = self.uploads.get(body.uploadId)
        if upload is None or upload.owner != owner:
            return error(404, f"no upload {body.uploadId!r}")
        if not upload.uploaded:
            return error(409, "nothing uploaded yet for this uploadId")
        if upload.metadata is not None and not upload.metadata.get("success"):
            return error(422, upload.metadata["message"])
        sid = new_id()
        sep = Separation(
            sid,
            owner,
            upload,
            body.separationAlgorithm,
            self.root / owner / "separations" / sid,
            trial=trial,
            custom_metadata=body.customMetadata,
            callback_url=body.callbackUrl,
        )
        sep.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.separations[sid] = sep
            self.stats.bump("trials" if trial else "separations")
        self.workers.quick.submit(self._prepare, sep)
        return JSONResponse({"separationId": sid})

    def _fail(self, sep: Separation, message: str) -> None:
        self._event(sep, "Separation Failed", message)
        self.callbacks.send(sep.callback_url, self._progress_body(sep))

    def _prepare(self, sep: Separation) -> None:
        """Formatting, metadata and trial chunking; then queue the separation."""
        try:
            self._event(sep, "Formatting Request File", "Formatting requestData into wav")
            y, sr = decode(sep.upload.path, self.config)
            self._event(sep, "Request Formatting Done", "")
            self._event(sep, "Requesting Metadata", "Requesting metadata from server")
            meta = {"duration": y.shape[1] / sr, "numChannels": y.shape[0], "sampleRate": sr}
            self._event(sep, "Metadata Task Done", "")
            if sep.trial is not None:
                self._event(sep, "Trial Chunking Start", "")
                y = self._trial_section(y, sr, *sep.trial)
                self._event(sep, "Trial Chunking Done", "")
            sf.write(sep.folder / "request.wav", y.T, sr, subtype="FLOAT")
            self._event(sep, "Starting Separation", "Starting Separation process")
            sep.upload.metadata = sep.upload.metadata or {
                **meta,
                "message": "completed",
                "success": True,
            }
            self.uploads.save(sep.upload.id)
            self.workers.heavy.submit(self._process, sep)
        except AudioError as exc:
            self._fail(sep, f"cannot read the uploaded file: {exc.detail}")
        except Exception as exc:  # noqa: BLE001 - report, never crash the server
            log.exception("preparing separation %s", sep.id)
            self._fail(sep, f"internal error while formatting: {type(exc).__name__}")

    @staticmethod
    def _trial_section(y: np.ndarray, sr: int, seconds: float, start: float | None) -> np.ndarray:
        total = y.shape[1] / sr
        seconds = min(seconds, total)
        if start is None:
            start = random.uniform(0, max(total - seconds, 0))
        start = min(start, max(total - seconds, 0))
        a = int(round(start * sr))
        return y[:, a : a + int(round(seconds * sr))]

    def _process(self, sep: Separation) -> None:
        """The queued part: separation by the engine, then the output files."""
        try:
            faults = self.config.faults
            # a separation queued again by a restart is the vendor's next attempt at it
            attempt = 1 + sum(e["event"] == "Queue message received" for e in sep.events)
            self._event(sep, "Queue message received", f"Attempt number {attempt}")
            self._event(sep, "Processing", None)
            if faults.roll("vendor_retry", "sourceress job"):
                # injected: the first attempt dies inside the vendor, which queues it again
                time.sleep(RETRY_PAUSE)
                self._event(sep, "Queue message received", f"Attempt number {attempt + 1}")
                self._event(sep, "Processing", None)
            if faults.roll("stuck", sep.id):
                return  # injected: progress never completes
            if faults.roll("job_failure", sep.id):
                raise RuntimeError("injected failure of the separation worker")
            y, sr = sf.read(sep.folder / "request.wav", dtype="float32", always_2d=True)
            stems = ALGORITHM_STEMS[sep.algorithm]
            result = self.separator.separate(y.T, sr, [s for s, _ in stems])
            if self.config.processing_delay:
                time.sleep(self.config.processing_delay)
            if not faults.roll("drop_finalising", "sourceress job"):
                self._event(sep, "Finalising", None)
            for stem, vendor_name in stems:
                path = sep.folder / f"{vendor_name}.wav"
                sf.write(path, result[stem].T, sr, subtype="FLOAT")
                sep.stems[vendor_name] = path
            sep.output_files = [f"{name}.wav" for _, name in stems]
            self.separations.save(sep.id)
            self.callbacks.send(sep.callback_url, self._progress_body(sep))
        except Exception as exc:  # noqa: BLE001 - report, never crash the server
            log.exception("separation %s", sep.id)
            self._fail(sep, f"separation failed: {type(exc).__name__}: {exc}")

    async def progress(self, request: Request) -> Response:
        sep = self._separation(self._owner(request), require_param(request, "separationId"))
        return JSONResponse(self._progress_body(sep))

    # -- download, mix, zip -------------------------------------------------------------------
    def _product(self, sep: Separation, key: str, make) -> Future:
        with self._lock:
            fut = sep.products.get(key)
            if fut is None or (fut.done() and fut.exception() is not None):
                fut = self.workers.quick.submit(make)
                sep.products[key] = fut
                fut.add_done_callback(lambda _: self.separations.save(sep.id))
        return fut

    async def download(self, request: Request) -> Response:
        owner = self._owner(request)
        sep = self._separation(owner, require_param(request, "separationId"))
        name = require_param(request, "fileName")
        fmt = require_param(request, "fileFormat").lower().lstrip(".")
        if fmt not in (*FORMATS, "zip"):
            return error(400, f"fileFormat must be one of {', '.join(FORMATS)} or zip")
        if name.startswith("zip/") or fmt == "zip":
            if fmt != "zip" or not name.startswith("zip/"):
                return error(
                    400, "zip files are downloaded with fileName=zip/<id>.zip and fileFormat=zip"
                )
            source = sep.products.get(name)
        elif name.startswith("mix/"):
            source = sep.products.get(name)
        else:
            if not sep.output_files:
                return JSONResponse({"message": "separation not finished"}, status_code=202)
            if name not in sep.stems:
                return error(404, f"no output file {name!r}; outputs: {sep.output_files}")
            source = sep.stems[name]
        if source is None:
            return error(404, f"no file {name!r} in this separation")
        if isinstance(source, Future):
            if not source.done():
                return JSONResponse({"message": "file is being prepared"}, status_code=202)
            if source.exception() is not None:
                return error(422, f"could not prepare {name}: {source.exception()}")
            source = source.result()
        if fmt in ("wav", "zip"):
            target = source
        else:
            target = source.with_suffix(f".{fmt}")
            fut = self._product(sep, f"{name}.{fmt}", lambda: self._convert(source, target, fmt))
            if not fut.done():
                return JSONResponse({"message": "file is being converted"}, status_code=202)
            if fut.exception() is not None:
                return error(422, f"could not convert {name} to {fmt}: {fut.exception()}")
        url, expiry = self._signed_url(request, "GET", target)
        return JSONResponse({"signedUrl": url, "expiry": expiry, "method": "GET"})

    @staticmethod
    def _convert(source: Path, target: Path, fmt: str) -> Path:
        y, sr = sf.read(source, dtype="float32", always_2d=True)
        return write_audio(target, y.T, sr, fmt)

    def _stem_for(self, sep: Separation, file_name: str) -> Path:
        name = file_name.rsplit(".", 1)[0] if file_name.endswith(tuple(FORMATS)) else file_name
        if name not in sep.stems:
            raise HTTPException(400, f"no output file {file_name!r}; outputs: {sep.output_files}")
        return sep.stems[name]

    async def mix(self, request: Request) -> Response:
        owner = self._owner(request)
        body = await parse_body(request, MixBody)
        sep = self._separation(owner, body.separationId)
        if not sep.output_files:
            return error(409, "separation not finished: mix after outputFiles appear")
        sources = [(self._stem_for(sep, t.fileName), t.volume, t.pan) for t in body.tracks]
        mix_id = f"mix/mix_{uuid.uuid4()}"
        target = sep.folder / f"{mix_id}.wav"
        self._product(sep, mix_id, lambda: self._render_mix(sources, target))
        return JSONResponse({"mixId": mix_id})

    @staticmethod
    def _render_mix(sources: list[tuple[Path, float, float]], target: Path) -> Path:
        out, sr = None, None
        for path, volume, pan in sources:
            y, sr = sf.read(path, dtype="float32", always_2d=True)
            y = y.T
            if y.shape[0] == 1:
                y = np.vstack([y, y])
            gains = np.array([1 - max(pan, 0.0), 1 + min(pan, 0.0)], np.float32)[:, None]
            y = y[:2] * gains * volume
            out = y if out is None else out + y
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, out.T, sr, subtype="FLOAT")
        return target

    async def zip(self, request: Request) -> Response:
        owner = self._owner(request)
        body = await parse_body(request, ZipBody)
        sep = self._separation(owner, body.separationId)
        fmt = body.format.lower().lstrip(".")
        if fmt not in FORMATS:
            return error(400, f"format must be one of {', '.join(FORMATS)}")
        if not sep.output_files:
            return error(409, "separation not finished: zip after outputFiles appear")
        sources = [self._stem_for(sep, t) for t in body.tracks]
        zip_path = f"zip/{uuid.uuid4()}.zip"
        target = sep.folder / zip_path
        self._product(sep, zip_path, lambda: self._build_zip(sources, fmt, target))
        return JSONResponse({"zipFilePath": zip_path})

    def _build_zip(self, sources: list[Path], fmt: str, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".partial")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for src in sources:
                path = src if fmt == "wav" else self._convert(src, src.with_suffix(f".{fmt}"), fmt)
                zf.write(path, arcname=f"{src.stem}.{fmt}")
        tmp.replace(target)
        return target
