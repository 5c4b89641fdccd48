"""The OpenAI providers against a local OpenAI-compatible HTTP server, and the rate limiter."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from vimax_nb.pipelines.models import Story
from vimax_nb.providers.base import ChatModel, ChatRequest, ImageModel, ProviderError
from vimax_nb.providers.openai import OpenAIChatModel, OpenAIConfig, OpenAIImageModel, RateLimiter
from vimax_nb.providers.openai.images import api_size_for
from vimax_nb.shared import CancelToken, TaskCanceled

from .fake_openai_server import (
    CHAT,
    HANG,
    IMAGES,
    FakeOpenAI,
    Reply,
    chat_reply,
    error_reply,
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

    story = chat.complete(story_request(seed=7))

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


def test_an_image_is_decoded_cropped_and_resized_to_the_requested_size(
    server: FakeOpenAI,
) -> None:
    # 1536x1024 from the API: red left half, blue right half, and a green band in the
    # top 60 rows that a 16:9 center crop (to 1536x864) cuts away entirely.
    api_image = Image.new("RGB", (1536, 1024), (255, 0, 0))
    api_image.paste((0, 0, 255), (768, 0, 1536, 1024))
    api_image.paste((0, 255, 0), (0, 0, 1536, 60))
    server.script(IMAGES, Reply(200, {"created": 0, "data": [{"b64_json": png_b64(api_image)}]}))
    model = OpenAIImageModel(config_for(server))
    assert isinstance(model, ImageModel)

    output = model.generate_single_image(
        "Style: watercolor", ["/refs/hero.png", "/refs/harbour.png"], size="640x360"
    )

    assert output.image.size == (640, 360)
    assert output.image.mode == "RGB"
    assert output.image.getpixel((10, 2)) == (255, 0, 0)
    assert output.image.getpixel((630, 358)) == (0, 0, 255)
    (sent,) = server.requests_to(IMAGES)
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body["model"] == "gpt-image-1"
    assert sent.body["size"] == "1536x1024"
    assert sent.body["n"] == 1
    assert "response_format" not in sent.body
    assert sent.body["prompt"].startswith("Style: watercolor")
    assert "hero.png, harbour.png" in sent.body["prompt"]


def test_dall_e_models_are_asked_for_base64_at_their_own_sizes(server: FakeOpenAI) -> None:
    api_image = Image.new("RGB", (1792, 1024), (10, 20, 30))
    server.script(IMAGES, Reply(200, {"created": 0, "data": [{"b64_json": png_b64(api_image)}]}))
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
