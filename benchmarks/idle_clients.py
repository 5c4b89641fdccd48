"""The idle subscribers of ``idle_connections.py``: WebSocket connections held open by a few
client processes.

Each connection is opened as ``vimax_nb``'s client opens its socket: the ``websockets``
library's ``connect`` with an ``Authorization: token`` header, no size limit, and
permessage-deflate offered with the library's defaults (``compression="deflate"``) or not
at all (``None``); it pings the server every ``ping_interval`` seconds as the client does
once the ``welcome`` has told it the server's heartbeat. It reads the ``welcome``,
subscribes to one room (``after`` null) and waits for ``subscribed``; from then on a
reader per connection takes whatever the server sends (so pings are answered and the
library's queue never stops the socket) and records how the connection ended.

A :class:`ClientPool` runs :func:`worker_main` in ``processes`` forked processes, each
holding its share of the connections in its own asyncio loop, and talks to them over
pipes: open everything, report, stop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from _workers import Workers
from idle_common import raise_fd_limit
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

COMMAND_TIMEOUT = 300.0  # seconds a client process may take to answer a command
ERRORS_KEPT = 5


@dataclass(frozen=True)
class ClientSpec:
    """How to open the connections: where, with what, how many at once."""

    url: str
    token: str | None
    count: int
    compression: str | None  # "deflate" (the websockets default) or None
    ping_interval: float | None
    concurrency: int = 32  # handshakes in flight per process
    room: str = "coordinator"


@dataclass
class Opened:
    """What opening the connections gave: how many, how long, what was agreed."""

    opened: int = 0
    failed: int = 0
    seconds: float = 0.0
    extensions: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def merge(self, other: dict[str, Any]) -> None:
        """Add another process's figures (as :func:`worker_main` sends them)."""
        self.opened += other["opened"]
        self.failed += other["failed"]
        self.extensions.update(other["extensions"])
        self.errors.extend(other["errors"][: max(0, ERRORS_KEPT - len(self.errors))])


class IdleClients:
    """Connections of one process, opened by :meth:`open_all`, then left idle."""

    def __init__(self, spec: ClientSpec) -> None:
        self.spec = spec
        self.connections: list[ClientConnection] = []
        self.readers: set[asyncio.Task[None]] = set()
        self.closes: Counter[str] = Counter()
        self.messages = 0

    async def open_all(self) -> Opened:
        """Open ``spec.count`` connections, at most ``spec.concurrency`` handshakes at once;
        each is subscribed when this returns, or counted as failed."""
        opened = Opened()
        gate = asyncio.Semaphore(self.spec.concurrency)
        started = time.perf_counter()
        results = await asyncio.gather(
            *(self._open_one(gate, opened) for _ in range(self.spec.count)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                opened.failed += 1
                if len(opened.errors) < ERRORS_KEPT:
                    opened.errors.append(f"{type(result).__name__}: {result}")
        opened.seconds = time.perf_counter() - started
        return opened

    async def _open_one(self, gate: asyncio.Semaphore, opened: Opened) -> None:
        spec = self.spec
        headers = {"Authorization": f"token {spec.token}"} if spec.token else {}
        async with gate:
            ws = await connect(
                spec.url,
                additional_headers=headers,
                compression=spec.compression,
                ping_interval=spec.ping_interval,
                ping_timeout=spec.ping_interval,
                open_timeout=120,
                close_timeout=1,
                max_size=None,
            )
            welcome = json.loads(await ws.recv())
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"the first frame was not a welcome: {welcome}")
            subscribe = {"type": "subscribe", "room": spec.room, "after": None, "id": "idle"}
            await ws.send(json.dumps(subscribe))
            while True:
                message = json.loads(await ws.recv())
                self.messages += 1
                if message.get("type") == "subscribed":
                    break
                if message.get("type") == "error":
                    raise RuntimeError(f"subscribe refused: {message}")
        assert ws.response is not None
        opened.extensions[ws.response.headers.get("Sec-WebSocket-Extensions", "")] += 1
        opened.opened += 1
        self.connections.append(ws)
        reader = asyncio.ensure_future(self._read(ws))
        self.readers.add(reader)
        reader.add_done_callback(self.readers.discard)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for _ in ws:
                self.messages += 1
        except ConnectionClosed:
            pass
        code = ws.close_code
        self.closes[str(code) if code is not None else "none"] += 1

    def status(self) -> dict[str, Any]:
        """Connections still open, how the others ended, messages received."""
        return {
            "open": len(self.readers),
            "closes": dict(self.closes),
            "messages": self.messages,
        }

    def abort_all(self) -> None:
        """Drop every connection at once (no closing handshake)."""
        for ws in self.connections:
            ws.transport.abort()


async def _serve(pipe: Connection, spec: ClientSpec) -> None:
    clients = IdleClients(spec)
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "open":
            opened = await clients.open_all()
            pipe.send(
                {
                    "opened": opened.opened,
                    "failed": opened.failed,
                    "seconds": opened.seconds,
                    "extensions": dict(opened.extensions),
                    "errors": opened.errors,
                }
            )
        elif command == "status":
            pipe.send(clients.status())
        elif command == "stop":
            clients.abort_all()
            pipe.send({})
            return


def worker_main(pipe: Connection, spec: ClientSpec) -> None:
    """A client process: raise the open-file limit, then answer ``open``, ``status`` and
    ``stop`` commands from ``pipe`` until ``stop``."""
    raise_fd_limit()
    asyncio.run(_serve(pipe, spec))


class ClientPool:
    """``spec.count`` connections split over ``processes`` forked client processes."""

    def __init__(self, spec: ClientSpec, processes: int) -> None:
        self.workers = Workers(
            lambda pipe, share: worker_main(pipe, replace(spec, count=share)),
            spec.count,
            processes,
            COMMAND_TIMEOUT,
        )

    def _ask(self, command: str) -> list[dict[str, Any]]:
        self.workers.send(command)
        return self.workers.answers(repr(command))

    def open(self) -> Opened:
        """Open every connection; ``seconds`` is the wall time until all processes are done."""
        started = time.perf_counter()
        opened = Opened()
        for answer in self._ask("open"):
            opened.merge(answer)
        opened.seconds = time.perf_counter() - started
        return opened

    def status(self) -> dict[str, Any]:
        """Open connections, closes by code and messages received, over all processes."""
        total: dict[str, Any] = {"open": 0, "closes": Counter(), "messages": 0}
        for answer in self._ask("status"):
            total["open"] += answer["open"]
            total["closes"].update(answer["closes"])
            total["messages"] += answer["messages"]
        return total

    def stop(self) -> None:
        """Drop every connection and end the processes."""
        try:
            self._ask("stop")
        finally:
            self.workers.join()
