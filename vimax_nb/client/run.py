""":class:`Run`: a live view of one workflow, and :class:`RunResult`, what it produced.

A Run follows its workflow's room through the client's shared
:class:`~vimax_nb.client.connection.ClientConnection` from the start (``after=None``), so
it sees the whole replay and then the live events, as protocol models
(:class:`~vimax_nb.protocol.ProgressEvent`, :class:`~vimax_nb.protocol.ArtifactEvent`,
:class:`~vimax_nb.protocol.ErrorEvent`); a snapshot it is reset to is the workflow's
:class:`~vimax_nb.protocol.WorkflowRecord`. Its attributes are updated on the
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

from ..protocol import (
    TERMINAL_STATES,
    ArtifactEvent,
    Control,
    ControlAction,
    CostSummary,
    ErrorCode,
    ErrorEvent,
    Event,
    ProgressDetails,
    ProgressEvent,
    StageProgress,
    WorkflowRecord,
    WorkflowState,
    unstored_data,
    workflow_room,
)
from .callbacks import Callbacks
from .errors import RunCanceled, RunFailed, RunInterrupted, VimaxError
from .outbox import RequestError
from .rooms import RoomSubscription, Snapshot
from .view import subject_of

if TYPE_CHECKING:
    from .api import Client

__all__ = ["HISTORY_SIZE", "Run", "RunResult"]

log = logging.getLogger(__name__)

HISTORY_SIZE = 200
"""Events a :class:`Run` keeps in :attr:`Run.history`."""

# What ``details.event`` says of a task that no longer waits on what it said it did.
_TASK_MOVED_ON = frozenset(
    {"task_started", "task_completed", "task_retrying", "task_failed", "task_restored"}
)

# The HTTP status a control refused by an ``error`` frame raises, by the frame's code.
_REQUEST_ERROR_STATUS: dict[str, int] = {ErrorCode.not_found: 404, ErrorCode.not_allowed: 403}

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


class Run:
    """A live view of one workflow, updated from its room's events.

    Attributes are updated on the connection's thread; read them from any thread.
    ``state``, ``progress``, ``stage`` and ``message`` are those of the latest progress
    event (or snapshot); ``stages`` the latest ``details.stages`` a progress event carried, each
    stage's counts; ``artifacts`` and ``errors`` every artifact and error event, in
    order; ``events`` how many events were received; ``record`` the workflow's latest
    record (made at the start, replaced by a snapshot and by the end's REST read).
    :attr:`history` holds the last :data:`HISTORY_SIZE` events received, oldest first
    (each with its ``seq``): a widget made late shows the log from there, taking
    ``list(run.history)`` for a stable copy.

    :attr:`cost` is what the workflow has spent (a
    :class:`~vimax_nb.protocol.CostSummary`): the record's, its ``total`` replaced by the
    latest progress event's ``details.cost``, its ``max_cost`` the workflow's. When the
    run ends, its final record is read over REST on a worker thread, which brings the
    calls and the spend per model up to date. :attr:`activities` maps each running task
    that said what it waits on (``task_activity`` events) to what it said; a task leaves
    it when it says nothing more, completes, retries or fails, and every task when the
    run ends or is interrupted. Both are replaced, never changed in place.
    """

    def __init__(self, client: Client, record: WorkflowRecord) -> None:
        self.client = client
        self.id = record.id
        self.kind = record.kind
        self.params = dict(record.params)
        self.state: WorkflowState = record.state
        self.progress: float = record.progress
        self.stage: str | None = record.stage
        self.message: str = record.message
        self.stages: list[StageProgress] = []
        self.artifacts: list[ArtifactEvent] = []
        self.errors: list[ErrorEvent] = []
        self.events = 0
        self.history: collections.deque[Event] = collections.deque(maxlen=HISTORY_SIZE)
        self.record = record
        self.cost: CostSummary = self._cost_of(record)
        self.activities: dict[str, str] = {}
        self._cond = threading.Condition()
        self._ended = record.state in TERMINAL_STATES
        self._closed = False  # the client closed: wait() no longer blocks
        self._listeners: Callbacks[Run] = Callbacks(f"a change callback of run {self.id}")
        self._subscription: RoomSubscription | None = None

    # -- updates (the connection's thread) ----------------------------------------------

    def _follow(self) -> None:
        """Subscribe to the workflow's room from its first event."""
        self._subscription = self.client.connection.subscribe(
            workflow_room(self.id), self._on_event, on_reset=self._on_reset
        )

    def _on_event(self, event: Event) -> None:
        with self._cond:
            self.events += 1
            self.history.append(event)
            ended = False
            if isinstance(event, ProgressEvent):
                details = event.details
                if details.stages is not None:
                    self.stages = details.stages
                if details.cost is not None:
                    self.cost = self.cost.model_copy(update={"total": details.cost})
                ended = self._apply(event)
                self._note_activity(details, event.state)
            elif isinstance(event, ArtifactEvent):
                self.artifacts.append(event)
            elif isinstance(event, ErrorEvent):
                self.errors.append(event)
                task = event.details.get("task")
                if isinstance(task, str) and task in self.activities:
                    self.activities = {k: v for k, v in self.activities.items() if k != task}
            # last: a reader that sees ``done`` reads the final state, progress and stages
            newly_ended = ended and not self._ended
            self._ended = self._ended or ended
            self._cond.notify_all()
        self._listeners.call(self)
        if newly_ended:
            self._read_final_record()

    def _on_reset(self, snapshot: Snapshot) -> None:
        if not isinstance(snapshot, WorkflowRecord):
            return
        with self._cond:
            self.record = snapshot
            self.cost = self._cost_of(snapshot)
            self.activities = {}  # what was missed is not known: the next events tell
            self._ended = self._apply(snapshot) or self._ended
            self._cond.notify_all()
        self._listeners.call(self)

    def _cost_of(self, record: WorkflowRecord) -> CostSummary:
        """The record's spend, with the workflow's ``max_cost`` when the record lacks it."""
        cost = record.cost
        limit = self.params.get("max_cost")
        if cost.max_cost is None and isinstance(limit, int | float) and limit > 0:
            return cost.model_copy(update={"max_cost": float(limit)})
        return cost

    def _note_activity(self, details: ProgressDetails, state: WorkflowState) -> None:
        """Keep what each running task waits on (lock held)."""
        if state in TERMINAL_STATES or state == WorkflowState.interrupted:
            if self.activities:
                self.activities = {}
            return
        task = details.task
        if task is None:
            return
        if details.event == "task_activity" and details.activity is not None:
            text = details.activity.strip()
            if text:
                if self.activities.get(task) != text:
                    self.activities = {**self.activities, task: text}
                return
        elif details.event not in _TASK_MOVED_ON:
            return
        if task in self.activities:
            self.activities = {k: v for k, v in self.activities.items() if k != task}

    def _read_final_record(self) -> None:
        """Read the ended workflow's record on a worker thread: its spend (calls, models)
        and end time come up to date, and the change callbacks are called if the spend
        changed."""
        threading.Thread(
            target=self._take_final_record, name=f"vimax-run-{self.id}", daemon=True
        ).start()

    def _take_final_record(self) -> None:
        if self._closed:
            return
        try:
            record = self.client.workflow(self.id)
        except Exception as exc:  # out of reach, closed: what the events said stands
            log.debug("could not read the final record of workflow %s: %r", self.id, exc)
            return
        if record.state not in TERMINAL_STATES:
            return  # not saved yet, or resumed since: the events say more
        with self._cond:
            if self.state != record.state:
                return
            self.record = record
            cost, self.cost = self.cost, self._cost_of(record)
            self._cond.notify_all()
        if self.cost != cost:  # something to show
            self._listeners.call(self)

    def _apply(self, update: ProgressEvent | WorkflowRecord) -> bool:
        """Apply a progress event's or a record's state, progress, stage and message (lock
        held); True if it ends the run. Sets no flag: the caller marks the run ended once
        everything is applied.
        """
        self.state = update.state
        self.progress = update.progress
        self.stage = update.stage
        self.message = update.message
        return update.state in TERMINAL_STATES

    def _close(self) -> None:
        """The client closed: wake every waiter; :meth:`wait` no longer blocks."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(run)`` after each update, on the connection's thread (don't block).

        An exception in it is logged and does not stop the other callbacks. Returns a
        zero-argument remover: calling it (from any thread, any number of times) stops
        the callback; no update that starts after it returns calls it (a call already
        under way on the connection's thread may finish).
        """
        return self._listeners.add(callback)

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
        interrupted = WorkflowState.interrupted
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
            if self.events == events and self.state == WorkflowState.interrupted:
                self.state, self.message = record.state, record.message

    def _outcome(self, record: WorkflowRecord) -> RunResult:
        with self._cond:
            self.record = record
            self.cost = self._cost_of(record)
        if record.state == WorkflowState.failed:
            error = record.error or (unstored_data(self.errors[-1]) if self.errors else None)
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

    def _control(self, action: ControlAction, timeout: float = 10.0) -> WorkflowState:
        message = Control(workflow_id=self.id, action=action)
        try:
            answer = self.client.connection.request(message, timeout)
        except RequestError as exc:
            status = _REQUEST_ERROR_STATUS.get(exc.frame.code, 400)
            raise VimaxError(status, exc.frame.message, exc.frame) from None
        if not answer.ok or answer.state is None:
            raise VimaxError(409, answer.message or f"{action} refused", answer)
        return answer.state

    def pause(self) -> WorkflowState:
        """Pause the workflow; its new state. Raises :class:`VimaxError` (409) when it
        cannot be paused now, (404) for a workflow the server does not know, (403) when
        the server does not let this user control workflows."""
        return self._control(ControlAction.pause)

    def resume(self) -> WorkflowState:
        """Resume the paused or interrupted workflow; its new state (errors as :meth:`pause`)."""
        return self._control(ControlAction.resume)

    def cancel(self) -> WorkflowState:
        """Cancel the workflow; its new state (errors as :meth:`pause`)."""
        return self._control(ControlAction.cancel)

    # -- display -----------------------------------------------------------------------

    def __repr__(self) -> str:
        subject = subject_of(self.params, width=24)
        title = repr(subject) if subject else self.id
        return f"Run({self.kind} {title} {self.state} {self.progress:.0%})"
