"""The WebSocket hub: connections, rooms, fan-out and gap-free subscriptions.

Each stored event is framed once (the WebSocket frame of its stored JSON) and the
same bytes are queued for every member of its room; at the end of the loop turn
each connection's queue is handed to its socket in one write, however many events
it holds. A connection whose socket leaves more than ``send_queue_limit`` bytes
untaken is closed with 4008: it reconnects, resumes from its last seq, and loses
nothing, while nobody else waits for it. A connection whose replay the log can no
longer send in full (retention or a reset cut in) is closed with 4008 too, with its
own reason. Each connection's send queue and framing are in
:mod:`vimax_nb.server.connection`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol import CLOSE_SLOW_CONSUMER, CoordinatorMetricsEvent
from ..store import EventLog, ReplayGap, StoredEvent
from .connection import FrameWriter, HubConnection, RoomMembership, ws_text_frame

log = logging.getLogger(__name__)

#: Stored events read at a time while a subscription's replay is sent.
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
        self.connections: dict[str, HubConnection] = {}
        self.rooms: dict[str, set[HubConnection]] = {}
        self.started = time.time()
        self.slow_consumer_closes = 0
        self.replay_gap_closes = 0
        self.rate_limit_closes = 0
        self.delivered = 0
        self.events_in = 0
        self.log: EventLog | None = None
        self._counter = 0
        self._dirty: list[HubConnection] = []

    def bind(self, event_log: EventLog) -> None:
        """Fan out every event ``event_log`` stores, once it is stored."""
        self.log = event_log
        event_log.add_listener(self.on_stored)

    def schedule_flush(self, connection: HubConnection) -> None:
        """Flush ``connection`` at the end of this loop turn (one callback for all)."""
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush_dirty)
        self._dirty.append(connection)

    def _flush_dirty(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flush()

    # -- connections and rooms ------------------------------------------------------

    def register(self, writer: FrameWriter, user: str) -> HubConnection:
        """A new connection with a fresh client id."""
        self._counter += 1
        client_id = f"c{self._counter}-{int(time.time() * 1000) % 100_000_000:x}"
        connection = HubConnection(self, writer, client_id, user)
        self.connections[client_id] = connection
        return connection

    def unregister(self, connection: HubConnection) -> None:
        """Forget ``connection`` and its rooms (idempotent)."""
        if connection.closed:
            return
        connection.closed = True
        self.connections.pop(connection.id, None)
        for room in list(connection.rooms):
            self.leave_room(connection, room)

    def _join_held(self, connection: HubConnection, room: str) -> RoomMembership:
        """Add ``connection`` to ``room``, its live events held until it is caught up."""
        membership = connection.rooms[room] = RoomMembership(room)
        self.rooms.setdefault(room, set()).add(connection)
        return membership

    def leave_room(self, connection: HubConnection, room: str) -> bool:
        """Take ``connection`` out of ``room``; False if it was not in it."""
        if connection.rooms.pop(room, None) is None:
            return False
        members = self.rooms.get(room)
        if members is not None:
            members.discard(connection)
            if not members:
                del self.rooms[room]
        return True

    def slow_consumer(self, connection: HubConnection) -> None:
        """Close a connection whose send queue is over the limit (4008)."""
        self.slow_consumer_closes += 1
        log.info(
            "client %s fell %d bytes behind: closing it (4008) so it can resume",
            connection.id,
            connection.queued_bytes,
        )
        self.unregister(connection)
        connection.writer.close_with(
            CLOSE_SLOW_CONSUMER,
            f"slow consumer: more than {self.limits.send_queue_limit} bytes waiting; "
            "reconnect and resume from your last seq",
        )

    def replay_gap(self, connection: HubConnection, gap: ReplayGap) -> None:
        """Close a connection whose replay ``gap`` cut short (4008): it resumes afresh."""
        self.replay_gap_closes += 1
        log.info("client %s: %s; closing it (4008) so it can resume", connection.id, gap)
        self.unregister(connection)
        # 4008 is the code the client already answers by reconnecting and resuming.
        connection.writer.close_with(
            CLOSE_SLOW_CONSUMER,
            "the log changed during your replay (retention or a reset); "
            "reconnect and resume from your last seq",
        )

    def close_all(self) -> None:
        """Close every connection (the server is stopping)."""
        for connection in list(self.connections.values()):
            self.unregister(connection)
            connection.writer.close_with(1001, "the server is stopping")

    # -- fan-out ------------------------------------------------------------------

    def on_stored(self, events: Sequence[StoredEvent]) -> None:
        """EventLog listener: fan out each stored event to its room, in seq order."""
        self.events_in += len(events)
        for event in events:
            members = self.rooms.get(event.room)
            if members:
                self._fan_out(event, members)

    def _fan_out(self, event: StoredEvent, members: set[HubConnection]) -> None:
        """Queue ``event``'s frame for every member of its room; members still catching
        up hold it until their replay is sent."""
        payload = event.frame
        framed = ws_text_frame(payload)
        sent = 0
        for connection in list(members):
            membership = connection.rooms.get(event.room)
            if membership is None:
                continue
            if membership.live:
                connection.send(payload, framed)
                sent += 1
            else:
                self._hold(connection, membership, event.seq, payload, framed)
        self.delivered += sent

    def _hold(
        self,
        connection: HubConnection,
        membership: RoomMembership,
        seq: int,
        payload: bytes,
        framed: bytes,
    ) -> None:
        membership.held.append((seq, payload, framed))
        membership.held_bytes += len(payload)
        if membership.held_bytes > 8 * self.limits.send_queue_limit:
            self.slow_consumer(connection)

    async def subscribe(
        self,
        connection: HubConnection,
        room: str,
        after: int | None,
        epoch: str | None,
        answer: Callable[[bool, int], None],
    ) -> None:
        """Join ``room`` and bring ``connection`` up to date with no gap and no duplicate.

        The room is joined holding live events back, and the log's replay is decided at
        once (:meth:`EventLog.replay`), so every later event is held. ``answer(recovered,
        top)`` sends ``subscribed``; then the replay's events are sent page by page, at
        the client's pace, then the held live events above them, and the room goes live.
        A replay cut short by retention or a reset (:class:`ReplayGap`) closes the
        connection with 4008 (:meth:`replay_gap`), so the client resumes afresh.
        """
        assert self.log is not None
        if connection.closed:
            return
        membership = self._join_held(connection, room)
        replay = self.log.replay(room, after, epoch)
        answer(replay.recovered, replay.top)
        unsent = 0
        while not replay.done and connection.is_open():
            try:
                page = await replay.next_page(REPLAY_PAGE)
            except ReplayGap as gap:
                self.replay_gap(connection, gap)
                return
            for event in page:
                connection.send(event.frame)
                unsent += len(event.frame)
                if unsent >= self.limits.send_queue_limit // 2:
                    await connection.drain()  # replay at the client's pace, not past the limit
                    unsent = 0
                    if not connection.is_open():
                        return
            await connection.drain()
            unsent = 0
        if not connection.is_open() or connection.rooms.get(room) is not membership:
            return
        for seq, payload, framed in membership.held:
            if seq > replay.cursor:
                connection.send(payload, framed)
        membership.held.clear()
        membership.held_bytes = 0
        membership.live = True

    # -- reports ------------------------------------------------------------------

    def with_connections(self, metrics: CoordinatorMetricsEvent) -> CoordinatorMetricsEvent:
        """``metrics`` with ``connections`` set to the WebSocket clients connected now:
        the coordinator knows no clients, so its figures get this as they leave the server."""
        return metrics.model_copy(update={"connections": len(self.connections)})

    def stats(self) -> dict[str, Any]:
        """Connections, rooms and their members, traffic, closes (slow consumers, replay
        gaps, rate limits), uptime."""
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
            "replay_gap_closes": self.replay_gap_closes,
            "rate_limit_closes": self.rate_limit_closes,
            "uptime": time.time() - self.started,
        }

    def client_info(self, client_id: str) -> dict[str, Any] | None:
        """One connection's metadata, or None."""
        connection = self.connections.get(client_id)
        return connection.info() if connection is not None else None
