"""The procedural providers: a chat, an image and a video model that need no trained
model, no network and no key. Their output is deterministic and drawn for real (Pillow,
PyAV), so the ViMax pipelines can run end to end offline, in tests and in demos."""

from collections.abc import Mapping

from ..base import Role
from ..settings import ProviderSettings
from .images import (
    CharacterLook,
    ProceduralImageModel,
    character_look,
    scene_setting,
    style_palette,
)
from .text import ProceduralChatModel
from .video import MOTIONS, ProceduralVideoModel, camera_motion, camera_path

__all__ = [
    "MOTIONS",
    "CharacterLook",
    "ProceduralChatModel",
    "ProceduralImageModel",
    "ProceduralVideoModel",
    "build",
    "camera_motion",
    "camera_path",
    "character_look",
    "scene_setting",
    "style_palette",
]


def build(
    role: Role, settings: ProviderSettings, environ: Mapping[str, str] | None = None
) -> ProceduralChatModel | ProceduralImageModel | ProceduralVideoModel:
    """The procedural model of ``role``; it takes no settings but the provider name."""
    if settings.model not in (None, "", f"procedural-{'text' if role == 'chat' else role}"):
        raise ValueError(f"the procedural provider has one {role} model; remove model:")
    if role == "chat":
        return ProceduralChatModel()
    return ProceduralImageModel() if role == "image" else ProceduralVideoModel()
