"""Tasks are workflows: they outlive a restart, and belong to the workflows' owners."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from a2a.types import GetTaskRequest, ListTasksRequest, SubscribeToTaskRequest, TaskState
from a2a.utils.errors import TaskNotFoundError, UnsupportedOperationError

from vimax_nb.coordinator import TaskContext

from ..coordinator.toy import Editor, Painter, StoryPipeline, Writer
from ..server.conftest import Gate
from ..server.test_authorization import (  # noqa: F401  (fixtures)
    OWNER_ONLY,
    as_user,
    jp_server_config,
    server_config,
)
from .conftest import SMALL, a2a_client, read_until, request, state_of

T = TaskState


async def test_tasks_outlive_a_restart(endpoint: str, token: str, service: Any) -> None:
    entered, release = threading.Event(), threading.Event()

    def hold(ctx: TaskContext) -> None:
        entered.set()
        while not release.wait(0.01):
            ctx.cancel_token.raise_if_cancelled()

    service.coordinator.register_pipeline(StoryPipeline())
    service.coordinator.register_agent(Writer(hold, name="writer"))
    async with a2a_client(endpoint, token) as (client, _http, _card):
        film = [e async for e in client.send_message(request("a cat surfs", {"params": SMALL}))]
        finished = film[-1].status_update
        held = client.send_message(request(data={"kind": "story", "params": {"shots": 1}}))
        started = await read_until(held, lambda e: state_of(e) == T.TASK_STATE_WORKING)
        cut = started[0].task
        assert await asyncio.to_thread(entered.wait, 10)

        await service.stop()  # the server stops: the held workflow is interrupted
        await held.aclose()
        await service.ensure_started()  # and starts again on the same database

        task = await client.get_task(GetTaskRequest(id=finished.task_id))
        assert task.status.state == T.TASK_STATE_COMPLETED
        assert task.context_id == finished.context_id
        assert task.history[0].parts[0].text == "a cat surfs"
        assert "final_video.mp4" in [a.artifact_id for a in task.artifacts]

        interrupted = await client.get_task(GetTaskRequest(id=cut.id))
        assert interrupted.status.state == T.TASK_STATE_FAILED
        assert interrupted.context_id == cut.context_id
        assert "server stopped" in interrupted.status.message.parts[0].text
        assert f"/vimax/api/workflows/{cut.id}/resume" in interrupted.status.message.parts[0].text
        with pytest.raises(UnsupportedOperationError):  # it has ended: nothing to follow
            async for _ in client.subscribe(SubscribeToTaskRequest(id=cut.id)):
                pass

        listed = await client.list_tasks(ListTasksRequest())
        assert [t.id for t in listed.tasks] == [cut.id, finished.task_id]

        # resumed over REST, it works again, and A2A follows it from the log (the SDK
        # alone has nothing running for it after the restart, and would wait forever)
        service.coordinator.register_pipeline(StoryPipeline())
        for agent in (
            Writer(hold, name="writer"),
            Painter(name="toy-painter"),
            Editor(name="toy-editor"),
        ):
            service.coordinator.register_agent(agent)
        await service.coordinator.control(cut.id, "resume")
        updates = client.subscribe(SubscribeToTaskRequest(id=cut.id))
        snapshot = await anext(updates)
        assert snapshot.task.status.state == T.TASK_STATE_WORKING
        assert snapshot.task.history[0].parts[0].data  # the message that commissioned it
        release.set()
        later = [event async for event in updates]
        assert state_of(later[-1]) == T.TASK_STATE_COMPLETED


@pytest.mark.parametrize("server_config", [OWNER_ONLY], ids=["owner_only"])
async def test_with_owner_only_a_user_sees_only_their_own_tasks(
    endpoint: str, service: Any, toy: Gate
) -> None:
    ada, bob, carol = (as_user(n)["Authorization"].split()[1] for n in ("ada", "bob", "carol"))
    async with a2a_client(endpoint, ada) as (client, _http, _card):
        stream = client.send_message(request(data={"kind": "story", "params": {"shots": 1}}))
        seen = await read_until(stream, lambda e: state_of(e) == T.TASK_STATE_WORKING)
        await stream.aclose()
    task_id = seen[0].task.id
    assert (await service.coordinator.get_workflow(task_id)).owner == "ada"

    async with a2a_client(endpoint, bob) as (client, _http, _card):
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=task_id))
        assert list((await client.list_tasks(ListTasksRequest())).tasks) == []
        with pytest.raises(TaskNotFoundError):
            async for _ in client.subscribe(SubscribeToTaskRequest(id=task_id)):
                pass

    for who in (ada, carol):  # the owner, and an admin
        async with a2a_client(endpoint, who) as (client, _http, _card):
            task = await client.get_task(GetTaskRequest(id=task_id))
            assert task.metadata["vimax"]["owner"] == "ada"
            listed = await client.list_tasks(ListTasksRequest())
            assert [t.id for t in listed.tasks] == [task_id]
