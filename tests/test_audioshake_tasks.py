"""AudioShake's Tasks API over HTTP: every route of the sandbox (answers validated against the
docs' schema), bad input refused by the sandbox (4xx JSON) and by the client (nothing sent),
partial target failure, link and asset expiry, the 429 path, the webhook, and the
reconciliation of lost creates through the ledger."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests

from stemkit.audio import load_audio
from stemkit.batchdir import BatchFolder
from stemkit.errors import RequestError
from stemkit.providers import connect
from stemkit.providers.audioshake_tasks import (
    AudioShakeTasksProvider,
    TaskInfo,
    target,
    task_request,
)
from stemkit.providers.files import sha256_file
from stemkit.sandbox import SandboxConfig, SandboxServer
from stemkit.sandbox.audioshake_tasks import credits
from stemkit.sandbox.audioshake_tasks_schema import Asset, Task
from stemkit.sandbox.faults import Faults
from stemkit.separate.ledger import Ledger
from stemkit.separate.run import separate_batch

from .conftest import CREDS, vendor_fixture

KEY = CREDS["api_key"]


@pytest.fixture()
def client(sandbox, fast_profile) -> AudioShakeTasksProvider:
    return connect("audioshake-tasks")


@pytest.fixture()
def api(sandbox):
    """A raw HTTP session on the sandbox's Tasks API with the test key."""
    s = requests.Session()
    s.headers["x-api-key"] = KEY
    base = f"{sandbox.url}/audioshake"
    return lambda method, path, **kw: s.request(method, f"{base}{path}", timeout=30, **kw)


@contextlib.contextmanager
def own_sandbox(tmp_path, **settings):
    """A sandbox of its own, for settings a test changes (TTLs, rate limit, faults)."""
    config = SandboxConfig(
        data_dir=tmp_path / "sb", audioshake_api_keys={KEY: "qa"}, workers=2, **settings
    )
    with SandboxServer(config, set_env=False) as server:
        yield server


def client_of(server, **overrides) -> AudioShakeTasksProvider:
    return connect(
        "audioshake-tasks",
        base_url=f"{server.url}/audioshake",
        key=KEY,
        poll_interval=0.05,
        poll_max=0.2,
        **overrides,
    )


