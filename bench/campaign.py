"""A QA campaign end to end: N held-out tracks x 2 providers on the in-process sandbox (issue:
campaign scale, item 6).

Synthesises N tracks of S seconds (:mod:`stemkit.demo.synth`, new seeds: not the demo set),
starts the sandbox in this process and runs ``run_batch`` on them with sourceress and
audioshake (4 stems) in a process of its own (so the sandbox's CPU is told apart from the
batch's), then prints:

- wall time per phase: separate (to the end of the separate notebook), analyze (first analysis
  start to last end), compare (last analysis to the report), and the whole batch;
- overlap: seconds during which separation and analysis both ran;
- per-track analysis time in the batch (the executed notebook's own record, kernel reset
  included) against ``analyze_track`` in-process on a few tracks afterwards, and the difference
  (the notebook overhead, measured under the batch's load);
- report size (``report.html``, per track), disk per track of ``analysis/`` (with and without
  the figures), peak memory (RSS of this process and every child, sampled);
- CPU seconds per track by kind of process: the sandbox (the vendors), the batch driver, the
  separate and compare kernels, the analysis workers and their kernels.

``--baseline`` also runs the same batch on the non-streaming path (``run_batch(...,
stream=False)``: analysis starts once every track is separated); ``--baseline-rev REV`` runs it
with an earlier release of stemkit instead (``git archive REV`` of this repository, e.g.
``f22d6bc``, the last commit before streaming), on the same sandbox. Each goes into its own
folder and is printed side by side with the ratio this tree / baseline.

    .venv/bin/python bench/campaign.py [--tracks 200] [--seconds 10] [--baseline] [--workers 2]
    .venv/bin/python bench/campaign.py --tracks 100 --baseline-rev f22d6bc  # the issue's ratio
    .venv/bin/python bench/campaign.py --tracks 1000                         # the full run
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
    """Peak resident memory of this process and all its children, sampled every 0.25 s, and
    the CPU seconds each kind of process used (the last sample of each process)."""

    def __init__(self, driver: int) -> None:
        self.peak = 0
        self.driver = driver  # the batch's own process (this one holds the sandbox)
        self._cpu: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _kind(self, p, me) -> str:
        kernel = "ipykernel" in " ".join(p.cmdline())
        if p.pid == me.pid:
            return "sandbox"
        if p.pid == self.driver:
            return "batch driver"
        if kernel:
            return "separate/compare kernels" if p.ppid() == self.driver else "analysis kernels"
        return "analysis workers"

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.25):
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    with p.oneshot():
                        total += p.memory_info().rss
                        t = p.cpu_times()
                        kind = self._cpu[p.pid][0] if p.pid in self._cpu else self._kind(p, me)
                        self._cpu[p.pid] = (kind, t.user + t.system)
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)

    def cpu(self) -> dict[str, float]:
        """CPU seconds by kind of process."""
        out: dict[str, float] = {}
        for kind, seconds in self._cpu.values():
            out[kind] = out.get(kind, 0.0) + seconds
        return out

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _size(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


#: the batch, run in a process of its own with the stemkit of PYTHONPATH (this tree or an
#: earlier release's): this process keeps only the sandbox, so CPU is told apart
DRIVER = """
import inspect, json, sys
from stemkit.batch import run_batch
manifest, out, workers, stream = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
kw = {"stream": stream} if "stream" in inspect.signature(run_batch).parameters else {}
r = run_batch(manifest, PROVIDERS, out, workers=workers, transcribe=False, **kw)
print("CAMPAIGN", json.dumps({"failed": len(r.tracks_failed), "errors": len(r.notebook_errors)}))
"""


def _span(nb) -> tuple[float, float] | None:
    """When an executed analysis notebook ran: its own record, else its cells' timestamps (an
    earlier release wrote no record; the cells leave out the kernel reset)."""
    from datetime import datetime

    meta = nb.metadata.get("stemkit") or {}
    if meta:
        return meta["started"], meta["started"] + meta["seconds"]
    stamps = [c.metadata.get("execution", {}) for c in nb.cells if c.cell_type == "code"]
    stamps = [s for s in stamps if s]
    if not stamps:
        return None

    def t(v: str) -> float:
        return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()

    return t(stamps[0]["iopub.execute_input"]), t(stamps[-1]["shell.execute_reply"])


def run(manifest: Path, out: Path, *, stream: bool, workers: int, inproc: int, tree: Path) -> dict:
    """One batch, run by the stemkit in ``tree``; its figures as a dict."""
    import subprocess
    import sys

    import nbformat

    from stemkit.batchdir import BatchFolder

    env = dict(os.environ, PYTHONPATH=str(tree))
    code = DRIVER.replace("PROVIDERS", repr(PROVIDERS))
    argv = [sys.executable, "-c", code, str(manifest), str(out), str(workers), str(int(stream))]
    t0 = time.time()
    proc = subprocess.Popen(argv, env=env, cwd=tree, stdout=subprocess.PIPE, text=True)
    with PeakRSS(driver=proc.pid) as rss:
        stdout, _ = proc.communicate()
    t_end = time.time()
    if proc.returncode:
        raise SystemExit(f"the batch in {tree} exited {proc.returncode}")
    found = re.findall(r"CAMPAIGN (\{.*?\})", stdout)  # the batch may print more on its line
    if not found:
        tail = stdout[-2000:]
        raise SystemExit(f"the batch in {tree} printed no result; its output ends:\n{tail}")
    result = json.loads(found[-1])
    batch = BatchFolder(out)
    sep_end = batch.notebook("separate").stat().st_mtime
    spans = []
    for t in batch.tracks:
        span = _span(nbformat.read(batch.notebook("analyze", t), as_version=4))
        if span:
            spans.append(span)
    first = min(s for s, _ in spans)
    last = max(e for _, e in spans)
    n = len(batch.tracks)
    analysis = out / "analysis"
    figures = _size(analysis, "*.png")
    report = batch.report_path.stat().st_size
    pages = _size(out, "*.html") - report  # per-track pages, if the report writes them
    figs = {
        "tracks": n,
        "failed": result["failed"],
        "errors": result["errors"],
        "wall": t_end - t0,
        "separate": sep_end - t0,
        "analyze": last - first,
        "analyze_start": first - t0,
        "compare": t_end - last,
        "overlap": max(0.0, min(sep_end, last) - first),
        "nb_track": statistics.median(e - s for s, e in spans),
        "report": report,
        "pages": pages,
        "disk": (_size(analysis) - figures) / n,
        "figures": figures / n,
        "peak": rss.peak,
    }
    for kind, seconds in rss.cpu().items():
        figs[f"cpu {kind}"] = seconds / n
    if inproc:
        figs["inproc_track"] = _in_process(batch, inproc)
        figs["overhead"] = figs["nb_track"] - figs["inproc_track"]
    return figs


def _in_process(batch, k: int) -> float:
    """Median seconds of ``analyze_track`` on ``k`` tracks of a copy (bracket computed)."""
    from stemkit.analyze.track import analyze_track
    from stemkit.batchdir import BatchFolder

    scratch = Path(tempfile.mkdtemp(prefix="stemkit-campaign-inproc-"))
    keep = set(batch.tracks[: k + 1])
    per_track = {batch.root / "stems", batch.root / "analysis"}

    def ignore(folder: str, names: list[str]) -> list[str]:
        """Only the timed tracks' stems and analyses (a copy of all is GBs at 1000 tracks)."""
        skip = [n for n in names if n.endswith(".ipynb") or n.startswith(".")]
        if Path(folder) in per_track:
            skip += [n for n in names if n not in keep]
        return skip

    copy = BatchFolder(shutil.copytree(batch.root, scratch / "b", ignore=ignore))
    tracks = [t for t in copy.tracks if t in keep]
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
    ("cpu", "CPU seconds per track, all processes", "{:.2f}"),
    ("failed", "tracks failed", "{:.0f}"),
    ("errors", "analysis errors", "{:.0f}"),
]


