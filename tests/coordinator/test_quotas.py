"""The coordinator's quotas on submit, its pages without a store, and the periodic
collection of old workflows."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.coordinator import (
    DiskQuotaExceeded,
    Quotas,
    TaskContext,
    TooManyWorkflows,
    WorkflowTooLarge,
)
from vimax_nb.coordinator.quotas import DiskUsage, check_render_size, render_size
from vimax_nb.protocol import Collection, WorkflowState
from vimax_nb.store.workflows import parse_cursor

from .toy import coordinator_with, default_agents

S = WorkflowState

FILM = {"width": 640, "height": 360, "fps": 12, "seconds_per_shot": 2.0, "shots_per_scene": 4}


class Hold:
    """Keeps the writer's tasks until released."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def __call__(self, ctx: TaskContext) -> None:
        if not self.released.wait(60):
            raise TimeoutError("the test never released the writer")


@pytest.mark.parametrize(
    ("params", "frames", "pixels"),
    [
        ({**FILM, "scenes": 1}, 96, 96 * 640 * 360),  # the default run
        ({**FILM, "scenes": 2, "shots_per_scene": 3}, 144, 144 * 640 * 360),  # the README's
        ({**FILM, "fps": 7, "seconds_per_shot": 0.1}, 4, 4 * 640 * 360),  # a frame a shot at least
        ({**FILM, "scenes": 0}, 96, 96 * 640 * 360),  # unresolved scenes count as one
    ],
)
def test_render_size_is_what_the_renderer_makes(
    params: dict[str, Any], frames: int, pixels: int
) -> None:
    size = render_size(params)
    assert size is not None
    assert (size.frames, size.pixels) == (frames, pixels)


def test_a_kind_without_a_size_has_none() -> None:
    assert render_size({"shots": 3}) is None
    assert render_size({**FILM, "fps": "fast"}) is None


async def test_each_quota_refuses_with_its_own_error_and_the_rest_go_on(tmp_path: Path) -> None:
    hold = Hold()
    quotas = Quotas(max_active_workflows_per_user=1, max_active_workflows=2)
    async with coordinator_with(
        tmp_path, default_agents(writer_hook=hold), quotas=quotas, workdir=tmp_path / "work"
    ) as (coordinator, _):
        try:
            first = await coordinator.submit("story", {"shots": 1}, owner="ada")
            with pytest.raises(TooManyWorkflows) as caught:
                await coordinator.submit("story", {"shots": 1}, owner="ada")
            assert caught.value.quota == "Quotas.max_active_workflows_per_user"
            assert caught.value.retry_after == 30
            assert "'ada' has 1 queued, running or paused" in str(caught.value)
            await coordinator.submit("story", {"shots": 1}, owner="bob")
            with pytest.raises(TooManyWorkflows, match=r"Quotas\.max_active_workflows = 2"):
                await coordinator.submit("story", {"shots": 1}, owner="cy")
            assert len(await coordinator.list_workflows()) == 2  # nothing of the refused
        finally:
            hold.released.set()
        await coordinator.wait(first.id, timeout=30)
        again = await coordinator.submit("story", {"shots": 1}, owner="ada")
        assert (await coordinator.wait(again.id, timeout=30)).state == S.completed


async def test_a_too_large_or_a_full_workdir_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    quotas = Quotas(max_workflow_pixels=10, max_workdir_bytes=100)
    async with coordinator_with(tmp_path, quotas=quotas, workdir=work) as (coordinator, _):
        # The toy has no size: only the disk applies to it.
        done = await coordinator.submit("story", {"shots": 1})
        await coordinator.wait(done.id, timeout=30)
        (work / done.id).mkdir(parents=True, exist_ok=True)
        (work / done.id / "big.bin").write_bytes(b"x" * 150)
        with pytest.raises(DiskQuotaExceeded, match=r"holds 150 B \(150 bytes\)"):
            await coordinator.submit("story", {"shots": 1})
        collected = await coordinator.collect(0)
        assert [w.id for w in collected.workflows] == [done.id]
        await coordinator.submit("story", {"shots": 1})
    size_check = Quotas(max_workflow_pixels=640 * 360 * 96 - 1)
    with pytest.raises(WorkflowTooLarge, match="96 frames of 640x360: 22,118,400 pixels"):
        check_render_size(size_check, {**FILM, "scenes": 1})


async def test_concurrent_disk_checks_share_one_count(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 10)
    (tmp_path / "g").write_bytes(b"y" * 5)
    (tmp_path / "link").symlink_to(tmp_path / "a")  # not followed
    usage = DiskUsage(tmp_path)
    counts = await asyncio.gather(*(usage.bytes() for _ in range(5)))
    assert counts == [15] * 5
    (tmp_path / "g").unlink()
    assert await usage.bytes() == 10  # a later call counts again


async def test_without_a_store_pages_and_collections_use_the_live_workflows(
    tmp_path: Path,
) -> None:
    async with coordinator_with(None) as (coordinator, _):
        made = [await coordinator.submit("story", {"shots": 1}) for _ in range(5)]
        for record in made:
            await coordinator.wait(record.id, timeout=30)
        newest_first = sorted(made, key=lambda r: (r.created_at, r.id), reverse=True)
        first = await coordinator.page_workflows(2)
        assert (first.total, [r.id for r in first.records]) == (5, [r.id for r in newest_first[:2]])
        assert first.next is not None
        rest = await coordinator.page_workflows(10, parse_cursor(first.next))
        assert [r.id for r in rest.records] == [r.id for r in newest_first[2:]]
        assert rest.next is None
        dry = await coordinator.collect(0, dry_run=True)
        assert len(dry.workflows) == 5
        assert (await coordinator.page_workflows(10)).total == 5
        await coordinator.collect(0)
        assert (await coordinator.page_workflows(10)).total == 0


async def test_the_periodic_collection_removes_old_workflows_on_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vimax_nb.coordinator.coordinator")
    async with coordinator_with(
        tmp_path, workdir=tmp_path / "work", retention_age=0.0, collect_interval=0.05
    ) as (coordinator, _):
        removed = asyncio.Event()
        collect = coordinator.collect

        async def watched(*args: Any, **kwargs: Any) -> Collection:
            done = await collect(*args, **kwargs)
            if done.workflows:
                removed.set()
            return done

        coordinator.collect = watched  # type: ignore[method-assign]
        record = await coordinator.submit("story", {"shots": 1})
        await coordinator.wait(record.id, timeout=30)
        await asyncio.wait_for(removed.wait(), 30)
        assert coordinator.store is not None
        assert await coordinator.store.workflows.get(record.id) is None
    assert any("removed 1 workflow(s)" in r.getMessage() for r in caplog.records)


async def test_collection_is_off_by_default(tmp_path: Path) -> None:
    async with coordinator_with(tmp_path) as (coordinator, _):
        assert coordinator.collect_interval == 0
        assert coordinator._collector is None