def wait_done(get, task_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = get("GET", f"/tasks/{task_id}").json()
        if all(t["status"] != "processing" for t in task["targets"]):
            return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish")


@pytest.fixture(scope="module")
def asset(sandbox, track_dir) -> dict:
    with open(track_dir / "alpha" / "mixture.wav", "rb") as fh:
        resp = requests.post(
            f"{sandbox.url}/audioshake/assets",
            headers={"x-api-key": KEY},
            files={"file": ("mixture.wav", fh)},
            timeout=30,
        )
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- the docs' examples --------------------------------------------------------------------
def test_doc_examples_match_the_schema_and_the_client_reads_them():
    doc = vendor_fixture("audioshake_tasks_doc")
    for name in ("create_response", "webhook_payload"):
        Task.model_validate(doc[name])
        info = TaskInfo.model_validate(doc[name])
        assert info.targets
    Asset.model_validate(doc["asset_response"])
    # the doc's create request is exactly what the client builds for vocals + accompaniment
    built = task_request(
        asset_id="your_asset_id", targets=[target("vocals"), target("accompaniment")]
    )
    assert built == doc["create_request"]


# -- every route ---------------------------------------------------------------------------
def test_every_route_needs_the_api_key(sandbox, asset):
    base = f"{sandbox.url}/audioshake"
    for method, path, kw in (
        ("POST", "/assets", {"files": {"file": ("a.wav", b"x")}}),
        ("POST", "/tasks", {"json": {"assetId": asset["id"], "targets": [target("vocals")]}}),
        ("GET", "/tasks", {}),
        ("GET", "/tasks/abc", {}),
    ):
        for headers in ({}, {"x-api-key": "wrong"}, {"Authorization": f"Bearer {CREDS['token']}"}):
            resp = requests.request(method, f"{base}{path}", headers=headers, timeout=30, **kw)
            assert resp.status_code == 401, (method, path, resp.text)
            assert "x-api-key" in resp.json()["message"]


def test_upload_create_get_list_and_download(api, asset, track_dir):
    Asset.model_validate(asset)
    assert asset["format"] == "wav" and asset["name"] == "mixture.wav"
    assert (
        requests.get(asset["link"], timeout=30).content
        == (track_dir / "alpha" / "mixture.wav").read_bytes()
    )
    created = api(
        "POST",
        "/tasks",
        json={
            "assetId": asset["id"],
            "targets": [target("vocals", residual=True), target("instrumental", "flac")],
            "metadata": '{"any": "string, kept as given"}',
        },
    )
    assert created.status_code == 200, created.text
    task = Task.model_validate(created.json())
    assert task.metadata == '{"any": "string, kept as given"}' and task.url is None
    assert {t.status for t in task.targets} == {"processing"} and task.completedAt is None
    done = wait_done(api, task.id)
    Task.model_validate(done)
    assert done["metadata"] == task.metadata and done["completedAt"]
    mix, sr = load_audio(track_dir / "alpha" / "mixture.wav")
    seconds = mix.shape[1] / sr
    vocals, inst = done["targets"]
    assert vocals["status"] == inst["status"] == "completed"
    assert vocals["cost"] == inst["cost"] == credits(seconds) == 1
    assert done["cost"] == 2 and vocals["duration"] == pytest.approx(seconds, abs=0.01)
    assert [o["name"] for o in vocals["output"]] == ["vocals", "vocals_residual"]
    assert [(o["name"], o["format"]) for o in inst["output"]] == [("instrumental", "flac")]
    got = {}
    for t in (vocals, inst):
        for o in t["output"]:
            resp = requests.get(o["link"], timeout=30)
            assert resp.status_code == 200
            path = track_dir.parent / f"dl-{o['name']}.{o['format']}"
            path.write_bytes(resp.content)
            got[o["name"]] = load_audio(path)[0]
    ok = np.abs(mix).max(axis=0) < 0.95  # stems and residual sum back to the mixture
    np.testing.assert_allclose(
        (got["vocals"] + got["vocals_residual"])[:, ok], mix[:, ok], atol=1e-4
    )
    # get and list: the same Task; the list is newest first and pages with skip/take
    other = api("POST", "/tasks", json={"url": asset["link"], "targets": [target("drums")]})
    assert other.status_code == 200, other.text
    by_url = Task.model_validate(other.json())
    assert by_url.url == asset["link"] and by_url.assetId is None
    page = api("GET", "/tasks", params={"skip": 0, "take": 2}).json()
    assert [t["id"] for t in page] == [by_url.id, task.id]
    for t in page:
        Task.model_validate(t)
    assert [t["id"] for t in api("GET", "/tasks", params={"skip": 1, "take": 1}).json()] == [
        task.id
    ]
    assert api("GET", f"/tasks/{task.id}").json()["id"] == task.id
    assert api("GET", "/tasks/nope").status_code == 404


def test_tasks_are_private_to_their_account(sandbox, api, asset):
    task = api("POST", "/tasks", json={"assetId": asset["id"], "targets": [target("bass")]}).json()
    other = {"x-api-key": "other-key"}
    base = f"{sandbox.url}/audioshake"
    assert requests.get(f"{base}/tasks/{task['id']}", headers=other, timeout=30).status_code == 404
    listed = requests.get(f"{base}/tasks", headers=other, timeout=30).json()
    assert task["id"] not in [t["id"] for t in listed]
    body = {"assetId": asset["id"], "targets": [target("bass")]}
    assert requests.post(f"{base}/tasks", headers=other, json=body, timeout=30).status_code == 404


BAD = [
    ({"url": "http://x/y.wav", "targets": [target("vocals")]}, "both"),  # + assetId added below
    ({"targets": [target("vocals")]}, "exactly one"),
    ({"targets": []}, "at least 1"),
    ({"targets": [target("vocals")] * 11}, "at most 10"),
    ({"targets": [{"model": "kazoo", "formats": ["wav"]}]}, "unknown model"),
    ({"targets": [{"model": "vocals", "formats": ["ogg"]}]}, "unsupported format"),
    ({"targets": [{"model": "vocals", "formats": []}]}, "formats"),
    ({"targets": [{"model": "vocals", "formats": ["wav"], "colour": "blue"}]}, "colour"),
    ({"targets": [target("vocals")], "metadata": {"not": "a string"}}, "metadata"),
]


@pytest.mark.parametrize(("body", "words"), BAD)
def test_sandbox_refuses_bad_input_with_4xx_json(api, asset, body, words):
    if words != "exactly one":
        body = {"assetId": asset["id"], **body}
    resp = api("POST", "/tasks", json=body)
    assert 400 <= resp.status_code < 500
    assert words in resp.json()["message"], resp.json()


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"take": 101}, "take"),
        ({"take": 0}, "take"),
        ({"skip": -1}, "skip"),
        ({"take": "x"}, "integers"),
    ],
)
def test_list_refuses_bad_paging(api, params, words):
    resp = api("GET", "/tasks", params=params)
    assert resp.status_code == 400 and words in resp.json()["message"]


