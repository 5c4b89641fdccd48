"""The REST surface of the extension, through a real Jupyter server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import AllowAllAuthorizer
from jupyter_server.utils import url_path_join
from tornado.httpclient import HTTPClientError, HTTPResponse

from vimax_nb.protocol import (
    AgentRecord,
    CoordinatorMetricsEvent,
    WorkflowState,
    parse_server_message,
    workflow_room,
)

from .conftest import (
    Gate,
    install_toy,
    post_json,
    record_of,
    service_of,
    small_params,
    wait_finished,
)

S = WorkflowState
IDEA = "A lighthouse keeper befriends a whale"

REST_ROUTES = [
    ("GET", "vimax/api/workflows"),
    ("POST", "vimax/api/workflows"),
    ("GET", "vimax/api/workflows/abc"),
    ("POST", "vimax/api/workflows/abc/pause"),
    ("POST", "vimax/api/workflows/abc/resume"),
    ("POST", "vimax/api/workflows/abc/cancel"),
    ("GET", "vimax/api/workflows/abc/events"),
    ("GET", "vimax/api/workflows/abc/artifacts/final_video.mp4"),
    ("GET", "vimax/api/agents"),
    ("GET", "vimax/api/agents/abc"),
    ("GET", "vimax/api/coordinator"),
    ("GET", "vimax/ws/stats"),
    ("GET", "vimax/ws/client/abc"),
]


async def fails(call: Any, code: int) -> dict[str, Any]:
    """Await ``call``, expect HTTP ``code``; return the JSON error body."""
    with pytest.raises(HTTPClientError) as caught:
        await call
    assert caught.value.code == code, caught.value.response and caught.value.response.body
    assert caught.value.response is not None
    body: dict[str, Any] = json.loads(caught.value.response.body)
    assert isinstance(body.get("message"), str), body
    assert body["message"], body
    return body


def body_of(response: HTTPResponse) -> Any:
    return json.loads(response.body)


async def raw_get(client: Any, base_url: str, path: str, **headers: str) -> HTTPResponse:
    """GET ``path`` exactly as written (no escaping), never raising on an error status."""
    response: HTTPResponse = await client.fetch(
        url_path_join(base_url, path), headers=headers, raise_error=False
    )
    return response


# -- the toy pipeline, for controls that must not race the workflow ------------------


@pytest.fixture
def toy(jp_serverapp: Any, jp_fetch: Any, jp_asyncio_loop: Any) -> Iterator[Gate]:
    """Register the toy 'story' pipeline on the server's coordinator; its outline
    task waits for the returned gate."""
    gate = Gate()
    service = service_of(jp_serverapp)
    jp_asyncio_loop.run_until_complete(service.ensure_started())
    coordinator = service.coordinator
    install_toy(coordinator, gate)
    try:
        yield gate
    finally:
        gate.opened.set()


# -- authentication and authorization -----------------------------------------------


@pytest.mark.parametrize(("method", "path"), REST_ROUTES)
async def test_every_route_refuses_a_request_without_a_token(
    jp_fetch: Any, method: str, path: str
) -> None:
    body = None if method == "GET" else json.dumps({"kind": "idea2video"})
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(path, method=method, body=body, headers={"Authorization": ""})
    assert caught.value.code == 403


@pytest.mark.parametrize(("method", "path"), REST_ROUTES)
async def test_every_route_asks_the_authorizer_about_the_vimax_resource(
    jp_fetch: Any, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch, method: str, path: str
) -> None:
    asked: list[tuple[str, str]] = []

    class Deny(AllowAllAuthorizer):  # type: ignore[misc]
        def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
            asked.append((action, resource))
            return resource != "vimax"

    settings = jp_serverapp.web_app.settings
    monkeypatch.setitem(
        settings, "authorizer", Deny(identity_provider=settings["identity_provider"])
    )
    body = None if method == "GET" else json.dumps({"kind": "idea2video"})
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(path, method=method, body=body)
    assert caught.value.code == 403
    assert asked == [("read" if method == "GET" else "write", "vimax")]


# -- starting workflows ---------------------------------------------------------------


async def test_post_starts_a_workflow_and_answers_201_with_its_record(
    jp_fetch: Any, jp_serverapp: Any, jp_base_url: str
) -> None:
    params = small_params(idea=IDEA, style="watercolor")
    response = await post_json(
        jp_fetch, "vimax/api/workflows", body={"kind": "idea2video", "params": params}
    )
    assert response.code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    record = record_of(response)
    assert record.kind == "idea2video"
    assert record.params["idea"] == IDEA
    assert record.params["style"] == "watercolor"
    assert record.params["shots_per_scene"] == 2
    assert record.state in (S.running, S.pending)
    assert isinstance(record.owner, str)
    assert record.owner
    assert response.headers["Location"] == url_path_join(
        jp_base_url, "vimax/api/workflows", record.id
    )
    # the Location answers with the same workflow
    fetched = record_of(await jp_fetch("vimax/api/workflows", record.id))
    assert fetched.id == record.id
    await wait_finished(jp_serverapp, record.id)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"params": {"idea": "x"}}', "'kind' is required"),
        (b'{"kind": 7}', "'kind' is required"),
        (b'{"kind": "idea2video", "params": [1]}', "'params' must be a JSON object"),
        (b'{"kind": "idea2video", "params": {"idea": "x"}, "extra": 1}', "'extra'"),
    ],
)
async def test_post_refuses_a_malformed_body_with_400(
    jp_fetch: Any, body: bytes, words: str
) -> None:
    error = await fails(jp_fetch("vimax/api/workflows", method="POST", body=body), 400)
    assert words in error["message"]


async def test_post_refuses_an_unknown_kind_listing_the_known_ones(jp_fetch: Any) -> None:
    error = await fails(
        post_json(jp_fetch, "vimax/api/workflows", body={"kind": "text2opera", "params": {}}), 400
    )
    assert "text2opera" in error["message"]
    assert "idea2video" in error["message"]
    assert "script2video" in error["message"]
    assert {"idea2video", "script2video"} <= set(error["known_kinds"])


async def test_post_names_each_invalid_parameter(jp_fetch: Any) -> None:
    params = small_params(idea=IDEA, shots_per_scene=0, width=161, colour="red")
    error = await fails(
        post_json(jp_fetch, "vimax/api/workflows", body={"kind": "idea2video", "params": params}),
        400,
    )
    problems = {e["field"]: e["problem"] for e in error["errors"]}
    assert set(problems) == {"shots_per_scene", "width", "colour"}
    assert "0" in problems["shots_per_scene"]
    assert "1" in problems["shots_per_scene"]
    assert "161" in problems["width"]
    assert "not a parameter" in problems["colour"]
    assert "shots_per_scene" in error["message"]


async def test_post_says_which_required_parameter_is_missing(jp_fetch: Any) -> None:
    error = await fails(
        post_json(
            jp_fetch, "vimax/api/workflows", body={"kind": "script2video", "params": small_params()}
        ),
        400,
    )
    assert [e["field"] for e in error["errors"]] == ["script"]
    assert "required" in error["errors"][0]["problem"]


async def test_post_reports_a_pipelines_own_parameter_error(jp_fetch: Any, toy: Gate) -> None:
    error = await fails(
        post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {"shots": 0}}),
        400,
    )
    assert "shots must be a whole number" in error["message"]


async def test_post_takes_a_priority_and_the_record_keeps_it(jp_fetch: Any, toy: Gate) -> None:
    toy.opened.set()
    body = {"kind": "story", "params": {"shots": 1}, "priority": 7}
    record = record_of(await post_json(jp_fetch, "vimax/api/workflows", body=body))
    assert record.priority == 7
    assert record_of(await jp_fetch("vimax/api/workflows", record.id)).priority == 7
    listed = body_of(await jp_fetch("vimax/api/workflows"))["workflows"]
    assert [w["priority"] for w in listed] == [7]
    default = {"kind": "story", "params": {"shots": 1}}
    assert record_of(await post_json(jp_fetch, "vimax/api/workflows", body=default)).priority == 0


@pytest.mark.parametrize(
    ("priority", "got"),
    [(11, "11"), (-11, "-11"), ("high", '"high"'), (True, "true"), (1.5, "1.5")],
)
async def test_post_refuses_a_priority_that_is_not_a_whole_number_from_minus_10_to_10(
    jp_fetch: Any, toy: Gate, priority: Any, got: str
) -> None:
    body = {"kind": "story", "params": {"shots": 1}, "priority": priority}
    error = await fails(post_json(jp_fetch, "vimax/api/workflows", body=body), 400)
    assert "'priority' must be a whole number from -10 to 10" in error["message"]
    assert f"(got {got})" in error["message"]
    assert body_of(await jp_fetch("vimax/api/workflows"))["workflows"] == []


async def test_post_names_the_fields_it_takes_when_it_gets_another(jp_fetch: Any) -> None:
    body = {"kind": "idea2video", "params": {"idea": "x"}, "urgency": 3}
    error = await fails(post_json(jp_fetch, "vimax/api/workflows", body=body), 400)
    assert "'urgency'" in error["message"]
    assert all(name in error["message"] for name in ("'kind'", "'params'", "'priority'"))


# -- reading workflows ----------------------------------------------------------------


async def test_workflows_are_listed_and_fetched_by_id(jp_fetch: Any, toy: Gate) -> None:
    empty = body_of(await jp_fetch("vimax/api/workflows"))
    assert empty == {"workflows": [], "next": None, "total": 0}
    gate = toy
    gate.opened.set()
    made = []
    for shots in (1, 2):
        response = await post_json(
            jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {"shots": shots}}
        )
        made.append(record_of(response))
    ids = [r.id for r in made]
    listed = body_of(await jp_fetch("vimax/api/workflows"))["workflows"]
    newest_first = sorted(made, key=lambda r: (r.created_at, r.id), reverse=True)
    assert [w["id"] for w in listed] == [r.id for r in newest_first]
    one = body_of(await jp_fetch("vimax/api/workflows", ids[1]))
    assert one["id"] == ids[1]
    assert one["params"] == {"shots": 2}


async def test_an_unknown_workflow_is_404(jp_fetch: Any) -> None:
    error = await fails(jp_fetch("vimax/api/workflows", "nosuchflow"), 404)
    assert "nosuchflow" in error["message"]


# -- controls -------------------------------------------------------------------------


async def test_pause_resume_cancel_and_409_when_the_state_forbids(
    jp_fetch: Any, jp_serverapp: Any, toy: Gate
) -> None:
    created = await post_json(
        jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {"shots": 1}}
    )
    wid = record_of(created).id
    url = f"vimax/api/workflows/{wid}"

    paused = await post_json(jp_fetch, url, "pause")
    assert paused.code == 200
    assert record_of(paused).state == S.paused
    error = await fails(post_json(jp_fetch, url, "pause"), 409)
    assert error["state"] == "paused"

    resumed = await post_json(jp_fetch, url, "resume")
    assert record_of(resumed).state == S.running
    error = await fails(post_json(jp_fetch, url, "resume"), 409)
    assert error["state"] == "running"

    canceled = await post_json(jp_fetch, url, "cancel")
    assert record_of(canceled).state == S.canceled
    for action in ("pause", "resume", "cancel"):
        error = await fails(post_json(jp_fetch, url, action), 409)
        assert error["state"] == "canceled"
        assert wid in error["message"]

    await wait_finished(jp_serverapp, wid)
    assert record_of(await jp_fetch(url)).state == S.canceled


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
async def test_controlling_an_unknown_workflow_is_404(jp_fetch: Any, action: str) -> None:
    error = await fails(post_json(jp_fetch, "vimax/api/workflows/nosuchflow", action), 404)
    assert "nosuchflow" in error["message"]


async def test_an_unknown_action_is_not_a_route(jp_fetch: Any, toy: Gate) -> None:
    wid = record_of(
        await post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {}})
    ).id
    with pytest.raises(HTTPClientError) as caught:
        await post_json(jp_fetch, "vimax/api/workflows", wid, "explode")
    assert caught.value.code == 404


# -- events ---------------------------------------------------------------------------


async def test_events_page_through_the_stored_frames_byte_for_byte(
    jp_fetch: Any, jp_serverapp: Any, toy: Gate
) -> None:
    toy.opened.set()
    wid = record_of(
        await post_json(
            jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {"shots": 2}}
        )
    ).id
    await wait_finished(jp_serverapp, wid)
    log = service_of(jp_serverapp).store.events
    stored = await log.read(workflow_room(wid))
    assert len(stored) > 4

    whole = await jp_fetch("vimax/api/workflows", wid, "events")
    data = body_of(whole)
    assert data["workflow_id"] == wid
    assert data["epoch"] == log.epoch
    assert data["top"] == stored[-1].seq == len(stored)
    assert data["floor"] == 0
    assert b",".join(e.frame for e in stored) in whole.body
    assert [e["seq"] for e in data["events"]] == list(range(1, len(stored) + 1))
    assert data["events"][-1]["state"] == "completed"

    first = body_of(await jp_fetch("vimax/api/workflows", wid, "events", params={"limit": 2}))
    assert [e["seq"] for e in first["events"]] == [1, 2]
    assert first["top"] == len(stored)
    rest = body_of(
        await jp_fetch("vimax/api/workflows", wid, "events", params={"after": 2, "limit": 10_000})
    )
    assert [e["seq"] for e in rest["events"]] == list(range(3, len(stored) + 1))
    beyond = body_of(
        await jp_fetch("vimax/api/workflows", wid, "events", params={"after": len(stored)})
    )
    assert beyond["events"] == []


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"after": "-1"}, "after"),
        ({"after": "x"}, "after"),
        ({"after": "1.5"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"limit": "many"}, "limit"),
    ],
)
async def test_events_refuse_a_bad_after_or_limit(
    jp_fetch: Any, toy: Gate, params: dict[str, str], name: str
) -> None:
    wid = record_of(
        await post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {}})
    ).id
    error = await fails(jp_fetch("vimax/api/workflows", wid, "events", params=params), 400)
    assert error["message"].startswith(name)


async def test_events_of_an_unknown_workflow_are_404(jp_fetch: Any) -> None:
    await fails(jp_fetch("vimax/api/workflows/nosuchflow/events"), 404)


# -- a whole Idea2Video run, its events and its files ---------------------------------


async def test_idea2video_runs_to_completed_through_rest(
    jp_fetch: Any,
    jp_serverapp: Any,
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    vimax_workdir: Path,
    tmp_path: Path,
) -> None:
    created = await post_json(
        jp_fetch,
        "vimax/api/workflows",
        body={"kind": "idea2video", "params": small_params(idea=IDEA)},
    )
    wid = record_of(created).id
    await wait_finished(jp_serverapp, wid)
    done = record_of(await jp_fetch("vimax/api/workflows", wid))
    assert done.state == S.completed, done.message
    assert done.progress == 1.0

    # events: seq 1..n without a gap, the last progress says completed
    data = body_of(await jp_fetch("vimax/api/workflows", wid, "events"))
    events = [parse_server_message(json.dumps(e)) for e in data["events"]]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # type: ignore[union-attr]
    assert data["top"] == len(events)
    progress = [e for e in events if e.type == "progress"]
    assert progress[-1].state == S.completed  # type: ignore[union-attr]
    artifacts = {e.name: e for e in events if e.type == "artifact"}  # type: ignore[union-attr]
    assert "final video" in artifacts

    # the final video, as its artifact event links it
    final_url = artifacts["final video"].url  # type: ignore[union-attr]
    # under the server's base_url, fetched as a browser would, from the server's root
    assert final_url == f"{jp_base_url}vimax/api/workflows/{wid}/artifacts/final_video.mp4"
    video = await http_server_client.fetch(final_url, headers=jp_auth_header)
    assert video.headers["Content-Type"] == "video/mp4"
    assert video.body[4:8] == b"ftyp"
    on_disk = (vimax_workdir / wid / "final_video.mp4").read_bytes()
    assert video.body == on_disk
    assert int(video.headers["Content-Length"]) == len(on_disk)

    # a byte range of it
    part = await http_server_client.fetch(
        final_url, headers={**jp_auth_header, "Range": "bytes=4-7"}
    )
    assert part.code == 206
    assert part.body == b"ftyp"
    assert part.headers["Content-Range"] == f"bytes 4-7/{len(on_disk)}"
    await fails(
        http_server_client.fetch(final_url, headers={**jp_auth_header, "Range": "bytes=99999999-"}),
        416,
    )

    # an image
    image = next(e for e in artifacts.values() if e.kind == "image")  # type: ignore[union-attr]
    png = await http_server_client.fetch(image.url, headers=jp_auth_header)  # type: ignore[union-attr]
    assert png.headers["Content-Type"] == "image/png"
    assert png.body.startswith(b"\x89PNG\r\n\x1a\n")

    # nothing outside the workflow's folder
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (vimax_workdir / wid / "escape.txt").symlink_to(secret)
    (vimax_workdir / wid / "inside.txt").symlink_to(vimax_workdir / wid / "final_video.mp4")
    auth = jp_auth_header
    base = f"vimax/api/workflows/{wid}/artifacts/"
    refused = {
        base + "../vimax.sqlite3": 400,
        base + "..%2Fvimax.sqlite3": 400,
        base + "%2E%2E/%2E%2E/secret.txt": 400,
        base + "shots/../../vimax.sqlite3": 400,
        base + "%2Fetc%2Fpasswd": 400,
        base + "/etc/passwd": 400,
        base + "escape.txt": 404,
        base + "nothing.png": 404,
        base + "shots": 404,
        f"vimax/api/workflows/..%2F{wid}/artifacts/final_video.mp4": 404,
        "vimax/api/workflows/nosuchflow/artifacts/final_video.mp4": 404,
    }
    for path, code in refused.items():
        response = await raw_get(http_server_client, jp_base_url, path, **auth)
        assert response.code == code, (path, response.code, response.body)
        assert b"not yours" not in response.body
        assert b"SQLite" not in response.body
        assert json.loads(response.body)["message"]
    # a symlink that stays inside the folder is fine
    inside = await jp_fetch(base + "inside.txt")
    assert inside.body == on_disk


async def test_artifacts_of_unknown_types_are_downloads_never_pages(
    jp_fetch: Any, toy: Gate, vimax_workdir: Path
) -> None:
    wid = record_of(
        await post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {}})
    ).id
    folder = vimax_workdir / wid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "page.html").write_text("<script>alert(1)</script>")
    (folder / "notes.txt").write_text("hello")
    (folder / "data.json").write_text('{"a": 1}')
    page = await jp_fetch("vimax/api/workflows", wid, "artifacts", "page.html")
    assert page.headers["Content-Type"] == "application/octet-stream"
    assert page.headers["Content-Disposition"].startswith("attachment")
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    notes = await jp_fetch("vimax/api/workflows", wid, "artifacts", "notes.txt")
    assert notes.headers["Content-Type"].startswith("text/plain")
    assert notes.body == b"hello"
    data = await jp_fetch("vimax/api/workflows", wid, "artifacts", "data.json")
    assert data.headers["Content-Type"] == "application/json"
    assert json.loads(data.body) == {"a": 1}


async def test_a_big_artifact_is_sent_whole(jp_fetch: Any, toy: Gate, vimax_workdir: Path) -> None:
    wid = record_of(
        await post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {}})
    ).id
    folder = vimax_workdir / wid / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    blob = bytes(range(256)) * (5 * 4096 + 3)  # about 5 MB, not a multiple of the chunk
    (folder / "big.mp4").write_bytes(blob)
    response = await jp_fetch(
        "vimax/api/workflows", wid, "artifacts", "shots", "big.mp4", request_timeout=60
    )
    assert response.body == blob


# -- agents, the coordinator and the hub ----------------------------------------------


async def test_agents_are_listed_and_fetched_by_name(jp_fetch: Any) -> None:
    agents = [
        AgentRecord.model_validate(a) for a in body_of(await jp_fetch("vimax/api/agents"))["agents"]
    ]
    assert agents
    first = agents[0]
    one = AgentRecord.model_validate(body_of(await jp_fetch("vimax/api/agents", first.name)))
    assert one.name == first.name
    assert one.capabilities == first.capabilities
    error = await fails(jp_fetch("vimax/api/agents/nobody"), 404)
    assert "nobody" in error["message"]
    assert first.name in error["message"]


async def test_coordinator_metrics(jp_fetch: Any, jp_serverapp: Any, toy: Gate) -> None:
    toy.opened.set()
    before = body_of(await jp_fetch("vimax/api/coordinator"))
    metrics = CoordinatorMetricsEvent.model_validate(before)
    assert not {"room", "seq", "timestamp"} & set(before)
    assert metrics.registered_agents == len(service_of(jp_serverapp).coordinator.agents)
    assert metrics.registered_agents >= 3
    wid = record_of(
        await post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {}})
    ).id
    await wait_finished(jp_serverapp, wid)
    after = CoordinatorMetricsEvent.model_validate(body_of(await jp_fetch("vimax/api/coordinator")))
    assert after.total_workflows == metrics.total_workflows + 1
    assert after.active_workflows == 0


async def test_hub_stats_and_client_info(jp_fetch: Any, jp_ws_fetch: Any) -> None:
    stats = body_of(await jp_fetch("vimax/ws/stats"))
    assert stats["connections"] == 0
    error = await fails(jp_fetch("vimax/ws/client/nobody"), 404)
    assert "nobody" in error["message"]

    ws = await jp_ws_fetch("vimax", "ws")
    try:
        welcome = json.loads(await ws.read_message())
        assert welcome["type"] == "welcome"
        client_id = welcome["client_id"]
        stats = body_of(await jp_fetch("vimax/ws/stats"))
        assert stats["connections"] == 1
        info = body_of(await jp_fetch("vimax/ws/client", client_id))
        assert info
        assert client_id in json.dumps(info)
    finally:
        ws.close()
