"""Model providers for the pipelines: which chat model, image and video generator to use.

``procedural`` (the default) runs offline and deterministically; ``openai`` speaks to
any OpenAI-compatible service for chat and images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .base import (
    ChatModel,
    ChatRequest,
    ImageGenerator,
    ImageOutput,
    ProviderError,
    VideoGenerator,
    VideoRequest,
)

if TYPE_CHECKING:
    from .openai import OpenAIConfig

__all__ = [
    "ChatModel",
    "ChatRequest",
    "ImageGenerator",
    "ImageOutput",
    "ProviderError",
    "Providers",
    "VideoGenerator",
    "VideoRequest",
    "make_providers",
]

ChatChoice = Literal["procedural", "openai"]
ImageChoice = Literal["procedural", "openai"]
VideoChoice = Literal["procedural"]

CHAT_PROVIDERS = ("procedural", "openai")
IMAGE_PROVIDERS = ("procedural", "openai")
VIDEO_PROVIDERS = ("procedural",)


@dataclass(frozen=True, slots=True)
class Providers:
    """The provider of each role the agents need."""

    chat: ChatModel
    image: ImageGenerator
    video: VideoGenerator


def make_providers(
    chat: str = "procedural",
    image: str = "procedural",
    video: str = "procedural",
    openai: OpenAIConfig | None = None,
) -> Providers:
    """The providers named for each role; ``openai`` configures the OpenAI-compatible
    ones (read from the environment when not given).

    Raises ``ValueError`` naming the role and the choices for an unknown name, and
    :class:`ProviderError` when the OpenAI settings are incomplete.
    """
    _check("chat", chat, CHAT_PROVIDERS)
    _check("image", image, IMAGE_PROVIDERS)
    _check("video", video, VIDEO_PROVIDERS)
    from .procedural import ProceduralChatModel, ProceduralImageGenerator, ProceduralVideoGenerator

    chat_model: ChatModel = ProceduralChatModel()
    image_generator: ImageGenerator = ProceduralImageGenerator()
    if "openai" in (chat, image):
        from .openai import OpenAIChatModel, OpenAIConfig, OpenAIImageGenerator

        config = openai or OpenAIConfig.from_env()
        if chat == "openai":
            chat_model = OpenAIChatModel(config)
        if image == "openai":
            image_generator = OpenAIImageGenerator(config)
    return Providers(chat_model, image_generator, ProceduralVideoGenerator())


def _check(role: str, name: str, choices: tuple[str, ...]) -> None:
    if name not in choices:
        raise ValueError(f"unknown {role} provider {name!r}: choose one of {', '.join(choices)}")
