"""What the agents tell a chat model, and how they describe images and clips."""

from __future__ import annotations

import re

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


def _inside_or_out(scene: Scene) -> str:
    """``inside`` or ``outside`` as the scene's heading (``INT.``/``EXT.``) says, or ""."""
    heading = re.match(r"\s*(INT|EXT)\b", scene.script, re.IGNORECASE)
    if heading is None:
        return ""
    return "inside" if heading[1].upper() == "INT" else "outside"


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
        scene=", ".join(x for x in (_inside_or_out(scene), scene.location, scene.time_of_day) if x),
        frame=frame,
        shot=str(shot.idx),
        description=description,
        characters=", ".join(c.identifier_in_scene for c in characters),
        camera=f"camera {shot.cam_idx}; {shot.motion_desc}",
        caption=_caption(shot.audio_desc) or _caption(description),
    )


def clip_prompt(shot: ShotDescription, style: str) -> str:
    """The prompt for the clip that moves from a shot's first frame to its last; the lines
    of dialogue in the shot's audio (``Mara: "Hello"``) are passed verbatim, in order, as
    ``Dialogue: Mara: Hello | Tobin: Hi`` (video models may show them as subtitles)."""
    spoken = dialogue_lines(shot.audio_desc)
    return compose_prompt(
        description=shot.visual_desc,
        motion=shot.motion_desc,
        style=style,
        dialogue=" | ".join(f"{who}: {line}" for who, line in spoken),
    )


#: Labels of an audio description that name a sound, not a speaker.
_NOT_SPEAKERS = frozenset(
    {
        "ambience",
        "ambient",
        "audio",
        "background",
        "effects",
        "foley",
        "music",
        "noise",
        "none",
        "score",
        "silence",
        "sound",
        "sounds",
        "sfx",
    }
)
_QUOTED = re.compile(r'("[^"]*"|\u201c[^\u201d]*\u201d|\u2018[^\u2019]*\u2019)')
_LABEL = re.compile(r"((?:[^\W\d_][\w'.-]*\s+){0,2}[^\W\d_][\w'.-]*)\s*(?:\([^)]*\))?\s*:\s*$")
_CAPS_LINE = re.compile(
    r"\s*([^\W\d_][\w'.-]*(?: [^\W\d_][\w'.-]*){0,2})(?:\s*\([^)]*\))?:\s*(\S.*)"
)


def _speaker(label: str) -> str | None:
    words = label.split()
    while words and not words[0][0].isupper():  # "she says. Tobin" -> "Tobin"
        words.pop(0)
    if not words or words[0].lower() in _NOT_SPEAKERS or " ".join(words).lower() in _NOT_SPEAKERS:
        return None
    name = " ".join(words)
    return " ".join(w.capitalize() for w in words) if name.isupper() and len(name) > 1 else name


def dialogue_lines(audio: str) -> list[tuple[str, str]]:
    """``[("Mara", "Hello")]``: the lines of dialogue of an audio description, in order.

    A line is a speaker (up to three capitalised words, an optional parenthetical such
    as ``(V.O.)``), a colon and the line in double quotes (``Mara: "Hello" Tobin: "Hi"``);
    without quotes, a single line after a name in capitals (``MARA: Hello``). Lines come
    back verbatim without their quotes; labels of sounds (``Ambience:``, ``SFX:``) are not
    speakers."""
    pieces = _QUOTED.split(audio)
    found = []
    for before, quoted in zip(pieces[::2], pieces[1::2], strict=False):
        label = _LABEL.search(before)
        speaker = _speaker(label[1]) if label else None
        line = quoted[1:-1].strip()
        if speaker and line:
            found.append((speaker, line))
    if found:
        return found
    caps = _CAPS_LINE.fullmatch(audio.strip())
    if caps and caps[1].isupper() and len(caps[1].replace(" ", "")) > 1:
        speaker = _speaker(caps[1])
        if speaker:
            return [(speaker, caps[2].strip())]
    return []


def dialogue_line(audio: str) -> tuple[str, str] | None:
    """The first of :func:`dialogue_lines`, if any."""
    lines = dialogue_lines(audio)
    return lines[0] if lines else None


def _caption(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
