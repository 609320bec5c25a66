"""AudioShake stem job API client (vendor doc: ``shared/api/audioshake-get-job.txt``).

=========================  ====================================================
:meth:`upload_file`        ``POST /upload/`` – multipart ``file`` → asset
:meth:`upload_link`        ``POST /upload/link`` – ``{link, name}`` → asset
:meth:`create_job`         ``POST /job/`` – one job per stem
:meth:`get_job`            ``GET /job/:id`` – status, timestamps, output links
=========================  ====================================================

Every documented ``metadata`` field is validated *before* a request is sent
(:class:`JobMetadata`), so a typo costs nothing. One stemkit job is a group of vendor jobs
(one per stem) on one uploaded asset; it is done when every stem job is ``completed`` and
failed as soon as one is ``failed``/``error`` (the vendor's ``statusInfo`` message is passed
through). Unknown statuses are not terminal: the bounded wait decides. Output links expire, so
a download that is refused asks for the job again for fresh links.

Examples
--------
>>> from stemkit.providers.audioshake import JobMetadata
>>> JobMetadata(name="vocals", format="wav", residual=True).name
'vocals'
>>> JobMetadata(name="kazoo", format="wav")
Traceback (most recent call last):
pydantic_core._pydantic_core.ValidationError: 1 validation error for JobMetadata
...
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stemkit.errors import AuthError, LinkExpired, RequestError
from stemkit.providers.base import Provider
from stemkit.providers.files import safe_join
from stemkit.providers.records import Event, Job, JobStatus, Observation, utcnow
from stemkit.providers.transport import creates_job, idempotent
from stemkit.stems import TWO_STEMS, canonical
from stemkit.timing import parse_time, stages_from_stamps

#: ``metadata.name`` values the vendor documents
STEM_NAMES = (
    "vocals", "instrumental", "drums", "bass", "other", "guitar", "piano", "wind", "dialogue",
    "music", "music_fx", "music_removal", "speech", "transcription", "alignment",
    "other-x-guitar",
)  # fmt: skip
FORMATS = ("wav", "flac", "mp3", "aiff", "mp4")
LANGUAGES = (
    "af", "ar", "az", "be", "bg", "bs", "ca", "cs", "cy", "da", "de", "el", "en", "es", "et",
    "fa", "fi", "fr", "gl", "he", "hi", "hr", "hu", "hy", "id", "is", "it", "ja", "kk", "kn",
    "ko", "lt", "lv", "mi", "mk", "mr", "ms", "ne", "nl", "no", "pl", "pt", "ro", "ru", "sk",
    "sl", "sr", "sv", "sw", "ta", "th", "tl", "tr", "uk", "ur", "vi", "zh", "auto",
)  # fmt: skip
TERMINAL_OK = ("completed",)
TERMINAL_FAILED = ("failed", "error")
#: canonical stem -> the name AudioShake uses for it
VENDOR_NAMES = {"accompaniment": "instrumental"}


def vendor_name(stem: str) -> str:
    """AudioShake's ``metadata.name`` for a canonical stem name.

    Examples
    --------
    >>> vendor_name("accompaniment"), vendor_name("drums")
    ('instrumental', 'drums')
    """
    return VENDOR_NAMES.get(canonical(stem), stem)


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class JobMetadata(BaseModel):
    """The ``metadata`` of a job, validated by the vendor's documented rules."""

    model_config = ConfigDict(extra="forbid")

    name: str
    format: str = "wav"
    residual: bool | None = None
    language: str | None = None
    customProperty: str | None = Field(None, max_length=1000)
    maxTrackLength: float | None = Field(None, ge=20)
    preview: bool | None = None
    watermarkInterval: float | None = Field(None, ge=10)
    userSessionId: str | None = None
    audioId: str | None = None
    licenseId: str | None = None  # listed on the vendor's create-job page

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v not in STEM_NAMES:
            raise ValueError(f"name must be one of {', '.join(STEM_NAMES)}; got {v!r}")
        return v

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        if v not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {v!r}")
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        if v is not None and v not in LANGUAGES:
            raise ValueError(
                f"language must be two letters from the documented list or 'auto'; got {v!r}"
            )
        return v


class JobRequest(BaseModel):
    """Body of ``POST /job/``."""

    model_config = ConfigDict(extra="forbid")

    assetId: str = Field(min_length=8, max_length=30)
    callbackUrl: str | None = None
    metadata: JobMetadata


class Asset(_Model):
    """An asset of a job (source, stem or output): name, id, file type, format, signed link."""

    name: str | None = None
    id: str
    fileType: str | None = None
    format: str | None = None
    link: str | None = None


class StatusInfo(_Model):
    """``statusInfo`` of a job: the vendor's code, message and processing duration."""

    code: str | int | None = None
    message: str | None = None
    duration: float | None = None


