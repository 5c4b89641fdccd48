"""The providers a server offers: building them by name, the providers file, prices,
the result cache and the polling of remote jobs."""

from __future__ import annotations

import io
import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import BaseModel

from vimax_nb.providers import (
    ChatRequest,
    ImageOutput,
    ProviderCall,
    ProviderCatalog,
    ProviderError,
    ProviderSettings,
    Usage,
    build_model,
)
from vimax_nb.providers.cache import ResultCache, with_cache
from vimax_nb.providers.file import ProvidersFileError, load_providers_file
from vimax_nb.providers.jobs import JobTiming, wait_for_job
from vimax_nb.providers.prices import ModelPrices, PriceTable
from vimax_nb.shared import CancelToken, TaskCanceled


def test_an_unknown_provider_or_role_names_the_choices() -> None:
    with pytest.raises(ProviderError, match=r"unknown video provider 'googel': choose one of"):
        build_model("video", ProviderSettings(provider="googel"))
    with pytest.raises(ProviderError, match=r"openai has no video model; video providers: "):
        build_model("video", ProviderSettings(provider="openai"))
    with pytest.raises(ProviderError, match="the procedural provider has one chat model"):
        build_model("chat", ProviderSettings(provider="procedural", model="gpt-4o"))


def test_the_catalog_offers_defaults_procedural_and_providers_found_in_the_environment() -> None:
    catalog = ProviderCatalog.configure(
        {"video": ProviderSettings(provider="replicate")},
        environ={"OPENAI_API_KEY": "sk-test"},
    )
    offered = {(e.role, e.name, e.default, e.ready) for e in catalog.entries}
    assert ("chat", "procedural", True, True) in offered
    assert ("chat", "openai", False, True) in offered
    assert ("image", "openai", False, True) in offered
    video = catalog.entry("video")
    assert (video.name, video.ready) == ("replicate", False)
    assert "REPLICATE_API_TOKEN" in str(video.problem)
    with pytest.raises(ProviderError, match="the video provider 'replicate' is not ready"):
        catalog.model("video")
    assert catalog.model("video", "procedural").provider == "procedural"
    with pytest.raises(ProviderError, match="no chat provider 'google' configured"):
        catalog.entry("chat", "google")


def test_a_configured_catalog_travels_as_configuration_without_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-never-sent-0123456789"
    catalog = ProviderCatalog.configure(
        {
            "chat": ProviderSettings(provider="openai", api_key=secret, model="gpt-4o-mini"),
            "video": ProviderSettings(provider="replicate", api_key_env="MY_REPLICATE"),
        },
        environ={"MY_REPLICATE": "r8-server"},
        cache=ResultCache(tmp_path / "cache"),
    )
    assert catalog.entry("chat").ready
    assert catalog.entry("video").ready
    data = pickle.dumps(catalog)
    assert secret.encode() not in data
    assert b"r8-server" not in data

    # A worker reads keys from its own environment, and builds its models once.
    monkeypatch.setenv("MY_REPLICATE", "r8-worker")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("VIMAX_OPENAI_API_KEY", raising=False)
    rebuilt = pickle.loads(data)
    assert pickle.loads(data) is rebuilt
    assert rebuilt.entry("video").ready
    chat = rebuilt.entry("chat")
    assert (chat.name, chat.model_name, chat.ready) == ("openai", "gpt-4o-mini", False)
    assert "OPENAI_API_KEY" in str(chat.problem)
    assert rebuilt.cache is not None
    assert rebuilt.cache.folder == tmp_path / "cache"
    assert [(e.role, e.name, e.default) for e in rebuilt.entries] == [
        (e.role, e.name, e.default) for e in catalog.entries
    ]


def test_a_probe_that_fails_makes_a_provider_not_ready_until_it_answers() -> None:
    class Flaky:
        provider, model = "flaky", "flaky-1"
        answers = False

        def probe(self) -> None:
            if not self.answers:
                raise ProviderError("could not reach http://127.0.0.1:9")

    catalog = ProviderCatalog.configure({}, environ={}, discover=False)
    entry = catalog.entry("chat")
    flaky = Flaky()
    entry.model = flaky
    catalog.probe(entry)
    assert (entry.ready, entry.problem, entry.probed) == (
        False,
        "could not reach http://127.0.0.1:9",
        True,
    )
    flaky.answers = True
    catalog.probe(entry)
    assert entry.ready


