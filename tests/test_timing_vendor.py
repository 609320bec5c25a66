"""Timing the vendors tell the truth about, over HTTP against the sandbox: vendor retries become
attempts, a missing "Finalising" keeps its stage, a skewed vendor clock is estimated and
corrected, and every timestamp form is read by one documented rule or refused by name."""

from __future__ import annotations

import json
import time
import warnings
from datetime import UTC, datetime
from types import SimpleNamespace

import pandas as pd
import pytest

from stemkit.compare.timing_stats import (
    in_flight,
    incidents,
    stage_percentiles,
    throughput,
    timing_details,
)
from stemkit.errors import TimestampError
from stemkit.providers import connect
from stemkit.providers.sourceress import Progress
from stemkit.timing import (
    clock_offset,
    on_our_clock,
    parse_time,
    record_clock_offset,
    stages_from_events,
    summarize,
    timeline,
    timeline_from_record,
)

from .conftest import vendor_fixture

DOC_STAGES = {
    "formatting": 8.062,
    "metadata": 0.006,
    "trial chunking": 6.409,
    "queue wait": 3.226,
    "processing": 50.161,
}


@pytest.fixture()
def vendor(sandbox, fast_profile):
    """The session sandbox's faults, reset to none after the test."""
    faults = sandbox.config.faults
    yield faults
    faults.vendor_retry = faults.drop_finalising = faults.clock_skew_s = 0.0
    faults.timestamp_form = "iso"


def separate(provider: str, track_dir, tmp_path, **kw):
    client = connect(provider, **kw)
    result = client.separate(
        track_dir / "alpha" / "mixture.wav", tmp_path / provider, track="alpha"
    )
    return result.to_dict()


# -- 3. timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2020-07-21T14:51:15.846Z",
        "2020-07-21T14:51:15.846+00:00",
        "2020-07-21T16:51:15.846+02:00",
        "2020-07-21T09:21:15.846-05:30",
        "2020-07-21T16:51:15.846+0200",
        "2020-07-21T14:51:15.846",  # no offset: documented as UTC
        "2020-07-21 14:51:15.846",
        "2020-07-21T14:51:15.846000000Z",  # nanoseconds
        "2020-07-21T14:51:15.8460004Z",
        1595343075846,  # epoch milliseconds
        1595343075.846,  # epoch seconds
        "1595343075846",
        "1595343075.846",
        datetime(2020, 7, 21, 14, 51, 15, 846000, tzinfo=UTC),
        datetime(2020, 7, 21, 14, 51, 15, 846000),  # naive: UTC
    ],
)
def test_every_timestamp_form_is_read_to_the_same_instant(value):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ts = parse_time(value, event="Processing")
    assert ts == datetime(2020, 7, 21, 14, 51, 15, 846000, tzinfo=UTC)
    assert ts.utcoffset().total_seconds() == 0


def test_sub_microsecond_digits_are_kept_to_the_microsecond():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_time("2020-07-21T14:51:15.123456789Z").microsecond == 123456
        assert parse_time("2020-07-21T14:51:15,1234567+01:00").microsecond == 123456


def test_epoch_magnitude_rule_at_its_edges():
    assert parse_time(99_999_999_999).year == 5138  # below 1e11: seconds
    assert parse_time(100_000_000_000).isoformat() == "1973-03-03T09:46:40+00:00"  # ms
    assert parse_time(0) == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["yesterday", "", "2020-07-21", "14:51:15", "2020-13-40T99:00:00Z", -5, 1e15, None, True,
     float("nan"), [1, 2], {"ts": 1}],
)  # fmt: skip
def test_other_forms_are_a_clear_error_naming_the_event(value):
    with pytest.raises(TimestampError) as err:
        parse_time(value, event="Queue message received")
    assert "Queue message received" in str(err.value)
    assert "ISO-8601" in str(err.value)


