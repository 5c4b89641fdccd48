"""One WebSocket client as the hub sees it: its send queue, its rooms and its counters.

Messages queued with :meth:`HubConnection.send` are handed to the socket at the end of
the loop turn in one write, as ready-made frames when no compression was negotiated
(:func:`ws_text_frame`); the bytes the socket has not taken yet are counted, and the
hub closes a connection that lets them pass ``HubLimits.send_queue_limit``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)


def ws_text_frame(payload: bytes) -> bytes:
    """The unmasked, uncompressed WebSocket text frame (FIN set) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


class FrameWriter(Protocol):
    """The writing end of one client's WebSocket, as the hub uses it: frames out, the
    close, and the client's address."""

    @property
    def remote(self) -> str:
        """The client's address."""

    def raw_writable(self) -> bool:
        """Whether frames may be written as bytes (no compression negotiated, open)."""

    def write_raw(self, data: bytes) -> Awaitable[None]:
        """Write ready-made WebSocket frames; the awaitable ends once they left."""

    def write_text(self, payload: bytes) -> Awaitable[None]:
        """Send one text message the ordinary way (compressed if negotiated)."""

    def close_with(self, code: int, reason: str) -> None:
        """Close the connection with ``code``."""


@dataclass(slots=True)
class RoomMembership:
    """A connection's place in a room: live, or catching up with live events held.

    ``held`` keeps the live events (seq, JSON text, frame) that arrive while the room's
    replay is being sent."""

    room: str
    live: bool = False
    held: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    held_bytes: int = 0


class HubConnection:
    """One client: its rooms, counters and send queue."""

    def __init__(self, hub: Hub, writer: FrameWriter, client_id: str, user: str) -> None:
        self.hub = hub
        self.writer = writer
        self.id = client_id
        self.user = user
        self.connected_at = time.time()
        self.rooms: dict[str, RoomMembership] = {}
        self.messages_in = self.messages_out = self.bytes_in = self.bytes_out = 0
        self.queued_bytes = 0
        self.closed = False
        self._pending: list[bytes] = []
        self._pending_text: list[bytes] = []
        self._flush_scheduled = False
        self._raw: bool | None = None
        self._drained = asyncio.Event()
        self._drained.set()
        self._tokens = float(hub.limits.rate_burst)
        self._refilled = time.monotonic()
        self.strikes = 0

    # -- sending ------------------------------------------------------------------

    def send(self, payload: bytes, framed: bytes | None = None) -> None:
        """Queue one message (its JSON text); ``framed`` is its frame if already made.

        Queued messages are written at the end of the loop turn, all at once.
        """
        if self.closed:
            return
        if self._raw is None:  # compression is settled at the handshake: ask once
            self._raw = self.writer.raw_writable()
        if self._raw:
            self._pending.append(framed if framed is not None else ws_text_frame(payload))
        else:
            self._pending_text.append(payload)
        self.messages_out += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._drained.clear()
            self.hub.schedule_flush(self)

    def flush(self) -> None:
        """Hand everything queued to the socket, then close the connection (4008) if the
        bytes the socket has not taken pass the limit."""
        self._flush_scheduled = False
        if self.closed:
            return
        try:
            if self._pending:
                data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
                self._pending.clear()
                self._track(self.writer.write_raw(data), len(data))
            for payload in self._pending_text:
                self._track(self.writer.write_text(payload), len(payload))
            self._pending_text.clear()
        except Exception as exc:  # the socket went away under us
            log.debug("client %s: write failed: %s", self.id, exc)
            self.hub.unregister(self)
            return
        if self.queued_bytes > self.hub.limits.send_queue_limit:
            self.hub.slow_consumer(self)
        elif self.queued_bytes <= 0:
            self.queued_bytes = 0
            self._drained.set()

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
        if self.queued_bytes <= 0 and not self._flush_scheduled:
            self.queued_bytes = 0
            self._drained.set()

    def is_open(self) -> bool:
        """Whether the hub still serves this connection (read afresh after an ``await``)."""
        return not self.closed

    async def drain(self) -> None:
        """Wait until everything queued so far has been written to the socket."""
        await self._drained.wait()

    # -- receiving ----------------------------------------------------------------

    def allow_message(self) -> bool:
        """Take a token from the connection's rate-limit bucket; False when it is empty."""
        now = time.monotonic()
        limits = self.hub.limits
        self._tokens = min(
            float(limits.rate_burst), self._tokens + (now - self._refilled) * limits.rate_limit
        )
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def info(self) -> dict[str, Any]:
        """The connection's metadata, as ``GET /vimax/ws/client/{id}`` returns it."""
        return {
            "client_id": self.id,
            "user": self.user,
            "connected_at": self.connected_at,
            "remote": self.writer.remote,
            "rooms": sorted(self.rooms),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "queued_bytes": self.queued_bytes,
        }
