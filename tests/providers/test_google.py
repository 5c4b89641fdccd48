"""The Google provider through the real google-genai SDK against a local fake of the
Gemini API and Vertex AI (tests/providers/fake_google_server.py)."""

from __future__ import annotations

import io
import json
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

from vimax_nb.pipelines.models import Story
from vimax_nb.providers import build_model
from vimax_nb.providers.base import (
    BudgetExceeded,
    ChatModel,
    ChatRequest,
    ImageModel,
    ProviderCall,
    ProviderError,
    Role,
    Usage,
    VideoModel,
    VideoRequest,
)
from vimax_nb.providers.google import (
    GoogleChatModel,
    GoogleImageModel,
    GoogleVideoModel,
    build,
)
from vimax_nb.providers.google.images import aspect_ratio_for
from vimax_nb.providers.google.video import VEO_FAMILIES, veo_duration, veo_family
from vimax_nb.providers.settings import ProviderSettings
from vimax_nb.shared import CancelToken, TaskCanceled

from .fake_google_server import ACCESS_TOKEN, FakeGoogle, decode_base64, start

GOOD_STORY = {"title": "The Lighthouse", "logline": "A keeper waits.", "text": "Once upon a time."}
VEO3 = "veo-3.0-generate-001"
WAITING = re.compile(r"waiting on veo-3\.0-generate-001 \(\d+ s\)")
#: Variables the SDK reads from the process's environment, whatever it is given.
SDK_VARIABLES = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SDK_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def fake_module() -> Iterator[FakeGoogle]:
    with start() as fake:
        yield fake


@pytest.fixture
def fake(fake_module: FakeGoogle) -> FakeGoogle:
    """The module's fake (one server: fast), reset."""
    fake_module.reset()
    return fake_module


def settings(fake: FakeGoogle, **changes: Any) -> ProviderSettings:
    values: dict[str, Any] = {
        "provider": "google",
        "base_url": fake.base_url,
        "api_key": "test-key",
        "requests_per_minute": 1e6,
        "timeout": 10,
    }
    values.update(changes)
    return ProviderSettings.model_validate(values)


VEO_OPTIONS = {"vertexai": True, "poll_interval": 0.01, "max_poll_interval": 0.01}


def video_settings(fake: FakeGoogle, **changes: Any) -> ProviderSettings:
    options = {**VEO_OPTIONS, **changes.pop("options", {})}
    return settings(fake, options=options, **changes)


def chat_model(fake: FakeGoogle, **changes: Any) -> GoogleChatModel:
    model = build("chat", settings(fake, **changes), {})
    assert isinstance(model, GoogleChatModel)
    return model


def image_model(fake: FakeGoogle, **changes: Any) -> GoogleImageModel:
    model = build("image", settings(fake, **changes), {})
    assert isinstance(model, GoogleImageModel)
    return model


def video_model(fake: FakeGoogle, **changes: Any) -> GoogleVideoModel:
    model = build("video", video_settings(fake, **changes), {})
    assert isinstance(model, GoogleVideoModel)
    return model


def story_request(seed: int = 7) -> ChatRequest[Story]:
    return ChatRequest(
        task="develop_story",
        instructions="You are a screenwriter.",
        inputs={"idea": "a lighthouse keeper", "length": 3},
        response_model=Story,
        seed=seed,
    )


class Slot:
    """A job slot that remembers what it was set to, and how many polls had been sent."""

    def __init__(self, fake: FakeGoogle, value: str | None = None) -> None:
        self.fake = fake
        self.value = value
        self.history: list[tuple[str | None, int]] = []

    def get(self) -> str | None:
        return self.value

    def set(self, job_id: str | None) -> None:
        self.value = job_id
        self.history.append((job_id, len(self.fake.requests_to("fetch"))))


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (32, 18)) -> bytes:
    Image.new("RGB", size, color).save(path)
    return path.read_bytes()


def refuse(usage: Usage) -> None:
    raise BudgetExceeded(f"{usage.model}: over budget", provider=usage.provider)


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# -- chat ---------------------------------------------------------------------------------


