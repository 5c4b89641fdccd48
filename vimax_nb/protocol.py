"""Wire protocol v1: every JSON frame exchanged over the vimax WebSocket, plus room names.

The models here are the single definition of the protocol shared by the server and the
client. Messages that belong to a room's history (events) carry ``room``, ``seq`` and
``timestamp`` once they are stored in the event log; every other frame is told apart
by its ``type`` alone.
"""

from __future__ import annotations

import json
import types
from enum import Enum, StrEnum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

__all__ = [
    "CLOSE_POLICY",
    "CLOSE_RATE_LIMIT",
    "CLOSE_SLOW_CONSUMER",
    "CLOSE_TOO_BIG",
    "COORDINATOR_ROOM",
    "EVENT_TYPES",
    "MAX_CLIENT_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "TERMINAL_STATES",
    "AgentMetrics",
    "AgentRecord",
    "AgentState",
    "AgentStatusEvent",
    "ArtifactEvent",
    "ArtifactKind",
    "ClientMessage",
    "Control",
    "ControlAction",
    "ControlResponse",
    "CoordinatorMetricsEvent",
    "ErrorCode",
    "ErrorEvent",
    "Event",
    "GetMetrics",
    "Ping",
    "Pong",
    "ProgressEvent",
    "ProtocolError",
    "RoomKind",
    "ServerMessage",
    "Subscribe",
    "Subscribed",
    "TargetType",
    "Unsubscribe",
    "Unsubscribed",
    "Welcome",
    "WorkflowRecord",
    "WorkflowState",
    "agent_room",
    "event_payload",
    "parse_client_message",
    "parse_room",
    "parse_server_message",
    "workflow_room",
]

PROTOCOL_VERSION = 1

CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SLOW_CONSUMER = 4008
CLOSE_RATE_LIMIT = 4029

MAX_CLIENT_MESSAGE_BYTES = 64 * 1024


class WorkflowState(StrEnum):
    pending = "pending"
    running = "running"
    paused = "paused"
    completed = "completed"
    failed = "failed"
    canceled = "canceled"
    interrupted = "interrupted"


TERMINAL_STATES: frozenset[WorkflowState] = frozenset(
    {WorkflowState.completed, WorkflowState.failed, WorkflowState.canceled}
)


class AgentState(StrEnum):
    idle = "idle"
    busy = "busy"
    error = "error"
    offline = "offline"


class ControlAction(StrEnum):
    pause = "pause"
    resume = "resume"
    cancel = "cancel"


class ArtifactKind(StrEnum):
    text = "text"
    json = "json"
    image = "image"
    video = "video"


class TargetType(StrEnum):
    workflow = "workflow"
    agent = "agent"
    coordinator = "coordinator"
    protocol = "protocol"


class ErrorCode(StrEnum):
    bad_json = "bad_json"
    unknown_type = "unknown_type"
    invalid_message = "invalid_message"
    too_large = "too_large"
    rate_limited = "rate_limited"
    not_found = "not_found"
    not_allowed = "not_allowed"
    task_failed = "task_failed"
    internal = "internal"


class RoomKind(StrEnum):
    workflow = "workflow"
    agent = "agent"
    coordinator = "coordinator"


COORDINATOR_ROOM = "coordinator"
_ROOM_FORMS = "'coordinator', 'workflow:<id>' or 'agent:<name>'"


def workflow_room(workflow_id: str) -> str:
    """Return ``"workflow:<workflow_id>"``; raises ValueError if the id is empty."""
    if not workflow_id:
        raise ValueError("workflow id must not be empty")
    return f"workflow:{workflow_id}"


def agent_room(name: str) -> str:
    """Return ``"agent:<name>"``; raises ValueError if the name is empty."""
    if not name:
        raise ValueError("agent name must not be empty")
    return f"agent:{name}"


