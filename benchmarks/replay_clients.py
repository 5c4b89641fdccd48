"""The resuming clients of ``replay_missed.py``: each subscribes to one room ``after`` a
seq (with the epoch) and times the arrival of every event up to an expected last seq.

Three kinds:

- :class:`RawClient` (``raw``, ``raw-deflate``): an ``asyncio.Protocol`` with a
  handwritten handshake (``websockets.utils``' key functions) that finds each event's
  seq by a byte search, no JSON decoding; ``raw-deflate`` offers permessage-deflate as
  the ``websockets`` library does (``permessage-deflate; client_max_window_bits``) and
  inflates compressed frames with ``zlib``, keeping the context unless the server
  agreed ``server_no_context_takeover``. The fastest a Python client takes the events.
- :func:`websockets_resume` (``websockets``, ``websockets-none``): the ``websockets``
  library's ``connect`` as ``vimax_nb``'s client calls it (its default deflate offer,
  or ``compression=None``), ``recv`` and ``json.loads`` per message.
- :func:`client_resume`: ``vimax_nb.client.ClientConnection`` itself, the client in
  users' kernels (its thread, reconnecting socket, parsing into the protocol's models,
  per-subscription dedup), with the :class:`~vimax_nb.client.reconnecting.SocketOptions`
  given.

:class:`ManyClients` resumes many raw clients at once from forked processes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from _workers import Workers
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode
from websockets.utils import accept_key, generate_key

SEQ_KEY = b'"seq":'
DEFLATE_TAIL = b"\x00\x00\xff\xff"
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
OPEN_TIMEOUT = 60.0
COMMAND_TIMEOUT = 600.0
PROBLEMS_KEPT = 5


def seq_of(payload: bytes) -> int | None:
    """The seq of a stored event's frame (None for a frame without one)."""
    at = payload.find(SEQ_KEY)
    if at < 0:
        return None
    at += len(SEQ_KEY)
    end = at
    while end < len(payload) and 48 <= payload[end] <= 57:
        end += 1
    return int(payload[at:end])


@dataclass
class Resumed:
    """One client's resume: what arrived, when, what was agreed."""

    events: int = 0
    bytes: int = 0
    subscribed_at: float = 0.0  # time.time() of the subscribed answer
    sent_at: float = 0.0  # time.time() the subscribe was sent
    done_at: float = 0.0  # time.time() the expected last event arrived
    extensions: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """From sending the subscribe to the last expected event."""
        return self.done_at - self.sent_at if self.done_at else float("inf")

    def problem(self, text: str) -> None:
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(text)


class SeqCheck:
    """Counts one room's events from ``after`` + 1 to ``last``, each once, in order."""

    def __init__(self, resumed: Resumed, after: int, last: int) -> None:
        self.resumed = resumed
        self.position = after
        self.last = last
        self.done: asyncio.Future[None] | None = None

    def event(self, seq: int, size: int) -> None:
        resumed = self.resumed
        if seq != self.position + 1:
            resumed.problem(f"seq {seq} after {self.position}")
        self.position = seq
        resumed.events += 1
        resumed.bytes += size
        if seq >= self.last and not resumed.done_at:
            resumed.done_at = time.time()
            if self.done is not None and not self.done.done():
                self.done.set_result(None)


# -- the raw client ------------------------------------------------------------------------


