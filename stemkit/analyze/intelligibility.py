"""Dialogue intelligibility: do the words survive the separation?

For every track with a known script, the transcription vendor (``loom``, run in the separate
phase by :mod:`stemkit.separate.transcribe`) transcribed the mixture, the reference dialogue and
each separation provider's dialogue (or vocals) stem; the word error rate against the script says
how much of the speech each stem keeps.

Beside WER, per transcribed source: DNSMOS P.835 (``dnsmos_sig``, ``dnsmos_bak``,
``dnsmos_ovrl``, 1-5, reference-free) and STOI / ESTOI against the reference dialogue
(``stoi``, ``estoi``, 0-1), see :mod:`stemkit.analyze.speech_quality`.

WER is computed with ``jiwer`` after one text normalisation, applied to script and transcript
alike (:func:`normalize`): lower case; every character that is not a letter, a digit, an
apostrophe or a space becomes a space; apostrophes are dropped ("let's" → "lets"); runs of
spaces collapse. Numbers are compared as written (the demo scripts spell them out).

Examples
--------
>>> normalize("Could you pass me the salt, please? Let's eat.")
'could you pass me the salt please lets eat'
>>> round(wer("the cat sat", "the cat sat down"), 3)
0.333
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from stemkit.batchdir import BatchFolder

#: columns of ``analysis/<track>/intelligibility.csv``
COLUMNS = [
    "track",
    "source",
    "stem",
    "wer",
    "ref_words",
    "hyp_words",
    "is_blank",
    "dnsmos_sig",
    "dnsmos_bak",
    "dnsmos_ovrl",
    "stoi",
    "estoi",
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


def intelligibility_table(out: str | Path | BatchFolder, track: dict[str, Any]) -> pd.DataFrame:
    """WER of every transcribed source of one track against its script (tidy rows).

    Parameters
    ----------
    out : path or BatchFolder
        The batch folder.
    track : dict
        The track's ``batch.json`` entry (``name``, ``transcript``).

    Returns
    -------
    DataFrame
        One row per transcribed source, columns :data:`COLUMNS`; empty without a script.

    Examples
    --------
    >>> intelligibility_table("/nonexistent", {"name": "t"}).columns.tolist()[:4]
    ['track', 'source', 'stem', 'wer']
    """
    rows = []
    script = track.get("transcript")
    if not script:
        return pd.DataFrame(columns=COLUMNS)
    records = BatchFolder(out).transcript_records(track["name"])
    reference = _reference_audio(track, records)
    for rec in records:
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
        row.update(_speech_scores(rec.get("audio"), reference))
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _reference_audio(track: dict[str, Any], records: list[dict[str, Any]]) -> str | None:
    """The reference dialogue's file: the transcribed ``reference`` source, else the track's
    dialogue (or vocals) reference."""
    from stemkit.stems import SPEECH_STEMS

    for rec in records:
        if rec["source"] == "reference" and rec.get("audio"):
            return rec["audio"]
    refs = track.get("references", {})
    return next((refs[s] for s in SPEECH_STEMS if s in refs), None)


def _speech_scores(audio: str | None, reference: str | None) -> dict[str, float]:
    """DNSMOS of ``audio``; STOI / ESTOI against ``reference`` (NaN where unreadable)."""
    from stemkit.analyze.speech_quality import dnsmos, stoi_scores
    from stemkit.audio import load_audio
    from stemkit.errors import AudioError

    nan = float("nan")
    out = dict.fromkeys(("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "stoi", "estoi"), nan)
    if not audio or not Path(audio).is_file():
        return out
    try:
        y, sr = load_audio(audio, mono=True)
    except AudioError:
        return out
    out.update({f"dnsmos_{k}": v for k, v in dnsmos(y[0], sr).items()})
    if reference and Path(reference).is_file():
        from stemkit.audio import resample

        ref, ref_sr = load_audio(reference, mono=True)
        out.update(stoi_scores(resample(ref[0], ref_sr, sr), y[0], sr))
    return out
