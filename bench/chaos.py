"""The reliability bench: a batch against a faulty sandbox, killed at random points and rerun
until done. Prints what survived: jobs done, stems verified, duplicate submissions counted by
the sandbox, faults injected, secrets found in outputs, files written outside the output folder.

    .venv/bin/python bench/chaos.py [--tracks 5] [--seed 1] [--kills 6] [--concurrent 2]
                                    [--drop-creates] [--drop 0.05] [--providers sourceress ...]

Each round starts ``--concurrent`` batches on the same folder at once (one writer per batch:
the others stop, paying for nothing).

``--drop-creates`` drops the answers of job-creating calls too: the legacy APIs then leave
such jobs ambiguous (reported, never resubmitted), AudioShake's Tasks API finds them again by
their submission key (0 ambiguous expected for ``audioshake-tasks``).

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, from the repo

from stemkit.batchdir import BatchFolder  # noqa: E402
from stemkit.sandbox import SandboxConfig, SandboxServer  # noqa: E402
from stemkit.sandbox.faults import CREATE_ROUTES, Faults  # noqa: E402
from stemkit.separate.ledger import Ledger  # noqa: E402
from stemkit.separate.run import separate_batch  # noqa: E402
from tests.support.chaos import run_until_done, scan_for_secrets  # noqa: E402

SECRETS = {
    "password": "bench-pass-71d0",
    "token": "bench-token-4c2e",
    "key": "bench-key-9a",
    "secret": "bench-secret-e55f",
    "api_key": "bench-apikey-2b7d",
}
PROVIDERS = ["sourceress", "audioshake", "audioshake-tasks"]


def env(url: str) -> dict[str, str]:
    return {
        "STEMKIT_SANDBOX_URL": url,
        "STEMKIT_SOURCERESS_USERNAME": "bench",
        "STEMKIT_SOURCERESS_PASSWORD": SECRETS["password"],
        "STEMKIT_AUDIOSHAKE_TOKEN": SECRETS["token"],
        "STEMKIT_LOOM_KEY": SECRETS["key"],
        "STEMKIT_LOOM_SECRET": SECRETS["secret"],
        "STEMKIT_AUDIOSHAKE_TASKS_KEY": SECRETS["api_key"],
        "STEMKIT_AUDIOSHAKE_TASKS_POLL_INTERVAL": "0.1",
        "STEMKIT_AUDIOSHAKE_TASKS_POLL_MAX": "0.5",
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
            audioshake_api_keys={SECRETS["api_key"]: "bench"},
            faults=faults,
        ),
        set_env=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--drop-creates", action="store_true", help="drop create answers too")
    ap.add_argument("--drop", type=float, default=0.05, help="rate of dropped connections")
    ap.add_argument("--providers", nargs="+", default=PROVIDERS)
    ap.add_argument("--concurrent", type=int, default=2)
    args = ap.parse_args()
    providers = args.providers
    from stemkit.demo.synth import DEMO_TRACKS, write_track

    work = Path(tempfile.mkdtemp(prefix="stemkit-chaos-"))
    manifest = work / "tracks"
    for spec in DEMO_TRACKS[: args.tracks]:
        write_track(spec, manifest, sr=22050)
    try:
        with sandbox(work / "sb-clean", Faults()) as server:
            os.environ.update(env(server.url))
            t0 = time.perf_counter()
            separate_batch(manifest, providers, work / "clean", progress=False)
            clean = time.perf_counter() - t0
        faults = Faults(
            seed=args.seed,
            error_5xx=0.10,
            drop=args.drop,
            token_expiry=0.03,
            url_expiry=0.05,
            rate_429=0.02,
            retry_after=0.2,
            malformed=0.02,
            job_failure=0.03,
            drop_creates=args.drop_creates,
        )
        out_root = work / "chaos"
        out_root.mkdir()
        with sandbox(work / "sb-chaos", faults) as server:
            before = set(os.listdir(work))
            report = run_until_done(
                manifest,
                providers,
                out_root / "out",
                env=env(server.url),
                seed=args.seed,
                kill_after=(0.0, 2.0),
                kill_rounds=args.kills,
                max_rounds=args.kills + 10,
                concurrent=args.concurrent,
            )
            stats = server.stats()
            lost = {
                key: n for (fault, key), n in faults.injected_at.items()
                if fault == "drop" and key.startswith("POST ")
                and CREATE_ROUTES.search(key.split(" ", 1)[1])
            }  # fmt: skip
        ambiguous: dict[str, int] = {p: 0 for p in providers}
        reconciled: list[str] = []  # lost creates of killed runs, looked up on the next
        for row in Ledger(out_root / "out").jobs():
            if row["state"] == "ambiguous":
                ambiguous[row["provider"]] += 1
            rec = BatchFolder(out_root / "out").read_record(row["track"], row["provider"]) or {}
            if rec.get("reconciled"):
                reconciled.append(rec["reconciled"].split(":")[0])
        leaks = scan_for_secrets(out_root, list(SECRETS.values()))
        stray = sorted(set(os.listdir(work)) - before) + sorted(set(os.listdir(out_root)) - {"out"})
        print(f"{args.tracks} tracks x {len(providers)} providers, seed {args.seed}")
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
        print(f"duplicate submissions:    {stats['duplicates']} {stats['duplicates_by_api']}")
        print(f"create answers dropped:   {lost} (drop_creates={args.drop_creates})")
        print(f"ambiguous jobs:           {ambiguous}")
        print(f"reconciled after a kill:  {reconciled} (in the last round's records)")
        print(
            f"separations submitted:    sourceress {stats['sourceress']['separations']}, "
            f"audioshake jobs {stats['audioshake']['jobs']}, "
            f"audioshake tasks {stats['audioshake_tasks']['tasks']}"
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
