"""How coordinator events reach their consumers without ever holding the coordinator up."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..protocol import AgentStatusEvent, ArtifactEvent, CoordinatorMetricsEvent, ErrorEvent
from ..protocol import ProgressEvent as ProgressEvent

log = logging.getLogger(__name__)

CoordinatorEvent = (
    ProgressEvent | AgentStatusEvent | CoordinatorMetricsEvent | ArtifactEvent | ErrorEvent
)
EventCallback = Callable[[CoordinatorEvent], Any]


class EventStream:
    """An async iterator over coordinator events with a bounded buffer.

    When the consumer falls more than ``maxsize`` events behind, the oldest
    buffered events are dropped (and counted in :attr:`dropped`) rather than
    slowing the coordinator down.
    """

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._buffer: deque[CoordinatorEvent] = deque()
        self._maxsize = maxsize
        self._wakeup: asyncio.Future[None] | None = None
        self.dropped = 0
        self.closed = False

    def _put(self, event: CoordinatorEvent) -> None:
        if len(self._buffer) >= self._maxsize:
            self._buffer.popleft()
            if not self.dropped:
                log.warning("an event stream fell %d events behind; dropping", self._maxsize)
            self.dropped += 1
        self._buffer.append(event)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def close(self) -> None:
        """Stop the stream; iteration ends once the buffer is drained."""
        self.closed = True
        self._bus._streams.discard(self)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def __aiter__(self) -> AsyncIterator[CoordinatorEvent]:
        return self

    async def __anext__(self) -> CoordinatorEvent:
        while not self._buffer:
            if self.closed:
                raise StopAsyncIteration
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        return self._buffer.popleft()


class EventBus:
    """Hands each event to callbacks (called at once) and streams (buffered)."""

    def __init__(self) -> None:
        self._callbacks: list[EventCallback] = []
        self._streams: set[EventStream] = set()

    def add_listener(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; return a function that removes it.

        Callbacks run on the event loop as the event happens and must be quick; an
        exception in one is logged and does not reach the coordinator.
        """
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def stream(self, maxsize: int = 10_000) -> EventStream:
        """A new :class:`EventStream` of every event from now on."""
        stream = EventStream(self, maxsize)
        self._streams.add(stream)
        return stream

    def emit(self, event: CoordinatorEvent) -> None:
        """Deliver ``event`` to every listener and stream."""
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:
                log.exception("coordinator event listener %r failed", callback)
        for stream in self._streams:
            stream._put(event)

    def close(self) -> None:
        """End every stream."""
        for stream in list(self._streams):
            stream.close()
