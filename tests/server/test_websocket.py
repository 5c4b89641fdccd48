"""The WebSocket surface of the extension (wire protocol v1), through a real Jupyter server.

Events are produced through the real path: ``coordinator.events.emit`` -> Broadcaster
-> EventLog (seq assigned when stored) -> Hub -> sockets. Clients are tornado's
WebSocket client, or a raw socket (``ws_helpers.RawWebSocket``) where a test needs a
client that does not read or does not answer pings.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from vimax_nb.protocol import ProgressDetails, ProgressEvent, WorkflowState, workflow_room
from vimax_nb.server.session import Session

from .conftest import (
    Gate,
    install_toy,
    post_json,
    record_of,
    service_of,
    small_params,
    vimax,
    wait_finished,
)
from .ws_helpers import OP_CLOSE, OP_PING, OP_TEXT, Client, Frame, IdleWriter, RawWebSocket

S = WorkflowState
IDEA = "A lighthouse keeper befriends a whale"
EVIL = "http://evil.example"


# -- configuration per test -------------------------------------------------------------


# -- the toy pipeline: a workflow held in its first task has a room that stays quiet --------


@pytest.fixture
def toy(service: Any) -> Iterator[Gate]:
    gate = Gate()
    coordinator = service.coordinator
    install_toy(coordinator, gate)
    try:
        yield gate
    finally:
        gate.opened.set()


async def start_held(jp_fetch: Any, service: Any, gate: Gate, shots: int = 1) -> str:
    """A toy workflow, running and held in its outline task, with every event it made
    so far stored: its room exists and nothing else is written to it until the gate opens."""
    created = await post_json(
        jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {"shots": shots}}
    )
    wid = record_of(created).id
    assert await asyncio.to_thread(gate.entered.wait, 10), "the held task never started"
    await service.store.events.flush()
    return wid


# -- producing events through the real path ---------------------------------------------


def tick(wid: str, i: int, pad: str = "") -> ProgressEvent:
    """Progress event number ``i``, its message padded with ``pad``."""
    return ProgressEvent(
        room=workflow_room(wid),
        workflow_id=wid,
        state=S.running,
        progress=0.5,
        stage="ticking",
        message=f"tick {i} {pad}",
        details=ProgressDetails(event="task_completed", task=f"tick/{i}"),
    )


async def produce(service: Any, wid: str, ticks: range, *, chunk: int = 100, pad: str = "") -> None:
    """Emit ``tick`` events as the coordinator does, yielding to the loop every ``chunk``."""
    emit = service.coordinator.events.emit
    for n, i in enumerate(ticks, 1):
        emit(tick(wid, i, pad))
        if n % chunk == 0:
            await asyncio.sleep(0)


def tick_of(message: dict[str, Any]) -> int | None:
    """The number of a ``tick`` event; None for any other message."""
    if message.get("type") != "progress":
        return None
    ticked = re.fullmatch(r"tick (\d+) .*", message["message"], re.DOTALL)
    return int(ticked[1]) if ticked else None


def seqs(messages: list[dict[str, Any]], room: str) -> list[int]:
    """The seqs of ``messages``, each of which must be an event of ``room``."""
    for message in messages:
        assert message.get("room") == room, message
        assert isinstance(message.get("seq"), int), message
    return [m["seq"] for m in messages]


def span(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


# -- clients ------------------------------------------------------------------------


async def connect(
    jp_ws_fetch: Any, *parts: str, params: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[Client, dict[str, Any]]:
    """A connected client and its ``welcome``, which must be the first message."""
    conn = await jp_ws_fetch(
        *parts, params={k: str(v) for k, v in (params or {}).items()}, **kwargs
    )
    client = Client(conn)
    return client, await client.expect("welcome")


async def subscribe(
    client: Client, room: str, after: int | None = None, **fields: Any
) -> dict[str, Any]:
    return await client.request(
        {"type": "subscribe", "room": room, "after": after, **fields}, "subscribed"
    )


def body_of(response: Any) -> Any:
    return json.loads(response.body)


async def hub_stats(jp_fetch: Any) -> dict[str, Any]:
    stats: dict[str, Any] = body_of(await jp_fetch("vimax/ws/stats"))
    return stats


def ws_path(base_url: str, *parts: str) -> str:
    return base_url.rstrip("/") + "/" + "/".join(parts)


async def read_to_close(raw: RawWebSocket, timeout: float = 10) -> tuple[list[Frame], Frame]:
    """Frames up to the server's close frame; then answer it and read to the end of stream."""
    frames: list[Frame] = []
    while True:
        frame = await raw.read_frame(timeout)
        assert frame is not None, f"end of stream without a close frame after {frames[-2:]}"
        if frame.opcode == OP_CLOSE:
            break
        frames.append(frame)
    await raw.send_close(frame.close_code or 1000)
    assert await raw.read_frame(timeout) is None, "data after the close frame"
    return frames, frame


