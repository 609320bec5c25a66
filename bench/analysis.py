"""Per-track analysis: stemkit.analyze.track.analyze_track against the naive figure path.

Usage::

    .venv/bin/python bench/analysis.py [--seconds 180] [--long] [--long-seconds 600] [--keep]

Builds a throw-away batch folder in a temporary directory, the way a user gets one:

1. a seeded synthetic song (``stemkit.demo.synth.write_track``: the ``01-sunday-drive`` arrangement
   stretched to ``--seconds``; stereo 44.1 kHz 16-bit, with its four reference stems) in the
   MUSDB18 layout;
2. ``stemkit.separate.run.separate_batch(data, ["local"], out, stems=4 stems)``: the real pipeline,
   provider ``local`` (the sandbox's DSP engine, in-process), which writes the stems,
   ``record.json`` and the ledger;
3. a second provider, ``perturbed``: each of ``local``'s stems with a gain error, leakage of the
   rest of the mixture, a low-pass and noise (seeded), written as 16-bit WAV with its own
   ``record.json``; ``batch.json`` is then rewritten (``write_batch_info``) to name both.

Then each contender runs in its own fresh child process (``python bench/analysis.py --child``),
so neither inherits the other's memory and imports are visible:

- **ours**: ``import stemkit.analyze.track``; then the modules ``analyze_track`` imports lazily
  (``stemkit.plots`` with matplotlib, ``librosa.feature``, the sandbox engine); then three
  calls of ``analyze_track`` (load, QA, metrics, spectrogram grid of 13 panels, timeline,
  CSV/PNG files), see :data:`CALLS`: ``bracket=False`` first, in the cold process (what the
  issue measures: 2 providers + reference); then the default, which also computes and scores
  the SiSEC bracket (oracle IRM, DSP baseline, mixture); then the default again, which reuses
  the bracket's cached scores (a rerun). Seconds per stemkit function on the way (wrapped in
  the child, no library code changed) show where the time goes.
- **baseline**: the naive figure path the issue measured ("one librosa.display.specshow +
  savefig of a 180 s 44.1 kHz STFT takes 5.8 s"), for as many panels as stemkit's grid draws
  (13: mixture, 4 references, 2 providers x 4 stems): each signal's full-resolution STFT
  (n_fft 2048, hop 512) of the mono downmix in dB, drawn with ``librosa.display.specshow`` (log
  frequency axis) and saved with ``savefig`` (dpi 80, as stemkit does), one figure per panel
  as the issue timed it.

Peak RSS is the child's ``VmHWM`` (inputs, imports and all); ``ru_maxrss`` of the children,
seen from this process after each child exits, is printed as a cross-check (it is a maximum
over all children so far), and the parent samples the child's RSS every 0.1 s and kills it
above ``--max-rss-mb`` (12000), so a runaway cannot take a shared machine down.
``--long`` then analyses a ``--long-seconds`` (600) track: the point is whether memory stays
bounded as the track gets longer. To keep it short, ``--long`` makes the first two calls per
track and skips the naive path.

Goal of the issue: "a 3-minute 4-stem stereo track, 2 providers + reference, analysed (load,
spectrograms, metrics, figures) in <= 10 s on this 2-core machine, peak RSS <= 1.5 GB; a
10-minute track in bounded memory". The machine's load average is printed: on a shared machine
the timings move with it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

STEMS = ("vocals", "drums", "bass", "other")
PROVIDERS = ("local", "perturbed")
GOAL_SECONDS, GOAL_MB = 10.0, 1536.0


# --- the batch folder ---------------------------------------------------------------------


def _perturb(stem: np.ndarray, mixture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausibly worse estimate: gain error, leakage, a duller copy, noise."""
    import scipy.signal

    sos = scipy.signal.butter(2, 6000, fs=44_100, output="sos")
    dull = scipy.signal.sosfilt(sos, stem, axis=1).astype(np.float32)
    leak = (mixture - stem) * np.float32(rng.uniform(0.05, 0.15))
    noise = rng.standard_normal(stem.shape, dtype=np.float32) * np.float32(1e-3)
    return 0.6 * stem + 0.3 * dull + leak + noise


