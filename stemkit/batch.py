"""Run a batch: the three notebooks with papermill, analysis notebooks in parallel processes.

    separate.ipynb (one per batch)  ->  analyze.ipynb (one per track, in parallel)
                                    ->  compare.ipynb (one per batch)  ->  report.html

The phases stream: the separate notebook runs in a thread of this process (its kernel does the
remote waits, which hold no CPU worker) while the batch watches the folder for tracks whose
jobs and transcriptions have ended (``stems/<track>/ended.json``) and hands each one to the
:class:`AnalysisPool` (local processes or Dask workers, a warm kernel each), unless its
analysis is up to date. ``run_batch(..., stream=False)`` analyses once every track is
separated (the earlier path, kept to measure against).

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
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
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
        self.kc = None
        self.runs = 0
        atexit.register(self.shutdown)

    def _ensure(self) -> None:
        """A live kernel and one client of it, its channels started once (a handshake each
        time would cost 0.2 s a notebook)."""
        if self.km is not None and self.km.is_alive() and self.kc is not None:
            return
        from jupyter_client.manager import KernelManager

        self.shutdown()
        km = KernelManager(kernel_name=self.kernel_name)
        km.start_kernel(extra_arguments=KERNEL_ARGS)
        self.km = km
        self.runs = 0
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=120)
        except BaseException:
            kc.stop_channels()
            self.shutdown()
            raise
        kc.allow_stdin = False
        self.kc = kc

    def _reset(self) -> None:
        """An empty namespace for the next notebook; imported modules stay loaded.

        IPython's ``%reset -f`` drops every name and cached output and collects garbage
        once (its output cache flush), so a track's arrays go before the next one starts.
        """
        reply = self.kc.execute_interactive(
            "get_ipython().run_line_magic('reset', '-f')", store_history=False, timeout=120
        )
        if reply["content"].get("status") != "ok":  # the kernel is in a state we cannot trust
            self.shutdown()
            self._ensure()

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
        from nbclient.exceptions import CellExecutionError
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook

        started, t0 = time.time(), time.perf_counter()
        self._ensure()
        if self.runs:
            self._reset()
        self.runs += 1
        nb = parameterize_notebook(
            load_notebook_node(str(notebook)), parameters, kernel_name=self.kernel_name
        )
        client = NotebookClient(nb, km=self.km, timeout=self.timeout, allow_errors=False)
        client.kc = self.kc  # our client, channels open: no new handshake, nothing left open
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.execute()
        except CellExecutionError:
            raise  # a cell failed and the kernel is idle again: it runs the next notebook
        except BaseException:
            self.shutdown()  # timed out, interrupted or lost: the next notebook gets a new one
            raise
        finally:
            # the client registers a kernel cleanup at exit; the kernel is ours to stop
            atexit.unregister(client._cleanup_kernel)
            # when and how long (kernel start or reset included): the batch's timing record
            nb.metadata["stemkit"] = {
                "started": started,
                "seconds": round(time.perf_counter() - t0, 3),
                "run": self.runs,
            }
            write_text(output, nbformat.writes(nb))
        return output

    def shutdown(self) -> None:
        """Stop the kernel (also at interpreter exit)."""
        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
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
    batch = BatchFolder(batch_dir)
    try:
        _KERNEL.execute(notebook, output, params)
    finally:  # a failed cell leaves no scratch audio behind (a whole track's float copies)
        shutil.rmtree(batch.work_dir(track), ignore_errors=True)
    batch.write_fingerprint(track, inputs_fingerprint(batch_dir, track))
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


class AnalysisPool:
    """The analysis workers of a batch: local processes or Dask workers, each running the
    analysis notebook of one track at a time on its warm kernel (see :class:`WarmKernel`).

    Tracks are handed over one by one as they become ready (:meth:`submit`) and collected
    as they finish (:meth:`finished`), so the analysis streams behind the separate phase.

    Parameters
    ----------
    out : path
        The batch folder.
    nb_dir : Path, optional
        Folder of ``analyze.ipynb`` (default: the bundled notebooks).
    executor, scheduler, workers
        As for :func:`analyze_batch`.

    Examples
    --------
    >>> with AnalysisPool("reports/demo") as pool:      # doctest: +SKIP
    ...     pool.submit("01-sunday-drive")
    ...     pool.finished(timeout=None)
    [('01-sunday-drive', None)]
    """

    def __init__(
        self,
        out: str | Path,
        *,
        nb_dir: Path | None = None,
        executor: str = "local",
        scheduler: str | None = None,
        workers: int | None = None,
    ) -> None:
        if executor not in ("local", "dask"):
            raise StemkitError(f"unknown executor {executor!r}; use 'local' or 'dask'")
        self.batch = BatchFolder(out)
        self.notebook = str((Path(nb_dir) if nb_dir else bundled("notebooks")) / "analyze.ipynb")
        self.executor, self.scheduler = executor, scheduler
        self.workers = workers or os.cpu_count() or 1
        self.futures: dict[Any, str] = {}
        self._pool = self._client = self._cluster = None

    def _start(self) -> None:
        if self.executor == "dask":
            from dask.distributed import Client, LocalCluster

            if self._client is None:
                if not self.scheduler:
                    self._cluster = LocalCluster(
                        n_workers=self.workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                    )
                self._client = Client(self.scheduler or self._cluster)
        elif self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)

    def submit(self, track: str) -> None:
        """Start the analysis of ``track`` on the next free worker (queued if none is).

        Parameters
        ----------
        track : str
            A track of the batch whose jobs have ended; its executed notebook goes to
            ``notebooks/analyze/<track>.ipynb``.

        Notes
        -----
        A local pool broken by a dead worker (e.g. killed for memory) is replaced: the
        tracks it held come back from :meth:`finished` with that error, the next ones run.
        """
        self._start()
        args = (
            self.notebook,
            str(self.batch.notebook("analyze", track)),
            str(self.batch.root),
            track,
        )
        if self._client is not None:
            fut = self._client.submit(_analyze_one, *args, pure=False)
        else:
            try:
                fut = self._pool.submit(_analyze_one, *args)
            except BrokenProcessPool:
                # a worker died (e.g. killed for memory): the tracks it held fail with that
                # message; the next ones get a fresh pool
                log.warning("an analysis worker died; starting new workers for %s on", track)
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                self._start()
                fut = self._pool.submit(_analyze_one, *args)
        self.futures[fut] = track

    @property
    def running(self) -> int:
        """Tracks submitted and not yet collected."""
        return len(self.futures)

    def finished(self, timeout: float | None = 0) -> list[tuple[str, BaseException | None]]:
        """The analyses that ended since the last call.

        Parameters
        ----------
        timeout : float or None
            Seconds to wait for at least one if none has ended (0: do not wait; None: wait
            for ever). Returns at once when nothing is running.

        Returns
        -------
        list of (str, BaseException or None)
            Each ended track with its failure (None: analysed), each reported once.
        """
        if not self.futures:
            return []
        if self._client is not None:
            from dask.distributed import wait as dask_wait

            with contextlib.suppress(TimeoutError):
                dask_wait(list(self.futures), timeout=timeout, return_when="FIRST_COMPLETED")
            done = [f for f in self.futures if f.done()]
        else:
            done, _ = futures_wait(list(self.futures), timeout=timeout, return_when=FIRST_COMPLETED)
        return [(self.futures.pop(f), f.exception()) for f in done]

    def close(self) -> None:
        """Stop the workers (their kernels stop with them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> AnalysisPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _failure_message(track: str, exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return (
        f"analysis of {track} failed: {lines[-1][:300]} (the executed notebook "
        f"notebooks/analyze/{track}.ipynb shows the failing cell; a rerun analyses it again)"
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
    analysis (all with ``force``), in local processes or on a Dask cluster. Returns the
    failure messages. (A batch run streams: :func:`run_batch` hands each track to the
    :class:`AnalysisPool` as soon as its jobs end; this analyses tracks already separated.)

    ``tracks_forced`` names tracks analysed again whatever their inputs.

    Examples
    --------
    >>> analyze_batch("reports/demo", ["01-sunday-drive"], executor="dask")  # doctest: +SKIP
    []
    """
    from tqdm import tqdm

    batch = BatchFolder(out)
    out = batch.root
    todo = [
        t
        for t in tracks
        if force or t in tracks_forced or not _up_to_date(out, t, batch.notebook("analyze", t))
    ]
    if len(todo) < len(tracks):
        log.info(
            "analysis: %d of %d tracks unchanged, skipped", len(tracks) - len(todo), len(tracks)
        )
    errors: list[str] = []
    if not todo:
        return errors
    bar = tqdm(total=len(todo), desc="analyze", unit="track")
    with AnalysisPool(
        out, nb_dir=nb_dir, executor=executor, scheduler=scheduler, workers=workers
    ) as pool:
        for t in todo:
            pool.submit(t)
        while pool.running:
            for track, exc in pool.finished(timeout=None):
                bar.update()
                if exc is not None:
                    errors.append(_failure_message(track, exc))
                    log.warning("%s", errors[-1])
    bar.close()
    return errors


def _separate(batch: BatchFolder, nb_dir: Path, params: dict, jobs: int) -> None:
    """Run the separate notebook, with a progress bar of its jobs."""
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_records, args=(batch.root, jobs, stop), daemon=True)
    watcher.start()
    try:
        execute(nb_dir / "separate.ipynb", batch.notebook("separate"), params)
    finally:
        stop.set()
        watcher.join()


def _separate_streaming(
    batch: BatchFolder,
    nb_dir: Path,
    params: dict,
    tracks: Sequence[str],
    n_providers: int,
    pool: AnalysisPool,
    everything: bool,
    forced: set[str],
) -> list[str]:
    """Run the separate notebook in a thread; meanwhile hand every track whose jobs ended
    (``stems/<track>/ended.json``) to ``pool``, skipping those whose analysis is up to date.
    Returns the analysis failures; a failure of the separate notebook is raised once the
    analyses already started have ended."""
    from tqdm import tqdm

    # the separate phase writes the markers anew; stale ones would start analyses too early
    batch.clear_ended()
    failure: list[BaseException] = []

    def separate() -> None:
        try:
            _separate(batch, nb_dir, params, len(tracks) * n_providers)
        except BaseException as exc:  # noqa: BLE001 - raised in the batch's thread below
            failure.append(exc)

    thread = threading.Thread(target=separate, name="separate", daemon=True)
    thread.start()
    bar = tqdm(total=len(tracks), desc="analyze", unit="track", position=1)
    handed: set[str] = set()
    errors: list[str] = []

    def hand(ready: set[str]) -> None:
        for t in tracks:
            if t in handed or t not in ready:
                continue
            handed.add(t)
            try:
                if (
                    everything
                    or t in forced
                    or not _up_to_date(batch.root, t, batch.notebook("analyze", t))
                ):
                    pool.submit(t)
                else:
                    bar.update()  # unchanged since its last analysis: skipped
            except Exception as exc:  # noqa: BLE001 - this track fails; the batch goes on
                bar.update()
                errors.append(_failure_message(t, exc))
                log.warning("%s", errors[-1])

    def collect(timeout: float | None) -> None:
        for track, exc in pool.finished(timeout=timeout):
            bar.update()
            if exc is not None:
                errors.append(_failure_message(track, exc))
                log.warning("%s", errors[-1])

    while thread.is_alive():
        hand(batch.ended_tracks())
        collect(timeout=0.5 if pool.running else None)
        thread.join(timeout=0 if pool.running else 0.5)
    thread.join()
    if not failure:  # e.g. a track the notebook wrote no marker for: analysed as before
        hand(set(tracks))
    while pool.running:
        collect(timeout=None)
    bar.close()
    if failure:
        raise failure[0]
    return errors


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
    stream: bool = True,
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
    stream : bool
        Start each track's analysis as soon as its jobs (and transcriptions) have ended,
        while the separate phase goes on (default); False: analyse once every track is
        separated (the earlier path, kept to measure against: ``bench/campaign.py``).
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
            stream=stream,
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
    stream: bool = True,
) -> BatchResult:
    """:func:`run_batch` with the folder's ``batch`` lock held."""
    from stemkit.compare.report import render_html

    out = batch.root
    nb_dir = Path(notebooks) if notebooks else bundled("notebooks")
    tracks = load_manifest(manifest)
    (batch.notebooks_dir / "analyze").mkdir(parents=True, exist_ok=True)
    result = BatchResult(out, None, tracks=len(tracks))

    separate_params = {
        "manifest": str(Path(manifest).resolve()),
        "providers": list(providers),
        "out_dir": str(out),
        "profile": profile,
        "stems": list(stems) if stems else None,
        "fmt": fmt,
        "force": force if isinstance(force, bool) else list(force),
        "retry": list(retry),
        "transcribe": transcribe,
    }
    everything = force is True or "all" in (force or ())
    forced = set() if isinstance(force, bool) else {f.split("/")[0] for f in force}
    names = [t.name for t in tracks]
    pool_args = {"nb_dir": nb_dir, "executor": executor, "scheduler": scheduler}
    if stream:
        with AnalysisPool(out, workers=workers, **pool_args) as pool:
            errors = _separate_streaming(
                batch, nb_dir, separate_params, names, len(providers), pool, everything, forced
            )
        result.notebook_errors += errors
    else:
        _separate(batch, nb_dir, separate_params, len(tracks) * len(providers))
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

    if not stream:
        result.notebook_errors += analyze_batch(
            out,
            names,
            workers=workers,
            force=everything,
            tracks_forced=sorted(forced),
            **pool_args,
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