# -- 1. authentication --------------------------------------------------------------------

WS_ROUTES = [
    ("vimax", "ws"),
    ("vimax", "ws", "workflow", "abc"),
    ("vimax", "ws", "agent", "screenwriter"),
    ("vimax", "ws", "coordinator"),
]


@pytest.mark.parametrize("parts", WS_ROUTES, ids=["/".join(p[2:]) or "ws" for p in WS_ROUTES])
@pytest.mark.parametrize("authorization", ["", "token wrong-token"], ids=["none", "wrong"])
async def test_a_websocket_without_a_valid_token_is_refused_at_the_handshake(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    parts: tuple[str, ...],
    authorization: str,
) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_ws_fetch(*parts, headers={"Authorization": authorization})
    assert caught.value.code == 403

    headers = {"Authorization": authorization} if authorization else {}
    raw = await RawWebSocket.connect(jp_http_port, ws_path(jp_base_url, *parts), headers)
    try:
        assert raw.status == 403
        assert "upgrade" not in raw.headers
        assert "sec-websocket-accept" not in raw.headers
    finally:
        raw.close()
    assert (await hub_stats(jp_fetch))["connections"] == 0


# -- 2. origins ---------------------------------------------------------------------------


async def login_cookie(port: int, base_url: str, token: str) -> str:
    """Log in through the server's /login form with the token; return the login cookie."""
    client = AsyncHTTPClient()
    url = f"http://localhost:{port}{base_url}login"
    page = await client.fetch(url, raise_error=False)
    jar: SimpleCookie = SimpleCookie()
    for header in page.headers.get_list("Set-Cookie"):
        jar.load(header)
    xsrf = jar["_xsrf"].value
    response = await client.fetch(
        url,
        method="POST",
        body=urlencode({"password": token, "_xsrf": xsrf}),
        headers={"Cookie": f"_xsrf={xsrf}"},
        follow_redirects=False,
        raise_error=False,
    )
    assert response.code == 302, response.body
    jar = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    names = [name for name in jar if name.startswith("username-")]
    assert names, response.headers
    return f"{names[0]}={jar[names[0]].value}"


async def test_cookie_authenticated_websockets_must_come_from_the_same_origin(
    jp_serverapp: Any, jp_ws_fetch: Any, jp_http_port: int, jp_base_url: str
) -> None:
    cookie = await login_cookie(jp_http_port, jp_base_url, jp_serverapp.identity_provider.token)
    here = f"http://localhost:{jp_http_port}"
    opened: list[Client] = []
    try:
        for parts in (("vimax", "ws"), ("vimax", "ws", "coordinator")):
            url = f"ws://localhost:{jp_http_port}{ws_path(jp_base_url, *parts)}"

            # the cookie from a foreign page: refused before the upgrade
            with pytest.raises(HTTPClientError) as caught:
                await websocket_connect(
                    HTTPRequest(url, headers={"Cookie": cookie, "Origin": EVIL})
                )
            assert caught.value.code == 403

            # the same cookie from the server's own page: connected
            same = Client(
                await websocket_connect(
                    HTTPRequest(url, headers={"Cookie": cookie, "Origin": here})
                )
            )
            opened.append(same)
            await same.expect("welcome")

            # a token says the caller is no page riding on a cookie: any origin will do
            token = Client(await jp_ws_fetch(*parts, headers={"Origin": EVIL}))
            opened.append(token)
            await token.expect("welcome")

        # neither a cookie nor a token: refused whatever the origin
        with pytest.raises(HTTPClientError) as caught:
            await jp_ws_fetch("vimax", "ws", headers={"Authorization": "", "Origin": here})
        assert caught.value.code == 403
    finally:
        for client in opened:
            client.close()


# -- 3. the conversation --------------------------------------------------------------------