def test_sandbox_refuses_what_is_not_audio_and_unknown_assets(api):
    resp = api("POST", "/assets", files={"file": ("notes.txt", b"just some text, no audio")})
    assert resp.status_code == 415 and "unsupported" in resp.json()["message"]
    resp = api("POST", "/tasks", json={"assetId": "nope", "targets": [target("vocals")]})
    assert resp.status_code == 404 and "upload" in resp.json()["message"]
    resp = api(
        "POST", "/tasks", json={"url": "https://example.com/a.wav", "targets": [target("vocals")]}
    )
    assert resp.status_code == 400 and "url" in resp.json()["message"]


def _no_network(client, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a request was sent")

    monkeypatch.setattr(client.session, "request", refuse)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"asset_id": "a1", "url": "http://x/y.wav", "targets": [target("vocals")]}, "not both"),
        ({"targets": [target("vocals")]}, "exactly one"),
        ({"asset_id": "a1", "targets": []}, "at least 1"),
        ({"asset_id": "a1", "targets": [target("vocals")] * 11}, "at most 10"),
        ({"asset_id": "a1", "targets": [{"model": "kazoo", "formats": ["wav"]}]}, "unknown model"),
        ({"asset_id": "a1", "targets": [{"model": "vocals", "formats": ["ogg"]}]}, "unsupported"),
    ],
)
def test_client_refuses_bad_input_before_sending(client, monkeypatch, kwargs, words):
    _no_network(client, monkeypatch)
    with pytest.raises(RequestError, match=words):
        task_request(**kwargs)
    body = {"targets": kwargs["targets"]}
    body.update({"assetId": kwargs["asset_id"]} if "asset_id" in kwargs else {})
    body.update({"url": kwargs["url"]} if "url" in kwargs else {})
    with pytest.raises(RequestError, match=words):
        client.create_task(body)


def test_client_refuses_bad_paging_and_stems_before_sending(client, monkeypatch, tmp_path):
    _no_network(client, monkeypatch)
    for kw in ({"take": 101}, {"take": 0}, {"skip": -1}):
        with pytest.raises(RequestError, match="take|skip"):
            client.list_tasks(**kw)
    with pytest.raises(RequestError, match="unknown model"):  # nothing uploaded either
        client.submit(tmp_path / "mix.wav", track="t", stems=["vocals", "ukulele"])
    with pytest.raises(RequestError, match="at most 10"):
        client.submit(tmp_path / "mix.wav", track="t", stems=["vocals"] * 11)
    with pytest.raises(RequestError, match="unsupported"):
        client.submit(tmp_path / "mix.wav", track="t", stems=["vocals"], fmt="ogg")


# -- the client on the shared life cycle ---------------------------------------------------
def test_client_separates_one_task_per_track_with_cost(client, sandbox, track_dir, tmp_path):
    before = sandbox.stats()["audioshake_tasks"]
    result = client.separate(track_dir / "beta" / "mixture.wav", tmp_path, track="beta")
    after = sandbox.stats()["audioshake_tasks"]
    assert after["tasks"] - before["tasks"] == 1 and after["targets"] - before["targets"] == 2
    assert sorted(result.stems) == ["accompaniment", "vocals"]
    assert result.cost == 2 and result.failed_stems == {}
    mix, _ = load_audio(track_dir / "beta" / "mixture.wav")
    total = sum(load_audio(p)[0] for p in result.stems.values())
    ok = np.abs(mix).max(axis=0) < 0.95
    np.testing.assert_allclose(total[:, ok], mix[:, ok], atol=1e-3)
    assert [r["stage"] for r in result.vendor_stages] == ["processing"]


