"""Shared by the processes of ``fanout.py``: the benchmark event, pacing, process
figures, an optional cProfile.

Imported by the benchmark's Jupyter server extension (``fanout_producer``), the bare
Tornado server (``fanout_bare``) and the subscribers (``fanout_clients``), which all
run with ``benchmarks/`` on their path; it imports nothing from ``vimax_nb``.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import os
import time
from collections.abc import Callable
from typing import Any

CHUNK = 500  # events emitted per loop turn when emitting as fast as possible
PROFILE_ENV = "VIMAX_BENCH_PROFILE"
GC_FREEZE_ENV = "VIMAX_BENCH_GC_FREEZE"
SWITCH_INTERVAL_ENV = "VIMAX_BENCH_SWITCH_INTERVAL"


def apply_experiments() -> dict[str, Any]:
    """Process settings ``fanout.py --gc-freeze`` / ``--switch-interval`` ask for (both
    servers, once they are up): ``gc.freeze()`` moves every object alive now out of the
    collector's sight, so full collections stop walking the server's import-time heap;
    ``sys.setswitchinterval`` sets how long a thread may keep the GIL from another."""
    import sys

    applied: dict[str, Any] = {}
    if os.environ.get(GC_FREEZE_ENV):
        gc.collect()
        gc.freeze()
        applied["gc_frozen"] = gc.get_freeze_count()
    interval = os.environ.get(SWITCH_INTERVAL_ENV)
    if interval:
        sys.setswitchinterval(float(interval))
        applied["switch_interval"] = sys.getswitchinterval()
    return applied


async def emit_paced(count: int, rate: float, emit: Callable[[int], None]) -> dict[str, Any]:
    """Call ``emit(i)`` for ``i`` in ``range(count)``: ``rate`` a second on the loop's
    clock, or as fast as possible (``rate <= 0``) in chunks of ``CHUNK`` a loop turn.

    Returns when the last one was emitted, with the wall-clock times of the first and
    the last emit and how far behind the schedule the pacing fell at worst.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    first = time.time()
    worst_lag, worst_at = 0.0, -1
    lags: list[float] = []
    for i in range(count):
        if rate > 0:
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = loop.time() - due
            lags.append(lag)
            if lag > worst_lag:
                worst_lag, worst_at = lag, i
        elif i and i % CHUNK == 0:
            await asyncio.sleep(0)
        if i == 0:
            first = time.time()
        emit(i)
    last = time.time()
    lags.sort()
    return {
        "emitted": count,
        "first_emit": first,
        "last_emit": last,
        "worst_lag": worst_lag,
        "worst_lag_at": worst_at,
        "p99_lag": lags[int(0.99 * (len(lags) - 1))] if lags else 0.0,
    }


def summary(values: list[float]) -> dict[str, float]:
    """Count, p50, p99 and max of ``values`` (seconds) in milliseconds."""
    if not values:
        return {"n": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    ordered = sorted(values)
    n = len(ordered)
    return {
        "n": n,
        "p50_ms": ordered[n // 2] * 1000,
        "p99_ms": ordered[min(n - 1, round(0.99 * (n - 1)))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


class GcPauses:
    """The garbage collector's pauses (on whichever thread collects), since the last take."""

    def __init__(self) -> None:
        self._started = 0.0
        self.pauses: list[tuple[int, float]] = []
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif len(self.pauses) < 100_000:
            self.pauses.append(
                (int(info.get("generation", 0)), time.perf_counter() - self._started)
            )

    def take(self) -> dict[str, Any]:
        pauses, self.pauses = self.pauses, []
        return {
            "gc_collections": len(pauses),
            "gc_gen2": sum(1 for generation, _ in pauses if generation == 2),
            "gc_total_ms": sum(d for _, d in pauses) * 1000,
            "gc_max_ms": max((d for _, d in pauses), default=0.0) * 1000,
        }


def process_figures() -> dict[str, float]:
    """This process's CPU time, the calling (loop) thread's, and the wall clock."""
    return {"process_cpu": time.process_time(), "loop_cpu": time.thread_time(), "time": time.time()}


class Profiler:
    """A cProfile of the loop thread, on when ``$VIMAX_BENCH_PROFILE`` names a file."""

    def __init__(self) -> None:
        self.path = os.environ.get(PROFILE_ENV) or None
        self._profile: cProfile.Profile | None = None

    def control(self, action: str) -> dict[str, Any]:
        """``start`` or ``stop`` (which writes the stats to the file)."""
        if self.path is None:
            return {"profile": None}
        if action == "start" and self._profile is None:
            self._profile = cProfile.Profile()
            self._profile.enable()
        elif action == "stop" and self._profile is not None:
            self._profile.disable()
            self._profile.dump_stats(self.path)
            self._profile = None
        return {"profile": self.path, "action": action}


#: How a benchmark event's ``message`` starts; the emit time (``time.time()``) follows.
EMITTED_AT = "emitted at "


def progress_message(
    room: str, workflow_id: str, seq: int, timestamp: str, emitted_at: float, i: int
) -> dict[str, Any]:
    """The shape of the events both servers send: the full path's stored frame of a
    progress event whose message carries its emit time, and whose details name it."""
    return {
        "type": "progress",
        "room": room,
        "seq": seq,
        "timestamp": timestamp,
        "workflow_id": workflow_id,
        "state": "running",
        "progress": 0.5,
        "stage": "bench",
        "stage_index": 0,
        "total_stages": 1,
        "message": f"{EMITTED_AT}{emitted_at!r}",
        "details": {"event": "task_completed", "task": f"bench/{i}", "stages": []},
    }


def emit_time_of(message: object) -> float | None:
    """The emit time in a benchmark event's ``message``; None for any other text."""
    if not isinstance(message, str) or not message.startswith(EMITTED_AT):
        return None
    try:
        return float(message[len(EMITTED_AT) :])
    except ValueError:
        return None
