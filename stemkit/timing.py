"""Vendor events and the client's own observations → one timeline table.

Every provider reports time differently (Sourceress: a list of named events; AudioShake:
created/started/updated stamps; Loom: submitted/completed). :func:`timeline` turns them into rows
of one shape, so providers are compared on the same axes:

======== ==========================================================================
column   meaning
======== ==========================================================================
provider, track, job_id
stage    ``formatting``, ``metadata``, ``trial chunking``, ``queue wait``, ``processing``, ...
         or a client step: ``upload``, ``submit``, ``wait``, ``download``
source   ``vendor`` (the vendor's clock) or ``client`` (ours)
start    UTC timestamp
end      UTC timestamp
seconds  ``end - start``
======== ==========================================================================

Examples
--------
>>> from stemkit.timing import stages_from_events
>>> rows = stages_from_events([("Processing", "2020-07-21T14:51:15.846Z"),
...                            ("Finalising", "2020-07-21T14:52:06.007Z")])
>>> [(r["stage"], r["seconds"]) for r in rows]
[('processing', 50.161)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

#: (stage, event that starts it, event that ends it) for event-list vendors (Sourceress)
SOURCERESS_STAGES: tuple[tuple[str, str, str], ...] = (
    ("formatting", "Formatting Request File", "Request Formatting Done"),
    ("metadata", "Requesting Metadata", "Metadata Task Done"),
    ("trial chunking", "Trial Chunking Start", "Trial Chunking Done"),
    ("queue wait", "Starting Separation", "Queue message received"),
    ("processing", "Processing", "Finalising"),
)
COLUMNS = ["provider", "track", "job_id", "stage", "source", "start", "end", "seconds"]
#: stage order for charts: vendor stages first, then the client's steps
STAGE_ORDER = [s for s, _, _ in SOURCERESS_STAGES] + [
    "upload",
    "metadata wait",
    "submit",
    "wait",
    "download",
    "end to end",
]


def parse_time(value: Any) -> datetime:
    """A timezone-aware UTC datetime from ISO-8601 text (``Z`` or offset) or a datetime.

    Examples
    --------
    >>> parse_time("2020-07-21T14:51:15.846Z").isoformat()
    '2020-07-21T14:51:15.846000+00:00'
    """
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _seconds(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 6)


def stages_from_events(
    events: Iterable[Any], rules: Sequence[tuple[str, str, str]] = SOURCERESS_STAGES
) -> list[dict[str, Any]]:
    """Pair named events into stages. ``events`` are ``(name, timestamp)`` pairs, dicts with
    ``event``/``timestamp``, or objects with ``name``/``timestamp``.

    A stage appears only when both of its events did (first start, first end after it).
    """
    seen: list[tuple[str, datetime]] = []
    for e in events:
        if isinstance(e, dict):
            name, ts = e.get("event") or e.get("name"), e["timestamp"]
        elif isinstance(e, tuple | list):
            name, ts = e[0], e[1]
        else:
            name, ts = e.name, e.timestamp
        seen.append((name, parse_time(ts)))
    rows = []
    for stage, start_name, end_name in rules:
        start = next((t for n, t in seen if n == start_name), None)
        if start is None:
            continue
        end = next((t for n, t in seen if n == end_name and t >= start), None)
        if end is not None:
            rows.append(
                {
                    "stage": stage,
                    "source": "vendor",
                    "start": start,
                    "end": end,
                    "seconds": _seconds(start, end),
                }
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
    c, s, f = (parse_time(x) if x else None for x in (created, started, finished))
    if c and s:
        rows.append(
            {
                "stage": "queue wait",
                "source": "vendor",
                "start": c,
                "end": s,
                "seconds": _seconds(c, s),
            }
        )
    if s and f:
        rows.append(
            {
                "stage": "processing",
                "source": "vendor",
                "start": s,
                "end": f,
                "seconds": _seconds(s, f),
            }
        )
    return rows


def timeline(
    events: Iterable[Any] = (),
    observations: Iterable[Any] = (),
    *,
    provider: str = "",
    track: str = "",
    job_id: str = "",
    vendor_rows: Iterable[dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """One job's timeline: vendor stages plus the client's observed steps and end to end.

    ``observations`` are dicts (``step``, ``start``, ``end``) or objects with those attributes.
    ``vendor_rows`` replace the event pairing for vendors that report stamps (rows of
    ``stage``, ``start``, ``end`` and optionally their own ``job_id``).

    Examples
    --------
    >>> df = timeline([("Processing", "2020-07-21T14:51:15.846Z"),
    ...                ("Finalising", "2020-07-21T14:52:06.007Z")], provider="sourceress")
    >>> df.loc[0, "stage"], float(df.loc[0, "seconds"])
    ('processing', 50.161)
    """
    if vendor_rows is None:
        rows = stages_from_events(events)
    else:
        rows = [
            _row(r["stage"], "vendor", r["start"], r["end"], r.get("job_id")) for r in vendor_rows
        ]
    client = []
    for o in observations:
        get = o.get if isinstance(o, dict) else lambda k, o=o: getattr(o, k)
        client.append(_row(get("step"), "client", get("start"), get("end")))
    if client:
        start = min(r["start"] for r in client)
        end = max(r["end"] for r in client)
        client.append(_row("end to end", "client", start, end))
    df = pd.DataFrame(rows + client, columns=[*COLUMNS[3:], "job_id"])
    df["job_id"] = df["job_id"].where(df["job_id"].notna(), job_id)
    df.insert(0, "track", track)
    df.insert(0, "provider", provider)
    return df[COLUMNS]


def _row(stage: str, source: str, start: Any, end: Any, job_id: str | None = None) -> dict:
    start, end = parse_time(start), parse_time(end)
    return {
        "stage": stage,
        "source": source,
        "start": start,
        "end": end,
        "seconds": _seconds(start, end),
        "job_id": job_id,
    }


def timeline_from_record(record: dict[str, Any]) -> pd.DataFrame:
    """The timeline of one ``record.json`` written by the separate step."""
    return timeline(
        record.get("events", []),
        record.get("observations", []),
        provider=record.get("provider", ""),
        track=record.get("track", ""),
        job_id=record.get("job_id", ""),
        vendor_rows=record.get("vendor_stages"),
    )


SUMMARY_COLUMNS = [
    "provider",
    "track",
    "queue wait",
    "processing",
    "end to end",
    "audio_seconds",
    "rtf",
]


def summarize(tl: pd.DataFrame, audio_seconds: dict[str, float] | None = None) -> pd.DataFrame:
    """Per provider and track: queue wait, processing, end to end (s), real-time factor.

    A provider may run several jobs for one track (AudioShake: one per stem); a stage then
    spans from its first start to its last end, which is what the user waits for.
    Real-time factor = processing seconds / audio seconds (lower is faster);
    ``audio_seconds`` maps track → duration.

    Examples
    --------
    >>> tl = timeline([("Processing", "2020-07-21T14:51:15.846Z"),
    ...                ("Finalising", "2020-07-21T14:52:06.007Z")], provider="s", track="t")
    >>> float(summarize(tl, {"t": 100.0})["rtf"].iloc[0])
    0.50161
    """
    if tl.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    span = (
        tl.groupby(["provider", "track", "stage"])
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
    return wide