async def test_welcome_ping_metrics_and_protocol_errors_keep_the_connection_open(
    jp_ws_fetch: Any, service: Any
) -> None:
    client, welcome = await connect(jp_ws_fetch, "vimax", "ws")
    try:
        assert welcome["protocol"] == 1
        assert welcome["epoch"] == service.store.events.epoch
        assert welcome["heartbeat_interval"] == 30.0
        assert welcome["client_id"] in service.hub.connections
        assert not {"room", "seq", "timestamp"} & set(welcome)

        pong = await client.request({"type": "ping", "ts": 1234.5}, "pong")
        assert pong == {"type": "pong", "ts": 1234.5}
        assert (await client.request({"type": "ping", "ts": "abc"}, "pong"))["ts"] == "abc"

        metrics = await client.request({"type": "get_metrics"}, "coordinator_metrics")
        assert not {"room", "seq", "timestamp"} & set(metrics)
        assert metrics["registered_agents"] == len(service.coordinator.agents)
        assert metrics["connections"] == 1

        unknown_rooms = [
            ("workflow:nosuchflow", "workflow", "nosuchflow"),
            ("agent:nobody", "agent", "nobody"),
        ]
        for room, target_type, target_id in unknown_rooms:
            error = await client.request(
                {"type": "subscribe", "room": room, "after": None, "id": "r1"}, "error"
            )
            assert error["code"] == "not_found", error
            assert error["id"] == "r1"
            assert error["target_type"] == target_type
            assert error["target_id"] == target_id
            assert target_id in error["message"]

        bad = [
            ("{nope", "bad_json", "not valid JSON"),
            ("[1, 2]", "invalid_message", "JSON object"),
            ('{"type": "dance", "id": "d1"}', "unknown_type", "dance"),
            ('{"ts": 1}', "unknown_type", "no 'type'"),
            ('{"type": "subscribe", "id": "s1"}', "invalid_message", "'room' is required"),
            ('{"type": "subscribe", "room": "kitchen"}', "invalid_message", "kitchen"),
            (
                '{"type": "subscribe", "room": "coordinator", "after": -1}',
                "invalid_message",
                ">= 0",
            ),
            (
                '{"type": "control", "workflow_id": "w", "action": "explode"}',
                "invalid_message",
                "action",
            ),
            ('{"type": "ping", "ts": 1, "extra": true}', "invalid_message", "extra"),
        ]
        for raw, code, words in bad:
            error = await client.request(raw, "error")
            assert error["target_type"] == "protocol", (raw, error)
            assert error["code"] == code, (raw, error)
            assert words in error["message"], (raw, error)
            assert error["retryable"] is False
            assert "seq" not in error
        assert (await client.request('{"type": "dance", "id": "d1"}', "error"))["id"] == "d1"

        # still usable after all that
        assert (await client.request({"type": "ping", "ts": 7}, "pong"))["ts"] == 7
        assert client.close_code is None
    finally:
        client.close()


async def test_coordinator_metrics_count_the_clients_connected_wherever_they_leave(
    jp_fetch: Any, jp_ws_fetch: Any, service: Any
) -> None:
    assert body_of(await jp_fetch("vimax/api/coordinator"))["connections"] == 0
    client, _ = await connect(jp_ws_fetch, "vimax", "ws")
    watcher, _ = await connect(jp_ws_fetch, "vimax", "ws", "coordinator")
    try:
        subscribed = await watcher.expect("subscribed")
        assert subscribed["snapshot"]["connections"] == 2
        assert body_of(await jp_fetch("vimax/api/coordinator"))["connections"] == 2
        metrics = await client.request({"type": "get_metrics"}, "coordinator_metrics")
        assert metrics["connections"] == 2
        client.close()
        await client.wait_closed()
        # the coordinator's own report, as the log stores it and the room receives it
        service.coordinator.reporter.emit_metrics()
        live = await watcher.read_until(
            lambda m: m["type"] == "coordinator_metrics" and m["seq"] > subscribed["top"]
        )
        assert live[-1]["connections"] == 1
        stored = await service.store.events.read("coordinator", after=live[-1]["seq"] - 1)
        assert json.loads(stored[0].frame) == live[-1]
    finally:
        client.close()
        watcher.close()


async def test_an_unknown_room_on_a_single_room_endpoint_is_an_error_frame(
    jp_ws_fetch: Any,
) -> None:
    client, _ = await connect(jp_ws_fetch, "vimax", "ws", "workflow", "nosuchflow")
    try:
        error = await client.expect("error")
        assert error["code"] == "not_found"
        assert error["target_type"] == "workflow"
        assert error["target_id"] == "nosuchflow"
        assert (await client.request({"type": "ping", "ts": 1}, "pong"))["ts"] == 1
    finally:
        client.close()


async def test_the_coordinator_endpoint_subscribes_with_the_metrics_as_snapshot(
    jp_ws_fetch: Any, jp_fetch: Any
) -> None:
    client, _ = await connect(jp_ws_fetch, "vimax", "ws", "coordinator")
    try:
        subscribed = await client.expect("subscribed")
        assert subscribed["recovered"] is True
        rest = body_of(await jp_fetch("vimax/api/coordinator"))
        snapshot = subscribed["snapshot"]
        assert set(snapshot) == set(rest)
        assert snapshot["registered_agents"] == rest["registered_agents"]
        if subscribed["top"]:
            replayed = await client.read_until(lambda m: m.get("seq") == subscribed["top"])
            assert seqs(replayed, "coordinator") == span(1, subscribed["top"])
        unsubscribed = await client.request(
            {"type": "unsubscribe", "room": "coordinator", "id": "u"},
            "unsubscribed",
            skip_events=True,
        )
        assert unsubscribed["id"] == "u"
    finally:
        client.close()


