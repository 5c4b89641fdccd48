"""ViMax's agents: each performs its skills with the configured providers and leaves
its output in the workflow's folder under ViMax's file names.

Handlers run in worker threads. Every result is JSON-able (it is stored as the
task's checkpoint); files are written whole or not at all.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..coordinator import Agent, Artifact, TaskContext, TaskResult, skill
from ..protocol import ProviderStatus
from ..providers import ChatRequest, ProviderCatalog, Role, VideoRequest
from ..providers.base import M
from ..shared import write_atomically
from . import prompts
from .calls import chosen_model, provider_call, provider_status
from .editing import concatenate_videos, probe_video
from .models import (
    CameraTree,
    CharacterInScene,
    CharacterList,
    Scene,
    Script,
    ShotBriefDescription,
    ShotDescription,
    Story,
    Storyboard,
)

PORTRAIT_SIZE = "384x576"
PORTRAIT_VIEWS = ("front", "side", "back")


def workdir(ctx: TaskContext) -> Path:
    """The workflow's folder."""
    if ctx.workdir is None:
        raise RuntimeError("ViMax agents need a coordinator with a workdir")
    return ctx.workdir


def in_scene(scene_dir: str, *parts: str) -> str:
    """A path relative to the workflow folder, inside a scene's folder ('' = the root)."""
    return "/".join(p for p in (scene_dir, *parts) if p)


def write_file(ctx: TaskContext, relative: str, data: str | bytes) -> Path:
    """Write ``data`` at ``relative`` in the workflow folder, atomically."""
    return write_atomically(
        workdir(ctx) / relative, data.encode() if isinstance(data, str) else data
    )


