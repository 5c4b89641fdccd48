"""Shared by the processes of ``fanout.py``: the benchmark event, pacing, process
figures, an optional cProfile.

Imported by the benchmark's Jupyter server extension (``fanout_producer``), the bare
Tornado server (``fanout_bare``), the peers (``fanout_wsbroadcast``, ``fanout_socketio``),
their control interface (``fanout_control``) and the subscribers (``fanout_clients``),
which all run with ``benchmarks/`` on their path; it imports nothing from ``vimax_nb``.
"""

from __future__ import annotations

import asyncio
import cProfile
import functools
import gc
import inspect
import os
import random
import time
from collections.abc import Awaitable, Callable
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


async def emit_paced(
    count: int, rate: float, emit: Callable[[int], Awaitable[None] | None]
) -> dict[str, Any]:
    """Call ``emit(i)`` for ``i`` in ``range(count)``: ``rate`` a second on the loop's
    clock, or as fast as possible (``rate <= 0``) in chunks of ``CHUNK`` a loop turn.
    An ``emit`` that returns an awaitable (python-socketio's ``emit``) is awaited before
    the next one, as its users do.

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
        outcome = emit(i)
        if outcome is not None and inspect.isawaitable(outcome):
            await outcome
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


_WORDS = (
    "render",
    "shot",
    "scene",
    "frame",
    "waiting",
    "provider",
    "upload",
    "image",
    "video",
    "queue",
    "retry",
    "encode",
    "model",
    "prompt",
    "camera",
    "light",
    "take",
    "cut",
    "dialogue",
    "storyboard",
    "character",
    "style",
    "seed",
    "step",
    "done",
    "of",
    "the",
    "for",
    "with",
    "at",
    "12",
    "24",
    "640x360",
    "1280x720",
    "ok",
    "slow",
)
FILLER_VARIANTS = 256


@functools.lru_cache(maxsize=8)
def _fillers(size: int) -> tuple[str, ...]:
    texts = []
    for variant in range(FILLER_VARIANTS):
        chooser = random.Random(variant)
        words: list[str] = []
        length = 0
        while length < size:
            word = chooser.choice(_WORDS)
            words.append(word)
            length += len(word) + 1
        texts.append(" ".join(words)[:size])
    return tuple(texts)


def filler(i: int, size: int) -> str:
    """``size`` characters of words from a small vocabulary (about as compressible as a
    log line), one of ``FILLER_VARIANTS`` texts chosen by ``i``, so that successive
    events differ; all the variants of a size are made at its first use."""
    return _fillers(size)[i % FILLER_VARIANTS]


def progress_message(
    room: str,
    workflow_id: str,
    seq: int,
    timestamp: str,
    emitted_at: float,
    i: int,
    pad: int = 0,
) -> dict[str, Any]:
    """The shape of the events every server sends: the full path's stored frame of a
    progress event whose message carries its emit time, and whose details name it
    (with ``pad`` characters of ``filler`` as their ``activity`` when ``pad`` > 0)."""
    details: dict[str, Any] = {"event": "task_completed", "task": f"bench/{i}"}
    if pad > 0:
        details["activity"] = filler(i, pad)
    details["stages"] = []
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
        "details": details,
    }


def emit_time_of(message: object) -> float | None:
    """The emit time in a benchmark event's ``message``; None for any other text."""
    if not isinstance(message, str) or not message.startswith(EMITTED_AT):
        return None
    try:
        return float(message[len(EMITTED_AT) :])
    except ValueError:
        return None


#: The room the bare server and the peers fan out (a valid workflow room name, so that
#: ``vimax_nb.client.ClientConnection`` accepts it).
PEER_ROOM = "workflow:bare"
PEER_WORKFLOW_ID = "bare"
#: The log epoch the bare server and the peers announce (they have no log).
PEER_EPOCH = "bench"


def peer_event(seq: int, i: int, pad: int = 0) -> dict[str, Any]:
    """Event ``seq`` (the ``i``-th of its burst) of the bare server and the peers: the
    full path's frame shape (``pad``: see ``progress_message``), emitted now."""
    now = time.time()
    millis = int(now * 1000) % 1000
    timestamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}Z"
    return progress_message(PEER_ROOM, PEER_WORKFLOW_ID, seq, timestamp, now, i, pad)


def peer_welcome(client_id: str) -> dict[str, Any]:
    """The ``welcome`` of the bare server and the peers: valid for the vimax client (no
    heartbeat of ours: WebSocket pings are the server library's own business)."""
    return {
        "type": "welcome",
        "client_id": client_id,
        "epoch": PEER_EPOCH,
        "protocol": 1,
        "heartbeat_interval": 0,
    }


def peer_subscribed(request: dict[str, Any], top: int) -> dict[str, Any]:
    """The answer of the bare server and the peers to ``subscribe`` ``request``: live
    events follow ``top``. They keep no log, so nothing is replayed: a request for
    events they no longer have (``after`` below ``top``) is answered ``recovered: false``."""
    after = request.get("after")
    answer: dict[str, Any] = {
        "type": "subscribed",
        "room": request.get("room"),
        "recovered": not isinstance(after, int) or after >= top,
        "top": top,
    }
    if request.get("id") is not None:
        answer["id"] = request["id"]
    return answer