def test_a_structured_answer_is_asked_for_and_parsed(fake: FakeGoogle) -> None:
    fake.chat_answers.append(json.dumps(GOOD_STORY))
    chat = chat_model(fake)
    assert isinstance(chat, ChatModel)
    assert (chat.provider, chat.model) == ("google", "gemini-2.5-flash")
    used: list[Usage] = []

    story = chat.complete(story_request(seed=7), ProviderCall(seed=41, on_usage=used.append))

    assert story == Story(**GOOD_STORY)
    (sent,) = fake.requests_to("generate_content")
    assert sent.path == "/v1/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "test-key"
    config = sent.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == Story.model_json_schema()
    assert config["seed"] == 41
    system = sent.body["systemInstruction"]["parts"][0]["text"]
    assert system.startswith("You are a screenwriter.")
    assert "JSON schema" in system
    (user,) = sent.body["contents"]
    assert user["role"] == "user"
    assert json.loads(user["parts"][0]["text"]) == {
        "task": "develop_story",
        "inputs": {"idea": "a lighthouse keeper", "length": 3},
    }
    assert used == [Usage("google", "gemini-2.5-flash", "chat", input_tokens=12, output_tokens=34)]


def test_an_invalid_answer_is_reasked_in_the_same_conversation(fake: FakeGoogle) -> None:
    invalid = json.dumps({"title": "T", "logline": "L", "text": ""})
    fake.chat_answers.extend([invalid, json.dumps(GOOD_STORY)])

    story = chat_model(fake).complete(story_request())

    assert story.title == "The Lighthouse"
    first, second = fake.requests_to("generate_content")
    assert len(first.body["contents"]) == 1
    question, answer, reask = second.body["contents"]
    assert question == first.body["contents"][0]
    assert answer == {"role": "model", "parts": [{"text": invalid}]}
    assert reask["role"] == "user"
    assert "at least 1 character" in reask["parts"][0]["text"]
    assert second.body["generationConfig"] == first.body["generationConfig"]


def test_always_invalid_answers_give_up_after_max_reasks(fake: FakeGoogle) -> None:
    fake.chat_answers.extend(["not json"] * 2)
    with pytest.raises(ProviderError, match="invalid output") as caught:
        chat_model(fake, options={"max_reasks": 1}).complete(story_request())
    assert caught.value.retryable is True
    assert len(fake.requests_to("generate_content")) == 2


