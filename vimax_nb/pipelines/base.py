"""What Idea2Video and Script2Video share: the per-scene task graph, checkpoints, results.

A scene grows in three steps, each planned from the previous step's result:
storyboard -> one description per shot and the camera tree -> per shot its frames
(a child camera's first shot waits for its parent shot's frames) and its clip ->
the scene's video. The final edit is planned before them, so the tasks that plan more
(a storyboard planned later, the camera tree) and a scene's last tasks (its clips, or
its video) hold it back (``blocks``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..coordinator import Pipeline, Stage, TaskGraph, TaskResult, TaskSpec
from ..providers import ProviderCatalog
from ..store import Checkpoint
from .calls import check_providers

FINAL = "final"
#: The stages of the tasks a storyboard plans for its scene, with their weights.
SCENE_STAGES = (
    Stage("storyboard", 0.5),
    Stage("shots", 0.5),
    Stage("cameras", 0.5),
    Stage("frames", 3),
    Stage("clips", 3),
)


def portrait_tasks(characters: list[dict[str, Any]]) -> list[TaskSpec]:
    """One portrait task per character."""
    return [
        TaskSpec(
            f"portrait/{c['idx']}",
            "paint_portraits",
            "portraits",
            deps=("characters",),
            params={"character": c},
            label=c["identifier_in_scene"],
        )
        for c in characters
    ]


def storyboard_task(
    scene_idx: int,
    scene_dir: str,
    scene: dict[str, Any],
    deps: tuple[str, ...],
    *,
    scene_video: bool,
    holds_final: bool,
) -> TaskSpec:
    """The storyboard of one scene, which plans the rest of the scene."""
    key = f"scene/{scene_idx}/storyboard"
    return TaskSpec(
        key,
        "design_storyboard",
        "storyboard",
        deps=deps,
        params={"scene_idx": scene_idx, "scene_dir": scene_dir, "scene": scene},
        blocks=(FINAL,) if holds_final else (),
        expand=lambda board: _plan_shots(key, board, scene_video=scene_video),
    )


def _plan_shots(storyboard: str, board: Mapping[str, Any], *, scene_video: bool) -> list[TaskSpec]:
    prefix = f"scene/{board['scene_idx']}"
    describes = [
        TaskSpec(
            f"{prefix}/shot/{j}/describe",
            "decompose_shot",
            "shots",
            deps=(storyboard,),
            params={"storyboard": storyboard, "shot_idx": j},
        )
        for j in range(len(board["shots"]))
    ]
    cameras = TaskSpec(
        f"{prefix}/cameras",
        "construct_camera_tree",
        "cameras",
        deps=(storyboard, *(d.key for d in describes)),
        params={"storyboard": storyboard},
        blocks=(FINAL,),
        expand=lambda plan: _plan_frames(f"{prefix}/cameras", plan, scene_video=scene_video),
    )
    return [*describes, cameras]


def _plan_frames(cameras: str, plan: Mapping[str, Any], *, scene_video: bool) -> list[TaskSpec]:
    prefix = f"scene/{plan['scene_idx']}"
    portraits = {c["idx"] for c in plan["characters"]}
    after: dict[int, int] = {}  # shot -> the shot whose frames it waits for
    for camera in plan["cameras"]:
        first, *rest = camera["active_shot_idxs"]
        if camera.get("parent_shot_idx") is not None:
            after[first] = camera["parent_shot_idx"]
        for shot in rest:
            after[shot] = first
    specs: list[TaskSpec] = []
    clips = []
    for j, shot in enumerate(plan["shots"]):
        visible = sorted(set(shot["ff_vis_char_idxs"]) | set(shot["lf_vis_char_idxs"]))
        deps = [cameras, *(f"portrait/{i}" for i in visible if i in portraits)]
        if j in after:
            deps.append(f"{prefix}/shot/{after[j]}/frames")
        frames = TaskSpec(
            f"{prefix}/shot/{j}/frames",
            "paint_frames",
            "frames",
            deps=tuple(deps),
            params={"cameras": cameras, "shot_idx": j},
        )
        clip = TaskSpec(
            f"{prefix}/shot/{j}/clip",
            "generate_clip",
            "clips",
            deps=(cameras, frames.key),
            params={"cameras": cameras, "frames": frames.key, "shot_idx": j},
            blocks=() if scene_video else (FINAL,),
        )
        specs += [frames, clip]
        clips.append(clip.key)
    if scene_video:
        specs.append(
            TaskSpec(
                f"{prefix}/video",
                "assemble_scene",
                "scene_video",
                deps=tuple(clips),
                params={"scene_idx": plan["scene_idx"], "scene_dir": plan["scene_dir"]},
                blocks=(FINAL,),
            )
        )
    return specs


def content_hash(folder: Path, relatives: list[str]) -> str | None:
    """sha256 over the named files' bytes, or None if one is missing."""
    digest = hashlib.sha256()
    for relative in relatives:
        try:
            digest.update(relative.encode() + b"\0" + (folder / relative).read_bytes())
        except OSError:
            return None
    return digest.hexdigest()


class ViMaxPipeline(Pipeline):
    """Checkpoints, results and provider checks shared by the ViMax pipelines.

    A finished task's checkpoint is its JSON result plus a hash of the files it
    wrote; it is reused only while every file is still there, unchanged. A workflow
    starts only when the providers it picks are ready (:meth:`preflight`); one that sets
    no ``max_cost`` gets the pipeline's.
    """

    def __init__(
        self, workdir: str | Path, catalog: ProviderCatalog, *, max_cost: float | None = None
    ) -> None:
        self.workdir = Path(workdir)
        self.catalog = catalog
        self.max_cost = max_cost

    def with_defaults(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validated ``params`` with the pipeline's ``max_cost`` where they set none."""
        if params.get("max_cost") is None and self.max_cost is not None:
            params["max_cost"] = self.max_cost
        return params

    async def preflight(self, params: Mapping[str, Any]) -> None:
        await check_providers(self.catalog, params)

    def checkpoint(
        self, workflow_id: str, spec: TaskSpec, result: TaskResult
    ) -> tuple[Any, str | None]:
        paths = [a.path for a in result.artifacts]
        return result.value, content_hash(self.workdir / workflow_id, paths)

    def restore(self, workflow_id: str, spec: TaskSpec, checkpoint: Any) -> Any | None:
        assert isinstance(checkpoint, Checkpoint)
        current = content_hash(self.workdir / workflow_id, checkpoint.artifacts)
        if current is None or current != checkpoint.content_hash:
            return None
        return checkpoint.result

    def result(self, graph: TaskGraph) -> dict[str, Any]:
        final = graph.tasks[FINAL].result
        frames, clips = [], []
        for key, task in graph.tasks.items():
            if key.endswith("/frames"):
                frames += [task.result["first_frame"], task.result["last_frame"]]
            elif key.endswith("/clip"):
                clips.append(task.result["video"])
        story = graph.tasks["story"].result if "story" in graph.tasks else None
        script = graph.tasks["script"].result if "script" in graph.tasks else None
        return {
            **final,
            "story": story,
            "script": script,
            "characters": graph.tasks["characters"].result,
            "frames": frames,
            "clips": clips,
        }