def build_batch(root: Path, seconds: float, seed: int | None) -> tuple[Path, str, dict]:
    """A batch folder with one track, references and two providers; returns its timings."""
    from stemkit.audio import load_audio, write_audio
    from stemkit.batchdir import BatchFolder
    from stemkit.demo.synth import DEMO_TRACKS, write_track
    from stemkit.separate.manifest import load_manifest
    from stemkit.separate.run import separate_batch, write_batch_info

    base = DEMO_TRACKS[0]
    spec = replace(
        base,
        name=f"bench-{seconds:g}s",
        duration=seconds,
        seed=base.seed if seed is None else seed,
    )
    data, out = root / "data", root / "batch"
    times = {}

    t = time.perf_counter()
    write_track(spec, data)
    times["render + write track"] = time.perf_counter() - t

    # the local provider keeps its float WAVs in a mkdtemp() folder: put it under root
    saved, tempfile.tempdir = tempfile.tempdir, str(root)
    try:
        t = time.perf_counter()
        table = separate_batch(data, ["local"], out, stems=STEMS, progress=False)
        times["separate_batch (local)"] = time.perf_counter() - t
    finally:
        tempfile.tempdir = saved
    if set(table["state"]) != {"done"}:
        raise RuntimeError(f"separate_batch failed:\n{table.to_string()}")

    t = time.perf_counter()
    rng = np.random.default_rng(0 if seed is None else seed)
    mixture, sr = load_audio(data / spec.name / "mixture.wav")
    batch = BatchFolder(out)
    record = batch.read_record(spec.name, "local")
    folder = batch.job_dir(spec.name, "perturbed")
    for name in record["stems"].values():
        est = load_audio(batch.job_dir(spec.name, "local") / name)[0]
        write_audio(folder / name, _perturb(est, mixture, rng), sr, "wav")
    record = {
        **record,
        "provider": "perturbed",
        "job_id": str(record["job_id"]).replace("local", "perturbed", 1),
    }
    batch.write_record(spec.name, "perturbed", record)
    write_batch_info(
        out, load_manifest(data), list(PROVIDERS), profile=None, stems=STEMS, fmt="wav"
    )
    times["perturbed provider"] = time.perf_counter() - t
    return out, spec.name, times


# --- children -----------------------------------------------------------------------------


