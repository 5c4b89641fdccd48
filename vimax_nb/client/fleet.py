"""A live model of the coordinator and its agents: :class:`Fleet` (no ipywidgets here).

A :class:`Fleet` loads the agents and the coordinator's metrics over REST, then follows
the ``coordinator`` room and one ``agent:<name>`` room per agent. It holds the state
(immutable :class:`AgentInfo` and :class:`CoordinatorMetrics` values, swapped under a
lock) and calls its ``on_change`` callbacks after every update; widgets only draw it.

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
from typing import Any

from ..protocol import COORDINATOR_ROOM, agent_room
from .fleet_values import (
    AGENT_STATUSES,
    AgentInfo,
    CoordinatorMetrics,
    count_statuses,
    summary,
)

__all__ = [
    "AGENT_STATUSES",
    "LIVE_ONLY",
    "AgentInfo",
    "CoordinatorMetrics",
    "Fleet",
    "count_statuses",
    "summary",
]

log = logging.getLogger(__name__)

LIVE_ONLY = 2**53 - 1  # an `after` beyond any top: the snapshot, then live events
REFRESH_INTERVAL = 1.0  # least time between REST reloads that the rooms ask for

_shared: weakref.WeakKeyDictionary[Any, Fleet] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


class Fleet:
    """The coordinator and its agents, live, for one client.

    ``client`` is a :class:`~vimax_nb.client.Client` (or anything with ``agents()``,
    ``coordinator()`` and ``connection``). The REST load happens here, in the calling
    thread; a failure is kept in :attr:`error` (the rooms still fill the fleet in).
    With ``live=False`` nothing is followed (call :meth:`refresh` to reload).
    Use :meth:`of` to share one fleet per client between widgets.
    """

    def __init__(self, client: Any, *, live: bool = True) -> None:
        self.client = client
        self._lock = threading.RLock()
        self._agents: dict[str, AgentInfo] = {}
        self._metrics = CoordinatorMetrics()
        self._callbacks: list[Callable[[Fleet], None]] = []
        self._subs: dict[str, Any] = {}  # room -> Subscription
        self._live_rooms: set[str] = set()  # rooms that reported since they were followed
        self._live = live
        self._closed = False
        self._refresh_pending = False
        self._next_refresh = 0.0
        self._connection: Any = None
        self._remove_state: Callable[[], object] | None = None
        self.version = 0  # bumped on every change
        self.error: str | None = None
        try:
            self.refresh()
        except Exception as exc:  # kept, not raised: the rooms may still fill it in
            self.error = f"could not load the agents: {exc}"
        if live:
            self._follow()

    @classmethod
    def of(cls, client: Any) -> Fleet:
        """The fleet shared by every widget of ``client`` (made on first use)."""
        with _shared_lock:
            fleet = _shared.get(client)
            if fleet is None or fleet.closed:
                fleet = _shared[client] = cls(client)
            return fleet

    # -- reading (any thread) ----------------------------------------------------------

    @property
    def agents(self) -> list[AgentInfo]:
        """Every agent, sorted by name."""
        with self._lock:
            return [self._agents[name] for name in sorted(self._agents)]

    def agent(self, name: str) -> AgentInfo | None:
        """Agent ``name``, or None when the fleet does not know it."""
        with self._lock:
            return self._agents.get(name)

    @property
    def metrics(self) -> CoordinatorMetrics:
        """The coordinator's metrics."""
        with self._lock:
            return self._metrics

    def view(self) -> tuple[int, list[AgentInfo], CoordinatorMetrics]:
        """``(version, agents, metrics)``, consistent with each other."""
        with self._lock:
            agents = [self._agents[name] for name in sorted(self._agents)]
            return self.version, agents, self._metrics

    def counts(self) -> dict[str, int]:
        """How many agents there are (``all``) and how many in each status."""
        return count_statuses(self.agents)

    @property
    def connection_state(self) -> str | None:
        """The state of the connection the rooms come through (None before any)."""
        state = getattr(self._connection, "state", None)
        return str(state) if state is not None else None

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"Fleet({summary(self.agents)})"

    # -- callbacks ---------------------------------------------------------------------

    def on_change(self, callback: Callable[[Fleet], None]) -> Callable[[], None]:
        """Call ``callback(fleet)`` after each change, on the thread that made it (the
        connection's, usually: don't block). Returns a function that removes it."""
        with self._lock:
            self._callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

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
        with self._lock:
            self.version += 1
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("vimax fleet: an on_change callback failed")

    # -- loading -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the agents and the metrics over REST (blocks); follow new agents.

        Agents and metrics that their rooms have already reported keep the rooms'
        (newer) values; agents the server no longer lists are dropped.
        """
        records = list(self.client.agents())
        metrics = self.client.coordinator()
        with self._lock:
            if self._closed:
                return
            listed: dict[str, AgentInfo] = {}
            for record in records:
                if not isinstance(record, dict):
                    continue
                info = AgentInfo.parse(record)
                if info.name:
                    known = self._agents.get(info.name)
                    live = agent_room(info.name) in self._live_rooms
                    listed[info.name] = known if known is not None and live else info
            gone = [self._subs.pop(agent_room(n), None) for n in self._agents if n not in listed]
            self._agents = listed
            if isinstance(metrics, dict) and COORDINATOR_ROOM not in self._live_rooms:
                self._metrics = CoordinatorMetrics.parse(metrics, self._metrics)
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
        except Exception as exc:
            self.error = f"cannot follow the agents live: {exc}"
            return
        on_state = getattr(self._connection, "on_state", None)
        if callable(on_state):
            remove = on_state(self._on_state)
            self._remove_state = remove if callable(remove) else None
        self._follow_room(COORDINATOR_ROOM)
        with self._lock:
            names = list(self._agents)
        for name in names:
            self._follow_room(agent_room(name))

    def _follow_room(self, room: str) -> None:
        with self._lock:
            if self._closed or room in self._subs:
                return
            self._subs[room] = None  # claimed: no second subscription for the room
        try:
            sub = self._subscribe(room, LIVE_ONLY)
        except Exception as exc:  # e.g. a connection that allows one subscription a room
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

    def _subscribe(self, room: str, after: int) -> Any:
        return self._connection.subscribe(
            room,
            self._on_event,
            after,
            on_reset=lambda snapshot: self._on_reset(room, snapshot),
        )

    def _on_state(self, _state: str) -> None:
        if not self._closed:
            self._changed()

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "agent_status":
            self._apply_agent(event, str(event.get("room") or ""))
        elif kind == "coordinator_metrics":
            self._apply_metrics(event)

    def _on_reset(self, room: str, snapshot: dict[str, Any]) -> None:
        if not isinstance(snapshot, dict) or not snapshot:
            return
        if room == COORDINATOR_ROOM:
            self._apply_metrics(snapshot)
        else:
            self._apply_agent(snapshot, room)

    def _apply_agent(self, data: dict[str, Any], room: str) -> None:
        name = data.get("agent_name", data.get("name"))
        if not isinstance(name, str) or not name:
            return
        room = room or agent_room(name)
        with self._lock:
            if self._closed or room not in self._subs:
                return  # not followed (any more)
            self._agents[name] = AgentInfo.parse(data, self._agents.get(name))
            self._live_rooms.add(room)
        self._changed()

    def _apply_metrics(self, data: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            self._metrics = CoordinatorMetrics.parse(data, self._metrics)
            self._live_rooms.add(COORDINATOR_ROOM)
            mismatch = self._metrics.registered_agents != len(self._agents)
        self._changed()
        if mismatch:
            self._refresh_soon()

    def _unsubscribe(self, sub: Any) -> None:
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
            self._callbacks.clear()
            remove_state, self._remove_state = self._remove_state, None
        if remove_state is not None:
            remove_state()
        for sub in subs:
            self._unsubscribe(sub)
