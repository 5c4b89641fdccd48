"""The hub's subscriptions on a real event log, inside the process: a replay that
retention cuts short closes the client with 4008, so that it resumes afresh."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from vimax_nb.server.hub import Hub
from vimax_nb.store import Retention, Store

from .ws_helpers import IdleWriter

ROOM = "workflow:w1"


async def test_a_replay_cut_short_by_retention_closes_the_client_with_4008(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "s.db", retention=Retention(max_age=60), readers=1)
    try:
        log = store.events
        hub = Hub()
        hub.bind(log)
        for i in range(20):
            log.append_nowait(ROOM, "progress", {"i": i})
        await log.flush()
        await store.db.run_in_writer(
            lambda conn: (
                conn.execute(
                    "UPDATE events SET stored_at = stored_at - 1000 WHERE seq <= 10"
                ).rowcount
            )
        )
        writer = IdleWriter()
        connection = hub.register(writer, "tester")
        answers: list[tuple[bool, int]] = []
        busy, release = threading.Event(), threading.Event()

        def block(conn: sqlite3.Connection) -> bool:
            busy.set()
            return release.wait(60)

        blocker = asyncio.ensure_future(store.db.read(block))  # the only reader, held
        assert await asyncio.to_thread(busy.wait, 60)
        subscribing = asyncio.ensure_future(
            hub.subscribe(connection, ROOM, 2, log.epoch, lambda *answer: answers.append(answer))
        )
        # The subscription decides (all of 3..20 kept) before this prune is delivered,
        # then waits for the reader; the prune drops 1..10 meanwhile.
        assert await log.prune() == {ROOM: 10}
        assert answers == [(True, 20)]
        release.set()
        assert await blocker
        await asyncio.wait_for(subscribing, 10)

        assert writer.closes == [4008]
        assert connection.closed
        assert hub.slow_consumer_closes == 1
        assert ROOM not in hub.rooms
    finally:
        await store.close()
