"""The static MUSHRA page as a listener takes it: headless Chromium, offline, from file://.

Play the reference and a stimulus, rate every stimulus of every trial, finish, save: the
downloaded file is a results file in the tidy format with the scores given, and the page
fetched nothing and logged no error on the way.
"""

from __future__ import annotations

import pytest

from stemkit.compare.listen.design import Design, design_test
from stemkit.compare.listen.page import write_page
from stemkit.compare.listen.results import read_results
from tests.support.browser import PageEvents, find_chromium, launch_chromium

from .test_listen import QUALITY, make_batch

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no chromium binary on the PATH (Debian: apt-get install chromium; "
    "or set STEMKIT_CHROMIUM)",
)


@pytest.fixture(scope="module")
def design(tmp_path_factory) -> Design:
    b = make_batch(tmp_path_factory.mktemp("page"), n_tracks=2)
    design_test(b, stems=["vocals"], items=2, seconds=1.5, seed=4)
    write_page(b)
    return Design.load(b)


def test_a_listener_plays_rates_and_saves_offline(design, tmp_path):
    from playwright.sync_api import sync_playwright

    truth = {(r.trial, r.stimulus): r.condition for r in design.key.itertuples()}
    url = (design.folder.listening_page_dir / "index.html").as_uri()
    with sync_playwright() as pw:
        browser = launch_chromium(pw, timeout=60_000)
        try:
            context = browser.new_context(accept_downloads=True)
            tab = context.new_page()
            events = PageEvents(tab)
            tab.goto(url, wait_until="load")
            tab.click("#start")  # no name yet: the page asks for one
            assert "name" in tab.inner_text("#listener-hint")
            tab.fill("#listener", "Ana B.")
            tab.click("#start")
            given = {}
            for i, t in enumerate(design.trials):
                tab.wait_for_function("window.stemkitPage.ready", timeout=60_000)
                assert tab.evaluate("window.stemkitPage.trial") == t["trial"]
                assert f"Trial {i + 1} of {len(design.trials)}" in tab.inner_text("#progress-text")
                tab.click("#ref")
                assert tab.evaluate("window.stemkitPage.playing") == "reference"
                # every stimulus and the reference play together, looped; the clock runs
                tab.wait_for_function(
                    "(() => { const a = window.stemkitPage.audio();"
                    " return a.state === 'running' && a.time > 0.2; })()",
                    timeout=60_000,
                )
                assert tab.evaluate("window.stemkitPage.audio().voices") == 1 + len(t["stimuli"])
                tab.click("#stimuli .row:nth-child(2) button")  # B
                assert tab.evaluate("window.stemkitPage.playing") == t["stimuli"][1]
                assert tab.get_attribute("#stimuli .row:nth-child(2) button", "class") == "playing"
                assert tab.is_disabled("#next")  # nothing rated yet
                sliders = tab.locator("#stimuli input[type=range]")
                assert sliders.count() == len(t["stimuli"])
                for j, name in enumerate(t["stimuli"]):
                    score = QUALITY[truth[(t["trial"], name)]]
                    sliders.nth(j).fill(str(score))
                    given[(t["trial"], name)] = score
                tab.fill("#comment", f'trial {i}, "a comma"')
                assert not tab.is_disabled("#next")
                tab.click("#next")
            assert tab.is_visible("#save")
            with tab.expect_download() as dl:
                tab.click("#save")
            saved = tmp_path / dl.value.suggested_filename
            dl.value.save_as(saved)
            assert tab.evaluate("window.stemkitPage.saved")
        finally:
            browser.close()
    assert saved.name.startswith("mushra-") and saved.suffix == ".csv"
    ratings = read_results([saved])
    assert set(ratings["listener"]) == {"Ana B."}
    assert {(r.trial, r.stimulus): r.score for r in ratings.itertuples()} == given
    assert ratings.groupby("trial")["comment"].first().tolist() == [
        'trial 0, "a comma"',
        'trial 1, "a comma"',
    ]
    assert (ratings["time_s"] > 0).all()
    assert events.external_requests == []
    assert events.failed_requests == []
    assert events.console_errors == []
