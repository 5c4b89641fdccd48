"""A workflow as it runs, and the queue of tasks waiting for an agent."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from ..protocol import (
    TERMINAL_STATES,
    CostSummary,
    ProgressDetails,
    ProgressEvent,
    WorkflowRecord,
    WorkflowState,
    workflow_room,
)
from ..shared import format_timestamp
from .agents import Agent
from .context import TaskContext
from .graph import Task, TaskGraph
from .pipeline import Pipeline
from .spend import Spend
from .transitions import check_transition

#: What a progress event says happened: the workflow's state changed, one of its tasks
#: started, completed, is to be retried, was restored from its checkpoint or says what it
#: waits on (``task_activity``), or the workflow spent money (``spend``).
ProgressKind = Literal[
    "state",
    "task_started",
    "task_completed",
    "task_retrying",
    "task_restored",
    "task_activity",
    "spend",
]


def progress_event_for(record: WorkflowRecord, details: ProgressDetails) -> ProgressEvent:
    """A progress event in the workflow's room: where ``record`` says it is, and
    ``details`` of what happened."""
    return ProgressEvent(
        room=workflow_room(record.id),
        workflow_id=record.id,
        state=record.state,
        progress=record.progress,
        stage=record.stage,
        stage_index=record.stage_index,
        total_stages=record.total_stages,
        message=record.message,
        details=details,
    )


def new_workflow_id() -> str:
    """A short random id, unique enough for one server's history."""
    return uuid.uuid4().hex[:12]


