"""Stand-ins for the client's objects, driven by hand from any thread (no kernel, no server)."""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vimax_nb.client import Run

IDEA = "A lighthouse keeper befriends a whale"
EVIL = "<img src=x onerror=alert(1)>"
TIMEOUT = 10.0


class FakeConnection:
    """The parts of Connection the widgets and the fleet use."""

    def __init__(self) -> None:
        self.state = "open"
        self._handlers: list[Callable[[str], None]] = []
        self.subs: dict[str, FakeSub] = {}
        self.subscribed: list[tuple[str, int | None]] = []
        self.unsubscribed: list[str] = []
        self._seq = 0
        self._lock = threading.Lock()

    def on_state(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Register ``callback``; a remover, as the newer Connection returns."""
        self._handlers.append(callback)
        return lambda: self._handlers.remove(callback)

    def set(self, state: str) -> None:
        self.state = state
        for handler in list(self._handlers):
            handler(state)

    def subscribe(
        self,
        room: str,
        callback: Callable[[dict[str, Any]], None],
        after: int | None = None,
        *,
        on_subscribed: Callable[[dict[str, Any]], None] | None = None,
        on_reset: Callable[[dict[str, Any]], None] | None = None,
    ) -> FakeSub:
        sub = FakeSub(room, callback, after, on_reset, on_subscribed, last_seq=after or 0)
        with self._lock:
            self.subs[room] = sub
            self.subscribed.append((room, after))
        return sub

    def unsubscribe(self, sub: FakeSub) -> None:
        with self._lock:
            sub.active = False
            self.unsubscribed.append(sub.room)
            if self.subs.get(sub.room) is sub:
                del self.subs[sub.room]

    def emit(self, room: str, **event: Any) -> None:
        """Deliver an event of ``room`` as the connection would (its thread is the caller's)."""
        with self._lock:
            sub = self.subs.get(room)
            self._seq += 1
            seq = self._seq
        if sub is not None and sub.active:
            sub.callback({**event, "room": room, "seq": seq})

    def reset(self, room: str, snapshot: dict[str, Any]) -> None:
        sub = self.subs[room]
        assert sub.on_reset is not None
        sub.on_reset(snapshot)


@dataclass(eq=False)
class FakeSub:
    room: str
    callback: Callable[[dict[str, Any]], None]
    after: int | None
    on_reset: Callable[[dict[str, Any]], None] | None
    on_subscribed: Callable[[dict[str, Any]], None] | None = None
    last_seq: int = 0
    active: bool = True


def agent_record(
    name: str,
    status: str = "idle",
    capabilities: tuple[str, ...] = (),
    **metrics: Any,
) -> dict[str, Any]:
    """An agent as GET /vimax/api/agents lists it."""
    return {
        "name": name,
        "description": f"the {name}",
        "status": status,
        "capabilities": list(capabilities),
        "concurrency": 1,
        "metrics": {
            "tasks_completed": 0,
            "tasks_failed": 0,
            "error_rate": 0.0,
            "avg_execution_ms": 0.0,
            "current_task": None,
            "last_heartbeat": None,
            **metrics,
        },
    }


def metrics_record(**values: Any) -> dict[str, Any]:
    base = {
        "total_workflows": 0,
        "active_workflows": 0,
        "queue_size": 0,
        "registered_agents": 0,
        "healthy_agents": 0,
        "tasks_per_second": 0.0,
        "dead_letters": 0,
        "connections": 1,
    }
    return {**base, **values}


class FakeFleetClient:
    """REST (agents, coordinator) and a connection, for a Fleet."""

    def __init__(self, agents: list[dict[str, Any]], **metrics: Any) -> None:
        self.records = agents
        self.metrics = metrics_record(registered_agents=len(agents), **metrics)
        self.connection = FakeConnection()
        self.fail: Exception | None = None
        self.rest_threads: list[int] = []
        self.loaded = threading.Event()

    def agents(self) -> list[dict[str, Any]]:
        self.rest_threads.append(threading.get_ident())
        if self.fail is not None:
            raise self.fail
        return copy.deepcopy(self.records)

    def coordinator(self) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        self.loaded.set()
        return dict(self.metrics)


def eight_agents() -> list[dict[str, Any]]:
    """Six idle agents and two busy ones, as ViMax has them."""
    names = [
        ("camera_director", ("camera",)),
        ("character_extractor", ("characters",)),
        ("editor", ("edit", "video")),
        ("frame_painter", ("paint", "frames")),
        ("portrait_painter", ("paint", "portraits")),
        ("screenwriter", ("script", "story")),
        ("storyboard_artist", ("storyboard",)),
        ("video_generator", ("video",)),
    ]
    busy = {"screenwriter", "frame_painter"}
    return [
        agent_record(
            n, "busy" if n in busy else "idle", caps, current_task="t-1" if n in busy else None
        )
        for n, caps in names
    ]


class FakeClient:
    """What WorkflowProgress asks of a run's client."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir
        self.connection = FakeConnection()

    def artifact(self, workflow_id: str, path: str) -> Path | str:
        if self.workdir is not None and (self.workdir / path).is_file():
            return self.workdir / path
        return f"http://server/vimax/api/workflows/{workflow_id}/artifacts/{path}"


class FakeRun:
    """The surface of vimax_nb.client.Run that the widget reads, driven by hand.

    With ``history=True`` it keeps the last 200 events it was given, and ``on_change``
    returns a remover, as the newer Run does.
    """

    __repr__ = Run.__repr__

    def __init__(
        self, idea: str = IDEA, *, client: FakeClient | None = None, history: bool = False
    ) -> None:
        self.id = "wf-1"
        self.kind = "idea2video"
        self.params: dict[str, Any] = {"idea": idea}
        self.state = "running"
        self.progress = 0.0
        self.stage: str | None = None
        self.message = ""
        self.stages: list[dict[str, Any]] = []
        self.artifacts: list[dict[str, Any]] = []
        self.events = 0
        if history:
            self.history: deque[dict[str, Any]] = deque(maxlen=200)
        if client is not None:
            self.client = client
        self._removable = history
        self._callbacks: list[Callable[[Any], None]] = []
        self.calls: list[tuple[str, int]] = []
        self.called = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail: Exception | None = None

    def on_change(self, callback: Callable[[Any], None]) -> Callable[[], None] | None:
        self._callbacks.append(callback)
        if not self._removable:
            return None
        return lambda: self._callbacks.remove(callback)

    def update(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self, name, value)
        self.events += 1
        for callback in list(self._callbacks):
            callback(self)

    def receive(self, event: dict[str, Any]) -> None:
        """An event as the newer Run takes it: kept in history, then applied."""
        self.history.append(event)
        if event.get("type") == "progress":
            self.update(**{k: event[k] for k in ("state", "progress", "message") if k in event})
        else:
            self.update()

    def _control(self, action: str, state: str) -> str:
        self.calls.append((action, threading.get_ident()))
        self.called.set()
        assert self.release.wait(TIMEOUT)
        if self.fail is not None:
            raise self.fail
        self.update(state=state)
        return state

    def pause(self) -> str:
        return self._control("pause", "paused")

    def resume(self) -> str:
        return self._control("resume", "running")

    def cancel(self) -> str:
        return self._control("cancel", "canceled")


class Watcher:
    """Wait (on a condition, with a timeout) until a panel has drawn something."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.times: list[float] = []
        self._cond = threading.Condition()
        widget.on_redraw = self._redrawn

    def _redrawn(self, _widget: Any) -> None:
        with self._cond:
            self.times.append(time.monotonic())
            self._cond.notify_all()

    def until(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, timeout), "the widget never drew that"


def html_values(root: Any) -> Iterator[str]:
    """Every string ``value``, ``description`` and title in a widget tree."""
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        for attr in ("value", "description", "placeholder"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                yield value
        yield from (t for t in getattr(node, "titles", ()) or () if isinstance(t, str))
        stack.extend(getattr(node, "children", ()) or ())


def coalescing_bound(times: list[float], start: float, interval: float) -> tuple[int, float]:
    """How many redraws happened after ``start``, and the most the coalescing allows."""
    after = [t for t in times if t >= start]
    elapsed = (after[-1] - start) if after else 0.0
    return len(after), elapsed / interval + 2


@dataclass
class Recorder:
    """Records on_change calls: the thread and the value of ``probe`` at the time."""

    probe: Callable[[], Any] = lambda: None
    calls: list[tuple[int, Any]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, _subject: Any) -> None:
        with self.cond:
            self.calls.append((threading.get_ident(), self.probe()))
            self.cond.notify_all()

    def until(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), "never happened"
