import json
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from vimax_nb import protocol as p
from vimax_nb.protocol import (
    COORDINATOR_ROOM,
    EVENT_TYPES,
    MAX_CLIENT_MESSAGE_BYTES,
    TERMINAL_STATES,
    AgentMetrics,
    AgentRecord,
    AgentState,
    AgentStatusEvent,
    ArtifactEvent,
    ArtifactKind,
    Control,
    ControlAction,
    ControlResponse,
    CoordinatorMetricsEvent,
    ErrorCode,
    ErrorEvent,
    GetMetrics,
    Ping,
    Pong,
    ProgressDetails,
    ProgressEvent,
    ProtocolError,
    RoomKind,
    StageProgress,
    Subscribe,
    Subscribed,
    TargetType,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    WorkflowRecord,
    WorkflowState,
    agent_room,
    event_payload,
    parse_client_message,
    parse_room,
    parse_server_message,
    workflow_room,
)

CLIENT_TYPES = ["control", "get_metrics", "ping", "subscribe", "unsubscribe"]
ENVELOPE = set(p.ENVELOPE)
TS = "2024-05-01T12:00:00Z"


def fail(raw: str | bytes, code: ErrorCode, **kwargs: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw, **kwargs)
    assert info.value.code is code, info.value.message
    return info.value


# --- constants -------------------------------------------------------------------------


def test_constants() -> None:
    assert p.PROTOCOL_VERSION == 1
    assert (p.CLOSE_POLICY, p.CLOSE_TOO_BIG) == (1008, 1009)
    assert (p.CLOSE_SLOW_CONSUMER, p.CLOSE_RATE_LIMIT) == (4008, 4029)
    assert MAX_CLIENT_MESSAGE_BYTES == 65536
    assert {"completed", "failed", "canceled"} == TERMINAL_STATES
    assert WorkflowState.interrupted not in TERMINAL_STATES
    assert {"progress", "agent_status", "coordinator_metrics", "artifact", "error"} == EVENT_TYPES


def test_all_names_exist() -> None:
    missing = [name for name in p.__all__ if not hasattr(p, name)]
    assert missing == []


# --- rooms -----------------------------------------------------------------------------


def test_room_helpers() -> None:
    assert workflow_room("abc") == "workflow:abc"
    assert agent_room("painter") == "agent:painter"
    assert parse_room("workflow:abc") == (RoomKind.workflow, "abc")
    assert parse_room("agent:painter") == (RoomKind.agent, "painter")
    assert parse_room(COORDINATOR_ROOM) == (RoomKind.coordinator, None)
    assert parse_room("workflow:a:b") == (RoomKind.workflow, "a:b")


@pytest.mark.parametrize(
    ("room", "needle"),
    [
        ("", "expected"),
        ("workflow", "expected"),
        ("workflow:", "workflow id"),
        ("agent:", "agent name"),
        ("coordinator:x", "expected"),
        ("Workflow:x", "expected"),
        ("room:x", "expected"),
    ],
)
def test_parse_room_rejects(room: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle) as info:
        parse_room(room)
    assert repr(room) in str(info.value)


def test_room_builders_reject_empty_ids() -> None:
    with pytest.raises(ValueError, match="empty"):
        workflow_room("")
    with pytest.raises(ValueError, match="empty"):
        agent_room("")


@given(st.text(min_size=1))
def test_room_round_trip(ident: str) -> None:
    assert parse_room(workflow_room(ident)) == (RoomKind.workflow, ident)
    assert parse_room(agent_room(ident)) == (RoomKind.agent, ident)


@given(st.text())
def test_parse_room_total(room: str) -> None:
    try:
        kind, ident = parse_room(room)
    except ValueError:
        return
    rebuilt = {
        RoomKind.coordinator: lambda _: COORDINATOR_ROOM,
        RoomKind.workflow: workflow_room,
        RoomKind.agent: agent_room,
    }[kind](ident or "")
    assert rebuilt == room


# --- client messages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "subscribe", "room": "coordinator"}, Subscribe(room="coordinator")),
        (
            {"type": "subscribe", "room": "workflow:w1", "after": 7, "epoch": "e", "id": "r"},
            Subscribe(room="workflow:w1", after=7, epoch="e", id="r"),
        ),
        ({"type": "subscribe", "room": "agent:x", "after": None}, Subscribe(room="agent:x")),
        ({"type": "subscribe", "room": "agent:x", "after": 0}, Subscribe(room="agent:x", after=0)),
        (
            {"type": "unsubscribe", "room": "agent:x", "id": "9"},
            Unsubscribe(room="agent:x", id="9"),
        ),
        ({"type": "ping"}, Ping()),
        ({"type": "ping", "ts": 12}, Ping(ts=12)),
        ({"type": "ping", "ts": 1.5}, Ping(ts=1.5)),
        ({"type": "ping", "ts": "t0"}, Ping(ts="t0")),
        (
            {"type": "control", "workflow_id": "w", "action": "cancel", "id": "c1"},
            Control(workflow_id="w", action=ControlAction.cancel, id="c1"),
        ),
        ({"type": "get_metrics"}, GetMetrics()),
        ({"type": "get_metrics", "id": "m"}, GetMetrics(id="m")),
    ],
)
def test_client_messages_parse(raw: dict[str, Any], expected: BaseModel) -> None:
    text = json.dumps(raw)
    for frame in (text, text.encode()):
        message = parse_client_message(frame)
        assert type(message) is type(expected)
        assert message == expected


