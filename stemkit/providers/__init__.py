"""Service clients. :func:`connect` picks one by its provider key.

Examples
--------
The sandbox profile's address is ``STEMKIT_SANDBOX_URL`` when set, else port 8765:

>>> from stemkit.providers import connect
>>> connect("sourceress")  # doctest: +ELLIPSIS
<SourceressProvider profile='sandbox' http://127.0.0.1:.../sourceress>
"""

from __future__ import annotations

from stemkit.errors import ConfigError
from stemkit.providers.base import Provider
from stemkit.providers.records import Job, JobStatus, SeparationResult

_REGISTRY = {
    "sourceress": "stemkit.providers.sourceress:SourceressProvider",
    "audioshake": "stemkit.providers.audioshake:AudioShakeProvider",
    "audioshake-tasks": "stemkit.providers.audioshake_tasks:AudioShakeTasksProvider",
    "loom": "stemkit.providers.loom:LoomProvider",
    "local": "stemkit.providers.local:LocalProvider",
}
#: providers that separate audio (loom transcribes)
SEPARATORS = tuple(k for k in _REGISTRY if k != "loom")


def provider_class(name: str) -> type[Provider]:
    """The client class of a provider key."""
    import importlib

    if name not in _REGISTRY:
        raise ConfigError(f"unknown provider {name!r}; available: {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def connect(provider: str, profile: str | None = None, **overrides) -> Provider:
    """A client for ``provider`` configured from ``profile`` (default: the sandbox).

    Examples
    --------
    >>> connect("local").name
    'local'
    """
    return provider_class(provider)(profile, **overrides)


__all__ = [
    "Job",
    "JobStatus",
    "Provider",
    "SeparationResult",
    "SEPARATORS",
    "connect",
    "provider_class",
]
