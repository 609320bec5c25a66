"""Vendor personas: each emulated vendor's own engine and quality defects, from a TOML file.

``stemkit serve --config FILE``, ``stemkit batch ... --sandbox-config FILE`` and ``stemkit demo``
(with :data:`DEMO_CONFIG`, shipped in the package) read a file of this shape::

    [vendors.audioshake]            # also: sourceress, loom
    engine = "dsp"                  # "dsp" (default) | "dsp-fine" | "reference"
    references = "musdb/test"       # engine = "reference" only: a folder in the MUSDB18 layout
    [vendors.audioshake.defects]    # all optional, see stemkit.dsp.defects
    delay_ms = 20
    gain_db = -3
    lowpass_hz = 8000
    invert = ["drums"]
    swap_channels = false
    bleed_db = -15
    clip_db = -1
    codec = "mp3-64"
    dropout_s = [5.0, 5.5]
    stems = ["vocals", "drums"]

    [faults]                        # optional: the transport faults of stemkit.sandbox.faults
    seed = 1
    error_5xx = 0.05

Engines: ``dsp`` and ``dsp-fine`` are the variants of :mod:`stemkit.dsp.engine`; ``reference``
is the *known-answer* vendor: it finds the uploaded mixture among ``references`` by the hash of
its decoded 16-bit samples and answers with that track's reference stems (``accompaniment``,
``music_fx`` and the like are sums of them). Its ``bleed_db`` is exact: each stem's global SDR
(nSDR) against its reference is ``-bleed_db``. A mixture it cannot find fails that job the way the
vendor documents failures (a failed job, never a server error).

``loom`` transcribes rather than separates: it takes only the defects that change the audio it
hears (``gain_db``, ``lowpass_hz``, ``codec``, ``clip_db``, ``dropout_s``) and no engine.

Every error names the key (``vendors.audioshake.defects.gain_db: ...``) and the file.

Examples
--------
>>> p = parse_config({"vendors": {"audioshake": {"engine": "dsp-fine",
...                                              "defects": {"gain_db": -2}}}})
>>> p.vendors["audioshake"].engine, p.vendors["audioshake"].defects.describe()
('dsp-fine', 'gain_db=-2.0')
>>> try:
...     parse_config({"vendors": {"audioshake": {"engin": "dsp"}}})
... except ConfigError as exc:
...     print(exc)
sandbox config: vendors.audioshake.engin: Extra inputs are not permitted
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import tomllib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stemkit.dsp import engine as dsp
from stemkit.dsp import speech
from stemkit.dsp.defects import Defects
from stemkit.sandbox.faults import Faults

__all__ = [
    "DEMO_CONFIG",
    "ConfigError",
    "KnownAnswerMissing",
    "Persona",
    "SandboxFile",
    "load_config",
    "parse_config",
]

#: the demo's personas (shipped in the package): two vendors apart, one with a mild defect
DEMO_CONFIG = Path(__file__).with_name("demo_personas.toml")

VENDORS = ("sourceress", "audioshake", "loom")
#: provider keys of a vendor's other APIs, which run that vendor's persona
API_VENDOR = {"audioshake-tasks": "audioshake"}
#: defects that make sense for a transcription vendor (they change the audio it hears)
LOOM_DEFECTS = {"gain_db", "lowpass_hz", "codec", "clip_db", "dropout_s"}
#: how the reference engine builds a stem the track has no file for: the first recipe whose
#: parts all exist (music tracks: MUSDB18's four stems; speech tracks: dialogue + music_fx)
_RECIPES: dict[str, list[tuple[str, ...]]] = {
    name: [parts] for name, parts in dsp.STEM_RECIPES.items() if len(parts) > 1
}
for _name in ("dialogue", "speech", "vocals", "music_removal"):
    _RECIPES.setdefault(_name, []).extend([("vocals",), ("dialogue",)])
for _name in ("music_fx", "accompaniment", "instrumental", "music", "track"):
    _RECIPES.setdefault(_name, []).append(("music_fx",))


class ConfigError(ValueError):
    """A sandbox config file that cannot be used; the message names the key."""


class KnownAnswerMissing(ValueError):
    """The known-answer vendor was sent a mixture that is not among its references."""


class Persona(BaseModel):
    """One vendor's engine and defects."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["dsp", "dsp-fine", "reference"] = "dsp"
    references: Path | None = None
    defects: Defects = Field(default_factory=Defects)

    @model_validator(mode="after")
    def _references(self) -> Persona:
        if self.engine == "reference" and self.references is None:
            raise ValueError("engine = 'reference' needs `references`, a folder of tracks")
        if self.engine != "reference" and self.references is not None:
            raise ValueError("`references` is only for engine = 'reference'")
        return self

    @property
    def known_answer(self) -> bool:
        """Whether this vendor answers with the references (a known-answer run)."""
        return self.engine == "reference"

    def describe(self) -> dict[str, Any]:
        """What a batch records about this persona (engine, defects, known answer)."""
        return {
            "engine": self.engine,
            "defects": self.defects.model_dump(exclude_defaults=True),
            "known_answer": self.known_answer,
        }


