"""Requests and their answers (vimax_nb.client.outbox), without a socket."""

from __future__ import annotations

import pytest

from vimax_nb.client.outbox import Outbox, RequestError
from vimax_nb.protocol import (
    ControlAction,
    ControlResponse,
    CoordinatorMetricsEvent,
    ErrorEvent,
    TargetType,
    WorkflowState,
)


def control_response(rid: str, state: WorkflowState, *, ok: bool = True) -> ControlResponse:
    return ControlResponse(id=rid, action=ControlAction.pause, ok=ok, state=state, workflow_id="w1")


def metrics(**fields: object) -> CoordinatorMetricsEvent:
    values: dict[str, object] = {
        "total_workflows": 0,
        "active_workflows": 0,
        "queue_size": 0,
        "registered_agents": 0,
        "healthy_agents": 0,
        "tasks_per_second": 0.0,
        "dead_letters": 0,
    }
    return CoordinatorMetricsEvent.model_validate({**values, **fields})


def test_a_late_answer_to_a_forgotten_request_answers_no_other() -> None:
    outbox = Outbox(10)
    outbox.expect("r1", ControlResponse)
    outbox.forget("r1")  # r1 timed out
    resume = outbox.expect("r2", ControlResponse)
    outbox.answer(control_response("r1", WorkflowState.paused, ok=False))
    assert not resume.done()
    outbox.answer(control_response("r2", WorkflowState.running))
    assert resume.result(0).state == WorkflowState.running


def test_an_answer_without_an_id_goes_to_the_oldest_request_of_its_type() -> None:
    outbox = Outbox(10)
    control = outbox.expect("r1", ControlResponse)
    first, second = (
        outbox.expect("r2", CoordinatorMetricsEvent),
        outbox.expect("r3", CoordinatorMetricsEvent),
    )
    outbox.answer(metrics(total_workflows=3))
    assert first.result(0).total_workflows == 3
    assert not second.done()
    assert not control.done()
    outbox.answer(metrics(total_workflows=3, seq=7, room="coordinator"))  # a stored event
    assert not second.done()


def test_an_error_frame_fails_its_request_and_a_closed_outbox_refuses_more() -> None:
    outbox = Outbox(10)
    waiting = outbox.expect("r1", ControlResponse)
    outbox.answer(
        ErrorEvent(target_type=TargetType.workflow, code="not_found", message="no w9", id="r1")
    )
    with pytest.raises(RequestError, match="not_found: no w9"):
        waiting.result(0)
    outbox.close(ConnectionError("the connection is closed"))
    for _ in range(2):
        with pytest.raises(ConnectionError, match="closed"):
            outbox.expect("r2", ControlResponse)
