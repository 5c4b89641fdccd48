""":class:`Run`: a live view of one workflow, and :class:`RunResult`, what it produced.

A Run follows its workflow's room through the client's shared
:class:`~vimax_nb.client.connection.Connection` from the start (``after=None``), so it sees
the whole replay and then the live events; its attributes are updated on the
connection's thread and may be read from any thread. :meth:`Run.wait` blocks the calling
thread on a condition (never by polling) until the workflow ends; ``await run`` does the
same in async code.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol import TERMINAL_STATES, WorkflowRecord, WorkflowState, workflow_room
from .connection import RequestError, Subscription
from .errors import RunCanceled, RunFailed, VimaxError

if TYPE_CHECKING:
    from .api import Client

__all__ = ["HISTORY_SIZE", "Run", "RunResult"]

log = logging.getLogger(__name__)

HISTORY_SIZE = 200
"""Events a :class:`Run` keeps in :attr:`Run.history`."""

_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)

ChangeCallback = Callable[["Run"], None]


@dataclass
class RunResult:
    """A finished workflow's products: local paths when the workdir is reachable, else URLs."""

    video: Path | str | None
    story: Any
    script: Any
    characters: Any
    frames: list[Path | str]
    workflow: WorkflowRecord


@dataclass(eq=False, slots=True)
class _Listener:
    callback: ChangeCallback
    active: bool = True


class Run:
    """A live view of one workflow, updated from its room's events.

    Attributes are updated on the connection's thread; read them from any thread.
    :attr:`history` holds the last :data:`HISTORY_SIZE` events received, oldest first
    (each with its ``seq``): a widget made late shows the log from there, taking
    ``list(run.history)`` for a stable copy.
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
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY_SIZE)
        self.record = record
        self._cond = threading.Condition()
        self._ended = record.state.value in _TERMINAL
        self._listeners: list[_Listener] = []
        self._subscription: Subscription | None = None

    # -- updates (the connection's thread) ----------------------------------------------

    def _follow(self) -> None:
        """Subscribe to the workflow's room from its first event."""
        self._subscription = self.client.connection.subscribe(
            workflow_room(self.id), self._on_event, on_reset=self._on_reset
        )

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._cond:
            self.events += 1
            self.history.append(event)
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
            listeners = list(self._listeners)
        for listener in listeners:
            if not listener.active:
                continue
            try:
                listener.callback(self)
            except Exception:
                log.exception("a change callback of run %s failed", self.id)

    def on_change(self, callback: ChangeCallback) -> None:
        """Call ``callback(run)`` after each update, on the connection's thread (don't block).

        An exception in it is logged and does not stop the other callbacks. Remove it with
        :meth:`remove_change_callback`.
        """
        with self._cond:
            self._listeners.append(_Listener(callback))

    def remove_change_callback(self, callback: ChangeCallback) -> bool:
        """Stop calling ``callback`` (one registration of it); False if it was not registered.

        Thread-safe: once this returns, no update that starts afterwards calls it (a call
        already under way on the connection's thread may finish).
        """
        with self._cond:
            for listener in self._listeners:
                if listener.callback == callback:
                    listener.active = False
                    self._listeners.remove(listener)
                    return True
        return False

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
        """Resume the paused or interrupted workflow; its new state."""
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
