"""Giving ready tasks to agents, within the global and per-agent limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ..protocol import WorkflowState
from ..shared import CancelToken, TaskCanceled
from .agents import Agent, AgentRegistry
from .context import TaskContext
from .executors import Executor
from .graph import Task, TaskState
from .reporting import Reporter
from .run import ReadyQueue, WorkflowRun

#: Called with (run, task, agent, error, result) when a task's handler returns or raises.
TaskOutcome = Callable[[WorkflowRun, Task, Agent, BaseException | None, Any], None]


class Scheduler:
    """Starts queued tasks on the least-loaded capable agent.

    At most ``max_concurrent_tasks`` run at once, and at most an agent's
    ``concurrency`` on each agent; the rest wait in arrival order. Dispatching
    happens once per loop iteration however many tasks became ready in it.
    """

    def __init__(
        self,
        agents: AgentRegistry,
        executor: Executor,
        reporter: Reporter,
        on_outcome: TaskOutcome,
        *,
        max_concurrent_tasks: int,
        workdir: Path | None,
    ) -> None:
        if max_concurrent_tasks < 1:
            raise ValueError(
                f"max_concurrent_tasks must be at least 1 (got {max_concurrent_tasks})"
            )
        self.agents = agents
        self.executor = executor
        self.reporter = reporter
        self.on_outcome = on_outcome
        self.max_concurrent_tasks = max_concurrent_tasks
        self.workdir = workdir
        self.running = 0
        self._queue = ReadyQueue()
        self._scheduled = False

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, run: WorkflowRun, task: Task) -> None:
        """Queue a ready task."""
        task.state = TaskState.ready
        self._queue.push(run, task)
        self.schedule()

    def remove_run(self, run: WorkflowRun) -> list[Task]:
        """Take ``run``'s queued tasks out of the queue; return them in order."""
        return self._queue.remove_run(run)

    def retry_later(self, run: WorkflowRun, task: Task, delay: float) -> None:
        """Queue ``task`` again after ``delay`` seconds, unless it is canceled first."""
        task.state = TaskState.retrying
        loop = asyncio.get_running_loop()
        task.retry_handle = loop.call_later(delay, self._retry, run, task)

    def _retry(self, run: WorkflowRun, task: Task) -> None:
        task.retry_handle = None
        if task.state == TaskState.retrying:
            if run.state == WorkflowState.running:
                self.push(run, task)
            else:
                task.state = TaskState.ready
                run.held.append(task)

    def cancel(self, run: WorkflowRun) -> None:
        """Drop ``run``'s waiting tasks and ask its running ones to stop."""
        self._queue.remove_run(run)
        run.held.clear()
        for task in run.graph.tasks.values():
            if task.state == TaskState.running:
                future, ctx = run.running[task.key]
                self.executor.cancel(future, ctx)
            elif task.retry_handle is not None:
                task.retry_handle.cancel()
                task.retry_handle = None
            if task.state not in (TaskState.succeeded, TaskState.failed):
                task.state = TaskState.canceled

    def schedule(self) -> None:
        """Dispatch at the end of this loop iteration."""
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._scheduled = False
        while self.running < self.max_concurrent_tasks:
            picked = self._queue.pop(self.agents.least_loaded)
            if picked is None:
                break
            self._start(*picked)
        self.reporter.metrics_changed()

    def _start(self, run: WorkflowRun, task: Task, agent: Agent) -> None:
        spec = task.spec
        task.state = TaskState.running
        task.attempts += 1
        task.agent = agent.name
        label = f"{run.id}/{task.key}"
        ctx = TaskContext(
            workflow_id=run.id,
            task_key=task.key,
            stage=spec.stage,
            skill=spec.skill,
            params=spec.params,
            workflow_params=run.params,
            inputs=run.graph.inputs_of(task),
            attempt=task.attempts,
            cancel_token=CancelToken(),
            workdir=self.workdir / run.id if self.workdir is not None else None,
        )
        agent.task_started(label)
        self.running += 1
        self.reporter.agent_changed(agent)
        try:
            future = self.executor.submit(agent.handlers[spec.skill], ctx)
        except Exception as exc:
            future = asyncio.get_running_loop().create_future()
            future.set_exception(exc)
        run.running[task.key] = (future, ctx)
        future.add_done_callback(partial(self._done, run, task, agent, label))
        self.reporter.emit(run.progress_event("task_started", task=task, agent=agent.name))

    def _done(
        self, run: WorkflowRun, task: Task, agent: Agent, label: str, future: asyncio.Future[Any]
    ) -> None:
        self.running -= 1
        _, ctx = run.running.pop(task.key)
        error = TaskCanceled("the task was canceled") if future.cancelled() else future.exception()
        canceled = isinstance(error, TaskCanceled) or ctx.cancel_token.cancelled
        agent.task_finished(label, ok=error is None, counted=not canceled)
        self.reporter.agent_changed(agent)
        if task.state == TaskState.running:  # else its workflow stopped while it ran
            self.on_outcome(run, task, agent, error, None if error else future.result())
        self.schedule()
