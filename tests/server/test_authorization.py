"""Who may do what, through a real Jupyter server.

Every REST route and every WebSocket action asks Jupyter's authorizer about the
``vimax`` resource where it happens: ``read`` to watch, ``write`` to start or control a
workflow. A refused request does no work. A workflow's owner is the Jupyter username
(the server's user for the users Jupyter makes up), and with ``c.VimaxApp.owner_only``
another user's workflow answers as if it did not exist.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from jupyter_server.auth import AllowAllAuthorizer, IdentityProvider, User
from jupyter_server.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse
from tornado.web import RequestHandler

from vimax_nb.client import Client as VimaxClient
from vimax_nb.client import VimaxError
from vimax_nb.protocol import WorkflowRecord, WorkflowState, workflow_room
from vimax_nb.server.a2a import a2a_handlers
from vimax_nb.server.access import Ownership, made_up_by_jupyter
from vimax_nb.server.base import VimaxHandler, api
from vimax_nb.server.handlers import rest_handlers

from .conftest import Gate, install_toy, service_of
from .ws_helpers import Client

S = WorkflowState
EVIL = "http://evil.example"
STORY = {"kind": "story", "params": {"shots": 1}}
NOTE = "note.txt"

# -- servers ------------------------------------------------------------------------------

#: Tokens of the people the test identity provider knows.
TOKENS = {"ada-token": "ada", "bob-token": "bob", "carol-token": "carol"}


class TokenUsers(IdentityProvider):  # type: ignore[misc]
    """Names a person per token (:data:`TOKENS`); the server's own token is Jupyter's
    usual made-up user."""

    async def get_user_token(self, handler: RequestHandler) -> User | None:
        name = TOKENS.get(self.get_token(handler) or "")
        if name is not None:
            return User(username=name)
        user: User | None = await super().get_user_token(handler)
        return user


OWNER_ONLY = {
    "ServerApp": {"identity_provider_class": TokenUsers},
    "VimaxApp": {"owner_only": True, "admin_users": ["carol"], "server_user": "lab"},
}


@pytest.fixture
def server_config() -> dict[str, Any]:
    """Configuration merged into the test server's (parametrize it to change it)."""
    return {}


@pytest.fixture
def jp_server_config(
    jp_server_config: dict[str, Any], server_config: dict[str, Any]
) -> dict[str, Any]:
    merged = dict(jp_server_config)
    for section, values in server_config.items():
        merged[section] = {**merged.get(section, {}), **values}
    return merged


owner_only = pytest.mark.parametrize("server_config", [OWNER_ONLY], ids=["owner_only"])


def as_user(name: str) -> dict[str, str]:
    """Headers of a request by ``name`` (a :data:`TOKENS` user)."""
    token = next(token for token, user in TOKENS.items() if user == name)
    return {"Authorization": f"token {token}"}


@pytest.fixture
def toy(service: Any) -> Iterator[Gate]:
    """The toy 'story' pipeline, its first task held until the gate opens."""
    gate = Gate()
    install_toy(service.coordinator, gate)
    try:
        yield gate
    finally:
        gate.opened.set()


async def held(service: Any, gate: Gate, owner: str | None = None) -> str:
    """A running toy workflow of ``owner``, held in its first task, with a file ``NOTE``
    and the events it made so far stored."""
    record = await service.coordinator.submit("story", {"shots": 1}, owner=owner)
    assert await asyncio.to_thread(gate.entered.wait, 10), "the held task never started"
    await service.store.events.flush()
    folder = Path(service.workdir) / record.id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NOTE).write_text("kept\n")
    return str(record.id)


async def state_of(service: Any, wid: str) -> WorkflowState:
    record: WorkflowRecord = await service.coordinator.get_workflow(wid)
    return record.state


class ReadOnly(AllowAllAuthorizer):  # type: ignore[misc]
    """Allows ``read`` on every resource and nothing else (until ``writable``); answers
    asynchronously, as an authorizer may."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked: list[tuple[str, str]] = []
        self.writable = False

    async def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        self.asked.append((action, resource))
        await asyncio.sleep(0)
        return action == "read" or self.writable


class Nothing(AllowAllAuthorizer):  # type: ignore[misc]
    """Refuses every action on vimax."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "vimax"


def use_authorizer(
    serverapp: Any, monkeypatch: pytest.MonkeyPatch, cls: type[AllowAllAuthorizer]
) -> Any:
    settings = serverapp.web_app.settings
    authorizer = cls(identity_provider=settings["identity_provider"])
    monkeypatch.setitem(settings, "authorizer", authorizer)
    return authorizer


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
    (name,) = [name for name in jar if name.startswith("username-")]
    return f"{name}={jar[name].value}"


