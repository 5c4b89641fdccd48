"""``vimax-nb gc`` (dry run, removal, what it keeps, failures, no server) and ``vimax-nb
ls`` over a paged list, against a real Jupyter server with the extension.

The server runs on the test's loop; the command blocks, so it runs on a thread.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.cli import main
from vimax_nb.client import Client, VimaxError, discovery
from vimax_nb.protocol import Collection, WorkflowRecord, WorkflowState
from vimax_nb.shared import format_timestamp
from vimax_nb.store import Store

from ..server.conftest import (
    Gate,
    install_toy,
    service_of,
    wait_finished,
)

S = WorkflowState
DAY = 86400.0


@pytest.fixture
def vimax_workdir(tmp_path: Path) -> Path:
    """Where the extension puts each workflow's folder (its real path)."""
    return (tmp_path / "vimax-work").resolve()


@pytest.fixture
def jp_server_config(vimax_workdir: Path, tmp_path: Path) -> dict[str, Any]:
    """The extension with a 1 MB workdir quota, its database outside the workdir."""
    return {
        "ServerApp": {"jpserver_extensions": {"vimax_nb.server": True}},
        "VimaxApp": {
            "workdir": str(vimax_workdir),
            "database": str(tmp_path / "vimax.sqlite3"),
            "max_concurrent_tasks": 2,
            "max_workdir_bytes": 1_000_000,
        },
    }


@pytest.fixture
def server(
    fresh: Path, jp_serverapp: Any, jp_fetch: Any, jp_http_port: int, jp_base_url: str
) -> list[str]:
    """``--url URL --token TOKEN`` of the test's server (from an empty folder)."""
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    return ["--url", url, "--token", jp_serverapp.identity_provider.token]


@pytest.fixture
def toy(jp_serverapp: Any, server: list[str], jp_asyncio_loop: Any) -> Iterator[Gate]:
    """The toy 'story' pipeline; its workflows run until the gate opens."""
    gate = Gate()
    service = service_of(jp_serverapp)
    jp_asyncio_loop.run_until_complete(service.ensure_started())
    install_toy(service.coordinator, gate)
    try:
        yield gate
    finally:
        gate.opened.set()


async def vimax_nb(*argv: str) -> int:
    """Run the command on a thread, as a terminal would, while the server's loop runs."""
    return await asyncio.to_thread(main, list(argv))


def stored(ident: str, state: S, ended: float, **fields: Any) -> WorkflowRecord:
    at = format_timestamp(ended)
    return WorkflowRecord(
        id=ident,
        kind="story",
        params={"shots": 1},
        state=state,
        progress=1.0,
        created_at=at,
        updated_at=at,
        finished_at=at if state in (S.completed, S.failed, S.canceled) else None,
        **fields,
    )


async def seed(store: Store, workdir: Path, ident: str, state: S, days_ago: float) -> None:
    """A stored workflow that ended ``days_ago``, with 1000 bytes of files."""
    await store.workflows.save(stored(ident, state, time.time() - days_ago * DAY))
    (workdir / ident / "shots").mkdir(parents=True)
    (workdir / ident / "shots" / "0.png").write_bytes(b"x" * 1000)


async def start_story(client: Client) -> str:
    run = await asyncio.to_thread(client.submit, "story", shots=1)
    return run.id


async def test_gc_dry_run_lists_what_would_go_then_gc_removes_it_and_keeps_the_rest(
    server: list[str],
    toy: Gate,
    jp_serverapp: Any,
    vimax_workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = service_of(jp_serverapp).store
    await seed(store, vimax_workdir, "oldone", S.completed, 30)
    await seed(store, vimax_workdir, "oldtwo", S.failed, 8)
    await seed(store, vimax_workdir, "oldcut", S.interrupted, 30)
    await seed(store, vimax_workdir, "fresh1", S.completed, 1)
    toy.opened.clear()
    client = Client(server[1], server[3])
    running = await start_story(client)

    assert await vimax_nb("gc", "--dry-run", *server) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "kind", "state", "ended", "size"]
    assert [line.split()[:3] for line in lines[1:3]] == [
        ["oldone", "story", "completed"],
        ["oldtwo", "story", "failed"],
    ]
    assert lines[1].split()[-2:] == ["1.0", "kB"]
    assert lines[3:] == [
        "would remove 2 workflows that ended more than 7 days ago, freeing 2.0 kB; run "
        "without --dry-run to remove them"
    ]
    assert (vimax_workdir / "oldone" / "shots" / "0.png").is_file()
    assert await store.workflows.get("oldone") is not None

    assert await vimax_nb("gc", *server) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (
        "removed 2 workflows that ended more than 7 days ago, freeing 2.0 kB"
    )
    for gone in ("oldone", "oldtwo"):
        assert not (vimax_workdir / gone).exists()
        assert await store.workflows.get(gone) is None
    for kept in ("oldcut", "fresh1", running):
        assert await store.workflows.get(kept) is not None
    assert (vimax_workdir / "fresh1" / "shots" / "0.png").is_file()

    assert await vimax_nb("gc", "--older-than", "12h", "--json", *server) == 0
    done = Collection.model_validate(json.loads(capsys.readouterr().out))
    assert (done.dry_run, done.older_than, [w.id for w in done.workflows]) == (
        False,
        12 * 3600,
        ["fresh1"],
    )
    assert done.bytes == 1000

    assert await vimax_nb("gc", "--older-than", "0", *server) == 0
    assert capsys.readouterr().out == (
        "nothing to remove: no completed, failed or canceled workflow ended more than 0 "
        "seconds ago\n"
    )
    states = {w.id: w.state for w in await asyncio.to_thread(client.workflows)}
    assert states == {"oldcut": S.interrupted, running: states[running]}
    assert states[running] in (S.pending, S.running)
    await asyncio.to_thread(client.close)


