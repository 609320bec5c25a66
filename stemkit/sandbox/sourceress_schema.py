"""The answers of the Sourceress Separation API as its doc prints them, kept in the sandbox's own
package and strict (no coercion, no unknown fields). Tests validate every sandbox answer, and
every response example of the doc, against these models.

Source: the vendor's separation API page (``tests/fixtures/sourceress_doc_bodies.json`` and
``sourceress_progress.json`` hold its examples): ``expiry`` is seconds in the auth answer and a
timestamp text in the signed-URL answers; an event's ``message`` may be null; ``outputFiles`` is
null until the separation is finished.

Examples
--------
>>> SignedUrl.model_validate({"signedUrl": "https://x", "expiry": "2020-07-22", "method": "GET"})
SignedUrl(signedUrl='https://x', expiry='2020-07-22', method='GET')
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: ISO 8601 UTC with milliseconds, as the doc's timestamps
_TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Auth(_Strict):
    """``POST /auth/``: the token (already prefixed ``Bearer``) and its lifetime in seconds."""

    token: str
    expiry: int
    token_type: str


class UploadSlot(_Strict):
    """``POST /separation/create``: where to PUT the file."""

    uploadId: str
    signedUrl: str
    expiry: str
    method: Literal["PUT"]


class Metadata(_Strict):
    """``GET /separation/metadata`` once computed."""

    duration: float
    numChannels: int
    sampleRate: int
    message: str
    success: bool


class SeparationStarted(_Strict):
    """``POST /separation/separate`` and ``/separation/trial``."""

    separationId: str


class ProgressEvent(_Strict):
    """One progress event, on the vendor's clock."""

    event: str
    guid: str
    timestamp: str = Field(pattern=_TIMESTAMP)
    message: str | None


class Progress(_Strict):
    """``GET /separation/progress``: the events so far; the files once finished."""

    events: list[ProgressEvent]
    outputFiles: list[str] | None


class SignedUrl(_Strict):
    """``GET /separation/download`` once ready: a signed GET URL."""

    signedUrl: str
    expiry: str
    method: Literal["GET"]


class MixCreated(_Strict):
    """``POST /separation/mix``."""

    mixId: str = Field(pattern=r"^mix/mix_")


class ZipCreated(_Strict):
    """``POST /separation/zip``."""

    zipFilePath: str = Field(pattern=r"^zip/.+\.zip$")
