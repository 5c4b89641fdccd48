"""Driving a workflow run: planning it, queueing its tasks, handling their outcomes."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..protocol import (
    ArtifactEvent,
    ArtifactKind,
    ErrorCode,
    ErrorEvent,
    TargetType,
    WorkflowState,
)
from ..shared import format_timestamp
from ..store import Checkpoint, Store
from .agents import Agent, AgentRegistry
from .context import TaskResult
from .errors import ExecutorLost, RetryPolicy, is_retryable
from .graph import Task, TaskState
from .reporting import Reporter
from .run import ProgressKind, WorkflowRun
from .scheduler import Scheduler

log = logging.getLogger(__name__)

S = WorkflowState

#: Seconds of task completions that ``tasks_per_second`` averages over.
RATE_WINDOW = 5.0


class RunDriver:
    """Moves workflow runs from their first plan to their final state.

    Ready tasks go to the scheduler, or are marked done from a checkpoint the
    pipeline accepts. Each task's outcome is recorded: a success adds the tasks
    it made ready, a retryable failure is retried within the retry policy, any
    other failure (or a broken pipeline hook) fails the whole run. A run is
    finished at most once, and ``on_finished`` is called after its final state
    is reported.
    """

    def __init__(
        self,
        agents: AgentRegistry,
        scheduler: Scheduler,
        reporter: Reporter,
        store: Store | None,
        retry: RetryPolicy,
        artifact_url: Callable[[str, str], str],
        on_finished: Callable[[WorkflowRun], None],
    ) -> None:
        self.agents = agents
        self.scheduler = scheduler
        self.reporter = reporter
        self.store = store
        self.retry = retry
        self.artifact_url = artifact_url
        self.on_finished = on_finished
        self.dead_letters = 0
        self._completions: deque[float] = deque()

    def tasks_per_second(self) -> float:
        """Tasks completed (not restored) per second over the last ``RATE_WINDOW`` seconds."""
        now = time.monotonic()
        window = self._completions
        while window and window[0] < now - RATE_WINDOW:
            window.popleft()
        return len(window) / RATE_WINDOW

    def begin(self, run: WorkflowRun) -> None:
        """Start a pending run and plan its first tasks."""
        run.transition(S.running)
        self.reporter.state_changed(run, "started")
        self.plan(run)

    def plan(self, run: WorkflowRun) -> None:
        """Add the pipeline's first tasks to ``run`` and queue those that are ready."""
        try:
            ready = run.graph.add(run.pipeline.plan(run.params))
        except Exception as exc:
            self.fail(run, None, None, exc, retryable=False, why="could not plan the workflow")
            return
        self.enqueue(run, ready)
        self._check_complete(run)

    def enqueue(self, run: WorkflowRun, tasks: list[Task]) -> None:
        """Queue ``tasks`` (ready to run), or finish them from checkpoints.

        While ``run`` is not running, tasks are held on it instead of queued.
        """
        work = deque(tasks)
        while work and not run.finished:
            task = work.popleft()
            checkpoint = run.checkpoints.get(task.key)
            if checkpoint is not None:
                restored = run.pipeline.restore(run.id, task.spec, checkpoint)
                if restored is not None:
                    work.extend(self._succeeded(run, task, restored, restored=True))
                    continue
            if not self.agents.capable(task.spec.skill):
                error = LookupError(f"no registered agent has the skill {task.spec.skill!r}")
                self.fail(run, task, None, error, retryable=False)
                return
            if run.state == S.running:
                self.scheduler.push(run, task)
            else:
                task.state = TaskState.ready
                run.held.append(task)

    def task_outcome(
        self, run: WorkflowRun, task: Task, agent: Agent, error: BaseException | None, value: Any
    ) -> None:
        """Record what a task's handler returned or raised; never leaves the run hanging."""
        try:
            if error is None:
                self.enqueue(run, self._succeeded(run, task, value))
                self._check_complete(run)
            else:
                self._failed(run, task, agent, error)
        except Exception as exc:  # a pipeline hook broke: the workflow must not hang
            log.exception("workflow %s: handling task %s failed", run.id, task.key)
            self.fail(run, task, agent, exc, retryable=False, why="the pipeline failed")

    def _succeeded(
        self, run: WorkflowRun, task: Task, value: Any, *, restored: bool = False
    ) -> list[Task]:
        """Record a success; return the tasks it made ready."""
        result = value if isinstance(value, TaskResult) else TaskResult(value)
        try:
            expansion = list(task.spec.expand(result.value)) if task.spec.expand else []
            ready = run.graph.succeeded(task, result.value, expansion)
        except Exception as exc:
            self.fail(run, task, None, exc, retryable=False, why="could not plan the next tasks")
            return []
        if not restored:
            self._completions.append(time.monotonic())
            if self.store is not None:
                stored = run.pipeline.checkpoint(run.id, task.spec, result)
                if stored is not None:
                    self.store.workflows.save_checkpoint_nowait(
                        Checkpoint(
                            workflow_id=run.id,
                            task_key=task.key,
                            stage=task.spec.stage,
                            artifacts=[a.path for a in result.artifacts],
                            content_hash=stored[1],
                            attempts=task.attempts,
                            result=stored[0],
                            updated_at=format_timestamp(time.time()),
                        )
                    )
        for artifact in result.artifacts:
            self.reporter.emit(
                ArtifactEvent(
                    room=run.room,
                    workflow_id=run.id,
                    stage=task.spec.stage,
                    name=artifact.name,
                    kind=ArtifactKind(artifact.kind),
                    url=self.artifact_url(run.id, artifact.path),
                )
            )
        event: ProgressKind = "task_restored" if restored else "task_completed"
        self.reporter.emit(run.progress_event(event, task=task, agent=task.agent))
        self.reporter.progress_changed(run)
        return ready

    def _failed(self, run: WorkflowRun, task: Task, agent: Agent, error: BaseException) -> None:
        if isinstance(error, ExecutorLost):
            task.state = TaskState.canceled  # it ended; the run's other tasks are stopped
            self.interrupt(run, f"interrupted: {error}; resume it once the executor is back")
            return
        retryable = is_retryable(error)
        attempts = task.spec.max_attempts or self.retry.max_attempts
        if retryable and task.attempts < attempts:
            delay = self.retry.delay(task.attempts)
            self.scheduler.retry_later(run, task, delay)
            self.reporter.emit(
                run.progress_event(
                    "task_retrying",
                    task=task,
                    agent=agent.name,
                    attempt=task.attempts,
                    retry_in=round(delay, 3),
                    error=str(error),
                )
            )
            return
        task.state = TaskState.failed
        task.error = error
        self.dead_letters += 1
        self.fail(run, task, agent, error, retryable=retryable)

    def _check_complete(self, run: WorkflowRun) -> None:
        if not run.finished and not run.running and run.graph.all_succeeded():
            try:
                run.result = run.pipeline.result(run.graph)
            except Exception as exc:
                self.fail(run, None, None, exc, retryable=False, why="could not collect the result")
                return
            self.finish(run, S.completed, "completed")

    def fail(
        self,
        run: WorkflowRun,
        task: Task | None,
        agent: Agent | None,
        error: BaseException,
        *,
        retryable: bool,
        why: str = "",
    ) -> None:
        """Fail ``run`` (unless it has finished): stop its tasks, report an error event."""
        if run.finished:
            return
        message = run.fail_with(task, agent.name if agent else None, error, retryable, why)
        self.scheduler.cancel(run)
        self.reporter.emit(
            ErrorEvent(
                room=run.room,
                target_type=TargetType.workflow,
                target_id=run.id,
                code=ErrorCode.task_failed.value,
                message=message,
                retryable=retryable,
                details=run.error or {},
            )
        )
        self.finish(run, S.failed, message)

    def interrupt(self, run: WorkflowRun, message: str) -> None:
        """Stop ``run``'s tasks as the server does when it stops (remote jobs are kept)
        and leave it ``interrupted``, to be resumed from its checkpoints."""
        if run.finished:
            return
        self.scheduler.cancel(run, interrupt=True)
        self.finish(run, S.interrupted, message)

    def finish(self, run: WorkflowRun, state: WorkflowState, message: str) -> None:
        """Move ``run`` to ``state``, where it stops running (completed, failed, canceled
        or interrupted); ``run.done`` is set once that record is saved."""
        run.transition(state, message)
        saved = self.reporter.state_changed(run, message)
        if saved is None:
            run.done.set()
        else:
            saved.add_done_callback(lambda _: run.done.set())
        self.on_finished(run)
