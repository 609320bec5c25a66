"""Open a page in headless Chromium and check what a person would see: images, console, width.

Debian's ``chromium`` is driven through Playwright's sync API, launched with
``executable_path`` (:func:`find_chromium`): Playwright never downloads a browser here, and
``playwright install`` is never needed. The browser fetches nothing in the background, and
every host name but ``localhost`` and ``127.0.0.1`` resolves to nothing, so a page that reaches
for the network shows up as a failed (and external) request instead of a silent download.

* :func:`check_page` opens one page and returns a :class:`PageReport`;
* :func:`launch_chromium` starts the browser for tests that drive a page themselves
  (JupyterLab: :mod:`tests.support.jupyterlab`), and :class:`PageEvents` records what such a
  page logs and requests.

Examples
--------
>>> from tests.support.browser import check_page
>>> page = check_page("reports/demo/report.html", screenshot="report.png")  # doctest: +SKIP
>>> page.problems                                                          # doctest: +SKIP
[]
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from stemkit.errors import StemkitError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from playwright.sync_api import Browser, Page, Playwright

__all__ = [
    "CHROMIUM_FLAGS",
    "BrowserError",
    "ImageInfo",
    "PageEvents",
    "PageReport",
    "check_page",
    "find_chromium",
    "is_local_url",
    "launch_chromium",
]

#: Flags of every launch. Playwright adds ``--headless`` and its own automation flags; these
#: keep Chromium quiet (no sandbox: root in CI; no GPU, no QUIC, nothing fetched in the
#: background) and make every host but ``localhost`` and ``127.0.0.1`` fail to resolve.
CHROMIUM_FLAGS: tuple[str, ...] = (
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
    # No name resolves: a page that needs the network fails visibly and sends nothing out.
    # The rules apply to IP literals too: without "EXCLUDE 127.0.0.1" a local server at
    # http://127.0.0.1:PORT/ fails with net::ERR_NAME_NOT_RESOLVED.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
)

#: URL schemes that never leave the machine.
LOCAL_SCHEMES: tuple[str, ...] = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")
#: Host names that are this machine.
LOCAL_HOSTS: frozenset[str] = frozenset({"localhost", "127.0.0.1", "::1"})

# Make lazy images eager (a headless page never scrolls them into view), then wait until every
# <img> has loaded or failed, each for at most the given number of milliseconds.
_WAIT_FOR_IMAGES = """
(ms) => Promise.all(Array.from(document.images).map(img => {
    if (img.loading === 'lazy') img.loading = 'eager';
    return img.complete ? null : new Promise(done => {
        img.addEventListener('load', done, {once: true});
        img.addEventListener('error', done, {once: true});
        setTimeout(done, ms);
    });
})).then(() => document.images.length)
"""

_DESCRIBE_PAGE = """
() => ({
  viewport: document.documentElement.clientWidth,
  scrollWidth: document.documentElement.scrollWidth,
  scrollHeight: Math.max(document.documentElement.scrollHeight,
                         document.body ? document.body.scrollHeight : 0),
  images: Array.from(document.images).map(img => {
    const box = img.getBoundingClientRect();
    return {src: img.currentSrc || img.src, complete: img.complete,
            naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
            width: box.width, right: box.right + window.scrollX};
  }),
})
"""


class BrowserError(StemkitError):
    """Chromium could not be found, started or driven, or the page could not be opened."""


@dataclass(frozen=True)
class ImageInfo:
    """One ``<img>`` of a page.

    Attributes
    ----------
    src : str
        ``currentSrc`` (or ``src``) of the element.
    complete : bool
        The browser is done with it (loaded *or* failed).
    natural_width, natural_height : int
        The decoded picture's size in pixels (0 when it did not decode).
    width : float
        Drawn width in CSS pixels.
    right : float
        Right edge in page coordinates (CSS pixels).
    """

    src: str
    complete: bool
    natural_width: int
    natural_height: int
    width: float
    right: float

    @property
    def loaded(self) -> bool:
        """bool : Decoded into a picture (``complete`` and a non-zero natural width).

        Examples
        --------
        >>> ImageInfo("a.png", True, 0, 0, 0.0, 0.0).loaded
        False
        """
        return self.complete and self.natural_width > 0

    @property
    def label(self) -> str:
        """str : The source, short enough for a message (a data URI is cut after its type).

        Examples
        --------
        >>> ImageInfo("data:image/png;base64,AAAA", True, 1, 1, 1.0, 1.0).label
        'data:image/png;base64,… (26 chars)'
        """
        if self.src.startswith("data:"):
            return self.src.split(",", 1)[0] + f",… ({len(self.src)} chars)"
        return self.src


@dataclass
class PageReport:
    """What :func:`check_page` saw on one page.

    Attributes
    ----------
    url : str
        The URL that was opened.
    viewport_width : int
        ``document.documentElement.clientWidth`` (CSS px).
    scroll_width : int
        ``document.documentElement.scrollWidth``: wider than the viewport means the page
        scrolls sideways.
    images : list of ImageInfo
        Every ``<img>``, measured after all of them loaded or failed.
    console_errors : list of str
        Console messages of type ``error`` (``console.error``, "Failed to load resource"
        entries) and uncaught exceptions (prefixed ``uncaught``).
    console_warnings : list of str
        Console messages of type ``warning``.
    failed_requests : list of str
        ``"URL: error text"`` for each request that failed (cancelled ones excepted).
    external_requests : list of str
        Each requested URL that would leave the machine (see :func:`is_local_url`).
    screenshot : pathlib.Path or None
        The full-page PNG, when one was asked for.
    seconds : float
        Wall time of the whole check, browser start included.
    """

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
        """list of ImageInfo : Images that did not load (missing file, bad data, blocked)."""
        return [im for im in self.images if not im.loaded]

    @property
    def oversized_images(self) -> list[ImageInfo]:
        """list of ImageInfo : Images wider than the window.

        An image counts when its natural width exceeds the viewport (it is shown shrunk, or
        overflows), or when its drawn right edge lies past the viewport.
        """
        return [
            im
            for im in self.images
            if im.natural_width > self.viewport_width or im.right > self.viewport_width + 0.5
        ]

    @property
    def problems(self) -> list[str]:
        """list of str : Everything wrong with the page, one line each (empty: all fine).

        A failed request already reported by a console error for the same URL is not repeated.

        Examples
        --------
        >>> PageReport("file:///x.html", 1280, 1280, []).problems
        []
        >>> PageReport("file:///x.html", 1280, 1280, [], console_errors=["boom"]).problems
        ['console: boom']
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
        """list of str : :attr:`problems` less those caused by requests to the network.

        A page that needs the network is a problem of its own: see :attr:`external_requests`.

        Examples
        --------
        >>> r = PageReport("file:///x.html", 1280, 1280, [], external_requests=["https://a/b.js"],
        ...                console_errors=["Failed to load resource (https://a/b.js)"])
        >>> r.problems != [], r.local_problems
        (True, [])
        """
        return [p for p in self.problems if not any(u in p for u in self.external_requests)]


