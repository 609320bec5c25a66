"""Compile librosa's numba kernels once (``python -m stemkit.warmup``, run by ``make env``).

numba caches compiled functions on disk; warming them at setup keeps the first notebook of a
batch from paying ~10 s of compilation.
"""

from __future__ import annotations

import time

import numpy as np


def warm() -> float:
    """Run the librosa paths stemkit uses on a second of noise; return the seconds it took."""
    import librosa

    from stemkit.audio import resample
    from stemkit.dsp import engine

    t0 = time.perf_counter()
    y = np.random.default_rng(0).standard_normal((2, 22050)).astype(np.float32) * 0.1
    engine.separate(y, 22050, ["vocals", "drums", "bass", "other"])
    librosa.feature.melspectrogram(y=y[0], sr=22050)
    resample(y, 22050, 16000)
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"stemkit: librosa/numba warmed in {warm():.1f} s")
