"""AudioShake's current Tasks API client (public docs, developer.audioshake.ai).

=========================  ====================================================
:meth:`upload_asset`       ``POST /assets`` – multipart ``file`` → asset (72 h)
:meth:`create_task`        ``POST /tasks`` – one Task, every stem a target
:meth:`get_task`           ``GET /tasks/{id}`` – per-target status, outputs, cost
:meth:`list_tasks`         ``GET /tasks?skip=&take=`` – newest first, take 1–100
=========================  ====================================================

``x-api-key`` on every call (the profile's ``key``). Every body is validated before it is
sent (:func:`task_request`): exactly one of ``url``/``assetId``, 1–10 targets, known models
and formats. One stemkit job is one Task; a target that ends in ``error`` fails that stem
only (:attr:`~stemkit.providers.records.JobStatus.failed_stems`), the job fails only when
every target does. Output links expire after an hour: a refused download gets the task again
for fresh links. An asset that expired before the task was created is uploaded again.

**No ambiguous limbo.** Every create carries a unique submission key in ``metadata``. When
the answer of a create is lost (dropped connection, 502), the client lists the recent tasks
and finds its own by that key (:meth:`find_task`): found → that task is resumed (no second
task, no second bill); not found after a bounded look → nothing was created, and it is safe
to send the create again. The key also goes to the ledger before the create is sent
(``hooks.pending_create``), so a run killed mid-create is reconciled on the next run
(:meth:`reconcile`).

Examples
--------
>>> body = task_request(asset_id="a1b2c3", targets=[target("vocals"), target("instrumental")])
>>> [t["model"] for t in body["targets"]]
['vocals', 'instrumental']
>>> task_request(asset_id="a1b2c3", url="https://x/y.wav", targets=[target("vocals")])
Traceback (most recent call last):
stemkit.errors.RequestError: invalid task request: provide exactly one of url or assetId, not both
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stemkit.errors import AmbiguousSubmission, AuthError, LinkExpired, ProviderError, RequestError
from stemkit.providers.base import Provider
from stemkit.providers.files import safe_join, sha256_file
from stemkit.providers.records import Event, Job, JobStatus, Observation, utcnow
from stemkit.providers.transport import creates_job, idempotent
from stemkit.stems import FOUR_STEMS, TWO_STEMS, canonical
from stemkit.timing import parse_time, stages_from_stamps

#: model keys of the vendor's Models page
MODELS = (
    "vocals", "instrumental", "drums", "bass", "other", "guitar", "piano", "strings", "wind",
    "other-x-guitar", "dialogue", "music", "music_fx", "effects", "music_removal", "speech",
    "multi_voice", "transcription", "alignment", "music_detection",
)  # fmt: skip
AUDIO_FORMATS = ("wav", "mp3", "flac", "aiff", "mp4")
TEXT_FORMATS = ("json", "srt", "txt")
TEXT_MODELS = ("transcription", "alignment", "music_detection")
MAX_TARGETS = 10
#: canonical stem -> the model key AudioShake uses for it
VENDOR_MODELS = {"accompaniment": "instrumental"}
#: the key stemkit puts in ``metadata`` (a JSON object in the metadata string)
SUBMISSION_FIELD = "stemkit_submission"


class Target(BaseModel):
    """A target of a create-task body, validated by the documented rules."""

    model_config = ConfigDict(extra="forbid")

    model: str
    formats: list[str] = Field(min_length=1)
    residual: bool | None = None
    variant: str | None = None
    language: str | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if v not in MODELS:
            raise ValueError(f"unknown model {v!r}; supported: {', '.join(MODELS)}")
        return v

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: list[str], info) -> list[str]:
        allowed = AUDIO_FORMATS + (TEXT_FORMATS if info.data.get("model") in TEXT_MODELS else ())
        bad = [f for f in v if f not in allowed]
        if bad:
            raise ValueError(f"unsupported format {bad[0]!r}; supported: {', '.join(allowed)}")
        return v


class TaskBody(BaseModel):
    """Body of ``POST /tasks``."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    assetId: str | None = None
    targets: list[Target] = Field(min_length=1, max_length=MAX_TARGETS)
    metadata: str | None = None


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Asset(_Model):
    """An uploaded asset: its id (the ``assetId`` of a task), format, name, signed link."""

    id: str
    format: str | None = None
    link: str | None = None
    name: str | None = None


class Output(_Model):
    """One output file of a target: name, format and a signed link (1 h)."""

    name: str | None = None
    format: str | None = None
    link: str


