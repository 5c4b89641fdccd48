"""Durable appends and replay reads per second on the event log (``vimax_nb.store.Store``).

Measures, each as the best of ``--repeat`` runs on a fresh database in a
temporary directory:

a. pipelined ``append_nowait`` of ``--events`` events over ``--rooms`` rooms, then
   ``await events.flush()`` (the way the broadcaster appends);
b. ``--producers`` asyncio producers each awaiting ``append`` one event at a time;
c. replay: every room replayed whole to a client that has seen nothing, the way the
   hub reads it (``events.replay(room, None)``, then ``next_page`` of ``REPLAY_PAGE``);
d. (a) again with ``synchronous="FULL"`` (an fsync per commit).

Run: ``python benchmarks/event_log.py [--events N] [--rooms R] [--repeat K]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _table import print_table

from vimax_nb.protocol import (
    EventPayload,
    ProgressDetails,
    ProgressEvent,
    StageProgress,
    WorkflowState,
    event_payload,
)
from vimax_nb.server.hub import REPLAY_PAGE
from vimax_nb.store import Store, StoredEvent

TARGET_APPENDS = 50_000  # durable appends per second, pipelined
STAGES = (
    "story",
    "characters",
    "portraits",
    "storyboard",
    "camera",
    "frames",
    "videos",
    "edit",
)


def progress_payloads(count: int) -> list[EventPayload]:
    """``count`` distinct progress-event payloads, serialized as the broadcaster does."""
    payloads = []
    for i in range(count):
        stage_index = i % len(STAGES)
        done = i % 30
        payloads.append(
            event_payload(
                ProgressEvent(
                    room="workflow:bench",
                    workflow_id=f"{i:012x}",
                    state=WorkflowState.running,
                    progress=round((stage_index + done / 30) / len(STAGES), 4),
                    stage=STAGES[stage_index],
                    stage_index=stage_index,
                    total_stages=len(STAGES),
                    message=f"{STAGES[stage_index]}: {done}/30 done",
                    details=ProgressDetails(
                        event="task_completed",
                        task=f"{STAGES[stage_index]}/shot-{done}",
                        agent=f"{STAGES[stage_index]}-agent",
                        stages=[
                            StageProgress(
                                name=name,
                                done=30 if k < stage_index else done if k == stage_index else 0,
                                total=30,
                            )
                            for k, name in enumerate(STAGES)
                        ],
                    ),
                )
            )
        )
    return payloads


PAYLOADS = progress_payloads(64)


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    commits: int = 0
    note: str = ""
    target: int | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("inf")


class _Workdir:
    """Hands out fresh database paths inside one temporary directory."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.count = 0

    def path(self) -> Path:
        self.count += 1
        return self.root / f"bench-{self.count}" / "vimax.sqlite3"


async def _discard(store: Store) -> None:
    """Close ``store`` and delete its files (each run's database is ~100 MB)."""
    await store.close()
    shutil.rmtree(store.db.path.parent, ignore_errors=True)


def _count_commits(store: Store) -> list[int]:
    commits = [0]

    def listener(events: Sequence[StoredEvent]) -> None:
        commits[0] += 1

    store.events.add_listener(listener)
    return commits


def _check_tops(store: Store, rooms: list[str], per_room: list[int]) -> None:
    for room, expected in zip(rooms, per_room, strict=True):
        top = store.events.top(room)
        if top != expected:
            raise RuntimeError(f"room {room}: top is {top}, expected {expected}")


def _rooms(count: int) -> list[str]:
    return [f"workflow:bench{r:04d}" for r in range(count)]


