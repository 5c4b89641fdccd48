"""When ``Run.wait()`` gives control back: an interrupted run, a closed client; and the
connection's removers and withdrawn requests.

The WebSocket side is the fake protocol server (``fake_server.py``); the REST reads a Run
makes (``client.workflow``) are answered from a dict the test changes. Every wait is on
a condition or a thread join with a timeout, never a sleep.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import vimax_nb
from vimax_nb.client import Client, Connection, Run, RunInterrupted, RunResult
from vimax_nb.protocol import WorkflowRecord

from .fake_server import FakeServer
from .helpers import fixture_server, wait_run  # noqa: F401  (a fixture)

TIMEOUT = 10.0
WID = "w1"
ROOM = f"workflow:{WID}"


def record(state: str, progress: float = 0.5, message: str = "") -> WorkflowRecord:
    return WorkflowRecord.model_validate(
        {
            "id": WID,
            "kind": "idea2video",
            "params": {"idea": "A whale"},
            "state": state,
            "progress": progress,
            "message": message,
            "created_at": "2026-11-26T00:00:00Z",
            "updated_at": "2026-11-26T00:00:00Z",
        }
    )


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
def client(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """A Client on the fake server; ``client.records[WID]`` is what REST answers."""
    made = Client(server.url, "token")
    made._connection = Connection(server.url, "token", backoff=(0.05,))
    records = {WID: record("running")}
    monkeypatch.setattr(made, "records", records, raising=False)
    monkeypatch.setattr(made, "workflow", lambda wid: records[wid])
    try:
        yield made
    finally:
        made.close()


def follow(server: FakeServer, client: Client) -> Run:
    server.publish(ROOM, state="running", progress=0.25, stage="story")
    run = client._attach(record("running"))
    wait_run(run, lambda r: r.events == 1)
    return run


# -- an interrupted run -----------------------------------------------------------------


def test_wait_raises_run_interrupted_after_a_restart_and_waits_again_after_a_resume(
    server: FakeServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    records: dict[str, WorkflowRecord] = client.records  # type: ignore[attr-defined]
    run = follow(server, client)
    waiter = Waiter(lambda: run.wait(TIMEOUT))

    # the server restarts: an event stored before the crash, then the one the server
    # writes when it starts again and marks the workflow interrupted
    server.publish(ROOM, live=False, state="running", progress=0.5, stage="frames")
    message = "interrupted: the server stopped while this workflow ran"
    records[WID] = record("interrupted", 0.5, message)
    server.publish(ROOM, live=False, state="interrupted", progress=0.5, message=message)
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
    records[WID] = record("running")
    asked = threading.Event()
    monkeypatch.setattr(client, "workflow", lambda wid: (asked.set(), records[wid])[1])
    again = Waiter(lambda: run.wait(TIMEOUT))
    assert asked.wait(TIMEOUT)
    assert again.thread.is_alive()  # it cannot end before the completed event
    records[WID] = record("completed", 1.0)
    server.publish(ROOM, state="completed", progress=1.0, stage="editing")
    assert isinstance(again.join().result, RunResult), again.error
    assert again.result.workflow.state == "completed"
    assert run.done


def test_an_interrupted_event_makes_wait_and_await_raise_run_interrupted() -> None:
    client = Client("http://127.0.0.1:9/", "t")
    run = Run(client, record("running"))
    interrupted = record("interrupted", 0.5, "interrupted: the server is stopping")
    client.workflow = lambda wid: interrupted  # type: ignore[method-assign]
    run._on_event({"type": "progress", "seq": 1, "state": "interrupted", "progress": 0.5})
    assert not run.done
    with pytest.raises(RunInterrupted, match=r"server restarted.*run\.resume\(\)"):
        run.wait(TIMEOUT)

    async def awaited() -> RunResult:
        return await run

    with pytest.raises(RunInterrupted):
        asyncio.run(asyncio.wait_for(awaited(), TIMEOUT))
    assert vimax_nb.RunInterrupted is RunInterrupted
    assert "RunInterrupted" in vimax_nb.__all__


def test_done_is_set_only_after_every_field_of_the_final_update() -> None:
    seen: list[tuple[str, bool]] = []

    class Spy(Run):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in ("state", "progress", "stage", "message", "stages"):
                seen.append((name, getattr(self, "_ended", False)))
            super().__setattr__(name, value)

    run = Spy(Client("http://127.0.0.1:9/", "t"), record("running"))
    seen.clear()
    stages = [{"name": "editing", "done": 1, "total": 1}]
    final = {"state": "completed", "progress": 1.0, "stage": "editing", "message": "done"}
    run._on_event({"type": "progress", "seq": 1, **final, "details": {"stages": stages}})
    assert sorted(name for name, _ in seen) == ["message", "progress", "stage", "stages", "state"]
    assert [name for name, done in seen if done] == []
    assert run.done
    assert run.stages == stages


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
    records: dict[str, WorkflowRecord] = client.records  # type: ignore[attr-defined]
    run = follow(server, client)
    records[WID] = record("completed", 1.0)
    server.publish(ROOM, state="completed", progress=1.0)
    wait_run(run, lambda r: r.done)
    client.close()
    assert run.wait(TIMEOUT).workflow.state == "completed"


# -- the connection: removers, withdrawn requests ------------------------------------------


def test_on_state_and_on_return_removers(server: FakeServer) -> None:
    conn = Connection(server.url, "token", backoff=(0.05,))
    cond = threading.Condition()
    kept: list[str] = []
    removed: list[str] = []
    welcomes: list[dict[str, Any]] = []
    dropped_welcomes: list[dict[str, Any]] = []

    def keep(state: str) -> None:
        with cond:
            kept.append(state)
            cond.notify_all()

    try:
        conn.on_state(keep)
        remove = conn.on_state(removed.append)
        conn.on("welcome", welcomes.append)
        remove_welcome = conn.on("welcome", dropped_welcomes.append)
        conn.start()
        with cond:
            assert cond.wait_for(lambda: "open" in kept, TIMEOUT)
        assert "open" in removed
        assert len(welcomes) == len(dropped_welcomes) == 1
        remover = threading.Thread(target=remove)
        remover.start()
        remover.join(TIMEOUT)
        remove()  # idempotent
        remove_welcome()
        remove_welcome()
        count = len(removed)

        server.drop_connections()
        with cond:
            assert cond.wait_for(lambda: kept.count("open") == 2, TIMEOUT)
        assert len(removed) == count
        assert len(welcomes) == 2
        assert len(dropped_welcomes) == 1
    finally:
        conn.close()


def test_a_request_that_times_out_offline_is_never_sent_later(server: FakeServer) -> None:
    conn = Connection(server.url, "token", backoff=(0.05,))
    states = threading.Condition()
    seen: list[str] = []

    def state(value: str) -> None:
        with states:
            seen.append(value)
            states.notify_all()

    conn.on_state(state)
    try:
        conn.start()
        with states:
            assert states.wait_for(lambda: "open" in seen, TIMEOUT)
        server.stop_listening()
        with states:
            assert states.wait_for(lambda: "offline" in seen, TIMEOUT)
        pause = {"type": "control", "workflow_id": WID, "action": "pause", "id": "p1"}
        with pytest.raises(TimeoutError) as timed_out:
            conn.request(pause, timeout=0.1)

        server.start()  # the same port; a ping sent now goes out after anything queued
        conn.send({"type": "ping", "ts": 1})
        assert server.wait_for(lambda: bool(server.messages("ping")))
        assert server.messages("control") == []
        assert conn.stats["queued"] == 0
        assert "not sent: withdrawn from the offline queue" in str(timed_out.value)
    finally:
        conn.close()
