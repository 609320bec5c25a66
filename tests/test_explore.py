"""The explorer: its plain functions on a tiny hand-made batch, and its widget tree, headless."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from stemkit.compare import explore as X

from .conftest import ROOT

SR = 22050
SECONDS = 3.0


def _write(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.atleast_2d(y).T, sr, subtype="FLOAT")
    return path


def _tone(freq: float, seconds: float = SECONDS, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([y, y])


def make_batch(root: Path, name: str = "tiny", *, with_analysis: bool = True) -> Path:
    """A batch as the separate and analyze steps leave it: two tracks; sourceress and
    audioshake delivered (audioshake names its accompaniment ``instrumental``); ``local``
    failed. Only ``alpha`` has been analysed (metrics, timeline, verdicts)."""
    batch = root / name
    data = root / f"{name}-data"
    tracks = []
    for k, track in enumerate(("alpha", "beta")):
        voice, band = _tone(440 * (k + 1)), _tone(110 * (k + 1))
        refs = {
            "vocals": _write(data / track / "vocals.wav", voice),
            "accompaniment": _write(data / track / "accompaniment.wav", band),
        }
        mixture = _write(data / track / "mixture.wav", voice + band)
        tracks.append(
            {
                "name": track,
                "mixture": str(mixture),
                "references": {s: str(p) for s, p in refs.items()},
                "transcript": None,
            }
        )
        stems = batch / "stems" / track
        # sourceress: close to the references; audioshake: at 44.1 kHz, a little leakage
        _write(stems / "sourceress" / "vocals.wav", voice * 0.9)
        _write(stems / "sourceress" / "accompaniment.wav", band)
        leak = np.repeat(voice + 0.2 * band, 2, axis=1)
        _write(stems / "audioshake" / "vocals.wav", leak, 2 * SR)
        _write(stems / "audioshake" / "instrumental.wav", np.repeat(band, 2, axis=1), 2 * SR)
        for provider in ("sourceress", "audioshake"):
            (stems / provider / "record.json").write_text(json.dumps({"state": "done"}))
        (stems / "local").mkdir(parents=True)
        (stems / "local" / "record.json").write_text(
            json.dumps({"state": "failed", "error": "local: the worker ran out of memory"})
        )
    info = {
        "created_at": "2026-01-02T03:04:05+00:00",
        "providers": ["sourceress", "audioshake", "local"],
        "tracks": tracks,
    }
    (batch / "batch.json").write_text(json.dumps(info))
    if with_analysis:
        _write_analysis(batch / "analysis" / "alpha")
    return batch


def _write_analysis(folder: Path) -> None:
    folder.mkdir(parents=True)
    rows = [
        ("sourceress", "vocals", "sdr", "global", 12.5),
        ("sourceress", "vocals", "si_sdr", "scale-invariant", 12.0),
        ("audioshake", "vocals", "sdr", "global", 9.0),
        ("audioshake", "vocals", "si_sdr", "scale-invariant", 8.5),
        ("sourceress", "accompaniment", "sdr", "global", 20.0),
        ("audioshake", "accompaniment", "sdr", "global", 18.0),
        ("mixture", "vocals", "sdr", "global", -1.0),
    ]
    pd.DataFrame(
        [("alpha", *r) for r in rows],
        columns=["track", "provider", "stem", "metric", "variant", "value"],
    ).to_csv(folder / "metrics.csv", index=False)
    t0 = pd.Timestamp("2026-01-02T03:04:05Z")
    tl = []
    for i, provider in enumerate(("sourceress", "audioshake")):
        for stage, source, a, b in (
            ("queue wait", "vendor", 0.0, 1.0 + i),
            ("processing", "vendor", 1.0 + i, 2.5 + i),
            ("upload", "client", 0.0, 0.2),
            ("wait", "client", 0.2, 2.6 + i),
        ):
            start, end = t0 + pd.Timedelta(seconds=a), t0 + pd.Timedelta(seconds=b)
            tl.append((provider, "alpha", f"job{i}", stage, source, start, end, b - a))
    pd.DataFrame(
        tl, columns=["provider", "track", "job_id", "stage", "source", "start", "end", "seconds"]
    ).to_csv(folder / "timeline.csv", index=False)
    pd.DataFrame(
        {
            "provider": ["sourceress", "audioshake"],
            "stem": ["vocals"] * 2,
            "verdict": ["ok", "leaky"],
        }
    ).to_csv(folder / "verdicts.csv", index=False)


@pytest.fixture()
def batch(tmp_path) -> Path:
    return make_batch(tmp_path / "reports")


@pytest.fixture()
def index(batch) -> X.BatchIndex:
    return X.BatchIndex.open(batch)


# ------------------------------------------------------------------------------ batches


def test_batches_are_listed_newest_first_and_missing_ones_fall_back(tmp_path):
    reports = tmp_path / "reports"
    old = make_batch(reports, "old", with_analysis=False)
    new = make_batch(reports, "new", with_analysis=False)
    (reports / "not-a-batch").mkdir()
    os.utime(old / "batch.json", (1_000_000, 1_000_000))
    assert X.list_batches(reports) == [new, old]
    assert X.resolve_batch(old) == old
    assert X.resolve_batch(reports / "demo") == new  # not built: the newest beside it
    assert X.resolve_batch(reports) == new  # a folder of batches
    assert X.resolve_batch(tmp_path / "empty" / "demo") is None


def test_index_knows_tracks_providers_and_canonical_stems(index):
    assert index.tracks == ["alpha", "beta"]
    assert index.providers == ["sourceress", "audioshake", "local"]
    assert index.stems("alpha") == ["vocals", "accompaniment"]  # vocals first
    assert sorted(index.provider_stems("alpha", "audioshake")) == ["accompaniment", "vocals"]
    assert index.providers_with("alpha", "accompaniment") == ["sourceress", "audioshake"]
    assert index.provider_stems("alpha", "local") == {}
    assert index.duration("alpha") == pytest.approx(SECONDS)


# -------------------------------------------------------------------------------- audio


def test_selection_loads_every_source_at_the_player_rate(index):
    sel = X.load_selection(index, "alpha", "vocals", start=0.5, end=2.0)
    assert list(sel.sources) == ["mixture", "reference", "sourceress", "audioshake"]
    assert {y.shape for y in sel.sources.values()} == {(2, int(SECONDS * SR))}
    assert sel.clip("mixture").shape == (2, int(1.5 * SR))
    assert sel.clip("mixture", limit=0.5).shape == (2, int(0.5 * SR))
    # audioshake was delivered at 44.1 kHz: resampled, same content
    ref = sel.clip("reference")
    got = (
        sel.clip("audioshake")
        - 0.2
        * sf.read(index.track_info("alpha")["references"]["accompaniment"], always_2d=True)[0].T[
            :, int(0.5 * SR) : int(2.0 * SR)
        ]
    )
    assert np.abs(got - ref).max() < 0.01


def test_selection_clamps_the_range_and_says_what_is_missing(index):
    sel = X.load_selection(index, "alpha", "vocals", ["sourceress", "local"], start=-1, end=99)
    assert (sel.start, sel.end) == (0.0, pytest.approx(SECONDS))
    assert "local" not in sel.sources and "no vocals stem" in sel.missing["local"]
    drums = X.load_selection(index, "alpha", "drums")
    assert "no drums reference" in drums.missing["reference"]


def test_player_is_16_bit_wav_mono_unless_asked(index):
    sel = X.load_selection(index, "alpha", "vocals", end=1.0)
    mono = X.player(sel.clip("mixture"), SR)
    stereo = X.player(sel.clip("mixture"), SR, stereo=True)
    assert mono.data[:4] == b"RIFF" and len(mono.data) == 44 + 2 * SR
    assert len(stereo.data) == 44 + 4 * SR


# ----------------------------------------------------------------------- spectrograms


@pytest.mark.parametrize("scale", X.SCALES)
def test_spectrogram_finds_a_tone_on_every_scale(scale):
    tone = _tone(1000, seconds=10)
    spec = X.spectrogram(tone, SR, scale=scale, start=2.0, end=4.0, rows=120, columns=300)
    rows, cols = spec.db.shape
    assert rows == 120 and 150 <= cols <= 310
    peak = spec.freqs[spec.db.mean(axis=1).argmax()]
    assert peak == pytest.approx(1000, rel=0.08)
    assert (spec.start, spec.end) == (2.0, 4.0)
    assert np.all(np.diff(spec.freqs) > 0)


def test_spectrogram_is_small_for_long_audio():
    noise = np.random.default_rng(0).standard_normal((2, 120 * SR)).astype(np.float32)
    spec = X.spectrogram(noise, SR, scale="log", columns=500, rows=100)
    assert spec.db.shape[0] == 100 and spec.db.shape[1] <= 510
    with pytest.raises(ValueError, match="unknown frequency scale"):
        X.spectrogram(noise[:, :SR], SR, scale="bark")


def test_spectrogram_png_is_one_picture_a_normal_window_holds(index):
    sel = X.load_selection(index, "alpha", "vocals")
    png = X.spectrogram_png(X.selection_spectrograms(sel, scale="mel"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") <= 1000  # px wide


# -------------------------------------------------------------------------------- A/B


def test_ab_plays_a_then_b_or_alternates(index):
    sel = X.load_selection(index, "alpha", "vocals", start=0.0, end=2.0)
    seq = X.ab_pair(sel, "sourceress", "audioshake", gap=0.5)
    assert seq.clip.shape == (2, int(4.5 * SR))
    assert [(round(s, 2), round(e, 2), lb) for s, e, lb in seq.segments] == [
        (0.0, 2.0, "A"),
        (2.5, 4.5, "B"),
    ]
    mid = slice(int(0.5 * SR), int(1.5 * SR))
    assert np.allclose(seq.clip[:, mid], sel.clip("sourceress")[:, mid])
    alt = X.ab_pair(sel, "sourceress", "reference", segment=0.5)
    assert alt.clip.shape == (2, 2 * SR)
    assert [lb for _, _, lb in alt.segments] == ["A", "B", "A", "B"]
    assert "A = sourceress, B = reference" in alt.description
    with pytest.raises(KeyError):
        X.ab_pair(sel, "sourceress", "local")


def test_ab_metrics_puts_the_two_side_by_side(index):
    tables = X.track_tables(index, "alpha")
    table = X.ab_metrics(tables.metrics, "vocals", "sourceress", "audioshake")
    assert table.loc["nSDR (dB)"].tolist() == [12.5, 9.0, -3.5]  # sdr/global: the MDX nSDR
    assert list(table.index) == ["nSDR (dB)", "SI-SDR (dB)"]  # one name per metric
    assert list(table.columns) == ["A: sourceress", "B: audioshake", "B − A"]


# ------------------------------------------------------------------------------ tables


def test_track_tables_of_an_analysed_and_an_unanalysed_track(index):
    alpha = X.track_tables(index, "alpha")
    assert not alpha.scores.empty and ("nSDR (dB)", "sourceress") in alpha.scores.columns
    assert pd.api.types.is_datetime64_any_dtype(alpha.timeline["start"])
    assert alpha.verdicts is not None and alpha.verdicts["verdict"].tolist() == ["ok", "leaky"]
    assert alpha.jobs.set_index("provider")["state"].to_dict() == {
        "sourceress": "done",
        "audioshake": "done",
        "local": "failed",
    }
    assert X.stage_seconds(alpha.timeline).loc[("audioshake", "processing"), "wall (s)"] == 1.5
    assert X.timeline_png(alpha.timeline)[:4] == b"\x89PNG"
    beta = X.track_tables(index, "beta")
    assert beta.metrics.empty and beta.timeline.empty and beta.verdicts is None


# ----------------------------------------------------------------------------- widgets


def _player_count(output) -> int:
    return sum("<audio" in str(o["data"].get("text/html", "")) for o in output.outputs)


def test_explorer_builds_its_widget_tree(batch):
    import ipywidgets as W

    ex = X.Explorer(batch)
    assert isinstance(ex.widget, W.VBox)
    assert [ex.tabs.get_title(i) for i in range(5)] == [
        "listen",
        "spectrogram",
        "A/B",
        "metrics",
        "timeline",
    ]
    assert ex.track.options == ("alpha", "beta") and ex.stem.value == "vocals"
    assert ex.providers.value == ("sourceress", "audioshake")
    assert _player_count(ex.players) == 4  # mixture, reference, two providers
    assert ex.spectrogram.value[:4] == b"\x89PNG" and ex.timeline.value[:4] == b"\x89PNG"
    assert (ex.ab_a.value, ex.ab_b.value) == ("sourceress", "audioshake")
    assert "12.5" in ex.metrics.value and "leaky" in ex.metrics.value
    assert "out of memory" in ex.metrics.value  # the failed job is shown
    assert "could not" not in ex.status.value


def test_explorer_reacts_to_every_control(batch):
    ex = X.Explorer(batch)
    before = ex.spectrogram.value
    ex.scale.value = "linear"
    assert ex.spectrogram.value != before

    players, picture = ex.players.outputs, ex.spectrogram.value
    ex.stem.value = "accompaniment"
    assert ex.players.outputs != players and ex.spectrogram.value != picture
    assert ex.selection.stem == "accompaniment"

    ex.providers.value = ("audioshake",)
    assert _player_count(ex.players) == 3
    # the A/B still offers every provider of the stem, and says so
    assert ex.ab_a.options == ("sourceress", "audioshake", "reference", "mixture")
    assert "whichever are picked above" in ex.ab_note.value

    ex.time_range.value = (1.0, 2.0)
    assert ex.selection.clip("mixture").shape[1] == SR
    assert "1.0 – 2.0 s" in ex.range_label.value

    mono = ex.players.outputs
    ex.stereo.value = True
    assert ex.players.outputs != mono

    # in track time: A plays 1–2 s, then B plays 1–2 s (B at 0:01.4 on the player)
    assert "A 1.0–2.0 s, then B 1.0–2.0 s of the track" in str(ex.ab_player.outputs)
    assert "B starts at 0:01.4 on the player" in str(ex.ab_player.outputs)
    ex.ab_mode.value = "alternate"  # every 2 s: the 1 s range is all A
    assert "B 1.0" not in str(ex.ab_player.outputs)
    assert "A 1.0–2.0 s of the track" in str(ex.ab_player.outputs)

    metrics = ex.metrics.value
    ex.track.value = "beta"
    assert ex.metrics.value != metrics and "No metrics for this track yet" in ex.metrics.value
    assert ex.timeline.value == b"" and "No timeline" in ex.timeline_table.value
    assert ex.providers.value == ("sourceress", "audioshake")  # a new track: all again
    assert "could not" not in ex.status.value


def test_explorer_switches_batches(tmp_path):
    reports = tmp_path / "reports"
    first = make_batch(reports, "first")
    second = make_batch(reports, "second", with_analysis=False)
    ex = X.Explorer(first)
    assert {v for _, v in ex.batch.options} == {str(first), str(second)}
    ex.batch.value = str(second)
    assert ex.index.folder == second and "No metrics" in ex.metrics.value


def test_explorer_shows_a_broken_track_instead_of_raising(batch):
    (batch / "stems" / "beta" / "sourceress" / "vocals.wav").write_bytes(b"RIFF....WAVE")
    ex = X.Explorer(batch)
    ex.track.value = "beta"
    assert "sourceress" in ex.selection.missing
    assert "missing: sourceress" in ex.status.value
    ex.index.info["tracks"][1]["mixture"] = str(batch / "gone.wav")
    ex.stem.value = "accompaniment"  # the mixture is gone now: still no exception
    assert "mixture" in ex.selection.missing


def test_explore_falls_back_to_the_newest_batch_or_a_message(tmp_path):
    import ipywidgets as W

    reports = tmp_path / "reports"
    make_batch(reports, "scratch", with_analysis=False)
    widget = X.explore(reports / "demo")
    assert isinstance(widget, W.VBox)
    status = widget.children[-1].value
    assert "demo is not a batch" in status and "scratch" in status
    message = X.explore(tmp_path / "nowhere" / "demo")
    assert isinstance(message, W.HTML) and "make demo" in message.value


def test_the_notebook_is_two_cells_on_the_demo_batch():
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert 'batch_dir = "../reports/demo"' in code[0].source
    assert "explore(batch_dir)" in code[-1].source
    assert all(not c.outputs and c.execution_count is None for c in code)


# ------------------------------------------------------------- as a QA engineer uses it


def test_a_zero_length_range_is_widened_not_an_error(batch):
    """Both handles of the range slider on one spot: the view still plays and draws."""
    assert X.clamp_range(2.0, 2.0, SECONDS) == (2.0, 2.1)
    assert X.clamp_range(SECONDS, SECONDS, SECONDS) == (SECONDS - 0.1, SECONDS)
    assert X.player(np.zeros((2, 0), np.float32), SR).data[:4] == b"RIFF"
    ex = X.Explorer(batch)
    picture = ex.spectrogram.value
    ex.time_range.value = (1.5, 1.5)
    assert "could not" not in ex.status.value, ex.status.value
    assert (ex.selection.start, ex.selection.end) == (1.5, 1.6)
    assert ex.time_range.value == (1.5, 1.6)  # the slider shows what plays
    assert _player_count(ex.players) == 4 and ex.spectrogram.value != picture
    ex.time_range.value = (SECONDS, SECONDS)  # at the very end: widened backwards
    assert "could not" not in ex.status.value
    assert ex.selection.clip("mixture").shape[1] == pytest.approx(0.1 * SR, abs=1)


def test_metrics_tab_compares_one_metric_and_shows_what_did_not_pass(batch):
    ex = X.Explorer(batch)
    assert ex.metric.options == ("nSDR (dB)", "SI-SDR (dB)")  # every metric named one way
    table = X.metric_table(ex.tables.metrics, "nSDR (dB)")
    assert list(table.columns) == ["sourceress", "audioshake", "mixture", "best"]
    assert table.loc["vocals", "best"] == "sourceress"
    assert "nSDR (dB): providers side by side" in ex.metrics.value
    # verdicts: only what did not pass, unless asked
    (batch / "analysis" / "alpha" / "verdicts.csv").write_text(
        "track,provider,stem,check,value,unit,verdict\n"
        + "".join(f"alpha,sourceress,vocals,check{i},0,dB,pass\n" for i in range(50))
        + "alpha,audioshake,vocals,gain_db,-3.1,dB,fail\n"
    )
    ex = X.Explorer(batch)
    assert "51 checks, 50 passed; 1 not passed, shown here" in ex.metrics.value
    assert "gain_db" in ex.metrics.value and "check7" not in ex.metrics.value
    ex.passes.value = True
    assert "check7" in ex.metrics.value
    ex.metric.value = "SI-SDR (dB)"
    assert "SI-SDR (dB): providers side by side" in ex.metrics.value
    assert "12" in ex.metrics.value and "nSDR (dB): providers" not in ex.metrics.value


def test_times_are_track_times(batch):
    ex = X.Explorer(batch)
    ex.time_range.value = (1.0, 2.5)
    assert ex.time_range.readout and ex.time_range.readout_format == ".1f"
    players = str(ex.players.outputs)
    assert "plays 1.0–2.5 s of the track: its 0:00 is 1.0 s" in players
    sel = ex.selection
    alt = X.ab_pair(sel, "sourceress", "audioshake", segment=0.5)
    assert [(s, e) for s, e, _ in alt.track_segments][:2] == [(1.0, 1.5), (1.5, 2.0)]
    assert alt.description.startswith("A = sourceress, B = audioshake: A 1.0–1.5 s, B 1.5–2.0")


def test_ab_scores_say_they_are_whole_track_and_the_widget_shows_it_is_busy(batch):
    ex = X.Explorer(batch)
    assert "Scores of the whole track" in ex.ab_table.value
    assert "not of the range playing above" in ex.ab_table.value
    seen = []
    ex.busy.observe(lambda change: seen.append(change["new"]), "value")
    ex.stem.value = "accompaniment"
    assert len(seen) == 2 and "working: load the selection" in seen[0] and seen[1] == ""
    assert ex.busy.value == ""


def test_stage_seconds_say_wall_span_and_summed_work(batch, index):
    """AudioShake's job per stem: their queue waits overlap; the wall span counts them once."""
    tl = X.track_tables(index, "alpha").timeline
    t0 = tl["start"].min()
    extra = tl[(tl["provider"] == "audioshake") & (tl["stage"] == "queue wait")].assign(
        job_id="job9", start=t0 + pd.Timedelta(seconds=0.5), end=t0 + pd.Timedelta(seconds=2.5)
    )
    table = X.stage_seconds(pd.concat([tl, extra], ignore_index=True))
    row = table.loc[("audioshake", "queue wait")]
    assert (row["wall (s)"], row["summed (s)"], row["jobs"]) == (2.5, 4.0, 2)
    assert table.loc[("sourceress", "queue wait"), "summed (s)"] == 1.0
    ex = X.Explorer(batch)
    assert "wall" in ex.timeline_table.value and "summed" in ex.timeline_table.value


