""":class:`Run`: a live view of one workflow, and :class:`RunResult`, what it produced.

A Run follows its workflow's room through the client's shared
:class:`~vimax_nb.client.connection.Connection` from the start (``after=None``), so it sees
the whole replay and then the live events; its attributes are updated on the
connection's thread and may be read from any thread. :meth:`Run.wait` blocks the calling
thread on a condition (never by polling) until the workflow ends, is interrupted (a
server restart: :class:`~vimax_nb.client.errors.RunInterrupted`, which ``run.resume()``
continues) or its client is closed; ``await run`` does the same in async code.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol import TERMINAL_STATES, WorkflowRecord, WorkflowState, workflow_room
from .connection import RequestError, Subscription
from .errors import RunCanceled, RunFailed, RunInterrupted, VimaxError

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
        self._closed = False  # the client closed: wait() no longer blocks
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
            ended = False
            if kind == "progress":
                stages = (event.get("details") or {}).get("stages")
                if isinstance(stages, list):
                    self.stages = [dict(s) for s in stages if isinstance(s, dict)]
                ended = self._apply(event)
            elif kind == "artifact":
                self.artifacts.append(event)
            elif kind == "error":
                self.errors.append(event)
            # last: a reader that sees ``done`` reads the final state, progress and stages
            self._ended = self._ended or ended
            self._cond.notify_all()
        self._changed()

    def _on_reset(self, snapshot: dict[str, Any]) -> None:
        with self._cond:
            self._ended = self._apply(snapshot) or self._ended
            self._cond.notify_all()
        self._changed()

    def _apply(self, data: dict[str, Any]) -> bool:
        """Apply a progress event's or snapshot's fields (lock held); True if it ends the run.

        Sets no flag: the caller marks the run ended once everything is applied.
        """
        state = data.get("state")
        if isinstance(state, str):
            self.state = state
        progress = data.get("progress")
        if isinstance(progress, int | float):
            self.progress = float(progress)
        if "stage" in data:
            self.stage = data.get("stage")
        if isinstance(data.get("message"), str):
            self.message = data["message"]
        return isinstance(state, str) and state in _TERMINAL

    def _close(self) -> None:
        """The client closed: wake every waiter; :meth:`wait` no longer blocks."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

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
        """Whether the workflow reached completed, failed or canceled (not ``interrupted``,
        which :meth:`resume` continues). Once True, the state, progress, stage, message and
        stages read are those of the final update."""
        return self._ended

    def wait(self, timeout: float | None = None) -> RunResult:
        """Block until the workflow ends; its :class:`RunResult`.

        Raises TimeoutError after ``timeout`` s, :class:`RunFailed` if it failed,
        :class:`RunCanceled` if it was canceled, and :class:`RunInterrupted` when it is
        ``interrupted`` (the server restarted under it; the server's record confirms it):
        then :meth:`resume` continues it and ``wait()`` waits for the real end again.
        ConnectionError once the client is closed, unless the workflow had already ended.
        Woken by events, never by polling.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interrupted = WorkflowState.interrupted.value
        while True:
            with self._cond:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not self._cond.wait_for(
                    lambda: self._ended or self._closed or self.state == interrupted, left
                ):
                    raise TimeoutError(
                        f"workflow {self.id} ({self.kind}) still {self.state} at "
                        f"{self.progress:.0%} after {timeout} s; call wait() again to keep waiting"
                    )
                if self._ended:
                    break
                if self._closed:
                    raise ConnectionError(
                        f"the client is closed: workflow {self.id} ({self.kind}) is no longer "
                        f"followed (last seen {self.state} at {self.progress:.0%})"
                    )
                events = self.events
            self._confirm_interrupted(events)
        return self._outcome(self.client.workflow(self.id))

    def _confirm_interrupted(self, events: int) -> None:
        """Raise :class:`RunInterrupted` if the server's record says so too; if the run was
        resumed since (its events are still on their way), take the server's state."""
        try:
            record = self.client.workflow(self.id)
        except OSError as exc:  # out of reach: trust what was seen
            log.info("could not read workflow %s: %r", self.id, exc)
            raise RunInterrupted(self, self.message) from None
        if record.state == WorkflowState.interrupted:
            raise RunInterrupted(self, record.message)
        with self._cond:
            if self.events == events and self.state == WorkflowState.interrupted.value:
                self.state, self.message = record.state.value, record.message

    def _outcome(self, record: WorkflowRecord) -> RunResult:
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
