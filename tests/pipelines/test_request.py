"""Requests in plain words become Idea2Video parameters."""

from __future__ import annotations

from typing import Any

import pytest

from vimax_nb.pipelines.params import Idea2VideoParams
from vimax_nb.pipelines.request import (
    PARSE_REQUEST_INSTRUCTIONS,
    describe_plan,
    parse_request,
    parse_request_offline,
)
from vimax_nb.providers.base import ChatModel, ChatRequest, ProviderError
from vimax_nb.providers.procedural.text import ProceduralChatModel

X = "\N{MULTIPLICATION SIGN}"
DEFAULTS = Idea2VideoParams(idea="x").model_dump(exclude={"idea"})

CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "a three-scene watercolor video about a fox who learns to fly, for children",
        {
            "idea": "A fox who learns to fly",
            "scenes": 3,
            "style": "watercolor",
            "user_requirement": "for children",
        },
    ),
    (
        "Make me a funny anime video about a robot who wants to dance, 2 scenes, six shots per "
        "scene",
        {
            "idea": "A robot who wants to dance",
            "style": "anime",
            "user_requirement": "funny",
            "scenes": 2,
            "shots_per_scene": 6,
        },
    ),
    (
        "please create a vertical video of a lighthouse keeper befriending a whale, seed 7",
        {"idea": "A lighthouse keeper befriending a whale", "width": 360, "height": 640, "seed": 7},
    ),
    (
        "a vertical video of a cat in HD",
        {"idea": "A cat", "width": 720, "height": 1280},
    ),
    ("A fox who learns to sketch", {"idea": "A fox who learns to sketch"}),
    ("a square dance at the village hall", {"idea": "A square dance at the village hall"}),
    (
        "a 30-second pixel art film about two friends building a raft, 3 shots per scene",
        {
            "idea": "Two friends building a raft",
            "style": "pixel art",
            "shots_per_scene": 3,
            "seconds_per_shot": 10.0,
        },
    ),
    (
        "a video about a cat detective in the style of Studio Ghibli, no violence, 10 seconds "
        "per shot",
        {
            "idea": "A cat detective",
            "style": "Studio Ghibli",
            "user_requirement": "no violence",
            "seconds_per_shot": 10.0,
        },
    ),
    (
        "a girl and her dragon, watercolour, square, 24 fps",
        {
            "idea": "A girl and her dragon",
            "style": "watercolor",
            "width": 480,
            "height": 480,
            "fps": 24,
        },
    ),
    (
        "a short noir video about a detective in a rainy city",
        {"idea": "A detective in a rainy city", "style": "noir", "user_requirement": "short"},
    ),
    ("Film noir: a detective who loses his hat", {"idea": "A detective who loses his hat"}),
    (
        "A robot who learns to paint, in oil painting style, 1280x720",
        {"idea": "A robot who learns to paint", "style": "oil painting", "width": 1280},
    ),
    (
        "a short video for kids about a snail who wants to win a race, 5 shots, 3 seconds each",
        {
            "idea": "A snail who wants to win a race",
            "user_requirement": "for kids, short",
            "shots_per_scene": 5,
            "seconds_per_shot": 3.0,
        },
    ),
    (
        "In 2 scenes with 3 shots each, show a knight who is afraid of horses. Make it funny.",
        {
            "idea": "A knight who is afraid of horses",
            "scenes": 2,
            "shots_per_scene": 3,
            "user_requirement": "funny",
        },
    ),
    (
        "cyberpunk: a courier races across a neon city at night, 720p, 30fps",
        {
            "idea": "A courier races across a neon city at night",
            "style": "cyberpunk",
            "width": 1280,
            "height": 720,
            "fps": 30,
        },
    ),
    (
        "an anime about a girl who can talk to clouds, ten scenes",
        {"idea": "A girl who can talk to clouds", "style": "anime", "scenes": 10},
    ),
    (
        "a one-minute storybook video about an owl who collects buttons, 2 scenes, 5 shots per "
        "scene",
        {
            "idea": "An owl who collects buttons",
            "style": "storybook",
            "scenes": 2,
            "shots_per_scene": 5,
            "seconds_per_shot": 6.0,
        },
    ),
    ("a fox who learns to fly in watercolor", {"idea": "A fox who learns to fly"}),
    (
        "a man in vintage clothes sketches a fox who learns to sketch, in pastel",
        {"idea": "A man in vintage clothes sketches a fox who learns to sketch", "style": "pastel"},
    ),
    (
        "Create a video of two robots dancing in the rain. Please.",
        {"idea": "Two robots dancing in the rain", "style": "cinematic"},
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_offline_parser(text: str, expected: dict[str, Any]) -> None:
    params = parse_request_offline(text)
    got = params.model_dump()
    assert {k: got[k] for k in expected} == expected
    unasked = {"seed", "scenes", "shots_per_scene", "fps", "seconds_per_shot"} - expected.keys()
    if not {"width", "height"} & expected.keys():
        unasked |= {"width", "height"}
    assert {k: got[k] for k in unasked} == {k: DEFAULTS[k] for k in unasked}
    assert parse_request(text) == params


def test_the_example_from_the_docs() -> None:
    params = parse_request(
        "a three-scene watercolor video about a fox who learns to fly, for children"
    )
    assert params.scenes == 3
    assert params.style == "watercolor"
    assert "children" in params.user_requirement
    assert params.idea == "A fox who learns to fly"


def test_number_words_and_forms() -> None:
    for text, scenes in [
        ("a single scene about a cat", 1),
        ("four scenes about a cat", 4),
        ("a cat, in 7 scenes", 7),
        ("a cat, scenes: 5", 5),
    ]:
        assert parse_request_offline(text).scenes == scenes, text
        assert parse_request_offline(text).idea == "A cat", text
    assert parse_request_offline("a cat, 2 shots per scene").shots_per_scene == 2
    assert parse_request_offline("a cat, 1.5 seconds per shot").seconds_per_shot == 1.5


@pytest.mark.parametrize(
    "text", ["", "   ", "make a video", "a watercolor video, 3 scenes", "please, for kids"]
)
def test_empty_idea_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"what the video should be about|request is empty"):
        parse_request(text)


