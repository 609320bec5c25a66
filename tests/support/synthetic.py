"""A synthetic batch folder of any size, in seconds: what the separate and analyze phases
leave behind, without separating or analysing any audio.

:func:`make_batch` writes, through :class:`stemkit.batchdir.BatchFolder`, ``batch.json``,
every job's ``record.json`` (with clock bounds), and every track's analysis: ``metrics``
(the providers and the SiSEC bracket, every metric and variant the analysis writes),
``verdicts`` (the QA checks, judged by the default profile), ``timeline`` (vendor stages and
our own steps of jobs run at a set concurrency), ``intelligibility`` on every
``speech_every``-th track, ``status.json``, and two small figures on the first few tracks.
Values are random but realistic (SDR around 5-8 dB, a provider with a band-limit defect
failing ``cutoff_hz``), and seeded: one call gives the same folder every time. A few jobs
fail (``fail_every``).

It is for the report at scale (``tests/test_report_scale.py``): the compare notebook on a
thousand tracks, its size, and Chromium on it.

Examples
--------
>>> import tempfile
>>> from tests.support.synthetic import make_batch
>>> b = make_batch(tempfile.mkdtemp(), tracks=3)
>>> b.tracks
['track-0000', 'track-0001', 'track-0002']
>>> sorted(b.read_analysis("track-0000", "metrics")["provider"].unique())
['audioshake', 'baseline', 'mixture', 'oracle', 'sourceress']
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pandas as pd

from stemkit.analyze.qa import load_profile, verdicts
from stemkit.batchdir import BatchFolder

T0 = pd.Timestamp("2026-11-30T09:00:00Z")
#: per provider: mean SDR offset (dB) and whether its stems are band-limited (fails cutoff_hz)
PERSONAS = {"sourceress": (1.0, False), "audioshake": (-0.5, True)}
BRACKET = {"oracle": 6.0, "baseline": -1.5, "mixture": -6.0}
#: (check, unit, stem kind, typical value, spread): kind "stem", "all" or "job"
CHECKS = [
    ("recon_db", "dB", "all", -90.0, 20.0),
    ("bandwidth_hz", "Hz", "all", 20000.0, 300.0),
    ("duration_diff_s", "s", "stem", 0.0, 0.004),
    ("sample_rate_match", "", "stem", 1.0, 0.0),
    ("channels_match", "", "stem", 1.0, 0.0),
    ("clip_pct", "%", "stem", 0.0, 0.004),
    ("sample_peak_dbfs", "dBFS", "stem", -5.0, 2.0),
    ("true_peak_dbtp", "dBTP", "stem", -4.8, 2.0),
    ("silent", "dBFS", "stem", -18.0, 3.0),
    ("lufs", "LUFS", "stem", -19.0, 2.5),
    ("dc_offset", "FS", "stem", 0.0, 0.0003),
    ("offset_ms", "ms", "stem", 0.0, 3.0),
    ("polarity", "corr", "stem", 0.75, 0.08),
    ("channel_swap", "corr", "stem", 0.8, 0.1),
    ("gain_db", "dB", "stem", 0.0, 0.2),
    ("dropout_s", "s", "stem", 0.0, 0.0),
    ("cutoff_hz", "Hz", "stem", 19000.0, 500.0),
    ("processing_s", "s", "job", 6.0, 2.0),
    ("rtf", "x", "job", 0.4, 0.12),
    ("end_to_end_s", "s", "job", 25.0, 6.0),
]
_PNG: bytes | None = None


def _png() -> bytes:
    """A small real PNG (a 300 x 120 px figure), drawn once."""
    global _PNG
    if _PNG is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3, 1.2), dpi=100)
        fig.subplots().plot([0, 1, 0.3, 0.8])
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        _PNG = buf.getvalue()
    return _PNG


@contextmanager
def _no_fsync() -> Iterator[None]:
    """Skip ``os.fsync`` while writing (durability is not what the folder is for): a
    thousand-track folder is ~10 000 atomic writes."""
    with mock.patch.object(os, "fsync", lambda fd: None):
        yield


def _grid(**cols: Sequence) -> pd.DataFrame:
    """Every combination of the columns' values, the first column varying slowest."""
    index = pd.MultiIndex.from_product(list(cols.values()), names=list(cols))
    return index.to_frame(index=False)


