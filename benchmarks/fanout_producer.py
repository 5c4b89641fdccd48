"""A benchmark-only Jupyter server extension for ``fanout.py`` (never installed).

Enabled next to ``vimax_nb.server`` with ``benchmarks/`` on ``PYTHONPATH``, it adds
token-authenticated endpoints under ``/vimax-bench/``:

- ``POST setup``: start the service, run a tiny procedural ``idea2video`` workflow to
  its end (a real room for the subscribers: the hub's snapshot needs the workflow),
  and answer ``{"workflow": id, "room": ..., "top": seq}``;
- ``POST emit?count=N&rate=R&pad=P&workflow=ID``: emit ``N`` ``ProgressEvent``s for the
  workflow's room through the real path, ``service.coordinator.events.emit`` (the
  broadcaster appends them to the durable log; the hub fans them out after commit),
  ``R`` a second on the loop's clock, or as fast as possible when ``R`` is 0, with
  ``P`` characters of ``fanout_common.filler`` as their details' ``activity`` when ``P``
  > 0; answers once the last is emitted;
- ``GET stats``: this process's CPU, the loop thread's CPU, the hub's counters, the
  top of the room of the last ``setup`` (``top``), and since the last call: the
  garbage collector's pauses, and for the first event of each batch the log commits,
  the time from its emit to the hub's listener call on the loop (``stored``) and to the
  end of the loop turn that wrote it to every socket (``written``);
- ``POST profile?action=start|stop``: cProfile of the loop thread, written to the file
  ``$VIMAX_BENCH_PROFILE`` names (off when it is unset).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from typing import Any

from fanout_common import (
    EMITTED_AT,
    GcPauses,
    Profiler,
    apply_experiments,
    emit_paced,
    filler,
    process_figures,
    summary,
)
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from vimax_nb.protocol import ProgressDetails, ProgressEvent, WorkflowState, workflow_room

_profiler = Profiler()
_gc = GcPauses()
EMITTED_KEY = b'"message":"' + EMITTED_AT.encode()


class StoreLag:
    """An event-log listener that times the first benchmark event of each batch, from its
    emit to the listeners' call on the loop, and to the end of the fan-out's writes."""

    def __init__(self) -> None:
        self.stored: list[float] = []
        self.written: list[float] = []
        self.batches = 0
        self.events = 0

    def __call__(self, events: Sequence[Any]) -> None:
        now = time.time()
        self.batches += 1
        self.events += len(events)
        frame: bytes = events[0].frame
        at = frame.find(EMITTED_KEY)
        if at < 0 or len(self.stored) >= 200_000:
            return
        at += len(EMITTED_KEY)
        emitted = float(frame[at : frame.find(b'"', at)])
        self.stored.append(now - emitted)
        # The hub's listener ran first and scheduled every connection's flush with
        # call_soon: this runs after them.
        asyncio.get_running_loop().call_soon(lambda: self.written.append(time.time() - emitted))

    def take(self) -> dict[str, Any]:
        taken = {
            "batches": self.batches,
            "batch_events": self.events,
            "stored": summary(self.stored),
            "written": summary(self.written),
        }
        self.stored, self.written, self.batches, self.events = [], [], 0, 0
        return taken


_store_lag = StoreLag()
_listening: set[int] = set()
_room: list[str] = []  # the room of the last setup


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
        experiments: dict[str, Any] = {}
        if id(events) not in _listening:
            _listening.add(id(events))
            events.add_listener(_store_lag)
            experiments.update(apply_experiments())
        room = workflow_room(record.id)
        _room[:] = [room]
        self.answer(
            {
                "workflow": record.id,
                "room": room,
                "top": events.top(room),
                "state": final.state,
                "experiments": experiments,
                "gc_objects": len(gc.get_objects()),
                "gc_frozen": gc.get_freeze_count(),
            }
        )


class EmitHandler(_BenchHandler):
    @web.authenticated
    async def post(self) -> None:
        count = int(self.get_argument("count"))
        rate = float(self.get_argument("rate", "0"))
        pad = int(self.get_argument("pad", "0"))
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
                    message=f"{EMITTED_AT}{time.time()!r}",
                    details=ProgressDetails(
                        event="task_completed",
                        task=f"bench/{i}",
                        activity=filler(i, pad) if pad > 0 else None,
                    ),
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
                "top": self.service.store.events.top(_room[0]) if _room else 0,
                "deliveries": hub.delivered,
                "events": hub.events_in,
                "connections": len(hub.connections),
                "slow_consumer_closes": hub.slow_consumer_closes,
                **_gc.take(),
                "log": _store_lag.take(),
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
