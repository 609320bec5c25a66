"""Audio I/O: read, check, convert and write audio files, load stems.

Arrays are float32 of shape ``(channels, samples)`` everywhere in stemkit (librosa's layout).
WAV/FLAC/MP3/OGG go through soundfile (libsndfile); M4A/AAC and anything libsndfile cannot read
go through the ffmpeg binary shipped by ``imageio-ffmpeg``. Long audio is read a block at a
time through *sources* (:class:`ArraySource`, :class:`FileSource`, :func:`blocks`,
:func:`lockstep`: see the section at the end), resampled block by block (:func:`resample_file`)
and written block by block (:func:`float_writers`).

Examples
--------
>>> import numpy as np, tempfile, os
>>> from stemkit.audio import write_audio, load_audio
>>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
>>> _ = write_audio(path, np.zeros((2, 4410), np.float32), 44100)
>>> y, sr = load_audio(path)
>>> y.shape, sr
((2, 4410), 44100)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from stemkit.atomic import atomic_path, commit, temp_name
from stemkit.errors import AudioError

#: Output formats stemkit can write, and how.
FORMATS = {
    "wav": {"format": "WAV", "subtype": "PCM_16"},
    "flac": {"format": "FLAC", "subtype": "PCM_16"},
    "mp3": {"format": "MP3", "subtype": "MPEG_LAYER_III"},
    "m4a": None,  # ffmpeg
}
#: File suffixes read as audio (stems, mixtures, references).
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".aiff", ".aif"}


def as_audio(y: np.ndarray) -> np.ndarray:
    """float32 ``(channels, samples)``; a 1-D array becomes one channel.

    Examples
    --------
    >>> import numpy as np
    >>> as_audio(np.zeros(5)).shape
    (1, 5)
    """
    return np.atleast_2d(np.asarray(y, dtype=np.float32))


def conform(y: np.ndarray, channels: int, length: int) -> np.ndarray:
    """``y`` as ``(channels, length)``: mono copied to every channel, other counts downmixed;
    the tail cut or zero-padded.

    Parameters
    ----------
    y : ndarray, shape (channels, samples)
    channels, length : int
        The shape wanted.

    Examples
    --------
    >>> import numpy as np
    >>> conform(np.ones((1, 3), np.float32), 2, 5).tolist()
    [[1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0, 0.0]]
    """
    if y.shape[0] != channels:
        y = np.repeat(y, channels, axis=0) if y.shape[0] == 1 else y.mean(axis=0, keepdims=True)
        y = np.broadcast_to(y, (channels, y.shape[-1]))
    if y.shape[-1] == length:
        return y
    out = np.zeros((channels, length), np.float32)
    n = min(length, y.shape[-1])
    out[:, :n] = y[:, :n]
    return out


def resample(y: np.ndarray, from_sr: int, to_sr: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample audio with soxr, stemkit's one resampler.

    Parameters
    ----------
    y : ndarray, shape (channels, samples) or (samples,)
        Audio at ``from_sr``.
    from_sr, to_sr : int
        Rates in Hz.
    quality : str
        soxr's quality recipe (``"HQ"``: what librosa's default ``soxr_hq`` uses).

    Returns
    -------
    ndarray, float32, same layout as ``y``
        ``y`` itself when the rates are equal.

    Examples
    --------
    >>> import numpy as np
    >>> resample(np.zeros((2, 44100), np.float32), 44100, 22050).shape
    (2, 22050)
    """
    if int(from_sr) == int(to_sr):
        return y
    import soxr

    x = np.asarray(y, dtype=np.float32)
    if x.ndim == 1:
        return soxr.resample(x, from_sr, to_sr, quality=quality).astype(np.float32, copy=False)
    out = soxr.resample(np.ascontiguousarray(x.T), from_sr, to_sr, quality=quality)
    return np.ascontiguousarray(out.T, dtype=np.float32)