async def pipelined(
    path: Path, events: int, rooms: int, synchronous: str
) -> tuple[float, int, Store]:
    """Append ``events`` with ``append_nowait`` round-robin over ``rooms``, then flush.

    Returns the seconds taken, the commits, and the (still open) store.
    """
    store = await Store.open(path, synchronous=synchronous)
    commits = _count_commits(store)
    names = _rooms(rooms)
    append = store.events.append_nowait
    payloads = PAYLOADS
    npay = len(payloads)
    gc.collect()
    start = time.perf_counter()
    for i in range(events):
        append(names[i % rooms], "progress", payloads[i % npay])
    await store.events.flush()
    seconds = time.perf_counter() - start
    per_room = [events // rooms + (1 if r < events % rooms else 0) for r in range(rooms)]
    _check_tops(store, names, per_room)
    return seconds, commits[0], store


async def bench_pipelined(
    work: _Workdir, events: int, rooms: int, repeat: int, synchronous: str
) -> tuple[Result, Store]:
    """The best of ``repeat`` runs of :func:`pipelined`; returns the last run's open store."""
    best: tuple[float, int] | None = None
    store: Store | None = None
    for _ in range(repeat):
        if store is not None:
            await _discard(store)
        seconds, commits, store = await pipelined(work.path(), events, rooms, synchronous)
        if best is None or seconds < best[0]:
            best = (seconds, commits)
    assert best is not None
    assert store is not None
    label = "(a) append_nowait + flush" if synchronous == "NORMAL" else "(d) (a) with FULL sync"
    result = Result(
        label,
        events,
        best[0],
        commits=best[1],
        note=f"{rooms} rooms, synchronous={synchronous}",
        target=TARGET_APPENDS,
    )
    return result, store


async def _producer(
    store: Store, rooms: list[str], first: int, count: int, latencies: list[float]
) -> None:
    """Append ``count`` events one at a time, each awaited; record each one's latency."""
    append = store.events.append
    clock = time.perf_counter
    for i in range(count):
        start = clock()
        await append(rooms[(first + i) % len(rooms)], "progress", PAYLOADS[i % len(PAYLOADS)])
        latencies.append(clock() - start)


async def bench_awaited(
    work: _Workdir, events: int, rooms: int, producers: int, repeat: int
) -> tuple[Result, float, float]:
    """``producers`` tasks each awaiting ``append``; returns the result, p50 and p99 (ms)."""
    best: tuple[float, int, list[float]] | None = None
    names = _rooms(rooms)
    share = [events // producers + (1 if p < events % producers else 0) for p in range(producers)]
    for _ in range(repeat):
        store = await Store.open(work.path())
        commits = _count_commits(store)
        latencies: list[float] = []
        gc.collect()
        start = time.perf_counter()
        await asyncio.gather(
            *(_producer(store, names, p, n, latencies) for p, n in enumerate(share))
        )
        seconds = time.perf_counter() - start
        if sum(store.events.top(room) for room in names) != events:
            raise RuntimeError("awaited appends: the rooms' tops do not add up to the events")
        await _discard(store)
        if best is None or seconds < best[0]:
            best = (seconds, commits[0], latencies)
    assert best is not None
    seconds, ncommits, latencies = best
    quantiles = statistics.quantiles(latencies, n=100)
    result = Result(
        "(b) awaited append",
        events,
        seconds,
        commits=ncommits,
        note=f"{producers} producers, {rooms} rooms",
    )
    return result, quantiles[49] * 1000, quantiles[98] * 1000


async def bench_replay(store: Store, events: int, rooms: int, repeat: int) -> Result:
    """Replay every room of a log filled as in (a) whole, page by page as the hub does,
    ``repeat`` times; keep the best."""
    names = _rooms(rooms)
    best: float | None = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        total = 0
        for room in names:
            replay = store.events.replay(room, None)
            while not replay.done:
                total += len(await replay.next_page(REPLAY_PAGE))
        elapsed = time.perf_counter() - start
        if total != events:
            raise RuntimeError(f"replay read {total} events, expected {events}")
        if best is None or elapsed < best:
            best = elapsed
    assert best is not None
    return Result(
        "(c) replay, pages of REPLAY_PAGE",
        events,
        best,
        note=f"{rooms} rooms of ~{events // rooms:,} events, one room at a time",
    )


def _print_table(results: list[Result]) -> None:
    header = ("measurement", "events", "seconds", "events/s", "commits", "target", "")
    rows = []
    for r in results:
        verdict = ""
        target = ""
        if r.target is not None:
            target = f">= {r.target:,}/s"
            verdict = "PASS" if r.rate >= r.target else "BELOW"
        rows.append(
            (
                r.name,
                f"{r.events:,}",
                f"{r.seconds:.3f}",
                f"{r.rate:,.0f}",
                f"{r.commits:,}" if r.commits else "-",
                target or "-",
                verdict,
            )
        )
    print_table(header, rows)
    print()
    for r in results:
        if r.note:
            print(f"  {r.name}: {r.note}")


async def main(args: argparse.Namespace) -> int:
    awaited = args.awaited_events or max(args.producers, args.events // 20)
    payload_bytes = len(PAYLOADS[0])
    print(
        f"event log benchmark: {args.events:,} events, {args.rooms} rooms, best of "
        f"{args.repeat}; progress payload ~{payload_bytes} bytes; Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPU(s)"
    )
    print()
    with tempfile.TemporaryDirectory(prefix="vimax-bench-") as tmp:
        work = _Workdir(tmp)
        a, store = await bench_pipelined(work, args.events, args.rooms, args.repeat, "NORMAL")
        try:
            c = await bench_replay(store, args.events, args.rooms, args.repeat)
        finally:
            await _discard(store)
        b, p50, p99 = await bench_awaited(work, awaited, args.rooms, args.producers, args.repeat)
        d, store = await bench_pipelined(work, args.events, args.rooms, args.repeat, "FULL")
        await _discard(store)
    b.note += f"; append latency p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    results = [a, b, c, d]
    _print_table(results)
    failed = [r for r in results if r.target is not None and r.rate < r.target]
    print()
    print("result:", "BELOW target" if failed else "PASS")
    return 1 if failed and args.strict else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000, help="events for (a), (c), (d)")
    parser.add_argument("--rooms", type=int, default=10, help="rooms the events are spread over")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--producers", type=int, default=8, help="concurrent producers in (b)")
    parser.add_argument(
        "--awaited-events",
        type=int,
        default=0,
        help="events for (b) (default: --events / 20)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target is missed"
    )
    args = parser.parse_args(argv)
    if args.events < args.rooms or args.rooms < 1 or args.repeat < 1 or args.producers < 1:
        parser.error("need --rooms >= 1, --events >= --rooms, --repeat >= 1, --producers >= 1")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
