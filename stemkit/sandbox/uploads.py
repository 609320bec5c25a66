"""Bounded request bodies: what a hostile or broken client can make the sandbox hold.

- multipart uploads are streamed to disk (spooled past 1 MB) under a byte cap: a declared
  ``Content-Length`` over it is refused at once, a streamed body as soon as it passes it (413);
- credentials sent as form fields (Loom's key and secret) are checked when the file part
  begins, before any of it is stored;
- JSON bodies are read under a small cap (413);
- uploaded audio is decoded under the configured duration, rate and channel limits.

Examples
--------
>>> MAX_JSON_BYTES
1048576
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

#: largest JSON body any sandbox route reads
MAX_JSON_BYTES = 1 << 20


def _too_large(cap: int) -> HTTPException:
    return HTTPException(413, f"request body larger than {cap} bytes")


async def capped_stream(request: Request, cap: int) -> AsyncIterator[bytes]:
    """The request body in chunks; 413 once it passes ``cap`` bytes (or declares more)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _too_large(cap)
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise _too_large(cap)
            yield chunk
    except ClientDisconnect:  # the client went away mid-body: nothing to answer, no bug
        raise HTTPException(400, "the client disconnected before the body was complete") from None


async def read_json(request: Request, cap: int = MAX_JSON_BYTES) -> Any:
    """A JSON body read under ``cap`` bytes; 400 when it is not JSON, 413 when too large."""
    body = b"".join([chunk async for chunk in capped_stream(request, cap)])
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(400, "request body is not valid JSON") from None


class _GuardedParser(MultiPartParser):
    """Starlette's multipart parser, asking ``authorize(fields so far)`` when a file part
    begins: True goes on, False is a 401 before any file byte is stored, None defers the
    decision to the end of the body (the fields came after the file)."""

    def __init__(self, headers, stream, authorize, max_files: int) -> None:
        super().__init__(headers, stream, max_files=max_files, max_fields=32, max_part_size=1 << 16)
        self._authorize = authorize
        self.authorized = authorize is None

    def fields(self) -> dict[str, str]:
        return {k: v for k, v in self.items if isinstance(v, str)}

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        if self._current_part.file is not None and not self.authorized:
            verdict = self._authorize(self.fields())
            if verdict is False:
                raise HTTPException(401, "invalid key or secret")
            self.authorized = bool(verdict)


async def read_form(
    request: Request,
    cap: int,
    *,
    authorize: Callable[[dict[str, str]], bool | None] | None = None,
    max_files: int = 1,
) -> FormData:
    """A multipart form read under ``cap`` bytes, files spooled to disk; 400 for a malformed
    form, 401 when ``authorize`` refuses the fields, 413 past the cap.

    Examples
    --------
    >>> form = await read_form(request, 250 << 20)   # doctest: +SKIP
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(400, "expected multipart/form-data")
    parser = _GuardedParser(request.headers, capped_stream(request, cap), authorize, max_files)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"malformed multipart body ({exc.message})") from None
    if not parser.authorized and authorize is not None and not authorize(parser.fields()):
        await form.close()
        raise HTTPException(401, "invalid key or secret")
    return form


def decode(path, config) -> tuple:
    """Decode an uploaded file for a job under ``config``'s limits (``max_audio_seconds``,
    ``max_sample_rate``, ``max_channels``): an :class:`~stemkit.errors.AudioError` otherwise.

    Examples
    --------
    >>> y, sr = decode(upload.path, api.config)   # doctest: +SKIP
    """
    from stemkit.audio import load_audio

    return load_audio(
        path,
        max_seconds=config.max_audio_seconds,
        max_rate=config.max_sample_rate,
        max_channels=config.max_channels,
    )
