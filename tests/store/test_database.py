"""The SQLite file: WAL mode, the one-owner lock, closing, the writer and reader threads."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.store import Database, EventLog, Store, StoreError, StoreLocked

from .helpers import held_writer, opened_db

PROJECT = Path(__file__).resolve().parents[2]  # the child process imports vimax_nb from here


def sqlite_scalar(path: Path, sql: str, *params: Any) -> Any:
    """A value read through a connection of our own, outside the store."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


# -- opening, WAL, the lock ----------------------------------------------------------


async def test_open_creates_the_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "store.db"
    async with opened_db(path) as db:
        assert db.created
        assert not db.closed
        assert path.exists()
        assert sqlite_scalar(path, "PRAGMA journal_mode") == "wal"
        tables = await db.read(
            lambda conn: {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        )
        assert {"meta", "events", "rooms", "workflows", "checkpoints"} <= tables
    assert db.closed
    async with opened_db(path) as again:
        assert not again.created
        assert sqlite_scalar(path, "PRAGMA journal_mode") == "wal"


async def test_synchronous_option_reaches_sqlite(tmp_path: Path) -> None:
    async with opened_db(tmp_path / "s.db", synchronous="FULL") as db:
        # PRAGMA synchronous is per connection: ask the writer's own.
        level = await db.run_in_writer(lambda conn: conn.execute("PRAGMA synchronous").fetchone())
        assert level == (2,)  # FULL
    async with opened_db(tmp_path / "n.db") as db:
        level = await db.run_in_writer(lambda conn: conn.execute("PRAGMA synchronous").fetchone())
        assert level == (1,)  # NORMAL, the default


async def test_second_open_of_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with opened_db(path) as first:
        with pytest.raises(StoreLocked, match="already open") as info:
            await Database.open(path)
        assert str(path) in str(info.value)
        assert isinstance(info.value, StoreError)
        # The refused open did not disturb the owner.
        assert await first.run_in_writer(lambda conn: 42) == 42
        # The same file reached through a symbolic link is the same file.
        alias = tmp_path / "alias.db"
        alias.symlink_to(path)
        with pytest.raises(StoreLocked):
            await Database.open(alias)
    # Once closed, the file can be opened again, twice in a row.
    async with opened_db(path):
        pass
    async with opened_db(path) as db:
        assert not db.closed


async def test_second_store_open_is_refused_and_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await Store.open(path)
    try:
        with pytest.raises(StoreLocked) as info:
            await Store.open(path)
        assert str(path) in str(info.value)
        assert await store.events.append("coordinator", "x", {}) == 1
    finally:
        await store.close()
    store = await Store.open(path)
    try:
        assert store.events.top("coordinator") == 1
    finally:
        await store.close()


async def test_lock_holds_against_another_process(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    script = (
        "import asyncio, sys\n"
        "from vimax_nb.store import Database, StoreLocked\n"
        "async def main():\n"
        "    try:\n"
        "        db = await Database.open(sys.argv[1])\n"
        "    except StoreLocked as exc:\n"
        "        print('LOCKED', exc)\n"
        "        return\n"
        "    await db.close()\n"
        "    print('OPENED')\n"
        "asyncio.run(main())\n"
    )

    async def other_process() -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            str(path),
            stdout=asyncio.subprocess.PIPE,
            cwd=PROJECT,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out.decode()

    async with opened_db(path):
        answer = await other_process()
        assert answer.startswith("LOCKED"), answer
        assert str(path) in answer
    assert (await other_process()).startswith("OPENED")


# -- closing --------------------------------------------------------------------------


async def test_closed_database_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await Store.open(path)
    db = store.db
    await store.close()
    assert db.closed
    with pytest.raises(StoreError, match="closed") as info:
        await db.read(lambda conn: None)
    assert str(path) in str(info.value)
    with pytest.raises(StoreError, match="closed"):
        await db.run_in_writer(lambda conn: None)
    with pytest.raises(StoreError, match="closed"):
        db.submit(store.events, None)
    with pytest.raises(StoreError, match="closed"):
        await store.events.append("coordinator", "x", {})
    with pytest.raises(StoreError, match="closed"):
        store.events.append_nowait("coordinator", "x", {})
    with pytest.raises(StoreError, match="closed"):
        await store.events.read("coordinator")
    with pytest.raises(StoreError, match="closed"):
        await store.events.flush()
    with pytest.raises(StoreError, match="closed"):
        await store.workflows.records()
    # Closing again is harmless.
    await store.close()
    await db.close()


async def test_close_commits_everything_queued_and_resolves_every_future(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await Store.open(path)
    log = store.events
    delivered: list[int] = []
    log.add_listener(lambda events: delivered.extend(e.seq for e in events))
    async with held_writer(store.db) as held:
        pending = [
            asyncio.ensure_future(log.append("coordinator", "e", {"i": i})) for i in range(50)
        ]
        await asyncio.sleep(0)  # let the tasks queue their appends
        for i in range(50, 100):
            log.append_nowait("coordinator", "e", {"i": i})
        closing = asyncio.ensure_future(store.close())
        await asyncio.sleep(0)
        assert not closing.done()
    await closing
    assert await held == "released"
    assert [await p for p in pending] == list(range(1, 51))
    assert delivered == list(range(1, 101))
    assert sqlite_scalar(path, "SELECT count(*) FROM events") == 100
    store = await Store.open(path)
    try:
        assert store.events.top("coordinator") == 100
        data = [json.loads(e.frame)["i"] for e in await store.events.read("coordinator")]
        assert data == list(range(100))
    finally:
        await store.close()


async def test_concurrent_closes_all_wait_for_the_file_to_be_released(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    db = await Database.open(path)
    async with held_writer(db) as held:
        first = asyncio.ensure_future(db.close())
        second = asyncio.ensure_future(db.close())
        await asyncio.sleep(0)
        assert not first.done()
        # The second close must not return while the first still holds the file.
        assert not second.done()
    await second
    assert await held == "released"
    # Whoever returns from close() can open the file again at once.
    async with opened_db(path):
        pass
    await first


async def test_close_waits_for_reads_without_blocking_the_loop(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "store.db", readers=1)
    busy, release = threading.Event(), threading.Event()

    def slow_read(conn: sqlite3.Connection) -> bool:
        busy.set()
        # Released from the event loop: if the loop were blocked, this times out.
        return release.wait(20)

    reading = asyncio.ensure_future(db.read(slow_read))
    assert await asyncio.to_thread(busy.wait, 20)
    closing = asyncio.ensure_future(db.close())
    # Let close() get as far as it can while the read is running; the loop keeps running.
    for _ in range(20):
        await asyncio.to_thread(lambda: None)
    assert not closing.done()
    ticks = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(ticks.set_result, "loop alive")
    assert await ticks == "loop alive"
    release.set()
    await closing
    assert await reading is True


async def test_submit_racing_close_from_a_thread_loses_nothing(tmp_path: Path) -> None:
    """Every append a thread got accepted is stored, even when close() cuts in."""
    path = tmp_path / "store.db"
    store = await Store.open(path)
    log = store.events
    accepted = 0
    refused: list[BaseException] = []
    going = threading.Event()

    def produce() -> None:
        nonlocal accepted
        while True:
            try:
                log.append_nowait("coordinator", "e", {"i": accepted})
            except StoreError as exc:
                refused.append(exc)
                return
            accepted += 1
            if accepted == 2000:
                going.set()

    # Switch threads as often as possible, to land close() inside submit().
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        thread = threading.Thread(target=produce)
        thread.start()
        assert await asyncio.to_thread(going.wait, 60)
        await store.close()
        await asyncio.to_thread(thread.join)
    finally:
        sys.setswitchinterval(interval)
    assert len(refused) == 1
    assert sqlite_scalar(path, "SELECT count(*) FROM events") == accepted
    assert sqlite_scalar(path, "SELECT top FROM rooms WHERE room = 'coordinator'") == accepted


# -- the writer thread ----------------------------------------------------------------


async def test_run_in_writer_returns_results_and_rolls_back_only_the_failing_call(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    async with opened_db(path) as db:

        def good(key: str) -> Any:
            def fn(conn: sqlite3.Connection) -> str:
                conn.execute("INSERT INTO meta VALUES (?, 'v')", (key,))
                return key

            return fn

        def bad(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO meta VALUES ('bad', 'v')")
            raise LookupError("boom")

        thread_names: list[str] = []
        async with held_writer(db):
            # Queued while the writer is busy: all three share the next transaction.
            one = asyncio.ensure_future(db.run_in_writer(good("one")))
            two = asyncio.ensure_future(db.run_in_writer(bad))
            three = asyncio.ensure_future(db.run_in_writer(good("three")))
            names = asyncio.ensure_future(
                db.run_in_writer(lambda conn: thread_names.append(threading.current_thread().name))
            )
            await asyncio.sleep(0)
        assert await one == "one"
        with pytest.raises(LookupError, match="boom"):
            await two
        assert await three == "three"
        await names
        assert thread_names == ["vimax-store-write"]
        keys = {r[0] for r in sqlite3.connect(path).execute("SELECT key FROM meta")}
        assert {"one", "three"} <= keys
        assert "bad" not in keys


async def test_run_in_writer_sees_exactly_the_writes_queued_before_it(tmp_path: Path) -> None:
    async with opened_db(tmp_path / "store.db") as db:
        log = await EventLog.open(db)

        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])

        async with held_writer(db):
            # All queued while the writer is busy, so they could share one batch.
            log.append_nowait("coordinator", "e", {})
            first = asyncio.ensure_future(db.run_in_writer(count))
            await asyncio.sleep(0)
            log.append_nowait("coordinator", "e", {})
            log.append_nowait("coordinator", "e", {})
            second = asyncio.ensure_future(db.run_in_writer(count))
            await asyncio.sleep(0)
            log.append_nowait("coordinator", "e", {})
            third = asyncio.ensure_future(db.run_in_writer(count))
            fourth = asyncio.ensure_future(db.run_in_writer(count))
            await asyncio.sleep(0)
        assert [await first, await second, await third, await fourth] == [1, 3, 4, 4]
        await log.flush()
        assert log.top("coordinator") == 4


async def test_a_failed_commit_fails_the_batch_and_the_writer_goes_on(tmp_path: Path) -> None:
    async with opened_db(tmp_path / "store.db") as db:

        def break_transaction(conn: sqlite3.Connection) -> None:
            # Ends the writer's transaction behind its back: the COMMIT then fails.
            conn.execute("COMMIT")

        with pytest.raises(StoreError, match="could not commit"):
            await db.run_in_writer(break_transaction)
        assert await db.run_in_writer(lambda conn: "still writing") == "still writing"


async def test_maintenance_hooks_run_on_the_writer_thread(tmp_path: Path) -> None:
    async with opened_db(tmp_path / "store.db", maintenance_interval=0.01) as db:
        ran = threading.Event()
        names: list[str] = []

        def hook() -> None:
            names.append(threading.current_thread().name)
            ran.set()

        def broken() -> None:
            raise RuntimeError("a failing hook does not stop the others")

        db.add_maintenance(broken)
        db.add_maintenance(hook)
        assert await asyncio.to_thread(ran.wait, 30)
        assert names[0] == "vimax-store-write"
        assert await db.run_in_writer(lambda conn: 1) == 1


async def test_batches_respect_max_batch(tmp_path: Path) -> None:
    async with opened_db(tmp_path / "store.db", max_batch=10) as db:
        log = await EventLog.open(db)
        batches: list[int] = []
        log.add_listener(lambda events: batches.append(len(events)))
        async with held_writer(db):
            for i in range(35):
                log.append_nowait("coordinator", "e", {"i": i})
        await log.flush()
        assert sum(batches) == 35
        assert max(batches) <= 10
        assert [e.seq for e in await log.read("coordinator")] == list(range(1, 36))


# -- the reader threads ---------------------------------------------------------------


async def test_reads_see_commits_and_each_connection_stays_on_its_thread(tmp_path: Path) -> None:
    async with opened_db(tmp_path / "store.db", readers=2) as db:
        seen: dict[int, set[int]] = {}
        lock = threading.Lock()

        def query(n: int) -> Any:
            def fn(conn: sqlite3.Connection) -> int:
                with lock:
                    seen.setdefault(id(conn), set()).add(threading.get_ident())
                row = conn.execute("SELECT value FROM meta WHERE key = ?", (f"k{n}",)).fetchone()
                return int(row[0])

            return fn

        for n in range(40):
            await db.run_in_writer(
                lambda conn, n=n: (
                    conn.execute("INSERT INTO meta VALUES (?, ?)", (f"k{n}", n)).rowcount
                )
            )
        results = await asyncio.gather(*(db.read(query(n)) for n in range(40)))
        assert results == list(range(40))
        # At most one connection per reader thread, and a connection never changes thread.
        assert 1 <= len(seen) <= 2
        assert all(len(threads) == 1 for threads in seen.values())
        assert len(set().union(*seen.values())) == len(seen)


async def test_reads_proceed_while_the_writer_is_busy(tmp_path: Path) -> None:
    async with opened_db(tmp_path / "store.db") as db:
        await db.run_in_writer(lambda conn: conn.execute("INSERT INTO meta VALUES ('a', '1')"))
        async with held_writer(db):
            value = await db.read(
                lambda conn: conn.execute("SELECT value FROM meta WHERE key = 'a'").fetchone()
            )
            assert value == ("1",)


async def test_a_failing_read_raises_in_the_caller_and_the_reader_survives(tmp_path: Path) -> None:
    async with opened_db(tmp_path / "store.db", readers=1) as db:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await db.read(lambda conn: conn.execute("SELECT * FROM nowhere").fetchall())
        assert await db.read(lambda conn: conn.execute("SELECT 7").fetchone()) == (7,)
