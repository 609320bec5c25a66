"""Fault injection for the sandbox: the ways a network service fails, on purpose, reproducibly.

:class:`Faults` holds the rates; :class:`FaultMiddleware` applies the transport-level ones to
every vendor route (never to ``/_sandbox``); the APIs ask :meth:`Faults.roll` for the ones that
live inside a job (``url_expiry``, ``job_failure``, ``stuck``).

Draws are deterministic: each is a hash of the seed, the fault, the route and the how-many-th
call of that route it is, so a run with the same seed and the same requests meets the same
faults, whatever the interleaving of routes.

==============  ===========================================================================
fault           what the client sees
==============  ===========================================================================
error_5xx       ``503`` before the request is processed (safe to retry: nothing happened)
rate_429        ``429`` with ``Retry-After`` before the request is processed
drop            the connection closes halfway through the response (after processing);
                on job-creating POSTs only when ``drop_creates`` is set (then ambiguous)
slow            the answer comes ``slow_seconds`` late (beyond a short client timeout)
malformed       a JSON answer cut in half
token_expiry    every issued token expires at once (Sourceress)
url_expiry      a signed URL is issued already expired
job_failure     the job fails with a message
stuck           the job never finishes (progress stops at "Processing")
ambiguous       a job-creating POST is processed, then answered ``502`` (the answer is lost)
vendor_retry    the vendor's first attempt at a job fails inside the vendor and it queues the
                job again (Sourceress: a second "Queue message received" with "Attempt number
                2" and a second "Processing"); the client sees one job that took longer
drop_finalising the job completes (``outputFiles`` filled) without its "Finalising" event
clock_skew_s    not a rate: seconds the vendor's clock is ahead of ours (negative: behind);
                every vendor timestamp (Sourceress events, AudioShake and Loom job stamps)
                is written on that clock
timestamp_form  not a rate: the form of Sourceress event stamps (``iso`` as the doc, or
                ``epoch_ms``, ``epoch_s``, ``offset``, ``naive``, ``nanos``, ``text``; see
                :func:`stemkit.sandbox.common.vendor_stamp`)
==============  ===========================================================================

The in-job faults of a vendor (``job_failure``, ``vendor_retry``, ``drop_finalising``) are drawn
per job in the order the jobs are processed (key ``"<vendor> job"``), so the same seed and the
same jobs meet the same faults whatever the random job ids.

Examples
--------
>>> f = Faults(seed=1, error_5xx=0.5)
>>> sum(f.roll("error_5xx", "GET /x") for _ in range(1000)) in range(400, 600)
True
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

#: POST routes that create a (paid) job: a drop or 502 there leaves the client unsure
CREATE_ROUTES = re.compile(r"/(separation/(separate|trial)|job/?|jobs/submit|tasks/?)$")


@dataclass
class Faults:
    """Fault rates (0..1 per call) and their parameters."""

    seed: int = 0
    error_5xx: float = 0.0
    rate_429: float = 0.0
    retry_after: float = 1.0
    drop: float = 0.0
    drop_creates: bool = False
    slow: float = 0.0
    slow_seconds: float = 5.0
    malformed: float = 0.0
    token_expiry: float = 0.0
    url_expiry: float = 0.0
    job_failure: float = 0.0
    stuck: float = 0.0
    ambiguous: float = 0.0
    vendor_retry: float = 0.0
    drop_finalising: float = 0.0
    clock_skew_s: float = 0.0
    timestamp_form: str = "iso"
    injected: Counter = field(default_factory=Counter, repr=False)
    #: the same hits by (fault, route or job id), e.g. ``("drop", "POST /audioshake/tasks")``
    injected_at: Counter = field(default_factory=Counter, repr=False)
    _calls: Counter = field(default_factory=Counter, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def active(self) -> bool:
        return any(getattr(self, n) > 0 for n in (
            "error_5xx", "rate_429", "drop", "slow", "malformed", "token_expiry", "url_expiry",
            "job_failure", "stuck", "ambiguous"))  # fmt: skip

    def vendor_clock(self) -> float:
        """Now, in epoch seconds, on the emulated vendor's clock (``clock_skew_s`` ahead).

        Examples
        --------
        >>> import time
        >>> round(Faults(clock_skew_s=300).vendor_clock() - time.time())
        300
        """
        return time.time() + self.clock_skew_s

    def roll(self, fault: str, key: str) -> bool:
        """Whether ``fault`` hits this call of ``key`` (a route or a job id)."""
        rate = getattr(self, fault)
        if rate <= 0:
            return False
        with self._lock:
            self._calls[(fault, key)] += 1
            n = self._calls[(fault, key)]
        digest = hashlib.sha256(f"{self.seed}|{fault}|{key}|{n}".encode()).digest()
        hit = int.from_bytes(digest[:8], "big") / 2**64 < rate
        if hit:
            with self._lock:
                self.injected[fault] += 1
                self.injected_at[(fault, key)] += 1
        return hit


class FaultMiddleware:
    """ASGI middleware applying the transport faults of :class:`Faults` to vendor routes."""

    def __init__(self, app, faults: Faults, expire_tokens: Callable[[], None]) -> None:
        self.app = app
        self.faults = faults
        self.expire_tokens = expire_tokens

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"].startswith("/_sandbox")
            or not self.faults.active
        ):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        key = f"{method} {re.sub(r'/[0-9a-f-]{16,}', '/:id', path.split('?')[0])}"
        creates = method == "POST" and bool(CREATE_ROUTES.search(path))
        f = self.faults
        if f.roll("token_expiry", key):
            self.expire_tokens()
        if f.roll("slow", key):
            await asyncio.sleep(f.slow_seconds)
        if f.roll("error_5xx", key):
            await _json(send, 503, {"message": "injected: service unavailable"})
            return
        if f.roll("rate_429", key):
            await _json(
                send,
                429,
                {"message": "injected: too many requests"},
                [(b"retry-after", str(f.retry_after).encode())],
            )
            return
        if creates and f.roll("ambiguous", key):
            await self.app(scope, receive, _discard)
            await _json(send, 502, {"message": "injected: bad gateway after processing"})
            return
        if (not creates or f.drop_creates) and f.roll("drop", key):
            await self.app(scope, receive, _dropping(send))
            return
        if f.roll("malformed", key):
            await self.app(scope, receive, _malforming(send))
            return
        await self.app(scope, receive, send)


async def _json(send, status: int, body: dict, headers: list | None = None) -> None:
    data = json.dumps({**body, "success": False}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _discard(message) -> None:
    return None


class DroppedConnection(Exception):
    """Raised inside the server to cut a response short (uvicorn closes the connection)."""


def _dropping(send):
    """Send the headers and half of the first body chunk, then break the connection."""
    state = {"started": False}

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            state["started"] = True
            await send(message)
            return
        body = message.get("body", b"")
        if len(body) > 1:
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
        raise DroppedConnection("injected: connection dropped mid-response")

    return wrapped


def _malforming(send):
    """Cut JSON answers in half (other content types pass unchanged)."""
    state: dict = {"json": False, "start": None, "chunks": []}

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            state["json"] = headers.get(b"content-type", b"").startswith(b"application/json")
            if not state["json"]:
                await send(message)
            else:
                state["start"] = message
            return
        if not state["json"]:
            await send(message)
            return
        state["chunks"].append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(state["chunks"])
        cut = body[: max(1, len(body) // 2)]
        start = state["start"]
        headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
        headers.append((b"content-length", str(len(cut)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": cut})

    return wrapped
