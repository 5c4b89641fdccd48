"""A workflow's tasks: their specs, their states and the graph of their dependencies."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..protocol import StageProgress


class TaskState(StrEnum):
    """Where a task is in its life."""

    waiting = "waiting"  # for its dependencies
    ready = "ready"  # queued for an agent
    running = "running"
    retrying = "retrying"  # failed, waiting for its next attempt
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


TERMINAL_TASK_STATES = frozenset({TaskState.succeeded, TaskState.failed, TaskState.canceled})


@dataclass(frozen=True, slots=True)
class Stage:
    """A named phase of a pipeline; ``weight`` is its share of the progress bar."""

    name: str
    weight: float = 1.0


@dataclass(slots=True)
class TaskSpec:
    """A unit of work: run skill ``skill`` once its ``deps`` (task keys) have succeeded.

    ``expand``, when given, is called with the task's result once it succeeds and
    returns more tasks to add to the workflow (fan-out, such as one per shot); they
    are added before the task counts as done, so they may depend on it. ``blocks``
    names tasks that have not started yet and must now also wait for this one
    (a final edit that waits for scenes planned later). ``max_attempts`` overrides
    the coordinator's retry limit for this task.
    """

    key: str
    skill: str
    stage: str
    deps: tuple[str, ...] = ()
    blocks: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    expand: Callable[[Any], Iterable[TaskSpec]] | None = None
    max_attempts: int | None = None
    label: str = ""


class Task:
    """A :class:`TaskSpec` as it runs inside one workflow."""

    __slots__ = ("agent", "attempts", "error", "order", "result", "retry_handle", "spec", "state")

    def __init__(self, spec: TaskSpec, order: int) -> None:
        self.spec = spec
        self.order = order
        self.state = TaskState.waiting
        self.attempts = 0
        self.agent: str | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.retry_handle: Any = None

    @property
    def key(self) -> str:
        return self.spec.key

    def __repr__(self) -> str:
        return f"<Task {self.spec.key} {self.state.value} attempts={self.attempts}>"


class TaskGraph:
    """The tasks of one workflow with their dependencies; it may grow while it runs."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        if not stages:
            raise ValueError("a workflow needs at least one stage")
        self.stages = list(stages)
        self.stage_index = {stage.name: i for i, stage in enumerate(self.stages)}
        self.tasks: dict[str, Task] = {}
        self._waiting_on: dict[str, set[str]] = {}
        self._dependents: dict[str, list[str]] = {}
        self._held_by: dict[str, set[str]] = {}  # deps a task got from others' ``blocks``
        self._counts = {stage.name: [0, 0] for stage in self.stages}  # [succeeded, total]
        self._order = 0

    def add(self, specs: Iterable[TaskSpec]) -> list[Task]:
        """Add tasks; return those whose dependencies have all succeeded already.

        Every dependency must be a task of this graph or of ``specs``; keys are
        unique; a task may only hold back (``blocks``) tasks that are still waiting.
        The batch is added whole or, on a ValueError, not at all.
        """
        batch = list(specs)
        keys = {spec.key for spec in batch}
        if len(keys) != len(batch):
            raise ValueError("task keys must be unique within a batch")
        deps_of = {spec.key: set(spec.deps) for spec in batch}
        holds: dict[str, set[str]] = {}  # existing task -> new tasks it must wait for
        for spec in batch:
            self._check_spec(spec, keys)
            for target in spec.blocks:
                if target in keys:
                    deps_of[target].add(spec.key)
                else:
                    holds.setdefault(target, set()).add(spec.key)
        _check_acyclic(deps_of)
        for target, blockers in holds.items():
            for blocker in blockers:
                if self._reaches(blocker, target, deps_of):
                    raise ValueError(
                        f"task {blocker!r} cannot hold back {target!r}: it depends on it"
                    )
        ready: list[Task] = []
        for spec in batch:
            self._order += 1
            task = self.tasks[spec.key] = Task(spec, self._order)
            self._counts[spec.stage][1] += 1
            extra = deps_of[spec.key] - set(spec.deps)
            if extra:
                self._held_by[spec.key] = extra
            pending = {
                d
                for d in deps_of[spec.key]
                if d in keys or self.tasks[d].state != TaskState.succeeded
            }
            for dep in pending:
                self._dependents.setdefault(dep, []).append(spec.key)
            if pending:
                self._waiting_on[spec.key] = pending
            else:
                ready.append(task)
        for target, blockers in holds.items():
            self._held_by.setdefault(target, set()).update(blockers)
            self._waiting_on[target].update(blockers)
            for blocker in blockers:
                self._dependents.setdefault(blocker, []).append(target)
        return ready

    def _check_spec(self, spec: TaskSpec, batch: set[str]) -> None:
        if spec.key in self.tasks:
            raise ValueError(f"task {spec.key!r} already exists in this workflow")
        if spec.stage not in self.stage_index:
            raise ValueError(
                f"task {spec.key!r} names stage {spec.stage!r}, which is not one of "
                f"{[s.name for s in self.stages]}"
            )
        unknown = [d for d in (*spec.deps, *spec.blocks) if d not in self.tasks and d not in batch]
        if unknown:
            raise ValueError(f"task {spec.key!r} depends on or blocks unknown tasks {unknown}")
        for target in spec.blocks:
            existing = self.tasks.get(target)
            if existing is not None and existing.state != TaskState.waiting:
                raise ValueError(
                    f"task {spec.key!r} cannot hold back {target!r}: it is already "
                    f"{existing.state.value}"
                )

    def _reaches(self, start: str, goal: str, batch_deps: dict[str, set[str]]) -> bool:
        """Whether ``start`` depends, directly or not, on ``goal``."""
        seen: set[str] = set()
        stack = [start]
        while stack:
            key = stack.pop()
            if key == goal:
                return True
            if key in seen:
                continue
            seen.add(key)
            if key in batch_deps:
                stack.extend(batch_deps[key])
            else:
                task = self.tasks[key]
                stack.extend(task.spec.deps)
                stack.extend(self._held_by.get(key, ()))
        return False

    def succeeded(self, task: Task, result: Any, expansion: Iterable[TaskSpec] = ()) -> list[Task]:
        """Record ``task``'s success and add the tasks it expands into; return the
        tasks that became ready (its dependents and new tasks with nothing to wait for).
        """
        task.result = result
        ready = self.add(expansion)
        task.state = TaskState.succeeded
        self._counts[task.spec.stage][0] += 1
        for key in self._dependents.pop(task.key, ()):
            waiting = self._waiting_on[key]
            waiting.discard(task.key)
            if not waiting:
                del self._waiting_on[key]
                ready.append(self.tasks[key])
        return ready

    def inputs_of(self, task: Task) -> dict[str, Any]:
        """The results of the tasks ``task`` waited for (``deps`` and those that held
        it back), by key."""
        keys = (*task.spec.deps, *sorted(self._held_by.get(task.key, ())))
        return {dep: self.tasks[dep].result for dep in keys}

    def all_succeeded(self) -> bool:
        """Whether every task has succeeded."""
        return all(done == total for done, total in self._counts.values())

    def stage_counts(self) -> list[StageProgress]:
        """Every stage in order, with its succeeded tasks and its known tasks."""
        return [
            StageProgress(name=name, done=done, total=total)
            for name, (done, total) in self._counts.items()
        ]

    def counts(self, stage: str) -> tuple[int, int]:
        """Succeeded and known tasks of ``stage``."""
        done, total = self._counts[stage]
        return done, total

    def current_stage(self) -> int:
        """The index of the first stage with an unfinished task: the first stage while
        no task is known yet (before the workflow is planned), the last once every
        task has succeeded."""
        if not self.tasks:
            return 0
        for index, stage in enumerate(self.stages):
            done, total = self._counts[stage.name]
            if done < total:
                return index
        return len(self.stages) - 1

    def fraction_done(self) -> float:
        """Progress from 0 to 1, each stage weighted by its weight."""
        total_weight = sum(stage.weight for stage in self.stages) or 1.0
        done = 0.0
        for stage in self.stages:
            succeeded, total = self._counts[stage.name]
            if total:
                done += stage.weight * succeeded / total
        return min(1.0, done / total_weight)


def _check_acyclic(deps_of: dict[str, set[str]]) -> None:
    # Dependencies on earlier tasks cannot form a cycle; only those within the batch can.
    within = {key: sorted(d for d in deps if d in deps_of) for key, deps in deps_of.items()}
    state: dict[str, int] = {}

    def visit(key: str, path: list[str]) -> None:
        mark = state.get(key)
        if mark == 1:
            cycle = [*path[path.index(key) :], key]
            raise ValueError(f"tasks depend on each other in a cycle: {' -> '.join(cycle)}")
        if mark == 2:
            return
        state[key] = 1
        for dep in within[key]:
            visit(dep, [*path, key])
        state[key] = 2

    for key in within:
        visit(key, [])
