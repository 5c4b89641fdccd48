"""The procedural providers: a chat, an image and a video model that need no trained
model, no network and no key. Their output is deterministic and drawn for real (Pillow,
PyAV), so the ViMax pipelines can run end to end offline, in tests and in demos."""

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
    "camera_motion",
    "camera_path",
    "character_look",
    "scene_setting",
    "style_palette",
]
