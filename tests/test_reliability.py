"""Reliability and security of a batch folder and of the sandbox (issue 16): one writer per
batch, safe track names, atomic record files, redaction everywhere, bounded inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_faults import env_for, faulty, stats

ROOT = Path(__file__).resolve().parent.parent


def _child(manifest: Path, out: Path, env: dict[str, str], *providers: str) -> subprocess.Popen:
    """A real separate phase in its own process (``python -m tests.support.chaos child``)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.chaos", "child", str(manifest), str(out), *providers],
        env={**os.environ, **env, "PYTHONPATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- 3. one writer per batch -----------------------------------------------------------------


def test_two_processes_on_one_batch_folder_never_submit_twice(tmp_path, track_dir):
    """Two separate phases started at once on one folder: 0 duplicate submissions; the one
    that did not get the folder says so and names the folder."""
    with faulty(tmp_path, seed=1) as server:
        server.config.processing_delay = 1.0
        env = env_for(server)
        out = tmp_path / "out"
        procs = [_child(track_dir, out, env, "sourceress") for _ in range(2)]
        results = [(*p.communicate(timeout=240), p.returncode) for p in procs]
        results = [(code, out_, err) for out_, err, code in results]
        s = stats(server)
    assert s["duplicates"] == 0, (s, results)
    assert s["sourceress"]["separations"] == 2, s
    codes = sorted(r[0] for r in results)
    assert codes[0] == 0, results
    if codes[1] != 0:  # the second one refused the folder: a clear message, no traceback
        loser = next(r for r in results if r[0] != 0)
        assert "another stemkit process" in loser[2] and str(out.resolve()) in loser[2], loser
    leftovers = [p.name for p in out.rglob("*.partial")]
    assert leftovers == []


def test_second_stemkit_batch_on_a_busy_folder_exits_with_a_clear_message(tmp_path, track_dir):
    """``stemkit batch`` while another process holds the folder: exit 1 at once, the message
    names the folder and the holder; nothing is submitted."""
    from stemkit.batchdir import BatchFolder

    out = tmp_path / "busy"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from stemkit.batchdir import BatchFolder\n"
            f"with BatchFolder({str(out)!r}).lock('batch'):\n"
            "    print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "stemkit.cli",
                "batch",
                str(track_dir),
                "--out",
                str(out),
                "--no-sandbox",
                "--no-transcribe",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1, proc
    assert "another stemkit process (pid" in proc.stderr and str(out.resolve()) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not BatchFolder(out).exists()  # the second run wrote nothing


# -- 10. track names are not paths -----------------------------------------------------------


def _csv(tmp_path, rows: list[str], *, bom: bool = False, name: str = "m.csv") -> Path:
    path = tmp_path / name
    text = "track,mixture\n" + "".join(f"{r}\n" for r in rows)
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


@pytest.mark.parametrize(
    "name",
    [
        "/tmp/x",
        "../..",
        "..",
        "a/../../b",
        "a/b",
        "\\\\server\\share",
        "C:evil",
        ".hidden",
        "a\x00b",
    ],
)
def test_track_names_that_are_paths_are_refused_naming_the_row(tmp_path, name):
    from stemkit.errors import ConfigError
    from stemkit.separate.manifest import load_manifest

    manifest = _csv(tmp_path, ["ok,mix.wav", f'"{name}",mix.wav'])
    with pytest.raises(ConfigError) as info:
        load_manifest(manifest)
    assert "line 3" in str(info.value) and "track" in str(info.value)


def test_names_that_share_a_folder_are_duplicates(tmp_path):
    from stemkit.errors import ConfigError
    from stemkit.separate.manifest import load_manifest

    manifest = _csv(tmp_path, ["a,mix.wav", "a/,mix.wav", "./a,mix.wav"])
    with pytest.raises(ConfigError, match="line 3.*line 2|same folder"):
        load_manifest(manifest)


def test_excel_csv_with_a_bom_is_read(tmp_path):
    from stemkit.separate.manifest import load_manifest

    manifest = _csv(tmp_path, ["song #1?,mix.wav"], bom=True)
    tracks = load_manifest(manifest)
    assert [t.name for t in tracks] == ["song #1?"]


def test_batch_folder_refuses_a_track_name_that_leaves_it(tmp_path):
    from stemkit.batchdir import BatchFolder
    from stemkit.errors import StemkitError

    batch = BatchFolder(tmp_path / "b")
    for bad in ("../x", "/etc", "a/b", ".."):
        with pytest.raises(StemkitError, match="track name"):
            batch.job_dir(bad, "local")
    assert batch.job_dir("song #1?", "local").parent.name == "song #1?"


def test_signed_links_of_files_with_query_and_fragment_characters_work(sandbox, tmp_path):
    """A file named ``mix #1?.wav`` is uploaded and its signed link downloads it."""
    import requests
    import soundfile as sf

    from stemkit.providers import connect
    from tests.conftest import music

    path = tmp_path / "mix #1?.wav"
    sf.write(path, music(seconds=1.0)["mixture"].T, 22050)
    asset = connect("audioshake").upload_file(path)
    resp = requests.get(asset.link, timeout=30)
    assert resp.status_code == 200, (resp.status_code, resp.text[:200])
    assert resp.content == path.read_bytes()


# -- 11. records survive kill -9 ----------------------------------------------------------------


def test_a_record_cut_short_by_a_kill_is_recomputed_not_fatal(tmp_path, track_dir):
    """``bracket.json`` half written (what ``kill -9`` during an in-place write leaves) must
    not fail the track on every rerun: it is scored again and rewritten whole."""
    import json

    from stemkit.analyze import track as analysis
    from stemkit.batchdir import BatchFolder
    from stemkit.separate.run import separate_batch

    out = tmp_path / "b"
    table = separate_batch(track_dir, ["local"], out, progress=False)
    assert set(table["state"]) == {"done"}
    batch = BatchFolder(out)
    track = batch.tracks[0]
    batch.bracket_path(track).parent.mkdir(parents=True, exist_ok=True)
    batch.bracket_path(track).write_text('{"stamp": "abc", "rows": [{"provi')
    result = analysis.analyze_track(out, track, figures=False)
    assert result.bracket == "computed"
    assert json.loads(batch.bracket_path(track).read_text())["rows"]
    assert not list(out.rglob("*.partial"))


def test_atomic_write_leaves_the_old_file_or_the_new_one_under_kill_9(tmp_path):
    """A writer SIGKILLed at random moments while rewriting a large record: every time, the
    record parses (old or new content), and the only leftovers are hidden ``.partial`` files
    that readers never see."""
    import json
    import random
    import signal
    import time

    path = tmp_path / "batch.json"
    code = (
        "import sys\nfrom stemkit.atomic import write_json\n"
        "i = 0\nwhile True:\n"
        f"    write_json({str(path)!r}, {{'i': i, 'pad': ['x' * 100] * 20000}})\n"
        "    i += 1\n"
        "    if i == 1: print('wrote', flush=True)\n"
    )
    rng = random.Random(3)
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.stdout.readline().strip() == "wrote"
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(json.loads(path.read_text())["pad"]) == 20000


# -- 8. no secret past the redaction ------------------------------------------------------------


class _Capture(__import__("logging").Handler):
    """Every formatted line any logger emits (what a console or a notebook would show)."""

    def __init__(self) -> None:
        super().__init__(level=0)
        self.setFormatter(__import__("logging").Formatter("%(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record) -> None:
        self.lines.append(self.format(record))


@pytest.fixture()
def every_log():
    import logging

    handler = _Capture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def test_urllib3_retry_warnings_carry_no_signature(every_log):
    """A connection retry logs the full URL (urllib3's own warning): the signature and any
    registered secret are gone before any handler sees it."""
    import requests

    from stemkit.http import make_session, register_secret
    from stemkit.sandbox.server import free_port

    register_secret("sec-retry-77aa1")
    url = f"http://127.0.0.1:{free_port()}/f/a.wav?expires=1&sig=0123456789abcdef&k=sec-retry-77aa1"
    with pytest.raises(requests.ConnectionError):
        make_session(timeout=2, retries=1, backoff=0).get(url)
    text = "\n".join(every_log.lines)
    assert "Retrying" in text  # the warning was emitted
    assert "0123456789abcdef" not in text and "sec-retry-77aa1" not in text, text


def test_tracebacks_in_any_logger_are_redacted(every_log):
    import logging

    from stemkit.http import register_secret

    register_secret("tb-secret-9182")
    try:
        raise ValueError("upload to https://x/y?sig=ffee0011 failed with tb-secret-9182")
    except ValueError:
        logging.getLogger("some.library").exception("it broke for %s", "tb-secret-9182")
    text = "\n".join(every_log.lines)
    assert "Traceback" in text and "ValueError" in text
    assert "tb-secret-9182" not in text and "ffee0011" not in text, text


def test_hints_and_short_secrets_are_redacted():
    from stemkit.errors import ProviderError
    from stemkit.http import redact, register_secret

    register_secret("q7Zx")  # a 4-character password is still a password
    err = ProviderError("refused", hint="the password q7Zx was refused; see ?token=abc123")
    assert "q7Zx" not in str(err) and "abc123" not in str(err)
    assert all("q7Zx" not in str(v) for v in err.to_dict().values())
    assert redact("user demo, password q7Zx.") == "user demo, password ***."
    assert redact("a path /data/q7Zxyz/mix.wav") == "a path /data/q7Zxyz/mix.wav"


def test_sandbox_access_log_records_no_signature(tmp_path):
    """``stemkit serve`` at log level info prints an access line per request: without the
    signature of a signed link."""
    import time

    import requests

    from stemkit.sandbox.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stemkit.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "sb"),
            "--log-level",
            "info",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                requests.get(f"{url}/_sandbox/stats", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        r = requests.get(f"{url}/audioshake/storage/x.wav?expires=9999999999&sig=deadbeef4242")
        assert r.status_code == 403
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "/audioshake/storage/x.wav" in out, out  # the access line is there
    assert "deadbeef4242" not in out, out


# -- 9. credentials in a body never follow a redirect to another host -------------------------


@pytest.fixture()
def redirect_to_other_host():
    """A server on 127.0.0.1 that answers every POST with a 307 to ``localhost`` (another host
    name), where a second server records every body it receives."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[bytes] = []

    class Catch(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"token": "x", "expiry": 60}')

        def log_message(self, *args):
            pass

    catcher = ThreadingHTTPServer(("localhost", 0), Catch)

    class Redirect(Catch):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", f"http://localhost:{catcher.server_port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

    redirector = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    for srv in (catcher, redirector):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{redirector.server_port}", received
    finally:
        for srv in (catcher, redirector):
            srv.shutdown()
            srv.server_close()


def test_sourceress_password_does_not_follow_a_cross_host_redirect(redirect_to_other_host):
    from stemkit.errors import StemkitError
    from stemkit.providers import connect

    base, received = redirect_to_other_host
    client = connect(
        "sourceress", base_url=base, username="u1", password="redirect-pw-551", retries=0
    )
    with pytest.raises(StemkitError, match="redirect"):
        client.authenticate()
    assert received == []


def test_loom_key_and_secret_do_not_follow_a_cross_host_redirect(redirect_to_other_host, tmp_path):
    import soundfile as sf

    from stemkit.errors import StemkitError
    from stemkit.providers import connect
    from tests.conftest import music

    base, received = redirect_to_other_host
    path = tmp_path / "a.wav"
    sf.write(path, music(seconds=0.5)["mixture"].T, 22050)
    client = connect("loom", base_url=base, key="k1", secret="redirect-secret-8", retries=0)
    with pytest.raises(StemkitError, match="redirect"):
        client.upload_audio(path)
    assert received == []


# -- 6. one job's unexpected failure is that job's failed row -----------------------------------


def test_an_os_error_in_one_job_is_that_jobs_failed_row(tmp_path, track_dir):
    """A disk-level failure (here: the job's folder cannot be created, as with ENOSPC or a
    read-only folder) fails that job only; the other track is separated."""
    from stemkit.separate.run import separate_batch

    out = tmp_path / "b"
    (out / "stems" / "alpha").mkdir(parents=True)
    (out / "stems" / "alpha" / "local").write_text("a file where a folder must go")
    table = separate_batch(track_dir, ["local"], out, progress=False)
    rows = table.set_index("track")
    assert rows.loc["beta", "state"] == "done"
    assert rows.loc["alpha", "state"] == "failed"
    assert "local / alpha" in rows.loc["alpha", "error"], rows.loc["alpha", "error"]
    assert "Error" in rows.loc["alpha", "error"]  # says what happened (the OS error)


# -- 2. a targeted way out of ambiguous; --force only for what it names ------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stemkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
    )


def test_ambiguous_jobs_are_resolved_one_by_one(tmp_path, track_dir, monkeypatch):
    """Both jobs end ambiguous; ``jobs resolve --abandon`` settles one for good, ``--resubmit``
    submits the other again (and only it); ``--retry ambiguous`` is the batch-wide way."""
    from stemkit.batchdir import BatchFolder
    from stemkit.separate.ledger import Ledger
    from stemkit.separate.run import separate_batch

    with faulty(tmp_path, ambiguous=1.0) as server:
        for k, v in env_for(server).items():
            monkeypatch.setenv(k, v)
        out = tmp_path / "b"
        separate_batch(track_dir, ["sourceress"], out, progress=False)
        assert {r["state"] for r in Ledger(out).jobs()} == {"ambiguous"}
        hint = BatchFolder(out).read_record("alpha", "sourceress")["error"]
        assert "stemkit jobs resolve" in hint and "--resubmit" in hint
        server.config.faults.ambiguous = 0.0
        before = stats(server)["sourceress"]["separations"]

        r = _cli("jobs", "resolve", str(out), "alpha", "sourceress", "--abandon")
        assert r.returncode == 0, r.stderr
        r = _cli("jobs", "resolve", str(out), "beta", "sourceress", "--resubmit")
        assert r.returncode == 0, r.stderr
        table = separate_batch(track_dir, ["sourceress"], out, progress=False).set_index("track")
        assert table.loc["beta", "state"] == "done"
        assert (
            table.loc["alpha", "state"] == "failed" and "abandoned" in table.loc["alpha", "error"]
        )
        assert stats(server)["sourceress"]["separations"] == before + 1
        # abandoned stays abandoned on a plain rerun; --retry names the states to submit again
        separate_batch(track_dir, ["sourceress"], out, progress=False)
        assert stats(server)["sourceress"]["separations"] == before + 1
        table = separate_batch(track_dir, ["sourceress"], out, progress=False, retry=["abandoned"])
        assert set(table["state"]) == {"done"}
        assert stats(server)["sourceress"]["separations"] == before + 2
        # --force names what it pays for again: one track, not the batch
        separate_batch(track_dir, ["sourceress"], out, progress=False, force=["beta"])
        assert stats(server)["sourceress"]["separations"] == before + 3

        r = _cli("jobs", "resolve", str(out), "nosuch", "sourceress", "--abandon")
        assert r.returncode == 1 and "nosuch" in r.stderr


def test_a_failed_token_refresh_inside_a_create_is_not_ambiguous():
    """The login fails (HTTP 500 on /auth) before the paid call is sent: a plain error that a
    rerun may retry, not an ambiguous submission."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from stemkit.errors import AmbiguousSubmission, ProviderError
    from stemkit.providers import connect

    paths: list[str] = []

    class Vendor(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            paths.append(self.path)
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"message": "auth backend down"}')

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Vendor)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        client = connect(
            "sourceress",
            base_url=f"http://127.0.0.1:{srv.server_port}",
            username="u",
            password="pw-refresh-1234",
            retries=0,
        )
        with pytest.raises(ProviderError) as info:
            client.start_separation("upload-1", 6)
    finally:
        srv.shutdown()
        srv.server_close()
    assert not isinstance(info.value, AmbiguousSubmission), info.value
    assert paths == ["/auth/"]  # the paid call was never sent


# -- 4. transcription goes through the ledger ----------------------------------------------------


def _speech_batch(out: Path, track_dir: Path) -> None:
    from stemkit.separate.manifest import Track
    from stemkit.separate.run import write_batch_info

    tracks = [Track(n, track_dir / n / "mixture.wav", {}, "la la la") for n in ("alpha", "beta")]
    write_batch_info(out, tracks, [], profile=None, stems=None, fmt="wav")


def test_an_ambiguous_transcription_is_never_resubmitted_by_itself(
    tmp_path, track_dir, monkeypatch
):
    from stemkit.batchdir import BatchFolder
    from stemkit.separate.ledger import Ledger
    from stemkit.separate.transcribe import transcribe_batch

    with faulty(tmp_path, ambiguous=1.0) as server:
        for k, v in env_for(server).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("STEMKIT_LOOM_POLL_INTERVAL", "0.05")
        out = tmp_path / "b"
        _speech_batch(out, track_dir)
        table = transcribe_batch(out, progress=False)
        assert set(table["state"]) == {"failed"}
        assert {r["state"] for r in Ledger(out).jobs()} == {"ambiguous"}
        rec = BatchFolder(out).read_transcript_record("alpha", "mixture")
        assert rec["error_kind"] == "ambiguous"
        jobs = stats(server)["loom"]["jobs"]
        server.config.faults.ambiguous = 0.0
        transcribe_batch(out, progress=False)
        assert stats(server)["loom"]["jobs"] == jobs  # not paid twice
        table = transcribe_batch(out, progress=False, retry=["ambiguous"])
        assert set(table["state"]) == {"done"}
        assert stats(server)["loom"]["jobs"] == jobs + 2


def test_a_submitted_transcription_is_resumed_not_resubmitted(tmp_path, track_dir, monkeypatch):
    """A transcription whose wait timed out stays ``submitted``; the rerun picks up the same
    job."""
    from stemkit.separate.ledger import Ledger
    from stemkit.separate.transcribe import transcribe_batch

    with faulty(tmp_path) as server:
        for k, v in env_for(server).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("STEMKIT_LOOM_POLL_INTERVAL", "0.05")
        monkeypatch.setenv("STEMKIT_LOOM_JOB_TIMEOUT", "0.01")  # gives up at the first poll
        out = tmp_path / "b"
        _speech_batch(out, track_dir)
        table = transcribe_batch(out, progress=False)
        assert set(table["state"]) == {"failed"}
        assert {r["state"] for r in Ledger(out).jobs()} == {"submitted"}
        jobs = stats(server)["loom"]["jobs"]
        monkeypatch.setenv("STEMKIT_LOOM_JOB_TIMEOUT", "120")
        table = transcribe_batch(out, progress=False)
        assert set(table["state"]) == {"done"}, table
        assert stats(server)["loom"]["jobs"] == jobs


# -- 5. AudioShake: every stem's job is kept as it is created -----------------------------------


def _seed_failing_second_create() -> int:
    """A fault seed whose 503 spares the upload and the first job, and hits the second."""
    from stemkit.sandbox.faults import Faults

    for seed in range(1000):
        f = Faults(seed=seed, error_5xx=0.5)
        if (
            not f.roll("error_5xx", "POST /audioshake/upload/")
            and not f.roll("error_5xx", "POST /audioshake/job/")
            and f.roll("error_5xx", "POST /audioshake/job/")
        ):
            return seed
    raise AssertionError("no seed")


def test_audioshake_stem_jobs_created_before_a_failure_are_not_paid_again(
    tmp_path, track_dir, monkeypatch
):
    from stemkit.separate.manifest import load_manifest
    from stemkit.separate.run import separate_batch

    alpha = [t for t in load_manifest(track_dir) if t.name == "alpha"]
    with faulty(tmp_path, seed=_seed_failing_second_create(), error_5xx=0.5) as server:
        for k, v in env_for(server).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("STEMKIT_AUDIOSHAKE_RETRIES", "0")
        out = tmp_path / "b"
        table = separate_batch(alpha, ["audioshake"], out, progress=False)
        assert set(table["state"]) == {"failed"}, table
        assert stats(server)["audioshake"]["jobs"] == 1  # the first stem's job exists
        server.config.faults.error_5xx = 0.0
        table = separate_batch(alpha, ["audioshake"], out, progress=False)
        assert set(table["state"]) == {"done"}, table
        s = stats(server)
    assert s["audioshake"]["jobs"] == 2, s  # only the missing stem was created
    assert s["audioshake"]["uploads"] == 1, s  # and the asset was reused
    assert s["duplicates"] == 0


# -- 7. bounded inputs in the sandbox -----------------------------------------------------------

_LAUNCH = """
import sys, time
from stemkit.sandbox import SandboxConfig, SandboxServer
cfg = SandboxConfig(data_dir=sys.argv[1], loom_keys={"k-mem": "s-mem-123"},
                    audioshake_tokens={"t-mem-123": "c"})
server = SandboxServer(cfg, set_env=False).start()
print(server.url, flush=True)
time.sleep(900)
"""


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _multipart(fields: dict[str, str], megabytes: int):
    boundary = "stemkitboundary42"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )

    def body():
        yield head.encode()
        block = b"\0" * (1 << 20)
        for _ in range(megabytes):
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    return body(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_a_300_mb_upload_is_refused_413_with_the_servers_memory_flat(tmp_path):
    import http.client
    from urllib.parse import urlsplit

    import requests

    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCH, str(tmp_path / "sb")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        url = proc.stdout.readline().strip()
        before = _peak_rss_mb(proc.pid)
        # streamed (chunked, no length): refused once past the cap of 250 MB
        body, headers = _multipart({"key": "k-mem", "secret": "s-mem-123"}, 300)
        try:
            status = requests.post(
                f"{url}/loom/upload/audio", data=body, headers=headers
            ).status_code
        except requests.ConnectionError:  # the server closed the upload it refused
            status = 413
        # a declared length over the cap: 413 before a byte of the body is read
        host = urlsplit(url)
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        conn.putrequest("POST", "/loom/upload/audio")
        conn.putheader("Content-Type", headers["Content-Type"])
        conn.putheader("Content-Length", str(300 << 20))
        conn.endheaders()
        declared = conn.getresponse()
        after = _peak_rss_mb(proc.pid)
        stored = [p for p in (tmp_path / "sb").rglob("*") if p.is_file()]
    finally:
        proc.kill()
        proc.wait()
    assert status == 413
    assert declared.status == 413
    assert after - before < 60, (before, after)  # not the 300 MB
    assert stored == []


def test_json_bodies_are_capped(sandbox):
    import requests

    big = '{"username": "u", "password": "' + "x" * (2 << 20) + '"}'
    r = requests.post(
        f"{sandbox.url}/sourceress/auth/", data=big, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413, r.text[:200]


def test_decoded_audio_over_the_limit_fails_the_job_clearly(tmp_path, track_dir, monkeypatch):
    from stemkit.separate.run import separate_batch

    with faulty(tmp_path) as server:
        for k, v in env_for(server).items():
            monkeypatch.setenv(k, v)
        server.config.max_audio_seconds = 2.0  # the tracks are 4 s
        table = separate_batch(track_dir, ["audioshake"], tmp_path / "b", progress=False)
    assert set(table["state"]) == {"failed"}
    assert table["error"].str.contains("above the limit of 2 s").all(), table["error"].tolist()


def test_ffmpeg_opens_local_files_only(tmp_path):
    """A 'wav' that is an HLS playlist naming a URL: not fetched (no SSRF), a clear error."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from stemkit.audio import load_audio
    from stemkit.errors import AudioError

    hits: list[str] = []

    class Spy(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Spy)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    path = tmp_path / "mixture.wav"
    path.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
        f"http://127.0.0.1:{srv.server_port}/secret.wav\n#EXT-X-ENDLIST\n"
    )
    try:
        with pytest.raises(AudioError):
            load_audio(path)
    finally:
        srv.shutdown()
        srv.server_close()
    assert hits == []


def test_zip_bombs_and_entry_floods_are_refused(tmp_path):
    import zipfile

    from stemkit.errors import IntegrityError
    from stemkit.providers.files import safe_extract

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("vocals.wav", b"\0" * (20 << 20))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(IntegrityError, match="uncompressed"):
        safe_extract(bomb, tmp_path / "x", max_bytes=5 << 20)
    flood = tmp_path / "flood.zip"
    with zipfile.ZipFile(flood, "w") as zf:
        for i in range(1500):
            zf.writestr(f"f{i}.txt", b"x")
    with pytest.raises(IntegrityError, match="entries"):
        safe_extract(flood, tmp_path / "y")
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.wav"))


# -- 12. smaller items ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "var,value",
    [("MAX_IN_FLIGHT", "0"), ("POLL_INTERVAL", "0"), ("TIMEOUT", "-1"), ("RETRIES", "-1")],
)
def test_profile_values_that_would_hang_or_break_are_refused(var, value):
    from stemkit.config import load_profile
    from stemkit.errors import ConfigError

    with pytest.raises(ConfigError, match=var.lower()):
        load_profile("sourceress", environ={f"STEMKIT_SOURCERESS_{var}": value})


def test_a_gzip_encoded_download_passes_the_length_check(tmp_path):
    """A server that compresses on the fly sends the *encoded* length; the file is whole."""
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from stemkit.providers import connect

    payload = b"RIFF" + bytes(range(256)) * 400
    encoded = gzip.compress(payload)

    class Gzip(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Gzip)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        client = connect("local")
        dest = client.download(f"http://127.0.0.1:{srv.server_port}/x.wav", tmp_path / "x.wav")
    finally:
        srv.shutdown()
        srv.server_close()
    assert dest.read_bytes() == payload


def test_sandbox_stats_show_no_callback_secrets(sandbox, track_dir):
    """Even the admin's ``/_sandbox/stats`` shows callback URLs without their query (where
    webhook tokens live)."""
    import json

    from stemkit.providers import connect

    client = connect("sourceress")
    job = client.submit(
        track_dir / "alpha" / "mixture.wav",
        track="alpha",
        callback_url="http://127.0.0.1:9/hook?token=hook-secret-77",
    )
    client.wait(job, timeout=120)
    text = json.dumps(sandbox.stats())
    assert "hook-secret-77" not in text
    assert "127.0.0.1:9/hook" in text


def test_injected_drops_are_not_logged_as_sandbox_bugs(tmp_path, every_log):
    import requests

    with faulty(tmp_path, drop=1.0) as server, pytest.raises(requests.RequestException):
        requests.post(f"{server.url}/sourceress/auth/", json={"username": "a", "password": "b"})
    assert not [line for line in every_log.lines if "sandbox bug" in line], every_log.lines


# -- 1. a job the vendor no longer knows is "lost", never an endless "submitted" ---------------


def test_a_submitted_job_the_vendor_forgot_is_lost_with_a_way_out(tmp_path, track_dir, monkeypatch):
    """The ledger says submitted, the (restarted, stateless) vendor answers 404: the row says
    ``lost`` and what to do; reruns do not resubmit by themselves; ``--retry lost`` does."""
    from stemkit.batchdir import BatchFolder
    from stemkit.separate.ledger import Ledger
    from stemkit.separate.run import separate_batch

    out = tmp_path / "b"
    with faulty(tmp_path / "one") as server:
        for k, v in env_for(server).items():
            monkeypatch.setenv(k, v)
        separate_batch(track_dir, ["sourceress"], out, progress=False)
    led = Ledger(out)  # as if killed after the submission: the ledger says submitted
    for row in led._db.execute("SELECT track, request_key FROM jobs").fetchall():
        led.mark(row[0], "sourceress", row[1], "submitted")
        BatchFolder(out).job_dir(row[0], "sourceress").joinpath("record.json").unlink()
    led.close()
    with faulty(tmp_path / "two") as fresh:  # a new vendor process that kept nothing
        for k, v in env_for(fresh).items():
            monkeypatch.setenv(k, v)
        table = separate_batch(track_dir, ["sourceress"], out, progress=False)
        assert set(table["state"]) == {"failed"}
        assert table["error_kind"].eq("lost").all(), table["error"].tolist()
        assert table["error"].str.contains("--retry lost").all()
        assert {r["state"] for r in Ledger(out).jobs()} == {"lost"}
        separate_batch(track_dir, ["sourceress"], out, progress=False)
        assert stats(fresh)["sourceress"]["separations"] == 0
        table = separate_batch(track_dir, ["sourceress"], out, progress=False, retry=["lost"])
        assert set(table["state"]) == {"done"}
        assert stats(fresh)["sourceress"]["separations"] == 2


def test_audioshake_stems_that_succeeded_are_kept_when_another_stem_fails(
    tmp_path, track_dir, monkeypatch
):
    """The sandbox cannot make a piano stem: that stem's job fails, the vocals job succeeds.
    A rerun submits the failed stem again, never the vocals (no duplicate)."""
    from stemkit.separate.manifest import load_manifest
    from stemkit.separate.run import separate_batch

    alpha = [t for t in load_manifest(track_dir) if t.name == "alpha"]
    with faulty(tmp_path) as server:
        for k, v in env_for(server).items():
            monkeypatch.setenv(k, v)
        for _ in range(2):
            table = separate_batch(
                alpha, ["audioshake"], tmp_path / "b", stems=["vocals", "piano"], progress=False
            )
            assert set(table["state"]) == {"failed"}, table
        s = stats(server)
    assert s["duplicates"] == 0, s
    assert s["audioshake"]["jobs"] == 3, s  # vocals once, piano twice
