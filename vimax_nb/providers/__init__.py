"""Model providers for the pipelines: which chat, image and video model to use.

``procedural`` (the default) runs offline and deterministically; ``openai`` speaks to
any OpenAI-compatible service for chat and images. Providers know their parameters and
the cancel token of :mod:`vimax_nb.shared`; they import nothing of the coordinator, the
store or the pipelines.

Importing this package loads only :mod:`.base` (pydantic, no Pillow, PyAV or
``openai``); :func:`make_providers` imports the procedural providers, and the OpenAI
ones only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import (
    ChatModel,
    ChatRequest,
    ImageModel,
    ImageOutput,
    ProviderError,
    VideoModel,
    VideoRequest,
)

if TYPE_CHECKING:
    from .openai import OpenAIConfig

__all__ = [
    "ChatModel",
    "ChatRequest",
    "ImageModel",
    "ImageOutput",
    "ProviderError",
    "Providers",
    "VideoModel",
    "VideoRequest",
    "make_providers",
]

#: The provider names each role accepts.
CHAT_PROVIDERS = ("procedural", "openai")
IMAGE_PROVIDERS = ("procedural", "openai")
VIDEO_PROVIDERS = ("procedural",)


@dataclass(frozen=True, slots=True)
class Providers:
    """The provider of each role the agents need."""

    chat: ChatModel
    image: ImageModel
    video: VideoModel


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
    from .procedural import ProceduralChatModel, ProceduralImageModel, ProceduralVideoModel

    chat_model: ChatModel = ProceduralChatModel()
    image_model: ImageModel = ProceduralImageModel()
    if "openai" in (chat, image):
        from .openai import OpenAIChatModel, OpenAIConfig, OpenAIImageModel

        config = openai or OpenAIConfig.from_env()
        if chat == "openai":
            chat_model = OpenAIChatModel(config)
        if image == "openai":
            image_model = OpenAIImageModel(config)
    return Providers(chat_model, image_model, ProceduralVideoModel())


def _check(role: str, name: str, choices: tuple[str, ...]) -> None:
    if name not in choices:
        raise ValueError(f"unknown {role} provider {name!r}: choose one of {', '.join(choices)}")
