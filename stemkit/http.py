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

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger("stemkit.http")

#: Values shorter than this are not redacted as free text (``demo`` would blank out paths);
#: they are still never written anywhere by stemkit.
MIN_SECRET_LEN = 6

_secrets: set[str] = set()
_lock = threading.Lock()
_PATTERNS = [
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1***"),
    (re.compile(r"((?:sig|signature|X-Goog-Signature|token)=)[^&\s\"']+", re.I), r"\1***"),
    (re.compile(r"(\"(?:password|secret|key|token)\"\s*:\s*\")[^\"]*(\")", re.I), r"\1***\2"),
]


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`redact` removes it from any text."""
    if value and len(value) >= MIN_SECRET_LEN:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Remove registered secrets, bearer tokens and URL signatures from ``text``.

    Examples
    --------
    >>> redact("GET /file?expires=1&sig=abcdef123")
    'GET /file?expires=1&sig=***'
    """
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def _install_log_redaction() -> None:
    """Redact every record of the ``stemkit`` loggers (and their children) at creation, so no
    handler anywhere (console, file, notebook) can see a secret."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "stemkit_redacting", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name == "stemkit" or record.name.startswith("stemkit."):
            record.msg = redact(record.getMessage())
            record.args = None
        return record

    factory.stemkit_redacting = True
    logging.setLogRecordFactory(factory)


_install_log_redaction()


class TimeoutSession(requests.Session):
    """A :class:`requests.Session` that applies a default timeout to every request."""

    def __init__(self, timeout: float | tuple[float, float]) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, **kwargs):  # noqa: D102 - same as requests
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, **kwargs)


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