async def request(
    jp_fetch: Any, method: str, path: str, headers: dict[str, str] | None = None
) -> HTTPResponse:
    """``method path`` (POST with a valid toy submission), never raising on a status."""
    body = json.dumps(STORY) if method == "POST" else None
    response: HTTPResponse = await jp_fetch(
        path, method=method, body=body, headers=headers, raise_error=False
    )
    return response


async def cookie_request(method: str, url: str, headers: dict[str, str]) -> HTTPResponse:
    """``method url`` with ``headers`` (and no token), never raising on a status."""
    body = json.dumps(STORY) if method == "POST" else None
    response: HTTPResponse = await AsyncHTTPClient().fetch(
        url, method=method, body=body, headers=headers, raise_error=False
    )
    return response


def message_of(response: HTTPResponse) -> str:
    message: str = json.loads(response.body)["message"]
    return message


# -- 1. every REST route, refused before any work -----------------------------------------

ROUTES = [
    ("GET", "vimax/api/workflows"),
    ("POST", "vimax/api/workflows"),
    ("POST", "vimax/api/gc"),
    ("GET", "vimax/api/workflows/{wid}"),
    ("POST", "vimax/api/workflows/{wid}/pause"),
    ("POST", "vimax/api/workflows/{wid}/resume"),
    ("POST", "vimax/api/workflows/{wid}/cancel"),
    ("GET", "vimax/api/workflows/{wid}/events"),
    ("GET", f"vimax/api/workflows/{{wid}}/artifacts/{NOTE}"),
    ("GET", "vimax/api/agents"),
    ("GET", "vimax/api/agents/toy-writer"),
    ("GET", "vimax/api/providers"),
    ("GET", "vimax/api/coordinator"),
    ("GET", "vimax/ws/stats"),
    ("GET", "vimax/ws/client/c1-0"),
    ("GET", "vimax/a2a"),
    ("POST", "vimax/a2a"),
    ("GET", "vimax/a2a/.well-known/agent-card.json"),
    ("GET", "vimax/api/agents/toy-writer/card"),
]
#: Routes whose POST needs only ``read``: A2A's JSON-RPC endpoint asks each method for
#: what it needs (tests/a2a/test_jsonrpc.py).
READ_POSTS = {"vimax/a2a"}
ROUTE_IDS = [f"{method} {path.removeprefix('vimax/')}" for method, path in ROUTES]
CALLERS = ["no token", "wrong token", "cross-origin cookie", "read-only user"]


def test_the_matrix_has_every_method_of_every_rest_route() -> None:
    methods = ("get", "head", "post", "put", "patch", "delete")
    routes = a2a_handlers + rest_handlers  # in the order the server matches them
    served = {
        (method.upper(), pattern)
        for pattern, handler in routes
        for method in methods
        if method in vars(handler)
    }
    tested = set()
    for method, route in ROUTES:
        path = "/" + route.format(wid="abc")
        pattern = next(p for p, _ in routes if re.fullmatch(p, path))
        tested.add((method, pattern))
    assert tested == served


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "route"), ROUTES, ids=ROUTE_IDS)
async def test_every_route_refuses_a_caller_without_the_right_before_doing_anything(
    jp_fetch: Any,
    jp_serverapp: Any,
    jp_http_port: int,
    jp_base_url: str,
    monkeypatch: pytest.MonkeyPatch,
    service: Any,
    toy: Gate,
    method: str,
    route: str,
    caller: str,
) -> None:
    wid = await held(service, toy)
    if route.endswith("/resume"):
        await service.coordinator.control(wid, "pause")  # so that a resume would show
    before = await state_of(service, wid)
    path = route.format(wid=wid)

    if caller == "no token":
        response = await request(jp_fetch, method, path, {"Authorization": ""})
        expected = 403
    elif caller == "wrong token":
        response = await request(jp_fetch, method, path, {"Authorization": "token wrong"})
        expected = 403
    elif caller == "cross-origin cookie":
        token = jp_serverapp.identity_provider.token
        cookie = await login_cookie(jp_http_port, jp_base_url, token)
        here = f"http://localhost:{jp_http_port}"
        url = url_path_join(here + jp_base_url, path)
        if method == "GET":  # the cookie is good: the same request from the server's page
            same = await cookie_request(method, url, {"Cookie": cookie, "Origin": here})
            assert same.code != 403, same.body
        response = await cookie_request(method, url, {"Cookie": cookie, "Origin": EVIL})
        expected = 404  # Jupyter answers a cross-origin API request as not found
    else:
        authorizer = use_authorizer(jp_serverapp, monkeypatch, ReadOnly)
        response = await request(jp_fetch, method, path)
        if method == "GET" or route in READ_POSTS:  # reading is all this user may do
            assert response.code != 403, response.body
            assert authorizer.asked == [("read", "vimax")]
            return
        expected = 403
        assert authorizer.asked == [("write", "vimax")]
        assert "may not write vimax" in message_of(response)
        assert "'write' permission on the 'vimax' resource" in message_of(response)

    assert response.code == expected, response.body
    body = response.body.decode(errors="replace")
    assert wid not in body
    assert "kept" not in body
    assert await state_of(service, wid) == before
    assert [r.id for r in await service.coordinator.list_workflows()] == [wid]


