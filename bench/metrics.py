"""BSS Eval v4: museval against stemkit.analyze.bsseval on one synthetic track, side by side.

Usage::

    .venv/bin/python bench/metrics.py [--seconds 180] [--seed 0]

Builds a seeded 4-source stereo 44.1 kHz track (voice-like, drum-like, bass-like and pad-like
sources, panned and decorrelated between channels, a quiet noise floor, two seconds of digital
silence in the voice; the bass panned centre, both channels the same samples, which makes the
references' Gram matrix singular), makes imperfect estimates (leakage, a low-passed copy,
noise), then runs ``museval.metrics.bss_eval`` with the settings of
``museval.evaluate(mode="v4")`` (window = hop = 1 s, 512-tap time-invariant filters, images
variant, no permutation) and ``stemkit.analyze.bsseval.bss_eval_v4``, each in its own fresh
process (spawned, so neither inherits the other's memory). Prints for each: wall seconds, CPU
seconds (user + system, all threads), peak RSS (the ``VmHWM`` of that process, inputs included)
and the same high-water mark once the inputs were loaded, before the evaluation; then the speed
ratio and the largest |Δ dB| per metric, over all frames and over the per-source medians.

The machine's load average is printed too: on a shared machine both timings move with it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import multiprocessing as mp
import os
import resource
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.signal

SR = 44100
METRICS = ("sdr", "isr", "sir", "sar")
SOURCES = ("vocals", "drums", "bass", "other")


# --- the synthetic track ------------------------------------------------------------------


def _notes(rng: np.random.Generator, n: int, rate: float, low: float, span: int) -> np.ndarray:
    """A stepwise melody: a frequency per sample, ``rate`` notes per second."""
    hop = int(SR / rate)
    steps = rng.integers(0, span, size=n // hop + 1)
    return np.repeat(low * 2 ** (steps / 12), hop)[:n]


def _harmonic(freq: np.ndarray, n_harmonics: int, tilt: float) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(freq) / SR
    return sum(np.sin(k * phase) / k**tilt for k in range(1, n_harmonics + 1))


def _source(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """One mono source of ``n`` samples."""
    t = np.arange(n) / SR
    if name == "vocals":
        f = _notes(rng, n, 2, 196, 12) * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
        b, a = scipy.signal.butter(2, [300, 3500], "band", fs=SR)
        x = scipy.signal.lfilter(b, a, _harmonic(f, 12, 1.0)) * (0.6 + 0.4 * np.sin(t) ** 2)
        return 0.3 * x
    if name == "drums":
        x = np.zeros(n)
        hit = np.exp(-np.arange(SR // 4) / 1500)
        for start in range(0, n - hit.size, SR // 2):
            x[start : start + hit.size] += rng.standard_normal(hit.size) * hit
            kick = np.sin(2 * np.pi * np.cumsum(np.linspace(120, 45, hit.size)) / SR) * hit
            x[start : start + hit.size] += 2 * kick
        return 0.25 * x
    if name == "bass":
        b, a = scipy.signal.butter(4, 900, fs=SR)
        return 0.3 * scipy.signal.lfilter(b, a, _harmonic(_notes(rng, n, 1, 41.2, 12), 8, 1.3))
    b, a = scipy.signal.butter(2, [200, 8000], "band", fs=SR)
    pad = scipy.signal.lfilter(b, a, rng.standard_normal(n)) * 0.05
    chord = sum(_harmonic(_notes(rng, n, 0.5, f, 5), 6, 1.5) for f in (261.6, 329.6, 392.0))
    return 0.12 * chord + pad


def _stereo(x: np.ndarray, rng: np.random.Generator, centre: bool = False) -> np.ndarray:
    """Pan, a short inter-channel delay, decorrelated 'room' and a -70 dB noise floor; or,
    ``centre``, the mono source with its room and floor in both channels (``L == R``)."""
    if centre:
        room = np.exp(-np.arange(2000) / 400) * 0.02 * rng.standard_normal(2000)
        y = x + scipy.signal.fftconvolve(x, room)[: x.size] + 3e-4 * rng.standard_normal(x.size)
        return np.repeat(y[:, None], 2, axis=1)
    pan = rng.uniform(0.25, 0.75)
    delay = int(rng.integers(1, 30))
    room = np.exp(-np.arange(2000) / 400) * 0.02
    out = np.empty((x.size, 2))
    for c, gain in enumerate((np.sqrt(1 - pan), np.sqrt(pan))):
        y = np.roll(x, delay * c) * gain
        y += scipy.signal.fftconvolve(x, room * rng.standard_normal(room.size))[: x.size]
        out[:, c] = y + 3e-4 * rng.standard_normal(x.size)
    return out


def synthetic_track(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """References and estimates, float32 ``(4, n_samples, 2)`` (museval's layout)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    refs = np.empty((len(SOURCES), n, 2), dtype=np.float32)
    for i, name in enumerate(SOURCES):
        refs[i] = _stereo(_source(name, rng, n), rng, centre=name == "bass")
    rest = int(0.3 * seconds) * SR
    refs[0, rest : rest + 2 * SR] = 0.0  # the voice rests 2 s: museval gives NaN frames
    mix = refs.sum(axis=0, dtype=np.float64)
    b, a = scipy.signal.butter(2, 5000, fs=SR)
    ests = np.empty_like(refs)
    for i in range(len(SOURCES)):
        leak = (mix - refs[i]) * rng.uniform(0.05, 0.2)
        dull = scipy.signal.lfilter(b, a, refs[i], axis=0) * 0.2
        noise = 0.003 * rng.standard_normal(refs[i].shape)
        ests[i] = 0.75 * refs[i] + dull + leak + noise
    return refs, ests


# --- one contender per process ------------------------------------------------------------


def _peak_rss_mb() -> float:
    """This process's peak resident set so far (``VmHWM``; ``ru_maxrss`` as a fallback).

    ``VmHWM`` belongs to the process's own memory map, so unlike ``ru_maxrss`` it does not
    carry over the parent's high-water mark through the fork and exec of a spawned child.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(which: str, folder: str, queue: mp.Queue) -> None:
    """Child process: load the inputs, evaluate, save the four arrays, report time and RSS."""
    refs = np.load(Path(folder) / "refs.npy")
    ests = np.load(Path(folder) / "ests.npy")
    loaded = _peak_rss_mb()
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    if which == "museval":
        from stemkit.analyze.bsseval import museval_metrics

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = museval_metrics().bss_eval(
                refs,
                ests,
                window=SR,
                hop=SR,
                compute_permutation=False,
                filters_len=512,
                framewise_filters=False,
                bsseval_sources_version=False,
            )[:4]
    else:
        from stemkit.analyze.bsseval import bss_eval_v4

        res = bss_eval_v4(refs, ests, window=SR, hop=SR, filters_len=512)
        out = [getattr(res, m) for m in METRICS]
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    np.save(Path(folder) / f"{which}.npy", np.stack(out))
    queue.put({"seconds": seconds, "cpu": cpu, "peak_mb": _peak_rss_mb(), "loaded_mb": loaded})


def run_isolated(which: str, folder: str) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(which, folder, queue))
    proc.start()
    report = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{which} failed with exit code {proc.exitcode}")
    return report


# --- the table ----------------------------------------------------------------------------


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.max(np.abs(a[both] - b[both]), initial=0.0))


def _medians(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=-1)


def report(seconds: float, runs: dict[str, dict[str, float]], folder: str) -> None:
    theirs = np.load(Path(folder) / "museval.npy")
    ours = np.load(Path(folder) / "stemkit.npy")
    print(
        f"track: {seconds:g} s synthetic, {len(SOURCES)} sources, stereo, {SR} Hz, float32; "
        f"BSS Eval v4 (images, 512-tap time-invariant filters, window = hop = {SR})"
    )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'':22}{'seconds':>10}{'CPU s':>8}{'peak RSS MB':>14}{'RSS after loading MB':>22}")
    names = {"museval": f"museval {importlib.metadata.version('museval')}", "stemkit": "stemkit"}
    for key, label in names.items():
        r = runs[key]
        print(
            f"{label:22}{r['seconds']:10.2f}{r['cpu']:8.1f}{r['peak_mb']:14.0f}"
            f"{r['loaded_mb']:22.0f}"
        )
    ratio = runs["museval"]["seconds"] / runs["stemkit"]["seconds"]
    print(f"speed-up: {ratio:.1f}x")
    largest = max(_max_abs_diff(theirs[i], ours[i]) for i in range(4))
    print(f"largest |Δ dB| vs museval, any metric and frame: {largest:.2e}")
    same_nan = bool(np.array_equal(np.isnan(theirs), np.isnan(ours)))
    n_nan = int(np.isnan(theirs[0]).sum())
    print(f"NaN frames identical: {same_nan} ({n_nan} of {theirs[0].size} source-frames)")
    print(f"{'max |Δ dB|':22}" + "".join(f"{m.upper():>12}" for m in METRICS))
    frames = [_max_abs_diff(theirs[i], ours[i]) for i in range(4)]
    medians = [_max_abs_diff(_medians(theirs[i]), _medians(ours[i])) for i in range(4)]
    print(f"{'  over all frames':22}" + "".join(f"{d:12.2e}" for d in frames))
    print(f"{'  of source medians':22}" + "".join(f"{d:12.2e}" for d in medians))
    print("medians (museval | stemkit):")
    for j, name in enumerate(SOURCES):
        cells = "".join(
            f"  {m.upper()} {_medians(theirs[i])[j]:6.2f} | {_medians(ours[i])[j]:6.2f}"
            for i, m in enumerate(METRICS)
        )
        print(f"  {name:8}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="track length (180)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic track")
    args = parser.parse_args()
    refs, ests = synthetic_track(args.seconds, args.seed)
    with tempfile.TemporaryDirectory(prefix="stemkit-bench-") as folder:
        np.save(Path(folder) / "refs.npy", refs)
        np.save(Path(folder) / "ests.npy", ests)
        del refs, ests
        runs = {which: run_isolated(which, folder) for which in ("stemkit", "museval")}
        report(args.seconds, runs, folder)


if __name__ == "__main__":
    main()
