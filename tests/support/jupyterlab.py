"""Run a notebook the way a person does: in JupyterLab 4, in headless Chromium (Playwright).

Two halves:

* :func:`jupyterlab` starts this environment's ``jupyter lab`` on ``127.0.0.1`` (a free port,
  a random token, no browser, every per-user Jupyter folder isolated in a private folder, no
  news or update prompts) and stops it, kernels included, on exit.
* Page helpers drive a Playwright ``Page`` showing that server: :func:`run_notebook_in_lab`
  opens a notebook, waits for its kernel, runs all cells from the *Run* menu and waits until
  execution ends; :func:`widget_dropdown`, :func:`select_dropdown`, :func:`open_widget_tab`,
  :func:`widget_tab_child`, :func:`audio_info` and :func:`image_info` reach into ipywidgets.
  What the page logs is recorded by :class:`tests.support.browser.PageEvents`, filtered by
  the documented allow-list :data:`LAB_CONSOLE_ALLOW`.

Examples
--------
>>> from playwright.sync_api import sync_playwright                      # doctest: +SKIP
>>> from tests.support.browser import PageEvents, launch_chromium        # doctest: +SKIP
>>> with jupyterlab("notebooks") as lab, sync_playwright() as pw:        # doctest: +SKIP
...     browser = launch_chromium(pw)
...     page = browser.new_page(viewport={"width": 1280, "height": 900})
...     events = PageEvents(page)                 # before anything is opened
...     run = run_notebook_in_lab(page, lab.notebook_url("explore.ipynb"))
...     select_dropdown(page, "beta", description="track")
...     browser.close()                           # before the server goes
...     events.unexpected_errors(LAB_CONSOLE_ALLOW)
[]
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from stemkit.errors import StemkitError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from playwright.sync_api import Locator, Page

__all__ = [
    "LAB_CONSOLE_ALLOW",
    "NOTEBOOK",
    "LabError",
    "LabServer",
    "NotebookRun",
    "audio_info",
    "free_port",
    "image_info",
    "jupyterlab",
    "kernel_status",
    "lab_environment",
    "notebook_state",
    "open_widget_tab",
    "run_all_cells",
    "run_notebook_in_lab",
    "select_dropdown",
    "wait_for_execution_end",
    "wait_for_kernel_idle",
    "watch_for_run",
    "widget_dropdown",
    "widget_tab_child",
]


class LabError(StemkitError):
    """JupyterLab did not start, or a notebook did not open or run in time."""


# ============================================================================================
# The server
# ============================================================================================

#: User settings written into the private settings folder before start. With ``fetchNews``
#: unset, JupyterLab 4 shows a "Would you like to get notified about official Jupyter news?"
#: toast on first start (``--LabApp.news_url=None`` alone does not stop it). Either this or
#: :data:`LAB_DISABLED_PLUGINS` is enough; both are used.
LAB_USER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

#: Front-end plugins switched off by ``labconfig/page_config.json`` in the private config
#: folder (what ``jupyter labextension disable`` writes): the news and update announcements.
LAB_DISABLED_PLUGINS: tuple[str, ...] = ("@jupyterlab/apputils-extension:announcements",)

#: Console errors that JupyterLab 4.6 (with ipywidgets 8.1) logs by itself, whatever the
#: notebook: regular expressions for ``re.search``. None is logged with the server that
#: :func:`jupyterlab` starts (opening, running, widget interaction, the browser closed before
#: the server), so the list is empty. Add a pattern here, with a comment saying where it
#: comes from, rather than filtering in a test. Warnings (not errors, not filtered) that are
#: logged: "Disabling terminals plugin because they are not available on the server" (from
#: ``terminals_enabled=False``).
LAB_CONSOLE_ALLOW: tuple[str, ...] = ()


@dataclass
class LabServer:
    """A running ``jupyter lab``, as yielded by :func:`jupyterlab`.

    Attributes
    ----------
    url : str
        Base URL, ending in ``/`` (``http://127.0.0.1:PORT/``).
    token : str
        The server's random token.
    root_dir : pathlib.Path
        The folder the server shows (``--ServerApp.root_dir``).
    home : pathlib.Path
        The private folder: Jupyter's config, data and runtime folders, JupyterLab's settings
        and workspaces, IPython's and Matplotlib's, and ``server.log``.
    process : subprocess.Popen or None
        The server process (leader of its own session).
    seconds_to_start : float
        Wall time from launch until ``GET /api/status`` answered.
    children : set of int
        Every child process (kernel) seen by :meth:`child_pids`; killed on stop if still alive.
    """

    url: str
    token: str
    root_dir: Path
    home: Path
    process: subprocess.Popen[bytes] | None
    seconds_to_start: float = 0.0
    children: set[int] = field(default_factory=set, repr=False)

    @property
    def log_path(self) -> Path:
        """pathlib.Path : The server's stdout and stderr."""
        return self.home / "server.log"

    def log_text(self) -> str:
        """The server log so far.

        Returns
        -------
        str
            Empty when there is no log yet.
        """
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def notebook_url(self, relpath: str | os.PathLike[str], *, reset: bool = True) -> str:
        """The URL that opens a notebook in JupyterLab, token included.

        Parameters
        ----------
        relpath : str or os.PathLike
            The notebook's path relative to :attr:`root_dir`.
        reset : bool
            Append ``&reset``: JupyterLab then drops the saved workspace (tabs left open by an
            earlier visit, whose kernels it would start again) instead of restoring it.

        Returns
        -------
        str
            ``{url}lab/tree/{relpath}?token=...&reset``.

        Examples
        --------
        >>> srv = LabServer("http://127.0.0.1:8888/", "t0k", Path("."), Path("."), None)
        >>> srv.notebook_url("sub dir/explore.ipynb")
        'http://127.0.0.1:8888/lab/tree/sub%20dir/explore.ipynb?token=t0k&reset'
        """
        rel = Path(relpath).as_posix().lstrip("/")
        url = f"{self.url}lab/tree/{quote(rel)}?token={self.token}"
        return url + "&reset" if reset else url

    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
        """Call the server's REST API with the token.

        Parameters
        ----------
        path : str
            Relative to :attr:`url`, e.g. ``"api/kernels"``.
        method : str
            HTTP method (``POST``, ``PUT`` and ``PATCH`` send an empty body).
        timeout : float
            Seconds.

        Returns
        -------
        object
            The decoded JSON reply, or None for an empty one.
        """
        req = urllib.request.Request(
            self.url + path.lstrip("/"),
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method in ("POST", "PUT", "PATCH") else None,
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def kernels(self) -> list[dict[str, Any]]:
        """The running kernels (``GET api/kernels``).

        Returns
        -------
        list of dict
            ``id``, ``name``, ``execution_state``, ``connections`` ... of each.
        """
        return list(self.api("api/kernels"))

    def child_pids(self) -> set[int]:
        """The server's live child processes (its kernels), also remembered in :attr:`children`.

        Returns
        -------
        set of int
            Empty when psutil is missing (it comes with ipykernel) or the server is gone.
        """
        try:
            import psutil
        except ImportError:  # pragma: no cover
            return set()
        found: set[int] = set()
        if self.process is not None:
            with contextlib.suppress(psutil.Error):
                found = {c.pid for c in psutil.Process(self.process.pid).children(recursive=True)}
        self.children |= found
        return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now.

    Parameters
    ----------
    host : str
        The address to probe.

    Returns
    -------
    int

    Examples
    --------
    >>> 1024 <= free_port() <= 65535
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _jupyter_lab_command() -> list[str]:
    """This environment's ``jupyter lab`` (the venv's script, not whatever is on the PATH)."""
    script = Path(sys.executable).parent / "jupyter-lab"  # no resolve(): keep the venv's path
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "jupyterlab"]


def lab_environment(home: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> dict:
    """The server's environment: ``env`` with every per-user Jupyter folder inside ``home``.

    The kernels the server starts inherit it, so whatever ``env`` holds (a sandbox URL,
    credentials) reaches the notebook code.

    Parameters
    ----------
    home : str or os.PathLike
        The private folder; its subfolders are made.
    env : mapping, optional
        The base environment; default ``os.environ`` as it is now.

    Returns
    -------
    dict
        ``JUPYTER_CONFIG_DIR``, ``JUPYTER_DATA_DIR``, ``JUPYTER_RUNTIME_DIR``,
        ``JUPYTERLAB_SETTINGS_DIR``, ``JUPYTERLAB_WORKSPACES_DIR``, ``IPYTHONDIR`` and
        ``MPLCONFIGDIR`` point into ``home``; ``JUPYTER_PATH`` and ``JUPYTER_CONFIG_PATH``
        are dropped; this interpreter's ``bin`` comes first on ``PATH`` (ipykernel's
        ``kernel.json`` runs plain ``python``) and ``JUPYTER_PREFER_ENV_PATH=1`` puts this
        environment's kernelspecs before any system-wide one.

    Examples
    --------
    >>> import tempfile
    >>> env = lab_environment(tempfile.mkdtemp(), {"PATH": "/usr/bin", "JUPYTER_PATH": "/x"})
    >>> env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable), "JUPYTER_PATH" in env
    (True, False)
    """
    home = Path(home)
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",  # ~/.jupyter: configs, labconfig
        "JUPYTER_DATA_DIR": home / "data",  # ~/.local/share/jupyter: kernels, nbsignatures
        "JUPYTER_RUNTIME_DIR": home / "runtime",  # connection files, server info
        "JUPYTERLAB_SETTINGS_DIR": home / "lab-settings",  # user settings
        "JUPYTERLAB_WORKSPACES_DIR": home / "lab-workspaces",  # saved layouts (open tabs)
        "IPYTHONDIR": home / "ipython",  # no ~/.ipython startup files or history
        "MPLCONFIGDIR": home / "matplotlib",  # no ~/.config/matplotlib
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    base = os.environ if env is None else env
    out = {k: v for k, v in base.items() if k not in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH")}
    out.update({k: str(v) for k, v in dirs.items()})
    out["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), out.get("PATH", "")])
    out["JUPYTER_PREFER_ENV_PATH"] = "1"
    out["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # debugpy's "frozen modules" warning
    return out


def _write_lab_config(home: Path) -> None:
    """Switch off the announcements plugin and the news and update prompts for this server."""
    labconfig = home / "config" / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    page_config = {"disabledExtensions": {name: True for name in LAB_DISABLED_PLUGINS}}
    (labconfig / "page_config.json").write_text(json.dumps(page_config, indent=1))
    for rel, values in LAB_USER_SETTINGS.items():
        path = home / "lab-settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=1))


def _log_tail(server: LabServer, lines: int = 15) -> str:
    return "\n".join(server.log_text().splitlines()[-lines:])


def _wait_until_up(server: LabServer, timeout: float) -> None:
    """Poll ``GET api/status`` until it answers (the server exiting meanwhile is an error)."""
    assert server.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise LabError(
                f"jupyter lab exited with code {server.process.returncode}:\n{_log_tail(server)}"
            )
        try:
            server.api("api/status", timeout=2)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise LabError(f"jupyter lab did not answer within {timeout:.0f} s:\n{_log_tail(server)}")


def _stop(server: LabServer, timeout: float = 20.0) -> None:
    """Shut the server down (it shuts its kernels down), then kill whatever it left."""
    proc = server.process
    assert proc is not None
    server.child_pids()  # remember the kernels before the server goes
    if proc.poll() is None:
        with contextlib.suppress(Exception):
            server.api("api/shutdown", method="POST", timeout=5)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # jupyter_server shuts its kernels down on it too
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the server's own session (start_new_session)
    for pid in server.children:  # kernels run in sessions of their own
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def jupyterlab(
    root_dir: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    home: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
    extra_args: Iterable[str] = (),
) -> Iterator[LabServer]:
    """Start ``jupyter lab`` headless on 127.0.0.1; stop it, and its kernels, on exit.

    The server gets a random token, no browser, no terminals, no news feed and no update
    check, and private Jupyter, JupyterLab, IPython and Matplotlib folders (see
    :func:`lab_environment`), so neither the user's settings nor saved workspaces leak in and
    nothing is left behind. Run as root, it gets ``--allow-root``.

    Parameters
    ----------
    root_dir : str or os.PathLike
        The folder the server serves (``--ServerApp.root_dir``). JupyterLab may save notebooks
        there (autosave): give it a copy.
    env : mapping, optional
        The environment of the server and so of its kernels (see :func:`lab_environment`);
        default ``os.environ`` as it is now.
    port : int, optional
        Default: a free port. ``--ServerApp.port_retries=0``: never another one.
    home : str or os.PathLike, optional
        The private folder, kept after exit (its ``server.log`` helps when a test fails).
        Default: a temporary folder, removed on exit.
    timeout : float
        Seconds to wait for ``GET /api/status`` to answer.
    extra_args : iterable of str
        More ``jupyter lab`` options. traitlets refuses an option the command line already
        holds ("only accepts one value"), so these can only add.

    Yields
    ------
    LabServer

    Raises
    ------
    LabError
        The server exited or did not answer in time (the message ends with the log's tail).
    """
    root = Path(root_dir).resolve()
    if not root.is_dir():
        raise LabError(f"{root} is not a folder")
    with contextlib.ExitStack() as stack:
        if home is None:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stemkit-lab-")))
        else:
            base = Path(home).resolve()
            base.mkdir(parents=True, exist_ok=True)
        server_env = lab_environment(base, env)
        _write_lab_config(base)
        port = port or free_port()
        token = secrets.token_hex(24)
        cmd = [
            *_jupyter_lab_command(),
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            *extra_args,
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # else "Running as root is not recommended": exit 1
        log = (base / "server.log").open("wb")
        stack.callback(log.close)
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=base,
            env=server_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = LabServer(f"http://127.0.0.1:{port}/", token, root, base, proc)
        try:
            _wait_until_up(server, timeout)
            server.seconds_to_start = time.monotonic() - started
            yield server
        finally:
            _stop(server)


# ============================================================================================
# The page: a notebook
# ============================================================================================

#: The notebook on show (JupyterLab hides the panels of background tabs with
#: ``lm-mod-hidden``).
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
#: A JupyterLab modal dialog (a ``<dialog>`` element in 4.x).
DIALOG = ".jp-Dialog"
#: A notification toast (bottom right).
TOAST = ".Toastify__toast"
#: The *Run All Cells* entry of the *Run* menu. The menu holds the generic
#: ``runmenu:run-all`` command (which calls ``notebook:run-all-cells``); the attribute does not
#: depend on the UI language.
RUN_ALL_ITEM = (
    '.lm-Menu-item[data-command="runmenu:run-all"], '
    '.lm-Menu-item[data-command="notebook:run-all-cells"]'
)

_STATE_JS = """
(sel) => {
  const panel = document.querySelector(sel);
  if (!panel) return null;
  const ind = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const name = panel.querySelector('.jp-Toolbar-item[data-jp-item-name="kernelName"]');
  const prompts = Array.from(panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))
                       .map(p => p.textContent.trim());
  const stderr = Array.from(panel.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], ' +
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'))
      .map(e => e.textContent.trim().slice(0, 2000));
  return {status: ind ? ind.getAttribute('data-status') : null,
          kernel: name ? name.textContent.trim() : null,
          prompts, stderr, cells: panel.querySelectorAll('.jp-Cell').length};
}
"""

# A run has started once the execution indicator went busy or a prompt showed [*] (noted by a
# MutationObserver, so a run that ends between two polls is seen too); it has ended once the
# indicator reads idle and no prompt shows [*].
_WATCH_RUN_JS = """
(sel) => {
  const panel = document.querySelector(sel);
  if (window.__stemkitRun) window.__stemkitRun.observer.disconnect();
  const watch = {started: false, observer: null};
  const check = () => {
    if (panel.querySelector('.jp-Notebook-ExecutionIndicator[data-status="busy"]') ||
        Array.from(panel.querySelectorAll('.jp-InputPrompt'))
             .some(p => p.textContent.includes('[*]'))) watch.started = true;
  };
  watch.observer = new MutationObserver(check);
  watch.observer.observe(panel, {subtree: true, childList: true, characterData: true,
                                 attributes: true, attributeFilter: ['data-status']});
  window.__stemkitRun = watch;
}
"""

_RUN_ENDED_JS = """
(sel) => {
  const panel = document.querySelector(sel);
  const watch = window.__stemkitRun;
  if (!panel || (watch && !watch.started)) return false;
  const ind = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const idle = ind && ind.getAttribute('data-status') === 'idle';
  const queued = Array.from(panel.querySelectorAll('.jp-InputPrompt'))
                      .some(p => p.textContent.includes('[*]'));
  if (!idle || queued) return false;
  if (watch) { watch.observer.disconnect(); delete window.__stemkitRun; }
  return true;
}
"""


@dataclass
class NotebookRun:
    """What :func:`run_notebook_in_lab` saw.

    Attributes
    ----------
    prompts : list of str
        Each code cell's input prompt at the end (``"[1]:"``; ``"[ ]:"`` for a cell that did
        not run, e.g. after an exception).
    stderr : list of str
        Texts of stderr and error outputs (a traceback shows up here).
    dialogs : list of str
        Titles of the dialogs accepted on the way (e.g. ``"Select Kernel"``).
    notifications : list of str
        Texts of the notification toasts closed on the way.
    seconds_to_idle : float
        From ``page.goto`` until the kernel was idle.
    seconds_to_run : float
        From *Run All Cells* until execution ended.
    dirty_before_run : bool or None
        The document showed as modified (its tab's ``jp-mod-dirty`` mark) once the kernel was
        idle, before anything ran.
    """

    prompts: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)
    seconds_to_idle: float = 0.0
    seconds_to_run: float = 0.0
    dirty_before_run: bool | None = None

    @property
    def all_ran(self) -> bool:
        """bool : Every code cell has an execution count.

        Examples
        --------
        >>> NotebookRun(["[1]:", "[ ]:"]).all_ran, NotebookRun(["[1]:", "[2]:"]).all_ran
        (False, True)
        """
        return bool(self.prompts) and all(re.fullmatch(r"\[\d+\]:", p) for p in self.prompts)


def notebook_state(page: Page) -> dict[str, Any] | None:
    """What the shown notebook's toolbar and cells say now.

    Parameters
    ----------
    page : playwright.sync_api.Page
        A page showing JupyterLab.

    Returns
    -------
    dict or None
        None when no notebook is shown, else ``status`` (the toolbar execution indicator's
        ``data-status``), ``kernel`` (the toolbar's kernel name, ``"No Kernel"`` until a
        session exists), ``prompts`` (each code cell's input prompt), ``stderr`` (stderr and
        error output texts) and ``cells`` (how many cells).
    """
    return page.evaluate(_STATE_JS, NOTEBOOK)


def is_dirty(page: Page) -> bool:
    """True if the current document's tab is marked modified (``jp-mod-dirty``): what a user
    sees as the dot on the tab, and the "unsaved changes" question when closing it.

    Parameters
    ----------
    page : playwright.sync_api.Page
        A page showing JupyterLab.

    Returns
    -------
    bool
    """
    return bool(
        page.evaluate(
            "() => !!document.querySelector("
            "'.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current.jp-mod-dirty')"
        )
    )


def kernel_status(page: Page) -> str | None:
    """The shown notebook's kernel status, once it has a kernel.

    Parameters
    ----------
    page : playwright.sync_api.Page
        A page showing JupyterLab.

    Returns
    -------
    str or None
        ``"idle"``, ``"busy"``, ``"initializing"``, ``"connecting"``, ``"unknown"`` ...;
        None when no notebook is shown or it has no kernel yet.

    Notes
    -----
    The toolbar's execution indicator reads ``idle`` as soon as the notebook is drawn,
    *before* a kernel exists (the toolbar says "No Kernel" then), and goes ``initializing``,
    ``connecting``, ``unknown``, ``busy``, ``idle`` as the kernel starts. Its status therefore
    only counts once the toolbar names a kernel.
    """
    state = notebook_state(page)
    if not state or state["kernel"] in (None, "", "No Kernel"):
        return None
    return state["status"]


def _dismiss_dialogs(page: Page) -> list[str]:
    """Accept every open dialog (e.g. *Select Kernel*); Escape one without an accept button."""
    seen = []
    dialogs = page.locator(DIALOG)
    while dialogs.count():
        dialog = dialogs.first
        seen.append(dialog.locator(".jp-Dialog-header").inner_text(timeout=2000).strip())
        accept = dialog.locator(".jp-Dialog-button.jp-mod-accept")
        if accept.count():
            accept.first.click()
        else:
            page.keyboard.press("Escape")
        dialog.wait_for(state="detached", timeout=5000)
    return seen


def _dismiss_notifications(page: Page) -> list[str]:
    """Close every notification toast; return their texts."""
    texts = []
    for toast in page.locator(TOAST).all():
        with contextlib.suppress(Exception):
            texts.append(toast.locator(".jp-toast-message").inner_text(timeout=1000).strip())
            toast.locator(".jp-Notification-Toast-Close").click(timeout=2000)
    return texts


def wait_for_kernel_idle(
    page: Page,
    timeout: float = 60.0,
    *,
    stable: float = 0.5,
    seen: NotebookRun | None = None,
) -> None:
    """Wait until the shown notebook has a kernel and it has been idle ``stable`` s on end.

    The kernel goes busy and idle several times while it starts (kernel info, comm info
    for the widget manager), hence ``stable``. Dialogs that pop up meanwhile are accepted and
    toasts closed.

    Parameters
    ----------
    page : playwright.sync_api.Page
        A page showing a notebook.
    timeout : float
        Seconds.
    stable : float
        Seconds the status must read idle without a break.
    seen : NotebookRun, optional
        Where to note the dialogs and toasts dismissed.

    Raises
    ------
    LabError
        Not idle in time.
    """
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    status = None
    while time.monotonic() < deadline:
        if page.locator(DIALOG).count():
            titles = _dismiss_dialogs(page)
            if seen is not None:
                seen.dialogs += titles
        if page.locator(TOAST).count():
            texts = _dismiss_notifications(page)
            if seen is not None:
                seen.notifications += texts
        status = kernel_status(page)
        if status == "idle":
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= stable:
                return
        else:
            idle_since = None
        page.wait_for_timeout(100)  # the next poll
    raise LabError(f"kernel not idle after {timeout:.0f} s (status {status!r})")


def watch_for_run(page: Page) -> None:
    """Start noting whether the shown notebook's kernel gets any work.

    Call it just before asking for a run: :func:`wait_for_execution_end` then waits for the
    run to have started before it waits for its end. (Prompts alone cannot tell: a saved
    notebook whose cells read ``[1]``, ``[2]`` reads the same after a fresh run.)

    Parameters
    ----------
    page : playwright.sync_api.Page
        A page showing a notebook.
    """
    page.evaluate(_WATCH_RUN_JS, NOTEBOOK)


def wait_for_execution_end(page: Page, timeout: float = 120.0) -> dict[str, Any]:
    """Wait until a run has started and ended: kernel idle and no cell showing ``[*]``.

    "Started" is what :func:`watch_for_run` noted (call it before asking for the run);
    without that watch, the wait looks at the current state only.

    Parameters
    ----------
    page : playwright.sync_api.Page
        A page showing a notebook.
    timeout : float
        Seconds.

    Returns
    -------
    dict
        The final :func:`notebook_state`.

    Raises
    ------
    LabError
        Still running (or never started) when the time is up.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(_RUN_ENDED_JS, arg=NOTEBOOK, timeout=timeout * 1000, polling=100)
    except PlaywrightTimeout as exc:
        raise LabError(
            f"notebook still running (or never started) after {timeout:.0f} s: "
            f"{notebook_state(page)}"
        ) from exc
    state = notebook_state(page)
    assert state is not None
    return state


def run_all_cells(page: Page) -> None:
    """Click *Run* > *Run All Cells* in JupyterLab's menu bar.

    Parameters
    ----------
    page : playwright.sync_api.Page
        A page showing a notebook.

    Notes
    -----
    A notebook with no code cell never turns the kernel busy: do not wait for its end.
    """
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    item = page.locator(RUN_ALL_ITEM).first
    item.wait_for(state="visible", timeout=5000)
    item.click()


def run_notebook_in_lab(page: Page, notebook_url: str, timeout: float = 120.0) -> NotebookRun:
    """Open a notebook in JupyterLab 4, run all its cells, and wait until they are done.

    Steps: go to ``notebook_url``; wait for the notebook panel's first cell; accept any dialog
    (*Select Kernel*) and close any toast; wait until the toolbar names a kernel and its status
    stays idle; *Run* > *Run All Cells*; wait until the kernel has been busy, is idle again,
    and no cell shows ``[*]``.

    Parameters
    ----------
    page : playwright.sync_api.Page
        A page of a browser that reaches the server.
    notebook_url : str
        From :meth:`LabServer.notebook_url`.
    timeout : float
        Seconds for all of it (page load, kernel start, run).

    Returns
    -------
    NotebookRun
        Check :attr:`NotebookRun.all_ran` and :attr:`NotebookRun.stderr`.

    Raises
    ------
    LabError
        Its kernel did not start, or the run did not finish, in time.
    playwright.sync_api.TimeoutError
        The notebook did not appear in time.
    """
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    started = time.monotonic()
    run = NotebookRun()
    page.goto(notebook_url, wait_until="domcontentloaded", timeout=left() * 1000)
    page.locator(f"{NOTEBOOK} .jp-Notebook .jp-Cell").first.wait_for(
        state="visible", timeout=left() * 1000
    )
    wait_for_kernel_idle(page, left(), seen=run)
    run.seconds_to_idle = time.monotonic() - started
    run.dirty_before_run = is_dirty(page)
    run_started = time.monotonic()
    watch_for_run(page)
    run_all_cells(page)
    final = wait_for_execution_end(page, left())
    run.prompts = list(final["prompts"])
    run.stderr = list(final["stderr"])
    run.seconds_to_run = time.monotonic() - run_started
    return run


# ============================================================================================
# The page: ipywidgets
# ============================================================================================


def _exactly(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def _relative(where: Page | Locator, selector: str) -> Locator:
    """A locator for ``has=``: built from the page, since a ``has`` locator is queried inside
    the outer one (a locator chained from ``where`` would look for ``where`` in there)."""
    page = getattr(where, "page", where)  # a Locator knows its page; a Page is one
    return page.locator(selector)


def widget_dropdown(page: Page | Locator, description: str) -> Locator:
    """The ``<select>`` of the ipywidgets ``Dropdown`` whose description is ``description``.

    A ``Dropdown`` renders as ``<div class="widget-dropdown"><label class="widget-label">``
    *description* ``</label><select>...</select></div>``.

    Parameters
    ----------
    page : playwright.sync_api.Page or playwright.sync_api.Locator
        Where to look (a locator narrows it down, e.g. to one widget tree).
    description : str
        The label, matched exactly (spaces around it aside).

    Returns
    -------
    playwright.sync_api.Locator
        Every such ``<select>``; one, when the description is unique.
    """
    label = _relative(page, ".widget-label").filter(has_text=_exactly(description))
    return page.locator(".widget-dropdown").filter(has=label).locator("select")


def select_dropdown(
    page: Page | Locator, option: str, *, description: str, timeout: float = 10.0
) -> Locator:
    """Choose ``option`` in an ipywidgets ``Dropdown``, as a click on it does.

    Playwright's ``select_option`` fires ``input`` and ``change``, which the widget listens
    to; the new value goes to the kernel, whose observers then run.

    Parameters
    ----------
    page : playwright.sync_api.Page or playwright.sync_api.Locator
        Where to look for the dropdown.
    option : str
        The option's label (as shown).
    description : str
        The dropdown's description (see :func:`widget_dropdown`).
    timeout : float
        Seconds to wait for the dropdown.

    Returns
    -------
    playwright.sync_api.Locator
        The ``<select>``.
    """
    select = widget_dropdown(page, description)
    select.wait_for(state="visible", timeout=timeout * 1000)
    select.select_option(label=option, timeout=timeout * 1000)
    return select


def _widget_tab(where: Page | Locator, title: str) -> tuple[Locator, int]:
    """The first ipywidgets ``Tab`` in ``where`` and the index of its tab titled ``title``."""
    tab = where.locator(".widget-tab").first
    labels = tab.locator(":scope > .widget-tab-bar .lm-TabBar-tabLabel")
    labels.first.wait_for(state="attached")
    titles = [t.strip() for t in labels.all_inner_texts()]
    if title not in titles:
        raise LabError(f"no tab {title!r} (the tabs are {titles})")
    return tab, titles.index(title)


def open_widget_tab(page: Page | Locator, title: str, *, timeout: float = 10.0) -> Locator:
    """Click the tab titled ``title`` of an ipywidgets ``Tab`` (the first one in ``page``).

    An ipywidgets 8 ``Tab`` renders as ``.widget-tab``: a Lumino tab bar
    (``.widget-tab-bar``, one ``.lm-TabBar-tab`` per child) above ``.widget-tab-contents``,
    which holds the children in order, all but the current one hidden (``lm-mod-hidden``).

    Parameters
    ----------
    page : playwright.sync_api.Page or playwright.sync_api.Locator
        Where to look for the ``Tab``.
    title : str
        The tab's title, matched exactly.
    timeout : float
        Seconds to wait for the tab and for its child to show.

    Returns
    -------
    playwright.sync_api.Locator
        The child widget now shown (see :func:`widget_tab_child`).

    Raises
    ------
    LabError
        The ``Tab`` has no such title.
    """
    tab, index = _widget_tab(page, title)
    tab.locator(":scope > .widget-tab-bar .lm-TabBar-tab").nth(index).click(timeout=timeout * 1000)
    child = widget_tab_child(page, title)
    child.wait_for(state="visible", timeout=timeout * 1000)
    return child


def widget_tab_child(page: Page | Locator, title: str) -> Locator:
    """The child widget shown under the tab titled ``title`` (shown or not).

    Parameters
    ----------
    page : playwright.sync_api.Page or playwright.sync_api.Locator
        Where to look for the ``Tab`` (the first one found is used).
    title : str
        The tab's title, matched exactly.

    Returns
    -------
    playwright.sync_api.Locator
        The child's top element (e.g. ``.widget-output`` or ``img.widget-image``).

    Raises
    ------
    LabError
        The ``Tab`` has no such title.
    """
    tab, index = _widget_tab(page, title)
    return tab.locator(f":scope > .widget-tab-contents > :nth-child({index + 1})")


_AUDIO_INFO_JS = """(el, ms) => new Promise(done => {
    const info = () => done({
        src: el.currentSrc || (el.querySelector('source') || {}).src || el.src || '',
        duration: el.duration, readyState: el.readyState, controls: el.controls,
        error: el.error ? el.error.code : null});
    if (el.readyState >= 1) return info();
    el.addEventListener('loadedmetadata', info, {once: true});
    el.addEventListener('error', info, {once: true});
    setTimeout(info, ms);
})"""

_IMAGE_INFO_JS = """(el, ms) => new Promise(done => {
    const info = () => done({src: el.currentSrc || el.src, complete: el.complete,
                             naturalWidth: el.naturalWidth, naturalHeight: el.naturalHeight,
                             className: el.className});
    if (el.complete && el.src) return info();
    el.addEventListener('load', info, {once: true});
    el.addEventListener('error', info, {once: true});
    setTimeout(info, ms);
})"""


def audio_info(audio: Locator, *, timeout: float = 30.0) -> dict[str, Any]:
    """Wait for an ``<audio>`` element to be attached and its metadata to decode.

    ``IPython.display.Audio`` shown in an ``ipywidgets.Output`` renders as ``<audio
    controls>`` with a ``<source src="data:audio/wav;base64,...">``.

    Parameters
    ----------
    audio : playwright.sync_api.Locator
        One ``<audio>`` element.
    timeout : float
        Seconds, for each of the two waits.

    Returns
    -------
    dict
        ``src`` (the whole data URI), ``duration`` (s; NaN if it never decoded),
        ``readyState``, ``controls``, ``error`` (a ``MediaError`` code, or None).
    """
    audio.wait_for(state="attached", timeout=timeout * 1000)
    return audio.evaluate(_AUDIO_INFO_JS, int(timeout * 1000))


def image_info(img: Locator, *, timeout: float = 30.0) -> dict[str, Any]:
    """Wait for an ``<img>`` to be visible and loaded (or failed).

    An ``ipywidgets.Image`` renders as ``<img class="widget-image">`` with a ``blob:`` URL.

    Parameters
    ----------
    img : playwright.sync_api.Locator
        One ``<img>`` element.
    timeout : float
        Seconds, for each of the two waits.

    Returns
    -------
    dict
        ``src``, ``complete``, ``naturalWidth``, ``naturalHeight`` (0 when it did not decode),
        ``className``.
    """
    img.wait_for(state="visible", timeout=timeout * 1000)
    return img.evaluate(_IMAGE_INFO_JS, int(timeout * 1000))
