"""What a failed job leaves in the ledger, and which states a rerun submits again: shared by
the separation (:mod:`stemkit.separate.run`) and the transcription
(:mod:`stemkit.separate.transcribe`)."""

from __future__ import annotations

from collections.abc import Sequence

from stemkit.errors import Abandoned, AmbiguousSubmission, JobFailed, JobLost, StemkitError

__all__ = ["check_retry", "state_after", "unexpected"]


def unexpected(exc: BaseException, **where: str | None) -> StemkitError:
    """A :class:`StemkitError` for an exception that is not one (an OS error, a bug, a
    vendor answer no parser foresaw), so it becomes one job's failed row.

    Examples
    --------
    >>> unexpected(OSError(28, "No space left on device"), provider="local", track="t").detail
    'OSError: [Errno 28] No space left on device'
    """
    return StemkitError(
        f"{type(exc).__name__}: {exc}",
        hint="not a vendor error: check disk space and permissions; rerun to resume",
        **where,
    )


def check_retry(retry: Sequence[str] | str | None) -> frozenset[str]:
    """The ledger states a ``--retry`` names (``"ambiguous,abandoned"`` or a list), checked.

    Examples
    --------
    >>> sorted(check_retry("ambiguous, abandoned"))
    ['abandoned', 'ambiguous']
    """
    from stemkit.separate.ledger import STATES

    if isinstance(retry, str):
        retry = [r.strip() for r in retry.split(",") if r.strip()]
    states = frozenset(retry or ())
    allowed = {"ambiguous", "abandoned", "lost", "failed", "submitted", "done"}
    if states - allowed:
        raise StemkitError(
            f"--retry {','.join(sorted(states - allowed))}: not a state to retry",
            hint=f"name some of {', '.join(sorted(allowed))} (ledger states: {', '.join(STATES)})",
        )
    return states


def state_after(exc: StemkitError, submitted: bool) -> str:
    """Ledger state after a failure: keep a submitted job for the next run to resume.

    Examples
    --------
    >>> from stemkit.errors import JobTimeout
    >>> state_after(JobTimeout("still running"), submitted=True)
    'submitted'
    """
    if isinstance(exc, AmbiguousSubmission):
        return "ambiguous"
    if isinstance(exc, Abandoned):
        return "abandoned"
    if isinstance(exc, JobLost):
        return "lost"
    if submitted and not isinstance(exc, JobFailed):
        return "submitted"  # a timeout or a failed download: the job lives on at the vendor
    return "failed"
