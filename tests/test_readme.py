"""The README's notebook example works as written (run from notebooks/, as a user would)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from .conftest import ROOT


def test_readme_notebook_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## In a notebook\s+```python\n(.*?)```", readme, re.S).group(1)
    demo = ROOT / "data" / "demo"
    if not (demo / "01-sunday-drive" / "mixture.wav").exists():  # the Makefile writes it
        from stemkit.demo.synth import DEMO_TRACKS, write_track

        demo = tmp_path / "data" / "demo"
        write_track(DEMO_TRACKS[0], demo)
    code = code.replace("../data/demo", str(demo))
    work = tmp_path / "notebooks"
    work.mkdir()
    # as a new user would run it: no stemkit settings from this test session
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMKIT_")}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "'vocals'" in proc.stdout and "Finalising" in proc.stdout
    assert (work / "out" / "sunday" / "vocals.wav").is_file()


def test_readme_table_of_checks_is_the_profile():
    """One table in the README documents every check of the QA profile with its limits."""
    from stemkit.analyze.qa import load_profile

    readme = (ROOT / "README.md").read_text()
    table = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]  # unescaped pipes
        if len(cells) == 6 and re.fullmatch(r"`\w+`", cells[0]) and cells[1] != "row":
            table[cells[0].strip("`")] = (cells[3], cells[4])
    profile = load_profile()["checks"]
    assert set(table) == set(profile), set(table) ^ set(profile)

    def limit(text: str) -> float | None:
        m = re.search(r"(-?\d+(?:\.\d+)?)\s*$", text)
        return float(m.group(1)) if m else None

    for name, rule in profile.items():
        warn, fail = table[name]
        for cell, keys in (
            (warn, ("warn_above", "warn_below")),
            (fail, ("fail_above", "fail_below")),
        ):
            expected = next((rule[k] for k in keys if k in rule), None)
            assert limit(cell) == (None if expected is None else float(expected)), (name, cell)
