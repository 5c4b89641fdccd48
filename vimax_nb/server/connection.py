"""One WebSocket client as the hub sees it: its send queue, its rooms, its rate limit.

Messages queued with :meth:`HubConnection.send` are handed to the socket at the end of
the loop turn in one write, as ready-made frames
(:class:`~vimax_nb.server.frames.MessageFrames`: an event's frames are made once for
all clients, compressed once for those that agreed to permessage-deflate). The bytes
queued and not yet taken by the socket are the connection's
:attr:`~HubConnection.backlog`: the hub closes a connection whose socket leaves more
than ``HubLimits.send_queue_limit`` of them untaken (4008), and paces every replay of
the connection, across all its rooms, against it (:meth:`HubConnection.writable`).
Messages the client sends go through its :class:`RateLimiter`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .frames import Deflate, MessageFrames

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)

#: Seconds between two ``rate_limited`` errors sent to one client.
RATE_NOTICE_INTERVAL = 1.0


class FrameWriter(Protocol):
    """The writing end of one client's WebSocket, as the hub uses it: frames out, the
    close, and the client's address."""

    @property
    def remote(self) -> str:
        """The client's address."""

    def deflate(self) -> Deflate | None:
        """permessage-deflate as agreed at the handshake; None: not agreed."""

    def write_frames(self, data: bytes) -> Awaitable[None]:
        """Write ready-made WebSocket frames; the awaitable ends once they left."""

    def close_with(self, code: int, reason: str) -> None:
        """Close the connection with ``code``."""


@dataclass(slots=True)
class RoomMembership:
    """A connection's place in a room: live, or catching up.

    While the room is replayed, the live events that reach the hub are kept in ``held``
    (seq, frames), unless ``reread`` is set: then they were let go, and the
    replay reads them from the log instead. ``position`` is the seq of the last event
    of the room queued for the client while catching up (the replay's start before the
    first); once live, every stored event of the room has been queued, and ``held`` is
    None (an empty deque is 600 bytes, for each room of each connection)."""

    room: str
    position: int = 0
    live: bool = False
    held: deque[tuple[int, MessageFrames]] | None = field(default_factory=deque)
    held_bytes: int = 0
    reread: bool = False


@dataclass(frozen=True, slots=True)
class RateVerdict:
    """What to do with one message from the client.

    ``allowed``: handle it. Otherwise it is dropped; ``report`` > 0: tell the client, in
    one ``rate_limited`` error, that this many messages were dropped since the last such
    error (this one included); ``abuse``: close the connection (4029)."""

    allowed: bool
    report: int = 0
    abuse: bool = False


_ALLOWED = RateVerdict(True)
_DROPPED = RateVerdict(False)


