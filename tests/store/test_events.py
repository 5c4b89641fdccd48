"""The event log: per-room seqs, frames, listeners, restart, retention, replay."""

from __future__ import annotations

import asyncio
import collections
import json
import re
import sqlite3
import threading
import time
import types
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.protocol import (
    ENVELOPE,
    ProgressDetails,
    ProgressEvent,
    WorkflowState,
    event_payload,
    parse_server_message,
)
from vimax_nb.store import (
    EventLog,
    ReplayGap,
    Retention,
    Store,
    StoredEvent,
    StoreError,
)

from .helpers import backdate, held_writer, maintained, opened, replayed

ROOM = "workflow:w1"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def seqs(events: Sequence[StoredEvent]) -> list[int]:
    return [e.seq for e in events]


def data(event: StoredEvent) -> dict[str, Any]:
    """The event's frame, decoded."""
    decoded: dict[str, Any] = json.loads(event.frame)
    return decoded


def parse_timestamp(text: str) -> float:
    assert TIMESTAMP.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


async def append_many(log: EventLog, room: str, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        log.append_nowait(room, "tick", {"i": i})
    await log.flush()


# -- appending ------------------------------------------------------------------------


async def test_seqs_are_per_room_and_start_at_one(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        assert log.top(ROOM) == 0
        assert log.floor(ROOM) == 0
        assert await log.append(ROOM, "progress", {"n": 1}) == 1
        assert await log.append(ROOM, "progress", {"n": 2}) == 2
        assert await log.append("agent:a", "agent_status", {"n": 1}) == 1
        assert await log.append(ROOM, "progress", {"n": 3}) == 3
        assert log.top(ROOM) == 3
        assert log.top("agent:a") == 1
        assert sorted(log.rooms()) == ["agent:a", ROOM]
        events = await log.read(ROOM)
        assert seqs(events) == [1, 2, 3]
        assert [data(e)["n"] for e in events] == [1, 2, 3]
        assert all(e.room == ROOM and e.type == "progress" for e in events)


async def test_read_after_and_limit(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        await append_many(log, ROOM, 10)
        assert seqs(await log.read(ROOM, after=4)) == [5, 6, 7, 8, 9, 10]
        assert seqs(await log.read(ROOM, after=4, limit=3)) == [5, 6, 7]
        assert seqs(await log.read(ROOM, limit=1)) == [1]
        assert await log.read(ROOM, limit=0) == []
        assert await log.read(ROOM, after=10) == []
        assert await log.read(ROOM, after=99) == []
        assert await log.read("agent:nobody") == []


async def test_frame_layout_and_timestamp(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        payload = {"workflow_id": "w1", "progress": 0.5, "details": {"a": [1, 2]}, "é": "ü"}
        before = time.time()
        await log.append(ROOM, "progress", payload)
        after = time.time()
        (event,) = await log.read(ROOM)
        decoded = json.loads(event.frame)
        assert list(decoded) == [*ENVELOPE, *payload]
        assert decoded == {
            "type": "progress",
            "room": ROOM,
            "seq": 1,
            "timestamp": event.timestamp,
            **payload,
        }
        stamp = parse_timestamp(event.timestamp)
        assert int(before * 1000) / 1000 <= stamp <= after
        assert event.timestamp.endswith("Z")


async def test_frame_of_an_empty_payload_and_awkward_names(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        room = 'workflow:"quoted"\\é'
        await log.append(room, 'ty"pe', {})
        (event,) = await log.read(room)
        decoded = json.loads(event.frame)
        assert decoded == {"type": 'ty"pe', "room": room, "seq": 1, "timestamp": event.timestamp}
        assert event.type == 'ty"pe'


async def test_an_event_serialized_once_is_stored_as_the_event_it_was(tmp_path: Path) -> None:
    event = ProgressEvent(
        room=ROOM,
        workflow_id="w1",
        state=WorkflowState.running,
        progress=0.25,
        message="frames: 3/12 — “quoted”",
        details=ProgressDetails(event="task_completed", task="frames/3"),
    )
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        assert await log.append(ROOM, event.type, event_payload(event)) == 1
        (stored,) = await log.read(ROOM)
        decoded = parse_server_message(stored.frame)
        assert decoded == event.model_copy(update={"seq": 1, "timestamp": stored.timestamp})


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"a":1,"b":[true,null]}', {"a": 1, "b": [True, None]}),
        (b"{}", {}),
        (b"{ }", {}),
        (b'{\n  "a": "x"\n}', {"a": "x"}),
        (b'  {"a": 2}\n', {"a": 2}),
        ('{"s": "é"}'.encode(), {"s": "é"}),
    ],
)
async def test_bytes_payloads_that_are_json_objects_are_accepted(
    tmp_path: Path, payload: bytes, expected: dict[str, Any]
) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        assert await log.append(ROOM, "artifact", payload) == 1
        (event,) = await log.read(ROOM)
        decoded = json.loads(event.frame)  # the stored frame is valid JSON
        envelope = {"type": "artifact", "room": ROOM, "seq": 1, "timestamp": event.timestamp}
        assert decoded == {**envelope, **expected}
        assert list(decoded)[:4] == list(envelope)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"bad": object()}, "cannot be stored"),
        ({"nested": [1, object()]}, "cannot be stored"),
        ([1, 2, 3], "JSON object"),
        ("text", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"{not json", "cannot be stored"),
        (b'{"a": 1} trailing', "cannot be stored"),
        (b"", "cannot be stored"),
        (b'{"a": NaN}', "cannot be stored"),
        ({"seq": 7}, "'seq'"),
        ({"type": "other"}, "'type'"),
        (b'{"room": "elsewhere"}', "'room'"),
        ({"a": 1, "timestamp": "x"}, "'timestamp'"),
    ],
)
async def test_a_bad_payload_fails_only_its_own_append(
    tmp_path: Path, payload: Any, reason: str
) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        delivered: list[StoredEvent] = []
        log.add_listener(delivered.extend)
        async with held_writer(store.db):
            # All five share one batch.
            futures = [
                asyncio.ensure_future(log.append(ROOM, "progress", {"n": 1})),
                asyncio.ensure_future(log.append(ROOM, "progress", payload)),
                asyncio.ensure_future(log.append(ROOM, "progress", {"n": 2})),
                asyncio.ensure_future(log.append("agent:a", "agent_status", {"n": 3})),
            ]
            await asyncio.sleep(0)
            log.append_nowait(ROOM, "progress", payload)
            log.append_nowait(ROOM, "progress", {"n": 4})
        results = await asyncio.gather(*futures, return_exceptions=True)
        await log.flush()
        assert results[0] == 1
        assert isinstance(results[1], TypeError)
        assert reason in str(results[1])
        assert "'progress'" in str(results[1])
        assert repr(ROOM) in str(results[1])
        assert results[2:] == [2, 1]
        assert seqs(await log.read(ROOM)) == [1, 2, 3]
        assert [data(e)["n"] for e in await log.read(ROOM)] == [1, 2, 4]
        assert [(e.room, e.seq) for e in delivered] == [
            (ROOM, 1),
            (ROOM, 2),
            ("agent:a", 1),
            (ROOM, 3),
        ]
        assert log.top(ROOM) == 3
        # The next batch goes on from there.
        assert await log.append(ROOM, "progress", {"n": 5}) == 4


