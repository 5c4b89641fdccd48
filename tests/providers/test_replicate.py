"""The Replicate provider through the real ``replicate`` SDK against a local fake of
Replicate's HTTP API (tests/providers/fake_replicate_server.py)."""

from __future__ import annotations

import io
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from vimax_nb.providers import build_model
from vimax_nb.providers.base import (
    BudgetExceeded,
    ImageModel,
    ProviderCall,
    ProviderError,
    Role,
    Usage,
    VideoModel,
    VideoRequest,
)
from vimax_nb.providers.replicate import (
    ReplicateImageModel,
    ReplicateVideoModel,
    build,
)
from vimax_nb.providers.settings import ProviderSettings
from vimax_nb.shared import CancelToken, TaskCanceled

from .fake_replicate_server import FakeReplicate, make_mp4, start

SEEDANCE = "bytedance/seedance-1-lite"
SEEDREAM = "bytedance/seedream-4"
KONTEXT = "black-forest-labs/flux-kontext-pro"
TOKEN = "r8_test_token"
FAST = {"poll_interval": 0.01, "max_poll_interval": 0.01}
#: Variables the SDK reads from the process's environment, whatever it is given.
SDK_VARIABLES = ("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "REPLICATE_POLL_INTERVAL")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SDK_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def fake_module() -> Iterator[FakeReplicate]:
    with start() as fake:
        yield fake


@pytest.fixture
def fake(fake_module: FakeReplicate) -> FakeReplicate:
    """The module's fake (one server: fast), reset."""
    fake_module.reset()
    return fake_module


def settings(fake: FakeReplicate, **changes: Any) -> ProviderSettings:
    values: dict[str, Any] = {
        "provider": "replicate",
        "base_url": fake.base_url,
        "api_key": TOKEN,
        "requests_per_minute": 1e6,
        "timeout": 10,
    }
    options = {**FAST, **changes.pop("options", {})}
    values.update(changes, options=options)
    return ProviderSettings.model_validate(values)


def video_model(fake: FakeReplicate, **changes: Any) -> ReplicateVideoModel:
    model = build("video", settings(fake, **changes), {})
    assert isinstance(model, ReplicateVideoModel)
    return model


def image_model(fake: FakeReplicate, **changes: Any) -> ReplicateImageModel:
    model = build("image", settings(fake, **changes), {})
    assert isinstance(model, ReplicateImageModel)
    return model


class Slot:
    """A job slot that remembers what it was set to, and how many polls had been sent."""

    def __init__(self, fake: FakeReplicate, value: str | None = None) -> None:
        self.fake = fake
        self.value = value
        self.history: list[tuple[str | None, int]] = []

    def get(self) -> str | None:
        return self.value

    def set(self, job_id: str | None) -> None:
        self.value = job_id
        self.history.append((job_id, len(self.fake.requests_to("get"))))


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (32, 18)) -> bytes:
    Image.new("RGB", size, color).save(path)
    return path.read_bytes()


def frames(tmp_path: Path) -> tuple[list[Path], bytes, bytes]:
    """A shot's first and last frame, and their bytes."""
    first = write_png(tmp_path / "first.png", (10, 20, 30))
    last = write_png(tmp_path / "last.png", (30, 20, 10))
    return [tmp_path / "first.png", tmp_path / "last.png"], first, last


def refuse(usage: Usage) -> None:
    raise BudgetExceeded(f"{usage.model}: over budget", provider=usage.provider)


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# -- video --------------------------------------------------------------------------------


