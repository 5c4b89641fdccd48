"""A small vimax server (protocol v1 over a WebSocket, and the REST reads) for client tests.

It keeps an event log per room and answers ``subscribe`` like the real server: a
``subscribed`` answer with the room's record as its snapshot (``recovered`` false when
the events after ``after`` are no longer all kept, the epoch differs or ``after`` is
beyond ``top``), the replay, then live events, all in order on one queue per connection.
Every frame the client sends is parsed with the protocol's client models (so a frame
that is not valid fails the test); the frames it answers with are built with the
protocol's models, except the events, which tests give as fields (so that they can also
store frames a client must skip). A valid event updates the record the REST reads and
the snapshots return, as the real server's would be.

Tests drive it from their own thread: publish events, hold one back (a gap), forget old
ones (retention), change the epoch, drop the connections, stop answering (a dead peer),
stop and restart listening on the same port.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, TypeAdapter, ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from vimax_nb.protocol import (
    ENVELOPE,
    AgentRecord,
    AgentStatusEvent,
    ClientMessage,
    Control,
    ControlAction,
    ControlResponse,
    CoordinatorMetricsEvent,
    Event,
    GetMetrics,
    Ping,
    Pong,
    ProgressEvent,
    ProviderStatus,
    RoomKind,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    WorkflowRecord,
    WorkflowState,
    parse_client_message,
    parse_room,
)

T = TypeVar("T")
TIMEOUT = 10.0
CREATED = "2026-11-26T00:00:00Z"
_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
_AFTER_CONTROL = {
    ControlAction.pause: WorkflowState.paused,
    ControlAction.resume: WorkflowState.running,
    ControlAction.cancel: WorkflowState.canceled,
}


def workflow_record(
    workflow_id: str, state: str = "running", progress: float = 0.0, message: str = ""
) -> WorkflowRecord:
    """A workflow's record as the server keeps it."""
    return WorkflowRecord.model_validate(
        {
            "id": workflow_id,
            "kind": "idea2video",
            "params": {"idea": "A whale"},
            "state": state,
            "progress": progress,
            "message": message,
            "created_at": CREATED,
            "updated_at": CREATED,
        }
    )


def no_metrics(**values: Any) -> CoordinatorMetricsEvent:
    """The coordinator's metrics, all 0 but ``values``."""
    base: dict[str, Any] = dict.fromkeys(
        ("total_workflows", "active_workflows", "queue_size", "registered_agents"), 0
    )
    base.update(healthy_agents=0, tasks_per_second=0.0, dead_letters=0, connections=1)
    return CoordinatorMetricsEvent(**{**base, **values})


def _unstored(model: BaseModel) -> str:
    return model.model_dump_json(exclude=set(ENVELOPE) - {"type"})


@dataclass(eq=False)
class Peer:
    """One client connection: the rooms it follows and its outgoing frames, in order."""

    number: int
    ws: ServerConnection
    outgoing: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    rooms: set[str] = field(default_factory=set)
    frozen: bool = False

    def send(self, frame: BaseModel | dict[str, Any]) -> None:
        if self.frozen:
            return
        text = frame.model_dump_json() if isinstance(frame, BaseModel) else json.dumps(frame)
        self.outgoing.put_nowait(text)