async def test_a_read_only_user_reads_what_others_read(
    jp_fetch: Any, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch, service: Any, toy: Gate
) -> None:
    wid = await held(service, toy)
    use_authorizer(jp_serverapp, monkeypatch, ReadOnly)
    record = json.loads((await jp_fetch("vimax/api/workflows", wid)).body)
    assert record["id"] == wid
    assert record["state"] == "running"
    artifact = await jp_fetch("vimax/api/workflows", wid, "artifacts", NOTE)
    assert artifact.body == b"kept\n"


# -- 2. the WebSocket: reading at the handshake, writing at each control --------------------

WS_ROUTES = [("vimax", "ws"), ("vimax", "ws", "workflow", "abc"), ("vimax", "ws", "coordinator")]


@pytest.mark.parametrize("parts", WS_ROUTES, ids=["/".join(p[1:]) for p in WS_ROUTES])
@pytest.mark.parametrize("caller", ["no token", "wrong token", "no read"])
async def test_a_websocket_is_refused_at_the_handshake_without_a_token_or_read(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    monkeypatch: pytest.MonkeyPatch,
    parts: tuple[str, ...],
    caller: str,
) -> None:
    headers = {"Authorization": {"no token": "", "wrong token": "token wrong"}.get(caller, "")}
    if caller == "no read":
        use_authorizer(jp_serverapp, monkeypatch, Nothing)
        headers = {}
    with pytest.raises(HTTPClientError) as caught:
        await jp_ws_fetch(*parts, headers=headers)
    assert caught.value.code == 403
    assert service_of(jp_serverapp).hub.connections == {}


async def test_a_read_only_user_watches_but_cannot_control_over_the_websocket(
    jp_ws_fetch: Any, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch, service: Any, toy: Gate
) -> None:
    wid = await held(service, toy)
    authorizer = use_authorizer(jp_serverapp, monkeypatch, ReadOnly)
    client = Client(await jp_ws_fetch("vimax", "ws"))
    try:
        await client.expect("welcome")
        room = workflow_room(wid)
        subscribed = await client.request(
            {"type": "subscribe", "room": room, "after": None}, "subscribed"
        )
        assert subscribed["snapshot"]["state"] == "running"
        await client.read_until(lambda m: m.get("seq") == subscribed["top"])

        for n, action in enumerate(["pause", "cancel", "resume"]):
            control = {"type": "control", "workflow_id": wid, "action": action, "id": f"c{n}"}
            error = await client.request(control, "error")
            assert error["code"] == "not_allowed", error
            assert error["id"] == f"c{n}"
            assert (error["target_type"], error["target_id"]) == ("workflow", wid)
            assert "may not write vimax" in error["message"]
            assert await state_of(service, wid) == S.running
        assert authorizer.asked.count(("write", "vimax")) == 3
        assert (await client.request({"type": "ping", "ts": 7}, "pong"))["ts"] == 7

        # asked at each control: once allowed, the same connection controls
        authorizer.writable = True
        control = {"type": "control", "workflow_id": wid, "action": "pause", "id": "now"}
        answer = await client.request(control, "control_response", skip_events=True)
        assert (answer["ok"], answer["state"]) == (True, "paused")
    finally:
        client.close()


async def test_the_python_client_says_403_when_a_read_only_user_pauses(
    jp_fetch: Any,
    jp_serverapp: Any,
    jp_http_port: int,
    jp_base_url: str,
    monkeypatch: pytest.MonkeyPatch,
    service: Any,
    toy: Gate,
) -> None:
    wid = await held(service, toy)
    use_authorizer(jp_serverapp, monkeypatch, ReadOnly)
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    client = VimaxClient(url, jp_serverapp.identity_provider.token)
    try:
        run = await asyncio.to_thread(client.run, wid)
        with pytest.raises(VimaxError) as refused:
            await asyncio.to_thread(run.pause)
        assert refused.value.status == 403
        assert "may not write vimax" in refused.value.message
        assert await state_of(service, wid) == S.running
    finally:
        await asyncio.to_thread(client.close)


