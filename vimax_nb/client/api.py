"""The public Python API: :class:`Client` (REST + one shared WebSocket) and :class:`Run`.

A :class:`Client` talks REST with the standard library and follows workflows through
one lazily started :class:`~vimax_nb.client.connection.Connection`. A :class:`Run` is a
live view of one workflow, updated on the connection's thread from its room's events;
:meth:`Run.wait` blocks the calling thread (on a condition, never by polling) until the
workflow ends and ``await run`` does the same in async code.

REST calls block the calling thread: from a coroutine running on the loop that also
serves the Jupyter server, call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol import TERMINAL_STATES, WorkflowRecord, WorkflowState, workflow_room
from .connection import Connection, RequestError, Subscription

__all__ = ["Client", "Run", "RunCanceled", "RunFailed", "RunResult", "VimaxError"]

DEFAULT_TIMEOUT = 30.0
_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)


class VimaxError(RuntimeError):
    """The server refused a request: ``status`` (HTTP status, or None) and its ``message``."""

    def __init__(self, status: int | None, message: str, body: Any = None) -> None:
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.status = status
        self.message = message
        self.body = body


class RunFailed(VimaxError):
    """The workflow failed; ``error`` is the server's error record (or event)."""

    def __init__(self, run: Run, error: dict[str, Any] | None, message: str) -> None:
        super().__init__(None, f"workflow {run.id} failed: {message}", error)
        self.run = run
        self.error = error or {}


class RunCanceled(VimaxError):
    """The workflow was canceled."""

    def __init__(self, run: Run, message: str) -> None:
        super().__init__(None, f"workflow {run.id} was canceled: {message}")
        self.run = run


@dataclass
class RunResult:
    """A finished workflow's products: local paths when the workdir is reachable, else URLs."""

    video: Path | str | None
    story: Any
    script: Any
    characters: Any
    frames: list[Path | str]
    workflow: WorkflowRecord


