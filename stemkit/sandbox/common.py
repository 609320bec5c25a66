"""Pieces every sandbox API shares: settings, signed URLs, JSON errors, body validation,
bearer-token sessions and the background worker pools.

Examples
--------
>>> from stemkit.sandbox.common import Signer
>>> s = Signer(b"k" * 32)
>>> q = s.sign("GET", "a/b.wav", ttl=60)
>>> s.verify("GET", "a/b.wav", q["expires"], q["sig"])
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from stemkit.sandbox.faults import Faults
from stemkit.sandbox.personas import SandboxFile, Separator
from stemkit.sandbox.state import Records, token_hash

log = logging.getLogger("stemkit.sandbox")
M = TypeVar("M", bound=BaseModel)
#: the header that carries the admin key of the ``/_sandbox`` routes
ADMIN_HEADER = "X-Sandbox-Admin-Key"


@dataclass
class SandboxConfig:
    """Settings of a sandbox server. Every credential is configurable."""

    data_dir: Path
    #: where the records live (uploads, jobs, tokens' accounts, counters, the signing key), so
    #: that they survive a restart (:mod:`stemkit.sandbox.state`); None: in memory only
    state_dir: Path | None = None
    #: the key of the ``/_sandbox`` routes (header :data:`ADMIN_HEADER`); None: the state
    #: folder's ``admin.key``, or a random one per start (``create_app`` fills it in)
    admin_key: str | None = None
    #: Sourceress accounts: username -> password
    sourceress_users: dict[str, str] = field(default_factory=lambda: {"demo": "demo"})
    #: AudioShake bearer tokens: token -> client id
    audioshake_tokens: dict[str, str] = field(default_factory=lambda: {"demo-token": "demo"})
    #: AudioShake Tasks API keys (``x-api-key``): key -> client id
    audioshake_api_keys: dict[str, str] = field(default_factory=lambda: {"demo-key": "demo"})
    #: Tasks API: seconds an uploaded asset lives (72 h documented) and an output link (1 h)
    audioshake_asset_ttl: float = 72 * 3600.0
    audioshake_link_ttl: float = 3600.0
    #: Tasks API rate limit: requests per key within ``audioshake_rate_window`` seconds
    #: (60 per second documented); above it a 429 with ``Retry-After``
    audioshake_rate_limit: int = 60
    audioshake_rate_window: float = 1.0
    #: Tasks API webhooks, per account as on the vendor's dashboard: client id -> URL
    #: (POSTed only when loopback; otherwise recorded)
    audioshake_webhooks: dict[str, str] = field(default_factory=dict)
    #: Loom key -> secret
    loom_keys: dict[str, str] = field(default_factory=lambda: {"demo": "demo"})
    token_ttl: float = 86400.0
    url_ttl: float = 86400.0
    #: separation jobs processed at once (the rest wait in the queue, as at a vendor)
    workers: int = 1
    #: extra seconds a job spends "processing" (to imitate a slow vendor in benchmarks)
    processing_delay: float = 0.0
    max_upload_bytes: int = 500 * 1024 * 1024
    #: decoded-audio limits of every job (checked from the header before decoding)
    max_audio_seconds: float = 3600.0
    max_sample_rate: int = 192_000
    max_channels: int = 16
    #: injected faults (none by default), see :mod:`stemkit.sandbox.faults`
    faults: Faults = field(default_factory=Faults)
    #: each vendor's engine and defects (all clean ``dsp`` by default), see
    #: :mod:`stemkit.sandbox.personas`
    personas: SandboxFile = field(default_factory=SandboxFile)

    def separator(self, vendor: str) -> Separator:
        """The engine (and defects) ``vendor``'s jobs run with."""
        return Separator(self.personas.persona(vendor))

    @classmethod
    def from_file(cls, path, data_dir: Path, **settings) -> SandboxConfig:
        """Settings with the personas (and ``[faults]``) of a sandbox config file.

        Raises :class:`~stemkit.sandbox.personas.ConfigError` naming the bad key.
        """
        from stemkit.sandbox.personas import load_config

        personas = load_config(path)
        faults = personas.fault_settings() if personas.faults is not None else Faults()
        return cls(data_dir=Path(data_dir), personas=personas, faults=faults, **settings)


