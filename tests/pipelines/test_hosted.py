"""Idea2Video with hosted video models, through their real SDKs against local fakes of
their services: the fakes' clips end up in the film, cancel stops polling, and a
restart mid-job resumes the same remote job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import ImageStat

from vimax_nb.pipelines.editing import probe_video
from vimax_nb.protocol import ControlAction, WorkflowState
from vimax_nb.providers import ProviderCatalog, ProviderSettings

from ..providers.fake_google_server import FakeGoogle, decode_base64
from ..providers.fake_google_server import start as start_google
from ..providers.fake_replicate_server import FakeReplicate
from ..providers.fake_replicate_server import start as start_replicate
from .fakes import SMALL, vimax

IDEA = "A lighthouse keeper befriends a whale"
PARAMS = {"idea": IDEA, **SMALL}
VEO = "veo-3.0-generate-001"


@pytest.fixture(scope="module")
def google_service() -> Iterator[FakeGoogle]:
    with start_google() as fake:
        yield fake


@pytest.fixture
def google(google_service: FakeGoogle) -> FakeGoogle:
    google_service.reset()
    return google_service


def veo_catalog(fake: FakeGoogle) -> ProviderCatalog:
    """Offline chat and images; Veo through the fake, in Vertex express mode."""
    settings = ProviderSettings(
        provider="google",
        base_url=fake.base_url,
        api_key="test-key",
        requests_per_minute=1e6,
        options={"vertexai": True, "poll_interval": 0.01, "max_poll_interval": 0.02},
    )
    catalog = ProviderCatalog.configure({"video": settings}, environ={}, discover=False)
    assert catalog.entry("video").ready, catalog.entry("video").problem
    return catalog


def _grey_levels(path: Path) -> list[list[float]]:
    """The mean colour of each frame of a video."""
    with av.open(str(path)) as container:
        return [
            ImageStat.Stat(frame.to_image().convert("RGB")).mean  # type: ignore[no-untyped-call]
            for frame in container.decode(video=0)
        ]


async def test_idea2video_with_veo_films_the_services_clips(
    tmp_path: Path, google: FakeGoogle
) -> None:
    async with vimax(tmp_path, veo_catalog(google)) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", PARAMS)
        done = await coordinator.wait(record.id, timeout=120)

    assert done.state == WorkflowState.completed, done.message
    folder = tmp_path / record.id
    submitted = google.requests_to("predict")
    assert len(submitted) == 3  # one Veo job per shot
    sent_frames = sorted(
        decode_base64(r.body["instances"][0]["image"]["bytesBase64Encoded"]) for r in submitted
    )
    painted = sorted(
        (folder / "scene_0" / "shots" / str(j) / "first_frame.png").read_bytes() for j in range(3)
    )
    assert sent_frames == painted  # each clip starts from its shot's painted first frame
    assert {r.model for r in submitted} == {VEO}
    assert all(r.body["instances"][0]["prompt"] for r in submitted)
    # The film is made of the service's clips: three half-second fades from black to white.
    info = probe_video(folder / "final_video.mp4")
    assert (info.width, info.height) == (160, 96)
    assert info.duration == pytest.approx(1.5, abs=0.2)
    levels = _grey_levels(folder / "final_video.mp4")
    assert all(max(c) - min(c) <= 8 for c in levels)  # grey, as the service's clips
    assert levels[0][0] < 60 < levels[2][0]
    # Veo made 4 s clips (its shortest) and is priced without audio.
    veo = done.cost.models[VEO]
    assert (veo.calls, veo.video_seconds) == (3, 12.0)
    assert done.cost.total == pytest.approx(12 * 0.20)
    waits = [e.details.activity for e in recorder.progress(record.id)]
    assert any(a and a.startswith(f"waiting on {VEO} (") for a in waits)


async def test_cancel_mid_poll_stops_polling(tmp_path: Path, google: FakeGoogle) -> None:
    google.never_finish = True
    async with vimax(tmp_path, veo_catalog(google)) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", PARAMS)
        await recorder.wait_for(_polling, 60)
        seen = len(recorder.events)
        await coordinator.control(record.id, ControlAction.cancel)
        await recorder.wait_for(
            lambda e: _video_agent_idle(e) and recorder.events.index(e) >= seen, 10
        )
        polls = len(google.requests_to("fetch"))
        assert coordinator.store is not None
        jobs = await coordinator.store.workflows.jobs(record.id)
        state = (await coordinator.get_workflow(record.id)).state
    assert state == WorkflowState.canceled
    assert jobs == {}  # the operations were abandoned: nothing to resume
    assert len(google.requests_to("fetch")) == polls  # and nobody polls them any more


async def test_a_restart_mid_poll_resumes_the_same_operations(
    tmp_path: Path, google: FakeGoogle
) -> None:
    google.never_finish = True
    async with vimax(tmp_path, veo_catalog(google)) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", PARAMS)
        await recorder.wait_for(_polling, 60)
    started = {_operation_of(r) for r in google.requests_to("fetch")}
    submitted = len(google.requests_to("predict"))
    assert started
    google.never_finish = False
    async with vimax(tmp_path, veo_catalog(google)) as (coordinator, _):
        await coordinator.control(record.id, ControlAction.resume)
        done = await coordinator.wait(record.id, timeout=120)
    assert done.state == WorkflowState.completed, done.message
    polled_after = {_operation_of(r) for r in google.requests_to("fetch")}
    assert started <= polled_after
    # only the shots that had no job yet were submitted after the restart
    assert len(google.requests_to("predict")) == submitted + (3 - len(started))


def _operation_of(recorded: Any) -> str:
    return str(recorded.body["operationName"])


def _polling(event: Any) -> bool:
    """Whether a clip says it has waited on its job after a first poll."""
    activity = event.type == "progress" and event.details.activity
    return bool(activity) and "(0 s)" not in activity


def _video_agent_idle(event: Any) -> bool:
    return (
        event.type == "agent_status"
        and event.agent_name == "video_generator"
        and event.status == "idle"
    )


@pytest.fixture(scope="module")
def replicate_service() -> Iterator[FakeReplicate]:
    with start_replicate() as fake:
        yield fake


@pytest.fixture
def replicate(replicate_service: FakeReplicate) -> FakeReplicate:
    replicate_service.reset()
    return replicate_service


def replicate_catalog(fake: FakeReplicate) -> ProviderCatalog:
    """Offline chat and images; Seedance through the fake."""
    settings = ProviderSettings(
        provider="replicate",
        base_url=fake.base_url,
        api_key="r8_test",
        requests_per_minute=1e6,
        options={"poll_interval": 0.01, "max_poll_interval": 0.02},
    )
    catalog = ProviderCatalog.configure({"video": settings}, environ={}, discover=False)
    assert catalog.entry("video").ready, catalog.entry("video").problem
    return catalog


async def test_idea2video_with_seedance_on_replicate_films_its_clips(
    tmp_path: Path, replicate: FakeReplicate
) -> None:
    replicate.log_lines = ["loading model", "rendering frames", "encoding"]
    replicate.polls_before_done = 3
    async with vimax(tmp_path, replicate_catalog(replicate)) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", PARAMS)
        done = await coordinator.wait(record.id, timeout=120)

    assert done.state == WorkflowState.completed, done.message
    folder = tmp_path / record.id
    inputs = replicate.created_inputs()
    assert len(inputs) == 3
    shots = folder / "scene_0" / "shots"
    firsts = sorted(replicate.file_bytes(i["image"]) for i in inputs)
    lasts = sorted(replicate.file_bytes(i["last_frame_image"]) for i in inputs)
    assert firsts == sorted((shots / str(j) / "first_frame.png").read_bytes() for j in range(3))
    assert lasts == sorted((shots / str(j) / "last_frame.png").read_bytes() for j in range(3))
    assert all(i["prompt"] for i in inputs)
    levels = _grey_levels(folder / "final_video.mp4")
    assert all(max(c) - min(c) <= 8 for c in levels)  # the service's grey fades
    assert done.cost.models["bytedance/seedance-1-lite"].calls == 3
    waits = [e.details.activity or "" for e in recorder.progress(record.id)]
    assert any(a.endswith(": rendering frames") for a in waits)  # the prediction's log, as progress


async def test_cancel_mid_poll_cancels_the_predictions(
    tmp_path: Path, replicate: FakeReplicate
) -> None:
    replicate.never_finish = True
    async with vimax(tmp_path, replicate_catalog(replicate)) as (coordinator, recorder):
        record = await coordinator.submit("idea2video", PARAMS)
        await recorder.wait_for(_polling, 60)
        seen = len(recorder.events)
        await coordinator.control(record.id, ControlAction.cancel)
        await recorder.wait_for(
            lambda e: _video_agent_idle(e) and recorder.events.index(e) >= seen, 10
        )
        polls = len(replicate.requests_to("get"))
    created = {r.path for r in replicate.requests_to("create")}
    canceled = replicate.requests_to("cancel")
    assert created
    assert len(canceled) == len(replicate.requests_to("create"))  # every started one
    assert len(replicate.requests_to("get")) == polls
