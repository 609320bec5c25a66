"""The answers of AudioShake's legacy job API as the vendor publishes them, kept in the sandbox's
own package and strict (no coercion, no unknown fields): what a client generated from the
vendor's spec expects. Tests validate every sandbox answer, and the vendor's own examples,
against these models, so a drift on either side fails a test.

Sources: the ``GET /job/:id`` reference page (field names and types: ``statusInfo`` is null or an
object whose ``code`` is a number), the data-models page (the completed separation job:
``statusInfo: {}``, ``licenseId: ""``, output assets named ``instrumental.wav`` with ``fileType``
``audio/wav``) and the file-upload page (``fileType: "audio/mpeg"``, link uploads named without an
extension).

Examples
--------
>>> Job.model_validate({"id": "j1", "status": "created"}).status
'created'
>>> StatusInfo.model_validate({"code": "processing_error"})
Traceback (most recent call last):
pydantic_core._pydantic_core.ValidationError: 1 validation error for StatusInfo
code
  Input should be a valid number [type=float_type, input_value='processing_error', input_type=str]
    For further information visit https://errors.pydantic.dev/2.14/v/float_type
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Asset(_Strict):
    """An uploaded asset, a job's source or one of its outputs."""

    name: str
    id: str
    fileType: str = Field(pattern=r"^[a-z]+/[\w.+-]+$")  # a MIME type
    format: str
    link: str | None = None
    path: str | None = None
    jobs: list[dict] | None = None


class JobMetadata(_Strict):
    """``metadata`` / ``stemMetadata`` of a job (``stemMetadata`` says ``stemName``)."""

    format: str | None = None
    name: str | None = None
    stemName: str | None = None
    language: str | None = None
    customProperty: str | None = None
    residual: bool | None = None
    userSessionId: str | None = None
    audioId: str | None = None
    maxTrackLength: float | None = None
    preview: bool | None = None
    watermarkInterval: float | None = None


class StatusInfo(_Strict):
    """``statusInfo``: a numeric code, a message, the duration processed (all optional)."""

    code: float | None = None
    message: str | None = None
    duration: float | None = None


class Job(_Strict):
    """A job as ``POST /job`` and ``GET /job/:id`` answer it."""

    id: str
    clientId: str | None = None
    createdAt: str | None = None
    startedAt: str | None = None
    updatedAt: str | None = None
    requestId: str | None = None
    licenseId: str | None = None
    metadata: JobMetadata | None = None
    stemMetadata: JobMetadata | None = None
    callbackUrl: str | None = None
    status: str
    statusInfo: StatusInfo | None = None
    sourceAsset: Asset | None = None
    stemAssets: list[Asset] | None = None
    outputAssets: list[Asset] | None = None


class JobResponse(_Strict):
    """The body of ``POST /job`` and ``GET /job/:id``: ``{"job": ...}``."""

    job: Job
