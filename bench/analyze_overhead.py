"""Per-track overhead of the analysis phase: a warm kernel per worker vs a papermill kernel per
track (issue: campaign scale, item 2).

For the tracks of an existing batch folder (e.g. ``reports/demo`` after ``make demo``), one
worker, side by side in this process:

- in-process ``analyze_track`` (the work itself, no notebook);
- the analysis notebook on a warm kernel (``stemkit.batch.WarmKernel``, what a batch does);
- the analysis notebook with papermill, one kernel per track (the previous batch path).

Overhead per track = notebook time - in-process time. Goal: <= 0.5 s with the warm kernel.
Everything runs on a copy of the batch in a scratch folder: the batch itself is not touched.

    .venv/bin/python bench/analyze_overhead.py reports/demo [--tracks N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from stemkit.batch import WarmKernel, execute
from stemkit.batchdir import BatchFolder
from stemkit.resources import notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("batch")
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--notebook", help="another analyze.ipynb (e.g. an earlier version)")
    parser.add_argument("--no-papermill", action="store_true", help="skip the papermill runs")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="stemkit-overhead-"))
    batch = BatchFolder(shutil.copytree(args.batch, scratch / "batch", symlinks=True))
    tracks = batch.tracks[: args.tracks]
    nb = args.notebook or notebook("analyze")

    from stemkit.analyze.track import analyze_track

    analyze_track(batch.root, tracks[0])  # imports and caches warm, as in a kernel's first run
    for t in tracks:  # every run below (the notebooks too) reuses the cached bracket scores
        analyze_track(batch.root, t)
    inproc = {}
    for t in tracks:
        t0 = time.perf_counter()
        analyze_track(batch.root, t)
        inproc[t] = time.perf_counter() - t0

    def timed(run) -> dict[str, float]:
        out = {}
        for t in tracks:
            t0 = time.perf_counter()
            run(t)
            out[t] = time.perf_counter() - t0
        return out

    params = {"batch_dir": str(batch.root)}
    kernel = WarmKernel()
    warm = timed(lambda t: kernel.execute(nb, scratch / f"w-{t}.ipynb", {**params, "track": t}))
    kernel.shutdown()
    if args.no_papermill:
        cold = {t: float("nan") for t in tracks}
    else:
        cold = timed(lambda t: execute(nb, scratch / f"c-{t}.ipynb", {**params, "track": t}))

    med = statistics.median
    print(f"{len(tracks)} tracks of {batch.root}, 1 worker, load {os.getloadavg()[0]:.1f}")
    print(f"{'track':24s} {'in-process':>10s} {'warm':>8s} {'papermill':>10s}   (s)")
    for t in tracks:
        print(f"{t:24s} {inproc[t]:10.2f} {warm[t]:8.2f} {cold[t]:10.2f}")
    over_w = [warm[t] - inproc[t] for t in tracks]
    over_c = [cold[t] - inproc[t] for t in tracks]
    print(f"overhead per track, median: warm kernel {med(over_w):.2f} s "
          f"(first run {over_w[0]:.2f} s, later {med(over_w[1:] or over_w):.2f} s), "
          f"papermill {med(over_c):.2f} s")  # fmt: skip
    print(f"notebook time ratio warm / papermill: {sum(warm.values()) / sum(cold.values()):.2f}")
    sizes = [(scratch / f"w-{t}.ipynb").stat().st_size / 1e3 for t in tracks]
    print(f"executed notebook size, median: {med(sizes):.0f} kB")


if __name__ == "__main__":
    main()
