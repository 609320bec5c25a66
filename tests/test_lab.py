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
import re
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
def second_batch(batch) -> Path:
    """A copy of ``batch`` beside it, with a second provider (``local``, the same stems) and
    a verdict that did not pass: switching to it changes the provider list and the tables."""
    other = batch.parent / "batch-two"
    shutil.copytree(batch, other)
    info = json.loads((other / "batch.json").read_text())
    info["providers"] = [*info["providers"], "local"]
    (other / "batch.json").write_text(json.dumps(info))
    for track in info["tracks"]:
        shutil.copytree(
            other / "stems" / track["name"] / "sourceress",
            other / "stems" / track["name"] / "local",
        )
    first = info["tracks"][0]["name"]
    verdicts = other / "analysis" / first / "verdicts.csv"
    text = verdicts.read_text().splitlines()
    head = text[0].split(",")
    row = dict.fromkeys(head, "")
    row |= {"track": first, "provider": "local", "stem": "vocals", "check": "gain_db"}
    row |= {"value": "-3.1", "unit": "dB", "verdict": "fail"}
    verdicts.write_text("\n".join([*text, ",".join(row[h] for h in head)]) + "\n")
    os.utime(other / "batch.json", (1_000_000, 1_000_000))  # older: the first stays default
    return other


@pytest.fixture(scope="module")
def lab(sandbox, batch, second_batch, tmp_path_factory):
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


def test_the_notebook_is_not_modified_when_it_opens(explorer):
    """Opening explore.ipynb (the kernel started, nothing run) leaves the document unmodified:
    its kernelspec and language_info are what JupyterLab would write for this venv's kernel."""
    _, _, run = explorer
    assert run.dirty_before_run is False


def _drag_onto(page, handle, target) -> None:
    a, b = handle.bounding_box(), target.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    steps = 8
    for k in range(1, steps + 1):
        x = a["x"] + a["width"] / 2 + (b["x"] - a["x"]) * k / steps
        page.mouse.move(x, a["y"] + a["height"] / 2)
    page.mouse.up()


def test_a_zero_length_range_still_plays_and_draws(explorer):
    """Dragging the range's lower handle onto the upper one: no error, players still there."""
    from playwright.sync_api import expect

    page, events, _ = explorer
    root = page.locator(EXPLORER)
    slider = root.locator(".widget-hslider").filter(has_text="time (s)").first
    slider.scroll_into_view_if_needed()
    lower, upper = slider.locator(".noUi-handle-lower"), slider.locator(".noUi-handle-upper")
    spectrogram = widget_tab_child(root, "spectrogram")
    picture = spectrogram.get_attribute("src")
    _drag_onto(page, lower, upper)
    expect(spectrogram).not_to_have_attribute("src", picture, timeout=30_000)  # redrawn
    wait_for_kernel_idle(page, 30, stable=0.5)
    readout = slider.locator(".widget-readout").inner_text()
    assert "–" in readout or "-" in readout, readout  # the readout shows the range
    low, high = (float(x) for x in re.split(r"\s*[–-]\s*", readout.strip()))
    assert 0.09 <= high - low <= 0.15, readout  # widened to 0.1 s
    assert "could not" not in root.inner_text()
    players = widget_tab_child(root, "listen")
    expect(players.locator("audio")).to_have_count(3, timeout=30_000)
    assert events.unexpected_errors(LAB_CONSOLE_ALLOW) == [], events.console_errors


def test_the_metrics_tab_fits_the_viewport_and_shows_what_did_not_pass(explorer):
    page, _, _ = explorer
    root = page.locator(EXPLORER)
    shown = open_widget_tab(root, "metrics")
    text = shown.inner_text()
    assert "nSDR (dB): providers side by side" in text
    assert "passed" in text
    metric = widget_dropdown(root, "metric")
    names = [t.replace("\xa0", " ") for t in metric.locator("option").all_inner_texts()]
    assert names[:2] == ["nSDR (dB)", "SI-SDR (dB)"] and "SIR v4 (dB)" in names
    width = page.viewport_size["width"]
    tab = shown.bounding_box()
    for box in shown.locator("table").evaluate_all(
        "ts => ts.map(t => { const r = t.getBoundingClientRect();"
        " return {left: r.left, right: r.right, w: r.width}; })"
    ):
        assert box["right"] <= min(width, tab["x"] + tab["width"]) + 1, (box, tab, width)
    ARTIFACTS.mkdir(exist_ok=True)
    shown.scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "explorer-lab-metrics.png")


def test_switching_batches_logs_no_console_error(explorer, second_batch):
    from playwright.sync_api import expect

    page, events, _ = explorer
    root = page.locator(EXPLORER)
    before = len(events.console_errors)
    for name in (second_batch.name, "batch", second_batch.name):
        select_dropdown(root, name, description="batch")
        expect(root.locator("h3").first).to_contain_text(name, timeout=30_000)
        wait_for_kernel_idle(page, 30, stable=0)
    providers = root.locator(".widget-select-multiple select option").all_inner_texts()
    assert [p.strip() for p in providers] == ["sourceress", "local"]
    assert "could not" not in root.inner_text()
    text = open_widget_tab(root, "metrics").inner_text()
    assert "gain_db" in text  # the second batch's failed check
    assert events.console_errors[before:] == []
    assert events.unexpected_errors(LAB_CONSOLE_ALLOW) == []