def test_progress_with_epoch_and_odd_stamps_parses_to_the_doc_durations():
    """The doc's finished body with every stamp rewritten in another form."""
    body = json.loads(json.dumps(vendor_fixture("sourceress_progress")["bodies"][1]))
    forms = [
        lambda t: int(t.timestamp() * 1000),
        lambda t: t.timestamp(),
        lambda t: t.isoformat(),
        lambda t: t.astimezone().isoformat(),
        lambda t: t.replace(tzinfo=None).isoformat() + "000",
    ]
    for i, e in enumerate(body["events"]):
        e["timestamp"] = forms[i % len(forms)](parse_time(e["timestamp"]))
    progress = Progress.model_validate(body)
    rows = stages_from_events([(e.event, e.timestamp) for e in progress.events])
    assert {r["stage"]: round(r["seconds"], 3) for r in rows} == DOC_STAGES


def test_unreadable_progress_stamp_names_the_event():
    body = {"events": [{"event": "Processing", "timestamp": "soon"}], "outputFiles": None}
    with pytest.raises(TimestampError, match="'Processing'"):
        Progress.model_validate(body)


@pytest.mark.parametrize("form", ["epoch_ms", "epoch_s", "offset", "naive", "nanos"])
def test_every_stamp_form_over_http_gives_the_same_timeline(vendor, form, track_dir, tmp_path):
    vendor.timestamp_form = form
    record = separate("sourceress", track_dir, tmp_path)
    stamps = [e["timestamp"] for e in record["events"]]
    assert all(parse_time(s).tzinfo is not None for s in stamps)
    tl = timeline_from_record(record)
    assert set(tl["stage"]) >= {"formatting", "queue wait", "processing", "end to end"}
    assert (tl["seconds"] >= 0).all() and (tl["seconds"] < 60).all()
    est = record_clock_offset(record)  # the stamps are read on the right clock, not hours off
    assert est.low <= 0.0 <= est.high


def test_unreadable_stamp_over_http_is_a_clear_error_naming_the_event(
    vendor, sandbox, track_dir, tmp_path
):
    vendor.timestamp_form = "text"  # "21/07/2020 14:51:15": day or month first? not guessed
    with pytest.raises(TimestampError) as err:
        connect("sourceress").separate(track_dir / "alpha" / "mixture.wav", tmp_path)
    assert "'Formatting Request File'" in str(err.value) and "sourceress" in str(err.value)
    assert "poll" in str(err.value)
    # let the sandbox finish the job the client gave up on (no worker left at exit)
    api = sandbox.app.state.sourceress
    deadline = time.monotonic() + 60
    while any(not s.output_files for s in api.separations.values()):
        assert time.monotonic() < deadline
        time.sleep(0.1)


# -- 1. attempts -------------------------------------------------------------------------------


def test_doc_example_is_one_attempt_with_the_documented_durations():
    finished = vendor_fixture("sourceress_progress")["bodies"][1]
    rows = stages_from_events(finished["events"])
    assert {r["stage"]: r["seconds"] for r in rows} == DOC_STAGES
    assert {r["attempt"] for r in rows} == {1}
    assert not any(r["failed"] or r["open_end"] for r in rows)


def test_repeated_stage_starts_without_numbers_are_attempts():
    events = [
        ("Starting Separation", "2024-01-01T00:00:00Z"),
        ("Queue message received", "2024-01-01T00:00:02Z"),
        ("Processing", "2024-01-01T00:00:03Z"),
        ("Queue message received", "2024-01-01T00:00:30Z"),
        ("Processing", "2024-01-01T00:00:31Z"),
        ("Finalising", "2024-01-01T00:01:01Z"),
    ]
    rows = [
        (r["stage"], r["attempt"], r["seconds"], r["failed"]) for r in stages_from_events(events)
    ]
    assert rows == [
        ("queue wait", 1, 2.0, False),  # not run again: the job's, not failed
        ("processing", 1, 27.0, True),
        ("processing", 2, 30.0, False),
    ]