class WorkflowRun:
    """One workflow's live state: its graph, its state machine and its record.

    ``priority`` (higher first) orders its tasks before fair sharing does: see
    :meth:`ReadyQueue.pop`.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        params: dict[str, Any],
        owner: str | None = None,
        *,
        workflow_id: str | None = None,
        created_at: str | None = None,
        cost: CostSummary | None = None,
        priority: int = 0,
    ) -> None:
        self.id = workflow_id or new_workflow_id()
        self.pipeline = pipeline
        self.params = params
        self.owner = owner
        self.priority = priority
        self.state = WorkflowState.pending
        self.graph = TaskGraph(pipeline.stages)
        self.running: dict[str, tuple[asyncio.Future[Any], TaskContext]] = {}
        self.held: list[Task] = []  # ready tasks kept back while paused
        self.checkpoints: dict[str, Any] = {}
        self.jobs: dict[str, str] = {}  # task key -> the remote job it waits on
        max_cost = params.get("max_cost")
        self.spend = Spend(cost, max_cost=max_cost if isinstance(max_cost, int | float) else None)
        self.progress = 0.0
        self.message = ""
        #: What a person should know about these parameters (the scenes of a script a
        #: Script2Video leaves out), added to the state messages while it is queued or
        #: running: a pipeline's ``notice(params)``, if it has one.
        notice = getattr(pipeline, "notice", None)
        self.notice = str(notice(params) or "") if callable(notice) else ""
        #: The furthest stage index reported so far: clients never see it go back.
        self.stage_floor = 0
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        now = format_timestamp(time.time())
        self.created_at = created_at or now
        self.updated_at = now
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.done = asyncio.Event()
        self.room = workflow_room(self.id)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def transition(self, target: WorkflowState, message: str = "") -> None:
        """Move to ``target``; raises :class:`InvalidTransition` if it is not allowed."""
        check_transition(self.id, self.state, target)
        self.state = target
        now = format_timestamp(time.time())
        self.updated_at = now
        if target == WorkflowState.running and self.started_at is None:
            self.started_at = now
        if target in TERMINAL_STATES:
            self.finished_at = now
            if target == WorkflowState.completed:
                self.progress = 1.0
        if message:
            self.message = message

    def fail_with(
        self, task: Task | None, agent: str | None, error: BaseException, retryable: bool, why: str
    ) -> str:
        """Record why the workflow fails in :attr:`error`; return the message for people."""
        stage = task.spec.stage if task is not None else self.stage_position()[0]
        where = f"task {task.key!r} of stage {stage!r}" if task is not None else f"stage {stage!r}"
        if agent is not None:
            where += f" on agent {agent!r}"
        attempts = task.attempts if task is not None else 0
        after = f" after {attempts} attempt{'s' if attempts > 1 else ''}" if attempts else ""
        self.error = {
            "stage": stage,
            "task": task.key if task is not None else None,
            "agent": agent,
            "retryable": retryable,
            "attempts": attempts,
            "exception": type(error).__name__,
            "message": str(error),
        }
        return f"{why or 'failed'}: {where}{after}: {type(error).__name__}: {error}"

    def stage_position(self) -> tuple[str, int]:
        """The current stage's name and index: the graph's first unfinished stage (the
        first stage before any task is planned), never before a stage already reported
        (tasks planned later in an earlier stage do not take it back)."""
        index = self.stage_floor = max(self.stage_floor, self.graph.current_stage())
        return self.graph.stages[index].name, index

    def progress_event(
        self,
        event: ProgressKind,
        message: str | None = None,
        *,
        task: Task | None = None,
        agent: str | None = None,
        attempt: int | None = None,
        retry_in: float | None = None,
        error: str | None = None,
        activity: str | None = None,
    ) -> ProgressEvent:
        """A progress event for the workflow as it is now, saying that ``event`` happened.

        A ``state`` event carries the workflow's state; a task event names ``task``, its
        ``agent`` and, for a retry, the failed ``attempt``, the seconds until the next
        (``retry_in``) and the ``error``; a ``task_activity`` event what the task waits on
        (``activity``); ``task_activity`` and ``spend`` events carry the spend so far.
        Every event carries each stage's counts.
        ``message`` becomes the workflow's message, followed by the :attr:`notice`
        on a ``state`` event while queued or running; without one, a running workflow's
        message becomes the counts of the task's stage (or of the current stage).
        """
        if self.state != WorkflowState.completed:
            self.progress = max(self.progress, self.graph.fraction_done())
        if message is None and self.state == WorkflowState.running and event != "spend":
            about = task.spec.stage if task is not None else self.stage_position()[0]
            done, total = self.graph.counts(about)
            message = f"{about}: {done}/{total} done"
        live = self.state in (WorkflowState.pending, WorkflowState.running)
        if message is not None and event == "state" and self.notice and live:
            message = f"{message}: {self.notice}"
        if message is not None:
            self.message = message
        details = ProgressDetails(
            event=event,
            state=self.state if event == "state" else None,
            task=task.key if task is not None else None,
            agent=agent,
            attempt=attempt,
            retry_in=retry_in,
            error=error,
            activity=activity,
            cost=self.spend.total if event in ("task_activity", "spend") else None,
            stages=self.graph.stage_counts(),
        )
        return progress_event_for(self.record(), details)

    def record(self) -> WorkflowRecord:
        """The workflow as ``GET /vimax/api/workflows/{id}`` returns it."""
        stage, index = self.stage_position()
        return WorkflowRecord(
            id=self.id,
            kind=self.pipeline.kind,
            params=self.params,
            owner=self.owner,
            priority=self.priority,
            state=self.state,
            progress=self.progress,
            stage=stage,
            stage_index=index,
            total_stages=len(self.graph.stages),
            message=self.message,
            created_at=self.created_at,
            updated_at=self.updated_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            result=self.result,
            error=self.error,
            cost=self.spend.summary(),
        )


#: How soon a queued task starts: the lowest rank first (see :meth:`ReadyQueue.pop`).
Rank = tuple[int, int, int, int]


def _rank(run: WorkflowRun, arrival: int, running_by_owner: Mapping[str | None, int]) -> Rank:
    return (-run.priority, len(run.running), running_by_owner.get(run.owner, 0), arrival)


class ReadyQueue:
    """Tasks whose dependencies are done: per skill, and within a skill per workflow in
    arrival order. :meth:`pop` shares the agents fairly between workflows."""

    def __init__(self) -> None:
        self._by_skill: dict[str, dict[WorkflowRun, deque[tuple[int, Task]]]] = {}
        self._arrivals = itertools.count()
        self._size = 0

    def push(self, run: WorkflowRun, task: Task) -> None:
        """Queue ``task`` of ``run`` behind every task queued before it."""
        by_run = self._by_skill.setdefault(task.spec.skill, {})
        queue = by_run.get(run)
        if queue is None:
            queue = by_run[run] = deque()
        queue.append((next(self._arrivals), task))
        self._size += 1

    def pop(
        self,
        pick_agent: Callable[[str], Agent | None],
        running_by_owner: Mapping[str | None, int],
    ) -> tuple[WorkflowRun, Task, Agent] | None:
        """Take the task to start next, with the agent ``pick_agent`` gives it; None when
        no agent can take any queued task now.

        Among the workflows' oldest queued tasks whose skill has an agent with room,
        the task taken is the one that minimises, in order: minus its workflow's
        priority, the tasks its workflow has running, the tasks its workflow's owner
        has running (``running_by_owner``), and its arrival. So a higher priority goes
        first, then the workflow (then the owner) with the least running, then the
        oldest. Costs O(skills x workflows with queued tasks).
        """
        best: tuple[Rank, str, WorkflowRun, Agent] | None = None
        for skill_id, by_run in self._by_skill.items():
            rank: Rank | None = None
            for candidate, queue in by_run.items():
                candidate_rank = _rank(candidate, queue[0][0], running_by_owner)
                if rank is None or candidate_rank < rank:
                    rank, run = candidate_rank, candidate
            if rank is None or (best is not None and rank >= best[0]):
                continue
            agent = pick_agent(skill_id)
            if agent is not None:
                best = (rank, skill_id, run, agent)
        if best is None:
            return None
        _, skill_id, run, agent = best
        by_run = self._by_skill[skill_id]
        queue = by_run[run]
        _, task = queue.popleft()
        if not queue:
            del by_run[run]
            if not by_run:
                del self._by_skill[skill_id]
        self._size -= 1
        return run, task, agent

    def remove_run(self, run: WorkflowRun) -> list[Task]:
        """Take every queued task of ``run`` out of the queue; return them in arrival order."""
        removed: list[tuple[int, Task]] = []
        for skill_id in list(self._by_skill):
            by_run = self._by_skill[skill_id]
            queue = by_run.pop(run, None)
            if queue is not None:
                removed.extend(queue)
                if not by_run:
                    del self._by_skill[skill_id]
        self._size -= len(removed)
        return [task for _, task in sorted(removed, key=lambda entry: entry[0])]

    def extend(self, run: WorkflowRun, tasks: Iterable[Task]) -> None:
        """Queue ``tasks`` of ``run`` in order."""
        for task in tasks:
            self.push(run, task)

    def __len__(self) -> int:
        return self._size
