"""stemkit: evaluate stem-separation services with evidence.

The flow a user sees, and where it lives::

    manifest ──> separate ──────────> analyze ─────────────> compare ───────> report.html
                 stemkit.separate     stemkit.analyze        stemkit.compare
                 (submit, poll,       (one track at a time:  (tables, statistics,
                 download; ledger)    metrics, QA, timing)   charts, explorer)

* ``stemkit.providers``: one client per service, over one life cycle (submit → wait → fetch);
* ``stemkit.batchdir``: the one owner of a batch folder's layout (:class:`BatchFolder`);
* core: ``config`` (profiles, secrets), ``errors`` (one hierarchy), ``stems`` (one stem
  vocabulary), ``audio`` (I/O, one resampler), ``timing``, ``plots``, ``resources``
  (the packaged notebooks and speech clips), ``dsp`` (the separation engine);
* ``stemkit.cli`` / ``stemkit.batch``: the entry points; the CLI is the only product module
  that starts ``stemkit.sandbox``, the vendors' APIs as a local server (a separate app);
* ``stemkit.demo``: the demo data.

Layers, top to bottom: cli/batch → compare → analyze → separate → providers → core; nothing
imports from a layer above it (checked by import-linter, ``make lint``).

The small public surface (imports are lazy, so ``import stemkit`` is instant in a kernel):

>>> import stemkit
>>> with stemkit.local_sandbox():                                     # doctest: +SKIP
...     r = stemkit.separate("data/demo/01-sunday-drive/mixture.wav", "out/sunday")
...     stems = stemkit.load_stems("out/sunday")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "connect": "stemkit.providers:connect",
    "load_stems": "stemkit.audio:load_stems",
    "load_audio": "stemkit.audio:load_audio",
    "load_manifest": "stemkit.separate.manifest:load_manifest",
    "load_profile": "stemkit.config:load_profile",
    "analyze_track": "stemkit.analyze.track:analyze_track",
    "open_track": "stemkit.analyze.track:open_track",
    "run_batch": "stemkit.batch:run_batch",
    "separate_batch": "stemkit.separate.run:separate_batch",
    "load_batch": "stemkit.compare.report:load_batch",
    "BatchFolder": "stemkit.batchdir:BatchFolder",
    "explore": "stemkit.compare.explore:explore",
    # the embedded sandbox (a separate application: only this name and the CLI reach it)
    "local_sandbox": "stemkit.sandbox.server:SandboxServer",
}

if TYPE_CHECKING:  # pragma: no cover
    from stemkit.providers.records import SeparationResult


def separate(
    audio_path,
    out_dir,
    *,
    provider: str = "sourceress",
    profile: str | None = None,
    stems=None,
    fmt: str = "wav",
    **options,
) -> SeparationResult:
    """Separate one file with one provider and download its stems to ``out_dir``.

    Examples
    --------
    >>> r = separate("mixture.wav", "out/", provider="sourceress")   # doctest: +SKIP
    >>> r.stems                                                       # doctest: +SKIP
    {'vocals': PosixPath('out/vocals.wav'), 'accompaniment': PosixPath('out/accompaniment.wav')}
    """
    from stemkit.providers import connect

    return connect(provider, profile).separate(audio_path, out_dir, stems=stems, fmt=fmt, **options)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name].split(":")
        value = getattr(import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stemkit' has no attribute {name!r}")


__all__ = ["separate", *_LAZY]
