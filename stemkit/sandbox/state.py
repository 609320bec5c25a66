"""Durable sandbox state: what a vendor client relies on survives a restart (``kill -9`` too).

With a state folder (``SandboxConfig.state_dir``, ``stemkit serve --state DIR``) every record
an API keeps (uploads, assets, jobs with their status, events, timestamps and outputs, the
accounts of issued tokens, the submission counters) is a JSON file, written atomically
(:mod:`stemkit.atomic`: write, fsync, rename) each time it changes; the signing key of the
signed URLs and the admin key are files of mode 0600. At start the records are read back and
the APIs queue again every job that was queued or running when the server died. Without a
state folder the same classes keep everything in memory only (the default).

Kept per process only (a restart starts them afresh): the injected-fault counters, the Tasks
API's rate-limit window and the log of completion callbacks.

=====================================  ===================================================
path (under the state folder)          what
=====================================  ===================================================
``<api>/<kind>/<id>.json``             one record (``sourceress/separations/...``,
                                       ``audioshake/jobs/...``, ``loom/uploads/...``)
``sourceress/tokens/<sha256>.json``    a bearer token's account and expiry (the token
                                       itself is not stored, only its hash)
``<api>/stats.json``                   the submission counters of ``/_sandbox/stats``
``signing.key`` / ``admin.key``        the keys (mode 0600)
``files/``                             uploads and outputs (the default ``data_dir``)
``server.json``                        the port it last ran on (a rerun may reuse it)
``.lock`` / ``.owner``                 one sandbox process per state folder
=====================================  ===================================================

Examples
--------
>>> import tempfile
>>> state = SandboxState(tempfile.mkdtemp())
>>> jobs = state.records("demo", "jobs", encode=dict, decode=dict)
>>> jobs["j1"] = {"status": "queued"}
>>> state.close()
>>> again = SandboxState(state.root)
>>> again.records("demo", "jobs", encode=dict, decode=dict)["j1"]
{'status': 'queued'}
>>> again.close()
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from stemkit.atomic import write_json

log = logging.getLogger("stemkit.sandbox.state")
T = TypeVar("T")


class StateBusy(RuntimeError):
    """Another sandbox process holds the state folder."""


def secret_file(path: str | os.PathLike, nbytes: int = 32) -> bytes:
    """The key kept in ``path`` (mode 0600), created with ``nbytes`` random bytes if missing.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "k.key"
    >>> secret_file(p) == secret_file(p), oct(p.stat().st_mode & 0o777)
    (True, '0o600')
    """
    path = Path(path)
    if path.is_file():
        try:
            return bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise ValueError(
                f"the sandbox key file {path} is not hex: delete it to make a new key (links "
                "the sandbox signed with the old one stop working)"
            ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(nbytes)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return key


def token_hash(token: str) -> str:
    """The name a bearer token is stored under (its SHA-256): the token itself is never kept.

    Examples
    --------
    >>> len(token_hash("abc"))
    64
    """
    return hashlib.sha256(token.encode()).hexdigest()


class Records(Generic[T]):
    """Records of one kind (``id -> object``), in memory, and on disk when the state is durable.

    Reads come from memory. ``records[id] = obj`` and :meth:`save` (after ``obj`` changed)
    write ``encode(obj)`` atomically to ``<folder>/<id>.json``; at start the folder's files
    are read back with ``decode``. A record that cannot be read (a bug of an older sandbox) is
    logged and left out, never fatal.

    Parameters
    ----------
    folder : Path or None
        Where the records live; None keeps them in memory only.
    encode, decode : callable
        Object -> JSON-able dict, and back.
    """

    def __init__(
        self,
        folder: Path | None,
        encode: Callable[[T], dict[str, Any]],
        decode: Callable[[dict[str, Any]], T],
    ) -> None:
        self.folder = folder
        self._encode = encode
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()
        self._closed = False
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            for tmp in folder.glob(".*.partial"):  # a write a kill cut short: the old file holds
                tmp.unlink(missing_ok=True)
            for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
                try:
                    self._items[path.stem] = decode(json.loads(path.read_text("utf-8")))
                except Exception:  # noqa: BLE001 - one bad record never stops the sandbox
                    log.exception("sandbox state: cannot read %s; left out", path)

    def __getitem__(self, key: str) -> T:
        return self._items[key]

    def __setitem__(self, key: str, value: T) -> None:
        with self._lock:
            self._items[key] = value
        self.save(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def get(self, key: str, default: T | None = None) -> T | None:
        """Record ``key``, or ``default``."""
        return self._items.get(key, default)

    def values(self) -> list[T]:
        """A snapshot of the records, oldest first."""
        return list(self._items.values())

    def items(self) -> list[tuple[str, T]]:
        """A snapshot of ``(id, record)`` pairs, oldest first."""
        return list(self._items.items())

    def save(self, key: str) -> None:
        """Write record ``key`` again (after it changed); a no-op in memory or once closed."""
        if self.folder is None:
            return
        with self._lock:  # snapshot and write in one step: the last change is the last write
            if self._closed or key not in self._items:
                return
            write_json(self.folder / f"{key}.json", self._encode(self._items[key]))

    def save_all(self) -> None:
        """Write every record again."""
        for key in self:
            self.save(key)

    def close(self) -> None:
        """No more writes (a job still running in a stopped server changes nothing on disk)."""
        with self._lock:
            self._closed = True


class Counters(dict):
    """Counters of an API (``/_sandbox/stats``), written to ``stats.json`` on each change.

    Examples
    --------
    >>> c = Counters(None, {"jobs": 0})
    >>> c.bump("jobs"); c.bump("jobs", 2); dict(c)
    {'jobs': 3}
    """

    def __init__(self, path: Path | None, initial: dict[str, int]) -> None:
        super().__init__(initial)
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        if path is not None and path.is_file():
            try:
                self.update({k: int(v) for k, v in json.loads(path.read_text()).items()})
            except (ValueError, TypeError, AttributeError):
                log.exception("sandbox state: cannot read %s; counting from 0", path)

    def bump(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key``."""
        with self._lock:
            self[key] = self.get(key, 0) + n
            if self.path is not None and not self._closed:
                write_json(self.path, dict(self))

    def close(self) -> None:
        """No more writes to ``stats.json`` (a stopped server's late counts change nothing)."""
        with self._lock:
            self._closed = True


