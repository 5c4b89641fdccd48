"""Quotas through a real Jupyter server: too many workflows (429, Retry-After), a workflow
too large (422), a full workdir (507, until ``POST /vimax/api/gc``); each answer names the
limit, the figure and what to do, and nothing else is held back. The paged workflow
list, and ``POST /vimax/api/gc``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from vimax_nb.coordinator import TooManyWorkflows
from vimax_nb.protocol import Collection, WorkflowRecord, WorkflowState
from vimax_nb.shared import format_timestamp

from .conftest import Gate, install_toy, post_json, record_of, service_of, wait_finished

S = WorkflowState
DAY = 86400.0
USER = "quota-tester"
# The largest parameters a workflow accepts: 432,000 frames of 4K.
LARGEST = {
    "idea": "A very long film",
    "scenes": 10,
    "shots_per_scene": 24,
    "width": 3840,
    "height": 2160,
    "fps": 60,
    "seconds_per_shot": 30,
}


@pytest.fixture
def jp_server_config(vimax_workdir: Path, tmp_path: Path) -> dict[str, Any]:
    """The extension with small quotas; the database outside the workdir, so that the
    workdir holds only workflows' files."""
    return {
        "ServerApp": {"jpserver_extensions": {"vimax_nb.server": True}},
        "VimaxApp": {
            "workdir": str(vimax_workdir),
            "database": str(tmp_path / "vimax.sqlite3"),
            "max_concurrent_tasks": 2,
            "max_active_workflows_per_user": 2,
            "max_active_workflows": 3,
            "max_workdir_bytes": 1_000_000,
            "server_user": USER,
        },
    }


@pytest.fixture
def toy(jp_serverapp: Any, jp_fetch: Any, jp_asyncio_loop: Any) -> Iterator[Gate]:
    """The toy 'story' pipeline on the server's coordinator; its outline waits for the
    gate, so its workflows stay running until the test opens it."""
    gate = Gate()
    service = service_of(jp_serverapp)
    jp_asyncio_loop.run_until_complete(service.ensure_started())
    install_toy(service.coordinator, gate)
    try:
        yield gate
    finally:
        gate.opened.set()


async def refused(call: Any, code: int) -> tuple[dict[str, Any], Any]:
    """Await ``call``, expect HTTP ``code``; the JSON error body and the headers."""
    with pytest.raises(HTTPClientError) as caught:
        await call
    assert caught.value.code == code, caught.value.response and caught.value.response.body
    assert caught.value.response is not None
    return json.loads(caught.value.response.body), caught.value.response.headers


async def start_story(jp_fetch: Any) -> str:
    response = await post_json(
        jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {"shots": 1}}
    )
    assert response.code == 201
    return record_of(response).id


async def listed_ids(jp_fetch: Any) -> list[str]:
    body = json.loads((await jp_fetch("vimax/api/workflows", params={"limit": 1000})).body)
    return [w["id"] for w in body["workflows"]]


# -- workflows at once ----------------------------------------------------------------


