"""The subscribers of ``fanout.py``, in a process of their own.

Opens ``--clients`` WebSocket connections to ``--ws-url`` (``Authorization: token``
header), subscribes each to ``--room`` after ``--after`` (by default the room's top, from
``GET <--http-url>/stats``), waits until every one is ``subscribed``, then runs the
phases: one latency phase (``--rate`` events a second for ``--seconds``) and
``--repeat`` throughput phases (``--events`` events emitted as fast as the server can),
each triggered with ``POST <--http-url>/emit``. Each client counts its events, checks
that their seqs are contiguous with no duplicate, and records the emit-to-receipt
latency (the time of receipt less the emit time in the event's message) of every
``--sample``-th one. Prints one JSON line with the figures of every phase, this
process's CPU use, and the permessage-deflate parameters the server answered.

``--compression deflate`` offers permessage-deflate as ``websockets.connect`` does by
default (``permessage-deflate; client_max_window_bits``); ``none`` offers nothing. The
clients' own frames are never compressed (RFC 7692 allows that on a deflate connection).

Three client implementations (``--impl``):

- ``raw`` (default): the handshake is written by hand with ``websockets.utils``'s
  key functions, the client's frames are made by ``websockets.frames.Frame``, and
  the server's frames are parsed by a few lines of byte slicing in an
  ``asyncio.Protocol``, with one clock reading per socket read. With deflate it
  inflates every message whose first frame has RSV1 set (its payload followed by
  ``00 00 ff ff``, through a raw-deflate ``zlib.decompressobj``): one decompressor per
  connection, or a new one per message when the server answered
  ``server_no_context_takeover``; a message without RSV1 is taken as it is;
- ``websockets``: ``websockets.asyncio.client.connect(compression="deflate" or None)``
  and ``recv()`` per message, the ordinary client;
- ``connection``: ``vimax_nb.client.ClientConnection``, the kernel's client: its own
  thread and loop per connection, every frame parsed into its protocol model, the room
  bookkeeping, then the subscription's callback (where the receipt is timed). It is
  asked for deflate or not through whatever option ``SocketOptions`` has for it (a
  field whose name has ``compress`` or ``deflate`` in it); without one it offers what
  it offers by default, and the figures say what was negotiated.

``--framing socketio`` speaks Engine.IO v4 / Socket.IO v5 over the same WebSocket
(``raw`` and ``websockets`` only): the server's ``0`` (open) is answered ``40``, its
``40`` (connected) stands for the ``welcome``, ``2`` (ping) is answered ``3``, an event
``42["name",DATA]`` is read as ``DATA``, and the subscribe is sent as
``42["subscribe",{...}]``. Written here rather than using python-socketio's
``AsyncClient``: its Engine.IO layer (python-engineio 4.x, over aiohttp's client
WebSocket) starts a task for every message it receives before the event handler runs,
client work per message that the other servers' rows do not pay, so its figures would
be the client's more than the server's (this reasoning, not a measurement, decided it).

Client CPU per message on the 2-core machine, 100 clients in this process (one run of
``fanout.py --impl all --events 5000 --seconds 5``): ``raw`` 25-33 us at 200 events/s
(one message per read, so mostly the system calls) and 3-35 us in a burst (the fewer,
the more messages a read brings); ``websockets`` 31-47 us and 8-45 us;
``connection`` 46-76 us and 15-70 us: at 200 events/s x 100 that is about a core, so
its latency rows measure the 100 client threads more than the server. An earlier
measurement found the ``websockets`` client's own queueing raising the p99 at 200
events/s from about 4 ms to 15 ms: ``raw`` is what measures the server.

After a close (4008 slow consumer, among others) a ``raw`` or ``websockets`` client
reconnects and resumes from its last seq, as the protocol asks; a ``connection`` does
so by itself. The closes are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import inspect
import json
import sys
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fanout_common import emit_time_of
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.utils import accept_key, generate_key

EVENT_PREFIX = b'{"type":"progress"'
SEQ_KEY = b'"seq":'
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"  # websockets.connect's default
DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.2: removed by the sender


MAX_RECONNECTS = 20  # per client, over the whole run
RECONNECT_DELAY = 0.1  # seconds before a reconnection, growing with each
_LOOP_THREAD = [threading.get_ident()]  # the thread of the run's loop (set by run())


@dataclass(slots=True)
class Tally:
    """One client's view: its events, their order, their latency samples."""

    index: int
    sample: int
    last_seq: int = 0
    count: int = 0
    target: int = 0
    gaps: int = 0
    duplicates: int = 0
    bad_events: int = 0
    last_receipt: float = 0.0
    latencies: list[float] = field(default_factory=list)
    closes: list[int] = field(default_factory=list)
    unrecovered: int = 0
    errors: list[str] = field(default_factory=list)
    welcome: asyncio.Future[dict[str, Any]] | None = None
    subscribed: asyncio.Future[dict[str, Any]] | None = None
    done: asyncio.Future[None] | None = None
    on_close: Any = None  # called with the close code
    after: int | None = None  # of the subscribe request last sent
    negotiated: str = ""  # the server's Sec-WebSocket-Extensions answer ("none": none)
    messages: int = 0  # text messages received, every phase
    compressed: int = 0  # of which compressed (RSV1), as far as the client can tell
    loop: asyncio.AbstractEventLoop | None = None  # the run's, for calls from other threads

    def start_phase(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.latencies = []
        self.closes = []
        self.gaps = self.duplicates = self.bad_events = self.unrecovered = 0
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()

    def finish(self) -> None:
        """Mark the phase done for this client; from any thread."""
        loop = self.loop
        if loop is not None and threading.get_ident() != _LOOP_THREAD[0]:
            loop.call_soon_threadsafe(self.finish)
            return
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def on_event(self, seq: int, message: str, now: float) -> None:
        """One progress event, parsed by the client (``connection``), received at ``now``."""
        last = self.last_seq
        if seq != last + 1:
            if seq <= last:
                self.duplicates += 1
            else:
                self.gaps += 1
            if len(self.errors) < 5:
                self.errors.append(f"seq {seq} after {last} (count {self.count})")
        self.last_seq = seq
        self.count += 1
        self.messages += 1
        self.last_receipt = now
        if self.count % self.sample == 1 or self.sample == 1:
            emitted = emit_time_of(message)
            if emitted is not None:
                self.latencies.append(now - emitted)
            else:
                self.bad_events += 1
        if self.count == self.target:
            self.finish()

    def on_text(self, payload: bytes, now: float) -> None:
        """One text message from the server, received at ``now``."""
        if payload.startswith(EVENT_PREFIX):
            at = payload.find(SEQ_KEY) + len(SEQ_KEY)
            seq = int(payload[at : payload.find(b",", at)])
            last = self.last_seq
            if seq != last + 1:
                if seq <= last:
                    self.duplicates += 1
                else:
                    self.gaps += 1
                if len(self.errors) < 5:
                    self.errors.append(f"seq {seq} after {last} (count {self.count})")
            self.last_seq = seq
            self.count += 1
            self.last_receipt = now
            if self.count % self.sample == 1 or self.sample == 1:
                emitted = emit_time_of(json.loads(payload).get("message"))
                if emitted is not None:
                    self.latencies.append(now - emitted)
                else:
                    self.bad_events += 1
            if self.count == self.target:
                self.finish()
            return
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "welcome" and self.welcome is not None and not self.welcome.done():
            self.welcome.set_result(message)
        elif kind == "subscribed" and self.subscribed is not None and not self.subscribed.done():
            # Set here, not where the answer is awaited: the replayed events may be in the
            # same read as the answer, and are counted before that await resumes.
            top = int(message.get("top") or 0)
            if self.after is None:
                self.last_seq = top  # live events follow the top
            elif message.get("recovered", True):
                self.last_seq = self.after  # the replay follows from after + 1
            else:
                self.unrecovered += 1
                self.last_seq = top
            self.subscribed.set_result(message)
        elif kind == "error":
            self.errors.append(str(message.get("message")))
            if self.subscribed is not None and not self.subscribed.done():
                self.subscribed.set_exception(RuntimeError(f"subscribe failed: {message}"))

    def closed(self, code: int | None) -> None:
        code = code if code is not None else 1006
        self.closes.append(code)
        for future in (self.welcome, self.subscribed):
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"closed with {code}"))
        if self.on_close is not None:
            self.on_close(code)


