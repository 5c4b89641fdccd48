"""The hub's subscriptions on a real event log, inside the process: a replay that
retention cuts short closes the client with 4008 and a reason of its own, so that it
resumes afresh."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from vimax_nb.server.hub import Hub
from vimax_nb.store import Retention, Store

from ..store.helpers import backdate, maintained
from .ws_helpers import IdleWriter

ROOM = "workflow:w1"


async def test_a_replay_cut_short_by_retention_closes_the_client_with_4008(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vimax_nb.server.hub")
    store = await Store.open(
        tmp_path / "s.db", retention=Retention(max_age=60), readers=1, maintenance_interval=0.01
    )
    busy, release = threading.Event(), threading.Event()
    try:
        log = store.events
        hub = Hub()
        hub.bind(log)
        for i in range(20):
            log.append_nowait(ROOM, "progress", {"i": i})
        await log.flush()
        writer = IdleWriter()
        connection = hub.register(writer, "tester")
        answers: list[tuple[bool, int]] = []

        def block(conn: sqlite3.Connection) -> bool:
            busy.set()
            return release.wait(60)

        blocker = asyncio.ensure_future(store.db.read(block))  # the only reader, held
        assert await asyncio.to_thread(busy.wait, 60)
        subscribing = asyncio.ensure_future(
            hub.subscribe(connection, ROOM, 2, log.epoch, lambda *answer: answers.append(answer))
        )
        # The subscription decides (all of 3..20 kept) in its first step, which runs
        # before this ageing returns, then waits for the reader; meanwhile the
        # database's maintenance drops the events that grew old, 1..10.
        await backdate(store, 61, ROOM, through=10)
        assert answers == [(True, 20)]
        await maintained(store)
        assert log.floor(ROOM) == 10
        release.set()
        assert await blocker
        await asyncio.wait_for(subscribing, 10)

        assert writer.closes == [
            (
                4008,
                "the log changed during your replay (retention or a reset); "
                "reconnect and resume from your last seq",
            )
        ]
        assert connection.closed
        assert ROOM not in hub.rooms
        # Counted and logged as what it is, not as a slow consumer.
        stats = hub.stats()
        assert (stats["replay_gap_closes"], stats["slow_consumer_closes"]) == (1, 0)
        closing = [r.getMessage() for r in caplog.records if r.name == "vimax_nb.server.hub"]
        assert closing == [
            f"client {connection.id}: retention dropped events of room {ROOM!r} after seq 2 "
            "while they were being replayed; closing it (4008) so it can resume"
        ]
    finally:
        release.set()
        await store.close()
