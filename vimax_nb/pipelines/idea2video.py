"""Idea2Video: an idea becomes a story, characters with portraits, a script of scenes,
and each scene a storyboard, frames, clips and a video; the scenes make the film."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..coordinator import Stage, TaskSpec
from .base import FINAL, SCENE_STAGES, ViMaxPipeline, portrait_tasks, storyboard_task
from .params import Idea2VideoParams


class Idea2VideoPipeline(ViMaxPipeline):
    """develop_story -> extract_characters -> portraits (one per character) ->
    write_script -> per scene: storyboard -> shots -> camera tree -> frames -> clips ->
    scene video -> final concatenation."""

    kind = "idea2video"
    stages = (
        Stage("story", 1),
        Stage("characters", 0.5),
        Stage("portraits", 1.5),
        Stage("script", 1),
        *SCENE_STAGES,
        Stage("scene_video", 1),
        Stage("final", 1),
    )

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return self.with_defaults(Idea2VideoParams.model_validate(params).model_dump())

    def plan(self, params: Mapping[str, Any]) -> Iterable[TaskSpec]:
        return [
            TaskSpec("story", "develop_story", "story"),
            TaskSpec(
                "characters",
                "extract_characters",
                "characters",
                deps=("story",),
                params={"source": "story"},
                expand=portrait_tasks,
            ),
            TaskSpec(
                "script",
                "write_script",
                "script",
                deps=("story", "characters"),
                expand=self._scenes,
            ),
            TaskSpec(FINAL, "assemble_final", "final", deps=("script",)),
        ]

    @staticmethod
    def _scenes(script: Mapping[str, Any]) -> list[TaskSpec]:
        return [
            storyboard_task(
                i,
                f"scene_{i}",
                scene,
                ("script", "characters"),
                scene_video=True,
                holds_final=True,
            )
            for i, scene in enumerate(script["scenes"])
        ]