class FakeServer:
    """``url`` is the base URL a :class:`~vimax_nb.client.Client` or
    :class:`~vimax_nb.client.ClientConnection` takes.

    ``workflows``, ``agents`` and ``metrics`` are what REST returns and the rooms'
    snapshots are; ``providers`` what ``GET /vimax/api/providers`` lists (None: the
    endpoint is not there, 404, as on an older server); tests may set them.
    """

    def __init__(self, *, epoch: str = "epoch-1", heartbeat_interval: float = 30.0) -> None:
        self.epoch = epoch
        self.heartbeat_interval = heartbeat_interval
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.floors: dict[str, int] = {}  # events at or below are forgotten
        self.workflows: dict[str, WorkflowRecord] = {}
        self.agents: dict[str, AgentRecord] = {}
        self.metrics = no_metrics()
        self.providers: list[ProviderStatus] | None = None
        self.peers: list[Peer] = []
        self.received: list[tuple[int, ClientMessage]] = []  # (peer number, message)
        self.cond = threading.Condition()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    # -- driving it (the test's thread) -------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(TIMEOUT)

    def start(self) -> FakeServer:
        """Listen (on the same port as before, after :meth:`stop_listening`)."""
        if not self._thread.is_alive():
            self._thread.start()
        self._run(self._listen())
        return self

    def stop_listening(self) -> None:
        """Stop accepting and close every connection (the server is down)."""
        self._run(self._stop_listening())

    def close(self) -> None:
        if self._thread.is_alive():
            self._run(self._stop_listening())
            self._run(self._settle())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(TIMEOUT)

    def publish(self, room: str, *, live: bool = True, **fields: Any) -> int:
        """Append an event to ``room``'s log and send it to its followers (unless ``live``
        is False: then it is only stored, which makes a gap); its seq.

        Without a ``type`` it is a progress event of the room's workflow (running, at 0
        unless ``fields`` say otherwise). The frame is stored as given, valid or not.
        """
        if "type" not in fields:
            _, workflow_id = parse_room(room)
            fields = {"workflow_id": workflow_id, "state": "running", "progress": 0.0, **fields}
            fields["type"] = "progress"

        async def work() -> int:
            log = self.logs.setdefault(room, [])
            event = {**fields, "room": room, "seq": len(log) + 1}
            log.append(event)
            self._remember(event)
            if live:
                for peer in self.peers:
                    if room in peer.rooms:
                        peer.send(event)
            return len(log)

        return self._run(work())

    def forget(self, room: str, upto: int) -> None:
        """Retention: the events of ``room`` with seq <= ``upto`` are no longer kept."""
        self._run(self._call(lambda: self.floors.__setitem__(room, upto)))

    def reset_log(self, epoch: str) -> None:
        """A new event log (another epoch): every room starts again from seq 1."""

        def reset() -> None:
            self.epoch = epoch
            self.logs.clear()
            self.floors.clear()

        self._run(self._call(reset))

    def drop_connections(self) -> None:
        """Close every connection at once (the client should reconnect)."""

        def drop() -> None:
            for peer in self.peers:
                peer.ws.transport.abort()

        self._run(self._call(drop))

    def freeze(self) -> None:
        """Stop reading and writing on every connection: pings go unanswered, nothing is
        sent, yet the TCP connection stays open (a dead peer)."""

        def freeze() -> None:
            for peer in self.peers:
                peer.frozen = True
                peer.ws.transport.pause_reading()

        self._run(self._call(freeze))

    def messages(self, type_: type[T], peer: int | None = None) -> list[T]:
        """Messages of model ``type_`` received (from connection number ``peer``), in order."""
        with self.cond:
            return [
                m for n, m in self.received if isinstance(m, type_) and (peer is None or n == peer)
            ]

    def all_messages(self, peer: int) -> list[ClientMessage]:
        """Every message received from connection number ``peer``, in order."""
        with self.cond:
            return [m for n, m in self.received if n == peer]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
        """Wait until ``predicate()`` (checked whenever a message or connection arrives)."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    # -- the server's loop ---------------------------------------------------------------

    async def _call(self, fn: Callable[[], None]) -> None:
        fn()

    async def _listen(self) -> None:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self.port or 0,
            ping_interval=None,
            process_request=self._rest,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=False)
            for peer in self.peers:
                peer.ws.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _settle(self) -> None:
        """Let the connection handlers still closing finish, so that none is destroyed
        pending when the loop stops; cancel any that outlive the timeout."""
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            _, pending = await asyncio.wait(others, timeout=TIMEOUT)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=TIMEOUT)

    def _rest(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer ``GET /vimax/api/...`` (a plain HTTP request), or None for the WebSocket."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path = unquote(urlsplit(request.path).path)
        body: BaseModel | dict[str, Any] | None = None
        if path == "/vimax/api/agents":
            agents = [self.agents[name].model_dump(mode="json") for name in sorted(self.agents)]
            body = {"agents": agents}
        elif path == "/vimax/api/coordinator":
            return connection.respond(200, _unstored(self.metrics))
        elif path == "/vimax/api/providers" and self.providers is not None:
            body = {"providers": [p.model_dump(mode="json") for p in self.providers]}
        elif path == "/vimax/api/workflows":
            body = {"workflows": [w.model_dump(mode="json") for w in self.workflows.values()]}
        elif path.startswith("/vimax/api/workflows/"):
            body = self.workflows.get(path.removeprefix("/vimax/api/workflows/"))
        if body is None:
            return connection.respond(404, json.dumps({"message": f"no such thing: {path}"}))
        text = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body)
        return connection.respond(200, text)

    def _remember(self, data: dict[str, Any]) -> None:
        """Update the record a valid event is about, as the server's records follow them."""
        try:
            event = _EVENT.validate_python(data)
        except ValidationError:
            return
        if isinstance(event, ProgressEvent):
            known = self.workflows.get(event.workflow_id) or workflow_record(event.workflow_id)
            update: dict[str, Any] = {
                "state": event.state,
                "progress": event.progress,
                "stage": event.stage,
                "message": event.message,
            }
            if event.details.cost is not None:
                update["cost"] = known.cost.model_copy(update={"total": event.details.cost})
            self.workflows[event.workflow_id] = known.model_copy(update=update)
        elif isinstance(event, AgentStatusEvent):
            known_agent = self.agents.get(event.agent_name) or AgentRecord(
                name=event.agent_name, status=event.status
            )
            changes: dict[str, Any] = {
                "status": event.status,
                "capabilities": event.capabilities,
                "metrics": event.metrics,
            }
            if event.providers is not None:
                changes["providers"] = event.providers
            self.agents[event.agent_name] = known_agent.model_copy(update=changes)
        elif isinstance(event, CoordinatorMetricsEvent):
            self.metrics = event

    def _snapshot(self, room: str) -> dict[str, Any] | None:
        kind, name = parse_room(room)
        record: BaseModel | None
        if kind == RoomKind.workflow:
            record = self.workflows.get(name or "")
        elif kind == RoomKind.agent:
            record = self.agents.get(name or "")
        else:
            record = self.metrics
        return json.loads(_unstored(record)) if record is not None else None

    async def _handle(self, ws: ServerConnection) -> None:
        with self.cond:
            peer = Peer(len(self.peers) + 1, ws)
            self.peers.append(peer)
            self.cond.notify_all()
        peer.send(
            Welcome(
                client_id=f"c{peer.number}",
                epoch=self.epoch,
                heartbeat_interval=self.heartbeat_interval,
            )
        )
        writer = asyncio.ensure_future(self._write(peer))
        try:
            async for raw in ws:
                message = parse_client_message(raw)
                with self.cond:
                    self.received.append((peer.number, message))
                    self.cond.notify_all()
                if not peer.frozen:
                    self._answer(peer, message)
        except Exception:  # a dropped connection
            pass
        finally:
            writer.cancel()

    async def _write(self, peer: Peer) -> None:
        while True:
            text = await peer.outgoing.get()
            if text is None or peer.frozen:
                return
            await peer.ws.send(text)

    def _answer(self, peer: Peer, message: ClientMessage) -> None:
        if isinstance(message, Subscribe):
            self._subscribe(peer, message)
        elif isinstance(message, Unsubscribe):
            peer.rooms.discard(message.room)
            peer.send(Unsubscribed(room=message.room, id=message.id))
        elif isinstance(message, Ping):
            peer.send(Pong(ts=message.ts))
        elif isinstance(message, Control):
            peer.send(
                ControlResponse(
                    id=message.id,
                    action=message.action,
                    ok=True,
                    state=_AFTER_CONTROL[message.action],
                    message="ok",
                    workflow_id=message.workflow_id,
                )
            )
        elif isinstance(message, GetMetrics):
            peer.outgoing.put_nowait(_unstored(self.metrics))

    def _subscribe(self, peer: Peer, message: Subscribe) -> None:
        room = message.room
        log = self.logs.get(room, [])
        after = message.after or 0
        top, floor = len(log), self.floors.get(room, 0)
        epoch_ok = message.epoch is None or message.epoch == self.epoch
        recovered = epoch_ok and floor <= after <= top
        peer.send(
            Subscribed(
                room=room,
                recovered=recovered,
                top=top,
                snapshot=self._snapshot(room),
                id=message.id,
            )
        )
        if recovered:
            start = after
        elif epoch_ok and after == 0:
            start = floor
        else:
            start = top
        for event in log[start:]:
            peer.send(event)
        peer.rooms.add(room)
