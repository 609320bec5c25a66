"""Provider profiles: where each service lives and which credentials to use.

This is the only module that reads credentials. Notebooks and papermill parameters name a
*profile*, never a password: papermill writes parameters into the executed notebook.

Sources, later ones win:

1. the built-in profile ``sandbox`` (every provider points at the local sandbox, ``demo`` creds);
2. a TOML file: ``$STEMKIT_CONFIG``, else ``./stemkit.toml``, else
   ``~/.config/stemkit/config.toml``::

       [profiles.prod.sourceress]
       base_url = "https://api.example.com"
       username = "me@example.com"
       password = "..."

3. a ``.env`` file in the working directory, then the process environment:
   ``STEMKIT_<PROVIDER>_<FIELD>`` (e.g. ``STEMKIT_SOURCERESS_PASSWORD``; a ``-`` in the
   provider key becomes ``_``: ``STEMKIT_AUDIOSHAKE_TASKS_KEY``) overrides the field for
   whatever profile is selected; ``STEMKIT_PROFILE`` selects the default profile;
   ``STEMKIT_SANDBOX_URL`` moves the sandbox (default ``http://127.0.0.1:8765``).

Examples
--------
>>> from stemkit.config import load_profile
>>> p = load_profile("sourceress", environ={"STEMKIT_SANDBOX_URL": "http://127.0.0.1:9000"})
>>> p.base_url
'http://127.0.0.1:9000/sourceress'
>>> p.password  # secrets are never shown
SecretStr('**********')
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from stemkit.errors import ConfigError
from stemkit.http import register_secret

PROVIDERS = ("sourceress", "audioshake", "audioshake-tasks", "loom", "local")
DEFAULT_PROFILE = "sandbox"
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8765"

#: Credentials of the built-in sandbox profile (documented in the README; not secrets).
SANDBOX_CREDENTIALS: dict[str, dict[str, str]] = {
    "sourceress": {"username": "demo", "password": "demo"},
    "audioshake": {"token": "demo-token"},
    "audioshake-tasks": {"key": "demo-key"},
    "loom": {"key": "demo", "secret": "demo"},
    "local": {},
}

#: where a provider lives on the sandbox when it is not ``/<provider key>`` (AudioShake's two
#: APIs share the vendor's base)
SANDBOX_PATHS: dict[str, str] = {"audioshake-tasks": "audioshake"}

_SECRET_FIELDS = ("password", "token", "key", "secret")


class Profile(BaseModel):
    """Settings of one provider in one profile.

    Secret fields are :class:`pydantic.SecretStr`; call ``.get_secret_value()`` only at the
    moment a request is built.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    name: str = DEFAULT_PROFILE
    base_url: str = ""
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    key: SecretStr | None = None
    secret: SecretStr | None = None
    # every number is bounded: 0 jobs in flight would hang a batch, a 0 s poll would spin
    #: Seconds for connect and read of a single HTTP call.
    timeout: float = Field(30.0, gt=0)
    #: Seconds to wait for one job before giving up (the job id is kept for a rerun).
    job_timeout: float = Field(3600.0, gt=0)
    #: Seconds between two polls of a running job (grows with backoff up to ``poll_max``).
    poll_interval: float = Field(0.5, gt=0)
    poll_max: float = Field(10.0, gt=0)
    #: Jobs of this provider in flight at once in a batch.
    max_in_flight: int = Field(4, ge=1, le=256)
    #: Retries of an idempotent call (reads, uploads, downloads) on transient failures.
    retries: int = Field(4, ge=0, le=100)
    #: Refuse downloads larger than this (a hostile or broken server).
    max_download_bytes: int = Field(4 * 1024**3, gt=0)

    def secret_values(self) -> list[str]:
        """The plain values of every secret field that is set (for redaction)."""
        out = []
        for field in _SECRET_FIELDS:
            value = getattr(self, field)
            if value is not None and value.get_secret_value():
                out.append(value.get_secret_value())
        return out


