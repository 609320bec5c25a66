"""Listening tests: design from a batch, simulated listeners through the page's and the
widget's results, webMUSHRA in and out, post-screening and the analysis tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from stemkit.analyze.qa.meters import integrated_loudness
from stemkit.audio import load_audio
from stemkit.batchdir import BatchFolder
from stemkit.compare.listen import analysis as A
from stemkit.compare.listen.design import (
    ANCHORS,
    HIDDEN_REFERENCE,
    MID_ANCHOR,
    TARGET_LUFS,
    Design,
    design_test,
)
from stemkit.compare.listen.page import write_page
from stemkit.compare.listen.results import COLUMNS, read_results, write_webmushra
from stemkit.compare.listen.widget import MushraWidget
from stemkit.errors import StemkitError

SR = 22050
SECONDS = 6.0
PROVIDERS = ("acme", "budget")
#: what a careful listener hears: the condition's true quality (0-100)
QUALITY = {
    HIDDEN_REFERENCE: 100, "acme": 78, "budget": 45, "anchor_lp7k": 60, "anchor_lp3.5k": 30,
    "anchor_mixture": 12,
}  # fmt: skip


def _voice(rng, k: int) -> np.ndarray:
    t = np.arange(int(SECONDS * SR)) / SR
    f0 = 180 + 40 * k
    y = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 30) if f0 * h < SR / 2)
    env = 0.3 + 0.7 * (np.sin(2 * np.pi * 0.3 * t + k) > 0)  # louder and quieter halves
    return (0.1 * y * env).astype(np.float32)[None].repeat(2, axis=0)


def make_batch(root, n_tracks: int = 4) -> BatchFolder:
    """A batch as the separate and analyze phases leave it, through BatchFolder: a vocals and
    an accompaniment reference per track; ``acme`` leaks a little, ``budget`` more and
    band-limits; metrics say so (SDR v4, with ``budget`` better than ``acme`` on one track)."""
    rng = np.random.default_rng(0)
    b = BatchFolder(root / "batch")
    data = root / "data"
    tracks, rows = [], []
    for k in range(n_tracks):
        name = f"track{k}"
        voice = _voice(rng, k)
        band = (0.05 * rng.standard_normal(voice.shape)).astype(np.float32)
        (data / name).mkdir(parents=True)
        for stem, y in (("vocals", voice), ("accompaniment", band), ("mixture", voice + band)):
            sf.write(data / name / f"{stem}.wav", y.T, SR, subtype="FLOAT")
        tracks.append({"name": name, "mixture": str(data / name / "mixture.wav"),
                       "references": {s: str(data / name / f"{s}.wav")
                                      for s in ("vocals", "accompaniment")}})  # fmt: skip
        stems = {"acme": voice + 0.1 * band, "budget": np.roll(voice, 3, axis=-1) + 0.5 * band}
        for provider, y in stems.items():
            folder = b.job_dir(name, provider)
            folder.mkdir(parents=True)
            vocal_file = "vocals.wav" if provider == "acme" else "voice.wav"  # an alias
            sf.write(folder / vocal_file, y.T, SR, subtype="FLOAT")
            sf.write(folder / "accompaniment.wav", (voice + band - y).T, SR, subtype="FLOAT")
            b.write_record(name, provider, {"state": "done"})
        sdr = {"acme": 12.0 + k, "budget": 4.0 + 2 * k if k != 3 else 20.0, "mixture": -3.0}
        rows += [(name, p, "vocals", "sdr", "bsseval_v4", v) for p, v in sdr.items()]
        rows += [(name, p, "vocals", "si_sdr", "scale-invariant", v - 0.5) for p, v in sdr.items()]
    b.write_info({"created_at": "2026-01-02T03:04:05+00:00", "providers": list(PROVIDERS),
                  "tracks": tracks})  # fmt: skip
    m = pd.DataFrame(rows, columns=["track", "provider", "stem", "metric", "variant", "value"])
    for name, part in m.groupby("track"):
        b.write_analysis(name, "metrics", part)
    return b


@pytest.fixture(scope="module")
def designed(tmp_path_factory) -> Design:
    b = make_batch(tmp_path_factory.mktemp("listen"))
    design_test(b, stems=["vocals"], items=6, seconds=2.0, seed=1)
    write_page(b)
    return Design.load(b)


def _truth(design: Design) -> dict[tuple[str, str], str]:
    return {(r.trial, r.stimulus): r.condition for r in design.key.itertuples()}


def simulated(design: Design, listener: str, kind: str, seed: int) -> pd.DataFrame:
    """Ratings of one simulated listener: ``careful`` (true quality + a little noise),
    ``careless`` (anything), ``anchor-deaf`` (hears no band limit: 7 kHz anchor near 100)."""
    rng = np.random.default_rng(seed)
    truth = _truth(design)
    rows = []
    for t in design.trials:
        for name in t["stimuli"]:
            cond = truth[(t["trial"], name)]
            if kind == "careless":
                score = rng.uniform(0, 100)
            else:
                q = 97 if kind == "anchor-deaf" and cond.startswith("anchor_lp") else QUALITY[cond]
                noise = -abs(rng.normal(0, 2)) if cond == HIDDEN_REFERENCE else rng.normal(0, 4)
                score = q + noise
            rows.append({"listener": listener, "trial": t["trial"], "stimulus": name,
                         "score": int(np.clip(round(score), 0, 100)), "time_s": 20.0,
                         "comment": ""})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


# ------------------------------------------------------------------------------ design


def test_design_picks_items_by_the_rule_and_blinds_every_name(designed):
    d = designed
    assert len(d.trials) == 6 and len(d.items) == 6
    assert set(d.items["rule"]) == {"spread", "disagree"}
    # the spread picks include the lowest- and highest-scored track
    spread = set(d.items.loc[d.items["rule"] == "spread", "track"])
    assert {"track0", "track3"} <= spread
    conds = set(d.key["condition"])
    assert conds == {*PROVIDERS, HIDDEN_REFERENCE, *ANCHORS}
    names = d.key["stimulus"].tolist()
    assert len(set(names)) == len(names)  # every stimulus of every trial has its own name
    assert all(len(n) == 6 and int(n, 16) >= 0 for n in names)
    # what listeners see names no condition, and the stimulus order differs between trials
    public = d.folder.listening_design_path.read_text()
    page = (d.folder.listening_page_dir / "index.html").read_text()
    for c in conds - {HIDDEN_REFERENCE}:
        assert c not in public and c not in page
    orders = {tuple(d.key[d.key.trial == t["trial"]].condition) for t in d.trials}
    assert len(orders) > 1
    assert not any(p.name == "key.csv" for p in d.folder.listening_page_dir.rglob("*"))


def test_stimuli_are_loudness_matched_excerpts_and_the_anchors_are_low_passed(designed):
    d = designed
    t = d.trials[0]
    key = d.key[d.key.trial == t["trial"]].set_index("condition")
    audio = {}
    for cond, row in key.iterrows():
        y, sr = load_audio(d.folder.stimulus_path(t["trial"], row.stimulus))
        assert sr == SR and y.shape == (2, int(2.0 * SR))
        audio[cond] = y
    lufs = [integrated_loudness(y, SR) for y in audio.values()]
    assert max(lufs) - min(lufs) < 0.5  # matched (16-bit FLAC, fades)
    assert abs(np.median(lufs) - TARGET_LUFS) < 3  # turned down as a whole only if it clips

    def share_above(y, hz):
        spec = np.abs(np.fft.rfft(y.mean(axis=0))) ** 2
        f = np.fft.rfftfreq(y.shape[-1], 1 / SR)
        return spec[f > hz].sum() / spec.sum()

    assert share_above(audio[HIDDEN_REFERENCE], 4000) > 0.01
    assert share_above(audio["anchor_lp3.5k"], 4000) < 1e-4
    assert share_above(audio[MID_ANCHOR], 7500) < 1e-4 < share_above(audio[MID_ANCHOR], 4000)
    # the excerpt is the loudest window of the reference: its start is in a loud half
    item = d.items[d.items["item"] == key.loc[HIDDEN_REFERENCE, "item"]].iloc[0]
    assert item.seconds == pytest.approx(2.0)


def test_design_says_which_stem_cannot_be_tested(tmp_path):
    b = make_batch(tmp_path, n_tracks=1)
    with pytest.raises(StemkitError, match="no track has a 'drums' reference"):
        design_test(b, stems=["drums"], items=2, seconds=1.0)


# ------------------------------------------------------------------------------ analysis


@pytest.fixture(scope="module")
def analysed(designed, tmp_path_factory):
    """Six careful listeners, two careless ones, one deaf to the band limit: the page's CSVs."""
    out = tmp_path_factory.mktemp("results")
    files = []
    kinds = ["careful"] * 6 + ["careless", "careless", "anchor-deaf"]
    for i, kind in enumerate(kinds):
        path = out / f"mushra-{kind}-{i}.csv"
        simulated(designed, f"{kind}-{i}", kind, seed=i).to_csv(path, index=False)
        files.append(path)
    return A.analyze_listening(designed.folder, files)


