"""Speech-over-music demo tracks: dialogue on a music-and-effects bed, with exact references.

The dialogue is synthetic speech made offline with Debian's ``flite`` (voices ``slt`` and ``rms``,
see ``scripts/make_speech.sh``) and committed as small 16 kHz FLAC files in ``data/speech/``,
each beside a ``.txt`` file holding its exact script, so building the tracks needs no tool beyond
the project's Python packages. The bed is the backing band of a :mod:`stemkit.demo.synth` demo song
(drums, bass and chords, rendered without the sung lead) at a level 6-10 dB below the speech,
plus a few sound effects (door knocks, noise swells).

The files follow the MUSDB18 layout with two stems: ``out_dir/<name>/mixture.wav``,
``dialogue.wav`` and ``music_fx.wav`` (stereo 16-bit PCM), and ``transcript.txt``. As in
:mod:`stemkit.demo.synth`, both stems are quantised to int16 first and the mixture is written from
their integer sum, so ``mixture == dialogue + music_fx`` holds exactly once read back.

Run ``stemkit demo-data OUT_DIR [--sr 44100]`` to write the set (with the music tracks).

Examples
--------
>>> from stemkit.demo.speech import SPEECH_TRACKS, render_speech_track
>>> [t.name for t in SPEECH_TRACKS]
['06-speech-kitchen', '07-speech-station', '08-speech-office']
>>> stems = render_speech_track(SPEECH_TRACKS[0], sr=8000)
>>> list(stems), stems["mixture"].shape[0]
(['dialogue', 'music_fx', 'mixture'], 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from stemkit.audio import resample
from stemkit.demo.synth import DEMO_TRACKS, TrackSpec, quantise_exact_sum, render_track
from stemkit.resources import bundled

__all__ = [
    "SPEECH_TRACKS",
    "STEMS",
    "SpeechTrack",
    "load_clip",
    "render_speech_track",
    "write_speech_track",
    "write_speech_tracks",
]


#: Stem names; ``mixture`` is their sum.
STEMS: tuple[str, ...] = ("dialogue", "music_fx")

_EFFECTS = ("knocks", "swells")


@dataclass(frozen=True)
class SpeechTrack:
    """One speech-over-music track.

    Parameters
    ----------
    name : str
        Folder name, e.g. ``"06-speech-kitchen"``.
    clip : str
        Name of the speech clip in the speech folder (``<clip>.flac``, ``<clip>.txt``).
    music : TrackSpec
        The :mod:`stemkit.demo.synth` song whose drums, bass and chords make the bed (its duration
        and vocals are ignored).
    music_db : float
        RMS of the music bed relative to the active-speech RMS, in dB (negative: below).
    lead_in, tail : float
        Seconds of music before the first and after the last sample of the speech clip.
    effects : tuple of str
        Sound effects added to the bed: ``"knocks"`` (door knocks) and/or ``"swells"`` (noise
        swells, like a passing train or wind).
    seed : int
        Seed of the effects' noise and timing.

    Examples
    --------
    >>> t = SpeechTrack("99-speech-test", "kitchen", DEMO_TRACKS[0], music_db=-8.0)
    >>> t.lead_in, t.effects
    (1.5, ())
    """

    name: str
    clip: str
    music: TrackSpec
    music_db: float
    lead_in: float = 1.5
    tail: float = 1.5
    effects: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.effects) - set(_EFFECTS)
        if unknown:
            raise ValueError(f"SpeechTrack {self.name!r}: unknown effects {sorted(unknown)}")
        if self.lead_in < 0 or self.tail < 0:
            raise ValueError(f"SpeechTrack {self.name!r}: lead_in and tail must be >= 0")


#: The three speech tracks: different voice, song, music level (-6 to -10 dB) and effects.
SPEECH_TRACKS: tuple[SpeechTrack, ...] = (
    SpeechTrack("06-speech-kitchen", "kitchen", DEMO_TRACKS[0], music_db=-8.0, lead_in=1.5,
                effects=("knocks",), seed=606),
    SpeechTrack("07-speech-station", "station", DEMO_TRACKS[1], music_db=-6.0, lead_in=2.0,
                effects=("swells",), seed=707),
    SpeechTrack("08-speech-office", "office", DEMO_TRACKS[3], music_db=-10.0, lead_in=1.2,
                effects=("knocks", "swells"), seed=808),
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Material
# --------------------------------------------------------------------------------------------


def load_clip(clip: str, speech_dir: str | Path | None = None) -> tuple[np.ndarray, int, str]:
    """Read one committed speech clip and its script.

    Parameters
    ----------
    clip : str
        Clip name, e.g. ``"kitchen"``.
    speech_dir : str or Path, optional
        Folder of the clips; default the packaged ones (:func:`stemkit.resources.bundled`).

    Returns
    -------
    audio : ndarray
        Mono float64 samples in [-1, 1].
    sr : int
        Its sample rate (16000 for the committed clips).
    script : str
        The exact text spoken, stripped of surrounding white space.

    Examples
    --------
    >>> audio, sr, script = load_clip("office")
    >>> sr, audio.ndim, script.split()[:2]
    (16000, 1, ['Good', 'morning,'])
    """
    folder = Path(speech_dir) if speech_dir is not None else bundled("speech")
    audio, sr = sf.read(folder / f"{clip}.flac", dtype="float64")
    if audio.ndim != 1:
        audio = audio.mean(axis=1)
    script = (folder / f"{clip}.txt").read_text(encoding="utf-8").strip()
    return audio, int(sr), script


def _active_rms(x: np.ndarray, sr: int, floor_db: float = -35.0) -> float:
    """RMS over the 20 ms frames within ``floor_db`` of the loudest one (pauses left out)."""
    n = max(1, round(0.02 * sr))
    frames = x[: x.size // n * n].reshape(-1, n)
    power = np.mean(frames**2, axis=1)
    active = power >= power.max() * 10.0 ** (floor_db / 10.0)
    return float(np.sqrt(np.mean(power[active])))


def _rms(x: np.ndarray) -> float:
    return max(float(np.sqrt(np.mean(np.square(x)))), 1e-12)


def _music_bed(spec: TrackSpec, duration: float, sr: int) -> np.ndarray:
    """Drums + bass + other of ``spec`` (no lead vocal) as float64 stereo ``(2, n)``."""
    n_bars = replace(spec, duration=duration).n_bars
    bed_spec = replace(spec, duration=duration, no_vocal_bars=tuple(range(n_bars)))
    stems = render_track(bed_spec, sr=sr)
    return sum(stems[s].astype(np.float64) for s in ("drums", "bass", "other"))


def _knock(rng: np.random.Generator, sr: int) -> np.ndarray:
    """One knuckle on a wooden door: a damped low-mid resonance plus a short click."""
    t = np.arange(int(0.12 * sr)) / sr
    body = signal.sosfilt(
        signal.butter(2, [140.0, 900.0], btype="bandpass", fs=sr, output="sos"),
        rng.standard_normal(t.size),
    )
    tone = np.sin(2 * np.pi * rng.uniform(170.0, 210.0) * t)
    click = rng.standard_normal(t.size) * np.exp(-t / 0.002)
    hit = (body / _rms(body) + 1.5 * tone) * np.exp(-t / 0.025) + 0.6 * click
    return hit / float(np.abs(hit).max())


def _knocks(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Two groups of three knocks, at random times, slightly off-centre."""
    out = np.zeros((2, n))
    for _ in range(2):
        start = rng.uniform(0.15, 0.8) * n / sr
        pan = rng.uniform(-0.6, 0.6)
        for k in range(3):
            hit = _knock(rng, sr) * rng.uniform(0.8, 1.0)
            s = int((start + 0.2 * k + rng.uniform(-0.01, 0.01)) * sr)
            seg = hit[: max(0, n - s)]
            out[0, s : s + seg.size] += seg * np.sqrt(0.5 * (1 - pan))
            out[1, s : s + seg.size] += seg * np.sqrt(0.5 * (1 + pan))
    return out