def utc_iso(ts: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as in the vendors' examples."""
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


#: forms :func:`vendor_stamp` writes (``Faults.timestamp_form``)
STAMP_FORMS = ("iso", "epoch_ms", "epoch_s", "offset", "naive", "nanos", "text")


def vendor_stamp(ts: float, form: str = "iso") -> str | int | float:
    """A timestamp in one of the forms vendors are seen to send: ``iso`` (the doc's
    ``...T14:51:15.846Z``), ``epoch_ms`` (int), ``epoch_s`` (float), ``offset`` (local time at
    +05:30), ``naive`` (UTC without a zone), ``nanos`` (nine fractional digits, ``Z``), ``text``
    (``21/07/2020 14:51:15``, a form no client should guess at).

    Examples
    --------
    >>> vendor_stamp(0.5, "offset"), vendor_stamp(0.5, "epoch_ms")
    ('1970-01-01T05:30:00.500000+05:30', 500)
    """
    if form == "iso":
        return utc_iso(ts)
    if form == "epoch_ms":
        return int(round(ts * 1000))
    if form == "epoch_s":
        return round(ts, 6)
    dt = datetime.fromtimestamp(ts, UTC)
    if form == "offset":
        return dt.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    if form == "naive":
        return dt.replace(tzinfo=None).isoformat(timespec="microseconds")
    if form == "nanos":
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}789Z"
    if form == "text":
        return dt.strftime("%d/%m/%Y %H:%M:%S")
    raise ValueError(f"timestamp_form must be one of {STAMP_FORMS}, not {form!r}")


def local_iso(ts: float) -> str:
    """ISO-8601 without zone, milliseconds (the form of Sourceress ``expiry`` fields)."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def new_id(nbytes: int = 12) -> str:
    """A random hex id (24 characters by default, like the vendors' object ids)."""
    return secrets.token_hex(nbytes)


def file_response(path: Path) -> FileResponse:
    """A file download with its MD5 in ``x-goog-hash`` (as cloud storage sends it), so the
    client can verify what it received."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    md5 = base64.b64encode(digest.digest()).decode()
    return FileResponse(path, filename=path.name, headers={"x-goog-hash": f"md5={md5}"})


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """A JSON error body ``{"message": ..., "success": false}`` with ``status``."""
    return JSONResponse({"message": message, "success": False, **extra}, status_code=status)


async def http_exception_handler(request: Request, exc: HTTPException) -> JSONResponse:
    """Answer an HTTP exception in the vendors' error shape (``{message, success}``), with its
    headers (e.g. ``Retry-After`` of a 429)."""
    resp = error(exc.status_code, exc.detail or "error")
    resp.headers.update(exc.headers or {})
    return resp


def same_secret(expected: str, given: str) -> bool:
    """Compare a credential in constant time (no timing hint of how much of it matched)."""
    return hmac.compare_digest(str(expected).encode(), str(given).encode())


async def unhandled_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    """Answer any other exception with a logged 500 in the vendors' error shape (a connection
    the fault injector cut on purpose is no bug: not logged)."""
    if type(exc).__name__ != "DroppedConnection":
        log.exception("sandbox bug on %s %s", request.method, request.url.path)
    return error(500, f"internal sandbox error: {type(exc).__name__}")


async def parse_body(request: Request, model: type[M]) -> M:
    """Validate a JSON body with ``model``; malformed input becomes a 400 with a message."""
    from stemkit.sandbox.uploads import read_json

    data = await read_json(request)  # under a cap: 413 past it
    if not isinstance(data, dict):
        raise HTTPException(400, "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPException(400, f"{where}: {first['msg']}") from None


def require_param(request: Request, name: str) -> str:
    """A required query parameter, or a 400 naming it."""
    value = request.query_params.get(name)
    if not value:
        raise HTTPException(400, f"missing query parameter {name!r}")
    return value


class Signer:
    """HMAC-signed, expiring URLs for the sandbox's own storage routes."""

    def __init__(self, key: bytes | None = None, faults: Faults | None = None) -> None:
        self.key = key or secrets.token_bytes(32)
        self.faults = faults

    def _mac(self, method: str, path: str, expires: int) -> str:
        msg = f"{method.upper()}\n{path}\n{expires}".encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()

    def sign(self, method: str, path: str, ttl: float) -> dict[str, Any]:
        if self.faults is not None and self.faults.roll("url_expiry", f"{method} url"):
            ttl = -1  # injected: issued already expired
        expires = int(time.time() + ttl)
        return {"expires": expires, "sig": self._mac(method, path, expires)}

    def url(
        self, request: Request, route: str, root: Path, path: Path, method: str, ttl: float
    ) -> tuple[str, int]:
        """A signed, expiring URL of ``path`` (under ``root``) served at ``route``, and its
        expiry (epoch seconds)."""
        key = path.relative_to(root).as_posix()
        q = self.sign(method, key, ttl)
        base = str(request.base_url).rstrip("/")
        # percent-encoded: a key with ``?``, ``#`` or ``%`` in a file name stays one path
        # (the route's ``{key:path}`` is decoded again before it is verified)
        url = f"{base}{route}/{quote(key, safe='/')}?expires={q['expires']}&sig={q['sig']}"
        return url, q["expires"]

    def resolve(self, request: Request, root: Path) -> Path | int:
        """The file a signed storage request names (``{key:path}`` under ``root``), or the
        HTTP status to answer: 403 for a bad or expired signature or a path outside ``root``."""
        key = request.path_params["key"]
        q = request.query_params
        if not self.verify(request.method, key, q.get("expires"), q.get("sig")):
            return 403
        path = (root / key).resolve()
        return path if path.is_relative_to(root.resolve()) else 403

    def verify(self, method: str, path: str, expires: Any, sig: Any) -> bool:
        try:
            exp = int(expires)
        except (TypeError, ValueError):
            return False
        if exp < time.time():
            return False
        return hmac.compare_digest(self._mac(method, path, exp), str(sig or ""))