def test_vimax_configs_are_read_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "idea2video.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            chat_model:
              init_args:
                model: google/gemini-2.5-flash-lite-preview-09-2025
                model_provider: openai
                api_key:
                base_url: https://openrouter.ai/api/v1
              max_requests_per_minute: 500
              max_requests_per_day: 2000
            image_generator:
              class_path: tools.ImageGeneratorNanobananaGoogleAPI
              init_args:
                api_key: AIza-test
            video_generator:
              class_path: tools.VideoGeneratorVeoGoogleAPI
              api_key_env: MY_VEO_KEY
              options: {vertexai: true}
            working_dir: .working_dir/idea2video
            prices:
              veo-3.0-generate-001: {video_second: 0.5}
            cache: [chat, image]
            max_cost: 12
            """
        )
    )
    loaded = load_providers_file(path)
    chat = loaded.roles["chat"]
    assert (chat.provider, chat.model, chat.base_url) == (
        "openai",
        "google/gemini-2.5-flash-lite-preview-09-2025",
        "https://openrouter.ai/api/v1",
    )
    assert chat.requests_per_minute == 500
    assert chat.api_key is None  # empty in the file: the environment's key is used
    image = loaded.roles["image"]
    assert (image.provider, image.api_key) == ("google", "AIza-test")
    assert "AIza-test" not in repr(image)
    video = loaded.roles["video"]
    assert (video.provider, video.api_key_env, video.options) == (
        "google",
        "MY_VEO_KEY",
        {"vertexai": True},
    )
    assert loaded.prices["veo-3.0-generate-001"].video_second == 0.5
    assert loaded.cache == ("chat", "image")
    assert loaded.max_cost == 12.0


def test_a_toml_file_with_more_choices_per_role(tmp_path: Path) -> None:
    path = tmp_path / "providers.toml"
    path.write_text(
        textwrap.dedent(
            """\
            [video]
            provider = "replicate"
            model = "kwaivgi/kling-v2.1"
            rpm = 6

            [[also.video]]
            provider = "google"
            model = "veo-3.0-fast-generate-001"
            """
        )
    )
    loaded = load_providers_file(path)
    assert loaded.roles["video"].requests_per_minute == 6
    assert [s.provider for s in loaded.also["video"]] == ["google"]
    assert loaded.cache is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chat: {provider: openai\n", "is not valid YAML"),
        ("vidoe: {provider: google}\n", "unknown section(s) vidoe"),
        ("video: {class_path: tools.VideoGeneratorSora2API}\n", "has no vimax-nb counterpart"),
        ("video: {provider: google, rpm: -1}\n", "requests_per_minute"),
        ("video: {provider: google, colour: red}\n", "colour"),
        ("cache: [chat, audio]\n", "cache is a list of roles"),
        ("max_cost: -3\n", "max_cost is a positive number"),
        ("prices: {veo-3: {video_second: cheap}}\n", "prices.veo-3"),
    ],
)
def test_mistakes_in_the_providers_file_say_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    with pytest.raises(ProvidersFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_providers_file(path)


def test_a_missing_providers_file_is_named() -> None:
    with pytest.raises(ProvidersFileError, match=r"cannot read the providers file '/nope.yaml'"):
        load_providers_file("/nope.yaml")


def test_prices_by_exact_name_or_longest_prefix() -> None:
    table = PriceTable({"my-model": ModelPrices(input_tokens=1.0, output_tokens=2.0)})
    usage = Usage("openai", "my-model", "chat", input_tokens=1_000_000, output_tokens=500_000)
    assert table.price(usage).cost == pytest.approx(2.0)
    veo = Usage("google", "veo-3.0-fast-generate-001", "video", video_seconds=8)
    assert table.price(veo).cost == pytest.approx(8 * 0.10)
    assert table.price(Usage("google", "veo-3.0-generate-001", "video", video_seconds=8)).cost == (
        pytest.approx(8 * 0.20)
    )
    assert table.price(Usage("x", "mystery", "image", images=3, cached=False)).cost == 0.0
    assert table.unpriced("mystery", "x")
    assert not table.unpriced("procedural-image", "procedural")
    cached = Usage("google", "veo-3", "video", video_seconds=8, cached=True)
    assert table.price(cached).cost == 0.0


class _Answer(BaseModel):
    text: str


class _Counting:
    provider, model = "hosted", "hosted-1"

    def __init__(self) -> None:
        self.calls = 0

    def probe(self) -> None:
        pass

    def complete(self, request: ChatRequest[Any], call: ProviderCall | None = None) -> Any:
        self.calls += 1
        return request.response_model(text=f"answer {self.calls}")

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Any = (),
        size: str = "64x32",
        call: ProviderCall | None = None,
    ) -> ImageOutput:
        self.calls += 1
        return ImageOutput(Image.new("RGB", (64, 32), (self.calls, 0, 0)))


def test_cached_chat_answers_match_task_inputs_and_seed(tmp_path: Path) -> None:
    inner = _Counting()
    chat = with_cache(inner, "chat", ResultCache(tmp_path))
    usages: list[Usage] = []
    call = ProviderCall(on_usage=usages.append)
    ask = ChatRequest("develop_story", "be brief", {"idea": "a fox"}, _Answer, seed=1)
    assert chat.complete(ask, call).text == "answer 1"
    assert chat.complete(ask, call).text == "answer 1"
    assert inner.calls == 1
    assert usages == [Usage("hosted", "hosted-1", "chat", cached=True)]
    other_seed = ChatRequest("develop_story", "be brief", {"idea": "a fox"}, _Answer, seed=2)
    assert chat.complete(other_seed, call).text == "answer 2"
    other_inputs = ChatRequest("develop_story", "be brief", {"idea": "a hen"}, _Answer, seed=1)
    assert chat.complete(other_inputs, call).text == "answer 3"


def test_cached_images_depend_on_the_reference_images_bytes(tmp_path: Path) -> None:
    inner = _Counting()
    images = with_cache(inner, "image", ResultCache(tmp_path / "cache"))
    portrait = tmp_path / "front.png"
    portrait.write_bytes(b"portrait one")
    first = images.generate_single_image("Shot: a fox", [portrait], "64x32")
    again = images.generate_single_image("Shot: a fox", [portrait], "64x32")
    assert inner.calls == 1
    assert again.image.tobytes() == first.image.tobytes()
    portrait.write_bytes(b"portrait two")  # the character was repainted
    images.generate_single_image("Shot: a fox", [portrait], "64x32")
    assert inner.calls == 2
    (entry,) = [p for p in (tmp_path / "cache").rglob("*.png") if p.read_bytes()][:1]
    assert Image.open(io.BytesIO(entry.read_bytes())).size == (64, 32)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_remote_job_is_polled_with_backoff_and_each_wait_is_told() -> None:
    clock = _Clock()
    told: list[str] = []
    polls: list[float] = []

    def fetch(job: int) -> int:
        polls.append(clock.now)
        return job + 1

    done = wait_for_job(
        0,
        fetch=fetch,
        done=lambda job: job >= 3,
        describe=lambda job: f"step {job}",
        call=ProviderCall(on_progress=told.append),
        model="veo-3",
        provider="google",
        timing=JobTiming(interval=2, max_interval=3, backoff=2),
        clock=clock.time,
        sleep=clock.sleep,
    )
    assert done == 3
    assert polls == [2.0, 5.0, 8.0]
    assert told == [
        "waiting on veo-3 (0 s): step 0",
        "waiting on veo-3 (2 s): step 1",
        "waiting on veo-3 (5 s): step 2",
    ]


class _Slot:
    def __init__(self, job_id: str | None) -> None:
        self.job_id = job_id

    def get(self) -> str | None:
        return self.job_id

    def set(self, job_id: str | None) -> None:
        self.job_id = job_id


@pytest.mark.parametrize("interrupted", [False, True])
def test_a_canceled_job_is_canceled_remotely_and_forgotten_an_interrupted_one_is_kept(
    interrupted: bool,
) -> None:
    clock = _Clock()
    token = CancelToken()
    canceled: list[str] = []
    slot = _Slot("op-1")

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if interrupted:
            token.interrupt()
        else:
            token.cancel()

    with pytest.raises(TaskCanceled):
        wait_for_job(
            "op-1",
            fetch=lambda job: job,
            done=lambda job: False,
            cancel=canceled.append,
            call=ProviderCall(cancel_token=token, job=slot),
            model="veo-3",
            provider="google",
            clock=clock.time,
            sleep=sleep,
        )
    assert clock.now <= 0.5  # seen within one slice of the wait
    if interrupted:
        assert (canceled, slot.job_id) == ([], "op-1")
    else:
        assert (canceled, slot.job_id) == (["op-1"], None)


def test_a_job_that_never_finishes_is_a_retryable_timeout() -> None:
    clock = _Clock()
    with pytest.raises(ProviderError, match="did not finish within 10 s") as caught:
        wait_for_job(
            "op",
            fetch=lambda job: job,
            done=lambda job: False,
            call=ProviderCall(),
            model="kling",
            provider="replicate",
            timing=JobTiming(interval=4, timeout=10),
            clock=clock.time,
            sleep=clock.sleep,
        )
    assert caught.value.retryable
