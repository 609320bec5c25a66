"""The analysis pool of a streaming batch survives a worker that dies (e.g. killed for memory):
the track that worker held fails with a message, the next tracks get fresh workers."""

from __future__ import annotations

import os
import signal

from stemkit.batch import AnalysisPool


def test_a_dead_worker_fails_its_track_and_the_next_track_still_runs(tmp_path):
    with AnalysisPool(tmp_path, workers=1) as pool:
        pool.submit("first")  # no such track: its notebook fails, once a worker runs it
        (pid,) = list(pool._pool._processes)  # the worker holding "first"
        os.kill(pid, signal.SIGKILL)
        results = {}
        while len(results) < 1:
            results.update(pool.finished(timeout=None))
        assert "BrokenProcessPool" in type(results["first"]).__name__ or "terminated" in str(
            results["first"]
        )
        pool.submit("second")  # a fresh pool, not BrokenProcessPool raised at the caller
        while len(results) < 2:
            results.update(pool.finished(timeout=None))
    # the second track ran on a live worker: its own failure (no such track), not the pool's
    assert "second" in results and "BrokenProcessPool" not in type(results["second"]).__name__