def test_parsed_values_have_protocol_types() -> None:
    message = parse_client_message('{"type": "control", "workflow_id": "w", "action": "pause"}')
    assert isinstance(message, Control)
    assert message.action is ControlAction.pause
    ping = parse_client_message('{"type": "ping", "ts": 3}')
    assert isinstance(ping, Ping)
    assert type(ping.ts) is int


def test_bad_json_gives_position() -> None:
    error = fail('{"type": "ping",,}', ErrorCode.bad_json)
    assert "not valid JSON" in error.message
    assert "line 1 column 17" in error.message
    assert error.request_id is None


def test_invalid_utf8_is_bad_json() -> None:
    fail(b'{"type": "ping", "ts": "\xff"}', ErrorCode.bad_json)


@pytest.mark.parametrize(("raw", "what"), [("[1]", "array"), ("3", "number"), ('"x"', "string")])
def test_not_an_object(raw: str, what: str) -> None:
    error = fail(raw, ErrorCode.invalid_message)
    assert "JSON object" in error.message
    assert what in error.message


def test_unknown_type_lists_known_types() -> None:
    error = fail('{"type": "subscrbe", "room": "coordinator", "id": "q"}', ErrorCode.unknown_type)
    assert "subscrbe" in error.message
    assert "known types: " + ", ".join(CLIENT_TYPES) in error.message
    assert error.details["known_types"] == CLIENT_TYPES
    assert error.request_id == "q"


@pytest.mark.parametrize("raw", ['{"room": "coordinator"}', '{"type": 3}', '{"type": null}'])
def test_missing_or_mistyped_type(raw: str) -> None:
    error = fail(raw, ErrorCode.unknown_type)
    assert "'type'" in error.message or "unknown message type" in error.message
    assert "subscribe" in error.message


def test_missing_field_and_wrong_type_each_named() -> None:
    error = fail('{"type": "subscribe", "after": -1, "id": "r1"}', ErrorCode.invalid_message)
    assert error.message.startswith("subscribe: ")
    assert "field 'room' is required" in error.message
    assert "field 'after' must be an integer >= 0" in error.message
    assert "(got -1)" in error.message
    assert error.request_id == "r1"
    assert [e["field"] for e in error.details["errors"]] == ["room", "after"]


@pytest.mark.parametrize(
    ("raw", "needles"),
    [
        ('{"type": "subscribe", "room": "coordinator", "after": "x"}', ["'after'", "integer"]),
        ('{"type": "subscribe", "room": 5}', ["'room'", "a string"]),
        ('{"type": "subscribe", "room": "lobby"}', ["'room'", "'lobby'", "workflow:<id>"]),
        ('{"type": "unsubscribe", "room": "agent:"}', ["'room'", "agent name"]),
        ('{"type": "ping", "ts": [1]}', ["'ts'", "a number or a string or null"]),
        ('{"type": "control", "workflow_id": "w", "action": "stop"}', ["'action'", "'resume'"]),
        ('{"type": "control", "workflow_id": "", "action": "pause"}', ["non-empty"]),
        ('{"type": "control", "action": "pause"}', ["'workflow_id' is required"]),
        ('{"type": "get_metrics", "id": 5}', ["'id'", "a string or null"]),
    ],
)
def test_invalid_fields_are_named(raw: str, needles: list[str]) -> None:
    error = fail(raw, ErrorCode.invalid_message)
    for needle in needles:
        assert needle in error.message


def test_extra_fields_rejected() -> None:
    error = fail('{"type": "ping", "ts": 1, "color": "red"}', ErrorCode.invalid_message)
    assert "field 'color' is not allowed" in error.message
    assert "ts" in error.message


def test_too_large_states_size_and_limit() -> None:
    raw = json.dumps({"type": "ping", "ts": "x" * MAX_CLIENT_MESSAGE_BYTES})
    error = fail(raw, ErrorCode.too_large)
    assert str(len(raw)) in error.message
    assert str(MAX_CLIENT_MESSAGE_BYTES) in error.message
    assert error.details == {"size": len(raw), "limit": MAX_CLIENT_MESSAGE_BYTES}