class TargetInfo(_Model):
    """A target of a Task as the vendor answers it (unknown fields kept)."""

    id: str
    model: str
    status: str | None = None
    formats: list[str] = Field(default_factory=list)
    output: list[Output] | None = None
    cost: float | None = None
    error: dict[str, Any] | None = None
    duration: float | None = None


class TaskInfo(_Model):
    """A Task as Create, Get and List answer it."""

    id: str
    createdAt: str | None = None
    completedAt: str | None = None
    clientId: str | None = None
    cost: float | None = None
    assetId: str | None = None
    url: str | None = None
    metadata: str | None = None
    targets: list[TargetInfo] = Field(default_factory=list)

    def submission_key(self) -> str | None:
        """The stemkit submission key in this task's ``metadata``, if it has one."""
        try:
            meta = json.loads(self.metadata or "")
        except ValueError:
            return None
        return meta.get(SUBMISSION_FIELD) if isinstance(meta, dict) else None


def target(stem: str, fmt: str = "wav", **options) -> dict[str, Any]:
    """A target for the canonical ``stem`` (``accompaniment`` is AudioShake's
    ``instrumental``).

    Examples
    --------
    >>> target("accompaniment", "flac")
    {'model': 'instrumental', 'formats': ['flac']}
    """
    return {"model": VENDOR_MODELS.get(canonical(stem), canonical(stem)), "formats": [fmt],
            **options}  # fmt: skip


def _problem(exc: ValidationError) -> str:
    e = exc.errors(include_input=False)[0]
    where = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def task_request(
    *,
    targets: Sequence[dict[str, Any]],
    asset_id: str | None = None,
    url: str | None = None,
    metadata: str | None = None,
) -> dict[str, Any]:
    """Validate and build the body of ``POST /tasks`` (raises :class:`RequestError`).

    Examples
    --------
    >>> task_request(asset_id="a1", targets=[])
    Traceback (most recent call last):
    stemkit.errors.RequestError: invalid task request: at least 1 target is required
    >>> task_request(asset_id="a1", targets=[target("vocals", "ogg")])
    Traceback (most recent call last):
    stemkit.errors.RequestError: invalid task request: targets.0.formats: unsupported format ...
    """
    if (asset_id is None) == (url is None):
        why = "not both" if asset_id is not None else "none given"
        raise RequestError(
            f"invalid task request: provide exactly one of url or assetId, {why}",
        )
    if not targets:
        raise RequestError("invalid task request: at least 1 target is required")
    if len(targets) > MAX_TARGETS:
        raise RequestError(
            f"invalid task request: {len(targets)} targets, at most {MAX_TARGETS} per task"
        )
    try:
        body = TaskBody(url=url, assetId=asset_id, targets=list(targets), metadata=metadata)
    except ValidationError as exc:
        raise RequestError(f"invalid task request: {_problem(exc)}") from None
    return body.model_dump(exclude_none=True)


