"""When ``Run.wait()`` gives control back: an interrupted run, a closed client; how a Run
takes its events; and the connection's state removers.

The server is the fake one (``fake_server.py``): its WebSocket carries the room's events
and its REST answers the reads a Run makes (``client.workflow``) from
``server.workflows``, which the test changes. Every wait is on a condition or a thread
join with a timeout, never a sleep.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import vimax_nb
from vimax_nb.client import (
    Client,
    ClientConnection,
    ConnectionState,
    Run,
    RunFailed,
    RunInterrupted,
    RunResult,
)
from vimax_nb.protocol import ArtifactEvent, ErrorEvent, ProgressEvent, StageProgress

from .fake_server import FakeServer, workflow_record
from .helpers import QUICK_RECONNECT, Recorder, fixture_server, wait_run  # noqa: F401  (a fixture)

TIMEOUT = 10.0
WID = "w1"
ROOM = f"workflow:{WID}"


class Waiter:
    """Runs ``fn`` on a daemon thread and keeps what it returned or raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:
            self.error = exc

    def join(self) -> Waiter:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "still blocked"
        return self


@pytest.fixture
def client(server: FakeServer) -> Iterator[Client]:
    """A Client of the fake server, whose connection reconnects at once."""
    made = Client(server.url, "token", socket_options=QUICK_RECONNECT)
    try:
        yield made
    finally:
        made.close()


def follow(server: FakeServer, client: Client) -> Run:
    server.publish(ROOM, state="running", progress=0.25, stage="story")
    run = client.run(WID)
    wait_run(run, lambda r: r.events == 1)
    return run


# -- an interrupted run -----------------------------------------------------------------


