"""Which queued task starts next: priority first, then fair shares by workflow and by
owner, then arrival order."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from vimax_nb.coordinator import Agent, Task, TaskContext, TaskSpec, WorkflowRun
from vimax_nb.coordinator.run import ReadyQueue
from vimax_nb.protocol import WorkflowRecord, WorkflowState
from vimax_nb.store import Store

from .toy import (
    Editor,
    Painter,
    StoryPipeline,
    Writer,
    coordinator_with,
    default_agents,
    task_event,
)

PAINTER = Painter(name="painter")
WRITER = Writer(name="writer")


def workflow(name: str, owner: str | None = "alice", priority: int = 0) -> WorkflowRun:
    return WorkflowRun(StoryPipeline(), {"shots": 1}, owner, workflow_id=name, priority=priority)


def push(queue: ReadyQueue, run: WorkflowRun, key: str, skill: str = "draw") -> None:
    queue.push(run, Task(TaskSpec(key, skill, skill), 0))


class Starts:
    """Pops tasks from a queue as the scheduler does, counting what runs per owner."""

    def __init__(self, queue: ReadyQueue, agents: dict[str, Agent | None] | None = None) -> None:
        self.queue = queue
        self.agents = agents if agents is not None else {"draw": PAINTER, "outline": WRITER}
        self.by_owner: dict[str | None, int] = {}
        self.runs: dict[str, WorkflowRun] = {}

    def next(self, *, keep_running: bool = True) -> str:
        """Start the next task; ``workflow/key``. With ``keep_running`` it stays running."""
        picked = self.queue.pop(self.agents.get, self.by_owner)
        assert picked is not None
        run, task, _ = picked
        if keep_running:
            run.running[task.key] = cast(Any, None)
            self.by_owner[run.owner] = self.by_owner.get(run.owner, 0) + 1
        self.runs[f"{run.id}/{task.key}"] = run
        return f"{run.id}/{task.key}"

    def finish(self, started: str) -> None:
        run = self.runs[started]
        del run.running[started.split("/", 1)[1]]
        self.by_owner[run.owner] -= 1


def test_the_workflow_with_fewer_tasks_running_goes_first() -> None:
    queue = ReadyQueue()
    big, small = workflow("big"), workflow("small")
    for i in range(3):
        push(queue, big, f"draw/{i}")
    push(queue, small, "draw/0")
    starts = Starts(queue)

    # Oldest first would start big's three draws before small's one.
    assert [starts.next() for _ in range(4)] == [
        "big/draw/0",
        "small/draw/0",
        "big/draw/1",
        "big/draw/2",
    ]
    assert len(queue) == 0


def test_between_workflows_running_as_many_the_owner_with_fewer_running_goes_first() -> None:
    queue = ReadyQueue()
    first, second, other = workflow("first"), workflow("second"), workflow("other", "bob")
    push(queue, first, "draw/0")
    starts = Starts(queue)
    assert starts.next() == "first/draw/0"  # alice now has one task running
    push(queue, second, "draw/0")
    push(queue, other, "draw/0")

    # second and other run nothing; alice runs one task, bob none.
    assert starts.next() == "other/draw/0"
    assert starts.next() == "second/draw/0"


def test_a_higher_priority_goes_before_any_fair_share() -> None:
    queue = ReadyQueue()
    low, urgent, later = workflow("low"), workflow("urgent", "bob", 3), workflow("later", None, -2)
    push(queue, later, "draw/0")
    push(queue, low, "draw/0")
    push(queue, low, "draw/1")
    for i in range(3):
        push(queue, urgent, f"draw/{i}")
    starts = Starts(queue)

    # urgent's draws all go first though it then runs the most; -2 goes after 0.
    assert [starts.next() for _ in range(6)] == [
        "urgent/draw/0",
        "urgent/draw/1",
        "urgent/draw/2",
        "low/draw/0",
        "low/draw/1",
        "later/draw/0",
    ]


def test_otherwise_tasks_start_in_arrival_order_across_workflows_and_skills() -> None:
    queue = ReadyQueue()
    a, b = workflow("a"), workflow("b", "bob")
    push(queue, a, "draw/0")
    push(queue, b, "outline", "outline")
    push(queue, b, "draw/0")
    push(queue, a, "draw/1")
    starts = Starts(queue)

    # Each task finishes before the next starts, so no workflow or owner runs more.
    order = [starts.next(keep_running=False) for _ in range(4)]
    assert order == ["a/draw/0", "b/outline", "b/draw/0", "a/draw/1"]


def test_a_skill_without_an_agent_with_room_is_passed_over() -> None:
    queue = ReadyQueue()
    a, b = workflow("a"), workflow("b", "bob")
    push(queue, a, "draw/0")
    push(queue, b, "outline", "outline")
    starts = Starts(queue, {"draw": None, "outline": WRITER})

    assert starts.next() == "b/outline"
    assert queue.pop(starts.agents.get, starts.by_owner) is None
    assert len(queue) == 1


def test_removing_a_workflow_returns_its_tasks_in_arrival_order_and_extend_requeues_them() -> None:
    queue = ReadyQueue()
    a, b = workflow("a"), workflow("b")
    push(queue, a, "draw/0")
    push(queue, b, "draw/0")
    push(queue, a, "outline", "outline")
    push(queue, a, "draw/1")
    assert len(queue) == 4

    removed = queue.remove_run(a)
    assert [t.key for t in removed] == ["draw/0", "outline", "draw/1"]
    assert len(queue) == 1
    assert queue.remove_run(a) == []

    queue.extend(a, removed)
    assert len(queue) == 4
    starts = Starts(queue)
    order = [starts.next(keep_running=False) for _ in range(4)]
    assert order == ["b/draw/0", "a/draw/0", "a/outline", "a/draw/1"]


class Gates:
    """A painter hook that holds each drawing until the test lets it finish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: dict[tuple[str, str], threading.Event] = {}

    def _gate(self, workflow_id: str, key: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault((workflow_id, key), threading.Event())

    def hook(self, ctx: TaskContext) -> None:
        self._gate(ctx.workflow_id, ctx.task_key).wait(10)

    def open(self, workflow_id: str, key: str) -> None:
        self._gate(workflow_id, key).set()


async def test_the_coordinator_shares_a_busy_agent_between_workflows_and_owners() -> None:
    gates = Gates()
    agents = [
        Writer(name="writer"),
        Painter(gates.hook, name="painter", concurrency=2),
        Editor(name="editor"),
    ]
    async with coordinator_with(None, agents) as (coordinator, rec):
        names: dict[str, str] = {}

        def draws_started() -> list[str]:
            return [
                f"{names[e.workflow_id]}/{e.details.task}"
                for e in rec.of("progress")
                if e.details.event == "task_started" and e.details.task.startswith("draw/")
            ]

        async def submit(name: str, shots: int, owner: str) -> str:
            record = await coordinator.submit("story", {"shots": shots}, owner)
            names[record.id] = name
            await rec.wait_for(task_event(record.id, "task_completed", "outline"))
            return record.id

        big = await submit("big", 4, "alice")  # its draw/0 and draw/1 fill the painter
        await rec.wait_for(task_event(big, "task_started", "draw/1"))
        mine = await submit("mine", 1, "alice")
        theirs = await submit("theirs", 1, "bob")
        assert coordinator.queue_size == 4
        assert coordinator.scheduler.running_by_owner == {"alice": 2}

        async def finish(workflow_id: str, key: str, then: str) -> None:
            """Let draw ``key`` of ``workflow_id`` end; wait until ``then`` starts."""
            gates.open(workflow_id, key)
            name, then_key = then.split("/", 1)
            then_id = next(i for i, n in names.items() if n == name)
            await rec.wait_for(task_event(then_id, "task_started", then_key))

        # big runs 1, mine and theirs none; alice runs 1, bob none: bob's goes first.
        await finish(big, "draw/0", then="theirs/draw/0")
        assert coordinator.scheduler.running_by_owner == {"alice": 1, "bob": 1}
        # big runs 1, mine none: mine goes before big's older draws.
        await finish(theirs, "draw/0", then="mine/draw/0")
        await finish(big, "draw/1", then="big/draw/2")
        await finish(mine, "draw/0", then="big/draw/3")
        for key in ("draw/2", "draw/3"):
            gates.open(big, key)
        records = [await coordinator.wait(w, timeout=10) for w in (big, mine, theirs)]

    assert [r.state for r in records] == [WorkflowState.completed] * 3
    # Oldest first would have been big 0 1 2 3, mine, theirs.
    assert draws_started() == [
        "big/draw/0",
        "big/draw/1",
        "theirs/draw/0",
        "mine/draw/0",
        "big/draw/2",
        "big/draw/3",
    ]
    assert coordinator.scheduler.running_by_owner == {}


async def test_priority_is_checked_kept_in_the_record_and_restored_on_resume(
    tmp_path: Path,
) -> None:
    gate = threading.Event()

    def held(ctx: TaskContext) -> None:
        gate.wait(10)

    agents = default_agents(painter_hook=held, painters=1)
    async with coordinator_with(tmp_path, agents) as (coordinator, rec):
        bad: Any
        for bad in (11, -11, True, "high", 2.0):
            with pytest.raises(ValueError, match=r"'priority' must be a whole number from -10"):
                await coordinator.submit("story", {"shots": 1}, priority=bad)
        assert await coordinator.list_workflows() == []
        record = await coordinator.submit("story", {"shots": 1}, priority=-10)
        assert record.priority == -10
        await rec.wait_for(task_event(record.id, "task_started", "draw/0"))
        gate.set()  # it ends after the stop: the workflow is left interrupted
    stored = await _stored_record(tmp_path, record.id)
    assert (stored.state, stored.priority) == (WorkflowState.interrupted, -10)

    async with coordinator_with(tmp_path) as (coordinator, _):
        resumed = await coordinator.control(record.id, "resume")
        assert resumed.priority == -10
        done = await coordinator.wait(record.id, timeout=10)
    assert (done.state, done.priority) == (WorkflowState.completed, -10)


async def _stored_record(path: Path, workflow_id: str) -> WorkflowRecord:
    store = await Store.open(path / "vimax.sqlite3")
    try:
        record = await store.workflows.get(workflow_id)
    finally:
        await store.close()
    assert record is not None
    return record


def test_a_record_stored_before_priorities_reads_as_priority_0() -> None:
    old = {
        "id": "abc",
        "kind": "story",
        "params": {},
        "state": "completed",
        "progress": 1.0,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
    }
    assert WorkflowRecord.model_validate_json(json.dumps(old)).priority == 0
    run = WorkflowRun(StoryPipeline(), {"shots": 1}, priority=4)
    assert run.record().priority == 4
