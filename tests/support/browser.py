"""Open a page in headless Chromium and check what a person would see: images, console, width.

Debian's ``chromium`` is driven over the Chrome DevTools Protocol (one websocket, the
``websocket-client`` package): no browser download, no chromedriver. The browser runs with no
background networking, and every host name resolves to nothing, so a page that reaches for the
network shows up as a failed request instead of a silent download.

    .venv/bin/python -m tests.support.browser reports/demo/report.html --screenshot report.png

Examples
--------
>>> from tests.support.browser import check_page
>>> page = check_page("reports/demo/report.html", screenshot="report.png")  # doctest: +SKIP
>>> page.problems                                                          # doctest: +SKIP
[]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemkit.errors import StemkitError

#: Flags of every run: headless, no sandbox (root in CI), nothing fetched in the background.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
    # no name resolves: a page that needs the network fails visibly and sends nothing out
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
)
_LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")

_WAIT_FOR_IMAGES = """
Promise.all(Array.from(document.images).map(img => img.complete ? null :
    new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done);
                          setTimeout(done, %d); })))
    .then(() => document.images.length)
"""
_DESCRIBE_IMAGES = """
JSON.stringify({
  viewport: document.documentElement.clientWidth,
  scrollWidth: document.documentElement.scrollWidth,
  images: Array.from(document.images).map(img => {
    const box = img.getBoundingClientRect();
    return {src: img.currentSrc || img.src, complete: img.complete,
            naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
            width: box.width, right: box.right + window.scrollX};
  })
})
"""


class BrowserError(StemkitError):
    """Chromium could not be started or driven."""


@dataclass(frozen=True)
class ImageInfo:
    """One ``<img>`` of a page: its source, whether it decoded, its natural and drawn size."""

    src: str
    complete: bool
    natural_width: int
    natural_height: int
    width: float
    right: float

    @property
    def loaded(self) -> bool:
        """Decoded into a picture (``complete`` and a non-zero natural width)."""
        return self.complete and self.natural_width > 0

    @property
    def label(self) -> str:
        """The source, short enough for a message (data URIs cut after their media type)."""
        if self.src.startswith("data:"):
            return self.src.split(",", 1)[0] + f",… ({len(self.src)} chars)"
        return self.src


@dataclass
class PageReport:
    """What :func:`check_page` saw on one page."""

    url: str
    viewport_width: int
    scroll_width: int
    images: list[ImageInfo]
    console_errors: list[str] = field(default_factory=list)
    console_warnings: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    seconds: float = 0.0

    @property
    def broken_images(self) -> list[ImageInfo]:
        """Images that did not load (missing file, bad data, blocked)."""
        return [im for im in self.images if not im.loaded]

    @property
    def oversized_images(self) -> list[ImageInfo]:
        """Images wider than the window: shrunk below their pixel size, or overflowing it."""
        return [
            im
            for im in self.images
            if im.natural_width > self.viewport_width or im.right > self.viewport_width + 0.5
        ]

    @property
    def problems(self) -> list[str]:
        """Everything wrong with the page, one line each (empty: the page is fine).

        Examples
        --------
        >>> PageReport("file:///x.html", 1280, 1280, []).problems
        []
        """
        out = [f"image did not load: {im.label}" for im in self.broken_images]
        out += [
            f"image wider than the {self.viewport_width} px window: {im.label} "
            f"({im.natural_width} px, drawn {im.width:.0f} px)"
            for im in self.oversized_images
        ]
        out += [f"console: {m}" for m in self.console_errors]
        out += [
            f"request failed: {m}"
            for m in self.failed_requests
            if not any(m.split(": ", 1)[0] in c for c in self.console_errors)
        ]
        out += [f"fetches from the network: {u}" for u in self.external_requests]
        return out

    @property
    def local_problems(self) -> list[str]:
        """:attr:`problems` less those caused by requests to the network (a page that needs
        the network is a problem of its own: see :attr:`external_requests`).

        Examples
        --------
        >>> r = PageReport("file:///x.html", 1280, 1280, [], external_requests=["https://a/b.js"],
        ...                console_errors=["Failed to load resource (https://a/b.js)"])
        >>> r.problems != [], r.local_problems
        (True, [])
        """
        return [p for p in self.problems if not any(u in p for u in self.external_requests)]


def find_chromium() -> str | None:
    """The Chromium binary: ``$STEMKIT_CHROMIUM``, else ``chromium`` (Debian) or another
    Chrome on the PATH; None when there is none.

    Examples
    --------
    >>> find_chromium() is None or Path(find_chromium()).name.startswith(("chrom", "google"))
    True
    """
    if os.environ.get("STEMKIT_CHROMIUM"):
        return os.environ["STEMKIT_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """A minimal Chrome DevTools Protocol client over one websocket (flattened sessions).

    Replies are matched by id; every event read meanwhile is kept in :attr:`events`.
    """

    def __init__(self, ws_url: str, timeout: float = 30.0) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._next = 0

    def _recv(self, deadline: float) -> dict[str, Any] | None:
        import websocket

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self.ws.settimeout(remaining)
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            return None

    def call(
        self, method: str, session: str | None = None, timeout: float | None = None, **params: Any
    ) -> dict[str, Any]:
        """Send one command and return its result (raises :class:`BrowserError` on error)."""
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._recv(deadline)
            if reply is None:
                raise BrowserError(f"no answer from chromium to {method} in time")
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float) -> dict[str, Any] | None:
        """The first event ``method`` (already received or arriving within ``timeout``)."""
        found = next((e for e in self.events if e.get("method") == method), None)
        deadline = time.monotonic() + timeout
        while found is None:
            event = self._recv(deadline)
            if event is None:
                return None
            self.events.append(event)
            if event.get("method") == method:
                found = event
        return found

    def drain(self, seconds: float) -> None:
        """Keep reading events for ``seconds`` (late console messages)."""
        deadline = time.monotonic() + seconds
        while (event := self._recv(deadline)) is not None:
            self.events.append(event)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


@contextlib.contextmanager
def chromium(binary: str | None = None, *, timeout: float = 30.0) -> Iterator[DevTools]:
    """Start headless Chromium on a new profile and yield a :class:`DevTools` connection to it.

    Examples
    --------
    >>> with chromium() as cdp:                                  # doctest: +SKIP
    ...     cdp.call("Browser.getVersion")["product"]
    'HeadlessChrome/156.0.8078.108'
    """
    binary = binary or find_chromium()
    if not binary:
        raise BrowserError("no chromium binary found", hint="apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="stemkit-chromium-") as profile:
        log = Path(profile) / "stderr.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [
                    binary,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    "--remote-debugging-port=0",
                    "--remote-debugging-address=127.0.0.1",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        cdp = None
        try:
            ws_url = _devtools_url(Path(profile), proc, timeout, log)
            cdp = DevTools(ws_url, timeout)
            yield cdp
        finally:
            if cdp is not None:
                with contextlib.suppress(Exception):
                    cdp.call("Browser.close", timeout=5)
                cdp.close()
            _stop(proc)


def _devtools_url(profile: Path, proc: subprocess.Popen, timeout: float, log: Path) -> str:
    """Chromium writes its port and browser target to ``DevToolsActivePort`` once it listens."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise BrowserError(f"chromium exited with code {proc.returncode}: {' | '.join(tail)}")
        if port_file.is_file():
            lines = port_file.read_text().split()
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.05)
    raise BrowserError(f"chromium did not open its DevTools port within {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the browser we started, then any helper it left in its own process group."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its session: started with start_new_session


def _as_url(page: str | os.PathLike) -> str:
    text = str(page)
    if "://" in text or text.startswith(("about:", "data:")):
        return text
    path = Path(text).resolve()
    if not path.is_file():
        raise BrowserError(f"{path} does not exist")
    return path.as_uri()


def _arg_text(arg: dict[str, Any]) -> str:
    if "value" in arg:
        return str(arg["value"])
    return str(arg.get("description") or arg.get("type", ""))


def _collect(report: PageReport, events: list[dict[str, Any]], session: str) -> None:
    """Sort the page's events into console errors and warnings, failed and external requests."""
    urls: dict[str, str] = {}
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if not url.startswith(_LOCAL_SCHEMES):
                report.external_requests.append(url)
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            url = urls.get(params.get("requestId"), "?")
            report.failed_requests.append(f"{url}: {params.get('errorText')}")
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(_arg_text(a) for a in params.get("args", []))
            if params.get("type") in ("error", "assert"):
                report.console_errors.append(text)
            elif params.get("type") == "warning":
                report.console_warnings.append(text)
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exc = details.get("exception", {})
            report.console_errors.append(
                f"uncaught {exc.get('description') or details.get('text', 'exception')}"
            )
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            text = f"{entry.get('text')} ({entry.get('url', '')})".replace(" ()", "")
            if entry.get("level") == "error":
                report.console_errors.append(text)
            elif entry.get("level") == "warning":
                report.console_warnings.append(text)


def _screenshot(cdp: DevTools, session: str, path: Path, width: int, max_height: int) -> Path:
    size = cdp.call("Page.getLayoutMetrics", session)["cssContentSize"]
    height = min(int(size["height"]) + 1, max_height)
    shot = cdp.call(
        "Page.captureScreenshot",
        session,
        timeout=60,
        format="png",
        captureBeyondViewport=True,
        clip={
            "x": 0,
            "y": 0,
            "width": max(width, int(size["width"])),
            "height": height,
            "scale": 1,
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def check_page(
    page: str | os.PathLike,
    *,
    width: int = 1280,
    height: int = 900,
    screenshot: str | os.PathLike | None = None,
    timeout: float = 30.0,
    settle: float = 0.5,
    max_height: int = 16000,
    binary: str | None = None,
) -> PageReport:
    """Load a page (a file path or URL) in headless Chromium, ``width`` px wide, and report
    its images, console errors, failed and external requests; optionally save a full-page
    screenshot (PNG, cut at ``max_height`` px).

    Parameters
    ----------
    page : path or URL
        An HTML file (opened as ``file://``) or any URL.
    width, height : int
        The window, in CSS pixels (device scale 1).
    screenshot : path, optional
        Where to write the full-page PNG.
    timeout : float
        Seconds allowed for the load event and for each image.
    settle : float
        Seconds to keep listening for console messages after the images are in.

    Examples
    --------
    >>> r = check_page("reports/demo/report.html", screenshot="/tmp/r.png")   # doctest: +SKIP
    >>> [im.natural_width for im in r.images][:2]                             # doctest: +SKIP
    [1104, 800]
    """
    url = _as_url(page)
    started = time.monotonic()
    with chromium(binary, timeout=timeout) as cdp:
        target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
        session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.call(f"{domain}.enable", session)
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        nav = cdp.call("Page.navigate", session, url=url)
        if nav.get("errorText"):
            raise BrowserError(f"could not open {url}: {nav['errorText']}")
        if cdp.wait_for("Page.loadEventFired", timeout) is None:
            raise BrowserError(f"{url} did not finish loading within {timeout:.0f} s")
        cdp.call(
            "Runtime.evaluate",
            session,
            timeout=timeout + 5,
            expression=_WAIT_FOR_IMAGES % int(timeout * 1000),
            awaitPromise=True,
            returnByValue=True,
        )
        cdp.drain(settle)
        found = cdp.call(
            "Runtime.evaluate", session, expression=_DESCRIBE_IMAGES, returnByValue=True
        )
        facts = json.loads(found["result"]["value"])
        report = PageReport(
            url,
            viewport_width=int(facts["viewport"]),
            scroll_width=int(facts["scrollWidth"]),
            images=[
                ImageInfo(
                    im["src"],
                    bool(im["complete"]),
                    int(im["naturalWidth"]),
                    int(im["naturalHeight"]),
                    float(im["width"]),
                    float(im["right"]),
                )
                for im in facts["images"]
            ],
        )
        if screenshot is not None:
            report.screenshot = _screenshot(cdp, session, Path(screenshot), width, max_height)
        cdp.drain(0.05)
        _collect(report, cdp.events, session)
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.browser PAGE [--screenshot PNG] [--width PX]``: print what is wrong
    with a page; exit 1 if anything is.

    Examples
    --------
    >>> main(["reports/demo/report.html", "--screenshot", "/tmp/report.png"])  # doctest: +SKIP
    report.html: 20 images, 0 problems
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.browser", description=main.__doc__
    )
    parser.add_argument("page", help="an HTML file or a URL")
    parser.add_argument("--screenshot", help="write a full-page PNG here")
    parser.add_argument("--width", type=int, default=1280, help="window width in CSS px")
    parser.add_argument("--allow-external", action="store_true", help="ignore network requests")
    args = parser.parse_args(argv)
    report = check_page(args.page, width=args.width, screenshot=args.screenshot)
    problems = report.local_problems if args.allow_external else report.problems
    name = Path(report.url).name
    print(f"{name}: {len(report.images)} images, {len(problems)} problems ({report.seconds:.1f} s)")
    for line in problems:
        print(f"  {line}")
    if report.screenshot:
        print(f"screenshot: {report.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
