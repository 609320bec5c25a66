"""Energy-ratio metrics of one estimate against its reference: global SDR (MDX's nSDR) and
SI-SDR. The lowest layer of the metrics: :mod:`stemkit.analyze.bsseval` and
:mod:`stemkit.analyze.metrics` both build on it.

Examples
--------
>>> import numpy as np
>>> round(sdr(np.ones((1, 10)), 0.5 * np.ones((1, 10))), 2)
6.02
"""

from __future__ import annotations

import numpy as np

#: added to both energies of SI-SDR, so silence gives 0 dB instead of NaN
EPS = 1e-10
#: δ of the MDX / SDX challenges' global SDR, added to both energies as their evaluator does
MDX_DELTA = 1e-7


_CHUNK = 1 << 18  # samples per chunk: float64 work stays a few MB whatever the track length


def _flat_chunks(*arrays: np.ndarray):
    """Matching float64 chunks (copies, free to change) of equally long flattened arrays."""
    flat = [np.asarray(a).reshape(-1) for a in arrays]
    for i in range(0, flat[0].size, _CHUNK):
        yield [f[i : i + _CHUNK].astype(np.float64) for f in flat]


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Global SDR in dB (the MDX challenge's nSDR), over all channels and samples:
    ``10·log10((Σs² + δ) / (Σ(s − ŝ)² + δ))`` with the challenge's ``δ`` (:data:`MDX_DELTA`).

    Examples
    --------
    >>> import numpy as np
    >>> round(sdr(np.ones((1, 10)), 0.5 * np.ones((1, 10))), 2)  # error energy is 1/4
    6.02
    """
    signal = error = 0.0
    for ref, est in _flat_chunks(reference, estimate):
        signal += float(np.dot(ref, ref))
        err = ref - est
        error += float(np.dot(err, err))
    return float(10 * np.log10((signal + MDX_DELTA) / (error + MDX_DELTA)))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (channels concatenated; means removed).

    Examples
    --------
    >>> import numpy as np
    >>> s = np.sin(np.linspace(0, 100, 4000))[None]
    >>> si_sdr(s, 3 * s) > 100  # scaling does not matter: a perfect estimate
    True
    """
    n = np.asarray(reference).size
    sums = np.zeros(2)
    for ref, est in _flat_chunks(reference, estimate):
        sums += ref.sum(), est.sum()
    mean_ref, mean_est = sums / max(n, 1)
    cross = power = 0.0
    for ref, est in _flat_chunks(reference, estimate):
        ref -= mean_ref
        cross += float(np.dot(est - mean_est, ref))
        power += float(np.dot(ref, ref))
    alpha = cross / (power + EPS)
    target = noise = 0.0
    for ref, est in _flat_chunks(reference, estimate):
        scaled = alpha * (ref - mean_ref)
        target += float(np.dot(scaled, scaled))
        residual = est - mean_est - scaled
        noise += float(np.dot(residual, residual))
    return float(10 * np.log10((target + EPS) / (noise + EPS)))
