"""Shared fixtures: one real sandbox server over HTTP for the session, small real audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemkit.sandbox import SandboxConfig, SandboxServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def vendor_fixture(name: str) -> dict:
    """A vendor doc's example bodies, kept as data in ``tests/fixtures/<name>.json`` (each file
    says which vendor page it comes from), so no test reads anything outside the repository."""
    import json

    return json.loads((FIXTURES / f"{name}.json").read_text())


#: Distinctive credentials for the session's sandbox, so that a scan of every output can
#: prove none of them leaked (the README's demo/demo would match every path with "demo").
CREDS = {
    "username": "qa-user",
    "password": "pw-3c9f1e7a",
    "token": "tok-b41d7e22",
    "key": "key-6e0a9c",
    "secret": "sec-f81b2d4c",
    "api_key": "ask-5d2e8b1c",
}
CRED_ENV = {
    "STEMKIT_SOURCERESS_USERNAME": CREDS["username"],
    "STEMKIT_SOURCERESS_PASSWORD": CREDS["password"],
    "STEMKIT_AUDIOSHAKE_TOKEN": CREDS["token"],
    "STEMKIT_LOOM_KEY": CREDS["key"],
    "STEMKIT_LOOM_SECRET": CREDS["secret"],
    "STEMKIT_AUDIOSHAKE_TASKS_KEY": CREDS["api_key"],
}


#: Files whose module fixtures take half a minute or more (whole batches, a wheel install, a
#: JupyterLab), longest first: under pytest-xdist they start first, in this order
#: (`--no-loadscope-reorder`), so no worker is left with one at the end.
SLOW_FIRST = (
    "tests/test_batch.py",
    "notebooks",
    "tests/test_wheel.py",
    "tests/test_lab.py",
    "tests/test_validation.py",
    "tests/test_sandbox_state.py",
    "tests/test_compare_partial.py",
    "tests/test_report_scale.py",
    "tests/test_analyze_notebook.py",
    "tests/test_browser.py",
)


def _group(item) -> str:
    rel = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
    # the notebooks share one scratch batch (notebooks/conftest.py): one worker runs them all
    return "notebooks" if rel.endswith(".ipynb") else rel


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marks into group ids
def pytest_collection_modifyitems(config, items) -> None:
    """Under ``pytest -n N --dist loadgroup`` a file's tests run in one worker (its module
    fixtures are built once), the notebooks together, and the slowest files start first.

    The items are collected in the workers, where xdist has reset ``numprocesses`` to None
    and says ``loadgroup`` instead: that is the flag to read."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))

    def rank(item) -> int:
        g = _group(item)
        return SLOW_FIRST.index(g) if g in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: the order inside a file is kept


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> SandboxServer:
    """The sandbox on a free loopback port; ``STEMKIT_SANDBOX_URL`` points at it and the
    credentials of :data:`CREDS` are exported for every client (and notebook kernel)."""
    config = SandboxConfig(
        data_dir=tmp_path_factory.mktemp("sandbox"),
        sourceress_users={CREDS["username"]: CREDS["password"], "other-user": "other-password"},
        audioshake_tokens={CREDS["token"]: "qa", "other-token": "other-client"},
        loom_keys={CREDS["key"]: CREDS["secret"]},
        audioshake_api_keys={CREDS["api_key"]: "qa", "other-key": "other-client"},
        workers=2,
    )
    saved = {k: os.environ.get(k) for k in CRED_ENV}
    os.environ.update(CRED_ENV)
    try:
        with SandboxServer(config) as server:
            yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture()
def fast_profile(monkeypatch):
    """Poll quickly in tests."""
    monkeypatch.setenv("STEMKIT_SOURCERESS_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("STEMKIT_SOURCERESS_POLL_MAX", "0.2")
    monkeypatch.setenv("STEMKIT_LOCAL_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("STEMKIT_AUDIOSHAKE_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("STEMKIT_AUDIOSHAKE_POLL_MAX", "0.2")
    monkeypatch.setenv("STEMKIT_AUDIOSHAKE_TASKS_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("STEMKIT_AUDIOSHAKE_TASKS_POLL_MAX", "0.2")


def music(seconds: float = 4.0, sr: int = 22050, seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny stereo multitrack: a vibrato 'voice', a repeating bass, clicks as drums."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = 220 * 2 ** (rng.integers(0, 12, size=int(seconds * 2)) / 12)
    pitch = np.repeat(f0, n // len(f0) + 1)[:n] * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.15
    bass = 0.25 * np.sin(2 * np.pi * 55 * 2 ** (np.floor(t * 2) % 4 / 12) * t)
    drums = np.zeros(n)
    for start in range(0, n, sr // 2):
        hit = rng.standard_normal(min(2000, n - start)) * np.exp(
            -np.arange(min(2000, n - start)) / 300
        )
        drums[start : start + len(hit)] += 0.4 * hit
    stems = {
        "vocals": np.stack([voice, voice]),
        "bass": np.stack([bass, bass]),
        "drums": np.stack([drums * 0.8, drums]),
        "other": np.stack([0.05 * np.sin(2 * np.pi * 440 * t)] * 2),
    }
    stems = {k: v.astype(np.float32) for k, v in stems.items()}
    stems["mixture"] = sum(stems.values())
    return stems


@pytest.fixture(scope="session")
def track_dir(tmp_path_factory) -> Path:
    """A MUSDB-layout folder with two good tracks (4 s, 22.05 kHz stereo)."""
    root = tmp_path_factory.mktemp("tracks")
    for i, name in enumerate(("alpha", "beta")):
        folder = root / name
        folder.mkdir()
        for stem, y in music(seed=i).items():
            sf.write(folder / f"{stem}.wav", y.T, 22050, subtype="FLOAT")
    return root
