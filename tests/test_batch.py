"""End to end: the batch runs the three notebooks and writes a report a person can open."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from stemkit.batch import run_batch

from .conftest import CREDS, ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """The demo set written by `make data` (else written here)."""
    if (ROOT / "data" / "demo" / ".complete").exists():
        return ROOT / "data" / "demo"
    from stemkit.demo.speech import write_speech_tracks
    from stemkit.demo.synth import write_demo_set

    out = tmp_path_factory.mktemp("demo")
    write_demo_set(out)
    write_speech_tracks(out)
    return out


@pytest.fixture(scope="module")
def batch(sandbox, demo_dir, tmp_path_factory):
    """Two demo tracks and one broken file, on sourceress and audioshake."""
    tmp = tmp_path_factory.mktemp("batch")
    names = sorted(p.name for p in demo_dir.iterdir() if (p / "mixture.wav").exists())[:2]
    lines = ["track,mixture,vocals,drums,bass,other"]
    for name in names:
        d = demo_dir / name
        lines.append(
            ",".join(
                [
                    name,
                    *(str(d / f"{s}.wav") for s in ("mixture", "vocals", "drums", "bass", "other")),
                ]
            )
        )
    speech = demo_dir / "06-speech-kitchen"
    lines[0] += ",dialogue,music_fx,transcript"
    lines[1:] = [line + ",,," for line in lines[1:]]
    script = (speech / "transcript.txt").read_text().strip().replace('"', "")
    lines.append(
        ",".join(
            [
                "06-speech-kitchen",
                str(speech / "mixture.wav"),
                "",
                "",
                "",
                "",
                str(speech / "dialogue.wav"),
                str(speech / "music_fx.wav"),
                f'"{script}"',
            ]
        )
    )
    broken = tmp / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")  # a truncated header
    lines.append(f"broken-take,{broken},,,,,,,")
    manifest = tmp / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp / "out"
    result = run_batch(manifest, ["sourceress", "audioshake"], out, workers=2)
    return result, out, names


def test_report_has_summary_figures_and_failures(batch):
    result, out, names = batch
    assert result.report == out / "report.html"
    assert (result.jobs_done, result.jobs_failed) == (6, 2)
    assert result.tracks_failed == ["broken-take"] and not result.all_failed
    html = result.report.read_text()
    assert "stemkit QA report" in html
    assert "Contents:" in html
    # both challenge protocols, each labelled, each with its own chart
    assert "SiSEC18 / museval: BSS Eval v4 SDR (dB), median of 1 s frames" in html
    assert "global SDR (dB) per song, mean over songs" in html
    # the verdict table comes first, before any figure
    assert html.index("Verdicts") < html.index("<img")
    assert "oracle" in html and "baseline" in html
    # the charts (one per protocol, one per metric, timing) are embedded; each good track's
    # spectrogram grid and timeline are on its own page, linked from the track table
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 2
    for name in names:
        assert f'href="tracks/{name}.html"' in html
        page = (out / "tracks" / f"{name}.html").read_text()
        for fig in ("spectrograms", "timeline"):
            assert f'src="../analysis/{name}/{fig}.png"' in page
    assert "spectrograms.png" not in html
    assert "broken-take" in html and "not readable audio" in html
    assert "Intelligibility" in html
    assert "Traceback" not in html
    assert "def " not in html  # code cells are hidden


def test_tables_and_executed_notebooks_are_written(batch):
    _, out, names = batch
    for name in ("metrics", "timeline", "timing", "jobs"):
        assert (out / "tables" / f"{name}.csv").is_file()
        assert (out / "tables" / f"{name}.parquet").is_file()
    assert (out / "notebooks" / "separate.ipynb").is_file()
    assert (out / "notebooks" / "compare.ipynb").is_file()
    for name in names:
        assert (out / "notebooks" / "analyze" / f"{name}.ipynb").is_file()
        assert (out / "analysis" / name / "spectrograms.png").stat().st_size > 10_000
        assert (out / "analysis" / name / "timeline.png").stat().st_size > 5_000
    import pandas as pd

    metrics = pd.read_parquet(out / "tables" / "metrics.parquet")
    variants = {"bsseval_v4", "global", "scale-invariant", "mixture"}
    others = {v for v in set(metrics["variant"]) - variants if not v.startswith("from_")}
    assert variants <= set(metrics["variant"]) and others <= {"silence"}
    sdr = metrics[(metrics["metric"] == "sdr") & (metrics["variant"] == "bsseval_v4")].pivot_table(
        index="provider", columns="stem", values="value", aggfunc="median"
    )
    # every provider sits inside the bracket: below the oracle, above the floor
    assert (sdr.loc["oracle"] > sdr.loc["sourceress"]).all()
    verdicts = pd.read_csv(out / "tables" / "verdicts.csv")
    assert {"clip_pct", "recon_db", "offset_ms", "lufs", "rtf"} <= set(verdicts["check"])
    assert set(verdicts["verdict"]) <= {"pass", "warn", "fail", "n/a"}
    # a real separation beats the mixture-as-estimate floor on vocals by a wide margin
    for provider in ("sourceress", "audioshake"):
        assert sdr.loc[provider, "vocals"] > sdr.loc["mixture", "vocals"] + 3
        assert sdr.loc[provider, "accompaniment"] > sdr.loc["mixture", "accompaniment"] + 3
    timing = pd.read_csv(out / "tables" / "timing.csv")
    assert set(timing["provider"]) == {"sourceress", "audioshake", "loom"}
    assert (timing["processing"] > 0).all() and (timing["rtf"] > 0).all()
    recon = metrics[metrics["metric"] == "recon_db"]
    assert (recon[recon["provider"] == "sourceress"]["value"] < -60).all()


def test_no_credential_in_any_output(batch):
    from tests.support.chaos import scan_for_secrets

    _, out, _ = batch
    nb = json.loads((out / "notebooks" / "separate.ipynb").read_text())
    params = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert "password" not in "".join(params["source"]).lower()
    secrets = [CREDS[k] for k in ("password", "token", "key", "secret")]
    assert scan_for_secrets(out, secrets) == []
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in {".ipynb", ".html", ".json", ".csv", ".sqlite"}:
            assert b"Bearer " not in path.read_bytes(), path


def test_cli_exits_nonzero_only_when_every_track_failed(sandbox, tmp_path):
    bad = tmp_path / "bad"
    (bad / "t1").mkdir(parents=True)
    (bad / "t1" / "mixture.wav").write_text("not audio")
    stemkit = shutil.which("stemkit", path=str(ROOT / ".venv" / "bin")) or "stemkit"
    proc = subprocess.run(
        [
            stemkit,
            "batch",
            str(bad),
            "-p",
            "local",
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "every track failed" in proc.stderr
    assert (tmp_path / "out" / "report.html").is_file()


def test_intelligibility_table_has_every_source(batch):
    import pandas as pd

    _, out, _ = batch
    intel = pd.read_csv(out / "tables" / "intelligibility.csv")
    kitchen = intel[intel["track"] == "06-speech-kitchen"].set_index("source")
    assert set(kitchen.index) == {"mixture", "reference", "sourceress", "audioshake"}
    assert (kitchen["state"] == "done").all()
    assert kitchen.loc["reference", "wer"] < 0.25  # the clean dialogue is understood
    assert kitchen.loc["mixture", "wer"] > kitchen.loc["reference", "wer"]
    # the sandbox's speech path (stemkit.dsp.speech) helps the recogniser: better than the mix
    assert kitchen.loc["sourceress", "wer"] < kitchen.loc["mixture", "wer"]
    assert kitchen[["stoi", "estoi", "dnsmos_ovrl", "dnsmos_bak"]].notna().all().all()
    timeline = pd.read_csv(out / "tables" / "timeline.csv")
    assert (timeline["provider"] == "loom").sum() >= 4


def test_unchanged_tracks_are_not_analysed_again(batch):
    from stemkit.batch import analyze_batch

    _, out, names = batch
    notebook = out / "notebooks" / "analyze" / f"{names[0]}.ipynb"
    before = notebook.stat().st_mtime_ns
    assert analyze_batch(out, names) == []
    assert notebook.stat().st_mtime_ns == before  # skipped: inputs unchanged
    record = out / "stems" / names[0] / "sourceress" / "record.json"
    record.write_text(record.read_text().replace("  ", " "))  # the same record, reformatted
    assert analyze_batch(out, names) == []
    assert notebook.stat().st_mtime_ns == before  # the content is what counts
    rec = json.loads(record.read_text())
    rec["audio_seconds"] += 0.5  # what the analysis reads changed
    record.write_text(json.dumps(rec))
    assert analyze_batch(out, names) == []
    assert notebook.stat().st_mtime_ns > before  # its input changed: analysed again


def test_analysis_streams_behind_the_separate_phase(batch):
    """A track's analysis starts as soon as its jobs have ended, while other tracks are still
    being separated: the broken take fails at once, so its analysis starts (and its notebook
    records when) before the separate notebook is written at the end of the phase."""
    import nbformat

    _, out, names = batch
    separate_end = (out / "notebooks" / "separate.ipynb").stat().st_mtime
    started = {
        t: nbformat.read(out / "notebooks" / "analyze" / f"{t}.ipynb", 4).metadata["stemkit"][
            "started"
        ]
        for t in [*names, "06-speech-kitchen", "broken-take"]
    }
    assert started["broken-take"] < separate_end, (started, separate_end)
    ended = json.loads((out / "stems" / "06-speech-kitchen" / "ended.json").read_text())
    # the speech track was handed over only once its transcriptions had ended too
    assert ended["jobs"]["loom:sourceress"] == "done"
    assert (
        started["06-speech-kitchen"]
        > (out / "transcripts" / "06-speech-kitchen" / "sourceress" / "record.json").stat().st_mtime
    )


def test_dask_executor_streams_and_gives_the_same_tables(batch, tmp_path):
    """The whole batch again on a copy, on a Dask LocalCluster of 2 workers: the separate phase
    resumes (nothing is submitted again), every track is analysed again (their stamps removed)
    as its jobs end, and the tables match the local executor's."""
    import pandas as pd

    _, out, names = batch
    copy = tmp_path / "dask-copy"
    shutil.copytree(out, copy)
    for stamp in copy.glob("analysis/*/inputs.sha256"):
        stamp.unlink()
    result = run_batch(
        out.parent / "manifest.csv",
        ["sourceress", "audioshake"],
        copy,
        workers=2,
        executor="dask",
    )
    assert result.notebook_errors == [] and (result.jobs_done, result.jobs_failed) == (6, 2)
    jobs = pd.read_csv(copy / "tables" / "separate.csv")
    assert jobs["resumed"].dropna().str.startswith("skipped").sum() == 6  # nothing paid twice
    for name in names:
        a = pd.read_csv(out / "analysis" / name / "metrics.csv")
        b = pd.read_csv(copy / "analysis" / name / "metrics.csv")
        pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
        # SDR, nSDR and SI-SDR agree; SIR/SAR/ISR of estimates that lie in the references'
        # span (the mixture bracket, exact-sum masks) are ill-conditioned and differ with
        # the BLAS thread count of the worker, so they are compared only where well-posed
        stable = a["metric"].isin(["sdr", "nsdr", "si_sdr"]) & (a["value"].abs() < 100)
        np.testing.assert_allclose(a.loc[stable, "value"], b.loc[stable, "value"], atol=1e-6)
        assert (copy / "analysis" / name / "spectrograms.png").stat().st_size > 10_000
        assert (copy / "analysis" / name / "inputs.sha256").is_file()
        notebook = copy / "notebooks" / "analyze" / f"{name}.ipynb"
        assert (
            notebook.stat().st_mtime
            > (out / "notebooks" / "analyze" / f"{name}.ipynb").stat().st_mtime
        )