class SandboxFile(BaseModel):
    """A whole sandbox config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vendors: dict[Literal["sourceress", "audioshake", "loom"], Persona] = Field(
        default_factory=dict
    )
    faults: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _loom(self) -> SandboxFile:
        loom = self.vendors.get("loom")
        if loom is not None:
            if loom.engine != "dsp":
                raise ValueError("vendors.loom: a transcription vendor has no `engine`")
            extra = set(loom.defects.model_dump(exclude_defaults=True)) - LOOM_DEFECTS
            if extra:
                raise ValueError(
                    f"vendors.loom.defects: {', '.join(sorted(extra))} do not apply to "
                    f"transcription; use {', '.join(sorted(LOOM_DEFECTS))}"
                )
        return self

    def persona(self, vendor: str) -> Persona:
        """The persona of ``vendor`` (the default one when the file does not name it)."""
        return self.vendors.get(vendor) or Persona()

    def fault_settings(self) -> Faults:
        """The ``[faults]`` table as :class:`~stemkit.sandbox.faults.Faults`."""
        return Faults(**(self.faults or {}))

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every vendor's persona by provider key, for the batch's ``info/batch.json``
        (``audioshake-tasks``, AudioShake's other API, runs AudioShake's persona)."""
        out = {vendor: self.persona(vendor).describe() for vendor in VENDORS}
        out.update({key: out[vendor] for key, vendor in API_VENDOR.items()})
        return out


def _where(err: dict) -> str:
    return ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))


def parse_config(data: dict[str, Any], source: str = "sandbox config") -> SandboxFile:
    """Validate a parsed config (a dict, as from TOML).

    Parameters
    ----------
    data : dict
        The file's content.
    source : str
        How errors name the file.

    Returns
    -------
    SandboxFile

    Raises
    ------
    ConfigError
        An unknown key, a bad value, a missing references folder; the message names the key.
    """
    try:
        parsed = SandboxFile.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            where = _where(err)
            msg = err["msg"].removeprefix("Value error, ")
            msgs.append(f"{where}: {msg}" if where else msg)
        raise ConfigError(f"{source}: {'; '.join(msgs)}") from None
    if parsed.faults is not None:
        known = {f.name for f in dataclasses.fields(Faults) if not f.name.startswith("_")}
        known -= {"injected"}
        for key in parsed.faults:
            if key not in known:
                raise ConfigError(
                    f"{source}: faults.{key}: unknown fault; use {', '.join(sorted(known))}"
                )
        try:
            parsed.fault_settings()
        except TypeError as exc:
            raise ConfigError(f"{source}: faults: {exc}") from None
    return parsed


