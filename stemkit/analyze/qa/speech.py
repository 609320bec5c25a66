"""The speech-aware checks of one stem, reference-free: is the voice where it belongs?

* ``dialogue_bak`` (dialogue stems): DNSMOS P.835 BAK
  (:func:`stemkit.analyze.speech_quality.dnsmos`), 5 = no background, 1 = an intrusive one.
* ``music_in_dialogue_db`` (dialogue stems, and vocals stems that are speech): the level of
  the stem in its pauses, re its level while someone speaks, dB. Silero VAD
  (:mod:`stemkit.analyze.vad`) finds the speech; the pauses are the frames more than
  :data:`GUARD_S` (0.2 s) away from any speech region (so word onsets, decays and short
  reverb tails do not count). A clean dialogue stem is near silent there (the demo's
  references: -66 dB and below); music, effects or noise left in the stem play on through
  the pauses. With music leaked in at ``bleed_db`` re the stem the value reads 2 to 6 dB
  below ``bleed_db`` on the demo tracks. NaN when the pauses add up to less than
  :data:`MIN_PAUSE_S` (1 s) or the stem is digital silence; 0 dB when the VAD finds no
  speech at all in a stem that is not silent (all of it is background).
* ``speech_in_music_pct`` (``music_fx`` / ``accompaniment`` stems, which should hold no
  voice): the share of the stem's duration the VAD calls speech, %. Music alone reads
  0 % on the demo material; speech leaked into the stem is found once it is within about
  3 dB of the music's level (the VAD hears speech that dominates, not speech 10 dB under a
  band: see the README's measurements).

Examples
--------
>>> import numpy as np
>>> rows = speech_rows("music_fx", np.zeros((2, 16000), np.float32), 16000)
>>> [(r["check"], r["value"]) for r in rows]
[('speech_in_music_pct', 0.0)]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from stemkit.analyze.qa.meters import _db
from stemkit.stems import MUSIC_STEMS, canonical

__all__ = [
    "GUARD_S",
    "VoiceStream",
    "MIN_PAUSE_S",
    "SPEECH_SHARE",
    "music_in_dialogue",
    "needs_speech",
    "speech_in_music",
    "speech_rows",
]

#: pauses are the frames at least this far (s) from any speech region
GUARD_S = 0.2
#: ``music_in_dialogue_db`` needs pauses of at least this much in total (s)
MIN_PAUSE_S = 1.0
#: a vocals stem is judged as dialogue when the VAD calls at least this share of it speech
SPEECH_SHARE = 0.2


def _row(stem: str, check: str, value: float, unit: str, detail: str = "") -> dict[str, Any]:
    return {"stem": stem, "check": check, "value": float(value), "unit": unit, "detail": detail}


def needs_speech(name: str) -> bool:
    """Whether :func:`speech_rows` measures a stem of this name (else it returns no rows).

    Examples
    --------
    >>> needs_speech("speech"), needs_speech("drums")
    (True, False)
    """
    return canonical(name) in ("dialogue", "vocals", *MUSIC_STEMS)


class VoiceStream:
    """What the VAD and DNSMOS hear of a stem (:func:`stemkit.analyze.vad.mono16k`: the
    downmix at 16 kHz) gathered block by block: 64 kB a second of audio, a twelfth of a
    stereo 44.1 kHz float stem.

    Parameters
    ----------
    sr : int
        Rate of the blocks, Hz.

    Examples
    --------
    >>> import numpy as np
    >>> v = VoiceStream(44100)
    >>> for _ in range(4):
    ...     v.update(np.zeros((2, 11025), np.float32))
    >>> v.audio().shape
    (16000,)
    """

    #: the rate of :meth:`audio`
    SR = 16000

    def __init__(self, sr: int) -> None:
        import soxr

        self.sr = int(sr)
        self._stream = (
            None
            if self.sr == self.SR
            else soxr.ResampleStream(self.sr, self.SR, 1, dtype="float32", quality="HQ")
        )
        self._parts: list[np.ndarray] = []

    def update(self, y: np.ndarray) -> None:
        """The next samples, ``(channels, samples)``."""
        mono = np.asarray(y, np.float32).mean(axis=0)
        self._parts.append(mono if self._stream is None else self._stream.resample_chunk(mono))

    def audio(self) -> np.ndarray:
        """The downmix at :data:`SR`, float32 in [-1, 1]."""
        if self._stream is not None:
            self._parts.append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
            self._stream = None
        x = np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)
        self._parts = [x]
        return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)


def _vad(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """``(speech mask, mean square)`` per 32 ms frame of the VAD's view of ``y``."""
    from stemkit.analyze import vad

    x = vad.mono16k(y, sr)
    mask = vad.speech_mask(vad.speech_probability(x, vad.VAD_SR))
    frames = x[: mask.size * 512].reshape(mask.size, 512).astype(np.float64)
    return mask, np.einsum("ij,ij->i", frames, frames) / 512


def music_in_dialogue(y: np.ndarray, sr: int) -> tuple[float, str]:
    """``(dB, detail)``: the level of a dialogue stem in its pauses re its level in speech.

    Parameters
    ----------
    y : np.ndarray
        The stem, ``(channels, samples)`` or ``(samples,)``, float.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    (float, str)
        The level difference in dB (see the module notes: NaN without 1 s of pauses or for
        digital silence, 0 when no speech is found), and what was measured.

    Examples
    --------
    >>> import numpy as np
    >>> noise = 0.1 * np.random.default_rng(0).standard_normal(32000).astype(np.float32)
    >>> music_in_dialogue(noise, 16000)          # no speech: all of it is background
    (0.0, 'no speech found in 2.0 s: all background')
    """
    return _pauses_db(*_vad(y, sr))


