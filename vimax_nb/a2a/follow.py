"""Following one room of the durable event log: what is stored after a position, then
every event as it is stored, with no gap and nothing twice."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence

from ..store import EventLog, ReplayGap, StoredEvent

log = logging.getLogger(__name__)

REPLAY_PAGE = 500


class RoomFollower:
    """The events of ``room`` in ``event_log``, from a position on.

    Listening starts when the follower is made: :attr:`start` is the room's top seq at
    that moment, and every event stored after it reaches the follower. :meth:`events`
    first reads what the log keeps after the position it is given (from the database,
    page by page), then what was stored meanwhile and what comes next, in seq order,
    each event once. Close it (``with`` or :meth:`close`) to stop listening.
    """

    def __init__(self, event_log: EventLog, room: str) -> None:
        self._log = event_log
        self._room = room
        self._live: deque[StoredEvent] = deque()
        self._arrived = asyncio.Event()
        self._closed = False
        self._remove = event_log.add_listener(self._stored)
        self.start = event_log.top(room)

    def _stored(self, events: Sequence[StoredEvent]) -> None:
        room = self._room
        for event in events:
            if event.room == room:
                self._live.append(event)
                self._arrived.set()

    async def events(self, after: int) -> AsyncIterator[StoredEvent]:
        """The room's events with a seq above ``after``, oldest first, stored ones then
        live ones, until the follower is closed (or the caller stops iterating).

        Events the log no longer keeps (retention, a reset) are skipped: whoever follows
        has a snapshot that says what they made.
        """
        last = after
        replay = self._log.replay(self._room, after)
        try:
            while not replay.done:
                for event in await replay.next_page(REPLAY_PAGE):
                    if event.seq > last:
                        last = event.seq
                        yield event
        except ReplayGap as gap:
            log.info("following %s from the live events on: %s", self._room, gap)
        while not self._closed:
            while self._live:
                event = self._live.popleft()
                if event.seq > last:
                    last = event.seq
                    yield event
            self._arrived.clear()
            await self._arrived.wait()

    def close(self) -> None:
        """Stop listening, and end :meth:`events` (harmless when done twice)."""
        self._closed = True
        self._remove()
        self._live.clear()
        self._arrived.set()

    def __enter__(self) -> RoomFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
