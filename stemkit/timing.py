"""Vendor events and the client's own observations → one timeline table.

Every provider reports time differently (Sourceress: a list of named events; AudioShake:
created/started/updated stamps; Loom: submitted/completed). :func:`timeline` turns them into rows
of one shape, so providers are compared on the same axes:

========== ========================================================================
column     meaning
========== ========================================================================
provider, track, job_id
stage      ``formatting``, ``metadata``, ``trial chunking``, ``queue wait``, ``processing``, ...
           or a client step: ``upload``, ``submit``, ``wait``, ``download``
source     ``vendor`` (the vendor's clock) or ``client`` (ours)
start      UTC timestamp
end        UTC timestamp
seconds    ``end - start``
attempt    the vendor's attempt (1, 2, ...) a vendor stage belongs to; empty for client rows
failed     the attempt did not deliver: a later attempt followed it, or it reported a failure
open_end   the stage's end event never came; ``end`` is the best evidence (see ``ended_by``)
ended_by   ``event`` (its own end event), ``next event`` (the vendor's next event),
           ``completion`` (our observation that the job was done, moved onto the vendor's clock
           by the estimated clock offset), ``now`` (still in flight)
========== ========================================================================

**Attempts.** A vendor that retries a job says so (Sourceress: ``"Queue message received"``
with the message ``"Attempt number 2"``); events are grouped by those numbers where given and
by repeated stage events otherwise (a second ``"Processing"`` starts a new attempt).

**Clocks.** Vendor stamps are on the vendor's clock, client steps on ours. :func:`clock_offset`
estimates the difference from :func:`event_bounds` (each vendor event happened between two of
our own instants); the estimate moves our observations onto the vendor's clock where a stage
needs both (an open end closed by our completion) and vendor rows onto ours for charts
(:func:`on_our_clock`).

Examples
--------
>>> from stemkit.timing import stages_from_events
>>> rows = stages_from_events([("Processing", "2020-07-21T14:51:15.846Z"),
...                            ("Finalising", "2020-07-21T14:52:06.007Z")])
>>> [(r["stage"], r["seconds"], r["attempt"]) for r in rows]
[('processing', 50.161, 1)]
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from stemkit.errors import TimestampError

#: (stage, event that starts it, event that ends it) for event-list vendors (Sourceress)
SOURCERESS_STAGES: tuple[tuple[str, str, str], ...] = (
    ("formatting", "Formatting Request File", "Request Formatting Done"),
    ("metadata", "Requesting Metadata", "Metadata Task Done"),
    ("trial chunking", "Trial Chunking Start", "Trial Chunking Done"),
    ("queue wait", "Starting Separation", "Queue message received"),
    ("processing", "Processing", "Finalising"),
)
COLUMNS = [
    "provider",
    "track",
    "job_id",
    "stage",
    "source",
    "start",
    "end",
    "seconds",
    "attempt",
    "failed",
    "open_end",
    "ended_by",
]
#: stage order for charts: vendor stages first, then the client's steps
STAGE_ORDER = [s for s, _, _ in SOURCERESS_STAGES] + [
    "upload",
    "metadata wait",
    "submit",
    "wait",
    "download",
    "end to end",
]
#: words in an event name that mark a failure (the sandbox's "Separation Failed")
FAILURE_WORDS = ("fail", "error")
#: a vendor message that numbers the attempt ("Attempt number 2", "attempt #3", "Attempt 2")
ATTEMPT_PATTERN = re.compile(r"\battempt\s*(?:number|no\.?|#)?\s*(\d+)", re.IGNORECASE)

# -- timestamps ----------------------------------------------------------------------------

#: epoch numbers below this are seconds, at or above it milliseconds (see :func:`parse_time`)
EPOCH_MS_FROM = 1e11
#: epoch numbers at or above this are refused (microseconds or nanoseconds are not guessed)
EPOCH_MAX = 1e14
_ISO_START = re.compile(r"^\d{4}-?\d\d-?\d\d[T ]\d\d")
_FRACTION = re.compile(r"([.,])(\d{6})\d+")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def parse_time(value: Any, *, event: str | None = None) -> datetime:
    """A timezone-aware UTC datetime from any timestamp form a vendor sends.

    The rules:

    - **ISO-8601 text** with a date and a time (``T`` or a space between them), with ``Z``,
      any offset (``+02:00``, ``+0200``) or **none, which is read as UTC**. Fractional seconds
      beyond the microsecond are truncated to it (no warning: the digits carry no information
      at the precision any vendor's clock has).
    - **Epoch numbers** (int, float, or text of digits): below ``1e11`` they are seconds, from
      ``1e11`` up to ``1e14`` milliseconds. The two ranges cannot be confused for real dates:
      ``1e11`` seconds is the year 5138 and ``1e11`` milliseconds is 3 March 1973.
      Negative numbers and numbers from ``1e14`` up are refused.
    - a :class:`datetime` (naive is read as UTC) or :class:`pandas.Timestamp`.

    Anything else raises :class:`~stemkit.errors.TimestampError` naming ``event``.

    Parameters
    ----------
    value : str, int, float or datetime
        The timestamp as the vendor sent it.
    event : str, optional
        The event it belongs to, named in the error.

    Returns
    -------
    datetime
        Aware, in UTC, microsecond resolution.

    Examples
    --------
    >>> parse_time("2020-07-21T14:51:15.846Z").isoformat()
    '2020-07-21T14:51:15.846000+00:00'
    >>> parse_time("2020-07-21T16:51:15.846123456+02:00").isoformat()
    '2020-07-21T14:51:15.846123+00:00'
    >>> ms, s, iso = 1595343075846, 1595343075.846, "2020-07-21T14:51:15.846"
    >>> parse_time(ms) == parse_time(s) == parse_time(iso)
    True
    """
    what = f"the timestamp of event {event!r}" if event else "a timestamp"
    if isinstance(value, pd.Timestamp):
        if value is pd.NaT:
            raise _bad(value, what, event)
        value = value.to_pydatetime(warn=False)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        value = float(value.strip())
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0 or value >= EPOCH_MAX:
            raise _bad(value, what, event)
        seconds = value / 1000 if value >= EPOCH_MS_FROM else value
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    if isinstance(value, str) and _ISO_START.match(value.strip()):
        text = _FRACTION.sub(r"\1\2", value.strip())
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise _bad(value, what, event) from None
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    raise _bad(value, what, event)


def _bad(value: Any, what: str, event: str | None) -> TimestampError:
    return TimestampError(
        f"{what} is {value!r}, which is neither ISO-8601 date-and-time nor epoch seconds or "
        "milliseconds",
        hint="see stemkit.timing.parse_time for the forms read; report the vendor's format",
    )


def _seconds(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 6)


# -- events → stages, by attempt ------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    name: str
    at: datetime
    message: str


def _read_events(events: Iterable[Any]) -> list[_Seen]:
    seen = []
    for e in events:
        if isinstance(e, dict):
            name, ts, msg = e.get("event") or e.get("name"), e.get("timestamp"), e.get("message")
        elif isinstance(e, tuple | list):
            name, ts, msg = e[0], e[1], e[2] if len(e) > 2 else None
        else:
            name, ts, msg = e.name, e.timestamp, getattr(e, "message", None)
        seen.append(_Seen(str(name), parse_time(ts, event=str(name)), msg or ""))
    return seen


def attempts_of(events: Sequence[Any], rules=SOURCERESS_STAGES) -> list[int]:
    """The attempt (1, 2, ...) each event belongs to.

    The vendor's own number wins where a message gives one (``"Attempt number 2"``); otherwise
    an event of a stage rule seen before in the current attempt starts the next one.

    Examples
    --------
    >>> attempts_of([("Processing", 0), ("Processing", 5), ("Finalising", 9)])
    [1, 2, 2]
    """
    seen = events if all(isinstance(e, _Seen) for e in events) else _read_events(events)
    names = {n for _, start, end in rules for n in (start, end)}
    current, used, out = 1, set(), []
    for e in seen:
        numbered = ATTEMPT_PATTERN.search(e.message)
        if numbered:
            n = int(numbered.group(1))
            if n != current:
                current, used = n, set()
        elif e.name in names and e.name in used:
            current, used = current + 1, set()
        used.add(e.name)
        out.append(current)
    return out


def stages_from_events(
    events: Iterable[Any],
    rules: Sequence[tuple[str, str, str]] = SOURCERESS_STAGES,
    *,
    until: Any = None,
    until_is: str = "completion",
) -> list[dict[str, Any]]:
    """Pair named events into stages, one row per attempt and stage.

    A stage is ``failed`` in an attempt when the vendor ran it again in a later one, or when
    the attempt reported a failure while the stage was open; stages an attempt did not redo
    (formatting, say, before a retried processing) are the job's, not failed.

    ``events`` are ``(name, timestamp[, message])`` tuples, dicts with
    ``event``/``timestamp``/``message``, or objects with ``name``/``timestamp``/``message``.

    Parameters
    ----------
    events : iterable
        The vendor's events, in the vendor's order.
    rules : sequence of (stage, start event, end event)
    until : timestamp, optional
        On the *vendor's* clock: where a stage that started and never ended stops when no later
        vendor event bounds it (our observation that the job completed, or now).
        Without it, such a stage is left out.
    until_is : str
        What ``until`` is, written to ``ended_by`` (``"completion"`` or ``"now"``).

    Returns
    -------
    list of dict
        ``stage, source, start, end, seconds, attempt, failed, open_end, ended_by``.

    Examples
    --------
    >>> rows = stages_from_events([("Processing", "2024-01-01T00:00:00Z"),
    ...                            ("Processing", "2024-01-01T00:00:10Z"),
    ...                            ("Finalising", "2024-01-01T00:00:40Z")])
    >>> [(r["attempt"], r["seconds"], r["failed"], r["ended_by"]) for r in rows]
    [(1, 10.0, True, 'next event'), (2, 30.0, False, 'event')]
    """
    seen = _read_events(events)
    until = None if until is None else parse_time(until)
    attempt = attempts_of(seen, rules)
    failed_attempts = {
        a
        for e, a in zip(seen, attempt, strict=True)
        if any(w in e.name.lower() for w in FAILURE_WORDS)
    }
    rows = []
    for a in sorted(set(attempt)):
        idx = [i for i, n in enumerate(attempt) if n == a]
        for stage, start_name, end_name in rules:
            si = next((i for i in idx if seen[i].name == start_name), None)
            if si is None:
                continue
            start = seen[si].at
            ei = next(
                (i for i in idx if i > si and seen[i].name == end_name and seen[i].at >= start),
                None,
            )
            if ei is not None:
                end, ended_by = seen[ei].at, "event"
            else:
                nxt = next((e.at for e in seen[si + 1 :] if e.at >= start), None)
                if nxt is not None:
                    end, ended_by = nxt, "next event"
                elif until is not None:
                    end, ended_by = max(until, start), until_is
                else:
                    continue
            rows.append(
                {
                    "stage": stage,
                    "source": "vendor",
                    "start": start,
                    "end": end,
                    "seconds": _seconds(start, end),
                    "attempt": a,
                    "failed": a in failed_attempts and ended_by != "event",
                    "open_end": ended_by != "event",
                    "ended_by": ended_by,
                }
            )
    for r in rows:  # a stage the vendor ran again in a later attempt failed in this one
        r["failed"] = r["failed"] or any(
            o["stage"] == r["stage"] and o["attempt"] > r["attempt"] for o in rows
        )
    return rows


def stages_from_stamps(
    created: Any, started: Any = None, finished: Any = None
) -> list[dict[str, Any]]:
    """Queue wait (created → started) and processing (started → finished) from job stamps.

    Examples
    --------
    >>> [r["stage"] for r in stages_from_stamps("2024-01-01T00:00:00Z", "2024-01-01T00:00:05Z",
    ...                                         "2024-01-01T00:00:35Z")]
    ['queue wait', 'processing']
    """
    rows = []
    c, s, f = (
        parse_time(x, event=name) if x else None
        for x, name in ((created, "created"), (started, "started"), (finished, "finished"))
    )
    for stage, a, b in (("queue wait", c, s), ("processing", s, f)):
        if a and b:
            rows.append(
                {
                    "stage": stage,
                    "source": "vendor",
                    "start": a,
                    "end": b,
                    "seconds": _seconds(a, b),
                }
            )
    return rows


# -- clocks --------------------------------------------------------------------------------

#: a vendor clock off by more than this (beyond the estimate's uncertainty) gets a warning
SKEW_WARNING_SECONDS = 60.0
#: resolution of vendor stamps assumed by :func:`clock_offset` (the docs print milliseconds)
STAMP_RESOLUTION = 0.001


def event_bounds(
    polls: Sequence[tuple[Any, Any, Sequence[Any]]], *, created_after: Any = None
) -> list[dict[str, str]]:
    """For each vendor event, the two instants of *our* clock it lies between.

    An event first listed in the answer to a poll we received at ``r_k`` happened before
    ``r_k``; it was not in the previous answer, whose request we sent at ``s_{k-1}``, so it
    happened after ``s_{k-1}`` (after ``created_after``, the instant we sent the job-creating
    request, for events of the first answer).

    Parameters
    ----------
    polls : sequence of (sent, received, events)
        Each status request: when we sent it, when its answer arrived, the events it listed
        (objects with ``name``/``timestamp`` or ``(name, timestamp)`` pairs).
    created_after : timestamp, optional
        When we sent the request that created the job.

    Returns
    -------
    list of dict
        ``event, timestamp`` (the vendor's), ``after, before`` (ours), as ISO text; ``after``
        is None when nothing bounds it from below.

    Examples
    --------
    >>> b = event_bounds([("2024-01-01T00:00:01Z", "2024-01-01T00:00:02Z",
    ...                    [("Start", "2024-01-01T00:00:01.5Z")])],
    ...                  created_after="2024-01-01T00:00:00Z")
    >>> b[0]["after"], b[0]["before"]
    ('2024-01-01T00:00:00+00:00', '2024-01-01T00:00:02+00:00')
    """
    out: dict[tuple[str, str], dict[str, str]] = {}
    after = None if created_after is None else parse_time(created_after).isoformat()
    for sent, received, events in polls:
        for e in _read_events(events):
            key = (e.name, e.at.isoformat())
            if key not in out:
                out[key] = {
                    "event": e.name,
                    "timestamp": e.at.isoformat(),
                    "after": after,
                    "before": parse_time(received).isoformat(),
                }
        after = parse_time(sent).isoformat()
    return list(out.values())


@dataclass(frozen=True)
class ClockOffset:
    """How far a vendor's clock is ahead of ours: ``vendor = ours + offset``.

    ``low``/``high`` bound the offset when the bounds agree (``consistent``); otherwise the
    estimate is the median of the events' interval midpoints and ``uncertainty`` the spread.
    """

    offset: float
    uncertainty: float
    low: float
    high: float
    events: int
    consistent: bool

    @property
    def warning(self) -> str | None:
        """A sentence when the clock is off by more than :data:`SKEW_WARNING_SECONDS`."""
        if abs(self.offset) - self.uncertainty <= SKEW_WARNING_SECONDS:
            return None
        side = "ahead of" if self.offset > 0 else "behind"
        return (
            f"the vendor's clock is {abs(self.offset):.3g} s (± {self.uncertainty:.2g} s) {side} "
            "ours: its stamps are corrected by that much where they meet our own"
        )


def clock_offset(
    bounds: Iterable[Mapping[str, Any]], *, resolution: float = STAMP_RESOLUTION
) -> ClockOffset | None:
    """Estimate a vendor's clock offset from :func:`event_bounds` rows (None without any).

    Each row says ``after <= true time <= before`` on our clock, so the offset
    ``vendor stamp - true time`` lies in ``[stamp - before, stamp + resolution - after]``
    (a stamp truncated to ``resolution`` seconds may read up to that much early); the estimate
    is the middle of the intersection of those intervals, ± half its width. It assumes the
    vendor stamps an event no earlier than it becomes visible to a poll; a vendor that does
    not, or a clock that drifts during the batch, gives intervals that do not intersect, and
    the estimate is flagged not ``consistent``.

    Examples
    --------
    >>> rows = [{"timestamp": "2024-01-01T00:05:01Z", "after": "2024-01-01T00:00:00Z",
    ...          "before": "2024-01-01T00:00:02Z"}]
    >>> c = clock_offset(rows, resolution=0)
    >>> c.offset, c.uncertainty, c.warning is not None
    (300.0, 1.0, True)
    """
    lows, highs, mids = [], [], []
    for b in bounds:
        if not b.get("before"):
            continue
        ts = parse_time(b["timestamp"], event=b.get("event"))
        lo = (ts - parse_time(b["before"])).total_seconds()
        after = parse_time(b["after"]) if b.get("after") else None
        hi = (ts - after).total_seconds() + resolution if after else math.inf
        lows.append(lo)
        highs.append(hi)
        if math.isfinite(hi):
            mids.append((lo + hi) / 2)
    if not lows:
        return None
    low, high = max(lows), min(highs)
    if low <= high and math.isfinite(high):
        return ClockOffset(
            round((low + high) / 2, 6), round((high - low) / 2, 6), low, high, len(lows), True
        )
    if low <= high:  # bounded from one side only: the offset is at least `low`
        return ClockOffset(round(low, 6), math.inf, low, high, len(lows), True)
    mid = statistics.median(mids) if mids else low
    spread = max(abs(m - mid) for m in mids) if mids else abs(low - high)
    return ClockOffset(
        round(mid, 6), round(max(spread, (low - high) / 2), 6), low, high, len(lows), False
    )


# -- the timeline ---------------------------------------------------------------------------


def timeline(
    events: Iterable[Any] = (),
    observations: Iterable[Any] = (),
    *,
    provider: str = "",
    track: str = "",
    job_id: str = "",
    vendor_rows: Iterable[dict[str, Any]] | None = None,
    clock_offset_s: float = 0.0,
    in_flight: bool = False,
) -> pd.DataFrame:
    """One job's timeline: vendor stages plus the client's observed steps and end to end.

    ``observations`` are dicts (``step``, ``start``, ``end``) or objects with those attributes.
    ``vendor_rows`` replace the event pairing for vendors that report stamps (rows of
    ``stage``, ``start``, ``end`` and optionally their own ``job_id``, ``attempt``, ...).

    A vendor stage that started and never ended, with no later vendor event, ends at our
    observation that the job was done (the end of the ``wait`` step, moved onto the vendor's
    clock by ``clock_offset_s``), or now when ``in_flight``; it is flagged ``open_end``.

    Examples
    --------
    >>> df = timeline([("Processing", "2020-07-21T14:51:15.846Z"),
    ...                ("Finalising", "2020-07-21T14:52:06.007Z")], provider="sourceress")
    >>> df.loc[0, "stage"], float(df.loc[0, "seconds"])
    ('processing', 50.161)
    """
    client = []
    for o in observations:
        get = o.get if isinstance(o, dict) else lambda k, o=o: getattr(o, k)
        client.append(_row(get("step"), "client", get("start"), get("end")))
    shift = timedelta(seconds=clock_offset_s)
    if in_flight:
        until, until_is = datetime.now(UTC) + shift, "now"
    else:
        waits = [r["end"] for r in client if r["stage"] == "wait"]
        until, until_is = (max(waits) + shift if waits else None), "completion"
    if vendor_rows is None:
        rows = [
            {**r, "job_id": None}
            for r in stages_from_events(events, until=until, until_is=until_is)
        ]
    else:
        rows = [
            {
                **_row(r["stage"], "vendor", r["start"], r["end"], r.get("job_id")),
                **{k: r[k] for k in ("attempt", "failed", "open_end", "ended_by") if k in r},
            }
            for r in vendor_rows
        ]
    if client:
        start = min(r["start"] for r in client)
        end = max(r["end"] for r in client)
        client.append(_row("end to end", "client", start, end))
    df = pd.DataFrame(rows + client, columns=[*COLUMNS[3:], "job_id"])
    df["job_id"] = df["job_id"].where(df["job_id"].notna(), job_id)
    vendor = df["source"] == "vendor"
    df["attempt"] = df["attempt"].where(~vendor | df["attempt"].notna(), 1).astype("Int64")
    df["failed"] = df["failed"].where(df["failed"].notna(), False).astype(bool)
    df["open_end"] = df["open_end"].where(df["open_end"].notna(), False).astype(bool)
    df["ended_by"] = df["ended_by"].where(df["ended_by"].notna() | ~vendor, "event")
    df.insert(0, "track", track)
    df.insert(0, "provider", provider)
    return df[COLUMNS]


def _row(stage: str, source: str, start: Any, end: Any, job_id: str | None = None) -> dict:
    start, end = parse_time(start, event=stage), parse_time(end, event=stage)
    return {
        "stage": stage,
        "source": source,
        "start": start,
        "end": end,
        "seconds": _seconds(start, end),
        "attempt": None,
        "failed": None,
        "open_end": None,
        "ended_by": None,
        "job_id": job_id,
    }


def record_clock_offset(record: Mapping[str, Any]) -> ClockOffset | None:
    """The clock offset one ``record.json`` supports (its ``clock_bounds``; None in records
    written before they were recorded)."""
    return clock_offset(record.get("clock_bounds") or [])


def timeline_from_record(record: dict[str, Any], *, in_flight: bool = False) -> pd.DataFrame:
    """The timeline of one ``record.json`` written by the separate step.

    Records written before attempts and clock bounds were recorded load the same way (their
    vendor clock is taken to be ours).
    """
    offset = record_clock_offset(record)
    return timeline(
        record.get("events", []),
        record.get("observations", []),
        provider=record.get("provider", ""),
        track=record.get("track", ""),
        job_id=record.get("job_id", ""),
        vendor_rows=record.get("vendor_stages"),
        clock_offset_s=offset.offset
        if offset and offset.consistent and math.isfinite(offset.uncertainty)
        else 0.0,
        in_flight=in_flight,
    )


def on_our_clock(tl: pd.DataFrame, offsets: Mapping[str, float]) -> pd.DataFrame:
    """``tl`` with every vendor row moved onto our clock (``start``/``end`` minus the
    provider's offset from ``offsets``), so vendor stages and our steps share one axis.

    Examples
    --------
    >>> tl = timeline([("Processing", "2024-01-01T00:05:00Z"),
    ...                ("Finalising", "2024-01-01T00:05:30Z")], provider="s")
    >>> on_our_clock(tl, {"s": 300.0}).loc[0, "start"].isoformat()
    '2024-01-01T00:00:00+00:00'
    """
    out = tl.copy()
    for provider, offset in offsets.items():
        rows = (out["provider"] == provider) & (out["source"] == "vendor")
        if rows.any() and offset:
            shift = pd.Timedelta(seconds=offset)
            for col in ("start", "end"):
                out.loc[rows, col] = [parse_time(v) - shift for v in out.loc[rows, col]]
    return out


# -- summary --------------------------------------------------------------------------------

SUMMARY_COLUMNS = [
    "provider",
    "track",
    "queue wait",
    "processing",
    "end to end",
    "audio_seconds",
    "rtf",
    "retries",
    "open_end",
    "note",
]


def flags(col: pd.Series) -> pd.Series:
    """A boolean column as any table gives it back (True/False, "True"/"False", empty: False).

    Examples
    --------
    >>> flags(pd.Series([True, "False", "true", None, pd.NA])).tolist()
    [True, False, True, False, False]
    """
    return col.map(
        lambda v: v.strip().lower() == "true" if isinstance(v, str) else bool(pd.notna(v) and v)
    ).astype(bool)


def delivering(tl: pd.DataFrame) -> pd.DataFrame:
    """Every client row, and each job's vendor stages as last run: the row of the latest
    attempt that ran the stage (a retried processing counts once, its delivering run;
    formatting that was not redone stays)."""
    if "attempt" not in tl or tl["attempt"].isna().all():
        return tl
    vendor = tl["source"] == "vendor"
    att = pd.to_numeric(tl["attempt"], errors="coerce").fillna(1)
    keys = [tl["provider"], tl["track"], tl["job_id"].fillna(""), tl["stage"]]
    last = att.where(vendor).groupby(keys).transform("max")
    return tl[~vendor | (att == last)]


def summarize(tl: pd.DataFrame, audio_seconds: dict[str, float] | None = None) -> pd.DataFrame:
    """Per provider and track: queue wait, processing, end to end (s), real-time factor,
    vendor retries.

    Stage seconds are those of each stage's last run (a retried processing: the attempt that
    delivered); ``retries`` counts the attempts before the last, over the track's jobs;
    ``end to end`` includes them all. A provider may
    run several jobs for one track (AudioShake: one per stem); a stage then spans from its
    first start to its last end, which is what the user waits for. Real-time factor =
    processing seconds / audio seconds (lower is faster); ``audio_seconds`` maps track →
    duration. When processing had no end event, ``open_end`` is true and ``note`` says what
    ended it, so the RTF is read with that in mind.

    Examples
    --------
    >>> tl = timeline([("Processing", "2020-07-21T14:51:15.846Z"),
    ...                ("Finalising", "2020-07-21T14:52:06.007Z")], provider="s", track="t")
    >>> float(summarize(tl, {"t": 100.0})["rtf"].iloc[0])
    0.50161
    """
    if tl.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    tl = tl.copy()
    for col, default in (
        ("attempt", pd.NA),
        ("failed", False),
        ("open_end", False),
        ("ended_by", pd.NA),
    ):
        if col not in tl:
            tl[col] = default
    tl["job_id"] = tl["job_id"].fillna("")
    use = delivering(tl)
    span = (
        use.groupby(["provider", "track", "stage"])
        .agg(start=("start", "min"), end=("end", "max"))
        .reset_index()
    )
    span["seconds"] = [
        _seconds(parse_time(s), parse_time(e))
        for s, e in zip(span["start"], span["end"], strict=True)
    ]
    wide = span.pivot_table(
        index=["provider", "track"], columns="stage", values="seconds"
    ).reset_index()
    wide.columns.name = None
    for col in ("queue wait", "processing", "end to end"):
        if col not in wide:
            wide[col] = float("nan")
    wide["audio_seconds"] = wide["track"].map(audio_seconds or {}).astype(float)
    wide["rtf"] = wide["processing"] / wide["audio_seconds"]
    vendor = tl[tl["source"] == "vendor"]
    attempts = (
        pd.to_numeric(vendor["attempt"], errors="coerce")
        .fillna(1)
        .groupby([vendor["provider"], vendor["track"], vendor["job_id"]])
        .max()
        .sub(1)
        .groupby(level=[0, 1])
        .sum()
    )
    key = list(zip(wide["provider"], wide["track"], strict=True))
    wide["retries"] = [int(attempts.get(k, 0)) for k in key]
    proc = use[(use["stage"] == "processing") & flags(use["open_end"])]
    notes = {
        (p, t): "processing had no end event; ended at "
        + " / ".join(sorted(set(g["ended_by"].dropna().astype(str))))
        for (p, t), g in proc.groupby(["provider", "track"])
    }
    wide["open_end"] = [k in notes for k in key]
    wide["note"] = [notes.get(k, "") for k in key]
    return wide
