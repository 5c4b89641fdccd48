"""Finding a vimax-nb server: :func:`connect`.

In order, :func:`connect` tries

1. ``VIMAX_NB_URL`` / ``VIMAX_NB_TOKEN`` when set;
2. the Jupyter server this kernel runs under: its runtime file ``jpserver-<pid>.json``
   in :func:`jupyter_core.paths.jupyter_runtime_dir` whose ``pid`` is ``JPY_PARENT_PID``
   (or this process's parent), with ``JUPYTERHUB_API_TOKEN`` when the file has no token;
3. a private ``jupyter server`` with the extension, started as a subprocess on a free
   port of 127.0.0.1 with a random token and stopped when the interpreter exits.

Each candidate must answer ``GET /vimax/api/coordinator``. When none does,
:class:`VimaxConnectError` lists what was tried and why each failed.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .api import Client, VimaxError

__all__ = ["PrivateServer", "VimaxConnectError", "connect", "default_client", "disconnect"]

READY_TIMEOUT = 10.0
PROBE_TIMEOUT = 5.0
WORKDIR_NAME = "vimax-work"  # the extension's default workdir under the server's root_dir

_lock = threading.RLock()
_default: Client | None = None
_private: PrivateServer | None = None


class VimaxConnectError(ConnectionError):
    """No vimax-nb server could be reached; ``attempts`` is ``[(what, why), ...]``."""

    def __init__(self, attempts: list[tuple[str, str]]) -> None:
        lines = "\n".join(f"  - {what}: {why}" for what, why in attempts)
        super().__init__(f"could not connect to a vimax-nb server; tried:\n{lines}")
        self.attempts = attempts


def connect(
    url: str | None = None,
    token: str | None = None,
    *,
    start_server: bool = True,
    workdir: str | Path | None = None,
) -> Client:
    """The process's default :class:`Client`, found (or started) on first call.

    With ``url`` the server there is used (and becomes the default if there is none
    yet); ``start_server=False`` never starts a private server.
    """
    global _default
    with _lock:
        if url is None and _default is not None and not _default._closed:
            return _default
        attempts: list[tuple[str, str]] = []
        client = None
        if url is not None:
            client = _probe(f"the given url {url}", url, token, workdir, attempts)
        else:
            client = _discover(token, start_server, workdir, attempts)
        if client is None:
            raise VimaxConnectError(attempts)
        if _default is None or _default._closed:
            _default = client
        return client


def default_client() -> Client | None:
    """The default client :func:`connect` made, if any."""
    return _default


def disconnect() -> None:
    """Close the default client and stop the private server, if any (idempotent)."""
    global _default, _private
    with _lock:
        client, _default = _default, None
        server, _private = _private, None
    if client is not None:
        client.close()
    if server is not None:
        server.stop()


def _discover(
    token: str | None,
    start_server: bool,
    workdir: str | Path | None,
    attempts: list[tuple[str, str]],
) -> Client | None:
    env_url = os.environ.get("VIMAX_NB_URL")
    if env_url:
        env_token = token or os.environ.get("VIMAX_NB_TOKEN")
        client = _probe(f"VIMAX_NB_URL={env_url}", env_url, env_token, workdir, attempts)
        if client is not None:
            return client
    else:
        attempts.append(("VIMAX_NB_URL", "not set"))

    client = _from_runtime_file(token, workdir, attempts)
    if client is not None:
        return client

    if not start_server:
        attempts.append(("a private jupyter server", "not started (start_server=False)"))
        return None
    return _start_private(workdir, attempts)


def _probe(
    what: str,
    url: str,
    token: str | None,
    workdir: str | Path | None,
    attempts: list[tuple[str, str]],
) -> Client | None:
    client = Client(url, token, workdir=workdir)
    try:
        client.coordinator(timeout=PROBE_TIMEOUT)
    except VimaxError as exc:
        attempts.append((what, f"answered HTTP {exc.status}: {exc.message}"))
    except (OSError, ValueError) as exc:
        attempts.append((what, f"{type(exc).__name__}: {exc}"))
    else:
        return client
    return None


def _parent_pid() -> int:
    raw = os.environ.get("JPY_PARENT_PID")
    if raw:
        try:
            return int(raw)
        except ValueError:
            pass
    return os.getppid()


def _from_runtime_file(
    token: str | None, workdir: str | Path | None, attempts: list[tuple[str, str]]
) -> Client | None:
    from jupyter_core.paths import jupyter_runtime_dir

    pid = _parent_pid()
    runtime = Path(jupyter_runtime_dir())
    what = f"the Jupyter server of pid {pid} (runtime files in {runtime})"
    info = _runtime_info(runtime, pid)
    if info is None:
        attempts.append((what, f"no jpserver-*.json there with pid {pid}"))
        return None
    url = info.get("url")
    if not isinstance(url, str) or not url:
        attempts.append((what, "its runtime file has no url"))
        return None
    base_url = info.get("base_url")
    if (
        isinstance(base_url, str)
        and base_url.strip("/")
        and not url.rstrip("/").endswith(base_url.rstrip("/"))
    ):
        url = url.rstrip("/") + "/" + base_url.strip("/") + "/"
    server_token = token or info.get("token") or os.environ.get("JUPYTERHUB_API_TOKEN")
    root_dir = info.get("root_dir") or info.get("notebook_dir")
    if workdir is None and isinstance(root_dir, str) and root_dir:
        workdir = Path(root_dir) / WORKDIR_NAME
    return _probe(f"{what} at {url}", url, server_token or None, workdir, attempts)


def _runtime_info(runtime: Path, pid: int) -> dict[str, Any] | None:
    named = runtime / f"jpserver-{pid}.json"
    candidates = [named, *sorted(p for p in runtime.glob("jpserver-*.json") if p != named)]
    for path in candidates:
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("pid") == pid:
            return info
    return None


# -- a private server -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class PrivateServer:
    """A ``jupyter server`` subprocess with the extension, on 127.0.0.1."""

    def __init__(self, root_dir: str | Path | None = None) -> None:
        self.root_dir = Path(root_dir or os.getcwd()).resolve()
        self.token = secrets.token_hex(24)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115  (kept open while it runs)
            prefix="vimax-nb-server-", suffix=".log", delete=False
        )
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.jpserver_extensions=vimax_nb.server=True",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--allow-root")
        return args

    def start(self, timeout: float = READY_TIMEOUT) -> Client:
        """Start it and wait until the extension answers; a Client for it."""
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.root_dir,
        )
        atexit.register(self.stop)
        client = Client(self.url, self.token, workdir=self.root_dir / WORKDIR_NAME)
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"it exited with code {code}: {self.log_tail()}")
            try:
                client.coordinator(timeout=1.0)
                return client
            except VimaxError as exc:
                last = f"HTTP {exc.status}: {exc.message}"
            except (OSError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                self.stop()
                raise TimeoutError(
                    f"not ready within {timeout} s (last: {last}); log: {self.log_tail()}"
                )
            time.sleep(0.1)  # a process we don't control: nothing to wait on but its port

    def log_tail(self, size: int = 800) -> str:
        try:
            text = Path(self.log.name).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-size:].strip() or "(empty log)"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate it, then kill it if it does not stop (idempotent)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        self.log.close()


def _start_private(workdir: str | Path | None, attempts: list[tuple[str, str]]) -> Client | None:
    global _private
    server = PrivateServer()
    what = f"a private jupyter server on {server.url} (root {server.root_dir})"
    try:
        client = server.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        attempts.append((what, str(exc)))
        server.stop()
        return None
    if workdir is not None:
        client.workdir = Path(workdir)
    _private = server
    return client
