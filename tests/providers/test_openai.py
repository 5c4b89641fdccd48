"""The OpenAI providers against a local OpenAI-compatible HTTP server, and the rate limiter."""

from __future__ import annotations

import base64
import io
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vimax_nb.pipelines.models import Story
from vimax_nb.providers.base import (
    BudgetExceeded,
    ChatModel,
    ChatRequest,
    ImageModel,
    ProviderCall,
    ProviderError,
    Usage,
)
from vimax_nb.providers.openai import OpenAIChatModel, OpenAIConfig, OpenAIImageModel, build
from vimax_nb.providers.openai.images import api_size_for
from vimax_nb.providers.pacing import RateLimiter
from vimax_nb.providers.settings import ProviderSettings
from vimax_nb.shared import CancelToken, TaskCanceled

from .fake_openai_server import (
    CHAT,
    EDITS,
    HANG,
    IMAGES,
    MODELS,
    FakeOpenAI,
    Multipart,
    Reply,
    chat_reply,
    error_reply,
    model_path,
    model_reply,
    models_reply,
    start,
)

GOOD_STORY = {"title": "The Lighthouse", "logline": "A keeper waits.", "text": "Once upon a time."}


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = start()
    yield fake
    fake.stop()


def config_for(server: FakeOpenAI, **changes: object) -> OpenAIConfig:
    values: dict[str, object] = {
        "base_url": server.base_url,
        "api_key": "test-key",
        "chat_model": "test-chat",
        "image_model": "gpt-image-1",
        "requests_per_minute": None,
        "timeout": 10.0,
    }
    values.update(changes)
    return OpenAIConfig.model_validate(values)


def story_request(seed: int = 7) -> ChatRequest[Story]:
    return ChatRequest(
        task="develop_story",
        instructions="You are a screenwriter.",
        inputs={"idea": "a lighthouse keeper", "length": 3},
        response_model=Story,
        seed=seed,
    )


def test_a_structured_answer_is_parsed_into_the_response_model(server: FakeOpenAI) -> None:
    server.script(CHAT, chat_reply(json.dumps(GOOD_STORY)))
    chat = OpenAIChatModel(config_for(server))
    assert isinstance(chat, ChatModel)
    assert (chat.provider, chat.model) == ("openai", "test-chat")

    story = chat.complete(story_request(seed=7), call=ProviderCall(cancel_token=CancelToken()))

    assert story == Story(**GOOD_STORY)
    (sent,) = server.requests_to(CHAT)
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body["model"] == "test-chat"
    assert sent.body["seed"] == 7
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Story", "schema": Story.model_json_schema(), "strict": False},
    }
    system, user = sent.body["messages"]
    assert system["role"] == "system"
    assert system["content"].startswith("You are a screenwriter.")
    assert "JSON" in system["content"]
    assert user["role"] == "user"
    assert json.loads(user["content"]) == {
        "task": "develop_story",
        "inputs": {"idea": "a lighthouse keeper", "length": 3},
    }


def test_an_answer_in_a_code_fence_is_accepted(server: FakeOpenAI) -> None:
    server.script(CHAT, chat_reply(f"```json\n{json.dumps(GOOD_STORY)}\n```"))
    assert OpenAIChatModel(config_for(server)).complete(story_request()) == Story(**GOOD_STORY)


def test_an_invalid_answer_is_reasked_with_the_validation_error(server: FakeOpenAI) -> None:
    invalid = json.dumps({"title": "T", "logline": "L", "text": ""})
    server.script(CHAT, chat_reply(invalid), chat_reply(json.dumps(GOOD_STORY)))

    story = OpenAIChatModel(config_for(server)).complete(story_request())

    assert story.title == "The Lighthouse"
    first, second = server.requests_to(CHAT)
    assert len(first.body["messages"]) == 2
    assert second.body["messages"][:2] == first.body["messages"]
    assistant, reask = second.body["messages"][2:]
    assert assistant == {"role": "assistant", "content": invalid}
    assert reask["role"] == "user"
    assert "text" in reask["content"]
    assert "at least 1 character" in reask["content"]