async def test_an_agent_endpoint_subscribes_with_the_agent_as_snapshot(
    jp_ws_fetch: Any, jp_fetch: Any
) -> None:
    agents = body_of(await jp_fetch("vimax/api/agents"))["agents"]
    name = agents[0]["name"]
    client, _ = await connect(jp_ws_fetch, "vimax", "ws", "agent", name)
    try:
        subscribed = await client.expect("subscribed")
        assert subscribed["recovered"] is True
        rest = body_of(await jp_fetch("vimax/api/agents", name))
        snapshot = subscribed["snapshot"]
        assert set(snapshot) == set(rest)
        assert (snapshot["name"], snapshot["capabilities"]) == (rest["name"], rest["capabilities"])
        if subscribed["top"]:
            replayed = await client.read_until(lambda m: m.get("seq") == subscribed["top"])
            assert seqs(replayed, f"agent:{name}") == span(1, subscribed["top"])
            assert {m["type"] for m in replayed} == {"agent_status"}
    finally:
        client.close()


@pytest.mark.parametrize("after", ["abc", "-1", "1.5"])
async def test_a_bad_after_on_a_single_room_endpoint_closes_with_1008(
    jp_ws_fetch: Any, after: str
) -> None:
    client = Client(await jp_ws_fetch("vimax", "ws", "coordinator", params={"after": after}))
    assert await client.wait_closed() == 1008
    assert "query" in (client.conn.close_reason or "")
    assert not [m for m in client.frames if m["type"] != "welcome"]


async def test_subscribed_and_unsubscribed_name_their_room(jp_ws_fetch: Any) -> None:
    client, _ = await connect(jp_ws_fetch, "vimax", "ws")
    try:
        subscribed = await subscribe(client, "coordinator", id="s")
        assert subscribed["room"] == "coordinator"
        # a multiplexed client must be able to tell which subscription an answer is for
        # without an id too
        unsubscribed = await client.request(
            {"type": "unsubscribe", "room": "coordinator"}, "unsubscribed", skip_events=True
        )
        assert unsubscribed == {"type": "unsubscribed", "room": "coordinator", "id": None}
    finally:
        client.close()


# -- 4. frame size ------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "deflate"])
async def test_a_frame_over_max_frame_size_closes_with_1009(
    jp_ws_fetch: Any, jp_fetch: Any, service: Any, compressed: bool
) -> None:
    options: dict[str, Any] = {"compression_options": {}} if compressed else {}
    client, _ = await connect(jp_ws_fetch, "vimax", "ws", **options)
    limit = service.hub.limits.max_frame_size
    # just under the limit is a (bad) message like any other
    error = await client.request(" " * (limit - 100) + "{", "error")
    assert error["code"] == "bad_json"
    await client.send('{"type": "ping", "ts": "' + "x" * limit + '"}')
    assert await client.wait_closed() == 1009
    assert (await hub_stats(jp_fetch))["connections"] == 0


# -- 5. rate limit: tests/server/test_rate_limit.py -----------------------------------------


# -- 6. resume while a producer runs --------------------------------------------------------


async def test_resume_while_a_producer_runs_at_full_speed(
    jp_fetch: Any, jp_ws_fetch: Any, service: Any, toy: Gate
) -> None:
    total = 5000
    wid = await start_held(jp_fetch, service, toy)
    room = workflow_room(wid)
    log = service.store.events
    phase = [asyncio.Event() for _ in range(5)]

    async def producer() -> None:
        # full speed within each phase; the phases only make sure every step of the
        # clients below happens while events are still coming
        await produce(service, wid, range(0, 1000))
        phase[0].set()
        await phase[1].wait()  # A has asked to subscribe
        await produce(service, wid, range(1000, 2500))
        await phase[2].wait()  # A went away
        await produce(service, wid, range(2500, 3500))
        phase[3].set()
        await phase[4].wait()  # A is back, B connected: both replay while ...
        await produce(service, wid, range(3500, total))
        await log.flush()

    producing = asyncio.ensure_future(producer())
    opened: list[Client] = []
    try:
        a, welcome = await connect(jp_ws_fetch, "vimax", "ws")
        opened.append(a)
        epoch = welcome["epoch"]
        await phase[0].wait()
        await a.send({"type": "subscribe", "room": room, "after": None, "id": "a1"})
        phase[1].set()
        first = await a.expect("subscribed")
        assert first["id"] == "a1"
        assert first["recovered"] is True
        assert first["snapshot"]["id"] == wid
        a_events = await a.read_until(lambda m: tick_of(m) == 2000)
        a.close()
        phase[2].set()
        last = a_events[-1]["seq"]
        assert seqs(a_events, room) == span(1, last)
        assert first["top"] <= last

        a2, welcome2 = await connect(jp_ws_fetch, "vimax", "ws")
        opened.append(a2)
        assert welcome2["epoch"] == epoch
        assert welcome2["client_id"] != welcome["client_id"]
        await phase[3].wait()
        await a2.send(
            {"type": "subscribe", "room": room, "after": last, "epoch": epoch, "id": "a2"}
        )
        # B resumes on the single-room endpoint from an earlier point, deflated
        b_after = last // 2
        b, _ = await connect(
            jp_ws_fetch,
            "vimax",
            "ws",
            "workflow",
            wid,
            params={"after": b_after, "epoch": epoch},
            compression_options={},
        )
        opened.append(b)
        phase[4].set()

        again = await a2.expect("subscribed")
        assert again["recovered"] is True
        assert again["id"] == "a2"
        assert last <= again["top"]
        b_subscribed = await b.expect("subscribed")
        assert b_subscribed["recovered"] is True
        assert b_after <= b_subscribed["top"]

        await asyncio.wait_for(producing, 30)
        top = log.top(room)
        assert again["top"] <= top
        assert b_subscribed["top"] <= top
        a2_events = await a2.read_until(lambda m: m.get("seq") == top)
        b_events = await b.read_until(lambda m: m.get("seq") == top)
    finally:
        phase[1].set()
        phase[2].set()
        phase[4].set()
        await asyncio.wait_for(producing, 30)
        for client in opened:
            client.close()

    both = a_events + a2_events
    assert seqs(both, room) == span(1, top)
    assert [t for t in map(tick_of, both) if t is not None] == list(range(total))
    assert seqs(b_events, room) == span(b_after + 1, top)
    assert [m["seq"] for m in b_events] == [m["seq"] for m in both[b_after:]]
    # what was stored is what was sent
    stored = await log.read(room)
    assert [json.loads(e.frame) for e in stored] == both


