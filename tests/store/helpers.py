"""Opening stores, holding the writer thread, ageing events and waiting for the
maintenance that drops them, and reading replays, for the store and hub tests."""

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


async def backdate(
    store: Store, seconds: float, room: str | None = None, through: int | None = None
) -> None:
    """Make stored events ``seconds`` older, as if that much time had passed since they
    were stored: those of ``room`` (every room when None) up to seq ``through`` (all
    when None)."""
    sql = "UPDATE events SET stored_at = stored_at - ? WHERE room = coalesce(?, room)"
    sql += " AND seq <= coalesce(?, seq)"
    await store.db.run_in_writer(lambda conn: conn.execute(sql, (seconds, room, through)).rowcount)


async def maintained(store: Store) -> None:
    """Wait until the database's maintenance has applied the event log's age retention
    to everything committed before this call.

    Open the store with a small ``maintenance_interval``. The writer thread runs a
    maintenance round between batches, each round's hooks in the order they were added:
    when the hook added here runs, the event log's hook (added when the log was opened)
    has just run in the same round, after every commit before this call, and queued its
    prune; the flush queued after that returns once the prune is stored and delivered.
    """
    ran = threading.Event()
    store.db.add_maintenance(ran.set)
    assert await asyncio.to_thread(ran.wait, 60), "the database never ran its maintenance"
    await store.events.flush()


async def replayed(replay: Replay, page: int = 500) -> list[StoredEvent]:
    """Every event ``replay`` sends, read page by page as the hub reads it."""
    events: list[StoredEvent] = []
    while not replay.done:
        events += await replay.next_page(page)
    return events
