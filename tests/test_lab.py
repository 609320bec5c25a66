"""The explorer as a QA engineer uses it: ``notebooks/explore.ipynb`` in JupyterLab, in Chromium.

A two-track, one-provider batch is built from scratch against the sandbox (as in
``test_browser.py``); a copy of the explorer notebook, its ``batch_dir`` parameter pointing at
that batch, is opened in a real JupyterLab page in headless Chromium and run with *Run* >
*Run All Cells*. Then the second track is picked in the explorer's track dropdown: its players
(``<audio>``) and its spectrogram (``<img>``) must appear, the explorer must show that track,
and the browser console must stay free of errors (but for the documented allow-list
:data:`tests.support.jupyterlab.LAB_CONSOLE_ALLOW`, empty today). The screenshot, taken with
the spectrogram tab open, is kept as ``test-artifacts/explorer-lab.png``.

The kernel that JupyterLab starts is this venv's ``python3`` (the venv's ``bin`` comes first
on its ``PATH``) and inherits the test session's environment, the sandbox's URL and
credentials included.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from stemkit.batch import run_batch

from .conftest import ROOT
from .support.browser import PageEvents, find_chromium, launch_chromium
from .support.jupyterlab import (
    LAB_CONSOLE_ALLOW,
    NOTEBOOK,
    audio_info,
    image_info,
    jupyterlab,
    open_widget_tab,
    run_notebook_in_lab,
    select_dropdown,
    wait_for_kernel_idle,
    widget_dropdown,
    widget_tab_child,
)

ARTIFACTS = ROOT / "test-artifacts"
EXPLORE = ROOT / "notebooks" / "explore.ipynb"
WINDOW = {"width": 1280, "height": 1100}
#: The explorer's widget tree (``Explorer.widget`` carries this class).
EXPLORER = f"{NOTEBOOK} .stemkit-explorer"

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no chromium binary on the PATH (Debian: apt-get install chromium; "
    "or set STEMKIT_CHROMIUM)",
)


def with_batch_dir(notebook: Path, batch: Path, dest: Path) -> Path:
    """Copy ``notebook`` to ``dest`` with its ``parameters`` cell set to ``batch_dir = batch``.

    Parameters
    ----------
    notebook : pathlib.Path
        The notebook to copy; it must have exactly one code cell tagged ``parameters``.
    batch : pathlib.Path
        The batch folder (written as an absolute path).
    dest : pathlib.Path
        The copy.

    Returns
    -------
    pathlib.Path
        ``dest``.
    """
    nb = json.loads(notebook.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{notebook.name}: expected one cell tagged 'parameters'"
    cells[0]["source"] = [f"batch_dir = {json.dumps(str(batch.resolve()))}\n"]
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return dest


@pytest.fixture(scope="module")
def batch(sandbox, track_dir, tmp_path_factory) -> Path:
    """A two-track, one-provider batch built from scratch against the sandbox."""
    out = tmp_path_factory.mktemp("lab-batch") / "batch"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEMKIT_SOURCERESS_POLL_INTERVAL", "0.05")
        mp.setenv("STEMKIT_SOURCERESS_POLL_MAX", "0.2")
        result = run_batch(track_dir, ["sourceress"], out, workers=2, transcribe=False)
    assert (out / "batch.json").is_file(), result.notebook_errors
    return out


@pytest.fixture(scope="module")
def lab(sandbox, batch, tmp_path_factory):
    """JupyterLab serving a copy of the explorer notebook (Lab may autosave what it serves)."""
    root = tmp_path_factory.mktemp("lab-root")
    with_batch_dir(EXPLORE, batch, root / EXPLORE.name)
    home = tmp_path_factory.mktemp("lab-home")  # kept: its server.log helps when a test fails
    # the kernels inherit the server's environment: the sandbox's URL and credentials
    with jupyterlab(root, env=dict(os.environ), home=home) as server:
        yield server


@pytest.fixture(scope="module")
def explorer(lab):
    """The notebook run in Lab, the explorer drawn: (page, page events, NotebookRun)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        context = browser.new_context(viewport=WINDOW, device_scale_factor=1)
        page = context.new_page()
        events = PageEvents(page)
        run = run_notebook_in_lab(page, lab.notebook_url(EXPLORE.name), timeout=120)
        # the run has ended; the widget views are drawn from the kernel's messages after that
        page.locator(EXPLORER).wait_for(state="visible", timeout=30_000)
        widget_dropdown(page.locator(EXPLORER), "track").wait_for(timeout=30_000)
        try:
            yield page, events, run
        finally:
            context.close()  # before the server stops: no "connection lost" in the page
            browser.close()