def _metrics(rng, names, providers, stems, failed) -> pd.DataFrame:
    """Every track's metrics rows, as the analysis writes them (one table, all tracks)."""
    kinds = [("sdr", "bsseval_v4"), ("sir", "bsseval_v4"), ("sar", "bsseval_v4"),
             ("isr", "bsseval_v4"), ("nsdr", "global"), ("si_sdr", "scale-invariant"),
             ("pes", "silence")] + [("leakage", f"from_{s}") for s in stems]  # fmt: skip
    g = _grid(track=names, provider=[*providers, *BRACKET], stem=stems, kind=range(len(kinds)))
    n_tracks = len(names)
    hard = rng.normal(0, 1.5, n_tracks)  # some tracks are harder for everyone
    base = (
        g["provider"]
        .map({**{p: 5.5 + PERSONAS.get(p, (0.0, False))[0] for p in providers}, **BRACKET})
        .to_numpy(float)
    )
    t = g["track"].map({n: i for i, n in enumerate(names)}).to_numpy()
    # one SDR per track, provider and stem (the other metrics are drawn around it)
    per = len(kinds)
    sdr_stem = base[::per] + hard[t[::per]] + rng.normal(0, 1.8, len(base) // per)
    sdr_stem -= 0.8 * g["stem"].map({s: k for k, s in enumerate(stems)}).to_numpy()[::per]
    sdr = np.repeat(sdr_stem, per)
    kind = g["kind"].to_numpy()
    stem = g["stem"].to_numpy()
    noise = rng.normal(size=len(g))
    value = sdr.copy()
    offsets = {1: (6, 2), 2: (1.5, 0.8), 3: (4, 1.5)}
    for k, (mu, sd) in offsets.items():
        value[kind == k] += np.abs(mu + sd * noise[kind == k])
    value[kind == 4] += 0.4 + 0.5 * noise[kind == 4]
    value[kind == 5] -= np.abs(0.3 + 0.2 * noise[kind == 5])
    value[kind == 6] = -40 + 8 * noise[kind == 6]
    for k, src in enumerate(stems, start=7):
        own = (kind == k) & (stem == src)
        other = (kind == k) & (stem != src)
        value[own] = -0.3 + 0.2 * noise[own]
        value[other] = -1.5 * sdr[other] + 3 * noise[other]
    out = pd.DataFrame(
        {
            "track": g["track"],
            "provider": g["provider"],
            "stem": g["stem"],
            "metric": [kinds[k][0] for k in kind],
            "variant": [kinds[k][1] for k in kind],
            "value": value,
        }
    )
    recon = _grid(track=names, provider=list(providers))
    recon = recon.assign(stem="(all)", metric="recon_db", variant="mixture",
                         value=rng.normal(-90, 20, len(recon)))  # fmt: skip
    out = pd.concat([out, recon], ignore_index=True)
    return _drop_failed(out, failed).sort_values("track", kind="stable")


def _drop_failed(df: pd.DataFrame, failed: set) -> pd.DataFrame:
    gone = [(t, p) in failed for t, p in zip(df["track"], df["provider"], strict=True)]
    return df[~np.asarray(gone, bool)]


def _verdicts(rng, names, providers, stems, failed, profile) -> pd.DataFrame:
    """Every track's QA rows, judged by ``profile`` (one table, all tracks)."""
    parts = []
    for check, unit, kind, mean, spread in CHECKS:
        targets = {"all": ["(all)"], "job": ["(job)"], "stem": list(stems)}[kind]
        g = _grid(track=names, provider=list(providers), stem=targets)
        value = mean + rng.normal(0, spread, len(g)) if spread else np.full(len(g), mean)
        if check in ("cutoff_hz", "bandwidth_hz"):
            limited = g["provider"].map(lambda p: PERSONAS.get(p, (0.0, False))[1]).to_numpy()
            value[limited] = rng.choice([8979.7, 11313.7], int(limited.sum()))
        if check == "clip_pct":
            value = np.abs(value)
            clipped = rng.random(len(g)) < 0.02
            value[clipped] = rng.uniform(0.05, 3.0, int(clipped.sum()))
        parts.append(g.assign(check=check, value=value, unit=unit, detail=""))
    rows = pd.concat(parts, ignore_index=True)
    rows = _drop_failed(rows, failed).sort_values(["track", "provider"], kind="stable")
    judged = verdicts(rows, profile)
    return judged[["track", "provider", "stem", "check", "value", "unit", "detail", "verdict",
                   "threshold"]]  # fmt: skip


def _timelines(rng, names, providers, concurrency: int) -> tuple[pd.DataFrame, dict]:
    """Every job's rows (vendor stages and our own steps); jobs start when one of
    ``concurrency`` lanes per provider is free. Also ``{(track, provider): job_id}``."""
    import heapq

    n = len(names) * len(providers)
    upload = np.abs(rng.normal(0.4, 0.2, n))
    queue = np.abs(rng.gamma(2.0, 4.0, n))
    processing = np.abs(rng.normal(6.0, 2.0, n)) + 0.5
    download = np.abs(rng.normal(0.8, 0.4, n))
    gap = np.abs(rng.normal(0.2, 0.1, n))
    lanes = {p: [0.0] * concurrency for p in providers}
    starts = np.zeros(n)
    jobs, ids = [], {}
    for j in range(n):
        track, provider = names[j // len(providers)], providers[j % len(providers)]
        free = heapq.heappop(lanes[provider])
        starts[j] = free + gap[j]
        heapq.heappush(lanes[provider], starts[j] + upload[j] + 0.05 + queue[j] +
                       processing[j] + 0.3 + download[j])  # fmt: skip
        ids[(track, provider)] = f"{provider[:2]}{j:07d}"
        jobs.append((provider, track, ids[(track, provider)]))
    v0 = starts + upload + 0.05
    end = v0 + queue + processing + 0.3
    spans = [
        ("queue wait", "vendor", v0, v0 + queue),
        ("processing", "vendor", v0 + queue, v0 + queue + processing),
        ("upload", "client", starts, starts + upload),
        ("submit", "client", starts + upload, starts + upload + 0.03),
        ("wait", "client", starts + upload + 0.03, end),
        ("download", "client", end, end + download),
        ("end to end", "client", starts, end + download),
    ]
    job = pd.DataFrame(jobs, columns=["provider", "track", "job_id"])
    parts = []
    for order, (stage, source, a, b) in enumerate(spans):
        parts.append(
            job.assign(
                stage=stage, source=source,
                start=T0 + pd.to_timedelta(a, "s"), end=T0 + pd.to_timedelta(b, "s"),
                seconds=np.round(b - a, 6), attempt=1.0 if source == "vendor" else np.nan,
                failed=False, open_end=False, ended_by="event" if source == "vendor" else None,
                _job=np.arange(n), _order=order,
            )
        )  # fmt: skip
    tl = pd.concat(parts, ignore_index=True).sort_values(["_job", "_order"])
    return tl.drop(columns=["_job", "_order"]), ids


def _intelligibility(rng, names, providers, failed) -> pd.DataFrame:
    rows = []
    for track in names:
        for source, stem, wer in [
            ("mixture", "mixture", rng.uniform(0.5, 0.9)),
            ("reference", "dialogue", rng.uniform(0.0, 0.1)),
            *((p, "vocals", rng.uniform(0.1, 0.6)) for p in providers if (track, p) not in failed),
        ]:
            rows.append(
                {"track": track, "source": source, "stem": stem, "wer": wer, "ref_words": 36,
                 "hyp_words": 34, "is_blank": False, "dnsmos_sig": rng.uniform(2, 3.5),
                 "dnsmos_bak": rng.uniform(1.5, 4), "dnsmos_ovrl": rng.uniform(1.5, 3),
                 "stoi": rng.uniform(0.7, 1.0), "estoi": rng.uniform(0.6, 1.0), "state": "done",
                 "error": "", "text": "could you pass me the salt please"}
            )  # fmt: skip
    return pd.DataFrame(rows)


def _write_per_track(batch: BatchFolder, name: str, df: pd.DataFrame) -> None:
    """Write one table of every track as the per-track CSVs of the layout
    (:meth:`~stemkit.batchdir.BatchFolder.analysis_table`): the whole table is formatted once
    and cut by track (``df`` is sorted by track), not one ``to_csv`` per track."""
    text = df.to_csv(index=False, date_format="%Y-%m-%d %H:%M:%S.%f%z")
    header, _, body = text.partition("\n")
    lines = body.splitlines(keepends=True)
    at = 0
    for track, count in df["track"].value_counts(sort=False).items():
        path = batch.analysis_table(str(track), name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + "\n" + "".join(lines[at : at + count]), encoding="utf-8")
        at += count


def make_batch(
    root: str | os.PathLike,
    tracks: int = 1000,
    *,
    providers: Sequence[str] = ("sourceress", "audioshake"),
    stems: Sequence[str] = ("vocals", "accompaniment"),
    concurrency: int = 16,
    speech_every: int = 10,
    fail_every: int = 97,
    figures: int = 10,
    seed: int = 0,
) -> BatchFolder:
    """Write a synthetic batch folder of ``tracks`` tracks × ``providers`` (see the module
    docstring) and return it.

    Parameters
    ----------
    root : path
        The batch folder (created).
    tracks : int
        How many tracks: ``track-0000``, ``track-0001``, ...
    providers, stems : list of str
        The batch's providers and the stems every one of them delivers.
    concurrency : int
        Jobs in flight per provider: the timeline's jobs start when one of as many lanes is
        free (a 1000-track batch spans about half an hour).
    speech_every : int
        Every n-th track has a script, and intelligibility rows.
    fail_every : int
        Every n-th job (over tracks and providers) failed at the vendor: no stems, no scores.
    figures : int
        The first n tracks get their two figures (small PNGs); the others have none, as
        tracks analysed without figures (a file each costs more than the rest of a track).
    seed : int
        Of every random value.

    Returns
    -------
    BatchFolder
    """
    rng = np.random.default_rng(seed)
    batch = BatchFolder(root)
    names = [f"track-{i:04d}" for i in range(tracks)]
    providers = list(providers)
    data = batch.root / "inputs"
    speech = names[::speech_every]
    info = {
        "created_at": T0.isoformat(),
        "providers": providers,
        "profile": "default",
        "stems": None,
        "format": "wav",
        "tracks": [
            {
                "name": name,
                "mixture": str(data / name / "mixture.wav"),
                "references": {s: str(data / name / f"{s}.wav") for s in stems},
                "transcript": "could you pass me the salt please" if name in speech else None,
            }
            for name in names
        ],
    }
    pairs = [(t, p) for t in names for p in providers]
    failed = {pair for k, pair in enumerate(pairs, start=1) if k % fail_every == 0}
    timeline, ids = _timelines(rng, names, providers, concurrency)
    first = timeline[timeline["stage"] == "processing"].set_index(["track", "provider"])["start"]
    png = _png()
    with _no_fsync():
        batch.write_info(info)
        for track, provider in pairs:
            bad = (track, provider) in failed
            stamp = first[(track, provider)]
            batch.write_record(
                track,
                provider,
                {
                    "provider": provider,
                    "track": track,
                    "state": "failed" if bad else "done",
                    "audio_seconds": 10.0,
                    "job_id": ids[(track, provider)],
                    "cost": None,
                    "failed_stems": {},
                    "stems": {} if bad else {s: f"{s}.wav" for s in stems},
                    "error": f"{provider}: the vendor reported the job failed (synthetic)"
                    if bad
                    else None,
                    "error_kind": "job failed" if bad else None,
                    "step": "separate" if bad else None,
                    "clock_bounds": [
                        {
                            "event": "Processing",
                            "timestamp": (stamp + pd.Timedelta(0.03, "s")).isoformat(),
                            "after": (stamp - pd.Timedelta(0.2, "s")).isoformat(),
                            "before": (stamp + pd.Timedelta(0.2, "s")).isoformat(),
                        }
                    ],
                },
            )
        _write_per_track(batch, "metrics", _metrics(rng, names, providers, stems, failed))
        _write_per_track(
            batch, "verdicts", _verdicts(rng, names, providers, stems, failed, load_profile())
        )
        _write_per_track(batch, "timeline", timeline)
        _write_per_track(batch, "intelligibility", _intelligibility(rng, speech, providers, failed))
        for i, track in enumerate(names):
            ok = sorted(p for p in providers if (track, p) not in failed)
            batch.write_status(track, {"track": track, "failures": [], "providers_ok": ok})
            for name in ("spectrograms", "timeline") if i < figures else ():
                batch.figure(track, name).write_bytes(png)
    return batch