def find_chromium() -> str | None:
    """Locate the Chromium binary.

    Returns
    -------
    str or None
        ``$STEMKIT_CHROMIUM`` when set, else ``chromium`` (Debian) or ``chromium-browser`` on
        the ``PATH``; None when there is none.

    Examples
    --------
    >>> path = find_chromium()
    >>> path is None or Path(path).name.startswith("chrom") or "STEMKIT_CHROMIUM" in os.environ
    True
    """
    if os.environ.get("STEMKIT_CHROMIUM"):
        return os.environ["STEMKIT_CHROMIUM"]
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def is_local_url(url: str) -> bool:
    """Whether a request to ``url`` stays on this machine.

    Parameters
    ----------
    url : str
        Any URL a page requested.

    Returns
    -------
    bool
        True for ``file:``, ``data:``, ``blob:``, ``about:`` (and ``chrome:``, ``devtools:``)
        URLs, and for any URL whose host is ``localhost``, ``127.0.0.1`` or ``[::1]``.

    Examples
    --------
    >>> [is_local_url(u) for u in ("data:,x", "http://127.0.0.1:8888/lab", "https://cdn.x/a.js")]
    [True, True, False]
    """
    if url.startswith(LOCAL_SCHEMES):
        return True
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and host.lower() in LOCAL_HOSTS