def parse_room(room: str) -> tuple[RoomKind, str | None]:
    """Split a room name into its kind and id (None for the coordinator room).

    Everything after the first colon is the id, so ids may contain colons. Raises
    ValueError naming the room and the accepted forms for anything else.
    """
    if room == COORDINATOR_ROOM:
        return RoomKind.coordinator, None
    prefix, sep, ident = room.partition(":")
    if sep and prefix in (RoomKind.workflow, RoomKind.agent):
        if not ident:
            what = "workflow id" if prefix == RoomKind.workflow else "agent name"
            raise ValueError(f"invalid room {room!r}: the {what} after {prefix + ':'!r} is empty")
        return RoomKind(prefix), ident
    raise ValueError(f"invalid room {room!r}: expected {_ROOM_FORMS}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Message(_Strict):
    """A wire message; subclasses narrow ``type`` to their literal tag, which stays first."""

    type: str


class _RoomMessage(_Message):
    room: str

    @field_validator("room")
    @classmethod
    def _check_room(cls, room: str) -> str:
        parse_room(room)
        return room


class Subscribe(_RoomMessage):
    """Ask for a room's events with seq > ``after`` (all kept events when None or 0)."""

    type: Literal["subscribe"] = "subscribe"
    after: int | None = Field(default=None, ge=0)
    epoch: str | None = None
    id: str | None = None


class Unsubscribe(_RoomMessage):
    type: Literal["unsubscribe"] = "unsubscribe"
    id: str | None = None


class Ping(_Message):
    type: Literal["ping"] = "ping"
    ts: float | int | str | None = None


class Control(_Message):
    type: Literal["control"] = "control"
    workflow_id: str = Field(min_length=1)
    action: ControlAction
    id: str | None = None


class GetMetrics(_Message):
    type: Literal["get_metrics"] = "get_metrics"
    id: str | None = None


ClientMessage = Annotated[
    Subscribe | Unsubscribe | Ping | Control | GetMetrics, Field(discriminator="type")
]


class AgentMetrics(_Strict):
    """An agent's counters; timestamps are ISO 8601 UTC strings."""

    tasks_completed: int = 0
    tasks_failed: int = 0
    error_rate: float = 0.0
    avg_execution_ms: float = 0.0
    current_task: str | None = None
    last_heartbeat: str | None = None


class WorkflowRecord(_Strict):
    """A workflow as REST returns it and as a workflow room's snapshot."""

    id: str
    kind: str
    params: dict[str, Any]
    owner: str | None = None
    state: WorkflowState
    progress: float = Field(ge=0.0, le=1.0)
    stage: str | None = None
    stage_index: int = 0
    total_stages: int = 0
    message: str = ""
    created_at: str
    updated_at: str
    started_at: str | None = None
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class AgentRecord(_Strict):
    """An agent as REST returns it and as an agent room's snapshot."""

    name: str
    description: str = ""
    status: AgentState
    capabilities: list[str] = Field(default_factory=list)
    concurrency: int = 1
    metrics: AgentMetrics = Field(default_factory=AgentMetrics)


class _Event(_Message):
    """Envelope of events: set only on events stored in a room's log."""

    room: str | None = None
    seq: int | None = Field(default=None, ge=1)
    timestamp: str | None = None


class ProgressEvent(_Event):
    type: Literal["progress"] = "progress"
    workflow_id: str
    state: WorkflowState
    progress: float = Field(ge=0.0, le=1.0)
    stage: str | None = None
    stage_index: int = 0
    total_stages: int = 0
    message: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class AgentStatusEvent(_Event):
    type: Literal["agent_status"] = "agent_status"
    agent_name: str
    status: AgentState
    capabilities: list[str] = Field(default_factory=list)
    metrics: AgentMetrics = Field(default_factory=AgentMetrics)


class CoordinatorMetricsEvent(_Event):
    type: Literal["coordinator_metrics"] = "coordinator_metrics"
    total_workflows: int
    active_workflows: int
    queue_size: int
    registered_agents: int
    healthy_agents: int
    tasks_per_second: float
    dead_letters: int
    connections: int = 0


class ArtifactEvent(_Event):
    type: Literal["artifact"] = "artifact"
    workflow_id: str
    stage: str
    name: str
    kind: ArtifactKind
    url: str


class ErrorEvent(_Event):
    """An error; ``code`` is an ErrorCode value or another code, ``id`` the request's id."""

    type: Literal["error"] = "error"
    target_type: TargetType
    target_id: str | None = None
    code: str
    message: str
    retryable: bool = False
    details: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    client_id: str
    epoch: str
    protocol: int = PROTOCOL_VERSION
    heartbeat_interval: float


class Subscribed(_Message):
    """``recovered=False`` means the client must reset from ``snapshot``."""

    type: Literal["subscribed"] = "subscribed"
    room: str
    recovered: bool
    top: int = Field(ge=0)
    snapshot: dict[str, Any] | None = None
    id: str | None = None


class Unsubscribed(_Message):
    type: Literal["unsubscribed"] = "unsubscribed"
    room: str
    id: str | None = None


class Pong(_Message):
    type: Literal["pong"] = "pong"
    ts: float | int | str | None = None


class ControlResponse(_Message):
    """``state`` is the workflow's state after the action (None if it is unknown)."""

    type: Literal["control_response"] = "control_response"
    id: str | None = None
    action: ControlAction
    ok: bool
    state: WorkflowState | None
    message: str = ""
    workflow_id: str


Event = Annotated[
    ProgressEvent | AgentStatusEvent | CoordinatorMetricsEvent | ArtifactEvent | ErrorEvent,
    Field(discriminator="type"),
]

ServerMessage = Annotated[
    Welcome
    | Subscribed
    | Unsubscribed
    | Pong
    | ControlResponse
    | ProgressEvent
    | AgentStatusEvent
    | CoordinatorMetricsEvent
    | ArtifactEvent
    | ErrorEvent,
    Field(discriminator="type"),
]


def _models_by_type(*models: type[_Message]) -> dict[str, type[_Message]]:
    return {m.model_fields["type"].default: m for m in models}


_CLIENT_MODELS = _models_by_type(Subscribe, Unsubscribe, Ping, Control, GetMetrics)
_EVENT_MODELS = _models_by_type(
    ProgressEvent, AgentStatusEvent, CoordinatorMetricsEvent, ArtifactEvent, ErrorEvent
)
_SERVER_MODELS = {
    **_models_by_type(Welcome, Subscribed, Unsubscribed, Pong, ControlResponse),
    **_EVENT_MODELS,
}
EVENT_TYPES: frozenset[str] = frozenset(_EVENT_MODELS)

_CLIENT_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
_SERVER_ADAPTER: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)
_ENVELOPE = {"type", "room", "seq", "timestamp"}


