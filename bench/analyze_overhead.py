"""Per-track overhead of the analysis phase: a warm kernel per worker vs a papermill kernel per
track (issue: campaign scale, item 2).

For the tracks of an existing batch folder (e.g. ``reports/demo`` after ``make demo``), one
worker, side by side in this process:

- in-process ``analyze_track`` (the work itself, no notebook);
- the analysis notebook on a warm kernel (``stemkit.batch.WarmKernel``, what a batch does);
- the analysis notebook with papermill, one kernel per track (the previous batch path).

Overhead per track = notebook time - in-process time. Goal: <= 0.5 s with the warm kernel.
Everything runs on a copy of the batch in a scratch folder: the batch itself is not touched.

    .venv/bin/python bench/analyze_overhead.py reports/demo [--tracks N] [--compare OLD.ipynb]
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
    parser.add_argument(
        "--compare", help="another analyze.ipynb (e.g. an earlier version), on its own warm kernel"
    )
    parser.add_argument("--no-papermill", action="store_true", help="skip the papermill runs")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="stemkit-overhead-"))
    batch = BatchFolder(shutil.copytree(args.batch, scratch / "batch", symlinks=True))
    tracks = batch.tracks[: args.tracks]
    params = {"batch_dir": str(batch.root)}

    from stemkit.analyze.track import analyze_track

    for t in tracks:  # imports warm; every run below reuses the cached bracket scores
        analyze_track(batch.root, t)
    notebooks = {"warm": notebook("analyze")}
    if args.compare:
        notebooks["warm, --compare"] = args.compare
    kernels = {name: WarmKernel() for name in notebooks}
    first = {}
    for name, kernel in kernels.items():  # a kernel's first run: its start and the imports
        t0 = time.perf_counter()
        kernel.execute(notebooks[name], scratch / "first.ipynb", {**params, "track": tracks[0]})
        first[name] = time.perf_counter() - t0
    runs: dict[str, dict[str, float]] = {"in-process": {}, **{n: {} for n in notebooks}}
    if not args.no_papermill:
        runs["papermill"] = {}
    for t in tracks:  # interleaved, so that the machine's load weighs on each alike
        t0 = time.perf_counter()
        analyze_track(batch.root, t)
        runs["in-process"][t] = time.perf_counter() - t0
        for name, kernel in kernels.items():
            t0 = time.perf_counter()
            kernel.execute(notebooks[name], scratch / f"{name}-{t}.ipynb", {**params, "track": t})
            runs[name][t] = time.perf_counter() - t0
        if "papermill" in runs:
            t0 = time.perf_counter()
            execute(notebook("analyze"), scratch / f"c-{t}.ipynb", {**params, "track": t})
            runs["papermill"][t] = time.perf_counter() - t0
    for kernel in kernels.values():
        kernel.shutdown()

    med = statistics.median
    print(f"{len(tracks)} tracks of {args.batch}, 1 worker, load {os.getloadavg()[0]:.1f}")
    print(f"{'track':24s}" + "".join(f"{n:>17s}" for n in runs) + "   (s)")
    for t in tracks:
        print(f"{t:24s}" + "".join(f"{runs[n][t]:17.2f}" for n in runs))
    inproc = runs["in-process"]
    for name in list(runs)[1:]:
        over = [runs[name][t] - inproc[t] for t in tracks]
        print(f"overhead per track, median, {name}: {med(over):.2f} s")
    for name, seconds in first.items():
        print(f"first run of the {name} kernel (start, imports, one track): {seconds:.2f} s")
    for name in notebooks:
        sizes = [(scratch / f"{name}-{t}.ipynb").stat().st_size / 1e3 for t in tracks]
        print(f"executed notebook size, median, {name}: {med(sizes):.0f} kB")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