def launch_chromium(
    playwright: Playwright,
    binary: str | None = None,
    *,
    extra_args: Iterable[str] = (),
    **launch_options: Any,
) -> Browser:
    """Launch headless Chromium through Playwright: the system's binary, never a download.

    Parameters
    ----------
    playwright : playwright.sync_api.Playwright
        From ``sync_playwright().start()`` or ``with sync_playwright() as pw``.
    binary : str, optional
        The Chromium executable; default :func:`find_chromium`.
    extra_args : iterable of str
        Flags added after :data:`CHROMIUM_FLAGS`.
    **launch_options
        Passed on to ``playwright.chromium.launch`` (e.g. ``timeout`` in ms, ``slow_mo``).

    Returns
    -------
    playwright.sync_api.Browser
        Close it (``browser.close()``) when done; Playwright gives it a fresh temporary
        profile, removed on close.

    Raises
    ------
    BrowserError
        No Chromium binary was found.

    Examples
    --------
    >>> from playwright.sync_api import sync_playwright               # doctest: +SKIP
    >>> with sync_playwright() as pw:                                 # doctest: +SKIP
    ...     browser = launch_chromium(pw)
    ...     browser.version
    ...     browser.close()
    '156.0.8078.114'
    """
    binary = binary or find_chromium()
    if not binary:
        raise BrowserError("no chromium binary found", hint="apt-get install chromium")
    return playwright.chromium.launch(
        executable_path=binary,
        headless=True,
        args=[*CHROMIUM_FLAGS, *extra_args],
        **launch_options,
    )


@dataclass
class PageEvents:
    """Collect a page's console errors and warnings, uncaught exceptions and requests.

    Make it right after the page, before anything is opened: it listens from then on.

    Parameters
    ----------
    page : playwright.sync_api.Page
        The page to listen to.

    Attributes
    ----------
    console_errors : list of str
        ``console.error`` and ``console.assert`` messages (with their source URL when the text
        does not hold it), "Failed to load resource" entries, and ``uncaught Name: message``
        for each exception nothing caught.
    console_warnings : list of str
        ``console.warn`` messages.
    failed_requests : list of str
        ``"URL: error text"`` for each failed request (those the page cancelled itself,
        ``net::ERR_ABORTED``, aside).
    external_requests : list of str
        Requested URLs that would leave the machine (see :func:`is_local_url`).
    """

    page: Page
    console_errors: list[str] = field(default_factory=list)
    console_warnings: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_page_error)
        self.page.on("request", self._on_request)
        self.page.on("requestfailed", self._on_request_failed)

    def _on_console(self, msg: Any) -> None:
        text = msg.text
        url = (msg.location or {}).get("url")
        if url and url not in text:
            text = f"{text} ({url})"
        if msg.type in ("error", "assert"):
            self.console_errors.append(text)
        elif msg.type == "warning":
            self.console_warnings.append(text)

    def _on_page_error(self, exc: Any) -> None:
        name = getattr(exc, "name", "") or "Error"
        self.console_errors.append(f"uncaught {name}: {getattr(exc, 'message', exc)}")

    def _on_request(self, request: Any) -> None:
        if not is_local_url(request.url):
            self.external_requests.append(request.url)

    def _on_request_failed(self, request: Any) -> None:
        failure = request.failure or "failed"
        if "ERR_ABORTED" not in failure:  # cancelled by the page itself, not an error
            self.failed_requests.append(f"{request.url}: {failure}")

    def unexpected_errors(self, allow: Iterable[str] = ()) -> list[str]:
        """The console errors that no pattern of ``allow`` matches.

        Parameters
        ----------
        allow : iterable of str
            Regular expressions, each tried with ``re.search``.

        Returns
        -------
        list of str
            In the order they were logged.
        """
        patterns = [re.compile(p) for p in allow]
        return [e for e in self.console_errors if not any(p.search(e) for p in patterns)]


