"""Dialogue intelligibility: do the words survive the separation?

For every track with a known script, the transcription vendor (``loom``) transcribes the
mixture, the reference dialogue and each separation provider's dialogue (or vocals) stem; the
word error rate against the script says how much of the speech each stem keeps.

WER is computed with ``jiwer`` after one text normalisation, applied to script and transcript
alike (:func:`normalize`): lower case; every character that is not a letter, a digit, an
apostrophe or a space becomes a space; apostrophes are dropped ("let's" → "lets"); runs of
spaces collapse. Numbers are compared as written (the demo scripts spell them out).

Outputs, per track and source, in ``<out>/transcripts/<track>/<source>/``: ``transcript.txt``,
``words.json`` and ``record.json`` (state, error, timings), like the stems' records.

Examples
--------
>>> normalize("Could you pass me the salt, please? Let's eat.")
'could you pass me the salt please lets eat'
>>> round(wer("the cat sat", "the cat sat down"), 3)
0.333
"""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from stemkit.errors import StemkitError
from stemkit.ledger import Ledger
from stemkit.providers import connect
from stemkit.providers.base import sha256_file

log = logging.getLogger("stemkit.intelligibility")
#: stems that carry the speech, in order of preference
SPEECH_STEMS = ("dialogue", "vocals")
COLUMNS = [
    "track",
    "source",
    "stem",
    "wer",
    "ref_words",
    "hyp_words",
    "is_blank",
    "state",
    "error",
    "text",
]


def normalize(text: str) -> str:
    """The documented text normalisation applied before WER (see module docstring)."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    text = re.sub(r"[^0-9a-z ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` after :func:`normalize`.

    A blank hypothesis of a non-blank reference is 1.0 (every word deleted).
    """
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        raise ValueError("the reference transcript is empty")
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))


def speech_sources(out: Path, track: dict[str, Any], providers: list[str]) -> dict[str, Path]:
    """What to transcribe for one track: ``{source: audio file}`` for the mixture, the
    reference dialogue and each provider's speech stem that exists on disk."""
    sources = {"mixture": Path(track["mixture"])}
    refs = track.get("references", {})
    ref = next((refs[s] for s in SPEECH_STEMS if s in refs), None)
    if ref:
        sources["reference"] = Path(ref)
    for provider in providers:
        folder = Path(out) / "stems" / track["name"] / provider
        for stem in SPEECH_STEMS:
            found = sorted(folder.glob(f"{stem}.*"))
            if found:
                sources[provider] = found[0]
                break
    return sources


def _folder(out: Path, track: str, source: str) -> Path:
    return Path(out) / "transcripts" / track / source


def transcribe_one(
    loom, out: Path, ledger: Ledger, track: str, source: str, audio: Path
) -> dict[str, Any]:
    """Transcribe one source of one track (or reuse a verified earlier transcript)."""
    folder = _folder(out, track, source)
    record: dict[str, Any] = {
        "provider": "loom",
        "track": track,
        "source": source,
        "audio": str(audio),
        "state": "failed",
    }
    try:
        key = ledger.request_key(sha256_file(audio), ["transcript"], {"source": source})
        row = ledger.get(track, f"loom:{source}", key)
        old = folder / "record.json"
        if (
            row
            and row["state"] == "done"
            and old.is_file()
            and (folder / "transcript.txt").is_file()
        ):
            return json.loads(old.read_text())
        ledger.mark(track, f"loom:{source}", key, "submitting")
        result = loom.transcribe(audio, folder, track=f"{track}-{source}")
        ledger.mark(track, f"loom:{source}", key, "done", job={"job_id": result.job_id})
        record.update(
            state="done",
            job_id=f"{source}:{result.job_id}",
            text=result.text,
            is_blank=result.is_blank,
            audio_seconds=result.audio_seconds,
            vendor_stages=[
                {
                    **r,
                    "start": r["start"].isoformat(),
                    "end": r["end"].isoformat(),
                    "job_id": f"{source}:{r['job_id']}",
                }
                for r in result.vendor_stages
            ],
            observations=[
                {"step": o.step, "start": o.start.isoformat(), "end": o.end.isoformat()}
                for o in result.observations
            ],
        )
    except StemkitError as exc:
        exc.at(provider="loom", track=track)
        record.update(exc.to_dict(), state="failed")
        if "key" in locals():
            ledger.mark(track, f"loom:{source}", key, "failed", error=exc.message)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "record.json").write_text(json.dumps(record, indent=2, default=str))
    return record


def transcribe_batch(
    out: str | Path, *, profile: str | None = None, progress: bool = True
) -> pd.DataFrame:
    """Transcribe every speech source of every track with a script in a batch folder.

    Runs after the separate step (it needs the stems); jobs run concurrently up to the loom
    profile's ``max_in_flight``. Returns one row per (track, source) with state and error.

    Examples
    --------
    >>> transcribe_batch("reports/demo")   # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    out = Path(out)
    info = json.loads((out / "batch.json").read_text())
    todo = [
        (t["name"], source, path)
        for t in info["tracks"]
        if t.get("transcript")
        for source, path in speech_sources(out, t, info["providers"]).items()
    ]
    if not todo:
        return pd.DataFrame(columns=["track", "source", "state", "error"])
    loom = connect("loom", profile)
    ledger = Ledger(out)
    with ThreadPoolExecutor(max(1, loom.profile.max_in_flight)) as pool:
        futures = [pool.submit(transcribe_one, loom, out, ledger, *item) for item in todo]
        records = [
            f.result()
            for f in tqdm(
                futures, desc="transcribe", unit="job", disable=not progress, mininterval=1.0
            )
        ]
    ledger.close()
    return pd.DataFrame(
        [{k: r.get(k) for k in ("track", "source", "state", "error")} for r in records]
    )


def intelligibility_table(out: str | Path, track: dict[str, Any]) -> pd.DataFrame:
    """WER of every transcribed source of one track against its script (tidy rows)."""
    out = Path(out)
    rows = []
    script = track.get("transcript")
    if not script:
        return pd.DataFrame(columns=COLUMNS)
    for folder in sorted((out / "transcripts" / track["name"]).glob("*")):
        rec_path = folder / "record.json"
        if not rec_path.is_file():
            continue
        rec = json.loads(rec_path.read_text())
        source = rec["source"]
        row = {
            "track": track["name"],
            "source": source,
            "stem": Path(rec.get("audio", "")).stem,
            "state": rec["state"],
            "error": rec.get("error"),
            "ref_words": len(normalize(script).split()),
        }
        if rec["state"] == "done":
            text = rec.get("text") or ""
            row.update(
                text=text,
                is_blank=bool(rec.get("is_blank")),
                hyp_words=len(normalize(text).split()),
                wer=wer(script, text),
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
