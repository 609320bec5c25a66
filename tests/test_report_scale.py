"""The report of a 1000-track batch: a main page of at most 5 MB (50 kB a track) that opens in
Chromium, a track table that sorts and filters, and a page per track.

The batch is synthetic (:mod:`tests.support.synthetic`: every table the separate and analyze
phases write, realistic random values, no audio), so the compare notebook runs on a thousand
tracks in the time it takes, not after hours of separation. Timings are printed, never
asserted (``pytest -s`` shows them).
"""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest

from stemkit.batch import execute
from stemkit.compare.report import load_batch, render_html
from stemkit.compare.tracks import track_index
from tests.support.browser import PageEvents, check_page, find_chromium, launch_chromium
from tests.support.synthetic import make_batch

from .conftest import ROOT

COMPARE = ROOT / "notebooks" / "compare.ipynb"
TRACKS = 1000
PROVIDERS = ("sourceress", "audioshake")


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A synthetic 1000-track × 2-provider batch, its compare notebook run and rendered."""
    pytest.importorskip("itables")
    root = tmp_path_factory.mktemp("scale") / "batch"
    t0 = time.perf_counter()
    batch = make_batch(root, TRACKS, providers=PROVIDERS)
    t1 = time.perf_counter()
    nb = execute(COMPARE, batch.notebook("compare"), {"batch_dir": str(batch.root)})
    t2 = time.perf_counter()
    report = render_html(nb, batch.report_path)
    t3 = time.perf_counter()
    size = report.stat().st_size
    print(
        f"\n{TRACKS} tracks: synthetic batch {t1 - t0:.1f} s, compare notebook {t2 - t1:.1f} s, "
        f"render {t3 - t2:.1f} s; report.html {size / 1e6:.2f} MB ({size / TRACKS / 1e3:.1f} kB "
        "a track)"
    )
    return batch, report


def test_the_main_page_stays_small(big):
    batch, report = big
    size = report.stat().st_size
    assert size <= 5_000_000, f"report.html is {size / 1e6:.2f} MB"
    assert size / TRACKS <= 50_000
    html = report.read_text()
    # figures per metric and per timing view, none per track: their number does not grow
    images = len(re.findall(r'src="data:image/png;base64,', html))
    assert 8 <= images <= 20, images
    assert "Traceback" not in html
    # the Gantt chart of 2000 jobs would be 2000 lanes: only the slowest are drawn, and it says so
    assert f"The 20 slowest of {TRACKS * len(PROVIDERS)} jobs, end to end" in html
    # the worst tracks per stem, linked to their pages
    assert "vocals: the 10 lowest SDR" in html and "accompaniment: the 10 lowest SDR" in html
    assert html.count('href="tracks/track-') >= 20


def test_every_track_has_its_page(big):
    batch, report = big
    pages = sorted(batch.track_pages_dir.glob("*.html"))
    assert len(pages) == TRACKS
    page = batch.track_page("track-0003").read_text()
    assert "<h1>track-0003</h1>" in page and "SDR v4 (dB)" in page
    assert 'href="../report.html"' in page
    for name in ("spectrograms", "timeline"):  # linked from the analysis, not copied
        assert f'src="../analysis/track-0003/{name}.png"' in page
        assert (batch.root / "analysis" / "track-0003" / f"{name}.png").is_file()
    # a job that failed says so on its track's page
    failed = next(p for p in batch.record_paths() if '"failed"' in p.read_text())
    track = failed.parent.parent.name
    assert "the vendor reported the job failed (synthetic)" in batch.track_page(track).read_text()


pytestmark_browser = pytest.mark.skipif(
    find_chromium() is None,
    reason="no chromium binary on the PATH (Debian: apt-get install chromium; "
    "or set STEMKIT_CHROMIUM)",
)


def _rows_matching(index: pd.DataFrame, term: str) -> int:
    """How many rows DataTables' search keeps for one word: any cell containing it."""
    text = index.astype(str).apply(lambda col: col.str.contains(term, case=False, regex=False))
    return int(text.any(axis=1).sum())


@pytestmark_browser
def test_chromium_opens_it_and_the_track_table_filters_and_links(big):
    from playwright.sync_api import sync_playwright

    batch, report = big
    seen = check_page(report, width=1280, timeout=60)
    print(f"\nChromium: report.html checked in {seen.seconds:.1f} s (browser start included)")
    assert seen.console_errors == [] and seen.failed_requests == []
    assert seen.external_requests == []  # itables offline: nothing from a CDN
    assert seen.broken_images == []
    assert seen.scroll_width <= 1280, "the page scrolls sideways"

    page = check_page(batch.track_page("track-0003"), width=1280)
    assert page.problems == [] and len(page.images) == 2
    assert page.scroll_width <= 1280, "a track page scrolls sideways"

    index = track_index(load_batch(batch.root), links=False)
    term = "track-004"
    expected = _rows_matching(index, term)
    assert expected == 10 * len(PROVIDERS)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            events = PageEvents(tab)
            started = time.monotonic()
            tab.goto(report.as_uri(), wait_until="load", timeout=60_000)
            table = tab.locator("#track-table")
            tab.wait_for_function(
                "document.querySelector('#track-table')?.classList.contains('dataTable')",
                timeout=60_000,
            )
            print(f"Chromium: page loaded, track table ready in {time.monotonic() - started:.2f} s")
            rows = table.locator("tbody tr")
            info = tab.locator("#track-table_wrapper .dt-info")
            assert f"of {len(index):,} entries" in info.inner_text()
            assert rows.count() == 25  # the first page

            search = tab.locator("#track-table_wrapper input[type=search]")
            search.fill(term)
            tab.wait_for_function(
                "n => document.querySelectorAll('#track-table tbody tr').length === n",
                arg=expected,
            )
            assert rows.count() == expected
            assert f"of {expected} entries (filtered from {len(index):,}" in info.inner_text()
            names = rows.locator("td:first-child").all_inner_texts()
            assert all(n.startswith(term) for n in names), names

            # sortable: the lowest vocals SDR first after a click on its header
            search.fill("")
            tab.locator("#track-table_wrapper th", has_text="SDR vocals").first.click()
            column = index.columns.get_loc("SDR vocals")
            tab.wait_for_function(
                "document.querySelector('#track-table th.dt-ordering-asc') !== null"
            )
            cells = [c.locator("td").nth(column).inner_text() for c in rows.all()]
            shown = [float(c) for c in cells if c.strip()]  # a failed job has no score
            assert shown and shown[0] == pytest.approx(index["SDR vocals"].min(), abs=0.01)

            # a track's link opens its page, whose figures load
            search.fill("track-0003")
            tab.wait_for_function("document.querySelectorAll('#track-table tbody tr').length === 2")
            with tab.expect_navigation():
                table.locator("a", has_text="track-0003").first.click()
            assert tab.url.endswith("/tracks/track-0003.html")
            assert tab.locator("h1").inner_text() == "track-0003"
            widths = tab.evaluate(
                "Promise.all(Array.from(document.images).map(i => i.decode().then("
                "() => i.naturalWidth, () => 0)))"
            )
            assert len(widths) == 2 and all(w > 0 for w in widths), widths
            assert events.console_errors == [] and events.failed_requests == []
        finally:
            browser.close()
