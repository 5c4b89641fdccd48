"""The workflow store: records, interruption at start, checkpoints, write ordering."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.protocol import WorkflowRecord, WorkflowState
from vimax_nb.store import Checkpoint, Store, StoreError, WorkflowStore

from .helpers import held_writer, opened


async def barrier(workflows: WorkflowStore) -> None:
    """Wait until everything queued before this call is committed."""
    await workflows.db.run_in_writer(lambda conn: None)


def record(
    ident: str,
    state: WorkflowState = WorkflowState.running,
    created_at: str = "2024-05-01T10:00:00.000Z",
    **fields: Any,
) -> WorkflowRecord:
    data: dict[str, Any] = {
        "id": ident,
        "kind": "idea2video",
        "params": {"idea": f"idea {ident}", "scenes": 2, "style": {"palette": ["a", "b"]}},
        "state": state,
        "progress": 0.25,
        "stage": "storyboard",
        "stage_index": 2,
        "total_stages": 6,
        "message": "drawing",
        "created_at": created_at,
        "updated_at": created_at,
        "started_at": created_at,
    }
    data.update(fields)
    return WorkflowRecord(**data)


def checkpoint(workflow_id: str, task_key: str, **fields: Any) -> Checkpoint:
    data: dict[str, Any] = {
        "workflow_id": workflow_id,
        "task_key": task_key,
        "stage": "frames",
        "artifacts": [f"shots/{task_key}/first_frame.png"],
        "content_hash": "abc123",
        "attempts": 2,
        "result": {"frames": [1, 2], "ok": True, "note": None},
        "updated_at": "2024-05-01T10:00:05.000Z",
    }
    data.update(fields)
    return Checkpoint(**data)


# -- records --------------------------------------------------------------------------


async def test_save_and_get_round_trip(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        workflows = store.workflows
        assert await workflows.get("w1") is None
        full = record(
            "w1",
            WorkflowState.completed,
            owner="ada",
            progress=1.0,
            finished_at="2024-05-01T10:05:00.000Z",
            result={"video": "final_video.mp4", "frames": ["a.png"], "meta": {"fps": 24}},
            error=None,
        )
        await workflows.save(full)
        assert await workflows.get("w1") == full
        await workflows.save(record("w2", error={"code": "task_failed", "retryable": False}))
        got = await workflows.get("w2")
        assert got is not None
        assert got.error == {"code": "task_failed", "retryable": False}
        assert await workflows.get("w3") is None


async def test_save_replaces_the_earlier_version(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        workflows = store.workflows
        await workflows.save(record("w1", progress=0.1))
        await workflows.save(record("w1", WorkflowState.paused, progress=0.5))
        got = await workflows.get("w1")
        assert got is not None
        assert (got.state, got.progress) == (WorkflowState.paused, 0.5)
        assert [r.id for r in await workflows.records()] == ["w1"]
        # The state column follows the record: filtering sees the new state only.
        assert await workflows.records(states=[WorkflowState.running]) == []
        assert [r.id for r in await workflows.records(states=[WorkflowState.paused])] == ["w1"]


async def test_records_order_filter_and_limit(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        workflows = store.workflows
        saved = [
            record("c", WorkflowState.completed, created_at="2024-05-01T10:00:03.000Z"),
            record("a", WorkflowState.running, created_at="2024-05-01T10:00:01.000Z"),
            record("d", WorkflowState.failed, created_at="2024-05-01T10:00:04.000Z"),
            record("b2", WorkflowState.paused, created_at="2024-05-01T10:00:02.000Z"),
            record("b1", WorkflowState.pending, created_at="2024-05-01T10:00:02.000Z"),
        ]
        for r in saved:
            await workflows.save(r)
        assert [r.id for r in await workflows.records()] == ["a", "b1", "b2", "c", "d"]
        assert await workflows.records() == sorted(saved, key=lambda r: (r.created_at, r.id))
        running = await workflows.records(states=[WorkflowState.running, WorkflowState.paused])
        assert [r.id for r in running] == ["a", "b2"]
        # States given as their strings, and any iterable of them.
        finished = await workflows.records(states=iter(["completed", "failed"]))
        assert [r.id for r in finished] == ["c", "d"]
        assert await workflows.records(states=[]) == []
        assert [r.id for r in await workflows.records(limit=2)] == ["a", "b1"]
        assert await workflows.records(limit=0) == []
        limited = await workflows.records(states=[WorkflowState.completed, "failed"], limit=1)
        assert [r.id for r in limited] == ["c"]
        with pytest.raises(ValueError, match="nonsense"):
            await workflows.records(states=["nonsense"])  # type: ignore[list-item]


async def test_records_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with opened(path) as store:
        await store.workflows.save(record("w1"))
        store.workflows.save_nowait(record("w2", WorkflowState.completed))
        store.workflows.save_checkpoint_nowait(checkpoint("w1", "shot-0"))
        await barrier(store.workflows)
        store.workflows.save_checkpoint_nowait(checkpoint("w1", "shot-1"))
        # No barrier: close() commits what is queued.
    async with opened(path) as store:
        assert await store.workflows.get("w1") == record("w1")
        assert await store.workflows.get("w2") == record("w2", WorkflowState.completed)
        assert set(await store.workflows.checkpoints("w1")) == {"shot-0", "shot-1"}


async def test_interrupt_unfinished(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with opened(path) as store:
        for r in (
            record("run", WorkflowState.running),
            record("pause", WorkflowState.paused),
            record("done", WorkflowState.completed),
            record("fail", WorkflowState.failed),
            record("stop", WorkflowState.canceled),
            record("wait", WorkflowState.pending),
        ):
            await store.workflows.save(r)
    now = "2024-05-02T08:00:00.000Z"
    async with opened(path) as store:
        workflows = store.workflows
        changed = await workflows.interrupt_unfinished(now)
        assert sorted(r.id for r in changed) == ["pause", "run", "wait"]
        for r in changed:
            assert r.state == WorkflowState.interrupted
            assert r.updated_at == now
            assert "interrupted" in r.message
            # Everything else is kept as it was.
            was = {"run": WorkflowState.running, "pause": WorkflowState.paused}
            original = record(r.id, was.get(r.id, WorkflowState.pending))
            assert r.model_dump(exclude={"state", "updated_at", "message"}) == original.model_dump(
                exclude={"state", "updated_at", "message"}
            )
            assert await workflows.get(r.id) == r
        for ident, state in (
            ("done", WorkflowState.completed),
            ("fail", WorkflowState.failed),
            ("stop", WorkflowState.canceled),
        ):
            assert await workflows.get(ident) == record(ident, state)
        interrupted = await workflows.records(states=[WorkflowState.interrupted])
        assert sorted(r.id for r in interrupted) == ["pause", "run", "wait"]
        assert await workflows.records(states=[WorkflowState.running, WorkflowState.paused]) == []
        # A second call finds nothing more to interrupt.
        assert await workflows.interrupt_unfinished(now) == []
    async with opened(path) as store:
        got = await store.workflows.get("run")
        assert got is not None
        assert got.state == WorkflowState.interrupted


# -- checkpoints ----------------------------------------------------------------------


async def test_checkpoints_save_load_replace_delete(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        workflows = store.workflows
        assert await workflows.checkpoints("w1") == {}
        await workflows.save(record("w1"))
        await workflows.save(record("w2"))
        first = checkpoint("w1", "shot-0")
        workflows.save_checkpoint_nowait(first)
        workflows.save_checkpoint_nowait(checkpoint("w1", "shot-1", result=None))
        workflows.save_checkpoint_nowait(checkpoint("w2", "shot-0", stage="video"))
        await barrier(workflows)
        loaded = await workflows.checkpoints("w1")
        assert loaded == {"shot-0": first, "shot-1": checkpoint("w1", "shot-1", result=None)}
        # The same task again replaces its checkpoint.
        newer = checkpoint("w1", "shot-0", attempts=3, content_hash="def456", artifacts=[])
        workflows.save_checkpoint_nowait(newer)
        await barrier(workflows)
        loaded = await workflows.checkpoints("w1")
        assert loaded["shot-0"] == newer
        assert len(loaded) == 2
        # Deleting a workflow drops its record and checkpoints, and only those.
        await workflows.delete("w1")
        assert await workflows.get("w1") is None
        assert await workflows.checkpoints("w1") == {}
        assert await workflows.get("w2") == record("w2")
        assert (await workflows.checkpoints("w2"))["shot-0"].stage == "video"
        # Deleting what is not there is fine.
        await workflows.delete("nope")


async def test_checkpoint_defaults_round_trip(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        bare = Checkpoint(workflow_id="w", task_key="k", stage="story")
        store.workflows.save_checkpoint_nowait(bare)
        await barrier(store.workflows)
        assert await store.workflows.checkpoints("w") == {"k": bare}


# -- ordering and snapshots -----------------------------------------------------------


async def test_later_save_nowait_wins(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        workflows = store.workflows
        # Within one batch.
        async with held_writer(store.db):
            for step in range(1, 101):
                workflows.save_nowait(record("w1", progress=step / 100))
        await barrier(workflows)
        got = await workflows.get("w1")
        assert got is not None
        assert got.progress == 1.0
        # Across batches, mixed with awaited saves.
        await workflows.save(record("w1", progress=0.3))
        workflows.save_nowait(record("w1", progress=0.4))
        workflows.save_nowait(record("w1", WorkflowState.completed, progress=0.9))
        await barrier(workflows)
        got = await workflows.get("w1")
        assert got is not None
        assert (got.state, got.progress) == (WorkflowState.completed, 0.9)
        # A checkpoint queued after a delete outlives it; one queued before does not.
        workflows.save_checkpoint_nowait(checkpoint("w1", "old"))
        deleting = asyncio.ensure_future(workflows.delete("w1"))
        await asyncio.sleep(0)
        workflows.save_checkpoint_nowait(checkpoint("w1", "new"))
        await deleting
        await barrier(workflows)
        assert set(await workflows.checkpoints("w1")) == {"new"}


async def test_save_nowait_stores_the_record_as_it_was_when_queued(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        workflows = store.workflows
        live = record("w1", progress=0.1)
        point = checkpoint("w1", "k", attempts=1)
        async with held_writer(store.db):
            workflows.save_nowait(live)
            workflows.save_checkpoint_nowait(point)
            # The caller goes on changing its objects before the writer gets to them.
            live.progress = 0.7
            live.message = "changed later"
            point.attempts = 5
        await barrier(workflows)
        got = await workflows.get("w1")
        assert got is not None
        assert (got.progress, got.message) == (0.1, "drawing")
        assert (await workflows.checkpoints("w1"))["k"].attempts == 1


async def test_an_unstorable_checkpoint_fails_alone(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        workflows = store.workflows
        bad = checkpoint("w1", "bad", result={"handle": object()})
        async with held_writer(store.db):
            workflows.save_nowait(record("w1"))
            with pytest.raises(TypeError, match="checkpoint 'bad' of workflow 'w1'"):
                workflows.save_checkpoint_nowait(bad)
            workflows.save_checkpoint_nowait(checkpoint("w1", "good"))
            workflows.save_nowait(record("w2"))
        await barrier(workflows)
        assert await workflows.get("w1") == record("w1")
        assert await workflows.get("w2") == record("w2")
        assert set(await workflows.checkpoints("w1")) == {"good"}


async def test_a_failing_write_fails_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(tmp_path / "s.db") as store:
        workflows = store.workflows
        # Every record write fails from now on; checkpoint writes do not.
        await store.db.run_in_writer(lambda conn: conn.execute("DROP TABLE workflows").rowcount)
        async with held_writer(store.db):
            workflows.save_nowait(record("w1"))
            saving = asyncio.ensure_future(workflows.save(record("w2")))
            await asyncio.sleep(0)
            workflows.save_checkpoint_nowait(checkpoint("w1", "k"))
        with pytest.raises(StoreError, match="no such table: workflows"):
            await saving
        await barrier(workflows)
        assert set(await workflows.checkpoints("w1")) == {"k"}
        # A queued write that fails is logged: nobody waits for it.
        failed = [r.getMessage() for r in caplog.records if "write failed" in r.getMessage()]
        assert failed == ["workflow store write failed: no such table: workflows"] * 2


# -- closed store ---------------------------------------------------------------------


async def test_closed_store_raises(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    workflows = store.workflows
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        workflows.save_nowait(record("w1"))
    with pytest.raises(StoreError, match="closed"):
        await workflows.save(record("w1"))
    with pytest.raises(StoreError, match="closed"):
        await workflows.get("w1")
    with pytest.raises(StoreError, match="closed"):
        await workflows.records()
    with pytest.raises(StoreError, match="closed"):
        await workflows.checkpoints("w1")
    with pytest.raises(StoreError, match="closed"):
        await workflows.interrupt_unfinished("now")
    with pytest.raises(StoreError, match="closed"):
        workflows.save_checkpoint_nowait(checkpoint("w1", "k"))
    with pytest.raises(StoreError, match="closed"):
        await workflows.delete("w1")
