"""Turning coordinator changes into events and saved records, bursts coalesced."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from ..protocol import AgentStatusEvent, CoordinatorMetricsEvent, agent_room
from ..store import Store
from .agents import Agent
from .events import CoordinatorEvent, EventBus
from .run import WorkflowRun

log = logging.getLogger(__name__)

METRICS_MIN_INTERVAL = 0.25


class Reporter:
    """Emits the coordinator's events and saves workflow records.

    State changes are emitted and saved at once. Bursts are coalesced: an agent's
    status is emitted once per loop iteration however many of its tasks changed,
    coordinator metrics at most every 0.25 s on change plus every
    ``metrics_interval`` seconds regardless, and a workflow's progress is saved
    about once a second (its events are never held back).
    """

    def __init__(
        self,
        bus: EventBus,
        store: Store | None,
        metrics: Callable[[], CoordinatorMetricsEvent],
        agents: Callable[[], Iterable[Agent]],
        metrics_interval: float,
    ) -> None:
        self.bus = bus
        self.store = store
        self._metrics = metrics
        self._agents = agents
        self.metrics_interval = metrics_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty_agents: dict[str, Agent] = {}
        self._dirty_runs: dict[str, WorkflowRun] = {}
        self._metrics_handle: asyncio.TimerHandle | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._saves: set[asyncio.Future[None]] = set()

    def start(self) -> None:
        """Begin timed reports; emit every agent's status and the metrics now."""
        self._loop = asyncio.get_running_loop()
        self._ticker = self._loop.create_task(self._tick())
        for agent in self._agents():
            self._dirty_agents[agent.name] = agent
        self.flush()
        self.emit_metrics()

    async def stop(self) -> None:
        """Stop timed reports, flush what is pending and wait for records being saved."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._metrics_handle is not None:
            self._metrics_handle.cancel()
            self._metrics_handle = None
        self.flush()
        await asyncio.gather(*self._saves, return_exceptions=True)

    def emit(self, event: CoordinatorEvent) -> None:
        """Hand ``event`` to every listener now."""
        self.bus.emit(event)

    def state_changed(self, run: WorkflowRun, message: str) -> asyncio.Future[None] | None:
        """Report a workflow's new state and save its record.

        Returns a future that is done once the record is durable (None without a store).
        """
        self.emit(run.progress_event("state", message))
        self.metrics_changed()
        if self.store is None:
            return None
        self._dirty_runs.pop(run.id, None)
        saved = asyncio.ensure_future(self.store.workflows.save(run.record()))
        self._saves.add(saved)
        saved.add_done_callback(self._saved)
        return saved

    def _saved(self, saved: asyncio.Future[None]) -> None:
        self._saves.discard(saved)
        if not saved.cancelled() and saved.exception() is not None:
            log.error("a workflow record could not be saved: %s", saved.exception())

    def progress_changed(self, run: WorkflowRun) -> None:
        """Save the workflow's record soon."""
        self._dirty_runs[run.id] = run

    def agent_changed(self, agent: Agent) -> None:
        """Emit ``agent``'s status at the end of this loop iteration."""
        if not self._dirty_agents and self._loop is not None:
            self._loop.call_soon(self._flush_agents)
        self._dirty_agents[agent.name] = agent
        self.metrics_changed()

    def metrics_changed(self) -> None:
        """Emit the coordinator's metrics soon."""
        if self._metrics_handle is None and self._loop is not None:
            self._metrics_handle = self._loop.call_later(METRICS_MIN_INTERVAL, self.emit_metrics)

    def emit_metrics(self) -> None:
        """Emit the coordinator's metrics now."""
        if self._metrics_handle is not None:
            self._metrics_handle.cancel()
            self._metrics_handle = None
        self.emit(self._metrics())

    def flush(self) -> None:
        """Emit pending agent statuses and save pending records now."""
        self._flush_agents()
        dirty, self._dirty_runs = self._dirty_runs, {}
        if self.store is not None:
            for run in dirty.values():
                self.store.workflows.save_nowait(run.record())

    def _flush_agents(self) -> None:
        dirty, self._dirty_agents = self._dirty_agents, {}
        for agent in dirty.values():
            self.emit(
                AgentStatusEvent(
                    room=agent_room(agent.name),
                    agent_name=agent.name,
                    status=agent.status,
                    capabilities=agent.capabilities,
                    metrics=agent.metrics(),
                    providers=agent.provider_statuses(),
                )
            )

    async def _tick(self) -> None:
        last_metrics = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, self.metrics_interval))
            for agent in self._agents():
                agent.heartbeat()
            self.flush()
            if time.monotonic() - last_metrics >= self.metrics_interval:
                last_metrics = time.monotonic()
                self.emit_metrics()