class AudioShakeTasksProvider(Provider):
    """Client of AudioShake's Tasks API (``x-api-key``; one Task per track, a target per
    stem)."""

    name = "audioshake-tasks"
    stem_sets = (TWO_STEMS, FOUR_STEMS, ("dialogue", "music_fx"))
    reconciles = True
    #: the bounded look for a lost create: rounds, pause between them, pages of 100 per round,
    #: and how far before the create a task may be dated and still be ours
    look_rounds = 3
    look_pause = 0.5
    look_pages = 5
    look_margin = timedelta(minutes=10)
    #: creates sent at most for one job when every answer is lost and no task is found
    create_attempts = 3

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._assets: dict[str, Asset] = {}  # sha256 of a file -> its asset (72 h at most)
        self._assets_lock = threading.Lock()

    def _headers(self) -> dict[str, str]:
        if self.profile.key is None:
            raise AuthError(
                "no API key configured",
                provider=self.name,
                hint="set STEMKIT_AUDIOSHAKE_TASKS_KEY or a stemkit.toml profile",
            )
        return {"x-api-key": self.profile.key.get_secret_value()}

    # -- endpoints -------------------------------------------------------------------------
    @idempotent
    def upload_asset(self, path: Path) -> Asset:
        """Upload a local file (multipart, streamed from disk) and return its asset."""
        path = Path(path)
        with open(path, "rb") as fh:
            resp = self._request(
                "POST",
                "/assets",
                "upload",
                files={"file": (path.name, fh, "application/octet-stream")},
            )
        return self.parse(Asset, self.json(resp, "upload"), "upload")

    @creates_job
    def create_task(self, body: dict[str, Any]) -> TaskInfo:
        """Create a Task from a body built by :func:`task_request` (validated again here)."""
        body = task_request(
            targets=body.get("targets", []),
            asset_id=body.get("assetId"),
            url=body.get("url"),
            metadata=body.get("metadata"),
        )
        resp = self._request("POST", "/tasks", "create task", json=body)
        return self.parse(TaskInfo, self.json(resp, "create task"), "create task")

    @idempotent
    def get_task(self, task_id: str) -> TaskInfo:
        """The task with every target's status, outputs (fresh links), cost and error."""
        if not task_id or "/" in task_id:
            raise RequestError(f"invalid task id {task_id!r}")
        resp = self._request("GET", f"/tasks/{task_id}", "get task")
        return self.parse(TaskInfo, self.json(resp, "get task"), "get task")

    def list_tasks(self, *, skip: int = 0, take: int = 10) -> list[TaskInfo]:
        """One page of the account's tasks, newest first (``take`` 1–100, checked first)."""
        if not 1 <= take <= 100:
            raise RequestError(f"take must be between 1 and 100, got {take}", step="list tasks")
        if skip < 0:
            raise RequestError(f"skip must be >= 0, got {skip}", step="list tasks")
        return self._list_page(skip, take)

    @idempotent
    def _list_page(self, skip: int, take: int) -> list[TaskInfo]:
        resp = self._request("GET", "/tasks", "list tasks", params={"skip": skip, "take": take})
        data = self.json(resp, "list tasks")
        if not isinstance(data, list):
            raise ProviderError("list tasks: expected a JSON array of tasks")
        return [self.parse(TaskInfo, t, "list tasks") for t in data]

    # -- lost creates ------------------------------------------------------------------------
    def find_task(self, submission_key: str, *, since: str | None = None) -> TaskInfo | None:
        """The task whose ``metadata`` carries ``submission_key``, looking through the
        recent tasks in :attr:`look_rounds` rounds; None when none has it (bounded look).

        Only tasks created after ``since`` minus :attr:`look_margin` are searched; a round
        stops at the first older task or after :attr:`look_pages` pages of 100.
        """
        floor = parse_time(since) - self.look_margin if since else None
        for round_no in range(self.look_rounds):
            if round_no:
                time.sleep(self.look_pause * round_no)
            for page in range(self.look_pages):
                tasks = self.list_tasks(skip=100 * page, take=100)
                for task in tasks:
                    if task.submission_key() == submission_key:
                        return task
                older = (
                    floor
                    and tasks
                    and tasks[-1].createdAt
                    and (parse_time(tasks[-1].createdAt) < floor)
                )
                if len(tasks) < 100 or older:
                    break
        return None

    def reconcile(self, pending: dict[str, Any], *, track: str) -> Job | None:
        task = self.find_task(pending["submission_key"], since=pending.get("since"))
        if task is None:
            return None
        return self._job(task, track, pending["stems"], pending.get("format", "wav"), [])

    # -- life cycle ------------------------------------------------------------------------
    def _asset(self, path: Path, *, fresh: bool = False) -> Asset:
        """The asset of ``path``: uploaded once per content (and again when ``fresh``)."""
        digest = sha256_file(path)
        with self._assets_lock:
            asset = None if fresh else self._assets.get(digest)
        if asset is None:
            asset = self.upload_asset(path)
            with self._assets_lock:
                self._assets[digest] = asset
        return asset

    def submit(
        self,
        audio_path: Path,
        *,
        track: str,
        stems: Sequence[str] = TWO_STEMS,
        fmt: str = "wav",
        residual: bool | None = None,
        **options,
    ) -> Job:
        """Upload once, then create one Task with a target per stem; validated first."""
        names = [canonical(s) for s in stems]
        targets = [target(s, fmt, **({"residual": residual} if residual else {}), **options)
                   for s in names]  # fmt: skip
        key = uuid.uuid4().hex
        metadata = json.dumps({SUBMISSION_FIELD: key, "track": track})
        task_request(asset_id="placeholder", targets=targets, metadata=metadata)  # validate first
        obs: list[Observation] = []
        with self.step("upload", track=track):
            t0 = utcnow()
            asset = self._asset(Path(audio_path))
            obs.append(Observation("upload", t0, utcnow()))
        pending = {"submission_key": key, "stems": names, "format": fmt,
                   "since": utcnow().isoformat()}  # fmt: skip
        with self.step("create task", track=track):
            t0 = utcnow()
            task = self._create(Path(audio_path), asset, targets, metadata, pending)
            obs.append(Observation("submit", t0, utcnow()))
        return self._job(task, track, names, fmt, obs)

    def _create(self, path: Path, asset: Asset, targets, metadata: str, pending) -> TaskInfo:
        """Create the task: upload again if the asset expired; on a lost answer, find the
        task by its submission key, or send again when a bounded look finds none."""
        lost, uploaded_again = 0, False
        for _ in range(self.create_attempts + 1):
            body = task_request(asset_id=asset.id, targets=targets, metadata=metadata)
            self.hooks.pending_create = {**pending, "asset_id": asset.id}
            try:
                return self.create_task(body)
            except AmbiguousSubmission:
                lost += 1
                found = self.find_task(pending["submission_key"], since=pending["since"])
                if found is not None:
                    return found  # the lost create made this task: resume it
                if lost >= self.create_attempts:
                    break
                # not found after a bounded look: nothing was created, send it again
            except RequestError as exc:
                if exc.status not in (404, 410) or uploaded_again:
                    raise
                asset = self._asset(path, fresh=True)  # expired or unknown: upload again
                uploaded_again = True
            finally:
                self.hooks.pending_create = None
        raise ProviderError(
            f"the answer of all {lost} creates was lost and no task carries the submission "
            "key: nothing was created",
            hint="the service is unreachable or failing; rerun later",
        )

    def _job(self, task: TaskInfo, track: str, stems: Sequence[str], fmt: str, obs: list) -> Job:
        models = {s: target(s)["model"] for s in stems}
        return Job(
            provider=self.name,
            job_id=task.id,
            track=track,
            stems=list(stems),
            meta={
                "task_id": task.id,
                "models": models,
                "format": fmt,
                "submission_key": task.submission_key(),
                "observations": obs,
            },
        )

    def status(self, job: Job) -> JobStatus:
        task = self.get_task(job.job_id)
        by_model = {t.model: t for t in task.targets}
        events = []
        if task.createdAt:
            events.append(Event("created", parse_time(task.createdAt), "task created"))
        if task.completedAt:
            events.append(Event("completed", parse_time(task.completedAt), "every target ended"))
        rows = stages_from_stamps(None, task.createdAt, task.completedAt)
        rows = [{**r, "job_id": task.id} for r in rows]
        infos: dict[str, TargetInfo] = {}
        for stem, model in job.meta["models"].items():
            if model not in by_model:
                raise ProviderError(f"task {task.id} has no {model!r} target")
            infos[stem] = by_model[model]
        statuses = {s: (t.status or "").lower() for s, t in infos.items()}
        raw = {"task": task, "targets": infos}
        if any(st not in ("completed", "error") for st in statuses.values()):
            return JobStatus("running", events, raw=raw, vendor_stages=rows, cost=task.cost)
        failed = {
            s: f"target {infos[s].id} ({infos[s].model}) error: "
            f"{(infos[s].error or {}).get('message') or 'no message'}"
            for s, st in statuses.items()
            if st == "error"
        }
        if len(failed) == len(infos):
            return JobStatus("failed", events, message="; ".join(failed.values()), raw=raw,
                             vendor_stages=rows, cost=task.cost)  # fmt: skip
        done = [s for s in infos if s not in failed]
        return JobStatus("done", events, outputs=done, raw=raw, vendor_stages=rows,
                         cost=task.cost, failed_stems=failed)  # fmt: skip

    def fetch(
        self, job: Job, status: JobStatus, out_dir: Path, *, fmt: str = "wav"
    ) -> dict[str, Path]:
        out: dict[str, Path] = {}
        infos = status.raw["targets"]
        for stem in status.outputs:
            with self.step(f"download {stem}", track=job.track):
                try:
                    out[stem] = self._download_target(stem, infos[stem], out_dir)
                except LinkExpired:  # links live an hour: get the task again for fresh ones
                    fresh = {t.id: t for t in self.get_task(job.job_id).targets}
                    out[stem] = self._download_target(stem, fresh[infos[stem].id], out_dir)
        return out

    def _download_target(self, stem: str, info: TargetInfo, out_dir: Path) -> Path:
        main = None
        for output in info.output or []:
            ext = (output.format or "wav").lower()
            if "residual" in (output.name or "").lower():
                self.download(output.link, safe_join(out_dir / "extras", f"{stem}.residual.{ext}"))
            elif main is None:
                main = self.download(output.link, safe_join(out_dir, f"{stem}.{ext}"))
        if main is None:
            raise RequestError(f"target {info.id} is completed but lists no {stem} output")
        return main
