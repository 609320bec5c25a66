"""The sandbox's durable state (issue 16, item 1): ``stemkit serve --state DIR`` killed with
SIGKILL and restarted keeps every job, token and signed URL; a batch resumes across it without
a duplicate submission; ``stemkit batch``'s own sandbox resumes after the batch was killed.
And the ``/_sandbox`` routes need the admin key (item 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from stemkit.sandbox.server import admin_get, free_port

ROOT = Path(__file__).resolve().parent.parent
#: the default (demo) credentials of `stemkit serve`, and quick polls
ENV = {
    "STEMKIT_SOURCERESS_USERNAME": "demo",
    "STEMKIT_SOURCERESS_PASSWORD": "demo",
    "STEMKIT_AUDIOSHAKE_TOKEN": "demo-token",
    "STEMKIT_AUDIOSHAKE_TASKS_KEY": "demo-key",
    "STEMKIT_LOOM_KEY": "demo",
    "STEMKIT_LOOM_SECRET": "demo",
    "STEMKIT_SOURCERESS_POLL_INTERVAL": "0.05",
    "STEMKIT_SOURCERESS_POLL_MAX": "0.3",
    "STEMKIT_AUDIOSHAKE_POLL_INTERVAL": "0.05",
    "STEMKIT_AUDIOSHAKE_POLL_MAX": "0.3",
    "STEMKIT_AUDIOSHAKE_TASKS_POLL_INTERVAL": "0.05",
    "STEMKIT_AUDIOSHAKE_TASKS_POLL_MAX": "0.3",
    "STEMKIT_LOOM_POLL_INTERVAL": "0.05",
}
PROVIDERS = ["sourceress", "audioshake", "audioshake-tasks"]


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **ENV, **extra, "PYTHONPATH": path}


class Serve:
    """``stemkit serve --state DIR --port P`` in a child process, killed for real."""

    def __init__(self, state: Path, port: int, *args: str) -> None:
        self.state, self.port = state, port
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "stemkit.cli", "serve", "--state", str(state)]
        cmd += ["--port", str(port), "--log-level", "warning", *args]
        self.proc = subprocess.Popen(
            cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.proc.communicate()[0]
            try:
                requests.get(f"{self.url}/_sandbox/stats", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "stemkit serve did not start"
                time.sleep(0.1)
        self.key = (state / "admin.key").read_text().strip()

    def stats(self) -> dict:
        return admin_get(self.url, "stats", self.key)

    def kill(self) -> str:
        """SIGKILL (no shutdown of any kind); the output it printed."""
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.communicate(timeout=30)[0]

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.kill()


def _ledger_states(out: Path) -> list[str]:
    from stemkit.separate.ledger import Ledger

    try:
        led = Ledger(out)
        states = [r["state"] for r in led.jobs()]
        led.close()
        return states
    except Exception:  # noqa: BLE001 - the batch may be writing it right now
        return []


def _chaos_child(manifest: Path, out: Path, url: str) -> subprocess.Popen:
    """The separate phase of a batch in its own process (``tests.support.chaos child``)."""
    cmd = [sys.executable, "-m", "tests.support.chaos", "child", str(manifest), str(out)]
    return subprocess.Popen(
        [*cmd, *PROVIDERS],
        env=_env(STEMKIT_SANDBOX_URL=url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_batch_survives_a_kill_9_of_its_sandbox_without_duplicates(tmp_path, track_dir):
    """``stemkit serve --state`` is SIGKILLed while every job is submitted and most are still
    queued; restarted on the same port and folder; the batch rerun: every job done, nothing
    submitted twice, nothing lost."""
    from stemkit.separate.ledger import Ledger

    state, out, port = tmp_path / "state", tmp_path / "out", free_port()
    with Serve(state, port, "--workers", "1", "--processing-delay", "1") as first:
        child = _chaos_child(track_dir, out, first.url)
        deadline = time.monotonic() + 120
        while True:  # every job created (none mid-create), some still in flight
            states = _ledger_states(out)
            if len(states) == 6 and not {"submitting", "creating"} & set(states):
                break
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.02)
        before = first.stats()
        first.kill()
    at_kill = states
    assert at_kill.count("submitted") >= 3, at_kill  # in flight when the server died
    with Serve(state, port) as second:
        child.communicate(timeout=240)  # the first run ends (done, or left submitted)
        rerun = _chaos_child(track_dir, out, second.url)
        _, err = rerun.communicate(timeout=240)
        assert rerun.returncode == 0, err
        after = second.stats()
    assert {r["state"] for r in Ledger(out).jobs()} == {"done"}
    assert after["duplicates"] == 0, after["duplicates_by_api"]
    # nothing was submitted again after the restart: the counts of the first life
    assert after["sourceress"]["separations"] == before["sourceress"]["separations"] == 2
    assert after["audioshake"]["jobs"] == before["audioshake"]["jobs"]
    assert after["audioshake_tasks"]["tasks"] == before["audioshake_tasks"]["tasks"] == 2


def test_queued_jobs_tokens_and_signed_urls_survive_a_kill_9(tmp_path, track_dir, monkeypatch):
    """Jobs of all four APIs queued behind a slow one when the server is SIGKILLed finish
    after the restart; the Sourceress token and a signed URL issued before still work."""
    from stemkit.providers import connect

    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    state, port = tmp_path / "state", free_port()
    monkeypatch.setenv("STEMKIT_SANDBOX_URL", f"http://127.0.0.1:{port}")
    mix = track_dir / "alpha" / "mixture.wav"
    clients = {p: connect(p) for p in [*PROVIDERS, "loom"]}
    with Serve(state, port, "--workers", "1", "--processing-delay", "3") as first:
        jobs = {
            p: c.submit(mix, track="alpha", **({} if p == "loom" else {"stems": ["vocals"]}))
            for p, c in clients.items()
        }
        asset = requests.post(
            f"{first.url}/audioshake/upload",
            headers={"Authorization": "Bearer demo-token"},
            files={"file": ("alpha.wav", mix.read_bytes(), "audio/wav")},
            timeout=30,
        ).json()
        queued = {p: c.status(jobs[p]).state for p, c in clients.items()}
        before = first.stats()
        first.kill()
    # one job runs (3 s), the other three wait for the one worker
    assert sum(s not in ("done", "completed") for s in queued.values()) >= 3, queued
    with Serve(state, port) as second:
        for p, c in clients.items():
            final = c.wait(jobs[p], timeout=120)
            files = c.fetch(jobs[p], final, tmp_path / p)
            assert files and all(Path(f).stat().st_size > 0 for f in files.values()), p
        link = requests.get(asset["link"], timeout=30)  # signed before the kill
        after = second.stats()
    assert link.status_code == 200 and link.content == mix.read_bytes()
    assert after["sourceress"]["auth"] == before["sourceress"]["auth"] == 1  # same token
    assert after["duplicates"] == 0
    for api, count in (("sourceress", "separations"), ("audioshake", "jobs"), ("loom", "jobs")):
        assert after[api][count] == before[api][count] == 1, (api, after[api])
    assert after["audioshake_tasks"]["tasks"] == 1


def test_one_sandbox_per_state_folder_and_admin_routes_need_the_key(tmp_path):
    """A second ``serve`` on a held folder exits 1 with a clear message; ``/_sandbox/*``
    answer 401 without the admin key; the keys are files of mode 0600 in a folder of mode
    0700, never printed."""
    state, port = tmp_path / "state", free_port()
    with Serve(state, port) as first:
        second = subprocess.run(
            [sys.executable, "-m", "stemkit.cli", "serve", "--state", str(state)]
            + ["--port", str(free_port())],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1, second
        assert "in use by another sandbox (pid" in second.stderr, second.stderr
        assert str(state.resolve()) in second.stderr and "Traceback" not in second.stderr
        for path in ("stats", "personas"):
            bare = requests.get(f"{first.url}/_sandbox/{path}", timeout=10)
            wrong = requests.get(
                f"{first.url}/_sandbox/{path}", headers={"X-Sandbox-Admin-Key": "x"}, timeout=10
            )
            assert (bare.status_code, wrong.status_code) == (401, 401)
            assert "admin key" in bare.json()["message"]
        assert first.stats()["duplicates"] == 0
        printed = first.kill()
    assert "admin key of /_sandbox/stats and /_sandbox/personas" in printed
    assert first.key not in printed and len(first.key) >= 32
    for name in ("admin.key", "signing.key"):
        assert (state / name).stat().st_mode & 0o777 == 0o600, name
    # the records (callback URLs with webhook tokens) are for the sandbox's user only
    assert state.stat().st_mode & 0o777 == 0o700


@pytest.mark.slow  # two end-to-end `stemkit batch` runs (about 70-90 s here)
def test_a_killed_stemkit_batch_resumes_with_its_own_sandbox(tmp_path, track_dir):
    """``stemkit batch`` (in-process sandbox) SIGKILLed, kernel and all, while its jobs are
    submitted: the rerun finds them in ``OUT/.sandbox`` and resumes them, submitting nothing
    again; the sandbox's state is not published."""
    import shutil

    import psutil

    from stemkit.batchdir import BatchFolder
    from stemkit.publish import publish
    from stemkit.sandbox import SandboxServer
    from stemkit.separate.ledger import Ledger
    from tests.support.chaos import scan_for_secrets

    out, one = tmp_path / "out", tmp_path / "one"  # one track: the rerun analyses it too
    shutil.copytree(track_dir / "alpha", one / "alpha")
    cmd = [sys.executable, "-m", "stemkit.cli", "batch", str(one), "--out", str(out)]
    cmd += ["-p", "sourceress", "--sandbox", "--no-transcribe", "--workers", "1"]
    env = _env(STEMKIT_SANDBOX_URL=f"http://127.0.0.1:{free_port()}")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while True:  # the job created, still running at the vendor
        if _ledger_states(out) == ["submitted"]:
            break
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.01)
    family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    for pid in family:  # the batch, its in-process sandbox and the notebook kernel
        os.kill(pid, signal.SIGKILL)
    first_url = proc.communicate()[0].decode().split("sandbox running at ")[1].split()[0]
    assert [r["state"] for r in Ledger(out).jobs()] == ["submitted"]

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 jobs done, 0 failed" in rerun.stdout, rerun.stdout
    assert f"sandbox running at {first_url}" in rerun.stdout  # the same port again
    record = BatchFolder(out).read_record("alpha", "sourceress")
    assert "resumed, not submitted again" in record.get("resumed", ""), record
    sandbox_dir = BatchFolder(out).sandbox_dir
    with SandboxServer(state_dir=sandbox_dir, set_env=False) as sandbox:
        stats = sandbox.stats()
    assert stats["sourceress"]["separations"] == 1, stats["sourceress"]
    assert stats["duplicates"] == 0
    keys = [(sandbox_dir / f"{k}.key").read_text().strip() for k in ("signing", "admin")]
    published = publish(out, str(tmp_path / "shared"))
    assert published and not any(".sandbox" in p for p in published)
    assert scan_for_secrets(tmp_path / "shared", keys) == []
    outside = [p for p in scan_for_secrets(out, keys) if ".sandbox" not in Path(p).parts]
    assert outside == []  # the keys are in the sandbox's folder only: no notebook, no log


def test_a_batch_reads_a_running_sandboxs_personas_with_the_admin_key(sandbox, monkeypatch):
    """``stemkit batch`` against a sandbox it did not start records the personas only with
    ``$STEMKIT_SANDBOX_ADMIN_KEY``; without it, None (and a warning), never a 401 body."""
    from stemkit.cli import _personas

    monkeypatch.setenv("STEMKIT_SANDBOX_URL", sandbox.url)
    monkeypatch.delenv("STEMKIT_SANDBOX_ADMIN_KEY", raising=False)
    assert _personas(None, None) is None
    monkeypatch.setenv("STEMKIT_SANDBOX_ADMIN_KEY", sandbox.config.admin_key)
    assert _personas(None, None) == sandbox.config.personas.describe()


def test_a_second_stemkit_batch_does_not_share_the_first_ones_sandbox(tmp_path, track_dir):
    """While one ``stemkit batch`` holds its folder's sandbox, a second one on the same folder
    exits 1 at once with the folder's busy message (it never opens the sandbox's state)."""
    out = tmp_path / "busy"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from stemkit.batchdir import BatchFolder\n"
            f"with BatchFolder({str(out)!r}).lock('sandbox'):\n"
            "    print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.run(
            [sys.executable, "-m", "stemkit.cli", "batch", str(track_dir), "--out", str(out)]
            + ["--sandbox", "--no-transcribe"],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(),
        )
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1, proc
    assert "another stemkit process (pid" in proc.stderr and "sandbox phase" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / ".sandbox").exists()