async def test_a_bad_room_or_type_fails_only_its_own_append(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        async with held_writer(store.db):
            futures = [
                asyncio.ensure_future(log.append(ROOM, "e", {"n": 1})),
                asyncio.ensure_future(log.append(None, "e", {})),  # type: ignore[arg-type]
                asyncio.ensure_future(log.append(ROOM, "", {})),
                asyncio.ensure_future(log.append("", "e", {})),
                asyncio.ensure_future(log.append(ROOM, 7, {})),  # type: ignore[arg-type]
                asyncio.ensure_future(log.append(ROOM, "e", {"n": 2})),
            ]
            await asyncio.sleep(0)
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert results[0] == 1
        assert results[-1] == 2
        for result in results[1:-1]:
            assert isinstance(result, TypeError)
            assert "non-empty strings" in str(result)
        assert [data(e)["n"] for e in await log.read(ROOM)] == [1, 2]


async def test_any_mapping_is_a_payload(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        await log.append(ROOM, "x", collections.OrderedDict([("z", 1), ("a", 2)]))
        await log.append(ROOM, "x", types.MappingProxyType({"m": [1]}))
        first, second = await log.read(ROOM)
        assert list(data(first)) == ["type", "room", "seq", "timestamp", "z", "a"]
        assert data(second)["m"] == [1]


async def test_frames_are_strict_json(tmp_path: Path) -> None:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    async with opened(tmp_path / "s.db") as store:
        log = store.events
        await log.append(ROOM, "x", {"nan": float("nan"), "inf": float("-inf"), "ok": 1.5})
        (event,) = await log.read(ROOM)
        decoded = json.loads(event.frame, parse_constant=refuse)
        assert (decoded["nan"], decoded["inf"], decoded["ok"]) == (None, None, 1.5)


# -- concurrency ----------------------------------------------------------------------

SHARED_ROOMS = ["workflow:a", "workflow:b", "coordinator"]
PRODUCERS = 8
PER_PRODUCER = 5_000


def check_contiguous(
    events_by_room: dict[str, list[StoredEvent]], returned: dict[tuple[int, int], tuple[str, int]]
) -> None:
    """Each room holds 1..n; each producer's events keep their order; seqs match the stored."""
    total = 0
    for room, events in events_by_room.items():
        assert seqs(events) == list(range(1, len(events) + 1)), room
        last: dict[int, int] = {}
        for event in events:
            fields = data(event)
            producer, index = fields["p"], fields["i"]
            assert last.get(producer, -1) < index, (room, producer, index)
            last[producer] = index
            assert returned[(producer, index)] == (room, event.seq)
        total += len(events)
    assert total == len(returned) == PRODUCERS * PER_PRODUCER


async def test_concurrent_producers_get_contiguous_seqs(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        delivered: dict[str, list[int]] = collections.defaultdict(list)

        def listener(events: Sequence[StoredEvent]) -> None:
            for event in events:
                delivered[event.room].append(event.seq)

        log.add_listener(listener)
        returned: dict[tuple[int, int], tuple[str, int]] = {}

        async def producer(p: int) -> None:
            for i in range(PER_PRODUCER):
                room = SHARED_ROOMS[(i * (p + 1)) % len(SHARED_ROOMS)]
                returned[(p, i)] = (room, await log.append(room, "tick", {"p": p, "i": i}))

        await asyncio.gather(*(producer(p) for p in range(PRODUCERS)))
        by_room = {room: await log.read(room) for room in SHARED_ROOMS}
        check_contiguous(by_room, returned)
        for room in SHARED_ROOMS:
            assert delivered[room] == seqs(by_room[room])
            assert log.top(room) == len(by_room[room])


async def test_concurrent_producer_threads_get_contiguous_seqs(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        loop = asyncio.get_running_loop()
        returned: dict[tuple[int, int], tuple[str, int]] = {}
        failures: list[BaseException] = []

        def producer(p: int) -> None:
            try:
                window: collections.deque[Any] = collections.deque()
                for i in range(PER_PRODUCER):
                    room = SHARED_ROOMS[(i * (p + 1)) % len(SHARED_ROOMS)]
                    coro = log.append(room, "tick", {"p": p, "i": i})
                    window.append((i, room, asyncio.run_coroutine_threadsafe(coro, loop)))
                    if len(window) >= 32 or i == PER_PRODUCER - 1:
                        while window:
                            index, at, future = window.popleft()
                            returned[(p, index)] = (at, future.result(60))
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=producer, args=(p,)) for p in range(PRODUCERS)]
        for thread in threads:
            thread.start()
        await asyncio.gather(*(asyncio.to_thread(t.join) for t in threads))
        assert failures == []
        check_contiguous({room: await log.read(room) for room in SHARED_ROOMS}, returned)


async def test_append_nowait_from_threads_and_loop_together(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        go = threading.Event()

        def producer(p: int) -> None:
            go.wait(60)
            for i in range(1000):
                log.append_nowait(ROOM, "tick", {"p": p, "i": i})

        threads = [threading.Thread(target=producer, args=(p,)) for p in range(4)]
        for thread in threads:
            thread.start()
        go.set()
        for i in range(1000):
            log.append_nowait(ROOM, "tick", {"p": 99, "i": i})
        await asyncio.gather(*(asyncio.to_thread(t.join) for t in threads))
        await log.flush()
        events = await log.read(ROOM)
        assert seqs(events) == list(range(1, 5001))
        by_producer: dict[int, list[int]] = collections.defaultdict(list)
        for event in events:
            by_producer[data(event)["p"]].append(data(event)["i"])
        assert by_producer == {p: list(range(1000)) for p in (0, 1, 2, 3, 99)}


# -- listeners ------------------------------------------------------------------------


async def test_listeners_run_on_the_loop_after_commit_in_seq_order(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with opened(path) as store:
        log = store.events
        loop_thread = threading.get_ident()
        outside = sqlite3.connect(path)
        checked: list[tuple[str, int]] = []
        problems: list[str] = []

        def listener(events: Sequence[StoredEvent]) -> None:
            if threading.get_ident() != loop_thread:
                problems.append("listener called off the loop")
            for event in events:
                row = outside.execute(
                    "SELECT frame FROM events WHERE room = ? AND seq = ?", (event.room, event.seq)
                ).fetchone()
                if row is None or bytes(row[0]) != event.frame:
                    problems.append(f"{event.room}#{event.seq} not durable when delivered")
                checked.append((event.room, event.seq))

        log.add_listener(listener)
        try:
            tasks = [
                asyncio.ensure_future(log.append(SHARED_ROOMS[i % 3], "e", {"i": i}))
                for i in range(300)
            ]
            for i in range(300):
                log.append_nowait(SHARED_ROOMS[i % 2], "e", {"i": i})
            await asyncio.gather(*tasks)
            await log.flush()
        finally:
            outside.close()
        assert problems == []
        assert len(checked) == 600
        for room in SHARED_ROOMS:
            room_seqs = [seq for r, seq in checked if r == room]
            assert room_seqs == list(range(1, len(room_seqs) + 1))


async def test_listener_sees_an_event_before_its_append_returns(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        seen: list[StoredEvent] = []
        log.add_listener(seen.extend)
        seq = await log.append(ROOM, "e", {"a": 1})
        assert seqs(seen) == [seq]
        # What listeners get is exactly what a read gives later, timestamp included.
        assert seen == await log.read(ROOM)


async def test_failing_listener_does_not_stop_others_or_appends(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events

        def broken(events: Sequence[StoredEvent]) -> None:
            raise RuntimeError("listener bug")

        seen: list[int] = []
        log.add_listener(broken)
        log.add_listener(lambda events: seen.extend(e.seq for e in events))
        assert await log.append(ROOM, "e", {}) == 1
        assert await log.append(ROOM, "e", {}) == 2
        assert seen == [1, 2]


async def test_removed_listener_is_not_called(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        seen: list[int] = []
        remove = log.add_listener(lambda events: seen.extend(e.seq for e in events))
        await log.append(ROOM, "e", {})
        remove()
        remove()  # harmless twice
        await log.append(ROOM, "e", {})
        assert seen == [1]


async def test_flush_waits_for_queued_events(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        seen: list[int] = []
        log.add_listener(lambda events: seen.extend(e.seq for e in events))
        for i in range(500):
            log.append_nowait(ROOM, "e", {"i": i})
        await log.flush()
        assert seen == list(range(1, 501))
        assert log.top(ROOM) == 500


# -- the loop is never blocked --------------------------------------------------------


async def test_loop_runs_while_the_writer_is_blocked(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        loop = asyncio.get_running_loop()
        await log.append(ROOM, "e", {"i": -1})
        seen: list[int] = []
        batches: list[int] = []
        log.add_listener(lambda events: seen.extend(e.seq for e in events))
        log.add_listener(lambda events: batches.append(len(events)))
        async with held_writer(store.db) as held:
            appends = [asyncio.ensure_future(log.append(ROOM, "e", {"i": i})) for i in range(100)]
            await asyncio.sleep(0)  # the tasks queue their appends
            for i in range(100, 1100):
                log.append_nowait(ROOM, "e", {"i": i})
            # The loop goes on: callbacks run, tasks advance, reads answer.
            tick = loop.create_future()
            loop.call_soon(tick.set_result, "tick")
            assert await tick == "tick"
            assert not any(a.done() for a in appends)
            assert seen == []
            assert log.top(ROOM) == 1
            assert seqs(await log.read(ROOM)) == [1]
            timer = loop.create_future()
            loop.call_later(0.001, timer.set_result, "timer")
            assert await timer == "timer"
            assert not held.done()
        assert await held == "released"
        assert [await a for a in appends] == list(range(2, 102))
        await log.flush()
        assert seen == list(range(2, 1102))
        assert batches == [1100]  # everything queued meanwhile went in one commit
        events = await log.read(ROOM)
        assert seqs(events) == list(range(1, 1102))
        assert [data(e)["i"] for e in events] == list(range(-1, 1100))


# -- restart and epoch ----------------------------------------------------------------


async def test_restart_keeps_epoch_tops_and_events(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with opened(path) as store:
        log = store.events
        epoch = log.epoch
        assert re.fullmatch(r"[0-9a-f]{32}", epoch)
        await append_many(log, ROOM, 7)
        await append_many(log, "agent:a", 3)
        frames = [e.frame for e in await log.read(ROOM)]
    async with opened(path) as store:
        log = store.events
        assert log.epoch == epoch
        assert log.top(ROOM) == 7
        assert log.top("agent:a") == 3
        assert sorted(log.rooms()) == ["agent:a", ROOM]
        assert [e.frame for e in await log.read(ROOM)] == frames
        seen: list[int] = []
        log.add_listener(lambda events: seen.extend(e.seq for e in events))
        assert await log.append(ROOM, "e", {}) == 8
        assert await log.append("agent:a", "e", {}) == 4
        assert await log.append("agent:new", "e", {}) == 1
        assert seen == [8, 4, 1]
        replay = log.replay(ROOM, after=5, epoch=epoch)
        assert replay.recovered
        assert seqs(await replayed(replay)) == [6, 7, 8]


async def test_a_new_file_has_a_new_epoch(tmp_path: Path) -> None:
    async with opened(tmp_path / "one.db") as store:
        first = store.events.epoch
        await store.events.append(ROOM, "e", {})
    async with opened(tmp_path / "two.db") as store:
        assert store.events.epoch != first
        assert store.events.top(ROOM) == 0
    # The same path, but a new file.
    for name in ("one.db", "one.db-wal", "one.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    async with opened(tmp_path / "one.db") as store:
        assert store.events.epoch != first
        assert store.events.top(ROOM) == 0


async def test_reset_starts_a_new_epoch(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with opened(path) as store:
        log = store.events
        old = log.epoch
        await append_many(log, ROOM, 5)
        new = await log.reset()
        assert new == log.epoch
        assert new != old
        assert log.top(ROOM) == 0
        assert log.floor(ROOM) == 0
        assert log.rooms() == []
        assert await log.read(ROOM) == []
        assert await log.append(ROOM, "e", {}) == 1
        assert not log.replay(ROOM, after=1, epoch=old).recovered
        assert log.replay(ROOM, after=1, epoch=new).recovered
    async with opened(path) as store:
        assert store.events.epoch == new
        assert store.events.top(ROOM) == 1


async def test_reset_and_appends_in_one_batch(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        old = log.epoch
        await append_many(log, ROOM, 5)
        delivered: list[tuple[str, int, int]] = []
        log.add_listener(
            lambda events: delivered.extend((e.room, e.seq, data(e)["n"]) for e in events)
        )
        async with held_writer(store.db):
            before = asyncio.ensure_future(log.append(ROOM, "e", {"n": 1}))
            await asyncio.sleep(0)
            log.append_nowait("agent:a", "e", {"n": 2})
            resetting = asyncio.ensure_future(log.reset())
            await asyncio.sleep(0)
            after = asyncio.ensure_future(log.append(ROOM, "e", {"n": 3}))
            await asyncio.sleep(0)
            log.append_nowait("agent:b", "e", {"n": 4})
            log.append_nowait(ROOM, "e", {"n": 5})
        new = await resetting
        await log.flush()
        # Queued before the reset: stored in the old epoch, then dropped with it.
        assert await before == 6
        # Queued after it: the new epoch, from seq 1.
        assert await after == 1
        assert new != old
        assert log.epoch == new
        assert delivered == [(ROOM, 1, 3), ("agent:b", 1, 4), (ROOM, 2, 5)]
        assert [data(e)["n"] for e in await log.read(ROOM)] == [3, 5]
        assert await log.read("agent:a") == []
        assert sorted(log.rooms()) == ["agent:b", ROOM]
        assert log.top(ROOM) == 2
        assert log.top("agent:a") == 0
        assert await log.append("agent:a", "e", {"n": 6}) == 1


async def test_reset_in_a_batch_does_not_keep_old_floors(tmp_path: Path) -> None:
    retention = Retention(max_events_per_room=100, max_age=3600)
    async with opened(tmp_path / "s.db", retention, maintenance_interval=0.01) as store:
        log = store.events
        await append_many(log, ROOM, 500)
        await append_many(log, "agent:a", 500)
        assert log.floor(ROOM) >= 390
        async with held_writer(store.db):
            resetting = asyncio.ensure_future(log.reset())
            await asyncio.sleep(0)
            for i in range(3):
                log.append_nowait(ROOM, "e", {"i": i})
            for i in range(150):  # more than a room keeps: count retention in this batch
                log.append_nowait("agent:a", "e", {"i": i})
        await resetting
        await log.flush()
        # The new epoch's floors come from the new epoch alone: count retention in the
        # reset's batch ...
        assert log.floor(ROOM) == 0
        assert log.top(ROOM) == 3
        assert log.floor("agent:a") == 50
        assert log.top("agent:a") == 150
        # ... and age retention in a later one.
        await backdate(store, 3601, ROOM)
        await maintained(store)
        assert log.floor(ROOM) == 3
        assert log.floor("agent:a") == 50
        assert log.replay(ROOM, after=3, epoch=log.epoch).recovered
        assert not log.replay(ROOM, after=2, epoch=log.epoch).recovered
        replay = log.replay("agent:a", after=60, epoch=log.epoch)
        assert replay.recovered
        assert seqs(await replayed(replay)) == list(range(61, 151))
        await log.append(ROOM, "e", {})
        assert seqs(await replayed(log.replay(ROOM, after=3))) == [4]
    async with opened(tmp_path / "s.db", retention) as store:
        assert store.events.floor(ROOM) == 3
        assert store.events.floor("agent:a") == 50


# -- retention ------------------------------------------------------------------------


def test_retention_validates_its_limits() -> None:
    with pytest.raises(ValueError, match=r"at least 100 \(got 10\)") as info:
        Retention(max_events_per_room=10)
    assert "reconnecting clients" in str(info.value)
    with pytest.raises(ValueError, match="at least 100"):
        Retention(max_events_per_room=99)
    with pytest.raises(ValueError, match="max_age must be a positive"):
        Retention(max_age=0)
    with pytest.raises(ValueError, match="max_age must be a positive"):
        Retention(max_age=-5)
    assert Retention(max_events_per_room=100).max_events_per_room == 100
    assert Retention(max_events_per_room=None, max_age=None).max_age is None


async def test_count_retention_keeps_the_newest_events(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    keep = 100
    async with opened(path, Retention(max_events_per_room=keep)) as store:
        log = store.events
        for i in range(500):
            await log.append(ROOM, "e", {"i": i})
            top, floor = log.top(ROOM), log.floor(ROOM)
            # Never fewer than `keep` events (once there were that many), never far more.
            assert min(top, keep) <= top - floor <= keep + keep // 10, (top, floor)
        await append_many(log, "agent:quiet", 50)
        top, floor = log.top(ROOM), log.floor(ROOM)
        assert top == 500
        assert floor > 0
        kept = await log.read(ROOM)
        assert seqs(kept) == list(range(floor + 1, top + 1))
        assert [data(e)["i"] for e in kept] == list(range(floor, top))
        stale = log.replay(ROOM, after=5)
        assert not stale.recovered
        assert await replayed(stale) == []  # its snapshot is the truth: nothing to replay
        recent = log.replay(ROOM, after=top - 50)
        assert recent.recovered
        assert seqs(await replayed(recent)) == list(range(top - 49, top + 1))
        edge = log.replay(ROOM, after=floor)
        assert edge.recovered
        assert len(await replayed(edge)) == top - floor
        assert not log.replay(ROOM, after=floor - 1).recovered
        # A client that has seen nothing gets everything still kept.
        fresh = log.replay(ROOM, after=None)
        assert not fresh.recovered
        assert seqs(await replayed(fresh)) == list(range(floor + 1, top + 1))
        # Other rooms keep theirs.
        assert log.floor("agent:quiet") == 0
        assert log.replay("agent:quiet", after=None).recovered
    async with opened(path, Retention(max_events_per_room=keep)) as store:
        assert store.events.floor(ROOM) == floor
        assert store.events.top(ROOM) == 500
        assert await store.events.append(ROOM, "e", {}) == 501


async def test_count_retention_in_one_big_batch(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db", Retention(max_events_per_room=100)) as store:
        log = store.events
        async with held_writer(store.db):
            for i in range(1000):
                log.append_nowait(ROOM, "e", {"i": i})
        await log.flush()
        assert log.top(ROOM) == 1000
        assert log.floor(ROOM) == 900
        assert seqs(await log.read(ROOM)) == list(range(901, 1001))


async def test_no_count_retention(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db", Retention(max_events_per_room=None)) as store:
        log = store.events
        await append_many(log, ROOM, 300)
        assert log.floor(ROOM) == 0
        assert len(await log.read(ROOM)) == 300


async def test_age_retention(tmp_path: Path) -> None:
    """The database's maintenance drops the events older than ``max_age``."""
    max_age = 60.0
    async with opened(
        tmp_path / "s.db", Retention(max_age=max_age), maintenance_interval=0.01
    ) as store:
        log = store.events
        await append_many(log, ROOM, 10)
        await append_many(log, "agent:a", 4)
        # Nothing is old yet.
        await maintained(store)
        assert log.floor(ROOM) == 0
        assert len(await log.read(ROOM)) == 10
        # Make ROOM's first five events old.
        await backdate(store, max_age + 1, ROOM, through=5)
        await maintained(store)
        assert log.floor(ROOM) == 5
        assert log.floor("agent:a") == 0
        assert seqs(await log.read(ROOM)) == [6, 7, 8, 9, 10]
        assert not log.replay(ROOM, after=3).recovered
        replay = log.replay(ROOM, after=5)
        assert replay.recovered
        assert seqs(await replayed(replay)) == [6, 7, 8, 9, 10]
        # Everything is old a little after max_age.
        await backdate(store, max_age + 1)
        await maintained(store)
        assert log.floor(ROOM) == log.top(ROOM) == 10
        assert log.floor("agent:a") == log.top("agent:a") == 4
        assert await log.read(ROOM) == []
        assert not log.replay(ROOM, after=None).recovered
        empty = log.replay(ROOM, after=10)
        assert empty.recovered
        assert await replayed(empty) == []
        # Seqs go on; a dropped room does not start again at 1.
        assert await log.append(ROOM, "e", {}) == 11
        assert log.replay(ROOM, after=10).recovered


async def test_age_retention_off(tmp_path: Path) -> None:
    async with opened(
        tmp_path / "s.db", Retention(max_age=None), maintenance_interval=0.01
    ) as store:
        log = store.events
        await append_many(log, ROOM, 3)
        await backdate(store, 10**9)
        await maintained(store)
        assert log.floor(ROOM) == 0
        assert len(await log.read(ROOM)) == 3


# -- replay ---------------------------------------------------------------------------


async def test_replay(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        empty = log.replay(ROOM, after=None)
        assert empty.recovered
        assert (empty.top, empty.cursor) == (0, 0)
        assert empty.done
        assert await empty.next_page(10) == []
        await append_many(log, ROOM, 5)
        for after in (None, 0):
            replay = log.replay(ROOM, after=after)
            assert replay.recovered
            assert replay.cursor == 0
            assert replay.top == 5
            assert seqs(await replayed(replay)) == [1, 2, 3, 4, 5]
        replay = log.replay(ROOM, after=3, epoch=log.epoch)
        assert replay.recovered
        assert seqs(await replayed(replay)) == [4, 5]
        at_top = log.replay(ROOM, after=5)
        assert at_top.recovered
        assert await replayed(at_top) == []
        # Not recovered: nothing is replayed, the room's snapshot is the truth.
        beyond = log.replay(ROOM, after=6)
        assert not beyond.recovered
        assert beyond.top == 5
        assert await replayed(beyond) == []
        wrong = log.replay(ROOM, after=3, epoch="0" * 32)
        assert not wrong.recovered
        assert await replayed(wrong) == []
        other = log.replay(ROOM, after=None, epoch="other")
        assert other.recovered is False
        assert await replayed(other) == []
        assert log.replay(ROOM, after=0, epoch=log.epoch).recovered


async def test_replay_pages(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        await append_many(log, ROOM, 7)
        replay = log.replay(ROOM, after=1)
        pages = []
        while not replay.done:
            pages.append(seqs(await replay.next_page(2)))
            assert replay.cursor == pages[-1][-1]
        assert pages == [[2, 3], [4, 5], [6, 7]]
        assert await replay.next_page(2) == []


async def test_replay_top_and_listener_meet_without_gap_or_duplicate(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        await append_many(log, ROOM, 10)
        live: list[int] = []
        async with held_writer(store.db):
            for i in range(20):
                log.append_nowait(ROOM, "e", {"i": i})
            log.add_listener(lambda events: live.extend(e.seq for e in events if e.room == ROOM))
            replay = log.replay(ROOM, after=4)
        await log.flush()
        assert replay.top == 10
        assert seqs(await replayed(replay)) + live == list(range(5, 31))


async def test_a_replay_cut_by_retention_says_so(tmp_path: Path) -> None:
    """Retention dropping events a recovered replay has yet to send leaves a gap."""
    async with opened(tmp_path / "s.db", Retention(max_age=60), maintenance_interval=0.01) as store:
        log = store.events
        await append_many(log, ROOM, 20)
        replay = log.replay(ROOM, after=2)
        assert replay.recovered
        assert seqs(await replay.next_page(3)) == [3, 4, 5]
        await backdate(store, 61, ROOM, through=10)
        await maintained(store)
        assert log.floor(ROOM) == 10
        # Events 6..10 are gone: this replay cannot bring the client up to date.
        with pytest.raises(
            ReplayGap, match=r"retention dropped events of room 'workflow:w1' after seq 5"
        ):
            await replay.next_page(3)
        # A replay decided now knows it.
        assert not log.replay(ROOM, after=2).recovered


async def test_a_replay_cut_by_a_reset_says_so(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        log = store.events
        old = log.epoch
        await append_many(log, ROOM, 20)
        replay = log.replay(ROOM, after=0, epoch=old)
        assert replay.recovered
        await log.reset()
        await append_many(log, ROOM, 3)
        # Events of the new epoch must not pass for the old epoch's 1..3.
        with pytest.raises(ReplayGap, match="reset"):
            await replay.next_page(100)


# -- closed store ---------------------------------------------------------------------


async def test_append_after_close_raises(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    log = store.events
    await log.append(ROOM, "e", {})
    pending = log.replay(ROOM, after=0)
    await store.close()
    with pytest.raises(StoreError):
        await log.append(ROOM, "e", {})
    with pytest.raises(StoreError):
        log.replay(ROOM, after=0)
    with pytest.raises(StoreError):
        await pending.next_page(10)
    with pytest.raises(StoreError):
        await log.reset()