# -- 7. recovered: false ----------------------------------------------------------------------


async def expect_live(
    client: Client, service: Any, wid: str, subscribed: dict[str, Any], i: int
) -> None:
    """After ``subscribed`` (recovered false), no replay: the next event is a live one,
    the first above ``top``."""
    await produce(service, wid, range(i, i + 1))
    events = await client.read_until(lambda m: tick_of(m) == i)
    assert seqs(events, workflow_room(wid)) == span(subscribed["top"] + 1, events[-1]["seq"])


async def test_a_wrong_epoch_or_an_after_beyond_top_gets_a_snapshot(
    jp_fetch: Any, jp_ws_fetch: Any, service: Any, toy: Gate
) -> None:
    wid = await start_held(jp_fetch, service, toy)
    room = workflow_room(wid)
    await produce(service, wid, range(20))
    await service.store.events.flush()
    top = service.store.events.top(room)
    record = body_of(await jp_fetch("vimax/api/workflows", wid))

    client, welcome = await connect(jp_ws_fetch, "vimax", "ws")
    try:
        wrong = "0" * 32
        assert welcome["epoch"] != wrong
        cases: list[Callable[[int], dict[str, Any]]] = [  # of the room's top at the time
            lambda now: {"after": 2, "epoch": wrong},
            lambda now: {"after": 0, "epoch": wrong},
            lambda now: {"after": now + 50, "epoch": welcome["epoch"]},
            lambda now: {"after": now + 1},
        ]
        for n, case in enumerate(cases):
            fields = case(top + n)
            subscribed = await subscribe(client, room, **fields)
            assert subscribed["recovered"] is False, fields
            assert subscribed["top"] == top + n, fields
            assert subscribed["snapshot"] == record
            await expect_live(client, service, wid, subscribed, 100 + n)
        # and a right one recovers, replaying exactly what it missed
        subscribed = await subscribe(client, room, after=top - 3, epoch=welcome["epoch"])
        assert subscribed["recovered"] is True
        assert subscribed["top"] == top + len(cases)
        replayed = await client.read_until(lambda m: m["seq"] == subscribed["top"])
        assert seqs(replayed, room) == span(top - 2, top + len(cases))
    finally:
        client.close()


@vimax(max_events_per_room=100)
async def test_after_retention_dropped_events_the_snapshot_is_the_truth(
    jp_fetch: Any, jp_ws_fetch: Any, service: Any, toy: Gate
) -> None:
    wid = await start_held(jp_fetch, service, toy)
    room = workflow_room(wid)
    log = service.store.events
    await produce(service, wid, range(500), chunk=50)
    await log.flush()
    top, floor = log.top(room), log.floor(room)
    assert floor > 5
    assert top - floor >= 100

    client, _ = await connect(jp_ws_fetch, "vimax", "ws")
    try:
        subscribed = await subscribe(client, room, after=5)
        assert subscribed["recovered"] is False
        assert subscribed["top"] == top
        assert subscribed["snapshot"] == body_of(await jp_fetch("vimax/api/workflows", wid))
        await expect_live(client, service, wid, subscribed, 1000)

        # a client that has seen nothing gets everything still kept, then live events
        fresh, _ = await connect(jp_ws_fetch, "vimax", "ws", "workflow", wid, params={"after": 0})
        try:
            subscribed = await fresh.expect("subscribed")
            assert subscribed["recovered"] is False
            assert subscribed["top"] == top + 1
            floor = log.floor(room)
            kept = await fresh.read_until(lambda m: m["seq"] == top + 1)
            assert seqs(kept, room) == span(floor + 1, top + 1)
            await expect_live(fresh, service, wid, subscribed | {"top": top + 1}, 1001)
        finally:
            fresh.close()
    finally:
        client.close()


