"""What the widget tests drive: the client's real objects (a :class:`Client`, its
:class:`Run` and :class:`Fleet`) talking to the fake server of the client tests
(``tests/client/fake_server.py``: the protocol over a real WebSocket, and the REST reads).

A test sets the server's records, publishes events to its rooms and waits, on
conditions and never by sleeping, until the run or the fleet has them; the panels then
draw what a user would see.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vimax_nb.client import Client, ConnectionState, Run
from vimax_nb.protocol import (
    AgentRecord,
    ClientMessage,
    Control,
    ControlAction,
    ControlResponse,
    WorkflowState,
    agent_room,
    workflow_room,
)

from ..client.fake_server import FakeServer, Peer, no_metrics, workflow_record
from ..client.helpers import wait_run

IDEA = "A lighthouse keeper befriends a whale"
EVIL = "<img src=x onerror=alert(1)>"
TIMEOUT = 10.0

_AFTER = {
    ControlAction.pause: WorkflowState.paused,
    ControlAction.resume: WorkflowState.running,
    ControlAction.cancel: WorkflowState.canceled,
}


class ControlledServer(FakeServer):
    """The fake server, answering a control as the real server does: the workflow's new
    state as a progress event of its room, and the answer.

    ``hold_controls`` keeps control requests unanswered until :meth:`release_controls`;
    ``refusal``, when set, is the message every control is refused with;
    ``drop_on_control`` drops the connection a control comes on, unanswered.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hold_controls = False
        self.refusal: str | None = None
        self.drop_on_control = False
        self._held: list[tuple[Peer, Control]] = []

    def _answer(self, peer: Peer, message: ClientMessage) -> None:
        if not isinstance(message, Control):
            super()._answer(peer, message)
        elif self.drop_on_control:
            peer.ws.transport.abort()
        elif self.hold_controls:
            self._held.append((peer, message))
        else:
            self._control(peer, message)

    def _control(self, peer: Peer, message: Control) -> None:
        if self.refusal is not None:
            peer.send(
                ControlResponse(
                    id=message.id,
                    action=message.action,
                    ok=False,
                    state=None,
                    message=self.refusal,
                    workflow_id=message.workflow_id,
                )
            )
            return
        record = self.workflows[message.workflow_id]
        # The state event goes out from a worker thread (publish waits on this loop).
        self._loop.run_in_executor(
            None,
            lambda: self.publish(
                workflow_room(record.id),
                state=_AFTER[message.action],
                progress=record.progress,
                stage=record.stage,
                message=f"{message.action}d",
            ),
        )
        super()._answer(peer, message)

    def release_controls(self) -> None:
        """Answer the controls held so far (and every later one at once)."""

        def release() -> None:
            self.hold_controls = False
            held, self._held = self._held, []
            for peer, message in held:
                self._control(peer, message)

        self._loop.call_soon_threadsafe(release)


