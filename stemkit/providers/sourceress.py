"""Sourceress Separation API client (vendor doc: ``shared/api/sourceress-separation-api.txt``).

Every documented step is a method here, with typed (pydantic) results:

=========================  ====================================================
:meth:`authenticate`       ``POST /auth/`` – token reused until shortly before expiry
:meth:`create_upload`      ``POST /separation/create`` – upload slot + signed PUT URL
:meth:`upload`             ``PUT <signedUrl>`` – streamed from disk, ``text/plain``
:meth:`metadata`           ``GET /separation/metadata`` – 202 while computing, then 200
:meth:`start_separation`   ``POST /separation/separate`` – algorithm 6 or 7
:meth:`start_trial`        ``POST /separation/trial`` – a section only
:meth:`progress`           ``GET /separation/progress`` – events with timestamps
:meth:`download_url`       ``GET /separation/download`` – 202 until ready, then signed URL
:meth:`mix`                ``POST /separation/mix`` – volume/pan remix of stems
:meth:`zip`                ``POST /separation/zip`` – chosen stems in one archive
=========================  ====================================================

and the shared life cycle (:class:`~stemkit.providers.base.Provider`) on top.

Examples
--------
>>> from stemkit.providers.sourceress import SourceressProvider
>>> src = SourceressProvider()                       # profile "sandbox"
>>> job = src.submit(Path("mix.wav"), track="t1", stems=("vocals", "drums"))  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stemkit.errors import AudioError, AuthError, LinkExpired, ProviderError, RequestError
from stemkit.providers.base import Provider
from stemkit.providers.files import safe_extract, safe_join
from stemkit.providers.records import Event, Job, JobStatus, Observation, utcnow
from stemkit.providers.transport import idempotent
from stemkit.stems import FOUR_STEMS, TWO_STEMS, canonical
from stemkit.timing import parse_time

#: separationAlgorithm → the vendor's output file names (without extension)
ALGORITHMS: dict[int, tuple[str, ...]] = {
    6: ("vocals", "track"),
    7: ("vocals", "drums", "bass", "other"),
}
DOWNLOAD_FORMATS = ("wav", "mp3", "m4a", "flac")
#: event names after which the job is known to be past a stage; failures are our sandbox's
#: extension (the vendor doc documents none): an event whose name contains "Fail" or "Error".
FAILURE_WORDS = ("fail", "error")


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class AuthResponse(_Model):
    """The body of ``POST /auth``: the bearer token and its lifetime in seconds."""

    token: str
    expiry: int = 86400
    token_type: str | None = None


class UploadSlot(_Model):
    """The body of ``POST /upload``: the upload id and the signed URL to PUT the file to."""

    upload_id: str = Field(alias="uploadId")
    signed_url: str = Field(alias="signedUrl")
    expiry: str | None = None
    method: str = "PUT"


class Metadata(_Model):
    """The body of ``GET /metadata/:id`` once ready: duration, channels, sample rate."""

    duration: float | None = None
    num_channels: int | None = Field(None, alias="numChannels")
    sample_rate: int | None = Field(None, alias="sampleRate")
    message: str | None = None
    success: bool = False


class SeparationStarted(_Model):
    """The body of ``POST /separate`` (and the trial): the separation id."""

    separation_id: str = Field(alias="separationId")


class ProgressEvent(_Model):
    """One progress event: its name, guid and timestamp (the vendor's clock).

    The timestamp is read by :func:`stemkit.timing.parse_time` (ISO-8601 with any offset or
    none, epoch seconds or milliseconds); any other form is a
    :class:`~stemkit.errors.TimestampError` naming the event.
    """

    event: str
    guid: str | None = None
    timestamp: datetime
    message: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_timestamp(cls, data: Any) -> Any:
        if isinstance(data, dict) and "timestamp" in data:
            name = data.get("event")
            data = {**data, "timestamp": parse_time(data["timestamp"], event=name)}
        return data


class Progress(_Model):
    """The body of ``GET /separate/:id/progress``: events so far and, when done, the files."""

    events: list[ProgressEvent] = Field(default_factory=list)
    output_files: list[str] | None = Field(None, alias="outputFiles")

    @property
    def finished(self) -> bool:
        """Finished when ``outputFiles`` is non-empty (the doc's rule)."""
        return bool(self.output_files)


class SignedUrl(_Model):
    """A signed download (or upload) URL with its expiry and HTTP method."""

    signed_url: str = Field(alias="signedUrl")
    expiry: str | None = None
    method: str = "GET"


class MixTrack(_Model):
    """One stem in a mix: ``volume`` 0..1, ``pan`` -1 (left) .. 1 (right)."""

    file_name: str = Field(alias="fileName")
    volume: float = Field(1.0, ge=0.0, le=1.0)
    pan: float = Field(0.0, ge=-1.0, le=1.0)


class MixCreated(_Model):
    """The body of ``POST /mix``: the mix id."""

    mix_id: str = Field(alias="mixId")


class ZipCreated(_Model):
    """The body of ``POST /zip``: the path of the zip file to download."""

    zip_file_path: str = Field(alias="zipFilePath")


def algorithm_for(stems: Sequence[str]) -> int:
    """The separationAlgorithm that delivers ``stems`` (6 = 2 stems, 7 = 4 stems).

    Examples
    --------
    >>> algorithm_for(["vocals", "accompaniment"]), algorithm_for(["drums"])
    (6, 7)
    """
    wanted = {canonical(s) for s in stems}
    if wanted <= set(TWO_STEMS):
        return 6
    if wanted <= set(FOUR_STEMS):
        return 7
    raise RequestError(
        f"Sourceress cannot deliver {sorted(wanted - set(TWO_STEMS) - set(FOUR_STEMS))}; "
        f"it offers {TWO_STEMS} (algorithm 6) or {FOUR_STEMS} (algorithm 7)",
        provider="sourceress",
        step="submit",
    )


class SourceressProvider(Provider):
    """Client of the Sourceress Separation API (token auth, signed URLs, progress events)."""

    name = "sourceress"
    stem_sets = (TWO_STEMS, FOUR_STEMS)
    #: renew the token this many seconds before it expires
    token_margin = 60.0

    def __init__(self, profile=None, **kw) -> None:
        super().__init__(profile, **kw)
        self._token: str | None = None
        self._token_deadline = 0.0
        self._token_lock = threading.Lock()

    # -- auth -------------------------------------------------------------------------------
    def authenticate(self, *, force: bool = False) -> str:
        """Return a valid token, logging in only when there is none or it is about to expire.

        Called inside every request (whose retries cover the login too), so it does not retry
        by itself: nested retries would multiply the waits against a service that is down.

        Examples
        --------
        >>> SourceressProvider().authenticate().startswith("Bearer ")   # doctest: +SKIP
        True
        """
        with self._token_lock:
            if not force and self._token and time.monotonic() < self._token_deadline:
                return self._token
            p = self.profile
            if not p.username or p.password is None:
                raise AuthError(
                    "no username/password configured",
                    provider=self.name,
                    step="auth",
                    hint="set STEMKIT_SOURCERESS_USERNAME / _PASSWORD or a stemkit.toml profile",
                )
            with self.step("auth"):
                auth = self._login()  # not retried here: every caller's call is
            self._token = auth.token
            self._token_deadline = time.monotonic() + max(auth.expiry - self.token_margin, 1)
            return self._token

    def _login(self) -> AuthResponse:
        p = self.profile
        resp = self.session.post(
            f"{p.base_url}/auth/",
            json={"username": p.username, "password": p.password.get_secret_value()},
        )
        self.check_response(resp, "authentication")
        return self._parse(AuthResponse, resp, "authentication")

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        model: type[_Model] | None = None,
        *,
        creates: bool = False,
        **kw,
    ):
        """One authenticated call, parsed into ``model`` (None while the answer is 202).

        On 401 it logs in again once. Reads are retried on transient failures; a call that
        ``creates`` a paid job is sent again only when the service did no work (429/503).
        """

        def once():
            for attempt in (0, 1):
                headers = {"Authorization": self.authenticate(force=attempt == 1)}
                resp = self.session.request(
                    method, f"{self.profile.base_url}{path}", headers=headers, **kw
                )
                if resp.status_code != 401:
                    break
            self.check_response(resp, what)
            if resp.status_code == 202:
                return None
            return self._parse(model, resp, what) if model else resp

        return self.creating(once) if creates else self.retrying(once)

    def _parse(self, model: type[_Model], resp, what: str):
        return self.parse(model, self.json(resp, what), what)

    # -- upload ----------------------------------------------------------------------------
    def create_upload(self) -> UploadSlot:
        """Ask for an upload slot: ``{uploadId, signedUrl, expiry, method}``."""
        return self._call("POST", "/separation/create", "create upload", UploadSlot)

    @idempotent
    def upload(self, slot: UploadSlot, path: Path) -> None:
        """PUT the file to the signed URL, streamed from disk (no auth header: URL is signed)."""
        with open(path, "rb") as fh:
            resp = self.session.request(
                slot.method or "PUT",
                slot.signed_url,
                data=fh,
                headers={"Content-Type": "text/plain"},
            )
        if resp.status_code in (401, 403, 410):
            raise LinkExpired(
                f"upload URL refused (HTTP {resp.status_code})", status=resp.status_code
            )
        self.check_response(resp, "upload")

    def metadata(
        self, upload_id: str, *, wait: bool = True, timeout: float = 300
    ) -> Metadata | None:
        """Metadata of an upload; with ``wait``, poll through HTTP 202 until it is ready."""

        def once() -> Metadata | None:
            return self._call(
                "GET", "/separation/metadata", "metadata", Metadata, params={"uploadId": upload_id}
            )

        if not wait:
            return once()
        try:
            return self.poll_until(once, timeout=timeout)
        except TimeoutError:
            raise ProviderError(
                f"metadata of upload {upload_id} not ready after {timeout:g} s", step="metadata"
            ) from None

    # -- separation --------------------------------------------------------------------------
    @staticmethod
    def _separation_body(upload_id: str, algorithm: int, **opts) -> dict[str, Any]:
        if algorithm not in ALGORITHMS:
            raise RequestError(
                f"separationAlgorithm must be 6 or 7, not {algorithm!r}", step="separate"
            )
        names = {
            "custom_metadata": "customMetadata",
            "callback_url": "callbackUrl",
            "output_formats": "outputFormats",
            "priority": "priority",
            "priority_offset": "priorityOffset",
            "trial_section_seconds": "trialSectionSeconds",
            "trial_section_start": "trialSectionStart",
        }
        body: dict[str, Any] = {"uploadId": upload_id, "separationAlgorithm": algorithm}
        for key, value in opts.items():
            if key not in names:
                raise RequestError(
                    f"unknown separation option {key!r}; known: {sorted(names)}", step="separate"
                )
            if value is not None:
                body[names[key]] = value
        return body

    def start_separation(
        self,
        upload_id: str,
        algorithm: int = 6,
        *,
        custom_metadata=None,
        callback_url=None,
        output_formats=None,
        priority=None,
        priority_offset=None,
    ) -> str:
        """Start a full separation; returns the ``separationId``.

        Examples
        --------
        >>> sid = src.start_separation(slot.upload_id, 7, custom_metadata="t3")  # doctest: +SKIP
        """
        body = self._separation_body(
            upload_id,
            algorithm,
            custom_metadata=custom_metadata,
            callback_url=callback_url,
            output_formats=output_formats,
            priority=priority,
            priority_offset=priority_offset,
        )
        started = self._call(
            "POST", "/separation/separate", "separate", SeparationStarted, creates=True, json=body
        )
        return started.separation_id

    def start_trial(
        self,
        upload_id: str,
        algorithm: int = 6,
        *,
        trial_section_seconds=30.0,
        trial_section_start=None,
        custom_metadata=None,
        callback_url=None,
        output_formats=None,
    ) -> str:
        """Start a trial separation of a section (default 30 s, random start if not given)."""
        body = self._separation_body(
            upload_id,
            algorithm,
            trial_section_seconds=trial_section_seconds,
            trial_section_start=trial_section_start,
            custom_metadata=custom_metadata,
            callback_url=callback_url,
            output_formats=output_formats,
        )
        started = self._call(
            "POST", "/separation/trial", "trial", SeparationStarted, creates=True, json=body
        )
        return started.separation_id

    def progress(self, separation_id: str) -> Progress:
        """Events so far and, once finished, the output file names."""
        return self._call(
            "GET",
            "/separation/progress",
            "progress",
            Progress,
            params={"separationId": separation_id},
        )

    # -- download, mix, zip ----------------------------------------------------------------
    def download_url(
        self, separation_id: str, file_name: str, file_format: str = "wav", *, timeout: float = 300
    ) -> SignedUrl:
        """A signed GET URL for an output, polling through HTTP 202 while it is being prepared.

        ``file_name`` is given without extension (``vocals``), except zips keep ``.zip``.
        """
        fmt = file_format.lower().lstrip(".")
        if fmt not in (*DOWNLOAD_FORMATS, "zip"):
            raise RequestError(
                f"fileFormat must be one of {DOWNLOAD_FORMATS} or zip, not {fmt!r}", step="download"
            )
        if fmt != "zip" and "." in file_name.rsplit("/", 1)[-1]:
            file_name = file_name.rsplit(".", 1)[0]
        params = {"separationId": separation_id, "fileName": file_name, "fileFormat": fmt}

        def once() -> SignedUrl | None:
            return self._call("GET", "/separation/download", "download", SignedUrl, params=params)

        try:
            return self.poll_until(once, timeout=timeout)
        except TimeoutError:
            raise ProviderError(
                f"{file_name}.{fmt} not ready after {timeout:g} s", step="download"
            ) from None

    def fetch_file(self, separation_id: str, file_name: str, file_format: str, dest: Path) -> Path:
        """Ask for a signed URL and stream the file to ``dest``; one fresh URL if it expired."""
        try:
            return self.download(
                self.download_url(separation_id, file_name, file_format).signed_url, dest
            )
        except LinkExpired:
            return self.download(
                self.download_url(separation_id, file_name, file_format).signed_url, dest
            )

    def mix(self, separation_id: str, tracks: Sequence[MixTrack | dict], mix_name: str) -> str:
        """Render a remix of stems with volume and pan; returns the ``mixId`` to download.

        Examples
        --------
        >>> tracks = [{"fileName": "vocals.wav", "volume": 0.9, "pan": 1}]
        >>> mid = src.mix(sid, tracks, "v")  # doctest: +SKIP
        >>> src.fetch_file(sid, mid, "wav", Path("mix.wav"))  # doctest: +SKIP
        """
        try:
            items = [t if isinstance(t, MixTrack) else MixTrack.model_validate(t) for t in tracks]
        except ValidationError as exc:
            raise RequestError(
                f"invalid mix track: {exc.errors(include_input=False)[0]['msg']}", step="mix"
            ) from None
        body = {
            "separationId": separation_id,
            "tracks": [
                t.model_dump(by_alias=True, include={"file_name", "volume", "pan"}) for t in items
            ],
            "mixName": mix_name,
        }
        return self._call("POST", "/separation/mix", "mix", MixCreated, json=body).mix_id

    def zip(
        self,
        separation_id: str,
        tracks: Sequence[str],
        fmt: str = "wav",
        zip_file_name: str = "stems",
    ) -> str:
        """Pack chosen stems into one zip; returns ``zipFilePath`` (download with ``zip``)."""
        body = {
            "separationId": separation_id,
            "tracks": list(tracks),
            "format": fmt,
            "zipFileName": zip_file_name,
        }
        return self._call("POST", "/separation/zip", "zip", ZipCreated, json=body).zip_file_path

    def fetch_zip(
        self,
        separation_id: str,
        tracks: Sequence[str],
        dest: Path,
        *,
        fmt: str = "wav",
        name: str = "stems",
    ) -> list[Path]:
        """Zip chosen stems at the service, download the zip and extract it safely.

        Examples
        --------
        >>> src.fetch_zip(sid, ["vocals", "bass"], Path("out/zip"))   # doctest: +SKIP
        [PosixPath('out/zip/vocals.wav'), PosixPath('out/zip/bass.wav')]
        """
        path = self.zip(separation_id, tracks, fmt, name)
        archive = self.fetch_file(separation_id, path, "zip", Path(dest) / f".{name}.zip")
        try:
            return safe_extract(archive, dest)
        finally:
            archive.unlink(missing_ok=True)

    # -- life cycle ------------------------------------------------------------------------
    def submit(
        self,
        audio_path: Path,
        *,
        track: str,
        stems: Sequence[str] = TWO_STEMS,
        trial_seconds: float | None = None,
        trial_start: float | None = None,
        fmt: str = "wav",
        **options,
    ) -> Job:
        """Create an upload slot, upload, wait for metadata, start the separation."""
        algorithm = algorithm_for(stems)
        obs: list[Observation] = []
        with self.step("upload", track=track):
            t0 = utcnow()
            slot = self.create_upload()
            try:
                self.upload(slot, Path(audio_path))
            except LinkExpired:  # the signed URL expired before we used it: a fresh slot
                slot = self.create_upload()
                self.upload(slot, Path(audio_path))
            obs.append(Observation("upload", t0, utcnow()))
        with self.step("metadata", track=track):
            t0 = utcnow()
            meta = self.metadata(slot.upload_id)
            obs.append(Observation("metadata", t0, utcnow()))
            if not meta.success:
                raise AudioError(f"the service cannot read the file: {meta.message}")
        with self.step("separate", track=track):
            t0 = utcnow()
            if trial_seconds is not None:
                sid = self.start_trial(
                    slot.upload_id,
                    algorithm,
                    trial_section_seconds=trial_seconds,
                    trial_section_start=trial_start,
                    **options,
                )
            else:
                sid = self.start_separation(slot.upload_id, algorithm, **options)
            obs.append(Observation("submit", t0, utcnow()))
        return Job(
            provider=self.name,
            job_id=sid,
            track=track,
            stems=[canonical(s) for s in ALGORITHMS[algorithm]],
            meta={
                "upload_id": slot.upload_id,
                "algorithm": algorithm,
                "duration": meta.duration,
                "observations": obs,
            },
        )

    def status(self, job: Job) -> JobStatus:
        prog = self.progress(job.job_id)
        events = [Event(e.event, e.timestamp, e.message) for e in prog.events]
        failed = [e for e in prog.events if any(w in e.event.lower() for w in FAILURE_WORDS)]
        if failed:
            return JobStatus(
                "failed", events, message=failed[-1].message or failed[-1].event, raw=prog
            )
        if prog.finished:
            return JobStatus("done", events, outputs=list(prog.output_files or []), raw=prog)
        running = any(e.event == "Processing" for e in prog.events)
        return JobStatus("running" if running else "queued", events, raw=prog)

    def fetch(
        self, job: Job, status: JobStatus, out_dir: Path, *, fmt: str = "wav"
    ) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for name in status.outputs:
            stem = canonical(name)
            dest = safe_join(out_dir, f"{stem}.{fmt}")
            with self.step(f"download {stem}", track=job.track):
                out[stem] = self.fetch_file(job.job_id, name, fmt, dest)
        return out
