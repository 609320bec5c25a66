"""The ledger: what was submitted and downloaded, so a rerun never pays twice.

One SQLite file per batch folder (``ledger.sqlite``). Each (track, provider, request) row moves
through ``submitting → creating → submitted → done`` (or ``failed``, or ``ambiguous`` when a
submission may have been accepted without an answer, or ``abandoned`` when a person gave a job
up: :meth:`Ledger.resolve`, or ``lost`` when the vendor no longer knows a submitted job);
downloaded files are recorded with their size and SHA-256, and are trusted on a rerun only if
they still match.

The ledger holds ids, states, paths, checksums and error messages, never a credential (error
messages are redacted when the error is built).

Examples
--------
>>> import tempfile
>>> led = Ledger(tempfile.mkdtemp())
>>> key = led.request_key("mixture-sha", ["vocals", "accompaniment"], {})
>>> led.mark("t1", "sourceress", key, "submitted", job={"job_id": "abc"})
>>> led.get("t1", "sourceress", key)["state"]
'submitted'
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stemkit.http import redact

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    track TEXT NOT NULL, provider TEXT NOT NULL, request_key TEXT NOT NULL,
    state TEXT NOT NULL, job_id TEXT, job TEXT, error TEXT, attempts INTEGER DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (track, provider, request_key)
);
CREATE TABLE IF NOT EXISTS files (
    track TEXT NOT NULL, provider TEXT NOT NULL, stem TEXT NOT NULL,
    path TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (track, provider, stem)
);
"""
STATES = ("submitting", "creating", "submitted", "done", "failed", "ambiguous", "abandoned", "lost")
#: what a person can decide about a job (``stemkit jobs resolve``)
RESOLUTIONS = {"resubmit": "failed", "abandon": "abandoned"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Ledger:
    """SQLite ledger of one batch folder; safe to share between threads."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / "ledger.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def request_key(mixture_sha: str, stems: Sequence[str], options: dict[str, Any]) -> str:
        """Identity of a request: same input file, stems and options → same key."""
        blob = json.dumps([mixture_sha, list(stems), options], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def get(self, track: str, provider: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE track=? AND provider=? AND request_key=?",
                (track, provider, key),
            ).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["job"] = json.loads(out["job"]) if out["job"] else None
        return out

    def mark(
        self,
        track: str,
        provider: str,
        key: str,
        state: str,
        *,
        job: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record a state change (``job`` and ``error`` kept unless replaced)."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        job_json = json.dumps(job, default=str) if job is not None else None
        with self._lock, self._db:
            self._db.execute(
                """INSERT INTO jobs (track, provider, request_key, state, job_id, job, error,
                                     attempts, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (track, provider, request_key) DO UPDATE SET
                     state=excluded.state,
                     job_id=COALESCE(excluded.job_id, jobs.job_id),
                     job=COALESCE(excluded.job, jobs.job),
                     error=excluded.error,
                     attempts=jobs.attempts + (excluded.state = 'submitting'),
                     updated_at=excluded.updated_at""",
                (
                    track,
                    provider,
                    key,
                    state,
                    (job or {}).get("job_id"),
                    job_json,
                    redact(error) if error else None,
                    int(state == "submitting"),
                    _now(),
                ),
            )

    def resolve(self, track: str, provider: str, action: str) -> int:
        """A person's decision about the unfinished jobs of one track and provider:
        ``"resubmit"`` (the next run submits again: it pays again) or ``"abandon"`` (the next
        runs report the job failed and never submit it). Returns the number of rows changed.

        Examples
        --------
        >>> import tempfile
        >>> led = Ledger(tempfile.mkdtemp())
        >>> led.mark("t1", "sourceress", "k", "ambiguous", error="lost answer")
        >>> led.resolve("t1", "sourceress", "abandon")
        1
        >>> led.get("t1", "sourceress", "k")["state"]
        'abandoned'
        """
        if action not in RESOLUTIONS:
            raise ValueError(f"action must be one of {sorted(RESOLUTIONS)}")
        state = RESOLUTIONS[action]
        note = f"{action} decided by hand (stemkit jobs resolve)"
        with self._lock, self._db:
            cur = self._db.execute(
                "UPDATE jobs SET state=?, error=?, updated_at=? "
                "WHERE track=? AND provider=? AND state != 'done'",
                (state, note, _now(), track, provider),
            )
        return cur.rowcount

    def record_file(self, track: str, provider: str, stem: str, path: Path, sha256: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                """INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (track, provider, stem, str(path), Path(path).stat().st_size, sha256, _now()),
            )

    def files(self, track: str, provider: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM files WHERE track=? AND provider=? ORDER BY stem", (track, provider)
            ).fetchall()
        return [dict(r) for r in rows]

    def jobs(self) -> list[dict[str, Any]]:
        """Every job row (for ``stemkit jobs`` and progress displays)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT track, provider, state, job_id, attempts, error, updated_at FROM jobs "
                "ORDER BY track, provider"
            ).fetchall()
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs per state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {r[0]: r[1] for r in rows}