def event_payload(event: BaseModel) -> dict[str, Any]:
    """Return the event as JSON-ready data without ``type``, ``room``, ``seq``, ``timestamp``."""
    return event.model_dump(mode="json", exclude=_ENVELOPE)


class ProtocolError(Exception):
    """A frame that cannot be accepted; ``message`` tells a person what to fix.

    ``request_id`` is the offending message's ``id`` when it could be read. ``details``
    holds machine-readable context (limits, known types, per-field problems).
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_frame(self) -> ErrorEvent:
        """The ``error`` frame answering this error (target_type protocol, not retryable)."""
        return ErrorEvent(
            target_type=TargetType.protocol,
            code=self.code.value,
            message=self.message,
            retryable=False,
            details=self.details,
            id=self.request_id,
        )


def _describe_type(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return "one of " + ", ".join(repr(m.value) for m in tp)
        if issubclass(tp, BaseModel) or tp is dict:
            return "an object"
        simple = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
        if tp in simple:
            return simple[tp]
    origin = get_origin(tp)
    if origin is dict:
        return "an object"
    if origin is list:
        return f"a list of {_describe_type(get_args(tp)[0]).partition(' ')[2]}s"
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    return "a valid value"


def _expectation(model: type[BaseModel], name: str) -> str | None:
    info = model.model_fields.get(name)
    if info is None:
        return None
    tp = info.annotation
    args = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    words = [_describe_type(a) for a in args if a is not type(None)]
    if "a number" in words and "an integer" in words:
        words.remove("an integer")
    text = " or ".join(dict.fromkeys(words))
    limits = []
    for meta in info.metadata:
        if isinstance(meta, at.MinLen) and meta.min_length == 1 and text == "a string":
            text = "a non-empty string"
        elif isinstance(meta, at.MinLen):
            limits.append(f"of length >= {meta.min_length}")
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(getattr(meta, attr, None), int | float):
                limits.append(f"{op} {getattr(meta, attr)}")
    if limits:
        text += " " + " and ".join(limits)
    return text + " or null" if type(None) in args else text


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _field_problems(
    model: type[BaseModel], data: dict[str, Any], error: ValidationError
) -> list[dict[str, str]]:
    by_field: dict[str, list[Any]] = {}
    for err in error.errors():
        loc = err["loc"]
        info = model.model_fields.get(str(loc[0])) if loc else None
        sub = info.annotation if info is not None else None
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            path = ".".join(str(p) for p in loc)
        else:
            path = str(loc[0]) if loc else ""
        by_field.setdefault(path, []).append(err)
    problems = []
    for field, errs in by_field.items():
        kinds = {e["type"] for e in errs}
        first = errs[0]
        got = _short(data[field] if field in data else first["input"])
        if "missing" in kinds:
            text = f"field {field!r} is required"
        elif "extra_forbidden" in kinds:
            allowed = ", ".join(n for n in model.model_fields if n != "type")
            text = f"field {field!r} is not allowed (fields: {allowed})"
        elif "value_error" in kinds:
            text = f"field {field!r}: {first['ctx']['error']}"
        else:
            expected = _expectation(model, field)
            if expected is None:
                msg = str(first["msg"])
                expected = msg[:1].lower() + msg[1:]
                text = f"field {field!r}: {expected} (got {got})"
            else:
                text = f"field {field!r} must be {expected} (got {got})"
        problems.append({"field": field, "problem": text})
    return problems


def _parse(
    raw: str | bytes,
    adapter: TypeAdapter[Any],
    models: dict[str, type[_Message]],
    max_bytes: int | None,
) -> Any:
    if max_bytes is not None and len(raw) * (4 if isinstance(raw, str) else 1) > max_bytes:
        size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
        if size > max_bytes:
            raise ProtocolError(
                ErrorCode.too_large,
                f"message is {size} bytes; the limit is {max_bytes} bytes",
                details={"size": size, "limit": max_bytes},
            )
    try:
        return adapter.validate_json(raw)
    except ValidationError:
        pass
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            ErrorCode.bad_json,
            f"message is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            f" (char {exc.pos})",
            details={"line": exc.lineno, "column": exc.colno, "position": exc.pos},
        ) from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            ErrorCode.bad_json, f"message is not valid UTF-8 JSON: {exc.reason} at byte {exc.start}"
        ) from None
    known = sorted(models)
    if not isinstance(data, dict):
        kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        kind = kinds.get(type(data), "a number")
        raise ProtocolError(
            ErrorCode.invalid_message,
            f"message must be a JSON object with a 'type' field, not {kind}",
        )
    request_id = data.get("id") if isinstance(data.get("id"), str) else None
    kind_name = data.get("type")
    model = models.get(kind_name) if isinstance(kind_name, str) else None
    if model is None:
        problem = (
            "message has no 'type' field"
            if "type" not in data
            else f"unknown message type {_short(kind_name)}"
        )
        raise ProtocolError(
            ErrorCode.unknown_type,
            f"{problem}; known types: {', '.join(known)}",
            request_id=request_id,
            details={"known_types": known},
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = _field_problems(model, data, exc)
    raise ProtocolError(
        ErrorCode.invalid_message,
        f"{kind_name}: " + "; ".join(p["problem"] for p in problems),
        request_id=request_id,
        details={"errors": problems},
    )


def parse_client_message(
    raw: str | bytes, *, max_bytes: int = MAX_CLIENT_MESSAGE_BYTES
) -> ClientMessage:
    """Parse one client frame into its model.

    Raises ProtocolError (code too_large, bad_json, invalid_message, unknown_type) whose
    message names the problem: the size and the limit, the JSON error position, the known
    types, or each bad field and what it must be.
    """
    result: ClientMessage = _parse(raw, _CLIENT_ADAPTER, _CLIENT_MODELS, max_bytes)
    return result


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """Parse one server frame into its model; raises ProtocolError as parse_client_message.

    There is no size limit. A frame with a ``type`` this client does not know raises
    ProtocolError with code unknown_type, which a client may choose to ignore.
    """
    result: ServerMessage = _parse(raw, _SERVER_ADAPTER, _SERVER_MODELS, None)
    return result