@dataclass
class Backend:
    """A :class:`ControlledServer` and a real :class:`Client` of it (``workdir`` is where
    the client finds the workflows' files)."""

    server: ControlledServer
    client: Client

    def run(
        self, workflow_id: str = "wf-1", *, idea: str = IDEA, state: str = "running", **record: Any
    ) -> Run:
        """A workflow the server knows (``workflow_record``'s, with ``idea``, ``state`` and
        the fields of ``record``), followed by a live :class:`Run` from its start."""
        made = workflow_record(workflow_id, state).model_copy(
            update={"params": {"idea": idea}, **record}
        )
        self.server.workflows[workflow_id] = made
        return self.client.run(workflow_id)

    def publish(self, run: Run, **fields: Any) -> int:
        """An event of ``run``'s room (a progress event unless ``type`` says otherwise,
        running at 0 unless ``fields`` say otherwise); its seq. Does not wait."""
        if fields.get("type") == "artifact":
            fields = {"workflow_id": run.id, **fields}
        return self.server.publish(workflow_room(run.id), **fields)

    def send(self, run: Run, **fields: Any) -> None:
        """:meth:`publish`, then wait until the run has received the event."""
        seq = self.publish(run, **fields)
        wait_run(run, lambda r: r.events >= seq, TIMEOUT)

    def stages(self, run: Run, stage: str, *counts: tuple[str, int, int], **fields: Any) -> None:
        """A progress event at ``stage`` with ``(name, done, total)`` per stage; waits."""
        details = {"stages": [{"name": n, "done": d, "total": t} for n, d, t in counts]}
        self.send(run, stage=stage, details=details, **fields)

    def artifact(self, run: Run, kind: str, path: str, *, name: str | None = None) -> None:
        """An artifact event for file ``path`` of the run's folder; waits."""
        self.send(
            run,
            type="artifact",
            stage="frames",
            name=name if name is not None else path,
            kind=kind,
            url=f"/vimax/api/workflows/{run.id}/artifacts/{path}",
        )

    def go_offline(self) -> None:
        """Once the client's connection is open, stop the server, and wait until the
        connection has noticed. (Stopped while a connection is being made, the fake server
        would leave that handshake hanging until the client gives up on it.)"""
        connection = self.client.connection
        changed = threading.Condition()

        def on_state(_state: ConnectionState) -> None:
            with changed:
                changed.notify_all()

        remove = connection.on_state(on_state)
        try:
            with changed:
                opened = changed.wait_for(lambda: connection.state == ConnectionState.open, TIMEOUT)
            assert opened, f"never open: {connection.state}"
            self.server.stop_listening()
            with changed:
                lost = changed.wait_for(
                    lambda: connection.state == ConnectionState.offline, TIMEOUT
                )
            assert lost, f"still {connection.state}"
        finally:
            remove()

    def agents(self, *records: AgentRecord, **metrics: Any) -> None:
        """The agents and the coordinator's metrics the server has (REST and snapshots)."""
        self.server.agents = {r.name: r for r in records}
        self.server.metrics = no_metrics(registered_agents=len(records), **metrics)

    def status(self, name: str, status: str, **metrics: Any) -> int:
        """An ``agent_status`` event of agent ``name``; its seq. Does not wait."""
        return self.server.publish(
            agent_room(name), type="agent_status", agent_name=name, status=status, metrics=metrics
        )

    def coordinator(self, **metrics: Any) -> None:
        """A ``coordinator_metrics`` event (every figure 0 but ``metrics``). Does not wait."""
        event = no_metrics(**metrics).model_dump(mode="json", exclude={"room", "seq", "timestamp"})
        self.server.publish("coordinator", **event)


@contextlib.contextmanager
def serving(workdir: Path | None = None) -> Iterator[Backend]:
    """A :class:`ControlledServer` on its own thread and a :class:`Client` of it whose
    workdir is ``workdir`` (a workflow's files go in ``workdir / <its id>``); both closed
    at the end."""
    server = ControlledServer()
    server.start()
    client = Client(server.url, workdir=workdir)
    try:
        yield Backend(server, client)
    finally:
        client.close()
        server.close()


def agent(name: str, status: str = "idle", *capabilities: str, **metrics: Any) -> AgentRecord:
    """An agent as GET /vimax/api/agents lists it."""
    return AgentRecord.model_validate(
        {
            "name": name,
            "description": f"the {name}",
            "status": status,
            "capabilities": list(capabilities),
            "metrics": metrics,
        }
    )


def eight_agents() -> list[AgentRecord]:
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
        agent(n, "busy", *caps, current_task="t-1") if n in busy else agent(n, "idle", *caps)
        for n, caps in names
    ]


class Watcher:
    """Wait until a panel shows something: woken by every change of a widget in its tree
    (what the front end is sent; widgets added later are watched too), never by a sleep.

    :meth:`until` checks its predicate without holding any lock the panel's drawing
    thread could be waiting for.
    """

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self._cond = threading.Condition()
        self._changes = 0
        self._watch_lock = threading.Lock()
        self._watched: dict[int, Any] = {}  # id -> widget (kept, so no id is reused)
        self._watch([panel.box])

    def _watch(self, widgets: Any) -> None:
        stack = list(widgets)
        while stack:
            widget = stack.pop()
            with self._watch_lock:
                if id(widget) in self._watched:
                    continue
                self._watched[id(widget)] = widget
            widget.observe(self._changed)
            stack.extend(getattr(widget, "children", ()) or ())

    def _changed(self, change: Any) -> None:
        if change["name"] == "children":
            self._watch(change["new"])
        with self._cond:
            self._changes += 1
            self._cond.notify_all()

    def until(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait until ``predicate()`` holds, then until the panel has finished drawing."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                seen = self._changes
            if predicate():
                break
            with self._cond:
                left = deadline - time.monotonic()
                changed = self._cond.wait_for(lambda n=seen: self._changes != n, max(0.0, left))
            assert changed, "the panel never showed that"
        assert self.panel.wait_drawn(max(0.0, deadline - time.monotonic()))


def change_times(widget: Any, name: str = "value") -> list[float]:
    """The moments (monotonic) at which ``widget``'s trait ``name`` changes from now on:
    a list that grows as the panel draws."""
    times: list[float] = []
    widget.observe(lambda _change: times.append(time.monotonic()), names=name)
    return times


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