# -- 8. slow consumers ---------------------------------------------------------------------


@vimax(send_queue_limit=64 * 1024)
async def test_a_slow_consumer_is_closed_with_4008_while_the_others_get_everything(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    service: Any,
    toy: Gate,
) -> None:
    total, chunk, pad = 5000, 16, "x" * 500  # about 3 MB of events
    wid = await start_held(jp_fetch, service, toy)
    room = workflow_room(wid)
    log = service.store.events

    fast, _ = await connect(jp_ws_fetch, "vimax", "ws")
    subscribed = await subscribe(fast, room)
    start = subscribed["top"]
    fast_events = await fast.read_until(lambda m: m["seq"] == start) if start else []

    slow = await RawWebSocket.connect(
        jp_http_port, ws_path(jp_base_url, "vimax", "ws"), jp_auth_header, rcvbuf=4096
    )
    try:
        assert slow.status == 101
        first = await slow.read_frame()
        assert first is not None
        slow_id = first.json()["client_id"]
        await slow.send_json({"type": "subscribe", "room": room, "after": None})
        while True:  # up to its subscribed; from now on it reads nothing
            frame = await slow.read_frame()
            assert frame is not None
            if frame.opcode == OP_TEXT and frame.json()["type"] == "subscribed":
                break

        seen = start
        advanced = asyncio.Event()

        async def reader() -> None:
            nonlocal seen
            while True:
                message = await fast.recv()
                assert message is not None, f"the fast client was closed ({fast.close_code})"
                fast_events.append(message)
                seen = message["seq"]
                advanced.set()
                if tick_of(message) == total - 1:
                    return

        async def producer() -> None:
            # as fast as the reading client takes them (it is never more than a few
            # KB behind); the other one takes nothing
            for i in range(0, total, chunk):
                await produce(service, wid, range(i, min(i + chunk, total)), chunk=chunk, pad=pad)
                await log.flush()
                while log.top(room) - seen > 2 * chunk:
                    advanced.clear()
                    await asyncio.wait_for(advanced.wait(), 10)

        reading = asyncio.ensure_future(reader())
        await asyncio.wait_for(asyncio.gather(producer(), reading), 60)
        top = log.top(room)
        assert seqs(fast_events, room) == span(1, top)

        stats = await hub_stats(jp_fetch)
        assert stats["slow_consumer_closes"] == 1
        assert stats["replay_gap_closes"] == 0
        assert stats["connections"] == 1
        assert slow_id not in json.dumps(stats["rooms"])
        await fails_404(jp_fetch, slow_id)

        # what the slow one was sent before it was dropped: contiguous, then 4008
        frames, close = await read_to_close(slow)
        assert close.close_code == 4008, close
        assert close.close_reason.startswith("slow consumer: more than"), close
        assert "resume" in close.close_reason
        texts = [f.json() for f in frames if f.opcode == OP_TEXT]
        got = seqs(texts, room)
        assert got == span(1, len(got))
        assert 0 < len(got) < top
    finally:
        slow.close()
        fast.close()


async def fails_404(jp_fetch: Any, client_id: str) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("vimax/ws/client", client_id)
    assert caught.value.code == 404


@vimax(send_queue_limit=64 * 1024)
async def test_a_client_closed_with_4008_resumes_and_loses_nothing(
    jp_fetch: Any, jp_ws_fetch: Any, service: Any, toy: Gate
) -> None:
    wid = await start_held(jp_fetch, service, toy)
    room = workflow_room(wid)
    log = service.store.events
    # 1000 events of about 650 bytes: several times the send queue limit to replay
    await produce(service, wid, range(1000), chunk=20, pad="x" * 500)
    await log.flush()
    top = log.top(room)
    client, welcome = await connect(jp_ws_fetch, "vimax", "ws")
    try:
        subscribed = await subscribe(client, room, after=10, epoch=welcome["epoch"])
        assert subscribed["recovered"] is True
        events = await client.read_until(lambda m: m.get("seq") == top)
        assert seqs(events, room) == span(11, top)
    finally:
        client.close()


async def test_a_subscribe_arriving_after_a_4008_close_joins_nothing(service: Any) -> None:
    hub = service.hub
    writer = IdleWriter()
    connection = hub.register(writer, "tester")
    session = Session(hub, service.coordinator, connection)
    # what a 4008 does; tornado keeps reading (and calling on_message) until the client's
    # close frame comes back
    hub.slow_consumer(connection)
    ((code, reason),) = writer.closes
    assert code == 4008
    assert reason.startswith("slow consumer")
    session.receive(json.dumps({"type": "subscribe", "room": "coordinator"}))
    pending = list(session._tasks)  # the subscription's work, if it was started
    if pending:
        await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 10)
    session.close()  # on_close, once the close handshake ends
    hub.unregister(connection)
    assert connection not in hub.rooms.get("coordinator", set())
    assert connection.rooms == {}
    assert connection.id not in json.dumps(hub.stats()["rooms"])


