"""The sandbox ASGI application: every vendor API stemkit speaks, on one server.

The ``/_sandbox`` routes (submission counts, personas) are the operator's: they answer 401
unless the request carries the admin key in the :data:`~stemkit.sandbox.common.ADMIN_HEADER`
header (``SandboxConfig.admin_key``; ``stemkit serve`` says where to find it).

Examples
--------
>>> from stemkit.sandbox.app import create_app
>>> app = create_app("/tmp/stemkit-sandbox")
>>> sorted(r.path for r in app.routes)
['/_sandbox/personas', '/_sandbox/stats', '/audioshake', '/loom', '/sourceress']
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from stemkit.http import register_secret
from stemkit.sandbox.audioshake import AudioShakeAPI
from stemkit.sandbox.audioshake_tasks import AudioShakeTasksAPI
from stemkit.sandbox.common import (
    ADMIN_HEADER,
    SandboxConfig,
    Signer,
    Workers,
    error,
    http_exception_handler,
    same_secret,
    unhandled_exception_handler,
)
from stemkit.sandbox.faults import FaultMiddleware
from stemkit.sandbox.loom import LoomAPI
from stemkit.sandbox.sourceress import SourceressAPI
from stemkit.sandbox.state import SandboxState


def _lifespan(workers: Workers, state: SandboxState):
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        workers.shutdown()
        state.close()

    return lifespan


def _admin_key(config: SandboxConfig, state: SandboxState) -> str:
    """The admin key: the configured one, else the state folder's, else a random one."""
    import secrets

    if config.admin_key:
        return config.admin_key
    kept = state.key("admin")
    return kept.hex() if kept is not None else secrets.token_hex(16)


def create_app(config: SandboxConfig | str | os.PathLike) -> Starlette:
    """Build the sandbox app. ``config`` is a :class:`SandboxConfig` or a data folder.

    With ``config.state_dir`` the records are read back from it (and its lock taken: a second
    app on the same folder raises :class:`~stemkit.sandbox.state.StateBusy`), and the jobs a
    restart interrupted are queued again; ``config.admin_key`` is filled in.

    The vendor APIs are mounted at ``/sourceress``, ``/audioshake`` and ``/loom``;
    ``GET /_sandbox/stats`` counts what was submitted (tests use it to prove that nothing was
    submitted twice); ``GET /_sandbox/personas`` says which engine and defects each emulated
    vendor runs (a batch records it, and the report marks known-answer vendors).
    """
    if not isinstance(config, SandboxConfig):
        config = SandboxConfig(data_dir=Path(config))
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    state = SandboxState(config.state_dir)
    try:
        config.admin_key = _admin_key(config, state)
        register_secret(config.admin_key)
        signer = Signer(state.key("signing"), faults=config.faults)
        workers = Workers(config.workers)
        sourceress = SourceressAPI(config, signer, workers, state)
        audioshake = AudioShakeAPI(config, signer, workers, state)
        tasks = AudioShakeTasksAPI(config, signer, workers, state)
        loom = LoomAPI(config, signer, workers, state)
    except BaseException:
        state.close()
        raise
    for api in (sourceress, audioshake, tasks, loom):
        api.resume()

    def admin(route):
        async def guarded(request: Request) -> JSONResponse:
            if not same_secret(config.admin_key, request.headers.get(ADMIN_HEADER, "")):
                return error(
                    401,
                    f"an admin route of the sandbox: send its admin key in the {ADMIN_HEADER} "
                    "header (SandboxConfig.admin_key; `stemkit serve` says where it is kept)",
                )
            return await route(request)

        return guarded

    async def stats(request: Request) -> JSONResponse:
        by_api = {
            "sourceress": sourceress.duplicates(),
            "audioshake": audioshake.duplicates(),
            "audioshake_tasks": tasks.duplicates(),
            "loom": loom.duplicates(),
        }
        return JSONResponse(
            {
                "sourceress": dict(sourceress.stats),
                "audioshake": dict(audioshake.stats),
                "audioshake_tasks": dict(tasks.stats),
                "loom": dict(loom.stats),
                "duplicates": sum(by_api.values()),
                "duplicates_by_api": by_api,
                "injected": dict(config.faults.injected),
                # callback URLs without their query (webhook tokens), even for the admin
                "callbacks": [
                    {**e, "url": str(e.get("url", "")).split("?")[0].split("#")[0]}
                    for e in [
                        *sourceress.callbacks.log,
                        *audioshake.callbacks.log,
                        *tasks.callbacks.log,
                    ]
                ],
            }
        )

    async def personas(request: Request) -> JSONResponse:
        return JSONResponse(config.personas.describe())

    app = Starlette(
        routes=[
            Mount("/sourceress", routes=sourceress.routes()),
            # the legacy job API and the current Tasks API share the vendor's base
            Mount("/audioshake", routes=audioshake.routes() + tasks.routes()),
            Mount("/loom", routes=loom.routes()),
            Route("/_sandbox/stats", admin(stats), methods=["GET"]),
            Route("/_sandbox/personas", admin(personas), methods=["GET"]),
        ],
        middleware=[
            Middleware(
                FaultMiddleware, faults=config.faults, expire_tokens=sourceress.tokens.expire_all
            )
        ],
        exception_handlers={
            HTTPException: http_exception_handler,
            Exception: unhandled_exception_handler,
        },
        lifespan=_lifespan(workers, state),
    )
    app.state.config = config
    app.state.sourceress = sourceress
    app.state.audioshake = audioshake
    app.state.audioshake_tasks = tasks
    app.state.loom = loom
    app.state.workers = workers
    app.state.sandbox_state = state
    return app