def test_a_failed_target_fails_that_stem_only(sandbox, fast_profile, track_dir, tmp_path):
    """``guitar`` is a documented model the sandbox engine cannot make: its target ends in
    ``error`` while ``vocals`` completes; the record and the report say which stem failed."""
    from stemkit.compare.report import load_batch

    out = tmp_path / "batch"
    table = separate_batch(
        track_dir, ["audioshake-tasks"], out, stems=["vocals", "guitar"], progress=False
    )
    assert set(table["state"]) == {"done"}
    rec = BatchFolder(out).read_record("alpha", "audioshake-tasks")
    assert list(rec["stems"]) == ["vocals"]
    assert list(rec["failed_stems"]) == ["guitar"]
    assert "not available in the sandbox engine" in rec["failed_stems"]["guitar"]
    assert rec["cost"] == 1  # the failed target is not billed
    b = load_batch(out)
    assert set(b.failures["stem"]) == {"guitar"} and set(b.failures["state"]) == {"done"}
    # cost in the report: credits per provider, per track, per audio minute; jobs table column
    assert list(b.jobs["cost"]) == [1, 1]
    row = b.cost.loc["audioshake-tasks"]
    minutes = b.jobs["audio_seconds"].sum() / 60
    assert row["credits"] == 2 and row["credits per track"] == 1
    assert row["credits per audio minute"] == pytest.approx(2 / minutes, rel=1e-3)


def test_expired_links_are_refreshed_by_getting_the_task_again(tmp_path, track_dir):
    with own_sandbox(tmp_path) as server:
        client = client_of(server)
        job = client.submit(track_dir / "alpha" / "mixture.wav", track="alpha", stems=["vocals"])
        server.config.audioshake_link_ttl = -1  # every link is issued already expired
        stale = client.wait(job)
        link = stale.raw["targets"]["vocals"].output[0].link
        resp = requests.get(link, timeout=30)
        assert resp.status_code == 403 and "get the task again" in resp.json()["message"]
        server.config.audioshake_link_ttl = 3600
        files = client.fetch(job, stale, tmp_path / "out")
        assert load_audio(files["vocals"])[0].shape[0] == 2


def test_an_expired_asset_is_uploaded_again(tmp_path, track_dir):
    mix = track_dir / "alpha" / "mixture.wav"
    with own_sandbox(tmp_path, audioshake_asset_ttl=-1) as server:
        client = client_of(server)
        old = client._asset(mix)  # uploaded (and cached) already expired
        resp = requests.post(
            f"{server.url}/audioshake/tasks",
            headers={"x-api-key": KEY},
            json={"assetId": old.id, "targets": [target("vocals")]},
            timeout=30,
        )
        assert resp.status_code == 410 and "upload" in resp.json()["message"]
        server.config.audioshake_asset_ttl = 3600
        result = client.separate(mix, tmp_path / "out", stems=["vocals"])
        stats = server.stats()["audioshake_tasks"]
        assert stats["assets"] == 2 and stats["tasks"] == 1
        assert sorted(result.stems) == ["vocals"]


