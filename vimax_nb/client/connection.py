"""One multiplexed WebSocket per server, shared by every widget and run (the connection pool).

A :class:`ClientConnection` talks wire protocol v1 (``docs/protocol.md``) to
``<base>/vimax/ws``. It owns a :class:`~vimax_nb.client.reconnecting.ReconnectingSocket`
(reconnection, heartbeats, the offline queue, its daemon thread with its own asyncio
loop, so it never blocks the kernel's loop) and is told by it, through two callables, of
each new connection's ``welcome`` and of every frame. It parses each frame once into its
:mod:`vimax_nb.protocol` model and hands the models to rooms and requests. Its public
methods may be called from any thread; every callback runs on the connection's thread
and must not block it. The rooms live on that thread alone (``subscribe`` and
``unsubscribe`` hand their changes to it), so an event goes from the socket to its
callbacks without a lock or a copy.

Guarantees:

* any number of subscriptions may follow the same room; they share one server
  subscription (:mod:`vimax_nb.client.rooms`) and each gets every event after its own
  ``after`` exactly once, in seq order: duplicates are dropped per subscription, a gap
  makes the room subscribe again from the lowest ``last_seq`` needed, and after any
  reconnect the room resubscribes from there with its epoch; a subscription whose
  position the server cannot replay (``recovered: false``) gets ``on_reset(snapshot)``,
  the room's record, then the live events that follow;
* the server is told to unsubscribe only when the last subscription to a room leaves;
* server frames are read leniently: fields the models do not name are ignored; a frame
  of a type this client does not know, or one that is not valid, is logged and skipped
  (a stored event still counts in its room's seqs, so skipping it makes no gap).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from typing import TypeVar, cast, overload

from pydantic import BaseModel, ValidationError

from ..protocol import (
    EVENT_TYPES,
    AgentRecord,
    Control,
    ControlResponse,
    CoordinatorMetricsEvent,
    ErrorCode,
    ErrorEvent,
    Event,
    GetMetrics,
    ProtocolError,
    RoomKind,
    Subscribed,
    Unsubscribe,
    Welcome,
    WorkflowRecord,
    parse_room,
    parse_server_message,
)
from .reconnecting import ConnectionState, ReconnectingSocket, SocketOptions
from .rooms import Room, RoomSubscription, Snapshot

__all__ = ["ClientConnection"]

log = logging.getLogger(__name__)

_SNAPSHOTS: dict[RoomKind, type[Snapshot]] = {
    RoomKind.workflow: WorkflowRecord,
    RoomKind.agent: AgentRecord,
    RoomKind.coordinator: CoordinatorMetricsEvent,
}
_ANSWERS: dict[type[BaseModel], type[BaseModel]] = {
    Control: ControlResponse,
    GetMetrics: CoordinatorMetricsEvent,
}

M = TypeVar("M")


class ClientConnection:
    """A WebSocket to ``<url>/vimax/ws`` with reconnect, resume and an offline queue.

    ``url`` is the server's base (``http(s)://host:port/base_url/``), ``token`` its token,
    ``options`` how its socket reconnects (:class:`~vimax_nb.client.reconnecting.
    SocketOptions`; the defaults without). The thread starts with :meth:`start` or the
    first use; :meth:`close` stops it.
    """

    def __init__(self, url: str, token: str | None, options: SocketOptions | None = None) -> None:
        self._socket = ReconnectingSocket(
            url,
            token,
            options or SocketOptions(),
            on_welcome=self._welcomed,
            on_frame=self._received,
        )
        self._rooms: dict[str, Room] = {}  # read and changed on the connection's thread only
        self._ids = itertools.count(1)
        self.epoch: str | None = None
        """The server's event log's epoch (its latest ``welcome``'s): the seqs' origin."""

    # -- lifecycle (any thread) ----------------------------------------------------------

    def start(self) -> None:
        """Start the connection's thread (idempotent); raises ConnectionError once closed."""
        self._socket.start()

    def close(self, timeout: float = 10.0) -> None:
        """Close the socket, fail pending requests, stop and join the thread (idempotent)."""
        self._socket.close(timeout)

    @property
    def state(self) -> ConnectionState:
        """The connection's :class:`~vimax_nb.client.reconnecting.ConnectionState` now."""
        return self._socket.state

    def on_state(self, callback: Callable[[ConnectionState], None]) -> Callable[[], None]:
        """Call ``callback(state)`` on each change of :attr:`state`; returns its remover.

        See :meth:`~vimax_nb.client.reconnecting.ReconnectingSocket.on_state`.
        """
        return self._socket.on_state(callback)

    # -- rooms and requests (any thread) -------------------------------------------------

    def subscribe(
        self,
        room: str,
        callback: Callable[[Event], None],
        after: int | None = None,
        *,
        on_subscribed: Callable[[Subscribed], None] | None = None,
        on_reset: Callable[[Snapshot], None] | None = None,
    ) -> RoomSubscription:
        """Follow ``room``: ``callback`` gets every event with seq > ``after`` once, in order.

        ``after=None`` (or 0) asks for everything the log keeps; a number is a seq of the
        server's current epoch. Other subscriptions to the same room are unaffected: a
        subscription that asks for older events than the room has already delivered is
        given them by a replay the others skip. ``on_subscribed(answer)`` and
        ``on_reset(snapshot)`` are described on :class:`~vimax_nb.client.rooms.
        RoomSubscription`. Raises ValueError for a name that is not a room, and
        ConnectionError once the connection is closed.
        """
        parse_room(room)
        sub = RoomSubscription(room, callback, on_subscribed, on_reset, last_seq=after or 0)
        sub.epoch = self.epoch if after else None
        self._socket.start()
        if not self._socket.call_soon(self._add, sub):
            raise ConnectionError("the connection is closed")
        return sub

    def unsubscribe(self, sub: RoomSubscription) -> None:
        """Stop ``sub``: its callbacks get nothing more once this returns, unless one is
        running already (idempotent). The others of its room carry on; the server is told
        to unsubscribe when the last one leaves."""
        if sub.active:
            sub.active = False
            self._socket.call_soon(self._remove, sub)

    @overload
    def request(self, message: Control, timeout: float = 10.0) -> ControlResponse: ...

    @overload
    def request(self, message: GetMetrics, timeout: float = 10.0) -> CoordinatorMetricsEvent: ...

    def request(
        self, message: Control | GetMetrics, timeout: float = 10.0
    ) -> ControlResponse | CoordinatorMetricsEvent:
        """Send ``message`` and block the calling thread until its answer.

        ``control`` is answered by ``control_response``, ``get_metrics`` by
        ``coordinator_metrics``, matched by ``id`` (one is given when it has none).
        Offline, the request waits in the offline queue. Raises TimeoutError after
        ``timeout`` s, ConnectionError if the connection is closed or lost after sending
        (or the request was dropped from a full offline queue), RequestError on an
        ``error`` frame. A request that gets no answer in time and still waits in the
        offline queue is withdrawn from it: it is never sent later (the TimeoutError says
        which happened).
        """
        if self._socket.is_current:
            raise RuntimeError("request() would block the connection's own thread")
        if message.id is None:
            message = message.model_copy(update={"id": f"r{next(self._ids)}"})
        rid = message.id
        assert rid is not None
        outbox = self._socket.outbox
        future = outbox.expect(rid, _ANSWERS[type(message)])
        try:
            self._socket.send(message.model_dump_json(exclude_none=True), rid)
            answer = future.result(timeout)
        except TimeoutError:
            withdrawn = outbox.withdraw(rid)
            raise TimeoutError(
                f"no answer to {message.type} {rid!r} within {timeout} s"
                f" (connection {self.state}; "
                + ("not sent: withdrawn from the offline queue)" if withdrawn else "it was sent)")
            ) from None
        finally:
            outbox.forget(rid)
        assert isinstance(answer, ControlResponse | CoordinatorMetricsEvent)
        return answer

    # -- the connection's thread: the only one that touches the rooms ---------------------

    def _add(self, sub: RoomSubscription) -> None:
        if sub.active:  # not unsubscribed meanwhile
            self._rooms.setdefault(sub.room, Room(sub.room)).add(sub)
            self._sync(sub.room)

    def _remove(self, sub: RoomSubscription) -> None:
        room = self._rooms.get(sub.room)
        if room is not None and room.remove(sub):
            del self._rooms[sub.room]
            self._unsubscribe_now(sub.room)

    def _welcomed(self, welcome: Welcome) -> None:
        """Subscribe every room again on the new connection, each from its lowest position."""
        self.epoch = welcome.epoch
        for room in self._rooms.values():
            room.reconnected()
        for name in list(self._rooms):
            self._sync(name)

    def _sync(self, name: str) -> None:
        """Send the room's ``subscribe`` if a subscription waits for one."""
        if not self._socket.connected:
            return  # the next connection subscribes every room
        room = self._rooms.get(name)
        message = room.request(f"s{next(self._ids)}", self.epoch) if room else None
        if message is not None:
            self._socket.send_now(message.model_dump_json(exclude_none=True))

    def _unsubscribe_now(self, name: str) -> None:
        self._socket.send_now(Unsubscribe(room=name).model_dump_json(exclude_none=True))

    def _received(self, raw: str | bytes) -> None:
        """One frame: parsed once, then given to its room, or answering a request."""
        try:
            message = parse_server_message(raw)
        except ProtocolError as exc:
            self._skipped(raw, exc)
            return
        if message.type in EVENT_TYPES:
            event = cast(Event, message)
            if event.room is not None and event.seq is not None:
                self._event(event.room, event.seq, event)
                return
        elif isinstance(message, Subscribed):
            self._subscribed(message)
            return
        if isinstance(message, ErrorEvent) and message.id is not None:
            self._refused(message.id)
        self._socket.outbox.answer(message)

    def _skipped(self, raw: str | bytes, error: ProtocolError) -> None:
        """A frame that is not a valid frame of a known type: logged, and if it is a stored
        event, counted in its room's seqs (given to nobody) so that it makes no gap."""
        level = logging.DEBUG if error.code == ErrorCode.unknown_type else logging.WARNING
        log.log(level, "vimax connection: skipped a frame (%s): %.200r", error, raw)
        try:
            data = json.loads(raw)
        except ValueError:
            return
        room, seq = (data.get("room"), data.get("seq")) if isinstance(data, dict) else (None, None)
        if isinstance(room, str) and isinstance(seq, int) and not isinstance(seq, bool):
            self._event(room, seq, None)

    def _event(self, name: str, seq: int, event: Event | None) -> None:
        """Give an event to the subscriptions it is next for (advance them past a skipped
        one, ``None``)."""
        room = self._rooms.get(name)
        if room is None:
            return
        delivery = room.event(seq)
        if delivery.gap:
            self._sync(name)
        if event is None:
            return
        for sub in delivery.subscriptions:
            if sub.active:
                _call(sub.callback, event, "an event callback")

    def _subscribed(self, message: Subscribed) -> None:
        room = self._rooms.get(message.room)
        answer = room.answer(message, self.epoch) if room is not None else None
        if room is None:  # unsubscribed meanwhile: make sure the server forgets it too
            self._unsubscribe_now(message.room)
            return
        if answer is None:
            return
        resets = [s for s in answer.resets if s.on_reset is not None]
        snapshot = _snapshot_of(message) if resets else None
        for sub in resets:
            if sub.active and sub.on_reset is not None and snapshot is not None:
                _call(sub.on_reset, snapshot, "a reset callback")
        for sub in answer.confirms:
            if sub.active and sub.on_subscribed is not None:
                _call(sub.on_subscribed, message, "a subscribed callback")
        if answer.resync:
            self._sync(message.room)

    def _refused(self, request_id: str) -> None:
        """An ``error`` frame answered request ``request_id``: forget it if it was a subscribe."""
        for room in self._rooms.values():
            if room.failed(request_id):
                return


def _snapshot_of(answer: Subscribed) -> Snapshot | None:
    """The room's record in ``answer`` as its model; None (logged) when it has none or it
    is not valid."""
    model = _SNAPSHOTS[parse_room(answer.room)[0]]
    if answer.snapshot is None:
        log.warning("vimax connection: the answer for %s has no snapshot", answer.room)
        return None
    try:
        return model.model_validate(answer.snapshot)
    except ValidationError as exc:
        log.warning("vimax connection: skipped the snapshot of %s: %s", answer.room, exc)
        return None


def _call(callback: Callable[[M], None], value: M, what: str) -> None:
    """Call ``callback(value)``; an exception is logged, never raised."""
    try:
        callback(value)
    except Exception:
        log.exception("vimax connection: %s failed", what)