def write_float(path: str | os.PathLike, y: np.ndarray, sr: int) -> Path:
    """Write a float32 WAV (lossless for audio computed here), atomically.

    Parameters
    ----------
    path : path
        Destination; its folder is created.
    y : ndarray, shape (channels, samples)
        Audio, not clipped.
    sr : int
        Rate in Hz.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> write_float(os.path.join(tempfile.mkdtemp(), "x.wav"), np.ones((1, 8)), 8000).suffix
    '.wav'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        sf.write(tmp, np.atleast_2d(np.asarray(y, np.float32)).T, sr, subtype="FLOAT", format="WAV")
    return path


@contextlib.contextmanager
def float_writers(
    paths: dict[str, Path], sr: int, channels: int
) -> Iterator[dict[str, sf.SoundFile]]:
    """Float32 WAV files written block by block, each in place only once all are complete.

    Parameters
    ----------
    paths : dict of str to path
        Where each file goes (folders created).
    sr, channels : int
        Rate in Hz and channel count of every file.

    Yields
    ------
    dict of str to soundfile.SoundFile
        Open for writing ``(samples, channels)`` blocks; an error leaves no file behind.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with float_writers({"a": d / "a.wav"}, 8000, 1) as out:
    ...     for _ in range(3):
    ...         out["a"].write(np.zeros((100, 1), np.float32))
    >>> audio_info(d / "a.wav").frames
    300
    """
    with contextlib.ExitStack() as stack:
        files = {}
        for name, path in paths.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(atomic_path(Path(path)))
            files[name] = stack.enter_context(
                sf.SoundFile(
                    tmp, "w", samplerate=sr, channels=channels, subtype="FLOAT", format="WAV"
                )
            )
        yield files


def resample_file(
    src: str | os.PathLike, dst: str | os.PathLike, to_sr: int, *, block: int = 1 << 18
) -> Path:
    """Resample a file to ``to_sr`` into a float32 WAV, block by block (soxr's streaming
    resampler, the same samples as :func:`resample` of the whole file), atomically.

    Parameters
    ----------
    src : path
        A file libsndfile reads (WAV, FLAC, AIFF, OGG, MP3).
    dst : path
        The float32 WAV written (its folder is created).
    to_sr : int
        Rate wanted, Hz.
    block : int
        Frames read at a time.

    Returns
    -------
    Path
        ``dst``.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = write_float(d / "a.wav", np.zeros((2, 44100), np.float32), 44100)
    >>> audio_info(resample_file(d / "a.wav", d / "b.wav", 22050)).frames
    22050
    """
    import soxr

    info = sf.info(src)
    stream = soxr.ResampleStream(info.samplerate, to_sr, info.channels, dtype="float32")
    with float_writers({"out": Path(dst)}, to_sr, info.channels) as out:
        for chunk in sf.blocks(src, blocksize=block, dtype="float32", always_2d=True):
            out["out"].write(stream.resample_chunk(chunk))
        out["out"].write(stream.resample_chunk(np.zeros((0, info.channels), np.float32), last=True))
    return Path(dst)


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds: duration, rate, channels, frames, container format."""

    duration: float
    sample_rate: int
    channels: int
    frames: int
    format: str


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (``$STEMKIT_FFMPEG`` or the one shipped with imageio-ffmpeg)."""
    if os.environ.get("STEMKIT_FFMPEG"):
        return os.environ["STEMKIT_FFMPEG"]
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


#: seconds an ffmpeg decode may take before it is stopped (a hostile file can make it spin)
FFMPEG_TIMEOUT = float(os.environ.get("STEMKIT_FFMPEG_TIMEOUT", "300"))
#: ffmpeg opens local files only: a playlist that names a URL is not fetched
_SAFE_INPUT = ["-protocol_whitelist", "file"]


def _ffmpeg(args: list[str], path: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [ffmpeg_exe(), *args], capture_output=True, text=True, timeout=FFMPEG_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise AudioError(
            f"{path.name}: decoding took longer than {FFMPEG_TIMEOUT:g} s and was stopped"
        ) from None


def _decode_with_ffmpeg(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    probe = _ffmpeg(["-hide_banner", *_SAFE_INPUT, "-i", str(path)], path)
    limit = ["-t", f"{max_seconds + 1:g}"] if max_seconds else []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "decoded.wav"
        proc = _ffmpeg(
            ["-nostdin", "-v", "error", *_SAFE_INPUT, "-i", str(path), *limit, "-c:a",
             "pcm_f32le", str(out)],
            path,
        )  # fmt: skip
        if proc.returncode != 0 or not out.exists():
            reason = (proc.stderr or probe.stderr).strip().splitlines()
            raise AudioError(
                f"{path.name} is not readable audio ({reason[-1] if reason else 'unknown'})"
            )
        data, sr = sf.read(out, dtype="float32", always_2d=True)
    return data.T.copy(), sr


def _check_limits(
    path: Path,
    seconds: float,
    sr: int,
    channels: int,
    max_seconds: float | None,
    max_rate: int | None,
    max_channels: int | None,
) -> None:
    if max_rate and sr > max_rate:
        raise AudioError(f"{path.name}: sample rate {sr} Hz is above the limit of {max_rate} Hz")
    if max_channels and channels > max_channels:
        raise AudioError(f"{path.name}: {channels} channels, above the limit of {max_channels}")
    if max_seconds and seconds > max_seconds:
        raise AudioError(
            f"{path.name}: {seconds:.0f} s of audio, above the limit of {max_seconds:g} s"
        )


def load_audio(
    path: str | os.PathLike,
    *,
    mono: bool = False,
    max_seconds: float | None = None,
    max_rate: int | None = None,
    max_channels: int | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 ``(channels, samples)`` and its sample rate.

    Raises :class:`~stemkit.errors.AudioError` with the reason for empty, truncated or non-audio
    files, and for audio containing NaN or infinity.

    Parameters
    ----------
    path : path
        The file; formats libsndfile cannot read are decoded by ffmpeg (local files only,
        time-limited by :data:`FFMPEG_TIMEOUT`).
    mono : bool
        Average the channels.
    max_seconds, max_rate, max_channels : optional
        Limits checked *before* decoding where the header tells (a small FLAC of silence can
        declare hours): a file over one is an :class:`~stemkit.errors.AudioError`.

    Examples
    --------
    >>> y, sr = load_audio("data/demo/01-sunday-drive/mixture.wav")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path} does not exist")
    if path.stat().st_size == 0:
        raise AudioError(f"{path.name} is empty (0 bytes)")
    limits = (max_seconds, max_rate, max_channels)
    try:
        info = sf.info(path)
        if info.frames > 0:
            _check_limits(
                path, info.frames / info.samplerate, info.samplerate, info.channels, *limits
            )
        data, sr = sf.read(path, dtype="float32", always_2d=True)
        y = data.T.copy()
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        y, sr = _decode_with_ffmpeg(path, max_seconds)
    _check_limits(path, y.shape[1] / sr, sr, y.shape[0], *limits)
    if y.shape[1] == 0:
        raise AudioError(f"{path.name} holds no audio samples (0 frames)")
    if not np.isfinite(y).all():
        raise AudioError(f"{path.name} contains NaN or infinite samples")
    if mono:
        y = y.mean(axis=0, keepdims=True)
    return y, int(sr)


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Duration, sample rate, channels of a file, without decoding it when possible.

    Examples
    --------
    >>> audio_info("data/demo/01-sunday-drive/mixture.wav").channels  # doctest: +SKIP
    2
    """
    path = Path(path)
    try:
        info = sf.info(path)
        if info.frames > 0:
            return AudioInfo(
                info.frames / info.samplerate,
                info.samplerate,
                info.channels,
                info.frames,
                info.format.lower(),
            )
    except (sf.LibsndfileError, RuntimeError):
        pass
    y, sr = load_audio(path)
    return AudioInfo(y.shape[1] / sr, sr, y.shape[0], y.shape[1], path.suffix.lstrip(".").lower())


