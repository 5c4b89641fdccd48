"""The parameters of Idea2Video and Script2Video workflows, validated."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]

#: The most scenes a workflow makes.
MAX_SCENES = 10

#: The looks the offline (procedural) renderer draws by name: a style containing one of
#: these words gets that look's palette; any other style gets colours of its own, derived
#: from its text. Hosted models take the style as free text.
OFFLINE_STYLES = (
    "noir",
    "pixel art",
    "watercolor",
    "oil painting",
    "anime",
    "claymation",
    "comic",
    "sketch",
    "pastel",
    "cyberpunk",
    "storybook",
    "cinematic",
)

STYLE_DESCRIPTION = (
    "the visual style, in free text passed to the models (hosted models take any style: "
    "'watercolor', 'film noir', 'in the style of a 1970s travel poster'); the offline "
    "renderer has looks for " + ", ".join(OFFLINE_STYLES) + " and gives any other style "
    "colours of its own"
)


class ProviderChoice(BaseModel):
    """The provider a workflow uses for each role, among those the server has
    configured (``GET /vimax/api/providers``); None means the server's default."""

    model_config = ConfigDict(extra="forbid")

    chat: ProviderName | None = None
    image: ProviderName | None = None
    video: ProviderName | None = None


class VideoParams(BaseModel):
    """What both pipelines take."""

    model_config = ConfigDict(extra="forbid")

    style: str = Field(default="cinematic", max_length=200, description=STYLE_DESCRIPTION)
    user_requirement: str = Field(default="", max_length=2_000, description="wishes and limits")
    shots_per_scene: int = Field(default=4, ge=1, le=24)
    width: int = Field(default=640, ge=64, le=3840, multiple_of=2)
    height: int = Field(default=360, ge=64, le=2160, multiple_of=2)
    fps: int = Field(default=12, ge=1, le=60)
    seconds_per_shot: float = Field(default=2.0, gt=0, le=30)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    providers: ProviderChoice = Field(default_factory=ProviderChoice)
    max_cost: float | None = Field(
        default=None, gt=0, description="US dollars the workflow may spend on provider calls"
    )


class Idea2VideoParams(VideoParams):
    """An idea in a sentence or a paragraph, turned into a story, a script and a video."""

    idea: Text
    scenes: int = Field(default=1, ge=1, le=MAX_SCENES, description="the most scenes to make")


def _auto(value: object) -> object:
    return 0 if value is None else value


class Script2VideoParams(VideoParams):
    """A script (scene headings optional) turned into a video."""

    script: Text
    scenes: Annotated[int, BeforeValidator(_auto)] = Field(
        default=0,
        ge=0,
        le=MAX_SCENES,
        description=(
            "the most scenes to make; 0 or null (the default): one per scene heading of the "
            f"script (INT./EXT. or 'Scene 2:'), at most {MAX_SCENES}. With fewer than the "
            "script has, the rest of the script joins the last scene, and the workflow's "
            "first messages say so"
        ),
    )
