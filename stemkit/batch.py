"""Run a batch: the three notebooks with papermill, analysis notebooks in parallel processes.

    separate.ipynb (one per batch)  ->  analyze.ipynb (one per track, in parallel)
                                    ->  compare.ipynb (one per batch)  ->  report.html

Only a profile *name* is passed as a papermill parameter (papermill stores parameters in the
executed notebook); credentials are read by :mod:`stemkit.config` inside the kernel.

Examples
--------
>>> from stemkit.batch import run_batch
>>> result = run_batch("data/demo", ["sourceress"], "reports/demo")   # doctest: +SKIP
>>> result.report                                                     # doctest: +SKIP
PosixPath('reports/demo/report.html')
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemkit.atomic import write_text
from stemkit.batchdir import BatchFolder
from stemkit.errors import StemkitError
from stemkit.resources import bundled
from stemkit.separate.manifest import load_manifest

log = logging.getLogger("stemkit.batch")


# --------------------------------------------------------------------------- notebooks
# A batch runs analyze.ipynb once per track. Started one by one with papermill, every run pays
# a kernel start and the imports (numpy, librosa, matplotlib, stemkit: seconds) before any
# analysis; WarmKernel keeps one kernel per worker process and runs notebook after notebook in
# it (an empty namespace each time, parameters injected as papermill does), each executed
# notebook still written out as the auditable record of its track.

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

    Examples
    --------
    >>> kernel = WarmKernel()                                                # doctest: +SKIP
    >>> kernel.execute("notebooks/analyze.ipynb", "out/a.ipynb",
    ...                {"batch_dir": "reports/demo", "track": "01-sunday-drive"})  # doctest: +SKIP
    >>> kernel.shutdown()                                                    # doctest: +SKIP
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


@dataclass
class BatchResult:
    """Where a batch wrote its outputs, and how many jobs and tracks failed."""

    out: Path
    report: Path | None
    jobs_done: int = 0
    jobs_failed: int = 0
    tracks_failed: list[str] = field(default_factory=list)
    notebook_errors: list[str] = field(default_factory=list)
    tracks: int = 0

    @property
    def all_failed(self) -> bool:
        """True when no track produced any stem (the batch should exit non-zero)."""
        return self.tracks > 0 and len(self.tracks_failed) >= self.tracks


def _watch_records(out: Path, total: int, stop: threading.Event) -> None:
    """Progress bar of the separate step, which runs in a notebook kernel: count the
    ``record.json`` files it writes (one per finished job, done or failed)."""
    from tqdm import tqdm

    since = time.time() - 1
    bar = tqdm(total=total, desc="separate", unit="job")
    batch = BatchFolder(out)

    def finished() -> tuple[int, int]:
        n = failed = 0
        for path in batch.record_paths():
            try:
                if path.stat().st_mtime >= since:
                    n += 1
                    failed += '"state": "failed"' in path.read_text()
            except OSError:
                continue
        return n, failed

    while True:
        stopping = stop.wait(0.5)
        bar.n, failed = finished()
        bar.set_postfix(failed=failed, refresh=False)
        bar.refresh()
        if stopping:
            break
    bar.close()


#: this worker process's kernel: every analysis it runs reuses it (see WarmKernel)
_KERNEL: WarmKernel | None = None


def _analyze_one(notebook: str, output: str, batch_dir: str, track: str) -> str:
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = WarmKernel()
    # the batch's run is the one that writes the analysis (the notebook alone changes nothing)
    params = {"batch_dir": batch_dir, "track": track, "save": True}
    _KERNEL.execute(notebook, output, params)
    BatchFolder(batch_dir).write_fingerprint(track, inputs_fingerprint(batch_dir, track))
    return track


def inputs_fingerprint(out: str | Path | BatchFolder, track: str) -> str:
    """A digest of everything a track's analysis reads: batch settings, job records (they
    carry stem names and timings), transcription records, and the stem files' checksums.

    Examples
    --------
    >>> len(inputs_fingerprint("reports/demo", "01-sunday-drive"))   # doctest: +SKIP
    64
    """
    from stemkit.separate.ledger import Ledger

    batch = BatchFolder(out)
    digest = hashlib.sha256()
    info = batch.info()
    entry = next((t for t in info["tracks"] if t["name"] == track), {})
    digest.update(json.dumps([entry, info["providers"]], sort_keys=True).encode())
    for provider in info["providers"]:
        digest.update(json.dumps(batch.read_record(track, provider), sort_keys=True).encode())
    for record in batch.transcript_records(track):
        digest.update(json.dumps(record, sort_keys=True).encode())
    ledger = Ledger(batch.root)
    for provider in info["providers"]:
        for f in ledger.files(track, provider):
            digest.update(f"{f['stem']}:{f['sha256']}".encode())
    ledger.close()
    return digest.hexdigest()


def _up_to_date(out: Path, track: str, notebook: Path) -> bool:
    stamp = BatchFolder(out).fingerprint_path(track)
    return (
        notebook.is_file()
        and stamp.is_file()
        and stamp.read_text() == inputs_fingerprint(out, track)
    )


def analyze_batch(
    out: str | Path,
    tracks: Sequence[str],
    *,
    nb_dir: Path | None = None,
    workers: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    force: bool = False,
    tracks_forced: Sequence[str] = (),
) -> list[str]:
    """Run the analysis notebook of every track whose inputs changed since its last
    analysis (all with ``force``), in local processes or on a Dask cluster. Waiting on
    vendors is over by now: this is the CPU-bound part. Returns the failure messages.

    ``tracks_forced`` names tracks analysed again whatever their inputs.

    Examples
    --------
    >>> analyze_batch("reports/demo", ["01-sunday-drive"], executor="dask")  # doctest: +SKIP
    []
    """
    from tqdm import tqdm

    batch = BatchFolder(out)
    out = batch.root
    nb_dir = Path(nb_dir) if nb_dir else bundled("notebooks")
    todo = [
        t
        for t in tracks
        if force or t in tracks_forced or not _up_to_date(out, t, batch.notebook("analyze", t))
    ]
    if len(todo) < len(tracks):
        log.info(
            "analysis: %d of %d tracks unchanged, skipped", len(tracks) - len(todo), len(tracks)
        )
    args = {
        t: (
            str(nb_dir / "analyze.ipynb"),
            str(batch.notebook("analyze", t)),
            str(out),
            t,
        )
        for t in todo
    }
    errors: list[str] = []
    bar = tqdm(total=len(todo), desc="analyze", unit="track")
    for track, exc in _run_all(args, executor, scheduler, workers):
        bar.update()
        if exc is not None:
            msg = f"analysis of {track} failed: {str(exc).strip().splitlines()[-1][:300]}"
            errors.append(msg)
            log.warning(msg)
    bar.close()
    return errors


def _run_all(args: dict[str, tuple], executor: str, scheduler: str | None, workers: int | None):
    """Yield (track, exception or None) as analysis notebooks finish."""
    if not args:
        return
    if executor == "dask":
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed

        cluster = (
            None
            if scheduler
            else LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
        )
        with Client(scheduler or cluster) as client:
            futures = {client.submit(_analyze_one, *a, pure=False): t for t, a in args.items()}
            for fut in dask_completed(futures):
                yield futures[fut], fut.exception()
        if cluster is not None:
            cluster.close()
        return
    if executor != "local":
        raise StemkitError(f"unknown executor {executor!r}; use 'local' or 'dask'")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1, mp_context=ctx) as pool:
        futures = {pool.submit(_analyze_one, *a): t for t, a in args.items()}
        for fut in as_completed(futures):
            yield futures[fut], fut.exception()


def run_batch(
    manifest: str | Path,
    providers: Sequence[str],
    out: str | Path,
    *,
    profile: str | None = None,
    stems: Sequence[str] | None = None,
    fmt: str = "wav",
    workers: int | None = None,
    force: bool | Sequence[str] = False,
    retry: Sequence[str] = (),
    transcribe: bool = True,
    executor: str = "local",
    scheduler: str | None = None,
    notebooks: str | Path | None = None,
    sandbox: Mapping[str, Any] | None = None,
    wait: float = 0,
) -> BatchResult:
    """Separate, analyse and compare a manifest; write ``<out>/report.html``.

    Parameters
    ----------
    manifest : path
        MUSDB18-layout folder or CSV (see :func:`stemkit.separate.manifest.load_manifest`).
    providers : list of str
        Provider keys, e.g. ``["sourceress"]``.
    out : path
        Batch folder; rerunning into the same folder resumes (see :mod:`stemkit.separate.ledger`).
    profile : str, optional
        Profile name for every provider (default: ``$STEMKIT_PROFILE`` or ``sandbox``).
    force : bool or list of str
        Submit again what it names (``TRACK`` or ``TRACK/PROVIDER``; ``True``: everything).
    retry : list of str
        Ledger states to submit again, e.g. ``["ambiguous"]``.
    workers : int, optional
        Analysis notebooks run at once (default: CPU count).
    transcribe : bool
        Transcribe the speech of tracks that have a script (``loom``), for the WER section.
    executor, scheduler : str
        Where the per-track analysis notebooks run: ``"local"`` processes, or ``"dask"`` on
        the cluster at ``scheduler`` (an address; None starts a LocalCluster).
    sandbox : mapping, optional
        What each emulated vendor of the sandbox runs (``GET /_sandbox/personas``: engine,
        defects, known answer), recorded in ``batch.json`` so the report can say so.
    wait : float
        One process at a time runs a batch in ``out``: seconds to wait for another one to
        finish (``-1``: for ever) before :class:`~stemkit.errors.BatchBusy` is raised.
    """

    batch = BatchFolder(out)
    with batch.lock("batch", wait=wait):
        return _run_locked(
            manifest,
            providers,
            batch,
            profile=profile,
            stems=stems,
            fmt=fmt,
            workers=workers,
            force=force,
            retry=retry,
            transcribe=transcribe,
            executor=executor,
            scheduler=scheduler,
            notebooks=notebooks,
            sandbox=sandbox,
        )


def _run_locked(
    manifest: str | Path,
    providers: Sequence[str],
    batch: BatchFolder,
    *,
    profile: str | None,
    stems: Sequence[str] | None,
    fmt: str,
    workers: int | None,
    force: bool | Sequence[str],
    retry: Sequence[str],
    transcribe: bool,
    executor: str,
    scheduler: str | None,
    notebooks: str | Path | None,
    sandbox: Mapping[str, Any] | None,
) -> BatchResult:
    """:func:`run_batch` with the folder's ``batch`` lock held."""
    from stemkit.compare.report import render_html

    out = batch.root
    nb_dir = Path(notebooks) if notebooks else bundled("notebooks")
    tracks = load_manifest(manifest)
    (batch.notebooks_dir / "analyze").mkdir(parents=True, exist_ok=True)
    result = BatchResult(out, None, tracks=len(tracks))

    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_records, args=(out, len(tracks) * len(providers), stop), daemon=True
    )
    watcher.start()
    try:
        execute(
            nb_dir / "separate.ipynb",
            batch.notebook("separate"),
            {
                "manifest": str(Path(manifest).resolve()),
                "providers": list(providers),
                "out_dir": str(out),
                "profile": profile,
                "stems": list(stems) if stems else None,
                "fmt": fmt,
                "force": force if isinstance(force, bool) else list(force),
                "retry": list(retry),
                "transcribe": transcribe,
            },
        )
    finally:
        stop.set()
        watcher.join()
    if sandbox is not None and batch.info_path.is_file():
        batch.write_info({**batch.info(), "sandbox": dict(sandbox)})

    failed_tracks = []
    for t in tracks:
        states = [(batch.read_record(t.name, p) or {}).get("state") for p in providers]
        result.jobs_done += states.count("done")
        result.jobs_failed += len(states) - states.count("done")
        if "done" not in states:
            failed_tracks.append(t.name)
    result.tracks_failed = failed_tracks

    result.notebook_errors += analyze_batch(
        out,
        [t.name for t in tracks],
        nb_dir=nb_dir,
        workers=workers,
        executor=executor,
        scheduler=scheduler,
        force=force is True or "all" in (force or ()),
        tracks_forced=() if isinstance(force, bool) else [f.split("/")[0] for f in force],
    )

    t0 = time.monotonic()
    compare_nb = batch.notebook("compare")
    try:
        execute(nb_dir / "compare.ipynb", compare_nb, {"batch_dir": str(out)})
    except Exception as exc:  # noqa: BLE001
        raise StemkitError(
            f"the compare notebook failed: {exc}",
            step="compare",
            hint=f"open {compare_nb} to see the failing cell",
        ) from None
    result.report = render_html(compare_nb, batch.report_path)
    log.info("report written in %.1f s", time.monotonic() - t0)
    return result
