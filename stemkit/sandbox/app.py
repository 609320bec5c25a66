"""The sandbox ASGI application: every vendor API stemkit speaks, on one server.

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

from stemkit.sandbox.audioshake import AudioShakeAPI
from stemkit.sandbox.audioshake_tasks import AudioShakeTasksAPI
from stemkit.sandbox.common import (
    SandboxConfig,
    Signer,
    Workers,
    http_exception_handler,
    unhandled_exception_handler,
)
from stemkit.sandbox.faults import FaultMiddleware
from stemkit.sandbox.loom import LoomAPI
from stemkit.sandbox.sourceress import SourceressAPI


def _lifespan(workers: Workers):
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        workers.shutdown()

    return lifespan


def create_app(config: SandboxConfig | str | os.PathLike) -> Starlette:
    """Build the sandbox app. ``config`` is a :class:`SandboxConfig` or a data folder.

    The vendor APIs are mounted at ``/sourceress``, ``/audioshake`` and ``/loom``;
    ``GET /_sandbox/stats`` counts what was submitted (tests use it to prove that nothing was
    submitted twice); ``GET /_sandbox/personas`` says which engine and defects each emulated
    vendor runs (a batch records it, and the report marks known-answer vendors).
    """
    if not isinstance(config, SandboxConfig):
        config = SandboxConfig(data_dir=Path(config))
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    signer = Signer(faults=config.faults)
    workers = Workers(config.workers)
    sourceress = SourceressAPI(config, signer, workers)
    audioshake = AudioShakeAPI(config, signer, workers)
    tasks = AudioShakeTasksAPI(config, signer, workers)
    loom = LoomAPI(config, signer, workers)

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
                # any tenant can read this: callback URLs without their query (webhook tokens)
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
            Route("/_sandbox/stats", stats, methods=["GET"]),
            Route("/_sandbox/personas", personas, methods=["GET"]),
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
        lifespan=_lifespan(workers),
    )
    app.state.config = config
    app.state.sourceress = sourceress
    app.state.audioshake = audioshake
    app.state.audioshake_tasks = tasks
    app.state.loom = loom
    app.state.workers = workers
    return app