def show(results: dict[str, dict]) -> None:
    names = list(results)
    kinds: list[str] = []
    for figs in results.values():
        figs["report_track"] = figs["report"] / 1e3 / figs["tracks"]
        cpu = [k for k in figs if k.startswith("cpu ")]
        figs["cpu"] = sum(figs[k] for k in cpu)
        kinds += [k for k in cpu if k not in kinds]
    rows = list(ROWS)
    at = next(i for i, r in enumerate(rows) if r[0] == "cpu") + 1
    rows[at:at] = [(k, f"  {k[4:]}", "{:.2f}") for k in kinds]
    print(f"\n{'':46s}" + "".join(f"{n:>12s}" for n in names) + (
        f"{'ratio':>8s}" if len(names) == 2 else ""))  # fmt: skip
    for row in rows:
        key, label, fmt = row[:3]
        scale = row[3] if len(row) > 3 else 1
        if not any(key in r for r in results.values()):
            continue
        vals = [results[n].get(key, float("nan")) * scale for n in names]
        line = f"{label:46s}" + "".join(f"{fmt.format(v):>12s}" for v in vals)
        if len(vals) == 2 and vals[1]:
            line += f"{vals[0] / vals[1]:8.2f}"
        print(line)


def _checkout(repo: Path, rev: str, work: Path) -> Path:
    """The files of ``rev`` (``git archive``) in ``work/rev-REV``: an earlier release to run."""
    import subprocess

    tree = work / f"rev-{rev[:10]}"
    if not (tree / "stemkit").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", rev], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--baseline", action="store_true", help="also the non-streaming path")
    ap.add_argument(
        "--baseline-rev",
        metavar="REV",
        help="also the batch of an earlier release (a git revision of this repository, e.g. "
        "the one before streaming), checked out into the scratch folder",
    )
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
    here = Path(__file__).resolve().parents[1]
    modes = [("streaming", True, here)] + ([("baseline", False, here)] if args.baseline else [])
    if args.baseline_rev:
        modes.append((args.baseline_rev[:10], False, _checkout(here, args.baseline_rev, work)))
    for name, stream, tree in modes:
        out = work / f"batch-{name}"
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
        with SandboxServer(workers=2) as server:
            print(f"{name}: sandbox at {server.url}, load {load:.1f}", flush=True)
            results[name] = run(
                manifest,
                out,
                stream=stream,
                workers=args.workers,
                inproc=args.inproc if tree == here else 0,
                tree=tree,
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
