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


def test_the_notebook_player_decodes_plays_and_switches(design, tmp_path):
    """The widget's Web Audio player (its ESM, with a stand-in for the widget model): every
    stimulus of a trial decodes, plays, and a switch keeps it playing."""
    import base64
    import json

    from playwright.sync_api import sync_playwright

    from stemkit.compare.listen.player import StimulusPlayer

    t = design.trials[0]
    sources = {
        n: base64.b64encode(design.folder.stimulus_path(t["trial"], n).read_bytes()).decode()
        for n in ["reference", *t["stimuli"]]
    }
    esm = StimulusPlayer._esm.replace("export default { render };", "window.player = { render };")
    html = tmp_path / "player.html"
    html.write_text(
        "<!doctype html><html><body><button id='ref'>ref</button><button id='b'>B</button>"
        "<button id='stop'>stop</button><div id='el'></div>"
        f"<script>{esm}</script><script>"
        f"const state = {{sources: {json.dumps(sources)}, playing: '', loop: true}};"
        "const handlers = {};"
        "const model = {get: (k) => state[k], on: (e, f) => (handlers[e] ||= []).push(f)};"
        "const set = (k, v) => { state[k] = v;"
        " (handlers['change:' + k] || []).forEach((f) => f()); };"
        "player.render({model, el: document.getElementById('el')});"
        "document.getElementById('ref').onclick = () => set('playing', 'reference');"
        f"const b = {json.dumps(t['stimuli'][1])};"
        "document.getElementById('b').onclick = () => set('playing', b);"
        "document.getElementById('stop').onclick = () => set('playing', '');"
        "</script></body></html>"
    )  # fmt: skip
    with sync_playwright() as pw:
        browser = launch_chromium(pw, timeout=60_000)
        try:
            tab = browser.new_page()
            events = PageEvents(tab)
            tab.goto(html.as_uri(), wait_until="load")
            tab.click("#ref")
            tab.wait_for_function(
                "document.getElementById('el').textContent === 'playing'", timeout=60_000
            )
            tab.click("#b")
            assert tab.inner_text("#el") == "playing"
            tab.click("#stop")
            assert tab.inner_text("#el") == ""
        finally:
            browser.close()
    assert events.console_errors == [] and events.failed_requests == []
