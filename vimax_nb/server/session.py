"""One client's conversation: protocol messages in, answers and room events out."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from ..coordinator import Coordinator, InvalidTransition, WorkflowNotFound
from ..protocol import (
    CLOSE_RATE_LIMIT,
    PROTOCOL_VERSION,
    Control,
    ControlResponse,
    ErrorCode,
    ErrorEvent,
    GetMetrics,
    Ping,
    Pong,
    ProtocolError,
    RoomKind,
    Subscribe,
    Subscribed,
    TargetType,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    parse_client_message,
    parse_room,
    unstored_data,
)
from .connection import HubConnection
from .hub import Hub

log = logging.getLogger(__name__)


class Session:
    """Answers one connection's messages; see docs/protocol.md."""

    def __init__(self, hub: Hub, coordinator: Coordinator, connection: HubConnection) -> None:
        self.hub = hub
        self.coordinator = coordinator
        self.connection = connection
        self._tasks: set[asyncio.Task[None]] = set()

    def welcome(self) -> None:
        assert self.hub.log is not None
        self.send(
            Welcome(
                client_id=self.connection.id,
                epoch=self.hub.log.epoch,
                protocol=PROTOCOL_VERSION,
                heartbeat_interval=self.hub.limits.heartbeat_interval,
            )
        )

    def send(self, message: BaseModel) -> None:
        """Queue ``message`` for the client; sent outside a room's history, an event
        goes without its envelope (room, seq, timestamp)."""
        self.connection.send(to_json(unstored_data(message)))

    def receive(self, raw: str | bytes) -> None:
        """Handle one message from the client (never raises)."""
        connection = self.connection
        if connection.closed:  # closed by the server; Tornado delivers until the client's close
            return
        connection.messages_in += 1
        connection.bytes_in += len(raw)
        if not connection.allow_message():
            connection.strikes += 1
            if connection.strikes > self.hub.limits.rate_burst:
                self.hub.rate_limit_closes += 1
                self.hub.unregister(connection)
                connection.writer.close_with(CLOSE_RATE_LIMIT, "too many messages")
                return
            self.error(
                ErrorCode.rate_limited,
                f"more than {self.hub.limits.rate_limit:g} messages a second: this one was "
                "dropped; slow down",
                retryable=True,
            )
            return
        connection.strikes = 0
        try:
            message = parse_client_message(raw, max_bytes=self.hub.limits.max_frame_size)
        except ProtocolError as exc:
            self.send(exc.to_frame())
            return
        if isinstance(message, Subscribe):
            self._spawn(self.subscribe(message))
        elif isinstance(message, Unsubscribe):
            self.hub.leave_room(connection, message.room)
            self.send(Unsubscribed(room=message.room, id=message.id))
        elif isinstance(message, Ping):
            self.send(Pong(ts=message.ts))
        elif isinstance(message, Control):
            self._spawn(self.control(message))
        elif isinstance(message, GetMetrics):
            self.send(self.hub.with_connections(self.coordinator.metrics()))

    def receive_subscribe(self, request: Subscribe) -> None:
        """Subscribe as if the client had sent ``request`` (the single-room endpoints)."""
        self._spawn(self.subscribe(request))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("client %s: request failed", self.connection.id, exc_info=task.exception())
            self.error(ErrorCode.internal, f"the server failed: {task.exception()}")

    def error(
        self,
        code: ErrorCode,
        message: str,
        *,
        request_id: str | None = None,
        retryable: bool = False,
        target: TargetType = TargetType.protocol,
        target_id: str | None = None,
    ) -> None:
        self.send(
            ErrorEvent(
                target_type=target,
                target_id=target_id,
                code=code.value,
                message=message,
                retryable=retryable,
                id=request_id,
            )
        )

    async def subscribe(self, request: Subscribe) -> None:
        """Answer ``subscribed`` with the room's snapshot, replay, then go live."""
        try:
            snapshot = await self.snapshot(request.room)
        except LookupError as exc:
            kind, target = parse_room(request.room)
            self.error(
                ErrorCode.not_found,
                str(exc),
                request_id=request.id,
                target=TargetType(kind.value),
                target_id=target,
            )
            return
        self.hub.leave_room(self.connection, request.room)

        def answer(recovered: bool, top: int) -> None:
            self.send(
                Subscribed(
                    room=request.room,
                    recovered=recovered,
                    top=top,
                    snapshot=snapshot,
                    id=request.id,
                )
            )

        await self.hub.subscribe(
            self.connection, request.room, request.after, request.epoch, answer
        )

    async def snapshot(self, room: str) -> dict[str, Any]:
        """The room's current record; raises LookupError for an unknown room."""
        kind, name = parse_room(room)
        if kind == RoomKind.workflow:
            assert name is not None
            return (await self.coordinator.get_workflow(name)).model_dump(mode="json")
        if kind == RoomKind.agent:
            assert name is not None
            return self.coordinator.agents.get(name).record().model_dump(mode="json")
        return unstored_data(self.hub.with_connections(self.coordinator.metrics()))

    async def control(self, request: Control) -> None:
        """Pause, resume or cancel; answered by ``control_response``."""
        try:
            record = await self.coordinator.control(request.workflow_id, request.action)
        except InvalidTransition as exc:
            ok, state, message = False, exc.current, str(exc)
        except WorkflowNotFound as exc:
            ok, state, message = False, None, str(exc)
        else:
            ok, state, message = True, record.state, f"{request.action.value}: {record.state}"
        self.send(
            ControlResponse(
                id=request.id,
                action=request.action,
                ok=ok,
                state=state,
                message=message,
                workflow_id=request.workflow_id,
            )
        )

    def close(self) -> None:
        """Stop the session's pending work."""
        for task in list(self._tasks):
            task.cancel()
