"""The Dask executor on real LocalClusters of worker processes: the same film as the
local executor, a worker killed mid-task, cancel, progress from inside a worker, no
shared workdir, and a scheduler that goes away and comes back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import av
import pytest
from distributed import LocalCluster

from vimax_nb.coordinator import Coordinator, RetryableError, RetryPolicy, TaskContext, skill
from vimax_nb.coordinator.dask import DaskExecutor
from vimax_nb.pipelines import register_vimax
from vimax_nb.pipelines.agents import VideoGenerator
from vimax_nb.protocol import WorkflowState
from vimax_nb.providers import ProviderCatalog
from vimax_nb.shared import TaskCanceled
from vimax_nb.store import Store

from .toy import Recorder, coordinator_with, default_agents, task_event

pytestmark = pytest.mark.timeout(180)

SMALL = {"idea": "a lighthouse keeper befriends a whale", "scenes": 1, "shots_per_scene": 2}
SMALL |= {"width": 320, "height": 180, "fps": 8, "seconds_per_shot": 1.0, "seed": 7}


def frame_digests(path: Path) -> list[str]:
    """A digest of each decoded frame's pixels."""
    with av.open(str(path)) as container:
        return [
            hashlib.sha256(frame.to_ndarray(format="rgb24").tobytes()).hexdigest()
            for frame in container.decode(video=0)
        ]


@asynccontextmanager
async def vimax_on(
    workdir: Path, executor: Any = None, video_generator: Any = None
) -> AsyncIterator[tuple[Coordinator, Recorder]]:
    """A started coordinator with the ViMax pipelines on ``executor`` (None: local)."""
    store = await Store.open(workdir / "vimax.sqlite3")
    coordinator = Coordinator(
        store=store,
        workdir=workdir,
        executor=executor,
        retry=RetryPolicy(max_attempts=3, backoff=0.0),
    )
    catalog = ProviderCatalog.configure({})
    register_vimax(coordinator, catalog)
    if video_generator is not None:
        coordinator.agents.unregister("video_generator")
        coordinator.register_agent(video_generator(catalog, "video_generator", concurrency=2))
    recorder = Recorder(coordinator)
    await coordinator.start()
    try:
        yield coordinator, recorder
    finally:
        await coordinator.stop()
        await store.close()


async def film(coordinator: Coordinator, params: dict[str, Any] = SMALL) -> Any:
    record = await coordinator.submit("idea2video", params)
    return await coordinator.wait(record.id, timeout=120)


async def test_a_film_made_on_two_worker_processes_is_the_local_executors_film(
    tmp_path: Path,
) -> None:
    async with vimax_on(tmp_path / "local") as (coordinator, _):
        local = await film(coordinator)
    executor = DaskExecutor(workers=2, threads_per_worker=2)
    async with vimax_on(tmp_path / "dask", executor) as (coordinator, recorder):
        starting = coordinator.metrics().executor
        assert starting is not None
        assert starting.problem == "the LocalCluster is starting"  # the server is up already
        await executor.ensure_ready()
        info = coordinator.metrics().executor
        assert info is not None
        assert (info.kind, info.workers, info.threads) == ("dask", 2, 4)
        assert info.dashboard is not None
        assert info.dashboard.startswith("http://")
        clustered = await film(coordinator)
        workers = await executor._client.run(os.getpid)  # type: ignore[union-attr]

    assert local.state == clustered.state == WorkflowState.completed
    assert os.getpid() not in workers.values()
    ours = frame_digests(tmp_path / "local" / local.id / "final_video.mp4")
    theirs = frame_digests(tmp_path / "dask" / clustered.id / "final_video.mp4")
    assert len(ours) == 2 * 8
    assert theirs == ours
    assert {e.details.task for e in recorder.of("progress") if e.details.event == "task_started"}


