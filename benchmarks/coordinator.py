"""Tasks per second through the Coordinator, with every event stored in the event log.

One workflow of ``--tasks`` independent no-op tasks runs on ``--agents`` agents
(at most ``--concurrency`` tasks at once), with a :class:`~vimax_nb.store.Store`
so workflow records are persisted, and a listener that appends every
coordinator event to the store's event log as the server's broadcaster does.
The time runs from ``submit`` to ``wait`` returning and the events being
flushed (stored and delivered). Measured for coroutine handlers (run on the
loop) and plain handlers (run in the executor's thread pool); two more rows run
them with no listener, to show what the events cost.

Run: ``python benchmarks/coordinator.py [--tasks N] [--agents A] [--concurrency C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import math
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _table import print_table

from vimax_nb.coordinator import (
    Agent,
    Coordinator,
    CoordinatorEvent,
    Pipeline,
    Stage,
    TaskContext,
    TaskResult,
    TaskSpec,
    skill,
)
from vimax_nb.protocol import WorkflowState, event_payload
from vimax_nb.store import Store

TARGET_TASKS = 5_000  # tasks per second, end to end


class AsyncNoop(Agent):
    """Does nothing, on the event loop."""

    @skill("noop")
    async def noop(self, ctx: TaskContext) -> None:
        return None


class ThreadNoop(Agent):
    """Does nothing, in the executor's thread pool."""

    @skill("noop")
    def noop(self, ctx: TaskContext) -> None:
        return None


class ManyTasks(Pipeline):
    """``n`` independent no-op tasks in one stage; optionally checkpoints each one."""

    kind = "bench"
    stages = (Stage("work"),)
    checkpoints: bool = False

    def plan(self, params: Mapping[str, Any]) -> Iterable[TaskSpec]:
        return [TaskSpec(f"t{i}", "noop", "work") for i in range(params["n"])]

    def checkpoint(
        self, workflow_id: str, spec: TaskSpec, result: TaskResult
    ) -> tuple[Any, str | None] | None:
        return ({"key": spec.key}, None) if self.checkpoints else None


@dataclass
class Mode:
    name: str
    agent: type[Agent]
    events: bool


@dataclass
class Run:
    seconds: float
    events: Counter[str] = field(default_factory=Counter)
    stored: int = 0


async def run_once(
    mode: Mode, tasks: int, agents: int, concurrency: int, checkpoints: bool, root: Path
) -> Run:
    """One workflow of ``tasks`` no-op tasks on a fresh coordinator and store."""
    store = await Store.open(root / "vimax.sqlite3")
    coordinator = Coordinator(store=store, max_concurrent_tasks=concurrency)
    per_agent = max(1, math.ceil(concurrency / agents))
    for i in range(agents):
        coordinator.register_agent(
            mode.agent(name=f"{mode.agent.__name__}-{i}", concurrency=per_agent)
        )
    pipeline = ManyTasks()
    pipeline.checkpoints = checkpoints
    coordinator.register_pipeline(pipeline)
    counts: Counter[str] = Counter()
    if mode.events:
        append = store.events.append_nowait

        def broadcast(event: CoordinatorEvent) -> None:
            counts[event.type] += 1
            assert event.room is not None
            append(event.room, event.type, event_payload(event))

        coordinator.add_listener(broadcast)
    try:
        await coordinator.start()
        await store.events.flush()
        before = sum(store.events.top(room) for room in store.events.rooms())
        counts.clear()
        gc.collect()
        start = time.perf_counter()
        record = await coordinator.submit("bench", {"n": tasks})
        record = await coordinator.wait(record.id)
        await store.events.flush()
        seconds = time.perf_counter() - start
        stored = sum(store.events.top(room) for room in store.events.rooms()) - before
        if record.state != WorkflowState.completed:
            raise RuntimeError(f"the workflow ended {record.state.value}: {record.message}")
        persisted = await store.workflows.get(record.id)
        if persisted is None or persisted.state != WorkflowState.completed:
            raise RuntimeError(f"the stored record is {persisted and persisted.state.value}")
        if mode.events and stored != sum(counts.values()):
            raise RuntimeError(f"{sum(counts.values())} events emitted but {stored} stored")
    finally:
        await coordinator.stop()
        await store.close()
    return Run(seconds, counts, stored)