# -- framing: the vimax protocol, or Socket.IO --------------------------------------


class VimaxFraming:
    """The vimax protocol: each text message is one of its frames."""

    def __init__(self, tally: Tally, send: Callable[[str], None]) -> None:
        self.receive = tally.on_text

    @staticmethod
    def outgoing(text: str) -> str:
        return text


class SocketIoFraming:
    """Engine.IO v4 / Socket.IO v5 over one WebSocket, reduced to what the benchmark needs
    (the default namespace, events without acknowledgement, text only)."""

    def __init__(self, tally: Tally, send: Callable[[str], None]) -> None:
        self.tally = tally
        self.send = send

    def receive(self, payload: bytes, now: float) -> None:
        kind = payload[:2]
        if kind == b"42":  # an event: 42["name",DATA]
            start = payload.find(b",", 2) + 1
            self.tally.on_text(payload[start:-1], now)
        elif payload == b"2":  # Engine.IO ping
            self.send("3")
        elif kind == b"40":  # connected to the namespace: the welcome
            self.tally.on_text(b'{"type":"welcome"}', now)
        elif payload[:1] == b"0":  # Engine.IO open: connect to the namespace
            self.send("40")
        elif kind in (b"41", b"44") or payload[:1] == b"1":
            self.tally.errors.append(f"socket.io: {payload[:120]!r}")

    @staticmethod
    def outgoing(text: str) -> str:
        return f'42["subscribe",{text}]'


