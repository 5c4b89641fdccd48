"""What the browser tests share: a Jupyter front end in a subprocess, headless Chromium,
and the checks of what a user sees in a notebook.

Nothing here downloads anything: Chromium is the system's (``/usr/bin/chromium``, the
Debian package), driven by the Python ``playwright`` package; JupyterLab, Notebook 7 and
the ipywidgets front end come from their PyPI wheels.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium reaches for Google's services, and this closed network
    # refuses the connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
)

SERVER_READY_TIMEOUT = 60.0  # s: the front end answering /api/status, vimax answering
RUN_TIMEOUT_MS = 90_000  # a small Idea2Video run, from "Run All" to "completed", under load
UI_TIMEOUT_MS = 30_000  # the page, the kernel, a widget appearing

# Settings of a fresh user: no "get notified about Jupyter news?" toast over the outputs.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    }
}

# Console messages that mean a widget failed in the front end: by their text, or because
# they come from the widget manager's scripts.
WIDGET_ERROR = re.compile(
    r"widget|comm|model|vimax|backbone|lumino|@jupyter-widgets|jupyterlab-manager", re.IGNORECASE
)
WIDGET_SCRIPT = re.compile(r"jupyter-widgets|jupyterlab-manager|widgetsnbextension|vimax")

# Uncaught errors of the front ends themselves, with no widget on the page: tolerated,
# and only these (message, where the stack must be).
KNOWN_PAGE_ERRORS = [
    # Notebook 7.6's shortcuts plugin, as the settings load, on every page (even "1+1").
    (re.compile(r"Cannot read properties of undefined \(reading 'schema'\)"), "notebook_core"),
]


def shots_dir() -> Path | None:
    """Where to save screenshots of the panels (``VIMAX_E2E_SHOTS``), if anywhere."""
    folder = os.environ.get("VIMAX_E2E_SHOTS")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_notebook(path: Path, sources: Sequence[str]) -> Path:
    """A notebook of code cells, with the python3 kernel and no outputs yet."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, path)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class JupyterServer:
    """``jupyter lab`` or ``jupyter notebook`` serving ``root`` on a free port."""

    app: str
    root: Path
    port: int
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        where = "lab/tree" if self.app == "lab" else "notebooks"
        return f"{self.base_url}/{where}/{name}?token={self.token}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.base_url + path, headers={"Authorization": f"token {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""

    def wait_ready(self, timeout: float = SERVER_READY_TIMEOUT) -> None:
        """Poll ``/api/status`` then vimax's coordinator until both answer, or fail with
        the server's log. (A bounded wait: the server may be slow, never silent.)"""
        deadline = time.monotonic() + timeout
        pending = ["/api/status", "/vimax/api/coordinator"]
        pause = threading.Event()
        while pending:
            if self.process.poll() is not None:
                pytest.fail(f"jupyter {self.app} exited ({self.process.returncode}):\n{self.log()}")
            try:
                status, _body = self.get(pending[0])
            except OSError:
                status = 0
            if status == 200:
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                pytest.fail(
                    f"jupyter {self.app}: {pending[0]} not answering after {timeout:.0f} s:\n"
                    f"{self.log()[-4000:]}"
                )
            pause.wait(0.1)

    def wait_kernel_connected(self, notebook: str, timeout: float = UI_TIMEOUT_MS / 1000) -> None:
        """Poll ``/api/sessions`` until ``notebook``'s kernel is up, idle, and the page's
        WebSocket to it is open (a bounded wait)."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        sessions: Any = []
        while time.monotonic() < deadline:
            status, body = self.get("/api/sessions")
            sessions = json.loads(body) if status == 200 else []
            for session in sessions:
                kernel = session.get("kernel") or {}
                if (
                    session.get("path") == notebook
                    and kernel.get("execution_state") == "idle"
                    and kernel.get("connections", 0) >= 1
                ):
                    return
            pause.wait(0.1)
        pytest.fail(f"no connected kernel for {notebook} after {timeout:.0f} s: {sessions}")

    def stop(self) -> None:
        """SIGTERM (the server shuts its kernels down), then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextmanager
def jupyter(app: str, notebooks: dict[str, Sequence[str]]) -> Iterator[JupyterServer]:
    """Start ``jupyter <app>`` (``lab`` or ``notebook``) on a temporary folder holding
    ``notebooks`` ({file name: cell sources}); the vimax extension is enabled by
    ``pip install`` and keeps its work under that folder. A fresh user: config, data,
    runtime files and Lab's settings and workspaces are temporary too."""
    with tempfile.TemporaryDirectory(prefix=f"vimax-e2e-{app}-") as tmp:
        base = Path(tmp)
        root = base / "root"
        root.mkdir()
        for name, sources in notebooks.items():
            write_notebook(root / name, sources)
        config = base / "config"
        for name, values in USER_SETTINGS.items():
            path = config / "lab" / "user-settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIMAX_NB_", "JPY_"))}
        env.update(
            JUPYTER_CONFIG_DIR=str(config),
            JUPYTER_DATA_DIR=str(base / "data"),
            JUPYTER_RUNTIME_DIR=str(base / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(config / "lab" / "user-settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        )
        port, token = _free_port(), secrets.token_hex(24)
        command = [
            sys.executable,
            "-m",
            "jupyter",
            app,
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        log_path = base / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        server = JupyterServer(app, root, port, token, process, log_path)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()


@dataclass
class Console:
    """What the page reported: uncaught errors, and console errors and warnings."""

    page_errors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    widget_errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on(
            "pageerror",
            lambda exc: self.page_errors.append(f"{exc.name}: {exc.message}\n{exc.stack}"),
        )
        page.on("console", self._on_console)

    def _on_console(self, message: Any) -> None:
        if message.type not in ("error", "warning"):
            return
        url = str((message.location or {}).get("url") or "")
        text = f"{message.text} ({url})" if url else message.text
        (self.errors if message.type == "error" else self.warnings).append(text)
        if message.type == "error" and (
            WIDGET_ERROR.search(message.text) or WIDGET_SCRIPT.search(url)
        ):
            self.widget_errors.append(text)

    def unexpected_page_errors(self) -> list[str]:
        """The uncaught errors, but for the front ends' own known ones."""
        return [
            error
            for error in self.page_errors
            if WIDGET_SCRIPT.search(error)
            or not any(
                message.search(error) and where in error for message, where in KNOWN_PAGE_ERRORS
            )
        ]

    def report(self) -> str:
        return "\n".join(
            [
                f"page errors: {self.page_errors}",
                f"console errors: {self.errors}",
                f"console warnings: {self.warnings}",
            ]
        )


@contextmanager
def browser_page(browser: Any, console: Console) -> Iterator[Any]:
    """A page in a fresh browser context, its console collected into ``console``."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    context.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page = context.new_page()
        console.attach(page)
        yield page
    finally:
        context.close()


def open_and_run_all(page: Any, server: JupyterServer, name: str, cells: int) -> None:
    """Open notebook ``name`` in the front end and run every cell from the Run menu, as a
    user would, once the page's kernel is connected (before, Jupyter drops the cells:
    "Run All" with no kernel yet does nothing)."""
    from playwright.sync_api import expect

    page.goto(server.notebook_url(name))
    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(cells, timeout=UI_TIMEOUT_MS)
    server.wait_kernel_connected(name)
    expect(page.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute("data-status", "idle")
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    item = page.get_by_role("menuitem", name=re.compile(r"^Run All Cells"))
    expect(item).to_be_enabled()
    item.click()
    first = page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt")
    expect(first).to_have_text(re.compile(r"\[(\*|\d+)\]"))


def output_of(page: Any, cell: int) -> Any:
    """The output area of code cell ``cell`` (0-based)."""
    return page.locator(".jp-Notebook .jp-Cell").nth(cell).locator(".jp-OutputArea-output")


def badge(area: Any, state: str) -> Any:
    """The state badge of a WorkflowProgress when it shows ``state``."""
    return area.locator(".vimax-badge").filter(has_text=re.compile(rf"^{re.escape(state)}$"))


def stage_rows(area: Any) -> Any:
    """The rows of a WorkflowProgress's stages ("✓ story 1/1 done", ...)."""
    return area.locator(".vimax-stages > div")


def background_of(locator: Any) -> str:
    return str(locator.evaluate("el => getComputedStyle(el).backgroundColor"))


def rgb(hex_color: str) -> str:
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def check_completed_progress(area: Any, subject: str) -> None:
    """A WorkflowProgress in ``area`` that has reached the end of a successful run, as a
    user sees it: ``subject`` (the idea) as literal text, the green badge, a full bar at
    100%, every stage row done, the buttons idle, frames and the video loaded."""
    from playwright.sync_api import expect

    from vimax_nb.widgets import theme

    done = badge(area, "completed")
    expect(done).to_be_visible(timeout=RUN_TIMEOUT_MS)
    assert background_of(done) == rgb(theme.GREEN)
    title = area.locator(".widget-html-content", has=area.page.locator("b", has_text="idea2video"))
    expect(title).to_contain_text("idea2video")
    expect(title).to_contain_text(subject)  # the markup in it shown as text

    expect(area.locator(".widget-hbox:has(> .widget-hprogress)")).to_contain_text("100%")
    bar = area.locator(".widget-hprogress .progress-bar")
    expect(bar).to_have_class(re.compile(r"progress-bar-success"))
    expect(bar).to_have_attribute("style", re.compile(r"width:\s*100%"))

    rows = stage_rows(area)
    expect(rows.filter(has_text=re.compile(r"^\u2713 story\b"))).to_have_count(1)
    expect(rows.filter(has_text=re.compile(r"^\u2713 final\b"))).to_have_count(1)
    assert rows.count() >= 5, rows.all_inner_texts()
    assert all(text.endswith("done") for text in rows.all_inner_texts()), rows.all_inner_texts()

    for label in ("Pause", "Resume", "Cancel"):
        expect(area.get_by_role("button", name=label)).to_be_disabled()

    frames = area.locator("img.widget-image")  # a Video widget is a video.widget-image
    expect(frames.first).to_be_visible()
    page = area.page
    page.wait_for_function(
        "els => els.length > 0 && els.every(img => img.complete && img.naturalWidth > 0)",
        arg=frames.element_handles(),
        timeout=UI_TIMEOUT_MS,
    )
    video = area.locator("video")
    expect(video).to_have_count(1)
    # The final MP4 plays: Chromium decodes it (H.264) and its time runs.
    page.wait_for_function(
        "v => v.readyState >= 2 || v.error", arg=video.element_handle(), timeout=UI_TIMEOUT_MS
    )
    assert video.evaluate("v => v.error ? v.error.code : null") is None
    assert video.evaluate("v => [v.videoWidth > 0, v.duration > 0]") == [True, True]
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("v => v.currentTime > 0.1", arg=video.element_handle())
    video.evaluate("v => { v.pause(); v.currentTime = 0; }")


def check_log(area: Any) -> None:
    """Opening the panel's log (a click, a round trip to the kernel) shows its lines."""
    from playwright.sync_api import expect

    header = area.locator(".jupyter-widget-Collapse-header", has_text="Log (")
    expect(header).to_have_text(re.compile(r"Log \([1-9]\d* events\)"))
    header.click()
    expect(area.locator("pre")).to_contain_text(re.compile(r"completed 100%"))


def check_no_injection(page: Any) -> None:
    """No markup from user text became an element, and none of its scripts ran."""
    from playwright.sync_api import expect

    expect(page.locator("img[src='x'], img[src='y']")).to_have_count(0)
    assert page.evaluate("typeof window.__pwned") == "undefined"


def check_outputs_clean(page: Any) -> None:
    """No traceback or stderr in any cell, and no widget that failed to display."""
    from playwright.sync_api import expect

    outputs = page.locator(".jp-OutputArea-output")
    expect(outputs.and_(page.locator("[data-mime-type*='stderr']"))).to_have_count(0)
    expect(outputs.and_(page.locator("[data-mime-type*='error']"))).to_have_count(0)
    for text in ("Error displaying widget", "Failed to load model class", "Loading widget"):
        expect(outputs.filter(has_text=text)).to_have_count(0)


def screenshot(locator: Any, name: str) -> None:
    """Save ``locator``'s picture as ``<VIMAX_E2E_SHOTS>/<name>.png`` when asked to."""
    folder = shots_dir()
    if folder is not None:
        locator.scroll_into_view_if_needed()
        locator.screenshot(path=str(folder / f"{name}.png"), animations="disabled")
