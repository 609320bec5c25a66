"""The command line as a new user meets it: help, demo data, and `stemkit lab` serving the
notebooks in JupyterLab (edits already in the folder are kept)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from typer.testing import CliRunner

from stemkit.cli import app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help_lists_every_command():
    out = CliRunner().invoke(app, ["--help"]).output
    commands = ("serve", "batch", "demo", "demo-data", "report", "jobs", "publish", "lab", "listen")
    for command in commands:
        assert command in out


def test_report_and_jobs_say_what_is_missing(tmp_path):
    for command in ("report", "jobs"):
        result = CliRunner().invoke(app, [command, str(tmp_path)])
        assert result.exit_code != 0
        assert str(tmp_path) in result.output


def test_lab_copies_the_notebooks_keeps_edits_and_serves_them(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    edited = folder / "analyze.ipynb"
    edited.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "run"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
    }
    stemkit = Path(sys.executable).parent / "stemkit"
    proc = subprocess.Popen(
        [str(stemkit), "lab", str(folder), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        answer = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/api", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert answer is not None and answer.status_code == 200, proc.poll()
        assert "version" in answer.json()
        names = sorted(p.name for p in folder.glob("*.ipynb"))
        assert names == ["analyze.ipynb", "compare.ipynb", "explore.ipynb", "separate.ipynb"]
        assert edited.read_text().startswith('{"cells": []')  # the user's edit is kept
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