def test_vendor_retry_over_http_gives_one_row_per_attempt(vendor, track_dir, tmp_path):
    vendor.vendor_retry = 1.0
    record = separate("sourceress", track_dir, tmp_path)
    attempts = [e["message"] for e in record["events"] if e["event"] == "Queue message received"]
    assert attempts == ["Attempt number 1", "Attempt number 2"]
    tl = timeline_from_record(record)
    proc = tl[tl["stage"] == "processing"].sort_values("attempt")
    assert proc["attempt"].tolist() == [1, 2]
    assert proc["failed"].tolist() == [True, False]
    assert proc["ended_by"].tolist() == ["next event", "event"]
    before = tl[tl["stage"].isin(["formatting", "metadata", "queue wait"])]
    assert (before["source"] == "vendor").sum() == 3 and not before["failed"].any()
    summary = summarize(tl, {"alpha": record["audio_seconds"]})
    assert summary.loc[0, "retries"] == 1
    assert summary.loc[0, "queue wait"] >= 0  # from the attempt that ran it (not NaN)
    assert summary.loc[0, "processing"] == pytest.approx(proc["seconds"].iloc[1])
    assert (
        summary.loc[0, "processing"]
        < proc["end"].max().timestamp() - proc["start"].min().timestamp()
    )


def test_one_attempt_without_the_fault(vendor, track_dir, tmp_path):
    tl = timeline_from_record(separate("sourceress", track_dir, tmp_path))
    assert set(tl.loc[tl["source"] == "vendor", "attempt"]) == {1}
    assert summarize(tl).loc[0, "retries"] == 0


# -- 2. unfinished stages ----------------------------------------------------------------------


def test_unfinished_stage_in_flight_ends_now():
    during, _ = vendor_fixture("sourceress_progress")["bodies"]
    assert "processing" not in [r["stage"] for r in stages_from_events(during["events"])]
    now = datetime(2020, 7, 21, 14, 51, 45, 846000, tzinfo=UTC)
    rows = stages_from_events(during["events"], until=now, until_is="now")
    proc = next(r for r in rows if r["stage"] == "processing")
    assert (proc["seconds"], proc["open_end"], proc["ended_by"]) == (30.0, True, "now")
    live = timeline(during["events"], provider="s", in_flight=True)
    assert live.set_index("stage").loc["processing", "ended_by"] == "now"


def test_missing_finalising_over_http_keeps_processing_and_rtf(vendor, track_dir, tmp_path):
    vendor.drop_finalising = 1.0
    record = separate("sourceress", track_dir, tmp_path)
    assert "Finalising" not in [e["event"] for e in record["events"]]
    tl = timeline_from_record(record)
    proc = tl[tl["stage"] == "processing"].iloc[0]
    assert proc["open_end"] and proc["ended_by"] == "completion"
    wait = tl[tl["stage"] == "wait"].iloc[0]
    assert 0 <= proc["seconds"] <= wait["seconds"] + 1
    summary = summarize(tl, {"alpha": record["audio_seconds"]})
    assert summary.loc[0, "rtf"] > 0 and summary.loc[0, "open_end"]
    assert "no end event" in summary.loc[0, "note"] and "completion" in summary.loc[0, "note"]


# -- 4. clock skew -----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["sourceress", "audioshake"])
def test_skewed_vendor_clock_is_estimated_with_its_uncertainty(
    vendor, provider, track_dir, tmp_path
):
    vendor.clock_skew_s = 300.0
    record = separate(provider, track_dir, tmp_path)
    assert record["clock_bounds"], "the life cycle records our instants around vendor events"
    est = record_clock_offset(record)
    assert est.consistent and est.events >= 2
    assert est.low <= 300.0 <= est.high
    assert est.uncertainty < 10 and abs(est.offset - 300.0) < 10
    assert "ahead of ours" in est.warning
    tl = on_our_clock(timeline_from_record(record), {provider: est.offset})
    vendor_rows, ours = tl[tl["source"] == "vendor"], tl[tl["source"] == "client"]
    assert vendor_rows["start"].min() >= ours["start"].min()  # after we sent the upload
    assert vendor_rows["end"].max() <= ours["end"].max()


