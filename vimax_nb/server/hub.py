"""The WebSocket hub: connections, rooms, fan-out and gap-free replay.

Each stored event is framed once (the WebSocket frame of its stored JSON) and the
same bytes are queued for every member of its room; at the end of the loop turn
each connection's queue is handed to its socket in one write, however many events
it holds. A connection whose socket leaves more than ``send_queue_limit`` bytes
untaken is closed with 4008: it reconnects, resumes from its last seq, and loses
nothing, while nobody else waits for it. Each connection's send queue and framing
are in :mod:`vimax_nb.server.connection`, whose names this module re-exports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol import CLOSE_SLOW_CONSUMER
from ..store import EventLog, StoredEvent
from .connection import Connection, Subscription, Transport, ws_text_frame

__all__ = [
    "REPLAY_PAGE",
    "Connection",
    "Hub",
    "HubLimits",
    "Subscription",
    "Transport",
    "ws_text_frame",
]

log = logging.getLogger(__name__)

REPLAY_PAGE = 500


@dataclass(frozen=True, slots=True)
class HubLimits:
    """Per-connection limits (see ``VimaxApp``'s traits of the same names)."""

    send_queue_limit: int = 1024 * 1024
    rate_limit: float = 50.0
    rate_burst: int = 100
    heartbeat_interval: float = 30.0
    max_frame_size: int = 64 * 1024
    compression: bool = True


class Hub:
    """Every connection and room; fans stored events out to their rooms."""

    def __init__(self, limits: HubLimits | None = None) -> None:
        self.limits = limits or HubLimits()
        self.connections: dict[str, Connection] = {}
        self.rooms: dict[str, set[Connection]] = {}
        self.started = time.time()
        self.slow_consumer_closes = 0
        self.rate_limit_closes = 0
        self.delivered = 0
        self.events_in = 0
        self.log: EventLog | None = None
        self._counter = 0
        self._dirty: list[Connection] = []

    def bind(self, event_log: EventLog) -> None:
        """Fan out every event ``event_log`` stores, once it is stored."""
        self.log = event_log
        event_log.add_listener(self.on_stored)

    def schedule_flush(self, connection: Connection) -> None:
        """Flush ``connection`` at the end of this loop turn (one callback for all)."""
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush_dirty)
        self._dirty.append(connection)

    def _flush_dirty(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flush()

    # -- connections and rooms ------------------------------------------------------

    def register(self, transport: Transport, user: str) -> Connection:
        """A new connection with a fresh client id."""
        self._counter += 1
        client_id = f"c{self._counter}-{int(time.time() * 1000) % 100_000_000:x}"
        connection = Connection(self, transport, client_id, user)
        self.connections[client_id] = connection
        return connection

    def unregister(self, connection: Connection) -> None:
        """Forget ``connection`` and its rooms (idempotent)."""
        if connection.closed:
            return
        connection.closed = True
        self.connections.pop(connection.id, None)
        for room in list(connection.rooms):
            self.leave_room(connection, room)

    def join_room(self, connection: Connection, room: str, *, live: bool = True) -> Subscription:
        """Add ``connection`` to ``room`` (holding live events back unless ``live``)."""
        subscription = connection.rooms[room] = Subscription(room, live=live)
        self.rooms.setdefault(room, set()).add(connection)
        return subscription

    def leave_room(self, connection: Connection, room: str) -> bool:
        """Take ``connection`` out of ``room``; False if it was not in it."""
        if connection.rooms.pop(room, None) is None:
            return False
        members = self.rooms.get(room)
        if members is not None:
            members.discard(connection)
            if not members:
                del self.rooms[room]
        return True

    def get_room_clients(self, room: str) -> list[Connection]:
        """The connections in ``room``."""
        return list(self.rooms.get(room, ()))

    def slow_consumer(self, connection: Connection) -> None:
        """Close a connection whose send queue is over the limit (4008)."""
        self.slow_consumer_closes += 1
        log.info(
            "client %s fell %d bytes behind: closing it (4008) so it can resume",
            connection.id,
            connection.queued_bytes,
        )
        self.unregister(connection)
        connection.transport.close_with(
            CLOSE_SLOW_CONSUMER,
            f"slow consumer: more than {self.limits.send_queue_limit} bytes waiting; "
            "reconnect and resume from your last seq",
        )

    def close_all(self) -> None:
        """Close every connection (the server is stopping)."""
        for connection in list(self.connections.values()):
            self.unregister(connection)
            connection.transport.close_with(1001, "the server is stopping")

    # -- fan-out ------------------------------------------------------------------

    def broadcast_to_room(self, room: str, payload: bytes, seq: int | None = None) -> int:
        """Queue ``payload`` (a JSON message) for every member of ``room``; return how
        many got it. Members still catching up hold it until their replay is done."""
        members = self.rooms.get(room)
        if not members:
            return 0
        framed = ws_text_frame(payload)
        sent = 0
        for connection in list(members):
            subscription = connection.rooms.get(room)
            if subscription is None:
                continue
            if subscription.live:
                if seq is not None:
                    subscription.last_seq = seq
                connection.send(payload, framed)
                sent += 1
            else:
                self._hold(connection, subscription, seq or 0, payload, framed)
        self.delivered += sent
        return sent

    def _hold(
        self, connection: Connection, sub: Subscription, seq: int, payload: bytes, framed: bytes
    ) -> None:
        sub.held.append((seq, payload, framed))
        sub.held_bytes += len(payload)
        if sub.held_bytes > 8 * self.limits.send_queue_limit:
            self.slow_consumer(connection)

    def on_stored(self, events: Sequence[StoredEvent]) -> None:
        """EventLog listener: fan out each stored event to its room, in seq order."""
        self.events_in += len(events)
        for event in events:
            self.broadcast_to_room(event.room, event.frame, event.seq)

    async def replay(
        self,
        connection: Connection,
        room: str,
        after: int | None,
        epoch: str | None,
        answer: Callable[[bool, int], None],
    ) -> None:
        """Join ``room`` and bring ``connection`` up to date with no gap and no duplicate.

        The room is joined holding live events back; ``top`` is taken at once, so
        every later event is held. ``answer(recovered, top)`` sends ``subscribed``;
        then the kept events with ``after < seq <= top`` are sent page by page (when
        recovered, or when the client has seen nothing), then the held live events
        above ``top``, and the room goes live.
        """
        assert self.log is not None
        event_log = self.log
        if connection.closed:
            return
        subscription = self.join_room(connection, room, live=False)
        start = after or 0
        top, floor = event_log.top(room), event_log.floor(room)
        epoch_ok = epoch is None or epoch == event_log.epoch
        recovered = epoch_ok and floor <= start <= top
        answer(recovered, top)
        if recovered:
            cursor = start
        elif epoch_ok and start == 0:
            cursor = floor  # it has seen nothing: all that is kept, though some was dropped
        else:
            cursor = top  # the snapshot in the answer is the truth; live events follow
        unsent = 0
        while cursor < top and not connection.closed:
            page = await event_log.read(room, after=cursor, limit=min(REPLAY_PAGE, top - cursor))
            if not page:
                break
            if recovered and page[0].seq != cursor + 1:
                self.slow_consumer(connection)  # retention cut in: let it resume afresh
                return
            for event in page:
                connection.send(event.frame)
                cursor = event.seq
                unsent += len(event.frame)
                if unsent >= self.limits.send_queue_limit // 2:
                    await connection.drain()  # replay at the client's pace, not past the limit
                    unsent = 0
                    if not connection.is_open():
                        return
            await connection.drain()
            unsent = 0
        if connection.closed or connection.rooms.get(room) is not subscription:
            return
        subscription.last_seq = cursor
        for seq, payload, framed in subscription.held:
            if seq > cursor:
                connection.send(payload, framed)
                subscription.last_seq = seq
        subscription.held.clear()
        subscription.held_bytes = 0
        subscription.live = True

    # -- reports ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Connections, rooms and their members, traffic, slow-consumer closes, uptime."""
        connections = list(self.connections.values())
        return {
            "connections": len(connections),
            "rooms": {room: sorted(c.id for c in members) for room, members in self.rooms.items()},
            "messages_in": sum(c.messages_in for c in connections),
            "messages_out": sum(c.messages_out for c in connections),
            "bytes_in": sum(c.bytes_in for c in connections),
            "bytes_out": sum(c.bytes_out for c in connections),
            "queued_bytes": sum(c.queued_bytes for c in connections),
            "events": self.events_in,
            "deliveries": self.delivered,
            "slow_consumer_closes": self.slow_consumer_closes,
            "rate_limit_closes": self.rate_limit_closes,
            "uptime": time.time() - self.started,
        }

    def client_info(self, client_id: str) -> dict[str, Any] | None:
        """One connection's metadata, or None."""
        connection = self.connections.get(client_id)
        return connection.info() if connection is not None else None
