"""What the sandbox accepts in ``POST /audioshake/tasks``: the Tasks API's documented rules,
kept apart from the client's own models, so that a client bug is caught by the server.

Sources (developer.audioshake.ai): the Tasks API page (exactly one of ``url``/``assetId``;
``targets`` 1 to 10 items; each target ``model``, ``formats`` and optional ``residual``,
``variant``, ``language``, ``transcriptUrl``/``transcriptAssetId``), the Create Task reference
(``metadata`` is a string, stored and returned as-is), the Models page (model keys) and the
Supported formats page (output API values). :func:`parse_task_request` answers with the first
problem as ``"<where>: <what>"`` (the sandbox sends it with 400).

Examples
--------
>>> req = parse_task_request({"assetId": "a1",
...                           "targets": [{"model": "vocals", "formats": ["wav"]}]})
>>> req.targets[0].model, req.targets[0].residual
('vocals', False)
>>> parse_task_request({"assetId": "a1", "url": "https://x/y.wav",
...                     "targets": [{"model": "vocals", "formats": ["wav"]}]})
Traceback (most recent call last):
ValueError: body: provide exactly one of url or assetId, not both
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: model keys of the Models / Stems pages (the sandbox engine makes a subset of them)
MODELS = (
    "vocals", "instrumental", "drums", "bass", "other", "guitar", "piano", "strings", "wind",
    "other-x-guitar", "dialogue", "music", "music_fx", "effects", "music_removal", "speech",
    "multi_voice", "transcription", "alignment", "music_detection",
)  # fmt: skip
#: output formats that carry audio, and the text ones of transcription/alignment
AUDIO_FORMATS = ("wav", "mp3", "flac", "aiff", "mp4")
TEXT_FORMATS = ("json", "srt", "txt")
TEXT_MODELS = ("transcription", "alignment", "music_detection")
#: the Tasks API page's maxItems (the FAQ says 20 elsewhere; the stricter value is served)
MAX_TARGETS = 10


class TargetRequest(BaseModel):
    """One target of a create-task body, as accepted."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str
    formats: list[str] = Field(min_length=1)
    residual: bool = False
    variant: str | None = None
    language: str | None = None
    transcriptUrl: str | None = None
    transcriptAssetId: str | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if v not in MODELS:
            raise ValueError(f"unknown model {v!r}; supported: {', '.join(MODELS)}")
        return v

    @field_validator("formats")
    @classmethod
    def _formats(cls, v: list[str], info) -> list[str]:
        model = info.data.get("model")
        allowed = AUDIO_FORMATS + (TEXT_FORMATS if model in TEXT_MODELS else ())
        bad = [f for f in v if f not in allowed]
        if bad:
            raise ValueError(
                f"unsupported format {bad[0]!r} for model {model!r}; supported: "
                f"{', '.join(allowed)}"
            )
        if len(set(v)) != len(v):
            raise ValueError("formats must not repeat")
        return v


class TaskRequest(BaseModel):
    """A create-task body, as accepted."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str | None = Field(None, min_length=1, max_length=4096)
    assetId: str | None = Field(None, min_length=1, max_length=100)
    targets: list[TargetRequest] = Field(min_length=1, max_length=MAX_TARGETS)
    metadata: str | None = Field(None, max_length=10_000)


def parse_task_request(body: Any) -> TaskRequest:
    """Apply the documented rules to a create-task body.

    Parameters
    ----------
    body : Any
        The decoded JSON body.

    Returns
    -------
    TaskRequest

    Raises
    ------
    ValueError
        ``"<where>: <what>"`` of the first problem (answered with 400).
    """
    if not isinstance(body, dict):
        raise ValueError("body: must be a JSON object")
    has_url, has_asset = body.get("url") is not None, body.get("assetId") is not None
    if has_url and has_asset:
        raise ValueError("body: provide exactly one of url or assetId, not both")
    if not (has_url or has_asset):
        raise ValueError("body: provide exactly one of url or assetId")
    if isinstance(body.get("targets"), list) and not body["targets"]:
        raise ValueError("targets: at least 1 target is required")
    if isinstance(body.get("targets"), list) and len(body["targets"]) > MAX_TARGETS:
        raise ValueError(f"targets: at most {MAX_TARGETS} targets per task")
    try:
        return TaskRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return _raise(f"{where}: {first['msg'].removeprefix('Value error, ')}")


def _raise(message: str):
    raise ValueError(message)
