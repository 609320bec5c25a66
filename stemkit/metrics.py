"""Metrics of separated stems: against references, and without them.

Every value lands in one tidy table (track, provider, stem, metric, variant, value), and the
``variant`` column names exactly what was computed, so numbers of different definitions never
share a column:

============  ==================  =====================================================
metric        variant             definition
============  ==================  =====================================================
``sdr``       ``global``          MDX/"nSDR": 10·log10(Σ s² / Σ (s − ŝ)²) over the track
``si_sdr``    ``scale-invariant`` SI-SDR (Le Roux et al. 2019), channels concatenated
``recon_db``  ``mixture``         10·log10(Σ (x − Σ ŝ)² / Σ x²): how far stems miss the mix
============  ==================  =====================================================

Examples
--------
>>> import numpy as np
>>> s = np.random.default_rng(0).standard_normal((2, 1000))
>>> round(sdr(s, 0.9 * s), 2)
20.0
"""

from __future__ import annotations

import numpy as np

EPS = 1e-10


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Global SDR in dB (the MDX challenge's nSDR), over all channels and samples.

    Examples
    --------
    >>> import numpy as np
    >>> round(sdr(np.ones((1, 10)), 0.5 * np.ones((1, 10))), 2)  # error energy is 1/4
    6.02
    """
    ref = np.asarray(reference, np.float64)
    err = ref - np.asarray(estimate, np.float64)
    return float(10 * np.log10((np.sum(ref**2) + EPS) / (np.sum(err**2) + EPS)))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (channels concatenated; means removed).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.sin(np.linspace(0, 100, 4000))[None]
    >>> si_sdr(s, 3 * s) > 100  # scaling does not matter: a perfect estimate
    True
    """
    ref = np.asarray(reference, np.float64).ravel()
    est = np.asarray(estimate, np.float64).ravel()
    ref = ref - ref.mean()
    est = est - est.mean()
    alpha = np.dot(est, ref) / (np.dot(ref, ref) + EPS)
    target = alpha * ref
    noise = est - target
    return float(10 * np.log10((np.sum(target**2) + EPS) / (np.sum(noise**2) + EPS)))


def reconstruction_db(mixture: np.ndarray, stems: list[np.ndarray]) -> float:
    """Energy of ``mixture − Σ stems`` relative to the mixture, in dB (very negative = exact).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((2, 100))
    >>> reconstruction_db(x, [0.5 * x, 0.5 * x]) < -90
    True
    """
    mix = np.asarray(mixture, np.float64)
    n = min([mix.shape[-1], *(s.shape[-1] for s in stems)])
    total = sum(np.asarray(s, np.float64)[..., :n] for s in stems)
    err = mix[..., :n] - total
    return float(10 * np.log10((np.sum(err**2) + EPS) / (np.sum(mix[..., :n] ** 2) + EPS)))


def stem_metrics(reference: np.ndarray, estimate: np.ndarray) -> dict[tuple[str, str], float]:
    """Every reference metric of one stem: ``{(metric, variant): value}``.

    Examples
    --------
    >>> import numpy as np
    >>> sorted(stem_metrics(np.ones((1, 50)), np.ones((1, 50))))
    [('sdr', 'global'), ('si_sdr', 'scale-invariant')]
    """
    n = min(reference.shape[-1], estimate.shape[-1])
    ref, est = reference[..., :n], estimate[..., :n]
    if est.shape[0] != ref.shape[0]:
        est = np.broadcast_to(est.mean(axis=0, keepdims=True), ref.shape)
    return {("sdr", "global"): sdr(ref, est), ("si_sdr", "scale-invariant"): si_sdr(ref, est)}