def env_prefix(provider: str) -> str:
    """The prefix of a provider's environment variables.

    Examples
    --------
    >>> env_prefix("audioshake-tasks")
    'STEMKIT_AUDIOSHAKE_TASKS_'
    """
    return f"STEMKIT_{provider.upper().replace('-', '_')}_"


def sandbox_url(environ: Mapping[str, str] | None = None) -> str:
    """Base URL of the sandbox server (``$STEMKIT_SANDBOX_URL`` or the default port 8765)."""
    env = os.environ if environ is None else environ
    return env.get("STEMKIT_SANDBOX_URL", DEFAULT_SANDBOX_URL).rstrip("/")


def config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The TOML file in effect, or None."""
    env = os.environ if environ is None else environ
    if env.get("STEMKIT_CONFIG"):
        path = Path(env["STEMKIT_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"STEMKIT_CONFIG points at {path}, which is not a file")
        return path
    for path in (Path("stemkit.toml"), Path("~/.config/stemkit/config.toml").expanduser()):
        if path.is_file():
            return path
    return None


def _read_toml(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot parse {path}: {exc}") from None


def _merged_environ(environ: Mapping[str, str] | None) -> dict[str, str]:
    if environ is not None:
        return dict(environ)
    merged = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    merged.update(os.environ)
    return merged


def load_profile(
    provider: str,
    profile: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides,
) -> Profile:
    """Build the settings of ``provider`` in ``profile`` from every source.

    Parameters
    ----------
    provider : str
        One of :data:`PROVIDERS`.
    profile : str, optional
        Profile name; default ``$STEMKIT_PROFILE`` or ``"sandbox"``.
    environ : mapping, optional
        Use this instead of ``os.environ`` + ``.env`` (tests).
    **overrides
        Field values that win over every source (e.g. ``timeout=5``).

    Examples
    --------
    >>> load_profile("loom", environ={}).key.get_secret_value()
    'demo'
    """
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    env = _merged_environ(environ)
    name = profile or env.get("STEMKIT_PROFILE") or DEFAULT_PROFILE
    data = _read_toml(config_file(env))
    profiles = data.get("profiles", {})

    fields: dict = {}
    if name == DEFAULT_PROFILE:
        path = SANDBOX_PATHS.get(provider, provider)
        fields.update(base_url=f"{sandbox_url(env)}/{path}", **SANDBOX_CREDENTIALS[provider])
    elif name not in profiles:
        known = ", ".join(sorted({DEFAULT_PROFILE, *profiles})) or DEFAULT_PROFILE
        raise ConfigError(
            f"profile {name!r} is not defined",
            provider=provider,
            hint=f"define [profiles.{name}.{provider}] in stemkit.toml; known profiles: {known}",
        )
    fields.update(profiles.get(name, {}).get(provider, {}))
    prefix = env_prefix(provider)
    # STEMKIT_AUDIOSHAKE_TASKS_KEY belongs to audioshake-tasks, not to audioshake
    longer = [env_prefix(p) for p in PROVIDERS if p != provider]
    longer = [x for x in longer if x.startswith(prefix)]
    for var, value in env.items():
        if var.startswith(prefix) and not any(var.startswith(x) for x in longer):
            fields[var[len(prefix) :].lower()] = value
    fields.update(overrides)
    fields.update(provider=provider, name=name)
    if fields.get("base_url"):
        fields["base_url"] = str(fields["base_url"]).rstrip("/")
    try:
        result = Profile(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        raise ConfigError(f"invalid profile {name!r}: {problems}", provider=provider) from None
    public = set(SANDBOX_CREDENTIALS[provider].values()) if name == DEFAULT_PROFILE else set()
    for value in result.secret_values():
        if value not in public:  # the sandbox's documented demo/demo is no secret
            register_secret(value)
    return result