class JobInfo(_Model):
    """A job as ``GET /job/:id`` returns it (the doc's schema; unknown fields kept)."""

    id: str
    clientId: str | None = None
    #: timestamps as sent (ISO text or epoch numbers), read by :func:`stemkit.timing.parse_time`
    createdAt: str | int | float | None = None
    startedAt: str | int | float | None = None
    updatedAt: str | int | float | None = None
    requestId: str | None = None
    licenseId: str | None = None
    metadata: dict[str, Any] | None = None
    stemMetadata: dict[str, Any] | None = None
    callbackUrl: str | None = None
    status: str | None = None
    statusInfo: StatusInfo | None = None
    sourceAsset: Asset | None = None
    stemAssets: list[Asset] = Field(default_factory=list)
    outputAssets: list[Asset] = Field(default_factory=list)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors(include_input=False):
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def check_job_id(job_id: str) -> str:
    """Job ids are 3–60 characters (the doc's path rule); checked before any request.

    Examples
    --------
    >>> check_job_id("ab")
    Traceback (most recent call last):
    stemkit.errors.RequestError: job id must be 3-60 characters, got 2
    """
    if not 3 <= len(job_id) <= 60:
        raise RequestError(f"job id must be 3-60 characters, got {len(job_id)}")
    return job_id


