"""The coordinator end to end with the toy story pipeline."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.coordinator import (
    Agent,
    InvalidTransition,
    RetryableError,
    RetryPolicy,
    TaskContext,
    UnknownPipeline,
    WorkflowNotFound,
    skill,
)
from vimax_nb.protocol import AgentState, ControlAction, StageProgress, WorkflowState
from vimax_nb.store import Store

from .toy import Editor, Painter, Writer, coordinator_with, default_agents, task_event


async def test_a_workflow_runs_to_completion_and_reports_every_step(tmp_path: Path) -> None:
    async with coordinator_with(tmp_path) as (coordinator, recorder):
        record = await coordinator.submit("story", {"shots": 4})
        assert record.state == WorkflowState.running
        done = await coordinator.wait(record.id, timeout=10)

        assert done.state == WorkflowState.completed
        assert done.progress == 1.0
        assert done.result == {"film": [0, 1, 2, 3]}
        progress = recorder.progress(record.id)
        assert [p.progress for p in progress] == sorted(p.progress for p in progress)
        assert progress[-1].state == WorkflowState.completed
        assert all(p.room == f"workflow:{record.id}" for p in progress)
        assert all(p.total_stages == 3 for p in progress)
        completed = [p.details.task for p in progress if p.details.event == "task_completed"]
        assert sorted(completed) == ["draw/0", "draw/1", "draw/2", "draw/3", "edit", "outline"]
        assert progress[-1].details.stages == [
            StageProgress(name="outline", done=1, total=1),
            StageProgress(name="draw", done=4, total=4),
            StageProgress(name="edit", done=1, total=1),
        ]
        assert progress[-1].details.event == "state"
        assert progress[-1].details.state == WorkflowState.completed
        artifacts = recorder.of("artifact", workflow_id=record.id)
        assert sorted(a.url for a in artifacts) == [
            f"/vimax/api/workflows/{record.id}/artifacts/shots/{i}.png" for i in range(4)
        ]

        stored = await coordinator.store.workflows.get(record.id)  # type: ignore[union-attr]
        assert stored is not None
        assert stored.state == WorkflowState.completed

    statuses = recorder.of("agent_status", agent_name="editor")
    assert statuses[-1].metrics.tasks_completed == 1
    assert statuses[-1].status == AgentState.idle
    metrics = recorder.of("coordinator_metrics")
    assert metrics
    assert metrics[-1].registered_agents == 4


async def test_tasks_go_to_the_least_loaded_agent_within_every_limit() -> None:
    lock = threading.Lock()
    running: dict[str, int] = {}
    peaks = {"total": 0}
    gate = threading.Event()
    started = threading.Semaphore(0)

    def painter_hook(ctx: TaskContext) -> None:
        agent = threading.current_thread().name
        with lock:
            running[agent] = running.get(agent, 0) + 1
            peaks["total"] = max(peaks["total"], sum(running.values()))
        started.release()
        gate.wait(10)
        with lock:
            running[agent] -= 1

    agents = default_agents(painter_hook=painter_hook, painters=3, painter_concurrency=2)
    async with coordinator_with(None, agents, max_concurrent_tasks=5) as (coordinator, rec):
        record = await coordinator.submit("story", {"shots": 12})
        # The global limit of 5 lets five drawings start; the other seven wait in the queue.
        for _ in range(5):
            await asyncio.to_thread(started.acquire)
        await rec.wait_for(lambda e: e.type == "coordinator_metrics" and e.queue_size == 7)
        busy = {a.name: len(a.running) for a in coordinator.agents if a.name.startswith("p")}
        assert sorted(busy.values()) == [1, 2, 2]  # spread out, never over a concurrency of 2
        assert coordinator.queue_size == 7
        gate.set()
        done = await coordinator.wait(record.id, timeout=10)

    assert done.state == WorkflowState.completed
    assert peaks["total"] == 5
    per_agent = [a.metrics().tasks_completed for a in coordinator.agents if a.name.startswith("p")]
    assert sum(per_agent) == 12


async def test_transient_failures_are_retried_until_they_succeed() -> None:
    failures: dict[str, int] = {}

    def flaky(ctx: TaskContext) -> None:
        failures[ctx.task_key] = failures.get(ctx.task_key, 0) + 1
        if ctx.attempt < 3:
            raise RetryableError(f"busy, try again (attempt {ctx.attempt})")

    async with coordinator_with(None, default_agents(painter_hook=flaky)) as (coordinator, rec):
        record = await coordinator.submit("story", {"shots": 2})
        done = await coordinator.wait(record.id, timeout=10)

    assert done.state == WorkflowState.completed
    assert failures == {"draw/0": 3, "draw/1": 3}
    retries = [p for p in rec.progress(record.id) if p.details.event == "task_retrying"]
    assert len(retries) == 4
    first = retries[0].details
    assert first.task in {"draw/0", "draw/1"}
    assert first.agent in {"painter-0", "painter-1"}
    assert first.attempt == 1
    assert first.retry_in == 0.0
    assert first.error == "busy, try again (attempt 1)"
    assert coordinator.dead_letters == 0


@pytest.mark.parametrize(
    ("error", "retryable", "attempts"),
    [(ValueError("bad prompt"), False, 1), (RetryableError("rate limited"), True, 3)],
)
async def test_a_task_that_keeps_failing_fails_the_workflow_and_says_where(
    tmp_path: Path, error: Exception, retryable: bool, attempts: int
) -> None:
    def broken(ctx: TaskContext) -> None:
        if ctx.params["shot"] == 1:
            raise error

    agents = [Writer(name="writer"), Painter(broken, name="painter"), Editor(name="editor")]
    async with coordinator_with(tmp_path, agents) as (coordinator, rec):
        record = await coordinator.submit("story", {"shots": 3})
        done = await coordinator.wait(record.id, timeout=10)
        stored = await coordinator.store.workflows.get(record.id)  # type: ignore[union-attr]

    assert done.state == WorkflowState.failed
    assert stored is not None
    assert stored.state == WorkflowState.failed
    [event] = rec.of("error", target_id=record.id)
    assert event.target_type == "workflow"
    assert event.retryable is retryable
    assert event.details["stage"] == "draw"
    assert event.details["task"] == "draw/1"
    assert event.details["agent"] == "painter"
    assert event.details["attempts"] == attempts
    assert "'draw/1'" in event.message
    assert "'painter'" in event.message
    assert str(error) in event.message
    assert done.error == event.details
    assert coordinator.dead_letters == 1
    assert coordinator.metrics().dead_letters == 1
    assert coordinator.queue_size == 0
    assert not [p for p in rec.progress(record.id) if p.details.task == "edit"]  # never started


async def test_pause_lets_running_tasks_finish_and_starts_nothing_new() -> None:
    gate = threading.Event()

    def slow(ctx: TaskContext) -> None:
        gate.wait(10)

    agents = default_agents(painter_hook=slow, painters=1, painter_concurrency=1)
    async with coordinator_with(None, agents) as (coordinator, rec):
        record = await coordinator.submit("story", {"shots": 3})
        await rec.wait_for(task_event(record.id, "task_started", "draw/0"))
        paused = await coordinator.control(record.id, ControlAction.pause)
        assert paused.state == WorkflowState.paused
        gate.set()
        await rec.wait_for(task_event(record.id, "task_completed", "draw/0"))
        # Completing draw/0 while paused starts nothing: draw/1 and draw/2 are held.
        await rec.wait_for(lambda e: e.type == "agent_status" and e.status == AgentState.idle)
        assert coordinator.queue_size == 0
        assert (await coordinator.get_workflow(record.id)).state == WorkflowState.paused
        paused_at = len(rec.events)

        resumed = await coordinator.control(record.id, "resume")
        assert resumed.state == WorkflowState.running
        done = await coordinator.wait(record.id, timeout=10)

    assert done.state == WorkflowState.completed
    started = [p.details.task for p in rec.progress(record.id) if p.details.event == "task_started"]
    assert started == ["outline", "draw/0", "draw/1", "draw/2", "edit"]
    after_resume = [
        e.details.task
        for e in rec.events[paused_at:]
        if e.type == "progress" and e.details.event == "task_started"
    ]
    assert after_resume == ["draw/1", "draw/2", "edit"]  # the held tasks, in their order


async def test_cancel_stops_running_tasks_through_their_token_within_a_second() -> None:
    entered = threading.Event()
    stopped = threading.Event()

    def long_render(ctx: TaskContext) -> None:
        entered.set()
        while not ctx.cancel_token.cancelled:
            ctx.cancel_token._event.wait(0.01)
        stopped.set()
        ctx.cancel_token.raise_if_cancelled()

    agents = default_agents(painter_hook=long_render)
    async with coordinator_with(None, agents) as (coordinator, rec):
        record = await coordinator.submit("story", {"shots": 6})
        await asyncio.to_thread(entered.wait, 10)
        canceled = await coordinator.control(record.id, ControlAction.cancel)
        assert canceled.state == WorkflowState.canceled
        canceled_at = len(rec.events)
        assert await asyncio.to_thread(stopped.wait, 1.0)
        await rec.wait_for(
            lambda e: (
                e.type == "agent_status"
                and e.agent_name == "painter-0"
                and not e.metrics.current_task
            )
        )
        assert coordinator.queue_size == 0
        with pytest.raises(InvalidTransition, match="already finished"):
            await coordinator.control(record.id, ControlAction.cancel)
        with pytest.raises(InvalidTransition, match="resume applies to paused or interrupted"):
            await coordinator.control(record.id, ControlAction.resume)

    # Nothing of the workflow happened after the cancel: no task started or completed.
    assert not [e for e in rec.events[canceled_at:] if e.type in ("progress", "artifact")]
    painter_metrics = [a.metrics() for a in coordinator.agents if a.name.startswith("painter")]
    assert all(m.tasks_failed == 0 for m in painter_metrics)  # a canceled task is no failure


async def test_async_handlers_are_cancelled_on_the_loop() -> None:
    started = asyncio.Event()

    class Waiter(Agent):
        @skill()
        async def draw(self, ctx: TaskContext) -> None:
            started.set()
            await asyncio.Event().wait()

    agents = [Writer(name="writer"), Waiter(name="waiter"), Editor(name="editor")]
    async with coordinator_with(None, agents) as (coordinator, rec):
        record = await coordinator.submit("story", {"shots": 1})
        await started.wait()
        await coordinator.control(record.id, ControlAction.cancel)
        await rec.wait_for(
            lambda e: e.type == "agent_status" and e.agent_name == "waiter" and e.status == "idle"
        )


async def test_bad_requests_get_clear_errors_and_change_nothing() -> None:
    async with coordinator_with(None) as (coordinator, _):
        with pytest.raises(UnknownPipeline, match=r"unknown workflow kind 'movie'.*story"):
            await coordinator.submit("movie", {})
        with pytest.raises(ValueError, match="shots must be a whole number"):
            await coordinator.submit("story", {"shots": -1})
        with pytest.raises(WorkflowNotFound, match="nope"):
            await coordinator.control("nope", ControlAction.pause)
        with pytest.raises(ValueError, match="'explode' is not a valid ControlAction"):
            await coordinator.control("nope", "explode")
        assert await coordinator.list_workflows() == []
        assert coordinator.metrics().total_workflows == 0


async def test_a_task_for_a_skill_no_agent_has_fails_the_workflow() -> None:
    agents = [Writer(name="writer"), Editor(name="editor")]
    async with coordinator_with(None, agents) as (coordinator, _):
        record = await coordinator.submit("story", {"shots": 2})
        done = await coordinator.wait(record.id, timeout=10)
    assert done.state == WorkflowState.failed
    assert "no registered agent has the skill 'draw'" in done.message


async def test_a_listener_that_fails_never_stalls_the_coordinator() -> None:
    async with coordinator_with(None) as (coordinator, rec):

        def explode(event: Any) -> None:
            raise RuntimeError("listener bug")

        coordinator.add_listener(explode)
        after: list[Any] = []
        coordinator.add_listener(after.append)
        seen = len(rec.events)
        record = await coordinator.submit("story", {"shots": 8})
        done = await coordinator.wait(record.id, timeout=10)
        assert done.state == WorkflowState.completed
    # the listener after the broken one saw every event, as the one before it did
    assert after == rec.events[seen:]
    assert any(e.type == "progress" and e.state == WorkflowState.completed for e in after)


async def test_a_stopped_coordinator_leaves_interrupted_workflows_that_resume_from_checkpoints(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    gate = threading.Event()

    def counting(ctx: TaskContext) -> None:
        calls.append(ctx.task_key)
        if ctx.params["shot"] >= 2:
            gate.wait(10)

    agents = default_agents(painter_hook=counting, painters=1, painter_concurrency=1)
    async with coordinator_with(tmp_path, agents) as (coordinator, rec):
        record = await coordinator.submit("story", {"shots": 4})
        await rec.wait_for(task_event(record.id, "task_started", "draw/2"))
        gate.set()
    assert (await _stored(tmp_path, record.id)).state == WorkflowState.interrupted

    calls.clear()
    async with coordinator_with(tmp_path, default_agents(painter_hook=counting)) as (c2, rec2):
        assert (await c2.get_workflow(record.id)).state == WorkflowState.interrupted
        assert c2.metrics().total_workflows == 1
        resumed = await c2.control(record.id, ControlAction.resume)
        assert resumed.state == WorkflowState.running
        done = await c2.wait(record.id, timeout=10)
        assert done.state == WorkflowState.completed
        assert done.result == {"film": [0, 1, 2, 3]}
    # draw/0 and draw/1 were checkpointed before the stop: only the rest ran again.
    assert sorted(calls) == ["draw/2", "draw/3"]
    restored = [
        p.details.task for p in rec2.progress(record.id) if p.details.event == "task_restored"
    ]
    assert sorted(restored) == ["draw/0", "draw/1", "outline"]


async def test_workflows_that_were_running_when_the_process_died_start_interrupted(
    tmp_path: Path,
) -> None:
    async with coordinator_with(tmp_path) as (coordinator, _):
        record = await coordinator.submit("story", {"shots": 1})
        await coordinator.wait(record.id, timeout=10)
    crashed = record.model_copy(update={"id": "crashed", "state": WorkflowState.running})
    paused = record.model_copy(update={"id": "paused", "state": WorkflowState.paused})
    store = await Store.open(tmp_path / "vimax.sqlite3")
    await store.workflows.save(crashed)
    await store.workflows.save(paused)
    await store.close()

    async with coordinator_with(tmp_path) as (coordinator, recorder):
        states = {r.id: r.state for r in await coordinator.list_workflows()}
    assert states == {
        record.id: WorkflowState.completed,
        "crashed": WorkflowState.interrupted,
        "paused": WorkflowState.interrupted,
    }
    # each one's room says so too: a client following it learns it from the log
    told = {
        e.workflow_id: e.state
        for e in recorder.events
        if e.type == "progress" and e.room == f"workflow:{e.workflow_id}"
    }
    assert told == {"crashed": WorkflowState.interrupted, "paused": WorkflowState.interrupted}


async def _stored(path: Path, workflow_id: str) -> Any:
    store = await Store.open(path / "vimax.sqlite3")
    try:
        return await store.workflows.get(workflow_id)
    finally:
        await store.close()


def test_retry_policy_backs_off_exponentially_up_to_its_cap() -> None:
    policy = RetryPolicy(backoff=1.0, backoff_max=5.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        RetryPolicy(max_attempts=0)


async def test_a_pipeline_hook_that_raises_fails_the_workflow_instead_of_hanging(
    tmp_path: Path,
) -> None:
    from .toy import StoryPipeline

    class BrokenCheckpoints(StoryPipeline):
        kind = "broken"

        def checkpoint(self, *args: Any) -> Any:
            raise RuntimeError("checkpoint hook bug")

    async with coordinator_with(tmp_path) as (coordinator, _):
        coordinator.register_pipeline(BrokenCheckpoints())
        record = await coordinator.submit("broken", {"shots": 1})
        done = await coordinator.wait(record.id, timeout=10)
    assert done.state == WorkflowState.failed
    assert "checkpoint hook bug" in done.message
