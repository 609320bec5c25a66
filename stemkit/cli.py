"""Command line: ``stemkit serve | batch | demo | demo-data | report | jobs | publish | lab |
listen``.

The CLI is the composition root: the one product module that starts the embedded sandbox
(:mod:`stemkit.sandbox`, a separate application) for a batch or the demo.

Examples
--------
::

    stemkit serve --port 8765                       # the sandbox, in the foreground
    stemkit serve --state sandbox-state             # ... keeping its jobs across restarts
    stemkit batch data/demo --provider sourceress --out reports/mine
    stemkit demo                                    # demo data + sandbox + batch + report
    stemkit validate data/demo                      # every QA check against injected defects
    stemkit lab                                     # JupyterLab on the notebooks
    stemkit listen design reports/demo --items 12   # a blind MUSHRA test of the batch
    stemkit listen analyze reports/demo results/*.csv
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import typer

from stemkit.errors import StemkitError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Evaluate stem-separation services: separate, analyse, compare, report.",
)
DEMO_DATA = Path("data/demo")


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _sandbox_needed(profile: str | None, providers: list[str]) -> bool:
    """True when the providers use the sandbox profile and nothing answers at its URL."""
    import requests

    from stemkit.config import DEFAULT_PROFILE, load_profile, sandbox_url

    remote = [p for p in providers if p != "local"]
    if not remote:
        return False
    if any(load_profile(p, profile).name != DEFAULT_PROFILE for p in remote):
        return False
    try:  # any answer (a 401 without the admin key too) means a sandbox is there
        requests.get(f"{sandbox_url()}/_sandbox/stats", timeout=1)
        return False
    except requests.RequestException:
        return True


def _personas(server, profile: str | None) -> dict | None:
    """What the sandbox's vendors run (engine, defects), or None when no sandbox is in use."""
    if server is not None:
        return server.config.personas.describe()
    import os

    import requests

    from stemkit.config import DEFAULT_PROFILE, sandbox_url
    from stemkit.sandbox.common import ADMIN_HEADER
    from stemkit.sandbox.server import ADMIN_KEY_ENV

    if (profile or DEFAULT_PROFILE) != DEFAULT_PROFILE:
        return None
    key = os.environ.get(ADMIN_KEY_ENV, "")
    try:
        answer = requests.get(
            f"{sandbox_url()}/_sandbox/personas", headers={ADMIN_HEADER: key}, timeout=2
        )
    except requests.RequestException:
        return None
    if answer.status_code == 401:
        logging.getLogger("stemkit.cli").warning(
            "the sandbox at %s did not say what its vendors run (no admin key): batch.json "
            "records no personas; export %s (`stemkit serve` says where the key is kept)",
            sandbox_url(),
            ADMIN_KEY_ENV,
        )
        return None
    try:
        return answer.json() if answer.ok else None
    except ValueError:
        return None


def _sandbox_settings(config: Path | None) -> dict:
    """Settings of an in-process sandbox with the personas of ``config`` (validated now)."""
    if config is None:
        return {}
    from stemkit.sandbox.personas import ConfigError, load_config

    try:
        load_config(config)
    except ConfigError as exc:
        _fail(f"error: {exc}")
    return {"config_file": config}


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface; loopback by default."),
    port: int = typer.Option(8765, help="TCP port."),
    data_dir: Path = typer.Option(None, help="Where uploads and results are stored."),
    workers: int = typer.Option(1, help="Separation jobs processed at once."),
    processing_delay: float = typer.Option(
        0.0, help="Extra seconds every job spends processing (imitates a slow vendor)."
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    config: Path = typer.Option(
        None, help="Vendor personas (engine, defects) and faults: a TOML file."
    ),
    state: Path = typer.Option(
        None,
        help="Keep uploads, jobs, tokens and keys in this folder: a restart (even kill -9) "
        "resumes every job. One sandbox per folder.",
    ),
    admin_key: str = typer.Option(
        None,
        help="Key of /_sandbox/stats and /_sandbox/personas (header X-Sandbox-Admin-Key); "
        "default $STEMKIT_SANDBOX_ADMIN_KEY, else a random one kept in admin.key (0600).",
    ),
) -> None:
    """Run the sandbox server (all vendor APIs) in the foreground."""
    from stemkit.sandbox import StateBusy
    from stemkit.sandbox import serve as run

    _sandbox_settings(config)
    typer.echo(
        f"stemkit sandbox on http://{host}:{port}: /sourceress (demo/demo), "
        "/audioshake (token demo-token; Tasks API x-api-key demo-key), "
        "/loom (key demo, secret demo)"
    )
    try:
        run(
            host=host,
            port=port,
            data_dir=str(data_dir) if data_dir else None,
            workers=workers,
            processing_delay=processing_delay,
            log_level=log_level,
            config_file=str(config) if config else None,
            state_dir=str(state) if state else None,
            admin_key=admin_key,
            echo=typer.echo,
        )
    except StateBusy as exc:
        _fail(f"error: {exc}")


