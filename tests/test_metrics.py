"""separation_metrics: museval's numbers whatever the order of the sources, even with a
centre-panned (identical-channel) reference, the case that made G singular."""

from __future__ import annotations

import numpy as np
import pytest

from stemkit.bsseval import museval_metrics
from stemkit.metrics import separation_metrics


def test_centre_panned_reference_in_any_position_matches_museval():
    rng = np.random.default_rng(4)
    sr, n = 8000, 3 * 8000
    voice = rng.standard_normal(n).astype(np.float32)
    refs = {
        "accompaniment": rng.standard_normal((2, n)).astype(np.float32),
        "vocals": np.stack([voice, voice]),
    }  # identical channels, listed second
    mix = refs["accompaniment"] + refs["vocals"]
    ests = {
        "accompaniment": 0.7 * refs["accompaniment"] + 0.3 * mix,
        "vocals": mix - (0.7 * refs["accompaniment"] + 0.3 * mix),
    }
    ours = separation_metrics(refs, ests, sr)
    order = ["vocals", "accompaniment"]
    out = museval_metrics().bss_eval(
        np.stack([refs[s].T for s in order]),
        np.stack([ests[s].T for s in order]),
        window=sr,
        hop=sr,
        compute_permutation=False,
        filters_len=512,
        framewise_filters=False,
        bsseval_sources_version=False,
    )
    for i, stem in enumerate(order):
        for k, metric in enumerate(("sdr", "isr", "sir", "sar")):
            assert ours[stem][(metric, "bsseval_v4")] == pytest.approx(
                float(np.nanmedian(out[k][i])), abs=0.01
            ), (stem, metric)
