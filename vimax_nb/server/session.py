"""One client's conversation: protocol messages in, answers and room events out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from ..coordinator import Coordinator, InvalidTransition, WorkflowNotFound
from ..protocol import (
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
    WorkflowRecord,
    parse_client_message,
    parse_room,
    unstored_data,
)
from .access import refusal, visible
from .connection import HubConnection, RoomTurn
from .hub import Hub

log = logging.getLogger(__name__)

#: Asks whether the connection's user may do an action (``write``) on ``vimax`` now.
Authorize = Callable[[str], Awaitable[bool]]


async def refuse_all(action: str) -> bool:
    """The :data:`Authorize` of a session given none: nothing beyond reading."""
    return False


class Session:
    """Answers one connection's messages; see docs/protocol.md."""

    __slots__ = ("_tasks", "authorize", "connection", "coordinator", "hub", "owner_scope")

    def __init__(
        self,
        hub: Hub,
        coordinator: Coordinator,
        connection: HubConnection,
        *,
        authorize: Authorize = refuse_all,
        owner_scope: str | None = None,
    ) -> None:
        """``authorize`` is asked before each control (``write``); the connection was
        allowed to read when it opened. ``owner_scope`` (None: every workflow) is the
        owner whose workflows the client sees and controls; others are not found."""
        self.hub = hub
        self.coordinator = coordinator
        self.connection = connection
        self.authorize = authorize
        self.owner_scope = owner_scope
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
        """Handle one message from the client (never raises).

        A message over the rate limit is dropped: the first drop, then at most one a
        second, is answered by a ``rate_limited`` error counting the drops; a client
        that keeps it up is closed with 4029 once the answers already queued are sent.
        """
        connection = self.connection
        if connection.closed:  # closed by the server; Tornado delivers until the client's close
            return
        connection.messages_in += 1
        connection.bytes_in += len(raw)
        verdict = connection.limiter.check()
        if not verdict.allowed:
            if verdict.abuse:
                self.hub.rate_limit_abuse(connection)
            elif verdict.report:
                self.send(self._rate_limited(verdict.report))
            return
        try:
            message = parse_client_message(raw, max_bytes=self.hub.limits.max_frame_size)
        except ProtocolError as exc:
            self.send(exc.to_frame())
            return
        if isinstance(message, Subscribe):
            self.receive_subscribe(message)
        elif isinstance(message, Unsubscribe):
            turn = connection.next_turn(message.room)
            if turn.ready:
                self._leave(message, turn)
            else:
                self._spawn(self.unsubscribe(message, turn))
        elif isinstance(message, Ping):
            self.send(Pong(ts=message.ts))
        elif isinstance(message, Control):
            self._spawn(self.control(message))
        elif isinstance(message, GetMetrics):
            self.send(self.hub.with_connections(self.coordinator.metrics()))

    def _rate_limited(self, dropped: int) -> ErrorEvent:
        limits = self.hub.limits
        return ErrorEvent(
            target_type=TargetType.protocol,
            code=ErrorCode.rate_limited.value,
            message=(
                f"over the rate limit of {limits.rate_limit:g} messages a second (bursts of "
                f"{limits.rate_burst}): {dropped} dropped since the last such error, "
                "unanswered; slow down, or the connection is closed (4029)"
            ),
            retryable=True,
            details={
                "dropped": dropped,
                "rate_limit": limits.rate_limit,
                "rate_burst": limits.rate_burst,
            },
        )

    def receive_subscribe(self, request: Subscribe) -> None:
        """Subscribe as if the client had sent ``request`` now (the single-room endpoints
        call this on open)."""
        self._spawn(self.subscribe(request, self.connection.next_turn(request.room)))

    async def unsubscribe(self, request: Unsubscribe, turn: RoomTurn) -> None:
        """Leave the room once the client's earlier requests of it are answered; answer
        ``unsubscribed``."""
        try:
            await turn.wait()
            self._leave(request, turn)
        finally:
            turn.end()

    def _leave(self, request: Unsubscribe, turn: RoomTurn) -> None:
        """Leave the room now (its replay, if one runs, queues nothing more): no event of
        it follows ``unsubscribed``."""
        self.hub.leave_room(self.connection, request.room)
        self.send(Unsubscribed(room=request.room, id=request.id))
        turn.end()

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        """Forget a finished request; one that failed unexpectedly is logged with its
        traceback and answered with code ``internal`` and a generic message (the
        exception's text stays in the server log: it may hold paths or client input)."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("client %s: request failed", self.connection.id, exc_info=task.exception())
            self.error(
                ErrorCode.internal,
                "the server failed handling this request; the server log has the details",
            )

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

    async def subscribe(self, request: Subscribe, turn: RoomTurn | None = None) -> None:
        """Answer ``subscribed`` with the room's snapshot, replay, then go live.

        ``turn`` (taken when the request arrived; default: now) makes it wait for the
        client's earlier requests of the room to be answered. A room the connection is
        subscribed to already keeps its one stream (see :meth:`Hub.subscribe`).
        """
        turn = turn or self.connection.next_turn(request.room)
        try:
            await turn.wait()
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
                turn.end()

            await self.hub.subscribe(
                self.connection, request.room, request.after, request.epoch, answer
            )
        finally:
            turn.end()

    async def snapshot(self, room: str) -> dict[str, Any]:
        """The room's current record; raises LookupError for an unknown room, and for the
        room of a workflow outside the session's owner scope, with the same message."""
        kind, name = parse_room(room)
        if kind == RoomKind.workflow:
            assert name is not None
            return (await self._visible_workflow(name)).model_dump(mode="json")
        if kind == RoomKind.agent:
            assert name is not None
            return self.coordinator.agents.get(name).record().model_dump(mode="json")
        return unstored_data(self.hub.with_connections(self.coordinator.metrics()))

    async def _visible_workflow(self, workflow_id: str) -> WorkflowRecord:
        """The workflow's record; WorkflowNotFound if there is none or it is another
        owner's (the client cannot tell these apart)."""
        record = await self.coordinator.get_workflow(workflow_id)
        if not visible(record, self.owner_scope):
            raise WorkflowNotFound(f"no workflow with id {workflow_id!r}")
        return record

    async def control(self, request: Control) -> None:
        """Pause, resume or cancel; answered by ``control_response``. A user the
        authorizer refuses ``write`` gets an ``error`` (code ``not_allowed``, the
        request's id) and the workflow is left as it was."""
        if not await self.authorize("write"):
            self.error(
                ErrorCode.not_allowed,
                refusal(self.connection.user or None, "write"),
                request_id=request.id,
                target=TargetType.workflow,
                target_id=request.workflow_id,
            )
            return
        try:
            if self.owner_scope is not None:
                await self._visible_workflow(request.workflow_id)
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