@app.command()
def batch(
    manifest: Path = typer.Argument(..., help="MUSDB18-layout folder or CSV manifest."),
    provider: list[str] = typer.Option(
        ["sourceress"], "--provider", "-p", help="Provider key; repeat for several."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Batch folder (rerun to resume)."),
    profile: str = typer.Option(None, help="Profile name (default: $STEMKIT_PROFILE/sandbox)."),
    stems: str = typer.Option(None, help="Comma-separated stems, e.g. vocals,drums,bass,other."),
    fmt: str = typer.Option("wav", "--format", help="Stem format: wav, flac, mp3, m4a."),
    workers: int = typer.Option(None, help="Analysis notebooks at once (default: CPUs)."),
    force: list[str] = typer.Option(
        None,
        "--force",
        help="Submit again (and pay again) TRACK or TRACK/PROVIDER even if the ledger says "
        "it is done; repeat for several; 'all' for every job.",
    ),
    retry: str = typer.Option(
        "", help="Ledger states to submit again, e.g. ambiguous,abandoned (failed always is)."
    ),
    executor: str = typer.Option("local", help="Where analysis runs: local or dask."),
    scheduler: str = typer.Option(None, help="Dask scheduler address (default: a LocalCluster)."),
    transcribe: bool = typer.Option(
        True, help="Transcribe tracks with a script (loom) and report word error rates."
    ),
    sandbox: bool = typer.Option(
        None,
        help="Start an in-process sandbox (default: when the "
        "sandbox profile is used and none is running).",
    ),
    publish: str = typer.Option(
        None, help="Then copy the report, tables and analyses to this fsspec URL (s3://...)."
    ),
    sandbox_config: Path = typer.Option(
        None, help="Vendor personas of the in-process sandbox (TOML; see `stemkit serve`)."
    ),
    wait: float = typer.Option(
        0, help="Seconds to wait when another process runs a batch in OUT (-1: for ever)."
    ),
) -> None:
    """Separate, analyse and compare every track; write OUT/report.html.

    One process at a time writes OUT: a second `stemkit batch` on the same folder waits
    --wait seconds, then exits with a message naming the process that holds it."""
    from stemkit.batch import run_batch
    from stemkit.sandbox import StateBusy

    stem_list = [s.strip() for s in stems.split(",")] if stems else None
    needs = [*provider, "loom"] if transcribe else list(provider)
    settings = _sandbox_settings(sandbox_config)
    start = _sandbox_needed(profile, needs) if sandbox is None else sandbox
    if sandbox_config is not None and not start:
        _fail(
            "--sandbox-config configures the in-process sandbox, and none is started here "
            "(a sandbox already answers, or --no-sandbox): "
            "give the file to `stemkit serve --config`"
        )
    t0 = time.monotonic()
    try:
        with _in_process_sandbox(out, settings, wait) if start else nullcontext() as server:
            if server is not None:
                typer.echo(f"sandbox running at {server.url}")
            result = run_batch(
                manifest,
                provider,
                out,
                profile=profile,
                stems=stem_list,
                fmt=fmt,
                workers=workers,
                force=list(force or []),
                retry=[r.strip() for r in retry.split(",") if r.strip()],
                transcribe=transcribe,
                executor=executor,
                scheduler=scheduler,
                sandbox=_personas(server, profile),
                wait=wait,
            )
    except StemkitError as exc:
        _fail(f"error: {exc}")
    except StateBusy as exc:  # OUT/.sandbox held by a sandbox that is not a batch's
        _fail(f"error: {exc}")
    typer.echo(
        f"\n{result.jobs_done} jobs done, {result.jobs_failed} failed "
        f"({time.monotonic() - t0:.1f} s)"
    )
    for msg in result.notebook_errors:
        typer.secho(f"  {msg}", fg=typer.colors.YELLOW)
    typer.secho(f"report: {result.report}", fg=typer.colors.GREEN, bold=True)
    if publish:
        _publish(out, publish)
    if result.all_failed:
        _fail("every track failed", code=2)


@contextmanager
def _in_process_sandbox(out: Path, settings: dict, wait: float):
    """The batch's own sandbox: its state under ``OUT/.sandbox`` (never published), on the
    port of its last run when free, so a rerun of a killed batch finds its submitted jobs.
    One batch process at a time owns it (a second one waits ``wait`` seconds, like the
    batch folder)."""
    from stemkit.batchdir import BatchFolder
    from stemkit.sandbox import SandboxServer

    folder = BatchFolder(out)
    # two workers: two cores separate or transcribe two jobs at once
    with (
        folder.lock("sandbox", wait=wait),
        SandboxServer(workers=2, state_dir=folder.sandbox_dir, **settings) as server,
    ):
        yield server


def _publish(out: Path, url: str) -> None:
    from stemkit.publish import publish as copy_out

    try:
        written = copy_out(out, url)
    except StemkitError as exc:
        _fail(f"error: {exc}")
    typer.echo(f"published {len(written)} files to {url}")


@app.command("publish")
def publish_command(
    batch_dir: Path = typer.Argument(..., help="A batch folder with a report."),
    url: str = typer.Argument(..., help="Where to: an fsspec URL (s3://..., a share path)."),
) -> None:
    """Copy a batch's report, tables, analyses and notebooks to a shared store."""
    _publish(batch_dir, url)


@app.command("demo-data")
def demo_data(
    out: Path = typer.Argument(DEMO_DATA, help="Where to write the demo tracks."),
    sr: int = typer.Option(44100, help="Sample rate of the tracks (Hz)."),
    music: bool = typer.Option(True, help="Write the music multitracks."),
    speech: bool = typer.Option(True, help="Write the speech-over-music tracks (with scripts)."),
) -> None:
    """Write the demo tracks: music multitracks and speech-over-music tracks with scripts."""
    import soundfile as sf

    from stemkit.demo.speech import write_speech_tracks
    from stemkit.demo.synth import write_demo_set

    began = time.monotonic()
    folders = [
        *(write_demo_set(out, sr=sr) if music else []),
        *(write_speech_tracks(out, sr=sr) if speech else []),
    ]
    total = 0
    for folder in folders:
        size = sum(p.stat().st_size for p in folder.glob("*.wav"))
        total += size
        seconds = sf.info(folder / "mixture.wav").duration
        typer.echo(f"wrote {folder}  {seconds:.1f} s  {size / 1e6:.1f} MB")
    typer.echo(f"{len(folders)} tracks, {total / 1e6:.1f} MB, in {time.monotonic() - began:.1f} s")


@app.command()
def demo(
    out: Path = typer.Option(Path("reports/demo"), "--out", "-o", help="Batch folder."),
    data: Path = typer.Option(DEMO_DATA, help="Where the demo tracks are (written if missing)."),
    provider: list[str] = typer.Option(["sourceress", "audioshake"], "--provider", "-p"),
    sandbox_config: Path = typer.Option(
        None, help="Vendor personas (default: the demo's, two vendors that differ)."
    ),
) -> None:
    """The whole job on the embedded sandbox: demo data, separate, analyse, report."""
    from stemkit.sandbox.personas import DEMO_CONFIG

    if not any(data.glob("*/mixture.wav")):
        demo_data(data, sr=44100, music=True, speech=True)
    batch(
        data,
        provider=provider,
        out=out,
        profile=None,
        stems=None,
        fmt="wav",
        workers=None,
        force=[],
        retry="",
        transcribe=True,
        executor="local",
        scheduler=None,
        sandbox=True,
        publish=None,
        sandbox_config=sandbox_config or DEMO_CONFIG,
        wait=0,
    )


@app.command()
def validate(
    folder: Path = typer.Argument(DEMO_DATA, help="Known-answer tracks (MUSDB18 layout)."),
    tracks: int = typer.Option(None, help="Only the first N tracks."),
    seconds: float = typer.Option(None, help="Crop every track to its first S seconds."),
    out: Path = typer.Option(None, help="Also write the detections as CSV here."),
) -> None:
    """Inject every defect into known-answer stems: recall of each check, false alarms, nSDR."""
    from stemkit.analyze.validation import validate_checks

    if folder == DEMO_DATA and not any(folder.glob("*/mixture.wav")):
        demo_data(folder, sr=44100, music=True, speech=True)
    try:
        result = validate_checks(
            folder,
            tracks=tracks,
            seconds=seconds,
            progress=lambda t: typer.echo(f"  {t}", err=True),
        )
    except StemkitError as exc:
        _fail(f"error: {exc}")
    typer.echo(result.table())
    if out is not None:
        result.detections.to_csv(out, index=False)
        typer.echo(f"detections: {out}")
    if not result.goal_met:
        _fail("a check missed a defect at its documented threshold, or raised a false alarm")


@app.command()
def report(batch_dir: Path = typer.Argument(..., help="A batch folder.")) -> None:
    """Render the report of a batch again (after new analyses or a notebook change)."""
    from stemkit.batch import execute
    from stemkit.batchdir import BatchFolder
    from stemkit.compare.report import render_html
    from stemkit.resources import notebook

    folder = BatchFolder(batch_dir)
    if not folder.exists():
        _fail(f"{batch_dir} is not a batch folder (no batch.json); run `stemkit batch` first")
    nb = execute(notebook("compare"), folder.notebook("compare"), {"batch_dir": str(folder.root)})
    typer.echo(f"report: {render_html(nb, folder.report_path)}")


@app.command()
def jobs(
    args: list[str] = typer.Argument(
        ..., help="OUT (list the jobs), or: resolve OUT TRACK PROVIDER", metavar="[resolve] OUT"
    ),
    resubmit: bool = typer.Option(
        False, help="With resolve: submit the job again on the next run (pays again)."
    ),
    abandon: bool = typer.Option(
        False, help="With resolve: never submit the job again; report it failed."
    ),
) -> None:
    """List the jobs of a batch from its ledger (state, job id, attempts, error), or decide
    about one unfinished (e.g. ambiguous) job after checking with the vendor:

        stemkit jobs OUT
        stemkit jobs resolve OUT TRACK PROVIDER --resubmit | --abandon
    """
    if args[0] != "resolve":
        if len(args) != 1 or resubmit or abandon:
            _fail("usage: stemkit jobs OUT, or stemkit jobs resolve OUT TRACK PROVIDER --...")
        _list_jobs(Path(args[0]))
        return
    if len(args) != 4:
        _fail("usage: stemkit jobs resolve OUT TRACK PROVIDER --resubmit | --abandon")
    _resolve(Path(args[1]), args[2], args[3], resubmit=resubmit, abandon=abandon)


def _resolve(batch_dir: Path, track: str, provider: str, *, resubmit: bool, abandon: bool):
    from stemkit.batchdir import BatchFolder
    from stemkit.separate.ledger import Ledger

    if resubmit == abandon:
        _fail("say what to do: --resubmit or --abandon (one of them)")
    folder = BatchFolder(batch_dir)
    if not folder.ledger_path.is_file():
        _fail(f"{batch_dir} has no ledger.sqlite (no batch has run there)")
    try:
        with folder.lock("separate"):
            ledger = Ledger(folder.root)
            changed = ledger.resolve(track, provider, "resubmit" if resubmit else "abandon")
            ledger.close()
    except StemkitError as exc:
        _fail(f"error: {exc}")
    if not changed:
        _fail(f"no unfinished job of track {track!r} on {provider!r} in {batch_dir}")
    action = "will be submitted again on the next run" if resubmit else "is abandoned"
    typer.echo(f"{track} / {provider}: {action}")


def _list_jobs(batch_dir: Path) -> None:
    from stemkit.batchdir import BatchFolder
    from stemkit.separate.ledger import Ledger

    if not BatchFolder(batch_dir).ledger_path.is_file():
        _fail(f"{batch_dir} has no ledger.sqlite (no batch has run there)")
    rows = Ledger(batch_dir).jobs()
    for r in rows:
        err = f"  {r['error']}" if r["error"] else ""
        typer.echo(
            f"{r['track']:<28} {r['provider']:<12} {r['state']:<11} "
            f"{r['job_id'] or '-':<26} x{r['attempts']}{err}"
        )
    typer.echo(f"{len(rows)} jobs")


@app.command()
def lab(
    folder: Path = typer.Argument(
        Path("notebooks"), help="Notebook folder; the packaged notebooks are copied in if missing."
    ),
    port: int = typer.Option(8888, help="TCP port (loopback)."),
    open_browser: bool = typer.Option(False, "--browser/--no-browser", help="Open a browser."),
) -> None:
    """Start JupyterLab on the notebooks (separate, analyze, compare, explore).

    A notebook already in FOLDER is never overwritten: edits made in Jupyter stay.
    """
    import importlib.util
    import os
    import subprocess

    from stemkit.resources import copy_notebooks

    if importlib.util.find_spec("jupyterlab") is None:
        _fail("JupyterLab is not installed here: pip install 'stemkit[lab]' (pinned) and rerun")
    for path in copy_notebooks(folder):
        typer.echo(f"copied {path}")
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={folder.resolve()}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--ServerApp.open_browser={open_browser}",
        *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
    ]
    typer.echo(f"JupyterLab on {folder.resolve()} at http://127.0.0.1:{port}/lab (Ctrl-C stops)")
    raise typer.Exit(subprocess.call(cmd))