class RawClient(asyncio.Protocol):
    """A WebSocket client reduced to what the benchmark needs: server frames are
    unmasked and unfragmented; permessage-deflate if ``deflate`` is offered and agreed."""

    def __init__(self, url: str, token: str | None, deflate: bool) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.key = generate_key()
        headers = [
            f"GET {parts.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            "Sec-WebSocket-Version: 13",
        ]
        if token:
            headers.append(f"Authorization: token {token}")
        if deflate:
            headers.append(f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}")
        self.request = ("\r\n".join(headers) + "\r\n\r\n").encode()
        self.transport: asyncio.Transport | None = None
        self.opened = False
        self.buffer = b""
        self.inflate: Callable[[bytes], bytes] | None = None
        self.resumed = Resumed()
        self.check: SeqCheck | None = None
        loop = asyncio.get_running_loop()
        self.welcome: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.subscribed: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.closed: asyncio.Future[int] = loop.create_future()

    async def open(self) -> dict[str, Any]:
        """Connect; the ``welcome`` message."""
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, self.host, self.port)
        return await asyncio.wait_for(self.welcome, OPEN_TIMEOUT)

    def resume(self, room: str, after: int, epoch: str, last: int) -> asyncio.Future[None]:
        """Subscribe to ``room`` after ``after``; the future is done at seq ``last``."""
        self.check = SeqCheck(self.resumed, after, last)
        self.check.done = asyncio.get_running_loop().create_future()
        message = {"type": "subscribe", "room": room, "after": after, "epoch": epoch, "id": "r"}
        self.resumed.sent_at = time.time()
        self.send_text(json.dumps(message))
        return self.check.done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def send_text(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(Frame(Opcode.TEXT, text.encode()).serialize(mask=True))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(
                Frame(Opcode.CLOSE, (1000).to_bytes(2, "big")).serialize(mask=True)
            )
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(1006)

    def _closed(self, code: int) -> None:
        if not self.closed.done():
            self.closed.set_result(code)
        for future in (self.welcome, self.subscribed):
            if not future.done():
                future.set_exception(ConnectionError(f"closed with {code}"))
        if self.check is not None and self.check.done is not None and not self.check.done.done():
            self.check.done.set_exception(ConnectionError(f"closed with {code}"))

    def _handshake(self, head: bytes) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
        if not lines[0].startswith("HTTP/1.1 101") or headers.get(
            "sec-websocket-accept"
        ) != accept_key(self.key):
            self.resumed.problem(f"handshake refused: {lines[0]}")
            return False
        agreed = headers.get("sec-websocket-extensions", "")
        self.resumed.extensions = agreed
        if agreed:
            params = dict(p.strip().partition("=")[::2] for p in agreed.split(";")[1:])
            wbits = int(params.get("server_max_window_bits") or 15)
            if "server_no_context_takeover" in params:
                self.inflate = lambda data: zlib.decompressobj(-wbits).decompress(data)
            else:
                self.inflate = zlib.decompressobj(-wbits).decompress
        return True

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.opened:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not self._handshake(buffer[:end]):
                self._closed(1002)
                assert self.transport is not None
                self.transport.close()
                return
            self.opened = True
            buffer = buffer[end + 4 :]
        size, pos = len(buffer), 0
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > size:
                break
            payload = buffer[pos + head : end]
            pos = end
            opcode = first & 0x0F
            if opcode == 1:
                if first & 0x40:  # RSV1: compressed
                    assert self.inflate is not None
                    payload = self.inflate(payload + DEFLATE_TAIL)
                self._text(payload)
            elif opcode == 9:
                assert self.transport is not None
                self.transport.write(Frame(Opcode.PONG, payload).serialize(mask=True))
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._closed(code)
                self.close()
                return
        self.buffer = buffer[pos:]

    def _text(self, payload: bytes) -> None:
        seq = seq_of(payload)
        if seq is not None and self.check is not None:
            self.check.event(seq, len(payload))
            return
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "welcome" and not self.welcome.done():
            self.welcome.set_result(message)
        elif kind == "subscribed" and not self.subscribed.done():
            self.resumed.subscribed_at = time.time()
            if not message.get("recovered"):
                self.resumed.problem("not recovered")
            self.subscribed.set_result(message)
        elif kind == "error":
            self.resumed.problem(f"error: {message.get('message')}")


async def raw_resume(
    url: str, token: str | None, deflate: bool, room: str, after: int, last: int
) -> Resumed:
    """One raw client: connect, then resume ``room`` after ``after`` up to seq ``last``."""
    client = RawClient(url, token, deflate)
    welcome = await client.open()
    try:
        await asyncio.wait_for(client.resume(room, after, welcome["epoch"], last), COMMAND_TIMEOUT)
    finally:
        client.close()
    return client.resumed


# -- the websockets client -----------------------------------------------------------------


async def websockets_resume(
    url: str, token: str | None, compression: str | None, room: str, after: int, last: int
) -> Resumed:
    """``websockets.connect`` as our client calls it; ``json.loads`` of every message."""
    resumed = Resumed()
    check = SeqCheck(resumed, after, last)
    headers = {"Authorization": f"token {token}"} if token else {}
    async with connect(
        url, additional_headers=headers, compression=compression, max_size=None
    ) as ws:
        assert ws.response is not None
        resumed.extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        welcome = json.loads(await ws.recv())
        subscribe = {
            "type": "subscribe",
            "room": room,
            "after": after,
            "epoch": welcome["epoch"],
            "id": "r",
        }
        resumed.sent_at = time.time()
        await ws.send(json.dumps(subscribe))
        async with asyncio.timeout(COMMAND_TIMEOUT):
            async for raw in ws:
                message = json.loads(raw)
                seq = message.get("seq")
                if seq is not None:
                    check.event(seq, len(raw))
                    if resumed.done_at:
                        break
                elif message.get("type") == "subscribed":
                    resumed.subscribed_at = time.time()
                    if not message.get("recovered"):
                        resumed.problem("not recovered")
                elif message.get("type") == "error":
                    resumed.problem(f"error: {message.get('message')}")
    return resumed


# -- vimax_nb's client ---------------------------------------------------------------------


def client_resume(
    base_url: str,
    token: str,
    options: Any,
    room: str,
    after: int,
    last: int,
    agreed: Callable[[], str] | None = None,
) -> Resumed:
    """``vimax_nb.client.ClientConnection`` with ``options``: started and welcomed first,
    then subscribed to ``room`` after ``after`` (the epoch its welcome gave) until its
    callback has had seq ``last``; ``agreed()``, asked while the connection is still open,
    tells what it agreed (the client does not say)."""
    from vimax_nb.client.connection import ClientConnection
    from vimax_nb.client.reconnecting import ConnectionState

    resumed = Resumed()
    position = after
    finished = threading.Event()
    connection = ClientConnection(base_url, token, options)
    try:
        connection.start()
        deadline = time.monotonic() + OPEN_TIMEOUT
        while connection.state != ConnectionState.open or connection.epoch is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the client did not connect")
            time.sleep(0.01)

        def on_event(event: Any) -> None:
            nonlocal position
            seq = event.seq
            if seq != position + 1:
                resumed.problem(f"seq {seq} after {position}")
            position = seq
            resumed.events += 1
            if seq >= last and not resumed.done_at:
                resumed.done_at = time.time()
                finished.set()

        def on_subscribed(answer: Any) -> None:
            resumed.subscribed_at = time.time()
            if not answer.recovered:
                resumed.problem("not recovered")

        resumed.sent_at = time.time()
        connection.subscribe(room, on_event, after=after, on_subscribed=on_subscribed)
        if not finished.wait(COMMAND_TIMEOUT):
            resumed.problem(f"only {resumed.events} events in {COMMAND_TIMEOUT} s")
        if agreed is not None:
            resumed.extensions = agreed()
    finally:
        connection.close()
    return resumed


# -- many raw clients at once --------------------------------------------------------------


@dataclass(frozen=True)
class ManySpec:
    """``count`` raw clients of one process resuming ``room`` after ``after`` to ``last``."""

    url: str
    token: str | None
    deflate: bool
    count: int
    room: str
    after: int
    last: int


async def _serve_many(pipe: Connection, spec: ManySpec) -> None:
    loop = asyncio.get_running_loop()
    clients = [RawClient(spec.url, spec.token, spec.deflate) for _ in range(spec.count)]
    try:
        welcomes = await asyncio.gather(*(client.open() for client in clients))
    except Exception as exc:
        pipe.send({"error": f"{type(exc).__name__}: {exc}"})
        return
    pipe.send({"ready": spec.count})
    await loop.run_in_executor(None, pipe.recv)
    cpu = time.process_time()
    waits = [
        client.resume(spec.room, spec.after, welcome["epoch"], spec.last)
        for client, welcome in zip(clients, welcomes, strict=True)
    ]
    outcomes = await asyncio.gather(*waits, return_exceptions=True)
    cpu = time.process_time() - cpu
    for client, outcome in zip(clients, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            client.resumed.problem(f"{type(outcome).__name__}: {outcome}")
        client.close()
    pipe.send({"cpu": cpu, "resumed": [client.resumed.__dict__ for client in clients]})


def _many_main(pipe: Connection, spec: ManySpec) -> None:
    asyncio.run(_serve_many(pipe, spec))


class ManyClients:
    """``spec.count`` raw clients over ``processes`` forked processes: all connected and
    welcomed by :meth:`ready`, all resuming at once on :meth:`go`."""

    def __init__(self, spec: ManySpec, processes: int) -> None:
        self.workers = Workers(
            lambda pipe, share: _many_main(pipe, replace(spec, count=share)),
            spec.count,
            processes,
            COMMAND_TIMEOUT,
        )

    def ready(self) -> None:
        """Return once every client is connected and welcomed; raises ConnectionError if
        one could not connect."""
        answers = self.workers.answers("ready")
        errors = [answer["error"] for answer in answers if "error" in answer]
        if errors:
            raise ConnectionError(f"clients could not connect: {errors}")

    def go(self) -> tuple[list[Resumed], float]:
        """Let every client resume; each client's :class:`Resumed` and the clients' CPU
        seconds, once every client has its last event (or failed)."""
        self.workers.send("go")
        resumed: list[Resumed] = []
        cpu = 0.0
        for answer in self.workers.answers("go"):
            cpu += answer["cpu"]
            resumed.extend(Resumed(**fields) for fields in answer["resumed"])
        self.workers.join()
        return resumed, cpu
