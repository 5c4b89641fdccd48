"""How coordinator events reach their listeners without ever holding the coordinator up."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..protocol import (
    AgentStatusEvent,
    ArtifactEvent,
    CoordinatorMetricsEvent,
    ErrorEvent,
    ProgressEvent,
)

log = logging.getLogger(__name__)

CoordinatorEvent = (
    ProgressEvent | AgentStatusEvent | CoordinatorMetricsEvent | ArtifactEvent | ErrorEvent
)
EventCallback = Callable[[CoordinatorEvent], Any]


class EventBus:
    """Hands each event to every listener as it happens."""

    def __init__(self) -> None:
        self._callbacks: list[EventCallback] = []

    def add_listener(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; return a function that removes it.

        Callbacks run on the event loop as the event happens and must be quick; an
        exception in one is logged and does not reach the coordinator.
        """
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def emit(self, event: CoordinatorEvent) -> None:
        """Deliver ``event`` to every listener."""
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:
                log.exception("coordinator event listener %r failed", callback)
