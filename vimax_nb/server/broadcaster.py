"""From coordinator events to the durable log, and from the log to the rooms."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..coordinator import Coordinator, CoordinatorEvent
from ..protocol import COORDINATOR_ROOM, CoordinatorMetricsEvent, event_payload
from ..store import EventLog, StoreError
from .hub import Hub

log = logging.getLogger(__name__)


class Broadcaster:
    """Appends every coordinator event to the event log, which gives it its seq; the hub
    fans it out only once it is stored. Nothing is sent that a reconnecting client
    could not replay. Coordinator metrics are stored with the hub's connections."""

    def __init__(self, coordinator: Coordinator, event_log: EventLog, hub: Hub) -> None:
        self.event_log = event_log
        self.hub = hub
        self.dropped = 0
        hub.bind(event_log)
        self._remove: Callable[[], None] = coordinator.add_listener(self.publish)

    def publish(self, event: CoordinatorEvent) -> None:
        """Queue ``event`` for storage (never blocks the loop)."""
        if isinstance(event, CoordinatorMetricsEvent):
            event = self.hub.with_connections(event)
        try:
            self.event_log.append_nowait(
                event.room or COORDINATOR_ROOM, event.type, event_payload(event)
            )
        except StoreError as exc:  # the database is closing: the server is stopping
            self.dropped += 1
            log.warning("event not stored (%s): %s", exc, event.type)

    def close(self) -> None:
        """Stop taking events."""
        self._remove()
