"""The workflow state machine: which state changes are allowed, and why others are not."""

from __future__ import annotations

from collections.abc import Mapping

from ..protocol import TERMINAL_STATES, ControlAction, WorkflowState
from .errors import InvalidTransition

S = WorkflowState

#: Every allowed change of a workflow's state.
TRANSITIONS: Mapping[WorkflowState, frozenset[WorkflowState]] = {
    S.pending: frozenset({S.running, S.paused, S.canceled, S.failed, S.interrupted}),
    S.running: frozenset({S.paused, S.completed, S.failed, S.canceled, S.interrupted}),
    S.paused: frozenset({S.running, S.completed, S.failed, S.canceled, S.interrupted}),
    S.interrupted: frozenset({S.running, S.canceled}),
    S.completed: frozenset(),
    S.failed: frozenset(),
    S.canceled: frozenset(),
}

_ACTION_TARGET = {
    ControlAction.pause: S.paused,
    ControlAction.resume: S.running,
    ControlAction.cancel: S.canceled,
}

_ACTION_APPLIES = {
    ControlAction.pause: "pending or running workflows",
    ControlAction.resume: "paused or interrupted workflows",
    ControlAction.cancel: "workflows that have not finished",
}


def check_transition(workflow_id: str, current: WorkflowState, target: WorkflowState) -> None:
    """Raise :class:`InvalidTransition` unless ``current -> target`` is allowed."""
    if target in TRANSITIONS[current]:
        return
    if current in TERMINAL_STATES:
        why = f"it has already finished ({current.value}) and a finished workflow never changes"
    elif current == target:
        why = f"it is already {current.value}"
    else:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current]))
        why = f"from {current.value} it can only go to {allowed}"
    raise InvalidTransition(workflow_id, current, target, why)


def check_action(workflow_id: str, current: WorkflowState, action: ControlAction) -> WorkflowState:
    """The state ``action`` leads to from ``current``; raises :class:`InvalidTransition`."""
    target = _ACTION_TARGET[action]
    allowed = TRANSITIONS[current]
    applies = target in allowed and not (action == ControlAction.resume and current == S.pending)
    if not applies:
        raise InvalidTransition(
            workflow_id,
            current,
            target,
            f"{action.value} applies to {_ACTION_APPLIES[action]}, and it "
            + (
                f"has already finished ({current.value})"
                if current in TERMINAL_STATES
                else f"is {current.value}"
            ),
        )
    return target