class AudioShakeProvider(Provider):
    """Client of the AudioShake jobs API (bearer token; one job per stem)."""

    name = "audioshake"
    stem_sets = (TWO_STEMS, ("vocals", "drums", "bass", "other"), ("dialogue", "music_fx"))

    def _headers(self) -> dict[str, str]:
        if self.profile.token is None:
            raise AuthError(
                "no token configured",
                provider=self.name,
                hint="set STEMKIT_AUDIOSHAKE_TOKEN or a stemkit.toml profile",
            )
        return {"Authorization": f"Bearer {self.profile.token.get_secret_value()}"}

    # -- endpoints -------------------------------------------------------------------------
    @idempotent
    def upload_file(self, path: Path) -> Asset:
        """Upload a local file (multipart, streamed from disk) and return its asset."""
        path = Path(path)
        with open(path, "rb") as fh:
            resp = self._request(
                "POST",
                "/upload/",
                "upload",
                files={"file": (path.name, fh, "application/octet-stream")},
            )
        return self.parse(Asset, self.json(resp, "upload"), "upload")

    @idempotent
    def upload_link(self, link: str, name: str) -> Asset:
        """Register a file the service can fetch from ``link``."""
        resp = self._request(
            "POST", "/upload/link", "upload link", json={"link": link, "name": name}
        )
        return self.parse(Asset, self.json(resp, "upload link"), "upload link")

    @staticmethod
    def job_request(
        asset_id: str, metadata: JobMetadata | dict, callback_url: str | None = None
    ) -> dict[str, Any]:
        """Validate and build the body of ``POST /job/`` (raises :class:`RequestError`).

        Examples
        --------
        >>> AudioShakeProvider.job_request("asset-123456", {"name": "vocals", "format": "flac"})
        {'assetId': 'asset-123456', 'metadata': {'name': 'vocals', 'format': 'flac'}}
        """
        try:
            req = JobRequest(
                assetId=asset_id,
                callbackUrl=callback_url,
                metadata=metadata
                if isinstance(metadata, JobMetadata)
                else JobMetadata.model_validate(metadata),
            )
        except ValidationError as exc:
            raise RequestError(
                f"invalid job request: {_validation_message(exc)}", step="create job"
            ) from None
        return req.model_dump(exclude_none=True)

    @creates_job
    def create_job(
        self, asset_id: str, metadata: JobMetadata | dict, callback_url: str | None = None
    ) -> JobInfo:
        """Create one stem job on an uploaded asset (validated before sending)."""
        body = self.job_request(asset_id, metadata, callback_url)
        resp = self._request("POST", "/job/", "create job", json=body)
        data = self.json(resp, "create job")
        return self.parse(JobInfo, data.get("job", data), "create job")

    @idempotent
    def get_job(self, job_id: str) -> JobInfo:
        """The job with its status, timestamps and (fresh) output links."""
        resp = self._request("GET", f"/job/{check_job_id(job_id)}", "get job")
        data = self.json(resp, "get job")
        return self.parse(JobInfo, data.get("job", data), "get job")

    # -- life cycle ------------------------------------------------------------------------
    def submit(
        self,
        audio_path: Path,
        *,
        track: str,
        stems: Sequence[str] = TWO_STEMS,
        fmt: str = "wav",
        callback_url: str | None = None,
        **metadata,
    ) -> Job:
        """Upload once, then create one job per stem; every body is validated first.

        Each stem's job id is handed to ``hooks.on_partial`` (the ledger) as it is created;
        ``hooks.resume_from`` (such a partial job of an earlier run) skips the upload and the
        stems it already has, so a failure at stem 2 never makes a rerun pay for stem 1.
        """
        names = [canonical(s) for s in stems]
        bodies = {
            s: self.job_request(
                "placeholder", {"name": vendor_name(s), "format": fmt, **metadata}, callback_url
            )
            for s in names
        }  # validate everything before paying for anything
        obs: list[Observation] = []
        # a previous run that created some stems' jobs and then failed: keep what it paid for
        earlier = getattr(self.hooks, "resume_from", None)
        earlier = earlier.meta if earlier is not None and earlier.meta.get("partial") else {}
        jobs: dict[str, str] = {s: j for s, j in earlier.get("jobs", {}).items() if s in names}
        asset_id = earlier.get("asset_id")
        if asset_id is None:
            with self.step("upload", track=track):
                t0 = utcnow()
                asset_id = self.upload_file(Path(audio_path)).id
                obs.append(Observation("upload", t0, utcnow()))

        def job(partial: bool) -> Job:
            meta = {"asset_id": asset_id, "jobs": dict(jobs), "format": fmt, "observations": obs}
            if partial:
                meta["partial"] = True
            return Job(self.name, asset_id, track, names, meta=meta)

        progress = getattr(self.hooks, "on_partial", None)
        with self.step("create job", track=track):
            t0 = utcnow()
            for stem, body in bodies.items():
                if stem in jobs:
                    continue  # created by an earlier run
                info = self.create_job(asset_id, body["metadata"], callback_url)
                jobs[stem] = info.id
                if progress is not None and len(jobs) < len(bodies):
                    progress(job(partial=True))  # recorded before the next one is paid for
            obs.append(Observation("submit", t0, utcnow()))
        return job(partial=False)

    def status(self, job: Job) -> JobStatus:
        infos = {stem: self.get_job(jid) for stem, jid in job.meta["jobs"].items()}
        events, rows = [], []
        for stem, info in infos.items():
            for label, stamp in (
                ("created", info.createdAt),
                ("started", info.startedAt),
                ("updated", info.updatedAt),
            ):
                if stamp:
                    events.append(
                        Event(
                            f"{stem} {label}",
                            parse_time(stamp, event=f"{stem} job {info.id} {label}At"),
                            info.status,
                        )
                    )
            done = info.status in TERMINAL_OK
            for row in stages_from_stamps(
                info.createdAt, info.startedAt, info.updatedAt if done else None
            ):
                rows.append({**row, "job_id": info.id})
        failed = {s: i for s, i in infos.items() if (i.status or "").lower() in TERMINAL_FAILED}
        if failed:
            msg = "; ".join(
                f"{s} job {i.id} {i.status}: "
                f"{(i.statusInfo.message if i.statusInfo else None) or 'no message'}"
                for s, i in failed.items()
            )
            return JobStatus("failed", events, message=msg, raw=infos, vendor_stages=rows)
        if all(i.status in TERMINAL_OK for i in infos.values()):
            return JobStatus("done", events, outputs=list(infos), raw=infos, vendor_stages=rows)
        started = any(i.startedAt for i in infos.values())
        return JobStatus("running" if started else "queued", events, raw=infos, vendor_stages=rows)

    def salvage(self, job: Job, status: JobStatus) -> Job | None:
        """The stems' jobs that did not fail: a rerun creates only the failed ones again."""
        infos = status.raw or {}
        good = {
            s: j
            for s, j in job.meta.get("jobs", {}).items()
            if s in infos and (infos[s].status or "").lower() not in TERMINAL_FAILED
        }
        if not good:
            return None
        meta = {**job.meta, "jobs": good, "partial": True}
        return Job(self.name, job.job_id, job.track, list(job.stems), meta=meta)

    def fetch(
        self, job: Job, status: JobStatus, out_dir: Path, *, fmt: str = "wav"
    ) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for stem, info in status.raw.items():
            with self.step(f"download {stem}", track=job.track):
                out[stem] = self._fetch_stem(job, stem, info, out_dir)
        return out

    def _fetch_stem(self, job: Job, stem: str, info: JobInfo, out_dir: Path) -> Path:
        """Download a stem's main asset (and its residual/preview into ``extras/``); links
        expire, so a refused link means: get the job again for fresh ones, once."""
        try:
            return self._download_assets(job, stem, info, out_dir)
        except LinkExpired:
            return self._download_assets(job, stem, self.get_job(info.id), out_dir)

    def _download_assets(self, job: Job, stem: str, info: JobInfo, out_dir: Path) -> Path:
        main = None
        for asset in info.outputAssets or info.stemAssets:
            kind = self._asset_kind(asset, stem)
            ext = (asset.format or job.meta.get("format", "wav")).lower()
            if kind == "stem":
                main = self.download(asset.link, safe_join(out_dir, f"{stem}.{ext}"))
            else:
                self.download(asset.link, safe_join(out_dir / "extras", f"{stem}.{kind}.{ext}"))
        if main is None:
            raise RequestError(f"job {info.id} is completed but lists no {stem} asset")
        return main

    @staticmethod
    def _asset_kind(asset: Asset, stem: str) -> str:
        name = (asset.name or "").lower()
        if "residual" in name:
            return "residual"
        if "preview" in name:
            return "preview"
        return "stem"