def test_screening_excludes_the_careless_and_lists_why(analysed):
    s = analysed.screening.set_index("listener")
    assert sorted(analysed.excluded) == ["anchor-deaf-8", "careless-6", "careless-7"]
    assert "hidden reference below 90" in s.loc["careless-6", "reason"]
    assert "mid anchor (7 kHz) above 90" in s.loc["anchor-deaf-8", "reason"]
    assert not s.loc["careful-0", "excluded"]
    kept = analysed.ratings[analysed.ratings["kept"]]
    assert set(kept["listener"]) == {f"careful-{i}" for i in range(6)}


def test_means_and_paired_comparisons_find_the_better_provider(analysed):
    m = analysed.means.set_index("condition")
    assert m.loc["acme", "mean"] == pytest.approx(78, abs=3)
    assert m.loc["acme", "ci_low"] < m.loc["acme", "mean"] < m.loc["acme", "ci_high"]
    assert m.loc["budget", "ci_high"] < m.loc["acme", "ci_low"]
    assert m.index[:2].tolist() == ["acme", "budget"]  # providers first, best first
    c = analysed.comparisons.iloc[0]
    assert (c.provider_a, c.provider_b, c.metric, c.n_tracks) == ("acme", "budget", "mushra", 6)
    assert c.median_diff == pytest.approx(33, abs=5)
    said = analysed.sentences()
    assert said[0].startswith("acme beats budget on vocals MUSHRA score by ")
    assert said[0].endswith("6 items")


