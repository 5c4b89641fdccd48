"""Commissioning a film and following it with the official a2a-sdk client: the stream,
GetTask, ListTasks, CancelTask and SubscribeToTask, against a real Jupyter server."""

from __future__ import annotations

from typing import Any

import pytest
from a2a.client import A2AClientError
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import (
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from vimax_nb.protocol import ProgressEvent, WorkflowState, parse_server_message, workflow_room

from ..server.conftest import Gate
from .conftest import (
    HELD,
    SMALL,
    a2a_client,
    kind_of,
    read_until,
    request,
    state_of,
    text_of,
)

T = TaskState
S = WorkflowState


def working(event: Any) -> bool:
    return state_of(event) == T.TASK_STATE_WORKING


async def test_a_streamed_message_goes_from_working_to_completed_with_a_video_that_plays(
    endpoint: str, token: str, service: Any
) -> None:
    async with a2a_client(endpoint, token) as (client, http, _card):
        message = request("a watercolor video about a fox who learns to fly", {"params": SMALL})
        events = [event async for event in client.send_message(message)]

        first, last = events[0], events[-1]
        assert kind_of(first) == "task"
        assert first.task.status.state == T.TASK_STATE_SUBMITTED
        assert "A fox who learns to fly" in text_of(first)  # the plan, in words
        assert state_of(last) == T.TASK_STATE_COMPLETED
        states = [state_of(e) for e in events if state_of(e) is not None]
        assert set(states[1:-1]) == {T.TASK_STATE_WORKING}
        stages = [text_of(e) for e in events if working(e)]
        assert len(stages) == len(set(stages)) >= 5  # a message per stage, each once
        assert any("story" in s for s in stages)
        assert any("frames" in s for s in stages)

        artifacts = {
            e.artifact_update.artifact.artifact_id: e.artifact_update.artifact
            for e in events
            if kind_of(e) == "artifact_update"
        }
        assert {"story.txt", "script.json", "final_video.mp4"} <= set(artifacts)
        frames = [a for a in artifacts.values() if a.parts[0].media_type == "image/png"]
        assert len(frames) == 4  # first and last frame of 2 shots
        video = artifacts["final_video.mp4"].parts[0]
        assert video.media_type == "video/mp4"
        assert video.url.startswith(endpoint.removesuffix("vimax/a2a"))
        played = await http.get(video.url)
        assert played.status_code == 200
        assert played.headers["content-type"] == "video/mp4"
        assert played.content[4:8] == b"ftyp"  # an MP4 file

        task_id = first.task.id
        record = await service.coordinator.get_workflow(task_id)  # the task is the workflow
        assert (record.kind, record.state) == ("idea2video", S.completed)
        assert record.params["idea"] == "A fox who learns to fly"
        assert record.params["style"] == "watercolor"

        task = await client.get_task(GetTaskRequest(id=task_id))
        assert task.status.state == T.TASK_STATE_COMPLETED
        assert task.context_id == first.task.context_id
        assert [a.artifact_id for a in task.artifacts] == list(artifacts)
        assert task.history[0].parts[0].text.startswith("a watercolor video")


async def test_list_tasks_shows_every_workflow_with_filters_and_pages(
    endpoint: str, token: str, service: Any, toy: Gate
) -> None:
    async with a2a_client(endpoint, token) as (client, _http, _card):
        done = [e async for e in client.send_message(request("a cat surfs", {"params": SMALL}))]
        film = done[0].task
        held = await service.coordinator.submit("story", {"shots": 1})  # not over A2A

        page = await client.list_tasks(ListTasksRequest(include_artifacts=True))
        assert [t.id for t in page.tasks] == [held.id, film.id]  # newest first
        assert page.total_size == 2
        assert page.tasks[0].status.state == T.TASK_STATE_WORKING
        assert page.tasks[0].context_id == held.id  # a workflow of no A2A context
        assert page.tasks[1].artifacts, "artifacts were asked for"
        bare = await client.list_tasks(ListTasksRequest())
        assert not any(t.artifacts for t in bare.tasks)

        running = await client.list_tasks(ListTasksRequest(status=T.TASK_STATE_WORKING))
        assert [t.id for t in running.tasks] == [held.id]
        by_context = await client.list_tasks(ListTasksRequest(context_id=film.context_id))
        assert [t.id for t in by_context.tasks] == [film.id]

        one = await client.list_tasks(ListTasksRequest(page_size=1))
        assert [t.id for t in one.tasks] == [held.id]
        assert one.next_page_token
        two = await client.list_tasks(ListTasksRequest(page_size=1, page_token=one.next_page_token))
        assert [t.id for t in two.tasks] == [film.id]
        assert two.next_page_token == ""

        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id="nosuchtask"))
        with pytest.raises(InvalidParamsError, match="page_token"):
            await client.list_tasks(ListTasksRequest(page_token="not-a-cursor"))


