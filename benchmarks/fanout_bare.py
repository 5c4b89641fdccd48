"""The ceiling of ``fanout.py``: a bare Tornado WebSocket broadcast.

One ``WebSocketHandler`` (``/ws``, and ``/vimax/ws`` for ``vimax_nb.client``) whose
clients register in a set, and the control interface of ``fanout_control`` on the same
port: each event is serialized once (``json.dumps(...).encode()``) and
``write_message(payload)`` is called for every client: no log, no rooms, no queues.
The events have the shape of the full path's frames and the same pacing. A
``subscribe`` is answered ``subscribed`` (``top``: the last seq), the connection
``welcome``, both valid for ``vimax_nb.client``, so the same clients drive every server.

``--compression on`` accepts permessage-deflate when a client offers it
(``get_compression_options`` returns ``{}``: Tornado's defaults, context takeover, each
message compressed for each connection); ``off`` (None) never negotiates it.

Run: ``python benchmarks/fanout_bare.py --port P [--compression on|off]`` (stopped by
SIGTERM or SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from typing import Any

from fanout_common import (
    PEER_ROOM,
    apply_experiments,
    peer_event,
    peer_subscribed,
    peer_welcome,
)
from fanout_control import control_routes, until_signalled
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler


class Broadcast:
    """The clients, the room's last seq and the messages written; a control Backend."""

    def __init__(self) -> None:
        self.clients: set[BareSocket] = set()
        self.delivered = 0
        self.seq = 0

    def emit(self, i: int, pad: int) -> None:
        self.seq += 1
        payload = json.dumps(peer_event(self.seq, i, pad), separators=(",", ":")).encode()
        clients = self.clients
        for client in list(clients):
            try:
                client.write_message(payload)
            except WebSocketClosedError:
                clients.discard(client)
                continue
            self.delivered += 1

    def counters(self) -> dict[str, Any]:
        return {
            "deliveries": self.delivered,
            "events": self.seq,
            "connections": len(self.clients),
            "top": self.seq,
        }


class BareSocket(WebSocketHandler):
    def initialize(self, broadcast: Broadcast, compression: bool) -> None:
        self.broadcast = broadcast
        self.compression = compression

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self.compression else None

    def open(self, *args: str, **kwargs: str) -> None:
        self.broadcast.clients.add(self)
        self.write_message(json.dumps(peer_welcome(str(id(self)))))

    def on_message(self, message: str | bytes) -> None:
        data = json.loads(message)
        if data.get("type") == "subscribe":
            self.write_message(json.dumps(peer_subscribed(data, self.broadcast.seq)))

    def on_close(self) -> None:
        self.broadcast.clients.discard(self)


async def serve(port: int, compression: bool) -> None:
    broadcast = Broadcast()
    socket_args = {"broadcast": broadcast, "compression": compression}
    app = web.Application(
        [
            (r"/ws", BareSocket, socket_args),
            (r"/vimax/ws", BareSocket, socket_args),
            *control_routes(broadcast),
        ],
        log_function=lambda handler: None,
    )
    server = app.listen(port, address="127.0.0.1")
    experiments = apply_experiments()
    print(
        f"bare tornado listening on 127.0.0.1:{port}, room {PEER_ROOM}, "
        f"compression {'on' if compression else 'off'} {experiments}",
        flush=True,
    )
    try:
        await until_signalled()
    finally:
        server.stop()
        for client in list(broadcast.clients):
            with contextlib.suppress(Exception):
                client.close(1001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--compression", choices=["on", "off"], default="off")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.port, args.compression == "on"))


if __name__ == "__main__":
    main()
