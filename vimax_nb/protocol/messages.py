"""The pydantic models of every frame, both ways, and the records rooms snapshot."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_serializer, field_validator

from .rooms import (
    PROTOCOL_VERSION,
    AgentState,
    ArtifactKind,
    ControlAction,
    TargetType,
    WorkflowState,
    parse_room,
)

ENVELOPE: tuple[str, ...] = ("type", "room", "seq", "timestamp")
"""The fields the event log sets on a stored event, in the order they lead its frame."""


class _Strict(BaseModel):
    """What a client sends: a field the protocol does not name is an error."""

    model_config = ConfigDict(extra="forbid")


class _Lenient(BaseModel):
    """What the server sends: fields a newer server adds are ignored by an older client."""

    model_config = ConfigDict(extra="ignore")


class _Message(_Strict):
    """A wire message; subclasses narrow ``type`` to their literal tag, which stays first."""

    type: str


class _ServerMessage(_Lenient):
    """A server frame; subclasses narrow ``type`` to their literal tag, which stays first."""

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


class AgentMetrics(_Lenient):
    """An agent's counters; timestamps are ISO 8601 UTC strings."""

    tasks_completed: int = 0
    tasks_failed: int = 0
    error_rate: float = 0.0
    avg_execution_ms: float = 0.0
    current_task: str | None = None
    last_heartbeat: str | None = None
    activity: str | None = None
    """What the agent's running task waits on (``waiting on veo-3.0-generate-001 (42 s)``)."""


class ModelSpend(_Lenient):
    """What a workflow's calls to one model used, and their estimated cost (US dollars)."""

    provider: str
    role: str
    calls: int = 0
    cached_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    video_seconds: float = 0.0
    cost: float = 0.0


class CostSummary(_Lenient):
    """A workflow's spend: the estimated total in US dollars, the provider calls made and
    those answered from the cache, per model (keyed by model name), and the workflow's
    ``max_cost`` if it has one."""

    total: float = 0.0
    calls: int = 0
    cached_calls: int = 0
    max_cost: float | None = None
    models: dict[str, ModelSpend] = Field(default_factory=dict)


class ProviderStatus(_Lenient):
    """One provider configured for one role (chat, image, video): the model it uses,
    whether it is ready, and if not, ``problem`` saying what to fix. ``default`` marks
    the role's provider for workflows that name none."""

    role: str
    provider: str
    model: str
    ready: bool
    problem: str | None = None
    default: bool = False


class WorkflowRecord(_Lenient):
    """A workflow as REST returns it and as a workflow room's snapshot."""

    id: str
    kind: str
    params: dict[str, Any]
    owner: str | None = None
    #: Higher runs first: a task of a higher-priority workflow starts before any other
    #: waiting task an agent could take (-10 to 10; records stored without one read 0).
    priority: int = 0
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
    cost: CostSummary = Field(default_factory=CostSummary)


class AgentRecord(_Lenient):
    """An agent as REST returns it and as an agent room's snapshot; ``providers`` are
    the default providers of the roles its skills use, each with its readiness."""

    name: str
    description: str = ""
    status: AgentState
    capabilities: list[str] = Field(default_factory=list)
    concurrency: int = 1
    metrics: AgentMetrics = Field(default_factory=AgentMetrics)
    providers: list[ProviderStatus] = Field(default_factory=list)


class _Event(_ServerMessage):
    """Envelope of events: set only on events stored in a room's log (see :data:`ENVELOPE`)."""

    room: str | None = None
    seq: int | None = Field(default=None, ge=1)
    timestamp: str | None = None


class StageProgress(_Lenient):
    """One stage of a workflow: its succeeded tasks out of those known so far."""

    name: str
    done: int = Field(default=0, ge=0)
    total: int = Field(default=0, ge=0)


class ProgressDetails(_Lenient):
    """What a progress event says happened, and every stage's counts.

    ``event`` is ``state`` (the workflow's state changed), ``task_started``,
    ``task_completed``, ``task_retrying`` (with ``attempt``, ``retry_in``, ``error``),
    ``task_restored`` or ``task_activity`` (a running task says what it waits on in
    ``activity``, or spent money: ``cost`` is then the workflow's spend so far); ``task``
    and ``agent`` name the task and its agent. ``stages``
    counts every stage's tasks; an event that does not know them (the one that marks a
    workflow interrupted when the server starts) leaves it out, and the last counts
    stand. Fields that are not set are left out of the frame.
    """

    event: str | None = None
    state: WorkflowState | None = None
    task: str | None = None
    agent: str | None = None
    attempt: int | None = None
    retry_in: float | None = None
    error: str | None = None
    activity: str | None = None
    cost: float | None = None
    stages: list[StageProgress] | None = None


class ProgressEvent(_Event):
    type: Literal["progress"] = "progress"
    workflow_id: str
    state: WorkflowState
    progress: float = Field(ge=0.0, le=1.0)
    stage: str | None = None
    stage_index: int = 0
    total_stages: int = 0
    message: str = ""
    details: ProgressDetails = Field(default_factory=ProgressDetails)

    @field_serializer("details")
    def _details_as_set(self, details: ProgressDetails) -> dict[str, Any]:
        return details.model_dump(mode="json", exclude_none=True)


class AgentStatusEvent(_Event):
    type: Literal["agent_status"] = "agent_status"
    agent_name: str
    status: AgentState
    capabilities: list[str] = Field(default_factory=list)
    metrics: AgentMetrics = Field(default_factory=AgentMetrics)
    providers: list[ProviderStatus] | None = None


class ExecutorInfo(_Lenient):
    """Where tasks run: ``local`` (the server's threads) or ``dask`` (a cluster), its
    workers and threads, the cluster's dashboard (None without one), and ``problem``
    when it cannot take tasks now."""

    kind: str
    workers: int = 0
    threads: int = 0
    address: str | None = None
    dashboard: str | None = None
    problem: str | None = None


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
    executor: ExecutorInfo | None = None


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


class Welcome(_ServerMessage):
    type: Literal["welcome"] = "welcome"
    client_id: str
    epoch: str
    protocol: int = PROTOCOL_VERSION
    heartbeat_interval: float


class Subscribed(_ServerMessage):
    """``recovered=False`` means the client must reset from ``snapshot``."""

    type: Literal["subscribed"] = "subscribed"
    room: str
    recovered: bool
    top: int = Field(ge=0)
    snapshot: dict[str, Any] | None = None
    id: str | None = None


class Unsubscribed(_ServerMessage):
    type: Literal["unsubscribed"] = "unsubscribed"
    room: str
    id: str | None = None


class Pong(_ServerMessage):
    type: Literal["pong"] = "pong"
    ts: float | int | str | None = None


class ControlResponse(_ServerMessage):
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


def _models_by_type(*models: type[BaseModel]) -> dict[str, type[BaseModel]]:
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
