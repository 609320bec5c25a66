"""Leakage: the stem × leaked-source matrix, from the BSS Eval v4 projection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stemkit.analyze import metrics
from stemkit.analyze.bsseval import LEAKAGE_FLOOR_DB, ArraySignals, bss_eval_v4
from stemkit.compare.report import BatchTables

SR = 4000


def leaky_set(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    refs = rng.standard_normal((3, 4 * SR, 2))
    ests = refs.copy()
    ests[0] = refs[0] + 0.1 * refs[1]  # source 1 leaks into stem 0 at -20 dB
    ests[1] = refs[1] + 1e-3 * rng.standard_normal(refs[1].shape)  # clean
    delayed = np.roll(refs[0], 3, axis=0)
    ests[2] = refs[2] + 0.5 * delayed  # source 0, delayed 3 samples: still source 0
    return refs, ests


def test_leakage_matrix_finds_what_leaked_and_how_much():
    refs, ests = leaky_set()
    leak = bss_eval_v4(refs, ests, window=SR, hop=SR, filters_len=16).leakage
    assert leak.shape == (3, 3)
    # energy shares of the estimate: 0.01 / 1.01 and 0.25 / 1.25
    assert leak[0, 1] == pytest.approx(10 * np.log10(0.01 / 1.01), abs=0.2)
    assert leak[2, 0] == pytest.approx(10 * np.log10(0.25 / 1.25), abs=0.2)
    assert np.diag(leak) == pytest.approx(
        [10 * np.log10(1 / 1.01), 0.0, 10 * np.log10(1 / 1.25)], abs=0.2
    )
    assert leak[1, 0] < -50 and leak[1, 2] < -50 and leak[0, 2] < -50
    assert leak.min() >= LEAKAGE_FLOOR_DB


def test_leakage_rows_reach_the_report_as_one_matrix_per_provider():
    refs, ests = leaky_set(1)
    stems = ["vocals", "drums", "bass"]
    scored = metrics.score(ArraySignals(refs), {"acme": ArraySignals(ests)}, stems, SR)
    rows = [
        {"track": t, "provider": "acme", "stem": stem, "metric": m, "variant": v, "value": x}
        for t in ("t1", "t2")
        for stem, values in scored["acme"].items()
        for (m, v), x in values.items()
    ]
    assert {v for (m, v) in scored["acme"]["vocals"] if m == "leakage"} == {
        "from_vocals",
        "from_drums",
        "from_bass",
    }
    empty = pd.DataFrame()
    b = BatchTables(
        None, {"providers": ["acme"]}, empty, pd.DataFrame(rows), empty, empty, empty, empty
    )
    [(provider, matrix)] = b.leakage_matrices().items()
    assert provider == "acme"
    assert matrix.index.tolist() == stems and matrix.columns.tolist() == stems
    assert matrix.loc["vocals", "drums"] == pytest.approx(-20.0, abs=0.3)
    assert matrix.loc["bass", "vocals"] == pytest.approx(-7.0, abs=0.3)
