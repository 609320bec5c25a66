"""The two challenge protocols, named, and the policy for silence.

A separation score is a metric *and* a way to aggregate it; the two the field uses differ in
both, so they are never mixed in one table or chart:

=============  ===========================  ============================  ==================
protocol       metric (tidy ``metric``,     per track                     over tracks
               ``variant``)
=============  ===========================  ============================  ==================
``SiSEC18``    BSS Eval v4 SDR (museval):   median over 1 s frames        median
               ``("sdr", "bsseval_v4")``    (NaN frames left out)
``MDX23``      global SDR                   one value per song:           mean
               ``("nsdr", "global")``       10·log10((Σs² + δ) /
                                            (Σ(s − ŝ)² + δ)), δ = 1e-7
=============  ===========================  ============================  ==================

SiSEC18 is the museval / SiSEC 2018 protocol (Stöter, Liutkus, Ito 2018); MDX23 is the one of
the Sound Demixing Challenge 2023 (and of MDX 2021): the global SDR as the challenge's
evaluator computes it (``δ = 1e-7`` on both energies), averaged over songs. The per-track
values are in every batch's tidy metrics; :func:`challenge_summary` aggregates them.

Silence policy (museval#94)
---------------------------
A 1 s frame is *silent* for a signal when its channels sum to zero at every sample of the
frame (museval's test: digital silence, not a threshold).

* **BSS Eval v4**: a frame where any reference or any estimate is silent is NaN for every
  source (as museval), and the frame medians leave NaN out. A reference or an estimate that
  is silent throughout has no BSS Eval numbers at all (museval refuses it): its ``sdr/isr/
  sir/sar`` rows are absent, never zero.
* **global SDR**: always defined (``δ``): a silent estimate of a non-silent reference scores
  0 dB, an estimate of a silent reference scores 10·log10(δ / (Σŝ² + δ)) (very negative unless
  the estimate is silent too, then 0 dB), as the challenge computes it.
* **PES / EPS** (Schulze-Forster et al. 2019), the two numbers that say what happens where
  BSS Eval says nothing, per stem: *PES* (predicted energy at silence) is the mean over the
  frames where the **reference** is silent of 10·log10(Σ ŝ² + ε), ε = 1e-10, the estimate's
  energy there (lower is better; -100 dB means the estimate is silent too); *EPS* (energy at
  predicted silence) is the mean over the frames where the **estimate** is silent of
  10·log10(Σ s² + ε), the reference energy the estimate dropped (lower is better). NaN when
  there is no such frame (and then no tidy row). Tidy keys ``("pes", "silence")`` and
  ``("eps", "silence")``.

Examples
--------
>>> import pandas as pd
>>> rows = pd.DataFrame({
...     "track": ["t1", "t2", "t1", "t2"], "provider": "p", "stem": "vocals",
...     "metric": ["sdr", "sdr", "nsdr", "nsdr"],
...     "variant": ["bsseval_v4", "bsseval_v4", "global", "global"],
...     "value": [4.0, 8.0, 5.0, 9.0]})
>>> sisec, mdx = challenge_summary(rows, "SiSEC18"), challenge_summary(rows, "MDX23")
>>> float(sisec.loc["p", "vocals"]), float(mdx.loc["p", "mean"])
(6.0, 7.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stemkit.analyze.bsseval import FrameStats, Signals, _BlockStats, _frames
from stemkit.analyze.sdr import MDX_DELTA

__all__ = [
    "MDX_DELTA",
    "PROTOCOLS",
    "SILENCE_EPS",
    "Protocol",
    "challenge_summary",
    "pes_eps",
    "silence_metrics",
]

#: ε of PES / EPS, added to a frame's energy before the log
SILENCE_EPS = 1e-10


@dataclass(frozen=True)
class Protocol:
    """A challenge's metric and aggregation: which tidy rows, and how tracks are combined."""

    name: str
    label: str  # what a table or chart says it shows
    metric: str
    variant: str
    over_tracks: str  # "median" or "mean"


#: the two protocols, by name
PROTOCOLS: dict[str, Protocol] = {
    "SiSEC18": Protocol(
        "SiSEC18",
        "SiSEC18 / museval: BSS Eval v4 SDR (dB), median of 1 s frames, median over tracks",
        "sdr",
        "bsseval_v4",
        "median",
    ),
    "MDX23": Protocol(
        "MDX23",
        "MDX'23 / SDX'23: global SDR (dB) per song, mean over songs",
        "nsdr",
        "global",
        "mean",
    ),
}


