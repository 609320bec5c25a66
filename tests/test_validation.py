"""Known-answer validation: every check flags the defect it exists for, and only that."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemkit.analyze.validation import CASES, _single, validate_checks
from stemkit.cli import app
from stemkit.dsp.defects import Defects

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> Path:
    """One music and one speech track of the demo data, cut to 6 s."""
    root = tmp_path_factory.mktemp("known")
    for name in ("01-sunday-drive", "06-speech-kitchen"):
        (root / name).mkdir()
        for wav in (DEMO / name).glob("*.wav"):
            y, sr = sf.read(wav, dtype="float32", always_2d=True)
            sf.write(root / name / wav.name, y[: 6 * sr], sr, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def result(material):
    return validate_checks(material)


def test_every_defect_at_its_threshold_is_flagged(result):
    r = result.recall
    at = r[r["at_threshold"]]
    assert set(at["defect"]) == set(Defects.model_fields) - {"stems"}
    assert (at["tested"] > 0).all()
    missed = at[at["recall"] < 1]
    assert missed.empty, missed


def test_clean_stems_raise_no_alarm(result):
    fa = result.false_alarms
    assert fa["judged"].min() > 0
    assert fa["false_alarms"].sum() == 0, fa[fa["false_alarms"] > 0]


def test_known_answer_nsdr_is_exact(result):
    n = result.nsdr
    assert {10.0, 20.0, 30.0} <= set(n["known"])  # recon_db cases; the VAD cases add more
    assert float(n["error"].abs().max()) <= 0.05
    assert result.goal_met


def test_a_check_that_misses_is_reported(material):
    """The validation can fail: a defect too weak for its check shows recall 0."""
    weak = [c for c in CASES if c.defect == "gain_db"][0]
    tiny = replace(weak, strength="-0.1 dB", make=_single(gain_db=-0.1))
    r = validate_checks(material, tracks=1, cases=[tiny]).recall
    assert r["recall"].tolist() == [0.0]


def test_the_cli_prints_the_table(material):
    run = CliRunner().invoke(app, ["validate", str(material), "--tracks", "1", "--seconds", "4"])
    assert run.exit_code == 0, run.output
    assert "False alarms on clean stems" in run.output
    assert "bandwidth_hz" in run.output and "dropout_s" in run.output
