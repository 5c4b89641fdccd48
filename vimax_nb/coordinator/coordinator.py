"""The agent coordinator: runs workflows as tasks on agents, and reports every change."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..protocol import (
    COORDINATOR_ROOM,
    AgentRecord,
    CollectedWorkflow,
    Collection,
    CollectionFailure,
    ControlAction,
    CoordinatorMetricsEvent,
    ProgressDetails,
    WorkflowRecord,
    WorkflowState,
    priority_problem,
)
from ..shared import format_timestamp
from ..store import Store
from ..store.workflows import page_cursor
from .agents import Agent, AgentRegistry
from .cleanup import DAY, clear_folders
from .driver import RunDriver
from .errors import InvalidTransition, RetryPolicy, UnknownPipeline, WorkflowNotFound
from .events import EventBus, EventCallback
from .executors import Executor, LocalExecutor
from .graph import Task
from .pipeline import Pipeline
from .quotas import DiskUsage, Quotas, check_active, check_disk, check_render_size
from .reporting import Reporter
from .run import WorkflowRun, progress_event_for
from .scheduler import Scheduler
from .transitions import check_action

log = logging.getLogger(__name__)

S = WorkflowState
_ACTIVE = frozenset({S.pending, S.running, S.paused})


@dataclass(frozen=True, slots=True)
class WorkflowPage:
    """One page of the workflows, newest first: ``next`` is the cursor of the page after
    it (None: this is the last), ``total`` how many workflows the listing has in all."""

    records: list[WorkflowRecord]
    next: str | None
    total: int


class Coordinator:
    """Runs workflows: schedules their tasks on agents, retries, pauses, cancels.

    All methods are called on the event loop; task handlers run on the
    :class:`Executor`. Every change is reported as a protocol event to the
    listeners of :attr:`events` (see :meth:`add_listener`).
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
        quotas: Quotas | None = None,
        retention_age: float = 7 * DAY,
        collect_interval: float = 0.0,
    ) -> None:
        """``quotas`` are checked by :meth:`submit` (None: no limits). Every
        ``collect_interval`` seconds (0: never) the workflows that ended more than
        ``retention_age`` seconds ago are removed (:meth:`collect`), which is also the
        age :meth:`collect` removes by default."""
        if retention_age < 0 or collect_interval < 0:
            raise ValueError(
                f"retention_age and collect_interval are seconds, 0 or more "
                f"(got {retention_age}, {collect_interval})"
            )
        self.store = store
        self.quotas = quotas or Quotas()
        self.retention_age = retention_age
        self.collect_interval = collect_interval
        self.artifact_url_prefix = artifact_url_prefix.rstrip("/")
        self.executor: Executor = executor or LocalExecutor(max_workers=max_concurrent_tasks)
        self.retry = retry or RetryPolicy()
        self.workdir = Path(workdir) if workdir is not None else None
        self.disk_usage = DiskUsage(self.workdir) if self.workdir is not None else None
        self._collecting = asyncio.Lock()
        self._collector: asyncio.Task[None] | None = None
        self.metrics_interval = metrics_interval
        self.keep_finished = keep_finished
        self.agents = AgentRegistry()
        self.pipelines: dict[str, Pipeline] = {}
        self.events = EventBus()
        self._runs: dict[str, WorkflowRun] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._stored_workflows = 0
        self._submitted = 0
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
            save_job=store.workflows.save_job if store is not None else None,
        )
        self.driver = RunDriver(
            self.agents,
            self.scheduler,
            self.reporter,
            store,
            self.retry,
            self.artifact_url,
            self._retire,
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

    async def start(self) -> None:
        """Start the executor; mark workflows cut off by a previous stop ``interrupted``."""
        await self.executor.start()
        if self.store is not None:
            now = format_timestamp(time.time())
            for record in await self.store.workflows.interrupt_unfinished(now):
                log.warning("workflow %s was cut off by a restart: interrupted", record.id)
                # in its room too, so a client following it learns it from the log
                details = ProgressDetails(event="state", state=record.state)
                self.reporter.emit(progress_event_for(record, details))
            self._stored_workflows = await self.store.workflows.count()
        self.reporter.start()
        if self.collect_interval > 0:
            self._collector = asyncio.ensure_future(self._collect_periodically())

    async def stop(self) -> None:
        """Stop every active workflow (``interrupted``), save it, stop the executor."""
        if self._collector is not None:
            self._collector.cancel()
            self._collector = None
        for run in list(self._runs.values()):
            if run.state in (S.running, S.paused):
                self.driver.interrupt(run, "interrupted: the server is stopping")
        await self.reporter.stop()
        await self.executor.stop()
        if self.store is not None:
            await self.store.workflows.db.run_in_writer(lambda conn: None)

    # -- workflows ----------------------------------------------------------------

    async def submit(
        self,
        kind: str,
        params: Mapping[str, Any],
        owner: str | None = None,
        *,
        priority: int = 0,
    ) -> WorkflowRecord:
        """Validate ``params`` for ``kind``, start the workflow, return its record.

        ``priority`` (-10 to 10, higher first) puts its tasks ahead of those of
        lower-priority workflows; among equal priorities agents are shared fairly
        between workflows, then owners (see :class:`Scheduler`).

        Raises :class:`UnknownPipeline`, or ``ValueError`` (pydantic's
        ``ValidationError`` among them) naming the parameters that are wrong, or
        saying the priority is not a whole number from -10 to 10; or, when it would
        break one of :attr:`quotas`, :class:`~.quotas.WorkflowTooLarge`,
        :class:`~.quotas.DiskQuotaExceeded` or :class:`~.quotas.TooManyWorkflows`
        (nothing is started or stored then).
        """
        bad_priority = priority_problem(priority)
        if bad_priority is not None:
            raise ValueError(bad_priority)
        pipeline = self.pipelines.get(kind)
        if pipeline is None:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise UnknownPipeline(f"unknown workflow kind {kind!r} (known kinds: {known})")
        valid = pipeline.validate(params)
        check_render_size(self.quotas, valid)
        await check_disk(self.quotas, self.disk_usage)
        # Counted and taken with no await in between: concurrent submissions cannot
        # both take the last place.
        active = [run for run in self._runs.values() if run.state in _ACTIVE]
        of_owner = sum(1 for run in active if run.owner == owner)
        check_active(self.quotas, owner, of_owner, len(active))
        run = WorkflowRun(pipeline, valid, owner, priority=priority)
        self._runs[run.id] = run
        self._submitted += 1
        if self.store is not None:
            await self.store.workflows.save(run.record())
        self.reporter.emit(run.progress_event("state", "queued"))
        problem = await self._preflight(run)
        if problem is None:
            self.driver.begin(run)
        else:
            self.driver.fail(run, None, None, problem, retryable=False, why="it cannot start")
        return run.record()

    async def _preflight(self, run: WorkflowRun) -> Exception | None:
        """What stops ``run`` from starting: an executor that cannot take tasks, or its
        pipeline's :meth:`Pipeline.preflight`."""
        try:
            await self.executor.ensure_ready()
            await run.pipeline.preflight(run.params)
        except Exception as exc:
            return exc
        return None

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord:
        """The workflow's record, live or stored; raises :class:`WorkflowNotFound`."""
        run = self._runs.get(workflow_id)
        if run is not None:
            return run.record()
        record = await self.store.workflows.get(workflow_id) if self.store is not None else None
        if record is None:
            raise WorkflowNotFound(f"no workflow with id {workflow_id!r}")
        return record

    async def list_workflows(self, *, owner: str | None = None) -> list[WorkflowRecord]:
        """Every workflow, stored or live, oldest first; with ``owner``, only those whose
        ``owner`` is that name (None: every owner's)."""
        stored = await self.store.workflows.records(owner=owner) if self.store else []
        records = {r.id: r for r in stored}
        records.update((run.id, run.record()) for run in self._runs.values())
        listed = sorted(records.values(), key=lambda r: (r.created_at, r.id))
        return listed if owner is None else [r for r in listed if r.owner == owner]

    async def page_workflows(
        self, limit: int, before: tuple[str, str] | None = None, *, owner: str | None = None
    ) -> WorkflowPage:
        """Up to ``limit`` workflows newest first (by creation time, then id), those
        listed after ``before`` (a ``(created_at, id)`` cursor; None: from the newest);
        ``owner``'s only when given. Live workflows are as they are now.

        Following ``next`` from page to page lists each workflow stored before the first
        page was read once, and none twice; workflows started meanwhile are on the
        first page of a new listing.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1 (got {limit})")
        if self.store is not None:
            # One more than asked: whether there is a next page, without a second query.
            stored = await self.store.workflows.page(limit + 1, before, owner=owner)
            total = await self.store.workflows.count(owner=owner)
            records = [self._live_record(r) for r in stored]
        else:
            live = [
                run.record() for run in self._runs.values() if owner is None or run.owner == owner
            ]
            live.sort(key=lambda r: (r.created_at, r.id), reverse=True)
            total = len(live)
            records = [r for r in live if before is None or (r.created_at, r.id) < before]
            records = records[: limit + 1]
        more = len(records) > limit
        records = records[:limit]
        return WorkflowPage(records, page_cursor(records[-1]) if more else None, total)

    def _live_record(self, stored: WorkflowRecord) -> WorkflowRecord:
        run = self._runs.get(stored.id)
        return run.record() if run is not None else stored

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

        Pause stops starting new tasks of the workflow (running ones finish); resume
        carries on with a paused workflow, or one interrupted by a restart, from its
        checkpoints; cancel drops its pending tasks and stops its running ones.

        Raises :class:`WorkflowNotFound`, or :class:`InvalidTransition` when the
        action does not apply to the workflow's state (or an interrupted workflow's
        pipeline says it cannot start now: see :meth:`Pipeline.preflight`).
        """
        action = ControlAction(action)
        run = self._runs.get(workflow_id)
        if run is not None and run.state == S.interrupted:
            # Cut off by its executor while this server ran: it starts again from its
            # checkpoints, as one cut off by a restart does.
            del self._runs[workflow_id]
            check_action(workflow_id, run.state, action)
            run = await self._revive(run.record())
        elif run is None:
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
                problem = await self._preflight(run)
                if problem is not None:  # it stays interrupted, to be resumed once fixed
                    raise InvalidTransition(run.id, run.state, S.running, str(problem))
                run.transition(S.running)
                self.reporter.state_changed(run, "resumed after an interruption")
                self.driver.plan(run)
            else:
                run.transition(S.running)
                self.reporter.state_changed(run, "resumed")
                held, run.held = run.held, []
                self.driver.enqueue(run, held)
        else:
            self.scheduler.cancel(run)
            self.driver.finish(run, S.canceled, "canceled")
        return run.record()

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
            cost=record.cost,
            priority=record.priority,
        )
        run.state = record.state
        run.progress = record.progress
        run.started_at = record.started_at
        if self.store is not None:
            run.checkpoints = dict(await self.store.workflows.checkpoints(record.id))
            run.jobs = await self.store.workflows.jobs(record.id)
        # Another control call may have revived it while this one awaited the store.
        return self._runs.setdefault(run.id, run)

    # -- collecting old workflows --------------------------------------------------

    async def collect(
        self,
        older_than: float | None = None,
        *,
        dry_run: bool = False,
        owner: str | None = None,
    ) -> Collection:
        """Remove the workflows that ended (completed, failed or canceled) more than
        ``older_than`` seconds ago (None: :attr:`retention_age`), with their folders of
        files, checkpoints and jobs; ``owner``'s only, when given.

        Workflows pending, running, paused or interrupted (which can still be resumed)
        are never removed. With ``dry_run`` nothing is removed: the answer says what
        would be, and the bytes that would be freed. A workflow whose folder cannot be
        removed keeps its record (the next collection tries again) and is listed in
        ``failed``. One collection runs at a time. The workflows' events stay in the
        event log until its own retention drops them.
        """
        age = self.retention_age if older_than is None else older_than
        if age < 0:
            raise ValueError(f"older_than must be 0 or more seconds (got {age})")
        async with self._collecting:
            cutoff = format_timestamp(time.time() - age)
            if self.store is not None:
                candidates = await self.store.workflows.finished_before(cutoff, owner=owner)
            else:
                candidates = [
                    run.record()
                    for run in self._runs.values()
                    if run.finished
                    and (run.finished_at or run.updated_at) <= cutoff
                    and (owner is None or run.owner == owner)
                ]
            # A stored record may lag its live run (revived since): the run decides.
            candidates = [
                r for r in candidates if (run := self._runs.get(r.id)) is None or run.finished
            ]
            outcomes = await asyncio.to_thread(
                clear_folders, self.workdir, [r.id for r in candidates], remove=not dry_run
            )
            removed = [r for r in candidates if outcomes[r.id].problem is None]
            failed = [
                CollectionFailure(id=r.id, message=str(outcomes[r.id].problem))
                for r in candidates
                if outcomes[r.id].problem is not None
            ]
            if not dry_run and removed:
                if self.store is not None:
                    await self.store.workflows.delete_many([r.id for r in removed])
                for record in removed:
                    self._runs.pop(record.id, None)
                    self._finished.pop(record.id, None)
                self._stored_workflows -= len(removed)
            collected = [
                CollectedWorkflow(
                    id=r.id,
                    kind=r.kind,
                    state=r.state,
                    owner=r.owner,
                    created_at=r.created_at,
                    finished_at=r.finished_at,
                    bytes=outcomes[r.id].bytes,
                )
                for r in removed
            ]
            return Collection(
                dry_run=dry_run,
                older_than=age,
                cutoff=cutoff,
                workflows=collected,
                bytes=sum(c.bytes for c in collected),
                failed=failed,
            )

    async def _collect_periodically(self) -> None:
        """Every :attr:`collect_interval` seconds, :meth:`collect` what is older than
        :attr:`retention_age`; a failed round is logged and the next one comes."""
        while True:
            await asyncio.sleep(self.collect_interval)
            try:
                done = await self.collect()
            except Exception:
                log.exception("the periodic collection of old workflows failed")
                continue
            if done.workflows or done.failed:
                log.info(
                    "removed %d workflow(s) that ended before %s (%d bytes freed); %d could "
                    "not be removed%s",
                    len(done.workflows),
                    done.cutoff,
                    done.bytes,
                    len(done.failed),
                    "".join(f"; {f.id}: {f.message}" for f in done.failed),
                )

    # -- metrics and agents -------------------------------------------------------

    def agent_records(self) -> list[AgentRecord]:
        """Every agent as REST reports it."""
        return [agent.record() for agent in self.agents]

    @property
    def queue_size(self) -> int:
        """Tasks waiting for an agent."""
        return len(self.scheduler)

    @property
    def dead_letters(self) -> int:
        """Tasks that failed for good (out of attempts, or not worth a retry)."""
        return self.driver.dead_letters

    def metrics(self) -> CoordinatorMetricsEvent:
        """The coordinator's figures now, in the coordinator's room.

        ``connections`` is left at 0: the coordinator knows no clients, and the server
        fills it in wherever the figures leave it.
        """
        return CoordinatorMetricsEvent(
            room=COORDINATOR_ROOM,
            total_workflows=self._stored_workflows + self._submitted,
            active_workflows=sum(1 for run in self._runs.values() if run.state in _ACTIVE),
            queue_size=len(self.scheduler),
            registered_agents=len(self.agents),
            healthy_agents=sum(1 for agent in self.agents if agent.healthy),
            tasks_per_second=self.driver.tasks_per_second(),
            dead_letters=self.dead_letters,
            executor=self.executor.describe(),
        )

    # -- run bookkeeping ----------------------------------------------------------

    def _task_outcome(
        self, run: WorkflowRun, task: Task, agent: Agent, error: BaseException | None, value: Any
    ) -> None:
        # The scheduler is built before the driver it reports outcomes to.
        self.driver.task_outcome(run, task, agent, error, value)

    def _retire(self, run: WorkflowRun) -> None:
        """Count ``run`` as finished; forget the oldest finished runs beyond ``keep_finished``."""
        self._finished[run.id] = None
        while len(self._finished) > self.keep_finished:
            old, _ = self._finished.popitem(last=False)
            self._runs.pop(old, None)
