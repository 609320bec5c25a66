"""The batch folder: the one owner of its layout. Every phase reads and writes through it.

=============================================  ===============================================
path (under the batch folder)                  what
=============================================  ===============================================
``batch.json``                                 what the batch is: tracks, providers, settings
``ledger.sqlite``                              uploads, submissions, downloads (see ledger)
``stems/<track>/<provider>/``                  one job's stems and its ``record.json``
``stems/<track>/ended.json``                   every job (and transcription) of the track has
                                               ended in this run: its analysis may start
``transcripts/<track>/<source>/``              one transcription and its ``record.json``
``analysis/<track>/<table>.csv``               ``metrics``, ``verdicts``, ``timeline``,
                                               ``intelligibility`` of one track
``analysis/<track>/<figure>.png``              ``spectrograms``, ``timeline``
``analysis/<track>/status.json``               failures and providers analysed
``analysis/<track>/bracket.json``              cached scores of the SiSEC bracket
``analysis/<track>/inputs.sha256``             digest of what the analysis read
``analysis/<track>/.work/``                    scratch audio of one analysis (removed after)
``tables/<name>.csv`` / ``.parquet``           the batch's tables, all tracks together
``listening/design.json``                      a listening test as listeners see it: trials,
                                               blinded stimulus names (no conditions)
``listening/key.csv``                          the key: blinded name -> condition (kept apart)
``listening/items.csv``                        the items picked (track, start, why)
``listening/stimuli/<trial>/<name>.flac``      loudness-matched excerpts, blinded names
``listening/page/``                            the static MUSHRA page (``index.html``)
``listening/webmushra/``                       webMUSHRA's YAML config and its audio
``listening/results/<file>.csv``               ratings in the tidy format, one file a session
``notebooks/``                                 the executed notebooks
``tracks/<track>.html``                        one track's page of the report (scores,
                                               verdicts, timing, its figures)
``.<phase>.lock`` / ``.<phase>.owner``         one writer per batch (see :meth:`~BatchFolder.lock`)
``.sandbox/``                                  the in-process sandbox's state (never published)
``report.html``                                the report
=============================================  ===============================================

Every table is read with one rule: an empty cell is missing (NaN), any other text is kept as
written (so a verdict of ``"n/a"`` stays the string ``"n/a"``).

Examples
--------
>>> import tempfile
>>> b = BatchFolder(tempfile.mkdtemp())
>>> b.write_info({"tracks": [{"name": "t1", "mixture": "t1.wav"}], "providers": ["local"]})
>>> b.tracks, b.providers
(['t1'], ['local'])
>>> b.job_dir("t1", "local").relative_to(b.root).as_posix()
'stems/t1/local'
>>> b.read_record("t1", "local") is None
True
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from stemkit.atomic import atomic_path, write_json, write_text
from stemkit.errors import BatchBusy, StemkitError

log = logging.getLogger("stemkit.batchdir")

#: what a person reads; what :func:`stemkit.publish.publish` copies
PUBLISHED = ("report.html", "batch.json", "tables", "analysis", "notebooks", "tracks")
#: the per-track analysis tables, by name
ANALYSIS_TABLES = ("metrics", "verdicts", "timeline", "intelligibility")
#: the per-track analysis figures, by name
FIGURES = ("spectrograms", "timeline")


def read_table(path: str | os.PathLike, columns: Sequence[str] = ()) -> pd.DataFrame:
    """Read one CSV table of a batch with the folder's one missing-value rule.

    Parameters
    ----------
    path : path
        A CSV file; a missing or empty file gives an empty table.
    columns : list of str
        Columns the result has even when the file is missing.

    Returns
    -------
    DataFrame
        Empty cells as NaN; any other text as written (``"n/a"`` stays a string).

    Examples
    --------
    >>> read_table("/nonexistent.csv", ["a", "b"]).columns.tolist()
    ['a', 'b']
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=list(columns))
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(columns))
    for c in columns:
        if c not in df:
            df[c] = pd.NA
    return df


def _read_json(path: Path) -> Any:
    """The content of a JSON record, or None when it does not exist or is cut short (a file
    written in place by an older stemkit and killed mid-write): the step that writes it runs
    again instead of failing on every rerun."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s is not valid JSON (cut short?): treated as missing", path)
        return None


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half."""
    write_json(path, data)


