"""What a task handler is given (its :class:`TaskContext`, cancel token included) and what
it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..shared import CancelToken
from .spend import Spend


class TaskJob:
    """The id of the remote job a task waits on (a video model's operation), kept where
    the next attempt finds it, even after a restart.

    :meth:`set` returns once the id is stored durably (``save`` blocks until then), so a
    job that was paid for is never forgotten; call it from the task's thread.
    """

    __slots__ = ("_job_id", "_save")

    def __init__(
        self, job_id: str | None = None, save: Callable[[str | None], None] | None = None
    ) -> None:
        self._job_id = job_id
        self._save = save

    def get(self) -> str | None:
        """The job's id, or None."""
        return self._job_id

    def set(self, job_id: str | None) -> None:
        """Remember ``job_id`` (None once the job is over)."""
        if job_id == self._job_id:
            return
        self._job_id = job_id
        if self._save is not None:
            self._save(job_id)


def _say_nothing(activity: str) -> None:
    pass


@dataclass(slots=True)
class TaskContext:
    """What a task handler gets: its parameters, its inputs and its cancel token.

    ``inputs`` maps each dependency's key to that task's result. ``report(text)`` says
    what the task waits on now (``""`` clears it; safe from any thread): the workflow's
    room and the agent's status show it. ``spend`` is the workflow's :class:`Spend`,
    ``job`` the task's remote job (see :class:`TaskJob`), ``priority`` the workflow's.
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
    report: Callable[[str], None] = _say_nothing
    spend: Spend = field(default_factory=Spend)
    job: TaskJob = field(default_factory=TaskJob)
    priority: int = 0


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
