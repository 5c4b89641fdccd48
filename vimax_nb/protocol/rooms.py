"""Protocol constants, the state enums and room names."""

from __future__ import annotations

import json
from enum import StrEnum

PROTOCOL_VERSION = 1

CLOSE_INVALID_UTF8 = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SLOW_CONSUMER = 4008
CLOSE_RATE_LIMIT = 4029

MAX_CLIENT_MESSAGE_BYTES = 64 * 1024

#: The priorities a workflow may have (higher runs first; 0 unless asked).
MIN_PRIORITY = -10
MAX_PRIORITY = 10


def priority_problem(priority: object) -> str | None:
    """None when ``priority`` is a valid workflow priority: an int (not a bool) from
    :data:`MIN_PRIORITY` to :data:`MAX_PRIORITY`; else what is wrong, for a person."""
    if (
        isinstance(priority, int)
        and not isinstance(priority, bool)
        and MIN_PRIORITY <= priority <= MAX_PRIORITY
    ):
        return None
    shown = json.dumps(priority, default=repr)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return (
        f"'priority' must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, higher "
        f"runs first, 0 by default (got {shown})"
    )


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
