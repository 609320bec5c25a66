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
from dataclasses import dataclass, field
from pathlib import Path

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
    return Track(
        folder.name, mixture, refs, transcript.read_text().strip() if transcript.is_file() else None
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
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"track", "mixture"} - set(reader.fieldnames or [])
        if missing:
            raise ConfigError(f"manifest {path} lacks column(s) {sorted(missing)}")
        for i, row in enumerate(reader, start=2):
            if not row.get("track") or not row.get("mixture"):
                raise ConfigError(f"manifest {path} line {i}: track and mixture are required")
            refs = {
                canonical(k): base / v
                for k, v in row.items()
                if k not in ("track", "mixture", "transcript") and v
            }
            tracks.append(
                Track(row["track"], base / row["mixture"], refs, row.get("transcript") or None)
            )
    return tracks


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
