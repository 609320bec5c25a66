"""The answers of AudioShake's Tasks API as the public docs publish them, strict (no coercion,
no unknown fields): what a client written from those pages expects. Tests validate every
sandbox answer, and the docs' own examples (``tests/fixtures/audioshake_tasks_doc.json``),
against these models.

Sources (developer.audioshake.ai): Create Task and List All Tasks (the Task schema), Webhooks
(the payload is the full Task; a processing target may omit ``cost``), Assets (the upload
answer ``{id, format, link, name}``).

Examples
--------
>>> Task.model_validate({"id": "t", "createdAt": "2023-11-07T05:31:56Z", "clientId": "c",
...                      "targets": []}).completedAt is None
True
>>> Target.model_validate({"id": "x", "model": "vocals", "status": "done", "formats": []})
Traceback (most recent call last):
pydantic_core._pydantic_core.ValidationError: 1 validation error for Target
status
  Input should be 'processing', 'completed' or 'error' ...
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Asset(_Strict):
    """The answer of ``POST /assets``."""

    id: str
    format: str
    link: str | None = None
    name: str


class Output(_Strict):
    """One output file of a target: its name, format and a signed link (1 h)."""

    name: str
    format: str
    link: str


class TargetError(_Strict):
    """``error`` of a target that failed: a numeric code and a message."""

    code: int | float
    message: str


class Target(_Strict):
    """A target of a Task with its own status, outputs, cost and error."""

    id: str
    model: str
    status: Literal["processing", "completed", "error"]
    formats: list[str]
    output: list[Output] | None = None
    cost: int | float | None = None
    error: TargetError | None = None
    duration: int | float | None = None
    residual: bool | None = None
    variant: str | None = None
    language: str | None = None
    transcriptUrl: str | None = None
    transcriptAssetId: str | None = None


class Task(_Strict):
    """A Task as Create, Get and List answer it (and the webhook posts it)."""

    id: str
    createdAt: str
    completedAt: str | None = None
    clientId: str
    cost: int | float | None = None
    assetId: str | None = None
    url: str | None = None
    metadata: str | None = None
    targets: list[Target]
