"""Run the sandbox: in a background thread on a free port (tests, demo) or in the foreground.

With a state folder (``state_dir``) what the server keeps survives a restart, see
:mod:`stemkit.sandbox.state`; :class:`SandboxServer` then reuses the port it last ran on when
that port is free (signed URLs and poll endpoints a client kept name it).

Examples
--------
>>> from stemkit.sandbox.server import SandboxServer
>>> with SandboxServer() as server:              # doctest: +SKIP
...     print(server.url, server.stats()["duplicates"])   # http://127.0.0.1:<port> 0
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import requests
import uvicorn

from stemkit.http import redact
from stemkit.sandbox.app import create_app
from stemkit.sandbox.common import ADMIN_HEADER, SandboxConfig
from stemkit.sandbox.state import SandboxState, secret_file

#: the environment variable of the admin key (``stemkit serve`` reads it; so do clients)
ADMIN_KEY_ENV = "STEMKIT_SANDBOX_ADMIN_KEY"


class _QuietInjectedFaults(logging.Filter):
    """Drop uvicorn's tracebacks of the connections the fault injector cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ == "DroppedConnection":
            return False
        return "without completing response" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_QuietInjectedFaults())


class _NoSignatures(logging.Filter):
    """The access log keeps method, path and status, never a signed link's signature."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


logging.getLogger("uvicorn.access").addFilter(_NoSignatures())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``port`` can be bound on ``host`` right now.

    Examples
    --------
    >>> port_is_free(free_port())
    True
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def admin_get(url: str, path: str, key: str, timeout: float = 10) -> dict:
    """GET an admin route (``stats``, ``personas``) of the sandbox at ``url`` with ``key``.

    Examples
    --------
    >>> admin_get("http://127.0.0.1:8765", "stats", key)  # doctest: +SKIP
    {'sourceress': {...}, 'duplicates': 0, ...}
    """
    answer = requests.get(
        f"{url.rstrip('/')}/_sandbox/{path}", headers={ADMIN_HEADER: key}, timeout=timeout
    )
    answer.raise_for_status()
    return answer.json()


class SandboxServer:
    """The sandbox in a daemon thread; a context manager that sets ``STEMKIT_SANDBOX_URL``.

    Parameters
    ----------
    config : SandboxConfig, optional
        Defaults to a fresh temporary data folder and the default demo credentials.
    host, port : str, int
        Loopback and a free port by default.
    set_env : bool
        Export ``STEMKIT_SANDBOX_URL`` while running, so profiles and notebook kernels started
        from this process find the sandbox.
    **settings
        :class:`SandboxConfig` fields for the default config (e.g. ``workers=2``,
        ``state_dir=...``: uploads and results then go to ``<state_dir>/files``), and
        ``config_file``: a personas file (:mod:`stemkit.sandbox.personas`).

    With a state folder and no ``port``, the port of its last run is reused when free.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        set_env: bool = True,
        **settings,
    ) -> None:
        self._tmp = None
        if config is None:
            if settings.get("state_dir") is not None:
                data = Path(settings["state_dir"]) / "files"
            else:
                self._tmp = tempfile.TemporaryDirectory(prefix="stemkit-sandbox-")
                data = Path(self._tmp.name)
            config_file = settings.pop("config_file", None)
            if config_file is not None:
                config = SandboxConfig.from_file(config_file, data, **settings)
            else:
                config = SandboxConfig(data_dir=data, **settings)
        elif settings:
            raise TypeError("pass settings in the SandboxConfig, or no config at all")
        self.config = config
        self.host = host
        self.app = create_app(config)
        self.state: SandboxState = self.app.state.sandbox_state
        last = self.state.last_port()
        if port is None and last is not None and port_is_free(last, host):
            port = last
        self.port = port or free_port(host)
        self.set_env = set_env
        self._old_env: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stats(self) -> dict:
        """``GET /_sandbox/stats`` (with the admin key): submissions and duplicates."""
        return admin_get(self.url, "stats", self.config.admin_key)

    def personas(self) -> dict:
        """``GET /_sandbox/personas`` (with the admin key): what each vendor runs."""
        return admin_get(self.url, "personas", self.config.admin_key)

    def start(self, timeout: float = 15.0) -> SandboxServer:
        cfg = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(
            target=self._server.run, name="stemkit-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.state.close()
                raise RuntimeError(f"sandbox did not start on {self.url}")
            time.sleep(0.02)
        self.state.remember_port(self.port)
        if self.set_env:
            self._old_env = os.environ.get("STEMKIT_SANDBOX_URL")
            os.environ["STEMKIT_SANDBOX_URL"] = self.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None
        self.state.close()
        if self.set_env:
            if self._old_env is None:
                os.environ.pop("STEMKIT_SANDBOX_URL", None)
            else:
                os.environ["STEMKIT_SANDBOX_URL"] = self._old_env
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    data_dir: str | None = None,
    workers: int = 1,
    processing_delay: float = 0.0,
    log_level: str = "info",
    config_file: str | None = None,
    state_dir: str | None = None,
    admin_key: str | None = None,
    echo=print,
) -> None:
    """Run the sandbox in the foreground until interrupted (``stemkit serve``).

    Parameters
    ----------
    host, port : str, int
        Where to listen.
    data_dir : str, optional
        Uploads and results; default ``<state_dir>/files`` with a state folder, else a
        ``stemkit-sandbox`` folder in the system's temporary folder.
    workers : int
        Separation jobs processed at once.
    processing_delay : float
        Extra seconds each job spends processing (a slow vendor).
    log_level : str
        uvicorn's log level.
    config_file : str, optional
        A personas file (:mod:`stemkit.sandbox.personas`); a bad one raises
        :class:`~stemkit.sandbox.personas.ConfigError` before the server starts.
    state_dir : str, optional
        Keep every record there, so a restart (even after ``kill -9``) resumes; a folder
        another sandbox holds raises :class:`~stemkit.sandbox.state.StateBusy` at once.
    admin_key : str, optional
        The key of the ``/_sandbox`` routes; default ``$STEMKIT_SANDBOX_ADMIN_KEY``, else the
        one kept in ``admin.key`` of the state folder (or of the data folder), mode 0600.
    echo : callable
        Where to say where the admin key is (never the key itself).

    Examples
    --------
    >>> serve(port=8765, state_dir="sandbox-state")  # doctest: +SKIP
    """
    if state_dir:
        data = Path(data_dir) if data_dir else Path(state_dir) / "files"
    else:
        data = Path(data_dir or Path(tempfile.gettempdir()) / "stemkit-sandbox")
    given = admin_key or os.environ.get(ADMIN_KEY_ENV) or None
    key_file = (Path(state_dir) if state_dir else data) / "admin.key"
    if given is None and not state_dir:
        given = secret_file(key_file, 16).hex()  # kept beside the data: the operator reads it
    settings = {
        "workers": workers,
        "processing_delay": processing_delay,
        "state_dir": Path(state_dir) if state_dir else None,
        "admin_key": given,
    }
    if config_file:
        config = SandboxConfig.from_file(config_file, data, **settings)
    else:
        config = SandboxConfig(data_dir=data, **settings)
    app = create_app(config)
    if admin_key:
        where = "as given by --admin-key"
    elif os.environ.get(ADMIN_KEY_ENV):
        where = f"from ${ADMIN_KEY_ENV}"
    else:
        where = f"in {key_file.resolve()}"
    echo(
        f"admin key of /_sandbox/stats and /_sandbox/personas (header {ADMIN_HEADER}): {where}"
        + (f"; state kept in {Path(state_dir).resolve()}" if state_dir else "")
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        app.state.sandbox_state.close()
