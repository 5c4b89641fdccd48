"""A small vimax WebSocket server (protocol v1) for client protocol tests.

It keeps an event log per room and answers ``subscribe`` like the real server: a
``subscribed`` answer (``recovered`` false when the events after ``after`` are no longer
all kept, the epoch differs or ``after`` is beyond ``top``), the replay, then live events,
all in order on one queue per connection. Tests drive it from their own thread: publish
events, hold one back (a gap), forget old ones (retention), change the epoch, drop the
connections, stop answering (a dead peer), stop and restart listening on the same port.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve

T = TypeVar("T")
TIMEOUT = 10.0


@dataclass(eq=False)
class Peer:
    """One client connection: the rooms it follows and its outgoing frames, in order."""

    number: int
    ws: ServerConnection
    outgoing: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    rooms: set[str] = field(default_factory=set)
    frozen: bool = False

    def send(self, frame: dict[str, Any]) -> None:
        if not self.frozen:
            self.outgoing.put_nowait(json.dumps(frame))


class FakeServer:
    """``url`` is the base URL a :class:`~vimax_nb.client.Connection` takes."""

    def __init__(self, *, epoch: str = "epoch-1", heartbeat_interval: float = 30.0) -> None:
        self.epoch = epoch
        self.heartbeat_interval = heartbeat_interval
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.floors: dict[str, int] = {}  # events at or below are forgotten
        self.peers: list[Peer] = []
        self.received: list[tuple[int, dict[str, Any]]] = []  # (peer number, message)
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
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(TIMEOUT)

    def publish(self, room: str, *, live: bool = True, **fields: Any) -> int:
        """Append a progress event to ``room``'s log and send it to its followers (unless
        ``live`` is False: then it is only stored, which makes a gap); its seq."""

        async def work() -> int:
            log = self.logs.setdefault(room, [])
            event = {"type": "progress", "room": room, "seq": len(log) + 1, **fields}
            log.append(event)
            if live:
                for peer in self.peers:
                    if room in peer.rooms:
                        peer.send(event)
            return int(event["seq"])

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

    def messages(self, type_: str | None = None, peer: int | None = None) -> list[dict[str, Any]]:
        """Messages received (of ``type_``, from connection number ``peer``), in order."""
        with self.cond:
            return [
                m
                for n, m in self.received
                if (type_ is None or m.get("type") == type_) and (peer is None or n == peer)
            ]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
        """Wait until ``predicate()`` (checked whenever a message or connection arrives)."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    # -- the server's loop ---------------------------------------------------------------

    async def _call(self, fn: Callable[[], None]) -> None:
        fn()

    async def _listen(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", self.port or 0, ping_interval=None)
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=False)
            for peer in self.peers:
                peer.ws.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, ws: ServerConnection) -> None:
        with self.cond:
            peer = Peer(len(self.peers) + 1, ws)
            self.peers.append(peer)
            self.cond.notify_all()
        peer.send(
            {
                "type": "welcome",
                "client_id": f"c{peer.number}",
                "epoch": self.epoch,
                "protocol": 1,
                "heartbeat_interval": self.heartbeat_interval,
            }
        )
        writer = asyncio.ensure_future(self._write(peer))
        try:
            async for raw in ws:
                message = json.loads(raw)
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

    def _answer(self, peer: Peer, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self._subscribe(peer, message)
        elif kind == "unsubscribe":
            peer.rooms.discard(message["room"])
            peer.send({"type": "unsubscribed", "room": message["room"]})
        elif kind == "ping":
            peer.send({"type": "pong", "ts": message.get("ts")})
        elif kind == "control":
            peer.send(
                {
                    "type": "control_response",
                    "id": message.get("id"),
                    "action": message.get("action"),
                    "ok": True,
                    "state": "paused",
                    "message": "ok",
                }
            )

    def _subscribe(self, peer: Peer, message: dict[str, Any]) -> None:
        room = message["room"]
        log = self.logs.get(room, [])
        after = message.get("after") or 0
        epoch = message.get("epoch")
        top, floor = len(log), self.floors.get(room, 0)
        epoch_ok = epoch is None or epoch == self.epoch
        recovered = epoch_ok and floor <= after <= top
        peer.send(
            {
                "type": "subscribed",
                "room": room,
                "recovered": recovered,
                "top": top,
                "snapshot": {
                    "room": room,
                    "top": top,
                    "epoch": self.epoch,
                },
                "id": message.get("id"),
            }
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