# -- 3. owners ---------------------------------------------------------------------------------


def test_the_users_jupyter_makes_up_are_recognised() -> None:
    class Handler:
        class log:
            @staticmethod
            def debug(*args: Any) -> None:
                pass

    made_up = IdentityProvider().generate_anonymous_user(Handler())
    assert made_up_by_jupyter(made_up)
    ownership = Ownership(server_user="lab")
    assert ownership.owner_of(made_up) == "lab"
    assert not made_up_by_jupyter(User(username="ada"))
    assert ownership.owner_of(User(username="ada")) == "ada"
    assert ownership.owner_of(User(username="0123456789abcdef0123456789abcdef")) == (
        "0123456789abcdef0123456789abcdef"
    )


async def test_with_jupyters_own_identity_every_token_request_is_the_server_user(
    jp_fetch: Any, jp_ws_fetch: Any, service: Any, toy: Gate
) -> None:
    owners = []
    for _ in range(2):
        response = await jp_fetch("vimax/api/workflows", method="POST", body=json.dumps(STORY))
        owners.append(json.loads(response.body)["owner"])
    assert owners == [getpass.getuser()] * 2
    client = Client(await jp_ws_fetch("vimax", "ws"))
    try:
        welcome = await client.expect("welcome")
        info = json.loads((await jp_fetch("vimax/ws/client", welcome["client_id"])).body)
        assert info["user"] == getpass.getuser()
    finally:
        client.close()


@owner_only
async def test_the_owner_is_the_username_or_the_configured_server_user(
    jp_fetch: Any, service: Any, toy: Gate
) -> None:
    body = json.dumps(STORY)
    ada = await jp_fetch("vimax/api/workflows", method="POST", body=body, headers=as_user("ada"))
    assert json.loads(ada.body)["owner"] == "ada"
    server = await jp_fetch("vimax/api/workflows", method="POST", body=body)
    assert json.loads(server.body)["owner"] == "lab"


# -- 4. owner_only -----------------------------------------------------------------------------


@owner_only
async def test_another_users_workflow_is_not_found_over_rest(
    jp_fetch: Any, service: Any, toy: Gate
) -> None:
    wid = await held(service, toy, owner="ada")
    paths = [
        ("GET", f"vimax/api/workflows/{wid}"),
        ("GET", f"vimax/api/workflows/{wid}/events"),
        ("GET", f"vimax/api/workflows/{wid}/artifacts/{NOTE}"),
        ("POST", f"vimax/api/workflows/{wid}/pause"),
        ("POST", f"vimax/api/workflows/{wid}/cancel"),
    ]
    for method, path in paths:
        hidden = await request(jp_fetch, method, path, as_user("bob"))
        unknown = await request(jp_fetch, method, path.replace(wid, "nosuchflow"), as_user("bob"))
        assert hidden.code == unknown.code == 404, (path, hidden.body)
        # the same answer as for a workflow that does not exist, but for the id
        assert hidden.body.replace(wid.encode(), b"nosuchflow") == unknown.body
        assert await state_of(service, wid) == S.running

    for who in (as_user("ada"), as_user("carol"), {}):  # the owner, an admin, the server user
        record = json.loads((await jp_fetch("vimax/api/workflows", wid, headers=who)).body)
        assert record["owner"] == "ada"
        events = await jp_fetch("vimax/api/workflows", wid, "events", headers=who)
        assert json.loads(events.body)["events"], "the owner sees the workflow's events"
        note = await jp_fetch("vimax/api/workflows", wid, "artifacts", NOTE, headers=who)
        assert note.body == b"kept\n"
    paused = await request(jp_fetch, "POST", f"vimax/api/workflows/{wid}/pause", as_user("ada"))
    assert json.loads(paused.body)["state"] == "paused"


class ScopeHandler(VimaxHandler):
    """What a request's user sees: its owner scope and the workflows listed for it."""

    @api
    async def get(self) -> None:
        scope = self.owner_scope()
        records = await (await self.coordinator()).list_workflows(owner=scope)
        self.reply({"user": self.username(), "scope": scope, "ids": [r.id for r in records]})


