"""vimax_nb.client.fleet.Fleet: against fake REST and rooms, then against a real server."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from vimax_nb.client import Client
from vimax_nb.client.fleet import LIVE_ONLY, AgentInfo, CoordinatorMetrics, Fleet

from ..server.conftest import Gate, install_toy
from ..widgets.fakes import (
    TIMEOUT,
    FakeFleetClient,
    Recorder,
    agent_record,
    eight_agents,
    metrics_record,
)
from ..widgets.server_fixtures import (  # noqa: F401  (fixtures)
    fixture_live_client,
    jp_server_config,
    service_of,
    vimax_workdir,
)


def test_loads_over_rest_then_follows_every_room_from_now() -> None:
    client = FakeFleetClient(eight_agents(), total_workflows=3)
    fleet = Fleet(client)
    assert [a.name for a in fleet.agents][:2] == ["camera_director", "character_extractor"]
    assert fleet.counts() == {"all": 8, "idle": 6, "busy": 2, "error": 0, "offline": 0}
    assert repr(fleet) == "Fleet(8 agents: 6 idle, 2 busy)"
    assert fleet.metrics.total_workflows == 3
    assert fleet.metrics.registered_agents == 8
    assert fleet.error is None
    rooms = dict(client.connection.subscribed)
    assert set(rooms) == {"coordinator"} | {f"agent:{a.name}" for a in fleet.agents}
    assert set(rooms.values()) == {LIVE_ONLY}  # the snapshot and live events, no replay
    assert fleet.connection_state == "open"


def test_agent_events_and_snapshots_update_it_and_call_back() -> None:
    client = FakeFleetClient(eight_agents())
    fleet = Fleet(client)
    recorder = Recorder(probe=lambda: fleet.agent("editor"))
    remove = fleet.on_change(recorder)
    version = fleet.version

    client.connection.emit(
        "agent:editor",
        type="agent_status",
        agent_name="editor",
        status="busy",
        capabilities=["edit", "video"],
        metrics={"tasks_completed": 4, "tasks_failed": 1, "error_rate": 0.2,
                 "avg_execution_ms": 1500.0, "current_task": "wf-1/edit",
                 "last_heartbeat": "2030-01-01T00:00:00+00:00"},
    )  # fmt: skip
    editor = fleet.agent("editor")
    assert editor == AgentInfo(
        "editor",
        "busy",
        ("edit", "video"),
        "the editor",
        1,
        4,
        1,
        0.2,
        1500.0,
        "wf-1/edit",
        "2030-01-01T00:00:00+00:00",
    )
    assert fleet.version == version + 1
    assert recorder.calls == [(threading.get_ident(), editor)]
    assert fleet.counts()["busy"] == 3

    # a reset: the room's snapshot (an agent record) is the truth
    client.connection.reset("agent:editor", agent_record("editor", "error", ("edit",)))
    assert fleet.agent("editor") == AgentInfo("editor", "error", ("edit",), "the editor")
    client.connection.reset("coordinator", metrics_record(queue_size=7, registered_agents=8))
    assert fleet.metrics.queue_size == 7

    remove()
    client.connection.emit("agent:editor", type="agent_status", agent_name="editor", status="idle")
    assert fleet.agent("editor").status == "idle"  # type: ignore[union-attr]
    assert len(recorder.calls) == 3


def test_lenient_parsing_keeps_what_was_known() -> None:
    before = AgentInfo("a", "busy", ("x",), tasks_completed=3, current_task="t")
    after = AgentInfo.parse(
        {"agent_name": "a", "status": 5, "capabilities": "x", "metrics": {"tasks_completed": "9",
         "tasks_failed": True, "current_task": None, "new_field": 1}},
        before,
    )  # fmt: skip
    assert after == AgentInfo("a", "busy", ("x",), tasks_completed=3, current_task=None)
    metrics = CoordinatorMetrics.parse({"queue_size": "many", "tasks_per_second": 2}, None)
    assert metrics == CoordinatorMetrics(tasks_per_second=2.0)
    assert isinstance(metrics.tasks_per_second, float)


def test_new_agents_are_found_off_the_connection_thread_and_followed() -> None:
    agents = eight_agents()
    client = FakeFleetClient(agents)
    fleet = Fleet(client)
    recorder = Recorder(probe=lambda: fleet.agent("narrator"))
    fleet.on_change(recorder)
    client.records = [*agents[1:], agent_record("narrator", "idle", ("voice",))]

    # the coordinator says 9 agents: the fleet reloads the list on a worker thread
    client.connection.emit("coordinator", type="coordinator_metrics", **metrics_record(
        registered_agents=9))  # fmt: skip
    recorder.until(lambda: any(found is not None for _, found in recorder.calls))
    assert client.rest_threads[-1] != threading.get_ident()
    assert "agent:narrator" in client.connection.subs
    assert fleet.agent("camera_director") is None  # no longer listed: dropped ...
    assert "agent:camera_director" in client.connection.unsubscribed  # ... and unfollowed
    assert fleet.counts()["all"] == 8

    client.connection.emit(
        "agent:narrator", type="agent_status", agent_name="narrator", status="busy"
    )
    assert fleet.agent("narrator").status == "busy"  # type: ignore[union-attr]


def test_rest_does_not_overwrite_what_the_rooms_reported() -> None:
    client = FakeFleetClient(eight_agents())
    fleet = Fleet(client)
    client.connection.emit("agent:editor", type="agent_status", agent_name="editor",
                           status="busy", metrics={"tasks_completed": 5})  # fmt: skip
    client.records[2] = agent_record("editor", "idle", tasks_completed=4)  # an older reading
    fleet.refresh()
    assert fleet.agent("editor").tasks_completed == 5  # type: ignore[union-attr]
    assert fleet.agent("editor").status == "busy"  # type: ignore[union-attr]


def test_a_failed_load_is_kept_as_an_error_and_the_rooms_still_fill_it() -> None:
    client = FakeFleetClient(eight_agents())
    client.fail = ConnectionError("server down")
    fleet = Fleet(client)
    assert fleet.agents == []
    assert fleet.error == "could not load the agents: server down"
    assert "coordinator" in client.connection.subs
    client.fail = None
    recorder = Recorder(probe=lambda: len(fleet.agents))
    fleet.on_change(recorder)
    client.connection.emit("coordinator", type="coordinator_metrics", **metrics_record(
        registered_agents=8))  # fmt: skip
    recorder.until(lambda: bool(recorder.calls) and recorder.calls[-1][1] == 8)
    assert fleet.error is None
    assert len(client.connection.subs) == 9


def test_a_room_that_cannot_be_followed_is_an_error_not_a_crash() -> None:
    client = FakeFleetClient(eight_agents())

    def refuse(room: str, *_args: Any, **_kwargs: Any) -> Any:
        raise ValueError(f"already subscribed to {room!r}")

    client.connection.subscribe = refuse  # type: ignore[method-assign]
    fleet = Fleet(client)
    assert fleet.error == (
        "cannot follow agent:video_generator live: already subscribed to 'agent:video_generator'"
    )
    assert len(fleet.agents) == 8


def test_wait_for_returns_once_a_change_makes_the_predicate_true() -> None:
    client = FakeFleetClient(eight_agents())
    fleet = Fleet(client)
    client.connection.emit("agent:editor", type="agent_status", agent_name="editor",
                           status="busy")  # fmt: skip

    def editor_idle(f: Fleet) -> bool:
        editor = f.agent("editor")
        return editor is not None and editor.status == "idle"

    assert not fleet.wait_for(editor_idle, timeout=0.05)
    answers: list[bool] = []
    waiting = threading.Thread(target=lambda: answers.append(fleet.wait_for(editor_idle, TIMEOUT)))
    waiting.start()
    client.connection.emit("agent:editor", type="agent_status", agent_name="editor",
                           status="idle")  # fmt: skip
    waiting.join(TIMEOUT)
    assert answers == [True]
    assert fleet.wait_for(editor_idle, timeout=0)  # already true


def test_close_unfollows_and_stops_calling_back() -> None:
    client = FakeFleetClient(eight_agents())
    fleet = Fleet(client)
    recorder = Recorder()
    fleet.on_change(recorder)
    assert len(client.connection._handlers) == 1  # the connection's state is followed
    fleet.close()
    assert fleet.closed
    assert client.connection._handlers == []  # ... and no longer: the fleet can be freed
    assert sorted(client.connection.unsubscribed) == sorted(
        ["coordinator", *(f"agent:{a['name']}" for a in client.records)]
    )
    assert recorder.calls == []


def test_one_shared_fleet_per_client() -> None:
    client = FakeFleetClient(eight_agents())
    fleet = Fleet.of(client)
    assert Fleet.of(client) is fleet
    assert Fleet.of(FakeFleetClient([])) is not fleet
    fleet.close()
    assert Fleet.of(client) is not fleet


def test_updates_from_many_threads_end_consistent() -> None:
    client = FakeFleetClient(eight_agents())
    fleet = Fleet(client)
    names = [a.name for a in fleet.agents]
    barrier = threading.Barrier(len(names))

    def drive(name: str) -> None:
        barrier.wait()
        for i in range(1, 501):
            client.connection.emit(f"agent:{name}", type="agent_status", agent_name=name,
                                   status="busy" if i % 2 else "idle",
                                   metrics={"tasks_completed": i})  # fmt: skip

    threads = [threading.Thread(target=drive, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert all(a.tasks_completed == 500 and a.status == "idle" for a in fleet.agents)
    assert fleet.version >= 8 * 500


# -- against a real server ----------------------------------------------------------------


async def test_a_real_fleet_shares_the_coordinator_room_with_another_subscription(
    live_client: Client,
) -> None:
    seen: list[dict[str, Any]] = []
    answered = threading.Event()
    other = live_client.connection.subscribe(
        "coordinator", seen.append, on_subscribed=lambda _answer: answered.set()
    )
    assert await asyncio.to_thread(answered.wait, TIMEOUT)
    fleet = await asyncio.to_thread(Fleet, live_client)
    try:
        before = fleet.metrics.total_workflows
        recorder = Recorder(probe=lambda: fleet.metrics.total_workflows)
        fleet.on_change(recorder)
        await asyncio.to_thread(live_client.submit, "idea2video", idea="A fox", scenes=1,
                                width=64, height=64, fps=1, seconds_per_shot=1,
                                shots_per_scene=1)  # fmt: skip
        # a coordinator_metrics event follows the submission: the fleet must get it live
        await asyncio.to_thread(
            recorder.until, lambda: bool(recorder.calls) and recorder.calls[-1][1] > before, 30
        )
        assert any(e.get("type") == "coordinator_metrics" for e in seen)
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

        recorder = Recorder(probe=lambda: fleet.agent("toy-writer"))
        fleet.on_change(recorder)
        gate = Gate()
        install_toy(service_of(jp_serverapp).coordinator, gate)
        try:
            run = await asyncio.to_thread(live_client.submit, "story", shots=1)
            assert await asyncio.to_thread(gate.entered.wait, TIMEOUT)

            def writer_busy() -> bool:
                writer = recorder.calls[-1][1] if recorder.calls else None
                return writer is not None and writer.status == "busy"

            # the new agents are found (registered_agents changed), followed, seen busy
            await asyncio.to_thread(recorder.until, writer_busy, 30)
            writer = fleet.agent("toy-writer")
            assert writer is not None
            assert writer.current_task
            assert "outline" in writer.capabilities
        finally:
            gate.opened.set()
        await asyncio.to_thread(run.wait, 60)

        def writer_done() -> bool:
            writer = recorder.calls[-1][1] if recorder.calls else None
            return writer is not None and writer.status == "idle" and writer.tasks_completed == 1

        await asyncio.to_thread(recorder.until, writer_done, 30)
        assert fleet.agent("toy-painter") is not None
        assert fleet.metrics.registered_agents == len(fleet.agents) == len(names) + 3
    finally:
        fleet.close()
