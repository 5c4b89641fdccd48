"""A small pipeline for coordinator tests: outline -> one drawing per shot -> edit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from vimax_nb.coordinator import (
    Agent,
    Artifact,
    Coordinator,
    Pipeline,
    RetryPolicy,
    Stage,
    TaskContext,
    TaskGraph,
    TaskResult,
    TaskSpec,
    skill,
)
from vimax_nb.store import Store

Hook = Callable[[TaskContext], Any]


class Writer(Agent):
    description = "Writes the outline"

    def __init__(self, hook: Hook | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.hook = hook

    @skill(description="Outline the story")
    def outline(self, ctx: TaskContext) -> dict[str, Any]:
        if self.hook:
            self.hook(ctx)
        return {"shots": ctx.workflow_params["shots"]}


class Painter(Agent):
    description = "Draws shots"

    def __init__(self, hook: Hook | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.hook = hook

    @skill(description="Draw one shot")
    def draw(self, ctx: TaskContext) -> TaskResult:
        if self.hook:
            self.hook(ctx)
        index = ctx.params["shot"]
        return TaskResult(
            {"shot": index, "pixels": index * 10},
            [Artifact(f"shot {index}", "image", f"shots/{index}.png")],
        )


class Editor(Agent):
    description = "Cuts the film"

    def __init__(self, hook: Hook | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.hook = hook

    @skill(description="Put the shots together")
    def edit(self, ctx: TaskContext) -> dict[str, Any]:
        if self.hook:
            self.hook(ctx)
        shots = sorted(v["shot"] for v in ctx.inputs.values())
        return {"film": shots}


class StoryPipeline(Pipeline):
    kind = "story"
    stages = (Stage("outline", 1), Stage("draw", 2), Stage("edit", 1))

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        shots = params.get("shots", 3)
        if not isinstance(shots, int) or not 1 <= shots <= 1000:
            raise ValueError(f"shots must be a whole number from 1 to 1000 (got {shots!r})")
        return {"shots": shots}

    def plan(self, params: Mapping[str, Any]) -> Iterable[TaskSpec]:
        return [TaskSpec("outline", "outline", "outline", expand=self._shots)]

    def _shots(self, outline: dict[str, Any]) -> list[TaskSpec]:
        draws = [
            TaskSpec(f"draw/{i}", "draw", "draw", deps=("outline",), params={"shot": i})
            for i in range(outline["shots"])
        ]
        edit = TaskSpec("edit", "edit", "edit", deps=tuple(d.key for d in draws))
        return [*draws, edit]

    def checkpoint(
        self, workflow_id: str, spec: TaskSpec, result: TaskResult
    ) -> tuple[Any, str | None]:
        return result.value, None

    def restore(self, workflow_id: str, spec: TaskSpec, checkpoint: Any) -> Any | None:
        return checkpoint.result

    def result(self, graph: TaskGraph) -> dict[str, Any]:
        return graph.tasks["edit"].result


class Recorder:
    """Collects a coordinator's events and lets a test wait for one."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.events: list[Any] = []
        self._waiters: list[tuple[Callable[[Any], bool], asyncio.Future[Any]]] = []
        coordinator.add_listener(self._on_event)

    def _on_event(self, event: Any) -> None:
        self.events.append(event)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(event):
                future.set_result(event)
                self._waiters.remove((predicate, future))

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 10) -> Any:
        """The first event from now on (or already seen) that matches ``predicate``."""
        for event in self.events:
            if predicate(event):
                return event
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return await asyncio.wait_for(future, timeout)

    def of(self, type_: str, **fields: Any) -> list[Any]:
        """The events of ``type_`` whose fields equal ``fields``."""
        return [
            e
            for e in self.events
            if e.type == type_ and all(getattr(e, k) == v for k, v in fields.items())
        ]

    def progress(self, workflow_id: str) -> list[Any]:
        return self.of("progress", workflow_id=workflow_id)


def task_event(workflow_id: str, event: str, task: str | None = None) -> Callable[[Any], bool]:
    """A predicate for the progress event ``event`` (task_started, ...) of a task."""

    def match(e: Any) -> bool:
        return (
            e.type == "progress"
            and e.workflow_id == workflow_id
            and e.details.event == event
            and (task is None or e.details.task == task)
        )

    return match


def default_agents(
    writer_hook: Hook | None = None,
    painter_hook: Hook | None = None,
    editor_hook: Hook | None = None,
    painters: int = 2,
    painter_concurrency: int = 2,
) -> list[Agent]:
    return [
        Writer(writer_hook, name="writer"),
        *(
            Painter(painter_hook, name=f"painter-{i}", concurrency=painter_concurrency)
            for i in range(painters)
        ),
        Editor(editor_hook, name="editor"),
    ]


@asynccontextmanager
async def coordinator_with(
    path: Path | None,
    agents: Iterable[Agent] | None = None,
    **options: Any,
) -> AsyncIterator[tuple[Coordinator, Recorder]]:
    """A started coordinator with the story pipeline, on a store at ``path`` if given."""
    store = await Store.open(path / "vimax.sqlite3") if path is not None else None
    options.setdefault("retry", RetryPolicy(max_attempts=3, backoff=0.0))
    coordinator = Coordinator(store=store, **options)
    for agent in agents if agents is not None else default_agents():
        coordinator.register_agent(agent)
    coordinator.register_pipeline(StoryPipeline())
    recorder = Recorder(coordinator)
    await coordinator.start()
    try:
        yield coordinator, recorder
    finally:
        await coordinator.stop()
        if store is not None:
            await store.close()