def test_skewed_loom_clock_is_estimated(vendor, track_dir, tmp_path):
    vendor.clock_skew_s = -200.0
    result = connect("loom", poll_interval=0.1).transcribe(
        track_dir / "alpha" / "mixture.wav", tmp_path
    )
    est = clock_offset(result.clock_bounds)
    assert est.low <= -200.0 <= est.high and "behind ours" in est.warning


def test_unskewed_clock_gives_no_warning(vendor, track_dir, tmp_path):
    est = record_clock_offset(separate("sourceress", track_dir, tmp_path))
    assert est.low <= 0.0 <= est.high and est.warning is None


def test_cross_clock_open_end_is_corrected_by_the_offset(vendor, track_dir, tmp_path):
    """A vendor clock 300 s behind, no Finalising: processing ends at our completion moved onto
    the vendor's clock, not 300 s later."""
    vendor.clock_skew_s, vendor.drop_finalising = -300.0, 1.0
    record = separate("sourceress", track_dir, tmp_path)
    tl = timeline_from_record(record)
    proc = tl[tl["stage"] == "processing"].iloc[0]
    wait = tl[tl["stage"] == "wait"].iloc[0]
    assert proc["ended_by"] == "completion" and 0 <= proc["seconds"] <= wait["seconds"] + 1
    uncorrected = timeline(record["events"], record["observations"])
    assert uncorrected.set_index("stage").loc["processing", "seconds"] > 250


def test_old_records_without_bounds_still_load(vendor, track_dir, tmp_path):
    record = separate("sourceress", track_dir, tmp_path)
    record.pop("clock_bounds")
    assert record_clock_offset(record) is None
    tl = timeline_from_record(record)
    assert set(tl["stage"]) >= {"processing", "end to end"}


def test_clock_offset_from_disagreeing_bounds_is_flagged():
    rows = [
        {"timestamp": "2024-01-01T00:00:10Z", "after": "2024-01-01T00:00:00Z",
         "before": "2024-01-01T00:00:01Z"},
        {"timestamp": "2024-01-01T00:00:10Z", "after": "2024-01-01T00:00:20Z",
         "before": "2024-01-01T00:00:21Z"},
    ]  # fmt: skip
    est = clock_offset(rows)
    assert not est.consistent and est.uncertainty >= 5


# -- 5. latency as a distribution --------------------------------------------------------------


@pytest.fixture()
def small_batch(vendor, track_dir, tmp_path):
    """Records of four jobs over HTTP: three Sourceress (the first retried by the vendor), one
    AudioShake, both vendors' clocks 120 s ahead."""
    vendor.clock_skew_s = 120.0
    records = []
    for i, track in enumerate(("alpha", "beta", "alpha")):
        vendor.vendor_retry = 1.0 if i == 0 else 0.0
        client = connect("sourceress")
        result = client.separate(
            track_dir / track / "mixture.wav", tmp_path / f"s{i}", track=f"{track}{i}"
        )
        records.append({**result.to_dict(), "state": "done"})
    vendor.vendor_retry = 0.0
    result = connect("audioshake").separate(
        track_dir / "beta" / "mixture.wav", tmp_path / "a", track="beta1"
    )
    records.append({**result.to_dict(), "state": "done"})
    return records


