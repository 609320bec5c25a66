"""AudioShake's current Tasks API, served by the sandbox under ``/audioshake`` beside the
legacy job routes (:mod:`stemkit.sandbox.audioshake`).

``x-api-key`` on every call (``demo-key`` by default); ``POST /assets`` (multipart ``file``)
→ ``{id, format, link, name}``, assets expire (72 h by default); ``POST /tasks`` with exactly
one of ``url``/``assetId``, 1–10 ``targets`` and an optional ``metadata`` string (stored and
returned as given) → the Task; ``GET /tasks/{id}``; ``GET /tasks?skip=&take=`` (take 1–100,
newest first, a bare array as the docs show). Every target runs on its own and ends
``completed`` or ``error`` (``{code, message}``) without touching the others; output links
expire (1 h by default). Above ``audioshake_rate_limit`` requests per key and window: 429 with
``Retry-After``. When the account has a loopback webhook URL, the full Task is POSTed once per
target that finishes. Cost is in credits: 1 per started audio minute per completed target,
on the target and summed on the task.

Requests are checked by :mod:`stemkit.sandbox.audioshake_tasks_rules`; answers match
:mod:`stemkit.sandbox.audioshake_tasks_schema`. The separation itself goes through one
function, :attr:`AudioShakeTasksAPI.separate`: AudioShake's persona (engine and defects, the
same as the legacy API's; :mod:`stemkit.sandbox.personas`). :func:`separate_targets` is the
clean default engine.

Examples
--------
>>> import numpy as np
>>> y = np.zeros((2, 8000), dtype=np.float32)
>>> sorted(separate_targets(y, 8000, ["vocals", "instrumental"]))
['instrumental', 'vocals']
>>> credits(61.0), credits(60.0), credits(0.5)
(2, 1, 1)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import soundfile as sf
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stemkit.audio import load_audio, write_audio
from stemkit.dsp import engine
from stemkit.errors import AudioError
from stemkit.sandbox.audioshake import ENGINE_STEMS, sniff_format
from stemkit.sandbox.audioshake_tasks_rules import TargetRequest, TaskRequest, parse_task_request
from stemkit.sandbox.common import (
    Callbacks,
    SandboxConfig,
    Signer,
    Workers,
    error,
    file_response,
    new_id,
    utc_iso,
)
from stemkit.sandbox.state import SandboxState

log = logging.getLogger("stemkit.sandbox.audioshake_tasks")
#: input formats the Assets and Formats pages accept (``bin``: not audio the sandbox reads)
INPUT_FORMATS = ("wav", "aiff", "flac", "mp3", "mp4", "ogg")
#: the route of the API's own signed files (assets and outputs)
FILES_ROUTE = "/audioshake/tasks-files"


def separate_targets(audio: np.ndarray, sr: int, stems: Sequence[str]) -> dict[str, np.ndarray]:
    """Separate ``audio`` into ``stems`` (engine stem names) with the clean default engine
    (:mod:`stemkit.dsp.engine`); the API itself runs AudioShake's persona.

    Parameters
    ----------
    audio : np.ndarray
        Shape ``(channels, samples)``, float.
    sr : int
        Sample rate in Hz.
    stems : sequence of str
        Engine stem names (values of :data:`stemkit.sandbox.audioshake.ENGINE_STEMS`).

    Returns
    -------
    dict of str to np.ndarray
        Each stem, shape ``(channels, samples)``.

    Examples
    --------
    >>> y = np.zeros((1, 4000), dtype=np.float32)
    >>> separate_targets(y, 8000, ["vocals"])["vocals"].shape
    (1, 4000)
    """
    return engine.separate(audio, sr, list(stems))


def credits(seconds: float) -> int:
    """Credits of one target on ``seconds`` of audio: 1 per audio minute, rounded up
    (at least 1).

    Examples
    --------
    >>> credits(125.0)
    3
    """
    return max(1, math.ceil(seconds / 60.0 - 1e-9))


@dataclass
class TaskAsset:
    """An uploaded asset as the sandbox stores it."""

    id: str
    owner: str
    name: str
    path: Path
    format: str
    expires: float
    sha256: str


@dataclass
class TargetRecord:
    """A target of a task: its request and what became of it."""

    id: str
    request: TargetRequest
    status: str = "processing"
    outputs: list[tuple[str, str, Path]] = field(default_factory=list)  # (name, format, file)
    cost: int | None = None
    error: dict[str, Any] | None = None
    duration: float | None = None


@dataclass
class TaskRecord:
    """A task as the sandbox stores it."""

    id: str
    owner: str
    request: TaskRequest
    source: Path
    sha256: str
    folder: Path
    base_url: str
    targets: list[TargetRecord]
    created_ts: float = field(default_factory=time.time)
    completed_at: str | None = None

    @property
    def created_at(self) -> str:
        return utc_iso(self.created_ts)


class RateLimiter:
    """At most ``limit`` calls per key within ``window`` seconds (sliding window)."""

    def __init__(self) -> None:
        self._calls: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, key: str, limit: int, window: float) -> float | None:
        """None when the call may go on, else the seconds to wait (``Retry-After``)."""
        now = time.monotonic()
        with self._lock:
            calls = self._calls[key]
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= limit:
                return max(0.0, calls[0] + window - now)
            calls.append(now)
        return None


class AudioShakeTasksAPI:
    """State and routes of the sandbox's AudioShake Tasks API."""

    def __init__(
        self,
        config: SandboxConfig,
        signer: Signer,
        workers: Workers,
        state: SandboxState | None = None,
    ) -> None:
        self.config = config
        self.signer = signer
        self.workers = workers
        self.root = Path(config.data_dir) / "audioshake-tasks"
        self.root.mkdir(parents=True, exist_ok=True)
        self.callbacks = Callbacks()
        self.limiter = RateLimiter()
        state = state or SandboxState(None)
        self.assets = state.records(
            "audioshake-tasks", "assets", encode=self._asset_record, decode=self._asset_from
        )
        self.tasks = state.records(
            "audioshake-tasks", "tasks", encode=self._task_record, decode=self._task_from
        )
        self.stats = state.counters(
            "audioshake-tasks",
            {"assets": 0, "tasks": 0, "targets": 0, "rate_limited": 0, "webhooks": 0},
        )
        #: the separation function (audio, sr, stem names) -> stems: AudioShake's persona
        #: (engine and defects, :mod:`stemkit.sandbox.personas`), shared with the legacy API
        self.separate: Callable[[np.ndarray, int, Sequence[str]], dict[str, np.ndarray]] = (
            config.separator("audioshake").separate
        )
        self._lock = threading.Lock()

    # -- durable records (stemkit.sandbox.state) ----------------------------------------------
    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _asset_record(self, a: TaskAsset) -> dict[str, Any]:
        return {"id": a.id, "owner": a.owner, "name": a.name, "path": self._rel(a.path),
                "format": a.format, "expires": a.expires, "sha256": a.sha256}  # fmt: skip

    def _asset_from(self, r: dict[str, Any]) -> TaskAsset:
        return TaskAsset(r["id"], r["owner"], r["name"], self.root / r["path"], r["format"],
                         r["expires"], r["sha256"])  # fmt: skip

    def _task_record(self, task: TaskRecord) -> dict[str, Any]:
        targets = [
            {"id": t.id, "status": t.status, "cost": t.cost, "error": t.error,
             "duration": t.duration,
             "outputs": [[n, f, self._rel(p)] for n, f, p in list(t.outputs)]}
            for t in task.targets
        ]  # fmt: skip
        return {
            "id": task.id,
            "owner": task.owner,
            "request": json.loads(task.request.model_dump_json()),
            "source": self._rel(task.source),
            "sha256": task.sha256,
            "folder": self._rel(task.folder),
            "base_url": task.base_url,
            "targets": targets,
            "created_ts": task.created_ts,
            "completed_at": task.completed_at,
        }

    def _task_from(self, r: dict[str, Any]) -> TaskRecord:
        request = TaskRequest.model_validate_json(json.dumps(r["request"]))
        targets = [
            TargetRecord(t["id"], req, t["status"],
                         [(n, f, self.root / p) for n, f, p in t["outputs"]],
                         t["cost"], t["error"], t["duration"])
            for t, req in zip(r["targets"], request.targets, strict=True)
        ]  # fmt: skip
        return TaskRecord(
            r["id"], r["owner"], request, self.root / r["source"], r["sha256"],
            self.root / r["folder"], r["base_url"], targets, r["created_ts"], r["completed_at"],
        )  # fmt: skip

    def resume(self) -> int:
        """Queue again the tasks a restart interrupted (a target still processing); only
        those targets run again. Returns how many tasks were queued."""
        pending = [
            t for t in self.tasks.values() if any(x.status == "processing" for x in t.targets)
        ]
        for task in sorted(pending, key=lambda t: t.created_ts):
            self.workers.heavy.submit(self._process, task)
        return len(pending)

    def routes(self) -> list[Route]:
        return [
            Route("/assets", self.upload, methods=["POST"]),
            Route("/tasks", self.create_task, methods=["POST"]),
            Route("/tasks", self.list_tasks, methods=["GET"]),
            Route("/tasks/{task_id}", self.get_task, methods=["GET"]),
            Route("/tasks-files/{key:path}", self.files, methods=["GET"]),
        ]

    # -- helpers ------------------------------------------------------------------------------
    def _client(self, request: Request) -> str:
        key = request.headers.get("x-api-key", "")
        client = self.config.audioshake_api_keys.get(key)
        if client is None:
            raise HTTPException(401, "invalid or missing x-api-key header")
        wait = self.limiter.check(
            key, self.config.audioshake_rate_limit, self.config.audioshake_rate_window
        )
        if wait is not None:
            self.stats.bump("rate_limited")
            raise HTTPException(
                429,
                "rate limit exceeded: back off and retry after the Retry-After seconds",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return client

    def _link(self, base: str, path: Path) -> str:
        key = path.relative_to(self.root).as_posix()
        q = self.signer.sign("GET", f"tasks:{key}", self.config.audioshake_link_ttl)
        return f"{base.rstrip('/')}{FILES_ROUTE}/{key}?expires={q['expires']}&sig={q['sig']}"

    def _own_file(self, request: Request, link: str) -> Path | None:
        """The file behind a valid signed link of this API, else None (no outside fetch)."""
        parts, base = urlsplit(link), urlsplit(str(request.base_url))
        prefix = f"{FILES_ROUTE}/"
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
            return None
        if not parts.path.startswith(prefix):
            return None
        key = parts.path[len(prefix) :]
        q = parse_qs(parts.query)
        if not self.signer.verify(
            "GET", f"tasks:{key}", q.get("expires", [""])[0], q.get("sig", [""])[0]
        ):
            return None
        path = (self.root / key).resolve()
        return path if path.is_relative_to(self.root.resolve()) and path.is_file() else None

    def asset_json(self, request: Request, a: TaskAsset) -> dict[str, Any]:
        return {
            "id": a.id,
            "format": a.format,
            "link": self._link(str(request.base_url), a.path),
            "name": a.name,
        }

    def task_json(self, task: TaskRecord, base: str | None = None) -> dict[str, Any]:
        """The Task as every route (and the webhook) answers it, with fresh links on ``base``
        (the request's base URL; the webhook's: the one the task was created on)."""
        base = base or task.base_url
        req = task.request
        out: dict[str, Any] = {
            "id": task.id,
            "createdAt": task.created_at,
            "completedAt": task.completed_at,
            "clientId": task.owner,
            "cost": sum(t.cost or 0 for t in task.targets),
        }
        # "if you provide one, only that field is returned"
        out.update({"assetId": req.assetId} if req.assetId is not None else {"url": req.url})
        if req.metadata is not None:
            out["metadata"] = req.metadata
        out["targets"] = [self._target_json(base, t) for t in task.targets]
        return out

    def _target_json(self, base: str, t: TargetRecord) -> dict[str, Any]:
        r = t.request
        out: dict[str, Any] = {
            "id": t.id,
            "model": r.model,
            "status": t.status,
            "formats": list(r.formats),
            "output": [
                {"name": name, "format": fmt, "link": self._link(base, path)}
                for name, fmt, path in t.outputs
            ],
            "residual": r.residual,
        }
        for key in ("variant", "language", "transcriptUrl", "transcriptAssetId"):
            if getattr(r, key) is not None:
                out[key] = getattr(r, key)
        if t.cost is not None:
            out["cost"] = t.cost
        if t.duration is not None:
            out["duration"] = t.duration
        if t.error is not None:
            out["error"] = t.error
        return out

    # -- routes -------------------------------------------------------------------------------
    async def upload(self, request: Request) -> Response:
        owner = self._client(request)
        try:
            form = await request.form(max_part_size=self.config.max_upload_bytes)
        except Exception as exc:  # noqa: BLE001 - malformed multipart of any kind
            return error(400, f"expected multipart/form-data with a 'file' field ({exc})")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return error(400, "multipart field 'file' is missing")
        data = await upload.read()
        if not data:
            return error(400, "the uploaded file is empty")
        asset_id = new_id(12)
        name = Path(upload.filename or "upload").name or "upload"
        folder = self.root / owner / "assets" / asset_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(data)
        fmt = sniff_format(path)
        if fmt not in INPUT_FORMATS:
            path.unlink()
            return error(
                415, f"unsupported file format of {name!r}: upload {', '.join(INPUT_FORMATS)}"
            )
        asset = TaskAsset(
            asset_id,
            owner,
            name,
            path,
            fmt,
            time.time() + self.config.audioshake_asset_ttl,
            hashlib.sha256(data).hexdigest(),
        )
        with self._lock:
            self.assets[asset_id] = asset
            self.stats.bump("assets")
        return JSONResponse(self.asset_json(request, asset))

    async def create_task(self, request: Request) -> Response:
        owner = self._client(request)
        try:
            data = await request.json()
        except ValueError:
            return error(400, "request body is not valid JSON")
        try:
            req = parse_task_request(data)
        except ValueError as exc:
            return error(400, str(exc))
        if req.assetId is not None:
            asset = self.assets.get(req.assetId)
            if asset is None or asset.owner != owner:
                return error(404, f"no asset {req.assetId!r}: upload the file first")
            if asset.expires < time.time():
                return error(410, f"asset {req.assetId!r} has expired: upload the file again")
            source, sha = asset.path, asset.sha256
        else:
            source = self._own_file(request, req.url)
            if source is None:
                return error(
                    400,
                    "url: the sandbox fetches no outside URL; give a valid, unexpired signed "
                    "link of this sandbox (an asset's link) or upload the file",
                )
            sha = hashlib.sha256(source.read_bytes()).hexdigest()
        task_id = new_id(12)
        task = TaskRecord(
            task_id,
            owner,
            req,
            source,
            sha,
            self.root / owner / "tasks" / task_id,
            str(request.base_url),
            [TargetRecord(new_id(12), t) for t in req.targets],
        )
        task.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.tasks[task_id] = task
            self.stats.bump("tasks")
            self.stats.bump("targets", len(task.targets))
        self.workers.heavy.submit(self._process, task)
        return JSONResponse(self.task_json(task, str(request.base_url)))

    async def get_task(self, request: Request) -> Response:
        owner = self._client(request)
        task = self.tasks.get(request.path_params["task_id"])
        if task is None or task.owner != owner:
            return error(404, f"no task {request.path_params['task_id']!r}")
        return JSONResponse(self.task_json(task, str(request.base_url)))

    async def list_tasks(self, request: Request) -> Response:
        owner = self._client(request)
        try:
            skip = int(request.query_params.get("skip", "0"))
            take = int(request.query_params.get("take", "10"))
        except ValueError:
            return error(400, "skip and take must be integers")
        if skip < 0:
            return error(400, f"skip must be >= 0, got {skip}")
        if not 1 <= take <= 100:
            return error(400, f"take must be between 1 and 100, got {take}")
        mine = sorted(
            (t for t in list(self.tasks.values()) if t.owner == owner),
            key=lambda t: t.created_ts,
            reverse=True,
        )
        base = str(request.base_url)
        return JSONResponse([self.task_json(t, base) for t in mine[skip : skip + take]])

    async def files(self, request: Request) -> Response:
        key = request.path_params["key"]
        q = request.query_params
        if not self.signer.verify("GET", f"tasks:{key}", q.get("expires"), q.get("sig")):
            return error(403, "link is invalid or expired: get the task again for fresh links")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            return error(404, "no such file")
        return file_response(path)

    def duplicates(self) -> int:
        """Tasks of the same owner, content and targets beyond the first, unless every target
        of them failed (what a client that submits twice pays for)."""
        live: dict[tuple, int] = {}
        for task in list(self.tasks.values()):
            if task.targets and all(t.status == "error" for t in task.targets):
                continue
            targets = tuple(
                sorted(t.request.model_dump_json() for t in task.targets)
            )  # same request
            key = (task.owner, task.sha256, targets)
            live[key] = live.get(key, 0) + 1
        return sum(n - 1 for n in live.values())

    # -- the work -----------------------------------------------------------------------------
    def _process(self, task: TaskRecord) -> None:
        """Run every target of ``task``: one engine call for all the targets it can make
        (they share its analysis), then each target ends on its own."""
        todo = [t for t in task.targets if t.status == "processing"]  # all, unless resumed
        try:
            y, sr = load_audio(task.source)
        except AudioError as exc:
            for target in todo:
                self._finish(task, target, error={"code": 422, "message": str(exc)})
            return
        runnable = []
        for target in todo:
            if self.config.faults.roll("stuck", target.id):
                continue  # injected: this target stays "processing" for ever
            model = target.request.model
            if self.config.faults.roll("job_failure", target.id):
                self._finish(task, target, error={"code": 500, "message": "injected failure "
                             "of the target's worker"})  # fmt: skip
            elif model not in ENGINE_STEMS:
                message = f"model {model!r} is not available in the sandbox engine"
                self._finish(task, target, error={"code": 422, "message": message})
            else:
                runnable.append(target)
        names = sorted({ENGINE_STEMS[t.request.model] for t in runnable})
        try:
            stems = self.separate(y, sr, names) if names else {}
        except Exception:  # noqa: BLE001 - then each target tries on its own, below
            log.exception("audioshake task %s: one engine call for %s", task.id, names)
            stems = {}
        for target in runnable:
            self._run_target(task, target, y, sr, stems)

    def _run_target(self, task: TaskRecord, target: TargetRecord, y, sr, stems) -> None:
        model = target.request.model
        try:
            name = ENGINE_STEMS[model]
            stem = stems[name] if name in stems else self.separate(y, sr, [name])[name]
            if self.config.processing_delay:
                time.sleep(self.config.processing_delay)
            folder = task.folder / target.id
            folder.mkdir(parents=True, exist_ok=True)
            outputs = []
            for fmt in target.request.formats:
                outputs.append((model, fmt, _write(folder / f"{model}.{fmt}", stem, sr, fmt)))
                if target.request.residual:
                    path = folder / f"{model}_residual.{fmt}"
                    outputs.append((f"{model}_residual", fmt, _write(path, y - stem, sr, fmt)))
            target.outputs = outputs
            target.duration = round(y.shape[1] / sr, 2)
            self._finish(task, target, cost=credits(y.shape[1] / sr))
        except (AudioError, ValueError) as exc:
            self._finish(task, target, error={"code": 422, "message": str(exc)})
        except Exception as exc:  # noqa: BLE001 - report, never crash the server
            log.exception("audioshake task %s target %s", task.id, target.id)
            self._finish(task, target, error={"code": 500, "message": type(exc).__name__})

    def _finish(
        self, task: TaskRecord, target: TargetRecord, *, cost: int | None = None, error=None
    ) -> None:
        """End one target (completed with its cost, or error at no cost), then post the full
        Task to the account's webhook."""
        if error is not None:
            target.error, target.cost, target.status = error, 0, "error"
        else:
            target.cost, target.status = cost, "completed"
        if all(t.status != "processing" for t in task.targets):
            task.completed_at = utc_iso()
        self.tasks.save(task.id)
        url = self.config.audioshake_webhooks.get(task.owner)
        if url:
            self.stats.bump("webhooks")
            self.callbacks.send(url, self.task_json(task))


def _write(path: Path, y: np.ndarray, sr: int, fmt: str) -> Path:
    if fmt == "wav":
        sf.write(path, y.T, sr, subtype="FLOAT")
        return path
    if fmt == "aiff":
        sf.write(path, np.clip(y, -1, 1).T, sr, format="AIFF", subtype="PCM_16")
        return path
    if fmt in ("json", "srt", "txt"):
        raise ValueError(f"format {fmt!r} is for transcription models only")
    return write_audio(path, y, sr, "m4a" if fmt == "mp4" else fmt)
