"""Listening-test results in one tidy format; webMUSHRA's CSV in, webMUSHRA's YAML out.

The tidy format (:data:`COLUMNS`), one row per listener, trial and stimulus:

==========  ====================================================================
listener    who rated (as typed on the page or the widget; webMUSHRA: the session)
trial       the trial id of ``listening/design.json`` (``t01``, ...)
stimulus    the blinded stimulus name
score       0-100 (MUSHRA scale)
time_s      seconds the listener spent on the trial
comment     the listener's comment on the trial (may be empty)
==========  ====================================================================

The static page and the widget save CSV in this format; :func:`read_results` also reads
webMUSHRA's ``mushra.csv`` (``session_uuid, trial_id, rating_stimulus, rating_score,
rating_time`` in ms, ``rating_comment``; its hidden reference is the stimulus ``reference``)
and a JSON list of tidy rows.

Examples
--------
>>> import io
>>> web = io.StringIO("session_test_id,session_uuid,trial_id,rating_stimulus,rating_score,"
...                   "rating_time,rating_comment\\nx,u1,t01,reference,95,12000,\\n"
...                   "x,u1,t01,a1b2c3,40,12000,\\n")
>>> key = pd.DataFrame({"trial": ["t01", "t01"], "stimulus": ["9f9f9f", "a1b2c3"],
...                     "condition": ["reference", "acme"]})
>>> read_results([web], key)[["listener", "trial", "stimulus", "score", "time_s"]].values.tolist()
[['u1', 't01', '9f9f9f', 95.0, 12.0], ['u1', 't01', 'a1b2c3', 40.0, 12.0]]
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from stemkit.batchdir import BatchFolder
from stemkit.errors import StemkitError

__all__ = ["COLUMNS", "from_webmushra", "read_results", "unblind", "write_webmushra"]

#: the tidy results format
COLUMNS = ["listener", "trial", "stimulus", "score", "time_s", "comment"]
WEBMUSHRA_COLUMNS = ("session_uuid", "trial_id", "rating_stimulus", "rating_score")


def _tidy(df: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in ("listener", "trial", "stimulus", "score") if c not in df]
    if missing:
        raise StemkitError(
            f"{source}: not a listening-test results file (missing {', '.join(missing)})",
            step="listen analyze",
            hint=f"expected the columns {', '.join(COLUMNS)} or webMUSHRA's mushra.csv",
        )
    df = df.reindex(columns=COLUMNS).copy()
    df["score"] = pd.to_numeric(df["score"], errors="coerce").astype(float)
    df["time_s"] = pd.to_numeric(df["time_s"], errors="coerce")
    df["comment"] = df["comment"].fillna("").astype(str)
    for c in ("listener", "trial", "stimulus"):
        df[c] = df[c].astype(str)
    bad = df["score"].isna() | (df["score"] < 0) | (df["score"] > 100)
    if bad.any():
        raise StemkitError(
            f"{source}: {int(bad.sum())} scores are not numbers in 0-100",
            step="listen analyze",
        )
    return df


def from_webmushra(df: pd.DataFrame, key: pd.DataFrame, source: str = "mushra.csv"):
    """webMUSHRA's ``mushra.csv`` rows in the tidy format.

    webMUSHRA adds the hidden reference itself and calls it ``reference``: it becomes the
    trial's hidden-reference stimulus of ``key``.

    Parameters
    ----------
    df : DataFrame
        ``session_uuid, trial_id, rating_stimulus, rating_score, rating_time`` (ms),
        ``rating_comment`` (questionnaire columns are ignored).
    key : DataFrame
        ``listening/key.csv``: ``trial, stimulus, condition``.
    source : str
        Where the rows came from (for messages).

    Returns
    -------
    DataFrame
        :data:`COLUMNS`.
    """
    from stemkit.compare.listen.design import HIDDEN_REFERENCE

    hidden = key[key["condition"] == HIDDEN_REFERENCE].set_index("trial")["stimulus"]
    stim = df["rating_stimulus"].astype(str)
    is_ref = stim == "reference"
    stim = stim.where(~is_ref, df["trial_id"].astype(str).map(hidden))
    out = pd.DataFrame(
        {
            "listener": df["session_uuid"].astype(str),
            "trial": df["trial_id"].astype(str),
            "stimulus": stim,
            "score": df["rating_score"],
            "time_s": pd.to_numeric(df.get("rating_time"), errors="coerce") / 1000.0,
            "comment": df.get("rating_comment", pd.Series("", index=df.index)),
        }
    )
    return _tidy(out, source)


def read_results(
    sources: Iterable[str | os.PathLike | io.IOBase], key: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Read results files (tidy CSV or JSON, webMUSHRA CSV) into one tidy table.

    Parameters
    ----------
    sources : iterable of path or file object
        Results files; the format is told by the header.
    key : DataFrame, optional
        ``listening/key.csv``; needed for webMUSHRA files (their hidden reference).

    Returns
    -------
    DataFrame
        :data:`COLUMNS`, every file's rows in order.

    Raises
    ------
    StemkitError
        A file is neither format, or a score is not in 0-100.
    """
    frames = []
    for src in sources:
        name = getattr(src, "name", None) or str(src)
        if isinstance(src, (str, os.PathLike)) and Path(src).suffix.lower() == ".json":
            data = json.loads(Path(src).read_text())
            rows = data.get("ratings", data) if isinstance(data, dict) else data
            frames.append(_tidy(pd.DataFrame(rows), name))
            continue
        df = pd.read_csv(src, keep_default_na=False, na_values=[""], dtype=str)
        if all(c in df for c in WEBMUSHRA_COLUMNS):
            if key is None:
                raise StemkitError(f"{name}: a webMUSHRA file needs the test's key to import")
            frames.append(from_webmushra(df, key, name))
        else:
            frames.append(_tidy(df, name))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)