class Client:
    """A vimax-nb server at ``url`` (``http(s)://host:port/base_url/``) with ``token``.

    ``workdir`` is the server's workflow folder when it is on this machine (its files are
    then given as local paths); without it results are artifact URLs.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        workdir: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/") + "/"
        self.token = token or None
        self.workdir = Path(workdir) if workdir is not None else None
        self.timeout = timeout
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._runs: dict[str, Run] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- REST ------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bool = False,
        timeout: float | None = None,
    ) -> Any:
        url = urllib.parse.urljoin(self.url, path.lstrip("/"))
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        if self.token:
            request.add_header("Authorization", f"token {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                content: bytes = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            try:
                payload = json.loads(text)
            except ValueError:
                payload = None
            message = (
                str(payload["message"])
                if isinstance(payload, dict) and "message" in payload
                else (text.strip() or str(exc.reason))
            )
            raise VimaxError(exc.code, message, payload) from None
        if raw:
            return content
        return json.loads(content) if content else None

    def submit(self, kind: str, **params: Any) -> Run:
        """Start a ``kind`` workflow with ``params``; its live :class:`Run`."""
        data = self._request("POST", "vimax/api/workflows", {"kind": kind, "params": params})
        return self._attach(WorkflowRecord.model_validate(data))

    def idea2video(self, idea: str, **params: Any) -> Run:
        """Make a video from an idea."""
        return self.submit("idea2video", idea=idea, **params)

    def script2video(self, script: str, **params: Any) -> Run:
        """Make a video from a script."""
        return self.submit("script2video", script=script, **params)

    def workflows(self) -> list[WorkflowRecord]:
        """Every workflow the server knows, past and running."""
        data = self._request("GET", "vimax/api/workflows")
        return [WorkflowRecord.model_validate(w) for w in data["workflows"]]

    def workflow(self, workflow_id: str) -> WorkflowRecord:
        """One workflow's record now."""
        data = self._request("GET", f"vimax/api/workflows/{_quote(workflow_id)}")
        return WorkflowRecord.model_validate(data)

    def run(self, workflow_id: str) -> Run:
        """A live :class:`Run` of an existing workflow (the same one each call)."""
        with self._lock:
            existing = self._runs.get(workflow_id)
        if existing is not None:
            return existing
        return self._attach(self.workflow(workflow_id))

    def agents(self) -> list[dict[str, Any]]:
        """The coordinator's agents and their metrics."""
        data = self._request("GET", "vimax/api/agents")
        agents = data.get("agents", data) if isinstance(data, dict) else data
        return list(agents)

    def coordinator(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The coordinator's metrics now."""
        data: dict[str, Any] = self._request("GET", "vimax/api/coordinator", timeout=timeout)
        return data

    def download(self, workflow_id: str, path: str, dest: str | Path) -> Path:
        """Save artifact ``path`` of a workflow to ``dest`` (a file, or a folder to put it in)."""
        content = self._request(
            "GET", self.artifact_path(workflow_id, path), raw=True, timeout=max(self.timeout, 120)
        )
        target = Path(dest)
        if target.is_dir():
            target = target / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return target

    @staticmethod
    def artifact_path(workflow_id: str, path: str) -> str:
        return f"vimax/api/workflows/{_quote(workflow_id)}/artifacts/{_quote(path, '/')}"

    def artifact(self, workflow_id: str, path: str) -> Path | str:
        """Artifact ``path``: a local Path when the workdir has it, else its URL."""
        if self.workdir is not None:
            local = self.workdir / workflow_id / path
            if local.is_file():
                return local
        return urllib.parse.urljoin(self.url, self.artifact_path(workflow_id, path))

    # -- WebSocket ---------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The shared Connection (started on first use)."""
        with self._lock:
            if self._closed:
                raise ConnectionError("the client is closed")
            if self._connection is None:
                self._connection = Connection(self.url, self.token)
            return self._connection

    def _attach(self, record: WorkflowRecord) -> Run:
        with self._lock:
            existing = self._runs.get(record.id)
            if existing is not None:
                return existing
            run = Run(self, record)
            self._runs[record.id] = run
        run._follow()
        return run

    def close(self) -> None:
        """Stop following runs and close the WebSocket (idempotent)."""
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Run:
    """A live view of one workflow, updated from its room's events.

    Attributes are updated on the connection's thread; read them from any thread.
    """

    def __init__(self, client: Client, record: WorkflowRecord) -> None:
        self.client = client
        self.id = record.id
        self.kind = record.kind
        self.params = dict(record.params)
        self.state: str = record.state.value
        self.progress: float = record.progress
        self.stage: str | None = record.stage
        self.message: str = record.message
        self.stages: list[dict[str, Any]] = []
        self.artifacts: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.events = 0
        self.record = record
        self._cond = threading.Condition()
        self._ended = record.state.value in _TERMINAL
        self._callbacks: list[Callable[[Run], None]] = []
        self._subscription: Subscription | None = None
        self._result: RunResult | None = None

    # -- updates (the connection's thread) ----------------------------------------------

    def _follow(self) -> None:
        self._subscription = self.client.connection.subscribe(
            workflow_room(self.id), self._on_event, on_reset=self._on_reset
        )

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._cond:
            self.events += 1
            kind = event.get("type")
            if kind == "progress":
                self._apply(event)
                stages = (event.get("details") or {}).get("stages")
                if isinstance(stages, list):
                    self.stages = [dict(s) for s in stages if isinstance(s, dict)]
            elif kind == "artifact":
                self.artifacts.append(event)
            elif kind == "error":
                self.errors.append(event)
            self._cond.notify_all()
        self._changed()

    def _on_reset(self, snapshot: dict[str, Any]) -> None:
        with self._cond:
            self._apply(snapshot)
            self._cond.notify_all()
        self._changed()

    def _apply(self, data: dict[str, Any]) -> None:
        state = data.get("state")
        if isinstance(state, str):
            self.state = state
            if state in _TERMINAL:
                self._ended = True
        progress = data.get("progress")
        if isinstance(progress, int | float):
            self.progress = float(progress)
        if "stage" in data:
            self.stage = data.get("stage")
        if isinstance(data.get("message"), str):
            self.message = data["message"]

    def _changed(self) -> None:
        with self._cond:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(self)

    def on_change(self, callback: Callable[[Run], None]) -> None:
        """Call ``callback(run)`` after each update, on the connection's thread (don't block)."""
        with self._cond:
            self._callbacks.append(callback)

    # -- waiting -----------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether the workflow reached completed, failed or canceled."""
        return self._ended

    def wait(self, timeout: float | None = None) -> RunResult:
        """Block until the workflow ends; its :class:`RunResult`.

        Raises TimeoutError after ``timeout`` s, :class:`RunFailed` if it failed and
        :class:`RunCanceled` if it was canceled.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._ended, timeout):
                raise TimeoutError(
                    f"workflow {self.id} ({self.kind}) still {self.state} at "
                    f"{self.progress:.0%} after {timeout} s; call wait() again to keep waiting"
                )
        record = self.client.workflow(self.id)
        with self._cond:
            self.record = record
        if record.state == WorkflowState.failed:
            error = record.error or (self.errors[-1] if self.errors else None)
            message = str((error or {}).get("message") or record.message)
            raise RunFailed(self, error, message)
        if record.state == WorkflowState.canceled:
            raise RunCanceled(self, record.message)
        return self._result_of(record)

    def _result_of(self, record: WorkflowRecord) -> RunResult:
        result = record.result or {}
        video = result.get("video")
        frames = result.get("frames") or []
        return RunResult(
            video=self.client.artifact(self.id, video) if isinstance(video, str) else None,
            story=result.get("story"),
            script=result.get("script"),
            characters=result.get("characters"),
            frames=[self.client.artifact(self.id, f) for f in frames if isinstance(f, str)],
            workflow=record,
        )

    def __await__(self) -> Generator[Any, None, RunResult]:
        return asyncio.to_thread(self.wait).__await__()

    # -- controls ----------------------------------------------------------------------

    def _control(self, action: str, timeout: float = 10.0) -> str:
        message = {"type": "control", "workflow_id": self.id, "action": action}
        try:
            answer = self.client.connection.request(message, timeout)
        except RequestError as exc:
            code = exc.frame.get("code")
            status = 404 if code == "not_found" else 400
            raise VimaxError(status, str(exc.frame.get("message")), exc.frame) from None
        if not answer.get("ok"):
            raise VimaxError(409, str(answer.get("message") or f"{action} refused"), answer)
        return str(answer.get("state"))

    def pause(self) -> str:
        """Pause the workflow; its new state."""
        return self._control("pause")

    def resume(self) -> str:
        """Resume the paused workflow; its new state."""
        return self._control("resume")

    def cancel(self) -> str:
        """Cancel the workflow; its new state."""
        return self._control("cancel")

    # -- display -----------------------------------------------------------------------

    def __repr__(self) -> str:
        subject = self.params.get("idea") or self.params.get("script")
        if isinstance(subject, str) and subject.strip():
            text = " ".join(subject.split())
            if len(text) > 24:
                text = text[:20].rsplit(" ", 1)[0].rstrip() + "..."
            title = repr(text)
        else:
            title = self.id
        return f"Run({self.kind} {title} {self.state} {self.progress:.0%})"


def _quote(text: str, safe: str = "") -> str:
    return urllib.parse.quote(text, safe=safe)
