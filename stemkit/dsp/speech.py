"""Speech-aware dialogue separation for the sandbox.

:mod:`stemkit.dsp.engine` finds the voice as what does not repeat (REPET-SIM) on a 70 ms grid,
which suits sung lead lines and harms speech: syllables are short, consonants are not
harmonic, and a speech recogniser hears the result worse than the mixture itself (demo: WER
0.92-0.97 against 0.72-0.92 for the mixture). For speech over music this module takes the
dialogue from the speech band of the mixture instead, at a finer hop, and leaves the rest:

1. :func:`is_speech` tells speech from singing on the engine's voice estimate: pYIN pitch
   (Mauch & Dixon 2014, ``librosa.pyin``, 70-400 Hz); a sung line holds its notes, speech
   glides;
2. :func:`separate_dialogue` keeps the speech band of the mixture, 150 Hz to 4.5 kHz (where
   a recogniser's features live), with a zero-phase 4th-order Butterworth band-pass (no
   smearing, no musical noise): the bass, the kick and the cymbals go to the rest.

Measured on the demo's three speech tracks with the sandbox recogniser (WER; mixture 0.72 /
0.80 / 0.92, the engine's voice 0.89-0.97): this band 0.61 / 0.85 / 0.86. Tried and not kept:
the same band as an STFT mask (0.89 on the first track); lowering the sustained bed inside
the band by a per-bin median over 0.6 s (floor 0.3: 0.72 / 0.81); pitch-tracked harmonic
combs (pYIN on the engine's voice, a soft peak on every harmonic below 5 kHz, bed floor 0.3
or 0.1: 0.72-0.94 / 0.88 / 0.97): the recogniser hears a carved-out spectrum worse than the
bed itself.

The dialogue is ``mask · mixture`` per channel (the panning kept) and the rest is
``mixture - dialogue``, so the two stems sum back to the mixture to within float rounding.
:func:`separate` decides per request: stems that are all voice-like (``vocals``,
``dialogue``, ``speech``, ``music_removal``) or the voice's complement (``accompaniment``,
``music_fx`` ...) on input whose voice is speech take this path; anything else (a four-stem
request, a song) gets :func:`stemkit.dsp.engine.separate`'s stems unchanged.

Examples
--------
>>> import numpy as np
>>> sr = 16000
>>> t = np.arange(sr) / sr
>>> voice = sum(np.sin(2 * np.pi * k * (140 + 20 * t) * t) / k for k in range(1, 8))
>>> dialogue, rest = separate_dialogue(np.stack([voice, voice]).astype(np.float32), sr)
>>> dialogue.shape, bool(np.abs(dialogue + rest - voice).max() < 1e-4)
((2, 16000), True)
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import librosa
import numpy as np
import scipy.ndimage
import scipy.signal

from stemkit.audio import resample
from stemkit.dsp import engine
from stemkit.dsp import engine as _engine  # `engine` is also a parameter below

__all__ = ["VOICE_STEMS", "is_speech", "separate", "separate_dialogue"]

#: requested stems that are the voice itself (the engine's ``vocals`` atom)
VOICE_STEMS = tuple(s for s, atoms in engine.STEM_RECIPES.items() if atoms == ("vocals",))
_REST = tuple(s for s, atoms in engine.STEM_RECIPES.items() if set(atoms) == set(engine.ATOMS[1:]))

F0_RANGE_HZ = (70.0, 400.0)
#: soft edges of the speech band the dialogue is taken from (Hz)
SPEECH_BAND_HZ = (150.0, 4500.0)
#: seconds of the voice :func:`is_speech` listens to
DETECT_S = 20.0
#: below this mean share of steady frames per voiced run, the voice is speech
STEADY_SHARE = 0.895
#: verdicts of :func:`is_speech` kept by the digest of the voice they judged: a vendor's
#: stem jobs on one upload (AudioShake runs one per stem) ask about the same voice, and pYIN
#: is most of a sandbox separation's time
MEMO_SIZE = 512
_memo: OrderedDict[bytes, bool] = OrderedDict()
_memo_lock = threading.Lock()
_pending: dict[bytes, threading.Lock] = {}


def separate(
    audio: np.ndarray,
    sr: int,
    stems: Sequence[str],
    *,
    progress: Callable[[float], None] | None = None,
    engine: str = "dsp",
) -> dict[str, np.ndarray]:
    """:func:`stemkit.dsp.engine.separate`, with the speech path for voice / rest requests.

    Parameters and returns are those of :func:`stemkit.dsp.engine.separate` (``engine`` is
    its variant). A request of
    voice-like stems and their complement runs the engine once for ``vocals`` and
    ``accompaniment``; when the voice it finds is speech (:func:`is_speech`) the voice-like
    stems are :func:`separate_dialogue`'s dialogue and the others the rest, otherwise the
    engine's own stems are returned.

    Examples
    --------
    >>> import numpy as np
    >>> x = (0.1 * np.random.default_rng(0).standard_normal((1, 16000))).astype(np.float32)
    >>> sorted(separate(x, 16000, ["vocals", "drums", "bass", "other"]))  # the engine's path
    ['bass', 'drums', 'other', 'vocals']
    """
    wanted = list(stems)
    x = np.asarray(audio)
    voice_or_rest = bool(wanted) and all(s in VOICE_STEMS or s in _REST for s in wanted)
    if not voice_or_rest or x.ndim != 2 or x.shape[1] < sr:
        return _engine.separate(audio, sr, stems, progress=progress, engine=engine)
    report = progress or (lambda _fraction: None)
    two = _engine.separate(
        audio, sr, ["vocals", "accompaniment"], progress=lambda f: report(0.5 * f), engine=engine
    )
    voice, rest = two["vocals"], two["accompaniment"]
    if is_speech(voice, sr):
        voice, rest = separate_dialogue(x, sr)
    report(1.0)
    out = {s: (voice if s in VOICE_STEMS else rest) for s in wanted}
    return {s: y.astype(x.dtype, copy=False) for s, y in out.items()}


def _track_pitch(
    mono: np.ndarray, sr: int, *, rate: int = 16000, hop_s: float = 0.01
) -> tuple[np.ndarray, np.ndarray, float]:
    """pYIN on a copy at ``rate``: f0 (Hz, NaN unvoiced), voicing probability, hop (s)."""
    x = resample(mono.astype(np.float32), sr, rate)
    hop = int(hop_s * rate)
    f0, _, prob = librosa.pyin(
        x,
        fmin=F0_RANGE_HZ[0],
        fmax=F0_RANGE_HZ[1],
        sr=rate,
        frame_length=1024 * rate // 16000,
        hop_length=hop,
        center=True,
    )
    return f0, np.nan_to_num(prob), hop / rate


def is_speech(voice: np.ndarray, sr: int) -> bool:
    """Whether an estimate of the voice (the engine's ``vocals``) is speech rather than singing.

    A sung line holds its notes; speech glides. Over the first :data:`DETECT_S` seconds,
    pYIN's voiced runs (8 kHz, 20 ms hop, voicing probability above 0.3): speech is voiced in
    15-80 % of the frames, in runs of median length up to 0.25 s, and the share of each
    run's frames within 0.35 semitone of the run's median pitch, averaged over runs, is under
    :data:`STEADY_SHARE` (the demo's speech tracks: 0.78-0.87; its songs:
    0.91-0.98, at 16 and 44.1 kHz). Verdicts are kept by the digest of the voice
    (:data:`MEMO_SIZE` of them): the same voice asked again, or by a concurrent job while
    it is being judged, is answered without a second pitch track.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(3 * 16000) / 16000
    >>> held = np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)  # held notes
    >>> is_speech(held[None], 16000)
    False
    """
    x = np.asarray(voice, dtype=np.float32)
    mono = (x.mean(axis=0) if x.ndim == 2 else x)[: int(DETECT_S * sr)]
    if mono.size < sr // 2 or not np.any(mono):
        return False
    key = hashlib.blake2b(np.ascontiguousarray(mono).tobytes(), digest_size=16)
    key.update(str(sr).encode())
    digest = key.digest()
    with _memo_lock:
        if digest in _memo:
            _memo.move_to_end(digest)
            return _memo[digest]
        busy = _pending.setdefault(digest, threading.Lock())
    with busy:  # a concurrent job on the same voice waits for this verdict
        with _memo_lock:
            if digest in _memo:
                return _memo[digest]
        verdict = _judge(mono, sr)
        with _memo_lock:
            _memo[digest] = verdict
            while len(_memo) > MEMO_SIZE:
                _memo.popitem(last=False)
            _pending.pop(digest, None)
    return verdict


def _judge(mono: np.ndarray, sr: int) -> bool:
    """:func:`is_speech` on the mono voice it listens to (not memoised)."""
    f0, prob, hop_s = _track_pitch(mono, sr, rate=8000, hop_s=0.02)  # coarse: cheap
    voiced = np.isfinite(f0) & (prob > 0.3)
    runs, n_runs = scipy.ndimage.label(voiced)
    if not 0.15 <= voiced.mean() <= 0.8 or n_runs < 5:
        return False  # hardly any voice, or a voice that never pauses: not speech
    if np.median(np.bincount(runs)[1:]) * hop_s > 0.25:
        return False  # syllables are short
    steady = []
    for r in range(1, n_runs + 1):
        semis = 12 * np.log2(f0[runs == r])
        if semis.size >= 3:
            steady.append(np.mean(np.abs(semis - np.median(semis)) < 0.35))
    return bool(steady) and float(np.mean(steady)) < STEADY_SHARE


def separate_dialogue(
    audio: np.ndarray, sr: int, *, band: tuple[float, float] = SPEECH_BAND_HZ
) -> tuple[np.ndarray, np.ndarray]:
    """The dialogue and the rest of a speech-over-music mixture (see the module notes).

    Parameters
    ----------
    audio : np.ndarray
        ``(channels, samples)`` float.
    sr : int
        Sample rate in Hz.
    band : (float, float)
        Edges (Hz) of the 4th-order Butterworth band-pass, run forward and backward.

    Returns
    -------
    (dialogue, rest) : tuple of np.ndarray
        Float32, the shape of ``audio``; ``dialogue + rest == audio`` up to rounding.
    """
    x = np.asarray(audio, dtype=np.float32)
    high = min(band[1], 0.45 * sr)
    sos = scipy.signal.butter(4, [band[0], high], "bandpass", fs=sr, output="sos")
    dialogue = scipy.signal.sosfiltfilt(sos, x, axis=1).astype(np.float32)
    return dialogue, x - dialogue