def _track_options(page) -> tuple[list[str], str]:
    select = widget_dropdown(page.locator(EXPLORER), "track")
    options = [t.strip() for t in select.locator("option").all_inner_texts()]
    shown = select.evaluate("s => s.selectedOptions.length ? s.selectedOptions[0].text : ''")
    return options, shown


def test_notebook_runs_in_the_venv_kernel(lab, explorer, sandbox):
    page, _, run = explorer
    assert run.all_ran, run.prompts
    assert run.stderr == []
    assert run.dialogs == [] and run.notifications == []  # kernelspec set; news switched off
    assert page.locator(f"{NOTEBOOK} .jp-OutputArea-output[data-mime-type*=error]").count() == 0
    # the kernel is this venv's python, with the session's environment
    import psutil

    processes = [psutil.Process(pid) for pid in lab.child_pids()]
    kernels = [p for p in processes if "ipykernel_launcher" in p.cmdline()]
    assert len(kernels) == 1, [p.cmdline() for p in processes]
    command, env = kernels[0].cmdline()[0], kernels[0].environ()
    # kernel.json says "python": the one found first on the kernel's PATH is this venv's
    assert shutil.which(command, path=env["PATH"]) == str(Path(sys.executable).parent / "python")
    assert env["STEMKIT_SANDBOX_URL"] == sandbox.url
    # the explorer opened the batch at its first track
    options, shown = _track_options(page)
    assert options == ["alpha", "beta"]
    assert shown == "alpha"
    assert "stemkit explorer: batch" in page.locator(EXPLORER).inner_text()


def test_picking_the_second_track_shows_its_players_and_spectrogram(explorer):
    from playwright.sync_api import expect

    page, _, _ = explorer
    root = page.locator(EXPLORER)
    options, _ = _track_options(page)
    second = options[1]
    players = widget_tab_child(root, "listen")  # Explorer.players, an Output
    spectrogram = widget_tab_child(root, "spectrogram")  # Explorer.spectrogram, an Image
    # mark the first track's players: those drawn after the pick lack the mark
    before = players.locator("audio").evaluate_all(
        "els => els.map(el => { el.dataset.beforePick = '1';"
        " return (el.querySelector('source') || el).src; })"
    )
    old_picture = spectrogram.get_attribute("src")
    assert len(before) == 3, "the first track's players (mixture, reference, sourceress)"
    assert old_picture and old_picture.startswith("blob:")

    select_dropdown(root, second, description="track")
    # the players are redrawn (the Output is cleared, then refilled) ...
    fresh = players.locator("audio:not([data-before-pick])")
    expect(fresh).to_have_count(len(before), timeout=30_000)
    expect(players.locator("audio[data-before-pick]")).to_have_count(0)
    # ... and the spectrogram gets a new picture (a new blob: URL)
    expect(spectrogram).not_to_have_attribute("src", old_picture, timeout=30_000)

    sounds = [audio_info(fresh.nth(i)) for i in range(len(before))]
    for sound in sounds:
        assert sound["error"] is None and sound["controls"], sound
        assert sound["src"].startswith("data:audio/wav;base64,")
        assert sound["duration"] == pytest.approx(4.0, abs=0.05)  # the 4 s test tracks
    assert not {s["src"] for s in sounds} & set(before)  # another track's sounds
    assert players.locator("b").all_inner_texts() == [
        "mixture",
        "reference (vocals)",
        "sourceress (vocals)",
    ]

    # the explorer shows the picked track, and still does once the kernel is done with the pick
    wait_for_kernel_idle(page, 30, stable=0)
    _, shown = _track_options(page)
    assert shown == second
    assert "could not" not in root.inner_text()  # Explorer._guard writes failures there

    shown_picture = open_widget_tab(root, "spectrogram")
    picture = image_info(shown_picture)
    assert picture["complete"] and picture["naturalWidth"] > 0, picture
    assert picture["src"].startswith("blob:") and picture["src"] != old_picture
    assert "widget-image" in picture["className"]
    shown_picture.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "explorer-lab.png")


def test_console_has_no_errors(explorer):
    _, events, _ = explorer
    assert events.unexpected_errors(LAB_CONSOLE_ALLOW) == [], events.console_errors
    assert events.failed_requests == []
    assert events.external_requests == []