def check_audio(path: str | os.PathLike) -> AudioInfo:
    """Make sure ``path`` is decodable, non-empty audio before paying a vendor for it.

    Examples
    --------
    >>> check_audio("README.md")  # doctest: +SKIP
    Traceback (most recent call last):
    stemkit.errors.AudioError: README.md is not readable audio (...)
    """
    info = audio_info(path)
    if info.frames == 0:
        raise AudioError(f"{Path(path).name} holds no audio samples")
    try:  # decode it all, in blocks: a file can have a valid header and broken samples
        blocks = sf.blocks(path, blocksize=1 << 20, dtype="float32", always_2d=True)
        for block in blocks:
            if not np.isfinite(block).all():
                raise AudioError(f"{Path(path).name} contains NaN or infinite samples")
    except (sf.LibsndfileError, RuntimeError):
        pass  # not a libsndfile format: audio_info decoded it with ffmpeg already
    return info


def write_audio(path: str | os.PathLike, y: np.ndarray, sr: int, fmt: str | None = None) -> Path:
    """Write float audio ``(channels, samples)`` to ``path`` in ``fmt`` (default: the suffix).

    Samples are clipped to [-1, 1] for integer and lossy formats. The file is written to a
    temporary name and renamed, so a killed process never leaves half a file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = write_audio(os.path.join(tempfile.mkdtemp(), "x.flac"), np.zeros((1, 100)), 8000)
    >>> p.suffix
    '.flac'
    """
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower().lstrip(".")
    if fmt not in FORMATS:
        raise AudioError(f"cannot write format {fmt!r}; supported: {', '.join(FORMATS)}")
    y = np.atleast_2d(np.asarray(y, dtype=np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    if fmt == "m4a":
        with tempfile.TemporaryDirectory() as tdir:
            wav = Path(tdir) / "in.wav"
            sf.write(wav, np.clip(y, -1, 1).T, sr, subtype="FLOAT")
            proc = subprocess.run(
                [
                    ffmpeg_exe(),
                    "-nostdin",
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    str(wav),
                    "-c:a",
                    "aac",
                    "-b:a",
                    "192k",
                    "-f",
                    "mp4",
                    str(tmp),
                ],
                capture_output=True,
                text=True,
                timeout=FFMPEG_TIMEOUT,
            )
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise AudioError(f"ffmpeg could not encode {path.name}: {proc.stderr.strip()[-200:]}")
    else:
        spec = FORMATS[fmt]
        sf.write(tmp, np.clip(y, -1, 1).T, sr, format=spec["format"], subtype=spec["subtype"])
    commit(tmp, path)
    return path


def load_stems(folder: str | os.PathLike, *, sr: int | None = None) -> dict[str, np.ndarray]:
    """Load every audio file in ``folder`` as ``{canonical stem name: array}``.

    With ``sr``, stems are resampled to it (:func:`resample`); all are returned at one length.

    Examples
    --------
    >>> stems = load_stems("reports/demo/stems/01-sunday-drive/sourceress")  # doctest: +SKIP
    >>> sorted(stems)  # doctest: +SKIP
    ['accompaniment', 'vocals']
    """
    from stemkit.stems import canonical

    folder = Path(folder)
    out: dict[str, np.ndarray] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in AUDIO_SUFFIXES or path.name.startswith("."):
            continue
        y, file_sr = load_audio(path)
        if sr:
            y = resample(y, file_sr, sr)
        out[canonical(path.name)] = y
    if not out:
        raise AudioError(f"no audio files in {folder}")
    return align(out)


def align(stems: dict[str, np.ndarray], length: int | None = None) -> dict[str, np.ndarray]:
    """Pad or trim every array to one length (the longest, or ``length``).

    Examples
    --------
    >>> import numpy as np
    >>> out = align({"a": np.ones((1, 3)), "b": np.ones((1, 5))})
    >>> out["a"].shape
    (1, 5)
    """
    n = length or max(a.shape[-1] for a in stems.values())
    out = {}
    for name, a in stems.items():
        if a.shape[-1] >= n:
            out[name] = a[..., :n]
        else:
            out[name] = np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, n - a.shape[-1])])
    return out


