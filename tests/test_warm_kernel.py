"""The analysis phase's warm kernel: one kernel and one client run notebook after notebook, each
in an empty namespace; a failed cell keeps the kernel, a lost kernel is replaced."""

from __future__ import annotations

import os
import signal
import threading
import time

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from stemkit.batch import WarmKernel


def _notebook(path, *cells: str):
    nb = nbformat.v4.new_notebook()
    spec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = spec
    params = nbformat.v4.new_code_cell("value = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, path)
    return path


def _outputs(path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [
        o.get("text", "") or o.get("data", {}).get("text/plain", "")
        for c in nb.cells
        for o in c.get("outputs", [])
    ]


@pytest.fixture()
def kernel():
    k = WarmKernel()
    yield k
    k.shutdown()


def test_notebooks_run_in_an_empty_namespace_on_one_kernel_and_client(tmp_path, kernel):
    nb = _notebook(
        tmp_path / "a.ipynb",
        "import os\nprint('pid', os.getpid())",
        "print('left', 'leftover' in globals())\nleftover = value",
    )
    threads = []
    for i in range(4):
        kernel.execute(nb, tmp_path / f"out{i}.ipynb", {"value": i})
        threads.append(threading.active_count())
        meta = nbformat.read(tmp_path / f"out{i}.ipynb", as_version=4).metadata["stemkit"]
        assert meta["run"] == i + 1 and meta["seconds"] > 0
    outs = [_outputs(tmp_path / f"out{i}.ipynb") for i in range(4)]
    pids = {o[0] for o in outs}
    assert len(pids) == 1, pids  # the same kernel process each time
    assert all(o[1].strip() == "left False" for o in outs)  # nothing carried over
    assert threads[-1] == threads[0], threads  # no client's channels left open per notebook


def test_a_failed_cell_raises_and_the_kernel_runs_the_next_notebook(tmp_path, kernel):
    ok = _notebook(tmp_path / "ok.ipynb", "import os\nprint(os.getpid())")
    bad = _notebook(tmp_path / "bad.ipynb", "raise ValueError('corrupt stem: held-0007')")
    kernel.execute(ok, tmp_path / "1.ipynb", {})
    with pytest.raises(CellExecutionError, match="corrupt stem: held-0007"):
        kernel.execute(bad, tmp_path / "2.ipynb", {})
    assert "corrupt stem" in str(nbformat.read(tmp_path / "2.ipynb", as_version=4))
    kernel.execute(ok, tmp_path / "3.ipynb", {})
    assert _outputs(tmp_path / "1.ipynb") == _outputs(tmp_path / "3.ipynb")


def test_a_killed_kernel_is_replaced(tmp_path, kernel):
    nb = _notebook(tmp_path / "a.ipynb", "import os\nprint(os.getpid())")
    kernel.execute(nb, tmp_path / "1.ipynb", {})
    first = int(_outputs(tmp_path / "1.ipynb")[0])
    os.kill(first, signal.SIGKILL)
    for _ in range(200):  # the manager sees the process gone (not a timing assertion)
        if not kernel.km.is_alive():
            break
        time.sleep(0.05)
    kernel.execute(nb, tmp_path / "2.ipynb", {})
    second = int(_outputs(tmp_path / "2.ipynb")[0])
    assert second != first
    assert nbformat.read(tmp_path / "2.ipynb", as_version=4).metadata["stemkit"]["run"] == 1
