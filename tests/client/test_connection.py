"""vimax_nb.client.Connection against a real Jupyter server with the extension.

The Connection runs on its own thread and loop while the server runs on the test's
loop, so the tests wait with ``asyncio.to_thread`` and never block the test loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vimax_nb.client import Connection
from vimax_nb.protocol import workflow_room

from ..server.conftest import (  # noqa: F401  (fixtures that enable the extension)
    jp_server_config,
    post_json,
    record_of,
    service_of,
    small_params,
    vimax_workdir,
    wait_finished,
)
from .helpers import Recorder

TIMEOUT = 30.0
IDEA = "A lighthouse keeper befriends a whale"


@pytest.fixture
def server_url(jp_serverapp: Any, jp_fetch: Any, jp_http_port: int, jp_base_url: str) -> str:
    """The server's base URL (``jp_fetch`` makes pytest-jupyter start listening)."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}"


@pytest.fixture
def connect(
    jp_serverapp: Any, server_url: str, jp_asyncio_loop: Any
) -> Iterator[Callable[..., Connection]]:
    """Make Connections to the test server (closed at the end of the test)."""
    made: list[Connection] = []
    token = jp_serverapp.identity_provider.token

    def make(**kwargs: Any) -> Connection:
        kwargs.setdefault("backoff", (0.05,))
        conn = Connection(server_url, token, **kwargs)
        made.append(conn)
        return conn

    yield make
    for conn in made:  # the server's loop runs while the client closes its socket
        jp_asyncio_loop.run_until_complete(asyncio.to_thread(conn.close))


async def start_run(jp_fetch: Any) -> str:
    created = await post_json(
        jp_fetch,
        "vimax/api/workflows",
        body={"kind": "idea2video", "params": small_params(idea=IDEA)},
    )
    return record_of(created).id


async def stored_seqs(jp_fetch: Any, wid: str) -> list[int]:
    response = await jp_fetch("vimax/api/workflows", wid, "events", params={"limit": 1000})
    return [e["seq"] for e in json.loads(response.body)["events"]]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connects_gets_welcome_and_close_ends_the_thread(
    jp_serverapp: Any, connect: Callable[..., Connection]
) -> None:
    conn = connect()
    welcome, states = Recorder(), Recorder()
    conn.on("welcome", welcome)
    conn.on_state(lambda state: states({"type": state}))
    conn.start()
    await welcome.until(lambda r: len(r.messages) == 1)
    assert conn.state == "open"
    message = welcome.messages[0]
    assert message["protocol"] == 1
    assert conn.client_id == message["client_id"]
    assert conn.epoch == message["epoch"]
    assert conn.client_id in service_of(jp_serverapp).hub.connections
    assert conn.running

    await asyncio.to_thread(conn.close)
    assert not conn.running
    assert conn.state == "closed"
    assert [m["type"] for m in states.messages] == ["connecting", "open", "closed"]
    with pytest.raises(ConnectionError):
        conn.send({"type": "ping"})


async def test_a_subscription_gets_every_event_of_a_run_once_in_order(
    jp_serverapp: Any, jp_fetch: Any, connect: Callable[..., Connection]
) -> None:
    conn = connect()
    wid = await start_run(jp_fetch)
    events, answers = Recorder(), Recorder()
    sub = conn.subscribe(workflow_room(wid), events, on_subscribed=answers)

    def finished(r: Recorder) -> bool:
        return any(m.get("state") == "completed" for m in r.messages)

    await events.until(finished, 90)
    await wait_finished(jp_serverapp, wid)
    stored = await stored_seqs(jp_fetch, wid)
    await events.until(lambda r: r.seqs()[-1:] == stored[-1:])
    assert events.seqs() == stored == list(range(1, len(stored) + 1))
    assert all(m["room"] == workflow_room(wid) for m in events.messages)
    assert len(answers.messages) == 1
    assert answers.messages[0]["recovered"] is True
    assert sub.last_seq == stored[-1]
    assert sub.epoch == conn.epoch
    assert conn.stats["duplicates"] == 0
    assert conn.stats["gaps"] == 0


async def test_after_a_forced_disconnect_it_resumes_without_gap_or_duplicate(
    jp_serverapp: Any, jp_fetch: Any, connect: Callable[..., Connection]
) -> None:
    conn = connect(backoff=(0.2,))
    welcomes, events, answers, pongs = Recorder(), Recorder(), Recorder(), Recorder()
    conn.on("welcome", welcomes)
    conn.on("pong", pongs)

    def on_state(state: str) -> None:  # sent while offline: queued, flushed on reconnect
        if state == "offline":
            for ts in range(5):
                conn.send({"type": "ping", "ts": ts})

    conn.on_state(on_state)
    wid = await start_run(jp_fetch)
    conn.subscribe(workflow_room(wid), events, on_subscribed=answers)
    await events.until(lambda r: len(r.messages) >= 3)

    hub = service_of(jp_serverapp).hub
    first_id = conn.client_id
    hub.slow_consumer(hub.connections[first_id])

    await welcomes.until(lambda r: len(r.messages) == 2)
    await events.until(lambda r: any(m.get("state") == "completed" for m in r.messages), 90)
    await wait_finished(jp_serverapp, wid)
    stored = await stored_seqs(jp_fetch, wid)
    await events.until(lambda r: r.seqs()[-1:] == stored[-1:])
    assert events.seqs() == stored == list(range(1, len(stored) + 1))
    assert conn.client_id != first_id
    assert conn.stats["reconnects"] == 1
    assert [a["recovered"] for a in answers.messages] == [True, True]
    await pongs.until(lambda r: len(r.messages) == 5)
    assert [p["ts"] for p in pongs.messages] == [0, 1, 2, 3, 4]


