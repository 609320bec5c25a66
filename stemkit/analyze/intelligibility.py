"""Dialogue intelligibility: do the words survive the separation?

For every track with a known script, the transcription vendor (``loom``, run in the separate
phase by :mod:`stemkit.separate.transcribe`) transcribed the mixture, the reference dialogue and
each separation provider's dialogue (or vocals) stem; the word error rate against the script says
how much of the speech each stem keeps.

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
    for rec in BatchFolder(out).transcript_records(track["name"]):
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
