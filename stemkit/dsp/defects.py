"""Quality defects a separation vendor can deliver, applied on purpose to clean stems.

The sandbox's vendor personas (see :mod:`stemkit.sandbox.personas`) use them to make one
emulated vendor worse than another in a known way, and :mod:`stemkit.analyze.validation` uses
them to show that every QA check catches the defect it exists for. Each defect is one key of
:class:`Defects`:

=================  ==========================================================================
key                what happens to each affected stem
=================  ==========================================================================
``delay_ms``       shifted late by this many ms (early if negative), length kept
``gain_db``        level changed by this many dB
``lowpass_hz``     band-limited: zero-phase 8th-order Butterworth low-pass (no effect at or
                   above 99 % of Nyquist)
``invert``         polarity flipped on the listed stems
``swap_channels``  left and right exchanged (stereo stems)
``bleed_db``       the rest of the mix (mixture - stem) added, scaled so that its energy is
                   ``bleed_db`` re the stem's: the stem's global SDR against a clean stem
                   becomes exactly ``-bleed_db``
``clip_db``        hard-clipped at this level re full scale (dBFS)
``codec``          a lossy round trip, ``"mp3-<kbps>"`` (32 to 320 kbit/s, libsndfile/LAME)
``dropout_s``      digital silence from ``[start, end]`` s
``stems``          restrict every defect above to these stems (default: all)
=================  ==========================================================================

They apply in the order of the table, bleed first (it needs the clean stem), so that e.g. a
clip acts on the level a listener would get.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> vocals, drums = (0.1 * rng.standard_normal((2, 2, 8000))).astype(np.float32)
>>> out = Defects(bleed_db=-12, invert=["drums"]).apply(
...     {"vocals": vocals, "drums": drums}, vocals + drums, 8000)
>>> err = out["vocals"] - vocals                       # the leaked rest of the mix
>>> round(float(10 * np.log10((vocals**2).sum() / (err**2).sum())), 3)   # its SDR
12.0
>>> bool(np.corrcoef(out["drums"].ravel(), drums.ravel())[0, 1] < 0)   # bled, then inverted
True
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping

import numpy as np
import scipy.signal
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["CODEC", "Defects"]

#: the codecs ``codec`` accepts: ``mp3-<kbit/s>``
CODEC = re.compile(r"^mp3-(\d{2,3})$")
_MP3_KBPS = (32, 320)


class Defects(BaseModel):
    """The defects of one persona (every key optional; see the module's table).

    Parameters are validated on construction: an unknown key or a bad value raises
    :class:`pydantic.ValidationError` naming it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_ms: float | None = Field(None, ge=-5000, le=5000)
    gain_db: float | None = Field(None, ge=-60, le=24)
    lowpass_hz: float | None = Field(None, gt=20, le=96_000)
    invert: list[str] = Field(default_factory=list)
    swap_channels: bool = False
    bleed_db: float | None = Field(None, ge=-80, le=20)
    clip_db: float | None = Field(None, ge=-60, le=0)
    codec: str | None = None
    dropout_s: tuple[float, float] | None = None
    stems: list[str] | None = None

    @field_validator("codec")
    @classmethod
    def _codec(cls, value: str | None) -> str | None:
        if value is None:
            return value
        m = CODEC.match(value)
        if not m or not _MP3_KBPS[0] <= int(m.group(1)) <= _MP3_KBPS[1]:
            raise ValueError(f"codec must be 'mp3-<kbps>' with 32 <= kbps <= 320, not {value!r}")
        return value

    @field_validator("dropout_s")
    @classmethod
    def _dropout(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] < value[1]:
            raise ValueError(f"dropout_s must be [start, end] with 0 <= start < end, not {value}")
        return value

    @model_validator(mode="after")
    def _names(self) -> Defects:
        for key in ("invert", "stems"):
            for name in getattr(self, key) or []:
                if not isinstance(name, str) or not name:
                    raise ValueError(f"{key} lists stem names, not {name!r}")
        return self

    @property
    def active(self) -> bool:
        """Whether any defect is set."""
        return bool(self.model_dump(exclude_defaults=True, exclude={"stems"}))

    def describe(self) -> str:
        """The defects set, as ``key=value`` text (``"none"`` when clean).

        Examples
        --------
        >>> Defects(gain_db=-3, stems=["vocals"]).describe()
        'gain_db=-3.0 (stems: vocals)'
        """
        keys = self.model_dump(exclude_defaults=True, exclude={"stems"})
        if not keys:
            return "none"
        text = ", ".join(f"{k}={v}" for k, v in keys.items())
        return f"{text} (stems: {', '.join(self.stems)})" if self.stems else text

    def applies_to(self, stem: str) -> bool:
        """Whether the defects touch ``stem``."""
        return self.stems is None or stem in self.stems

    def apply(
        self, stems: Mapping[str, np.ndarray], mixture: np.ndarray | None, sr: int
    ) -> dict[str, np.ndarray]:
        """The stems with the defects applied.

        Parameters
        ----------
        stems : mapping of str to np.ndarray
            Clean stems, ``(channels, samples)`` float arrays at ``sr``.
        mixture : np.ndarray or None
            The mixture the stems come from, ``(channels, samples)``; needed by ``bleed_db``
            only (``None`` elsewhere).
        sr : int
            Sample rate, Hz.

        Returns
        -------
        dict of str to np.ndarray
            New float32 arrays of the same shapes; stems the defects do not touch are
            returned as they are.

        Raises
        ------
        ValueError
            ``bleed_db`` without a mixture, or one of another shape.
        """
        out = {}
        for name, stem in stems.items():
            out[name] = (
                self._one(name, np.asarray(stem), mixture, sr) if self.applies_to(name) else stem
            )
        return out

    def _one(self, name: str, y: np.ndarray, mixture: np.ndarray | None, sr: int) -> np.ndarray:
        y = np.array(y, dtype=np.float32, copy=True)
        if self.bleed_db is not None:
            y = _bleed(y, mixture, self.bleed_db)
        if self.gain_db is not None:
            y *= np.float32(10 ** (self.gain_db / 20))
        if self.lowpass_hz is not None:
            y = _lowpass(y, sr, self.lowpass_hz)
        if self.codec is not None:
            y = _codec(y, sr, int(CODEC.match(self.codec).group(1)))
        if self.clip_db is not None:
            level = np.float32(10 ** (self.clip_db / 20))
            np.clip(y, -level, level, out=y)
        if name in self.invert:
            y = -y
        if self.swap_channels and y.shape[0] == 2:
            y = y[::-1].copy()
        if self.delay_ms:
            y = _shift(y, round(self.delay_ms * sr / 1000))
        if self.dropout_s is not None:
            a, b = (min(round(t * sr), y.shape[-1]) for t in self.dropout_s)
            y[:, a:b] = 0.0
        return y


def _bleed(y: np.ndarray, mixture: np.ndarray | None, bleed_db: float) -> np.ndarray:
    if mixture is None or np.shape(mixture)[-1] != y.shape[-1]:
        raise ValueError("bleed_db needs the mixture, of the stem's length")
    rest = np.asarray(mixture, dtype=np.float64)
    if rest.shape[0] != y.shape[0]:
        rest = np.broadcast_to(rest.mean(axis=0, keepdims=True), y.shape)
    rest = rest - y
    stem_energy = float(np.sum(y.astype(np.float64) ** 2))
    rest_energy = float(np.sum(rest**2))
    if stem_energy == 0.0 or rest_energy == 0.0:
        return y
    scale = np.sqrt(stem_energy * 10 ** (bleed_db / 10) / rest_energy)
    return (y + scale * rest).astype(np.float32)


def _lowpass(y: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    if cutoff >= 0.99 * sr / 2:
        return y
    sos = scipy.signal.butter(8, cutoff, fs=sr, output="sos")
    return scipy.signal.sosfiltfilt(sos, y, axis=-1).astype(np.float32)


def _codec(y: np.ndarray, sr: int, kbps: int) -> np.ndarray:
    """MP3 encode and decode, the length kept (libsndfile maps a compression level in [0, 1]
    linearly onto 320..32 kbit/s)."""
    level = min(max((320 - kbps) / 288, 0.0), 0.99)
    buf = io.BytesIO()
    sf.write(buf, y.T, sr, format="MP3", compression_level=level, bitrate_mode="CONSTANT")
    buf.seek(0)
    decoded, _ = sf.read(buf, dtype="float32", always_2d=True)
    decoded = decoded.T[: y.shape[0]]
    out = np.zeros_like(y)
    n = min(decoded.shape[-1], y.shape[-1])
    out[:, :n] = decoded[:, :n]
    return out


def _shift(y: np.ndarray, lag: int) -> np.ndarray:
    out = np.zeros_like(y)
    if lag >= 0:
        out[:, lag:] = y[:, : y.shape[-1] - lag] if lag < y.shape[-1] else 0
    else:
        out[:, :lag] = y[:, -lag:]
    return out
