"""The transport every client shares: retries by operation kind, errors that name the call,
answers validated, downloads verified.

:class:`Transport` is mixed into :class:`~stemkit.providers.base.Provider`: an *idempotent* call
(:func:`idempotent`) is retried on transient failures; a call that creates a paid job
(:func:`creates_job`) is sent again only when the service said it did no work, and is otherwise
an :class:`~stemkit.errors.AmbiguousSubmission`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import tenacity
from pydantic import ValidationError

from stemkit.atomic import commit, temp_name
from stemkit.config import Profile
from stemkit.errors import (
    AmbiguousSubmission,
    AuthError,
    IntegrityError,
    LinkExpired,
    ProviderError,
    RequestError,
    StemkitError,
)
from stemkit.http import CrossHostRedirect, redact

log = logging.getLogger("stemkit.providers")


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


#: what to do about an ambiguous submission (the vendors offer no lookup by content)
AMBIGUOUS_HINT = (
    "not submitted again automatically; check with the vendor, then run `stemkit jobs "
    "resolve OUT TRACK PROVIDER --resubmit` (or --abandon), or rerun the batch with "
    "--retry ambiguous or --force TRACK"
)

TRANSIENT = (
    ProviderError,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def _goog_md5(header: str) -> str | None:
    """The ``md5=`` part of an ``x-goog-hash`` header (base64), if any."""
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "md5" and value:
            return value
    return None


def idempotent(method: Callable) -> Callable:
    """Mark a provider method as safe to repeat: transient failures are retried."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        return self.retrying(method, self, *args, **kwargs)

    return wrapper