def test_always_invalid_answers_give_up_after_max_reasks(server: FakeOpenAI) -> None:
    server.script(CHAT, *[chat_reply("not json at all") for _ in range(4)])

    with pytest.raises(ProviderError) as caught:
        OpenAIChatModel(config_for(server, max_reasks=2)).complete(story_request())

    assert len(server.requests_to(CHAT)) == 3
    assert caught.value.retryable is True
    assert caught.value.provider == "openai"
    assert "invalid output" in str(caught.value)
    assert "Invalid JSON" in str(caught.value)


def test_a_refusal_is_not_retryable(server: FakeOpenAI) -> None:
    server.script(CHAT, chat_reply(None, refusal="I can't help with that."))
    with pytest.raises(ProviderError, match="can't help") as caught:
        OpenAIChatModel(config_for(server)).complete(story_request())
    assert caught.value.retryable is False
    assert len(server.requests_to(CHAT)) == 1


def content_length(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"]) for m in messages)


def test_each_request_is_authorized_before_it_is_sent_and_its_usage_recorded(
    server: FakeOpenAI,
) -> None:
    server.script(CHAT, chat_reply("not json", usage=(120, 7)), chat_reply(json.dumps(GOOD_STORY)))
    events: list[tuple[str, Usage, int]] = []
    call = ProviderCall(
        budget=lambda usage: events.append(("authorize", usage, len(server.requests))),
        on_usage=lambda usage: events.append(("record", usage, len(server.requests))),
    )

    OpenAIChatModel(config_for(server)).complete(story_request(), call=call)

    first, second = server.requests_to(CHAT)
    estimate_1 = math.ceil(content_length(first.body["messages"]) / 4)
    estimate_2 = math.ceil(content_length(second.body["messages"]) / 4)
    assert estimate_2 > estimate_1 > 0
    assert events == [
        ("authorize", Usage("openai", "test-chat", "chat", input_tokens=estimate_1), 0),
        ("record", Usage("openai", "test-chat", "chat", input_tokens=120, output_tokens=7), 1),
        ("authorize", Usage("openai", "test-chat", "chat", input_tokens=estimate_2), 1),
        ("record", Usage("openai", "test-chat", "chat"), 2),
    ]


def refuse(usage: Usage) -> None:
    raise BudgetExceeded(f"{usage.model}: over budget", provider=usage.provider)


def test_a_request_the_budget_refuses_is_not_sent(server: FakeOpenAI, tmp_path: Path) -> None:
    write_png(tmp_path / "hero.png", (1, 2, 3))
    with pytest.raises(BudgetExceeded, match="test-chat: over budget"):
        OpenAIChatModel(config_for(server)).complete(
            story_request(), call=ProviderCall(budget=refuse)
        )
    image = OpenAIImageModel(config_for(server))
    for references in ([], [tmp_path / "hero.png"]):
        with pytest.raises(BudgetExceeded, match="gpt-image-1: over budget"):
            image.generate_single_image("x", references, call=ProviderCall(budget=refuse))
    assert server.requests == []


def test_a_canceled_call_sends_nothing(server: FakeOpenAI) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(TaskCanceled):
        OpenAIChatModel(config_for(server)).complete(
            story_request(), call=ProviderCall(cancel_token=token)
        )
    with pytest.raises(TaskCanceled):
        OpenAIImageModel(config_for(server)).generate_single_image(
            "x", call=ProviderCall(cancel_token=token)
        )
    assert server.requests == []


@pytest.mark.parametrize(
    ("status", "code", "retryable", "hint"),
    [
        (429, "rate_limit_exceeded", True, ""),
        (429, "insufficient_quota", False, "billing"),
        (500, None, True, ""),
        (503, None, True, ""),
        (400, None, False, ""),
        (401, "invalid_api_key", False, "API key"),
        (403, None, False, "access"),
        (404, "model_not_found", False, "model name"),
    ],
)
def test_http_errors_map_to_provider_errors(
    server: FakeOpenAI, status: int, code: str | None, retryable: bool, hint: str
) -> None:
    server.script(CHAT, error_reply(status, f"server says {status}", code))

    with pytest.raises(ProviderError) as caught:
        OpenAIChatModel(config_for(server)).complete(story_request())

    assert caught.value.retryable is retryable
    assert caught.value.provider == "openai"
    assert f"server says {status}" in str(caught.value)
    assert hint in str(caught.value)
    assert len(server.requests_to(CHAT)) == 1, "the client must not retry by itself"


def test_a_server_that_never_answers_times_out_as_retryable(server: FakeOpenAI) -> None:
    server.script(CHAT, HANG)
    started = time.monotonic()

    with pytest.raises(ProviderError, match="no answer") as caught:
        OpenAIChatModel(config_for(server, timeout=0.5)).complete(story_request())

    assert caught.value.retryable is True
    assert time.monotonic() - started < 5
    assert len(server.requests_to(CHAT)) == 1


def test_an_unreachable_server_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout=5)
    with pytest.raises(ProviderError, match="could not reach") as caught:
        OpenAIChatModel(config).complete(story_request())
    assert caught.value.retryable is True


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def image_reply(image: Image.Image, usage: tuple[int, int] | None = None) -> Reply:
    body: dict[str, Any] = {"created": 0, "data": [{"b64_json": png_b64(image)}]}
    if usage is not None:
        inputs, outputs = usage
        body["usage"] = {
            "input_tokens": inputs,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": inputs},
            "output_tokens": outputs,
            "total_tokens": inputs + outputs,
        }
    return Reply(200, body)


