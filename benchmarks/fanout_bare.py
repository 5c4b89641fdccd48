"""The ceiling of ``fanout.py``: a bare Tornado WebSocket broadcast.

One ``WebSocketHandler`` route (``/ws``) whose clients register in a set, and
``POST /emit?count=N&rate=R``, which serializes each message once
(``json.dumps(...).encode()``) and calls ``write_message(payload)`` for every client:
no log, no rooms, no queues. The messages have the shape of the full path's frames
and the same pacing (``fanout_common.emit_paced``). A ``subscribe`` message is answered
``subscribed`` (with ``top: 0``) so the same clients drive both servers.

Run: ``python benchmarks/fanout_bare.py --port P`` (stopped by SIGTERM or SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import time
from typing import Any

from fanout_common import (
    GcPauses,
    Profiler,
    apply_experiments,
    emit_paced,
    process_figures,
    progress_message,
)
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

ROOM = "workflow:bare"
WORKFLOW_ID = "bare"


class Broadcast:
    """The clients and a counter of messages written."""

    def __init__(self) -> None:
        self.clients: set[BareSocket] = set()
        self.delivered = 0
        self.seq = 0
        self.profiler = Profiler()
        self.gc = GcPauses()


class BareSocket(WebSocketHandler):
    def initialize(self, broadcast: Broadcast) -> None:
        self.broadcast = broadcast

    def open(self, *args: str, **kwargs: str) -> None:
        self.broadcast.clients.add(self)
        self.write_message(json.dumps({"type": "welcome", "client_id": str(id(self))}))

    def on_message(self, message: str | bytes) -> None:
        data = json.loads(message)
        if data.get("type") == "subscribe":
            answer = {"type": "subscribed", "room": data.get("room"), "recovered": True}
            answer["top"] = self.broadcast.seq
            self.write_message(json.dumps(answer))

    def on_close(self) -> None:
        self.broadcast.clients.discard(self)


class _Handler(web.RequestHandler):
    def initialize(self, broadcast: Broadcast) -> None:
        self.broadcast = broadcast

    def answer(self, data: dict[str, Any]) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))


class EmitHandler(_Handler):
    async def post(self) -> None:
        count = int(self.get_argument("count"))
        rate = float(self.get_argument("rate", "0"))
        broadcast = self.broadcast
        clients = broadcast.clients

        def emit(i: int) -> None:
            broadcast.seq += 1
            now = time.time()
            millis = int(now * 1000) % 1000
            timestamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}Z"
            message = progress_message(ROOM, WORKFLOW_ID, broadcast.seq, timestamp, now, i)
            payload = json.dumps(message, separators=(",", ":")).encode()
            for client in list(clients):
                try:
                    client.write_message(payload)
                except WebSocketClosedError:
                    clients.discard(client)
                    continue
                broadcast.delivered += 1

        self.answer(await emit_paced(count, rate, emit))


class StatsHandler(_Handler):
    def get(self) -> None:
        self.answer(
            {
                **process_figures(),
                "deliveries": self.broadcast.delivered,
                "events": self.broadcast.seq,
                "connections": len(self.broadcast.clients),
                "slow_consumer_closes": 0,
                **self.broadcast.gc.take(),
            }
        )


class ProfileHandler(_Handler):
    def post(self) -> None:
        self.answer(self.broadcast.profiler.control(self.get_argument("action")))


async def serve(port: int) -> None:
    broadcast = Broadcast()
    kwargs = {"broadcast": broadcast}
    app = web.Application(
        [
            (r"/ws", BareSocket, kwargs),
            (r"/emit", EmitHandler, kwargs),
            (r"/stats", StatsHandler, kwargs),
            (r"/profile", ProfileHandler, kwargs),
        ],
        log_function=lambda handler: None,
    )
    server = app.listen(port, address="127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    experiments = apply_experiments()
    print(f"bare tornado listening on 127.0.0.1:{port} {experiments}", flush=True)
    try:
        await stop.wait()
    finally:
        server.stop()
        for client in list(broadcast.clients):
            with contextlib.suppress(Exception):
                client.close(1001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
