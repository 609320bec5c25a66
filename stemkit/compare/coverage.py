"""What a partly analysed batch is missing, and how to get it (for the compare notebook).

A batch whose analysis has not reached every track yet (a run stopped early, a track added)
still opens in ``notebooks/compare.ipynb``; these functions say, in the report's words, which
tracks lack their analysis, which of them have a script to score, and the command that fills
the gap, instead of an empty section or a bare heading.

Examples
--------
>>> from stemkit.batchdir import BatchFolder
>>> import tempfile
>>> b = BatchFolder(tempfile.mkdtemp())
>>> b.write_info({"tracks": [{"name": "t1", "mixture": "t1.wav", "transcript": "hi"}],
...               "providers": ["local"]})
>>> unanalysed(b)
['t1']
>>> print(intelligibility_note(b))   # doctest: +ELLIPSIS
1 track has a script but is not analysed yet (t1): ...
"""

from __future__ import annotations

import os
import shlex

from stemkit.batchdir import BatchFolder


def _batch(folder: str | os.PathLike | BatchFolder) -> BatchFolder:
    return folder if isinstance(folder, BatchFolder) else BatchFolder(folder)


def is_analysed(folder: str | os.PathLike | BatchFolder, track: str) -> bool:
    """True once the track's analysis has saved its ``status.json``.

    Examples
    --------
    >>> is_analysed("/nonexistent", "t1")
    False
    """
    return _batch(folder).status_path(track).is_file()


def unanalysed(folder: str | os.PathLike | BatchFolder) -> list[str]:
    """Tracks of the batch whose analysis has not been saved yet (batch order)."""
    b = _batch(folder)
    return [t for t in b.tracks if not is_analysed(b, t)]


def how_to_analyse(folder: str | os.PathLike | BatchFolder, tracks: list[str]) -> str:
    """The commands that analyse ``tracks`` of the batch (markdown).

    Examples
    --------
    >>> print(how_to_analyse("/data/batch", ["t1"]))   # doctest: +NORMALIZE_WHITESPACE
    run the batch again, `stemkit batch MANIFEST --out /data/batch` (finished jobs are not
    submitted again; only tracks whose analysis is missing or stale are analysed), or in
    Python: `from stemkit.batch import analyze_batch; analyze_batch('/data/batch', ['t1'])`
    """
    root = str(_batch(folder).root)
    return (
        f"run the batch again, `stemkit batch MANIFEST --out {shlex.quote(root)}` (finished "
        "jobs are not submitted again; only tracks whose analysis is missing or stale are "
        "analysed), or in Python: `from stemkit.batch import analyze_batch; "
        f"analyze_batch({root!r}, {list(tracks)!r})`"
    )


def _names(tracks: list[str], limit: int = 8) -> str:
    more = f" and {len(tracks) - limit} more" if len(tracks) > limit else ""
    return ", ".join(tracks[:limit]) + more


def intelligibility_note(folder: str | os.PathLike | BatchFolder) -> str:
    """Why the intelligibility section is empty (markdown): no script at all, or scripts on
    tracks not analysed yet (named, with :func:`how_to_analyse`), or analysed tracks with a
    script but no transcription (run with ``--transcribe``).

    Examples
    --------
    >>> from stemkit.batchdir import BatchFolder
    >>> import tempfile
    >>> b = BatchFolder(tempfile.mkdtemp())
    >>> b.write_info({"tracks": [{"name": "t1", "mixture": "t1.wav"}], "providers": ["x"]})
    >>> intelligibility_note(b)
    'No track of this batch has a script (a `transcript` in the manifest): nothing to score.'
    """
    b = _batch(folder)
    scripted = [t["name"] for t in b.info().get("tracks", []) if t.get("transcript")]
    if not scripted:
        return (
            "No track of this batch has a script (a `transcript` in the manifest): "
            "nothing to score."
        )
    waiting = [t for t in scripted if not is_analysed(b, t)]
    parts = []
    if waiting:
        n = len(waiting)
        parts.append(
            f"{n} track{'s' if n > 1 else ''} {'have' if n > 1 else 'has'} a script but "
            f"{'are' if n > 1 else 'is'} not analysed yet ({_names(waiting)}): "
            + how_to_analyse(b, waiting)
            + "."
        )
    done = [t for t in scripted if t not in waiting]
    if done:
        parts.append(
            f"{_names(done)}: analysed, with a script, but no transcription was recorded; "
            "run the batch with transcription on (`stemkit batch … --transcribe`, the default)."
        )
    return "\n\n".join(parts)


def track_note(folder: str | os.PathLike | BatchFolder, track: str) -> str:
    """What a track's section shows instead of its tables when it has none (markdown).

    Examples
    --------
    >>> from stemkit.batchdir import BatchFolder
    >>> import tempfile
    >>> b = BatchFolder(tempfile.mkdtemp())
    >>> b.write_info({"tracks": [{"name": "t1", "mixture": "t1.wav"}], "providers": ["x"]})
    >>> track_note(b, "t1").startswith("Not analysed yet: no scores, verdicts or figures.")
    True
    """
    b = _batch(folder)
    if not is_analysed(b, track):
        return "Not analysed yet: no scores, verdicts or figures. To get them, " + (
            how_to_analyse(b, [track]) + "."
        )
    entry = next((t for t in b.info().get("tracks", []) if t["name"] == track), {})
    if not entry.get("references"):
        return "Analysed; no scores: the manifest gives this track no reference stems."
    return "Analysed; no scores: no provider delivered stems for this track (see Failures)."


def unanalysed_note(folder: str | os.PathLike | BatchFolder) -> str:
    """What the report's track section says about the tracks not analysed yet (markdown):
    their names and the command that fills the gap, once for all of them; empty when every
    track is analysed.

    Examples
    --------
    >>> from stemkit.batchdir import BatchFolder
    >>> import tempfile
    >>> b = BatchFolder(tempfile.mkdtemp())
    >>> b.write_info({"tracks": [{"name": "t1", "mixture": "a.wav"},
    ...                          {"name": "t2", "mixture": "b.wav"}], "providers": ["x"]})
    >>> unanalysed_note(b).startswith("Not analysed yet: no scores, verdicts or figures for 2")
    True
    """
    b = _batch(folder)
    waiting = unanalysed(b)
    if not waiting:
        return ""
    if len(waiting) == 1:
        return f"**{waiting[0]}**: " + track_note(b, waiting[0])
    return (
        f"Not analysed yet: no scores, verdicts or figures for {len(waiting)} tracks "
        f"({_names(waiting)}). To get them, " + how_to_analyse(b, waiting) + "."
    )
