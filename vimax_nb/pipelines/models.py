"""The shapes ViMax passes between its agents, as pydantic models.

Field names follow ViMax's ``interfaces`` so that its users recognise them:
a character seen in a scene, the brief and the full description of a shot, the
camera tree, and the story and script an idea becomes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CharacterInScene(_Model):
    """A character as the script sees them."""

    idx: int = Field(ge=0, description="index in the character list")
    identifier_in_scene: str = Field(min_length=1, description="the name used in the script")
    is_visible: bool = True
    static_features: str = Field(description="what does not change: face, build, hair")
    dynamic_features: str = Field(description="what may change: clothes, props, expression")


class ShotBriefDescription(_Model):
    """A storyboard entry: what one shot shows and sounds like."""

    idx: int = Field(ge=0)
    is_last: bool
    cam_idx: int = Field(ge=0, description="the camera that films this shot")
    visual_desc: str
    audio_desc: str = ""


class ShotDescription(ShotBriefDescription):
    """A shot decomposed into its first frame, last frame and the motion between."""

    variation_type: Literal["small", "medium", "large"]
    variation_reason: str = ""
    ff_desc: str = Field(description="the first frame")
    ff_vis_char_idxs: list[int] = Field(default_factory=list)
    lf_desc: str = Field(description="the last frame")
    lf_vis_char_idxs: list[int] = Field(default_factory=list)
    motion_desc: str = Field(description="how the camera and the subjects move")


class Camera(_Model):
    """A camera position; a child camera's first frame derives from its parent's shot."""

    idx: int = Field(ge=0)
    active_shot_idxs: list[int] = Field(min_length=1)
    parent_cam_idx: int | None = None
    parent_shot_idx: int | None = None
    missing_info: str | None = None


class Scene(_Model):
    """One scene of a script."""

    idx: int = Field(ge=0)
    location: str
    time_of_day: str = "day"
    characters: list[str] = Field(default_factory=list, description="identifiers in the scene")
    script: str = Field(min_length=1, description="the scene's text: action and dialogue")


class Story(_Model):
    """What the screenwriter makes of an idea."""

    title: str
    logline: str
    text: str = Field(min_length=1)


class Script(_Model):
    """A story written out as scenes."""

    title: str
    scenes: list[Scene] = Field(min_length=1)


class CharacterList(_Model):
    """The answer to ``extract_characters``."""

    characters: list[CharacterInScene]


class Storyboard(_Model):
    """The answer to ``design_storyboard``: the shots of one scene, in order."""

    shots: list[ShotBriefDescription] = Field(min_length=1)


class CameraTree(_Model):
    """The answer to ``construct_camera_tree``: one camera per camera index."""

    cameras: list[Camera] = Field(min_length=1)