def test_metrics_vs_listeners_agreement_and_disagreements(analysed):
    ag = analysed.agreement.set_index(["metric", "variant"])
    assert set(ag.index) == {("sdr", "bsseval_v4"), ("si_sdr", "scale-invariant")}
    row = ag.loc[("sdr", "bsseval_v4")]
    assert row.n == 6 * 3  # items x (two providers + the mixture anchor)
    assert 0 < row.kendall_tau < 1 and 0 < row.spearman_rho < 1
    worst = analysed.disagreements
    assert len(worst) == 5
    top = worst.iloc[0]
    # track3: the metric puts budget on top (20 dB), listeners hear it as the worse provider
    assert (top.track, top.provider) == ("track3", "budget") and top.gap < 0


def test_tables_are_written_and_the_report_section_shows_them(analysed, designed):
    folder = designed.folder
    for name in A.TABLES:
        assert (folder.tables_dir / f"listening_{name}.csv").is_file()
    back = A.ListeningAnalysis.read(folder)
    assert sorted(back.excluded) == sorted(analysed.excluded)
    section = A.listening_section(folder)
    assert section[0].data.startswith("## Listening test")
    assert "3 excluded" in section[0].data
    assert any("acme beats budget" in getattr(p, "data", "") for p in section)


def test_no_section_without_results(tmp_path):
    b = make_batch(tmp_path, n_tracks=1)
    assert A.listening_section(b) == []


