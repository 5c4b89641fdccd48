"""What a task handler is given (its :class:`TaskContext`, cancel token included) and what
it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..shared import CancelToken


@dataclass(slots=True)
class TaskContext:
    """What a task handler gets: its parameters, its inputs and its cancel token.

    ``inputs`` maps each dependency's key to that task's result.
    """

    workflow_id: str
    task_key: str
    stage: str
    skill: str
    params: dict[str, Any]
    workflow_params: dict[str, Any]
    inputs: dict[str, Any]
    attempt: int
    cancel_token: CancelToken
    workdir: Path | None = None


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file a task produced, relative to the workflow's folder."""

    name: str
    kind: str
    path: str


@dataclass(slots=True)
class TaskResult:
    """A task's result together with the artifacts it wrote."""

    value: Any = None
    artifacts: list[Artifact] = field(default_factory=list)
