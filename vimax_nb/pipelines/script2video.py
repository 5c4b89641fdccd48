"""Script2Video: a script becomes characters with portraits, and each of its scenes a
storyboard, frames and clips; the clips make the film."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..coordinator import Stage, TaskSpec
from .base import FINAL, SCENE_STAGES, ViMaxPipeline, portrait_tasks, storyboard_task
from .models import Scene
from .params import MAX_SCENES, Script2VideoParams

HEADING = re.compile(
    r"^\s*(?:(?:INT|EXT|INT\./EXT|I/E)\.?\s+(?P<place>[^\n]*?)|SCENE\s+\d+[:.]?\s*(?P<title>[^\n]*))\s*$",
    re.IGNORECASE | re.MULTILINE,
)
TIMES = ("night", "day", "dawn", "dusk", "morning", "evening", "sunset", "noon")


def count_scenes(script: str) -> int:
    """How many scenes ``script`` has: one per heading, one if it has no heading."""
    return max(1, sum(1 for _ in HEADING.finditer(script)))


def scenes_notice(script: str, scenes: int) -> str:
    """What a person should know when ``script`` has more scenes than the ``scenes`` a
    workflow makes ("the script has 3 scenes; making 1 (scenes=1): ..."); "" otherwise."""
    count = count_scenes(script)
    if count <= scenes:
        return ""
    first, rest = scenes + 1, f"scenes {scenes + 1} to {count} join"
    if count == first:
        rest = f"scene {count} joins"
    elif count == first + 1:
        rest = f"scenes {first} and {count} join"
    why = "the most a workflow makes" if scenes == MAX_SCENES else f"scenes={scenes}"
    return f"the script has {count} scenes; making {scenes} ({why}): {rest} scene {scenes}"


def split_scenes(script: str, limit: int) -> list[Scene]:
    """The scenes of ``script`` by their headings (``INT. ROOM - NIGHT``, ``Scene 2:``);
    a script without headings is one scene. At most ``limit`` scenes: the rest of the
    script joins the last one."""
    marks = list(HEADING.finditer(script))
    if not marks:
        return [Scene(idx=0, location="the scene", script=script.strip())]
    preamble = script[: marks[0].start()].strip()
    scenes: list[Scene] = []
    for n, mark in enumerate(marks):
        end = marks[n + 1].start() if n + 1 < len(marks) else len(script)
        body = script[mark.end() : end].strip()
        heading = (mark["place"] or mark["title"] or "").strip()
        place, _, when = heading.partition(" - ")
        time_of_day = next((t for t in TIMES if t in when.lower() or t in heading.lower()), "day")
        # The heading line stays first: INT./EXT. says whether the scene is inside.
        text = "\n".join(x for x in (mark[0].strip(), preamble if n == 0 else "", body) if x)
        if len(scenes) == limit:
            last = scenes[-1]
            scenes[-1] = last.model_copy(update={"script": f"{last.script}\n\n{heading}\n{text}"})
            continue
        location = place.strip().lower() or f"scene {n + 1}"
        scenes.append(Scene(idx=n, location=location, time_of_day=time_of_day, script=text))
    return scenes


class Script2VideoPipeline(ViMaxPipeline):
    """extract_characters -> portraits -> per scene: storyboard -> shots -> camera tree
    -> frames -> clips -> concatenation."""

    kind = "script2video"
    stages = (
        Stage("characters", 0.5),
        Stage("portraits", 1.5),
        *SCENE_STAGES,
        Stage("final", 1),
    )

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters, with ``scenes`` 0 (or None, or left out) made the number of the
        script's scenes, at most :data:`~.params.MAX_SCENES`."""
        valid = self.with_defaults(Script2VideoParams.model_validate(params).model_dump())
        if not valid["scenes"]:
            valid["scenes"] = min(count_scenes(valid["script"]), MAX_SCENES)
        return valid

    def notice(self, params: Mapping[str, Any]) -> str:
        """Said with the workflow's first messages: the scenes of the script it leaves
        out (:func:`scenes_notice`), or ""."""
        return scenes_notice(params["script"], params["scenes"] or MAX_SCENES)

    def plan(self, params: Mapping[str, Any]) -> Iterable[TaskSpec]:
        scenes = split_scenes(params["script"], params["scenes"] or MAX_SCENES)
        single = len(scenes) == 1
        boards = [
            storyboard_task(
                i,
                "" if single else f"scene_{i}",
                scene.model_dump(),
                ("characters",),
                scene_video=False,
                holds_final=False,
            )
            for i, scene in enumerate(scenes)
        ]
        return [
            TaskSpec(
                "characters",
                "extract_characters",
                "characters",
                params={"source": "script"},
                expand=portrait_tasks,
            ),
            *boards,
            TaskSpec(FINAL, "assemble_final", "final", deps=tuple(b.key for b in boards)),
        ]
