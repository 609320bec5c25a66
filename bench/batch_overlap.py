"""Does the separate phase overlap every remote wait?

50 tracks x 2 providers against a sandbox (in its own process) whose every job takes an
extra L seconds of "processing". The ideal wall time is one job's latency: L plus its
upload/submit/download time, measured alone on the idle sandbox; the goal is wall time <=
1.25 x that ideal, with a per-provider cap on jobs in flight. Side by side: the same jobs one
at a time (the naive loop), measured on a few jobs and scaled to the batch.

    .venv/bin/python bench/batch_overlap.py [--tracks 50] [--latency 5,20,60] [--cap 50]

Each L in ``--latency`` is one run (the naive loop only for the first). The vendors take
minutes per job; the batch's cost beyond one job's latency is roughly fixed (submitting 100
jobs through one sandbox process that shares this machine's 2 cores with the client, its
real DSP included), so the ratio falls as L grows. The sandbox gets a worker thread for every
vendor job (Sourceress: one per track; AudioShake: one per stem and track): vendor capacity
is not what is measured. The sandbox's CPU seconds are printed next to the client's.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
import soundfile as sf

from stemkit.stems import TWO_STEMS  # AudioShake's default stems: one vendor job each

PROVIDERS = ["sourceress", "audioshake"]


def make_tracks(root: Path, n: int, sr: int = 16000, seconds: float = 2.0) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(int(sr * seconds)) / sr
    for i in range(n):
        folder = root / f"track-{i:03d}"
        folder.mkdir(parents=True)
        y = 0.2 * np.sin(2 * np.pi * (110 + 5 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(folder / "mixture.wav", np.stack([y, y], 1).astype(np.float32), sr)
    return root


def start_sandbox(port: int, latency: float, workers: int, data: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "stemkit.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--processing-delay",
        str(latency),
        "--data-dir",
        str(data),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            requests.get(f"http://127.0.0.1:{port}/_sandbox/stats", timeout=0.5)
            return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the sandbox did not start")


def run(manifest: Path, out: Path, cap: int) -> tuple[float, float, dict]:
    from stemkit.separate.run import separate_batch

    for p in PROVIDERS:
        os.environ[f"STEMKIT_{p.upper()}_MAX_IN_FLIGHT"] = str(cap)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    table = separate_batch(manifest, PROVIDERS, out, progress=False)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return wall, cpu, table["state"].value_counts().to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=50)
    ap.add_argument(
        "--latency", default="5,20,60", help="L, seconds per job; several: one run each"
    )
    ap.add_argument("--cap", type=int, default=50, help="jobs in flight per provider")
    ap.add_argument("--naive-jobs", type=int, default=4)
    args = ap.parse_args()
    latencies = [float(x) for x in str(args.latency).split(",")]
    jobs = args.tracks * len(PROVIDERS)
    # a sandbox worker per vendor job: Sourceress one per track, AudioShake one per stem
    vendor_jobs = args.tracks * (1 + len(TWO_STEMS))
    rows = []
    for k, latency in enumerate(latencies):
        work = Path(tempfile.mkdtemp(prefix="stemkit-overlap-"))
        port = 8800 + (os.getpid() + k) % 100
        os.environ["STEMKIT_SANDBOX_URL"] = f"http://127.0.0.1:{port}"
        for p in PROVIDERS:
            os.environ[f"STEMKIT_{p.upper()}_POLL_INTERVAL"] = "0.25"
            os.environ[f"STEMKIT_{p.upper()}_POLL_MAX"] = "0.5"
        sandbox = start_sandbox(port, latency, vendor_jobs + 4, work / "sandbox")
        try:
            manifest = make_tracks(work / "tracks", args.tracks)
            one = make_tracks(work / "one", 1)
            run(one, work / "warm-up", cap=1)  # imports, connections, first requests
            ideal, _, _ = run(one, work / "single", cap=1)  # both providers' job, alone
            if k == 0:
                naive_manifest = make_tracks(work / "naive", args.naive_jobs)
                naive, _, _ = run(naive_manifest, work / "naive-out", cap=1)
                naive_per_track = naive / args.naive_jobs
            server0 = _cpu_of(sandbox.pid)
            wall, cpu, states = run(manifest, work / "batch", cap=args.cap)
            server = _cpu_of(sandbox.pid) - server0
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=10)
            shutil.rmtree(work, ignore_errors=True)
        print(
            f"\n{args.tracks} tracks x {len(PROVIDERS)} providers = {jobs} jobs "
            f"({vendor_jobs} vendor jobs), L = {latency:g} s, cap {args.cap} in flight per provider"
        )
        print(f"states: {states}")
        print(f"ideal (one job alone: L + upload/submit/download): {ideal:7.2f} s")
        print(
            f"batch wall time:                                 {wall:7.2f} s"
            f"   ratio to ideal {wall / ideal:.2f} (goal <= 1.25)"
        )
        print(
            f"client CPU during the batch:                     {cpu:7.2f} s"
            f"   ({cpu / wall:.0%} of one core: polling every job each 0.25-0.5 s)"
        )
        print(f"sandbox CPU during the batch (same 2 cores):     {server:7.2f} s")
        if k == 0:
            print(
                f"naive, one job at a time: {naive_per_track:.2f} s per track "
                f"-> {naive_per_track * args.tracks:.1f} s for the batch "
                f"(measured on {args.naive_jobs} tracks); speed-up "
                f"{naive_per_track * args.tracks / wall:.1f}x"
            )
        rows.append((latency, ideal, wall, cpu, server))
    head = ("L (s)", "ideal (s)", "batch (s)", "ratio", "client CPU", "sandbox CPU")
    print("\n" + " ".join(f"{h:>11}" for h in head))
    for latency, ideal, wall, cpu, server in rows:
        cells = (f"{latency:g}", f"{ideal:.2f}", f"{wall:.2f}", f"{wall / ideal:.2f}")
        print(" ".join(f"{c:>11}" for c in (*cells, f"{cpu:.2f}", f"{server:.2f}")))
    print(f"machine: {os.cpu_count()} CPUs, load average (1 min) {os.getloadavg()[0]:.2f}")


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