listen_app = typer.Typer(
    no_args_is_help=True,
    help="Listening tests of a batch: a blind MUSHRA test, then its screened analysis.",
)
app.add_typer(listen_app, name="listen")


@listen_app.command("design")
def listen_design(
    batch_dir: Path = typer.Argument(..., help="A separated (and analysed) batch folder."),
    stems: list[str] = typer.Option(["vocals"], "--stems", "-s", help="Stems to test."),
    items: int = typer.Option(12, help="Items (track x excerpt) per stem."),
    seconds: float = typer.Option(10.0, help="Excerpt length (s)."),
    seed: int = typer.Option(0, help="Seed of the item order and the blinded names."),
    single_file: bool = typer.Option(False, help="Put the audio inside index.html."),
    webmushra: bool = typer.Option(True, help="Also export webMUSHRA's config.yaml."),
) -> None:
    """Design a blind MUSHRA test: items, loudness-matched excerpts, anchors, the page.

    Items: half spread over the metric range, half where the providers disagree most (see
    stemkit.compare.listen.design). Listeners get listening/page/ (open index.html in a
    browser, offline); the key stays in listening/key.csv.
    """
    from stemkit.batchdir import BatchFolder
    from stemkit.compare.listen.design import design_test
    from stemkit.compare.listen.page import write_page
    from stemkit.compare.listen.results import write_webmushra

    folder = BatchFolder(batch_dir)
    try:
        d = design_test(folder, stems=stems, items=items, seconds=seconds, seed=seed)
        page = write_page(folder, single_file=single_file)
        yaml_path = write_webmushra(folder) if webmushra else None
    except StemkitError as exc:
        _fail(f"error: {exc}")
    for r in d.items.itertuples(index=False):
        typer.echo(f"  {r.item:<40} {r.rule:<9} {r.metric} mean {r.metric_mean:.2f}")
    conditions = ", ".join(dict.fromkeys(d.key["condition"]))
    if len(d.trials) < items * len(stems):
        typer.echo(
            f"note: {len(d.trials)} of {items * len(stems)} items: the tracks are too short for "
            f"more {seconds:g} s excerpts (overlapping by at most half)"
        )
    typer.echo(f"{len(d.trials)} trials, conditions: {conditions}")
    typer.echo(f"page (give to listeners): {page}")
    typer.echo(f"key (keep apart): {folder.listening_key_path}")
    if yaml_path:
        typer.echo(f"webMUSHRA config: {yaml_path}")