def _write_text(path: Path, text: str) -> None:
    write_text(path, text)


def _part(name: str, what: str = "track") -> str:
    """``name`` as one folder of the layout; a name that would leave it is refused (the
    manifest validates names with row numbers first, see
    :func:`stemkit.separate.manifest.track_name`; this guards every other way in)."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise StemkitError(
            f"refusing {what} name {name!r}: it is a path, not a folder of the batch",
            hint="track, provider and source names are plain folder names",
        )
    return name


class BatchFolder:
    """A batch folder on disk, with every path of its layout (see the module docstring).

    Parameters
    ----------
    root : path
        The batch folder; it need not exist yet (the separate phase creates it).

    Examples
    --------
    >>> BatchFolder("reports/demo").analysis_table("01-sunday-drive", "metrics").name
    'metrics.csv'
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"BatchFolder({str(self.root)!r})"

    def __fspath__(self) -> str:
        return str(self.root)

    # -- what the batch is ----------------------------------------------------------------------

    @property
    def info_path(self) -> Path:
        """``batch.json``."""
        return self.root / "batch.json"

    @classmethod
    def is_batch(cls, folder: str | os.PathLike) -> bool:
        """True if ``folder`` holds a ``batch.json`` (the separate phase has run there)."""
        return (Path(folder) / "batch.json").is_file()

    def exists(self) -> bool:
        """True once the separate phase has written ``batch.json``."""
        return self.info_path.is_file()

    def info(self) -> dict[str, Any]:
        """The content of ``batch.json``; a clear error if this is not a batch folder."""
        if not self.info_path.is_file():
            raise StemkitError(
                f"{self.root} is not a batch folder (no batch.json)",
                hint="run `stemkit batch MANIFEST --out FOLDER` first, or pick another folder",
            )
        info = _read_json(self.info_path)
        if not isinstance(info, dict):
            raise StemkitError(
                f"{self.info_path} is damaged (not a JSON object)",
                hint="rerun `stemkit batch` on this folder: it writes batch.json again",
            )
        return info

    def write_info(self, info: dict[str, Any]) -> None:
        """Write ``batch.json`` (atomically)."""
        _write_json(self.info_path, info)

    @property
    def tracks(self) -> list[str]:
        """Track names, in manifest order."""
        return [t["name"] for t in self.info()["tracks"]]

    @property
    def providers(self) -> list[str]:
        """Provider keys of the batch."""
        return list(self.info()["providers"])

    def track(self, name: str) -> dict[str, Any]:
        """The ``batch.json`` entry of one track (mixture, references, transcript)."""
        entry = next((t for t in self.info()["tracks"] if t["name"] == name), None)
        if entry is None:
            raise StemkitError(
                f"track {name!r} is not in this batch", track=name, hint=f"see {self.info_path}"
            )
        return entry

    # -- one writer per batch --------------------------------------------------------------------

    @contextmanager
    def lock(self, phase: str = "separate", *, wait: float = 0) -> Iterator[None]:
        """Hold the folder's ``phase`` lock (a :mod:`filelock` lock file) for a ``with`` block.

        Two processes never write one batch folder at once: the second waits up to ``wait``
        seconds (``-1``: for ever) and then raises :class:`~stemkit.errors.BatchBusy` naming the
        folder and the process that holds it. ``"batch"`` is held by a whole ``stemkit batch``
        run, ``"separate"`` by the separate phase (which runs in that batch's notebook kernel,
        another process, hence two names).

        Parameters
        ----------
        phase : str
            ``"batch"`` or ``"separate"``.
        wait : float
            Seconds to wait for the other writer; 0 fails at once.

        Examples
        --------
        >>> import tempfile
        >>> b = BatchFolder(tempfile.mkdtemp())
        >>> with b.lock("separate"):
        ...     pass
        """
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        owner = self.root / f".{phase}.owner"
        lock = FileLock(self.root / f".{phase}.lock", timeout=wait, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            holder = owner.read_text().strip() if owner.is_file() else "unknown"
            raise BatchBusy(
                f"another stemkit process ({holder}) is writing to the batch folder "
                f"{self.root} ({phase} phase)",
                step=phase,
                hint="wait for it to finish (or stop it), or use another --out folder",
            ) from None
        try:
            _write_text(owner, f"pid {os.getpid()} on {socket.gethostname()}")
            yield
        finally:
            lock.release()

    # -- the separate phase ---------------------------------------------------------------------

    @property
    def ledger_path(self) -> Path:
        """``ledger.sqlite``."""
        return self.root / "ledger.sqlite"

    @property
    def sandbox_dir(self) -> Path:
        """``.sandbox/``: the state of the batch's in-process sandbox (uploads, jobs, its
        signing key), so a rerun resumes the jobs it submitted; never published."""
        return self.root / ".sandbox"

    def job_dir(self, track: str, provider: str) -> Path:
        """Folder of one job's stems and ``record.json``."""
        return self.root / "stems" / _part(track) / _part(provider, "provider")

    def read_record(self, track: str, provider: str) -> dict[str, Any] | None:
        """The ``record.json`` of a job, or None if the job never ran."""
        return _read_json(self.job_dir(track, provider) / "record.json")

    def write_record(self, track: str, provider: str, record: dict[str, Any]) -> None:
        """Write a job's ``record.json`` atomically."""
        _write_json(self.job_dir(track, provider) / "record.json", record)

    def record_paths(self) -> Iterator[Path]:
        """Every job's ``record.json`` written so far."""
        return (self.root / "stems").glob("*/*/record.json")

    def ended_path(self, track: str) -> Path:
        """``stems/<track>/ended.json``: written by the separate phase once every job and
        transcription of the track has ended (done or failed), so the track's analysis can
        start while other tracks are still being separated."""
        return self.root / "stems" / _part(track) / "ended.json"

    def write_ended(self, track: str, states: dict[str, Any]) -> None:
        """Mark a track's separate phase as ended, with each job's final state.

        Examples
        --------
        >>> import tempfile
        >>> b = BatchFolder(tempfile.mkdtemp())
        >>> b.write_ended("t1", {"local": "done"})
        >>> b.ended_tracks()
        {'t1'}
        >>> b.clear_ended(); b.ended_tracks()
        set()
        """
        _write_json(self.ended_path(track), {"track": track, "jobs": states})

    def ended_tracks(self) -> set[str]:
        """The tracks whose separate phase has ended (since :meth:`clear_ended`)."""
        return {p.parent.name for p in (self.root / "stems").glob("*/ended.json")}

    def clear_ended(self) -> None:
        """Forget which tracks ended (a new run of the separate phase starts)."""
        for p in (self.root / "stems").glob("*/ended.json"):
            p.unlink(missing_ok=True)

    def stem_files(self, track: str, provider: str) -> dict[str, Path]:
        """The audio files of one job: ``{file stem: path}``, sorted by name."""
        from stemkit.audio import AUDIO_SUFFIXES

        folder = self.job_dir(track, provider)
        if not folder.is_dir():
            return {}
        return {
            p.stem: p
            for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
        }

    def transcript_dir(self, track: str, source: str) -> Path:
        """Folder of one transcription (``transcript.txt``, ``words.json``, ``record.json``)."""
        return self.root / "transcripts" / _part(track) / _part(source, "source")

    def read_transcript_record(self, track: str, source: str) -> dict[str, Any] | None:
        """The ``record.json`` of a transcription, or None."""
        return _read_json(self.transcript_dir(track, source) / "record.json")

    def write_transcript_record(self, track: str, source: str, record: dict[str, Any]) -> None:
        """Write a transcription's ``record.json`` atomically."""
        _write_json(self.transcript_dir(track, source) / "record.json", record)

    def transcript_records(self, track: str) -> list[dict[str, Any]]:
        """Every transcription record of one track, sorted by source."""
        paths = sorted((self.root / "transcripts" / _part(track)).glob("*/record.json"))
        return [r for p in paths if (r := _read_json(p)) is not None]

    # -- the analyze phase ----------------------------------------------------------------------

    def analysis_dir(self, track: str) -> Path:
        """Folder of one track's analysis."""
        return self.root / "analysis" / _part(track)

    def analysis_table(self, track: str, name: str) -> Path:
        """Path of one per-track table (one of :data:`ANALYSIS_TABLES`)."""
        if name not in ANALYSIS_TABLES:
            raise ValueError(f"unknown analysis table {name!r}; one of {ANALYSIS_TABLES}")
        return self.analysis_dir(track) / f"{name}.csv"

    def figure(self, track: str, name: str) -> Path:
        """Path of one per-track figure (one of :data:`FIGURES`)."""
        if name not in FIGURES:
            raise ValueError(f"unknown figure {name!r}; one of {FIGURES}")
        return self.analysis_dir(track) / f"{name}.png"

    def read_analysis(self, track: str, name: str, columns: Sequence[str] = ()) -> pd.DataFrame:
        """One per-track table (empty, with ``columns``, if the track was not analysed)."""
        return read_table(self.analysis_table(track, name), columns)

    def write_analysis(self, track: str, name: str, df: pd.DataFrame) -> Path:
        """Write one per-track table."""
        path = self.analysis_table(track, name)
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)
        return path

    def read_all(self, name: str, columns: Sequence[str] = ()) -> pd.DataFrame:
        """One per-track table of every track, concatenated (batch order), with
        :func:`read_table`'s rule.

        The files are read as text and parsed together, a run of files with the same header
        at a time: a thousand tracks are one parse, not a thousand (5 ms each).

        Examples
        --------
        >>> import tempfile
        >>> b = BatchFolder(tempfile.mkdtemp())
        >>> b.write_info({"tracks": [{"name": "a"}, {"name": "b"}], "providers": ["x"]})
        >>> for t in ("a", "b"):
        ...     _ = b.write_analysis(t, "metrics", pd.DataFrame({"track": [t], "value": [1.5]}))
        >>> b.read_all("metrics", ["track", "value", "unit"]).values.tolist()
        [['a', 1.5, <NA>], ['b', 1.5, <NA>]]
        """
        runs: list[tuple[str, list[str]]] = []
        for t in self.tracks:
            path = self.analysis_table(t, name)
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            header, _, body = text.partition("\n")
            header = header.rstrip("\r")
            if not header:
                continue
            if body and not body.endswith("\n"):
                body += "\n"
            if runs and runs[-1][0] == header:
                runs[-1][1].append(body)
            else:
                runs.append((header, [body]))
        frames = []
        for header, bodies in runs:
            text = header + "\n" + "".join(bodies)
            df = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])
            if not df.empty:
                frames.append(df)
        if not frames:
            return pd.DataFrame(columns=list(columns))
        out = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        for c in columns:
            if c not in out:
                out[c] = pd.NA
        return out

    def status_path(self, track: str) -> Path:
        """``status.json`` of one track's analysis."""
        return self.analysis_dir(track) / "status.json"

    def write_status(self, track: str, status: dict[str, Any]) -> None:
        """Write a track's ``status.json`` atomically."""
        _write_json(self.status_path(track), status)

    def bracket_path(self, track: str) -> Path:
        """``bracket.json``: cached scores of the SiSEC bracket of one track."""
        return self.analysis_dir(track) / "bracket.json"

    def read_bracket(self, track: str) -> dict[str, Any]:
        """The cached bracket scores of a track (``{}`` when missing or damaged)."""
        data = _read_json(self.bracket_path(track))
        return data if isinstance(data, dict) and "rows" in data else {}

    def write_bracket(self, track: str, data: dict[str, Any]) -> None:
        """Write ``bracket.json`` atomically."""
        _write_json(self.bracket_path(track), data)

    def write_fingerprint(self, track: str, digest: str) -> None:
        """Write ``inputs.sha256`` atomically."""
        _write_text(self.fingerprint_path(track), digest)

    def fingerprint_path(self, track: str) -> Path:
        """``inputs.sha256``: digest of everything the track's last analysis read."""
        return self.analysis_dir(track) / "inputs.sha256"

    def work_dir(self, track: str) -> Path:
        """Scratch folder of one track's analysis (float audio to score in blocks)."""
        return self.analysis_dir(track) / ".work"

    # -- the compare phase and outputs ----------------------------------------------------------

    @property
    def tables_dir(self) -> Path:
        """``tables/``: the batch's tables, every track together."""
        return self.root / "tables"

    def write_table(self, name: str, df: pd.DataFrame, *, parquet: bool = True) -> Path:
        """Write one batch table as ``tables/<name>.csv`` (and ``.parquet``)."""
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        path = self.tables_dir / f"{name}.csv"
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)
        if parquet:
            with atomic_path(self.tables_dir / f"{name}.parquet") as tmp:
                df.to_parquet(tmp, index=False)
        return path

    # -- listening tests ------------------------------------------------------------------------

    @property
    def listening_dir(self) -> Path:
        """``listening/``: a listening test of the batch (see :mod:`stemkit.compare.listen`)."""
        return self.root / "listening"

    @property
    def listening_design_path(self) -> Path:
        """``listening/design.json``: what listeners see (trials, blinded names)."""
        return self.listening_dir / "design.json"

    @property
    def listening_key_path(self) -> Path:
        """``listening/key.csv``: blinded stimulus name -> condition; never shown to listeners."""
        return self.listening_dir / "key.csv"

    @property
    def listening_items_path(self) -> Path:
        """``listening/items.csv``: the items picked, with the rule that picked each."""
        return self.listening_dir / "items.csv"

    def stimulus_path(self, trial: str, name: str) -> Path:
        """``listening/stimuli/<trial>/<name>.flac``: one blinded, loudness-matched excerpt."""
        return self.listening_dir / "stimuli" / trial / f"{name}.flac"

    @property
    def listening_page_dir(self) -> Path:
        """``listening/page/``: the static MUSHRA page (``index.html`` and its audio)."""
        return self.listening_dir / "page"

    @property
    def webmushra_dir(self) -> Path:
        """``listening/webmushra/``: webMUSHRA's ``config.yaml`` and the audio it names."""
        return self.listening_dir / "webmushra"

    @property
    def listening_results_dir(self) -> Path:
        """``listening/results/``: rating files in the tidy format."""
        return self.listening_dir / "results"

    def read_batch_table(self, name: str, columns: Sequence[str] = ()) -> pd.DataFrame:
        """One batch table ``tables/<name>.csv`` (empty, with ``columns``, if not written)."""
        return read_table(self.tables_dir / f"{name}.csv", columns)

    @property
    def notebooks_dir(self) -> Path:
        """``notebooks/``: the executed notebooks."""
        return self.root / "notebooks"

    def notebook(self, kind: str, track: str | None = None) -> Path:
        """Path of an executed notebook: ``separate``, ``compare``, or ``analyze`` of a track."""
        if kind == "analyze":
            if track is None:
                raise ValueError("the analyze notebook is per track: give track=")
            return self.notebooks_dir / "analyze" / f"{track}.ipynb"
        return self.notebooks_dir / f"{kind}.ipynb"

    @property
    def report_path(self) -> Path:
        """``report.html``."""
        return self.root / "report.html"

    @property
    def track_pages_dir(self) -> Path:
        """``tracks/``: one HTML page per track, linked from the report's track table."""
        return self.root / "tracks"

    def track_page(self, track: str) -> Path:
        """``tracks/<track>.html``: one track's page of the report.

        Examples
        --------
        >>> BatchFolder("reports/demo").track_page("01-sunday-drive").name
        '01-sunday-drive.html'
        """
        return self.track_pages_dir / f"{_part(track)}.html"

    def track_page_href(self, track: str) -> str:
        """The link from ``report.html`` to a track's page: relative, URL-quoted (a track
        name may hold spaces, ``#`` or ``?``), so the report and its pages move together.

        Examples
        --------
        >>> BatchFolder("reports/demo").track_page_href("take #2")
        'tracks/take%20%232.html'
        """
        from urllib.parse import quote

        return f"tracks/{quote(_part(track))}.html"


def list_batches(root: str | os.PathLike) -> list[Path]:
    """The batch folders directly under ``root``, newest ``batch.json`` first.

    Examples
    --------
    >>> list_batches("/nonexistent")
    []
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and BatchFolder.is_batch(p)]
    return sorted(found, key=lambda p: ((p / "batch.json").stat().st_mtime, p.name), reverse=True)
