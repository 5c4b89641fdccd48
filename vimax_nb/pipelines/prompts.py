"""What the agents tell a chat model, and how they describe images and clips."""

from __future__ import annotations

from ..providers.base import compose_prompt
from .models import CharacterInScene, Scene, ShotDescription

DEVELOP_STORY = """You are a screenwriter. Develop the user's idea into a short story for a
video: a title, a one-sentence logline, and five short paragraphs (setup, inciting incident,
rising action, climax, resolution). Give the main characters names and use them
consistently. Respect the user's requirement."""

EXTRACT_CHARACTERS = """You read a story or a script and list its characters in order of
first appearance: the name used in the text, whether they are seen, their static features
(face, build, hair: what never changes) and dynamic features (clothes, props, expression)."""

WRITE_SCRIPT = """You are a screenwriter. Turn the story into exactly the requested number of
scenes. Each scene has a location, a time of day, the identifiers of the characters present
(from the given character list) and its script: action lines and dialogue lines written as
NAME: line."""

DESIGN_STORYBOARD = """You are a storyboard artist. Break the scene into exactly the requested
number of shots. For each shot give its camera index (0 for the first shot's camera; reuse a
camera when the framing repeats), a visual description naming the visible characters by
identifier, and an audio description. Only the last shot has is_last true."""

DECOMPOSE_SHOT = """You are a cinematographer. Describe the shot's first frame and last frame,
which characters (by index in the character list) are visible in each, how much changes
between them (small, medium or large, and why) and the motion, using one camera move among:
static, pan left, pan right, tilt up, tilt down, zoom in, zoom out, dolly in, dolly out."""

CONSTRUCT_CAMERA_TREE = """You are a director of photography. Group the shots by camera index
into cameras with their active shots in order. The camera of the first shot is the root; each
other camera names as parent the camera and shot it cuts from: a shot that comes before the
camera's first shot."""


def portrait_prompt(character: CharacterInScene, view: str, style: str) -> str:
    """The prompt for one view (front, side, back) of a character's portrait."""
    return compose_prompt(
        subject=f"full-body portrait of {character.identifier_in_scene}, {view} view",
        character=character.identifier_in_scene,
        view=view,
        features=f"{character.static_features} {character.dynamic_features}",
        style=style,
    )


def frame_prompt(
    shot: ShotDescription,
    frame: str,
    scene: Scene,
    characters: list[CharacterInScene],
    style: str,
) -> str:
    """The prompt for the first or last frame of a shot; the reference images are the
    front portraits of ``characters``, in that order."""
    description = shot.ff_desc if frame == "first" else shot.lf_desc
    return compose_prompt(
        style=style,
        scene=f"{scene.location}, {scene.time_of_day}",
        frame=frame,
        shot=str(shot.idx),
        description=description,
        characters=", ".join(c.identifier_in_scene for c in characters),
        camera=f"camera {shot.cam_idx}; {shot.motion_desc}",
        caption=_caption(shot.audio_desc) or _caption(description),
    )


def clip_prompt(shot: ShotDescription, style: str) -> str:
    """The prompt for the clip that moves from a shot's first frame to its last."""
    return compose_prompt(description=shot.visual_desc, motion=shot.motion_desc, style=style)


def _caption(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
