"""What ``POST /vimax/api/gc`` answers: the finished workflows a collection removed (or,
in a dry run, would remove) and the bytes of files that frees."""

from __future__ import annotations

from pydantic import Field

from .messages import _Lenient
from .rooms import WorkflowState


class CollectedWorkflow(_Lenient):
    """One finished workflow a collection removes: its record and its folder of files.

    ``bytes`` is the size of its files (``<workdir>/<id>/``) when they were counted.
    """

    id: str
    kind: str
    state: WorkflowState
    owner: str | None = None
    created_at: str
    finished_at: str | None = None
    bytes: int = Field(default=0, ge=0)


class CollectionFailure(_Lenient):
    """A workflow a collection could not remove, and why; its record is kept, so that
    the next collection tries again."""

    id: str
    message: str


class Collection(_Lenient):
    """The outcome of a collection of finished workflows.

    ``workflows`` are those removed (a dry run: those that would be), oldest first:
    completed, failed or canceled ones that ended before ``cutoff`` (``older_than``
    seconds before the collection). ``bytes`` is the sum of their ``bytes``: the disk
    space freed (or that would be). ``failed`` are those whose files could not be
    removed; they are not in ``workflows``.
    """

    dry_run: bool
    older_than: float = Field(ge=0)
    cutoff: str
    workflows: list[CollectedWorkflow] = Field(default_factory=list)
    bytes: int = Field(default=0, ge=0)
    failed: list[CollectionFailure] = Field(default_factory=list)