class TokenStore:
    """Bearer tokens issued by a sandbox API: token -> (owner, expiry time).

    ``records`` (:class:`~stemkit.sandbox.state.Records`) keeps them across restarts, each
    under the token's hash (:func:`~stemkit.sandbox.state.token_hash`), never the token.
    """

    def __init__(self, records: Records | None = None) -> None:
        self._tokens = records if records is not None else Records(None, dict, dict)
        self._lock = threading.Lock()

    def issue(self, owner: str, ttl: float) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token_hash(token)] = {"owner": owner, "expires": time.time() + ttl}
        return token

    def owner(self, token: str) -> str:
        """The owner of a valid token, or a 401 (unknown or expired)."""
        entry = self._tokens.get(token_hash(token))
        if entry is None:
            raise HTTPException(401, "invalid or missing token")
        if entry["expires"] < time.time():
            raise HTTPException(401, "token expired: authenticate again")
        return entry["owner"]

    def expire_all(self) -> None:
        """Make every issued token expired (used by fault injection and tests)."""
        with self._lock:
            for key, entry in self._tokens.items():
                entry["expires"] = 0.0
                self._tokens.save(key)


def is_loopback_url(url: str) -> bool:
    """True for ``http(s)://`` URLs on 127.0.0.0/8, ::1 or localhost."""
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if parts.hostname == "localhost":
            return True
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class Callbacks:
    """Completion callbacks: POSTed when loopback, otherwise only recorded."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def send(self, url: str | None, payload: dict[str, Any]) -> None:
        if not url:
            return
        entry: dict[str, Any] = {"url": url, "at": utc_iso(), "sent": False}
        if is_loopback_url(url):
            try:
                resp = requests.post(url, json=payload, timeout=5)
                entry.update(sent=True, status=resp.status_code)
            except requests.RequestException as exc:
                entry.update(sent=True, error=type(exc).__name__)
        else:
            entry["reason"] = "not a loopback URL: recorded, not called"
        with self._lock:
            self.log.append(entry)


class Workers:
    """Two pools: quick jobs (metadata, conversions) and the separation queue."""

    def __init__(self, separation_workers: int) -> None:
        self.quick = ThreadPoolExecutor(2, thread_name_prefix="sandbox-quick")
        self.heavy = ThreadPoolExecutor(
            max(1, separation_workers), thread_name_prefix="sandbox-separate"
        )

    def shutdown(self) -> None:
        self.quick.shutdown(wait=False, cancel_futures=True)
        self.heavy.shutdown(wait=False, cancel_futures=True)
