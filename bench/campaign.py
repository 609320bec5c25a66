"""A QA campaign end to end: N held-out tracks x 2 providers on the in-process sandbox (issue:
campaign scale, item 6).

Synthesises N tracks of S seconds (:mod:`stemkit.demo.synth`, new seeds: not the demo set),
starts the sandbox in this process and runs ``run_batch`` on them with sourceress and
audioshake (4 stems), then prints:

- wall time per phase: separate (to the end of the separate notebook), analyze (first analysis
  start to last end), compare (last analysis to the report), and the whole batch;
- overlap: seconds during which separation and analysis both ran;
- per-track analysis time in the batch (the executed notebook's own record, kernel reset
  included) against ``analyze_track`` in-process on a few tracks afterwards, and the difference
  (the notebook overhead, measured under the batch's load);
- report size (``report.html``, per track), disk per track of ``analysis/`` (with and without
  the figures), peak memory (RSS of this process and every child, sampled).

``--baseline`` then runs the same batch on the non-streaming path (``run_batch(...,
stream=False)``: analysis starts once every track is separated) into another folder and prints
both side by side with the ratio streaming / baseline.

    .venv/bin/python bench/campaign.py [--tracks 200] [--seconds 10] [--baseline] [--workers 2]
    .venv/bin/python bench/campaign.py --tracks 1000 --baseline          # the full run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

PROVIDERS = ["sourceress", "audioshake"]


def make_tracks(root: Path, n: int, seconds: float, sr: int) -> Path:
    """N held-out tracks: the demo set's styles with new seeds, tempi and names."""
    from stemkit.demo.synth import DEMO_TRACKS, write_track

    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = DEMO_TRACKS[i % len(DEMO_TRACKS)]
        spec = replace(
            base,
            name=f"held-{i:04d}",
            seed=100_000 + i,
            duration=seconds,
            tempo=base.tempo * (0.9 + 0.2 * ((i * 7) % 11) / 10),
        )
        if not (root / spec.name / "mixture.wav").is_file():
            write_track(spec, root, sr=sr)
    return root


