"""Manifests: which tracks a batch processes, with their optional references and transcript.

Two forms:

- a folder in the MUSDB18(-HQ) layout: one sub-folder per track holding ``mixture.<ext>`` and
  reference stems (``vocals.wav``, ``drums.wav``, ...); ``train/`` and ``test/`` sub-folders are
  searched too; an optional ``transcript.txt`` per track;
- a CSV with columns ``track``, ``mixture`` and optional reference columns named after stems
  (``vocals``, ``drums``, ...) and ``transcript``; relative paths are relative to the CSV.

Examples
--------
>>> tracks = load_manifest("data/demo")          # doctest: +SKIP
>>> tracks[0].name, sorted(tracks[0].references)  # doctest: +SKIP
('01-sunday-drive', ['bass', 'drums', 'other', 'vocals'])
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from stemkit.errors import ConfigError
from stemkit.stems import canonical

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".aiff", ".aif"}


@dataclass(frozen=True)
class Track:
    """One track of a batch."""

    name: str
    mixture: Path
    references: dict[str, Path] = field(default_factory=dict)
    transcript: str | None = None


#: longest track name (it is a folder name on every file system stemkit writes to)
MAX_NAME = 200
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def track_name(raw: str) -> str:
    """The track name a manifest entry stands for, or a :class:`ValueError` saying why it
    cannot be one. A name is one folder of the batch (``stems/<track>/...``): never a path.

    ``a``, ``a/`` and ``./a`` all name ``a`` (so a manifest listing them is a duplicate);
    absolute paths (also ``C:``), ``..``, nested names, control characters and ``\\`` are
    refused.

    Examples
    --------
    >>> track_name("./song #1?/")
    'song #1?'
    >>> track_name("../../etc")
    Traceback (most recent call last):
    ValueError: '../../etc' is a path, not a track name (no '..')
    """
    name = raw.strip()
    if not name:
        raise ValueError("the track name is empty")
    if _BAD_CHARS.search(name):
        raise ValueError(f"{raw!r} has a control character or '\\' (not a folder name)")
    if _DRIVE.match(name):
        raise ValueError(f"{raw!r} starts with a drive letter (an absolute Windows path)")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise ValueError(f"{raw!r} is an absolute path, not a track name")
    parts = [p for p in path.parts if p != "."]
    if ".." in parts:
        raise ValueError(f"{raw!r} is a path, not a track name (no '..')")
    if len(parts) != 1:
        raise ValueError(f"{raw!r} is a path, not a track name (no '/' inside a name)")
    name = parts[0]
    if name.startswith("."):
        raise ValueError(f"{raw!r} starts with '.' (hidden folder names are stemkit's own)")
    if len(name) > MAX_NAME:
        raise ValueError(f"{raw[:40]!r}... is longer than {MAX_NAME} characters")
    return name


def _track_from_folder(folder: Path) -> Track | None:
    mixture = next((p for p in sorted(folder.iterdir()) if p.stem == "mixture"), None)
    if mixture is None:
        return None
    refs = {
        canonical(p.name): p
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in AUDIO_SUFFIXES and p.stem != "mixture"
    }
    transcript = folder / "transcript.txt"
    try:
        name = track_name(folder.name)
    except ValueError as exc:
        raise ConfigError(f"manifest folder {folder}: track {exc}") from None
    return Track(
        name, mixture, refs, transcript.read_text().strip() if transcript.is_file() else None
    )


def _from_folder(root: Path) -> list[Track]:
    tracks = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        track = _track_from_folder(sub)
        if track is not None:
            tracks.append(track)
        elif sub.name in ("train", "test"):
            tracks += _from_folder(sub)
    return tracks


def _from_csv(path: Path) -> list[Track]:
    base = path.parent
    tracks = []
    seen: dict[str, int] = {}
    # utf-8-sig: a CSV saved by Excel starts with a byte-order mark that would hide "track"
    with path.open(newline="", encoding="utf-8-sig") as fh:
        try:
            rows = list(csv.DictReader(fh))
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"manifest {path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                hint="save the CSV as UTF-8",
            ) from None
        fieldnames = {(k or "").strip() for k in (rows[0] if rows else {})} or _header(path)
        missing = {"track", "mixture"} - fieldnames
        if missing:
            raise ConfigError(f"manifest {path} lacks column(s) {sorted(missing)}")
        for i, row in enumerate(rows, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k}
            if not row.get("track") or not row.get("mixture"):
                raise ConfigError(f"manifest {path} line {i}: track and mixture are required")
            try:
                name = track_name(row["track"])
            except ValueError as exc:
                raise ConfigError(
                    f"manifest {path} line {i}: track {exc}",
                    hint="a track name is a plain folder name, e.g. 01-song",
                ) from None
            first = seen.setdefault(name.casefold(), i)
            if first != i:
                raise ConfigError(
                    f"manifest {path} line {i}: track {row['track']!r} names the same folder "
                    f"as line {first} ({name!r})",
                    hint="give every track its own name",
                )
            refs = {
                canonical(k): base / v
                for k, v in row.items()
                if k not in ("track", "mixture", "transcript") and v
            }
            tracks.append(Track(name, base / row["mixture"], refs, row.get("transcript") or None))
    return tracks


def _header(path: Path) -> set[str]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return {h.strip() for h in next(csv.reader(fh), [])}


def load_manifest(source: str | Path) -> list[Track]:
    """Tracks of a MUSDB18-layout folder or a CSV manifest.

    Missing or unreadable audio is *not* an error here: it becomes a failed row when the track
    is processed, so one bad entry never stops a batch.

    Examples
    --------
    >>> load_manifest("no/such/folder")
    Traceback (most recent call last):
    stemkit.errors.ConfigError: manifest no/such/folder does not exist
    """
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"manifest {source} does not exist")
    tracks = _from_csv(path) if path.is_file() else _from_folder(path)
    if not tracks:
        raise ConfigError(
            f"manifest {source} lists no tracks",
            hint="a folder needs <track>/mixture.wav sub-folders",
        )
    names = [t.name for t in tracks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"manifest {source} names tracks twice: {dupes}")
    return tracks