@owner_only
async def test_the_owner_scope_lists_a_users_own_workflows_and_admins_all(
    jp_fetch: Any, jp_serverapp: Any, jp_base_url: str, service: Any, toy: Gate
) -> None:
    toy.opened.set()
    ids = {}
    for name in ("ada", "bob", "ada"):
        record = await service.coordinator.submit("story", {"shots": 1}, owner=name)
        ids.setdefault(name, []).append(record.id)
    every = ids["ada"][:1] + ids["bob"] + ids["ada"][1:]
    route = url_path_join(jp_base_url, "vimax-test/scope")
    jp_serverapp.web_app.add_handlers(".*$", [(route, ScopeHandler)])

    async def seen(headers: dict[str, str]) -> dict[str, Any]:
        response = await jp_fetch("vimax-test/scope", headers=headers)
        seen: dict[str, Any] = json.loads(response.body)
        return seen

    assert await seen(as_user("ada")) == {"user": "ada", "scope": "ada", "ids": ids["ada"]}
    assert await seen(as_user("bob")) == {"user": "bob", "scope": "bob", "ids": ids["bob"]}
    assert await seen(as_user("carol")) == {"user": "carol", "scope": None, "ids": every}
    assert await seen({}) == {"user": "lab", "scope": None, "ids": every}

    for headers, expected in ((as_user("ada"), ids["ada"]), (as_user("carol"), every)):
        listed = json.loads((await jp_fetch("vimax/api/workflows", headers=headers)).body)
        assert sorted(w["id"] for w in listed["workflows"]) == sorted(expected)


@owner_only
async def test_another_users_workflow_is_not_found_over_the_websocket(
    jp_ws_fetch: Any, service: Any, toy: Gate
) -> None:
    wid = await held(service, toy, owner="ada")
    room = workflow_room(wid)
    bob = Client(await jp_ws_fetch("vimax", "ws", headers=as_user("bob")))
    try:
        await bob.expect("welcome")
        hidden = await bob.request({"type": "subscribe", "room": room, "id": "s"}, "error")
        unknown = await bob.request(
            {"type": "subscribe", "room": "workflow:nosuchflow", "id": "s"}, "error"
        )
        assert hidden["code"] == "not_found"
        assert json.dumps(hidden).replace(wid, "nosuchflow") == json.dumps(unknown)

        for action in ("pause", "cancel"):
            control = {"type": "control", "action": action, "id": "c"}
            refused = await bob.request(control | {"workflow_id": wid}, "control_response")
            answer = await bob.request(control | {"workflow_id": "nosuchflow"}, "control_response")
            assert (refused["ok"], refused["state"]) == (False, None)
            assert json.dumps(refused).replace(wid, "nosuchflow") == json.dumps(answer)
            assert await state_of(service, wid) == S.running
    finally:
        bob.close()

    single = Client(await jp_ws_fetch("vimax", "ws", "workflow", wid, headers=as_user("bob")))
    try:
        await single.expect("welcome")
        assert (await single.expect("error"))["code"] == "not_found"
    finally:
        single.close()

    for who in ("ada", "carol"):  # the owner and an admin watch and control
        client = Client(await jp_ws_fetch("vimax", "ws", headers=as_user(who)))
        try:
            await client.expect("welcome")
            subscribed = await client.request({"type": "subscribe", "room": room}, "subscribed")
            assert subscribed["snapshot"]["owner"] == "ada"
            top = subscribed["top"]
            await client.read_until(lambda m, top=top: m.get("seq") == top)
            action = "pause" if who == "ada" else "resume"
            control = {"type": "control", "workflow_id": wid, "action": action}
            answer = await client.request(control, "control_response", skip_events=True)
            assert answer["ok"] is True, answer
        finally:
            client.close()


@owner_only
async def test_only_admins_see_the_hubs_connections(jp_fetch: Any, service: Any) -> None:
    for path in ("vimax/ws/stats", "vimax/ws/client/c1-0"):
        refused = await request(jp_fetch, "GET", path, as_user("bob"))
        assert refused.code == 403
        assert "only admins" in message_of(refused)
    stats = await jp_fetch("vimax/ws/stats", headers=as_user("carol"))
    assert json.loads(stats.body)["connections"] == 0


def test_the_owner_scope_rule() -> None:
    rule = Ownership(server_user="lab", owner_only=True, admin_users=frozenset({"carol"}))
    assert rule.scope("ada") == "ada"
    assert rule.scope("carol") is None
    assert rule.scope("lab") is None
    assert Ownership(server_user="lab").scope("ada") is None  # owner_only off
