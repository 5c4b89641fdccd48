"""A live model of the coordinator and its agents: :class:`Fleet` (no ipywidgets here).

A :class:`Fleet` loads the agents and the coordinator's metrics over REST, then follows
the ``coordinator`` room and one ``agent:<name>`` room per agent. It holds protocol
models: each agent's :class:`~vimax_nb.protocol.AgentRecord` and the coordinator's
latest :class:`~vimax_nb.protocol.CoordinatorMetricsEvent`, swapped (never changed in
place) under a lock; it calls its ``on_change`` callbacks after every update, and
widgets only draw it.

An ``agent_status`` event replaces its agent's status, capabilities and metrics (and
its providers, when it names them); a record (a room's snapshot, or REST) replaces the
whole agent; a metrics event or snapshot replaces the metrics.

Rooms are followed from *now*: a subscription asks for the events after
:data:`LIVE_ONLY`, beyond any room's top, so the server answers with the room's snapshot
(``recovered: false``, the protocol's reset path) and live events, not the retained
history of every agent. When the coordinator reports another number of agents than the
fleet knows, the list is reloaded over REST on a worker thread and new agents followed.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from ..protocol import (
    COORDINATOR_ROOM,
    AgentRecord,
    AgentStatusEvent,
    CoordinatorMetricsEvent,
    Event,
    agent_room,
)
from .api import Client
from .callbacks import Callbacks
from .connection import ClientConnection
from .reconnecting import ConnectionState
from .rooms import RoomSubscription, Snapshot
from .view import agent_counts, summary

__all__ = ["LIVE_ONLY", "Fleet"]

log = logging.getLogger(__name__)

LIVE_ONLY = 2**53 - 1  # an `after` beyond any top: the snapshot, then live events
REFRESH_INTERVAL = 1.0  # least time between REST reloads that the rooms ask for

_NO_METRICS = CoordinatorMetricsEvent(
    total_workflows=0,
    active_workflows=0,
    queue_size=0,
    registered_agents=0,
    healthy_agents=0,
    tasks_per_second=0.0,
    dead_letters=0,
)

_shared: weakref.WeakKeyDictionary[Client, Fleet] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


class Fleet:
    """The coordinator and its agents, live, for one client.

    The REST load happens here, in the calling thread; a failure is kept in
    :attr:`error` (the rooms still fill the fleet in). With ``live=False`` nothing is
    followed (call :meth:`refresh` to reload). Use :meth:`of` to share one fleet per
    client between widgets.
    """

    def __init__(self, client: Client, *, live: bool = True) -> None:
        self.client = client
        self._lock = threading.RLock()
        self._agents: dict[str, AgentRecord] = {}
        self._metrics = _NO_METRICS
        self._callbacks: Callbacks[Fleet] = Callbacks("a vimax fleet on_change callback")
        self._subs: dict[str, RoomSubscription | None] = {}  # None: being subscribed
        self._live_rooms: set[str] = set()  # rooms that reported since they were followed
        self._live = live
        self._closed = False
        self._refresh_pending = False
        self._next_refresh = 0.0
        self._connection: ClientConnection | None = None
        self._remove_state: Callable[[], None] | None = None
        self.error: str | None = None
        """Why the last load or follow failed (None once a load succeeds)."""
        try:
            self.refresh()
        except Exception as exc:  # kept, not raised: the rooms may still fill it in
            self.error = f"could not load the agents: {exc}"
        if live:
            self._follow()

    @classmethod
    def of(cls, client: Client) -> Fleet:
        """The fleet shared by every widget of ``client`` (made on first use)."""
        with _shared_lock:
            fleet = _shared.get(client)
            if fleet is None or fleet.closed:
                fleet = _shared[client] = cls(client)
            return fleet

    # -- reading (any thread) ----------------------------------------------------------

    @property
    def agents(self) -> list[AgentRecord]:
        """Every agent, sorted by name."""
        return self.snapshot()[0]

    def agent(self, name: str) -> AgentRecord | None:
        """Agent ``name``, or None when the fleet does not know it."""
        with self._lock:
            return self._agents.get(name)

    @property
    def metrics(self) -> CoordinatorMetricsEvent:
        """The coordinator's latest metrics (all zero before any)."""
        with self._lock:
            return self._metrics

    def snapshot(self) -> tuple[list[AgentRecord], CoordinatorMetricsEvent]:
        """``(agents sorted by name, metrics)``, read together: consistent with each other."""
        with self._lock:
            agents = [self._agents[name] for name in sorted(self._agents)]
            return agents, self._metrics

    def counts(self) -> dict[str, int]:
        """How many agents there are (``"all"``) and how many in each
        :class:`~vimax_nb.protocol.AgentState` (every state present, 0 when none)."""
        return agent_counts(self.agents)

    @property
    def connection_state(self) -> ConnectionState | None:
        """The state of the connection the rooms come through (None when not following)."""
        return self._connection.state if self._connection is not None else None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __repr__(self) -> str:
        return f"Fleet({summary(self.agents)})"

    # -- callbacks ---------------------------------------------------------------------

    def on_change(self, callback: Callable[[Fleet], None]) -> Callable[[], None]:
        """Call ``callback(fleet)`` after each change (an update, a reload, a change of the
        connection's state), on the thread that made it (the connection's, usually: don't
        block). Returns a zero-argument remover (thread-safe, idempotent)."""
        return self._callbacks.add(callback)

    def wait_for(self, predicate: Callable[[Fleet], bool], timeout: float | None = None) -> bool:
        """Block until ``predicate(fleet)`` is true, checked now and after every change;
        False if it is still false after ``timeout`` s. Don't call it from a callback."""
        changed = threading.Condition()

        def wake(_fleet: Fleet) -> None:
            with changed:
                changed.notify_all()

        remove = self.on_change(wake)
        try:
            with changed:
                return changed.wait_for(lambda: predicate(self), timeout)
        finally:
            remove()

    def _changed(self) -> None:
        self._callbacks.call(self)

    # -- loading -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the agents and the metrics over REST (blocks); follow new agents.

        Agents and metrics that their rooms have already reported keep the rooms'
        (newer) values; agents the server no longer lists are dropped.
        """
        records = self.client.agents()
        metrics = self.client.coordinator()
        with self._lock:
            if self._closed:
                return
            listed: dict[str, AgentRecord] = {}
            for record in records:
                known = self._agents.get(record.name)
                live = agent_room(record.name) in self._live_rooms
                listed[record.name] = known if known is not None and live else record
            gone = [self._subs.pop(agent_room(n), None) for n in self._agents if n not in listed]
            self._agents = listed
            if COORDINATOR_ROOM not in self._live_rooms:
                self._metrics = metrics
            self.error = None
            new = [n for n in listed if agent_room(n) not in self._subs]
        for sub in gone:
            self._unsubscribe(sub)
        if self._live and self._connection is not None:
            for name in new:
                self._follow_room(agent_room(name))
        self._changed()

    def _refresh_soon(self) -> None:
        """Reload over REST on a worker thread (one at a time, at most one a second)."""
        with self._lock:
            now = time.monotonic()
            if self._refresh_pending or self._closed or now < self._next_refresh:
                return
            self._refresh_pending = True
            self._next_refresh = now + REFRESH_INTERVAL
        threading.Thread(target=self._refresh_thread, name="vimax-fleet", daemon=True).start()

    def _refresh_thread(self) -> None:
        try:
            self.refresh()
        except Exception as exc:
            with self._lock:
                self.error = f"could not reload the agents: {exc}"
            self._changed()
        finally:
            with self._lock:
                self._refresh_pending = False

    # -- following the rooms -----------------------------------------------------------

    def _follow(self) -> None:
        try:
            self._connection = self.client.connection
        except ConnectionError as exc:
            self.error = f"cannot follow the agents live: {exc}"
            return
        self._remove_state = self._connection.on_state(self._on_state)
        self._follow_room(COORDINATOR_ROOM)
        with self._lock:
            names = list(self._agents)
        for name in names:
            self._follow_room(agent_room(name))

    def _follow_room(self, room: str) -> None:
        connection = self._connection
        assert connection is not None
        with self._lock:
            if self._closed or room in self._subs:
                return
            self._subs[room] = None  # claimed: no second subscription for the room
        try:
            sub = connection.subscribe(
                room,
                self._on_event,
                LIVE_ONLY,
                on_reset=lambda snapshot: self._on_reset(room, snapshot),
            )
        except ConnectionError as exc:  # the connection was closed
            with self._lock:
                self._subs.pop(room, None)
                self.error = f"cannot follow {room} live: {exc}"
            return
        with self._lock:
            claimed = room in self._subs and self._subs[room] is None
            if claimed:
                self._subs[room] = sub
        if not claimed:  # the agent went away (or the fleet closed) meanwhile
            self._unsubscribe(sub)

    def _on_state(self, _state: ConnectionState) -> None:
        if not self._closed:
            self._changed()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, AgentStatusEvent):
            room = event.room or agent_room(event.agent_name)
            self._apply_agent(event.agent_name, room, event)
        elif isinstance(event, CoordinatorMetricsEvent):
            self._apply_metrics(event)

    def _on_reset(self, room: str, snapshot: Snapshot) -> None:
        if isinstance(snapshot, CoordinatorMetricsEvent):
            self._apply_metrics(snapshot)
        elif isinstance(snapshot, AgentRecord):
            self._apply_agent(snapshot.name, room, snapshot)

    def _apply_agent(self, name: str, room: str, update: AgentStatusEvent | AgentRecord) -> None:
        with self._lock:
            if self._closed or room not in self._subs:
                return  # not followed (any more)
            known = self._agents.get(name)
            if isinstance(update, AgentRecord):
                record = update
            elif known is None:
                record = AgentRecord(
                    name=name,
                    status=update.status,
                    capabilities=update.capabilities,
                    metrics=update.metrics,
                    providers=update.providers or [],
                )
            else:
                changes: dict[str, object] = {
                    "status": update.status,
                    "capabilities": update.capabilities,
                    "metrics": update.metrics,
                }
                if update.providers is not None:  # None: unchanged
                    changes["providers"] = update.providers
                record = known.model_copy(update=changes)
            self._agents[name] = record
            self._live_rooms.add(room)
        self._changed()

    def _apply_metrics(self, metrics: CoordinatorMetricsEvent) -> None:
        with self._lock:
            if self._closed:
                return
            self._metrics = metrics
            self._live_rooms.add(COORDINATOR_ROOM)
            mismatch = metrics.registered_agents != len(self._agents)
        self._changed()
        if mismatch:
            self._refresh_soon()

    def _unsubscribe(self, sub: RoomSubscription | None) -> None:
        if sub is not None and self._connection is not None:
            self._connection.unsubscribe(sub)

    def close(self) -> None:
        """Stop following the rooms and drop the callbacks (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subs = list(self._subs.values())
            self._subs.clear()
            remove_state, self._remove_state = self._remove_state, None
        self._callbacks.clear()
        if remove_state is not None:
            remove_state()
        for sub in subs:
            self._unsubscribe(sub)
