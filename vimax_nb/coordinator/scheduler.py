"""Giving ready tasks to agents, within the global and per-agent limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

from ..protocol import WorkflowState
from ..shared import CancelToken, TaskCanceled
from .agents import Agent, AgentRegistry
from .context import TaskContext, TaskJob
from .executors import Executor
from .graph import Task, TaskState
from .reporting import Reporter
from .run import ReadyQueue, WorkflowRun

#: Called with (run, task, agent, error, result) when a task's handler returns or raises.
TaskOutcome = Callable[[WorkflowRun, Task, Agent, BaseException | None, Any], None]
#: Stores (workflow id, task key, remote job id or None) durably.
SaveJob = Callable[[str, str, str | None], Coroutine[Any, Any, None]]


class Scheduler:
    """Starts queued tasks on the least-loaded capable agent.

    At most ``max_concurrent_tasks`` run at once, and at most an agent's
    ``concurrency`` on each agent. When a slot frees, the task that starts is the
    one of the highest-priority workflow, then of the workflow with the fewest tasks
    running, then of the owner with the fewest tasks running, then the oldest (see
    :meth:`ReadyQueue.pop`): a small workflow is not stuck behind a big one's queue.
    Dispatching happens once per loop iteration however many tasks became ready in it.
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
        save_job: SaveJob | None = None,
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
        #: Tasks running per workflow owner (None: workflows submitted without one).
        self.running_by_owner: dict[str | None, int] = {}
        self.save_job = save_job
        self._queue = ReadyQueue()
        self._scheduled = False
        self._spend_pending: set[str] = set()

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

    def cancel(self, run: WorkflowRun, *, interrupt: bool = False) -> None:
        """Drop ``run``'s waiting tasks and ask its running ones to stop; with
        ``interrupt`` their tokens say the server is stopping (remote jobs are kept)."""
        self._queue.remove_run(run)
        run.held.clear()
        for task in run.graph.tasks.values():
            if task.state == TaskState.running:
                future, ctx = run.running[task.key]
                if interrupt and not ctx.cancel_token.cancelled:
                    ctx.cancel_token.interrupt()
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
            picked = self._queue.pop(self.agents.least_loaded, self.running_by_owner)
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
        loop = asyncio.get_running_loop()
        if run.spend.on_change is None:
            run.spend.on_change = partial(self._spent_threadsafe, loop, run)
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
            report=partial(self._report_threadsafe, loop, run, task, agent, label),
            spend=run.spend,
            job=TaskJob(run.jobs.get(task.key), partial(self._save_job, loop, run, task.key)),
            priority=run.priority,
        )
        agent.task_started(label)
        self.running += 1
        self.running_by_owner[run.owner] = self.running_by_owner.get(run.owner, 0) + 1
        self.reporter.agent_changed(agent)
        try:
            future = self.executor.submit(agent.handlers[spec.skill], ctx)
        except Exception as exc:
            future = asyncio.get_running_loop().create_future()
            future.set_exception(exc)
        run.running[task.key] = (future, ctx)
        future.add_done_callback(partial(self._done, run, task, agent, label))
        self.reporter.emit(run.progress_event("task_started", task=task, agent=agent.name))

    def _report_threadsafe(
        self,
        loop: asyncio.AbstractEventLoop,
        run: WorkflowRun,
        task: Task,
        agent: Agent,
        label: str,
        activity: str,
    ) -> None:
        loop.call_soon_threadsafe(self._activity, run, task, agent, label, activity)

    def _activity(
        self, run: WorkflowRun, task: Task, agent: Agent, label: str, activity: str
    ) -> None:
        if task.state != TaskState.running or label not in agent.running:
            return  # said after the task ended: nothing waits any more
        agent.task_activity(label, activity)
        self.reporter.agent_changed(agent)
        self.reporter.emit(
            run.progress_event("task_activity", task=task, agent=agent.name, activity=activity)
        )

    def _spent_threadsafe(self, loop: asyncio.AbstractEventLoop, run: WorkflowRun) -> None:
        loop.call_soon_threadsafe(self._spent, run)

    def _spent(self, run: WorkflowRun) -> None:
        """Report ``run``'s spend once per loop iteration however many calls were paid."""
        if run.id in self._spend_pending:
            return
        self._spend_pending.add(run.id)
        asyncio.get_running_loop().call_soon(self._report_spend, run)

    def _report_spend(self, run: WorkflowRun) -> None:
        self._spend_pending.discard(run.id)
        if not run.finished:
            self.reporter.emit(run.progress_event("spend"))
        self.reporter.progress_changed(run)

    def _save_job(
        self, loop: asyncio.AbstractEventLoop, run: WorkflowRun, key: str, job_id: str | None
    ) -> None:
        """Keep ``job_id`` for task ``key`` of ``run``; blocks the task's thread until it
        is durable."""
        if job_id is None:
            run.jobs.pop(key, None)
        else:
            run.jobs[key] = job_id
        if self.save_job is not None:
            asyncio.run_coroutine_threadsafe(self.save_job(run.id, key, job_id), loop).result()

    def _done(
        self, run: WorkflowRun, task: Task, agent: Agent, label: str, future: asyncio.Future[Any]
    ) -> None:
        self.running -= 1
        left = self.running_by_owner[run.owner] - 1
        if left:
            self.running_by_owner[run.owner] = left
        else:
            del self.running_by_owner[run.owner]
        _, ctx = run.running.pop(task.key)
        error = TaskCanceled("the task was canceled") if future.cancelled() else future.exception()
        canceled = isinstance(error, TaskCanceled) or ctx.cancel_token.cancelled
        agent.task_finished(label, ok=error is None, counted=not canceled)
        self.reporter.agent_changed(agent)
        if task.state == TaskState.running:  # else its workflow stopped while it ran
            self.on_outcome(run, task, agent, error, None if error else future.result())
        self.schedule()
