"""A peer of ``fanout.py``: the ``websockets`` library's own broadcast.

A ``websockets.asyncio.server`` (any path, so ``/vimax/ws`` too) whose connections
register in a set; each event is serialized once and handed to
``websockets.asyncio.server.broadcast(connections, payload, text=True)``, which frames
it for every connection and writes it at once, without backpressure: the fastest
broadcast the library offers. ``welcome`` and ``subscribed`` are the bare server's (valid
for ``vimax_nb.client``). The control interface (``fanout_control``) listens on a port
of its own (Tornado, on the same loop).

``--compression on`` is the library's default (``compression="deflate"``: the server
answers an offer with ``server_max_window_bits=12``, context takeover, memLevel 5; each
message is compressed for each connection); ``off`` is ``compression=None``.

Run: ``python benchmarks/fanout_wsbroadcast.py --port P --control-port Q
[--compression on|off]`` (stopped by SIGTERM or SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
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
from fanout_control import serve_control, until_signalled
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed


class Room:
    """The connections, the room's last seq and the messages handed over; a control Backend."""

    def __init__(self) -> None:
        self.connections: set[ServerConnection] = set()
        self.delivered = 0
        self.seq = 0

    def emit(self, i: int, pad: int) -> None:
        self.seq += 1
        payload = json.dumps(peer_event(self.seq, i, pad), separators=(",", ":")).encode()
        connections = self.connections
        broadcast(connections, payload, text=True)
        self.delivered += len(connections)  # the few closing ones it skips are not told apart

    def counters(self) -> dict[str, Any]:
        return {
            "deliveries": self.delivered,
            "events": self.seq,
            "connections": len(self.connections),
            "top": self.seq,
        }

    async def handler(self, connection: ServerConnection) -> None:
        self.connections.add(connection)
        try:
            await connection.send(json.dumps(peer_welcome(str(connection.id))))
            async for message in connection:
                data = json.loads(message)
                if data.get("type") == "subscribe":
                    await connection.send(json.dumps(peer_subscribed(data, self.seq)))
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(connection)


async def run(port: int, control_port: int, compression: bool) -> None:
    room = Room()
    async with serve(
        room.handler,
        "127.0.0.1",
        port,
        compression="deflate" if compression else None,
        max_size=None,
    ):
        control = serve_control(room, control_port)
        experiments = apply_experiments()
        print(
            f"websockets broadcast on 127.0.0.1:{port} (control {control_port}), room "
            f"{PEER_ROOM}, compression {'on' if compression else 'off'} {experiments}",
            flush=True,
        )
        try:
            await until_signalled()
        finally:
            control.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--compression", choices=["on", "off"], default="on")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args.port, args.control_port, args.compression == "on"))


if __name__ == "__main__":
    main()