async def bench(args: argparse.Namespace, mode: Mode, tmp: Path) -> Run:
    best: Run | None = None
    for attempt in range(args.repeat):
        root = tmp / f"{mode.agent.__name__}-{mode.events}-{attempt}"
        run = await run_once(
            mode, args.tasks, args.agents, args.concurrency, args.checkpoints, root
        )
        if best is None or run.seconds < best.seconds:
            best = run
    assert best is not None
    return best


def print_results(rows: list[tuple[Mode, Run]], tasks: int) -> None:
    header = ("handlers", "tasks", "seconds", "tasks/s", "events/task", "target", "")
    lines = []
    for mode, run in rows:
        rate = tasks / run.seconds
        events = sum(run.events.values())
        target = f">= {TARGET_TASKS:,}/s" if mode.events else "-"
        verdict = ("PASS" if rate >= TARGET_TASKS else "BELOW") if mode.events else ""
        lines.append(
            (
                mode.name,
                f"{tasks:,}",
                f"{run.seconds:.3f}",
                f"{rate:,.0f}",
                f"{events / tasks:.2f}" if mode.events else "-",
                target,
                verdict,
            )
        )
    print_table(header, lines)
    print()
    for mode, run in rows:
        if mode.events:
            kinds = ", ".join(f"{kind} {count:,}" for kind, count in run.events.most_common())
            print(f"  {mode.name}: {run.stored:,} events stored ({kinds})")


async def profile(args: argparse.Namespace, mode: Mode, tmp: Path) -> None:
    """Run ``mode`` once under cProfile (the event loop's thread only) and print the top."""
    profiler = cProfile.Profile()
    profiler.enable()
    await run_once(mode, args.tasks, args.agents, args.concurrency, args.checkpoints, tmp)
    profiler.disable()
    print(f"\ncProfile of one run, {mode.name} (event-loop thread; slowed down by profiling):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


async def main(args: argparse.Namespace) -> int:
    modes = [
        Mode("async (on the loop)", AsyncNoop, True),
        Mode("plain (thread pool)", ThreadNoop, True),
        Mode("async, events off", AsyncNoop, False),
        Mode("plain, events off", ThreadNoop, False),
    ]
    per_agent = max(1, math.ceil(args.concurrency / args.agents))
    print(
        f"coordinator benchmark: {args.tasks:,} no-op tasks, {args.agents} agents x "
        f"concurrency {per_agent}, max {args.concurrency} tasks at once, "
        f"checkpoints {'on' if args.checkpoints else 'off'}, best of {args.repeat}; "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)"
    )
    print()
    rows: list[tuple[Mode, Run]] = []
    with tempfile.TemporaryDirectory(prefix="vimax-bench-") as tmp:
        for mode in modes:
            rows.append((mode, await bench(args, mode, Path(tmp))))
        if args.profile:
            await profile(args, modes[0], Path(tmp) / "profile")
    print_results(rows, args.tasks)
    missed = [m for m, r in rows if m.events and args.tasks / r.seconds < TARGET_TASKS]
    print()
    print("result:", "BELOW target" if missed else "PASS")
    return 1 if missed and args.strict else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=10_000, help="no-op tasks in the workflow")
    parser.add_argument("--agents", type=int, default=4, help="agents with the no-op skill")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="the coordinator's max_concurrent_tasks"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument(
        "--checkpoints", action="store_true", help="store a checkpoint for every task"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also profile one async run and print the top N functions",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when the target is missed"
    )
    args = parser.parse_args(argv)
    if min(args.tasks, args.agents, args.concurrency, args.repeat) < 1:
        parser.error("--tasks, --agents, --concurrency and --repeat must be at least 1")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
