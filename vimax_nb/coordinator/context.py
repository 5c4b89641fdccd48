"""What a task handler is given (its context and cancel token) and what it returns."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TaskCanceled(Exception):
    """Raised inside a task when its cancel token is set."""


class CancelToken:
    """Tells a running task it should stop; safe to check from any thread."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the task to stop."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether the task was asked to stop."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCanceled` if the task was asked to stop."""
        if self._event.is_set():
            raise TaskCanceled("the task was canceled")


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
