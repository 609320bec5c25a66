"""One HTTP session factory: timeouts, retries with backoff, redaction of secrets.

Every request stemkit sends goes through a session made here:

- a default timeout on every call (connect, read), so nothing waits forever;
- urllib3 ``Retry`` of failed *connections* only, with exponential backoff and jitter (the
  request never left, so it is safe for any method); retries of answered requests are decided
  per operation by :meth:`stemkit.providers.base.Provider.retrying` (idempotent calls, honouring
  ``Retry-After``) and :meth:`~stemkit.providers.base.Provider.creating` (job-creating calls:
  only when the service said it did no work);
- :func:`redact` replaces every registered secret (and bearer tokens, signed-URL signatures) in
  any text that may reach a log, an error message or a report.

Examples
--------
>>> from stemkit.http import make_session, redact, register_secret
>>> s = make_session(timeout=5)
>>> register_secret("hunter2-long-secret")
>>> redact("password=hunter2-long-secret")
'password=***'
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger("stemkit.http")

#: Secrets at least this long are removed wherever they appear in a text; shorter ones (a
#: 4-character password) only where they stand alone as a word, so a ``demo`` password does
#: not blank out ``data/demos`` (but does blank out ``data/demo``: safety first).
MIN_SECRET_LEN = 6

_secrets: set[str] = set()
_short: set[str] = set()
_short_re: re.Pattern | None = None
_lock = threading.Lock()
_PATTERNS = [
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1***"),
    (
        re.compile(
            r"((?:sig|signature|X-Goog-Signature|X-Amz-Signature|token|access_token|api_key"
            r"|apikey|secret|password)=)[^&\s\"'#]+",
            re.I,
        ),
        r"\1***",
    ),
    (
        re.compile(
            r"([\"'](?:password|secret|key|token|api_key)[\"']\s*:\s*[\"'])[^\"']*([\"'])", re.I
        ),
        r"\1***\2",
    ),
]


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`redact` removes it from any text (a short one where it
    stands alone as a word, see :data:`MIN_SECRET_LEN`)."""
    global _short_re
    if not value:
        return
    with _lock:
        if len(value) >= MIN_SECRET_LEN:
            _secrets.add(value)
        elif value not in _short:
            _short.add(value)
            words = "|".join(re.escape(v) for v in sorted(_short, key=len, reverse=True))
            _short_re = re.compile(rf"(?<![A-Za-z0-9])(?:{words})(?![A-Za-z0-9])")


def redact(text: str) -> str:
    """Remove registered secrets, bearer tokens and URL signatures from ``text``.

    Examples
    --------
    >>> redact("GET /file?expires=1&sig=abcdef123")
    'GET /file?expires=1&sig=***'
    >>> register_secret("pw12")
    >>> redact("password pw12 refused; file pw123.wav")
    'password *** refused; file pw123.wav'
    """
    if not text:
        return text
    if not isinstance(text, str):
        text = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
        short = _short_re
    for secret in secrets:
        text = text.replace(secret, "***")
    if short is not None:
        text = short.sub("***", text)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    """Redact one log record in place: its message (arguments merged in), its traceback
    (``exc_text``, which every :class:`logging.Formatter` prints instead of formatting
    ``exc_info`` again) and its stack."""
    try:
        if record.name == "stemkit" or record.name.startswith("stemkit."):
            record.msg = redact(record.getMessage())
            record.args = None
        else:  # other libraries' formatters may read ``args`` (uvicorn's access log does)
            record.msg = redact(record.msg) if isinstance(record.msg, str) else record.msg
            if isinstance(record.args, tuple):
                record.args = tuple(_redact_arg(a) for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: _redact_arg(v) for k, v in record.args.items()}
    except Exception:  # noqa: BLE001 - a malformed record: leave it to logging's own report
        return
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_FORMATTER = logging.Formatter()


def _redact_arg(value):
    """A log argument without secrets; numbers stay numbers (``%d`` still formats them)."""
    if value is None or isinstance(value, int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    clean = redact(text)
    return value if clean == text else clean


def _install_log_redaction() -> None:
    """Redact every log record of every logger (stemkit's, urllib3's retry warnings with full
    URLs, uvicorn's, a notebook's) at creation, so no handler anywhere (console, file,
    notebook stderr) can see a secret."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "stemkit_redacting", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    factory.stemkit_redacting = True
    logging.setLogRecordFactory(factory)


_install_log_redaction()


class CrossHostRedirect(requests.exceptions.InvalidURL):
    """A redirect would have carried a request body (which may hold credentials: Sourceress'
    password, Loom's key and secret) to another host; refused."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class TimeoutSession(requests.Session):
    """A :class:`requests.Session` that applies a default timeout to every request and never
    sends a request body to another host on a redirect (307/308 keep the body; requests only
    strips the ``Authorization`` header)."""

    def __init__(self, timeout: float | tuple[float, float]) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, **kwargs):  # noqa: D102 - same as requests
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, **kwargs)

    def rebuild_auth(self, prepared_request, response):  # noqa: D102 - requests' hook
        old, new = response.request.url, prepared_request.url
        if prepared_request.body is not None and self.should_strip_auth(old, new):
            raise CrossHostRedirect(
                f"refused a redirect (HTTP {response.status_code}) from {_origin(old)} to "
                f"{_origin(new)}: it would send the request body, which may hold credentials, "
                "to another host",
                request=prepared_request,
                response=response,
            )
        super().rebuild_auth(prepared_request, response)


def make_session(
    timeout: float = 30.0,
    retries: int = 2,
    backoff: float = 0.25,
    backoff_max: float = 20.0,
) -> requests.Session:
    """A session with a default timeout and retries on idempotent calls.

    Parameters
    ----------
    timeout : float
        Seconds for connect and for each read.
    retries : int
        Retries of a failed connection attempt.
    backoff, backoff_max : float
        Exponential backoff factor and cap (seconds); jitter is added.

    Examples
    --------
    >>> s = make_session(timeout=2, retries=0)
    >>> s.timeout
    2
    """
    session = TimeoutSession(timeout)
    # Transport level: only failures to *connect* are retried here (the request never left, so
    # this is safe for every method). Retries of answered requests are decided per operation
    # by the provider layer, which knows which calls are idempotent.
    retry = Retry(
        total=None,
        connect=retries,
        read=0,
        status=0,
        other=0,
        backoff_factor=backoff,
        backoff_max=backoff_max,
        backoff_jitter=backoff / 2,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=8, pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "stemkit/0.1"
    return session
