"""The report as a person opens it: headless Chromium loads a fresh batch's ``report.html``.

Every image must decode, the console must stay free of errors, and every figure must fit a
1280 px window without being shrunk. The full-page screenshot is kept as a test artefact in
``test-artifacts/report.png``. Chromium is driven through Playwright
(:mod:`tests.support.browser`); a broken page first shows that the driver sees what it checks.
"""

from __future__ import annotations

import pytest

from stemkit.batch import run_batch
from tests.support.browser import check_page, find_chromium

from .conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"
WINDOW = 1280

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no chromium binary on the PATH (Debian: apt-get install chromium; "
    "or set STEMKIT_CHROMIUM)",
)


def test_the_driver_sees_a_broken_page(tmp_path):
    """A missing image, a too-wide one, a script from the network, console.error and an
    uncaught exception: each shows up in the report (so an empty list below means something)."""
    wide = tmp_path / "wide.svg"
    wide.write_text("<svg xmlns='http://www.w3.org/2000/svg' width='2000' height='10'/>")
    html = tmp_path / "bad.html"
    html.write_text(
        "<!doctype html><html><body><img src='missing.png'><img src='wide.svg'>"
        "<script src='https://cdn.example.invalid/lib.js'></script>"
        "<script>console.error('oops'); setTimeout(() => { throw new Error('late'); });</script>"
        "</body></html>"
    )
    page = check_page(html, width=800)
    assert [im.label.rsplit("/", 1)[-1] for im in page.broken_images] == ["missing.png"]
    assert [im.natural_width for im in page.oversized_images] == [2000]
    assert page.external_requests == ["https://cdn.example.invalid/lib.js"]
    assert any(e.startswith("oops (file:") for e in page.console_errors)  # with its source
    assert "uncaught Error: late" in page.console_errors
    assert any("missing.png: net::ERR_FILE_NOT_FOUND" in f for f in page.failed_requests)
    assert any("cdn.example.invalid" in f for f in page.failed_requests)  # resolves to nothing
    assert page.local_problems and len(page.local_problems) < len(page.problems)


@pytest.fixture(scope="module")
def report(sandbox, track_dir, tmp_path_factory):
    """A two-track, one-provider batch report built from scratch against the sandbox."""
    out = tmp_path_factory.mktemp("browser") / "batch"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEMKIT_SOURCERESS_POLL_INTERVAL", "0.05")
        mp.setenv("STEMKIT_SOURCERESS_POLL_MAX", "0.2")
        result = run_batch(track_dir, ["sourceress"], out, workers=2, transcribe=False)
    assert result.report is not None and result.report.is_file(), result.notebook_errors
    return result.report


@pytest.fixture(scope="module")
def page(report):
    """What Chromium saw, at a normal window width; the screenshot is saved before any check."""
    return check_page(report, width=WINDOW, screenshot=ARTIFACTS / "report.png")


def test_every_image_loaded(page):
    # the summary chart, the timing chart, the timeline, and two figures per track
    assert len(page.images) >= 5, [im.label for im in page.images]
    assert page.broken_images == [], [im.label for im in page.broken_images]


def test_figures_fit_a_normal_window(page):
    assert page.viewport_width == WINDOW
    too_wide = [f"{im.label}: {im.natural_width} px" for im in page.oversized_images]
    assert too_wide == []
    assert page.scroll_width <= WINDOW, "the page scrolls sideways"


def test_console_has_no_errors(page):
    assert page.console_errors == []
    assert page.failed_requests == []


def test_screenshot_is_saved(page):
    png = page.screenshot
    assert png == ARTIFACTS / "report.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert width == WINDOW and height > 900


def test_report_opens_offline(page):
    """A self-contained report fetches nothing (render_html drops nbconvert's CDN scripts)."""
    assert page.external_requests == []
