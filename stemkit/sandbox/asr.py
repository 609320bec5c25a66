"""Offline English speech recognition for the sandbox's transcription API (vendor "loom").

The recogniser is `PocketSphinx <https://github.com/cmusphinx/pocketsphinx>`_ with the US English
acoustic model, dictionary and language model that its PyPI wheel ships, so nothing is downloaded
at run time. Audio of any rate and channel count is downmixed, resampled to 16 kHz with soxr and
decoded; filler tokens (``<s>``, ``<sil>``, ``[NOISE]``, ...) are dropped and alternate
pronunciation suffixes (``word(2)``) removed. Silence and near-silence is reported blank without
running the recogniser.

Each call decodes in a fresh decoder in a child process (``python -c``, importing only
pocketsphinx; about 0.5 s to start and load the model, about 100 MB while it runs), because:

* PocketSphinx holds the GIL for the whole decode (0.2-0.3x real time on clean speech, about 1x on
  speech over music), which would freeze the sandbox's HTTP server thread meanwhile;
* a reused decoder carries state (cepstral mean, ...) from one utterance to the next, so the same
  audio would not always give the same words; a fresh one does;
* the whole input is decoded as one utterance (``full_utt``, batch cepstral mean
  normalisation), which is more accurate than streaming it in blocks.

At most one child per CPU core runs at once; further calls wait. The child's memory grows with
the length of the input (about 280 MB for 3 minutes of speech).

Examples
--------
>>> import numpy as np
>>> from stemkit.sandbox.asr import transcribe
>>> t = transcribe(np.zeros((2, 44100), dtype=np.float32), 44100)
>>> t.is_blank, t.words, t.duration
(True, [], 1.0)
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stemkit.audio import resample

__all__ = ["ENGINE", "SAMPLE_RATE", "Transcript", "Word", "is_blank", "transcribe"]

#: Rate the acoustic model was trained at; every input is resampled to it.
SAMPLE_RATE = 16000


def _engine() -> str:
    try:
        return f"pocketsphinx-{importlib.metadata.version('pocketsphinx')}/en-us"
    except importlib.metadata.PackageNotFoundError:  # transcribe() will say so
        return "pocketsphinx (not installed)/en-us"


#: Name and version of the recogniser, as reported in :attr:`Transcript.engine`.
ENGINE = _engine()

_LEVEL_WINDOW = 0.05  # seconds per window of the blank detector
_TARGET_PEAK = 0.9  # quiet input is raised to this peak before conversion to int16
_MAX_GAIN = 100.0  # ... by at most 40 dB
_ALT_SUFFIX = re.compile(r"\(\d+\)$")


@dataclass
class Word:
    """One recognised word.

    Parameters
    ----------
    word : str
        The word as spelled in the recogniser's dictionary (lower case, e.g. ``"let's"``).
    start, end : float
        Seconds from the start of the audio; ``start < end <= duration``.
    confidence : float or None
        Posterior probability of the word, 0 to 1, when the engine gives one.

    Examples
    --------
    >>> Word("hello", 0.5, 0.9, 0.97)
    Word(word='hello', start=0.5, end=0.9, confidence=0.97)
    """

    word: str
    start: float
    end: float
    confidence: float | None = None


@dataclass
class Transcript:
    """What :func:`transcribe` heard.

    Parameters
    ----------
    text : str
        The words joined by single spaces (empty when nothing was recognised).
    words : list of Word
        Every word with its timing, in order.
    is_blank : bool
        True if the audio was silent or near-silent (then ``words`` is empty).
    duration : float
        Length of the audio in seconds.
    engine : str
        Recogniser and model, e.g. ``"pocketsphinx-5.1.1/en-us"``.

    Examples
    --------
    >>> t = Transcript("hi there", [Word("hi", 0.1, 0.3, 0.9), Word("there", 0.3, 0.7, 0.8)],
    ...                False, 1.0, ENGINE)
    >>> t.text, len(t.words)
    ('hi there', 2)
    """

    text: str
    words: list[Word] = field(default_factory=list)
    is_blank: bool = False
    duration: float = 0.0
    engine: str = ENGINE


# --------------------------------------------------------------------------------------------
# Audio preparation
# --------------------------------------------------------------------------------------------


def _mono(audio: np.ndarray) -> np.ndarray:
    """Float64 mono from ``(channels, samples)`` or ``(samples,)``; NaN and inf become 0."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    elif x.ndim != 1:
        raise ValueError(f"audio must be (channels, samples) or (samples,), not {x.shape}")
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def _to_pcm16(audio: np.ndarray, sr: int) -> bytes:
    """Downmix, resample to :data:`SAMPLE_RATE`, raise quiet audio, convert to int16 bytes."""
    x = _mono(audio)
    if sr != SAMPLE_RATE:
        x = resample(x, sr, SAMPLE_RATE)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0:
        x = x * min(_TARGET_PEAK / peak, _MAX_GAIN)
    return np.clip(np.rint(x * 32767.0), -32768, 32767).astype("<i2").tobytes()


