"""Shared by the processes of ``idle_connections.py`` (the benchmark, its client processes,
the probe extension in the vimax server and the bare Tornado server): the open-file
limit, settled memory, and what tracemalloc finds. Imports nothing from ``vimax_nb`` or Jupyter."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import resource
import tracemalloc
from typing import Any

import psutil


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def malloc_trim() -> bool:
    """Ask glibc to give freed heap memory back to the system; False without glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


def settled_memory() -> dict[str, int]:
    """Resident bytes after a full collection, and after ``malloc_trim`` too."""
    gc.collect()
    process = psutil.Process()
    rss = process.memory_info().rss
    malloc_trim()
    return {
        "rss": rss,
        "rss_trimmed": process.memory_info().rss,
        "gc_objects": len(gc.get_objects()),
    }


class _Tracing:
    baseline: tracemalloc.Snapshot | None = None


def start_tracing() -> None:
    """Collect, then trace every allocation from now on (one frame each)."""
    gc.collect()
    tracemalloc.start(1)
    _Tracing.baseline = tracemalloc.take_snapshot()


def stop_tracing(top: int) -> dict[str, Any]:
    """Collect, stop tracing, and answer how much more is allocated than at the start:
    ``total`` bytes, and the ``top`` source lines and files that grew most (``where``,
    ``size`` in bytes, ``count`` of blocks)."""
    baseline, _Tracing.baseline = _Tracing.baseline, None
    if baseline is None:
        raise RuntimeError("tracing was not started")
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    by_line = snapshot.compare_to(baseline, "lineno")
    by_file = snapshot.compare_to(baseline, "filename")

    def rows(stats: list[tracemalloc.StatisticDiff], lines: bool) -> list[dict[str, Any]]:
        return [
            {
                "where": stat.traceback[0].filename
                + (f":{stat.traceback[0].lineno}" if lines else ""),
                "size": stat.size_diff,
                "count": stat.count_diff,
            }
            for stat in stats[:top]
        ]

    return {
        "total": sum(stat.size_diff for stat in by_line),
        "lines": rows(by_line, lines=True),
        "files": rows(by_file, lines=False),
    }
