"""A benchmark-only Jupyter server extension for ``idle_connections.py`` (never installed).

Enabled next to ``vimax_nb.server`` with ``benchmarks/`` on ``PYTHONPATH``, it raises the
process's open-file limit to its hard limit when loaded and adds token-authenticated
endpoints under ``/vimax-idle/``:

- ``POST settle``: a full garbage collection, then this process's resident memory;
  then ``malloc_trim(0)`` (glibc gives freed heap pages back) and the resident memory
  again; answers ``{"rss", "rss_trimmed", "connections", "gc_objects"}``;
- ``POST metrics?interval=S``: sets the coordinator's ``metrics_interval`` (its timed
  ``coordinator_metrics`` events; the benchmark silences them while it times the
  heartbeats) and answers the previous one;
- ``POST emit-metrics?count=K&spacing=S``: emits ``K`` ``coordinator_metrics`` events,
  ``S`` seconds apart, the way the coordinator's timer does; answers once the last is
  emitted;
- ``POST tracemalloc?action=start|stop&top=N``: ``start`` traces allocations from now
  (after a collection); ``stop`` collects, compares with the start and answers the
  ``N`` source lines, and the ``N`` files, whose live allocations grew most (``size``,
  ``count``), then stops tracing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from idle_common import raise_fd_limit, settled_memory, start_tracing, stop_tracing
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web


class _ProbeHandler(APIHandler):
    @property
    def service(self) -> Any:
        return self.settings["vimax"]

    def answer(self, data: dict[str, Any]) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(data)


class SettleHandler(_ProbeHandler):
    @web.authenticated
    def post(self) -> None:
        self.answer({**settled_memory(), "connections": len(self.service.hub.connections)})


class MetricsHandler(_ProbeHandler):
    @web.authenticated
    async def post(self) -> None:
        await self.service.ensure_started()
        reporter = self.service.coordinator.reporter
        previous = reporter.metrics_interval
        reporter.metrics_interval = float(self.get_argument("interval"))
        self.answer({"previous": previous, "interval": reporter.metrics_interval})


class EmitMetricsHandler(_ProbeHandler):
    @web.authenticated
    async def post(self) -> None:
        count = int(self.get_argument("count"))
        spacing = float(self.get_argument("spacing"))
        await self.service.ensure_started()
        reporter = self.service.coordinator.reporter
        for i in range(count):
            if i:
                await asyncio.sleep(spacing)
            reporter.emit_metrics()
        self.answer({"emitted": count})


class TracemallocHandler(_ProbeHandler):
    @web.authenticated
    def post(self) -> None:
        action = self.get_argument("action")
        if action == "start":
            start_tracing()
            self.answer({"tracing": True})
        else:
            self.answer(stop_tracing(int(self.get_argument("top", "15"))))


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "idle_probe"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    raise_fd_limit()
    web_app = serverapp.web_app
    base = web_app.settings.get("base_url", "/")
    routes: list[tuple[str, type[_ProbeHandler]]] = [
        ("settle", SettleHandler),
        ("metrics", MetricsHandler),
        ("emit-metrics", EmitMetricsHandler),
        ("tracemalloc", TracemallocHandler),
    ]
    web_app.add_handlers(
        ".*$", [(url_path_join(base, "vimax-idle", name), cls) for name, cls in routes]
    )