async def test_a_full_workdir_refuses_new_workflows_until_gc(
    server: list[str],
    toy: Gate,
    jp_serverapp: Any,
    vimax_workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    toy.opened.set()
    client = Client(server[1], server[3])
    done = await start_story(client)
    await wait_finished(jp_serverapp, done)
    (vimax_workdir / done).mkdir(exist_ok=True)
    (vimax_workdir / done / "final_video.mp4").write_bytes(b"\0" * 2_000_000)

    with pytest.raises(VimaxError) as refused:
        await start_story(client)
    assert refused.value.status == 507
    assert "Run `vimax-nb gc`" in refused.value.message

    assert await vimax_nb("gc", "--older-than", "0", *server) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "removed 1 workflow that ended more than 0 seconds ago, freeing 2.0 MB"
    )
    assert await start_story(client) != done
    await asyncio.to_thread(client.close)


async def test_a_workflow_gc_cannot_remove_is_kept_named_and_exits_1(
    server: list[str],
    jp_serverapp: Any,
    vimax_workdir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await service_of(jp_serverapp).ensure_started()
    store = service_of(jp_serverapp).store
    # Not a folder name in the workdir: gc touches nothing outside it.
    await store.workflows.save(stored("../outside", S.completed, time.time() - 30 * DAY))
    (vimax_workdir.parent / "outside").mkdir()
    assert await vimax_nb("gc", *server) == 1
    captured = capsys.readouterr()
    assert captured.out == (
        "nothing to remove: no completed, failed or canceled workflow ended more than 7 days ago\n"
    )
    assert captured.err == (
        f"vimax-nb: could not remove workflow ../outside: '../outside' is not a folder name "
        f"in {vimax_workdir}\n"
    )
    assert await store.workflows.get("../outside") is not None
    assert (vimax_workdir.parent / "outside").is_dir()


@pytest.mark.parametrize("age", ["soon", "-1d", "7y", "inf"])
def test_an_age_gc_does_not_take_exits_2_saying_what_it_takes(
    fresh: Path, age: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as leaving:
        main(["gc", f"--older-than={age}"])
    assert leaving.value.code == 2
    assert "give an age such as 7d, 12h, 30m, 90s or 2w" in capsys.readouterr().err


def test_gc_without_a_server_or_workflows_here_starts_nothing(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gc"]) == 3
    assert "no vimax-nb server is running for" in capsys.readouterr().err
    assert not (fresh / "vimax-work").exists()


async def test_gc_without_a_server_goes_through_a_private_one_for_this_folder(
    fresh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = fresh / "vimax-work"
    store = await Store.open(workdir / "vimax.sqlite3")
    try:
        await seed(store, workdir, "ancient", S.canceled, 60)
    finally:
        await store.close()
    assert await vimax_nb("gc", "--verbose") == 0
    captured = capsys.readouterr()
    assert "(private server started for this command)" in captured.err
    assert captured.out.splitlines()[-1] == (
        "removed 1 workflow that ended more than 7 days ago, freeing 1.0 kB"
    )
    assert not (workdir / "ancient").exists()
    assert discovery.private_server() is None  # stopped when the command ended


# -- ls over pages ---------------------------------------------------------------------


async def test_ls_lists_all_250_workflows_or_the_newest_and_how_many_more(
    server: list[str], jp_serverapp: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    service = service_of(jp_serverapp)
    await service.ensure_started()
    base = time.time() - 1000
    for n in range(250):
        await service.store.workflows.save(stored(f"w{n:03d}", S.completed, base + n))

    assert await vimax_nb("ls", "--json", *server) == 0
    captured = capsys.readouterr()
    ids = [r["id"] for r in json.loads(captured.out)]
    assert ids == [f"w{n:03d}" for n in reversed(range(250))]
    assert captured.err == ""

    assert await vimax_nb("ls", "-n", "10", *server) == 0
    header, *rows, note = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["id", "kind", "state"]
    assert [row.split()[0] for row in rows] == [f"w{n}" for n in range(249, 239, -1)]
    assert note == "240 more not shown: `vimax-nb ls` without -n lists them all"

    assert await vimax_nb("ls", "-n", "300", *server) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 250