# -- 9. control ------------------------------------------------------------------------------


async def test_control_over_the_websocket(
    jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, service: Any, toy: Gate
) -> None:
    wid = await start_held(jp_fetch, service, toy)
    client, _ = await connect(jp_ws_fetch, "vimax", "ws")
    try:

        async def control(workflow_id: str, action: str, request_id: str) -> dict[str, Any]:
            message = {"type": "control", "workflow_id": workflow_id, "action": action}
            answer = await client.request(message | {"id": request_id}, "control_response")
            assert answer["id"] == request_id
            assert answer["workflow_id"] == workflow_id
            assert answer["action"] == action
            assert answer["message"]
            return answer

        for n, (action, state) in enumerate(
            [("pause", "paused"), ("resume", "running"), ("cancel", "canceled")]
        ):
            answer = await control(wid, action, f"c{n}")
            assert answer["ok"] is True, answer
            assert answer["state"] == state
            assert record_of(await jp_fetch("vimax/api/workflows", wid)).state == state

        # actions that do not apply: ok false, the current state and why (REST's 409)
        for action in ("pause", "resume", "cancel"):
            answer = await control(wid, action, f"again-{action}")
            assert answer["ok"] is False
            assert answer["state"] == "canceled"
            assert wid in answer["message"]

        toy.opened.set()
        done = record_of(
            await post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {}})
        ).id
        await wait_finished(jp_serverapp, done)
        answer = await control(done, "cancel", "late")
        assert answer["ok"] is False
        assert answer["state"] == "completed"
        assert "completed" in answer["message"]

        answer = await control("nosuchflow", "pause", "who")
        assert answer["ok"] is False
        assert answer["state"] is None
        assert "nosuchflow" in answer["message"]
        assert (await client.request({"type": "ping", "ts": 1}, "pong"))["ts"] == 1
    finally:
        client.close()


# -- 10. heartbeat ---------------------------------------------------------------------------