@pytest.mark.parametrize("scale", X.SCALES)
def test_spectrogram_axis_labels_do_not_overlap_and_say_hz_and_what_0_db_is(scale):
    from matplotlib.figure import Figure

    from stemkit import plots

    full = _tone(1000, seconds=2, amp=1.0)
    spec = X.spectrogram(full, SR, scale=scale)
    assert -7 < spec.db.max() <= 0.5  # 0 dB: a full-scale sine (less where bands average bins)
    # the labels as drawn in a panel of spectrogram_png: no two closer than a label's height
    fig = Figure(figsize=(9, 1.55), dpi=100)
    ax = fig.subplots()
    ax.imshow(spec.db, origin="lower", aspect="auto", extent=spec.extent)
    plots._freq_ticks(ax, spec, 0.8 * 1.55 * 100)
    fig.canvas.draw()
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    boxes = sorted((t.get_window_extent().y0, t.get_window_extent().y1) for t in labels)
    assert len(boxes) >= 3
    assert all(b0 >= a1 for (_, a1), (b0, _) in zip(boxes, boxes[1:], strict=False)), boxes
    assert all(t.get_text().endswith("Hz") for t in labels)
    assert "0 dB = a full-scale sine" in plots.DB_REFERENCE


def test_timeline_legend_fits_in_its_figure(index):
    from stemkit.plots import timeline_chart

    tl = X.track_tables(index, "alpha").timeline
    tl = tl[tl["provider"] == "sourceress"]  # one lane ...
    t0 = tl["start"].min()
    extra = pd.DataFrame(  # ... and many stages: the legend is taller than the lanes
        [("sourceress", "alpha", "job0", f"stage {k}", "vendor", t0, t0, 0.1) for k in range(10)],
        columns=["provider", "track", "job_id", "stage", "source", "start", "end", "seconds"],
    ).reindex(columns=tl.columns)
    fig = timeline_chart(pd.concat([tl, extra], ignore_index=True))
    fig.canvas.draw()
    legend = fig.axes[0].get_legend().get_window_extent()
    page = fig.bbox
    assert legend.y0 >= page.y0 - 1 and legend.y1 <= page.y1 + 1, (legend, page)


def test_the_notebook_carries_the_metadata_jupyterlab_writes():
    """JupyterLab rewrites a notebook's kernelspec and language_info from the kernel when it
    opens it: unless they already match, the notebook shows as modified before anything ran
    (checked in the browser by tests/test_lab.py). A new Python in the venv changes the
    version: update the notebook's ``language_info`` to what this test prints."""
    import subprocess
    import sys

    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager

    # asked in a child: ipykernel imported here leaves the widgets' comms to close at exit
    code = "import json; from ipykernel.ipkernel import IPythonKernel as K; "
    code += "print(json.dumps(K.language_info))"
    language_info = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))

    nb = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert dict(nb.metadata["kernelspec"]) == {
        "name": "python3",
        "display_name": spec.display_name,
        "language": spec.language,
    }
    assert json.loads(json.dumps(nb.metadata["language_info"])) == language_info
