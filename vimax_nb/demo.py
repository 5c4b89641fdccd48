"""A small text-only workflow that shows the coordinator at work without any model.

An idea becomes beats (one per sentence), each beat becomes a storyboard panel
written by one of several artists in parallel, and an editor joins the panels
into ``storyboard.md``. The ViMax pipelines replace it as the main job.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .coordinator import (
    Agent,
    Artifact,
    Pipeline,
    Stage,
    TaskContext,
    TaskGraph,
    TaskResult,
    TaskSpec,
    skill,
)

SHOT_SIZES = ("wide shot", "medium shot", "close-up", "over-the-shoulder shot")


class Screenwriter(Agent):
    description = "Splits an idea into story beats"

    @skill(description="Turn an idea into story beats, one per sentence")
    def write_beats(self, ctx: TaskContext) -> list[str]:
        idea = ctx.workflow_params["idea"]
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", idea) if s.strip()]
        wanted = ctx.workflow_params["beats"] or len(sentences)
        beats = sentences[:wanted]
        while len(beats) < wanted:  # revisit the idea from a new angle
            beats.append(f"Again, closer: {sentences[len(beats) % len(sentences)]}")
        return beats


class StoryboardArtist(Agent):
    description = "Describes one storyboard panel per beat"

    @skill(description="Describe the panel for one beat")
    def draw_panel(self, ctx: TaskContext) -> str:
        ctx.cancel_token.raise_if_cancelled()
        index, beat = ctx.params["index"], ctx.params["beat"]
        size = SHOT_SIZES[index % len(SHOT_SIZES)]
        return f"Panel {index + 1} ({size}): {beat}"


class Editor(Agent):
    description = "Assembles the storyboard"

    @skill(description="Join the panels into a storyboard document")
    def assemble(self, ctx: TaskContext) -> TaskResult:
        panels = [ctx.inputs[key] for key in sorted(ctx.inputs, key=_panel_number)]
        text = "# Storyboard\n\n" + "\n\n".join(textwrap.fill(p, 78) for p in panels) + "\n"
        if ctx.workdir is not None:
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            (ctx.workdir / "storyboard.md").write_text(text, encoding="utf-8")
        return TaskResult({"panels": panels}, [Artifact("storyboard", "text", "storyboard.md")])


def _panel_number(key: str) -> int:
    return int(key.rsplit("/", 1)[1])


class StoryboardDemo(Pipeline):
    """idea -> beats -> one panel per beat (in parallel) -> storyboard.md"""

    kind = "storyboard-demo"
    stages = (Stage("beats", 1), Stage("panels", 3), Stage("assemble", 1))

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        idea = params.get("idea")
        if not isinstance(idea, str) or not idea.strip():
            raise ValueError("'idea' is required: a sentence or more of text")
        beats = params.get("beats")
        if beats is not None and (not isinstance(beats, int) or not 1 <= beats <= 50):
            raise ValueError(f"'beats' must be a whole number from 1 to 50 (got {beats!r})")
        return {"idea": idea.strip(), "beats": beats}

    def plan(self, params: Mapping[str, Any]) -> Iterable[TaskSpec]:
        return [TaskSpec("beats", "write_beats", "beats", expand=self._panels)]

    def _panels(self, beats: list[str]) -> list[TaskSpec]:
        panels = [
            TaskSpec(
                f"panel/{i}",
                "draw_panel",
                "panels",
                deps=("beats",),
                params={"index": i, "beat": b},
            )
            for i, b in enumerate(beats)
        ]
        assemble = TaskSpec("assemble", "assemble", "assemble", deps=tuple(p.key for p in panels))
        return [*panels, assemble]

    def result(self, graph: TaskGraph) -> dict[str, Any]:
        return {"panels": graph.tasks["assemble"].result["panels"], "file": "storyboard.md"}


def demo_agents(artists: int = 3) -> list[Agent]:
    """The agents the demo pipeline needs."""
    return [
        Screenwriter("screenwriter"),
        *(StoryboardArtist(f"storyboard-artist-{i + 1}") for i in range(artists)),
        Editor("editor"),
    ]


def storyboard_path(workdir: Path, workflow_id: str) -> Path:
    """Where the demo writes a workflow's storyboard."""
    return workdir / workflow_id / "storyboard.md"