def write_json(ctx: TaskContext, relative: str, data: Any) -> Path:
    return write_file(ctx, relative, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _characters(data: list[dict[str, Any]]) -> list[CharacterInScene]:
    return [CharacterInScene.model_validate(c) for c in data]


class _ProviderAgent(Agent):
    #: The provider roles this agent's skills call.
    roles: tuple[Role, ...] = ("chat",)

    def __init__(self, catalog: ProviderCatalog, name: str | None = None, concurrency: int = 1):
        super().__init__(name, concurrency=concurrency)
        self.catalog = catalog

    def provider_statuses(self) -> list[ProviderStatus]:
        return [provider_status(self.catalog.entry(role)) for role in self.roles]

    def ask(
        self,
        ctx: TaskContext,
        task: str,
        instructions: str,
        inputs: dict[str, Any],
        model: type[M],
    ) -> M:
        """The chat model's answer to ``task``, validated as ``model``; seeded by the
        workflow's seed. Raises TaskCanceled first if the task was canceled."""
        ctx.cancel_token.raise_if_cancelled()
        request = ChatRequest(task, instructions, inputs, model, seed=ctx.workflow_params["seed"])
        chat = chosen_model(self.catalog, ctx, "chat")
        with provider_call(ctx, self.catalog.prices) as call:
            answer: M = chat.complete(request, call)
        return answer


class Screenwriter(_ProviderAgent):
    description = "Develops an idea into a story and writes the story as scenes"

    @skill(description="Develop an idea into a story")
    def develop_story(self, ctx: TaskContext) -> TaskResult:
        p = ctx.workflow_params
        inputs = {"idea": p["idea"], "user_requirement": p["user_requirement"], "style": p["style"]}
        story: Story = self.ask(ctx, "develop_story", prompts.DEVELOP_STORY, inputs, Story)
        write_file(ctx, "story.txt", f"{story.title}\n\n{story.text}\n")
        return TaskResult(story.model_dump(), [Artifact("story", "text", "story.txt")])

    @skill(description="Write the story as scenes")
    def write_script(self, ctx: TaskContext) -> TaskResult:
        p = ctx.workflow_params
        inputs = {
            "story": ctx.inputs["story"],
            "characters": ctx.inputs["characters"],
            "scenes": p["scenes"],
            "user_requirement": p["user_requirement"],
        }
        script: Script = self.ask(ctx, "write_script", prompts.WRITE_SCRIPT, inputs, Script)
        script.scenes = script.scenes[: p["scenes"]]
        write_json(ctx, "script.json", script.model_dump())
        return TaskResult(script.model_dump(), [Artifact("script", "json", "script.json")])


class CharacterExtractor(_ProviderAgent):
    description = "Finds the characters of a story or a script"

    @skill(description="List the characters with their features")
    def extract_characters(self, ctx: TaskContext) -> TaskResult:
        source = ctx.params["source"]
        text = ctx.inputs["story"]["text"] if source == "story" else ctx.workflow_params["script"]
        inputs = {"text": text, "kind": source}
        found: CharacterList = self.ask(
            ctx, "extract_characters", prompts.EXTRACT_CHARACTERS, inputs, CharacterList
        )
        data = [c.model_dump() for c in found.characters]
        write_json(ctx, "characters.json", data)
        return TaskResult(data, [Artifact("characters", "json", "characters.json")])


class PortraitPainter(_ProviderAgent):
    description = "Paints front, side and back portraits of a character"
    roles = ("image",)

    @skill(description="Paint one character's portraits")
    def paint_portraits(self, ctx: TaskContext) -> TaskResult:
        character = CharacterInScene.model_validate(ctx.params["character"])
        safe = re.sub(r"[^\w-]+", "_", character.identifier_in_scene).strip("_") or "character"
        folder = f"character_portraits/{character.idx}_{safe}"
        style = ctx.workflow_params["style"]
        result: dict[str, Any] = {"idx": character.idx, "identifier": character.identifier_in_scene}
        artifacts = []
        for view in PORTRAIT_VIEWS:
            ctx.cancel_token.raise_if_cancelled()
            references = [workdir(ctx) / result["front"]] if view != "front" else []
            with provider_call(ctx, self.catalog.prices) as call:
                image = chosen_model(self.catalog, ctx, "image").generate_single_image(
                    prompts.portrait_prompt(character, view, style), references, PORTRAIT_SIZE, call
                )
            relative = f"{folder}/{view}.png"
            image.save(workdir(ctx) / relative)
            result[view] = relative
            name = f"{character.identifier_in_scene} ({view})"
            artifacts.append(Artifact(name, "image", relative))
        return TaskResult(result, artifacts)


class StoryboardArtist(_ProviderAgent):
    description = "Designs a scene's shots and describes each shot's frames"

    @skill(description="Break a scene into shots")
    def design_storyboard(self, ctx: TaskContext) -> TaskResult:
        p, scene_dir = ctx.workflow_params, ctx.params["scene_dir"]
        inputs = {
            "scene": ctx.params["scene"],
            "characters": ctx.inputs["characters"],
            "shots": p["shots_per_scene"],
            "user_requirement": p["user_requirement"],
            "style": p["style"],
        }
        board: Storyboard = self.ask(
            ctx, "design_storyboard", prompts.DESIGN_STORYBOARD, inputs, Storyboard
        )
        shots = [s.model_dump() for s in board.shots]
        relative = in_scene(scene_dir, "storyboard.json")
        write_json(ctx, relative, shots)
        value = {
            "scene_idx": ctx.params["scene_idx"],
            "scene_dir": scene_dir,
            "scene": ctx.params["scene"],
            "characters": ctx.inputs["characters"],
            "shots": shots,
        }
        return TaskResult(value, [Artifact("storyboard", "json", relative)])

    @skill(description="Describe a shot's first and last frames and its motion")
    def decompose_shot(self, ctx: TaskContext) -> dict[str, Any]:
        board = ctx.inputs[ctx.params["storyboard"]]
        brief = ShotBriefDescription.model_validate(board["shots"][ctx.params["shot_idx"]])
        inputs = {
            "shot": brief.model_dump(),
            "characters": board["characters"],
            "scene": board["scene"],
        }
        shot: ShotDescription = self.ask(
            ctx, "decompose_shot", prompts.DECOMPOSE_SHOT, inputs, ShotDescription
        )
        shot_dir = in_scene(board["scene_dir"], "shots", str(brief.idx))
        write_json(ctx, f"{shot_dir}/shot_description.json", shot.model_dump())
        return shot.model_dump()


class CameraDirector(_ProviderAgent):
    description = "Arranges a scene's shots into a tree of cameras"

    @skill(description="Build the camera tree of a scene")
    def construct_camera_tree(self, ctx: TaskContext) -> dict[str, Any]:
        board = ctx.inputs[ctx.params["storyboard"]]
        shots = sorted(
            (v for k, v in ctx.inputs.items() if k.endswith("/describe")), key=lambda s: s["idx"]
        )
        tree: CameraTree = self.ask(
            ctx,
            "construct_camera_tree",
            prompts.CONSTRUCT_CAMERA_TREE,
            {"shots": shots},
            CameraTree,
        )
        cameras = [c.model_dump() for c in tree.cameras]
        write_json(ctx, in_scene(board["scene_dir"], "camera_tree.json"), cameras)
        return {**board, "shots": shots, "cameras": cameras}


class FramePainter(_ProviderAgent):
    description = "Paints the first and last frame of each shot"
    roles = ("image",)

    @skill(description="Paint a shot's first and last frames")
    def paint_frames(self, ctx: TaskContext) -> TaskResult:
        plan = ctx.inputs[ctx.params["cameras"]]
        shot = ShotDescription.model_validate(plan["shots"][ctx.params["shot_idx"]])
        scene = Scene.model_validate(plan["scene"])
        characters = _characters(plan["characters"])
        portraits = {v["idx"]: v for k, v in ctx.inputs.items() if k.startswith("portrait/")}
        p = ctx.workflow_params
        shot_dir = in_scene(plan["scene_dir"], "shots", str(shot.idx))
        value: dict[str, Any] = {"shot": shot.idx}
        artifacts = []
        for frame, visible in (("first", shot.ff_vis_char_idxs), ("last", shot.lf_vis_char_idxs)):
            ctx.cancel_token.raise_if_cancelled()
            seen = [characters[i] for i in visible if i in portraits and i < len(characters)]
            references = [workdir(ctx) / portraits[c.idx]["front"] for c in seen]
            prompt = prompts.frame_prompt(shot, frame, scene, seen, p["style"])
            with provider_call(ctx, self.catalog.prices) as call:
                image = chosen_model(self.catalog, ctx, "image").generate_single_image(
                    prompt, references, f"{p['width']}x{p['height']}", call
                )
            relative = f"{shot_dir}/{frame}_frame.png"
            image.save(workdir(ctx) / relative)
            value[f"{frame}_frame"] = relative
            artifacts.append(Artifact(f"shot {shot.idx} {frame} frame", "image", relative))
        return TaskResult(value, artifacts)


class VideoGenerator(_ProviderAgent):
    description = "Makes each shot's clip from its frames"
    roles = ("video",)

    @skill(description="Make one shot's clip")
    def generate_clip(self, ctx: TaskContext) -> TaskResult:
        plan = ctx.inputs[ctx.params["cameras"]]
        frames = ctx.inputs[ctx.params["frames"]]
        shot = ShotDescription.model_validate(plan["shots"][ctx.params["shot_idx"]])
        p = ctx.workflow_params
        relative = in_scene(plan["scene_dir"], "shots", str(shot.idx), "video.mp4")
        references = [workdir(ctx) / frames["first_frame"], workdir(ctx) / frames["last_frame"]]
        request = VideoRequest(
            output_path=workdir(ctx) / relative,
            size=(p["width"], p["height"]),
            fps=p["fps"],
            duration=p["seconds_per_shot"],
        )
        video = chosen_model(self.catalog, ctx, "video")
        with provider_call(ctx, self.catalog.prices, remote_job=True) as call:
            video.generate_single_video(
                prompts.clip_prompt(shot, p["style"]), references, request, call
            )
        value = {"scene_idx": plan["scene_idx"], "shot": shot.idx, "video": relative}
        return TaskResult(value, [Artifact(f"shot {shot.idx} clip", "video", relative)])


class Editor(Agent):
    description = "Joins clips into scene videos and scene videos into the film"

    @skill(description="Join a scene's clips")
    def assemble_scene(self, ctx: TaskContext) -> TaskResult:
        clips = sorted(
            (v for k, v in ctx.inputs.items() if k.endswith("/clip")), key=lambda c: c["shot"]
        )
        relative = in_scene(ctx.params["scene_dir"], "final_video.mp4")
        self._join(ctx, [c["video"] for c in clips], relative)
        value = {"scene_idx": ctx.params["scene_idx"], "video": relative}
        return TaskResult(
            value, [Artifact(f"scene {ctx.params['scene_idx']} video", "video", relative)]
        )

    @skill(description="Join the scenes (or, without scene videos, the clips) into the film")
    def assemble_final(self, ctx: TaskContext) -> TaskResult:
        scenes = [v for k, v in ctx.inputs.items() if re.fullmatch(r"scene/\d+/video", k)]
        parts = scenes or [v for k, v in ctx.inputs.items() if k.endswith("/clip")]
        parts.sort(key=lambda v: (v["scene_idx"], v.get("shot", 0)))
        self._join(ctx, [v["video"] for v in parts], "final_video.mp4")
        info = probe_video(workdir(ctx) / "final_video.mp4")
        value = {
            "video": "final_video.mp4",
            "scenes": [s["video"] for s in scenes],
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "frame_count": info.frames,
            "duration": info.duration,
        }
        return TaskResult(value, [Artifact("final video", "video", "final_video.mp4")])

    def _join(self, ctx: TaskContext, relatives: list[str], output: str) -> None:
        p = ctx.workflow_params
        concatenate_videos(
            [workdir(ctx) / r for r in relatives],
            workdir(ctx) / output,
            cancel_token=ctx.cancel_token,
            fps=p["fps"],
            size=(p["width"], p["height"]),
        )


def vimax_agents(catalog: ProviderCatalog) -> list[Agent]:
    """One of each ViMax agent; the painters and the video generator take two tasks at once."""
    return [
        Screenwriter(catalog, "screenwriter"),
        CharacterExtractor(catalog, "character_extractor"),
        PortraitPainter(catalog, "portrait_painter", concurrency=2),
        StoryboardArtist(catalog, "storyboard_artist", concurrency=2),
        CameraDirector(catalog, "camera_director"),
        FramePainter(catalog, "frame_painter", concurrency=2),
        VideoGenerator(catalog, "video_generator", concurrency=2),
        Editor("editor"),
    ]
