"""Write the three thin notebooks of stemkit (the .ipynb files are committed, outputs cleared).

    .venv/bin/python scripts/make_notebooks.py

Each notebook is a ``parameters`` cell and a few calls into the library. Default parameters
use paths relative to ``notebooks/`` (the kernel's working directory in Jupyter and nbmake).
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import nbformat as nbf

HERE = Path(__file__).resolve().parent.parent / "notebooks"


def md(text: str) -> nbf.NotebookNode:
    return nbf.v4.new_markdown_cell(dedent(text).strip())


def code(text: str, *tags: str) -> nbf.NotebookNode:
    cell = nbf.v4.new_code_cell(dedent(text).strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def notebook(cells: list[nbf.NotebookNode]) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i}"  # stable ids: regenerating gives the same file
    nb.cells = cells
    return nb


SEPARATE = [
    md("""
        # Separate
        Every track of the manifest × every provider, submitted concurrently. Stems and
        `record.json` (vendor events, our own timings, errors) land in `<out_dir>/stems/`;
        the ledger makes a rerun resume instead of paying twice.
        Credentials come from the profile's configuration, never from these parameters.
    """),
    code(
        """
        manifest = "../data/demo"  # a MUSDB18-layout folder or a CSV
        providers = ["sourceress"]
        out_dir = "../reports/scratch"
        profile = None  # a profile name from stemkit.toml; never a password
        stems = None  # e.g. ["vocals", "drums", "bass", "other"]
        fmt = "wav"
        force = False  # True submits again even what the ledger says is done
        transcribe = True  # tracks with a script: transcribe mixture, reference, speech stems
    """,
        "parameters",
    ),
    code("""
        from stemkit.separate.run import separate_batch

        jobs = separate_batch(manifest, providers, out_dir, profile=profile, stems=stems,
                              fmt=fmt, force=force)
        jobs.groupby(["provider", "state"]).size().unstack(fill_value=0)
    """),
    code("""
        jobs[jobs["state"] != "done"][["track", "provider", "error"]]
    """),
    code("""
        from stemkit.separate.transcribe import transcribe_batch

        if transcribe:
            transcripts = transcribe_batch(out_dir, profile=profile)
            display(transcripts.groupby("state").size())
    """),
]

ANALYZE = [
    code(
        """
        batch_dir = "../reports/scratch"
        track = "01-sunday-drive"
    """,
        "parameters",
    ),
    code("""
        from IPython.display import Image, Markdown, display

        from stemkit.analyze.track import analyze_track
        from stemkit.compare.report import notebook_setup, track_table

        notebook_setup()
        a = analyze_track(batch_dir, track)
        display(Markdown(f"## {track}"))
        for f in a.failures:
            display(Markdown(f"**failed**: {f['error']}"))
        track_table(a.metrics)
    """),
    code("""
        from stemkit.analyze.qa import summary_verdicts

        if a.verdicts is not None and not a.verdicts.empty:
            display(summary_verdicts(a.verdicts))
    """),
    code("""
        for name, path in a.figures.items():
            display(Image(filename=str(path)))
    """),
]

COMPARE = [
    code(
        """
        batch_dir = "../reports/scratch"
    """,
        "parameters",
    ),
    code("""
        from IPython.display import Image, Markdown, display

        from stemkit.plots import (
            intelligibility_chart,
            metric_chart,
            timeline_chart,
            timing_chart,
        )
        from stemkit.compare.report import load_batch, notebook_setup, track_table

        notebook_setup()
        b = load_batch(batch_dir)
        providers = ", ".join(b.info["providers"])
        done = int((b.jobs["state"] == "done").sum())
        display(Markdown(
            f"# stemkit QA report: `{b.folder.name}`\\n\\n"
            f"{len(b.tracks)} tracks × {len(b.info['providers'])} provider(s) ({providers}): "
            f"**{done} jobs done, {len(b.failures)} failed**. Created {b.info['created_at']}.\\n\\n"
            "Contents: [verdicts](#Verdicts) · [scores](#Summary) · [timing](#Timing) · "
            "[intelligibility](#Intelligibility) · [failures](#Failures) · tracks: "
            + " · ".join(f"[{t}](#{t})" for t in b.tracks)
        ))
    """),
    md("""
        ## Verdicts
        Reference-free QA checks of every stem and job (reconstruction, clipping, silence,
        DC offset, duration/rate/channels, loudness, peaks, polarity, channel swap, offset,
        processing time), judged by the QA profile: the worst verdict per provider, track and
        stem, failures first, with what failed and by how much.
    """),
    code("""
        v = b.verdict_summary
        if v.empty:
            display(Markdown("No stem was checked (no job finished)."))
        else:
            display(b.verdict_counts)
            flagged = v[v["verdict"] != "pass"]
            display(flagged if not flagged.empty else
                    Markdown("Every stem and job passes every check."))
    """),
    md("""
        ## Summary
        Median SDR (BSS Eval v4, dB), provider × stem.
        Every provider between the bracket, as in SiSEC: `oracle` (ideal ratio mask: the
        ceiling), `baseline` (the sandbox's DSP separation run locally) and `mixture` (the
        mixture as the estimate: the floor a separation must beat).
    """),
    code("""
        b.summary
    """),
    code("""
        if not b.metrics.empty:
            metric_chart(b.metrics, "sdr", title="SDR v4 per stem (bars: median, dots: tracks)");
    """),
    md("""
        ## Timing
        Median seconds per provider: queue wait and processing on the vendor's clock, end to
        end on ours; real-time factor = processing seconds / audio seconds.
    """),
    code("""
        b.timing_summary
    """),
    code("""
        if not b.timing.empty:
            timing_chart(b.timing, title="Time per provider");
        if not b.timeline.empty:
            timeline_chart(b.timeline, title="Every job: vendor stages and our own steps");
    """),
    md("""
        ## Intelligibility
        Word error rate against the script, after one normalisation (lower case, punctuation
        and apostrophes removed): the mixture, the reference dialogue, and each provider's
        dialogue (or vocals) stem, transcribed by the same service.
    """),
    code("""
        if b.intelligibility.empty:
            display(Markdown("No track of this batch has a script."))
        else:
            display(b.intelligibility_summary)
            intelligibility_chart(b.intelligibility, title="WER per speech track");
    """),
    md("""
        ## Failures
    """),
    code("""
        b.failures if not b.failures.empty else Markdown("No failed jobs.")
    """),
    md("""
        ## Tracks
    """),
    code("""
        for track in b.tracks:
            display(Markdown(f"### {track}"))
            table = track_table(b.metrics, track)
            if not table.empty:
                display(table)
            for fig in ("spectrograms.png", "timeline.png"):
                path = b.folder / "analysis" / track / fig
                if path.is_file():
                    display(Image(filename=str(path)))
    """),
]

if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    for name, cells in (("separate", SEPARATE), ("analyze", ANALYZE), ("compare", COMPARE)):
        nbf.write(notebook(cells), HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")
