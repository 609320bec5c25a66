"""The suite's own scheduling: under xdist a file's tests share one worker, slow files first.

The grouping hook runs in the xdist workers (they collect the items), where ``numprocesses``
is None and ``loadgroup`` says how the items are distributed. When the hook read the wrong
flag, every slow module fixture (a whole batch, a JupyterLab, a wheel install) was built once
per worker; this checks the hook with a worker's view of the options.
"""

from __future__ import annotations

from types import SimpleNamespace

from .conftest import ROOT, SLOW_FIRST, pytest_collection_modifyitems


class _Item:
    def __init__(self, rel: str, name: str) -> None:
        self.fspath = ROOT / rel
        self.name = name
        self.marks: list = []

    def add_marker(self, mark) -> None:
        self.marks.append(mark)


def _items() -> list[_Item]:
    return [
        _Item("tests/test_stats.py", "a"),
        _Item("tests/test_batch.py", "b1"),
        _Item("notebooks/compare.ipynb", "c"),
        _Item("tests/test_batch.py", "b2"),
        _Item("tests/test_stats.py", "d"),
        _Item("notebooks/separate.ipynb", "s"),
    ]


def test_a_worker_groups_items_by_file_and_starts_the_slow_files_first():
    items = _items()
    worker = SimpleNamespace(option=SimpleNamespace(numprocesses=None, loadgroup=True))
    pytest_collection_modifyitems(worker, items)
    groups = {i.name: [m.args[0] for m in i.marks if m.name == "xdist_group"] for i in items}
    assert groups == {
        "a": ["tests/test_stats.py"],
        "d": ["tests/test_stats.py"],
        "b1": ["tests/test_batch.py"],
        "b2": ["tests/test_batch.py"],
        "c": ["notebooks"],
        "s": ["notebooks"],
    }
    assert SLOW_FIRST.index("tests/test_batch.py") < SLOW_FIRST.index("notebooks")
    # slow groups first in SLOW_FIRST's order; inside a file (and the rest) the order is kept
    assert [i.name for i in items] == ["b1", "b2", "c", "s", "a", "d"]


def test_without_loadgroup_nothing_is_marked_or_moved():
    items = _items()
    pytest_collection_modifyitems(SimpleNamespace(option=SimpleNamespace()), items)
    assert [i.name for i in items] == ["a", "b1", "c", "b2", "d", "s"]
    assert all(i.marks == [] for i in items)


def test_xdist_keeps_a_marked_group_on_one_worker(tmp_path):
    """The installed pytest and pytest-xdist honour xdist_group marks added at collection (the
    way the hook above adds them): two files of four tests, each file on one worker. With
    pytest 9.2 and xdist 3.8 the marks were silently ignored and the tests went round-robin."""
    import subprocess
    import sys

    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n"
        "@pytest.hookimpl(tryfirst=True)\n"
        "def pytest_collection_modifyitems(config, items):\n"
        "    for item in items:\n"
        "        item.add_marker(pytest.mark.xdist_group(item.fspath.basename))\n"
    )
    body = (
        "import os, pytest\n\n"
        "@pytest.mark.parametrize('i', range(4))\n"
        "def test_where(i):\n"
        "    with open({log!r}, 'a') as f:\n"
        "        f.write(f\"{name} {{os.environ['PYTEST_XDIST_WORKER']}}\\n\")\n"
    )
    log = tmp_path / "where.log"
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / name).write_text(body.format(log=str(log), name=name))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = [line.split() for line in log.read_text().splitlines()]
    assert len(runs) == 8
    workers = {name: {w for n, w in runs if n == name} for name in ("test_a.py", "test_b.py")}
    assert all(len(w) == 1 for w in workers.values()), workers
