"""Peak memory of one track's analysis against its duration (issue: campaign scale, item 4).

Builds, in a scratch folder, a batch of one track per duration: a demo track tiled to that
length (mixture and the four references), and one provider whose stems are the references
slightly changed (gain, a little noise), as if a vendor had delivered them. Then runs
``analyze_track`` (in-process, figures and the SiSEC bracket on) once per duration, each in a
fresh Python process, and prints its peak RSS (``ru_maxrss``) next to the RSS after the imports.
Flat memory: the peak grows little with the duration.

    .venv/bin/python bench/analysis_memory.py [--seconds 60,600] [--track data/demo/01-sunday-drive]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

STEMS = ("vocals", "drums", "bass", "other")


def make_batch(root: Path, source: Path, seconds: float) -> Path:
    """A batch folder with one tiled track and one provider ("vendor") that delivered."""
    from stemkit.batchdir import BatchFolder

    track = f"tiled-{seconds:g}s"
    tracks_dir = root / "tracks" / track
    tracks_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batch = BatchFolder(root / "batch")
    job = batch.job_dir(track, "vendor")
    job.mkdir(parents=True)
    refs = {}
    for name in ("mixture", *STEMS):
        y, sr = sf.read(source / f"{name}.wav", dtype="float32", always_2d=True)
        n = int(seconds * sr)
        tiled = np.tile(y, (n // len(y) + 1, 1))[:n]
        sf.write(tracks_dir / f"{name}.wav", tiled, sr, subtype="PCM_16")
        if name != "mixture":
            refs[name] = str(tracks_dir / f"{name}.wav")
            noisy = 0.95 * tiled + 1e-3 * rng.standard_normal(tiled.shape).astype(np.float32)
            sf.write(job / f"{name}.wav", noisy, sr, subtype="PCM_16")
    mixture = str(tracks_dir / "mixture.wav")
    batch.write_info(
        {
            "providers": ["vendor"],
            "tracks": [{"name": track, "mixture": mixture, "references": refs}],
        }
    )
    record = {"provider": "vendor", "track": track, "state": "done", "audio_seconds": seconds}
    record["stems"] = {s: f"{s}.wav" for s in STEMS}
    batch.write_record(track, "vendor", record)
    return batch.root


CHILD = """
import json, resource, sys, time
from stemkit.analyze.track import analyze_track
import matplotlib.pyplot, librosa, scipy.signal  # what a warm kernel has loaded
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
a = analyze_track(sys.argv[1], sys.argv[2])
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024, "wall": wall,
                  "failures": a.failures, "rows": len(a.metrics)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", default="60,600")
    ap.add_argument("--track", default="data/demo/01-sunday-drive")
    args = ap.parse_args()
    rows = []
    for seconds in (float(s) for s in args.seconds.split(",")):
        root = Path(tempfile.mkdtemp(prefix="stemkit-memory-"))
        # built in a process of its own: a child inherits its parent's peak RSS (ru_maxrss)
        build = "from bench.analysis_memory import make_batch; from pathlib import Path; "
        build += f"make_batch(Path({str(root)!r}), Path({args.track!r}), {seconds})"
        subprocess.run([sys.executable, "-c", build], check=True)
        out = root / "batch"
        track = f"tiled-{seconds:g}s"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(out), track],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode:
            raise SystemExit(f"analysis of {seconds:g} s failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        analysis = out / "analysis" / track
        disk = sum(p.stat().st_size for p in analysis.rglob("*") if p.is_file())
        figs = sum(p.stat().st_size for p in analysis.glob("*.png"))
        rows.append((seconds, res, disk - figs, figs, time.perf_counter() - t0))
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    print(f"{'track (s)':>9} {'after imports':>14} {'peak RSS':>9} {'growth':>8} {'analysis':>9}"
          f" {'analysis/ w/o figs':>19} {'figures':>8}")  # fmt: skip
    for seconds, res, disk, figs, _ in rows:
        print(
            f"{seconds:9g} {res['base_mb']:11.0f} MB {res['peak_mb']:6.0f} MB "
            f"{res['peak_mb'] - res['base_mb']:5.0f} MB {res['wall']:7.1f} s "
            f"{disk / 1e6:16.2f} MB {figs / 1e6:5.2f} MB"
        )
        if res["failures"]:
            print("  failures:", json.dumps(res["failures"])[:300])


if __name__ == "__main__":
    main()