def creates_job(method: Callable) -> Callable:
    """Mark a provider method that creates a paid job: see :meth:`Provider.creating`."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        return self.creating(method, self, *args, **kwargs)

    return wrapper


class Transport:
    """HTTP with the right retries and errors; needs ``name``, ``profile``, ``session`` and
    ``hooks`` (set by :class:`~stemkit.providers.base.Provider`)."""

    name: str
    profile: Profile
    session: requests.Session

    # -- retries -----------------------------------------------------------------------------
    def _wait_seconds(self, attempt: int, exc: BaseException | None) -> float:
        base = min(self.profile.poll_max, 0.25 * 2 ** (attempt - 1))
        jitter = random.uniform(0, base / 2)
        after = getattr(exc, "retry_after", None) or 0.0
        return max(after, base + jitter)

    def retrying(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """Call an *idempotent* operation, retrying transient failures (5xx, 429 with
        ``Retry-After``, dropped connections, timeouts, malformed answers, refused links) with
        exponential backoff and jitter, ``profile.retries`` times (tenacity).

        Examples
        --------
        >>> provider.retrying(provider.progress, separation_id)   # doctest: +SKIP
        """
        retryer = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.profile.retries + 1),
            retry=tenacity.retry_if_exception_type(TRANSIENT),
            wait=lambda state: self._wait_seconds(state.attempt_number, state.outcome.exception()),
            before_sleep=lambda state: log.info(
                "%s: retry %d after %s",
                self.name,
                state.attempt_number,
                type(state.outcome.exception()).__name__,
            ),
            reraise=True,
        )
        return retryer(fn, *args, **kwargs)

    def creating(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """Call a *job-creating* operation: sent again only when the service said it did no
        work (429, 503); any other failure after sending is an :class:`AmbiguousSubmission`.

        Before each send, the ``before_create`` hook (if any) is called with
        ``hooks.pending_create``: what a provider that can find a lost create again
        (:attr:`~stemkit.providers.base.Provider.reconciles`) needs to look for it, e.g. its
        submission key; None for the others.
        """
        before = getattr(self.hooks, "before_create", None)
        for attempt in range(1, self.profile.retries + 2):
            if before is not None:
                # e.g. the ledger notes that a paid job is being created now, and how to find it
                before(getattr(self.hooks, "pending_create", None))
            try:
                return fn(*args, **kwargs)
            except ProviderError as exc:
                if exc.step == "auth":  # logging in (a token refresh) failed: not sent
                    raise
                if exc.not_processed and attempt <= self.profile.retries:
                    time.sleep(self._wait_seconds(attempt, exc))
                    continue
                if exc.not_processed:
                    raise
                raise AmbiguousSubmission(
                    f"{exc.detail}: the service may have accepted the job",
                    status=exc.status,
                    hint=AMBIGUOUS_HINT,
                ) from None
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                raise AmbiguousSubmission(
                    f"connection lost while submitting ({type(exc).__name__}): the service "
                    "may have accepted the job",
                    hint=AMBIGUOUS_HINT,
                ) from None
        raise AssertionError("unreachable")

    # -- helpers for subclasses ----------------------------------------------------------------
    @contextmanager
    def step(self, step: str, *, track: str | None = None) -> Iterator[None]:
        """Name the step (and track) in any stemkit error or network failure raised inside.

        Examples
        --------
        >>> with provider.step("upload", track="t1"):   # doctest: +SKIP
        ...     provider.session.put(url, data=fh)
        """
        try:
            yield
        except StemkitError as exc:
            exc.at(provider=self.name, track=track, step=step)
            raise
        except requests.Timeout as exc:
            raise ProviderError(
                f"no answer within {self.profile.timeout:g} s ({type(exc).__name__})",
                provider=self.name,
                track=track,
                step=step,
                hint="the service is slow or down; rerun later to resume",
            ) from None
        except CrossHostRedirect as exc:
            raise RequestError(
                redact(str(exc)),
                provider=self.name,
                track=track,
                step=step,
                hint=f"check base_url of profile {self.profile.name!r}: the service moved?",
            ) from None
        except requests.RequestException as exc:
            raise ProviderError(
                f"network error: {redact(str(exc))}",
                provider=self.name,
                track=track,
                step=step,
                hint=f"is {self.profile.base_url} reachable?",
            ) from None

    def _headers(self) -> dict[str, str]:
        """Headers of every call (a provider's credentials); none by default."""
        return {}

    def _request(self, method: str, path: str, what: str, **kw) -> requests.Response:
        """One call to ``base_url + path`` with this client's headers, its status checked."""
        resp = self.session.request(
            method, f"{self.profile.base_url}{path}", headers=self._headers(), **kw
        )
        return self.check_response(resp, what)

    def check_response(self, resp: requests.Response, what: str) -> requests.Response:
        """Turn an HTTP error status into the right stemkit error (message from the body)."""
        if resp.status_code < 400:
            return resp
        try:
            body = resp.json()
            detail = body.get("message") or body.get("msg") or body.get("error") or str(body)
        except ValueError:
            detail = resp.text[:300] or resp.reason
        text = f"{what} failed: HTTP {resp.status_code} {detail}"
        if resp.status_code in (401, 403):
            raise AuthError(text, hint=f"check the credentials of profile {self.profile.name!r}")
        if resp.status_code < 500 and resp.status_code != 429:
            raise RequestError(text, status=resp.status_code)
        raise ProviderError(
            text,
            status=resp.status_code,
            hint="the service failed; rerun later",
            retry_after=_retry_after(resp),
        )

    def json(self, resp: requests.Response, what: str) -> Any:
        """Parse a JSON body or raise :class:`ProviderError` naming the call."""
        try:
            return resp.json()
        except ValueError:
            raise ProviderError(
                f"{what}: the service answered HTTP {resp.status_code} with non-JSON "
                f"({resp.text[:80]!r})"
            ) from None

    def parse(self, model: type, data: Any, what: str) -> Any:
        """Validate an answer into a pydantic ``model``; a body of the wrong shape is a
        :class:`ProviderError` naming the call (and is retried where the call is idempotent).
        """
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ProviderError(
                f"{what}: unexpected answer from the service ({where}: {first['msg']})"
            ) from None

    def download(
        self, url: str, dest: Path, *, expected_size: int | None = None, headers=None
    ) -> Path:
        """Stream ``url`` to ``dest`` through a temporary file, verify it (size against
        ``Content-Length``, MD5 against ``x-goog-hash`` when the server sends one, the size
        cap of the profile) and rename it into place. Incomplete or corrupted transfers are
        retried; a refused link raises :class:`LinkExpired` (ask the service for a new one).

        Examples
        --------
        >>> provider.download(signed_url, Path("out/vocals.wav"))   # doctest: +SKIP
        PosixPath('out/vocals.wav')
        """
        return self.retrying(self._download_once, url, dest, expected_size, headers)

    def _download_once(self, url: str, dest: Path, expected_size, headers) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(dest)
        cap = self.profile.max_download_bytes
        size = 0
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            with self.session.get(url, stream=True, headers=headers) as resp:
                if resp.status_code in (401, 403, 410):
                    raise LinkExpired(
                        f"download link of {dest.name} refused (HTTP {resp.status_code})",
                        status=resp.status_code,
                    )
                self.check_response(resp, f"download of {dest.name}")
                declared = resp.headers.get("Content-Length")
                if declared is not None and not declared.strip().isdigit():
                    raise ProviderError(f"download of {dest.name}: bad Content-Length {declared!r}")
                if resp.headers.get("Content-Encoding", "identity") not in ("identity", ""):
                    declared = None  # the length of the encoded body, not of the file
                if declared is not None and int(declared) > cap:
                    raise IntegrityError(
                        f"{dest.name} would be {int(declared)} bytes, over "
                        f"the limit of {cap} (max_download_bytes)"
                    )
                with open(tmp, "wb") as fh:
                    for chunk in resp.iter_content(chunk_size=1 << 16):
                        size += len(chunk)
                        if size > cap:
                            raise IntegrityError(
                                f"{dest.name} is larger than the limit of "
                                f"{cap} bytes (max_download_bytes)"
                            )
                        fh.write(chunk)
                        md5.update(chunk)
                server_md5 = _goog_md5(resp.headers.get("x-goog-hash", ""))
            for want, why in ((declared, "Content-Length"), (expected_size, "expected size")):
                if want is not None and int(want) != size:
                    raise ProviderError(
                        f"download of {dest.name} is {size} bytes, {why} says "
                        f"{want} (connection dropped)"
                    )
            if server_md5 and server_md5 != base64.b64encode(md5.digest()).decode():
                raise ProviderError(f"download of {dest.name} does not match its MD5")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        commit(tmp, dest)
        return dest