FRAMINGS: dict[str, type[VimaxFraming] | type[SocketIoFraming]] = {
    "vimax": VimaxFraming,
    "socketio": SocketIoFraming,
}


def extension_params(header: str) -> dict[str, str | None]:
    """The parameters of the permessage-deflate extension in ``header`` (a server's
    ``Sec-WebSocket-Extensions`` answer); empty when it is not there."""
    for extension in header.split(","):
        name, *params = (part.strip() for part in extension.split(";"))
        if name == "permessage-deflate":
            parsed: dict[str, str | None] = {}
            for param in params:
                key, sep, value = param.partition("=")
                parsed[key.strip()] = value.strip().strip('"') if sep else None
            return parsed
    return {}


# -- the raw client -------------------------------------------------------------------


class RawClient(asyncio.Protocol):
    """A WebSocket client reduced to what the benchmark needs: server frames are
    unmasked; text messages, fragmented or not, compressed (RSV1) or not when
    permessage-deflate was negotiated; pings answered; the client's own frames are
    never compressed."""

    def __init__(
        self, tally: Tally, host: str, target: str, token: str, deflate: bool, framing: str
    ) -> None:
        self.tally = tally
        self.key = generate_key()
        offer = f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n" if deflate else ""
        self.request = (
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: token {token}\r\n{offer}\r\n"
        ).encode()
        self.offered = deflate
        self.framing = FRAMINGS[framing](tally, self.send_raw)
        self.transport: asyncio.Transport | None = None
        self.opened = False
        self.ended = False
        self.buffer = b""
        self.inflate = False  # permessage-deflate negotiated
        self.fresh_per_message = False  # server_no_context_takeover: no shared window
        self.decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        self.fragments: list[bytes] = []  # of a message still arriving
        self.fragmented_rsv1 = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def send_raw(self, text: str) -> None:
        """Send ``text`` as one (uncompressed) text frame."""
        assert self.transport is not None
        self.transport.write(Frame(Opcode.TEXT, text.encode()).serialize(mask=True))

    def send_text(self, text: str) -> None:
        """Send the protocol message ``text`` in its framing."""
        self.send_raw(self.framing.outgoing(text))

    def _end(self, code: int | None) -> None:
        if not self.ended:
            self.ended = True
            self.tally.closed(code)

    def close(self) -> None:
        self.ended = True  # a close of ours is not the server's
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self.transport.write(
                    Frame(Opcode.CLOSE, (1000).to_bytes(2, "big")).serialize(mask=True)
                )
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(None)

    def _handshake(self, head: bytes) -> bool:
        """Check the server's answer; settle the extension. False (closed) if refused."""
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
        tally = self.tally
        if not lines[0].startswith("HTTP/1.1 101") or headers.get(
            "sec-websocket-accept"
        ) != accept_key(self.key):
            tally.errors.append(f"handshake refused: {lines[0]}")
            self._end(1002)
            assert self.transport is not None
            self.transport.close()
            return False
        answer = headers.get("sec-websocket-extensions", "")
        tally.negotiated = answer or "none"
        params = extension_params(answer)
        if answer and not self.offered:
            tally.errors.append(f"an extension was negotiated, none was offered: {answer}")
        self.inflate = "permessage-deflate" in answer
        self.fresh_per_message = "server_no_context_takeover" in params
        return True

    def _message(self, payload: bytes, compressed: bool, now: float) -> None:
        self.tally.messages += 1
        if compressed:
            if not self.inflate:
                self.tally.errors.append("a compressed frame without permessage-deflate")
                return
            inflater = (
                zlib.decompressobj(-zlib.MAX_WBITS) if self.fresh_per_message else self.decompressor
            )
            payload = inflater.decompress(payload + DEFLATE_TAIL)
            self.tally.compressed += 1
        self.framing.receive(payload, now)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data if self.buffer else data
        if not self.opened:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not self._handshake(buffer[:end]):
                return
            self.opened = True
            buffer = buffer[end + 4 :]
        size = len(buffer)
        pos = 0
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head = 10
            end = pos + head + length
            if end > size:
                break
            payload = buffer[pos + head : end]
            pos = end
            opcode = first & 0x0F
            if second & 0x80:
                self.tally.errors.append("a masked frame from the server")
            elif opcode == 1:
                if first & 0x80:
                    self._message(payload, bool(first & 0x40), now)
                else:
                    self.fragments = [payload]
                    self.fragmented_rsv1 = bool(first & 0x40)
            elif opcode == 0 and self.fragments:
                self.fragments.append(payload)
                if first & 0x80:
                    whole = b"".join(self.fragments)
                    self.fragments = []
                    self._message(whole, self.fragmented_rsv1, now)
            elif opcode == 9:  # ping: answer pong
                assert self.transport is not None
                self.transport.write(Frame(Opcode.PONG, payload).serialize(mask=True))
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._end(code)
                self.close()
                return
            elif opcode != 10:
                self.tally.errors.append(f"unexpected frame {first:#x} {second:#x}")
        self.buffer = buffer[pos:]


