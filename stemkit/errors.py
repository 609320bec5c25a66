"""One error hierarchy for everything a stemkit user can meet.

Every error carries the *where* (track, provider, step) and a hint for *what to do*, and its
message is built from those, so a failed row in a report reads the same as a traceback.
Messages never contain secrets: :func:`stemkit.http.redact` is applied to every detail text.

Examples
--------
>>> from stemkit.errors import ProviderError
>>> err = ProviderError("HTTP 503 Service Unavailable", provider="sourceress",
...                     step="separate", track="01-sunday-drive", hint="retry later")
>>> str(err)
'sourceress / 01-sunday-drive / separate: HTTP 503 Service Unavailable (retry later)'
"""

from __future__ import annotations


class StemkitError(Exception):
    """Base class: a failure with the track, provider and step it happened in.

    Parameters
    ----------
    detail : str
        What went wrong, in one sentence.
    provider, track, step : str, optional
        Where it went wrong. Filled in as the error travels up (see :meth:`at`).
    hint : str, optional
        What the user can do about it.
    """

    #: Short machine-readable kind, used as the ``error_kind`` column of failure tables.
    kind = "error"

    def __init__(
        self,
        detail: str,
        *,
        provider: str | None = None,
        track: str | None = None,
        step: str | None = None,
        hint: str | None = None,
    ) -> None:
        from stemkit.http import redact

        self.detail = redact(str(detail))
        self.provider = provider
        self.track = track
        self.step = step
        self.hint = redact(hint) if hint else hint
        super().__init__(self.message)

    @property
    def where(self) -> str:
        return " / ".join(p for p in (self.provider, self.track, self.step) if p)

    @property
    def message(self) -> str:
        from stemkit.http import redact

        text = f"{self.where}: {self.detail}" if self.where else self.detail
        return redact(f"{text} ({self.hint})" if self.hint else text)

    def __str__(self) -> str:
        return self.message

    def at(self, **where: str | None) -> StemkitError:
        """Fill in missing location fields (never overwrite) and return ``self``.

        Examples
        --------
        >>> e = StemkitError("boom", step="upload").at(track="t1", provider="local")
        >>> e.where
        'local / t1 / upload'
        """
        for key, value in where.items():
            if value is not None and getattr(self, key, None) is None:
                setattr(self, key, value)
        self.args = (self.message,)
        return self

    def to_dict(self) -> dict[str, str | None]:
        """The error as a row for status files and failure tables (every field redacted)."""
        from stemkit.http import redact

        row = {
            "error_kind": self.kind,
            "error": self.message,
            "detail": self.detail,
            "provider": self.provider,
            "track": self.track,
            "step": self.step,
            "hint": self.hint,
        }
        return {k: redact(v) if isinstance(v, str) else v for k, v in row.items()}


class ConfigError(StemkitError):
    """A profile, setting or parameter is missing or invalid."""

    kind = "config"


class AuthError(StemkitError):
    """Credentials were refused or a token expired and could not be renewed."""

    kind = "auth"


class RequestError(StemkitError):
    """A request was refused by the service (4xx other than auth) or is invalid locally."""

    kind = "request"

    def __init__(self, detail: str, *, status: int | None = None, **kw) -> None:
        self.status = status
        super().__init__(detail, **kw)


class LinkExpired(RequestError):
    """A signed download link was refused (expired or invalid): ask the service for a new one."""

    kind = "link_expired"


class ProviderError(StemkitError):
    """The service failed: 5xx, dropped connection, malformed answer, timeout of one call."""

    kind = "provider"

    def __init__(
        self, detail: str, *, status: int | None = None, retry_after: float | None = None, **kw
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(detail, **kw)

    @property
    def not_processed(self) -> bool:
        """429 and 503 say the request was refused before any work: safe to send again."""
        return self.status in (429, 503)


class TimestampError(StemkitError):
    """A vendor timestamp is in no form stemkit reads (see :func:`stemkit.timing.parse_time`);
    not retried: the same answer would come again."""

    kind = "timestamp"


class AmbiguousSubmission(ProviderError):
    """A job-creating call failed in a way that leaves open whether the service accepted it.

    stemkit never submits such a job again by itself (it could be paid twice): the ledger
    marks it ``ambiguous`` and a person decides (``stemkit jobs resolve``, ``--retry
    ambiguous`` or ``--force TRACK`` submit again).
    """

    kind = "ambiguous"


class JobLost(StemkitError):
    """The service no longer knows a job it accepted (404 for its id): it was lost, e.g. by a
    sandbox restarted without durable state. Not submitted again by itself."""

    kind = "lost"

    def __init__(self, detail: str, *, job_id: str | None = None, **kw) -> None:
        self.job_id = job_id
        super().__init__(detail, **kw)


class Abandoned(StemkitError):
    """A person gave this job up (``stemkit jobs resolve ... --abandon``): never submitted."""

    kind = "abandoned"


class JobFailed(StemkitError):
    """The service accepted the job but reports that it failed."""

    kind = "job_failed"

    def __init__(
        self,
        detail: str,
        *,
        job_id: str | None = None,
        events=(),
        clock_bounds=(),
        salvage=None,
        **kw,
    ) -> None:
        self.job_id = job_id
        self.events = list(events)
        #: our instants around the vendor's events (see :func:`stemkit.timing.event_bounds`)
        self.clock_bounds = list(clock_bounds)
        #: the part of the job that did not fail (a provider's partial job), kept for a rerun
        self.salvage = salvage
        super().__init__(detail, **kw)


class JobTimeout(StemkitError):
    """We stopped waiting for a job. The job id is kept so a later run resumes it."""

    kind = "timeout"

    def __init__(self, detail: str, *, job_id: str | None = None, **kw) -> None:
        self.job_id = job_id
        kw.setdefault("hint", "rerun the batch: the job is resumed, not submitted again")
        super().__init__(detail, **kw)


class AudioError(StemkitError):
    """A file is not readable audio (empty, truncated, not audio, unsupported)."""

    kind = "audio"


class BatchBusy(StemkitError):
    """Another process is writing to the same batch folder (one writer per batch)."""

    kind = "busy"


class IntegrityError(StemkitError):
    """A downloaded file failed verification (size, checksum, path outside the output folder)."""

    kind = "integrity"