def _as_url(page: str | os.PathLike[str]) -> str:
    """A URL as is; a path as an absolute ``file://`` URL (it must exist)."""
    text = str(page)
    if "://" in text or text.startswith(("about:", "data:")):
        return text
    path = Path(text).resolve()
    if not path.is_file():
        raise BrowserError(f"{path} does not exist")
    return path.as_uri()


def check_page(
    page: str | os.PathLike[str],
    *,
    width: int = 1280,
    height: int = 900,
    screenshot: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    settle: float = 0.5,
    max_height: int = 16000,
    binary: str | None = None,
) -> PageReport:
    """Load a page in headless Chromium and report its images, console and requests.

    The page is opened in a window ``width`` x ``height`` CSS px (device scale 1). After the
    ``load`` event, lazy images are made eager and every image is waited for (loaded or
    failed); the console is then listened to for ``settle`` more seconds before the page is
    measured.

    Parameters
    ----------
    page : str or os.PathLike
        An HTML file (opened as ``file://``) or any URL.
    width, height : int
        The window, in CSS pixels.
    screenshot : str or os.PathLike, optional
        Where to write a full-page PNG (its parent folders are made).
    timeout : float
        Seconds allowed for the browser to start, for the load event, and for each image.
    settle : float
        Seconds to keep listening for late console messages once the images are in.
    max_height : int
        The screenshot is cut at this many CSS pixels.
    binary : str, optional
        The Chromium executable; default :func:`find_chromium`.

    Returns
    -------
    PageReport

    Raises
    ------
    BrowserError
        No Chromium, a missing file, or a page that could not be opened or did not load.

    Examples
    --------
    >>> r = check_page("reports/demo/report.html", screenshot="/tmp/r.png")   # doctest: +SKIP
    >>> [im.natural_width for im in r.images][:2]                             # doctest: +SKIP
    [1104, 800]
    """
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    url = _as_url(page)
    ms = int(timeout * 1000)
    started = time.monotonic()
    with sync_playwright() as pw:
        try:
            browser = launch_chromium(pw, binary, timeout=ms)
        except PlaywrightError as exc:
            raise BrowserError(f"chromium did not start: {exc.message}") from exc
        try:
            context = browser.new_context(
                viewport={"width": width, "height": height}, device_scale_factor=1
            )
            tab = context.new_page()
            events = PageEvents(tab)
            try:
                tab.goto(url, wait_until="load", timeout=ms)
            except PlaywrightError as exc:
                raise BrowserError(f"could not open {url}: {exc.message}") from exc
            tab.evaluate(_WAIT_FOR_IMAGES, ms)
            tab.wait_for_timeout(settle * 1000)  # late console messages: nothing to wait for
            facts = tab.evaluate(_DESCRIBE_PAGE)
            report = PageReport(
                url,
                viewport_width=int(facts["viewport"]),
                scroll_width=int(facts["scrollWidth"]),
                images=[
                    ImageInfo(
                        str(im["src"]),
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
                path = Path(screenshot)
                path.parent.mkdir(parents=True, exist_ok=True)
                clip = None
                if int(facts["scrollHeight"]) > max_height:
                    clip = {"x": 0, "y": 0, "width": report.scroll_width, "height": max_height}
                tab.screenshot(path=path, full_page=True, clip=clip, timeout=60_000)
                report.screenshot = path
            context.close()
        finally:
            browser.close()
    report.console_errors = events.console_errors
    report.console_warnings = events.console_warnings
    report.failed_requests = events.failed_requests
    report.external_requests = events.external_requests
    report.seconds = time.monotonic() - started
    return report