class RateLimiter:
    """The rate limit of the messages one client sends.

    A token bucket: ``burst`` messages at once, refilled at ``rate`` a second; a message
    that finds it empty is dropped. Each dropped message goes into a leaky bucket that
    drains at ``rate`` a second; when a drop brings it over ``rate * abuse_window`` the
    verdict is abuse. So a client that keeps within the rate is never dropped, a burst
    is dropped in part and forgiven, and sending at k times the rate (k > 2) is abuse
    about ``abuse_window / (k - 2)`` seconds after the burst is spent. The first drop,
    then at most one every :data:`RATE_NOTICE_INTERVAL` seconds, is reported.
    ``clock`` (seconds, monotonic) is read once per message.
    """

    __slots__ = (
        "_checked",
        "_next_report",
        "_overflow",
        "_tokens",
        "_unreported",
        "abuse_limit",
        "burst",
        "clock",
        "dropped",
        "rate",
    )

    def __init__(
        self,
        rate: float,
        burst: int,
        abuse_window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.abuse_limit = rate * abuse_window
        self.clock = clock
        self.dropped = 0
        self._tokens = float(burst)
        self._overflow = 0.0
        self._unreported = 0
        self._next_report: float | None = None
        self._checked = clock()

    def check(self) -> RateVerdict:
        """Account for one message now; the verdict on it."""
        now = self.clock()
        refill = max(0.0, now - self._checked) * self.rate
        self._checked = now
        self._tokens = min(float(self.burst), self._tokens + refill)
        self._overflow = max(0.0, self._overflow - refill)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return _ALLOWED
        self.dropped += 1
        self._unreported += 1
        self._overflow += 1.0
        if self._overflow > self.abuse_limit:
            return RateVerdict(False, abuse=True)
        if self._next_report is not None and now < self._next_report:
            return _DROPPED
        self._next_report = now + RATE_NOTICE_INTERVAL
        report, self._unreported = self._unreported, 0
        return RateVerdict(False, report=report)


class RoomTurn:
    """One ``subscribe`` or ``unsubscribe`` of a room: it acts once the requests of that
    room that the client sent before it have been answered, so a client's requests for
    a room are answered in the order it sent them."""

    __slots__ = ("_answered", "_previous", "_room", "_turns")

    def __init__(self, turns: dict[str, RoomTurn], room: str) -> None:
        self._turns = turns
        self._room = room
        self._previous = turns.get(room)
        self._answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        turns[room] = self

    @property
    def ready(self) -> bool:
        """Whether every earlier request of the room has been answered."""
        if self._previous is not None and self._previous._answered.done():
            self._previous = None
        return self._previous is None

    async def wait(self) -> None:
        """Return once every earlier request of the room has been answered."""
        while not self.ready:
            assert self._previous is not None
            await self._previous._answered

    def end(self) -> None:
        """This request has been answered (or given up): the next one may act."""
        if not self._answered.done():
            self._answered.set_result(None)
        if self._turns.get(self._room) is self:
            del self._turns[self._room]


class HubConnection:
    """One client: its rooms, counters, send queue and rate limiter."""

    __slots__ = (
        "_flush_scheduled",
        "_pending",
        "_writable",
        "bytes_in",
        "bytes_out",
        "closed",
        "connected_at",
        "deflate",
        "held_bytes",
        "hub",
        "id",
        "limiter",
        "live_behind",
        "messages_in",
        "messages_out",
        "pending_bytes",
        "queued_bytes",
        "room_turns",
        "rooms",
        "taken_mark",
        "user",
        "writer",
    )

    def __init__(self, hub: Hub, writer: FrameWriter, client_id: str, user: str) -> None:
        self.hub = hub
        self.writer = writer
        self.id = client_id
        self.user = user
        self.connected_at = time.time()
        self.rooms: dict[str, RoomMembership] = {}
        self.room_turns: dict[str, RoomTurn] = {}
        self.messages_in = self.messages_out = self.bytes_in = self.bytes_out = 0
        self.queued_bytes = 0  # handed to the socket, not taken by it yet
        self.pending_bytes = 0  # queued in this loop turn, not handed to the socket yet
        self.held_bytes = 0  # live events held for the rooms being replayed
        self.live_behind = 0  # bytes of live events for those rooms since taken_mark
        self.taken_mark = 0  # bytes_taken when live_behind was last 0
        self.closed = False
        self.limiter = RateLimiter(
            hub.limits.rate_limit, hub.limits.rate_burst, hub.limits.rate_abuse_window
        )
        self._pending: list[bytes] = []
        self._flush_scheduled = False
        self.deflate: Deflate | None = writer.deflate()
        """permessage-deflate as agreed at the handshake (None: every frame uncompressed)."""
        self._writable: list[asyncio.Future[None]] = []

    @property
    def backlog(self) -> int:
        """Bytes queued for the client that its socket has not taken yet."""
        return self.pending_bytes + self.queued_bytes

    @property
    def bytes_taken(self) -> int:
        """Bytes the socket has taken from this connection so far."""
        return self.bytes_out - self.queued_bytes

    # -- sending ------------------------------------------------------------------

    def send(self, message: bytes | MessageFrames) -> None:
        """Queue one message: its JSON text, or its frames when they are shared.

        Queued messages are written at the end of the loop turn, all at once.
        """
        if self.closed:
            return
        if isinstance(message, bytes):
            message = MessageFrames(message)
        frame = message.frame(self.deflate)
        self._pending.append(frame)
        self.pending_bytes += len(frame)
        self.messages_out += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.hub.schedule_flush(self)

    def flush(self) -> None:
        """Hand everything queued to the socket, then close the connection (4008) if the
        bytes the socket has not taken pass the limit."""
        self._flush_scheduled = False
        if self.closed:
            return
        self.pending_bytes = 0
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            try:
                self._track(self.writer.write_frames(data), len(data))
            except Exception as exc:  # the socket went away under us
                log.debug("client %s: write failed: %s", self.id, exc)
                self.hub.unregister(self)
                return
        if self.queued_bytes > self.hub.limits.send_queue_limit:
            self.hub.slow_consumer(self)
        else:
            self._wake_writable()

    def _track(self, written: Awaitable[None], size: int) -> None:
        self.bytes_out += size
        if isinstance(written, asyncio.Future) and written.done():  # the socket took it all
            if not written.cancelled() and written.exception() is not None:
                raise ConnectionError(str(written.exception()))
            return
        self.queued_bytes += size
        future = asyncio.ensure_future(written)
        future.add_done_callback(lambda f: self._written(f, size))

    def _written(self, future: asyncio.Future[None], size: int) -> None:
        self.queued_bytes -= size
        if not future.cancelled() and future.exception() is not None:
            self.hub.unregister(self)
            return
        self._wake_writable()

    def _wake_writable(self) -> None:
        if self._writable and self.backlog < self.hub.limits.replay_window:
            waiters, self._writable = self._writable, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def writable(self) -> None:
        """Return once the backlog is under ``HubLimits.replay_window``, or the connection
        is closed: the replays of all the connection's rooms wait here, so together they
        never queue more than the window (and one event each) for the socket."""
        while not self.closed and self.backlog >= self.hub.limits.replay_window:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._writable.append(waiter)
            await waiter

    def is_open(self) -> bool:
        """Whether the hub still serves this connection (read afresh after an ``await``)."""
        return not self.closed

    def detach(self) -> None:
        """The hub no longer serves this connection: nothing more is sent, and whatever
        waits for the socket (:meth:`writable`) returns."""
        self.closed = True
        waiters, self._writable = self._writable, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- receiving ----------------------------------------------------------------

    def next_turn(self, room: str) -> RoomTurn:
        """The turn of a ``subscribe`` or ``unsubscribe`` of ``room`` received now."""
        return RoomTurn(self.room_turns, room)

    def info(self) -> dict[str, Any]:
        """The connection's metadata, as ``GET /vimax/ws/client/{id}`` returns it."""
        return {
            "client_id": self.id,
            "user": self.user,
            "connected_at": self.connected_at,
            "remote": self.writer.remote,
            "compression": "permessage-deflate" if self.deflate is not None else None,
            "rooms": sorted(self.rooms),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "queued_bytes": self.queued_bytes,
            "messages_dropped": self.limiter.dropped,
        }