class DiesOnce(VideoGenerator):
    """Says which process renders shot 0 and waits there, the first time, to be killed."""

    @skill(description="Make one shot's clip")
    def generate_clip(self, ctx: TaskContext) -> Any:
        if ctx.attempt == 1 and ctx.params["shot_idx"] == 0:
            ctx.report(f"pid {os.getpid()}")
            while not ctx.cancel_token.cancelled:
                time.sleep(0.02)
            raise TaskCanceled("stopped before the worker was killed")
        return super().generate_clip(ctx)


async def test_a_worker_killed_mid_task_is_replaced_and_the_film_completes(
    tmp_path: Path,
) -> None:
    async with vimax_on(tmp_path / "local") as (coordinator, _):
        local = await film(coordinator)
    executor = DaskExecutor(workers=2)
    async with vimax_on(tmp_path / "dask", executor, DiesOnce) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", SMALL)
        said = await recorder.wait_for(
            lambda e: (
                e.type == "progress"
                and e.details.event == "task_activity"
                and (e.details.activity or "").startswith("pid ")
            ),
            timeout=60,
        )
        os.kill(int(said.details.activity.split()[1]), signal.SIGKILL)
        done = await coordinator.wait(record.id, timeout=120)
        agent = coordinator.agents.get("video_generator").record()

    assert done.state == WorkflowState.completed, done.message
    retries = [e for e in recorder.progress(record.id) if e.details.event == "task_retrying"]
    # shot 0's clip, and whatever else that worker held
    assert "scene/0/shot/0/clip" in {e.details.task for e in retries}
    assert all("worker" in (e.details.error or "") for e in retries)
    assert agent.metrics.tasks_failed >= 1
    ours = frame_digests(tmp_path / "local" / local.id / "final_video.mp4")
    assert frame_digests(tmp_path / "dask" / record.id / "final_video.mp4") == ours


def loop_until_stopped(ctx: TaskContext) -> None:
    """Draws until told to stop; writes when and why it stopped next to the workflow's
    folder."""
    if ctx.params["shot"] != 0:
        return
    ctx.report("drawing")
    while not ctx.cancel_token.cancelled:
        time.sleep(0.01)
    why = "interrupted" if ctx.cancel_token.interrupted else "canceled"
    assert ctx.workdir is not None
    (ctx.workdir.parent / "stopped").write_text(f"{time.time()} {why}")
    raise TaskCanceled("stopped")