def test_rate_limit_answers_429_with_retry_after_and_the_client_backs_off(tmp_path, track_dir):
    with own_sandbox(tmp_path, audioshake_rate_limit=3, audioshake_rate_window=30) as server:
        url = f"{server.url}/audioshake/tasks"
        codes = [requests.get(url, headers={"x-api-key": KEY}, timeout=30) for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        assert int(codes[-1].headers["Retry-After"]) >= 1
        assert "rate limit" in codes[-1].json()["message"]
        # the client: 2 calls in 2 s allowed, it makes 6 and waits as told
        server.config.audioshake_rate_window = 2.0
        server.config.audioshake_rate_limit = 2
        time.sleep(2.1)  # let the window empty (not a timing assertion)
        client = client_of(server)
        for _ in range(6):
            assert client.list_tasks(take=1) == []
        assert server.stats()["audioshake_tasks"]["rate_limited"] >= 2


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture()
def webhook():
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Hook.received
    server.shutdown()
    server.server_close()


def test_webhook_posts_the_full_task_once_per_finished_target(tmp_path, track_dir, webhook):
    url, received = webhook
    with own_sandbox(tmp_path, audioshake_webhooks={"qa": url}) as server:
        client = client_of(server)
        job = client.submit(
            track_dir / "alpha" / "mixture.wav", track="alpha", stems=["vocals", "guitar"]
        )
        client.wait(job)
        deadline = time.monotonic() + 30
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a third (wrong) post would have arrived by now
    assert len(received) == 2
    for payload in received:
        Task.model_validate(payload)
        assert payload["id"] == job.job_id and json.loads(payload["metadata"])["track"] == "alpha"
    ended = [{t["model"]: t["status"] for t in p["targets"]} for p in received]
    assert ended[-1] == {"vocals": "completed", "guitar": "error"}
    assert "processing" in ended[0].values() and received[-1]["completedAt"]


def test_webhooks_to_outside_urls_are_recorded_not_called(tmp_path, track_dir):
    with own_sandbox(tmp_path, audioshake_webhooks={"qa": "https://example.com/hook"}) as server:
        client = client_of(server)
        client.wait(client.submit(track_dir / "alpha" / "mixture.wav", track="a", stems=["bass"]))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log = server.stats()["callbacks"]
            if log:
                break
            time.sleep(0.05)
    assert log and not log[0]["sent"] and "loopback" in log[0]["reason"]


# -- lost creates --------------------------------------------------------------------------
def test_a_lost_create_answer_is_found_by_its_key_and_resumed(tmp_path, track_dir):
    """Every create is processed and then answered 502: the client finds its task in the
    list by the submission key; one task, no second bill."""
    with own_sandbox(tmp_path, faults=Faults(ambiguous=1.0)) as server:
        client = client_of(server)
        result = client.separate(track_dir / "alpha" / "mixture.wav", tmp_path / "out")
        stats = server.stats()
    assert stats["injected"]["ambiguous"] == 1 and stats["audioshake_tasks"]["tasks"] == 1
    assert stats["duplicates"] == 0 and sorted(result.stems) == ["accompaniment", "vocals"]


def _creating_row(out, mixture, pending) -> tuple[Ledger, str]:
    """The ledger as a run killed during the create leaves it."""
    led = Ledger(out)
    key = led.request_key(sha256_file(mixture), ("vocals", "accompaniment"), {"fmt": "wav"})
    led.mark("alpha", "audioshake-tasks", key, "creating", job={"pending_create": pending})
    return led, key


def test_a_run_killed_mid_create_resumes_the_task_the_vendor_made(tmp_path, track_dir, monkeypatch):
    mixture = track_dir / "alpha" / "mixture.wav"
    with own_sandbox(tmp_path) as server:
        client = client_of(server)
        asset = client.upload_asset(mixture)
        metadata = json.dumps({"stemkit_submission": "k-killed-1", "track": "alpha"})
        made = client.create_task(
            {
                "assetId": asset.id,
                "targets": [target("vocals"), target("accompaniment")],
                "metadata": metadata,
            }  # fmt: skip
        )
        out = tmp_path / "batch"
        pending = {"submission_key": "k-killed-1", "stems": ["vocals", "accompaniment"],
                   "format": "wav", "since": made.createdAt}  # fmt: skip
        led, key = _creating_row(out, mixture, pending)
        for k, v in {"STEMKIT_SANDBOX_URL": server.url, "STEMKIT_AUDIOSHAKE_TASKS_KEY": KEY,
                     "STEMKIT_AUDIOSHAKE_TASKS_POLL_INTERVAL": "0.05"}.items():  # fmt: skip
            monkeypatch.setenv(k, v)
        table = separate_batch(
            [_track(track_dir, "alpha")], ["audioshake-tasks"], out, progress=False
        )
        stats = server.stats()["audioshake_tasks"]
    assert set(table["state"]) == {"done"} and table["job_id"][0] == made.id
    assert stats["tasks"] == 1  # nothing submitted again
    rec = BatchFolder(out).read_record("alpha", "audioshake-tasks")
    assert (
        "found" in rec["reconciled"]
        and led.get("alpha", "audioshake-tasks", key)["state"] == "done"
    )


def test_a_lost_create_not_found_is_safely_submitted_again(tmp_path, track_dir, monkeypatch):
    mixture = track_dir / "alpha" / "mixture.wav"
    monkeypatch.setattr(AudioShakeTasksProvider, "look_pause", 0.01)
    with own_sandbox(tmp_path) as server:
        out = tmp_path / "batch"
        pending = {"submission_key": "k-never-arrived", "stems": ["vocals", "accompaniment"],
                   "format": "wav", "since": "2026-01-01T00:00:00Z"}  # fmt: skip
        led, key = _creating_row(out, mixture, pending)
        led.mark("alpha", "audioshake-tasks", key, "ambiguous", error="connection lost")
        for k, v in {"STEMKIT_SANDBOX_URL": server.url, "STEMKIT_AUDIOSHAKE_TASKS_KEY": KEY,
                     "STEMKIT_AUDIOSHAKE_TASKS_POLL_INTERVAL": "0.05"}.items():  # fmt: skip
            monkeypatch.setenv(k, v)
        table = separate_batch(
            [_track(track_dir, "alpha")], ["audioshake-tasks"], out, progress=False
        )
        stats = server.stats()["audioshake_tasks"]
    assert set(table["state"]) == {"done"} and stats["tasks"] == 1
    rec = BatchFolder(out).read_record("alpha", "audioshake-tasks")
    assert "not found" in rec["reconciled"]


def test_a_lookup_that_cannot_be_made_stays_ambiguous(tmp_path, track_dir, monkeypatch):
    mixture = track_dir / "alpha" / "mixture.wav"
    out = tmp_path / "batch"
    pending = {"submission_key": "k-x", "stems": ["vocals", "accompaniment"], "format": "wav"}
    led, key = _creating_row(out, mixture, pending)
    monkeypatch.setenv("STEMKIT_SANDBOX_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("STEMKIT_AUDIOSHAKE_TASKS_RETRIES", "0")
    table = separate_batch([_track(track_dir, "alpha")], ["audioshake-tasks"], out, progress=False)
    assert set(table["state"]) == {"failed"}
    row = led.get("alpha", "audioshake-tasks", key)
    assert row["state"] == "ambiguous" and row["job"]["pending_create"]["submission_key"] == "k-x"


def _track(track_dir, name):
    from stemkit.separate.manifest import load_manifest

    return next(t for t in load_manifest(track_dir) if t.name == name)


def test_injected_target_failures_fail_the_job_when_every_target_fails(tmp_path, track_dir):
    from stemkit.errors import JobFailed

    with own_sandbox(tmp_path, faults=Faults(job_failure=1.0)) as server:
        client = client_of(server)
        with pytest.raises(JobFailed, match="injected failure") as err:
            client.separate(track_dir / "alpha" / "mixture.wav", tmp_path / "out")
        task = client.get_task(err.value.job_id)
    assert {t.status for t in task.targets} == {"error"} and task.cost == 0


def test_profile_of_the_tasks_api_and_its_environment_variables():
    from stemkit.config import load_profile

    env = {"STEMKIT_SANDBOX_URL": "http://127.0.0.1:9000", "STEMKIT_AUDIOSHAKE_TASKS_KEY": "k1"}
    tasks = load_profile("audioshake-tasks", environ=env)
    assert tasks.base_url == "http://127.0.0.1:9000/audioshake"  # the vendor's shared base
    assert tasks.key.get_secret_value() == "k1"
    legacy = load_profile("audioshake", environ=env)  # STEMKIT_AUDIOSHAKE_TASKS_* is not its
    assert legacy.token.get_secret_value() == "demo-token" and legacy.key is None
    assert load_profile("audioshake-tasks", environ={}).key.get_secret_value() == "demo-key"