def test_wait_raises_run_interrupted_after_a_restart_and_waits_again_after_a_resume(
    server: FakeServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = follow(server, client)
    waiter = Waiter(lambda: run.wait(TIMEOUT))

    # the server restarts: an event stored before the crash, then the one the server
    # writes when it starts again and marks the workflow interrupted
    server.publish(ROOM, live=False, state="running", progress=0.5, stage="frames")
    message = "interrupted: the server stopped while this workflow ran"
    server.publish(
        ROOM, live=False, state="interrupted", progress=0.5, stage="frames", message=message
    )
    server.drop_connections()

    assert isinstance(waiter.join().error, RunInterrupted), waiter.error
    assert waiter.error.run is run
    assert "the server restarted" in str(waiter.error)
    assert "run.resume() continues it from its checkpoints" in str(waiter.error)
    assert (run.state, run.progress, run.stage) == ("interrupted", 0.5, "frames")
    assert not run.done
    with pytest.raises(RunInterrupted):  # still interrupted: at once, again
        run.wait(TIMEOUT)

    # resumed (the event saying so is still on its way): wait() asks the server, takes
    # its state and waits for the real end
    server.workflows[WID] = workflow_record(WID, "running", 0.5)
    asked = threading.Event()
    read = client.workflow
    monkeypatch.setattr(client, "workflow", lambda wid: (asked.set(), read(wid))[1])
    again = Waiter(lambda: run.wait(TIMEOUT))
    assert asked.wait(TIMEOUT)
    assert again.thread.is_alive()  # it cannot end before the completed event
    server.publish(ROOM, state="completed", progress=1.0, stage="editing")
    assert isinstance(again.join().result, RunResult), again.error
    assert again.result.workflow.state == "completed"
    assert run.done


def test_an_interrupted_event_makes_wait_and_await_raise_run_interrupted(
    server: FakeServer, client: Client
) -> None:
    run = follow(server, client)
    server.publish(ROOM, state="interrupted", progress=0.5, message="the server is stopping")
    wait_run(run, lambda r: r.state == "interrupted")
    assert not run.done
    with pytest.raises(RunInterrupted, match=r"server restarted.*run\.resume\(\)"):
        run.wait(TIMEOUT)

    async def awaited() -> RunResult:
        return await run

    with pytest.raises(RunInterrupted):
        asyncio.run(asyncio.wait_for(awaited(), TIMEOUT))
    assert vimax_nb.RunInterrupted is RunInterrupted
    assert "RunInterrupted" in vimax_nb.__all__


# -- how a Run takes its events ------------------------------------------------------------


def test_done_is_set_only_after_every_field_of_the_final_update(
    server: FakeServer, client: Client
) -> None:
    seen: list[tuple[str, bool]] = []

    class Spy(Run):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in ("state", "progress", "stage", "message", "stages"):
                seen.append((name, getattr(self, "_ended", False)))
            super().__setattr__(name, value)

    run = Spy(client, workflow_record(WID))
    seen.clear()
    stages = [{"name": "editing", "done": 1, "total": 1}]
    server.publish(ROOM, state="completed", progress=1.0, stage="editing", message="done",
                   details={"event": "state", "state": "completed", "stages": stages})  # fmt: skip
    run._follow()
    wait_run(run, lambda r: r.done)
    assert sorted(name for name, _ in seen) == ["message", "progress", "stage", "stages", "state"]
    assert [name for name, done in seen if done] == []
    assert run.stages == [StageProgress(name="editing", done=1, total=1)]


def test_events_and_a_reset_update_the_run_and_a_failure_raises_run_failed(
    server: FakeServer, client: Client
) -> None:
    server.workflows[WID] = workflow_record(WID)
    run = client.run(WID)
    seen = Recorder()
    run.on_change(lambda r: seen(f"{r.state} {r.progress:.2f}"))
    stages = [{"name": "story", "done": 1, "total": 1}, {"name": "frames", "done": 0, "total": 4}]
    server.publish(ROOM, state="running", progress=0.42, stage="frames",
                   message="frames: 0/4 done",
                   details={"event": "task_started", "stages": stages})  # fmt: skip
    server.publish(ROOM, type="artifact", workflow_id=WID, stage="story", name="story",
                   kind="text", url="/x/story.txt")  # fmt: skip
    wait_run(run, lambda r: r.events == 2)
    assert repr(run) == "Run(idea2video 'A whale' running 42%)"
    assert run.stages == [StageProgress.model_validate(s) for s in stages]
    assert run.stage == "frames"
    assert [(type(a), a.name, a.kind) for a in run.artifacts] == [(ArtifactEvent, "story", "text")]
    assert [type(e) for e in run.history] == [ProgressEvent, ArtifactEvent]

    # a new event log: the run is reset to the workflow's record, then goes on live
    server.reset_log("epoch-2")
    paused = workflow_record(WID, "paused", 0.5).model_copy(update={"stage": "clips"})
    server.workflows[WID] = paused
    server.drop_connections()
    wait_run(run, lambda r: r.state == "paused")
    assert (run.progress, run.stage, run.record) == (0.5, "clips", paused)
    assert run.events == 2  # a snapshot is not an event
    assert not run.done

    server.publish(ROOM, type="error", target_type="workflow", target_id=WID,
                   code="task_failed", message="boom")  # fmt: skip
    server.publish(ROOM, state="failed", progress=0.5)
    error = {"message": "failed: task 'story' on agent 'writer': boom", "stage": "story"}
    server.workflows[WID] = server.workflows[WID].model_copy(update={"error": error})
    wait_run(run, lambda r: r.done)
    assert [(e.code, e.message) for e in run.errors] == [("task_failed", "boom")]
    assert isinstance(run.history[-2], ErrorEvent)
    with pytest.raises(RunFailed, match="boom") as caught:
        run.wait(TIMEOUT)
    assert caught.value.error == error
    assert caught.value.run is run
    seen.wait(lambda r: len(r.messages) == 5)
    assert seen.messages == [
        "running 0.42",
        "running 0.42",
        "paused 0.50",
        "paused 0.50",
        "failed 0.50",
    ]


def test_history_keeps_the_last_200_events_in_order(server: FakeServer, client: Client) -> None:
    for _ in range(250):
        server.publish(ROOM, live=False, progress=0.1)
    run = client.run(WID)
    wait_run(run, lambda r: r.events == 250)
    assert run.history.maxlen == 200
    assert [e.seq for e in run.history] == list(range(51, 251))

    server.reset_log("epoch-2")  # a reset to the snapshot adds nothing to the history
    server.workflows[WID] = workflow_record(WID, message="the new log's record")
    server.drop_connections()
    wait_run(run, lambda r: r.message == "the new log's record")
    assert run.events == 250
    assert len(run.history) == 200
    assert run.history[-1].seq == 250


def test_a_change_callback_can_be_removed_from_any_thread_and_a_failing_one_is_isolated(
    server: FakeServer, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    run = follow(server, client)
    kept = Recorder()  # the number of events each call saw, with a condition to wait on
    removed: list[int] = []

    def failing(r: Run) -> None:
        raise RuntimeError("a widget bug")

    run.on_change(failing)
    remove = run.on_change(lambda r: removed.append(r.events))
    run.on_change(lambda r: kept(r.events))
    server.publish(ROOM)
    kept.wait(lambda k: k.messages == [2])

    remover = threading.Thread(target=remove)
    remover.start()
    remover.join(TIMEOUT)
    assert not remover.is_alive()
    remove()  # idempotent
    server.publish(ROOM)
    kept.wait(lambda k: k.messages == [2, 3])

    assert removed == [2]
    assert "a change callback of run w1 failed" in caplog.text


# -- a closed client ---------------------------------------------------------------------


def test_closing_the_client_wakes_wait_and_await_with_connection_error(
    server: FakeServer, client: Client
) -> None:
    run = follow(server, client)
    blocked = Waiter(lambda: run.wait())

    async def awaited() -> RunResult:
        return await run

    awaiting = Waiter(lambda: asyncio.run(awaited()))
    client.close()
    for waiter in (blocked.join(), awaiting.join()):
        assert isinstance(waiter.error, ConnectionError), waiter.error
        assert "the client is closed" in str(waiter.error)
    with pytest.raises(ConnectionError, match="the client is closed"):
        run.wait(TIMEOUT)


def test_a_run_that_ended_before_the_close_still_gives_its_result(
    server: FakeServer, client: Client
) -> None:
    run = follow(server, client)
    server.publish(ROOM, state="completed", progress=1.0)
    wait_run(run, lambda r: r.done)
    client.close()
    assert run.wait(TIMEOUT).workflow.state == "completed"


# -- the connection's state removers ------------------------------------------------------


def test_on_state_returns_a_remover(server: FakeServer) -> None:
    conn = ClientConnection(server.url, "token", QUICK_RECONNECT)
    cond = threading.Condition()
    kept: list[ConnectionState] = []
    removed: list[ConnectionState] = []

    def keep(state: ConnectionState) -> None:
        with cond:
            kept.append(state)
            cond.notify_all()

    try:
        conn.on_state(keep)
        remove = conn.on_state(removed.append)
        conn.start()
        with cond:
            assert cond.wait_for(lambda: ConnectionState.open in kept, TIMEOUT)
        assert removed == [ConnectionState.connecting, ConnectionState.open]
        assert conn.epoch == "epoch-1"
        remover = threading.Thread(target=remove)
        remover.start()
        remover.join(TIMEOUT)
        remove()  # idempotent

        server.drop_connections()
        with cond:
            assert cond.wait_for(lambda: kept.count(ConnectionState.open) == 2, TIMEOUT)
        assert removed == [ConnectionState.connecting, ConnectionState.open]
        assert len(server.peers) == 2
    finally:
        conn.close()
    assert kept[-1] == ConnectionState.closed
