"""What a workflow's record and events are in A2A terms: the task state, the status
message, the artifacts, and the status and artifact updates a stream sends.

One translation serves every path: a stream that follows a workflow (the executor
behind SendStreamingMessage, SubscribeToTask) and the task GetTask and ListTasks read.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote
from uuid import uuid4

from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from ..protocol import ArtifactEvent, ProgressEvent, WorkflowState, parse_server_message
from ..store import StoredEvent

S = WorkflowState

#: The A2A state of each workflow state. A paused workflow is still working (A2A has no
#: paused state, and INPUT_REQUIRED would ask the client for a message that resumes
#: nothing); one interrupted by a restart has failed as far as A2A knows, since A2A has
#: no way back from it (it can still be resumed over REST, and then works again).
TASK_STATES: dict[WorkflowState, TaskState] = {
    S.pending: TaskState.TASK_STATE_SUBMITTED,
    S.running: TaskState.TASK_STATE_WORKING,
    S.paused: TaskState.TASK_STATE_WORKING,
    S.completed: TaskState.TASK_STATE_COMPLETED,
    S.failed: TaskState.TASK_STATE_FAILED,
    S.canceled: TaskState.TASK_STATE_CANCELED,
    S.interrupted: TaskState.TASK_STATE_FAILED,
}

#: The A2A states no update follows.
FINAL_STATES = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_REJECTED,
    }
)

#: The workflow stages whose artifacts are A2A artifacts: the story, the script, the
#: storyboard frames and the final video. The rest (characters, portraits, shot lists,
#: clips, scene videos) are intermediate; REST and the WebSocket still report them.
PUBLISHED_STAGES = frozenset({"story", "script", "frames", "final"})

_KIND_TYPES = {
    "text": "text/plain",
    "json": "application/json",
    "image": "image/png",
    "video": "video/mp4",
}


@dataclass(frozen=True, slots=True)
class Position:
    """Where a workflow is: its state and stage, as a record or a progress event says."""

    workflow_id: str
    state: WorkflowState
    stage: str | None
    stage_index: int
    total_stages: int
    progress: float
    message: str

    @classmethod
    def of(cls, source: ProgressEvent | _HasPosition) -> Position:
        workflow_id = source.workflow_id if isinstance(source, ProgressEvent) else source.id
        return cls(
            workflow_id,
            WorkflowState(source.state),
            source.stage,
            source.stage_index,
            source.total_stages,
            source.progress,
            source.message,
        )

    @property
    def task_state(self) -> TaskState:
        return TASK_STATES[self.state]

    def text(self, changed_state: bool = False) -> str:
        """The status message a person reads: what the workflow is doing, or how it
        ended; with ``changed_state`` (the workflow just started or resumed), what
        happened first ("resumed; working on stage 2 of 6: ...")."""
        if self.state == S.pending:
            return "queued: the workflow starts when an agent is free"
        if self.state == S.running and self.stage:
            doing = (
                f"working on stage {self.stage_index + 1} of {self.total_stages}: "
                f"{self.stage} ({self.progress:.0%} done)"
            )
            return f"{self.message}; {doing}" if changed_state and self.message else doing
        if self.state == S.interrupted:
            return (
                f"{self.message or 'interrupted'}: the server stopped while this workflow ran; "
                f"POST /vimax/api/workflows/{self.workflow_id}/resume carries it on from its "
                "checkpoints"
            )
        if self.state == S.completed:
            return "completed: every stage is done; the artifacts are the results"
        return self.message or self.state.value

    def metadata(self) -> dict[str, str | int | float]:
        """The workflow's own words for where it is (``vimax`` in status metadata)."""
        return {
            "workflowId": self.workflow_id,
            "state": self.state.value,
            "stage": self.stage or "",
            "stageIndex": self.stage_index,
            "totalStages": self.total_stages,
            "progress": round(self.progress, 4),
        }