# -- the websockets client -----------------------------------------------------------


async def _websockets_reader(
    ws: ClientConnection, tally: Tally, receive: Callable[[bytes, float], None]
) -> None:
    try:
        while True:
            payload = await ws.recv(decode=False)
            tally.messages += 1
            receive(payload, time.time())
    except ConnectionClosed as exc:
        tally.closed(exc.rcvd.code if exc.rcvd is not None else None)


class Subscriber:
    """One ``raw`` or ``websockets`` subscriber: connects, subscribes, and after a close
    (4008 among others) reconnects and resumes from its last seq, as the protocol asks."""

    def __init__(self, tally: Tally, options: Options, gate: asyncio.Semaphore) -> None:
        self.tally = tally
        self.options = options
        self.gate = gate
        self.epoch: str | None = None
        self.reconnects = 0
        self.stopping = False
        self._close: Any = None
        self._send: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        tally.on_close = self._closed

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connect(self, after: int | None) -> None:
        """Open, wait for ``welcome``, subscribe after ``after``, wait for ``subscribed``."""
        options, tally = self.options, self.tally
        loop = asyncio.get_running_loop()
        tally.welcome = loop.create_future()
        tally.subscribed = loop.create_future()
        url = urllib.parse.urlsplit(options.ws_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        target = url.path + (f"?{url.query}" if url.query else "")
        deflate = options.compression == "deflate"
        async with self.gate:
            if options.impl == "raw":
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: RawClient(
                            tally, f"{host}:{port}", target, options.token, deflate, options.framing
                        ),
                        host,
                        port,
                    ),
                    30,
                )
                self._close, self._send = protocol.close, protocol.send_text
            else:
                ws = await connect(
                    options.ws_url,
                    compression="deflate" if deflate else None,
                    additional_headers={"Authorization": f"token {options.token}"},
                    max_size=None,
                    ping_interval=None,
                    open_timeout=30,
                )
                answer = (
                    ws.response.headers.get("Sec-WebSocket-Extensions") if ws.response else None
                )
                tally.negotiated = answer or "none"
                if answer and not deflate:
                    tally.errors.append(f"an extension was negotiated, none was offered: {answer}")

                def send_raw(text: str) -> None:
                    self._spawn(ws.send(text))

                framing = FRAMINGS[options.framing](tally, send_raw)
                self._spawn(_websockets_reader(ws, tally, framing.receive))
                self._close = ws.close
                self._send = lambda text: send_raw(framing.outgoing(text))
            welcome = await asyncio.wait_for(asyncio.shield(tally.welcome), 30)
        self.epoch = welcome.get("epoch") or self.epoch
        request: dict[str, Any] = {"type": "subscribe", "room": options.room, "after": after}
        if self.epoch is not None and after:
            request["epoch"] = self.epoch
        tally.after = after
        self._send(json.dumps(request))
        await asyncio.wait_for(asyncio.shield(tally.subscribed), 60)

    def _closed(self, code: int) -> None:
        if self.stopping:
            return
        if self.reconnects >= MAX_RECONNECTS:
            self.tally.errors.append(f"gave up after {MAX_RECONNECTS} reconnections")
            self.tally.finish()
            return
        self.reconnects += 1
        self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        await asyncio.sleep(RECONNECT_DELAY * self.reconnects)
        if self.stopping:
            return
        try:
            await self.connect(self.tally.last_seq)
        except Exception as exc:  # its close triggered the next attempt, or it failed
            self.tally.errors.append(f"reconnection failed: {exc!r}"[:200])
            if not self.tally.closes or self.reconnects >= MAX_RECONNECTS:
                self.tally.finish()

    async def stop(self) -> None:
        self.stopping = True
        if self._close is not None:
            with contextlib.suppress(Exception):
                outcome = self._close()
                if asyncio.iscoroutine(outcome):
                    await asyncio.wait_for(outcome, 5)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- the vimax client -------------------------------------------------------------------