class SandboxState:
    """The state folder of one sandbox process (or nothing: ``root=None``, in memory).

    Opening a folder takes its lock (:mod:`filelock`): a second sandbox on the same folder
    raises :class:`StateBusy` naming the process that holds it. :meth:`close` releases it.

    Parameters
    ----------
    root : path or None
        The state folder (created); None keeps every record in memory.
    """

    def __init__(self, root: str | os.PathLike | None) -> None:
        from filelock import FileLock, Timeout

        self.root = Path(root).resolve() if root is not None else None
        self._lock = None
        self._closables: list[Records | Counters] = []
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        # the records hold callback URLs with their webhook tokens: for this user only
        self.root.chmod(0o700)
        owner = self.root / ".owner"
        lock = FileLock(self.root / ".lock", timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            holder = owner.read_text().strip() if owner.is_file() else "unknown process"
            raise StateBusy(
                f"the sandbox state folder {self.root} is in use by another sandbox ({holder}): "
                "stop that one first, or give this one another --state folder"
            ) from None
        self._lock = lock
        owner.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")

    @property
    def durable(self) -> bool:
        """True when records are kept on disk."""
        return self.root is not None

    def records(
        self,
        api: str,
        kind: str,
        *,
        encode: Callable[[T], dict[str, Any]],
        decode: Callable[[dict[str, Any]], T],
    ) -> Records[T]:
        """The records of ``kind`` of ``api`` (read back from the folder when durable)."""
        folder = self.root / api / kind if self.root is not None else None
        records = Records(folder, encode, decode)
        self._closables.append(records)
        return records

    def counters(self, api: str, initial: dict[str, int]) -> Counters:
        """The counters of ``api`` (read back from ``<api>/stats.json`` when durable)."""
        path = self.root / api / "stats.json" if self.root is not None else None
        counters = Counters(path, initial)
        self._closables.append(counters)
        return counters

    def key(self, name: str) -> bytes | None:
        """The key ``name`` (``signing``, ``admin``) kept in the folder, None in memory."""
        return secret_file(self.root / f"{name}.key") if self.root is not None else None

    def last_port(self) -> int | None:
        """The port the sandbox of this folder last ran on, if known."""
        path = self.root / "server.json" if self.root is not None else None
        try:
            return int(json.loads(path.read_text())["port"]) if path else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remember_port(self, port: int) -> None:
        """Note the port this sandbox runs on (for :meth:`last_port`)."""
        if self.root is not None:
            write_json(self.root / "server.json", {"port": port})

    def close(self) -> None:
        """Stop writing and release the folder (idempotent)."""
        for item in self._closables:
            item.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
