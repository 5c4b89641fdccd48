"""The WebSocket hub: connections, rooms, fan-out and gap-free subscriptions.

Each stored event is framed once (the WebSocket frame of its stored JSON, and its
compressed frame once if a member agreed to permessage-deflate) and the same bytes are
queued for every member of its room (replays to clients that agreed to deflate share
their compressed frames too, for the latest ``RECENT_FRAMES`` events replayed); at the
end of the loop turn each connection's queue is handed to its socket in one write,
however many events it holds. A connection whose socket leaves more than ``send_queue_limit`` bytes
untaken is closed with 4008: it reconnects, resumes from its last seq, and loses
nothing, while nobody else waits for it.

A subscription is brought up to date by a replay from the event log, paced per
connection: the replays of all of a connection's rooms queue events only while the
bytes its socket has not taken are under ``HubLimits.replay_window`` (half the send
queue limit), so a client that reads is never closed for resuming many rooms at once.
The live events of a room being replayed are held, up to ``HubLimits.hold_limit``
bytes per connection; past it they are let go and read back from the log, unless the
client took fewer bytes than that meanwhile (it does not read): then it is closed
with 4008. A connection whose replay the log can no longer send in full (retention or
a reset cut in) is closed with 4008 too, with its own reason. Each connection's send
queue, framing and rate limit are in :mod:`vimax_nb.server.connection`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol import CLOSE_RATE_LIMIT, CLOSE_SLOW_CONSUMER, CoordinatorMetricsEvent
from ..store import EventLog, Replay, ReplayGap, StoredEvent
from .connection import FrameWriter, HubConnection, RoomMembership
from .frames import MessageFrames, RecentFrames

log = logging.getLogger(__name__)

#: Stored events read at a time while a subscription's replay is sent.
REPLAY_PAGE = 500
#: Replayed events whose frames are kept for the other clients that agreed to
#: permessage-deflate and replay them too (about 1.3 KB each, JSON and compressed frame).
RECENT_FRAMES = 4096


@dataclass(frozen=True, slots=True)
class HubLimits:
    """Per-connection limits (see ``VimaxApp``'s traits of the same names)."""

    send_queue_limit: int = 1024 * 1024
    rate_limit: float = 50.0
    rate_burst: int = 100
    rate_abuse_window: float = 5.0
    heartbeat_interval: float = 30.0
    max_frame_size: int = 64 * 1024
    compression: bool = True
    compression_threshold: int = 512

    @property
    def replay_window(self) -> int:
        """Replays queue events for a connection only while its socket has taken all but
        fewer than this many bytes: half the send queue limit."""
        return max(1, self.send_queue_limit // 2)

    @property
    def hold_limit(self) -> int:
        """Bytes of live events held for the rooms one connection is catching up on:
        eight times the send queue limit."""
        return 8 * self.send_queue_limit


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
        self.held_let_go = 0
        self.delivered = 0
        self.events_in = 0
        self.log: EventLog | None = None
        self._counter = 0
        self._dirty: list[HubConnection] = []
        self._recent = RecentFrames(RECENT_FRAMES)

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
        """Forget ``connection`` and its rooms (idempotent); its replays stop."""
        if connection.closed:
            return
        connection.detach()
        self.connections.pop(connection.id, None)
        for room in list(connection.rooms):
            self.leave_room(connection, room)

    def _join_held(self, connection: HubConnection, room: str, position: int) -> RoomMembership:
        """Add ``connection`` to ``room``, its live events held until it is caught up from
        ``position``."""
        membership = connection.rooms[room] = RoomMembership(room, position)
        self.rooms.setdefault(room, set()).add(connection)
        return membership

    def leave_room(self, connection: HubConnection, room: str) -> bool:
        """Take ``connection`` out of ``room``; False if it was not in it. A replay of the
        room in progress queues nothing more."""
        membership = connection.rooms.pop(room, None)
        if membership is None:
            return False
        connection.held_bytes -= membership.held_bytes
        membership.held = None
        membership.held_bytes = 0
        members = self.rooms.get(room)
        if members is not None:
            members.discard(connection)
            if not members:
                del self.rooms[room]
        return True

    def slow_consumer(self, connection: HubConnection, waiting: str = "") -> None:
        """Close a connection that falls too far behind (4008); ``waiting`` says what waits
        for it (default: the bytes of its send queue)."""
        self.slow_consumer_closes += 1
        waiting = waiting or f"more than {self.limits.send_queue_limit} bytes waiting"
        log.info(
            "client %s fell behind (%s; %d bytes not taken by its socket): closing it (4008) "
            "so it can resume",
            connection.id,
            waiting,
            connection.queued_bytes,
        )
        self.unregister(connection)
        connection.writer.close_with(
            CLOSE_SLOW_CONSUMER,
            f"slow consumer: {waiting}; reconnect and resume from your last seq",
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

    def rate_limit_abuse(self, connection: HubConnection) -> None:
        """Close a connection that keeps sending over its rate limit (4029), once what is
        already queued for it (answers to its allowed messages, ``rate_limited`` errors)
        has been handed to its socket."""
        connection.flush()
        if connection.closed:  # the flush found it a slow consumer, or its socket gone
            return
        self.rate_limit_closes += 1
        limits = self.limits
        log.info(
            "client %s kept sending over %g messages a second (%d dropped): closing it (4029)",
            connection.id,
            limits.rate_limit,
            connection.limiter.dropped,
        )
        self.unregister(connection)
        connection.writer.close_with(
            CLOSE_RATE_LIMIT,
            f"rate limit: kept sending over {limits.rate_limit:g} messages a second "
            "after rate_limited errors",
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
        up hold it until their replay is sent (or let it go: their replay reads it)."""
        payload = event.frame
        frames = MessageFrames(payload)
        sent = 0
        for connection in list(members):
            membership = connection.rooms.get(event.room)
            if membership is None:
                continue
            if membership.live:
                connection.send(frames)
                sent += 1
            elif membership.reread:
                self._fell_behind(connection, len(payload))
            elif membership.held is not None:
                membership.held.append((event.seq, frames))
                membership.held_bytes += len(payload)
                connection.held_bytes += len(payload)
                self._fell_behind(connection, len(payload))
        self.delivered += sent

    def _fell_behind(self, connection: HubConnection, size: int) -> None:
        """``size`` bytes of live events arrived for a room ``connection`` is catching up
        on. Past the hold limit since the count began, the held events are let go (its
        replays read them from the log) if its socket took at least as many bytes
        meanwhile; otherwise it does not keep up, and is closed (4008)."""
        if connection.live_behind == 0:
            connection.taken_mark = connection.bytes_taken
        connection.live_behind += size
        limit = self.limits.hold_limit
        if connection.live_behind <= limit:
            return
        if connection.bytes_taken - connection.taken_mark < limit:
            self.slow_consumer(
                connection, f"more than {limit} bytes of live events waiting behind your replay"
            )
            return
        self.held_let_go += 1
        for membership in connection.rooms.values():
            if not membership.live and membership.held is not None:
                membership.held.clear()
                membership.held_bytes = 0
                membership.reread = True
        connection.held_bytes = 0
        connection.live_behind = 0

    # -- subscriptions ------------------------------------------------------------

    async def subscribe(
        self,
        connection: HubConnection,
        room: str,
        after: int | None,
        epoch: str | None,
        answer: Callable[[bool, int], None],
    ) -> None:
        """Bring ``connection`` up to date in ``room`` from ``after``: no gap, no duplicate.

        The log's replay is decided at once (:meth:`EventLog.replay`) and ``answer(
        recovered, top)`` sends ``subscribed``; then every kept event after the replay's
        start follows once, in order, then live events. A connection has one stream per
        room: if it is in the room already and its stream stands exactly at the start
        (it has queued the events up to there and no further), the stream goes on and
        nothing is replayed again; otherwise the stream restarts there (the replay in
        progress stops at once). The replay is sent at the client's pace
        (:meth:`HubConnection.writable`), shared with the connection's other replays. A
        replay cut short by retention or a reset (:class:`ReplayGap`) closes the
        connection with 4008 (:meth:`replay_gap`), so the client resumes afresh.
        """
        assert self.log is not None
        if connection.closed:
            return
        # Deciding and joining happen in one step: no event reaches on_stored between.
        replay = self.log.replay(room, after, epoch)
        current = connection.rooms.get(room)
        if current is not None:
            position = self.log.top(room) if current.live else current.position
            if position == replay.cursor:
                answer(replay.recovered, replay.top)
                return
            self.leave_room(connection, room)
        membership = self._join_held(connection, room, replay.cursor)
        answer(replay.recovered, replay.top)
        await self._catch_up(connection, membership, replay)

    async def _catch_up(
        self, connection: HubConnection, membership: RoomMembership, replay: Replay
    ) -> None:
        """Send ``replay``, then the live events held meanwhile, then make the room live;
        read the log again for any events let go (:meth:`_fell_behind`). Stops as soon
        as the connection closes or leaves the room."""
        assert self.log is not None
        room = membership.room
        window = self.limits.replay_window

        def current() -> bool:
            return not connection.closed and connection.rooms.get(room) is membership

        while True:
            while not replay.done:
                try:
                    page = await replay.next_page(REPLAY_PAGE)
                except ReplayGap as gap:
                    if current():
                        self.replay_gap(connection, gap)
                    return
                if not current():
                    return
                for event in page:
                    if connection.backlog >= window:
                        await connection.writable()
                        if not current():
                            return
                    # compressed once for every client replaying it at the same time
                    connection.send(
                        self._recent.of(room, event.seq, event.frame)
                        if connection.deflate is not None
                        else event.frame
                    )
                    membership.position = event.seq
            held = membership.held
            assert held is not None  # until the room is live
            while held and not membership.reread:
                if connection.backlog >= window:
                    await connection.writable()
                    if not current():
                        return
                    continue
                seq, frames = held.popleft()
                membership.held_bytes -= len(frames.payload)
                connection.held_bytes -= len(frames.payload)
                if seq > membership.position:
                    connection.send(frames)
                    membership.position = seq
            if not membership.reread:
                membership.live = True
                membership.held = None
                if all(m.live for m in connection.rooms.values()):
                    connection.live_behind = 0
                return
            # Live events were let go: they are in the log, up to its top now.
            membership.reread = False
            epoch = replay.epoch
            replay = self.log.replay(room, membership.position, epoch)
            if not replay.recovered:
                self.replay_gap(
                    connection,
                    ReplayGap(
                        f"the event log was reset while room {room!r} was being replayed"
                        if replay.epoch != epoch
                        else f"retention dropped events of room {room!r} after seq "
                        f"{membership.position} while they were being replayed"
                    ),
                )
                return

    # -- reports ------------------------------------------------------------------

    def with_connections(self, metrics: CoordinatorMetricsEvent) -> CoordinatorMetricsEvent:
        """``metrics`` with ``connections`` set to the WebSocket clients connected now:
        the coordinator knows no clients, so its figures get this as they leave the server."""
        return metrics.model_copy(update={"connections": len(self.connections)})

    def stats(self) -> dict[str, Any]:
        """Connections, rooms and their members, traffic, closes (slow consumers, replay
        gaps, rate limits), how often held live events were let go to be read back from
        the log, uptime."""
        connections = list(self.connections.values())
        return {
            "connections": len(connections),
            "rooms": {room: sorted(c.id for c in members) for room, members in self.rooms.items()},
            "messages_in": sum(c.messages_in for c in connections),
            "messages_out": sum(c.messages_out for c in connections),
            "messages_dropped": sum(c.limiter.dropped for c in connections),
            "bytes_in": sum(c.bytes_in for c in connections),
            "bytes_out": sum(c.bytes_out for c in connections),
            "queued_bytes": sum(c.queued_bytes for c in connections),
            "held_bytes": sum(c.held_bytes for c in connections),
            "events": self.events_in,
            "deliveries": self.delivered,
            "slow_consumer_closes": self.slow_consumer_closes,
            "replay_gap_closes": self.replay_gap_closes,
            "rate_limit_closes": self.rate_limit_closes,
            "held_let_go": self.held_let_go,
            "uptime": time.time() - self.started,
        }

    def client_info(self, client_id: str) -> dict[str, Any] | None:
        """One connection's metadata, or None."""
        connection = self.connections.get(client_id)
        return connection.info() if connection is not None else None