def test_bracket_is_computed_once_per_track_and_again_when_a_reference_changes(batch, tmp_path):
    """The oracle and baseline depend only on the mixture and references: a rerun reuses their
    scores (bracket.json), a changed reference file recomputes them, and the float32 work files
    they were scored from are gone afterwards."""
    import pandas as pd

    from stemkit.analyze import track as analysis

    _, out, names = batch
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    track = names[0]
    (copy / "analysis" / track / "bracket.json").unlink()
    first = analysis.analyze_track(copy, track, figures=False)
    again = analysis.analyze_track(copy, track, figures=False)
    assert (first.bracket, again.bracket) == ("computed", "cached")
    assert set(first.metrics["provider"]) >= {"oracle", "baseline", "mixture", "sourceress"}
    pd.testing.assert_frame_equal(first.metrics, again.metrics)
    assert not (copy / "analysis" / track / ".work").exists()

    info = json.loads((copy / "batch.json").read_text())
    entry = next(t for t in info["tracks"] if t["name"] == track)
    moved = tmp_path / "vocals.wav"
    shutil.copy(entry["references"]["vocals"], moved)
    entry["references"]["vocals"] = str(moved)
    (copy / "batch.json").write_text(json.dumps(info))
    assert analysis.analyze_track(copy, track, figures=False).bracket == "computed"

    core = analysis.analyze_track(copy, track, figures=False, bracket=False)
    assert set(core.metrics["provider"]) == {"sourceress", "audioshake"}
    assert core.bracket == "off"