def load_config(path: str | Path) -> SandboxFile:
    """Read and validate a sandbox config file; relative ``references`` are taken from the
    file's folder, and each must exist.

    Parameters
    ----------
    path : str or Path
        A TOML file.

    Returns
    -------
    SandboxFile

    Raises
    ------
    ConfigError
        The file is missing or not TOML, or :func:`parse_config` refuses it.

    Examples
    --------
    >>> load_config(DEMO_CONFIG).persona("sourceress").engine
    'dsp-fine'
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"sandbox config {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"sandbox config {path} is not valid TOML: {exc}") from None
    for vendor in (data.get("vendors") or {}).values():
        if isinstance(vendor, dict) and isinstance(vendor.get("references"), str):
            vendor["references"] = str((path.parent / vendor["references"]).resolve())
    parsed = parse_config(data, f"sandbox config {path}")
    for name, persona in parsed.vendors.items():
        if persona.references is not None and not persona.references.is_dir():
            raise ConfigError(
                f"sandbox config {path}: vendors.{name}.references: {persona.references} "
                "is not a folder (it should hold one folder per track, MUSDB18 layout)"
            )
    return parsed


# --------------------------------------------------------------------------- the work


def pcm_key(audio: np.ndarray, sr: int) -> str:
    """The content hash the known-answer vendor finds a mixture by: the samples as 16-bit
    integers (so WAV, FLAC and float copies of one recording agree), channels and rate.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.zeros((2, 10), np.float32)
    >>> pcm_key(y, 8000) == pcm_key(y.astype(np.float64), 8000)
    True
    """
    ints = np.round(np.clip(np.asarray(audio, np.float64), -1.0, 1.0) * 32767).astype("<i2")
    h = hashlib.sha256(f"{ints.shape[0]}:{int(sr)}:".encode())
    h.update(np.ascontiguousarray(ints).tobytes())
    return h.hexdigest()


class References:
    """The tracks of a MUSDB18-layout folder, found by their mixture's :func:`pcm_key`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._index: dict[str, Path] | None = None
        self._lock = threading.Lock()

    def _build(self) -> dict[str, Path]:
        index = {}
        for mix in sorted(self.folder.glob("*/mixture.*")):
            try:
                y, sr = sf.read(mix, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError):
                continue
            index[pcm_key(y.T, sr)] = mix.parent
        return index

    def find(self, audio: np.ndarray, sr: int) -> Path:
        """The track folder whose mixture is ``audio``; :class:`KnownAnswerMissing` if none."""
        with self._lock:
            if self._index is None:
                self._index = self._build()
        track = self._index.get(pcm_key(audio, sr))
        if track is None:
            raise KnownAnswerMissing(
                "the known-answer engine has no reference for this mixture "
                f"(none of the {len(self._index)} tracks under its references folder has "
                "exactly these samples, channels and sample rate)"
            )
        return track

    def stems(self, track: Path, names: list[str], shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """The reference stems ``names`` of ``track``, sums built from the parts."""
        cache: dict[str, np.ndarray] = {}

        def part(name: str) -> np.ndarray:
            if name not in cache:
                y, _ = sf.read(sorted(track.glob(f"{name}.*"))[0], dtype="float32", always_2d=True)
                cache[name] = _fit(y.T, shape)
            return cache[name]

        present = {p.stem for p in track.iterdir() if p.is_file()}
        out = {}
        for name in names:
            recipes = [(name,), *_RECIPES.get(name, [])]
            parts = next((r for r in recipes if set(r) <= present), None)
            if parts is None:
                raise KnownAnswerMissing(
                    f"the reference track {track.name} has no {name} stem "
                    f"(nor the parts to build it from: {recipes[1:] or 'none'})"
                )
            out[name] = sum(part(p) for p in parts)
        return out


def _fit(y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    channels = (
        y if y.shape[0] == shape[0] else np.broadcast_to(y.mean(axis=0), (shape[0], y.shape[-1]))
    )
    n = min(shape[1], y.shape[-1])
    out[:, :n] = channels[:, :n]
    return out


class Separator:
    """A persona at work: the engine, then the defects. One per emulated vendor."""

    def __init__(self, persona: Persona | None = None) -> None:
        self.persona = persona or Persona()
        self.references = (
            References(self.persona.references) if self.persona.references is not None else None
        )

    def separate(self, audio: np.ndarray, sr: int, stems: list[str]) -> dict[str, np.ndarray]:
        """Stems of ``audio`` (``(channels, samples)`` float32 at ``sr``) by this persona.

        Raises
        ------
        ValueError
            A stem the engine does not know; :class:`KnownAnswerMissing` for a mixture the
            known-answer engine has no reference for.
        """
        audio = np.asarray(audio, np.float32)
        if self.references is not None:
            track = self.references.find(audio, sr)
            clean = self.references.stems(track, list(stems), audio.shape)
        else:
            # the engine, with its speech-aware path for voice / rest requests
            clean = speech.separate(audio, sr, list(stems), engine=self.persona.engine)
        defects = self.persona.defects
        return defects.apply(clean, audio, sr) if defects.active else clean

    def hear(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """What a transcription vendor hears: ``audio`` with this persona's defects."""
        defects = self.persona.defects
        if not defects.active:
            return audio
        return defects.apply({"input": np.asarray(audio, np.float32)}, None, sr)["input"]
