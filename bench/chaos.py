"""The reliability bench: a batch against a faulty sandbox, killed at random points and rerun
until done. Prints what survived: jobs done, stems verified, duplicate submissions counted by
the sandbox, faults injected, secrets found in outputs, files written outside the output folder.

    .venv/bin/python bench/chaos.py [--tracks 5] [--seed 1] [--kills 6] [--concurrent 2]
                                    [--drop-creates] [--drop 0.05] [--providers sourceress ...]
                                    [--sandbox-restarts 3]

Each round starts ``--concurrent`` batches on the same folder at once (one writer per batch:
the others stop, paying for nothing).

``--sandbox-restarts N`` runs the faulty sandbox as ``stemkit serve --state DIR`` (its faults
from a ``[faults]`` config file, the demo credentials) and, while the batches are being killed
and rerun, SIGKILLs it N times at random moments and starts it again on the same port and
folder: a job it had must survive, a create whose answer died with it is ``ambiguous``
(reported, not resent), nothing may be submitted twice. Faults injected are summed over the
sandbox's lives (read just before each kill); secrets scanned for are then its keys.

``--drop-creates`` drops the answers of job-creating calls too: the legacy APIs then leave
such jobs ambiguous (reported, never resubmitted), AudioShake's Tasks API finds them again by
their submission key (0 ambiguous expected for ``audioshake-tasks``).

Baseline for orientation: the same batch without faults and kills (its wall time).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager, suppress
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, from the repo

from stemkit.batchdir import BatchFolder  # noqa: E402
from stemkit.sandbox import SandboxConfig, SandboxServer  # noqa: E402
from stemkit.sandbox.faults import CREATE_ROUTES, Faults  # noqa: E402
from stemkit.sandbox.server import admin_get, free_port  # noqa: E402
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


#: the demo credentials of `stemkit serve` (the restarted sandbox's)
DEMO_ENV = {
    "STEMKIT_SOURCERESS_USERNAME": "demo",
    "STEMKIT_SOURCERESS_PASSWORD": "demo",
    "STEMKIT_AUDIOSHAKE_TOKEN": "demo-token",
    "STEMKIT_LOOM_KEY": "demo",
    "STEMKIT_LOOM_SECRET": "demo",
    "STEMKIT_AUDIOSHAKE_TASKS_KEY": "demo-key",
}


class RestartingSandbox:
    """``stemkit serve --state`` in a child process, SIGKILLed and restarted ``restarts``
    times, at random moments ``every`` seconds apart, by a background thread."""

    def __init__(self, work: Path, faults: dict, restarts: int, seed: int, every=(2.0, 6.0)):
        self.state = work / "sb-state"
        self.config = work / "faults.toml"
        lines = ["[faults]"] + [f"{k} = {str(v).lower() if isinstance(v, bool) else v}"
                                for k, v in faults.items()]  # fmt: skip
        self.config.write_text("\n".join(lines) + "\n")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.restarts, self.kills, self.every = restarts, 0, every
        self.rng = random.Random(seed)
        self.injected: Counter = Counter()
        self.downtime = 0.0
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.key = ""

    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "stemkit.cli", "serve", "--state", str(self.state)]
        cmd += ["--port", str(self.port), "--workers", "2", "--config", str(self.config)]
        self._proc = subprocess.Popen(
            [*cmd, "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{self.url}/_sandbox/stats", timeout=1)
                break
            except requests.ConnectionError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("stemkit serve --state did not start") from None
                time.sleep(0.05)
        self.key = (self.state / "admin.key").read_text().strip()

    def _kill(self) -> None:
        with suppress(requests.RequestException):  # the faults of this life, before it ends
            self.injected.update(self.stats()["injected"])
        os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()

    def _loop(self) -> None:
        for _ in range(self.restarts):
            if self._stop.wait(self.rng.uniform(*self.every)):
                return
            t0 = time.monotonic()
            self._kill()
            self.kills += 1
            self._spawn()
            self.downtime += time.monotonic() - t0

    def stats(self) -> dict:
        return admin_get(self.url, "stats", self.key)

    def settle(self) -> None:
        """No more restarts (the batches are done): wait for one under way to finish."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> RestartingSandbox:
        self._spawn()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.settle()
        if self._proc is not None and self._proc.poll() is None:
            self._kill()