def challenge_summary(metrics: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Provider × stem table of one protocol (:data:`PROTOCOLS`), from tidy per-track rows.

    Parameters
    ----------
    metrics : DataFrame
        Tidy metrics (``track, provider, stem, metric, variant, value``); only the rows of the
        protocol's metric and variant are read.
    protocol : str
        ``"SiSEC18"`` or ``"MDX23"``.

    Returns
    -------
    DataFrame
        Rows: providers (the bracket ``oracle`` first, ``baseline`` and ``mixture`` last);
        columns: stems, plus ``mean`` (mean over stems: MDX's song score) for MDX23. Rounded
        to 2 decimals; ``attrs["protocol"]`` holds the label. Empty without such rows.

    Examples
    --------
    >>> rows = pd.DataFrame({"track": ["a", "b", "c"], "provider": "p", "stem": "bass",
    ...     "metric": "sdr", "variant": "bsseval_v4", "value": [1.0, 2.0, 9.0]})
    >>> challenge_summary(rows, "SiSEC18").to_dict()
    {'bass': {'p': 2.0}}
    """
    try:
        spec = PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}: use one of {sorted(PROTOCOLS)}") from None
    m = metrics[(metrics["metric"] == spec.metric) & (metrics["variant"] == spec.variant)]
    m = m[m["stem"] != "(all)"].dropna(subset=["value"])
    if m.empty:
        return pd.DataFrame()
    table = m.pivot_table(
        index="provider", columns="stem", values="value", aggfunc=spec.over_tracks
    )
    if spec.name == "MDX23":
        songs = m.pivot_table(index=["provider", "track"], columns="stem", values="value")
        table["mean"] = songs.mean(axis=1).groupby(level="provider").mean()
    rank = {"oracle": -1, "baseline": 1, "mixture": 2}
    table = table.loc[sorted(table.index, key=lambda p: (rank.get(p, 0), p))].round(2)
    table.attrs["protocol"] = spec.label
    return table


def silence_metrics(
    references: Signals, *estimates: Signals, window: int, hop: int, block: int = 1 << 16
) -> list[dict[str, np.ndarray]]:
    """PES and EPS per source (dB) of each estimate set, see the module's silence policy.

    :meth:`stemkit.analyze.bsseval.BSSEval.evaluate` gathers the same frame statistics on its
    own pass (:func:`pes_eps` of them); this is for the sets it refuses (a silent stem).

    Parameters
    ----------
    references, *estimates : Signals
        ``(n_sources, n_samples, n_channels)``, read in blocks of ``block`` samples (arrays
        through :class:`~stemkit.analyze.bsseval.ArraySignals`); the references once for all
        sets.
    window, hop : int
        Frames as BSS Eval's (samples; 1 s each in museval).

    Returns
    -------
    list of dict
        Per set ``{"pes": (n_sources,), "eps": (n_sources,)}``, NaN where no frame qualifies.

    Examples
    --------
    >>> import numpy as np
    >>> from stemkit.analyze.bsseval import ArraySignals
    >>> ref = np.ones((1, 4, 1)); ref[0, :2] = 0.0          # frame 0 silent in the reference
    >>> est = np.full((1, 4, 1), 0.1)                        # the estimate is not
    >>> [m] = silence_metrics(ArraySignals(ref), ArraySignals(est), window=2, hop=2)
    >>> round(float(m["pes"][0]), 1), m["eps"].tolist()      # 10·log10(2 · 0.1²)
    (-17.0, [nan])
    """
    n_samples = references.shape[1]
    starts, length = _frames(n_samples, window, hop)
    ref = _frame_stats(references, starts, length, block)
    return [pes_eps(ref, _frame_stats(est, starts, length, block)) for est in estimates]


def pes_eps(reference: FrameStats, estimate: FrameStats) -> dict[str, np.ndarray]:
    """PES and EPS per source (dB) from the frame statistics of a reference and an estimate.

    Parameters
    ----------
    reference, estimate : FrameStats
        Silent frames and frame energies ``(n_sources, n_frames)`` of each, on the same
        frames (:attr:`~stemkit.analyze.bsseval.BSSEval.reference_frames` and
        :attr:`~stemkit.analyze.bsseval.BSSResult.frames`).

    Returns
    -------
    dict
        ``{"pes": (n_sources,), "eps": (n_sources,)}``, NaN where no frame qualifies.

    Examples
    --------
    >>> import numpy as np
    >>> ref = FrameStats(np.array([[True, False]]), np.array([[0.0, 4.0]]))
    >>> est = FrameStats(np.array([[False, False]]), np.array([[0.01, 3.0]]))
    >>> m = pes_eps(ref, est)
    >>> round(float(m["pes"][0]), 1), m["eps"].tolist()      # 10·log10(0.01): it leaked
    (-20.0, [nan])
    """
    return {
        "pes": _mean_db(estimate.energy, reference.silent),
        "eps": _mean_db(reference.energy, estimate.silent),
    }


def _frame_stats(signals: Signals, starts: np.ndarray, length: int, block: int) -> FrameStats:
    """Per source and frame: silent (museval's test), and energy; one read in blocks."""
    n_src, n_samples, _ = signals.shape
    stats = _BlockStats(n_src, starts, length)
    for lo in range(0, n_samples, block):
        stats.add(lo, np.asarray(signals.read(lo, min(lo + block, n_samples))))
    return stats.frames()


def _mean_db(energy: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Mean over the frames ``where`` of 10·log10(energy + ε), per source; NaN without any."""
    db = 10 * np.log10(np.maximum(energy, 0.0) + SILENCE_EPS)
    count = where.sum(axis=1)
    total = np.where(where, db, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
