"""Shared by the servers of ``fanout.py``: pacing, process figures, an optional cProfile.

Imported by the benchmark's Jupyter server extension (``fanout_producer``) and by the
bare Tornado server (``fanout_bare``), which both run with ``benchmarks/`` on their
path; it imports nothing from ``vimax_nb``.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import time
from collections.abc import Callable
from typing import Any

CHUNK = 500  # events emitted per loop turn when emitting as fast as possible
PROFILE_ENV = "VIMAX_BENCH_PROFILE"


async def emit_paced(count: int, rate: float, emit: Callable[[int], None]) -> dict[str, Any]:
    """Call ``emit(i)`` for ``i`` in ``range(count)``: ``rate`` a second on the loop's
    clock, or as fast as possible (``rate <= 0``) in chunks of ``CHUNK`` a loop turn.

    Returns when the last one was emitted, with the wall-clock times of the first and
    the last emit and how far behind the schedule the pacing fell at worst.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    first = time.time()
    worst_lag = 0.0
    for i in range(count):
        if rate > 0:
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            worst_lag = max(worst_lag, loop.time() - due)
        elif i and i % CHUNK == 0:
            await asyncio.sleep(0)
        if i == 0:
            first = time.time()
        emit(i)
    last = time.time()
    return {"emitted": count, "first_emit": first, "last_emit": last, "worst_lag": worst_lag}


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


def progress_message(
    room: str, workflow_id: str, seq: int, timestamp: str, emitted_at: float, i: int
) -> dict[str, Any]:
    """The shape of the events both servers send (the full path's stored frame)."""
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
        "message": "fan-out benchmark",
        "details": {"emitted_at": emitted_at, "i": i},
    }
