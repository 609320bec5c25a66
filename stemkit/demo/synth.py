"""The stemkit demo set: short multitracks with exact ground-truth stems, made by code.

Every track is synthesised deterministically from musical material (a drum loop, a bass line on
the chord roots, chords from a pad or a piano-like additive voice, and a sung-like lead with
vibrato, portamento and vowel formants), so nothing has to be downloaded and a separation
service's output can be scored against references that are exactly right.

The files follow the MUSDB18-HQ layout: one folder per track holding ``mixture.wav``,
``vocals.wav``, ``drums.wav``, ``bass.wav`` and ``other.wav``, stereo 16-bit PCM. Each stem is
quantised to int16 first and the mixture is written from the integer sum of the stems, so once
read back, ``mixture == vocals + drums + bass + other`` holds exactly (in int16 units).

Drums, bass and chords repeat in one- or two-bar loops; the melody is drawn afresh for each
phrase from a seeded generator, so, as in real songs, the vocal is the part that does not repeat.

Run ``stemkit demo-data OUT_DIR [--sr 44100]`` to write the whole set.

Examples
--------
>>> from dataclasses import replace
>>> from stemkit.demo.synth import DEMO_TRACKS, render_track
>>> spec = replace(DEMO_TRACKS[0], duration=4.0)
>>> stems = render_track(spec, sr=8000)
>>> list(stems)
['vocals', 'drums', 'bass', 'other', 'mixture']
>>> stems["mixture"].shape
(2, 32000)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

__all__ = [
    "DEMO_TRACKS",
    "PEAK_DBFS",
    "SCALES",
    "STEMS",
    "TrackSpec",
    "render_track",
    "write_demo_set",
    "write_track",
]

#: Stem names in MUSDB18 order; ``mixture`` is their sum.
STEMS: tuple[str, ...] = ("vocals", "drums", "bass", "other")

#: Peak of every mixture as written, in dBFS.
PEAK_DBFS = -1.0

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
}

_PITCH_CLASS = {
    "C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
    "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11,
}  # fmt: skip

_I16_MAX = 32767

#: Relative RMS of each stem (dB) before the whole track is scaled to the mixture peak.
_STEM_LEVEL_DB = {"vocals": -15.0, "drums": -16.5, "bass": -18.0, "other": -20.0}


# --------------------------------------------------------------------------------------------
# Track specification
# --------------------------------------------------------------------------------------------

_DRUM_STYLES = ("rock", "halftime", "funk", "four", "shuffle")
_BASS_PATTERNS = ("eighths", "long", "syncopated", "octaves", "walking")


@dataclass(frozen=True)
class TrackSpec:
    """Everything that makes a demo track: what to play and how to place it in the stereo field.

    Parameters
    ----------
    name : str
        Short slug, used as the folder name (``"01-sunday-drive"``).
    seed : int
        Seed of the random generators (melody, humanising, noise).
    duration : float
        Length in seconds.
    tempo : float
        Beats per minute (4/4 time).
    key : str
        Tonic, e.g. ``"G"``, ``"Eb"``, ``"F#"``.
    scale : str
        Mode, one of :data:`SCALES`.
    progression : tuple of int
        Chord roots as 0-based scale degrees, each lasting ``chord_beats`` beats, looped.
    chord_beats : int
        Beats per chord (2 or 4), so the harmony loops every one or two bars.
    sevenths : bool
        Play seventh chords instead of triads.
    drums : str
        Drum pattern: ``"rock"``, ``"halftime"``, ``"funk"``, ``"four"`` or ``"shuffle"``.
    swing : float
        Delay of off-beat eighths, as a fraction of an eighth (1/3 = triplet feel).
    bass_wave : str
        ``"saw"`` or ``"square"``.
    bass_pattern : str
        ``"eighths"``, ``"long"``, ``"syncopated"``, ``"octaves"`` or ``"walking"``.
    chords : str
        ``"piano"`` (struck additive chords) or ``"pad"`` (sustained detuned saws).
    arp : bool
        Add an arpeggiated pluck to the ``other`` stem.
    vocal_center : int
        MIDI note the melody moves around (the range is about a ninth either side).
    formant_scale : float
        Scale of the vowel formant frequencies (1.0 for a high voice, ~0.88 for a low one).
    vocal_pan, hat_pan : float
        Stereo position of the lead and of the hi-hats, -1 (left) to 1 (right).
    chord_width : float
        Stereo spread of the chord voices, 0 (mono) to 1 (wide).
    no_vocal_bars, no_drum_bars : tuple of int
        0-based bars in which the vocal rests or the drums drop out.

    Examples
    --------
    >>> spec = TrackSpec(name="99-test-tone", seed=7, duration=8.0, tempo=120, key="C",
    ...                  scale="major", progression=(0, 5, 3, 4), no_vocal_bars=(0,))
    >>> spec.n_bars, spec.beat_seconds
    (4, 0.5)
    """

    name: str
    seed: int
    duration: float
    tempo: float
    key: str
    scale: str
    progression: tuple[int, ...]
    chord_beats: int = 2
    sevenths: bool = False
    drums: str = "rock"
    swing: float = 0.0
    bass_wave: str = "saw"
    bass_pattern: str = "eighths"
    chords: str = "piano"
    arp: bool = False
    vocal_center: int = 67
    formant_scale: float = 1.0
    vocal_pan: float = 0.0
    hat_pan: float = 0.3
    chord_width: float = 0.6
    no_vocal_bars: tuple[int, ...] = ()
    no_drum_bars: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        checks = {
            "duration must be positive": self.duration > 0,
            "tempo must be between 40 and 240 bpm": 40 <= self.tempo <= 240,
            f"unknown key {self.key!r}": self.key in _PITCH_CLASS,
            f"unknown scale {self.scale!r}": self.scale in SCALES,
            "progression must not be empty": len(self.progression) > 0,
            "chord_beats must be 1, 2 or 4": self.chord_beats in (1, 2, 4),
            f"unknown drums {self.drums!r}": self.drums in _DRUM_STYLES,
            "swing must be in [0, 0.5)": 0 <= self.swing < 0.5,
            f"unknown bass_wave {self.bass_wave!r}": self.bass_wave in ("saw", "square"),
            f"unknown bass_pattern {self.bass_pattern!r}": self.bass_pattern in _BASS_PATTERNS,
            f"unknown chords {self.chords!r}": self.chords in ("piano", "pad"),
            "pans must be in [-1, 1]": all(abs(p) <= 1 for p in (self.vocal_pan, self.hat_pan)),
            "chord_width must be in [0, 1]": 0 <= self.chord_width <= 1,
            "formant_scale must be in [0.5, 1.5]": 0.5 <= self.formant_scale <= 1.5,
        }
        failed = [msg for msg, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"TrackSpec {self.name!r}: " + "; ".join(failed))

    @property
    def beat_seconds(self) -> float:
        """Length of one beat in seconds."""
        return 60.0 / self.tempo

    @property
    def n_bars(self) -> int:
        """Number of (possibly partial) 4/4 bars in the track."""
        return math.ceil(self.duration / (4 * self.beat_seconds) - 1e-9)


#: The five demo tracks: varied tempo (84-132 bpm), key, mode, groove and arrangement.
DEMO_TRACKS: tuple[TrackSpec, ...] = (
    TrackSpec(
        name="01-sunday-drive", seed=101, duration=20.0, tempo=100, key="G", scale="major",
        progression=(0, 4, 5, 3), chord_beats=2, drums="rock", bass_wave="saw",
        bass_pattern="eighths", chords="piano", vocal_center=67, no_vocal_bars=(0,),
    ),
    TrackSpec(
        name="02-night-bus", seed=202, duration=22.0, tempo=84, key="A", scale="minor",
        progression=(0, 5, 2, 6), chord_beats=2, sevenths=True, drums="halftime",
        bass_wave="square", bass_pattern="long", chords="pad", vocal_center=57,
        formant_scale=0.88, hat_pan=0.25, chord_width=0.9, no_vocal_bars=(0,),
        no_drum_bars=(0, 1),
    ),
    TrackSpec(
        name="03-paper-kites", seed=303, duration=18.0, tempo=116, key="D", scale="dorian",
        progression=(0, 3), chord_beats=4, sevenths=True, drums="funk", bass_wave="saw",
        bass_pattern="syncopated", chords="piano", arp=True, vocal_center=69, hat_pan=0.35,
        no_vocal_bars=(0, 5, 6),
    ),
    TrackSpec(
        name="04-neon-run", seed=404, duration=16.0, tempo=132, key="F", scale="mixolydian",
        progression=(0, 6, 3, 0), chord_beats=2, drums="four", bass_wave="square",
        bass_pattern="octaves", chords="pad", arp=True, vocal_center=65, vocal_pan=-0.35,
        chord_width=1.0, no_vocal_bars=(0, 1),
    ),
    TrackSpec(
        name="05-slow-tide", seed=505, duration=24.0, tempo=92, key="Eb", scale="major",
        progression=(1, 4, 0, 5), chord_beats=2, sevenths=True, drums="shuffle", swing=0.3,
        bass_wave="saw", bass_pattern="walking", chords="piano", vocal_center=65,
        hat_pan=0.3, no_vocal_bars=(0,), no_drum_bars=(4, 5),
    ),
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Small signal helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Note:
    """A note on the beat grid (times in beats); ``vowel``/``consonant`` are for the lead."""

    start: float
    dur: float
    midi: float
    vel: float = 1.0
    vowel: int = 0
    consonant: str = ""


def _hz(midi: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69.0) / 12.0)


def _seconds(spec: TrackSpec, beat: float) -> float:
    """Time of a beat position in seconds, with off-beat eighths delayed by the swing."""
    if spec.swing and abs(beat % 1.0 - 0.5) < 1e-9:
        beat += spec.swing * 0.5
    return beat * spec.beat_seconds


def _sample(spec: TrackSpec, beat: float, sr: int) -> int:
    return round(_seconds(spec, beat) * sr)


def _pan(mono: np.ndarray, pos: float) -> np.ndarray:
    """Constant-power pan of a mono signal to stereo, ``pos`` from -1 (left) to 1 (right)."""
    angle = (np.clip(pos, -1.0, 1.0) + 1.0) * np.pi / 4.0
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)])


def _add(buf: np.ndarray, seg: np.ndarray, start: int) -> None:
    """Add ``seg`` into ``buf`` (last axis) from ``start``, clipped to the buffer."""
    n = buf.shape[-1]
    if start >= n or start + seg.shape[-1] <= 0:
        return
    lo = max(0, -start)
    hi = min(seg.shape[-1], n - start)
    buf[..., start + lo : start + hi] += seg[..., lo:hi]


def _max_into(buf: np.ndarray, seg: np.ndarray, start: int) -> None:
    """Like :func:`_add` but keep the larger value (envelopes of overlapping notes)."""
    n = buf.shape[-1]
    lo, hi = max(0, -start), min(seg.shape[-1], n - start)
    if hi > lo:
        view = buf[start + lo : start + hi]
        np.maximum(view, seg[lo:hi], out=view)


@lru_cache(maxsize=256)
def _sos(kind: str, cutoff: float | tuple[float, float], sr: int, order: int = 2) -> np.ndarray:
    """Butterworth filter as second-order sections, cutoff clipped below Nyquist."""
    nyq = sr / 2.0
    if isinstance(cutoff, tuple):
        cut: float | list[float] = [min(cutoff[0], 0.7 * nyq), min(cutoff[1], 0.95 * nyq)]
    else:
        cut = min(cutoff, 0.95 * nyq)
    return signal.butter(order, cut, btype=kind, fs=sr, output="sos")


def _one_pole(x: np.ndarray, tau: float, sr: int) -> np.ndarray:
    """Causal one-pole smoother along the last axis, starting settled at the first value."""
    a = math.exp(-1.0 / (tau * sr))
    zi = a * np.take(x, [0], axis=-1)
    y, _ = signal.lfilter([1.0 - a], [1.0, -a], x, axis=-1, zi=zi)
    return y


def _phase(freq: np.ndarray, sr: int, start: float = 0.0) -> np.ndarray:
    """Wrapped oscillator phase in cycles (0..1) for a per-sample frequency track."""
    inc = freq / sr
    cycles = np.cumsum(inc) - inc + start
    return cycles - np.floor(cycles)


def _blep_saw(phase: np.ndarray, inc: np.ndarray) -> np.ndarray:
    """Band-limited (PolyBLEP) rising sawtooth in [-1, 1] from a phase track."""
    y = 2.0 * phase - 1.0
    low = phase < inc
    t = phase[low] / inc[low]
    y[low] -= 2.0 * t - t * t - 1.0
    high = phase > 1.0 - inc
    t = (phase[high] - 1.0) / inc[high]
    y[high] -= t * t + 2.0 * t + 1.0
    return y


def _blep_square(phase: np.ndarray, inc: np.ndarray) -> np.ndarray:
    """Band-limited square wave: the difference of two half-period-shifted saws."""
    return 0.5 * (_blep_saw(phase, inc) - _blep_saw((phase + 0.5) % 1.0, inc))


def _note_env(
    length: int, sr: int, attack: float, release: float, decay: float = 0.0, sustain: float = 1.0
) -> np.ndarray:
    """Raised-cosine attack, exponential decay to ``sustain``, raised-cosine release tail.

    The result has ``length`` samples of held note plus the release.
    """
    n_rel = max(1, int(release * sr))
    t = np.arange(length + n_rel) / sr
    env = np.ones_like(t) if decay <= 0 else sustain + (1.0 - sustain) * np.exp(-t / decay)
    n_att = min(max(1, int(attack * sr)), env.size)
    env[:n_att] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(n_att) / n_att)
    tail = env[length:]
    tail *= 0.5 + 0.5 * np.cos(np.pi * np.arange(tail.size) / tail.size)
    return env


def _held_index(starts: np.ndarray, bounds: np.ndarray, n: int) -> np.ndarray:
    """Index of the note that owns each sample: the current one, or the next during a rest."""
    idx = np.searchsorted(bounds, np.arange(n), side="right")
    return np.minimum(idx, starts.size - 1)


# --------------------------------------------------------------------------------------------
# Harmony
# --------------------------------------------------------------------------------------------


def _step_midi(spec: TrackSpec, step: int) -> int:
    """MIDI note of an absolute scale step; step 0 is the tonic just above middle C."""
    mode = SCALES[spec.scale]
    return 60 + _PITCH_CLASS[spec.key] + 12 * (step // 7) + mode[step % 7]


def _nearest_step(spec: TrackSpec, midi: float) -> int:
    steps = np.arange(-28, 28)
    notes = np.array([_step_midi(spec, int(s)) for s in steps])
    return int(steps[np.argmin(np.abs(notes - midi))])


def _chord_degree(spec: TrackSpec, beat: float) -> int:
    return spec.progression[int(beat // spec.chord_beats) % len(spec.progression)]


def _chord_steps(spec: TrackSpec, degree: int) -> list[int]:
    return [degree + 2 * i for i in range(4 if spec.sevenths else 3)]


def _voicing(spec: TrackSpec, degree: int, prev: Sequence[int] | None) -> tuple[int, ...]:
    """Four-note voicing in a mid register, chosen for smooth voice leading from ``prev``."""
    tones = _chord_steps(spec, degree)
    best: tuple[float, tuple[int, ...]] | None = None
    for inv in range(len(tones)):
        for octave in (-2, -1, 0, 1):
            steps = [s + 7 * octave for s in tones[inv:] + [t + 7 for t in tones[:inv]]]
            notes = [_step_midi(spec, s) for s in steps]
            if len(notes) == 3:
                notes.append(notes[0] + 12)
            cost = abs(float(np.mean(notes)) - 63.0)
            if prev is not None:
                cost += 0.5 * sum(abs(a - b) for a, b in zip(notes, prev, strict=True))
            if min(notes) >= 50 and max(notes) <= 80 and (best is None or cost < best[0]):
                best = (cost, tuple(notes))
    assert best is not None
    return best[1]


def _voicings(spec: TrackSpec) -> list[tuple[int, ...]]:
    """One voicing per chord of the progression (voice-led in order)."""
    out: list[tuple[int, ...]] = []
    for degree in spec.progression:
        out.append(_voicing(spec, degree, out[-1] if out else None))
    return out


# --------------------------------------------------------------------------------------------
# Drums
# --------------------------------------------------------------------------------------------

# Two-bar loops on a 16th grid (bars split by |): X accent, x normal, o soft, g ghost, - rest.
_VELOCITY = {"X": 1.0, "x": 0.8, "o": 0.55, "g": 0.25}
_DRUM_PATTERNS: dict[str, dict[str, str]] = {
    "rock": {
        "kick": "X-------X-x-----|X-------X-x---o-",
        "snare": "----X-------X---|----X-------X---",
        "hat": "x-o-x-o-x-o-x-o-|x-o-x-o-x-o-x---",
        "open": "----------------|--------------x-",
    },
    "halftime": {
        "kick": "X--o------X-----|X--o------X--o--",
        "snare": "--------X------g|--------X-------",
        "hat": "xoxoxoxoxoxoxoxo|xoxoxoxoxoxoxo-o",
        "open": "----------------|--------------x-",
    },
    "funk": {
        "kick": "X-----x---X-----|X--o--x---X---o-",
        "snare": "----X--g-g--X--g|----X--g-g--X---",
        "hat": "xoxoxoxoxo-oxoxo|xoxoxoxoxo-oxoxo",
        "open": "----------x-----|----------x-----",
    },
    "four": {
        "kick": "X---X---X---X---|X---X---X---X---",
        "snare": "----X-------X---|----X-------X---",
        "hat": "-g-g-g-g-g-g-g-g|-g-g-g-g-g-g-g-g",
        "open": "--x---x---x---x-|--x---x---x---x-",
    },
    "shuffle": {
        "kick": "X------oX-------|X-------X--o----",
        "snare": "----X-------X---|----X-------X-g-",
        "hat": "x-o-x-o-x-o-x-o-|x-o-x-o-x-o-x---",
        "open": "----------------|--------------o-",
    },
}

# Fills on the last beat of every fourth bar: (instrument, 16th step in the bar, velocity).
_FILLS: tuple[tuple[tuple[str, int, float], ...], ...] = (
    (("snare", 12, 0.6), ("snare", 13, 0.45), ("snare", 14, 0.75), ("snare", 15, 0.9)),
    (("tom_hi", 12, 0.9), ("tom_hi", 13, 0.7), ("tom_lo", 14, 0.9), ("tom_lo", 15, 0.8)),
    (("snare", 12, 0.8), ("tom_hi", 13, 0.8), ("tom_lo", 14, 0.9), ("snare", 15, 0.7)),
)

_DRUM_PAN = {"kick": 0.0, "snare": -0.08, "tom_hi": 0.35, "tom_lo": -0.35, "crash": -0.3}


def _swept_sine(
    sr: int, dur: float, f_start: float, f_end: float, sweep: float, decay: float
) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(dur * sr)) / sr
    freq = f_end + (f_start - f_end) * np.exp(-t / sweep)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / decay), t


def _kick(rng: np.random.Generator, sr: int) -> np.ndarray:
    body, t = _swept_sine(sr, 0.45, 160.0, 48.0, 0.035, 0.22)
    click = signal.sosfilt(_sos("highpass", 2500.0, sr), rng.standard_normal(t.size))
    click *= np.exp(-t / 0.003) * 0.5
    return np.tanh(1.6 * (body + click)) / np.tanh(1.6)


def _snare(rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(int(0.32 * sr)) / sr
    tone = (np.sin(2 * np.pi * 185 * t) + 0.6 * np.sin(2 * np.pi * 330 * t)) * np.exp(-t / 0.05)
    noise = signal.sosfilt(_sos("bandpass", (1500.0, 9000.0), sr), rng.standard_normal(t.size))
    return 0.6 * tone + 1.3 * noise * np.exp(-t / 0.11)


def _hat(rng: np.random.Generator, sr: int, decay: float, dur: float) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    noise = signal.sosfilt(_sos("highpass", 7000.0, sr, order=4), rng.standard_normal(t.size))
    return 1.4 * noise * np.exp(-t / decay)


def _tom(rng: np.random.Generator, sr: int, pitch: float) -> np.ndarray:
    body, t = _swept_sine(sr, 0.5, pitch * 1.5, pitch, 0.05, 0.2)
    noise = signal.sosfilt(_sos("bandpass", (300.0, 3000.0), sr), rng.standard_normal(t.size))
    return body + 0.15 * noise * np.exp(-t / 0.03)


def _crash(rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(int(2.0 * sr)) / sr
    noise = signal.sosfilt(_sos("highpass", 4000.0, sr, order=4), rng.standard_normal(t.size))
    swell = 1.0 - np.exp(-t / 0.002)
    return 0.5 * noise * swell * np.exp(-t / 0.5)


def _drum_kit(rng: np.random.Generator, sr: int) -> dict[str, list[np.ndarray]]:
    """A few variants of every drum sound, chosen at random per hit to avoid a machine-gun feel."""
    return {
        "kick": [_kick(rng, sr) for _ in range(2)],
        "snare": [_snare(rng, sr) for _ in range(3)],
        "hat": [_hat(rng, sr, 0.022, 0.12) for _ in range(4)],
        "open": [_hat(rng, sr, 0.18, 0.6) for _ in range(2)],
        "tom_hi": [_tom(rng, sr, 150.0)],
        "tom_lo": [_tom(rng, sr, 100.0)],
        "crash": [_crash(rng, sr)],
    }


def _bar_hits(spec: TrackSpec, bar: int, rng: np.random.Generator) -> list[tuple[str, int, float]]:
    """(instrument, 16th step within the bar, velocity) for one bar of the loop, with fills."""
    rows = {inst: row.split("|")[bar % 2] for inst, row in _DRUM_PATTERNS[spec.drums].items()}
    hits = [
        (inst, step, _VELOCITY[mark])
        for inst, row in rows.items()
        for step, mark in enumerate(row)
        if mark != "-"
    ]
    drums_before = bar > 0 and bar - 1 not in spec.no_drum_bars
    if not drums_before or bar % 4 == 0:
        hits.append(("crash", 0, 0.9 if bar > 0 else 0.7))
    if bar % 4 == 3 and bar + 1 < spec.n_bars:
        fill = _FILLS[int(rng.integers(len(_FILLS)))]
        hits = [h for h in hits if h[1] < 12 or h[0] == "kick"] + list(fill)
    return hits


def _drum_events(spec: TrackSpec, rng: np.random.Generator) -> list[tuple[str, float, float]]:
    """All drum hits as (instrument, beat, velocity), humanised a little."""
    events = []
    for bar in range(spec.n_bars):
        if bar in spec.no_drum_bars:
            continue
        for inst, step, vel in _bar_hits(spec, bar, rng):
            beat = 4 * bar + step / 4.0
            events.append((inst, beat, vel * float(rng.uniform(0.9, 1.05))))
    return sorted(events, key=lambda e: (e[1], e[0]))


def _render_drums(spec: TrackSpec, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    kit = _drum_kit(rng, sr)
    buses = {name: np.zeros(n) for name in kit}
    events = _drum_events(spec, rng)
    hat_times = sorted(_sample(spec, b, sr) for i, b, _ in events if i in ("hat", "open"))
    for inst, beat, vel in events:
        start = _sample(spec, beat, sr) + int(rng.normal(0.0, 0.002) * sr)
        sound = kit[inst][int(rng.integers(len(kit[inst])))] * vel
        if inst == "open":
            sound = _choke(sound, start, hat_times, sr)
        _add(buses[inst], sound, max(start, 0))
    hats = buses.pop("hat") + buses.pop("open")
    out = _pan(hats, spec.hat_pan)
    for name, bus in buses.items():
        out += _pan(bus, _DRUM_PAN[name])
    return out


def _choke(sound: np.ndarray, start: int, hat_times: list[int], sr: int) -> np.ndarray:
    """Cut an open hi-hat short when the next hi-hat is played (as a real hat pedal does)."""
    later = [t for t in hat_times if t > start + sr // 100]
    if not later or later[0] - start >= sound.size:
        return sound
    cut = later[0] - start
    fade = min(int(0.01 * sr), cut)
    out = sound[: cut + fade].copy()
    out[cut:] *= np.linspace(1.0, 0.0, fade, endpoint=False)
    return out


# --------------------------------------------------------------------------------------------
# Bass
# --------------------------------------------------------------------------------------------

# Per-bar patterns: (16th step, length in 16ths, chord tone 0/1/2 = root/third/fifth, +octave).
_BASS_RHYTHMS: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "eighths": tuple((s, 2, 0, 0) for s in range(0, 16, 2)),
    "long": ((0, 6, 0, 0), (6, 2, 0, 0), (8, 6, 0, 0), (14, 2, 2, 0)),
    "syncopated": (
        (0, 3, 0, 0), (3, 3, 0, 0), (6, 2, 2, 0), (8, 2, 0, 1), (10, 3, 0, 0), (13, 1, 2, 0),
        (14, 2, 1, 0),
    ),
    "octaves": tuple((s, 2, 0, (s // 2) % 2) for s in range(0, 16, 2)),
    "walking": ((0, 4, 0, 0), (4, 4, 2, 0), (8, 4, 0, 1), (12, 4, 1, 0)),
}  # fmt: skip


def _bass_midi(spec: TrackSpec, degree: int, tone: int, octave: int) -> int:
    root = _step_midi(spec, degree)
    root = 33 + (root - 33) % 12  # roots between A1 and G#2
    return root + _step_midi(spec, degree + 2 * tone) - _step_midi(spec, degree) + 12 * octave


def _bass_notes(spec: TrackSpec) -> list[_Note]:
    notes = []
    for bar in range(spec.n_bars):
        for step, length, tone, octave in _BASS_RHYTHMS[spec.bass_pattern]:
            beat = 4 * bar + step / 4.0
            degree = _chord_degree(spec, beat)
            vel = 1.0 if step % 4 == 0 else 0.85
            notes.append(_Note(beat, length / 4.0, _bass_midi(spec, degree, tone, octave), vel))
    return notes


def _render_bass(spec: TrackSpec, sr: int, n: int, notes: list[_Note]) -> np.ndarray:
    starts = np.array([_sample(spec, nt.start, sr) for nt in notes])
    ends = np.array([_sample(spec, nt.start + nt.dur, sr) for nt in notes])
    idx = _held_index(starts, ends, n)
    freq = _hz(np.array([nt.midi for nt in notes]))[idx]
    freq = _one_pole(freq, 0.004, sr)
    inc = freq / sr
    phase = _phase(freq, sr)
    wave = _blep_saw(phase, inc) if spec.bass_wave == "saw" else _blep_square(phase, inc)
    dark = signal.sosfilt(_sos("lowpass", 320.0, sr, order=4), wave)
    bright = signal.sosfilt(_sos("lowpass", 1100.0, sr, order=2), wave)
    amp, pluck = np.zeros(n), np.zeros(n)
    for nt, s, e in zip(notes, starts, ends, strict=True):
        length = max(1, int((e - s) * 0.9))
        _max_into(amp, nt.vel * _note_env(length, sr, 0.004, 0.03, 0.25, 0.7), s)
        _max_into(pluck, _note_env(length, sr, 0.002, 0.03, 0.07, 0.0), s)
    tone = dark + pluck * (bright - dark) + 0.6 * np.sin(2 * np.pi * phase)
    return _pan(tone * amp, 0.0)


# --------------------------------------------------------------------------------------------
# Chords ("other")
# --------------------------------------------------------------------------------------------


def _voice_pan(midi: float, width: float) -> float:
    return float(np.clip(width * (midi - 64.0) / 7.0, -1.0, 1.0))


def _piano_tone(midi: int, sr: int, dur: float) -> np.ndarray:
    """Struck string: slightly inharmonic partials, higher ones decaying faster."""
    f0 = float(_hz(midi))
    k = np.arange(1, 13)
    freqs = k * f0 * np.sqrt(1.0 + 0.0004 * k**2)
    keep = freqs < min(7000.0, 0.45 * sr)
    k, freqs = k[keep], freqs[keep]
    amps = (1.0 / k**1.3) * (1.0 + 0.6 * np.sin(np.pi * k * 0.13))  # hammer position
    tau = 1.4 * (262.0 / f0) ** 0.4 / (1.0 + 0.45 * (k - 1))
    # Each partial is a decaying phasor: z**n by a running product (cheaper than exp and sin).
    z = np.exp(-1.0 / (tau * sr) + 2j * np.pi * freqs / sr)
    powers = np.empty((int(dur * sr), z.size), dtype=complex)
    powers[0], powers[1:] = 1.0, z
    x = np.cumprod(powers, axis=0).imag @ amps
    n_att = int(0.003 * sr)
    x[:n_att] *= np.linspace(0.0, 1.0, n_att)
    return x


def _strike_beats(spec: TrackSpec) -> tuple[tuple[float, float], ...]:
    """Piano strikes within one chord: (beat offset, velocity)."""
    if spec.chord_beats >= 4:
        return ((0.0, 1.0), (1.5, 0.6), (3.0, 0.7))
    if spec.chord_beats == 2:
        return ((0.0, 1.0), (1.0, 0.55))
    return ((0.0, 1.0),)


def _render_piano(spec: TrackSpec, sr: int, n: int, voicings: list[tuple[int, ...]]) -> np.ndarray:
    strikes = [
        (c * spec.chord_beats + off, vel, voicings[c % len(voicings)])
        for c in range(math.ceil(spec.n_bars * 4 / spec.chord_beats))
        for off, vel in _strike_beats(spec)
    ]
    onsets = [_sample(spec, beat, sr) for beat, _, _ in strikes] + [n + sr]
    gaps = [min(b, n) - a for a, b in zip(onsets, onsets[1:], strict=False) if a < n]
    longest = min(max(gaps) / sr + 0.1, 2.0)  # a strike rings until the next one
    tones = {m: _piano_tone(m, sr, longest) for v in voicings for m in v}
    out = np.zeros((2, n))
    fade = int(0.08 * sr)
    for (_, vel, voicing), start, nxt in zip(strikes, onsets, onsets[1:], strict=False):
        length = min(nxt - start + fade, int(longest * sr))
        chord = sum(_pan(tones[m][:length], _voice_pan(m, spec.chord_width)) for m in voicing)
        tail = min(fade, chord.shape[1])  # a strike right before the next is shorter
        chord[:, chord.shape[1] - tail :] *= np.linspace(1.0, 0.0, tail)
        _add(out, vel * chord, start)
    return out


def _render_pad(spec: TrackSpec, sr: int, n: int, voicings: list[tuple[int, ...]]) -> np.ndarray:
    """Four sustained voices, each two detuned band-limited saws spread across the stereo field."""
    t = np.arange(n) / sr
    seg_len = spec.chord_beats * spec.beat_seconds
    seg = (t // seg_len).astype(int)
    table = np.array(voicings)[seg % len(voicings)]
    in_seg = t - seg * seg_len
    env = 0.55 + 0.45 * np.clip(in_seg / 0.2, 0, 1) * np.clip((seg_len - in_seg) / 0.08, 0, 1)
    env *= np.clip(t / 1.0, 0, 1) * (1.0 + 0.08 * np.sin(2 * np.pi * 0.23 * t))
    out = np.zeros((2, n))
    for j in range(table.shape[1]):
        midi = _one_pole(table[:, j].astype(float), 0.015, sr)
        pos = _voice_pan(float(np.mean(table[:, j])), spec.chord_width)
        for detune, side in ((-0.07, -1.0), (0.07, 1.0)):
            freq = _hz(midi + detune)
            saw = _blep_saw(_phase(freq, sr, start=0.37 * j + 0.5 * side), freq / sr)
            out += _pan(saw, np.clip(pos + 0.35 * side * spec.chord_width, -1, 1))
    return signal.sosfilt(_sos("lowpass", 1600.0, sr, order=4), out, axis=-1) * env


def _render_arp(spec: TrackSpec, sr: int, n: int, voicings: list[tuple[int, ...]]) -> np.ndarray:
    """Sixteenth-note pluck cycling up and down the chord an octave above the voicing."""
    order = (0, 1, 2, 3, 2, 1)
    plucks: dict[int, np.ndarray] = {}
    out = np.zeros((2, n))
    total = int(spec.n_bars * 16)
    for i in range(total):
        beat = i / 4.0
        voicing = voicings[int(beat // spec.chord_beats) % len(voicings)]
        midi = voicing[order[i % len(order)]] + 12
        if midi not in plucks:
            plucks[midi] = _pluck(midi, sr)
        vel = 0.9 if i % 4 == 0 else 0.6
        _add(out, _pan(vel * plucks[midi], 0.45 * (-1) ** i), _sample(spec, beat, sr))
    return out


def _pluck(midi: int, sr: int) -> np.ndarray:
    f0 = float(_hz(midi))
    k = np.arange(1, 7)
    k = k[k * f0 < 0.45 * sr]
    t = np.arange(int(0.3 * sr))[:, None] / sr
    x = (np.sin(2 * np.pi * k * f0 * t) / k * np.exp(-t * (12.0 + 6.0 * k))).sum(axis=1)
    n_att = int(0.002 * sr)
    x[:n_att] *= np.linspace(0.0, 1.0, n_att)
    return x


def _render_other(spec: TrackSpec, sr: int, n: int) -> np.ndarray:
    voicings = _voicings(spec)
    render = _render_piano if spec.chords == "piano" else _render_pad
    out = render(spec, sr, n, voicings)
    if spec.arp:
        arp = _render_arp(spec, sr, n, voicings)
        out += arp * (0.35 * np.sqrt(np.mean(out**2)) / max(np.sqrt(np.mean(arp**2)), 1e-12))
    return out


# --------------------------------------------------------------------------------------------
# Vocals
# --------------------------------------------------------------------------------------------

# Vowel formants (F1, F2, F3) in Hz and bandwidths, for a high voice; F4 is fixed.
_VOWELS = ("a", "e", "i", "o", "u")
_FORMANTS = {
    "a": ((850, 1220, 2810), (130, 150, 220)),
    "e": ((600, 1950, 2750), (110, 160, 220)),
    "i": ((330, 2700, 3300), (100, 170, 250)),
    "o": ((500, 900, 2800), (110, 130, 220)),
    "u": ((380, 950, 2670), (100, 130, 220)),
}
_CONSONANTS = ("", "", "", "s", "t", "k")


def _formant_sos(vowel: str, sr: int, scale: float) -> np.ndarray:
    """Cascade of unity-DC-gain two-pole resonators (F1-F4), as in a Klatt cascade."""
    freqs, bws = _FORMANTS[vowel]
    rows = []
    for f, bw in zip((*freqs, 3600.0), (*bws, 250.0), strict=True):
        f = min(f * scale, 0.45 * sr)
        r = math.exp(-math.pi * bw / sr)
        a1, a2 = -2.0 * r * math.cos(2 * math.pi * f / sr), r * r
        rows.append([1.0 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
    return np.array(rows)


def _melody_step(
    spec: TrackSpec, rng: np.random.Generator, step: int, beat: float, last: bool
) -> int:
    """Next scale step of the melody: mostly stepwise, chord tones on strong beats."""
    center = _nearest_step(spec, spec.vocal_center)
    step += int(rng.choice([-3, -2, -1, 0, 1, 2, 3], p=[0.05, 0.15, 0.3, 0.1, 0.25, 0.1, 0.05]))
    if step > center + 5 or step < center - 5:
        step = 2 * (center + 5 if step > center else center - 5) - step
    if last or (beat % 2 == 0 and rng.random() < 0.7):
        root = _chord_degree(spec, beat)
        candidates = [s for s in range(step - 3, step + 4) if (s - root) % 7 in (0, 2, 4)]
        step = min(candidates, key=lambda s: (abs(s - step), s))
    return step


def _phrase(
    spec: TrackSpec, rng: np.random.Generator, bar: int, n_bars: int, step: int
) -> tuple[list[_Note], int]:
    """One sung phrase of one or two bars, ending in a rest (the breath)."""
    beat = 4 * bar + float(rng.choice([0.0, 0.5, 1.0]))
    end = 4 * (bar + n_bars) - float(rng.choice([1.0, 1.5, 2.0]))
    end = min(end, spec.duration / spec.beat_seconds - 0.5)
    notes: list[_Note] = []
    vowel = int(rng.integers(len(_VOWELS)))
    while end - beat >= 0.5:
        dur = float(rng.choice([0.5, 1.0, 1.5, 2.0], p=[0.35, 0.35, 0.15, 0.15]))
        dur = min(dur, end - beat)
        if end - beat - dur < 0.5:
            dur = end - beat
        if notes and rng.random() < 0.08:  # a short catch-breath inside the phrase
            beat += 0.5
            continue
        step = _melody_step(spec, rng, step, beat, last=beat + dur >= end)
        vowel = (vowel + 1 + int(rng.integers(len(_VOWELS) - 1))) % len(_VOWELS)
        consonant = str(rng.choice(_CONSONANTS))
        vel = float(rng.uniform(0.75, 0.95)) + (0.1 if beat % 2 == 0 else 0.0)
        notes.append(_Note(beat, dur, _step_midi(spec, step), vel, vowel, consonant))
        beat += dur
    return notes, step


def _compose_melody(spec: TrackSpec, rng: np.random.Generator) -> list[_Note]:
    """Phrases of one or two bars wherever the vocal is allowed, separated by breaths."""
    notes: list[_Note] = []
    step = _nearest_step(spec, spec.vocal_center)
    bar = 0
    while bar < spec.n_bars:
        if bar in spec.no_vocal_bars:
            bar += 1
            continue
        two = bar + 1 < spec.n_bars and bar + 1 not in spec.no_vocal_bars
        phrase, step = _phrase(spec, rng, bar, 2 if two else 1, step)
        notes += phrase
        bar += 2 if two else 1
    return notes


def _pitch_track(
    notes: list[_Note],
    starts: np.ndarray,
    ends: np.ndarray,
    sr: int,
    n: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """MIDI pitch per sample (glides between notes, slow jitter) and the vibrato on top of it.

    The vibrato (in semitones) sets in gradually 0.18 s after each onset.
    """
    legato = np.append(starts[1:] - ends[:-1] <= 1, False)
    bounds = np.where(legato, ends, ends + int(0.08 * sr))
    idx = _held_index(starts, bounds, n)
    pitch = _one_pole(np.array([nt.midi for nt in notes], dtype=float)[idx], 0.035, sr)
    depth = np.zeros(n)
    for s, e in zip(starts, ends, strict=True):
        ramp = np.clip((np.arange(e - s) / sr - 0.18) / 0.35, 0.0, 1.0)
        depth[s : s + ramp.size] = 0.45 * ramp[: n - s]
    t = np.arange(n) / sr
    rate = rng.uniform(5.3, 5.6) + 0.2 * np.sin(2 * np.pi * 0.3 * t)  # 5.1-5.8 Hz
    vibrato = depth * np.sin(2 * np.pi * np.cumsum(rate) / sr)
    jitter = signal.sosfilt(_sos("lowpass", 6.0, sr), rng.standard_normal(n))
    jitter *= 0.06 / max(float(np.std(jitter)), 1e-12)
    return pitch + jitter, vibrato


def _vowel_weights(
    notes: list[_Note], starts: np.ndarray, ends: np.ndarray, sr: int, n: int
) -> np.ndarray:
    """Smoothly cross-fading weight per vowel (rows sum to one), switching per syllable."""
    idx = _held_index(starts, ends, n)
    vowel = np.array([nt.vowel for nt in notes])[idx]
    weights = (vowel[None, :] == np.arange(len(_VOWELS))[:, None]).astype(float)
    return _one_pole(weights, 0.03, sr)


def _consonant(kind: str, rng: np.random.Generator, sr: int) -> np.ndarray:
    dur, band = {"s": (0.09, (4500.0, 12000.0)), "t": (0.025, (2500.0, 7000.0))}.get(
        kind, (0.035, (1200.0, 3500.0))
    )
    t = np.arange(int(dur * sr)) / sr
    noise = signal.sosfilt(_sos("bandpass", band, sr), rng.standard_normal(t.size))
    shape = np.sin(np.pi * t / dur) if kind == "s" else np.exp(-t / (dur / 4))
    return noise * shape


def _glottal_source(f0: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Band-limited falling sawtooth (abrupt glottal closure), tilted, with a little breath."""
    saw = -_blep_saw(_phase(f0, sr), f0 / sr)
    source = _one_pole(saw, 1.0 / (2 * np.pi * 700.0), sr)  # glottal spectral tilt
    breath = signal.sosfilt(_sos("highpass", 1500.0, sr), rng.standard_normal(f0.size))
    return source + 0.03 * breath


