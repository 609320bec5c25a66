"""Publish a batch's results to a shared store: any fsspec URL.

A QA team reads reports from a bucket or a share, not from the machine that ran the batch.
:func:`publish` copies what people read (``report.html`` and its track pages ``tracks/``,
the ``tables/``, each track's ``analysis/`` files and the executed ``notebooks/``) to a URL
fsspec understands: ``s3://bucket/qa/run-12`` (with ``s3fs`` installed), ``gs://…``
(``gcsfs``), a mounted share (``/mnt/qa/run-12`` or ``file://…``), ``memory://`` in tests.
Stems, the ledger and anything else stay where they are: they are large, and the ledger
belongs to the machine that resumes.

With the Dask executor on a cluster, the batch folder itself must be on a file system every
worker mounts (the workers read the stems and write ``analysis/`` there); :func:`publish`
is for sharing the outcome.

Examples
--------
>>> publish("reports/demo", "s3://qa-bucket/runs/2026-11-26")  # doctest: +SKIP
['s3://qa-bucket/runs/2026-11-26/report.html', ...]
"""

from __future__ import annotations

from pathlib import Path

from stemkit.batchdir import PUBLISHED, BatchFolder
from stemkit.errors import StemkitError

# what :func:`publish` copies is :data:`stemkit.batchdir.PUBLISHED`, relative to the batch
# folder (folders are copied whole, except files named in :data:`SKIPPED_SUFFIXES`)
#: never published: partial downloads, audio written as scratch
SKIPPED_SUFFIXES = (".part", ".wav", ".flac")


def _files(out: Path) -> list[Path]:
    found = []
    for name in PUBLISHED:
        path = out / name
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix not in SKIPPED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(out).parts)
            )
    return found


def publish(out: str | Path, url: str) -> list[str]:
    """Copy a batch folder's report, track pages, tables, analyses and notebooks to ``url``;
    return the
    URLs written. Files are uploaded whole, each to a temporary name first where the store
    supports renames, so a reader never sees half a report.

    Raises :class:`~stemkit.errors.StemkitError` if ``out`` holds no report yet, or the URL's
    protocol is unknown to fsspec (install its package, e.g. ``s3fs``).

    Examples
    --------
    >>> import fsspec
    >>> urls = publish("reports/demo", "memory://qa/demo")  # doctest: +SKIP
    >>> fsspec.filesystem("memory").exists("/qa/demo/report.html")  # doctest: +SKIP
    True
    """
    import fsspec

    out = BatchFolder(out).root
    if not BatchFolder(out).report_path.is_file():
        raise StemkitError(f"{out} has no report.html to publish", hint="run the batch first")
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise StemkitError(f"cannot publish to {url}: {exc}") from None
    root = root.rstrip("/")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    written = []
    for path in _files(out):
        target = f"{root}/{path.relative_to(out).as_posix()}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        if protocol in ("file", "local"):  # a share: write aside, then rename into place
            fs.put_file(str(path), target + ".part")
            fs.mv(target + ".part", target)
        else:  # object stores publish an object only once it is complete
            fs.put_file(str(path), target)
        written.append(fs.unstrip_protocol(target))
    return written
