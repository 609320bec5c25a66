"""``notebooks/analyze.ipynb`` opened on a batch that was already analysed: it changes nothing
in the batch unless asked (``save = True``, what the batch's own run sets), and the analysis
gives the same numbers, bit for bit, run after run and whatever the BLAS thread count."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from stemkit.analyze import track as steps
from stemkit.batch import execute, run_batch

from .conftest import ROOT

ANALYZE = ROOT / "notebooks" / "analyze.ipynb"


@pytest.fixture(scope="module")
def batch(sandbox, track_dir, tmp_path_factory) -> Path:
    """A two-track, one-provider batch, separated and analysed."""
    out = tmp_path_factory.mktemp("analyze-nb") / "batch"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEMKIT_SOURCERESS_POLL_INTERVAL", "0.05")
        mp.setenv("STEMKIT_SOURCERESS_POLL_MAX", "0.2")
        result = run_batch(track_dir, ["sourceress"], out, workers=2, transcribe=False)
    assert (out / "batch.json").is_file(), result.notebook_errors
    return out


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file of the folder (hidden ones included) and its digest."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _track(batch: Path) -> str:
    from stemkit.batchdir import BatchFolder

    return BatchFolder(batch).tracks[0]


def test_opening_the_notebook_leaves_the_batch_as_it_was(batch, tmp_path):
    track = _track(batch)
    work = batch / "analysis" / track / ".work"
    work.mkdir()  # scratch left by an analysis still running: not ours to delete
    (work / "busy.wav").write_bytes(b"RIFF")
    before = _snapshot(batch)
    assert f"analysis/{track}/metrics.csv" in before
    out = execute(ANALYZE, tmp_path / "analyze.ipynb", {"batch_dir": str(batch), "track": track})
    assert _snapshot(batch) == before
    assert "unchanged" in out.read_text()  # the notebook says it wrote nothing


def test_save_true_writes_the_analysis(batch, tmp_path):
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(batch, copy)
    track = _track(copy)
    (copy / "analysis" / track / "metrics.csv").unlink()
    params = {"batch_dir": str(copy), "track": track, "save": True, "figures": False}
    execute(ANALYZE, tmp_path / "analyze.ipynb", params)
    assert (copy / "analysis" / track / "metrics.csv").is_file()


def test_the_analysis_is_deterministic(batch):
    """Two runs, in this process with one and with several BLAS threads, and the batch's own
    run (in worker processes) give identical tables."""
    from threadpoolctl import threadpool_limits

    track = _track(batch)
    with threadpool_limits(limits=1):
        first = steps.analyze_track(batch, track, figures=False, save=False)
    with threadpool_limits(limits=2):
        second = steps.analyze_track(batch, track, figures=False, save=False)
    assert first.bracket == second.bracket == "cached"  # the batch's cache is read, not written
    assert {"sdr", "sir", "sar", "isr", "nsdr", "si_sdr"} <= set(first.metrics["metric"])
    pd.testing.assert_frame_equal(first.metrics, second.metrics, check_exact=True)
    pd.testing.assert_frame_equal(
        first.verdicts.reset_index(drop=True),
        second.verdicts.reset_index(drop=True),
        check_exact=True,
    )
    saved = pd.read_csv(batch / "analysis" / track / "metrics.csv")
    ours = first.metrics.reset_index(drop=True)
    pd.testing.assert_frame_equal(
        saved[ours.columns].astype(ours.dtypes.to_dict()), ours, check_exact=True
    )
    # and with the bracket computed afresh (not from the cache): the same bracket scores
    fresh = Path(str(batch) + "-fresh")
    import shutil

    shutil.copytree(batch, fresh)
    (fresh / "analysis" / track / "bracket.json").unlink()
    again = steps.analyze_track(fresh, track, figures=False, save=False)
    assert again.bracket == "computed"
    pd.testing.assert_frame_equal(
        again.metrics.reset_index(drop=True), ours, check_exact=True, check_dtype=False
    )
