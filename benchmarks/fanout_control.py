"""The small HTTP control interface of ``fanout.py``'s reference servers (bare Tornado,
the ``websockets`` broadcast, python-socketio), as Tornado routes.

The full path's extension (``fanout_producer``) answers the same requests:

- ``POST emit?count=N&rate=R&pad=P``: emit ``N`` events of the room, ``R`` a second on
  the loop's clock, or as fast as possible when ``R`` is 0 (``fanout_common.emit_paced``),
  each with ``P`` characters of filler (0 by default); answers once the last one is
  emitted, with the emit times and the pacing lag;
- ``GET stats``: this process's CPU, the loop thread's CPU, the server's counters
  (``deliveries``: messages handed to a socket; ``events``; ``connections``; ``top``:
  the room's last seq) and the garbage collector's pauses since the last call;
- ``POST profile?action=start|stop``: cProfile of the loop thread, written to the file
  ``$VIMAX_BENCH_PROFILE`` names (off when it is unset).

A server gives :func:`control_routes` a :class:`Backend`; :func:`serve_control` runs
the routes on a port of their own for a server whose WebSocket side is not Tornado.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable
from typing import Any, Protocol

from fanout_common import GcPauses, Profiler, emit_paced, process_figures
from tornado import httpserver, web


class Backend(Protocol):
    """What the control routes drive: one server's broadcast and its counters."""

    def emit(self, i: int, pad: int) -> Awaitable[None] | None:
        """Send the ``i``-th event of a burst (``pad``: see ``fanout_common.
        progress_message``) to every subscriber."""

    def counters(self) -> dict[str, Any]:
        """``deliveries``, ``events``, ``connections`` and ``top`` now."""


class Control:
    """A backend with this process's profiler and garbage-collector watch."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.profiler = Profiler()
        self.gc = GcPauses()


class _Handler(web.RequestHandler):
    def initialize(self, control: Control) -> None:
        self.control = control

    def answer(self, data: dict[str, Any]) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))


class EmitHandler(_Handler):
    async def post(self) -> None:
        count = int(self.get_argument("count"))
        rate = float(self.get_argument("rate", "0"))
        pad = int(self.get_argument("pad", "0"))
        emit = self.control.backend.emit
        self.answer(await emit_paced(count, rate, lambda i: emit(i, pad)))


class StatsHandler(_Handler):
    def get(self) -> None:
        self.answer(
            {
                **process_figures(),
                "slow_consumer_closes": 0,
                **self.control.backend.counters(),
                **self.control.gc.take(),
            }
        )


class ProfileHandler(_Handler):
    def post(self) -> None:
        self.answer(self.control.profiler.control(self.get_argument("action")))


def control_routes(backend: Backend, prefix: str = "") -> list[Any]:
    """The ``emit``, ``stats`` and ``profile`` routes under ``prefix`` for ``backend``."""
    kwargs = {"control": Control(backend)}
    return [
        (rf"{prefix}/emit", EmitHandler, kwargs),
        (rf"{prefix}/stats", StatsHandler, kwargs),
        (rf"{prefix}/profile", ProfileHandler, kwargs),
    ]


def serve_control(backend: Backend, port: int) -> httpserver.HTTPServer:
    """Listen on 127.0.0.1:``port`` with the control routes (on the running loop)."""
    app = web.Application(control_routes(backend), log_function=lambda handler: None)
    server: httpserver.HTTPServer = app.listen(port, address="127.0.0.1")
    return server


async def until_signalled() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