def _max_window_dbfs(x: np.ndarray, sr: int) -> float:
    """RMS level of the loudest 50 ms window, in dB relative to a full-scale square wave."""
    n = max(1, round(_LEVEL_WINDOW * sr))
    if x.size < n:
        x = np.pad(x, (0, n - x.size))
    power = np.cumsum(np.concatenate([[0.0], x * x]))
    window = (power[n:] - power[:-n]) / n
    return 10.0 * float(np.log10(max(float(window.max()), 1e-20)))


def is_blank(audio: np.ndarray, sr: int, *, threshold_dbfs: float = -50.0) -> bool:
    """Whether ``audio`` is silence or near-silence, so there is nothing to recognise.

    The level measured is the RMS of the loudest 50 ms window of the downmix, in dBFS (0 dBFS
    is a full-scale square wave, a full-scale sine is -3 dBFS). A short burst of speech in a long
    silent file is therefore not blank; hiss or hum below the threshold is.

    Parameters
    ----------
    audio : ndarray
        Float samples in [-1, 1], shape ``(channels, samples)`` or ``(samples,)``.
    sr : int
        Sample rate in Hz.
    threshold_dbfs : float
        Audio whose loudest window is below this level is blank.

    Returns
    -------
    bool
        True for empty, silent or near-silent audio.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 16000
    >>> hiss = 1e-4 * np.random.default_rng(0).standard_normal((1, sr))
    >>> is_blank(hiss, sr), is_blank(np.zeros((2, 0)), sr)
    (True, True)
    >>> tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)
    >>> is_blank(tone, sr)
    False
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, not {sr}")
    x = _mono(audio)
    if x.size == 0:
        return True
    return _max_window_dbfs(x, sr) < threshold_dbfs


# --------------------------------------------------------------------------------------------
# The recogniser, in a child process
# --------------------------------------------------------------------------------------------

#: Run by ``python -c`` in a child process: 16 kHz int16 audio on stdin, the frame rate and the
#: word segmentation as JSON on stdout. Only pocketsphinx is imported there.
WORKER = """
import json, sys
from pocketsphinx import Decoder
pcm = sys.stdin.buffer.read()
dec = Decoder(loglevel="FATAL")
dec.start_utt()
dec.process_raw(pcm, full_utt=True)
dec.end_utt()
segs = [[s.word, s.start_frame, s.end_frame, s.prob] for s in dec.seg()]
json.dump({"frate": int(dec.config["frate"]), "segments": segs}, sys.stdout)
"""

#: At most this many recognisers run at once (each takes a core and about 100 MB).
_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def decode(pcm: bytes, *, script: str = WORKER) -> tuple[int, list[tuple[str, int, int, float]]]:
    """Recognise 16 kHz int16 audio in a fresh decoder in a child process.

    Parameters
    ----------
    pcm : bytes
        Mono 16 kHz little-endian int16 samples.
    script : str
        The child's program (:data:`WORKER`: pocketsphinx).

    Returns
    -------
    tuple
        The decoder's frame rate and ``(token, first frame, last frame, posterior)`` per
        segment, fillers included.
    """
    timeout = 60.0 + 5.0 * len(pcm) / (2 * SAMPLE_RATE)
    with _SLOTS:
        try:
            proc = subprocess.run(
                [sys.executable, "-c", script],
                input=pcm,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"speech recogniser timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"speech recogniser failed (exit {proc.returncode}): {tail}")
    out = json.loads(proc.stdout)
    segments = [(str(w), int(a), int(b), float(p)) for w, a, b, p in out["segments"]]
    return int(out["frate"]), segments


def _is_filler(token: str) -> bool:
    return token.startswith(("<", "[", "+")) or not token


def words_from_segments(
    segments: list[tuple[str, int, int, float]], frate: int, duration: float
) -> list[Word]:
    """Real words only, with times in seconds clipped to ``duration`` and made monotonic.

    Examples
    --------
    >>> words_from_segments([("<s>", 0, 9, 1.0), ("hello", 10, 49, 0.9)], 100, 1.0)
    [Word(word='hello', start=0.1, end=0.5, confidence=0.9)]
    """
    words: list[Word] = []
    for token, first, last, prob in segments:
        if _is_filler(token):
            continue
        start = min(first / frate, duration)
        if words:
            start = max(start, words[-1].end)
        end = min(max((last + 1) / frate, start), duration)
        conf = min(max(prob, 0.0), 1.0)
        words.append(
            Word(_ALT_SUFFIX.sub("", token), round(start, 3), round(end, 3), round(conf, 4))
        )
    return words


def transcribe(
    audio: np.ndarray, sr: int, *, decoder: Callable[[bytes], tuple] = decode
) -> Transcript:
    """Recognise the English speech in ``audio``, offline.

    Parameters
    ----------
    audio : ndarray
        Float samples in [-1, 1], shape ``(channels, samples)`` (or ``(samples,)``), any rate;
        downmixed and resampled to 16 kHz internally. Quiet audio is raised (by at most 40 dB)
        before it is converted to 16-bit for the recogniser.
    sr : int
        Sample rate in Hz.
    decoder : callable
        ``decoder(pcm) -> (frame rate, segments)`` (default :func:`decode`, pocketsphinx).

    Returns
    -------
    Transcript
        Words and their times. Blank audio (see :func:`is_blank`) gives ``is_blank=True``, empty
        text and no words, without running the recogniser.

    Notes
    -----
    Safe to call from several threads; deterministic (the same audio gives the same words). The
    recogniser runs in a child process, about 0.5 s of start-up plus 0.2-0.3x real time on clean
    speech (about 1x on speech over music) on one core; at most one per core runs at once.

    Examples
    --------
    >>> import soundfile as sf
    >>> from stemkit.sandbox.asr import transcribe
    >>> x, sr = sf.read("data/speech/kitchen.flac", dtype="float32")  # doctest: +SKIP
    >>> t = transcribe(x[None, :], sr)  # doctest: +SKIP
    >>> t.text[:30], t.words[0]  # doctest: +SKIP
    ('could you pass me the salt ple', Word(word='could', start=0.21, end=0.36, confidence=0.0396))
    """
    x = np.asarray(audio)
    n = x.shape[-1] if x.ndim else 0
    duration = n / sr if sr > 0 else 0.0
    if is_blank(x, sr):
        return Transcript("", [], True, duration, ENGINE)
    frate, segments = decoder(_to_pcm16(x, sr))
    words = words_from_segments(segments, frate, duration)
    return Transcript(" ".join(w.word for w in words), words, False, duration, ENGINE)