def _swells(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Band-passed noise rising and falling over 2-4 s and sweeping across, twice.

    Each swell is unit-RMS noise under a raised-cosine envelope (so its crest is at 0 dB).
    """
    out = np.zeros((2, n))
    sos = signal.butter(2, [150.0, min(2500.0, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    for _ in range(2):
        length = min(int(rng.uniform(2.0, 4.0) * sr), n)
        start = int(rng.uniform(0.0, 1.0) * (n - length))
        noise = signal.sosfilt(sos, rng.standard_normal((2, length)), axis=-1)
        env = np.sin(np.pi * np.arange(length) / length) ** 2
        sweep = np.linspace(-1.0, 1.0, length) * rng.choice([-1.0, 1.0])
        gains = np.stack([np.sqrt(0.5 * (1 - sweep)), np.sqrt(0.5 * (1 + sweep))])
        out[:, start : start + length] += noise / _rms(noise) * env * gains
    return out


def _effects(track: SpeechTrack, n: int, sr: int) -> dict[str, np.ndarray]:
    """Each effect of ``track`` at unit level (knocks peak at 1, swells crest at 0 dB RMS)."""
    rng = np.random.default_rng(track.seed)
    makers = {"knocks": _knocks, "swells": _swells}
    return {name: makers[name](n, sr, rng) for name in track.effects}


# --------------------------------------------------------------------------------------------
# Mixing and quantisation
# --------------------------------------------------------------------------------------------


def _render_float(
    track: SpeechTrack, sr: int, speech_dir: str | Path | None
) -> tuple[dict[str, np.ndarray], str]:
    """The two stems as float64 ``(2, n)`` at their relative levels, and the script."""
    clip, clip_sr, script = load_clip(track.clip, speech_dir)
    # a 40 Hz high-pass, as any dialogue edit has: the recordings carry a little DC offset
    sos = signal.butter(2, 40.0, btype="highpass", fs=clip_sr, output="sos")
    speech = resample(signal.sosfiltfilt(sos, clip), clip_sr, sr)
    lead = round(track.lead_in * sr)
    n = lead + speech.size + round(track.tail * sr)
    dialogue = np.zeros(n)
    dialogue[lead : lead + speech.size] = speech
    speech_rms = _active_rms(speech, sr)
    dialogue = np.stack([dialogue, dialogue]) * (0.1 / speech_rms)  # centred, at -20 dB RMS

    bed = _music_bed(track.music, n / sr, sr)[:, :n]
    music = bed * (0.1 * 10.0 ** (track.music_db / 20.0) / _rms(bed))
    # knocks peak about as high as the speech does; swells crest 3 dB below the music bed
    fx_gain = {"knocks": 0.35, "swells": 0.1 * 10.0 ** ((track.music_db - 3.0) / 20.0)}
    for name, fx in _effects(track, n, sr).items():
        music += fx * fx_gain[name]
    fade = np.minimum(np.arange(n) / (0.01 * sr), 1.0) * np.minimum(
        np.arange(n)[::-1] / (0.8 * sr), 1.0
    )
    return {"dialogue": dialogue, "music_fx": music * fade}, script


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def render_speech_track(
    track: SpeechTrack, sr: int = 44100, speech_dir: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Render one speech track: both stems and their mixture, exactly as written.

    Parameters
    ----------
    track : SpeechTrack
        What to render.
    sr : int
        Sample rate in Hz.
    speech_dir : str or Path, optional
        Folder of the speech clips; default :data:`SPEECH_DIR`.

    Returns
    -------
    dict of str to ndarray
        ``dialogue``, ``music_fx`` and ``mixture``, float32 ``(2, n)``: the int16 samples
        divided by 32768, so ``mixture == dialogue + music_fx`` exactly.

    Examples
    --------
    >>> stems = render_speech_track(SPEECH_TRACKS[1], sr=8000)
    >>> bool((stems["mixture"] == stems["dialogue"] + stems["music_fx"]).all())
    True
    """
    ints = quantise_exact_sum(_render_float(track, sr, speech_dir)[0])
    return {name: (x / 32768.0).astype(np.float32) for name, x in ints.items()}


def write_speech_track(
    track: SpeechTrack, out_dir: str | Path, sr: int = 44100, speech_dir: str | Path | None = None
) -> Path:
    """Write ``out_dir/<name>/{mixture,dialogue,music_fx}.wav`` and ``transcript.txt``.

    Parameters
    ----------
    track : SpeechTrack
        What to write.
    out_dir : str or Path
        Parent folder; created if missing. Existing files of the track are overwritten.
    sr : int
        Sample rate in Hz.
    speech_dir : str or Path, optional
        Folder of the speech clips; default :data:`SPEECH_DIR`.

    Returns
    -------
    Path
        The track folder.

    Examples
    --------
    >>> import tempfile
    >>> folder = write_speech_track(SPEECH_TRACKS[2], tempfile.mkdtemp(), sr=8000)
    >>> sorted(p.name for p in folder.iterdir())
    ['dialogue.wav', 'mixture.wav', 'music_fx.wav', 'transcript.txt']
    """
    stems, script = _render_float(track, sr, speech_dir)
    folder = Path(out_dir) / track.name
    folder.mkdir(parents=True, exist_ok=True)
    for name, x in quantise_exact_sum(stems).items():
        sf.write(folder / f"{name}.wav", x.T, sr, subtype="PCM_16", format="WAV")
    (folder / "transcript.txt").write_text(script + "\n", encoding="utf-8")
    return folder


def write_speech_tracks(
    out_dir: str | Path,
    sr: int = 44100,
    tracks: Sequence[SpeechTrack] = SPEECH_TRACKS,
    speech_dir: str | Path | None = None,
) -> list[Path]:
    """Write every speech track (by default :data:`SPEECH_TRACKS`) under ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Parent folder of the track folders; created if missing.
    sr : int
        Sample rate in Hz.
    tracks : sequence of SpeechTrack
        Which tracks to write.
    speech_dir : str or Path, optional
        Folder of the speech clips; default :data:`SPEECH_DIR`.

    Returns
    -------
    list of Path
        The track folders, in the order of ``tracks``.

    Examples
    --------
    >>> import tempfile
    >>> [p.name for p in write_speech_tracks(tempfile.mkdtemp(), sr=8000)]
    ['06-speech-kitchen', '07-speech-station', '08-speech-office']
    """
    return [write_speech_track(t, out_dir, sr, speech_dir) for t in tracks]