def test_an_image_is_decoded_cropped_and_resized_to_the_requested_size(
    server: FakeOpenAI,
) -> None:
    # 1536x1024 from the API: red left half, blue right half, and a green band in the
    # top 60 rows that a 16:9 center crop (to 1536x864) cuts away entirely.
    api_image = Image.new("RGB", (1536, 1024), (255, 0, 0))
    api_image.paste((0, 0, 255), (768, 0, 1536, 1024))
    api_image.paste((0, 255, 0), (0, 0, 1536, 60))
    server.script(IMAGES, image_reply(api_image))
    model = OpenAIImageModel(config_for(server))
    assert isinstance(model, ImageModel)
    assert (model.provider, model.model) == ("openai", "gpt-image-1")
    used: list[Usage] = []

    output = model.generate_single_image(
        "Style: watercolor",
        size="640x360",
        call=ProviderCall(cancel_token=CancelToken(), on_usage=used.append),
    )

    assert output.image.size == (640, 360)
    assert output.image.mode == "RGB"
    assert output.image.getpixel((10, 2)) == (255, 0, 0)
    assert output.image.getpixel((630, 358)) == (0, 0, 255)
    (sent,) = server.requests_to(IMAGES)
    assert server.requests_to(EDITS) == []
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body == {
        "model": "gpt-image-1",
        "prompt": "Style: watercolor",
        "size": "1536x1024",
        "n": 1,
    }
    assert used == [Usage("openai", "gpt-image-1", "image", images=1)]


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (64, 36)) -> bytes:
    Image.new("RGB", size, color).save(path, format="PNG")
    return path.read_bytes()