_DEFLATE_VALUES: tuple[object, ...] = ("deflate", "on", "always", True)
_PLAIN_VALUES: tuple[object, ...] = ("none", "off", "never", None, False)


def connection_options(compression: str) -> tuple[Any, dict[str, Any], str]:
    """How to ask ``vimax_nb.client.ClientConnection`` for ``compression``: its
    ``SocketOptions``, keyword arguments of its own, and what was asked, in words.

    The option is looked for by name (``compress`` or ``deflate`` in it), in
    ``SocketOptions`` first, then among ``ClientConnection``'s parameters; the first
    value of the usual spellings that the option takes is used. Without such an option
    the client offers what it offers by default (the figures say what was negotiated).
    """
    from vimax_nb.client import ClientConnection, SocketOptions

    values = _DEFLATE_VALUES if compression == "deflate" else _PLAIN_VALUES
    for option in dataclasses.fields(SocketOptions):
        if "compress" in option.name or "deflate" in option.name:
            default = option.default
            for value in values:
                if isinstance(default, bool) != isinstance(value, bool):
                    continue
                try:
                    made = SocketOptions(open_timeout=30, **{option.name: value})
                except (TypeError, ValueError):
                    continue
                return made, {}, f"SocketOptions({option.name}={value!r})"
    for name, parameter in inspect.signature(ClientConnection).parameters.items():
        if "compress" in name or "deflate" in name:
            default = parameter.default
            for value in values:
                if isinstance(default, bool) != isinstance(value, bool):
                    continue
                return SocketOptions(open_timeout=30), {name: value}, f"{name}={value!r}"
    return (
        SocketOptions(open_timeout=30),
        {},
        "no compression option in SocketOptions or ClientConnection: its default offer",
    )


def _negotiated_extensions(connection: Any) -> str | None:
    """The Sec-WebSocket-Extensions answer on ``connection``'s current socket, if any
    (read from its private socket: a benchmark's look, not an API)."""
    ws = getattr(getattr(connection, "_socket", None), "_ws", None)
    response = getattr(ws, "response", None)
    if response is None:
        return None
    answer: str | None = response.headers.get("Sec-WebSocket-Extensions")
    return answer or "none"


