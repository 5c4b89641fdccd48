"""A peer of ``fanout.py``: python-socketio with rooms.

A ``socketio.AsyncServer`` (WebSocket transport only, at ``/socket.io/``) on aiohttp
(``--mode aiohttp``, the default) or Tornado (``--mode tornado``). A client's
``subscribe`` event enters it into the room and is answered by a ``subscribed`` event
to that client; each benchmark event is ``await sio.emit("progress", event,
room=ROOM)``, as a Socket.IO application sends to a room: the packet is encoded once and
queued for every participant, and each connection's Engine.IO writer task sends it.
The control interface (``fanout_control``) listens on a port of its own (Tornado, on
the same loop).

``--compression on`` accepts permessage-deflate when a client offers it (what both
drivers do by default: aiohttp's ``WebSocketResponse(compress=True)``, Tornado's
handler ``get_compression_options() == {}``; context takeover, each message compressed
for each connection); ``off`` never negotiates it (``compress=False``; ``None``).

Run: ``python benchmarks/fanout_socketio.py --port P --control-port Q
[--mode aiohttp|tornado] [--compression on|off]`` (stopped by SIGTERM or SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from importlib.metadata import version
from typing import Any

import socketio
from fanout_common import PEER_ROOM, apply_experiments, peer_event, peer_subscribed
from fanout_control import serve_control, until_signalled

NAMESPACE = "/"


class Room:
    """The Socket.IO server, the room's last seq and the packets queued; a control Backend."""

    def __init__(self, mode: str) -> None:
        self.sio = socketio.AsyncServer(
            async_mode=mode, transports=["websocket"], cors_allowed_origins="*"
        )
        self.delivered = 0
        self.seq = 0
        self.sio.on("subscribe", self.subscribe)

    def participants(self) -> int:
        return len(self.sio.manager.rooms.get(NAMESPACE, {}).get(PEER_ROOM, ()))

    async def subscribe(self, sid: str, data: dict[str, Any]) -> None:
        await self.sio.enter_room(sid, PEER_ROOM)
        await self.sio.emit("subscribed", peer_subscribed(data, self.seq), to=sid)

    def emit(self, i: int, pad: int) -> Any:
        self.seq += 1
        self.delivered += self.participants()
        return self.sio.emit("progress", peer_event(self.seq, i, pad), room=PEER_ROOM)

    def counters(self) -> dict[str, Any]:
        return {
            "deliveries": self.delivered,
            "events": self.seq,
            "connections": len(self.sio.eio.sockets),
            "top": self.seq,
        }


async def serve_aiohttp(room: Room, port: int, compression: bool) -> Any:
    from aiohttp import web
    from engineio.async_drivers import aiohttp as driver

    if not compression:

        class Uncompressed(web.WebSocketResponse):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **{**kwargs, "compress": False})

        driver.WebSocketResponse = Uncompressed  # type: ignore[misc]
    app = web.Application()
    room.sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner.cleanup


async def serve_tornado(room: Room, port: int, compression: bool) -> Any:
    from tornado import web

    base: Any = socketio.get_tornado_handler(room.sio)

    class Handler(base):  # type: ignore[misc, valid-type]
        def get_compression_options(self) -> dict[str, Any] | None:
            return {} if compression else None

    app = web.Application([(r"/socket.io/", Handler)], log_function=lambda handler: None)
    server = app.listen(port, address="127.0.0.1")

    async def cleanup() -> None:
        server.stop()

    return cleanup


async def run(port: int, control_port: int, mode: str, compression: bool) -> None:
    room = Room(mode)
    serve = serve_aiohttp if mode == "aiohttp" else serve_tornado
    cleanup = await serve(room, port, compression)
    control = serve_control(room, control_port)
    experiments = apply_experiments()
    print(
        f"python-socketio {version('python-socketio')} ({mode}) on 127.0.0.1:{port} "
        f"(control {control_port}), room {PEER_ROOM}, "
        f"compression {'on' if compression else 'off'} {experiments}",
        flush=True,
    )
    try:
        await until_signalled()
    finally:
        control.stop()
        await cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--mode", choices=["aiohttp", "tornado"], default="aiohttp")
    parser.add_argument("--compression", choices=["on", "off"], default="on")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args.port, args.control_port, args.mode, args.compression == "on"))


if __name__ == "__main__":
    main()