@contextmanager
def chaos_sandbox(work: Path, faults: Faults, fault_rates: dict, args):
    """The faulty sandbox: in-process, or restarting (``--sandbox-restarts``); yields it and
    the environment of its clients."""
    if not args.sandbox_restarts:
        with sandbox(work / "sb-chaos", faults) as server:
            yield server, env(server.url)
        return
    with RestartingSandbox(work, fault_rates, args.sandbox_restarts, args.seed) as server:
        yield server, {**env(server.url), **DEMO_ENV}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--drop-creates", action="store_true", help="drop create answers too")
    ap.add_argument("--drop", type=float, default=0.05, help="rate of dropped connections")
    ap.add_argument("--providers", nargs="+", default=PROVIDERS)
    ap.add_argument("--concurrent", type=int, default=2, help="batches per round, one folder")
    ap.add_argument(
        "--sandbox-restarts", type=int, default=0, help="SIGKILL + restart serve --state N times"
    )
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
        rates = {
            "seed": args.seed,
            "error_5xx": 0.10,
            "drop": args.drop,
            "token_expiry": 0.03,
            "url_expiry": 0.05,
            "rate_429": 0.02,
            "retry_after": 0.2,
            "malformed": 0.02,
            "job_failure": 0.03,
            "drop_creates": args.drop_creates,
        }
        faults = Faults(**rates)
        out_root = work / "chaos"
        out_root.mkdir()
        with chaos_sandbox(work, faults, rates, args) as (server, client_env):
            before = set(os.listdir(work))
            report = run_until_done(
                manifest,
                providers,
                out_root / "out",
                env=client_env,
                seed=args.seed,
                kill_after=(0.0, 2.0),
                kill_rounds=args.kills,
                max_rounds=args.kills + 10,
                concurrent=args.concurrent,
            )
            restarted = isinstance(server, RestartingSandbox)
            if restarted:
                server.settle()
            stats = server.stats()
            if restarted:  # the faults of every life of the sandbox
                stats["injected"] = dict(server.injected + Counter(stats["injected"]))
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
        secrets = (
            [server.key, (server.state / "signing.key").read_text().strip()]
            if (restarted)
            else list(SECRETS.values())
        )
        leaks = scan_for_secrets(out_root, secrets)
        stray = sorted(set(os.listdir(work)) - before) + sorted(set(os.listdir(out_root)) - {"out"})
        print(f"{args.tracks} tracks x {len(providers)} providers, seed {args.seed}")
        print(f"faults injected:          {dict(stats['injected'])}")
        print(f"rounds / kills:           {report.rounds} / {report.kills}")
        if restarted:
            print(
                f"sandbox restarts:         {server.kills} (kill -9 of serve --state, "
                f"{server.downtime:.1f} s down in all)"
            )
        print(
            f"concurrent batches:       {args.concurrent} per round, "
            f"{report.refused_busy} refused as busy"
        )
        print(f"jobs done:                {report.jobs_done} of {report.jobs}")
        states = Ledger(out_root / "out").counts()
        print(f"ledger states:            {states} (ambiguous: killed mid-create, not resent)")
        print(f"stems verified (sha256):  {report.stems_verified}, bad: {report.stems_bad}")
        print(f"duplicate submissions:    {stats['duplicates']} {stats['duplicates_by_api']}")
        if not restarted:  # per route: known in-process only
            print(f"create answers dropped:   {lost} (drop_creates={args.drop_creates})")
        print(f"ambiguous jobs:           {ambiguous}")
        print(f"lost jobs (404):          {states.get('lost', 0)}")
        print(f"reconciled after a kill:  {reconciled} (in the last round's records)")
        print(
            f"separations submitted:    sourceress {stats['sourceress']['separations']}, "
            f"audioshake jobs {stats['audioshake']['jobs']}, "
            f"audioshake tasks {stats['audioshake_tasks']['tasks']}"
        )
        scanned = "the sandbox's keys" if restarted else "credentials"
        print(f"secrets found in outputs: {len(leaks)} ({scanned})")
        print(f"files outside the output: {len(stray)} {stray}")
        print(
            f"wall time: {report.seconds:.1f} s under chaos vs {clean:.1f} s clean "
            f"({report.seconds / clean:.1f}x)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
