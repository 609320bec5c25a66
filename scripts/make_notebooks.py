"""Write the three thin notebooks of stemkit (run once; the .ipynb files are committed).

python scripts/make_notebooks.py
"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent.parent / "notebooks"


def notebook(cells: list[tuple[str, str, list[str]]]) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src, tags in cells:
        cell = nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


SEPARATE = [
    (
        "md",
        "# Separate\nEvery track of the manifest × every provider, submitted concurrently;"
        " stems and `record.json` (events, timings, errors) land in `<out_dir>/stems/`.\n"
        "Credentials come from the profile's config, never from these parameters.",
        [],
    ),
    (
        "code",
        'manifest = "data/demo"  # a MUSDB18-layout folder or a CSV\n'
        'providers = ["sourceress"]\n'
        'out_dir = "reports/scratch"\n'
        "profile = None  # a profile name from stemkit.toml; never a password\n"
        'stems = None  # e.g. ["vocals", "drums", "bass", "other"]\n'
        'fmt = "wav"\n'
        "force = False  # True submits again even what the ledger says is done",
        ["parameters"],
    ),
    (
        "code",
        "from stemkit.pipeline import separate_batch\n\n"
        "jobs = separate_batch(manifest, providers, out_dir, profile=profile, stems=stems,\n"
        "                      fmt=fmt, force=force)\n"
        'jobs.groupby(["provider", "state"]).size().unstack(fill_value=0)',
        [],
    ),
    ("code", 'jobs[jobs["state"] != "done"][["track", "provider", "error"]]', []),
]

ANALYZE = [
    ("code", 'batch_dir = "reports/scratch"\ntrack = "01-sunday-drive"', ["parameters"]),
    (
        "code",
        "from IPython.display import Image, Markdown, display\n\n"
        "from stemkit.analysis import analyze_track\n\n"
        "a = analyze_track(batch_dir, track)\n"
        'display(Markdown(f"## {track}"))\n'
        "for f in a.failures:\n"
        "    display(Markdown(f\"**failed**: {f['error']}\"))",
        [],
    ),
    (
        "code",
        'a.metrics.pivot_table(index="stem", columns=["metric", "provider"], '
        'values="value").round(2)',
        [],
    ),
    ("code", "for name, path in a.figures.items():\n    display(Image(filename=str(path)))", []),
]

COMPARE = [
    ("code", 'batch_dir = "reports/scratch"', ["parameters"]),
    (
        "code",
        "from IPython.display import Image, Markdown, display\n\n"
        "from stemkit.plots import metric_chart\n"
        "from stemkit.report import load_batch\n\n"
        "b = load_batch(batch_dir)\n"
        'done = (b.jobs["state"] == "done").sum()\n'
        'display(Markdown(f"# stemkit QA report: `{b.folder.name}`\\n\\n"\n'
        "                 f\"{len(b.tracks)} tracks × {len(b.info['providers'])} provider(s)"
        ' "\n'
        "                 f\"({', '.join(b.info['providers'])}): **{done} jobs done, \"\n"
        "                 f\"{len(b.failures)} failed**. Created {b.info['created_at']}.\"))",
        [],
    ),
    (
        "md",
        "## Summary: median global SDR (dB), provider × stem\n"
        "`mixture` is the mixture used as the estimate: the floor a separation must beat.",
        [],
    ),
    ("code", "b.summary", []),
    (
        "code",
        "if not b.metrics.empty:\n"
        '    metric_chart(b.metrics, "sdr", title="SDR per stem (bars: median, dots: '
        'tracks)");',
        [],
    ),
    (
        "md",
        "## Timing\nMedian seconds per provider (vendor clock for queue wait and processing,"
        " client clock end to end); real-time factor = processing / audio seconds.",
        [],
    ),
    ("code", "b.timing_summary", []),
    ("md", "## Failures", []),
    ("code", 'b.failures if not b.failures.empty else Markdown("No failed jobs.")', []),
    ("md", "## Tracks", []),
    (
        "code",
        "for track in b.tracks:\n"
        '    display(Markdown(f"### {track}"))\n'
        '    m = b.metrics[b.metrics["track"] == track]\n'
        "    if not m.empty:\n"
        '        display(m.pivot_table(index="stem", columns=["metric", "provider"],\n'
        '                              values="value").round(2))\n'
        '    for fig in ("spectrograms.png", "timeline.png"):\n'
        '        path = b.folder / "analysis" / track / fig\n'
        "        if path.is_file():\n"
        "            display(Image(filename=str(path)))",
        [],
    ),
]

if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    for name, cells in (("separate", SEPARATE), ("analyze", ANALYZE), ("compare", COMPARE)):
        nbf.write(notebook(cells), HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")