def _vowel_filter(
    source: np.ndarray, weights: np.ndarray, active: np.ndarray, spec: TrackSpec, sr: int
) -> np.ndarray:
    """Cross-fade the source through the formant filter of each vowel, then radiate at the lips."""
    voiced = np.zeros(source.size)
    for v, vowel in enumerate(_VOWELS):
        if not weights[v].any():
            continue
        out = signal.sosfilt(_formant_sos(vowel, sr, spec.formant_scale), source)
        voiced += weights[v] * out / max(float(np.sqrt(np.mean(out[active] ** 2))), 1e-12)
    air = signal.sosfilt(_sos("highpass", 3500.0, sr), source)
    voiced += 0.04 * air / max(float(np.sqrt(np.mean(air[active] ** 2))), 1e-12)
    return np.append(voiced[0], voiced[1:] - 0.85 * voiced[:-1])


def _even_out(voiced: np.ndarray, starts: np.ndarray, ends: np.ndarray, sr: int) -> np.ndarray:
    """Even out the note levels (a harmonic on a narrow formant peak would stick out)."""
    rms = np.array(
        [
            np.sqrt(np.mean(voiced[s:e] ** 2)) if e > s else 0.0
            for s, e in zip(starts, ends, strict=True)
        ]
    )
    rms = np.maximum(rms, 1e-9)
    gain = (float(np.median(rms)) / rms) ** 0.8
    return voiced * _one_pole(gain[_held_index(starts, ends, voiced.size)], 0.02, sr)


