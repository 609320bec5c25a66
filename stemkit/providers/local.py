"""The ``local`` provider: the sandbox's DSP engine in-process, no HTTP.

Useful as a baseline next to the vendors, and to try the pipeline without any server.

Examples
--------
>>> from stemkit.providers.local import LocalProvider
>>> r = LocalProvider().separate("mixture.wav", "out/")   # doctest: +SKIP
>>> sorted(r.stems)                                       # doctest: +SKIP
['accompaniment', 'vocals']
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf

from stemkit.audio import load_audio, write_audio
from stemkit.errors import RequestError
from stemkit.providers.base import Provider
from stemkit.providers.files import safe_join
from stemkit.providers.records import Event, Job, JobStatus, utcnow
from stemkit.stems import FOUR_STEMS, TWO_STEMS, canonical


class LocalProvider(Provider):
    """Separate with :func:`stemkit.dsp.engine.separate` in this process."""

    name = "local"
    stem_sets = (TWO_STEMS, FOUR_STEMS)

    def __init__(self, profile=None, **kw) -> None:
        super().__init__(profile, **kw)
        self._work = Path(tempfile.mkdtemp(prefix="stemkit-local-"))
        self._jobs: dict[str, JobStatus] = {}

    def submit(
        self,
        audio_path: Path,
        *,
        track: str,
        stems: Sequence[str] = TWO_STEMS,
        fmt: str = "wav",
        **options,
    ) -> Job:
        from stemkit.dsp import engine

        if options:
            raise RequestError(
                f"the local provider takes no options, got {sorted(options)}",
                provider=self.name,
                track=track,
                step="submit",
            )
        names = [canonical(s) for s in stems]
        events = [Event("Processing", utcnow())]
        y, sr = load_audio(audio_path)
        try:
            result = engine.separate(y, sr, names)
        except ValueError as exc:
            raise RequestError(str(exc), provider=self.name, track=track, step="submit") from None
        job_id = f"local-{len(self._jobs) + 1}-{track}"
        folder = self._work / job_id
        folder.mkdir(parents=True, exist_ok=True)
        for stem, audio in result.items():
            sf.write(folder / f"{stem}.wav", audio.T, sr, subtype="FLOAT")
        events.append(Event("Finalising", utcnow()))
        self._jobs[job_id] = JobStatus("done", events, outputs=[f"{s}.wav" for s in result])
        return Job(self.name, job_id, track, names, meta={"folder": str(folder), "sr": sr})

    def status(self, job: Job) -> JobStatus:
        if job.job_id not in self._jobs:  # local jobs live and die with their process
            return JobStatus(
                "failed",
                message=f"local job {job.job_id} ended with the process "
                "that ran it; the next run separates again",
            )
        return self._jobs[job.job_id]

    def fetch(
        self, job: Job, status: JobStatus, out_dir: Path, *, fmt: str = "wav"
    ) -> dict[str, Path]:
        out = {}
        for name in status.outputs:
            y, sr = load_audio(Path(job.meta["folder"]) / name)
            stem = canonical(name)
            out[stem] = write_audio(safe_join(out_dir, f"{stem}.{fmt}"), y, sr, fmt)
        shutil.rmtree(job.meta["folder"], ignore_errors=True)  # the work copy is not needed
        return out
