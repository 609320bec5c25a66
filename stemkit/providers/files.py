"""Files from a service, handled safely: checksums, names that stay in their folder, zip
archives that cannot escape it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from stemkit.atomic import atomic_write
from stemkit.errors import (
    IntegrityError,
)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks.

    Examples
    --------
    >>> import tempfile
    >>> p = tempfile.NamedTemporaryFile(delete=False); _ = p.write(b"abc"); p.close()
    >>> sha256_file(p.name)[:12]
    'ba7816bf8f01'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def safe_join(root: str | os.PathLike, name: str) -> Path:
    """``root / name``, refusing names that would leave ``root`` (``..``, absolute paths).

    Examples
    --------
    >>> safe_join("/tmp/out", "vocals.wav").name
    'vocals.wav'
    >>> safe_join("/tmp/out", "../etc/passwd")
    Traceback (most recent call last):
    stemkit.errors.IntegrityError: refusing file name '../etc/passwd': it leaves the output folder
    """
    root_p = Path(root).resolve()
    target = (root_p / name).resolve()
    if os.path.isabs(name) or not target.is_relative_to(root_p) or target == root_p:
        raise IntegrityError(f"refusing file name {name!r}: it leaves the output folder")
    return target


#: most entries and uncompressed bytes a zip from a service may hold (a zip bomb is refused)
MAX_ZIP_ENTRIES = 1000
MAX_ZIP_BYTES = 8 << 30


def safe_extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_entries: int = MAX_ZIP_ENTRIES,
    max_bytes: int = MAX_ZIP_BYTES,
) -> list[Path]:
    """Extract a zip from a server into ``dest``, refusing entries that would leave it
    (``..``, absolute paths, drive letters), symbolic links, more than ``max_entries``
    entries and more than ``max_bytes`` uncompressed (declared, and counted as written).

    Examples
    --------
    >>> import io, zipfile, tempfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     zf.writestr("../evil.wav", b"x")
    >>> _ = open(tempfile.gettempdir() + "/evil.zip", "wb").write(buf.getvalue())
    >>> safe_extract(tempfile.gettempdir() + "/evil.zip", tempfile.mkdtemp())
    Traceback (most recent call last):
    stemkit.errors.IntegrityError: refusing file name '../evil.wav': it leaves the output folder
    """
    import stat
    import zipfile

    dest = Path(dest)
    out = []
    written = 0
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        if len(infos) > max_entries:
            raise IntegrityError(f"refusing zip: {len(infos)} entries, over {max_entries}")
        declared = sum(i.file_size for i in infos)
        if declared > max_bytes:
            raise IntegrityError(
                f"refusing zip: {declared} bytes uncompressed, over the limit of {max_bytes}"
            )
        for info in infos:  # check everything before writing anything
            if stat.S_ISLNK(info.external_attr >> 16):
                raise IntegrityError(f"refusing zip entry {info.filename!r}: it is a symlink")
            if ":" in info.filename or info.filename.startswith(("/", "\\")):
                raise IntegrityError(f"refusing file name {info.filename!r}: absolute path")
            safe_join(dest, info.filename)
        for info in infos:
            if info.is_dir():
                continue
            target = safe_join(dest, info.filename)
            with zf.open(info) as src, atomic_write(target, "wb") as dst:
                while block := src.read(1 << 20):
                    written += len(block)
                    if written > max_bytes:
                        raise IntegrityError(
                            f"refusing zip: more than {max_bytes} bytes uncompressed"
                        )
                    dst.write(block)
            out.append(target)
    return out
