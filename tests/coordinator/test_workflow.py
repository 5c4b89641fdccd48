"""The workflow state machine and the task graph."""

from __future__ import annotations

import itertools

import pytest

from vimax_nb.coordinator import InvalidTransition, Stage, TaskGraph, TaskSpec, TaskState
from vimax_nb.coordinator.transitions import TRANSITIONS, check_action, check_transition
from vimax_nb.protocol import TERMINAL_STATES, ControlAction, WorkflowState

S = WorkflowState


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_only_the_listed_transitions_are_allowed(current: S, target: S) -> None:
    if target in TRANSITIONS[current]:
        check_transition("w1", current, target)
    else:
        with pytest.raises(InvalidTransition) as raised:
            check_transition("w1", current, target)
        assert raised.value.current == current
        assert raised.value.target == target
        assert f"from {current.value} to {target.value}" in str(raised.value)


def test_finished_workflows_never_change_and_the_error_says_so() -> None:
    for state in TERMINAL_STATES:
        assert not TRANSITIONS[state]
    with pytest.raises(InvalidTransition, match="already finished"):
        check_transition("w1", S.completed, S.running)
    with pytest.raises(InvalidTransition, match="it is already paused"):
        check_transition("w1", S.paused, S.paused)
    with pytest.raises(InvalidTransition, match="can only go to"):
        check_transition("w1", S.interrupted, S.paused)


@pytest.mark.parametrize(
    ("action", "current", "target"),
    [
        (ControlAction.pause, S.running, S.paused),
        (ControlAction.pause, S.pending, S.paused),
        (ControlAction.resume, S.paused, S.running),
        (ControlAction.resume, S.interrupted, S.running),
        (ControlAction.cancel, S.running, S.canceled),
        (ControlAction.cancel, S.interrupted, S.canceled),
    ],
)
def test_actions_lead_where_they_should(action: ControlAction, current: S, target: S) -> None:
    assert check_action("w1", current, action) == target


@pytest.mark.parametrize(
    ("action", "current"),
    [
        (ControlAction.pause, S.paused),
        (ControlAction.resume, S.running),
        (ControlAction.resume, S.pending),
        (ControlAction.cancel, S.completed),
        (ControlAction.pause, S.failed),
    ],
)
def test_actions_that_do_not_apply_are_refused(action: ControlAction, current: S) -> None:
    with pytest.raises(InvalidTransition, match=f"{action.value} applies to"):
        check_action("w1", current, action)


STAGES = [Stage("write", 1), Stage("draw", 3)]


def test_tasks_become_ready_when_their_dependencies_succeed() -> None:
    graph = TaskGraph(STAGES)
    ready = graph.add(
        [
            TaskSpec("story", "write", "write"),
            TaskSpec("a", "draw", "draw", deps=("story",)),
            TaskSpec("b", "draw", "draw", deps=("story",)),
        ]
    )
    assert [t.key for t in ready] == ["story"]
    assert [t.key for t in graph.succeeded(graph.tasks["story"], "text")] == ["a", "b"]
    assert graph.inputs_of(graph.tasks["a"]) == {"story": "text"}
    later = graph.add([TaskSpec("c", "draw", "draw", deps=("story",))])
    assert [t.key for t in later] == ["c"]  # its dependency had already succeeded
    assert graph.tasks["a"].state == TaskState.waiting


def test_progress_weighs_each_stage_and_names_the_current_one() -> None:
    graph = TaskGraph(STAGES)
    graph.add([TaskSpec("story", "write", "write")])
    assert graph.fraction_done() == 0.0
    assert graph.current_stage() == 0
    graph.succeeded(graph.tasks["story"], None)
    assert graph.fraction_done() == pytest.approx(0.25)
    graph.add([TaskSpec(f"f{i}", "draw", "draw") for i in range(3)])
    graph.succeeded(graph.tasks["f0"], None)
    assert graph.current_stage() == 1
    assert graph.fraction_done() == pytest.approx(0.25 + 0.75 / 3)
    assert graph.counts("draw") == (1, 3)
    assert not graph.all_succeeded()
    for key in ("f1", "f2"):
        graph.succeeded(graph.tasks[key], None)
    assert graph.all_succeeded()
    assert graph.fraction_done() == 1.0


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([TaskSpec("a", "write", "write", deps=("ghost",))], "unknown tasks"),
        ([TaskSpec("a", "write", "nowhere")], "names stage 'nowhere'"),
        ([TaskSpec("a", "write", "write"), TaskSpec("a", "write", "write")], "unique"),
        (
            [
                TaskSpec("a", "write", "write", deps=("c",)),
                TaskSpec("b", "write", "write", deps=("a",)),
                TaskSpec("c", "write", "write", deps=("b",)),
            ],
            "cycle: a -> c -> b -> a",
        ),
    ],
)
def test_malformed_graphs_are_refused_whole(specs: list[TaskSpec], message: str) -> None:
    graph = TaskGraph(STAGES)
    with pytest.raises(ValueError, match=message):
        graph.add(specs)
    assert graph.tasks == {}


def test_a_task_key_cannot_be_added_twice() -> None:
    graph = TaskGraph(STAGES)
    graph.add([TaskSpec("a", "write", "write")])
    with pytest.raises(ValueError, match="already exists"):
        graph.add([TaskSpec("a", "write", "write")])


def test_a_graph_needs_stages() -> None:
    with pytest.raises(ValueError, match="at least one stage"):
        TaskGraph([])


def test_tasks_planned_later_can_hold_back_a_waiting_task() -> None:
    graph = TaskGraph(STAGES)
    graph.add([TaskSpec("plan", "write", "write"), TaskSpec("final", "write", "write", ("plan",))])
    scenes = [TaskSpec(f"scene/{i}", "draw", "draw", ("plan",), blocks=("final",)) for i in (0, 1)]
    ready = graph.succeeded(graph.tasks["plan"], "two scenes", scenes)
    # The scenes were added before plan counted as done: final now waits for them too.
    assert [t.key for t in ready] == ["scene/0", "scene/1"]
    assert graph.succeeded(graph.tasks["scene/0"], "A") == []
    assert [t.key for t in graph.succeeded(graph.tasks["scene/1"], "B")] == ["final"]
    assert graph.inputs_of(graph.tasks["final"]) == {
        "plan": "two scenes",
        "scene/0": "A",
        "scene/1": "B",
    }


def test_only_waiting_tasks_can_be_held_back_and_never_by_their_own_dependency() -> None:
    graph = TaskGraph(STAGES)
    [first] = graph.add([TaskSpec("first", "write", "write")])
    first.state = TaskState.ready
    with pytest.raises(ValueError, match="cannot hold back 'first': it is already ready"):
        graph.add([TaskSpec("late", "draw", "draw", blocks=("first",))])
    graph.add([TaskSpec("second", "draw", "draw", ("first",))])
    with pytest.raises(ValueError, match="cannot hold back 'second': it depends on it"):
        graph.add([TaskSpec("third", "draw", "draw", ("second",), blocks=("second",))])
    with pytest.raises(ValueError, match="blocks unknown tasks"):
        graph.add([TaskSpec("fourth", "draw", "draw", blocks=("ghost",))])
    assert set(graph.tasks) == {"first", "second"}