def test_publish_copies_what_people_read_to_an_fsspec_url(batch, tmp_path):
    """To a shared folder through the CLI, and to fsspec's in-memory store: the report, tables,
    analyses and notebooks arrive; stems, the ledger and scratch files do not."""
    import fsspec
    from typer.testing import CliRunner

    from stemkit.cli import app
    from stemkit.errors import StemkitError
    from stemkit.publish import publish

    _, out, names = batch
    share = tmp_path / "share" / "run-1"
    result = CliRunner().invoke(app, ["publish", str(out), str(share)])
    assert result.exit_code == 0, result.output
    assert (share / "report.html").read_bytes() == (out / "report.html").read_bytes()
    assert (share / "analysis" / names[0] / "metrics.csv").is_file()
    assert (share / "analysis" / names[0] / "spectrograms.png").is_file()
    assert (share / "notebooks" / "compare.ipynb").is_file()
    assert (share / "tracks" / f"{names[0]}.html").is_file()  # the report's track pages
    assert not (share / "stems").exists() and not (share / "ledger.sqlite").exists()
    assert not list(share.rglob("*.part")) and not list(share.rglob("*.wav"))

    urls = publish(out, "memory://qa/run-1")
    memory = fsspec.filesystem("memory")
    assert any(u.startswith("memory://") and u.endswith("/qa/run-1/report.html") for u in urls)
    assert memory.cat_file("/qa/run-1/report.html") == (out / "report.html").read_bytes()
    assert memory.exists("/qa/run-1/tables/metrics.csv")
    with pytest.raises(StemkitError, match="no report"):
        publish(tmp_path, "memory://qa/none")
    with pytest.raises(StemkitError, match="cannot publish"):
        publish(out, "nosuchprotocol://x/y")