def test_results_of_another_design_are_refused(designed, tmp_path):
    bad = simulated(designed, "x", "careful", 0).assign(stimulus="zzzzzz")
    path = tmp_path / "other.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(StemkitError, match="stimuli this test does not have"):
        A.analyze_listening(designed.folder, [path])


# ------------------------------------------------------------------------------ webMUSHRA


def test_webmushra_export_and_import_round_trip(designed, tmp_path):
    path = write_webmushra(designed.folder)
    config = yaml.safe_load(path.read_text())
    mushra = [p for p in config["pages"] if p["type"] == "mushra"]
    assert [p["id"] for p in mushra] == [t["trial"] for t in designed.trials]
    hidden = designed.key[designed.key.condition == HIDDEN_REFERENCE].set_index("trial")
    for p in mushra:
        assert hidden.loc[p["id"], "stimulus"] not in p["stimuli"]  # webMUSHRA adds it itself
        assert len(p["stimuli"]) == 5 and p["createAnchor35"] is False
        for file in [p["reference"], *p["stimuli"].values()]:
            rel = file.removeprefix("configs/resources/stemkit/")
            assert (designed.folder.webmushra_dir / "resources" / rel).is_file()
    # a webMUSHRA results file of one careful session, as its service writes it
    tidy = simulated(designed, "s", "careful", 3)
    ref = tidy.merge(hidden.reset_index()[["trial", "stimulus"]], on=["trial", "stimulus"])
    web = tidy.assign(
        session_test_id="stemkit-batch", email="", session_uuid="5d2c-uuid",
        trial_id=tidy["trial"], rating_time=tidy["time_s"] * 1000, rating_comment="",
        rating_stimulus=[("reference" if s in set(ref["stimulus"]) else s)
                         for s in tidy["stimulus"]],
        rating_score=tidy["score"],
    )[["session_test_id", "email", "session_uuid", "trial_id", "rating_stimulus",
       "rating_score", "rating_time", "rating_comment"]]  # fmt: skip
    csv = tmp_path / "mushra.csv"
    web.to_csv(csv, index=False)
    back = read_results([csv], designed.key)
    assert back["listener"].unique().tolist() == ["5d2c-uuid"]
    order = ["trial", "stimulus"]
    got = back[[*order, "score"]].sort_values(order).reset_index(drop=True)
    sent = tidy[order].assign(score=tidy["score"].astype(float))
    pd.testing.assert_frame_equal(got, sent.sort_values(order).reset_index(drop=True))
    assert back["time_s"].eq(20.0).all()
    with pytest.raises(StemkitError, match="needs the test's key"):
        read_results([csv])


# ------------------------------------------------------------------------------ widget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_widget_takes_a_listener_through_every_trial(designed):
    clock = Clock()
    w = MushraWidget(designed.folder, "widget listener", clock=clock)
    assert "condition" not in json.dumps(w.trials)  # the widget never reads the key
    truth = _truth(designed)
    assert w.next.disabled and "Trial 1 of 6" in w.title.value
    for i, t in enumerate(designed.trials):
        assert w.trial["trial"] == t["trial"] and w.progress.value == i
        assert [s.description for s in w.rows.children] == list("ABCDEF")
        w.buttons.children[0].click()  # the reference
        assert w.playing == "reference"
        assert set(w.player.sources) == {"reference", *t["stimuli"]}
        assert all(len(v) > 1000 for v in w.player.sources.values())
        w.buttons.children[2].click()  # B
        assert w.playing == t["stimuli"][1]
        w.loop.value = False
        assert w.player.loop is False
        w.loop.value = True
        w.stop.click()
        assert w.playing == ""
        scores = {n: QUALITY[truth[(t["trial"], n)]] for n in t["stimuli"]}
        first = dict(list(scores.items())[:-1])
        w.rate(first)
        assert w.next.disabled  # one stimulus not rated yet
        w.rate(scores)
        w.comment.value = f"comment {i}"
        clock.now += 30.0
        w.next.click()
    assert w.save_button in w.children
    w.save_button.click()
    saved = read_results([w.saved_to])
    assert len(saved) == 6 * 6 and set(saved["listener"]) == {"widget listener"}
    assert saved["time_s"].eq(30.0).all()
    assert saved.groupby("trial")["comment"].first().tolist() == [f"comment {i}" for i in range(6)]
    merged = saved.assign(
        condition=[truth[(a, b)] for a, b in zip(saved.trial, saved.stimulus, strict=True)]
    )
    assert merged.groupby("condition")["score"].first().to_dict() == QUALITY
    # the widget's file is a results file like the page's: the analysis keeps this listener
    a = A.analyze_listening(designed.folder, [w.saved_to])
    assert a.excluded == [] and a.screening["listener"].tolist() == ["widget listener"]