def unblind(ratings: pd.DataFrame, key: pd.DataFrame) -> pd.DataFrame:
    """The ratings with what each stimulus is: ``condition, stem, item, track`` from the key.

    Raises
    ------
    StemkitError
        A rated (trial, stimulus) is not in the key: the results belong to another design.
    """
    cols = ["trial", "stimulus", "condition", "stem", "item", "track"]
    merged = ratings.merge(key.reindex(columns=cols), on=["trial", "stimulus"], how="left")
    unknown = merged[merged["condition"].isna()]
    if not unknown.empty:
        first = unknown.iloc[0]
        raise StemkitError(
            f"{len(unknown)} ratings name stimuli this test does not have (e.g. trial "
            f"{first.trial!r}, stimulus {first.stimulus!r})",
            step="listen analyze",
            hint="the results come from another design; analyse them against its batch folder",
        )
    return merged


def write_webmushra(
    folder: BatchFolder, *, audio_prefix: str = "configs/resources/stemkit"
) -> Path:
    """Export the designed test as a webMUSHRA config (``listening/webmushra/config.yaml``).

    The audio is written as WAV under ``listening/webmushra/resources/``; copy that folder to
    ``<webMUSHRA>/configs/resources/stemkit`` (or pass the place as ``audio_prefix``) and
    ``config.yaml`` to ``<webMUSHRA>/configs/``. webMUSHRA adds the hidden reference itself;
    its built-in anchors are off (the design's are stimuli).

    Returns
    -------
    Path
        ``config.yaml``.
    """
    import yaml

    from stemkit.audio import load_audio, write_audio
    from stemkit.compare.listen.design import HIDDEN_REFERENCE, Design

    design = Design.load(folder)
    hidden = design.key[design.key["condition"] == HIDDEN_REFERENCE].set_index("trial")
    out = folder.webmushra_dir
    pages: list[dict] = [
        {
            "type": "generic",
            "id": "welcome",
            "name": "Welcome",
            "content": "Rate how close each stimulus is to the reference (0-100). One of them is "
            "the reference itself.",
        }
    ]
    for t in design.trials:
        tid = t["trial"]

        def place(name: str, tid: str = tid) -> str:
            y, sr = load_audio(folder.stimulus_path(tid, name))
            write_audio(out / "resources" / tid / f"{name}.wav", y, sr)
            return f"{audio_prefix}/{tid}/{name}.wav"

        stimuli = {n: place(n) for n in t["stimuli"] if n != hidden.loc[tid, "stimulus"]}
        pages.append(
            {
                "type": "mushra",
                "id": tid,
                "name": f"Trial {tid}",
                "content": f"Stem: {t['stem']}",
                "showWaveform": True,
                "enableLooping": True,
                "reference": place("reference"),
                "createAnchor35": False,
                "createAnchor70": False,
                "randomize": True,
                "stimuli": stimuli,
            }
        )
    pages.append(
        {
            "type": "finish",
            "name": "Thank you",
            "content": "Thank you for taking the test.",
            "showResults": False,
            "writeResults": True,
        }
    )
    config = {
        "testname": f"stemkit listening test: {folder.root.name}",
        "testId": f"stemkit-{folder.root.name}",
        "bufferSize": 2048,
        "stopOnErrors": True,
        "showButtonPreviousPage": True,
        "remoteService": "service/write.php",
        "pages": pages,
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path