@vimax(heartbeat_interval=0.2)
async def test_a_peer_that_never_answers_pings_is_dropped(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    alive, welcome = await connect(jp_ws_fetch, "vimax", "ws")
    try:
        assert welcome["heartbeat_interval"] == 0.2
        loop = asyncio.get_running_loop()
        started = loop.time()
        dead = await RawWebSocket.connect(
            jp_http_port, ws_path(jp_base_url, "vimax", "ws"), jp_auth_header
        )
        try:
            assert dead.status == 101
            frames, close = await read_to_close(dead, timeout=5)
            elapsed = loop.time() - started
        finally:
            dead.close()
        assert frames[0].json()["heartbeat_interval"] == 0.2
        assert any(f.opcode == OP_PING for f in frames), frames
        assert elapsed < 1.5, f"dropped after {elapsed:.2f}s"
        assert "ping" in close.close_reason

        # the client that answers pings (tornado does) stays, and is sent nothing
        # of the server's own accord meanwhile
        with pytest.raises(TimeoutError):
            await alive.recv(timeout=1.0)
        assert (await alive.request({"type": "ping", "ts": 1}, "pong"))["ts"] == 1
        stats = await hub_stats(jp_fetch)
        assert stats["connections"] == 1
        assert alive.close_code is None
    finally:
        alive.close()


# -- 11. stats --------------------------------------------------------------------------------


async def test_hub_stats_and_client_info(
    jp_fetch: Any, jp_ws_fetch: Any, service: Any, toy: Gate
) -> None:
    wid = await start_held(jp_fetch, service, toy)
    room = workflow_room(wid)
    stats = await hub_stats(jp_fetch)
    assert stats["connections"] == 0
    await fails_404(jp_fetch, "nobody")

    client, welcome = await connect(jp_ws_fetch, "vimax", "ws")
    other, other_welcome = await connect(jp_ws_fetch, "vimax", "ws", "workflow", wid)
    try:
        cid, other_id = welcome["client_id"], other_welcome["client_id"]
        sent: list[dict[str, Any]] = [
            {"type": "subscribe", "room": room, "after": None},
            {"type": "ping", "ts": 1},
        ]
        subscribed = await client.request(sent[0], "subscribed")
        await client.read_until(lambda m: m.get("seq") == subscribed["top"])
        await client.request(sent[1], "pong")
        await other.expect("subscribed")

        stats = await hub_stats(jp_fetch)
        assert stats["connections"] == 2
        assert stats["rooms"][room] == sorted([cid, other_id])
        assert stats["messages_in"] >= 2
        assert stats["bytes_out"] > 0
        assert stats["slow_consumer_closes"] == 0
        assert stats["uptime"] > 0

        info = body_of(await jp_fetch("vimax/ws/client", cid))
        assert info["client_id"] == cid
        assert isinstance(info["user"], str)
        assert info["user"]
        assert info["rooms"] == [room]
        assert info["remote"] == "127.0.0.1"
        assert info["messages_in"] == len(sent)
        assert info["bytes_in"] == sum(len(json.dumps(m)) for m in sent)
        received = client.frames
        assert info["messages_out"] == len(received)
        assert info["bytes_out"] >= sum(len(json.dumps(m, separators=(",", ":"))) for m in received)
        assert info["queued_bytes"] == 0

        await client.request({"type": "unsubscribe", "room": room}, "unsubscribed")
        assert body_of(await jp_fetch("vimax/ws/client", cid))["rooms"] == []
        assert (await hub_stats(jp_fetch))["rooms"][room] == [other_id]

        client.close()
        await client.wait_closed()
        await fails_404(jp_fetch, cid)
        stats = await hub_stats(jp_fetch)
        assert stats["connections"] == 1
    finally:
        client.close()
        other.close()


# -- 12. a whole run, watched live -------------------------------------------------------------


async def test_an_idea2video_run_watched_from_start_to_end(
    jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, jp_base_url: str
) -> None:
    created = await post_json(
        jp_fetch,
        "vimax/api/workflows",
        body={"kind": "idea2video", "params": small_params(idea=IDEA)},
    )
    wid = record_of(created).id
    room = workflow_room(wid)
    client, _ = await connect(jp_ws_fetch, "vimax", "ws", "workflow", wid, params={"after": 0})
    try:
        subscribed = await client.expect("subscribed")
        assert subscribed["recovered"] is True
        assert subscribed["snapshot"]["id"] == wid
        events = await client.read_until(
            lambda m: m["type"] == "progress" and m["state"] == "completed", timeout=60
        )
        await wait_finished(jp_serverapp, wid)
        top = service_of(jp_serverapp).store.events.top(room)
        if events[-1]["seq"] < top:
            events += await client.read_until(lambda m: m.get("seq") == top)
    finally:
        client.close()

    assert seqs(events, room) == span(1, top)
    assert all(m["type"] in ("progress", "artifact") for m in events), {m["type"] for m in events}
    stamps = [m["timestamp"] for m in events]
    assert stamps == sorted(stamps)
    assert all(s.endswith("Z") for s in stamps)
    progress = [m for m in events if m["type"] == "progress"]
    assert progress[0]["state"] in ("pending", "running")
    final = progress[-1]
    assert final["state"] == "completed"
    assert final["progress"] == 1.0
    fractions = [m["progress"] for m in progress]
    assert fractions == sorted(fractions)
    artifacts = {m["name"]: m for m in events if m["type"] == "artifact"}
    assert artifacts["final video"]["kind"] == "video"
    assert (
        artifacts["final video"]["url"]
        == f"{jp_base_url}vimax/api/workflows/{wid}/artifacts/final_video.mp4"
    )
    assert any(a["kind"] == "image" for a in artifacts.values())
    # the same events, byte for byte decoded, as REST keeps them
    rest = body_of(await jp_fetch("vimax/api/workflows", wid, "events"))
    assert rest["events"] == events


@vimax(send_queue_limit=64 * 1024)
async def test_a_burst_committed_at_once_does_not_close_a_client_that_keeps_up(
    jp_fetch: Any, jp_ws_fetch: Any, service: Any, toy: Gate
) -> None:
    wid = await start_held(jp_fetch, service, toy)
    room = workflow_room(wid)
    log = service.store.events
    client, _ = await connect(jp_ws_fetch, "vimax", "ws")
    try:
        await subscribe(client, room)  # after null: everything kept, then live
        release = threading.Event()
        held = asyncio.ensure_future(service.store.db.run_in_writer(lambda conn: release.wait(10)))
        # About 1.2 MB of events, all stored in the one commit that follows the hold:
        # far more than the 64 KiB limit reaches the hub in a single loop turn.
        await produce(service, wid, range(2000), chunk=2000, pad="x" * 500)
        release.set()
        await held
        await log.flush()
        events = await client.read_until(lambda m: m.get("seq") == log.top(room))
        assert seqs(events, room) == span(1, log.top(room))
        assert (await hub_stats(jp_fetch))["slow_consumer_closes"] == 0
    finally:
        client.close()


async def test_events_are_written_without_waiting_for_the_clients_acks(
    jp_ws_fetch: Any, service: Any
) -> None:
    # With Nagle's algorithm on, a write waits for the ack of the previous one: at
    # 200 events/s to 100 clients that put the median latency at 15 ms instead of 3.
    client, welcome = await connect(jp_ws_fetch, "vimax", "ws")
    try:
        handler = service.hub.connections[welcome["client_id"]].writer
        sock = handler.ws_connection.stream.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        client.close()
