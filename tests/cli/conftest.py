"""One ``vimax-nb serve`` for the CLI tests, and helpers to drive ``vimax-nb`` as a user.

The server runs as a subprocess in a folder of its own, with its own Jupyter runtime
dir; most tests reach it through ``VIMAX_NB_URL``/``VIMAX_NB_TOKEN``. Output of
subprocesses is read line by line (a reader thread and a queue), never slept on.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vimax_nb.client import Client, discovery

from ..widgets.fakes import Backend, serving

SMALL = ["--size", "160x96", "--fps", "6", "--seconds", "1", "--shots", "2"]
TIMEOUT = 60.0


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vimax_nb.cli", *args]


@dataclass
class Lines:
    """A subprocess whose stdout is read line by line on a thread."""

    process: subprocess.Popen[str]
    seen: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """The first line (from here on) matching ``pattern``; fails at end of output."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line matched {pattern!r} in {timeout} s: {self.seen}"
                ) from None
            if line is None:
                raise AssertionError(f"output ended before {pattern!r}: {self.seen}")
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def rest(self, timeout: float = TIMEOUT) -> list[str]:
        """Every remaining line, once the process has closed its output."""
        while True:
            line = self._queue.get(timeout=timeout)
            if line is None:
                return self.seen
            self.seen.append(line)


@dataclass
class Served:
    """The shared ``vimax-nb serve``: its folder, runtime dir, URL, token and process."""

    folder: Path
    runtime: Path
    url: str
    token: str
    pid: int
    lines: Lines

    def client(self) -> Client:
        return Client(self.url, self.token)


def isolated_env(runtime: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIMAX_NB_", "JPY_"))}
    env.pop("JUPYTERHUB_API_TOKEN", None)
    env["JUPYTER_RUNTIME_DIR"] = str(runtime)
    return env


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``vimax-nb serve`` in a folder of its own, for the whole package."""
    folder = tmp_path_factory.mktemp("served")
    runtime = tmp_path_factory.mktemp("runtime")
    process = subprocess.Popen(
        cli("serve", "--port", "0", "--", "--VimaxApp.max_concurrent_tasks=2"),
        cwd=folder,
        env=isolated_env(runtime),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = Lines(process)
    try:
        pid = int(lines.until(r"^vimax-nb server for .* \(pid (\d+)\), ready in").group(1))
        url = lines.until(r"^  url: +(\S+)$").group(1)
        token = lines.until(r"^  token: +(\S+)$").group(1)
        lines.until(r"^Ctrl-C stops it\.$")
        yield Served(folder, runtime, url, token, pid, lines)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(30)
    rest = lines.rest()
    assert code == 0, rest
    assert any(line.startswith("stopped (code 0)") for line in rest), rest


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No default client, no VIMAX_NB_* variables, an empty runtime dir, not in a kernel;
    the current folder is an empty temporary one (returned)."""
    monkeypatch.setattr(discovery, "_default", None)
    monkeypatch.setattr(discovery, "_private", None)
    for name in ("VIMAX_NB_URL", "VIMAX_NB_TOKEN", "JUPYTERHUB_API_TOKEN", "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    work = tmp_path / "here"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def env_server(fresh: Path, served: Served, monkeypatch: pytest.MonkeyPatch) -> Served:
    """The shared server, named by VIMAX_NB_URL / VIMAX_NB_TOKEN."""
    monkeypatch.setenv("VIMAX_NB_URL", served.url)
    monkeypatch.setenv("VIMAX_NB_TOKEN", served.token)
    return served


@pytest.fixture
def fake() -> Iterator[Backend]:
    """The fake server of the widget tests and a real client of it (no workdir)."""
    with serving() as backend:
        yield backend
