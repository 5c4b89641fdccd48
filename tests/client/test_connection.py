"""vimax_nb.client.ClientConnection against a real Jupyter server with the extension.

The connection runs on its own thread and loop while the server runs on the test's
loop, so the tests wait with ``asyncio.to_thread`` and never block the test loop. What
the server holds is read from its documented REST (``/vimax/ws/stats``,
``/vimax/ws/client/{id}``).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vimax_nb.client import ClientConnection, ConnectionState, SocketOptions
from vimax_nb.protocol import (
    Control,
    ControlResponse,
    CoordinatorMetricsEvent,
    GetMetrics,
    ProgressEvent,
    workflow_room,
)

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
) -> Iterator[Callable[..., ClientConnection]]:
    """Make connections to the test server (closed at the end of the test)."""
    made: list[ClientConnection] = []
    token = jp_serverapp.identity_provider.token

    def make(**options: Any) -> ClientConnection:
        options.setdefault("backoff", (0.05,))
        conn = ClientConnection(server_url, token, SocketOptions(**options))
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


async def room_members(jp_fetch: Any, room: str) -> list[str]:
    """The client ids the server has in ``room`` (``GET /vimax/ws/stats``)."""
    response = await jp_fetch("vimax/ws/stats")
    members: list[str] = json.loads(response.body)["rooms"].get(room, [])
    return members


def states_of(conn: ClientConnection) -> Recorder:
    states = Recorder()
    conn.on_state(states)
    return states


def completed(r: Recorder) -> bool:
    return any(isinstance(m, ProgressEvent) and m.state == "completed" for m in r.messages)


async def test_connects_gets_welcome_and_close_ends_the_thread(
    jp_fetch: Any, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect()
    states = states_of(conn)
    conn.start()
    await states.until(lambda r: ConnectionState.open in r.messages)
    assert conn.state == ConnectionState.open
    assert conn.epoch
    stats = json.loads((await jp_fetch("vimax/ws/stats")).body)
    assert stats["connections"] == 1

    await asyncio.to_thread(conn.close)
    assert conn.state == ConnectionState.closed
    assert states.messages == ["connecting", "open", "closed"]
    with pytest.raises(ConnectionError):
        await asyncio.to_thread(conn.request, GetMetrics(), 1)


async def test_a_subscription_gets_every_event_of_a_run_once_in_order(
    jp_serverapp: Any, jp_fetch: Any, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect()
    wid = await start_run(jp_fetch)
    events, answers = Recorder(), Recorder()
    sub = conn.subscribe(workflow_room(wid), events, on_subscribed=answers)

    await events.until(completed, 90)
    await wait_finished(jp_serverapp, wid)
    stored = await stored_seqs(jp_fetch, wid)
    await events.until(lambda r: r.seqs()[-1:] == stored[-1:])
    assert events.seqs() == stored == list(range(1, len(stored) + 1))
    assert all(m.room == workflow_room(wid) for m in events.messages)
    assert len(answers.messages) == 1
    assert answers.messages[0].recovered is True
    assert sub.last_seq == stored[-1]
    assert sub.epoch == conn.epoch


async def test_after_a_forced_disconnect_it_resumes_without_gap_or_duplicate(
    jp_serverapp: Any, jp_fetch: Any, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect(backoff=(0.2,))
    states = states_of(conn)
    events, answers = Recorder(), Recorder()
    wid = await start_run(jp_fetch)
    conn.subscribe(workflow_room(wid), events, on_subscribed=answers)
    await events.until(lambda r: len(r.messages) >= 3)

    first = await room_members(jp_fetch, workflow_room(wid))
    hub = service_of(jp_serverapp).hub
    (only,) = hub.connections.values()
    hub.slow_consumer(only)  # the server closes it (4008)

    await states.until(lambda r: r.messages.count(ConnectionState.open) == 2)
    await events.until(completed, 90)
    await wait_finished(jp_serverapp, wid)
    stored = await stored_seqs(jp_fetch, wid)
    await events.until(lambda r: r.seqs()[-1:] == stored[-1:])
    assert events.seqs() == stored == list(range(1, len(stored) + 1))
    again = await room_members(jp_fetch, workflow_room(wid))
    assert len(first) == len(again) == 1
    assert again != first  # another connection, in the room again
    assert states.messages == ["connecting", "open", "offline", "connecting", "open"]
    assert [a.recovered for a in answers.messages] == [True, True]


async def test_control_and_metrics_requests_get_their_answers(
    jp_fetch: Any, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect()
    wid = await start_run(jp_fetch)
    cancel = Control(workflow_id=wid, action="cancel", id="c1")
    answer = await asyncio.to_thread(conn.request, cancel, 10)
    assert isinstance(answer, ControlResponse)
    assert (answer.id, answer.ok, answer.state) == ("c1", True, "canceled")

    again = Control(workflow_id=wid, action="cancel")
    refused = await asyncio.to_thread(conn.request, again, 10)
    assert refused.ok is False
    assert refused.state == "canceled"

    metrics = await asyncio.to_thread(conn.request, GetMetrics(), 10)
    assert isinstance(metrics, CoordinatorMetricsEvent)
    assert metrics.total_workflows >= 1
    assert metrics.seq is None


async def test_subscriptions_that_join_a_room_late_each_get_every_event_once(
    jp_serverapp: Any, jp_fetch: Any, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect()
    room = workflow_room(await start_run(jp_fetch))
    first, late, middle, answers = Recorder(), Recorder(), Recorder(), Recorder()
    subs = [conn.subscribe(room, first, on_subscribed=answers)]
    await first.until(lambda r: len(r.messages) >= 3)
    # two more at once: the server may replay for both concurrently
    subs.append(conn.subscribe(room, late, on_subscribed=answers))
    subs.append(conn.subscribe(room, middle, 2, on_subscribed=answers))

    await wait_finished(jp_serverapp, room.split(":", 1)[1])
    stored = await stored_seqs(jp_fetch, room.split(":", 1)[1])
    assert stored == list(range(1, len(stored) + 1))
    for recorder, expected in ((first, stored), (late, stored), (middle, stored[2:])):
        count = len(expected)
        await recorder.until(lambda r, count=count: len(r.seqs()) >= count)
        assert recorder.seqs() == expected
    await answers.until(lambda r: len(r.messages) == 3)
    assert all(a.recovered for a in answers.messages)
    assert [s.last_seq for s in subs] == [stored[-1]] * 3


async def test_the_server_is_unsubscribed_when_the_last_subscription_leaves(
    jp_fetch: Any, connect: Callable[..., ClientConnection]
) -> None:
    conn = connect()
    room = workflow_room(await start_run(jp_fetch))
    one, two = Recorder(), Recorder()
    sub_one = conn.subscribe(room, one)
    sub_two = conn.subscribe(room, two)
    await one.until(lambda r: len(r.messages) >= 2)
    await two.until(lambda r: len(r.messages) >= 2)

    conn.unsubscribe(sub_one)
    await two.until(completed, 90)
    # a request answered after the unsubscribe went out: the server has handled it
    await asyncio.to_thread(conn.request, GetMetrics(), 10)
    assert len(await room_members(jp_fetch, room)) == 1
    seen_by_one = len(one.messages)

    conn.unsubscribe(sub_two)
    await asyncio.to_thread(conn.request, GetMetrics(), 10)
    assert await room_members(jp_fetch, room) == []
    assert len(one.messages) == seen_by_one
    assert one.seqs() == list(range(1, seen_by_one + 1))


def test_a_started_connection_is_connecting_until_welcomed() -> None:
    """From start() on, a connection that has not been welcomed yet says ``connecting``
    (a Ctrl-C in the CLI then waits for it), never ``offline``."""
    with socket.socket() as listener:  # accepts TCP connections, never answers the upgrade
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        connection = ClientConnection(f"http://127.0.0.1:{port}/", None)
        try:
            assert connection.state == ConnectionState.offline  # not started
            connection.start()
            assert connection.state == ConnectionState.connecting
        finally:
            connection.close()
        assert connection.state == ConnectionState.closed


@pytest.mark.parametrize(
    ("compression", "agreed"), [("auto", None), ("deflate", "permessage-deflate")]
)
async def test_on_loopback_it_offers_no_compression_unless_asked(
    jp_serverapp: Any,
    jp_fetch: Any,
    connect: Callable[..., ClientConnection],
    compression: str,
    agreed: str | None,
) -> None:
    conn = connect(compression=compression)
    wid = await start_run(jp_fetch)
    events = Recorder()
    conn.subscribe(workflow_room(wid), events)
    await events.until(completed, 90)
    await wait_finished(jp_serverapp, wid)
    stats = json.loads((await jp_fetch("vimax/ws/stats")).body)
    [client_id] = stats["rooms"][workflow_room(wid)]
    info = json.loads((await jp_fetch("vimax/ws/client", client_id)).body)
    assert info["compression"] == agreed
    stored = await stored_seqs(jp_fetch, wid)
    await events.until(lambda r: r.seqs()[-1:] == stored[-1:])
    assert events.seqs() == stored


@pytest.mark.parametrize(
    ("url", "compression", "offered"),
    [
        ("ws://127.0.0.1:8888/vimax/ws", "auto", False),
        ("ws://[::1]:8888/vimax/ws", "auto", False),
        ("ws://localhost:8888/base/vimax/ws", "auto", False),
        ("wss://hub.example.org/user/ada/vimax/ws", "auto", True),
        ("ws://10.0.0.7:8888/vimax/ws", "auto", True),
        ("ws://127.0.0.1:8888/vimax/ws", "deflate", True),
        ("wss://hub.example.org/vimax/ws", "none", False),
    ],
)
def test_deflate_is_offered_to_remote_servers_only_by_default(
    url: str, compression: str, offered: bool
) -> None:
    assert SocketOptions(compression=compression).offers_deflate(url) is offered  # type: ignore[arg-type]


def test_an_unknown_compression_is_refused() -> None:
    with pytest.raises(ValueError, match="compression must be"):
        SocketOptions(compression="gzip")  # type: ignore[arg-type]
