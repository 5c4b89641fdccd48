"""WebSocket clients for the hub tests.

:class:`Client` wraps tornado's client and speaks JSON; :class:`RawWebSocket` is a
plain TCP socket that makes the handshake itself, so a test can refuse to read
(a slow consumer), refuse to answer pings (a dead peer), or look at a refused
handshake's status line; :class:`IdleWriter` stands for a socket inside the process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado.websocket import WebSocketClientConnection

TIMEOUT = 10.0

OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Client:
    """A tornado WebSocket client that sends and reads JSON messages."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.frames: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any] | str) -> None:
        """Send ``message`` (JSON-encoded unless it is already text)."""
        text = message if isinstance(message, str) else json.dumps(message)
        await self.conn.write_message(text)

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any] | None:
        """The next message, decoded; None once the server closed the connection."""
        raw = await asyncio.wait_for(self.conn.read_message(), timeout)
        if raw is None:
            return None
        message: dict[str, Any] = json.loads(raw)
        self.frames.append(message)
        return message

    async def expect(
        self, type_: str, timeout: float = TIMEOUT, *, skip_events: bool = False
    ) -> dict[str, Any]:
        """The next message, which must be of ``type_``; with ``skip_events``, the events
        of subscribed rooms (messages with a ``seq``) that come first are passed over."""
        while True:
            message = await self.recv(timeout)
            assert message is not None, f"closed ({self.close_code}) while waiting for {type_}"
            if skip_events and "seq" in message and message["type"] != type_:
                continue
            assert message["type"] == type_, message
            return message

    async def request(
        self,
        message: dict[str, Any] | str,
        type_: str,
        timeout: float = TIMEOUT,
        *,
        skip_events: bool = False,
    ) -> dict[str, Any]:
        """Send ``message``; the next message must be of ``type_`` (see :meth:`expect`)."""
        await self.send(message)
        return await self.expect(type_, timeout, skip_events=skip_events)

    async def read_until(
        self, done: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> list[dict[str, Any]]:
        """Messages up to and including the first for which ``done`` is true."""
        messages: list[dict[str, Any]] = []
        while True:
            message = await self.recv(timeout)
            assert message is not None, f"closed ({self.close_code}) after {messages[-3:]}"
            messages.append(message)
            if done(message):
                return messages

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        """Read (and drop) messages until the server closes; return the close code."""
        while await self.recv(timeout) is not None:
            pass
        return self.close_code

    @property
    def close_code(self) -> int | None:
        return self.conn.close_code

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket frame as the server sent it."""

    fin: bool
    opcode: int
    payload: bytes
    compressed: bool = False  # RSV1: the payload is permessage-deflate data

    def json(self) -> dict[str, Any]:
        assert self.opcode == OP_TEXT, self
        assert not self.compressed, "a compressed frame: inflate it first"
        data: dict[str, Any] = json.loads(self.payload)
        return data

    @property
    def close_code(self) -> int | None:
        assert self.opcode == OP_CLOSE, self
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        assert self.opcode == OP_CLOSE, self
        return self.payload[2:].decode()


class RawWebSocket:
    """A WebSocket client on a bare non-blocking socket; it reads only when asked to."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.eof = False

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        rcvbuf: int | None = None,
        timeout: float = TIMEOUT,
    ) -> RawWebSocket:
        """Open a socket to ``127.0.0.1:port`` and ask for an upgrade of ``path``.

        ``status`` and ``headers`` hold the answer; a 101 answer is checked.
        ``rcvbuf`` shrinks the socket's receive buffer (before connecting, so the
        advertised window is small too).
        """
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        self = cls(sock)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
            key = base64.b64encode(os.urandom(16)).decode()
            lines = [
                f"GET {path} HTTP/1.1",
                f"Host: localhost:{port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                *(f"{name}: {value}" for name, value in (headers or {}).items()),
            ]
            await loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode())
            while b"\r\n\r\n" not in self.buffer:
                if not await self._fill(timeout):
                    raise ConnectionError(
                        f"the server closed during the handshake: {self.buffer!r}"
                    )
            head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
            self.buffer = bytearray(rest)
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            self.status = int(status_line.split()[1])
            for line in header_lines:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            if self.status == 101:
                accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
                assert self.headers.get("sec-websocket-accept") == accept, self.headers
        except BaseException:
            sock.close()
            raise
        return self

    async def _fill(self, timeout: float) -> bool:
        """Read what the socket has into the buffer; False at end of stream."""
        if self.eof:
            return False
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 256 * 1024), timeout)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    async def _take(self, n: int, timeout: float) -> bytes | None:
        while len(self.buffer) < n:
            if not await self._fill(timeout):
                return None
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def read_frame(self, timeout: float = TIMEOUT) -> Frame | None:
        """The next frame (pings included, never answered); None at end of stream."""
        head = await self._take(2, timeout)
        if head is None:
            return None
        fin, compressed, opcode = bool(head[0] & 0x80), bool(head[0] & 0x40), head[0] & 0x0F
        assert not head[1] & 0x80, "a server must not mask its frames"
        length = head[1] & 0x7F
        if length == 126:
            ext = await self._take(2, timeout)
            assert ext is not None
            length = struct.unpack("!H", ext)[0]
        elif length == 127:
            ext = await self._take(8, timeout)
            assert ext is not None
            length = struct.unpack("!Q", ext)[0]
        payload = await self._take(length, timeout) if length else b""
        assert payload is not None, "the stream ended inside a frame"
        return Frame(fin, opcode, payload, compressed)

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        """Send one final frame, masked as a client must."""
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await asyncio.get_running_loop().sock_sendall(self.sock, header + mask + masked)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_frame(OP_TEXT, json.dumps(message).encode())

    async def send_close(self, code: int = 1000) -> None:
        await self.send_frame(OP_CLOSE, struct.pack("!H", code))

    def close(self) -> None:
        self.sock.close()


class IdleWriter:
    """A frame writer whose writes complete at once and which records how it was closed."""

    remote = "in-process"

    def __init__(self) -> None:
        self.closes: list[tuple[int, str]] = []

    def deflate(self) -> None:
        return None

    def _done(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def write_frames(self, data: bytes) -> asyncio.Future[None]:
        return self._done()

    def close_with(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))
