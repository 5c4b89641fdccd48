"""Pipelines: the kinds of workflow a coordinator runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .context import TaskResult
from .graph import Stage, TaskGraph, TaskSpec


class Pipeline:
    """A kind of workflow: its stages, its parameters and the tasks it starts with.

    Subclasses set ``kind`` and ``stages`` and implement :meth:`plan`; they may
    override :meth:`validate` (clean the parameters or raise ``ValueError``),
    :meth:`restore` (reuse a checkpoint instead of running a task again) and
    :meth:`checkpoint` (what to store of a finished task) and :meth:`result`
    (what a completed workflow returns).
    """

    kind: str = ""
    stages: Sequence[Stage] = ()

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Return the cleaned parameters or raise ``ValueError`` naming what is wrong."""
        return dict(params)

    async def preflight(self, params: Mapping[str, Any]) -> None:
        """Raise an exception saying what stops a workflow with these (validated)
        parameters from starting (a provider it needs is not ready); it then fails at
        once with that reason, before any task runs."""

    def plan(self, params: Mapping[str, Any]) -> Iterable[TaskSpec]:
        """The first tasks of a workflow with these (validated) parameters."""
        raise NotImplementedError

    def restore(self, workflow_id: str, spec: TaskSpec, checkpoint: Any) -> Any | None:
        """The result of ``spec`` from its stored :class:`~vimax_nb.store.Checkpoint`,
        or None to run the task again."""
        return None

    def checkpoint(
        self, workflow_id: str, spec: TaskSpec, result: TaskResult
    ) -> tuple[Any, str | None] | None:
        """What to store for a finished task: JSON-able data and a hash of the content
        it produced (or None), or None to store nothing."""
        return None

    def result(self, graph: TaskGraph) -> dict[str, Any]:
        """The result of a completed workflow (stored in its record)."""
        return {}