def test_reference_images_are_uploaded_to_the_edits_endpoint(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    hero = write_png(tmp_path / "hero.png", (200, 10, 10))
    Image.new("RGB", (40, 40), (10, 200, 10)).save(tmp_path / "harbour.jpg", format="JPEG")
    harbour = (tmp_path / "harbour.jpg").read_bytes()
    server.script(EDITS, image_reply(Image.new("RGB", (1536, 1024), (9, 9, 9)), usage=(300, 4000)))
    used: list[Usage] = []

    output = OpenAIImageModel(config_for(server)).generate_single_image(
        "Style: watercolor",
        [tmp_path / "hero.png", str(tmp_path / "harbour.jpg")],
        size="640x360",
        call=ProviderCall(on_usage=used.append),
    )

    assert output.image.size == (640, 360)
    assert server.requests_to(IMAGES) == []
    (sent,) = server.requests_to(EDITS)
    assert sent.headers["authorization"] == "Bearer test-key"
    assert isinstance(sent.body, Multipart)
    assert sent.body.fields == {
        "model": "gpt-image-1",
        "prompt": "Style: watercolor",
        "size": "1536x1024",
        "n": "1",
    }
    uploads = [(f.field, f.filename, f.content_type, f.data) for f in sent.body.files]
    assert uploads == [
        ("image[]", "hero.png", "image/png", hero),
        ("image[]", "harbour.jpg", "image/jpeg", harbour),
    ]
    assert used == [
        Usage("openai", "gpt-image-1", "image", input_tokens=300, output_tokens=4000, images=1)
    ]


def test_dall_e_models_get_the_first_reference_only_as_a_square_png(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    write_png(tmp_path / "hero.png", (200, 10, 10), size=(80, 40))
    write_png(tmp_path / "harbour.png", (10, 200, 10))
    server.script(EDITS, image_reply(Image.new("RGB", (512, 512), (9, 9, 9))))
    model = OpenAIImageModel(config_for(server, image_model="dall-e-2"))

    output = model.generate_single_image(
        "a keeper", [tmp_path / "hero.png", tmp_path / "harbour.png"], size="400x400"
    )

    assert output.image.size == (400, 400)
    (sent,) = server.requests_to(EDITS)
    assert sent.body.fields["response_format"] == "b64_json"
    assert sent.body.fields["size"] == "512x512"
    (upload,) = sent.body.files
    assert (upload.field, upload.filename, upload.content_type) == (
        "image",
        "hero.png",
        "image/png",
    )
    sent_image = Image.open(io.BytesIO(upload.data))
    assert (sent_image.format, sent_image.mode, sent_image.size) == ("PNG", "RGBA", (512, 512))
    assert sent_image.getpixel((256, 256)) == (200, 10, 10, 255)


def test_a_missing_reference_image_is_not_retryable_and_sends_nothing(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    with pytest.raises(ProviderError, match=r"gone\.png") as caught:
        OpenAIImageModel(config_for(server)).generate_single_image("x", [tmp_path / "gone.png"])
    assert caught.value.retryable is False
    assert server.requests == []


def test_dall_e_models_are_asked_for_base64_at_their_own_sizes(server: FakeOpenAI) -> None:
    api_image = Image.new("RGB", (1792, 1024), (10, 20, 30))
    server.script(IMAGES, image_reply(api_image))
    model = OpenAIImageModel(config_for(server, image_model="dall-e-3"))

    output = model.generate_single_image("a harbour", size="320x180")

    assert output.image.size == (320, 180)
    (sent,) = server.requests_to(IMAGES)
    assert sent.body["size"] == "1792x1024"
    assert sent.body["response_format"] == "b64_json"


def test_api_sizes_are_the_closest_the_model_accepts() -> None:
    assert api_size_for(640, 360, "gpt-image-1") == (1536, 1024)
    assert api_size_for(360, 640, "gpt-image-1") == (1024, 1536)
    assert api_size_for(500, 500, "gpt-image-1") == (1024, 1024)
    assert api_size_for(400, 400, "dall-e-2") == (512, 512)
    assert api_size_for(1280, 720, "some-local-model") == (1536, 1024)


def test_an_undecodable_image_is_retryable(server: FakeOpenAI) -> None:
    server.script(IMAGES, Reply(200, {"created": 0, "data": [{"b64_json": "bm90IGEgcG5n"}]}))
    with pytest.raises(ProviderError, match="decode") as caught:
        OpenAIImageModel(config_for(server)).generate_single_image("x")
    assert caught.value.retryable is True


def test_image_errors_are_mapped_too(server: FakeOpenAI) -> None:
    server.script(IMAGES, error_reply(429, "slow down"))
    with pytest.raises(ProviderError, match="slow down") as caught:
        OpenAIImageModel(config_for(server)).generate_single_image("x")
    assert caught.value.retryable is True


def test_a_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("VIMAX_OPENAI_API_KEY", raising=False)
    for provider in (OpenAIChatModel, OpenAIImageModel):
        with pytest.raises(ProviderError, match="OPENAI_API_KEY") as caught:
            provider(OpenAIConfig(base_url="http://127.0.0.1:9/v1"))
        assert caught.value.retryable is False
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert OpenAIConfig().resolve_api_key() == "from-env"


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BASE_URL", "API_KEY", "CHAT_MODEL", "IMAGE_MODEL", "RPM", "TIMEOUT"):
        monkeypatch.delenv(f"VIMAX_OPENAI_{name}", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://fallback/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "fallback-key")
    monkeypatch.setenv("VIMAX_OPENAI_CHAT_MODEL", "my-chat")
    monkeypatch.setenv("VIMAX_OPENAI_RPM", "30")
    monkeypatch.setenv("VIMAX_OPENAI_TIMEOUT", "5")

    config = OpenAIConfig.from_env()

    assert config.base_url == "http://fallback/v1"
    assert config.api_key == "fallback-key"
    assert config.chat_model == "my-chat"
    assert config.image_model == "gpt-image-1"
    assert config.requests_per_minute == 30
    assert config.timeout == 5
    assert "fallback-key" not in repr(config)

    monkeypatch.setenv("VIMAX_OPENAI_BASE_URL", "http://own/v1")
    monkeypatch.setenv("VIMAX_OPENAI_API_KEY", "own-key")
    monkeypatch.setenv("VIMAX_OPENAI_RPM", "off")
    config = OpenAIConfig.from_env()
    assert (config.base_url, config.api_key, config.requests_per_minute) == (
        "http://own/v1",
        "own-key",
        None,
    )

    monkeypatch.setenv("VIMAX_OPENAI_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="VIMAX_OPENAI_TIMEOUT"):
        OpenAIConfig.from_env()


def test_probe_reads_the_model(server: FakeOpenAI) -> None:
    server.script(model_path("test-chat"), model_reply("test-chat"))
    server.script(model_path("gpt-image-1"), model_reply("gpt-image-1"))
    OpenAIChatModel(config_for(server)).probe()
    OpenAIImageModel(config_for(server)).probe()
    assert [r.path for r in server.requests] == [model_path("test-chat"), model_path("gpt-image-1")]
    assert server.requests[0].headers["authorization"] == "Bearer test-key"


def test_probe_of_an_unknown_model_says_to_check_its_name(server: FakeOpenAI) -> None:
    server.script(model_path("nope"), error_reply(404, "The model 'nope' does not exist"))
    server.script(MODELS, models_reply("test-chat", "gpt-image-1"))
    with pytest.raises(ProviderError, match="check the model name") as caught:
        OpenAIChatModel(config_for(server, chat_model="nope")).probe()
    assert "does not exist" in str(caught.value)
    assert caught.value.retryable is False


def test_probe_passes_when_a_server_only_lists_its_models(server: FakeOpenAI) -> None:
    server.script(model_path("local-llm"), error_reply(404, "Not Found"))
    server.script(MODELS, models_reply("local-llm"))
    OpenAIChatModel(config_for(server, chat_model="local-llm")).probe()
    assert [r.path for r in server.requests] == [model_path("local-llm"), MODELS]


def test_probe_of_a_closed_port_says_it_could_not_reach_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout=5)
    with pytest.raises(ProviderError, match=f"could not reach http://127.0.0.1:{port}/v1"):
        OpenAIImageModel(config).probe()


def test_build_makes_each_roles_model_from_the_settings_over_the_environment() -> None:
    environ = {
        "OPENAI_API_KEY": "env-key",
        "VIMAX_OPENAI_BASE_URL": "http://env/v1",
        "VIMAX_OPENAI_IMAGE_MODEL": "dall-e-2",
        "VIMAX_OPENAI_RPM": "30",
    }

    chat = build("chat", ProviderSettings(provider="openai", model="my-chat"), environ)
    assert isinstance(chat, OpenAIChatModel)
    assert (chat.provider, chat.model) == ("openai", "my-chat")
    assert (chat.config.api_key, chat.config.base_url) == ("env-key", "http://env/v1")
    assert (chat.config.requests_per_minute, chat.rate_limiter.interval) == (30, 2)

    image = build("image", ProviderSettings(provider="openai"), environ)
    assert isinstance(image, OpenAIImageModel)
    assert image.model == "dall-e-2"

    settings = ProviderSettings(
        provider="openai",
        model="gpt-image-1",
        api_key_env="MY_KEY",
        base_url="http://own/v1",
        requests_per_minute=120,
        timeout=7,
        options={"organization": "org-1", "max_reasks": 0},
    )
    image = build("image", settings, {**environ, "MY_KEY": "own-key"})
    assert image.model == "gpt-image-1"
    assert image.config.model_dump() == {
        "base_url": "http://own/v1",
        "api_key": "own-key",
        "chat_model": "gpt-4o-mini",
        "image_model": "gpt-image-1",
        "requests_per_minute": 120,
        "timeout": 7,
        "max_reasks": 0,
        "organization": "org-1",
    }
    assert str(image.client.base_url) == "http://own/v1/"


def test_build_without_a_key_says_where_to_put_one() -> None:
    with pytest.raises(ProviderError, match="VIMAX_OPENAI_API_KEY or OPENAI_API_KEY") as caught:
        build("chat", ProviderSettings(provider="openai"), {"OPENAI_API_KEY": " "})
    assert caught.value.retryable is False
    assert "providers file" in str(caught.value)


def test_build_refuses_the_video_role_and_unknown_options() -> None:
    environ = {"OPENAI_API_KEY": "k"}
    with pytest.raises(ValueError, match="Sora") as caught:
        build("video", ProviderSettings(provider="openai"), environ)
    assert "use google or replicate" in str(caught.value)
    with pytest.raises(ValueError, match=r"unknown option.*vertexai"):
        build("chat", ProviderSettings(provider="openai", options={"vertexai": True}), environ)


class FakeClock:
    """Time that moves only when someone sleeps; each thread has its own timeline."""

    def __init__(self, start: float = 1000.0) -> None:
        self.start = start
        self._local = threading.local()
        self.sleeps: list[float] = []

    @property
    def elapsed(self) -> float:
        return float(getattr(self._local, "elapsed", 0.0))

    def now(self) -> float:
        return self.start + self.elapsed

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._local.elapsed = self.elapsed + seconds


def test_rate_limiter_spaces_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(30, clock=clock.now, sleep=clock.sleep)
    times = []
    for _ in range(5):
        limiter.acquire()
        times.append(clock.now() - clock.start)
    assert times == pytest.approx([0, 2, 4, 6, 8])

    clock.sleep(10)  # idle: no burst builds up, the next request just goes
    before = clock.now()
    limiter.acquire()
    limiter.acquire()
    assert clock.now() - before == pytest.approx(2)


def test_rate_limiter_gives_concurrent_callers_distinct_slots() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock.now, sleep=clock.sleep)
    waited: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        limiter.acquire()
        with lock:
            waited.append(clock.elapsed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(waited) == pytest.approx([float(i) for i in range(8)])


def test_rate_limiter_is_interrupted_by_the_cancel_token() -> None:
    clock = FakeClock()
    token = CancelToken()

    def sleep_then_cancel(seconds: float) -> None:
        clock.sleep(seconds)
        token.cancel()

    limiter = RateLimiter(6, clock=clock.now, sleep=sleep_then_cancel, poll_interval=0.05)
    limiter.acquire(token)  # the first slot is free
    with pytest.raises(TaskCanceled):
        limiter.acquire(token)
    assert clock.now() - clock.start == pytest.approx(0.05)  # woke after one poll, not 10 s

    # the canceled caller gave its slot back: the next one waits 10 s from the first
    limiter.acquire()
    assert clock.now() - clock.start == pytest.approx(10)
    with pytest.raises(TaskCanceled):
        limiter.acquire(token)  # already canceled: raises before waiting


def test_rate_limiter_wakes_a_really_waiting_thread_on_cancel() -> None:
    waiting = threading.Event()

    def sleep(seconds: float) -> None:
        waiting.set()
        time.sleep(seconds)

    limiter = RateLimiter(1, sleep=sleep)  # a 60 s spacing
    limiter.acquire()
    token = CancelToken()
    outcome: list[BaseException] = []

    def worker() -> None:
        try:
            limiter.acquire(token)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    assert waiting.wait(timeout=10)
    token.cancel()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], TaskCanceled)


def test_rate_limiter_rejects_a_nonpositive_rate() -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateLimiter(0)
    assert RateLimiter(None).interval == 0
