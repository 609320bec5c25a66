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

**Words heard in music are dropped** before ``wer``: a recogniser fed music alone invents
words (the sandbox's, on the demo's three music-and-effects beds: 19, 6 and 5 words), and
each one counts as an error against the script. The speech regions of the audio that was
transcribed come from Silero VAD (:func:`stemkit.analyze.vad.speech_segments`); a hypothesis
word is kept when at least half of its time span (the vendor's word timings, ``words.json``)
lies in those regions widened by :data:`WORD_TOLERANCE_S` (0.1 s) on each side, since word
edges and the VAD's 32 ms frames are both that coarse (:func:`in_speech`). ``wer`` is the
WER of the kept words; ``wer_unfiltered`` that of the whole transcript, and
``words_dropped`` counts the words removed, so the effect is visible. Without word timings
(a vendor that gives none), or when the timed words do not spell the transcript (a words
file of another run), nothing is dropped (``words_dropped`` NaN, ``wer`` equals
``wer_unfiltered``).

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
    "wer_unfiltered",
    "words_dropped",
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


#: a word is kept when at least half of its span lies in speech regions widened by this (s)
WORD_TOLERANCE_S = 0.1


def in_speech(
    words: list[dict[str, Any]],
    segments: list[tuple[float, float]],
    tolerance: float = WORD_TOLERANCE_S,
) -> list[bool]:
    """Which hypothesis words lie in speech: at least half of each word's span
    (``start``-``end``, s) inside ``segments`` widened by ``tolerance`` s on both sides (a
    zero-length word: its time inside them).

    Parameters
    ----------
    words : list of dict
        The vendor's words, each with ``start`` and ``end`` in seconds.
    segments : list of (float, float)
        Speech regions, seconds (:func:`stemkit.analyze.vad.speech_segments`).
    tolerance : float
        Widening of every region, seconds.

    Returns
    -------
    list of bool
        One flag per word.

    Examples
    --------
    >>> spans = {"la": (0.2, 0.5), "hi": (2.0, 2.4), "yo": (2.95, 3.2), "oh": (3.05, 3.5)}
    >>> words = [{"word": k, "start": a, "end": b} for k, (a, b) in spans.items()]
    >>> in_speech(words, [(1.9, 3.0)])     # "yo": half inside once widened; "oh": not
    [False, True, True, False]
    """
    merged: list[list[float]] = []
    for start, end in sorted(segments):
        a, b = start - tolerance, end + tolerance
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    flags = []
    for w in words:
        a, b = float(w["start"]), float(w["end"])
        if b <= a:
            flags.append(any(lo <= a <= hi for lo, hi in merged))
            continue
        inside = sum(max(0.0, min(b, hi) - max(a, lo)) for lo, hi in merged)
        flags.append(inside >= 0.5 * (b - a))
    return flags


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
    batch = BatchFolder(out)
    records = batch.transcript_records(track["name"])
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
        scores, segments = _speech_scores(rec.get("audio"), reference)
        if rec["state"] == "done":
            text = rec.get("text") or ""
            words = _words(batch.transcript_dir(track["name"], source) / "words.json")
            kept, dropped = text, float("nan")
            # the words are filtered only when they are this transcript's words (a stale or
            # empty words file of another run would score the wrong text)
            if words and segments is not None and _same_words(words, text):
                flags = in_speech(words, segments)
                kept = " ".join(
                    str(w.get("word", "")) for w, f in zip(words, flags, strict=True) if f
                )
                dropped = len(flags) - sum(flags)
            row.update(
                text=text,
                is_blank=bool(rec.get("is_blank")),
                hyp_words=len(normalize(text).split()),
                wer=wer(script, kept),
                wer_unfiltered=wer(script, text),
                words_dropped=dropped,
            )
        row.update(scores)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _same_words(words: list[dict[str, Any]], text: str) -> bool:
    """Whether the timed ``words`` spell ``text`` (after :func:`normalize`).

    Examples
    --------
    >>> _same_words([{"word": "Hello,"}, {"word": "world"}], "hello world"), _same_words([], "a")
    (True, False)
    """
    joined = " ".join(str(w.get("word", "")) for w in words)
    return normalize(joined) == normalize(text)


def _reference_audio(track: dict[str, Any], records: list[dict[str, Any]]) -> str | None:
    """The reference dialogue's file: the transcribed ``reference`` source, else the track's
    dialogue (or vocals) reference."""
    from stemkit.stems import SPEECH_STEMS

    for rec in records:
        if rec["source"] == "reference" and rec.get("audio"):
            return rec["audio"]
    refs = track.get("references", {})
    return next((refs[s] for s in SPEECH_STEMS if s in refs), None)


def _words(path: Path) -> list[dict[str, Any]] | None:
    """The vendor's word timings (``words.json``), or None when there are none to use."""
    import json

    try:
        words = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(words, list) and all(
        isinstance(w, dict)
        and isinstance(w.get("start"), int | float)
        and isinstance(w.get("end"), int | float)
        for w in words
    )
    return words if ok else None


def _speech_scores(
    audio: str | None, reference: str | None
) -> tuple[dict[str, float], list[tuple[float, float]] | None]:
    """DNSMOS of ``audio``; STOI / ESTOI against ``reference`` (NaN where unreadable); and
    the VAD's speech regions of ``audio`` (None where unreadable)."""
    from stemkit.analyze.speech_quality import dnsmos, stoi_scores
    from stemkit.analyze.vad import speech_segments
    from stemkit.audio import load_audio
    from stemkit.errors import AudioError

    nan = float("nan")
    out = dict.fromkeys(("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "stoi", "estoi"), nan)
    if not audio or not Path(audio).is_file():
        return out, None
    try:
        y, sr = load_audio(audio, mono=True)
    except AudioError:
        return out, None
    out.update({f"dnsmos_{k}": v for k, v in dnsmos(y[0], sr).items()})
    if reference and Path(reference).is_file():
        from stemkit.audio import resample

        ref, ref_sr = load_audio(reference, mono=True)
        out.update(stoi_scores(resample(ref[0], ref_sr, sr), y[0], sr))
    return out, speech_segments(y[0], sr)
