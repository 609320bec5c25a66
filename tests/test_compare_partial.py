"""``notebooks/compare.ipynb`` on a partly analysed batch: it says what is missing and how to
get it (no empty section, no bare heading), and shows tables whole (no "3 rows × 21 columns")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from stemkit.batch import execute, run_batch
from stemkit.compare import coverage
from stemkit.compare.report import notebook_setup

from .conftest import ROOT

COMPARE = ROOT / "notebooks" / "compare.ipynb"


def _outputs(nb_path) -> str:
    nb = json.loads(nb_path.read_text())
    texts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            texts.append("".join(data.get("text/markdown", "")))
            texts.append("".join(data.get("text/html", "")))
            texts.append("".join(out.get("text", "")))
    return "\n".join(texts)


@pytest.fixture(scope="module")
def partly(sandbox, track_dir, tmp_path_factory) -> Path:
    """A two-track batch (sourceress) whose second track's analysis is gone, and that track
    has a script: as a batch looks while its analysis is still under way."""
    out = tmp_path_factory.mktemp("partly") / "batch"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEMKIT_SOURCERESS_POLL_INTERVAL", "0.05")
        mp.setenv("STEMKIT_SOURCERESS_POLL_MAX", "0.2")
        result = run_batch(track_dir, ["sourceress"], out, workers=2, transcribe=False)
    assert (out / "batch.json").is_file(), result.notebook_errors
    info = json.loads((out / "batch.json").read_text())
    second = info["tracks"][1]["name"]
    info["tracks"][1]["transcript"] = "a script for the second track"
    (out / "batch.json").write_text(json.dumps(info))
    shutil.rmtree(out / "analysis" / second)
    return out


def test_a_partly_analysed_batch_says_what_is_missing_and_how_to_get_it(partly, tmp_path):
    first, second = coverage.BatchFolder(partly).tracks
    assert coverage.unanalysed(partly) == [second]

    note = coverage.intelligibility_note(partly)
    assert f"1 track has a script but is not analysed yet ({second})" in note
    assert "--out " in note and f"analyze_batch({str(partly.resolve())!r}" in note
    assert "No track of this batch has a script" not in note
    assert coverage.track_note(partly, second).startswith("Not analysed yet")

    out = execute(COMPARE, tmp_path / "compare.ipynb", {"batch_dir": str(partly)})
    shown = _outputs(out)
    assert f"has a script but is not analysed yet ({second})" in shown
    assert shown.count("Not analysed yet: no scores, verdicts or figures") == 1  # the second
    assert "No track of this batch has a script" not in shown
    assert " rows × " not in shown  # no table cut short


def test_tables_are_shown_whole():
    wide = pd.DataFrame([[float(i * j) for j in range(27)] for i in range(3)])
    notebook_setup()
    html = wide._repr_html_()
    assert "3 rows × 27 columns" not in html and "…" not in html and "..." not in html
    long = pd.DataFrame({"x": range(150)})
    assert "150 rows" not in long._repr_html_()
