"""The reference of ``idle_connections.py``: a bare Tornado WebSocket server.

``/ws`` accepts any WebSocket (permessage-deflate agreed when offered only with
``--compression deflate``, Tornado's defaults otherwise), pings every client each
``--heartbeat`` seconds as Tornado does (a client that has not answered by the next ping
is closed), sends one ``welcome`` frame on open and answers a ``subscribe`` with
``subscribed``: the least a server holding idle subscribers does. ``POST /settle`` runs a
full collection and answers the resident memory, before and after ``malloc_trim``, and
the connections open; ``POST /tracemalloc?action=start|stop&top=N`` traces allocations
(see ``idle_common.stop_tracing``). The process raises its open-file limit to the hard limit.

Run: ``python benchmarks/idle_bare.py --port P [--compression none|deflate]
[--heartbeat 5]`` (stopped by SIGTERM or SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from typing import Any

from idle_common import raise_fd_limit, settled_memory, start_tracing, stop_tracing
from tornado import web
from tornado.websocket import WebSocketHandler


class Clients:
    """The open connections and the server's settings."""

    def __init__(self, compression: bool, heartbeat: float) -> None:
        self.open: set[IdleSocket] = set()
        self.compression = compression
        self.heartbeat = heartbeat


class IdleSocket(WebSocketHandler):
    def initialize(self, clients: Clients) -> None:
        self.clients = clients

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self.clients.compression else None

    @property
    def ping_interval(self) -> float | None:
        return self.clients.heartbeat or None

    @property
    def ping_timeout(self) -> float | None:
        return self.clients.heartbeat or None

    def open(self, *args: str, **kwargs: str) -> None:
        self.clients.open.add(self)
        welcome = {"type": "welcome", "client_id": str(id(self)), "epoch": "bare"}
        self.write_message(json.dumps(welcome))

    def on_message(self, message: str | bytes) -> None:
        data = json.loads(message)
        if data.get("type") == "subscribe":
            answer = {"type": "subscribed", "room": data.get("room"), "recovered": True, "top": 0}
            self.write_message(json.dumps({**answer, "id": data.get("id")}))

    def on_close(self) -> None:
        self.clients.open.discard(self)


class SettleHandler(web.RequestHandler):
    def initialize(self, clients: Clients) -> None:
        self.clients = clients

    def post(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({**settled_memory(), "connections": len(self.clients.open)}))


class TracemallocHandler(web.RequestHandler):
    def post(self) -> None:
        if self.get_argument("action") == "start":
            start_tracing()
            answer: dict[str, Any] = {"tracing": True}
        else:
            answer = stop_tracing(int(self.get_argument("top", "15")))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(answer))


async def serve(port: int, clients: Clients) -> None:
    kwargs = {"clients": clients}
    app = web.Application(
        [
            (r"/ws", IdleSocket, kwargs),
            (r"/settle", SettleHandler, kwargs),
            (r"/tracemalloc", TracemallocHandler),
        ],
        log_function=lambda handler: None,
    )
    server = app.listen(port, address="127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"bare tornado listening on 127.0.0.1:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--compression", choices=("none", "deflate"), default="none")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="ping interval (0: none)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    raise_fd_limit()
    asyncio.run(serve(args.port, Clients(args.compression == "deflate", args.heartbeat)))


if __name__ == "__main__":
    main()
