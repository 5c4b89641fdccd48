"""The agent coordinator: runs workflows as tasks on agents, and reports every change."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..protocol import (
    COORDINATOR_ROOM,
    AgentRecord,
    ArtifactEvent,
    ArtifactKind,
    ControlAction,
    CoordinatorMetricsEvent,
    ErrorCode,
    ErrorEvent,
    TargetType,
    WorkflowRecord,
    WorkflowState,
)
from ..store import Checkpoint, Store, format_timestamp
from .agents import Agent, AgentRegistry
from .errors import RetryPolicy, UnknownPipeline, WorkflowNotFound, is_retryable
from .events import EventBus, EventCallback, EventStream
from .executors import Executor, LocalExecutor
from .reporting import Reporter
from .run import WorkflowRun
from .scheduler import Scheduler
from .workflow import (
    Pipeline,
    Task,
    TaskResult,
    TaskState,
    check_action,
)

log = logging.getLogger(__name__)

S = WorkflowState
_ACTIVE = frozenset({S.pending, S.running, S.paused})


class Coordinator:
    """Runs workflows: schedules their tasks on agents, retries, pauses, cancels.

    All methods are called on the event loop; task handlers run on the
    :class:`Executor`. Every change is reported as a protocol event to the
    listeners of :attr:`events` (see :meth:`add_listener` and :meth:`stream`).
    """

    def __init__(
        self,
        *,
        store: Store | None = None,
        executor: Executor | None = None,
        max_concurrent_tasks: int = 8,
        retry: RetryPolicy | None = None,
        workdir: str | Path | None = None,
        metrics_interval: float = 5.0,
        keep_finished: int = 1000,
        artifact_url_prefix: str = "/vimax/api/workflows",
    ) -> None:
        self.store = store
        self.artifact_url_prefix = artifact_url_prefix.rstrip("/")
        self.executor: Executor = executor or LocalExecutor(max_workers=max_concurrent_tasks)
        self.retry = retry or RetryPolicy()
        self.workdir = Path(workdir) if workdir is not None else None
        self.metrics_interval = metrics_interval
        self.keep_finished = keep_finished
        self.agents = AgentRegistry()
        self.pipelines: dict[str, Pipeline] = {}
        self.events = EventBus()
        self.connections: Callable[[], int] = lambda: 0
        self.dead_letters = 0
        self._runs: dict[str, WorkflowRun] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._stored_workflows = 0
        self._submitted = 0
        self._completions: deque[float] = deque()
        self.reporter = Reporter(
            self.events, store, self.metrics, lambda: self.agents, metrics_interval
        )
        self.scheduler = Scheduler(
            self.agents,
            self.executor,
            self.reporter,
            self._task_outcome,
            max_concurrent_tasks=max_concurrent_tasks,
            workdir=self.workdir,
        )

    def artifact_url(self, workflow_id: str, path: str) -> str:
        """The URL path an artifact event gives for ``path`` of a workflow's folder."""
        return (
            f"{self.artifact_url_prefix}/{quote(workflow_id, safe='')}/artifacts/"
            f"{quote(path, safe='/')}"
        )

    # -- set-up -------------------------------------------------------------------

    def register_agent(self, agent: Agent) -> Agent:
        """Make ``agent`` available for tasks of its skills."""
        self.agents.register(agent)
        self.reporter.agent_changed(agent)
        return agent

    def register_pipeline(self, pipeline: Pipeline) -> Pipeline:
        """Make workflows of ``pipeline.kind`` available."""
        if not pipeline.kind:
            raise ValueError(f"{type(pipeline).__name__} has no kind")
        self.pipelines[pipeline.kind] = pipeline
        return pipeline

    def add_listener(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; see :meth:`EventBus.add_listener`."""
        return self.events.add_listener(callback)

    def stream(self, maxsize: int = 10_000) -> EventStream:
        """An async iterator over every event from now on; see :class:`EventStream`."""
        return self.events.stream(maxsize)

    async def start(self) -> None:
        """Start the executor; mark workflows cut off by a previous stop ``interrupted``."""
        await self.executor.start()
        if self.store is not None:
            now = format_timestamp(time.time())
            for record in await self.store.workflows.interrupt_unfinished(now):
                log.warning("workflow %s was cut off by a restart: interrupted", record.id)
            self._stored_workflows = len(await self.store.workflows.records())
        self.reporter.start()

    async def stop(self) -> None:
        """Stop every active workflow (``interrupted``), save it, stop the executor."""
        for run in list(self._runs.values()):
            if run.state in (S.running, S.paused):
                self.scheduler.cancel(run)
                self._finish(run, S.interrupted, "interrupted: the server is stopping")
        await self.reporter.stop()
        await self.executor.stop()
        if self.store is not None:
            await self.store.workflows.db.run_in_writer(lambda conn: None)
        self.events.close()

    # -- workflows ----------------------------------------------------------------

    async def submit(
        self, kind: str, params: Mapping[str, Any], owner: str | None = None
    ) -> WorkflowRecord:
        """Validate ``params`` for ``kind``, start the workflow, return its record.

        Raises :class:`UnknownPipeline`, or ``ValueError`` (pydantic's
        ``ValidationError`` among them) naming the parameters that are wrong.
        """
        pipeline = self.pipelines.get(kind)
        if pipeline is None:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise UnknownPipeline(f"unknown workflow kind {kind!r} (known kinds: {known})")
        run = WorkflowRun(pipeline, pipeline.validate(params), owner)
        self._runs[run.id] = run
        self._submitted += 1
        if self.store is not None:
            await self.store.workflows.save(run.record())
        self.reporter.emit(run.progress_event("queued", event="state", state=run.state.value))
        self._begin(run)
        return run.record()

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord:
        """The workflow's record, live or stored; raises :class:`WorkflowNotFound`."""
        run = self._runs.get(workflow_id)
        if run is not None:
            return run.record()
        record = await self.store.workflows.get(workflow_id) if self.store is not None else None
        if record is None:
            raise WorkflowNotFound(f"no workflow with id {workflow_id!r}")
        return record

    async def list_workflows(self) -> list[WorkflowRecord]:
        """Every workflow, stored or live, oldest first."""
        records = {r.id: r for r in await self.store.workflows.records()} if self.store else {}
        records.update((run.id, run.record()) for run in self._runs.values())
        return sorted(records.values(), key=lambda r: (r.created_at, r.id))

    def run_of(self, workflow_id: str) -> WorkflowRun | None:
        """The live run of ``workflow_id`` (None for workflows known only from the store)."""
        return self._runs.get(workflow_id)

    async def wait(self, workflow_id: str, timeout: float | None = None) -> WorkflowRecord:
        """Wait until the workflow stops running; return its record.

        A workflow that is not running here (finished, or interrupted by a
        restart and not resumed) returns at once.
        """
        run = self._runs.get(workflow_id)
        if run is None:
            return await self.get_workflow(workflow_id)
        await asyncio.wait_for(run.done.wait(), timeout)
        return run.record()

    async def control(self, workflow_id: str, action: ControlAction | str) -> WorkflowRecord:
        """Pause, resume or cancel; return the record after the action.

        Raises :class:`WorkflowNotFound`, or :class:`InvalidTransition` when the
        action does not apply to the workflow's state.
        """
        action = ControlAction(action)
        run = self._runs.get(workflow_id)
        if run is None:
            record = await self.get_workflow(workflow_id)
            check_action(workflow_id, record.state, action)
            run = await self._revive(record)
        check_action(run.id, run.state, action)
        if action == ControlAction.pause:
            run.held.extend(self.scheduler.remove_run(run))
            run.transition(S.paused)
            self.reporter.state_changed(run, "paused: running tasks finish, no new task starts")
        elif action == ControlAction.resume:
            if run.state == S.interrupted:
                run.transition(S.running)
                self.reporter.state_changed(run, "resumed after an interruption")
                self._plan(run)
            else:
                run.transition(S.running)
                self.reporter.state_changed(run, "resumed")
                held, run.held = run.held, []
                self._enqueue(run, held)
        else:
            self.scheduler.cancel(run)
            self._finish(run, S.canceled, "canceled")
        return run.record()

    async def pause(self, workflow_id: str) -> WorkflowRecord:
        """Stop starting new tasks of the workflow; running ones finish."""
        return await self.control(workflow_id, ControlAction.pause)

    async def resume(self, workflow_id: str) -> WorkflowRecord:
        """Carry on with a paused or interrupted workflow."""
        return await self.control(workflow_id, ControlAction.resume)

    async def cancel(self, workflow_id: str) -> WorkflowRecord:
        """Drop the workflow's pending tasks and stop its running ones."""
        return await self.control(workflow_id, ControlAction.cancel)

    async def _revive(self, record: WorkflowRecord) -> WorkflowRun:
        """A live run for a workflow known only from the store (to resume or cancel it)."""
        pipeline = self.pipelines.get(record.kind)
        if pipeline is None:
            raise UnknownPipeline(
                f"workflow {record.id} is of kind {record.kind!r}, not served here"
            )
        run = WorkflowRun(
            pipeline,
            record.params,
            record.owner,
            workflow_id=record.id,
            created_at=record.created_at,
        )
        run.state = record.state
        run.progress = record.progress
        run.started_at = record.started_at
        if self.store is not None:
            run.checkpoints = dict(await self.store.workflows.checkpoints(record.id))
        # Another control call may have revived it while this one awaited the store.
        return self._runs.setdefault(run.id, run)

    # -- metrics and agents -------------------------------------------------------

    def agent_records(self) -> list[AgentRecord]:
        """Every agent as REST reports it."""
        return [agent.record() for agent in self.agents]

    @property
    def queue_size(self) -> int:
        """Tasks waiting for an agent."""
        return len(self.scheduler)

    def metrics(self) -> CoordinatorMetricsEvent:
        """The coordinator's figures now."""
        now = time.monotonic()
        window = self._completions
        while window and window[0] < now - 5.0:
            window.popleft()
        return CoordinatorMetricsEvent(
            room=COORDINATOR_ROOM,
            total_workflows=self._stored_workflows + self._submitted,
            active_workflows=sum(1 for run in self._runs.values() if run.state in _ACTIVE),
            queue_size=len(self.scheduler),
            registered_agents=len(self.agents),
            healthy_agents=sum(1 for agent in self.agents if agent.healthy),
            tasks_per_second=len(window) / 5.0,
            dead_letters=self.dead_letters,
            connections=self.connections(),
        )

    # -- scheduling ---------------------------------------------------------------

    def _begin(self, run: WorkflowRun) -> None:
        run.transition(S.running)
        self.reporter.state_changed(run, "started")
        self._plan(run)

    def _plan(self, run: WorkflowRun) -> None:
        try:
            ready = run.graph.add(run.pipeline.plan(run.params))
        except Exception as exc:
            self._fail(run, None, None, exc, retryable=False, why="could not plan the workflow")
            return
        self._enqueue(run, ready)
        self._check_complete(run)

    def _enqueue(self, run: WorkflowRun, tasks: list[Task]) -> None:
        """Queue ``tasks`` (ready to run), or finish them from checkpoints."""
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
                self._fail(run, task, None, error, retryable=False)
                return
            if run.state == S.running:
                self.scheduler.push(run, task)
            else:
                task.state = TaskState.ready
                run.held.append(task)

    def _task_outcome(
        self, run: WorkflowRun, task: Task, agent: Agent, error: BaseException | None, value: Any
    ) -> None:
        try:
            if error is None:
                self._enqueue(run, self._succeeded(run, task, value))
                self._check_complete(run)
            else:
                self._failed(run, task, agent, error)
        except Exception as exc:  # a pipeline hook broke: the workflow must not hang
            log.exception("workflow %s: handling task %s failed", run.id, task.key)
            self._fail(run, task, agent, exc, retryable=False, why="the pipeline failed")

    def _succeeded(
        self, run: WorkflowRun, task: Task, value: Any, *, restored: bool = False
    ) -> list[Task]:
        """Record a success; return the tasks it made ready."""
        result = value if isinstance(value, TaskResult) else TaskResult(value)
        try:
            expansion = list(task.spec.expand(result.value)) if task.spec.expand else []
            ready = run.graph.succeeded(task, result.value, expansion)
        except Exception as exc:
            self._fail(run, task, None, exc, retryable=False, why="could not plan the next tasks")
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
        event = "task_restored" if restored else "task_completed"
        self.reporter.emit(run.progress_event(None, event=event, task=task.key, agent=task.agent))
        self.reporter.progress_changed(run)
        return ready

    def _failed(self, run: WorkflowRun, task: Task, agent: Agent, error: BaseException) -> None:
        retryable = is_retryable(error)
        attempts = task.spec.max_attempts or self.retry.max_attempts
        if retryable and task.attempts < attempts:
            delay = self.retry.delay(task.attempts)
            self.scheduler.retry_later(run, task, delay)
            self.reporter.emit(
                run.progress_event(
                    None,
                    event="task_retrying",
                    task=task.key,
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
        self._fail(run, task, agent, error, retryable=retryable)

    def _check_complete(self, run: WorkflowRun) -> None:
        if not run.finished and not run.running and run.graph.all_succeeded():
            try:
                run.result = run.pipeline.result(run.graph)
            except Exception as exc:
                self._fail(
                    run, None, None, exc, retryable=False, why="could not collect the result"
                )
                return
            self._finish(run, S.completed, "completed")

    def _fail(
        self,
        run: WorkflowRun,
        task: Task | None,
        agent: Agent | None,
        error: BaseException,
        *,
        retryable: bool,
        why: str = "",
    ) -> None:
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
        self._finish(run, S.failed, message)

    def _finish(self, run: WorkflowRun, state: WorkflowState, message: str) -> None:
        run.transition(state, message)
        saved = self.reporter.state_changed(run, message)
        if saved is None:
            run.done.set()
        else:
            saved.add_done_callback(lambda _: run.done.set())
        self._finished[run.id] = None
        while len(self._finished) > self.keep_finished:
            old, _ = self._finished.popitem(last=False)
            self._runs.pop(old, None)