class ConnectionSubscriber:
    """One ``vimax_nb.client.ClientConnection`` following the room; it reconnects and
    resumes by itself. Its callbacks run on its own thread."""

    def __init__(self, tally: Tally, options: Options, gate: asyncio.Semaphore) -> None:
        self.tally = tally
        self.options = options
        self.gate = gate
        self.connection: Any = None
        self.reconnects = 0
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.offer = ""

    async def connect(self, after: int | None) -> None:
        """Start the connection, subscribe after ``after``, wait for ``subscribed``."""
        from vimax_nb.client import ClientConnection

        options, tally = self.options, self.tally
        self.loop = loop = asyncio.get_running_loop()
        tally.subscribed = loop.create_future()
        tally.last_seq = after or 0
        socket_options, kwargs, self.offer = connection_options(options.compression)
        url = urllib.parse.urlsplit(options.ws_url)
        base_path = url.path.removesuffix("/vimax/ws")
        base = f"http://{url.netloc}{base_path}/"
        async with self.gate:
            self.connection = ClientConnection(base, options.token, socket_options, **kwargs)
            self.connection.on_state(self._state)
            self.connection.subscribe(
                options.room, self._event, after=after, on_subscribed=self._subscribed
            )
            await asyncio.wait_for(asyncio.shield(tally.subscribed), 60)

    def _event(self, event: Any) -> None:
        self.tally.on_event(event.seq, event.message, time.time())

    def _subscribed(self, answer: Any) -> None:
        self.tally.negotiated = _negotiated_extensions(self.connection) or "unknown"
        subscribed = self.tally.subscribed

        def resolve() -> None:
            if subscribed is not None and not subscribed.done():
                subscribed.set_result(answer.model_dump())

        assert self.loop is not None
        self.loop.call_soon_threadsafe(resolve)

    def _state(self, state: Any) -> None:
        if str(state) == "offline" and not self.stopping:
            self.reconnects += 1
            self.tally.closes.append(1006)

    async def stop(self) -> None:
        self.stopping = True
        if self.connection is not None:
            await asyncio.to_thread(self.connection.close, 5)


# -- the run ----------------------------------------------------------------------------


@dataclass
class Options:
    ws_url: str
    http_url: str
    token: str
    room: str
    after: int | None
    workflow: str
    clients: int
    events: int
    repeat: int
    rate: float
    seconds: float
    sample: int
    impl: str
    compression: str
    framing: str
    pad: int
    warmup: float
    profile: str | None