def test_size_limit_counts_utf8_bytes() -> None:
    raw = json.dumps({"type": "ping", "ts": "é" * 40}, ensure_ascii=False)
    assert len(raw) < 100 < len(raw.encode())
    fail(raw, ErrorCode.too_large, max_bytes=100)
    fail(raw.encode(), ErrorCode.too_large, max_bytes=100)
    limit = len(raw.encode())
    assert parse_client_message(raw, max_bytes=limit) == Ping(ts="é" * 40)


def test_protocol_error_frame() -> None:
    error = fail('{"type": "control", "id": "c9"}', ErrorCode.invalid_message)
    frame = error.to_frame()
    assert isinstance(frame, ErrorEvent)
    assert frame.target_type is TargetType.protocol
    assert frame.code == "invalid_message"
    assert frame.message == error.message
    assert frame.retryable is False
    assert frame.id == "c9"
    assert parse_server_message(frame.model_dump_json()) == frame
    assert str(error).startswith("invalid_message: ")


@given(st.one_of(st.text(), st.binary()))
def test_arbitrary_input_only_raises_protocol_error(raw: str | bytes) -> None:
    error: ProtocolError | None = None
    try:
        parse_client_message(raw)
    except ProtocolError as exc:
        error = exc
    if error is not None:
        assert error.message
        assert error.to_frame().code in set(ErrorCode)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    st.sampled_from(CLIENT_TYPES),
    st.dictionaries(
        st.sampled_from(["room", "after", "epoch", "id", "ts", "workflow_id", "action", "x"]),
        _json,
    ),
)
def test_arbitrary_objects_parse_or_explain(kind: str, fields: dict[str, Any]) -> None:
    raw = json.dumps({**fields, "type": kind})
    error: ProtocolError | None = None
    try:
        assert parse_client_message(raw).type == kind
    except ProtocolError as exc:
        error = exc
    if error is not None:
        assert error.code is ErrorCode.invalid_message
        assert error.message.startswith(f"{kind}: field ")
        for problem in error.details["errors"]:
            assert f"'{problem['field']}'" in problem["problem"]


# --- server messages -------------------------------------------------------------------

METRICS = AgentMetrics(tasks_completed=3, tasks_failed=1, error_rate=0.25, last_heartbeat=TS)
WORKFLOW = WorkflowRecord(
    id="w1",
    kind="idea2video",
    params={"idea": "a whale", "scenes": 2},
    state=WorkflowState.running,
    progress=0.4,
    stage="storyboard",
    stage_index=2,
    total_stages=6,
    created_at=TS,
    updated_at=TS,
    started_at=TS,
)
AGENT = AgentRecord(
    name="painter", status=AgentState.busy, capabilities=["frames"], metrics=METRICS
)

EVENTS: list[BaseModel] = [
    ProgressEvent(
        workflow_id="w1",
        state=WorkflowState.paused,
        progress=0.5,
        stage="frames",
        stage_index=3,
        total_stages=6,
        message="half",
        details=ProgressDetails(
            event="task_completed",
            task="shot/2",
            agent="frame_painter",
            stages=[StageProgress(name="story", done=1, total=1), StageProgress(name="frames")],
        ),
        room="workflow:w1",
        seq=4,
        timestamp=TS,
    ),
    AgentStatusEvent(
        agent_name="painter", status=AgentState.idle, capabilities=["a"], metrics=METRICS, seq=1
    ),
    CoordinatorMetricsEvent(
        total_workflows=3,
        active_workflows=1,
        queue_size=2,
        registered_agents=8,
        healthy_agents=7,
        tasks_per_second=1.5,
        dead_letters=0,
        connections=4,
        room=COORDINATOR_ROOM,
        seq=10,
        timestamp=TS,
    ),
    ArtifactEvent(
        workflow_id="w1",
        stage="video",
        name="final_video.mp4",
        kind=ArtifactKind.video,
        url="/vimax/api/workflows/w1/artifacts/final_video.mp4",
    ),
    ErrorEvent(
        target_type=TargetType.workflow,
        target_id="w1",
        code="task_failed",
        message="frame painter failed",
        retryable=True,
        details={"attempt": 3},
        room="workflow:w1",
        seq=5,
        timestamp=TS,
    ),
]
REPLIES: list[BaseModel] = [
    Welcome(client_id="c1", epoch="e1", heartbeat_interval=15.0),
    Subscribed(room="workflow:w1", recovered=False, top=4, snapshot=WORKFLOW.model_dump(), id="s"),
    Subscribed(room="agent:painter", recovered=True, top=0, snapshot=AGENT.model_dump(mode="json")),
    Unsubscribed(room="coordinator", id="u"),
    Pong(ts=12),
    Pong(ts="abc"),
    ControlResponse(
        id="c1",
        action=ControlAction.cancel,
        ok=False,
        state=WorkflowState.completed,
        message="already completed",
        workflow_id="w1",
    ),
    ControlResponse(id=None, action=ControlAction.pause, ok=True, state=None, workflow_id="w2"),
]
SERVER_MESSAGES = EVENTS + REPLIES


