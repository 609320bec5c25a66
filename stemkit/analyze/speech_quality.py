"""Perceptual and intelligibility measures of speech: DNSMOS P.835 and STOI / ESTOI.

* **DNSMOS** (Reddy et al. 2022; ITU-T P.835 ratings predicted by Microsoft's DNS-challenge
  model): ``sig`` (speech quality), ``bak`` (background: 5 = none, 1 = intrusive, so music
  left in a dialogue stem shows here), ``ovrl`` (overall), 1-5. The ONNX model is the one the
  ``speechmos`` wheel ships (``dnsmos_models/sig_bak_ovr.onnx``), run with onnxruntime on one
  thread, with the reference script's polynomial calibration. Input: mono 16 kHz, 9.01 s
  segments; the reference script hops 1 s, here the segments are spread evenly so that they
  cover the clip without more overlap than needed (a 3-min clip: 20 inferences, not 172),
  and the clip's scores are the segment means. Clips shorter than 9.01 s are repeated to
  length, as the reference script does.
* **STOI / ESTOI** (Taal et al. 2011; Jensen & Taal 2016) of a stem against the reference
  dialogue, with ``pystoi`` (resampled to 10 kHz inside), 0-1, higher is more intelligible.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> clean = np.sin(2 * np.pi * 220 * np.arange(32000) / 16000) * (rng.random(32000) > 0.5)
>>> s = stoi_scores(clean, clean + 0.01 * rng.standard_normal(clean.size), 16000)
>>> s["stoi"] > 0.9
True
"""

from __future__ import annotations

import numpy as np

from stemkit.audio import resample

__all__ = ["DNSMOS_SR", "dnsmos", "stoi_scores"]

#: the rate DNSMOS runs at
DNSMOS_SR = 16000
_SEGMENT_S = 9.01  # the model's input length
# the reference script's calibration of the raw outputs (non-personalised model)
_POLY = {
    "sig": np.poly1d([-0.08397278, 1.22083953, 0.0052439]),
    "bak": np.poly1d([-0.13166888, 1.60915514, -0.39604546]),
    "ovrl": np.poly1d([-0.06766283, 1.11546468, 0.04602535]),
}


def _session():
    """The DNSMOS P.835 model of the ``speechmos`` wheel in an onnxruntime session."""
    from stemkit.analyze.onnx import packaged_session

    return packaged_session("speechmos", "dnsmos_models/sig_bak_ovr.onnx")


def _mono(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    return x.mean(axis=0) if x.ndim == 2 else x


def dnsmos(audio: np.ndarray, sr: int) -> dict[str, float]:
    """DNSMOS P.835 ``sig``, ``bak``, ``ovrl`` (1-5) of one clip.

    Parameters
    ----------
    audio : np.ndarray
        ``(channels, samples)`` or ``(samples,)``, float in [-1, 1]; downmixed and resampled
        to 16 kHz.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    dict
        ``{"sig", "bak", "ovrl"}``; NaN for each when the clip is empty or silent.

    Examples
    --------
    >>> import numpy as np
    >>> sorted(dnsmos(np.zeros(16000), 16000).items())
    [('bak', nan), ('ovrl', nan), ('sig', nan)]
    """
    x = _mono(audio)
    if sr != DNSMOS_SR and x.size:
        x = resample(x, sr, DNSMOS_SR).astype(np.float32)
    if not x.size or not np.any(x):
        return {k: float("nan") for k in ("sig", "bak", "ovrl")}
    x = np.clip(x, -1.0, 1.0)
    length = int(_SEGMENT_S * DNSMOS_SR)
    while x.size < length:
        x = np.concatenate([x, x])
    n_seg = int(np.ceil(x.size / length))
    starts = np.linspace(0, x.size - length, n_seg).round().astype(int)
    batch = np.stack([x[s : s + length] for s in starts])
    raw = _session().run(None, {"input_1": batch})[0]  # (n_seg, 3): sig, bak, ovrl
    return {
        name: float(np.mean(_POLY[name](raw[:, k])))
        for k, name in enumerate(("sig", "bak", "ovrl"))
    }


def stoi_scores(reference: np.ndarray, estimate: np.ndarray, sr: int) -> dict[str, float]:
    """STOI and ESTOI of ``estimate`` against the clean ``reference`` (both downmixed).

    The two are cut to the shorter length. NaN when the reference is silent.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(1).standard_normal(20000)
    >>> sorted(stoi_scores(x, x, 10000))
    ['estoi', 'stoi']
    """
    from pystoi import stoi

    ref, est = _mono(reference).astype(np.float64), _mono(estimate).astype(np.float64)
    n = min(ref.size, est.size)
    if n == 0 or not np.any(ref[:n]):
        return {"stoi": float("nan"), "estoi": float("nan")}
    ref, est = ref[:n], est[:n]
    return {
        "stoi": float(stoi(ref, est, sr, extended=False)),
        "estoi": float(stoi(ref, est, sr, extended=True)),
    }
