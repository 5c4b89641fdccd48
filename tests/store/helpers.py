"""Opening stores, holding the writer thread and reading replays, for the store tests."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from vimax_nb.store import Database, Replay, Retention, Store, StoredEvent


@asynccontextmanager
async def opened(
    path: Path, retention: Retention | None = None, **options: Any
) -> AsyncIterator[Store]:
    """A store on ``path``, closed when the block ends."""
    store = await Store.open(path, retention=retention, **options)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def opened_db(path: Path, **options: Any) -> AsyncIterator[Database]:
    """A bare database on ``path``, closed when the block ends."""
    db = await Database.open(path, **options)
    try:
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def held_writer(db: Database) -> AsyncIterator[asyncio.Future[Any]]:
    """Keep the writer thread busy inside ``run_in_writer`` until the block ends.

    Whatever is queued inside the block is committed together in the next batch.
    """
    started, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> str:
        started.set()
        if not release.wait(60):
            raise TimeoutError("the test never released the writer")
        return "released"

    future = asyncio.ensure_future(db.run_in_writer(hold))
    assert await asyncio.to_thread(started.wait, 60)
    try:
        yield future
    finally:
        release.set()


async def replayed(replay: Replay, page: int = 500) -> list[StoredEvent]:
    """Every event ``replay`` sends, read page by page as the hub reads it."""
    events: list[StoredEvent] = []
    while not replay.done:
        events += await replay.next_page(page)
    return events
