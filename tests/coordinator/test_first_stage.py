"""A workflow's first events name its first stage, and the stage never goes back."""

from __future__ import annotations

from pathlib import Path

from vimax_nb.coordinator import Stage, TaskGraph, TaskSpec
from vimax_nb.coordinator.run import WorkflowRun
from vimax_nb.pipelines.idea2video import Idea2VideoPipeline
from vimax_nb.protocol import WorkflowState
from vimax_nb.providers import ProviderCatalog

from .toy import StoryPipeline, coordinator_with


def test_a_graph_without_tasks_is_at_its_first_stage() -> None:
    graph = TaskGraph((Stage("outline"), Stage("draw"), Stage("edit")))
    assert graph.current_stage() == 0
    graph.add([TaskSpec("outline", "outline", "outline")])
    graph.succeeded(graph.tasks["outline"], None)
    assert graph.current_stage() == 2  # every task done: the last stage


def test_the_first_events_of_idea2video_are_at_the_story_stage(tmp_path: Path) -> None:
    run = WorkflowRun(Idea2VideoPipeline(tmp_path, ProviderCatalog({})), {"idea": "A fox"})
    queued = run.progress_event("state", "queued")
    assert (queued.state, queued.stage, queued.stage_index, queued.progress) == (
        WorkflowState.pending,
        "story",
        0,
        0.0,
    )
    run.transition(WorkflowState.running)
    started = run.progress_event("state", "started")
    assert (started.stage, started.stage_index) == ("story", 0)
    assert run.record().stage == "story"


def test_a_task_planned_in_an_earlier_stage_does_not_take_the_stage_back() -> None:
    run = WorkflowRun(StoryPipeline(), {"shots": 1})
    run.graph.add([TaskSpec("outline", "outline", "outline")])
    run.graph.succeeded(
        run.graph.tasks["outline"], None, [TaskSpec("draw/0", "draw", "draw", ("outline",))]
    )
    assert run.stage_position() == ("draw", 1)
    run.graph.add([TaskSpec("outline/2", "outline", "outline")])  # planned late
    assert run.graph.current_stage() == 0
    assert run.stage_position() == ("draw", 1)
    assert run.progress_event("task_started").stage_index == 1


async def test_reported_stages_start_at_the_first_and_never_go_back(tmp_path: Path) -> None:
    async with coordinator_with(tmp_path) as (coordinator, recorder):
        record = await coordinator.submit("story", {"shots": 3})
        done = await coordinator.wait(record.id, timeout=10)
    assert done.state == WorkflowState.completed
    progress = recorder.progress(record.id)
    queued, started = progress[:2]
    assert (queued.message, queued.stage, queued.stage_index) == ("queued", "outline", 0)
    assert (started.message, started.stage, started.stage_index) == ("started", "outline", 0)
    indexes = [p.stage_index for p in progress]
    assert indexes == sorted(indexes)
    assert progress[-1].stage == "edit"