#: Containers that soundfile reads with exact seeking, so stems can be read in blocks.
SEEKABLE = {".wav", ".flac", ".aiff", ".aif"}


class StemFiles:
    """Several stems read from their files block by block, without loading whole tracks.

    The shape is museval's ``(n_sources, n_samples, n_channels)`` and :meth:`read` returns
    float32 samples of every source, so a :class:`StemFiles` can be scored directly by
    :class:`stemkit.analyze.bsseval.BSSEval` in bounded memory. Each source is one file, several
    files summed (an ``accompaniment`` reference made of ``drums + bass + other``) or an array
    ``(channels, samples)``. Every source is conformed to ``n_samples`` (zeros past its end,
    cut beyond) and to ``n_channels``: a mono file is copied to every channel, any other
    channel count is averaged to mono first. Files must be at one sample rate and seekable
    (:data:`SEEKABLE`): decode anything else with :func:`load_audio` and pass the array.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> a = write_audio(os.path.join(d, "a.wav"), np.full((1, 8), 0.25, np.float32), 8000)
    >>> with StemFiles([[a], [a, a]], n_samples=10, n_channels=2) as s:
    ...     s.shape, s.read(6, 10)[:, :, 0].tolist()
    ((2, 10, 2), [[0.25, 0.25, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    """

    def __init__(
        self,
        sources: list[list[str | os.PathLike] | np.ndarray],
        *,
        n_samples: int,
        n_channels: int,
    ) -> None:
        self._sources = [s if isinstance(s, np.ndarray) else [Path(p) for p in s] for s in sources]
        self._files: dict[Path, sf.SoundFile] = {}
        self._shape = (len(sources), int(n_samples), int(n_channels))
        self._lock = threading.Lock()  # one file handle per path: seek + read as one step

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    def _open(self, path: Path) -> sf.SoundFile:
        if path not in self._files:
            if path.suffix.lower() not in SEEKABLE:
                raise AudioError(f"{path.name}: cannot be read in blocks; decode it first")
            self._files[path] = sf.SoundFile(path)
        return self._files[path]

    def _part(self, part: Path | np.ndarray, start: int, stop: int) -> np.ndarray:
        if isinstance(part, np.ndarray):
            return part[:, start:stop].T
        f = self._open(part)
        if start >= f.frames:
            return np.zeros((0, f.channels), np.float32)
        f.seek(start)
        return f.read(min(stop, f.frames) - start, dtype="float32", always_2d=True)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` of every source, float32 ``(n_sources, stop - start, n_ch)``."""
        n_src, n_samples, n_chan = self._shape
        out = np.zeros((n_src, stop - start, n_chan), np.float32)
        stop_in = min(stop, n_samples)
        with self._lock:
            self._read_into(out, start, stop_in)
        return out

    def _read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        n_chan = self._shape[2]
        for i, source in enumerate(self._sources):
            parts = [source] if isinstance(source, np.ndarray) else source
            for part in parts:
                data = self._part(part, start, stop)
                if data.shape[1] not in (1, n_chan):
                    data = data.mean(axis=1, keepdims=True)
                out[i, : data.shape[0]] += data

    def close(self) -> None:
        """Close the files (reading again reopens them)."""
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()

    def __enter__(self) -> StemFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- block by block
#
# A *source* is ``(channels, samples)`` audio at one rate that is read by sample range:
# ``read(start, stop)`` returns float32 ``(channels, stop - start)``, zeros wherever the range
# lies outside ``0:n`` (before the start or past the end). The streaming measurements (the QA
# checks, the spectrogram panels) take sources, so a 10-minute track is measured from its files
# holding a block, and the same code measures arrays in tests and notebooks:
# :class:`ArraySource` (an array in memory), :class:`FileSource` (one file, or several summed,
# conformed to a channel count and a length); :func:`blocks` walks a source, :func:`lockstep`
# several together.

#: samples a block holds by default (about 6 s at 44.1 kHz)
BLOCK = 1 << 18


class ArraySource:
    """An array in memory as a source.

    Parameters
    ----------
    y : ndarray, shape (channels, samples) or (samples,)
        The audio (converted to float32 once).
    sr : int
        Its rate in Hz.
    """

    def __init__(self, y: np.ndarray, sr: int) -> None:
        self.y = as_audio(y)
        self.sr = int(sr)

    @property
    def channels(self) -> int:
        """Channel count."""
        return self.y.shape[0]

    @property
    def n(self) -> int:
        """Length in samples."""
        return self.y.shape[-1]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop``, float32 ``(channels, stop - start)``, zeros outside."""
        lo, hi = max(start, 0), min(stop, self.n)
        if lo == start and hi == stop:
            return self.y[:, start:stop]
        out = np.zeros((self.channels, max(stop - start, 0)), np.float32)
        if hi > lo:
            out[:, lo - start : hi - start] = self.y[:, lo:hi]
        return out

    def close(self) -> None:
        """Nothing to release (the interface of :class:`FileSource`)."""


class FileSource:
    """Files on disk as a source: one file, or the sum of several, conformed to
    ``channels`` and ``n`` samples (see :class:`stemkit.audio.StemFiles`: mono copied to every
    channel, zeros past the end, cut beyond).

    Parameters
    ----------
    paths : path or list of path
        Files at ``sr`` in a format that can be read in blocks (:data:`stemkit.audio.SEEKABLE`).
    sr : int
        Their rate in Hz.
    channels, n : int
        The shape read.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = write_audio(os.path.join(tempfile.mkdtemp(), "a.wav"),
    ...                 np.full((1, 4), 0.5, np.float32), 8000)
    >>> with FileSource(p, 8000, channels=2, n=6) as s:
    ...     s.read(2, 7).tolist()
    [[0.5, 0.5, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0]]
    """

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        sr: int,
        *,
        channels: int,
        n: int,
    ) -> None:
        parts = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        self.paths = [Path(p) for p in parts]
        self.sr, self.channels, self.n = int(sr), int(channels), int(n)
        self._files = StemFiles([self.paths], n_samples=self.n, n_channels=self.channels)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop``, float32 ``(channels, stop - start)``, zeros outside."""
        lo = max(start, 0)
        hi = max(min(stop, self.n), lo)
        out = np.zeros((self.channels, max(stop - start, 0)), np.float32)
        for a in range(lo, hi, BLOCK):  # a long read: one block's copy at a time
            b = min(hi, a + BLOCK)
            out[:, a - start : b - start] = self._files.read(a, b)[0].T
        return out

    def close(self) -> None:
        """Close the files."""
        self._files.close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Source = ArraySource | FileSource


def blocks(source: Source, size: int = BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, block)`` over the whole source, ``size`` samples a block (the last shorter).

    Examples
    --------
    >>> import numpy as np
    >>> [b.tolist() for _, b in blocks(ArraySource(np.arange(3.0), 10), 2)]
    [[[0.0, 1.0]], [[2.0]]]
    """
    for start in range(0, source.n, size):
        yield start, source.read(start, min(start + size, source.n))


def lockstep(
    sources: Sequence[Source], n: int, size: int = BLOCK
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """``(start, [block of each source])`` over samples ``0:n`` of sources read together.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = ArraySource(np.ones(3), 10), ArraySource(np.zeros(2), 10)
    >>> [(s, [x.shape[-1] for x in xs]) for s, xs in lockstep([a, b], 3, 2)]
    [(0, [2, 2]), (2, [1, 1])]
    """
    for start in range(0, n, size):
        stop = min(start + size, n)
        yield start, [s.read(start, stop) for s in sources]