def _render_vocals(
    spec: TrackSpec, sr: int, n: int, notes: list[_Note], rng: np.random.Generator
) -> np.ndarray:
    if not notes:
        return np.zeros((2, n))
    starts = np.array([min(_sample(spec, nt.start, sr), n) for nt in notes])
    ends = np.array([min(_sample(spec, nt.start + nt.dur, sr), n) for nt in notes])
    pitch, vibrato = _pitch_track(notes, starts, ends, sr, n, rng)
    source = _glottal_source(_hz(pitch + vibrato), sr, rng)
    env = np.zeros(n)
    for nt, s, e in zip(notes, starts, ends, strict=True):
        _max_into(env, nt.vel * _note_env(e - s, sr, 0.04, 0.07, 0.8, 0.8), s)
    weights = _vowel_weights(notes, starts, ends, sr, n)
    voiced = _even_out(_vowel_filter(source, weights, env > 0, spec, sr), starts, ends, sr)
    voice = voiced * env * (1.0 + 0.2 * vibrato)  # the loudness wobbles with the vibrato
    level = float(np.sqrt(np.mean(voice[env > 0.5] ** 2)))
    for nt, s in zip(notes, starts, strict=True):
        if nt.consonant:
            burst = _consonant(nt.consonant, rng, sr)
            _add(voice, 1.5 * level * nt.vel * burst / float(np.abs(burst).max()), s)
    return _pan(voice, spec.vocal_pan)