class PeakRSS:
    """Peak resident memory of this process and all its children, sampled every 0.25 s."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.25):
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _size(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def run(manifest: Path, out: Path, *, stream: bool, workers: int, inproc: int) -> dict:
    """One batch; its figures as a dict."""
    import nbformat

    from stemkit.batch import run_batch
    from stemkit.batchdir import BatchFolder

    t0 = time.time()
    with PeakRSS() as rss:
        result = run_batch(
            manifest, PROVIDERS, out, workers=workers, transcribe=False, stream=stream
        )
    t_end = time.time()
    batch = BatchFolder(out)
    sep_end = batch.notebook("separate").stat().st_mtime
    spans, seconds = [], []
    for t in batch.tracks:
        nb = nbformat.read(batch.notebook("analyze", t), as_version=4)
        meta = nb.metadata.get("stemkit") or {}
        if meta:
            spans.append((meta["started"], meta["started"] + meta["seconds"]))
            seconds.append(meta["seconds"])
    first = min(s for s, _ in spans)
    last = max(e for _, e in spans)
    n = len(batch.tracks)
    analysis = out / "analysis"
    figures = _size(analysis, "*.png")
    report = batch.report_path.stat().st_size
    pages = _size(out, "*.html") - report  # per-track pages, if the report writes them
    figs = {
        "tracks": n,
        "failed": len(result.tracks_failed),
        "errors": len(result.notebook_errors),
        "wall": t_end - t0,
        "separate": sep_end - t0,
        "analyze": last - first,
        "analyze_start": first - t0,
        "compare": t_end - last,
        "overlap": max(0.0, min(sep_end, last) - first),
        "nb_track": statistics.median(seconds) if seconds else float("nan"),
        "report": report,
        "pages": pages,
        "disk": (_size(analysis) - figures) / n,
        "figures": figures / n,
        "peak": rss.peak,
    }
    if inproc:
        figs["inproc_track"] = _in_process(batch, inproc)
        figs["overhead"] = figs["nb_track"] - figs["inproc_track"]
    return figs


def _in_process(batch, k: int) -> float:
    """Median seconds of ``analyze_track`` on ``k`` tracks of a copy (bracket computed)."""
    from stemkit.analyze.track import analyze_track
    from stemkit.batchdir import BatchFolder

    scratch = Path(tempfile.mkdtemp(prefix="stemkit-campaign-inproc-"))
    copy = BatchFolder(
        shutil.copytree(batch.root, scratch / "b", ignore=shutil.ignore_patterns("*.ipynb"))
    )
    tracks = copy.tracks[: k + 1]
    times = []
    for i, t in enumerate(tracks):
        copy.bracket_path(t).unlink(missing_ok=True)
        t0 = time.perf_counter()
        analyze_track(copy, t)
        if i:  # the first one pays the imports and caches, as a kernel's first run does
            times.append(time.perf_counter() - t0)
    shutil.rmtree(scratch, ignore_errors=True)
    return statistics.median(times)


ROWS = [
    ("wall", "batch wall (s)", "{:.1f}"),
    ("separate", "separate phase (s)", "{:.1f}"),
    ("analyze_start", "first analysis starts at (s)", "{:.1f}"),
    ("analyze", "analyze phase, first start to last end (s)", "{:.1f}"),
    ("compare", "compare + report after the last analysis (s)", "{:.1f}"),
    ("overlap", "separate and analyze overlap (s)", "{:.1f}"),
    ("nb_track", "analysis notebook per track, median (s)", "{:.2f}"),
    ("inproc_track", "analyze_track in-process, median (s)", "{:.2f}"),
    ("overhead", "notebook overhead per track (s)", "{:.2f}"),
    ("report", "report.html (kB)", "{:.0f}", 1e-3),
    ("report_track", "report.html per track (kB)", "{:.1f}"),
    ("pages", "other HTML pages (kB)", "{:.0f}", 1e-3),
    ("disk", "analysis/ per track without figures (kB)", "{:.0f}", 1e-3),
    ("figures", "figures per track (kB)", "{:.0f}", 1e-3),
    ("peak", "peak RSS, this process and children (MB)", "{:.0f}", 1e-6),
    ("failed", "tracks failed", "{:.0f}"),
    ("errors", "analysis errors", "{:.0f}"),
]


def show(results: dict[str, dict]) -> None:
    names = list(results)
    for figs in results.values():
        figs["report_track"] = figs["report"] / 1e3 / figs["tracks"]
    print(f"\n{'':46s}" + "".join(f"{n:>12s}" for n in names) + (
        f"{'ratio':>8s}" if len(names) == 2 else ""))  # fmt: skip
    for row in ROWS:
        key, label, fmt = row[:3]
        scale = row[3] if len(row) > 3 else 1
        if not all(key in r for r in results.values()):
            continue
        vals = [results[n][key] * scale for n in names]
        line = f"{label:46s}" + "".join(f"{fmt.format(v):>12s}" for v in vals)
        if len(vals) == 2 and vals[1]:
            line += f"{vals[0] / vals[1]:8.2f}"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--baseline", action="store_true", help="also the non-streaming path")
    ap.add_argument("--inproc", type=int, default=3, help="tracks timed in-process (0: none)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp)")
    ap.add_argument("--keep", action="store_true", help="keep the batch folders")
    args = ap.parse_args()

    from stemkit.sandbox import SandboxServer

    work = args.work or Path(tempfile.mkdtemp(prefix="stemkit-campaign-"))
    for p in PROVIDERS:  # poll as a client of a fast vendor would (the defaults suit minutes)
        os.environ.setdefault(f"STEMKIT_{p.upper()}_POLL_INTERVAL", "0.25")
        os.environ.setdefault(f"STEMKIT_{p.upper()}_POLL_MAX", "1.0")
    t0 = time.perf_counter()
    manifest = make_tracks(work / f"tracks-{args.tracks}x{args.seconds:g}s", args.tracks,
                           args.seconds, args.sr)  # fmt: skip
    print(f"{args.tracks} tracks x {args.seconds:g} s synthesised in "
          f"{time.perf_counter() - t0:.1f} s; {len(PROVIDERS)} providers, "
          f"{args.workers} analysis workers, {os.cpu_count()} CPUs")  # fmt: skip
    results = {}
    modes = [("streaming", True)] + ([("baseline", False)] if args.baseline else [])
    for name, stream in modes:
        out = work / f"batch-{name}"
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
        with SandboxServer(workers=2) as server:
            print(f"{name}: sandbox at {server.url}, load {load:.1f}", flush=True)
            results[name] = run(
                manifest, out, stream=stream, workers=args.workers, inproc=args.inproc
            )
        print(json.dumps({k: round(v, 3) for k, v in results[name].items()}), flush=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    show(results)
    print(f"machine: {os.cpu_count()} CPUs, load average (1 min) {os.getloadavg()[0]:.2f}")
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