async def test_control_and_metrics_requests_get_their_answers(
    jp_fetch: Any, connect: Callable[..., Connection]
) -> None:
    conn = connect()
    wid = await start_run(jp_fetch)
    request = {"type": "control", "workflow_id": wid, "action": "cancel", "id": "c1"}
    answer = await asyncio.to_thread(conn.request, request, 10)
    assert answer["type"] == "control_response"
    assert answer["id"] == "c1"
    assert answer["ok"] is True
    assert answer["state"] == "canceled"

    again = {"type": "control", "workflow_id": wid, "action": "cancel"}
    refused = await asyncio.to_thread(conn.request, again, 10)
    assert refused["ok"] is False
    assert refused["state"] == "canceled"

    metrics = await asyncio.to_thread(conn.request, {"type": "get_metrics"}, 10)
    assert metrics["type"] == "coordinator_metrics"
    assert metrics["total_workflows"] >= 1
    assert "seq" not in metrics


def test_offline_the_queue_keeps_the_newest_100_and_warns() -> None:
    conn = Connection(f"http://127.0.0.1:{closed_port()}/", "token", backoff=(30,))
    states = Recorder()
    conn.on_state(lambda state: states({"type": state}))
    try:
        messages = [
            {"type": "control", "workflow_id": "w", "action": "pause", "id": str(i)}
            for i in range(150)
        ]
        with pytest.warns(RuntimeWarning, match="offline queue full") as warned:
            list(map(conn.send, messages))
        assert len(warned) == 50
        assert conn.stats["dropped"] == 50
        assert conn.stats["queued"] == 100
        queued = [json.loads(m)["id"] for m in conn._outbox.queued]
        assert queued == [str(i) for i in range(50, 150)]
        with states.cond:
            assert states.cond.wait_for(lambda: conn.state == "offline", TIMEOUT)
        with (
            pytest.warns(RuntimeWarning, match="offline queue full"),
            pytest.raises(TimeoutError, match="no answer to get_metrics"),
        ):
            conn.request({"type": "get_metrics"}, timeout=0.2)
        assert conn.stats["dropped"] == 51
    finally:
        conn.close()
    assert not conn.running
    assert conn.state == "closed"


async def test_subscriptions_that_join_a_room_late_each_get_every_event_once(
    jp_serverapp: Any, jp_fetch: Any, connect: Callable[..., Connection]
) -> None:
    conn = connect()
    room = workflow_room(await start_run(jp_fetch))
    first, late, middle, answers = Recorder(), Recorder(), Recorder(), Recorder()
    conn.subscribe(room, first, on_subscribed=answers)
    await first.until(lambda r: len(r.messages) >= 3)
    # two more at once: the server may replay for both concurrently
    conn.subscribe(room, late, on_subscribed=answers)
    conn.subscribe(room, middle, 2, on_subscribed=answers)

    await wait_finished(jp_serverapp, room.split(":", 1)[1])
    stored = await stored_seqs(jp_fetch, room.split(":", 1)[1])
    assert stored == list(range(1, len(stored) + 1))
    for recorder, expected in ((first, stored), (late, stored), (middle, stored[2:])):
        count = len(expected)
        await recorder.until(lambda r, count=count: len(r.seqs()) >= count)
        assert recorder.seqs() == expected
    await answers.until(lambda r: len(r.messages) == 3)
    assert all(a["recovered"] for a in answers.messages)
    assert conn.stats["gaps"] == 0
    assert [s.last_seq for s in conn.subscriptions(room)] == [stored[-1]] * 3


async def test_the_server_is_unsubscribed_when_the_last_subscription_leaves(
    jp_serverapp: Any, jp_fetch: Any, connect: Callable[..., Connection]
) -> None:
    conn = connect()
    room = workflow_room(await start_run(jp_fetch))
    one, two, unsubscribed = Recorder(), Recorder(), Recorder()
    conn.on("unsubscribed", unsubscribed)
    sub_one = conn.subscribe(room, one)
    sub_two = conn.subscribe(room, two)
    await one.until(lambda r: len(r.messages) >= 2)
    await two.until(lambda r: len(r.messages) >= 2)
    hub = service_of(jp_serverapp).hub

    conn.unsubscribe(sub_one)
    await two.until(lambda r: any(m.get("state") == "completed" for m in r.messages), 90)
    assert conn.client_id in [c.id for c in hub.get_room_clients(room)]
    assert unsubscribed.messages == []
    seen_by_one = len(one.messages)

    conn.unsubscribe(sub_two)
    await unsubscribed.until(lambda r: len(r.messages) == 1)
    assert unsubscribed.messages[0]["room"] == room
    assert conn.client_id not in [c.id for c in hub.get_room_clients(room)]
    assert len(one.messages) == seen_by_one
    assert one.seqs() == list(range(1, seen_by_one + 1))
