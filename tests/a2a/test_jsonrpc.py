"""The JSON-RPC endpoint: authenticated before any work, a method-level check of the
caller's permission, proper JSON-RPC errors for whatever a client sends, and A2A 0.3's
method names."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError, AgentCardResolutionError
from a2a.types import CancelTaskRequest, GetTaskRequest, ListTasksRequest, TaskState

from vimax_nb.protocol import WorkflowState

from ..server.conftest import Gate
from ..server.test_authorization import Nothing, ReadOnly, use_authorizer
from .conftest import HELD, SMALL, a2a_client, request, state_of

T = TaskState


async def post(endpoint: str, token: str | None, body: bytes | str) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(endpoint, content=body, headers=headers)


def rpc(method: str, params: Any = None, request_id: Any = 1) -> str:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return json.dumps(body)


# -- authentication and permissions -----------------------------------------------------


@pytest.mark.parametrize("authorization", ["", "token wrong", "Bearer wrong"])
async def test_every_a2a_route_is_refused_without_the_token(
    endpoint: str, service: Any, authorization: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        answers = [
            await http.get(endpoint + "/.well-known/agent-card.json"),
            await http.get(endpoint),
            await http.get(endpoint.replace("a2a", "api/agents/screenwriter/card")),
            await http.post(endpoint, content=rpc("SendMessage", {"message": {}})),
            await http.post(endpoint, content=b"{not json"),  # refused before it is read
        ]
        assert [a.status_code for a in answers] == [403] * len(answers)
        with pytest.raises(AgentCardResolutionError) as refused:
            await resolve_card(http, endpoint)
        assert refused.value.status_code == 403
    assert await service.coordinator.list_workflows() == []


async def resolve_card(http: httpx.AsyncClient, endpoint: str) -> Any:
    return await A2ACardResolver(http, endpoint).get_agent_card()


async def test_the_token_may_be_sent_as_a_bearer_token(endpoint: str, token: str) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        card = await resolve_card(http, endpoint)
    assert card.name == "vimax-nb"


async def test_a_read_only_user_reads_but_cannot_send_or_cancel(
    endpoint: str,
    token: str,
    jp_serverapp: Any,
    monkeypatch: pytest.MonkeyPatch,
    service: Any,
    toy: Gate,
) -> None:
    record = await service.coordinator.submit("story", {"shots": 1})
    authorizer = use_authorizer(jp_serverapp, monkeypatch, ReadOnly)
    async with a2a_client(endpoint, token) as (client, _http, _card):
        for streaming in (True, False):
            client._config.streaming = streaming
            with pytest.raises(A2AClientError, match=r"-32090.*may not write vimax"):
                async for _ in client.send_message(request("a fox learns to fly")):
                    pass
        with pytest.raises(A2AClientError, match=r"-32090.*may not write vimax"):
            await client.cancel_task(CancelTaskRequest(id=record.id))
        assert [w.id for w in await service.coordinator.list_workflows()] == [record.id]
        assert (await service.coordinator.get_workflow(record.id)).state == WorkflowState.running

        task = await client.get_task(GetTaskRequest(id=record.id))  # reading is allowed
        assert task.status.state == T.TASK_STATE_WORKING
        assert [t.id for t in (await client.list_tasks(ListTasksRequest())).tasks] == [record.id]
    assert ("write", "vimax") in authorizer.asked

    authorizer.writable = True  # asked at each call: now it may
    async with a2a_client(endpoint, token) as (client, _http, _card):
        canceled = await client.cancel_task(CancelTaskRequest(id=record.id))
    assert canceled.status.state == T.TASK_STATE_CANCELED


async def test_a_user_who_may_not_read_is_refused_before_the_body_is_read(
    endpoint: str, token: str, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_authorizer(jp_serverapp, monkeypatch, Nothing)
    for body in (rpc("ListTasks", {}), "{not json"):
        answer = await post(endpoint, token, body)
        assert answer.status_code == 403
        assert "may not read vimax" in answer.json()["message"]


# -- whatever a client sends --------------------------------------------------------------

METHODS_10 = [
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
]
METHODS_03 = ["message/send", "message/stream", "tasks/get", "tasks/cancel", "tasks/resubscribe"]
BAD_PARAMS: list[Any] = [
    "x",
    5,
    [],
    [1, 2],
    True,
    {"id": 5},
    {"id": ""},
    {"id": "nosuchtask"},
    {"id": {"nested": 1}},
    {"message": "x"},
    {"message": {"parts": "x"}},
    {"message": {"role": "ROLE_NOPE", "parts": []}},
    {"message": {"messageId": "m", "role": "ROLE_USER", "parts": []}},
    {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "   "}]}},
]


def malformed_bodies() -> list[tuple[bytes, set[int]]]:
    """200 request bodies no server should choke on, with the error codes each may get."""
    deep = "[" * 5000 + "]" * 5000
    raw: list[tuple[bytes | str, set[int]]] = [
        (b"", {-32700}),
        (b"{", {-32700}),
        (b"{bad", {-32700}),
        (b"\xff\xfe\x00", {-32700}),
        (b'{"jsonrpc": "2.0", "method": "GetTask", "id": 1', {-32700}),
        ("{'single': 'quotes'}", {-32700}),
        ("null", {-32600}),
        ("true", {-32600}),
        ("1", {-32600}),
        ('"GetTask"', {-32600}),
        ("[]", {-32600}),
        (json.dumps([json.loads(rpc("GetTask", {"id": "x"}))]), {-32600}),
        (deep, {-32600}),
        ('{"a":' * 3000 + "1" + "}" * 3000, {-32600}),
        ('{"jsonrpc": "2.0", "id": 1e999, "method": "GetTask"}', {-32600}),
        ('{"jsonrpc": "2.0", "id": 99999999999999999999999, "method": "GetTask"}', {-32600}),
        ('{"jsonrpc": "2.0", "id": NaN, "method": "GetTask"}', {-32600}),
        ('{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"\\ud800"}}', {-32602}),
        ('{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":1e400}}', {-32602}),
        (rpc("GetTask", {"id": "x"}).replace('"2.0"', '"1.0"'), {-32600}),
        (rpc("GetTask", {"id": "x"}).replace('"2.0"', "2"), {-32600}),
        (json.dumps({"id": 1, "method": "GetTask"}), {-32600}),
        (json.dumps({"jsonrpc": "2.0", "id": 1}), {-32600}),
        (rpc(""), {-32600}),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": 5}), {-32600}),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": None}), {-32600}),
        (rpc("GetTask", {"id": "x"}, request_id=True), {-32600}),
        (rpc("GetTask", {"id": "x"}, request_id=1.5), {-32600}),
        (rpc("GetTask", {"id": "x"}, request_id={"a": 1}), {-32600}),
        (rpc("GetTask", {"id": "x"}, request_id=[1]), {-32600}),
    ]
    for method in ("Foo", "tasks/list", "sendMessage", "getTask", "rpc.discover", "x" * 500):
        raw.append((rpc(method, {}), {-32601}))
    for method in METHODS_10 + METHODS_03:
        for params in BAD_PARAMS:
            if method == "ListTasks" and isinstance(params, dict):
                continue  # fields it does not know are ignored, as A2A asks: a good request
            raw.append((rpc(method, params), {-32602, -32600, -32001, -32003, -32004}))
    raw.append((rpc("ListTasks", {"pageSize": 1000}), {-32602}))
    raw.append((rpc("ListTasks", {"pageToken": "nope"}), {-32602}))
    raw.append((rpc("ListTasks", {"historyLength": -1}), {-32602}))
    raw.append((rpc("GetExtendedAgentCard", {}), {-32004, -32007}))
    while len(raw) < 200:
        n = len(raw)
        raw.append((rpc("GetTask", {"id": f"nosuchtask-{n}"}, request_id=f"r{n}"), {-32001}))
    return [(b if isinstance(b, bytes) else b.encode(), codes) for b, codes in raw[:200]]


async def test_200_malformed_bodies_each_get_a_json_rpc_error_and_the_server_stays_up(
    endpoint: str, token: str, service: Any
) -> None:
    bodies = malformed_bodies()
    assert len(bodies) == 200
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"token {token}"}) as http:
        for body, codes in bodies:
            answer = await http.post(endpoint, content=body)
            assert answer.status_code == 200, (body[:80], answer.text[:300])
            assert answer.headers["content-type"].startswith("application/json")
            error = answer.json()
            assert error["jsonrpc"] == "2.0", body[:80]
            assert "error" in error, (body[:80], error)
            assert error["error"]["code"] in codes, (body[:80], error)
            assert isinstance(error["error"]["message"], str)
            assert error["error"]["message"]
    assert await service.coordinator.list_workflows() == []  # none started anything

    async with a2a_client(endpoint, token) as (client, _http, _card):  # still up and serving
        events = [e async for e in client.send_message(request("a cat surfs", {"params": SMALL}))]
    assert state_of(events[-1]) == T.TASK_STATE_COMPLETED


async def test_error_codes_name_what_is_wrong(endpoint: str, token: str) -> None:
    answers = {
        name: (await post(endpoint, token, body)).json()["error"]
        for name, body in {
            "parse": b"{bad",
            "invalid": '{"jsonrpc": "2.0", "id": 1}',
            "method": rpc("NoSuchMethod", {}),
            "params": rpc("GetTask", {"id": 5}),
            "task": rpc("GetTask", {"id": "nosuchtask"}),
            "words": rpc(
                "SendMessage",
                {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": " "}]}},
            ),
        }.items()
    }
    assert {name: error["code"] for name, error in answers.items()} == {
        "parse": -32700,
        "invalid": -32600,
        "method": -32601,
        "params": -32602,
        "task": -32001,
        "words": -32602,
    }
    assert "SendMessage" in answers["method"]["message"]  # the methods there are
    assert "does not say what to make" in answers["words"]["message"]


# -- A2A 0.3 -------------------------------------------------------------------------------


async def test_a2a_0_3_method_names_are_served_in_0_3_shapes(
    endpoint: str, token: str, service: Any, toy: Gate
) -> None:
    message = {
        "kind": "message",
        "messageId": uuid.uuid4().hex,
        "role": "user",
        "parts": [{"kind": "data", "data": HELD}],
    }
    sent = (
        await post(
            endpoint,
            token,
            rpc("message/send", {"message": message, "configuration": {"blocking": False}}),
        )
    ).json()
    task = sent["result"]
    assert (task["kind"], task["status"]["state"]) == ("task", "submitted")
    got = (await post(endpoint, token, rpc("tasks/get", {"id": task["id"]}))).json()
    assert got["result"]["status"]["state"] == "working"
    canceled = (await post(endpoint, token, rpc("tasks/cancel", {"id": task["id"]}))).json()
    assert canceled["result"]["status"]["state"] == "canceled"
    missing = (await post(endpoint, token, rpc("tasks/get", {"id": "nosuchtask"}))).json()
    assert missing["error"]["code"] == -32001


async def test_a_stream_answers_in_server_sent_events(
    endpoint: str, token: str, service: Any, toy: Gate
) -> None:
    body = rpc(
        "SendStreamingMessage",
        {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": HELD}]}},
        request_id="s1",
    )
    headers = {"Authorization": f"token {token}", "Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as http,
        http.stream("POST", endpoint, content=body, headers=headers) as answer,
    ):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        lines = answer.aiter_lines()
        first = json.loads((await anext(lines)).removeprefix("data: "))
    assert first["id"] == "s1"
    assert first["result"]["task"]["status"]["state"] == "TASK_STATE_SUBMITTED"
    task_id = first["result"]["task"]["id"]
    # the client went away: the workflow goes on, and its task with it
    toy.opened.set()
    await service.coordinator.wait(task_id, timeout=60)
    await service.store.events.flush()
    async with a2a_client(endpoint, token) as (client, _http, _card):
        task = await client.get_task(GetTaskRequest(id=task_id))
    assert task.status.state == T.TASK_STATE_COMPLETED


async def test_an_idle_stream_is_kept_open_with_comments(
    endpoint: str, token: str, service: Any, toy: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vimax_nb.server.a2a.PING_SECONDS", 0.05)
    record = await service.coordinator.submit("story", {"shots": 1})  # held: nothing happens
    body = rpc("SubscribeToTask", {"id": record.id})
    headers = {"Authorization": f"token {token}"}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as http,
        http.stream("POST", endpoint, content=body, headers=headers) as answer,
    ):
        lines = answer.aiter_lines()
        assert (await anext(lines)).startswith("data: ")
        assert await anext(lines) == ""
        assert await anext(lines) == ": ping"  # a comment: SSE clients skip it