def _peak_mb() -> float:
    """This process's peak resident set so far (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


#: (label, step of :mod:`stemkit.analyze.track`): the public steps the child times in turn,
#: exactly as :func:`stemkit.analyze.track.analyze_track` runs them (figures drawn, then closed)
STEPS = (
    ("open_track (mixture)", "open_track"),
    ("load_providers (stems, QA, panels)", "load_providers"),
    ("score_track (BSS Eval, bracket)", "score_track"),
    ("time_jobs", "time_jobs"),
    ("judge_track (verdicts)", "judge_track"),
    ("draw_figures", "draw_figures"),
    ("save_track (tables)", "save_track"),
)


def _run_steps(batch: Path, track: str, kwargs: dict[str, Any]) -> tuple[Any, dict[str, list]]:
    """The analysis of one track, step by step: ``{label: [wall s, 1, RSS rise MB]}``."""
    import matplotlib.pyplot as plt

    from stemkit.analyze import track as steps

    parts: dict[str, list] = {}
    a = None
    for label, name in STEPS:
        start, hwm = time.perf_counter(), _peak_mb()
        if name == "open_track":
            a = steps.open_track(batch, track)
        elif name == "load_providers":
            steps.load_providers(a, figures=True)
        elif name == "score_track":
            steps.score_track(a, bracket=kwargs.get("bracket", True))
        elif name == "draw_figures":
            steps.draw_figures(a)
            plt.close("all")
        else:
            getattr(steps, name)(a)
        parts[label] = [time.perf_counter() - start, 1, _peak_mb() - hwm]
    return a, parts


#: the calls the child makes, in order (``--calls N`` makes the first N): what the issue
#: measures (2 providers + reference), then the default analysis with the SiSEC bracket
#: computed (oracle IRM, DSP baseline and mixture as estimates, scored next to the providers),
#: then a rerun of the default, which reuses the bracket's cached scores
CALLS = (
    ("core: 2 providers + reference", {"bracket": False}),
    ("+ bracket, computed", {}),
    ("+ bracket, cached (rerun)", {}),
)


def child_ours(batch: Path, track: str, calls: int, budget: float) -> dict[str, Any]:
    """Fresh process: imports, then the first ``calls`` of :data:`CALLS` (no more once a call
    took longer than ``budget`` seconds)."""

    report: dict[str, Any] = {"start_mb": _peak_mb()}
    t = time.perf_counter()
    import stemkit.analyze.track

    report["import_s"] = time.perf_counter() - t
    t = time.perf_counter()
    import librosa  # (imported lazily by analyze_track when it draws)
    import matplotlib.pyplot  # noqa: F401

    # librosa loads its submodules on first attribute access (lazy_loader): 1.5-2 s of numba
    # loading for what plots.mel_db uses, paid once per process, counted here, not in a call
    _ = librosa.filters.mel, librosa.power_to_db, librosa.feature.melspectrogram

    import stemkit.dsp.engine  # noqa: F401  (the bracket's baseline)
    import stemkit.plots  # noqa: F401

    report["lazy_import_s"] = time.perf_counter() - t
    report["imported_mb"] = _peak_mb()

    report["calls"] = []
    for name, kwargs in CALLS[:calls]:
        wall, cpu = time.perf_counter(), _cpu()
        result, parts = _run_steps(batch, track, kwargs)
        report["calls"].append(
            {
                "name": name,
                "seconds": time.perf_counter() - wall,
                "cpu": _cpu() - cpu,
                "peak_mb": _peak_mb(),
                "parts": parts,
                "rows": len(result.metrics),
                "failures": result.failures,
                "figures": sorted(result.figures),
            }
        )
        del result
        if report["calls"][-1]["seconds"] > budget and len(report["calls"]) < calls:
            report["skipped"] = calls - len(report["calls"])
            break
    return report


def child_naive(batch: Path, track: str) -> dict[str, Any]:
    """Fresh process: full-resolution STFT + specshow + savefig of each of the 13 signals."""
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    report: dict[str, Any] = {"imported_mb": _peak_mb()}
    tracks = json.loads((batch / "batch.json").read_text())["tracks"]
    info = next(t for t in tracks if t["name"] == track)
    files = {("mixture", "mixture"): Path(info["mixture"])}
    files |= {("reference", s): Path(info["references"][s]) for s in STEMS}
    for provider in PROVIDERS:
        files |= {(provider, s): batch / "stems" / track / provider / f"{s}.wav" for s in STEMS}

    wall, cpu = time.perf_counter(), _cpu()
    t = time.perf_counter()
    mono, sr = {}, 44_100
    for key, path in files.items():
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        mono[key] = y.mean(axis=1)
    report["load_s"] = time.perf_counter() - t

    report["stft_s"] = report["specshow_s"] = report["savefig_s"] = 0.0
    for k, (key, y) in enumerate(mono.items()):
        t = time.perf_counter()
        S_db = librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=2048, hop_length=512)))
        report["stft_s"] += time.perf_counter() - t
        panel = t = time.perf_counter()
        fig, ax = plt.subplots(figsize=(6.4, 3.2))
        librosa.display.specshow(S_db, sr=sr, hop_length=512, x_axis="time", y_axis="log", ax=ax)
        ax.set_title(" / ".join(dict.fromkeys(key)))
        report["specshow_s"] += time.perf_counter() - t
        t = time.perf_counter()
        fig.savefig(batch / f"naive_{k:02d}.png", dpi=80)
        plt.close(fig)
        gc.collect()
        report["savefig_s"] += time.perf_counter() - t
        if k == 0:
            report["one_panel_s"] = time.perf_counter() - panel
            report["one_panel_mb"] = _peak_mb()
    report["panels"] = len(mono)
    report["seconds"] = time.perf_counter() - wall
    report["cpu"] = _cpu() - cpu
    report["peak_mb"] = _peak_mb()
    return report


def run_child(
    mode: str, batch: Path, track: str, calls: int, budget: float, cap_mb: float
) -> dict[str, Any]:
    """Run this file in a fresh interpreter and return its report (a JSON last line).

    The child's RSS is sampled every 0.1 s (psutil) as a cross-check of its own ``VmHWM``;
    a child above ``cap_mb`` is killed, so a runaway cannot take a shared machine down.
    """
    import psutil

    cmd = [sys.executable, __file__, "--child", mode, str(batch), track]
    cmd += ["--calls", str(calls), "--budget", str(budget)]
    sampled, began = 0.0, time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        watch = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                sampled = max(sampled, watch.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                break
            if sampled > cap_mb:
                proc.kill()
                proc.wait()
                return {"killed_mb": sampled, "killed_after_s": time.perf_counter() - began}
            time.sleep(0.1)
        proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode:
        raise RuntimeError(f"child {mode} failed ({proc.returncode}):\n{stderr[-3000:]}")
    report = json.loads(stdout.strip().splitlines()[-1])
    report["sampled_mb"] = sampled
    report["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return report


# --- the table ----------------------------------------------------------------------------


def _print_build(seconds: float, times: dict[str, float]) -> None:
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
    print(f"batch of {seconds:g} s built (not timed as analysis): {parts}")


def _killed(r: dict[str, Any], what: str) -> bool:
    if "killed_mb" in r:
        print(
            f"\n{what}: KILLED after {r['killed_after_s']:.0f} s, RSS {r['killed_mb']:.0f} MB "
            "above --max-rss-mb"
        )
        return True
    return False


def _print_ours(seconds: float, r: dict[str, Any]) -> None:
    if _killed(r, f"stemkit.analyze.track.analyze_track, {seconds:g} s track"):
        return
    print(f"\nstemkit.analyze.track.analyze_track, {seconds:g} s track, fresh process:")
    print(f"  import stemkit.analyze.track              {r['import_s']:7.2f} s")
    print(f"  lazy imports (plots, mpl, librosa)   {r['lazy_import_s']:7.2f} s")
    print("  (a papermill kernel pays both once per track)")
    print(f"  RSS after the imports                {r['imported_mb']:7.0f} MB")
    for call in r["calls"]:
        print(
            f"  {call['name']:32}{call['seconds']:7.2f} s wall {call['cpu']:7.1f} s CPU  "
            f"peak RSS {call['peak_mb']:6.0f} MB  ({call['rows']} metric rows, "
            f"figures: {', '.join(call['figures'])}, failures: {len(call['failures'])})"
        )
    if r.get("skipped"):
        print(f"  {r['skipped']} more call(s) skipped: the last one took longer than --budget")
    print(
        f"  cross-checks: RSS sampled by the parent {r['sampled_mb']:.0f} MB, "
        f"ru_maxrss of children (max so far) {r['children_maxrss_mb']:.0f} MB"
    )
    print(
        f"  {'where the time goes':44}"
        + "".join(f"{call['name'].split(':')[0][:24]:>26}" for call in r["calls"])
    )
    print(
        f"  {'(s, calls, MB added to the peak RSS)':44}"
        + f"{'s  calls  +peak MB':>26}" * len(r["calls"])
    )
    for label, _ in STEPS:
        cells = [call["parts"].get(label) for call in r["calls"]]
        if not any(cells):
            continue  # not called (or not in this version of stemkit)
        print(
            f"    {label:42}"
            + "".join(f"{c[0]:11.2f} {c[1]:5d} {c[2]:8.0f}" if c else f"{'-':>26}" for c in cells)
        )


def _print_naive(r: dict[str, Any], ours: dict[str, Any]) -> None:
    if _killed(r, "baseline: naive full-resolution figure path"):
        return
    print(f"\nbaseline: naive full-resolution figure path, {r['panels']} panels, fresh process:")
    for key, label in (
        ("load_s", "load 13 WAVs (soundfile)"),
        ("stft_s", "13 STFTs n_fft 2048 hop 512 + dB"),
        ("specshow_s", "13 x librosa.display.specshow"),
        ("savefig_s", "13 x savefig (dpi 80)"),
        ("seconds", "total"),
    ):
        print(f"  {label:38}{r[key]:7.2f} s")
    print(f"  {'CPU':38}{r['cpu']:7.1f} s")
    print(f"  {'first panel: specshow + savefig':38}{r['one_panel_s']:7.2f} s   (issue: 5.8 s)")
    print(f"  {'peak RSS after the first panel':38}{r['one_panel_mb']:7.0f} MB")
    print(
        f"  {'peak RSS':38}{r['peak_mb']:7.0f} MB   (sampled by the parent {r['sampled_mb']:.0f})"
    )
    if "calls" in ours:
        core = ours["calls"][0]
        draw = core["parts"].get("draw_figures", [float("nan")])[0]
        print(
            f"  ratio: naive figures / our draw_figures {r['seconds'] / draw:.1f}x; "
            f"naive figures / our whole analyze_track (core) {r['seconds'] / core['seconds']:.1f}x"
        )


def report(seconds: float, runs: dict[str, Any]) -> None:
    print(
        f"\nmachine: {os.cpu_count()} CPUs, load average (1 min) at the end "
        f"{os.getloadavg()[0]:.2f}; goal: {seconds:g} s track in <= {GOAL_SECONDS:g} s, "
        f"peak RSS <= {GOAL_MB:g} MB"
    )
    rows: list[tuple[str, float, float]] = []  # label, seconds, peak RSS MB
    for key, label in (("ours", f"ours {seconds:g} s"), ("long", None)):
        r = runs.get(key)
        if r is None:
            continue
        label = label or f"ours {r['track_seconds']:g} s"
        if "killed_mb" in r:
            rows.append((f"{label}: KILLED (RSS at kill)", r["killed_after_s"], r["killed_mb"]))
            continue
        if key == "ours":
            rows.append(
                (
                    f"{label}: import + lazy imports",
                    r["import_s"] + r["lazy_import_s"],
                    r["imported_mb"],
                )
            )
        for call in r["calls"]:
            rows.append((f"{label}: {call['name']}", call["seconds"], call["peak_mb"]))
        if key == "ours" and "naive" in runs and "killed_mb" not in runs["naive"]:
            naive = runs["naive"]
            rows.append(
                (f"baseline {seconds:g} s: naive figures", naive["seconds"], naive["peak_mb"])
            )
    ref = runs["ours"].get("calls", [{}])[0].get("peak_mb", float("nan"))
    print(f"{'':44}{'seconds':>9}{'peak RSS MB':>13}{f'RSS vs ours {seconds:g} s':>18}")
    for label, secs, mb in rows:
        rel = f"{mb / ref:17.2f}x" if ref == ref else f"{'-':>18}"  # ref is nan if killed
        print(f"{label:44}{secs:9.2f}{mb:13.0f}{rel}")
    naive, ours = runs.get("naive", {}), runs["ours"]
    if "seconds" in naive and "calls" in ours:
        ratio = naive["seconds"] / ours["calls"][0]["seconds"]
        print(f"speed ratio (naive figure path / our whole analyze_track, core): {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="track length (180)")
    parser.add_argument(
        "--long",
        action="store_true",
        help="then a --long-seconds track; implies --no-baseline and two calls per track",
    )
    parser.add_argument("--long-seconds", type=float, default=600.0, help="long track (600)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive path")
    parser.add_argument("--seed", type=int, default=None, help="seed of the synthetic song")
    parser.add_argument("--keep", action="store_true", help="keep (and print) the temp folder")
    parser.add_argument(
        "--calls", type=int, default=len(CALLS), help="how many of CALLS to make (3)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=120.0,
        help="no further calls once one took longer than this many seconds (120)",
    )
    parser.add_argument(
        "--max-rss-mb", type=float, default=12_000, help="kill a child above this RSS (12000)"
    )
    parser.add_argument("--child", nargs=3, metavar=("MODE", "BATCH", "TRACK"), help="internal")
    args = parser.parse_args()

    if args.child:
        mode, batch, track = args.child
        if mode == "ours":
            out = child_ours(Path(batch), track, args.calls, args.budget)
        else:
            out = child_naive(Path(batch), track)
        print(json.dumps(out))
        return

    calls = min(2, args.calls) if args.long else args.calls
    limits = (args.budget, args.max_rss_mb)
    began = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="stemkit-bench-analysis-"))
    try:
        runs: dict[str, Any] = {}
        batch, track, times = build_batch(root / "main", args.seconds, args.seed)
        _print_build(args.seconds, times)
        runs["ours"] = run_child("ours", batch, track, calls, *limits)
        _print_ours(args.seconds, runs["ours"])
        if not (args.no_baseline or args.long):
            runs["naive"] = run_child("naive", batch, track, 1, *limits)
            _print_naive(runs["naive"], runs["ours"])
        if args.long:
            if not args.keep:
                shutil.rmtree(root / "main")
            batch, track, times = build_batch(root / "long", args.long_seconds, args.seed)
            _print_build(args.long_seconds, times)
            runs["long"] = run_child("ours", batch, track, calls, *limits)
            runs["long"]["track_seconds"] = args.long_seconds
            _print_ours(args.long_seconds, runs["long"])
        report(args.seconds, runs)
        print(f"bench wall time {time.perf_counter() - began:.0f} s")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