async def test_cancel_task_on_a_running_task_cancels_its_workflow(
    endpoint: str, token: str, service: Any, toy: Gate
) -> None:
    async with a2a_client(endpoint, token) as (client, _http, _card):
        stream = client.send_message(request(data=HELD))
        seen = await read_until(stream, working)
        task_id = seen[0].task.id

        canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == T.TASK_STATE_CANCELED
        record = await service.coordinator.get_workflow(task_id)
        assert record.state == S.canceled

        rest = [event async for event in stream]  # the first stream learns it too, and ends
        assert state_of(rest[-1]) == T.TASK_STATE_CANCELED
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(CancelTaskRequest(id=task_id))
        with pytest.raises(UnsupportedOperationError, match="ended"):
            async for _ in client.subscribe(SubscribeToTaskRequest(id=task_id)):
                pass
        with pytest.raises(TaskNotFoundError):
            await client.cancel_task(CancelTaskRequest(id="nosuchtask"))


async def test_subscribing_after_dropping_the_stream_gets_every_later_update(
    endpoint: str, token: str, service: Any, toy: Gate
) -> None:
    coordinator, log = service.coordinator, service.store.events
    async with a2a_client(endpoint, token) as (client, _http, _card):
        stream = client.send_message(request(data={"kind": "story", "params": {"shots": 2}}))
        seen = await read_until(stream, working)
        task_id = seen[0].task.id
        await stream.aclose()  # the client drops its stream

        # while nobody listens, the workflow is paused
        await coordinator.control(task_id, "pause")
        room = workflow_room(task_id)
        await log.flush()
        missed_top = log.top(room)

        updates = client.subscribe(SubscribeToTaskRequest(id=task_id))
        snapshot = await anext(updates)
        assert kind_of(snapshot) == "task"
        assert snapshot.task.status.state == T.TASK_STATE_WORKING
        assert "paused" in text_of(snapshot)  # what happened while it was away
        toy.opened.set()
        await coordinator.control(task_id, "resume")
        later = [event async for event in updates]
        assert state_of(later[-1]) == T.TASK_STATE_COMPLETED

        # every change of state or stage stored after the subscription, each once
        changes, shown = [], ("paused", None)
        for stored in await log.read(room, missed_top):
            event = parse_server_message(stored.frame)
            if isinstance(event, ProgressEvent):
                key = (event.state.value, event.stage if event.state == S.running else None)
                if key != shown:
                    changes.append(stored.seq)
                    shown = key
        received = [
            int(e.status_update.metadata["vimax"]["seq"])
            for e in later
            if kind_of(e) == "status_update"
        ]
        assert received == changes
        assert len(changes) >= 3  # resumed, the next stages, completed

    # the dropped stream did not stop the task: its history has every stage after it
    async with a2a_client(endpoint, token) as (client, _http, _card):
        task = await client.get_task(GetTaskRequest(id=task_id))
    assert task.status.state == T.TASK_STATE_COMPLETED
    assert any("edit" in m.parts[0].text for m in task.history)


async def test_any_running_workflow_can_be_followed_even_one_started_over_rest(
    endpoint: str, token: str, service: Any, toy: Gate
) -> None:
    record = await service.coordinator.submit("story", {"shots": 1})
    async with a2a_client(endpoint, token) as (client, _http, _card):
        updates = client.subscribe(SubscribeToTaskRequest(id=record.id))
        snapshot = await anext(updates)
        assert (snapshot.task.id, snapshot.task.status.state) == (record.id, T.TASK_STATE_WORKING)
        toy.opened.set()
        later = [event async for event in updates]
    assert state_of(later[-1]) == T.TASK_STATE_COMPLETED


async def test_a_message_that_asks_for_nothing_usable_is_an_error_and_starts_nothing(
    endpoint: str, token: str, service: Any
) -> None:
    async with a2a_client(endpoint, token) as (client, _http, _card):
        for bad, expected in [
            (request(data={"kind": "idea2video", "params": {"idea": "x", "fps": 999}}), "fps"),
            (request(data={"kind": "nosuchkind"}), "unknown workflow kind"),
            (request("please make a video"), "could not tell what the video should be about"),
        ]:
            with pytest.raises((InvalidParamsError, A2AClientError), match=expected):
                async for _ in client.send_message(bad):
                    pass
    assert await service.coordinator.list_workflows() == []