def wait_for_file(path: Path, timeout: float) -> str:
    """The text of ``path`` once a worker process has written it."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was never written")
        time.sleep(0.01)
    return path.read_text()


async def test_cancel_stops_a_render_on_the_worker_within_a_second(tmp_path: Path) -> None:
    agents = default_agents(painter_hook=loop_until_stopped, painters=1)
    executor = DaskExecutor(workers=1)
    async with coordinator_with(tmp_path, agents, executor=executor, workdir=tmp_path) as (
        coordinator,
        recorder,
    ):
        record = await coordinator.submit("story", {"shots": 2})
        await recorder.wait_for(task_event(record.id, "task_activity", "draw/0"), timeout=60)
        asked = time.time()
        await coordinator.control(record.id, "cancel")
        stopped = await asyncio.to_thread(wait_for_file, tmp_path / "stopped", 10)
        stopped_at, why = stopped.split()
        assert why == "canceled"
        assert float(stopped_at) - asked < 1.0
        assert (await coordinator.get_workflow(record.id)).state == WorkflowState.canceled


async def test_a_server_stop_interrupts_a_worker_task_rather_than_canceling_it(
    tmp_path: Path,
) -> None:
    agents = default_agents(painter_hook=loop_until_stopped, painters=1)
    executor = DaskExecutor(workers=1)
    async with coordinator_with(tmp_path, agents, executor=executor, workdir=tmp_path) as (
        coordinator,
        recorder,
    ):
        record = await coordinator.submit("story", {"shots": 2})
        await recorder.wait_for(task_event(record.id, "task_activity", "draw/0"), timeout=60)
    stopped = await asyncio.to_thread(wait_for_file, tmp_path / "stopped", 10)
    assert stopped.split()[1] == "interrupted"


def count_out_loud(ctx: TaskContext) -> None:
    for step in range(1, 301):
        ctx.report(f"step {step}")
        time.sleep(0.001)


async def test_progress_from_inside_a_worker_arrives_in_order_and_coalesced(
    tmp_path: Path,
) -> None:
    agents = default_agents(writer_hook=count_out_loud)
    async with coordinator_with(tmp_path, agents, executor=DaskExecutor(workers=1)) as (
        coordinator,
        recorder,
    ):
        record = await coordinator.submit("story", {"shots": 1})
        done = await coordinator.wait(record.id, timeout=60)

    assert done.state == WorkflowState.completed
    outline = [
        e.details
        for e in recorder.progress(record.id)
        if e.details.task == "outline" and e.details.event != "state"
    ]
    steps = [int(d.activity.split()[1]) for d in outline if d.event == "task_activity"]
    assert steps == sorted(steps)
    assert steps[-1] == 300  # the last report always arrives
    assert 2 <= len(steps) < 100  # ~0.3 s of reports, at most one per 0.2 s plus the last
    assert outline[-1].event == "task_completed"


def where_am_i(ctx: TaskContext) -> None:
    folder = ctx.workdir
    assert folder is not None
    (folder / "notes").mkdir(exist_ok=True)
    (folder / "notes" / f"{ctx.task_key.replace('/', '-')}.txt").write_text(str(folder))


async def test_without_a_shared_workdir_files_come_back_to_the_server(tmp_path: Path) -> None:
    executor = DaskExecutor(workers=2, shared_workdir=False)
    async with vimax_on(tmp_path / "local") as (coordinator, _):
        local = await film(coordinator)
    async with vimax_on(tmp_path / "dask", executor) as (coordinator, _):
        clustered = await film(coordinator)
    assert clustered.state == WorkflowState.completed, clustered.message

    def files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}

    assert files(tmp_path / "dask" / clustered.id) == files(tmp_path / "local" / local.id)
    ours = frame_digests(tmp_path / "local" / local.id / "final_video.mp4")
    assert frame_digests(tmp_path / "dask" / clustered.id / "final_video.mp4") == ours


async def test_without_a_shared_workdir_a_task_writes_elsewhere(tmp_path: Path) -> None:
    agents = default_agents(writer_hook=where_am_i)
    executor = DaskExecutor(workers=1, shared_workdir=False)
    async with coordinator_with(tmp_path, agents, executor=executor, workdir=tmp_path / "work") as (
        coordinator,
        _,
    ):
        record = await coordinator.submit("story", {"shots": 1})
        assert (await coordinator.wait(record.id, timeout=60)).state == WorkflowState.completed
    note = tmp_path / "work" / record.id / "notes" / "outline.txt"
    assert note.exists()  # written on the worker, sent back, written here
    assert Path(note.read_text()) != tmp_path / "work" / record.id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def hold_once(ctx: TaskContext) -> None:
    """Waits to be stopped the first time a workflow runs it; passes after that."""
    assert ctx.workdir is not None
    marker = ctx.workdir.parent / "held"
    if ctx.params["shot"] != 0 or marker.exists():
        return
    marker.write_text("held")
    ctx.report("holding")
    while not ctx.cancel_token.cancelled:
        time.sleep(0.01)
    raise TaskCanceled("stopped")


def cluster_on(port: int) -> LocalCluster:
    return LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=True,
        scheduler_port=port,
        host="127.0.0.1",
        dashboard_address=None,
    )


async def test_a_scheduler_that_goes_away_interrupts_and_resume_works_once_it_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    cluster = await asyncio.to_thread(cluster_on, port)
    agents = default_agents(painter_hook=hold_once, painters=1)
    executor = DaskExecutor(f"tcp://127.0.0.1:{port}")
    try:
        async with coordinator_with(tmp_path, agents, executor=executor, workdir=tmp_path) as (
            coordinator,
            recorder,
        ):
            record = await coordinator.submit("story", {"shots": 2})
            await recorder.wait_for(task_event(record.id, "task_activity", "draw/0"), timeout=60)
            await asyncio.to_thread(cluster.close)

            lost = await coordinator.wait(record.id, timeout=60)
            assert lost.state == WorkflowState.interrupted, lost.message
            assert "scheduler" in lost.message
            assert "resume" in lost.message
            with pytest.raises(Exception, match="cannot be reached"):
                await coordinator.control(record.id, "resume")
            assert coordinator.metrics().executor.problem  # type: ignore[union-attr]

            cluster = await asyncio.to_thread(cluster_on, port)
            await coordinator.control(record.id, "resume")
            done = await coordinator.wait(record.id, timeout=60)
            assert done.state == WorkflowState.completed, done.message
            assert done.result == {"film": [0, 1]}
    finally:
        await asyncio.to_thread(cluster.close)


def pay_and_keep_a_job(ctx: TaskContext) -> None:
    """Pays for a call and starts a remote job; the first attempt then fails (retryably),
    the second finds the job the first one stored."""
    if ctx.attempt == 1:
        ctx.spend.add(provider="fake", model="fake-video", role="video", cost=0.25)
        ctx.job.set("operations/42")
        raise RetryableError("the service hiccuped")
    assert ctx.job.get() == "operations/42"
    assert ctx.spend.total == 0.25  # the server's spend, sent with the task
    ctx.spend.add(provider="fake", model="fake-video", role="video", cost=0.5)


async def test_spend_and_remote_jobs_from_a_worker_reach_the_server(tmp_path: Path) -> None:
    agents = default_agents(writer_hook=pay_and_keep_a_job)
    async with coordinator_with(tmp_path, agents, executor=DaskExecutor(workers=1)) as (
        coordinator,
        recorder,
    ):
        record = await coordinator.submit("story", {"shots": 1})
        done = await coordinator.wait(record.id, timeout=60)
        assert coordinator.store is not None
        jobs = await coordinator.store.workflows.jobs(record.id)

    assert done.state == WorkflowState.completed, done.message
    assert done.cost.total == 0.75
    assert done.cost.models["fake-video"].calls == 2
    assert jobs == {"outline": "operations/42"}
    spends = [e for e in recorder.progress(record.id) if e.details.event == "spend"]
    assert spends
    assert spends[-1].details.cost == 0.75


def note_the_worker(ctx: TaskContext) -> None:
    from distributed import get_worker

    assert ctx.workdir is not None
    folder = ctx.workdir / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{ctx.task_key.replace('/', '-')}").write_text(get_worker().address)


def dask_worker(address: str, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "2", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_tasks_of_a_skill_go_to_the_workers_that_declare_its_resources(
    tmp_path: Path,
) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    cluster = await asyncio.to_thread(cluster_on, port)  # one worker, no GPU
    gpu = dask_worker(address, "--resources", "GPU=1", "--name", "gpu-worker")
    agents = default_agents(painter_hook=note_the_worker)
    executor = DaskExecutor(address, resources={"draw": {"GPU": 1}})
    try:
        async with coordinator_with(tmp_path, agents, executor=executor, workdir=tmp_path) as (
            coordinator,
            _,
        ):
            client = executor._client
            assert client is not None
            await client.wait_for_workers(2, timeout=60)
            identity = await client.scheduler.identity(n_workers=-1)  # type: ignore[union-attr]
            with_gpu = {a for a, w in identity["workers"].items() if w.get("resources")}
            assert len(with_gpu) == 1
            record = await coordinator.submit("story", {"shots": 6})
            done = await coordinator.wait(record.id, timeout=60)
        assert done.state == WorkflowState.completed, done.message
        ran_on = {p.read_text() for p in (tmp_path / record.id / "workers").iterdir()}
        assert ran_on == with_gpu
    finally:
        gpu.terminate()
        gpu.wait(30)
        await asyncio.to_thread(cluster.close)
