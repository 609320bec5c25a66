"""Run the sandbox: in a background thread on a free port (tests, demo) or in the foreground.

Examples
--------
>>> from stemkit.sandbox.server import SandboxServer
>>> with SandboxServer() as server:              # doctest: +SKIP
...     print(server.url)                         # http://127.0.0.1:<free port>
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from stemkit.http import redact
from stemkit.sandbox.app import create_app
from stemkit.sandbox.common import SandboxConfig


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
        :class:`SandboxConfig` fields for the default config (e.g. ``workers=2``), and
        ``config_file``: a personas file (:mod:`stemkit.sandbox.personas`).
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
            self._tmp = tempfile.TemporaryDirectory(prefix="stemkit-sandbox-")
            config_file = settings.pop("config_file", None)
            if config_file is not None:
                config = SandboxConfig.from_file(config_file, Path(self._tmp.name), **settings)
            else:
                config = SandboxConfig(data_dir=Path(self._tmp.name), **settings)
        elif settings:
            raise TypeError("pass settings in the SandboxConfig, or no config at all")
        self.config = config
        self.host = host
        self.port = port or free_port(host)
        self.app = create_app(config)
        self.set_env = set_env
        self._old_env: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

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
                raise RuntimeError(f"sandbox did not start on {self.url}")
            time.sleep(0.02)
        if self.set_env:
            self._old_env = os.environ.get("STEMKIT_SANDBOX_URL")
            os.environ["STEMKIT_SANDBOX_URL"] = self.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None
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
) -> None:
    """Run the sandbox in the foreground until interrupted (``stemkit serve``).

    ``config_file`` is a personas file (:mod:`stemkit.sandbox.personas`); a bad one raises
    :class:`~stemkit.sandbox.personas.ConfigError` before the server starts.
    """
    data = Path(data_dir or Path(tempfile.gettempdir()) / "stemkit-sandbox")
    settings = {"workers": workers, "processing_delay": processing_delay}
    if config_file:
        config = SandboxConfig.from_file(config_file, data, **settings)
    else:
        config = SandboxConfig(data_dir=data, **settings)
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level)
