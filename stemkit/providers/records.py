"""What a provider's job is and what it leaves: jobs, statuses, vendor events, our own
observations, and the result of a separation (the contents of ``record.json``).

Examples
--------
>>> job = Job("sourceress", "sep-1", "t1", ["vocals", "accompaniment"])
>>> Job.from_dict(job.to_dict()) == job
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

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
    #: for each vendor event, the instants of our clock it lies between (set by
    #: :meth:`~stemkit.providers.base.Provider.wait`; see :func:`stemkit.timing.event_bounds`)
    clock_bounds: list[dict[str, Any]] = field(default_factory=list)
    #: what the vendor bills for the job, in its own unit (AudioShake: credits), if it says
    cost: float | None = None
    #: stems the vendor failed while the others completed: stem -> the vendor's message
    failed_stems: dict[str, str] = field(default_factory=dict)

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
    #: our own send/receive instants around each vendor event (for the clock-offset
    #: estimate); records written before this field existed simply lack it
    clock_bounds: list[dict[str, Any]] | None = None
    #: the vendor's cost of the job (credits for AudioShake), None when it reports none
    cost: float | None = None
    #: stems that failed at the vendor while the others completed: stem -> message
    failed_stems: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (written as ``events.json`` next to the stems)."""
        return {
            "provider": self.provider,
            "track": self.track,
            "job_id": self.job_id,
            "audio_seconds": self.audio_seconds,
            "cost": self.cost,
            "failed_stems": dict(self.failed_stems),
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
            "clock_bounds": list(self.clock_bounds or []),
        }
