"""The reliability bench: a batch against a faulty sandbox, killed at random points and rerun
until done. Prints what survived: jobs done, stems verified, duplicate submissions counted by
the sandbox, faults injected, secrets found in outputs, files written outside the output folder.

    .venv/bin/python bench/chaos.py [--tracks 5] [--seed 1] [--kills 6] [--concurrent 2]

Each round starts ``--concurrent`` batches on the same folder at once (one writer per batch:
the others stop, paying for nothing).

Baseline for orientation: the same batch without faults and kills (its wall time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, from the repo

from stemkit.sandbox import SandboxConfig, SandboxServer  # noqa: E402
from stemkit.sandbox.faults import Faults  # noqa: E402
from stemkit.separate.ledger import Ledger  # noqa: E402
from stemkit.separate.run import separate_batch  # noqa: E402
from tests.support.chaos import run_until_done, scan_for_secrets  # noqa: E402

SECRETS = {
    "password": "bench-pass-71d0",
    "token": "bench-token-4c2e",
    "key": "bench-key-9a",
    "secret": "bench-secret-e55f",
}
PROVIDERS = ["sourceress", "audioshake"]


def env(url: str) -> dict[str, str]:
    return {
        "STEMKIT_SANDBOX_URL": url,
        "STEMKIT_SOURCERESS_USERNAME": "bench",
        "STEMKIT_SOURCERESS_PASSWORD": SECRETS["password"],
        "STEMKIT_AUDIOSHAKE_TOKEN": SECRETS["token"],
        "STEMKIT_LOOM_KEY": SECRETS["key"],
        "STEMKIT_LOOM_SECRET": SECRETS["secret"],
        "STEMKIT_SOURCERESS_POLL_INTERVAL": "0.1",
        "STEMKIT_AUDIOSHAKE_POLL_INTERVAL": "0.1",
        "STEMKIT_SOURCERESS_POLL_MAX": "0.5",
        "STEMKIT_AUDIOSHAKE_POLL_MAX": "0.5",
    }


def sandbox(data: Path, faults: Faults) -> SandboxServer:
    return SandboxServer(
        SandboxConfig(
            data_dir=data,
            workers=2,
            sourceress_users={"bench": SECRETS["password"]},
            audioshake_tokens={SECRETS["token"]: "bench"},
            loom_keys={SECRETS["key"]: SECRETS["secret"]},
            faults=faults,
        ),
        set_env=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--concurrent", type=int, default=2)
    args = ap.parse_args()
    from stemkit.demo.synth import DEMO_TRACKS, write_track

    work = Path(tempfile.mkdtemp(prefix="stemkit-chaos-"))
    manifest = work / "tracks"
    for spec in DEMO_TRACKS[: args.tracks]:
        write_track(spec, manifest, sr=22050)
    try:
        with sandbox(work / "sb-clean", Faults()) as server:
            os.environ.update(env(server.url))
            t0 = time.perf_counter()
            separate_batch(manifest, PROVIDERS, work / "clean", progress=False)
            clean = time.perf_counter() - t0
        faults = Faults(
            seed=args.seed,
            error_5xx=0.10,
            drop=0.05,
            token_expiry=0.03,
            url_expiry=0.05,
            rate_429=0.02,
            retry_after=0.2,
            malformed=0.02,
            job_failure=0.03,
        )
        out_root = work / "chaos"
        out_root.mkdir()
        with sandbox(work / "sb-chaos", faults) as server:
            before = set(os.listdir(work))
            report = run_until_done(
                manifest,
                PROVIDERS,
                out_root / "out",
                env=env(server.url),
                seed=args.seed,
                kill_after=(0.0, 2.0),
                kill_rounds=args.kills,
                max_rounds=args.kills + 10,
                concurrent=args.concurrent,
            )
            stats = requests.get(f"{server.url}/_sandbox/stats").json()
        leaks = scan_for_secrets(out_root, list(SECRETS.values()))
        stray = sorted(set(os.listdir(work)) - before) + sorted(set(os.listdir(out_root)) - {"out"})
        print(f"{args.tracks} tracks x {len(PROVIDERS)} providers, seed {args.seed}")
        print(f"faults injected:          {dict(stats['injected'])}")
        print(f"rounds / kills:           {report.rounds} / {report.kills}")
        print(
            f"concurrent batches:       {args.concurrent} per round, "
            f"{report.refused_busy} refused as busy"
        )
        print(f"jobs done:                {report.jobs_done} of {report.jobs}")
        states = Ledger(out_root / "out").counts()
        print(f"ledger states:            {states} (ambiguous: killed mid-create, not resent)")
        print(f"stems verified (sha256):  {report.stems_verified}, bad: {report.stems_bad}")
        print(f"duplicate submissions:    {stats['duplicates']}")
        print(
            f"separations submitted:    sourceress {stats['sourceress']['separations']}, "
            f"audioshake jobs {stats['audioshake']['jobs']}"
        )
        print(f"secrets found in outputs: {len(leaks)}")
        print(f"files outside the output: {len(stray)} {stray}")
        print(
            f"wall time: {report.seconds:.1f} s under chaos vs {clean:.1f} s clean "
            f"({report.seconds / clean:.1f}x)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
