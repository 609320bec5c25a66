"""The life cycle every provider shares: submit → wait (poll) → fetch.

A provider implements three small steps (:meth:`Provider.submit`, :meth:`Provider.status`,
:meth:`Provider.fetch`); this module does the rest once for all of them: the poll loop with
backoff and a bounded wait, streamed downloads to a temporary file that is verified and renamed
into place, the client's own observations of each step (for the timeline), and errors that name
the provider, the track and the step.

Examples
--------
>>> import stemkit
>>> with stemkit.local_sandbox():                                    # doctest: +SKIP
...     p = stemkit.connect("sourceress")
...     result = p.separate("mixture.wav", "out/", stems=("vocals", "accompaniment"))
>>> sorted(result.stems)                                             # doctest: +SKIP
['accompaniment', 'vocals']

The pieces: :mod:`~stemkit.providers.records` (jobs, events, results),
:mod:`~stemkit.providers.transport` (retries, errors, downloads),
:mod:`~stemkit.providers.files` (checksums, safe names and archives).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from stemkit.config import Profile, load_profile
from stemkit.errors import (
    JobFailed,
    JobLost,
    JobTimeout,
    RequestError,
)
from stemkit.http import make_session
from stemkit.providers.records import Job, JobStatus, Observation, SeparationResult, utcnow
from stemkit.providers.transport import Transport
from stemkit.timing import event_bounds, parse_time

log = logging.getLogger("stemkit.providers")


class Provider(Transport, ABC):
    """Base class of every separation/transcription service client.

    Subclasses set :attr:`name` and implement :meth:`submit`, :meth:`status` and :meth:`fetch`.
    """

    name: str = "base"
    #: canonical stem sets this provider can deliver, largest first
    stem_sets: tuple[tuple[str, ...], ...] = ()
    #: True when a create whose answer was lost can be found at the vendor again
    #: (:meth:`reconcile`); the others leave such a create ``ambiguous``
    reconciles: bool = False

    def __init__(
        self,
        profile: Profile | str | None = None,
        *,
        session: requests.Session | None = None,
        **overrides,
    ) -> None:
        if not isinstance(profile, Profile):
            profile = load_profile(self.name, profile, **overrides)
        self.profile = profile
        self.session = session or make_session(timeout=profile.timeout)
        #: per-thread callbacks (``before_create``) set by whoever drives this client
        self.hooks = threading.local()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} profile={self.profile.name!r} {self.profile.base_url}>"

    # -- the three provider-specific steps -------------------------------------------------
    @abstractmethod
    def submit(
        self, audio_path: Path, *, track: str, stems: Sequence[str], fmt: str = "wav", **options
    ) -> Job:
        """Upload ``audio_path`` and start a job; return as soon as the vendor has an id.

        ``fmt`` is the stem format wanted, for vendors that fix it at submission.
        """

    @abstractmethod
    def status(self, job: Job) -> JobStatus:
        """Ask the vendor once how the job is doing."""

    @abstractmethod
    def fetch(
        self, job: Job, status: JobStatus, out_dir: Path, *, fmt: str = "wav"
    ) -> dict[str, Path]:
        """Download the finished job's stems into ``out_dir`` as ``<canonical stem>.<fmt>``."""

    def reconcile(self, pending: dict[str, Any], *, track: str) -> Job | None:
        """Find the job of a create whose answer was lost, from what ``hooks.pending_create``
        held when it was sent (the ledger keeps it in the ``creating``/``ambiguous`` row).

        Returns the :class:`Job` to resume, or None when a bounded look found none (nothing
        was created: safe to submit again). Raises a :class:`~stemkit.errors.StemkitError`
        when the vendor cannot be asked (still ambiguous). Only for providers with
        :attr:`reconciles`.
        """
        raise NotImplementedError(f"{self.name} cannot look up a lost create")

    # -- shared life cycle -------------------------------------------------------------------
    def wait(
        self,
        job: Job,
        *,
        timeout: float | None = None,
        on_status: Callable[[JobStatus], None] | None = None,
    ) -> JobStatus:
        """Poll until the job is done; raise :class:`JobFailed` or :class:`JobTimeout`.

        A timeout keeps the job id in the error so a rerun resumes instead of resubmitting.
        """
        timeout = self.profile.job_timeout if timeout is None else timeout
        last: list[JobStatus] = []
        polls: list[tuple] = []  # (sent, received, events) of every status request

        def check() -> JobStatus | None:
            try:
                with self.step("poll", track=job.track):
                    sent = utcnow()
                    st = self.status(job)
                    polls.append((sent, utcnow(), st.events))
            except RequestError as exc:
                if exc.status != 404:
                    raise
                raise JobLost(
                    f"the service no longer knows job {job.job_id} ({exc.detail})",
                    job_id=job.job_id,
                    provider=self.name,
                    track=job.track,
                    step="poll",
                    hint="was the service (a sandbox?) restarted without its state? Not "
                    "submitted again by itself: rerun with --retry lost, or `stemkit jobs "
                    f"resolve OUT {job.track} {self.name} --resubmit` (pays again)",
                ) from None
            if st.terminal:
                st.clock_bounds = event_bounds(polls, created_after=_created_after(job))
            last[:] = [st]
            if on_status:
                on_status(st)
            if st.state == "failed":
                raise JobFailed(
                    st.message or "the job failed (no message from the service)",
                    job_id=job.job_id,
                    provider=self.name,
                    track=job.track,
                    step="wait",
                    events=st.events,
                    clock_bounds=st.clock_bounds,
                    salvage=self.salvage(job, st),
                )
            return st if st.state == "done" else None

        try:
            return self.poll_until(check, timeout=timeout)
        except TimeoutError:
            state = last[0].state if last else "unknown"
            raise JobTimeout(
                f"job {job.job_id} still {state} after {timeout:.0f} s",
                job_id=job.job_id,
                provider=self.name,
                track=job.track,
                step="wait",
            ) from None

    def salvage(self, job: Job, status: JobStatus) -> Job | None:
        """The part of a failed job worth keeping for a rerun (a job made of several paid
        calls, some of which succeeded), as a partial job (``meta["partial"]``); None here."""
        return None

    def poll_until(self, check: Callable[[], Any], *, timeout: float) -> Any:
        """Call ``check`` until it returns something other than None; back off in between.

        The interval starts at ``profile.poll_interval`` and grows by half each call up to
        ``profile.poll_max``. Raises :class:`TimeoutError` when ``timeout`` seconds pass.

        Examples
        --------
        >>> provider.poll_until(lambda: ready_or_none(), timeout=60)  # doctest: +SKIP
        """
        deadline = time.monotonic() + timeout
        interval = self.profile.poll_interval
        while True:
            result = check()
            if result is not None:
                return result
            if time.monotonic() + interval > deadline:
                raise TimeoutError
            time.sleep(interval)
            interval = min(interval * 1.5, self.profile.poll_max)

    def separate(
        self,
        audio_path: str | os.PathLike,
        out_dir: str | os.PathLike,
        *,
        track: str | None = None,
        stems: Sequence[str] | None = None,
        fmt: str = "wav",
        timeout: float | None = None,
        **options,
    ) -> SeparationResult:
        """Submit, wait and fetch in one call: the simple path for one file in a notebook.

        Examples
        --------
        >>> r = connect("sourceress").separate("mix.wav", "out/")   # doctest: +SKIP
        >>> r.stems["vocals"]                                          # doctest: +SKIP
        PosixPath('out/vocals.wav')
        """
        from stemkit.audio import check_audio

        audio_path = Path(audio_path)
        track = track or audio_path.parent.name or audio_path.stem
        stems = tuple(stems or self.stem_sets[0])
        with self.step("check", track=track):
            info = check_audio(audio_path)
        t0 = utcnow()
        job = self.submit(audio_path, track=track, stems=stems, fmt=fmt, **options)
        t1 = utcnow()
        final = self.wait(job, timeout=timeout)
        t2 = utcnow()
        files = self.fetch(job, final, Path(out_dir), fmt=fmt)
        t3 = utcnow()
        obs = list(job.meta.pop("observations", []))
        obs += [Observation("wait", t1, t2), Observation("download", t2, t3)]
        if not any(o.step == "submit" for o in obs):
            obs.insert(0, Observation("submit", t0, t1))
        return SeparationResult(
            provider=self.name,
            track=track,
            job_id=job.job_id,
            stems=files,
            events=final.events,
            observations=obs,
            audio_seconds=info.duration,
            vendor_stages=final.vendor_stages,
            clock_bounds=final.clock_bounds,
            cost=final.cost,
            failed_stems=dict(final.failed_stems),
        )


def _created_after(job: Job) -> datetime | None:
    """When we sent the request that created ``job`` (the start of its ``submit`` step, as the
    provider observed it), or None when the job does not say."""
    for o in job.meta.get("observations", []):
        step, start = (
            (o.step, o.start) if isinstance(o, Observation) else (o.get("step"), o.get("start"))
        )
        if step == "submit" and start:
            return parse_time(start)
    return None