# --------------------------------------------------------------------------------------------
# Mixing and quantisation
# --------------------------------------------------------------------------------------------


def _render_float(spec: TrackSpec, sr: int) -> dict[str, np.ndarray]:
    """The four stems as float64 (2, n), each at its relative level, with track fades."""
    n = round(spec.duration * sr)
    rngs = [np.random.default_rng([spec.seed, k]) for k in range(4)]
    melody = _compose_melody(spec, rngs[0])
    stems = {
        "vocals": _render_vocals(spec, sr, n, melody, rngs[1]),
        "drums": _render_drums(spec, sr, n, rngs[2]),
        "bass": _render_bass(spec, sr, n, _bass_notes(spec)),
        "other": _render_other(spec, sr, n),
    }
    fade = np.minimum(np.arange(n) / (0.005 * sr), 1.0) * np.minimum(
        np.arange(n)[::-1] / (0.6 * sr), 1.0
    )
    for name, x in stems.items():
        rms = max(float(np.sqrt(np.mean(x**2))), 1e-12)
        stems[name] = x * (10.0 ** (_STEM_LEVEL_DB[name] / 20.0) / rms) * fade
    return stems


def quantise_exact_sum(stems: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scale all stems by one gain, round to int16 and add the exact integer mixture.

    The gain puts the peak of the mixture (or of any stem, if louder) at :data:`PEAK_DBFS`,
    so reading the files back gives ``mixture == sum(stems)`` exactly.

    Examples
    --------
    >>> out = quantise_exact_sum({"a": np.full((1, 4), 0.2), "b": np.full((1, 4), 0.1)})
    >>> bool((out["mixture"] == out["a"].astype(int) + out["b"]).all())
    True
    """
    peak = max(float(np.abs(sum(stems.values())).max()), *(np.abs(x).max() for x in stems.values()))
    gain = 10.0 ** (PEAK_DBFS / 20.0) * _I16_MAX / max(peak, 1e-12)
    ints = {name: np.rint(x * gain).astype(np.int32) for name, x in stems.items()}
    mixture = sum(ints.values())
    for name, x in {**ints, "mixture": mixture}.items():
        if np.abs(x).max() > _I16_MAX:
            raise RuntimeError(f"{name} would clip ({int(np.abs(x).max())} > {_I16_MAX})")
    out = {name: x.astype(np.int16) for name, x in ints.items()}
    out["mixture"] = mixture.astype(np.int16)
    return out


def _render_int16(spec: TrackSpec, sr: int) -> dict[str, np.ndarray]:
    return quantise_exact_sum(_render_float(spec, sr))


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def render_track(spec: TrackSpec, sr: int = 44100) -> dict[str, np.ndarray]:
    """Render one track: the four stems and their mixture, exactly as :func:`write_track` writes.

    Parameters
    ----------
    spec : TrackSpec
        What to play.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    dict of str to ndarray
        ``vocals``, ``drums``, ``bass``, ``other`` and ``mixture``, each float32 of shape
        ``(2, n)`` with ``n = round(spec.duration * sr)``. Values are the int16 samples divided
        by 32768 (what ``soundfile`` returns for the written files), so the mixture is exactly
        the sum of the stems and rendering is bit-identical for the same ``spec`` and ``sr``.

    Examples
    --------
    >>> from dataclasses import replace
    >>> spec = replace(DEMO_TRACKS[1], duration=3.0)
    >>> stems = render_track(spec, sr=8000)
    >>> stems["vocals"].dtype, stems["vocals"].shape
    (dtype('float32'), (2, 24000))
    >>> bool((stems["mixture"] == sum(stems[s] for s in STEMS)).all())
    True
    """
    ints = _render_int16(spec, sr)
    return {name: (x / 32768.0).astype(np.float32) for name, x in ints.items()}


def write_track(spec: TrackSpec, out_dir: str | Path, sr: int = 44100) -> Path:
    """Write one track in the MUSDB18-HQ layout: ``out_dir/<name>/{mixture,vocals,...}.wav``.

    All five files are stereo 16-bit PCM; ``mixture.wav`` is the integer sum of the stems.

    Parameters
    ----------
    spec : TrackSpec
        What to play.
    out_dir : str or Path
        Parent folder; created if missing. Existing files of the track are overwritten.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    Path
        The track folder.

    Examples
    --------
    >>> import tempfile
    >>> from dataclasses import replace
    >>> spec = replace(DEMO_TRACKS[0], duration=2.0)
    >>> folder = write_track(spec, tempfile.mkdtemp(), sr=8000)
    >>> folder.name, sorted(p.name for p in folder.iterdir())
    ('01-sunday-drive', ['bass.wav', 'drums.wav', 'mixture.wav', 'other.wav', 'vocals.wav'])
    """
    folder = Path(out_dir) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    for name, x in _render_int16(spec, sr).items():
        sf.write(folder / f"{name}.wav", x.T, sr, subtype="PCM_16", format="WAV")
    return folder


def write_demo_set(
    out_dir: str | Path, sr: int = 44100, tracks: Sequence[TrackSpec] = DEMO_TRACKS
) -> list[Path]:
    """Write every track of the demo set (by default :data:`DEMO_TRACKS`) under ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Parent folder of the track folders; created if missing.
    sr : int
        Sample rate in Hz.
    tracks : sequence of TrackSpec
        Which tracks to write.

    Returns
    -------
    list of Path
        The track folders, in the order of ``tracks``.

    Examples
    --------
    >>> import tempfile
    >>> from dataclasses import replace
    >>> short = [replace(t, duration=1.0) for t in DEMO_TRACKS[:2]]
    >>> [p.name for p in write_demo_set(tempfile.mkdtemp(), sr=8000, tracks=short)]
    ['01-sunday-drive', '02-night-bus']
    """
    return [write_track(spec, out_dir, sr) for spec in tracks]
