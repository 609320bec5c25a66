"""Chaos runs: a batch against a faulty sandbox, killed at random points, rerun until done.

Used by the reliability test (small) and ``bench/chaos.py`` (large). The batch runs in a child
process (``python -m tests.support.chaos child ...``) so it can be killed for real with SIGKILL
at any point: mid-upload, mid-submit, mid-download. Each round resumes from the ledger.

Examples
--------
>>> from tests.support.chaos import run_until_done
>>> rounds = run_until_done("data/demo", ["sourceress"], "out/", env={...})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from stemkit.providers.files import sha256_file
from stemkit.separate.ledger import Ledger


@dataclass
class ChaosReport:
    """What a chaos run did and what it left."""

    rounds: int = 0
    kills: int = 0
    jobs: int = 0
    jobs_done: int = 0
    stems_verified: int = 0
    stems_bad: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: child processes that found the batch folder held by another one and stopped (exit 1)
    refused_busy: int = 0


def run_until_done(
    manifest: str | Path,
    providers: list[str],
    out: str | Path,
    *,
    env: dict[str, str],
    seed: int = 0,
    kill_after: tuple[float, float] = (0.5, 4),
    kill_rounds: int = 4,
    max_rounds: int = 12,
    round_timeout: float = 300,
    concurrent: int = 1,
) -> ChaosReport:
    """Run the separate phase in child processes; SIGKILL the first ``kill_rounds`` rounds at a
    random moment ``kill_after`` seconds after a job is in flight; then let rounds finish until
    every job is done (or ``max_rounds``). ``env`` carries the sandbox URL and credentials.
    With ``concurrent`` > 1, each round starts that many children on the same folder at once
    (one writer per batch: the others must stop with exit code 1, paying for nothing)."""
    rng = random.Random(seed)
    report = ChaosReport()
    t0 = time.monotonic()
    cmd = [
        sys.executable,
        "-m",
        "tests.support.chaos",
        "child",
        str(manifest),
        str(out),
        *providers,
    ]
    # the child imports this module as ``tests.support.chaos``: the repository on its path
    repo = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    child_env = {**os.environ, **env, "PYTHONPATH": path}
    for round_no in range(max_rounds):
        report.rounds += 1
        procs = [
            subprocess.Popen(
                cmd,
                env=child_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for _ in range(concurrent)
        ]
        killed = False
        if round_no < kill_rounds:
            # kill mid-work: once the round has started jobs, at a random moment after that
            _wait_for_work(Path(out), procs, timeout=round_timeout)
            killed = not _wait_all(procs, rng.uniform(*kill_after))
        else:
            killed = not _wait_all(procs, round_timeout)
        for p in procs:
            if killed and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            try:
                p.wait(timeout=round_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            report.refused_busy += p.returncode == 1
        if killed and round_no < kill_rounds:
            report.kills += 1
            continue
        if _all_done(Path(out), manifest, providers):
            break
    report.seconds = time.monotonic() - t0
    _verify(Path(out), report)
    return report


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for every child to exit; True if they all did."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _wait_for_work(out: Path, procs: list[subprocess.Popen], timeout: float) -> None:
    """Return once a child has a job in flight (or all have exited)."""
    deadline = time.monotonic() + timeout
    ledger = out / "ledger.sqlite"
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if ledger.exists():
            try:
                led = Ledger(out)
                states = {r["state"] for r in led.jobs()}
                led.close()
            except Exception:  # noqa: BLE001 - the child may be writing it right now
                states = set()
            if states & {"submitting", "submitted"}:
                return
        time.sleep(0.05)


def _all_done(out: Path, manifest, providers) -> bool:
    from stemkit.batchdir import BatchFolder
    from stemkit.separate.manifest import load_manifest

    tracks = load_manifest(manifest)
    return all(
        (BatchFolder(out).read_record(t.name, p) or {}).get("state") == "done"
        for t in tracks
        for p in providers
    )


def _verify(out: Path, report: ChaosReport) -> None:
    """Count jobs, done jobs, and stems whose file matches the ledger's checksum."""
    from stemkit.batchdir import BatchFolder

    ledger = Ledger(out)
    for row in ledger.jobs():
        report.jobs += 1
        rec = BatchFolder(out).read_record(row["track"], row["provider"]) or {}
        if rec.get("state") != "done":
            continue
        report.jobs_done += 1
        files = {f["stem"]: f for f in ledger.files(row["track"], row["provider"])}
        for stem in rec.get("stems", {}):
            f = files.get(stem)
            path = Path(f["path"]) if f else None
            if f and path.is_file() and sha256_file(path) == f["sha256"]:
                report.stems_verified += 1
            else:
                report.stems_bad.append(f"{row['track']}/{row['provider']}/{stem}")
    ledger.close()


def scan_for_secrets(root: str | Path, secrets: list[str]) -> list[str]:
    """Files under ``root`` whose bytes contain any of ``secrets`` (empty list: clean).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "log.txt").write_text("token=s3cr3t-value")
    >>> [pathlib.Path(p).name for p in scan_for_secrets(d, ["s3cr3t-value"])]
    ['log.txt']
    """
    hits = []
    needles = [s.encode() for s in secrets if s]
    for path in Path(root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in needles):
                hits.append(str(path))
    return hits


def _child(argv: list[str]) -> int:
    from stemkit.errors import BatchBusy
    from stemkit.separate.run import separate_batch

    manifest, out, *providers = argv
    try:
        table = separate_batch(manifest, providers, out, progress=False)
    except BatchBusy as exc:  # another child holds the folder: stop, paying for nothing
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(table["state"].value_counts().to_dict()))
    return 0 if set(table["state"]) == {"done"} else 3


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(_child(sys.argv[2:]))
    sys.exit("usage: python -m tests.support.chaos child MANIFEST OUT PROVIDER...")