def http(options: Options, method: str, path: str, timeout: float, **query: Any) -> Any:
    """A request to the server's benchmark endpoints; the decoded JSON answer."""
    url = f"{options.http_url}/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(
        url,
        method=method,
        data=b"" if method == "POST" else None,
        headers={"Authorization": f"token {options.token}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run(options: Options) -> dict[str, Any]:
    _LOOP_THREAD[0] = threading.get_ident()
    tallies = [Tally(i, options.sample) for i in range(options.clients)]
    gate = asyncio.Semaphore(20)
    kind = ConnectionSubscriber if options.impl == "connection" else Subscriber
    subscribers = [kind(t, options, gate) for t in tallies]
    results: dict[str, Any] = {
        "impl": options.impl,
        "compression": options.compression,
        "clients": options.clients,
        "phases": [],
    }
    after = options.after
    if after is None:
        after = int((await asyncio.to_thread(http, options, "GET", "stats", 30))["top"])
    try:
        started = time.time()
        await asyncio.wait_for(asyncio.gather(*(s.connect(after) for s in subscribers)), 90)
        results["connect_seconds"] = time.time() - started
        # The paced phase first: its latency is then measured in a steady state, not in
        # the wake of a burst (heap grown, connections resuming after a 4008).
        phases = [("latency", round(options.rate * options.seconds), options.rate)]
        phases += [("throughput", options.events, 0.0)] * options.repeat
        if options.profile == "fast":  # an extra phase under cProfile, not counted
            phases.insert(0, ("profiled", options.events, 0.0))
        elif options.profile == "paced":
            phases.insert(0, ("profiled", phases[0][1], options.rate))
        if options.warmup > 0:  # not counted: the servers' first events meet cold caches
            phases.insert(0, ("warmup", round(options.rate * options.warmup), options.rate))
        for name, count, rate in phases:
            results["phases"].append(
                await run_phase(options, tallies, name, count, rate, profile=name == "profiled")
            )
            results["phases"][-1]["reconnects_so_far"] = sum(s.reconnects for s in subscribers)
    finally:
        await asyncio.gather(*(s.stop() for s in subscribers), return_exceptions=True)
    results["errors"] = sorted({e for t in tallies for e in t.errors})[:10]
    results["negotiated"] = dict(Counter(t.negotiated or "not opened" for t in tallies))
    results["messages"] = sum(t.messages for t in tallies)
    results["compressed"] = sum(t.compressed for t in tallies)
    if isinstance(subscribers[0], ConnectionSubscriber):
        results["offer"] = subscribers[0].offer
    return results


async def run_phase(
    options: Options, tallies: list[Tally], name: str, count: int, rate: float, *, profile: bool
) -> dict[str, Any]:
    for tally in tallies:
        tally.start_phase(count)
    before = await asyncio.to_thread(http, options, "GET", "stats", 30)
    if profile:
        await asyncio.to_thread(http, options, "POST", "profile", 30, action="start")
    cpu0, wall0 = time.process_time(), time.time()
    # bounded: the paced phase's length, or the fast phase at 2,000 deliveries/s, + 30 s
    deadline = (count / rate if rate > 0 else count * len(tallies) / 2_000) + 30
    emit = asyncio.ensure_future(
        asyncio.to_thread(
            http,
            options,
            "POST",
            "emit",
            deadline,
            count=count,
            rate=rate,
            pad=options.pad,
            workflow=options.workflow,
        )
    )
    waiting = [t.done for t in tallies if t.done is not None]
    _, pending = await asyncio.wait(waiting, timeout=deadline)
    wall1 = time.time()
    cpu1 = time.process_time()
    emitted = await asyncio.wait_for(emit, 30)
    if profile:
        await asyncio.to_thread(http, options, "POST", "profile", 30, action="stop")
    after = await asyncio.to_thread(http, options, "GET", "stats", 30)
    deliveries = sum(t.count for t in tallies)
    last_receipt = max((t.last_receipt for t in tallies if t.count), default=wall1)
    span = max(last_receipt - emitted["first_emit"], 1e-9)
    latencies = [x for t in tallies for x in t.latencies]
    server_cpu = after["process_cpu"] - before["process_cpu"]
    loop_cpu = after["loop_cpu"] - before["loop_cpu"]
    server_deliveries = after["deliveries"] - before["deliveries"]
    return {
        "phase": name,
        "events": count,
        "rate": rate,
        "deliveries": deliveries,
        "expected": count * len(tallies),
        "incomplete_clients": len(pending),
        "seconds": span,
        "deliveries_per_second": deliveries / span,
        "emit_seconds": emitted["last_emit"] - emitted["first_emit"],
        "worst_pacing_lag_ms": emitted["worst_lag"] * 1000,
        "latency_samples": len(latencies),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "gaps": sum(t.gaps for t in tallies),
        "duplicates": sum(t.duplicates for t in tallies),
        "bad_events": sum(t.bad_events for t in tallies),
        "closed": sorted({code for t in tallies for code in t.closes}),
        "closes": sum(len(t.closes) for t in tallies),
        "unrecovered": sum(t.unrecovered for t in tallies),
        "clients_cpu": (cpu1 - cpu0) / max(wall1 - wall0, 1e-9),
        "clients_cpu_us_per_message": (cpu1 - cpu0) / max(deliveries, 1) * 1e6,
        "server_cpu": server_cpu / span,
        "server_loop_cpu": loop_cpu / span,
        "server_cpu_us_per_delivery": server_cpu / max(server_deliveries, 1) * 1e6,
        "server_loop_us_per_delivery": loop_cpu / max(server_deliveries, 1) * 1e6,
        "server_deliveries": server_deliveries,
        "slow_consumer_closes": after["slow_consumer_closes"] - before["slow_consumer_closes"],
        "pacing_p99_lag_ms": emitted["p99_lag"] * 1000,
        "worst_pacing_lag_at": emitted["worst_lag_at"],
        "server_gc": {k: v for k, v in after.items() if k.startswith("gc_")},
        "server_log": after.get("log"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--http-url", required=True, help="the base of emit, stats, profile")
    parser.add_argument("--token", default="")
    parser.add_argument("--room", required=True)
    parser.add_argument("--after", type=int, default=None)
    parser.add_argument("--workflow", default="")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sample", type=int, default=10)
    parser.add_argument("--impl", choices=["raw", "websockets", "connection"], default="raw")
    parser.add_argument("--compression", choices=["deflate", "none"], default="none")
    parser.add_argument("--framing", choices=["vimax", "socketio"], default="vimax")
    parser.add_argument("--pad", type=int, default=0, help="filler characters per event")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of paced events first, not counted"
    )
    parser.add_argument(
        "--profile", choices=["fast", "paced"], help="add a phase like it under cProfile"
    )
    args = parser.parse_args()
    if args.framing == "socketio" and args.impl == "connection":
        parser.error("vimax_nb.client.ClientConnection speaks the vimax protocol only")
    options = Options(**vars(args))
    results = asyncio.run(run(options))
    sys.stdout.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