def test_latency_distribution_over_http(small_batch):
    tl = pd.concat([timeline_from_record(r) for r in small_batch], ignore_index=True)
    audio = {r["track"]: r["audio_seconds"] for r in small_batch}
    pct = stage_percentiles(tl).set_index(["provider", "stage"])
    proc = pct.loc[("sourceress", "processing")]
    assert proc["n"] == 3
    assert proc["p50"] <= proc["p90"] <= proc["p95"] <= proc["p99"] <= proc["max"]
    assert pct.loc[("audioshake", "processing"), "n"] == 2  # one job per stem
    assert pct.loc[("sourceress", "end to end"), "n"] == 3
    # the vendor's "metadata" stage and our "metadata" step stay apart
    assert sorted(pct.loc[("sourceress", "metadata"), "source"]) == ["client", "vendor"]
    # jobs ran one after another: never more than one in flight per provider
    flight = in_flight(tl)
    assert flight.groupby("provider")["jobs"].max().to_dict() == {"sourceress": 1, "audioshake": 1}
    assert flight.groupby("provider")["jobs"].last().eq(0).all()
    tp = throughput(tl, audio).set_index("provider")
    assert tp.loc["sourceress", "jobs"] == 3
    assert tp.loc["sourceress", "audio_minutes"] == pytest.approx(3 * 4.0 / 60, rel=1e-3)
    assert tp.loc["sourceress", "audio_min_per_wall_min"] > 0
    inc = incidents(tl)
    assert inc.groupby("provider")["retries"].sum().to_dict() == {"sourceress": 1}
    assert inc["failures"].sum() == 0
    tables = SimpleNamespace(
        timeline=tl,
        timing=summarize(tl, audio),
        jobs=pd.DataFrame([{"track": t, "audio_seconds": s} for t, s in audio.items()]),
        folder=None,
    )
    d = timing_details(tables, records=small_batch)
    clocks = d.clocks.set_index("provider")
    for provider in ("sourceress", "audioshake"):
        row = clocks.loc[provider]
        assert row["low_s"] <= 120.0 <= row["high_s"] and row["consistent"]
        assert "ahead of ours" in row["warning"]
    assert len(d.warnings) == 2
    assert d.retries.set_index("provider").loc["sourceress", "vendor retries"] == 1
    figs = d.figures()
    assert set(figs) == {"latency", "load", "gantt"}
    hatched = [p for p in figs["gantt"].axes[0].patches if p.get_hatch() == "///"]
    assert hatched, "the failed attempt is drawn hatched"
    on_ours = d.timeline_on_our_clock
    first_vendor = on_ours[on_ours["source"] == "vendor"]["start"].min()
    assert first_vendor >= on_ours[on_ours["source"] == "client"]["start"].min()


def test_timeline_tables_written_before_attempts_still_summarise(tmp_path):
    """A timeline.csv of the old layout (no attempt/failed/open_end/ended_by columns) is read
    with today's columns, summarised, drawn and given percentiles."""
    from stemkit.batchdir import read_table
    from stemkit.plots import timeline_chart
    from stemkit.timing import COLUMNS

    old = timeline(
        vendor_fixture("sourceress_progress")["bodies"][1]["events"],
        provider="sourceress",
        track="t",
        job_id="j",
    )[COLUMNS[:8]]
    old.to_csv(tmp_path / "timeline.csv", index=False)
    tl = read_table(tmp_path / "timeline.csv", COLUMNS)
    for col in ("start", "end"):
        tl[col] = pd.to_datetime(tl[col], utc=True, format="ISO8601")
    summary = summarize(tl, {"t": 33.827868})
    assert summary.loc[0, "processing"] == pytest.approx(50.161)
    assert summary.loc[0, "retries"] == 0 and not summary.loc[0, "open_end"]
    assert stage_percentiles(tl).set_index("stage").loc["processing", "p99"] == 50.161
    assert incidents(tl).empty
    timeline_chart(tl)


def test_failed_job_keeps_its_events_bounds_and_a_failed_attempt(vendor, track_dir, tmp_path):
    from stemkit.batchdir import BatchFolder
    from stemkit.separate.run import separate_batch

    vendor.job_failure = 1.0
    try:
        table = separate_batch(track_dir, ["sourceress"], tmp_path / "b", progress=False)
    finally:
        vendor.job_failure = 0.0
    assert set(table["state"]) == {"failed"}
    record = BatchFolder(tmp_path / "b").read_record("alpha", "sourceress")
    assert record["error_kind"] == "job_failed" and record["clock_bounds"]
    tl = timeline_from_record(record)
    proc = tl[tl["stage"] == "processing"].iloc[0]
    assert proc["failed"] and proc["ended_by"] == "next event"  # the "Separation Failed" event
    assert incidents(tl)["failures"].sum() == 1