class _HasPosition(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def state(self) -> WorkflowState: ...
    @property
    def stage(self) -> str | None: ...
    @property
    def stage_index(self) -> int: ...
    @property
    def total_stages(self) -> int: ...
    @property
    def progress(self) -> float: ...
    @property
    def message(self) -> str: ...


def agent_message(
    text: str, task_id: str, context_id: str, message_id: str | None = None
) -> Message:
    """A message of the agent (a status message) saying ``text`` (with a new id unless
    given one)."""
    return Message(
        message_id=message_id or uuid4().hex,
        role=Role.ROLE_AGENT,
        parts=[Part(text=text)],
        task_id=task_id,
        context_id=context_id,
    )


def timestamp_of(text: str | None) -> Timestamp:
    """An ISO 8601 UTC time of the store (``2024-05-01T10:00:00.000Z``) as a protobuf
    Timestamp (the epoch when there is none)."""
    stamp = Timestamp()
    if text:
        stamp.FromJsonString(text)
    return stamp


def status_of(
    position: Position,
    task_id: str,
    context_id: str,
    at: str | None,
    seq: int | None = None,
    more: dict[str, str | int | float] | None = None,
    changed_state: bool = False,
) -> tuple[TaskStatus, Struct]:
    """The A2A status of a workflow at ``position`` (stamped ``at``), and the metadata
    that goes with it (``vimax``: state, stage, progress, and the log ``seq`` the status
    comes from, when it comes from one; and ``more``). The message is
    :meth:`Position.text` (``changed_state`` as it says). The status message's id is made of the
    workflow's id and the seq (or the time): the same status has the same id."""
    message_id = f"{position.workflow_id}-{seq if seq is not None else at}"
    status = TaskStatus(
        state=position.task_state,
        message=agent_message(position.text(changed_state), task_id, context_id, message_id),
        timestamp=timestamp_of(at),
    )
    details = position.metadata()
    if seq is not None:
        details["seq"] = seq
    details.update(more or {})
    metadata = Struct()
    metadata.update({"vimax": details})
    return status, metadata


def media_type(kind: str, path: str) -> str:
    """The media type of an artifact file: by its name, else by the kind of artifact."""
    guessed = mimetypes.guess_type(path)[0]
    return guessed or _KIND_TYPES.get(kind, "application/octet-stream")


def artifact_path(url: str) -> str:
    """The path of an artifact inside its workflow's folder, from its URL
    (``.../workflows/{id}/artifacts/{path}``)."""
    _, _, quoted = url.partition("/artifacts/")
    return unquote(quoted or url)


def artifact_of(event: ArtifactEvent, origin: str) -> Artifact:
    """The A2A artifact of a workflow's artifact event: one URL part, absolute under
    ``origin`` (``http://host:port``), with the file's media type; its id is the file's
    path in the workflow's folder, so the same file is the same artifact."""
    path = artifact_path(event.url)
    return Artifact(
        artifact_id=path,
        name=event.name,
        description=f"{event.kind.value} of the {event.stage} stage",
        parts=[
            Part(
                url=origin + event.url,
                media_type=media_type(event.kind.value, path),
                filename=path.rsplit("/", 1)[-1],
            )
        ],
    )


def published(event: ArtifactEvent) -> bool:
    """Whether an artifact event of a workflow is one of its A2A artifacts."""
    return event.stage in PUBLISHED_STAGES


def artifacts_of(events: Iterable[StoredEvent], origin: str) -> list[Artifact]:
    """The A2A artifacts of a workflow's stored events, in the order they were made (a
    file made again counts once, where it was first made, as it is now)."""
    found: dict[str, Artifact] = {}
    for stored in events:
        if stored.type != "artifact":
            continue
        event = parse_server_message(stored.frame)
        if isinstance(event, ArtifactEvent) and published(event):
            artifact = artifact_of(event, origin)
            found[artifact.artifact_id] = artifact
    return list(found.values())


def shown_position(task: Task) -> tuple[str, str | None]:
    """The workflow state and stage a task shows (from its ``vimax`` metadata)."""
    details = task.metadata.fields.get("vimax")
    if details is None or not details.HasField("struct_value"):
        return "", None
    fields = details.struct_value.fields
    state = fields["state"].string_value if "state" in fields else ""
    stage = fields["stage"].string_value if "stage" in fields else ""
    return state, stage or None


UpdateEvent = TaskStatusUpdateEvent | TaskArtifactUpdateEvent


@dataclass(slots=True)
class UpdateTracker:
    """Turns a workflow's stored events, in seq order, into the A2A updates a stream
    sends: a status update when the state or the running stage changes (WORKING with a
    message per stage; then COMPLETED, FAILED or CANCELED, after which nothing), and
    an artifact update per published artifact.

    ``seen`` is what the client already has (the state and stage of the task it was
    sent, the ids and URLs of its artifacts), so an event the task already showed is
    not sent again. A pause or a resume is sent (WORKING, saying so), though A2A's
    state stays the same.
    """

    task_id: str
    context_id: str
    origin: str
    shown: tuple[str, str | None] | None = None
    artifact_urls: dict[str, str] = field(default_factory=dict)
    done: bool = False

    def saw(
        self,
        state: TaskState,
        workflow_state: str,
        stage: str | None,
        artifacts: Iterable[Artifact] = (),
    ) -> None:
        """Record what the client was shown: the task in ``state``, its workflow in
        ``workflow_state`` at ``stage``, and ``artifacts``."""
        self.shown = (workflow_state, stage if workflow_state == S.running else None)
        for artifact in artifacts:
            self.artifact_urls[artifact.artifact_id] = artifact.parts[0].url
        self.done = state in FINAL_STATES

    def feed(self, stored: StoredEvent) -> list[UpdateEvent]:
        """The updates ``stored`` (the next event of the workflow's room) makes; none
        once the task has ended."""
        if self.done or stored.type not in ("progress", "artifact"):
            return []
        event = parse_server_message(stored.frame)
        if isinstance(event, ArtifactEvent):
            return self._artifact(event)
        if isinstance(event, ProgressEvent):
            return self._progress(event, stored)
        return []

    def _artifact(self, event: ArtifactEvent) -> list[UpdateEvent]:
        if not published(event):
            return []
        artifact = artifact_of(event, self.origin)
        url = artifact.parts[0].url
        if self.artifact_urls.get(artifact.artifact_id) == url:
            return []
        self.artifact_urls[artifact.artifact_id] = url
        update = TaskArtifactUpdateEvent(
            task_id=self.task_id,
            context_id=self.context_id,
            artifact=artifact,
            append=False,
            last_chunk=True,
        )
        return [update]

    def _progress(self, event: ProgressEvent, stored: StoredEvent) -> list[UpdateEvent]:
        position = Position.of(event)
        key = (position.state.value, position.stage if position.state == S.running else None)
        if key == self.shown:
            return []
        self.shown = key
        self.done = position.task_state in FINAL_STATES
        status, metadata = status_of(
            position,
            self.task_id,
            self.context_id,
            stored.timestamp,
            stored.seq,
            changed_state=event.details.event == "state",
        )
        update = TaskStatusUpdateEvent(
            task_id=self.task_id, context_id=self.context_id, status=status, metadata=metadata
        )
        return [update]