def test_each_paid_request_is_authorized_before_it_is_sent_and_recorded_after(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.chat_answers.extend(["not json", json.dumps(GOOD_STORY)])
    write_png(tmp_path / "hero.png", (1, 2, 3))
    events: list[tuple[str, str, int]] = []
    call = ProviderCall(
        budget=lambda usage: events.append(("authorize", usage.role, len(fake.requests))),
        on_usage=lambda usage: events.append(("record", usage.role, len(fake.requests))),
    )

    chat_model(fake).complete(story_request(), call)
    image_model(fake).generate_single_image("a frame", [tmp_path / "hero.png"], call=call)
    video_model(fake).generate_single_video(
        "a shot", [tmp_path / "hero.png"], VideoRequest(tmp_path / "clip.mp4"), call
    )

    assert events == [
        ("authorize", "chat", 0),
        ("record", "chat", 1),
        ("authorize", "chat", 1),
        ("record", "chat", 2),
        ("authorize", "image", 2),
        ("record", "image", 3),
        ("authorize", "video", 3),
        ("record", "video", 4),
    ]


def test_a_request_the_budget_refuses_is_not_sent(fake: FakeGoogle, tmp_path: Path) -> None:
    write_png(tmp_path / "hero.png", (1, 2, 3))
    call = ProviderCall(budget=refuse)
    with pytest.raises(BudgetExceeded, match=r"gemini-2\.5-flash: over budget"):
        chat_model(fake).complete(story_request(), call)
    with pytest.raises(BudgetExceeded, match=r"gemini-2\.5-flash-image: over budget"):
        image_model(fake).generate_single_image("x", [tmp_path / "hero.png"], call=call)
    slot = Slot(fake)
    with pytest.raises(BudgetExceeded, match=f"{VEO3}: over budget"):
        video_model(fake).generate_single_video(
            "x",
            [tmp_path / "hero.png"],
            VideoRequest(tmp_path / "clip.mp4"),
            ProviderCall(budget=refuse, job=slot),
        )
    assert fake.requests == []
    assert slot.history == []


def test_a_canceled_call_sends_nothing(fake: FakeGoogle, tmp_path: Path) -> None:
    token = CancelToken()
    token.cancel()
    call = ProviderCall(cancel_token=token)
    with pytest.raises(TaskCanceled):
        chat_model(fake).complete(story_request(), call)
    with pytest.raises(TaskCanceled):
        image_model(fake).generate_single_image("x", call=call)
    with pytest.raises(TaskCanceled):
        video_model(fake).generate_single_video("x", [], VideoRequest(tmp_path / "c.mp4"), call)
    assert fake.requests == []


def test_a_blocked_prompt_is_not_retryable_and_quotes_the_reason(fake: FakeGoogle) -> None:
    fake.block_prompt = "The prompt asks for dangerous content."
    used: list[Usage] = []
    with pytest.raises(ProviderError) as caught:
        chat_model(fake).complete(story_request(), ProviderCall(on_usage=used.append))
    assert caught.value.retryable is False
    assert caught.value.provider == "google"
    message = str(caught.value)
    assert "refused" in message
    assert "SAFETY" in message
    assert "HARM_CATEGORY_DANGEROUS_CONTENT" in message
    assert "The prompt asks for dangerous content." in message
    assert len(fake.requests_to("generate_content")) == 1
    assert used == [Usage("google", "gemini-2.5-flash", "chat", input_tokens=12)]


# -- images -------------------------------------------------------------------------------


def test_references_go_before_the_prompt_and_the_image_is_fitted(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    hero = write_png(tmp_path / "hero.png", (200, 10, 10))
    Image.new("RGB", (40, 40), (10, 200, 10)).save(tmp_path / "harbour.jpg", format="JPEG")
    harbour = (tmp_path / "harbour.jpg").read_bytes()
    # 160x160 red with a green top band and a blue bottom band that a 16:9 crop cuts away
    answer = Image.new("RGB", (160, 160), (255, 0, 0))
    answer.paste((0, 255, 0), (0, 0, 160, 30))
    answer.paste((0, 0, 255), (0, 130, 160, 160))
    buffer = io.BytesIO()
    answer.save(buffer, format="PNG")
    fake.image = buffer.getvalue()
    model = image_model(fake, model="gemini-3-pro-image-preview")
    assert isinstance(model, ImageModel)
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
    (sent,) = fake.requests_to("generate_content")
    assert sent.path == "/v1/models/gemini-3-pro-image-preview:generateContent"
    (content,) = sent.body["contents"]
    first, second, text = content["parts"]
    assert decode_base64(first["inlineData"]["data"]) == hero
    assert first["inlineData"]["mime_type"] == "image/png"
    assert decode_base64(second["inlineData"]["data"]) == harbour
    assert second["inlineData"]["mime_type"] == "image/jpeg"
    assert text == {"text": "Style: watercolor"}
    config = sent.body["generationConfig"]
    assert config["responseModalities"] == ["IMAGE"]
    assert config["imageConfig"] == {"aspectRatio": "16:9"}
    assert config["seed"] == 5
    assert used == [
        Usage(
            "google",
            "gemini-3-pro-image-preview",
            "image",
            input_tokens=12,
            output_tokens=34,
            images=1,
        )
    ]


def test_aspect_ratios_follow_the_size() -> None:
    assert aspect_ratio_for(640, 360) == "16:9"
    assert aspect_ratio_for(360, 640) == "9:16"
    assert aspect_ratio_for(512, 512) == "1:1"
    assert aspect_ratio_for(1000, 420) == "21:9"
    assert aspect_ratio_for(400, 300) == "4:3"


@pytest.mark.parametrize(
    ("block", "finish_reason", "retryable", "words"),
    [
        (None, "IMAGE_SAFETY", False, "(IMAGE_SAFETY): the frame shows a real person"),
        ("unsafe prompt", None, False, "unsafe prompt"),
        (None, "NO_IMAGE", True, "no image"),
    ],
)
def test_an_answer_without_an_image(
    fake: FakeGoogle, block: str | None, finish_reason: str | None, retryable: bool, words: str
) -> None:
    fake.block_prompt, fake.finish_reason = block, finish_reason
    fake.finish_message = "the frame shows a real person"
    with pytest.raises(ProviderError) as caught:
        image_model(fake).generate_single_image("a frame")
    assert caught.value.retryable is retryable
    assert words in str(caught.value)


def test_a_missing_reference_is_not_retryable_and_sends_nothing(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    with pytest.raises(ProviderError, match=r"gone\.png") as caught:
        image_model(fake).generate_single_image("x", [tmp_path / "gone.png"])
    assert caught.value.retryable is False
    with pytest.raises(ProviderError, match=r"gone\.png"):
        video_model(fake).generate_single_video(
            "x", [tmp_path / "gone.png"], VideoRequest(tmp_path / "c.mp4")
        )
    assert fake.requests == []


# -- video --------------------------------------------------------------------------------


def test_veo_is_polled_until_done_and_the_clip_is_saved(fake: FakeGoogle, tmp_path: Path) -> None:
    first_frame = write_png(tmp_path / "first.png", (10, 20, 30))
    write_png(tmp_path / "last.png", (30, 20, 10))
    fake.polls_before_done = 2
    model = video_model(fake)
    assert isinstance(model, VideoModel)
    assert (model.provider, model.model) == ("google", VEO3)
    slot = Slot(fake)
    progress: list[str] = []
    used: list[Usage] = []
    output = tmp_path / "shots" / "clip.mp4"

    path = model.generate_single_video(
        "Motion: pan left",
        [tmp_path / "first.png", tmp_path / "last.png"],
        VideoRequest(output, size=(640, 360), duration=2.0),
        ProviderCall(seed=9, job=slot, on_progress=progress.append, on_usage=used.append),
    )

    assert path == output
    assert decoded_frames(output) == 6
    assert not output.with_name("clip.mp4.part").exists()
    (submitted,) = fake.requests_to("predict")
    assert submitted.path == f"/v1beta1/publishers/google/models/{VEO3}:predictLongRunning"
    assert submitted.headers["x-goog-api-key"] == "test-key"
    (instance,) = submitted.body["instances"]
    assert instance["prompt"] == "Motion: pan left"
    assert decode_base64(instance["image"]["bytesBase64Encoded"]) == first_frame
    assert instance["image"]["mimeType"] == "image/png"
    assert "lastFrame" not in instance, "veo-3.0 takes no last frame"
    assert submitted.body["parameters"] == {
        "sampleCount": 1,
        "durationSeconds": 4,
        "aspectRatio": "16:9",
        "seed": 9,
        "generateAudio": False,
    }
    polls = fake.requests_to("fetch")
    assert len(polls) == 3
    (name,) = {p.body["operationName"] for p in polls}
    assert polls[0].path == f"/v1beta1/{name.rsplit('/operations/', 1)[0]}:fetchPredictOperation"
    assert len(progress) == 3
    assert all(WAITING.fullmatch(p) for p in progress)
    assert slot.history == [(name, 0), (None, 3)]
    assert used == [Usage("google", VEO3, "video", video_seconds=4.0)]


def test_veo_3_1_gets_the_last_frame_and_a_portrait_ratio(fake: FakeGoogle, tmp_path: Path) -> None:
    write_png(tmp_path / "first.png", (10, 20, 30))
    last_frame = write_png(tmp_path / "last.png", (30, 20, 10))
    model = video_model(fake, model="veo-3.1-generate-001", options={"resolution": "1080p"})

    model.generate_single_video(
        "a shot",
        [tmp_path / "first.png", tmp_path / "mid.png", tmp_path / "last.png"][::2],
        VideoRequest(tmp_path / "clip.mp4", size=(360, 640), duration=5.0),
    )

    (submitted,) = fake.requests_to("predict")
    assert submitted.model == "veo-3.1-generate-001"
    (instance,) = submitted.body["instances"]
    assert decode_base64(instance["lastFrame"]["bytesBase64Encoded"]) == last_frame
    parameters = submitted.body["parameters"]
    assert (parameters["aspectRatio"], parameters["durationSeconds"]) == ("9:16", 6)
    assert parameters["resolution"] == "1080p"


def test_the_veo_families() -> None:
    assert [f.prefix for f in VEO_FAMILIES] == ["veo-3.1", "veo-3", "veo-2"]
    veo2 = veo_family("publishers/google/models/veo-2.0-generate-001")
    assert (veo2.last_frame, veo2.audio) == (True, False)
    assert [veo_duration(s, veo2) for s in (1, 5, 6.5, 8, 12)] == [5, 5, 7, 8, 8]
    veo3 = veo_family("veo-3.0-fast-generate-001")
    assert (veo3.last_frame, veo3.audio) == (False, True)
    assert [veo_duration(s, veo3) for s in (2, 4, 4.5, 7, 30)] == [4, 4, 6, 8, 8]
    assert veo_family("veo-3.1-fast-generate-preview").last_frame is True
    assert veo_family("some-new-model").last_frame is False


def test_a_remembered_operation_is_polled_again_without_a_new_request(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    name = fake.add_operation(VEO3, polls_before_done=1)
    slot = Slot(fake, name)
    used: list[Usage] = []

    video_model(fake).generate_single_video(
        "a shot",
        [tmp_path / "not-read.png"],
        VideoRequest(tmp_path / "clip.mp4"),
        ProviderCall(job=slot, budget=refuse, on_usage=used.append),
    )

    assert fake.requests_to("predict") == []
    polls = fake.requests_to("fetch")
    assert [p.body["operationName"] for p in polls] == [name, name]
    assert decoded_frames(tmp_path / "clip.mp4") == 6
    assert slot.history == [(None, 2)]
    assert used == []


def test_a_remembered_job_of_another_model_is_not_polled(fake: FakeGoogle, tmp_path: Path) -> None:
    write_png(tmp_path / "first.png", (10, 20, 30))
    slot = Slot(fake, "a-replicate-prediction-id")
    video_model(fake).generate_single_video(
        "a shot",
        [tmp_path / "first.png"],
        VideoRequest(tmp_path / "clip.mp4"),
        ProviderCall(job=slot),
    )
    assert len(fake.requests_to("predict")) == 1
    assert slot.value is None


def test_a_cancel_stops_polling_at_once_and_forgets_the_operation(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    write_png(tmp_path / "first.png", (10, 20, 30))
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
            [tmp_path / "first.png"],
            VideoRequest(tmp_path / "clip.mp4"),
            ProviderCall(cancel_token=token, job=slot, on_progress=lambda _: waiting.set()),
        )
    canceller.join()

    assert time.monotonic() - started < 5, "the 30 s wait must end at the cancel"
    assert fake.requests_to("fetch") == []
    (name,) = fake.operations
    assert slot.history == [(name, 0), (None, 0)]
    assert not (tmp_path / "clip.mp4").exists()


def test_an_interrupt_stops_polling_but_keeps_the_operation(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    write_png(tmp_path / "first.png", (10, 20, 30))
    fake.never_finish = True
    token = CancelToken()
    slot = Slot(fake)

    with pytest.raises(TaskCanceled):
        video_model(fake).generate_single_video(
            "a shot",
            [tmp_path / "first.png"],
            VideoRequest(tmp_path / "clip.mp4"),
            ProviderCall(cancel_token=token, job=slot, on_progress=lambda _: token.interrupt()),
        )

    (name,) = fake.operations
    assert slot.value == name, "the resumed workflow polls the same operation"


def test_an_operation_that_takes_too_long_is_retryable_and_kept(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    write_png(tmp_path / "first.png", (10, 20, 30))
    fake.never_finish = True
    slot = Slot(fake)
    with pytest.raises(ProviderError, match="did not finish") as caught:
        video_model(fake, options={"timeout": 0.05}).generate_single_video(
            "a shot",
            [tmp_path / "first.png"],
            VideoRequest(tmp_path / "clip.mp4"),
            ProviderCall(job=slot),
        )
    assert caught.value.retryable is True
    assert slot.value is not None


@pytest.mark.parametrize(
    ("knob", "value", "retryable", "words"),
    [
        ("filter_video", ["The clip shows a celebrity.", "Code 58061214"], False, "celebrity"),
        ("operation_error", {"code": 3, "message": "Unsafe first frame."}, False, "Unsafe first"),
        ("operation_error", {"code": 13, "message": "Internal error."}, True, "Internal error"),
    ],
)
def test_a_failed_operation_is_reported_and_forgotten(
    fake: FakeGoogle, tmp_path: Path, knob: str, value: Any, retryable: bool, words: str
) -> None:
    write_png(tmp_path / "first.png", (10, 20, 30))
    setattr(fake, knob, value)
    slot = Slot(fake)
    with pytest.raises(ProviderError) as caught:
        video_model(fake).generate_single_video(
            "a shot",
            [tmp_path / "first.png"],
            VideoRequest(tmp_path / "clip.mp4"),
            ProviderCall(job=slot),
        )
    assert caught.value.retryable is retryable
    assert words in str(caught.value)
    assert slot.value is None
    assert not (tmp_path / "clip.mp4").exists()


def test_a_clip_that_does_not_decode_is_retryable_and_fetched_again(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    write_png(tmp_path / "first.png", (10, 20, 30))
    fake.video = b"not a video"
    slot = Slot(fake)
    with pytest.raises(ProviderError, match="cannot be decoded") as caught:
        video_model(fake).generate_single_video(
            "a shot",
            [tmp_path / "first.png"],
            VideoRequest(tmp_path / "clip.mp4"),
            ProviderCall(job=slot),
        )
    assert caught.value.retryable is True
    assert slot.value is not None


def test_project_mode_uses_google_credentials_and_the_project_path(
    fake: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "GOOGLE_APPLICATION_CREDENTIALS", str(fake.write_credentials(tmp_path / "adc.json"))
    )
    write_png(tmp_path / "first.png", (10, 20, 30))
    environ = {"GOOGLE_CLOUD_PROJECT": "film-project", "GOOGLE_GENAI_USE_VERTEXAI": "true"}
    model = build("video", settings(fake, api_key=None, options=VEO_OPTIONS), environ)
    assert isinstance(model, GoogleVideoModel)
    assert (model.config.project, model.config.location) == ("film-project", "us-central1")

    model.generate_single_video(
        "a shot", [tmp_path / "first.png"], VideoRequest(tmp_path / "c.mp4")
    )
    model.probe()

    assert len(fake.requests_to("token")) == 1
    (submitted,) = fake.requests_to("predict")
    assert submitted.path == (
        "/v1beta1/projects/film-project/locations/us-central1/publishers/google/models/"
        f"{VEO3}:predictLongRunning"
    )
    assert submitted.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert "x-goog-api-key" not in submitted.headers
    (probe,) = fake.requests_to("get_model")
    assert probe.path == f"/v1beta1/publishers/google/models/{VEO3}"


# -- configuration ------------------------------------------------------------------------


def problem(role: Role, environ: dict[str, str], **values: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        build_model(role, ProviderSettings(provider="google", **values), environ)
    assert caught.value.retryable is False
    assert caught.value.provider == "google"
    return caught.value


def test_configuration_problems_say_what_to_set() -> None:
    assert "GEMINI_API_KEY or GOOGLE_API_KEY" in str(problem("chat", {}))
    assert "MY_KEY" in str(problem("image", {}, api_key_env="MY_KEY"))
    veo = str(problem("video", {"GEMINI_API_KEY": "k"}))
    assert "Vertex AI mode" in veo
    assert "vertexai: true" in veo
    assert "GOOGLE_GENAI_USE_VERTEXAI=true" in veo
    assert "GEMINI_API_KEY" in veo
    assert "GOOGLE_CLOUD_PROJECT" in veo
    assert "needs a project" in str(
        problem("video", {}, options={"vertexai": True, "location": "europe-west4"})
    )
    assert "neither a project nor an API key" in str(
        problem("video", {}, options={"vertexai": True})
    )
    assert "vertexai: true" in str(
        problem("chat", {"GEMINI_API_KEY": "k"}, options={"project": "p"})
    )
    assert "poll_interval" in str(problem("chat", {"GEMINI_API_KEY": "k"}, options={"poll": 1}))
    assert "VIMAX_GOOGLE_RPM" in str(
        problem("chat", {"GEMINI_API_KEY": "k", "VIMAX_GOOGLE_RPM": "x"})
    )


def test_settings_and_environment_choose_the_models_and_the_backend() -> None:
    environ = {
        "GOOGLE_API_KEY": "env-key",
        "GOOGLE_GENAI_USE_VERTEXAI": "TRUE",
        "VIMAX_GOOGLE_VIDEO_MODEL": "veo-2.0-generate-001",
        "VIMAX_GOOGLE_RPM": "off",
        "VIMAX_GOOGLE_BASE_URL": "http://127.0.0.1:9",
    }
    video = build_model("video", ProviderSettings(provider="google"), environ)
    assert isinstance(video, GoogleVideoModel)
    config = video.config
    assert (config.model, config.vertexai, config.project, config.api_key) == (
        "veo-2.0-generate-001",
        True,
        None,
        "env-key",
    )
    assert (config.requests_per_minute, config.base_url) == (None, "http://127.0.0.1:9")
    chat = build("chat", ProviderSettings(provider="google", model="gemini-2.5-pro"), environ)
    assert (chat.model, chat.config.vertexai) == ("gemini-2.5-pro", True)
    image = build("image", ProviderSettings(provider="google"), {"GEMINI_API_KEY": "k"})
    assert (image.model, image.config.vertexai, image.config.requests_per_minute) == (
        "gemini-2.5-flash-image",
        False,
        60,
    )
    # a project from the environment beats a key from the environment, as in the SDK
    projected = build(
        "video", ProviderSettings(provider="google"), {**environ, "GOOGLE_CLOUD_PROJECT": "p"}
    )
    assert (projected.config.project, projected.config.location) == ("p", "us-central1")
    # a key in the settings beats a project from the environment
    keyed = build(
        "video",
        ProviderSettings(provider="google", api_key="mine"),
        {**environ, "GOOGLE_CLOUD_PROJECT": "p"},
    )
    assert (keyed.config.project, keyed.config.api_key) == (None, "mine")
    assert "env-key" not in repr(video.config)


# -- errors and probe ---------------------------------------------------------------------

QUOTA_DAY = [
    {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
    }
]
QUOTA_MINUTE = [
    {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
    }
]
EXCEEDED = "You exceeded your current quota, please check your plan and billing details."


@pytest.mark.parametrize(
    ("status", "message", "details", "retryable", "hint"),
    [
        (429, EXCEEDED, QUOTA_DAY, False, "quota and billing"),
        (429, EXCEEDED, QUOTA_MINUTE, True, ""),
        (429, "Resource exhausted. Please try again later.", None, True, ""),
        (503, "The model is overloaded.", None, True, ""),
        (500, "Internal error.", None, True, ""),
        (400, "Unsupported MIME type.", None, False, ""),
        (403, "Permission denied.", None, False, "API key"),
        (
            404,
            "models/gemini-9 is not found.",
            None,
            False,
            "check the model name 'gemini-2.5-flash'",
        ),
    ],
)
def test_http_errors_map_to_provider_errors(
    fake: FakeGoogle,
    status: int,
    message: str,
    details: list[dict[str, Any]] | None,
    retryable: bool,
    hint: str,
) -> None:
    fake.fail("generate_content", status, message, details=details)
    with pytest.raises(ProviderError) as caught:
        chat_model(fake).complete(story_request())
    assert caught.value.retryable is retryable
    assert message in str(caught.value)
    assert f"HTTP {status}" in str(caught.value)
    assert hint in str(caught.value)
    assert len(fake.requests_to("generate_content")) == 1, "the SDK must not retry by itself"


def test_veo_errors_hint_at_vertex_access(fake: FakeGoogle, tmp_path: Path) -> None:
    write_png(tmp_path / "first.png", (10, 20, 30))
    fake.api_key = "the-right-key"
    slot = Slot(fake)
    with pytest.raises(ProviderError, match="express mode needs a Google Cloud API key") as caught:
        video_model(fake).generate_single_video(
            "a shot",
            [tmp_path / "first.png"],
            VideoRequest(tmp_path / "c.mp4"),
            ProviderCall(job=slot),
        )
    assert caught.value.retryable is False
    assert slot.history == []
    assert "invalid" in str(caught.value)


def test_a_gemini_api_key_the_service_rejects_gets_the_key_hint(fake: FakeGoogle) -> None:
    fake.api_key = "the-right-key"
    with pytest.raises(ProviderError, match=r"API key not valid.*check the API key") as caught:
        chat_model(fake).complete(story_request())
    assert caught.value.retryable is False


def test_the_probe_reads_the_model_and_names_what_is_wrong(fake: FakeGoogle) -> None:
    chat_model(fake).probe()
    video_model(fake).probe()
    assert [r.path for r in fake.requests_to("get_model")] == [
        "/v1/models/gemini-2.5-flash",
        f"/v1beta1/publishers/google/models/{VEO3}",
    ]
    assert fake.requests_to("generate_content") == []

    fake.models = {"gemini-2.5-flash"}
    with pytest.raises(ProviderError, match=r"HTTP 404.*check the model name 'gemini-2\.5-pro'"):
        chat_model(fake, model="gemini-2.5-pro").probe()


def test_a_closed_port_is_unreachable_and_retryable() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    model = build(
        "chat",
        ProviderSettings(provider="google", api_key="k", base_url=f"http://127.0.0.1:{port}"),
        {},
    )
    with pytest.raises(ProviderError, match="unreachable") as caught:
        model.probe()
    assert caught.value.retryable is True
    assert f"127.0.0.1:{port}" in str(caught.value)
