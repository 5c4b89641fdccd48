"""A Jupyter server killed in the middle of a run and started again on the same port, with
the same workdir and database: the client reconnects by itself and its Run, and the
WorkflowProgress widget on it, end on the exact final state with every event once; while
the run is interrupted, ``Run.wait()`` raises RunInterrupted rather than blocking.

The server is a ``jupyter server`` subprocess whose image provider is the OpenAI one,
pointed at a fake images endpoint in this process: the test holds every image request,
so the workflow is known to be mid-run (its text stages done, no frame drawn) when the
server is killed (SIGKILL: a crash, nothing is saved on the way out).
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vimax_nb.client import Client, ConnectionState, RunInterrupted
from vimax_nb.client.run import HISTORY_SIZE
from vimax_nb.protocol import ArtifactEvent
from vimax_nb.widgets import WorkflowProgress

from ..server.conftest import small_params
from .helpers import wait_run

IDEA = "A lighthouse keeper befriends a whale"
TOKEN = "restart-test-token"
START_TIMEOUT = 60.0
TIMEOUT = 90.0


class FakeImages:
    """An OpenAI-compatible ``/v1/images/generations`` that holds every request until
    :attr:`opened` is set, then answers it with a small PNG; a model probe (a GET) is
    answered at once."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.png = _png()
        images = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                """The server's probe of a model (``GET /v1/models/<model>``): it is there."""
                model = self.path.rstrip("/").rsplit("/", 1)[-1]
                body = json.dumps({"id": model, "object": "model", "owned_by": "test"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with images.lock:
                    images.requests += 1
                images.entered.set()
                if not images.opened.wait(TIMEOUT):
                    return
                body = json.dumps({"created": 0, "data": [{"b64_json": images.png}]}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the server that asked was killed meanwhile
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeImages:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 90, 160)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


class ServerProcess:
    """``jupyter server`` with the extension on ``port``; its output is kept, and
    :meth:`start` waits for the line the extension logs once started (the server's loop
    runs and listens by then; its own "is running at" comes before it listens)."""

    def __init__(self, root: Path, port: int, images: FakeImages) -> None:
        self.root = root
        self.port = port
        self.images = images
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.jpserver_extensions=vimax_nb.server=True",
            f"--VimaxApp.workdir={self.root / 'vimax-work'}",
            "--VimaxApp.image_provider=openai",
            "--VimaxApp.max_concurrent_tasks=2",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--allow-root")
        return args

    def start(self) -> ServerProcess:
        env = {
            **os.environ,
            "VIMAX_OPENAI_BASE_URL": self.images.base_url,
            "VIMAX_OPENAI_API_KEY": "test-key",
            "VIMAX_OPENAI_RPM": "off",
            "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
            "JUPYTER_CONFIG_DIR": str(self.root / "config"),
        }
        self.ready.clear()
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.root,
            env=env,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        if not self.ready.wait(START_TIMEOUT):
            self.kill()
            raise TimeoutError(f"the server did not start: {self.tail()}")
        assert self.process.poll() is None, self.tail()
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.output.append(line)
            if "vimax-nb: workflows in" in line:  # the extension started, on the running loop
                self.ready.set()
        self.ready.set()  # it exited: start() reports it

    def tail(self) -> str:
        return "".join(self.output[-30:])

    def kill(self) -> None:
        """SIGKILL: the process dies at once, with no chance to save anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def stored_events(url: str, workflow_id: str) -> list[dict[str, Any]]:
    """The server's stored events of a workflow (REST)."""
    request = urllib.request.Request(
        f"{url}vimax/api/workflows/{workflow_id}/events?limit=1000",
        headers={"Authorization": f"token {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        events: list[dict[str, Any]] = json.loads(response.read())["events"]
    return events


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class StateLog:
    """The states of a connection, waited on a condition."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.states: list[ConnectionState] = []

    def state(self, state: ConnectionState) -> None:
        with self.cond:
            self.states.append(state)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        with self.cond:
            ok = self.cond.wait_for(predicate, timeout)
        assert ok, f"states {self.states}"


@pytest.fixture
def images() -> Iterator[FakeImages]:
    with FakeImages() as fake:
        yield fake


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """The server processes a test starts, stopped at its end."""
    made: list[ServerProcess] = []
    yield made
    for server in made:
        server.stop()


@pytest.mark.timeout(300)
def test_a_run_survives_a_server_restart_with_every_event_once(
    tmp_path: Path, images: FakeImages, servers: list[ServerProcess]
) -> None:
    port = free_port()
    servers.append(ServerProcess(tmp_path, port, images).start())
    client = Client(servers[0].url, TOKEN, workdir=tmp_path / "vimax-work")
    try:
        log = StateLog()
        client.connection.on_state(log.state)
        run = client.idea2video(IDEA, **small_params())
        widget = WorkflowProgress(run)

        # -- held mid-run: the text stages are done, every image request waits
        assert images.entered.wait(TIMEOUT), servers[0].tail()
        wait_run(run, lambda r: r.state == "running" and r.progress > 0 and r.events > 0)
        # the stage table below is the one of every event stored so far (the text stages'
        # last events may still be on their way when the first image is asked for)
        stored = client.events(run.id).top
        wait_run(run, lambda r: r.events >= stored)
        assert client.workflow(run.id).state == "running"
        assert 0 < run.progress < 1
        stages_before = {s.name: s.done for s in run.stages}
        assert any(stages_before.values())
        seen_before = run.events
        assert [e.seq for e in run.history] == list(range(1, seen_before + 1))

        # -- crash, then start again on the same port with the same workdir and database
        servers[0].kill()
        log.wait(lambda: ConnectionState.offline in log.states)
        servers.append(ServerProcess(tmp_path, port, images).start())
        log.wait(lambda: log.states.count(ConnectionState.open) == 2)
        record = client.workflow(run.id)
        assert record.state == "interrupted"

        # -- wait() gives control back while the run is interrupted, and says what to do
        with pytest.raises(RunInterrupted, match=r"server restarted.*run\.resume\(\)") as info:
            run.wait(TIMEOUT)
        assert info.value.run is run
        assert run.state == "interrupted"
        assert not run.done
        # the stage table still says how far it got (the interrupted event has no counts)
        assert {s.name: s.done for s in run.stages} == stages_before
        assert widget.wait_drawn(TIMEOUT)
        assert "interrupted" in widget.stages_html.value

        # -- resume: it completes from its checkpoints, and wait() waits for that end
        images.opened.set()
        assert run.resume() == "running"
        result = run.wait(TIMEOUT)
        assert result.workflow.state == "completed"
        assert isinstance(result.video, Path)
        assert result.video.is_file()

        stored = [e["seq"] for e in stored_events(servers[1].url, run.id)]
        count = len(stored)
        assert stored == list(range(1, count + 1))
        wait_run(run, lambda r: r.events >= count)  # the last events may still be on the way
        assert count <= HISTORY_SIZE
        assert [e.seq for e in run.history] == stored  # no gap, no duplicate
        assert run.events == count > seen_before
        assert run.state == "completed"
        assert run.progress == 1.0
        # the text stages finished before the crash are taken from their checkpoints
        texts = [
            e
            for e in run.history
            if isinstance(e, ArtifactEvent) and e.stage in ("story", "characters", "script")
        ]
        assert sorted(e.name for e in texts) == ["characters", "script", "story"]
        assert all(e.seq is not None and e.seq <= seen_before for e in texts)

        widget.flush()
        assert widget.wait_drawn(10)
        final = "WorkflowProgress(idea2video 'A lighthouse keeper...' completed 100%)"
        assert repr(widget) == final
        assert widget.bar.value == 1.0
        assert "completed" in widget.badge.value
    finally:
        client.close()