def test_samples_cover_every_server_message() -> None:
    union = get_args(get_args(p.ServerMessage)[0])
    assert {type(m) for m in SERVER_MESSAGES} == set(union)
    assert {type(m) for m in EVENTS} == set(get_args(get_args(p.Event)[0]))


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=lambda m: type(m).__name__)
def test_server_message_round_trip(message: BaseModel) -> None:
    text = message.model_dump_json()
    for frame in (text, text.encode()):
        parsed = parse_server_message(frame)
        assert type(parsed) is type(message)
        assert parsed == message


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=lambda m: type(m).__name__)
def test_server_message_extra_field_ignored(message: BaseModel) -> None:
    """A newer server may add fields: an older client reads the frame all the same."""
    data = {**message.model_dump(mode="json"), "surprise": 1}
    assert parse_server_message(json.dumps(data)) == message


def test_welcome_defaults_to_protocol_version() -> None:
    welcome = parse_server_message(
        '{"type":"welcome","client_id":"c","epoch":"e","heartbeat_interval":5}'
    )
    assert isinstance(welcome, Welcome)
    assert welcome.protocol == 1


def test_server_unknown_type_and_bad_values() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_server_message('{"type": "gossip"}')
    assert info.value.code is ErrorCode.unknown_type
    assert "progress" in info.value.message
    bad = '{"type":"progress","workflow_id":"w","state":"running","progress":1.5,"seq":0}'
    with pytest.raises(ProtocolError) as info:
        parse_server_message(bad)
    assert "'progress' must be a number >= 0.0 and <= 1.0" in info.value.message
    assert "'seq'" in info.value.message


def test_nested_field_errors_name_the_path() -> None:
    data = AgentStatusEvent(agent_name="a", status=AgentState.idle).model_dump(mode="json")
    data["metrics"]["tasks_completed"] = "many"
    with pytest.raises(ProtocolError) as info:
        parse_server_message(json.dumps(data))
    assert "'metrics.tasks_completed'" in info.value.message


@pytest.mark.parametrize("model", [WorkflowRecord, AgentRecord, AgentMetrics])
def test_records_ignore_extra_fields(model: type[BaseModel]) -> None:
    sample = {WorkflowRecord: WORKFLOW, AgentRecord: AGENT, AgentMetrics: METRICS}[model]
    assert model.model_validate(sample.model_dump(mode="json")) == sample
    assert model.model_validate({**sample.model_dump(), "extra": True}) == sample


def test_workflow_record_progress_bounds() -> None:
    with pytest.raises(ValidationError):
        WorkflowRecord.model_validate({**WORKFLOW.model_dump(), "progress": -0.1})


@pytest.mark.parametrize("event", EVENTS, ids=lambda m: type(m).__name__)
def test_event_payload_excludes_envelope(event: BaseModel) -> None:
    payload = json.loads(event_payload(event))
    assert set(payload) == set(type(event).model_fields) - ENVELOPE
    envelope = event.model_dump(mode="json", include=ENVELOPE)
    assert type(event).model_validate({**payload, **envelope}) == event


def test_event_payload_is_json_ready() -> None:
    payload = json.loads(event_payload(EVENTS[0]))
    assert payload["state"] == "paused"
    assert type(payload["state"]) is str
    assert payload["details"] == {  # what is not set is left out
        "event": "task_completed",
        "task": "shot/2",
        "agent": "frame_painter",
        "stages": [
            {"name": "story", "done": 1, "total": 1},
            {"name": "frames", "done": 0, "total": 0},
        ],
    }


def test_progress_details_are_typed() -> None:
    raw = (
        '{"type":"progress","workflow_id":"w","state":"running","progress":0.5,'
        '"details":{"event":"task_retrying","attempt":2,"retry_in":0.5,"error":"boom",'
        '"stages":[{"name":"frames","done":1,"total":4}],"hint":"from a newer server"}}'
    )
    event = parse_server_message(raw)
    assert isinstance(event, ProgressEvent)
    assert event.details.event == "task_retrying"
    assert (event.details.attempt, event.details.retry_in) == (2, 0.5)
    assert event.details.stages == [StageProgress(name="frames", done=1, total=4)]
