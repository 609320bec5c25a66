"""Executing notebooks: papermill for a one-off, a warm kernel for many.

A batch runs ``analyze.ipynb`` once per track. Started one by one with papermill, every run
pays a kernel start and the imports (numpy, librosa, matplotlib, stemkit: about 3 s on the
development machine) before any analysis. :class:`WarmKernel` keeps one kernel per worker
process and runs notebook after notebook in it: each run starts from an empty namespace
(``%reset -f``) with the parameters injected as papermill does (an ``injected-parameters``
cell after the ``parameters`` cell), and every executed notebook is written out, outputs
and all, as the auditable record of that track; only the imports are not paid again.

Examples
--------
>>> kernel = WarmKernel()                                                # doctest: +SKIP
>>> kernel.execute("notebooks/analyze.ipynb", "out/a.ipynb",
...                {"batch_dir": "reports/demo", "track": "01-sunday-drive"})  # doctest: +SKIP
>>> kernel.shutdown()                                                    # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any

from stemkit.atomic import write_text

__all__ = ["WarmKernel", "execute"]

#: the kernel's own log (plain-TCP warning, shutdown notices) is noise on the console
KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]


def execute(notebook: Path, output: Path, parameters: dict, cwd: Path | None = None) -> Path:
    """Execute one notebook with papermill, in a kernel of its own (no progress bar).

    Parameters
    ----------
    notebook, output : Path
        The notebook to run and where to write the executed copy.
    parameters : dict
        Injected after the cell tagged ``parameters``.
    cwd : Path, optional
        The kernel's working folder.

    Returns
    -------
    Path
        ``output``.
    """
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        progress_bar=False,
        cwd=str(cwd) if cwd else None,
        kernel_name="python3",
        extra_arguments=KERNEL_ARGS,
    )
    return output


class WarmKernel:
    """One Jupyter kernel that executes notebook after notebook (imports paid once).

    Parameters
    ----------
    kernel_name : str
        The Jupyter kernel spec.
    timeout : float, optional
        Seconds a cell may run (default: no limit, as papermill).
    """

    def __init__(self, kernel_name: str = "python3", timeout: float | None = None) -> None:
        self.kernel_name = kernel_name
        self.timeout = timeout
        self.km = None
        self.runs = 0
        atexit.register(self.shutdown)

    def _ensure(self) -> None:
        if self.km is not None and self.km.is_alive():
            return
        from jupyter_client.manager import KernelManager

        self.shutdown()
        km = KernelManager(kernel_name=self.kernel_name)
        km.start_kernel(extra_arguments=KERNEL_ARGS)
        self.km = km

    def _reset(self) -> None:
        """An empty namespace for the next notebook; imported modules stay loaded."""
        kc = self.km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=120)
            kc.execute_interactive(
                "get_ipython().run_line_magic('reset', '-f')\nimport gc; gc.collect()",
                store_history=False,
                timeout=120,
            )
        finally:
            kc.stop_channels()

    def execute(
        self, notebook: str | os.PathLike, output: str | os.PathLike, parameters: dict[str, Any]
    ) -> Path:
        """Run ``notebook`` with ``parameters`` in the warm kernel; write it to ``output``.

        Parameters
        ----------
        notebook, output : path
            The notebook to run and where to write the executed copy (written also when a
            cell fails, so the failing cell and its traceback can be read there).
        parameters : dict
            Injected after the cell tagged ``parameters``, as papermill does.

        Returns
        -------
        Path
            ``output``.

        Raises
        ------
        nbclient.exceptions.CellExecutionError
            A cell failed; the message ends with the error's last line.
        """
        import nbformat
        from nbclient import NotebookClient
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook

        self._ensure()
        if self.runs:
            self._reset()
        self.runs += 1
        nb = parameterize_notebook(
            load_notebook_node(str(notebook)), parameters, kernel_name=self.kernel_name
        )
        client = NotebookClient(nb, km=self.km, timeout=self.timeout, allow_errors=False)
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.execute()
        finally:
            # the client registers a kernel cleanup at exit; the kernel is ours to stop
            atexit.unregister(client._cleanup_kernel)
            write_text(output, nbformat.writes(nb))
        return output

    def shutdown(self) -> None:
        """Stop the kernel (also at interpreter exit)."""
        if self.km is not None:
            try:
                if self.km.is_alive():
                    self.km.shutdown_kernel(now=True)
            finally:
                self.km.cleanup_resources()
                self.km = None
