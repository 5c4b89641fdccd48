"""A benchmark-only Jupyter server extension for ``fanout.py`` (never installed).

Enabled next to ``vimax_nb.server`` with ``benchmarks/`` on ``PYTHONPATH``, it adds
token-authenticated endpoints under ``/vimax-bench/``:

- ``POST setup``: start the service, run a tiny procedural ``idea2video`` workflow to
  its end (a real room for the subscribers: the hub's snapshot needs the workflow),
  and answer ``{"workflow": id, "room": ..., "top": seq}``;
- ``POST emit?count=N&rate=R&workflow=ID``: emit ``N`` ``ProgressEvent``s for the
  workflow's room through the real path, ``service.coordinator.events.emit`` (the
  broadcaster appends them to the durable log; the hub fans them out after commit),
  ``R`` a second on the loop's clock, or as fast as possible when ``R`` is 0; answers
  once the last is emitted;
- ``GET stats``: this process's CPU, the loop thread's CPU and the hub's counters;
- ``POST profile?action=start|stop``: cProfile of the loop thread, written to the file
  ``$VIMAX_BENCH_PROFILE`` names (off when it is unset).
"""

from __future__ import annotations

import time
from typing import Any

from fanout_common import Profiler, emit_paced, process_figures
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from vimax_nb.protocol import ProgressEvent, WorkflowState, workflow_room

_profiler = Profiler()


class _BenchHandler(APIHandler):
    @property
    def service(self) -> Any:
        return self.settings["vimax"]

    def answer(self, data: dict[str, Any]) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(data)


class SetupHandler(_BenchHandler):
    @web.authenticated
    async def post(self) -> None:
        service = self.service
        await service.ensure_started()
        coordinator = service.coordinator
        record = await coordinator.submit(
            "idea2video",
            {"idea": "a fan-out benchmark", "shots_per_scene": 1, "width": 64, "height": 64},
        )
        final = await coordinator.wait(record.id, timeout=120)
        events = service.store.events
        await events.flush()
        room = workflow_room(record.id)
        self.answer(
            {"workflow": record.id, "room": room, "top": events.top(room), "state": final.state}
        )


class EmitHandler(_BenchHandler):
    @web.authenticated
    async def post(self) -> None:
        count = int(self.get_argument("count"))
        rate = float(self.get_argument("rate", "0"))
        workflow_id = self.get_argument("workflow")
        service = self.service
        await service.ensure_started()
        bus = service.coordinator.events
        room = workflow_room(workflow_id)
        running = WorkflowState.running

        def emit(i: int) -> None:
            bus.emit(
                ProgressEvent(
                    room=room,
                    workflow_id=workflow_id,
                    state=running,
                    progress=0.5,
                    stage="bench",
                    stage_index=0,
                    total_stages=1,
                    message="fan-out benchmark",
                    details={"emitted_at": time.time(), "i": i},
                )
            )

        self.answer(await emit_paced(count, rate, emit))


class StatsHandler(_BenchHandler):
    @web.authenticated
    def get(self) -> None:
        hub = self.service.hub
        self.answer(
            {
                **process_figures(),
                "deliveries": hub.delivered,
                "events": hub.events_in,
                "connections": len(hub.connections),
                "slow_consumer_closes": hub.slow_consumer_closes,
            }
        )


class ProfileHandler(_BenchHandler):
    @web.authenticated
    def post(self) -> None:
        self.answer(_profiler.control(self.get_argument("action")))


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "fanout_producer"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    base = web_app.settings.get("base_url", "/")
    routes: list[tuple[str, type[_BenchHandler]]] = [
        ("setup", SetupHandler),
        ("emit", EmitHandler),
        ("stats", StatsHandler),
        ("profile", ProfileHandler),
    ]
    web_app.add_handlers(
        ".*$", [(url_path_join(base, "vimax-bench", name), cls) for name, cls in routes]
    )
