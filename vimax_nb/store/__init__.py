"""Durable state on SQLite (WAL): the event log and the workflow store.

One :class:`Database` file holds both; one writer thread commits their writes
in batches, off the event loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .database import Database, StoreError, StoreLocked
from .events import EventListener, EventLog, Replay, ReplayGap
from .records import Retention, StoredEvent
from .workflows import Checkpoint, WorkflowStore

__all__ = [
    "Checkpoint",
    "Database",
    "EventListener",
    "EventLog",
    "Replay",
    "ReplayGap",
    "Retention",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoredEvent",
    "WorkflowStore",
]


@dataclass(slots=True)
class Store:
    """The database with its event log and workflow store, opened and closed together."""

    db: Database
    events: EventLog
    workflows: WorkflowStore

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        retention: Retention | None = None,
        **options: Any,
    ) -> Store:
        """Open (or create) the database at ``path``; ``options`` go to :class:`Database`."""
        db = await Database.open(path, **options)
        try:
            events = await EventLog.open(db, retention)
        except BaseException:
            await db.close()
            raise
        return cls(db, events, WorkflowStore(db))

    async def close(self) -> None:
        """Commit what is queued and close the file."""
        await self.db.close()