def test_out_of_range_values_are_errors() -> None:
    with pytest.raises(ValueError, match="scenes"):
        parse_request_offline("a cat, 40 scenes")


class RecordingChat:
    """A chat model that remembers what it was asked and answers with fixed parameters
    (and, unasked, a provider and a budget of its own)."""

    provider = "recording"
    model = "recording-chat"

    def __init__(self) -> None:
        self.requests: list[ChatRequest[Any]] = []

    def probe(self) -> None:
        pass

    def complete(self, request: ChatRequest[Any], call: Any = None) -> Any:
        self.requests.append(request)
        answer = {
            "idea": "A whale who sings",
            "style": "anime",
            "scenes": 2,
            "providers": {"video": "google"},
            "max_cost": 900,
        }
        return request.response_model.model_validate(answer)


def test_chat_path_asks_the_model() -> None:
    chat = RecordingChat()
    assert isinstance(chat, ChatModel)
    params = parse_request("two anime scenes about a singing whale", chat, seed=42)
    assert params == Idea2VideoParams(idea="A whale who sings", style="anime", scenes=2)
    (request,) = chat.requests
    assert request.task == "parse_request"
    assert dict(request.inputs) == {"request": "two anime scenes about a singing whale"}
    assert request.response_model is Idea2VideoParams
    assert request.seed == 42
    assert request.instructions == PARSE_REQUEST_INSTRUCTIONS
    for field in Idea2VideoParams.model_fields:
        assert field in request.instructions, field


def test_offline_requests_need_no_chat_model_and_the_procedural_one_refuses() -> None:
    text = "a three-scene watercolor video about a fox who learns to fly, for children"
    assert parse_request(text, None).scenes == 3
    with pytest.raises(ProviderError, match="parse_request"):
        parse_request(text, ProceduralChatModel())


def test_describe_plan() -> None:
    params = Idea2VideoParams(idea="A fox who learns to fly", style="watercolor")
    assert describe_plan(params) == (
        f"1 scene {X} 4 shots, watercolor, 640{X}360 at 12 fps, 2 s a shot: "
        "'A fox who learns to fly'"
    )
    more = Idea2VideoParams(
        idea="A lighthouse keeper who befriends a whale during the longest storm of the century",
        scenes=3,
        shots_per_scene=1,
        seconds_per_shot=2.5,
        user_requirement="for children",
        seed=7,
    )
    plan = describe_plan(more)
    assert plan.startswith(f"3 scenes {X} 1 shot, cinematic, for children, 640{X}360 at 12 fps")
    assert "2.5 s a shot" in plan
    assert "seed 7" in plan
    assert plan.endswith("…'")
    assert len(plan) < 160
