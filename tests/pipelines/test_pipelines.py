"""Idea2Video and Script2Video end to end with the offline providers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops

from vimax_nb.coordinator import RetryPolicy
from vimax_nb.pipelines.editing import probe_video
from vimax_nb.protocol import ControlAction, WorkflowState
from vimax_nb.providers.base import ProviderError

from .fakes import SMALL, Wrapped, flaky, vimax

IDEA = "A lighthouse keeper befriends a whale"
SCRIPT = """INT. LIGHTHOUSE - NIGHT
The lamp flickers. MARA climbs the stairs.
MARA: The lamp is failing.
OLIN: Then we climb together.

EXT. SHORE - DAWN
Mara runs to the water. The whale surfaces.
MARA: You came back!
"""


async def test_idea2video_turns_an_idea_into_a_video_with_vimax_files(tmp_path: Path) -> None:
    async with vimax(tmp_path) as (coordinator, recorder):
        params = {"idea": IDEA, "style": "watercolor", **SMALL}
        record = await coordinator.submit("idea2video", params)
        done = await coordinator.wait(record.id, timeout=120)

    assert done.state == WorkflowState.completed, done.message
    folder = tmp_path / record.id
    info = probe_video(folder / "final_video.mp4")
    assert (info.width, info.height, info.codec) == (160, 96, "h264")
    assert info.frames == 3 * 6
    assert abs(info.duration - 3.0) <= 1 / 6
    for name in ("story.txt", "characters.json", "script.json"):
        assert (folder / name).stat().st_size > 0
    scene = folder / "scene_0"
    assert json.loads((scene / "storyboard.json").read_text())[0]["idx"] == 0
    assert (scene / "camera_tree.json").exists()
    assert probe_video(scene / "final_video.mp4").frames == 18
    for j in range(3):
        shot = scene / "shots" / str(j)
        assert json.loads((shot / "shot_description.json").read_text())["idx"] == j
        assert probe_video(shot / "video.mp4").frames == 6
    characters = json.loads((folder / "characters.json").read_text())
    for view in ("front", "side", "back"):
        assert len(list(folder.glob(f"character_portraits/*/{view}.png"))) == len(characters)
    first_frames = [Image.open(scene / f"shots/{j}/first_frame.png") for j in range(3)]
    assert all(im.size == (160, 96) for im in first_frames)
    assert ImageChops.difference(first_frames[0], first_frames[1]).getbbox() is not None

    result = done.result
    assert result is not None
    assert result["video"] == "final_video.mp4"
    assert result["frames"][:2] == [
        "scene_0/shots/0/first_frame.png",
        "scene_0/shots/0/last_frame.png",
    ]
    assert result["story"]["title"]
    assert len(result["script"]["scenes"]) == 1
    kinds = {a.kind.value for a in recorder.of("artifact", workflow_id=record.id)}
    assert kinds == {"text", "json", "image", "video"}
    final = recorder.of("artifact", workflow_id=record.id, name="final video")
    assert [a.url for a in final] == [f"/vimax/api/workflows/{record.id}/artifacts/final_video.mp4"]
    stages = recorder.progress(record.id)[-1].details.stages
    assert {s.name: s.total for s in stages}["frames"] == 3


async def test_the_same_seed_gives_the_same_story_and_script(tmp_path: Path) -> None:
    texts = []
    for run, seed in (("a", 5), ("b", 5), ("c", 6)):
        async with vimax(tmp_path / run) as (coordinator, _):
            params = {"idea": IDEA, "seed": seed, **SMALL, "shots_per_scene": 1}
            record = await coordinator.submit("idea2video", params)
            done = await coordinator.wait(record.id, timeout=120)
        assert done.state == WorkflowState.completed, done.message
        folder = tmp_path / run / record.id
        texts.append(((folder / "story.txt").read_text(), (folder / "script.json").read_text()))
    assert texts[0] == texts[1]
    assert texts[0][0] != texts[2][0]


async def test_script2video_films_each_scene_of_a_script(tmp_path: Path) -> None:
    async with vimax(tmp_path) as (coordinator, _):
        params = {"script": SCRIPT, "scenes": 2, **SMALL, "shots_per_scene": 2}
        record = await coordinator.submit("script2video", params)
        done = await coordinator.wait(record.id, timeout=120)
    assert done.state == WorkflowState.completed, done.message
    folder = tmp_path / record.id
    assert probe_video(folder / "final_video.mp4").frames == 2 * 2 * 6
    assert (folder / "scene_1" / "shots" / "1" / "video.mp4").exists()
    names = [
        c["identifier_in_scene"].upper()
        for c in json.loads((folder / "characters.json").read_text())
    ]
    assert {"MARA", "OLIN"} <= set(names)


async def test_a_resumed_run_does_not_redo_finished_work(tmp_path: Path) -> None:
    wrapped = Wrapped()
    gate, waiting = wrapped.hold("video")
    async with vimax(tmp_path, wrapped) as (coordinator, recorder):
        params = {"idea": IDEA, **SMALL}
        record = await coordinator.submit("idea2video", params)
        await recorder.wait_for(lambda e: _stages_done(e, record.id, "portraits", "frames"), 60)
        await asyncio.to_thread(waiting.acquire, True, 30)
    # The coordinator stopped with clips held: the workflow is interrupted.
    before = dict(wrapped.calls)
    assert before["image"] > 0
    # A checkpoint whose file changed is not trusted: that shot's frames are painted again.
    tampered = tmp_path / record.id / "scene_0" / "shots" / "1" / "first_frame.png"
    tampered.write_bytes(tampered.read_bytes() + b"\0")
    gate.set()
    async with vimax(tmp_path, wrapped) as (coordinator, recorder):
        assert (await coordinator.get_workflow(record.id)).state == WorkflowState.interrupted
        await coordinator.control(record.id, ControlAction.resume)
        done = await coordinator.wait(record.id, timeout=120)
    assert done.state == WorkflowState.completed, done.message
    assert wrapped.calls["chat"] == before["chat"]  # story, script, storyboard... all restored
    assert wrapped.calls["image"] == before["image"] + 2  # only shot 1's two frames
    assert wrapped.calls["video"] - before["video"] == 3  # the three clips, and only them
    restored = {
        e.details.task for e in recorder.progress(record.id) if e.details.event == "task_restored"
    }
    assert {"story", "script", "scene/0/shot/2/frames"} <= restored
    assert "scene/0/shot/1/frames" not in restored


async def test_transient_provider_failures_are_retried_to_a_complete_video(tmp_path: Path) -> None:
    wrapped = Wrapped(fail=flaky(0.3))
    retry = RetryPolicy(max_attempts=12, backoff=0.0)
    async with vimax(tmp_path, wrapped, retry=retry) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", {"idea": IDEA, **SMALL})
        done = await coordinator.wait(record.id, timeout=120)
    assert done.state == WorkflowState.completed, done.message
    assert probe_video(tmp_path / record.id / "final_video.mp4").frames == 18
    retries = [e for e in recorder.progress(record.id) if e.details.event == "task_retrying"]
    assert retries
    assert coordinator.dead_letters == 0


async def test_a_provider_that_always_fails_fails_the_workflow_naming_stage_and_agent(
    tmp_path: Path,
) -> None:
    def broken(role: str, number: int) -> Exception | None:
        return (
            ProviderError("the image service refused", retryable=True) if role == "image" else None
        )

    async with vimax(tmp_path, Wrapped(fail=broken)) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", {"idea": IDEA, **SMALL})
        done = await coordinator.wait(record.id, timeout=120)
    assert done.state == WorkflowState.failed
    [error] = recorder.of("error", target_id=record.id)
    assert error.details["stage"] == "portraits"
    assert error.details["agent"] == "portrait_painter"
    assert error.details["attempts"] == 3
    assert error.retryable is True
    assert "the image service refused" in error.message
    assert not (tmp_path / record.id / "final_video.mp4").exists()


async def test_cancel_during_the_clips_stops_at_once_and_leaves_no_partial_video(
    tmp_path: Path,
) -> None:
    wrapped = Wrapped()
    _, waiting = wrapped.hold("video")
    async with vimax(tmp_path, wrapped) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", {"idea": IDEA, **SMALL})
        await asyncio.to_thread(waiting.acquire, True, 60)
        canceled = await coordinator.control(record.id, ControlAction.cancel)
        assert canceled.state == WorkflowState.canceled
        await asyncio.wait_for(
            recorder.wait_for(
                lambda e: (
                    e.type == "agent_status"
                    and e.agent_name == "video_generator"
                    and e.status == "idle"
                )
            ),
            1.0,
        )
    folder = tmp_path / record.id
    assert not (folder / "final_video.mp4").exists()
    assert list(folder.rglob("*.part")) == []
    assert list(folder.rglob("video.mp4")) == []


def _stages_done(event: Any, workflow_id: str, *names: str) -> bool:
    """Whether ``event`` shows every task of the named stages done (and some planned)."""
    if event.type != "progress" or event.workflow_id != workflow_id:
        return False
    counts = {s.name: (s.done, s.total) for s in event.details.stages}
    return all(counts[n][1] > 0 and counts[n][0] == counts[n][1] for n in names)
