"""Atomic writes of record files: a reader (or a rerun after ``kill -9`` or a power cut) sees
the old file or the new one, never half of one.

Every file that is a *record* (``batch.json``, ``record.json``, ``bracket.json``,
``status.json``, tables, fingerprints, downloads) is written through :func:`atomic_write`:
write a temporary file beside the target (its name unique per process and thread, so two
writers never share it), ``fsync`` it, rename it over the target, ``fsync`` the folder.

Examples
--------
>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
>>> write_json(p, {"x": 1})
>>> p.read_text()
'{\\n  "x": 1\\n}'
>>> sorted(q.name for q in p.parent.iterdir())
['a.json']
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: the suffix of every temporary file (``stemkit publish`` never copies them)
PARTIAL = ".partial"


def temp_name(path: str | os.PathLike) -> Path:
    """A temporary name beside ``path``, unique to this process and thread.

    Examples
    --------
    >>> temp_name("/x/record.json").name.startswith(".record.json.")
    True
    """
    path = Path(path)
    tag = f"{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}"
    return path.with_name(f".{path.name}.{tag}{PARTIAL}")


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Rename a finished, closed temporary file over ``path`` and make the rename durable."""
    path = Path(path)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kw: Any) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path`` (fsynced), on an
    exception it is removed and ``path`` is untouched.

    Parameters
    ----------
    path : path
        The file to (re)write; its folder is created.
    mode : str
        ``"w"`` (text, UTF-8 by default) or ``"wb"``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
    >>> with atomic_write(p) as fh:
    ...     _ = fh.write("hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    if "b" not in mode:
        open_kw.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **open_kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path for writers that want a file name (``DataFrame.to_csv``,
    ``soundfile.write``); renamed over ``path`` (fsynced) when the block succeeds.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> with atomic_path(p) as tmp:
    ...     _ = tmp.write_text("a,b")
    >>> p.read_text()
    'a,b'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (see :func:`atomic_write`)."""
    write_text(path, json.dumps(data, indent=2, default=str))