async def test_too_many_workflows_are_429_per_user_then_in_all_and_free_up_when_one_ends(
    jp_fetch: Any, jp_serverapp: Any, toy: Gate
) -> None:
    coordinator = service_of(jp_serverapp).coordinator
    mine = [await start_story(jp_fetch), await start_story(jp_fetch)]

    error, headers = await refused(
        post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story", "params": {}}), 429
    )
    assert headers["Retry-After"] == "30"
    assert error["quota"] == "c.VimaxApp.max_active_workflows_per_user"
    assert (error["limit"], error["figure"], error["retry_after"]) == (2, 3, 30)
    assert error["message"] == (
        f"too many workflows: '{USER}' has 2 queued, running or paused, the most one user "
        "may have (c.VimaxApp.max_active_workflows_per_user = 2). Wait for one to end, "
        "cancel one, or raise c.VimaxApp.max_active_workflows_per_user"
    )
    assert sorted(await listed_ids(jp_fetch)) == sorted(mine)  # the refused one is nowhere

    # Another user is not held back by this one's quota...
    bobs = await coordinator.submit("story", {"shots": 1}, owner="bob")
    assert bobs.state in (S.pending, S.running)
    # ... until the server as a whole is full.
    with pytest.raises(TooManyWorkflows, match="max_active_workflows = 3"):
        await coordinator.submit("story", {"shots": 1}, owner="carol")

    # A paused workflow still counts; a canceled one no longer does.
    await post_json(jp_fetch, "vimax/api/workflows", mine[0], "pause")
    await refused(post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story"}), 429)
    await post_json(jp_fetch, "vimax/api/workflows", mine[0], "cancel")
    await coordinator.submit("story", {"shots": 1}, owner="dave")  # the last place
    error, _ = await refused(
        post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story"}), 429
    )
    assert error["quota"] == "c.VimaxApp.max_active_workflows"
    assert error["message"].startswith(
        "too many workflows: the server has 3 queued, running or paused, the most it takes "
        "(c.VimaxApp.max_active_workflows = 3)"
    )
    await coordinator.control(bobs.id, "cancel")
    admitted = await start_story(jp_fetch)

    # Workflows that end free their places.
    toy.opened.set()
    for wid in (mine[1], admitted):
        await wait_finished(jp_serverapp, wid)
    assert len({await start_story(jp_fetch), await start_story(jp_fetch)}) == 2


# -- a workflow too large ----------------------------------------------------------------


async def test_the_largest_workflow_is_422_with_its_figure_the_limit_and_the_trait(
    jp_fetch: Any, jp_serverapp: Any, toy: Gate
) -> None:
    error, headers = await refused(
        post_json(jp_fetch, "vimax/api/workflows", body={"kind": "idea2video", "params": LARGEST}),
        422,
    )
    assert "Retry-After" not in headers
    assert error["quota"] == "c.VimaxApp.max_workflow_pixels"
    assert (error["figure"], error["limit"]) == (432_000 * 3840 * 2160, 100_000_000_000)
    message = error["message"]
    assert message.startswith(
        "this workflow would render 432,000 frames of 3840x2160: 3,583,180,800,000 pixels "
        "(1,728,000 1080p frames), over the 100,000,000,000 a workflow may render (48,225 "
        "1080p frames; c.VimaxApp.max_workflow_pixels)."
    )
    assert message.endswith("or raise c.VimaxApp.max_workflow_pixels")
    assert await listed_ids(jp_fetch) == []


@pytest.mark.parametrize(
    "params",
    [
        # The README's run (640x360 at 12 fps by default).
        {"idea": "A fox who learns to fly", "scenes": 2, "shots_per_scene": 3},
        # A 1080p film of five minutes at 24 fps: 10 scenes of 10 shots of 3 s.
        {
            "idea": "A lighthouse keeper befriends a whale",
            "scenes": 10,
            "shots_per_scene": 10,
            "seconds_per_shot": 3,
            "width": 1920,
            "height": 1080,
            "fps": 24,
        },
    ],
    ids=["readme", "1080p-5min"],
)
async def test_normal_films_are_admitted(
    jp_fetch: Any, jp_serverapp: Any, params: dict[str, Any]
) -> None:
    created = await post_json(
        jp_fetch, "vimax/api/workflows", body={"kind": "idea2video", "params": params}
    )
    assert created.code == 201
    wid = record_of(created).id
    await post_json(jp_fetch, "vimax/api/workflows", wid, "cancel")  # admitted is enough
    await wait_finished(jp_serverapp, wid)


# -- the disk ----------------------------------------------------------------------------


async def test_a_full_workdir_is_507_naming_gc_and_gc_makes_room(
    jp_fetch: Any, jp_serverapp: Any, toy: Gate, vimax_workdir: Path
) -> None:
    toy.opened.set()
    done = await start_story(jp_fetch)
    await wait_finished(jp_serverapp, done)
    (vimax_workdir / done).mkdir(exist_ok=True)
    (vimax_workdir / done / "big.bin").write_bytes(b"\0" * 1_500_000)

    error, _ = await refused(
        post_json(jp_fetch, "vimax/api/workflows", body={"kind": "story"}), 507
    )
    assert error["quota"] == "c.VimaxApp.max_workdir_bytes"
    assert error["figure"] >= 1_500_000
    assert error["limit"] == 1_000_000
    assert error["message"].startswith(f"the workdir {vimax_workdir} holds 1.5 MB (1,500,")
    assert "at or over its quota of 1.0 MB (c.VimaxApp.max_workdir_bytes)" in error["message"]
    assert "Run `vimax-nb gc` (or POST /vimax/api/gc)" in error["message"]
    assert await listed_ids(jp_fetch) == [done]

    collected = Collection.model_validate_json(
        (await post_json(jp_fetch, "vimax/api/gc", body={"older_than": 0})).body
    )
    assert [w.id for w in collected.workflows] == [done]
    assert collected.bytes >= 1_500_000
    assert not (vimax_workdir / done).exists()
    await start_story(jp_fetch)


# -- the paged list ------------------------------------------------------------------------


async def test_pages_list_250_workflows_newest_first_without_a_gap_or_a_repeat(
    jp_fetch: Any, jp_serverapp: Any, toy: Gate
) -> None:
    store = service_of(jp_serverapp).store
    base = time.time() - 1000
    for n in range(249):
        # Pairs created in the same millisecond: the id breaks the tie.
        created = format_timestamp(base + n // 2)
        await store.workflows.save(stored(f"old{n:03d}", created))
    live = await start_story(jp_fetch)  # the newest, and live

    first = json.loads((await jp_fetch("vimax/api/workflows")).body)
    assert len(first["workflows"]) == 100  # the default page
    assert first["total"] == 250
    assert first["workflows"][0]["id"] == live
    assert first["workflows"][0]["state"] in ("pending", "running")

    for limit in (1, 7, 100, 1000):
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor is not None:
                params["before"] = cursor
            page = json.loads((await jp_fetch("vimax/api/workflows", params=params)).body)
            assert len(page["workflows"]) <= limit
            seen += [w["id"] for w in page["workflows"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 250, limit
        expected = [live] + [f"old{n:03d}" for n in reversed(range(249))]
        assert seen == expected, limit

    for params, problem in (
        ({"limit": 0}, "limit must be an integer from 1 to 1000 (got '0')"),
        ({"limit": 1001}, "limit must be an integer from 1 to 1000 (got '1001')"),
        ({"before": "yesterday"}, "before: 'yesterday' is not a cursor of this listing"),
    ):
        error, _ = await refused(jp_fetch("vimax/api/workflows", params=params), 400)
        assert error["message"].startswith(problem)


def stored(ident: str, created_at: str, state: S = S.completed, **fields: Any) -> WorkflowRecord:
    return WorkflowRecord(
        id=ident,
        kind="story",
        params={"shots": 1},
        owner=USER,
        state=state,
        progress=1.0 if state == S.completed else 0.5,
        created_at=created_at,
        updated_at=created_at,
        finished_at=created_at if state in (S.completed, S.failed, S.canceled) else None,
        **fields,
    )


# -- gc -------------------------------------------------------------------------------------


async def test_gc_dry_run_then_removes_only_old_finished_workflows_and_their_files(
    jp_fetch: Any, jp_serverapp: Any, toy: Gate, vimax_workdir: Path
) -> None:
    store = service_of(jp_serverapp).store
    long_ago = format_timestamp(time.time() - 30 * DAY)
    for ident, state in (
        ("oldok", S.completed),
        ("oldfail", S.failed),
        ("oldstop", S.canceled),
        ("oldcut", S.interrupted),  # can be resumed: kept
    ):
        await store.workflows.save(stored(ident, long_ago, state))
        (vimax_workdir / ident / "shots").mkdir(parents=True)
        (vimax_workdir / ident / "shots" / "0.png").write_bytes(b"x" * 1000)
    toy.opened.set()
    recent = await start_story(jp_fetch)
    await wait_finished(jp_serverapp, recent)
    toy.opened.clear()
    running = await start_story(jp_fetch)
    (vimax_workdir / running).mkdir(exist_ok=True)
    (vimax_workdir / running / "story.txt").write_text("in the making")

    dry = Collection.model_validate_json(
        (await post_json(jp_fetch, "vimax/api/gc", body={"dry_run": True})).body
    )
    assert dry.dry_run
    assert dry.older_than == 7 * DAY  # c.VimaxApp.retention_days
    assert [w.id for w in dry.workflows] == ["oldfail", "oldok", "oldstop"]
    assert dry.bytes == 3000
    assert {w.id: w.state for w in dry.workflows}["oldfail"] == S.failed
    assert all((vimax_workdir / w.id).is_dir() for w in dry.workflows)
    assert sorted(await listed_ids(jp_fetch)) == sorted(
        ["oldok", "oldfail", "oldstop", "oldcut", recent, running]
    )

    done = Collection.model_validate_json((await post_json(jp_fetch, "vimax/api/gc")).body)
    assert not done.dry_run
    assert [w.id for w in done.workflows] == ["oldfail", "oldok", "oldstop"]
    assert done.bytes == 3000
    assert done.failed == []
    for ident in ("oldok", "oldfail", "oldstop"):
        assert not (vimax_workdir / ident).exists()
        await refused(jp_fetch("vimax/api/workflows", ident), 404)
    assert sorted(await listed_ids(jp_fetch)) == sorted(["oldcut", recent, running])

    # Everything finished, however recent; never the running or the interrupted one.
    now = Collection.model_validate_json(
        (await post_json(jp_fetch, "vimax/api/gc", body={"older_than": 0})).body
    )
    assert [w.id for w in now.workflows] == [recent]
    assert sorted(await listed_ids(jp_fetch)) == sorted(["oldcut", running])
    assert (vimax_workdir / running / "story.txt").read_text() == "in the making"
    assert (vimax_workdir / "oldcut" / "shots" / "0.png").is_file()


async def test_gc_refuses_what_it_does_not_take(jp_fetch: Any, toy: Gate) -> None:
    for body, problem in (
        ({"older_than": -1}, "'older_than' must be a number of seconds, 0 or more (got -1)"),
        ({"older_than": "7d"}, "'older_than' must be a number of seconds"),
        ({"older_than": True}, "'older_than' must be a number of seconds"),
        ({"dry_run": "yes"}, "'dry_run' must be true or false (got \"yes\")"),
        ({"everything": True}, "unexpected field(s) 'everything'"),
    ):
        error, _ = await refused(post_json(jp_fetch, "vimax/api/gc", body=body), 400)
        assert error["message"].startswith(problem), error
    await refused(
        jp_fetch("vimax/api/gc", method="POST", body="{}", headers={"Authorization": ""}), 403
    )
