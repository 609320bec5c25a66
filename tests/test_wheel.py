"""The package as a QA team installs it: the built wheel, in a fresh virtualenv, from any folder.

The wheel is built from this checkout, installed with its pinned dependencies into a throwaway
venv, and run from a temporary folder with no stemkit settings and nothing of the checkout on
the path: ``stemkit --help``, then a one-track batch on the embedded sandbox. The notebooks and
the speech clips must come from inside the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _run(cmd: list, *, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", dist, ROOT],
        cwd=dist,
        env=dict(os.environ),
    )
    return next(dist.glob("stemkit-*.whl"))


def test_wheel_carries_notebooks_speech_and_profile_but_no_test_tooling(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for nb in ("separate", "analyze", "compare", "explore"):
        assert f"stemkit/_bundled/notebooks/{nb}.ipynb" in names
    for clip in ("kitchen", "office", "station"):
        assert f"stemkit/_bundled/speech/{clip}.flac" in names
        assert f"stemkit/_bundled/speech/{clip}.txt" in names
    assert "stemkit/analyze/qa/profile.toml" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "scripts/"))]


def test_installed_wheel_runs_a_batch_from_any_folder(wheel, tmp_path, track_dir):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=dict(os.environ))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STEMKIT_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # --no-compile: byte-compiling every dependency is most of an install's time here
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile", wheel]
    _run(pip, cwd=tmp_path, env=env)

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "tracks").mkdir(parents=True)
    shutil.copytree(track_dir / "alpha", elsewhere / "tracks" / "alpha")
    where = _run(
        [venv / "bin" / "python", "-c", "import stemkit; print(stemkit.__file__)"],
        cwd=elsewhere,
        env=env,
    )
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout

    stemkit = venv / "bin" / "stemkit"
    assert "batch" in _run([stemkit, "--help"], cwd=elsewhere, env=env).stdout
    _run(
        [stemkit, "batch", "tracks", "-p", "sourceress", "--out", "out", "--workers", "1",
         "--no-transcribe"],
        cwd=elsewhere,
        env=env,
    )  # fmt: skip
    out = elsewhere / "out"
    assert (out / "report.html").stat().st_size > 50_000
    assert (out / "notebooks" / "analyze" / "alpha.ipynb").is_file()
    assert (out / "analysis" / "alpha" / "metrics.csv").stat().st_size > 0