def test_page_lists_every_trial_with_its_audio(designed):
    page = designed.folder.listening_page_dir
    html = (page / "index.html").read_text()
    test = json.loads(html.split("const TEST = ", 1)[1].split(";</script>", 1)[0])
    assert [t["trial"] for t in test["trials"]] == [t["trial"] for t in designed.trials]
    for t in designed.trials:
        script = (page / "trials" / f"{t['trial']}.js").read_text()
        assert all(n in script for n in t["stimuli"]) and '"reference"' in script
    assert "http://" not in html and "https://" not in html  # nothing fetched from the network


# ------------------------------------------------------------------------------ command line


def test_the_commands_design_then_analyze(tmp_path):
    from typer.testing import CliRunner

    from stemkit.cli import app

    b = make_batch(tmp_path)
    run = CliRunner().invoke(
        app, ["listen", "design", str(b.root), "--stems", "vocals", "--items", "4",
              "--seconds", "1.5", "--seed", "2"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "4 trials" in run.output and "page (give to listeners)" in run.output
    assert (b.listening_page_dir / "index.html").is_file()
    assert (b.webmushra_dir / "config.yaml").is_file()
    d = Design.load(b)
    files = []
    for i, kind in enumerate(["careful", "careful", "careful", "careless"]):
        path = tmp_path / f"{kind}{i}.csv"
        simulated(d, f"{kind}{i}", kind, seed=10 + i).to_csv(path, index=False)
        files.append(str(path))
    run = CliRunner().invoke(app, ["listen", "analyze", str(b.root), *files])
    assert run.exit_code == 0, run.output
    assert "4 listeners, 3 kept" in run.output
    assert "excluded careless3: hidden reference below 90" in run.output
    assert sorted(p.name for p in b.listening_results_dir.iterdir()) == sorted(
        p.rsplit("/", 1)[-1] for p in files
    )
    # again without files: the saved results are analysed
    again = CliRunner().invoke(app, ["listen", "analyze", str(b.root)])
    assert again.exit_code == 0 and "4 listeners, 3 kept" in again.output
    missing = CliRunner().invoke(app, ["listen", "analyze", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "no listening test" in missing.output


# ------------------------------------------------------------------------------ the report


def test_the_report_has_a_listening_test_section(analysed, designed):
    """The compare notebook, executed on the analysed batch and rendered, shows the section."""
    from stemkit.batch import execute
    from stemkit.compare.report import render_html
    from stemkit.resources import notebook

    folder = designed.folder
    analysed.write(folder)  # the widget's test analysed its own file since
    nb = execute(notebook("compare"), folder.notebook("compare"), {"batch_dir": str(folder.root)})
    html = render_html(nb, folder.report_path).read_text()
    assert '<h2 id="Listening-test">Listening test' in html
    section = html[html.index("Listening test") :]
    assert "3 excluded by the post-screening" in section
    assert "acme beats budget on vocals MUSHRA score" in section


def test_a_provider_that_delivered_nothing_is_left_out(tmp_path):
    b = make_batch(tmp_path, n_tracks=2)
    info = b.info()
    b.write_info({**info, "providers": [*info["providers"], "broken"]})
    for t in b.tracks:
        b.write_record(t, "broken", {"state": "failed", "error": "broken: out of credits"})
    d = design_test(b, stems=["vocals"], items=2, seconds=1.0)
    assert set(d.key["condition"]) == {*PROVIDERS, HIDDEN_REFERENCE, *ANCHORS}
