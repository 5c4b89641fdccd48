"""A private ``jupyter server`` with the vimax-nb extension, run as a subprocess.

:func:`vimax_nb.client.connect` starts one when no server can be found; ``vimax-nb
serve`` runs one in the foreground. It starts in under a second: see ``_BOOTSTRAP``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .api import Client
from .errors import VimaxError

__all__ = ["READY_TIMEOUT", "WORKDIR_NAME", "PrivateServer"]

READY_TIMEOUT = 10.0
WORKDIR_NAME = "vimax-work"  # the extension's default workdir under the server's root_dir

# Runs ``jupyter server`` after two changes: the import of ``rfc3987_syntax`` is refused
# (it compiles a grammar for a second, only to check the "iri" JSON-schema format that
# Jupyter's events never use: it halves the start), and a thread stops the server when
# the process that started it is gone (even if it was killed).
_BOOTSTRAP = """\
import os, signal, sys, threading, time
sys.modules["rfc3987_syntax"] = None
parent = int(sys.argv.pop(1))
def _orphaned():
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)
if parent:
    threading.Thread(target=_orphaned, name="vimax-orphan-watch", daemon=True).start()
from jupyter_server.serverapp import main
sys.exit(main())
"""


# "[C 2026-12-05 09:01:47.420 ServerApp] Bad config ...": a critical or error log line.
_LOGGED_PROBLEM = re.compile(r"^\[[CE] [^\]]*\]\s*(?P<text>\S.*)$")
# "RuntimeError: ...", "ModuleNotFoundError: ...": the end of a traceback.
_NAMED_ERROR = re.compile(r"^(?P<text>[\w.]*(?:Error|Exception)\b.*\S.*)$")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class PrivateServer:
    """A ``jupyter server`` subprocess with the extension.

    It runs in its own session (a Ctrl-C in the terminal reaches this process only, which
    can then cancel runs through the server), writes its output to ``log`` (default: a
    temporary file, removed after a clean stop) and stops when this process exits.
    """

    def __init__(
        self,
        root_dir: str | Path | None = None,
        *,
        ip: str = "127.0.0.1",
        port: int | None = None,
        token: str | None = None,
        server_args: Sequence[str] = (),
        log: IO[Any] | None = None,
    ) -> None:
        self.root_dir = Path(root_dir or os.getcwd()).resolve()
        self.token = token or secrets.token_hex(24)
        self.ip = ip
        self.port = port or _free_port()
        host = f"[{ip}]" if ":" in ip else ("127.0.0.1" if ip in ("", "0.0.0.0") else ip)
        self.url = f"http://{host}:{self.port}/"
        self.server_args = list(server_args)
        self._own_log = log is None
        self.log: IO[Any] = log or tempfile.NamedTemporaryFile(  # noqa: SIM115  (kept open)
            prefix="vimax-nb-server-", suffix=".log", delete=False
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    def command(self) -> list[str]:
        args = [
            sys.executable,
            "-c",
            _BOOTSTRAP,
            str(os.getpid()),
            "--no-browser",
            f"--ip={self.ip}",
            f"--port={self.port}",
            "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.jpserver_extensions=vimax_nb.server=True",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--allow-root")
        return args + self.server_args

    def start(self, timeout: float = READY_TIMEOUT) -> Client:
        """Start it and wait until the extension answers; a Client for it."""
        began = time.monotonic()
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.root_dir,
            start_new_session=True,
        )
        atexit.register(self.stop)
        client = Client(self.url, self.token, workdir=self.root_dir / WORKDIR_NAME)
        deadline = began + timeout
        last = "no answer yet"
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"it exited with code {code}: {self.log_problem()} (log: {self.log.name})"
                )
            try:
                client.coordinator(timeout=1.0)
            except VimaxError as exc:
                last = f"HTTP {exc.status}: {exc.message}"
                if exc.status is not None and exc.status >= 500:
                    # it runs, but the extension could not start (a locked database...)
                    self.stop()
                    raise RuntimeError(f"the extension did not start: {exc.message}") from None
            except (OSError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                self.startup_seconds = time.monotonic() - began
                return client
            if time.monotonic() >= deadline:
                self.stop()
                raise TimeoutError(
                    f"not ready within {timeout} s (last: {last}); log: {self.log_problem()}"
                )
            time.sleep(0.05)  # a process we don't control: nothing to wait on but its port

    def log_tail(self, size: int = 800) -> str:
        if not self._own_log:
            return "(see its output above)"
        try:
            text = Path(self.log.name).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-size:].strip() or "(empty log)"

    def log_problem(self) -> str:
        """The decisive line of its log: the last critical or error line of Jupyter's (its
        ``[C ...]``/``[E ...]`` prefix removed), else the last line naming an error or
        exception; else :meth:`log_tail`."""
        if not self._own_log:
            return self.log_tail()
        try:
            lines = Path(self.log.name).read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        for pattern in (_LOGGED_PROBLEM, _NAMED_ERROR):
            for line in reversed(lines):
                match = pattern.match(line)
                if match:
                    return match.group("text").strip()
        return self.log_tail()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM: running workflows become interrupted), without waiting."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate it, then kill it if it does not stop (idempotent); its exit code."""
        process = self.process
        clean = False  # stopped by us in time: its log is of no more use
        if process is not None and process.poll() is None:
            self.terminate()
            try:
                process.wait(timeout)
                clean = True
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._own_log and not self.log.closed:
            self.log.close()
            if clean:
                with contextlib.suppress(OSError):
                    os.unlink(self.log.name)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        return process.returncode if process is not None else None
