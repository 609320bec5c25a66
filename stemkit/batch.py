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

from stemkit.batchdir import BatchFolder
from stemkit.errors import StemkitError
from stemkit.resources import bundled
from stemkit.separate.manifest import load_manifest

log = logging.getLogger("stemkit.batch")


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


def execute(notebook: Path, output: Path, parameters: dict, cwd: Path | None = None) -> Path:
    """Execute one notebook with papermill (no progress bar of its own)."""
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        progress_bar=False,
        cwd=str(cwd) if cwd else None,
        kernel_name="python3",
        # the kernel's own log (plain-TCP warning, shutdown notices) is noise on the console
        extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
    )
    return output


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


def _analyze_one(notebook: str, output: str, batch_dir: str, track: str) -> str:
    # the batch's run is the one that writes the analysis (the notebook alone changes nothing)
    params = {"batch_dir": batch_dir, "track": track, "save": True}
    execute(Path(notebook), Path(output), params)
    BatchFolder(batch_dir).fingerprint_path(track).write_text(inputs_fingerprint(batch_dir, track))
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
) -> list[str]:
    """Run the analysis notebook of every track whose inputs changed since its last
    analysis (all with ``force``), in local processes or on a Dask cluster. Waiting on
    vendors is over by now: this is the CPU-bound part. Returns the failure messages.

    Examples
    --------
    >>> analyze_batch("reports/demo", ["01-sunday-drive"], executor="dask")  # doctest: +SKIP
    []
    """
    from tqdm import tqdm

    batch = BatchFolder(out)
    out = batch.root
    nb_dir = Path(nb_dir) if nb_dir else bundled("notebooks")
    todo = [t for t in tracks if force or not _up_to_date(out, t, batch.notebook("analyze", t))]
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
    force: bool = False,
    transcribe: bool = True,
    executor: str = "local",
    scheduler: str | None = None,
    notebooks: str | Path | None = None,
    sandbox: Mapping[str, Any] | None = None,
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
    """

    from stemkit.compare.report import render_html

    batch = BatchFolder(out)
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
                "force": force,
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
        force=force,
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