def _pauses_db(mask: np.ndarray, power: np.ndarray) -> tuple[float, str]:
    from stemkit.analyze.vad import FRAME_S

    if not power.any():
        return math.nan, "digital silence"
    if not mask.any():
        return 0.0, f"no speech found in {mask.size * FRAME_S:.1f} s: all background"
    guard = int(round(GUARD_S / FRAME_S))
    near = np.convolve(mask.astype(np.float64), np.ones(2 * guard + 1), "same") > 0.5
    pause = ~near
    pause_s, speech_s = pause.sum() * FRAME_S, mask.sum() * FRAME_S
    if pause_s < MIN_PAUSE_S:
        return (
            math.nan,
            f"pauses {pause_s:.1f} s (< {MIN_PAUSE_S:g} s) between {speech_s:.1f} s of speech",
        )
    value = _db(float(power[pause].mean()) / float(power[mask].mean()))
    return value, f"pauses {pause_s:.1f} s re {speech_s:.1f} s of speech"


def speech_in_music(y: np.ndarray, sr: int) -> tuple[float, str]:
    """``(%, detail)``: the share of a music stem's duration that the VAD calls speech.

    Parameters
    ----------
    y : np.ndarray
        The stem, ``(channels, samples)`` or ``(samples,)``, float.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    (float, str)
        The speech share in % (NaN when shorter than one 32 ms frame), and where the speech
        is.

    Examples
    --------
    >>> import numpy as np
    >>> speech_in_music(np.zeros(16000, np.float32), 16000)
    (0.0, 'no speech')
    """
    from stemkit.analyze.vad import FRAME_S

    mask, _ = _vad(y, sr)
    if not mask.size:
        return math.nan, "shorter than one 32 ms frame"
    if not mask.any():
        return 0.0, "no speech"
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0])).reshape(-1, 2)
    longest = max(edges, key=lambda e: e[1] - e[0])
    detail = (
        f"{mask.sum() * FRAME_S:.1f} s of speech in {len(edges)} region(s), the longest "
        f"{(longest[1] - longest[0]) * FRAME_S:.1f} s from {longest[0] * FRAME_S:.1f} s"
    )
    return 100.0 * float(mask.mean()), detail


def dialogue_background(y: np.ndarray, sr: int) -> tuple[float, str]:
    """``(BAK, detail)``: DNSMOS P.835 BAK of a dialogue stem, with SIG and OVRL.

    Parameters
    ----------
    y : np.ndarray
        The stem, ``(channels, samples)`` or ``(samples,)``, float.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    (float, str)
        BAK on the 1-5 MOS scale (5: no background), and the SIG / OVRL scores as text.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(3 * 16000) / 16000
    >>> bak, detail = dialogue_background(0.1 * np.sin(2 * np.pi * 220 * t), 16000)
    >>> 1.0 <= bak <= 5.0, detail.startswith("SIG")
    (True, True)
    """
    from stemkit.analyze.speech_quality import dnsmos

    mos = dnsmos(y, sr)
    return mos["bak"], f"SIG {mos['sig']:.2f}, OVRL {mos['ovrl']:.2f}"


def speech_rows(name: str, y: np.ndarray, sr: int) -> list[dict[str, Any]]:
    """The speech-aware rows of one stem, by its canonical name: ``dialogue_bak`` and
    ``music_in_dialogue_db`` for a dialogue stem, ``music_in_dialogue_db`` for a vocals stem
    (judged only when it is speech: see below), ``speech_in_music_pct`` for a music stem
    (:data:`stemkit.stems.MUSIC_STEMS`), none for others.

    A ``vocals`` stem is the dialogue of a speech track separated as vocals / accompaniment
    (as the demo's are), or a sung lead line; the pauses of a song's vocals are not a
    dialogue's, and the VAD hears little of singing (the demo songs' vocals: 0 % speech).
    So it gets a ``music_in_dialogue_db`` row when the VAD calls at least
    :data:`SPEECH_SHARE` (20 %) of it speech (the demo's dialogue: 70-73 %), and none
    otherwise.

    Parameters
    ----------
    name : str
        The stem's name as the vendor gave it (``vocals``, ``dialog``, ``music_fx``, ...).
    y : np.ndarray
        The stem, ``(channels, samples)`` or ``(samples,)``, float.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    list of dict
        QA rows (``stem``, ``check``, ``value``, ``unit``, ``detail``), as the other checks'.

    Examples
    --------
    >>> import numpy as np
    >>> speech_rows("drums", np.zeros(1600, np.float32), 16000)
    []
    >>> speech_rows("vocals", np.zeros(16000, np.float32), 16000)   # not speech
    []
    """
    kind = canonical(name)
    if kind == "dialogue":
        bak, bak_detail = dialogue_background(y, sr)
        level, detail = music_in_dialogue(y, sr)
        return [
            _row(name, "dialogue_bak", bak, "MOS", bak_detail),
            _row(name, "music_in_dialogue_db", level, "dB", detail),
        ]
    if kind == "vocals":
        mask, power = _vad(y, sr)
        if not mask.size or float(mask.mean()) < SPEECH_SHARE:
            return []  # sung (or silent): its pauses are not a dialogue's
        level, detail = _pauses_db(mask, power)
        return [_row(name, "music_in_dialogue_db", level, "dB", detail)]
    if kind in MUSIC_STEMS:
        share, detail = speech_in_music(y, sr)
        return [_row(name, "speech_in_music_pct", share, "%", detail)]
    return []
