"""vimax_nb.client.fleet.Fleet: a real Client on the fake server (REST and rooms), then
on a real Jupyter server."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vimax_nb.client import Client, ConnectionState
from vimax_nb.client.fleet import LIVE_ONLY, Fleet
from vimax_nb.protocol import (
    ENVELOPE,
    AgentMetrics,
    AgentRecord,
    CoordinatorMetricsEvent,
    GetMetrics,
    Subscribe,
    Subscribed,
    Unsubscribe,
)

from ..server.conftest import Gate, install_toy
from ..widgets.server_fixtures import (  # noqa: F401  (fixtures)
    fixture_live_client,
    jp_server_config,
    service_of,
    vimax_workdir,
)
from .fake_server import FakeServer, no_metrics
from .helpers import QUICK_RECONNECT, Recorder, fixture_server  # noqa: F401  (a fixture)

TIMEOUT = 10.0
NAMES = {
    "camera_director": ("camera",),
    "character_extractor": ("characters",),
    "editor": ("edit", "video"),
    "frame_painter": ("paint", "frames"),
    "portrait_painter": ("paint", "portraits"),
    "screenwriter": ("script", "story"),
    "storyboard_artist": ("storyboard",),
    "video_generator": ("video",),
}
BUSY = {"screenwriter", "frame_painter"}


def agent(
    name: str, status: str = "idle", capabilities: tuple[str, ...] = (), **metrics: Any
) -> AgentRecord:
    """An agent as GET /vimax/api/agents lists it."""
    return AgentRecord(
        name=name,
        description=f"the {name}",
        status=status,
        capabilities=list(capabilities),
        metrics=AgentMetrics(**metrics),
    )


@pytest.fixture
def fleet_server(server: FakeServer) -> FakeServer:
    """The fake server with eight agents (six idle, two busy) and their coordinator."""
    for name, caps in NAMES.items():
        busy = name in BUSY
        server.agents[name] = agent(name, "busy" if busy else "idle", caps,
                                    current_task="t-1" if busy else None)  # fmt: skip
    server.metrics = no_metrics(registered_agents=8, total_workflows=3)
    return server


@pytest.fixture
def client(fleet_server: FakeServer) -> Iterator[Client]:
    made = Client(fleet_server.url, "token", socket_options=QUICK_RECONNECT)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def fleets() -> Iterator[Callable[[Client], Fleet]]:
    """Make fleets (closed at the end of the test)."""
    made: list[Fleet] = []

    def make(client: Client) -> Fleet:
        fleet = Fleet(client)
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.close()


def following(client: Client) -> None:
    """Wait until every room the fleet follows is answered and its snapshot applied: the
    server answers in order, so a request made after the subscriptions is answered
    after them."""
    client.connection.request(GetMetrics(), TIMEOUT)


def publish_status(server: FakeServer, name: str, status: str, **fields: Any) -> None:
    server.publish(f"agent:{name}", type="agent_status", agent_name=name, status=status, **fields)


def publish_metrics(server: FakeServer, **values: Any) -> None:
    fields = no_metrics(**values).model_dump(mode="json", exclude={"type", *ENVELOPE})
    server.publish("coordinator", type="coordinator_metrics", **fields)


def test_loads_over_rest_then_follows_every_room_from_now(
    fleet_server: FakeServer, client: Client, fleets: Callable[[Client], Fleet]
) -> None:
    fleet = fleets(client)
    assert [a.name for a in fleet.agents][:2] == ["camera_director", "character_extractor"]
    assert all(isinstance(a, AgentRecord) for a in fleet.agents)
    assert fleet.counts() == {"all": 8, "idle": 6, "busy": 2, "error": 0, "offline": 0}
    assert repr(fleet) == "Fleet(8 agents: 6 idle, 2 busy)"
    assert isinstance(fleet.metrics, CoordinatorMetricsEvent)
    assert (fleet.metrics.total_workflows, fleet.metrics.registered_agents) == (3, 8)
    assert fleet.error is None
    following(client)
    subscribes = fleet_server.messages(Subscribe)
    assert {s.room for s in subscribes} == {"coordinator"} | {f"agent:{n}" for n in NAMES}
    assert {s.after for s in subscribes} == {LIVE_ONLY}  # the snapshot and live events
    assert fleet.snapshot() == (fleet.agents, fleet.metrics)


def test_agent_events_and_snapshots_update_it_and_call_back(
    fleet_server: FakeServer, client: Client, fleets: Callable[[Client], Fleet]
) -> None:
    fleet = fleets(client)
    following(client)
    recorder = Recorder()
    remove = fleet.on_change(lambda f: recorder((threading.current_thread().name,
                                                 f.agent("editor"))))  # fmt: skip

    metrics = {"tasks_completed": 4, "tasks_failed": 1, "error_rate": 0.2,
               "avg_execution_ms": 1500.0, "current_task": "wf-1/edit",
               "last_heartbeat": "2030-01-01T00:00:00+00:00"}  # fmt: skip
    publish_status(fleet_server, "editor", "busy", capabilities=["edit", "video"], metrics=metrics)
    recorder.wait(lambda r: bool(r.messages))
    editor = fleet.agent("editor")
    assert editor == agent("editor", "busy", ("edit", "video"), **metrics)  # described still
    assert recorder.messages == [("vimax-connection", editor)]  # one callback, on its thread
    assert fleet.counts()["busy"] == 3

    # a new event log: every room is reset, and its snapshot (a record) is the truth
    fleet_server.agents["editor"] = agent("editor", "error", ("edit",))
    fleet_server.metrics = no_metrics(registered_agents=8, queue_size=7)
    fleet_server.reset_log("epoch-2")
    fleet_server.drop_connections()
    assert fleet.wait_for(lambda f: f.metrics.queue_size == 7, TIMEOUT)
    assert fleet.wait_for(lambda f: f.agent("editor") == agent("editor", "error", ("edit",)))

    remove()
    count = len(recorder.messages)
    publish_status(fleet_server, "editor", "idle")
    assert fleet.wait_for(lambda f: f.agent("editor").status == "idle", TIMEOUT)  # type: ignore[union-attr]
    assert len(recorder.messages) == count


def test_new_agents_are_found_off_the_connection_thread_and_followed(
    fleet_server: FakeServer, client: Client, fleets: Callable[[Client], Fleet]
) -> None:
    fleet = fleets(client)
    following(client)
    found = Recorder()
    fleet.on_change(lambda f: found(threading.current_thread().name)
                    if f.agent("narrator") else None)  # fmt: skip
    del fleet_server.agents["camera_director"]
    fleet_server.agents["narrator"] = agent("narrator", "idle", ("voice",))

    # the coordinator says 9 agents: the fleet reloads the list on a worker thread
    publish_metrics(fleet_server, registered_agents=9)
    found.wait(lambda r: bool(r.messages))
    assert found.messages[0] == "vimax-fleet"
    assert fleet.agent("camera_director") is None  # no longer listed: dropped ...
    assert fleet_server.wait_for(  # ... and unfollowed, while the new one is followed
        lambda: (
            Unsubscribe(room="agent:camera_director") in fleet_server.messages(Unsubscribe)
            and "agent:narrator" in {s.room for s in fleet_server.messages(Subscribe)}
        )
    )
    assert fleet.counts()["all"] == 8

    publish_status(fleet_server, "narrator", "busy")
    assert fleet.wait_for(lambda f: f.agent("narrator").status == "busy", TIMEOUT)  # type: ignore[union-attr]


def test_rest_does_not_overwrite_what_the_rooms_reported(
    fleet_server: FakeServer, client: Client, fleets: Callable[[Client], Fleet]
) -> None:
    fleet = fleets(client)
    following(client)
    publish_status(fleet_server, "editor", "busy", metrics={"tasks_completed": 5})
    assert fleet.wait_for(lambda f: f.agent("editor").status == "busy", TIMEOUT)  # type: ignore[union-attr]
    fleet_server.agents["editor"] = agent("editor", "idle", tasks_completed=4)  # older
    fleet.refresh()
    editor = fleet.agent("editor")
    assert editor is not None
    assert (editor.status, editor.metrics.tasks_completed) == ("busy", 5)


def test_a_failed_load_is_kept_as_an_error_and_the_rooms_still_fill_it(
    server: FakeServer, fleets: Callable[[Client], Fleet]
) -> None:
    server.stop_listening()
    client = Client(server.url, "token", socket_options=QUICK_RECONNECT)
    try:
        fleet = fleets(client)
        assert fleet.agents == []
        assert fleet.error is not None
        assert fleet.error.startswith("could not load the agents: ")

        server.agents["editor"] = agent("editor")
        server.start()  # the rooms: the coordinator reports one agent, the fleet reloads
        publish_metrics(server, registered_agents=1)
        assert fleet.wait_for(lambda f: [a.name for a in f.agents] == ["editor"], TIMEOUT)
        assert fleet.wait_for(lambda f: f.error is None, TIMEOUT)
    finally:
        client.close()


def test_a_room_that_cannot_be_followed_is_an_error_not_a_crash(
    fleet_server: FakeServer, client: Client, fleets: Callable[[Client], Fleet]
) -> None:
    client.connection.close()
    fleet = fleets(client)
    assert fleet.error == "cannot follow agent:video_generator live: the connection is closed"
    assert len(fleet.agents) == 8
    assert fleet.connection_state == ConnectionState.closed


def test_wait_for_returns_once_a_change_makes_the_predicate_true(
    fleet_server: FakeServer, client: Client, fleets: Callable[[Client], Fleet]
) -> None:
    fleet = fleets(client)
    following(client)
    publish_status(fleet_server, "editor", "busy")

    def editor_idle(f: Fleet) -> bool:
        editor = f.agent("editor")
        return editor is not None and editor.status == "idle"

    assert fleet.wait_for(lambda f: not editor_idle(f), TIMEOUT)
    assert not fleet.wait_for(editor_idle, timeout=0.05)
    answers: list[bool] = []
    waiting = threading.Thread(target=lambda: answers.append(fleet.wait_for(editor_idle, TIMEOUT)))
    waiting.start()
    publish_status(fleet_server, "editor", "idle")
    waiting.join(TIMEOUT)
    assert answers == [True]
    assert fleet.wait_for(editor_idle, timeout=0)  # already true


def test_close_unfollows_stops_calling_back_and_lets_the_fleet_go(
    fleet_server: FakeServer, client: Client
) -> None:
    fleet = Fleet(client)
    following(client)
    calls: list[Fleet] = []
    fleet.on_change(calls.append)
    fleet.close()
    assert fleet.closed
    rooms = sorted(["coordinator", *(f"agent:{n}" for n in NAMES)])
    assert fleet_server.wait_for(lambda: len(fleet_server.messages(Unsubscribe)) == len(rooms))
    assert sorted(m.room for m in fleet_server.messages(Unsubscribe)) == rooms
    states = Recorder()
    client.connection.on_state(states)
    fleet_server.drop_connections()  # changes of the connection's state: no callback
    states.wait(lambda r: ConnectionState.open in r.messages)
    publish_status(fleet_server, "editor", "error")  # no longer followed
    client.connection.request(GetMetrics(), TIMEOUT)
    assert calls == []
    assert fleet.agent("editor").status == "idle"  # type: ignore[union-attr]
    gone = weakref.ref(fleet)
    del fleet
    gc.collect()
    assert gone() is None  # nothing of the connection holds it any more


def test_one_shared_fleet_per_client(fleet_server: FakeServer, client: Client) -> None:
    fleet = Fleet.of(client)
    assert Fleet.of(client) is fleet
    other = Client(fleet_server.url, "token")
    try:
        assert Fleet.of(other) is not fleet
    finally:
        Fleet.of(other).close()
        other.close()
    fleet.close()
    again = Fleet.of(client)
    assert again is not fleet
    again.close()


def test_many_events_from_every_room_end_consistent(
    fleet_server: FakeServer, client: Client, fleets: Callable[[Client], Fleet]
) -> None:
    fleet = fleets(client)
    following(client)
    changes = Recorder()
    fleet.on_change(changes)
    for i in range(1, 101):
        for name in NAMES:
            publish_status(fleet_server, name, "busy" if i % 2 else "idle",
                           metrics={"tasks_completed": i})  # fmt: skip

    def settled(f: Fleet) -> bool:
        return all(a.metrics.tasks_completed == 100 and a.status == "idle" for a in f.agents)

    assert fleet.wait_for(settled, TIMEOUT)
    assert len(changes.messages) >= 8 * 100  # a callback for every event


# -- against a real server ----------------------------------------------------------------


async def test_a_real_fleet_shares_the_coordinator_room_with_another_subscription(
    live_client: Client,
) -> None:
    seen: list[Any] = []
    answered = threading.Event()

    def on_subscribed(_answer: Subscribed) -> None:
        answered.set()

    other = live_client.connection.subscribe("coordinator", seen.append,
                                             on_subscribed=on_subscribed)  # fmt: skip
    assert await asyncio.to_thread(answered.wait, TIMEOUT)
    fleet = await asyncio.to_thread(Fleet, live_client)
    try:
        before = fleet.metrics.total_workflows
        recorder = Recorder()
        fleet.on_change(lambda f: recorder(f.metrics.total_workflows))
        await asyncio.to_thread(live_client.submit, "idea2video", idea="A fox", scenes=1,
                                width=64, height=64, fps=1, seconds_per_shot=1,
                                shots_per_scene=1)  # fmt: skip
        # a coordinator_metrics event follows the submission: the fleet must get it live
        await recorder.until(lambda r: bool(r.messages) and r.messages[-1] > before, 30)
        assert any(isinstance(e, CoordinatorMetricsEvent) for e in seen)
    finally:
        fleet.close()
        live_client.connection.unsubscribe(other)


async def test_a_real_fleet_follows_agents_as_a_workflow_runs(
    live_client: Client, jp_serverapp: Any
) -> None:
    fleet = await asyncio.to_thread(Fleet, live_client)
    try:
        assert fleet.error is None
        names = {a.name for a in fleet.agents}
        assert {"screenwriter", "editor"} <= names
        assert fleet.metrics.registered_agents == len(names)

        recorder = Recorder()
        fleet.on_change(lambda f: recorder(f.agent("toy-writer")))
        gate = Gate()
        install_toy(service_of(jp_serverapp).coordinator, gate)
        try:
            run = await asyncio.to_thread(live_client.submit, "story", shots=1)
            assert await asyncio.to_thread(gate.entered.wait, TIMEOUT)

            def writer_busy(r: Recorder) -> bool:
                writer = r.messages[-1] if r.messages else None
                return writer is not None and writer.status == "busy"

            # the new agents are found (registered_agents changed), followed, seen busy
            await recorder.until(writer_busy, 30)
            writer = fleet.agent("toy-writer")
            assert writer is not None
            assert writer.metrics.current_task
            assert "outline" in writer.capabilities
        finally:
            gate.opened.set()
        await asyncio.to_thread(run.wait, 60)

        def writer_done(r: Recorder) -> bool:
            writer = r.messages[-1] if r.messages else None
            return (
                writer is not None
                and writer.status == "idle"
                and writer.metrics.tasks_completed == 1
            )

        await recorder.until(writer_done, 30)
        assert fleet.agent("toy-painter") is not None
        assert fleet.metrics.registered_agents == len(fleet.agents) == len(names) + 3
    finally:
        fleet.close()