@listen_app.command("analyze")
def listen_analyze(
    batch_dir: Path = typer.Argument(..., help="The batch folder of the designed test."),
    results: list[Path] = typer.Argument(
        None, help="Results files (page/widget CSV, webMUSHRA mushra.csv); default: the saved."
    ),
) -> None:
    """Screen the listeners (BS.1534-3), then means, paired statistics, metrics vs listeners."""
    from stemkit.batchdir import BatchFolder
    from stemkit.compare.listen.analysis import analyze_listening

    folder = BatchFolder(batch_dir)
    try:
        a = analyze_listening(folder, results or ())
    except StemkitError as exc:
        _fail(f"error: {exc}")
    kept = len(a.screening) - len(a.excluded)
    typer.echo(f"{len(a.screening)} listeners, {kept} kept")
    for r in a.screening[a.screening["excluded"]].itertuples(index=False):
        typer.echo(f"  excluded {r.listener}: {r.reason}")
    for r in a.means.itertuples(index=False):
        typer.echo(
            f"  {r.stem:<10} {r.condition:<16} {r.mean:6.1f} [{r.ci_low:.1f}, {r.ci_high:.1f}]"
        )
    for s in a.sentences():
        typer.echo(f"  {s}")
    for r in a.agreement.itertuples(index=False):
        typer.echo(
            f"  {r.stem:<10} {r.metric} ({r.variant}): tau {r.kendall_tau:.2f}, "
            f"rho {r.spearman_rho:.2f}, n {r.n}"
        )
    typer.echo(f"tables: {folder.tables_dir}/listening_*.csv; `stemkit report` shows them")


def main() -> None:  # pragma: no cover - console entry point
    """The ``stemkit`` console entry point: warnings to stderr, then the typer app."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