def test_a_clip_is_made_from_uploaded_frames_polled_and_saved(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    paths, first, last = frames(tmp_path)
    fake.polls_before_done = 2
    fake.log_lines = ["Loading model", "Generating frame 40/81", "Encoding video"]
    model = video_model(fake)
    assert isinstance(model, VideoModel)
    assert (model.provider, model.model) == ("replicate", SEEDANCE)
    slot = Slot(fake)
    progress: list[str] = []
    used: list[Usage] = []
    output = tmp_path / "shots" / "clip.mp4"

    path = model.generate_single_video(
        "Motion: pan left",
        paths,
        VideoRequest(output, size=(640, 360), duration=2.5),
        ProviderCall(seed=9, job=slot, on_progress=progress.append, on_usage=used.append),
    )

    assert path == output
    assert decoded_frames(output) == 6
    assert not output.with_name("clip.mp4.part").exists()
    uploads = fake.requests_to("upload")
    assert [u.body.files[0].data for u in uploads] == [first, last]
    assert [(u.body.files[0].filename, u.body.files[0].content_type) for u in uploads] == [
        ("first.png", "image/png"),
        ("last.png", "image/png"),
    ]
    (created,) = fake.requests_to("create")
    assert created.path == f"/v1/models/{SEEDANCE}/predictions"
    assert created.headers["authorization"] == f"Bearer {TOKEN}"
    sent = created.body["input"]
    assert fake.file_bytes(sent.pop("image")) == first
    assert fake.file_bytes(sent.pop("last_frame_image")) == last
    assert sent == {"prompt": "Motion: pan left", "duration": 3, "aspect_ratio": "16:9", "seed": 9}
    polls = fake.requests_to("get")
    (prediction_id,) = fake.predictions
    assert [p.path for p in polls] == [f"/v1/predictions/{prediction_id}"] * 3
    assert progress == [
        f"waiting on {SEEDANCE} (0 s)",
        f"waiting on {SEEDANCE} (0 s): Loading model",
        f"waiting on {SEEDANCE} (0 s): Generating frame 40/81",
    ]
    assert len(fake.requests_to("download")) == 1
    assert slot.history == [(prediction_id, 0), (None, 3)]
    assert used == [Usage("replicate", SEEDANCE, "video", video_seconds=3.0)]


def test_the_budget_is_asked_before_anything_is_sent_and_usage_recorded_after(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    paths, _, _ = frames(tmp_path)
    events: list[tuple[str, str, int]] = []
    call = ProviderCall(
        budget=lambda usage: events.append(("authorize", usage.role, len(fake.requests))),
        on_usage=lambda usage: events.append(("record", usage.role, len(fake.requests))),
    )

    video_model(fake).generate_single_video("a shot", paths, VideoRequest(tmp_path / "c.mp4"), call)
    image_model(fake).generate_single_image("a frame", paths, call=call)

    # video: 2 uploads, create, 2 polls, download; image: 2 uploads, create, 2 polls, download
    assert events == [
        ("authorize", "video", 0),
        ("record", "video", 6),
        ("authorize", "image", 6),
        ("record", "image", 12),
    ]


def test_a_prediction_the_budget_refuses_is_never_created(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    paths, _, _ = frames(tmp_path)
    slot = Slot(fake)
    with pytest.raises(BudgetExceeded, match=f"{SEEDANCE}: over budget"):
        video_model(fake).generate_single_video(
            "x", paths, VideoRequest(tmp_path / "c.mp4"), ProviderCall(budget=refuse, job=slot)
        )
    with pytest.raises(BudgetExceeded, match=f"{SEEDREAM}: over budget"):
        image_model(fake).generate_single_image("x", paths, call=ProviderCall(budget=refuse))
    assert fake.requests == []
    assert slot.history == []


def test_a_canceled_call_or_a_missing_frame_sends_nothing(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    paths, _, _ = frames(tmp_path)
    token = CancelToken()
    token.cancel()
    call = ProviderCall(cancel_token=token)
    with pytest.raises(TaskCanceled):
        video_model(fake).generate_single_video("x", paths, VideoRequest(tmp_path / "c.mp4"), call)
    with pytest.raises(TaskCanceled):
        image_model(fake).generate_single_image("x", paths, call=call)
    with pytest.raises(ProviderError, match=r"gone\.png") as caught:
        video_model(fake).generate_single_video(
            "x", [tmp_path / "gone.png"], VideoRequest(tmp_path / "c.mp4")
        )
    assert caught.value.retryable is False
    assert fake.requests == []


def test_a_cancel_cancels_the_prediction_and_stops_polling_at_once(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    paths, _, _ = frames(tmp_path)
    fake.never_finish = True
    token = CancelToken()
    slot = Slot(fake)
    waiting = threading.Event()

    def cancel_once_waiting() -> None:
        waiting.wait(10)
        token.cancel()

    canceller = threading.Thread(target=cancel_once_waiting)
    canceller.start()
    model = video_model(fake, options={"poll_interval": 30, "max_poll_interval": 30})

    started = time.monotonic()
    with pytest.raises(TaskCanceled):
        model.generate_single_video(
            "a shot",
            paths,
            VideoRequest(tmp_path / "clip.mp4"),
            ProviderCall(cancel_token=token, job=slot, on_progress=lambda _: waiting.set()),
        )
    canceller.join()

    assert time.monotonic() - started < 5, "the 30 s wait must end at the cancel"
    (prediction_id,) = fake.predictions
    (canceled,) = fake.requests_to("cancel")
    assert canceled.path == f"/v1/predictions/{prediction_id}/cancel"
    assert fake.requests[-1] == canceled, "nothing is polled after the cancel"
    assert fake.predictions[prediction_id].status == "canceled"
    assert slot.history == [(prediction_id, 0), (None, 0)]
    assert not (tmp_path / "clip.mp4").exists()


def test_an_interrupt_stops_polling_but_keeps_the_prediction(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    paths, _, _ = frames(tmp_path)
    fake.never_finish = True
    token = CancelToken()
    slot = Slot(fake)

    with pytest.raises(TaskCanceled):
        video_model(fake).generate_single_video(
            "a shot",
            paths,
            VideoRequest(tmp_path / "clip.mp4"),
            ProviderCall(cancel_token=token, job=slot, on_progress=lambda _: token.interrupt()),
        )

    (prediction_id,) = fake.predictions
    assert slot.value == prediction_id, "the resumed workflow polls the same prediction"
    assert fake.requests_to("cancel") == []


def test_a_remembered_prediction_is_polled_again_without_a_new_one(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    prediction_id = fake.add_prediction(
        SEEDANCE, polls_before_done=1, input={"prompt": "a shot", "duration": 5}
    )
    slot = Slot(fake, prediction_id)
    used: list[Usage] = []

    video_model(fake).generate_single_video(
        "a shot",
        [tmp_path / "not-read.png"],
        VideoRequest(tmp_path / "clip.mp4", duration=4.0),
        ProviderCall(job=slot, budget=refuse, on_usage=used.append),
    )

    assert fake.requests_to("create") == []
    assert fake.requests_to("upload") == []
    polls = fake.requests_to("get")
    # the first poll reads it back (still processing), the second finds it done
    assert [p.path for p in polls] == [f"/v1/predictions/{prediction_id}"] * 2
    assert decoded_frames(tmp_path / "clip.mp4") == 6
    assert slot.history == [(None, 2)]
    assert used == [Usage("replicate", SEEDANCE, "video", video_seconds=5.0)]


@pytest.mark.parametrize(
    "remembered", ["projects/p/locations/l/publishers/google/models/veo/operations/1", "other"]
)
def test_a_remembered_job_that_is_not_this_models_prediction_is_set_aside(
    fake: FakeReplicate, tmp_path: Path, remembered: str
) -> None:
    paths, _, _ = frames(tmp_path)
    if remembered == "other":
        remembered = fake.add_prediction("kwaivgi/kling-v2.1")
    slot = Slot(fake, remembered)

    video_model(fake).generate_single_video(
        "a shot", paths, VideoRequest(tmp_path / "clip.mp4"), ProviderCall(job=slot)
    )

    assert len(fake.requests_to("create")) == 1
    assert slot.value is None


@pytest.mark.parametrize(
    ("failure", "retryable", "words"),
    [
        ("Output flagged as sensitive (E005)", False, "refused the content"),
        ("NSFW content detected in the first frame", False, "NSFW content detected"),
        ("Invalid input: end_image requires pro mode", False, "rejected the input"),
        ("CUDA out of memory", True, "failed: CUDA out of memory"),
    ],
)
def test_a_failed_prediction_is_reported_and_forgotten(
    fake: FakeReplicate, tmp_path: Path, failure: str, retryable: bool, words: str
) -> None:
    paths, _, _ = frames(tmp_path)
    fake.failure = failure
    slot = Slot(fake)
    used: list[Usage] = []
    with pytest.raises(ProviderError) as caught:
        video_model(fake).generate_single_video(
            "a shot",
            paths,
            VideoRequest(tmp_path / "clip.mp4"),
            ProviderCall(job=slot, on_usage=used.append),
        )
    assert caught.value.retryable is retryable
    assert caught.value.provider == "replicate"
    assert words in str(caught.value)
    assert failure in str(caught.value)
    assert slot.value is None
    assert used == []
    assert not (tmp_path / "clip.mp4").exists()


def test_a_prediction_that_takes_too_long_is_retryable_and_kept(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    paths, _, _ = frames(tmp_path)
    fake.never_finish = True
    slot = Slot(fake)
    with pytest.raises(ProviderError, match="did not finish") as caught:
        video_model(fake, options={"timeout": 0.05}).generate_single_video(
            "a shot", paths, VideoRequest(tmp_path / "clip.mp4"), ProviderCall(job=slot)
        )
    assert caught.value.retryable is True
    assert slot.value is not None


def test_a_clip_that_does_not_decode_is_retryable_and_fetched_again(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    paths, _, _ = frames(tmp_path)
    fake.video = b"not a video"
    slot = Slot(fake)
    with pytest.raises(ProviderError, match="cannot be decoded") as caught:
        video_model(fake).generate_single_video(
            "a shot", paths, VideoRequest(tmp_path / "clip.mp4"), ProviderCall(job=slot)
        )
    assert caught.value.retryable is True
    assert slot.value is not None

    fake.video = make_mp4()
    video_model(fake).generate_single_video(
        "a shot", paths, VideoRequest(tmp_path / "clip.mp4"), ProviderCall(job=slot)
    )
    assert len(fake.requests_to("create")) == 1, "the retry downloads the same output"
    assert slot.value is None


def test_an_output_that_is_gone_is_forgotten(fake: FakeReplicate, tmp_path: Path) -> None:
    paths, _, _ = frames(tmp_path)
    fake.output_removed = True
    slot = Slot(fake)
    with pytest.raises(ProviderError, match="without an output file") as caught:
        video_model(fake).generate_single_video(
            "a shot", paths, VideoRequest(tmp_path / "clip.mp4"), ProviderCall(job=slot)
        )
    assert caught.value.retryable is True
    assert slot.value is None


@pytest.mark.parametrize(
    ("kind", "status", "detail", "retryable", "words"),
    [
        ("create", 401, "You did not pass a valid authentication token", False, "REPLICATE_API"),
        ("create", 402, "You have insufficient credit", False, "add some at"),
        ("create", 404, "The requested resource could not be found.", False, "model name"),
        ("create", 422, "- input.duration: must be one of 5, 10", False, "input.duration"),
        ("create", 429, "Request was throttled", True, "VIMAX_REPLICATE_RPM"),
        ("create", 500, "Internal server error", True, "HTTP 500"),
        ("upload", 503, "Service unavailable", True, "uploading first.png"),
        ("get", 502, "Bad gateway", True, "polling prediction"),
        ("download", 500, "Internal Server Error", True, "downloading"),
    ],
)
def test_http_errors_are_mapped(
    fake: FakeReplicate,
    tmp_path: Path,
    kind: str,
    status: int,
    detail: str,
    retryable: bool,
    words: str,
) -> None:
    paths, _, _ = frames(tmp_path)
    fake.fail(kind, status, detail)
    slot = Slot(fake)
    with pytest.raises(ProviderError) as caught:
        video_model(fake).generate_single_video(
            "a shot", paths, VideoRequest(tmp_path / "clip.mp4"), ProviderCall(job=slot)
        )
    assert caught.value.retryable is retryable
    assert words in str(caught.value)
    if status != 422:
        assert f"HTTP {status}" in str(caught.value)
    assert detail.split(":")[-1].strip() in str(caught.value)
    if kind in ("get", "download"):
        assert slot.value is not None, "a prediction is kept over a failed poll or download"


def test_a_prediction_gone_while_polling_is_forgotten(fake: FakeReplicate, tmp_path: Path) -> None:
    paths, _, _ = frames(tmp_path)
    fake.fail("get", 404, "The requested resource could not be found.")
    slot = Slot(fake)
    with pytest.raises(ProviderError, match="is gone") as caught:
        video_model(fake).generate_single_video(
            "a shot", paths, VideoRequest(tmp_path / "clip.mp4"), ProviderCall(job=slot)
        )
    assert caught.value.retryable is True
    assert slot.value is None


def test_families_name_their_inputs(fake: FakeReplicate, tmp_path: Path) -> None:
    paths, first, last = frames(tmp_path)

    def inputs(model: str, size: tuple[int, int] = (640, 360), **options: Any) -> dict[str, Any]:
        fake.reset()
        video = video_model(fake, model=model, options=options)
        clip = tmp_path / f"{len(list(tmp_path.iterdir()))}.mp4"
        video.generate_single_video("go", paths, VideoRequest(clip, size=size, duration=2.0))
        (created,) = fake.requests_to("create")
        assert created.path == f"/v1/models/{model}/predictions"
        found = created.body["input"]
        for key, value in list(found.items()):
            if isinstance(value, str) and "/v1/files/" in value:
                found[key] = {first: "FIRST", last: "LAST"}[fake.file_bytes(value)]
        return dict(found)

    assert inputs("kwaivgi/kling-v2.1") == {
        "prompt": "go",
        "start_image": "FIRST",
        "duration": 5,
    }
    assert inputs("kwaivgi/kling-v2.1", input={"mode": "pro"})["end_image"] == "LAST"
    assert inputs("minimax/hailuo-02") == {
        "prompt": "go",
        "first_frame_image": "FIRST",
        "last_frame_image": "LAST",
        "duration": 6,
    }
    assert inputs("wan-video/wan-2.2-i2v-fast") == {
        "prompt": "go",
        "image": "FIRST",
        "last_image": "LAST",
        "num_frames": 81,
        "seed": 0,
    }
    assert inputs("google/veo-3", size=(360, 640)) == {
        "prompt": "go",
        "image": "FIRST",
        "duration": 4,
        "aspect_ratio": "9:16",
        "seed": 0,
        "generate_audio": False,
    }
    assert inputs("google/veo-3.1")["last_frame"] == "LAST"
    assert inputs("someone/new-video-model") == {"prompt": "go", "image": "FIRST"}
    assert inputs(
        "someone/new-video-model",
        first_frame_key="start",
        last_frame_key="end",
        duration_key="seconds",
        durations=[3, 7],
        input={"quality": "high"},
    ) == {"prompt": "go", "start": "FIRST", "end": "LAST", "seconds": 3, "quality": "high"}
    assert "last_frame_image" not in inputs(SEEDANCE, last_frame_key="")


def test_the_length_picked_and_the_seconds_used() -> None:
    def chosen(model: str, seconds: float) -> tuple[int | None, float]:
        video = build("video", ProviderSettings(provider="replicate", model=model, api_key="k"))
        assert isinstance(video, ReplicateVideoModel)
        family = video.family
        value = family.duration_value(seconds)
        sent = {family.duration_key: value} if family.duration_key else {}
        return value, family.seconds(sent, seconds)

    assert chosen(SEEDANCE, 0.5) == (2, 2.0)
    assert chosen(SEEDANCE, 7.2) == (8, 8.0)
    assert chosen(SEEDANCE, 30) == (12, 12.0)
    assert chosen("kwaivgi/kling-v2.5-turbo-pro", 6) == (10, 10.0)
    assert chosen("google/veo-2", 4) == (5, 5.0)
    assert chosen("wan-video/wan-2.2-i2v-fast", 6) == (96, 6.0)
    assert chosen("wan-video/wan-2.2-i2v-fast", 20) == (121, 121 / 16)
    assert chosen("someone/new-video-model", 3.5) == (None, 3.5)


def test_a_versioned_model_is_run_by_version(fake: FakeReplicate, tmp_path: Path) -> None:
    paths, _, _ = frames(tmp_path)
    version = "a" * 64
    fake.versions[version] = "someone/video-model"
    model = video_model(fake, model=f"someone/video-model:{version}")

    model.generate_single_video("go", paths, VideoRequest(tmp_path / "clip.mp4"))
    model.probe()

    (created,) = fake.requests_to("create")
    assert created.path == "/v1/predictions"
    assert created.body["version"] == version
    assert fake.file_bytes(created.body["input"]["image"]) == paths[0].read_bytes()
    (probed,) = fake.requests_to("get_version")
    assert probed.path == f"/v1/models/someone/video-model/versions/{version}"


# -- images -------------------------------------------------------------------------------


def banded_png() -> bytes:
    """160x160 red with a green top band and a blue bottom band that a 16:9 crop cuts."""
    answer = Image.new("RGB", (160, 160), (255, 0, 0))
    answer.paste((0, 255, 0), (0, 0, 160, 30))
    answer.paste((0, 0, 255), (0, 130, 160, 160))
    buffer = io.BytesIO()
    answer.save(buffer, format="PNG")
    return buffer.getvalue()


def test_seedream_gets_every_reference_and_the_image_is_fitted(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    hero = write_png(tmp_path / "hero.png", (200, 10, 10))
    Image.new("RGB", (40, 40), (10, 200, 10)).save(tmp_path / "harbour.jpg", format="JPEG")
    harbour = (tmp_path / "harbour.jpg").read_bytes()
    fake.image = banded_png()
    model = image_model(fake)
    assert isinstance(model, ImageModel)
    assert (model.provider, model.model) == ("replicate", SEEDREAM)
    used: list[Usage] = []

    output = model.generate_single_image(
        "Style: watercolor",
        [tmp_path / "hero.png", str(tmp_path / "harbour.jpg")],
        size="320x180",
        call=ProviderCall(seed=5, on_usage=used.append),
    )

    assert output.image.size == (320, 180)
    assert output.image.mode == "RGB"
    for corner in ((2, 2), (317, 2), (2, 177), (317, 177)):
        assert output.image.getpixel(corner) == (255, 0, 0)
    uploads = [u.body.files[0] for u in fake.requests_to("upload")]
    assert [(u.data, u.content_type) for u in uploads] == [
        (hero, "image/png"),
        (harbour, "image/jpeg"),
    ]
    (created,) = fake.requests_to("create")
    assert created.path == f"/v1/models/{SEEDREAM}/predictions"
    sent = created.body["input"]
    assert [fake.file_bytes(url) for url in sent.pop("image_input")] == [hero, harbour]
    assert sent == {"prompt": "Style: watercolor", "aspect_ratio": "16:9"}
    (prediction,) = fake.predictions.values()
    assert isinstance(prediction.output, list), "Seedream answers a list"
    assert used == [Usage("replicate", SEEDREAM, "image", images=1)]


def test_kontext_gets_the_first_reference_only(fake: FakeReplicate, tmp_path: Path) -> None:
    hero = write_png(tmp_path / "hero.png", (200, 10, 10))
    write_png(tmp_path / "villain.png", (10, 10, 200))

    output = image_model(fake, model=KONTEXT).generate_single_image(
        "a frame",
        [tmp_path / "hero.png", tmp_path / "villain.png"],
        size="360x640",
        call=ProviderCall(seed=3),
    )

    assert output.image.size == (360, 640)
    assert len(fake.requests_to("upload")) == 1
    (created,) = fake.requests_to("create")
    sent = created.body["input"]
    assert fake.file_bytes(sent.pop("input_image")) == hero
    assert sent == {
        "prompt": "a frame",
        "aspect_ratio": "9:16",
        "seed": 3,
        "output_format": "png",
    }


def test_an_image_that_does_not_decode_or_a_bad_size(fake: FakeReplicate) -> None:
    fake.image = b"not an image"
    with pytest.raises(ProviderError, match="could not decode") as caught:
        image_model(fake).generate_single_image("a frame", size="64x64")
    assert caught.value.retryable is True
    with pytest.raises(ProviderError, match="WIDTHxHEIGHT") as caught:
        image_model(fake).generate_single_image("a frame", size="big")
    assert caught.value.retryable is False


# -- probe and configuration --------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_probe(fake: FakeReplicate) -> None:
    video_model(fake).probe()
    (probed,) = fake.requests_to("get_model")
    assert probed.path == f"/v1/models/{SEEDANCE}"
    assert probed.headers["authorization"] == f"Bearer {TOKEN}"

    fake.models = {SEEDANCE}
    with pytest.raises(ProviderError, match=r"HTTP 404.*check the model name") as caught:
        video_model(fake, model="bytedance/seedance-9").probe()
    assert caught.value.retryable is False

    fake.token = "another"
    with pytest.raises(ProviderError, match=r"HTTP 401.*REPLICATE_API_TOKEN") as caught:
        image_model(fake).probe()
    assert caught.value.retryable is False

    unreachable = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(ProviderError, match=re.escape(f"{unreachable} is unreachable")) as caught:
        video_model(fake, base_url=unreachable).probe()
    assert caught.value.retryable is True


def problem(role: Role, environ: dict[str, str], **values: Any) -> str:
    with pytest.raises(ProviderError) as caught:
        build_model(role, ProviderSettings(provider="replicate", **values), environ)
    assert caught.value.retryable is False
    assert caught.value.provider == "replicate"
    return str(caught.value)


def test_configuration_problems_say_what_to_fix() -> None:
    token = {"REPLICATE_API_TOKEN": "t"}
    assert "REPLICATE_API_TOKEN" in problem("video", {})
    assert "api_key/api_key_env" in problem("image", {})
    assert "replicate has no chat model" in problem("chat", token)
    assert "owner/name" in problem("video", token, model="seedance")
    assert "poll_interval" in problem("video", token, options={"poll": 1})
    assert "apply to image models" in problem("video", token, options={"image_key": "x"})
    assert "apply to video models" in problem("image", token, options={"durations": [5]})
    assert "VIMAX_REPLICATE_RPM" in problem("video", {**token, "VIMAX_REPLICATE_RPM": "x"})
    with pytest.raises(ValueError, match="no chat model"):
        build("chat", ProviderSettings(provider="replicate", api_key="k"))


def test_settings_and_environment_choose_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {
        "REPLICATE_API_TOKEN": "env-token",
        "VIMAX_REPLICATE_VIDEO_MODEL": "kwaivgi/kling-v2.1",
        "VIMAX_REPLICATE_IMAGE_MODEL": KONTEXT,
        "VIMAX_REPLICATE_RPM": "off",
        "REPLICATE_BASE_URL": "http://127.0.0.1:9/",
    }
    video = build_model("video", ProviderSettings(provider="replicate"), environ)
    assert isinstance(video, ReplicateVideoModel)
    config = video.config
    assert (config.model, config.api_token, config.base_url) == (
        "kwaivgi/kling-v2.1",
        "env-token",
        "http://127.0.0.1:9",
    )
    assert config.requests_per_minute is None
    assert (config.job_timing.interval, config.job_timing.timeout) == (5.0, 1800.0)
    image = build_model("image", ProviderSettings(provider="replicate"), environ)
    assert isinstance(image, ReplicateImageModel)
    assert image.model == KONTEXT
    assert (image.config.job_timing.interval, image.config.job_timing.timeout) == (1.0, 300.0)

    monkeypatch.setenv("REPLICATE_API_TOKEN", "process-token")
    chosen = build_model(
        "video",
        ProviderSettings(
            provider="replicate",
            model="google/veo-3",
            api_key_env="MY_TOKEN",
            requests_per_minute=6,
            options={"poll_interval": 2, "timeout": 60},
        ),
        {"MY_TOKEN": "mine"},
    )
    assert isinstance(chosen, ReplicateVideoModel)
    assert (chosen.model, chosen.config.api_token, chosen.config.base_url) == (
        "google/veo-3",
        "mine",
        "https://api.replicate.com",
    )
    assert chosen.rate_limiter.interval == 10.0
    assert (chosen.config.job_timing.interval, chosen.config.job_timing.timeout) == (2.0, 60.0)
    default = build_model("video", ProviderSettings(provider="replicate"))
    assert (default.model, default.config.api_token) == (SEEDANCE, "process-token")
