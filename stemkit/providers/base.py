"""The life cycle every provider shares: submit → wait (poll) → fetch.

A provider implements three small steps (:meth:`Provider.submit`, :meth:`Provider.status`,
:meth:`Provider.fetch`); this module does the rest once for all of them: the poll loop with
backoff and a bounded wait, streamed downloads to a temporary file that is verified and renamed
into place, the client's own observations of each step (for the timeline), and errors that name
the provider, the track and the step.

Examples
--------
>>> import stemkit
>>> with stemkit.sandbox() as url:                                   # doctest: +SKIP
...     p = stemkit.connect("sourceress")
...     result = p.separate("mixture.wav", "out/", stems=("vocals", "accompaniment"))
>>> sorted(result.stems)                                             # doctest: +SKIP
['accompaniment', 'vocals']
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import requests
import tenacity
from pydantic import ValidationError

from stemkit.config import Profile, load_profile
from stemkit.errors import (
    AmbiguousSubmission,
    AuthError,
    IntegrityError,
    JobFailed,
    JobTimeout,
    LinkExpired,
    ProviderError,
    RequestError,
    StemkitError,
)
from stemkit.http import make_session, redact

log = logging.getLogger("stemkit.providers")

State = Literal["queued", "running", "done", "failed"]


def utcnow() -> datetime:
    """Timezone-aware current UTC time."""
    return datetime.now(UTC)


@dataclass
class Event:
    """One vendor event: a named instant on the vendor's clock."""

    name: str
    timestamp: datetime
    message: str | None = None


@dataclass
class Observation:
    """One step the client timed itself (upload, submit, wait, download)."""

    step: str
    start: datetime
    end: datetime


@dataclass
class Job:
    """A submitted job: enough to resume polling and fetching in a later process."""

    provider: str
    job_id: str
    track: str
    stems: list[str]
    submitted_at: datetime = field(default_factory=utcnow)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["submitted_at"] = self.submitted_at.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        d = dict(d)
        d["submitted_at"] = datetime.fromisoformat(d["submitted_at"])
        return cls(**d)


@dataclass
class JobStatus:
    """What the vendor says about a job right now."""

    state: State
    events: list[Event] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    message: str | None = None
    raw: Any = None
    #: stage rows (stage, start, end, seconds[, job_id]) when the vendor reports stamps rather
    #: than named events (see :mod:`stemkit.timing`); None means "derive from events"
    vendor_stages: list[dict[str, Any]] | None = None

    @property
    def terminal(self) -> bool:
        return self.state in ("done", "failed")


@dataclass
class SeparationResult:
    """The stems of one track from one provider, with every timestamp we know."""

    provider: str
    track: str
    job_id: str
    stems: dict[str, Path]
    events: list[Event] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    audio_seconds: float | None = None
    vendor_stages: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (written as ``events.json`` next to the stems)."""
        return {
            "provider": self.provider,
            "track": self.track,
            "job_id": self.job_id,
            "audio_seconds": self.audio_seconds,
            "stems": {k: str(v) for k, v in self.stems.items()},
            "events": [
                {"event": e.name, "timestamp": e.timestamp.isoformat(), "message": e.message}
                for e in self.events
            ],
            "observations": [
                {"step": o.step, "start": o.start.isoformat(), "end": o.end.isoformat()}
                for o in self.observations
            ],
            "vendor_stages": None
            if self.vendor_stages is None
            else [
                {**r, "start": r["start"].isoformat(), "end": r["end"].isoformat()}
                for r in self.vendor_stages
            ],
        }


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


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


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks.

    Examples
    --------
    >>> import tempfile
    >>> p = tempfile.NamedTemporaryFile(delete=False); _ = p.write(b"abc"); p.close()
    >>> sha256_file(p.name)[:12]
    'ba7816bf8f01'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def safe_join(root: str | os.PathLike, name: str) -> Path:
    """``root / name``, refusing names that would leave ``root`` (``..``, absolute paths).

    Examples
    --------
    >>> safe_join("/tmp/out", "vocals.wav").name
    'vocals.wav'
    >>> safe_join("/tmp/out", "../etc/passwd")
    Traceback (most recent call last):
    stemkit.errors.IntegrityError: refusing file name '../etc/passwd': it leaves the output folder
    """
    root_p = Path(root).resolve()
    target = (root_p / name).resolve()
    if os.path.isabs(name) or not target.is_relative_to(root_p) or target == root_p:
        raise IntegrityError(f"refusing file name {name!r}: it leaves the output folder")
    return target


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


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract a zip from a server into ``dest``, refusing entries that would leave it
    (``..``, absolute paths, drive letters) and symbolic links.

    Examples
    --------
    >>> import io, zipfile, tempfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     zf.writestr("../evil.wav", b"x")
    >>> _ = open(tempfile.gettempdir() + "/evil.zip", "wb").write(buf.getvalue())
    >>> safe_extract(tempfile.gettempdir() + "/evil.zip", tempfile.mkdtemp())
    Traceback (most recent call last):
    stemkit.errors.IntegrityError: refusing file name '../evil.wav': it leaves the output folder
    """
    import stat
    import zipfile

    dest = Path(dest)
    out = []
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check everything before writing anything
            if stat.S_ISLNK(info.external_attr >> 16):
                raise IntegrityError(f"refusing zip entry {info.filename!r}: it is a symlink")
            if ":" in info.filename or info.filename.startswith(("/", "\\")):
                raise IntegrityError(f"refusing file name {info.filename!r}: absolute path")
            safe_join(dest, info.filename)
        for info in infos:
            if info.is_dir():
                continue
            target = safe_join(dest, info.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            out.append(target)
    return out


class Provider(ABC):
    """Base class of every separation/transcription service client.

    Subclasses set :attr:`name` and implement :meth:`submit`, :meth:`status` and :meth:`fetch`.
    """

    name: str = "base"
    #: canonical stem sets this provider can deliver, largest first
    stem_sets: tuple[tuple[str, ...], ...] = ()

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

        def check() -> JobStatus | None:
            with self.step("poll", track=job.track):
                st = self.status(job)
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
        )

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
        """
        before = getattr(self.hooks, "before_create", None)
        for attempt in range(1, self.profile.retries + 2):
            if before is not None:
                before()  # e.g. the ledger notes that a paid job is being created now
            try:
                return fn(*args, **kwargs)
            except ProviderError as exc:
                if exc.not_processed and attempt <= self.profile.retries:
                    time.sleep(self._wait_seconds(attempt, exc))
                    continue
                if exc.not_processed:
                    raise
                raise AmbiguousSubmission(
                    f"{exc.detail}: the service may have accepted the job",
                    status=exc.status,
                    hint="not submitted again automatically; check with the vendor, then "
                    "rerun with --force to submit again",
                ) from None
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                raise AmbiguousSubmission(
                    f"connection lost while submitting ({type(exc).__name__}): the service "
                    "may have accepted the job",
                    hint="not submitted again automatically; check with the vendor, then "
                    "rerun with --force to submit again",
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
        except requests.RequestException as exc:
            raise ProviderError(
                f"network error: {redact(str(exc))}",
                provider=self.name,
                track=track,
                step=step,
                hint=f"is {self.profile.base_url} reachable?",
            ) from None

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
        tmp = dest.with_name(f".{dest.name}.partial")
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
        os.replace(tmp, dest)
        return dest
