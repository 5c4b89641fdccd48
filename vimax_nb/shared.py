"""What every layer shares, server and client alike: cancellation, timestamps, sizes
and whole-file writes.

This module imports nothing of the project, so anything may import it.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path

__all__ = [
    "CancelToken",
    "TaskCanceled",
    "format_bytes",
    "format_timestamp",
    "parse_timestamp",
    "write_atomically",
]


class TaskCanceled(Exception):
    """Raised inside a task when its cancel token is set."""


class CancelToken:
    """Tells a running task it should stop; safe to check from any thread.

    A task is stopped for good by :meth:`cancel`, or :meth:`interrupt` ed because the
    server is stopping: then work it started elsewhere (a remote job) should be left
    running, to be picked up when the workflow is resumed.
    """

    __slots__ = ("_event", "_interrupted")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._interrupted = False

    def cancel(self) -> None:
        """Ask the task to stop."""
        self._event.set()

    def interrupt(self) -> None:
        """Ask the task to stop because the server is stopping."""
        self._interrupted = True
        self._event.set()

    @property
    def interrupted(self) -> bool:
        """Whether the task was stopped by :meth:`interrupt` (and not canceled first)."""
        return self._interrupted

    @property
    def cancelled(self) -> bool:
        """Whether the task was asked to stop."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCanceled` if the task was asked to stop."""
        if self._event.is_set():
            raise TaskCanceled("the task was canceled")


def format_timestamp(seconds: float) -> str:
    """``seconds`` since the epoch as ISO 8601 UTC with milliseconds (``...T12:00:00.250Z``).

    Milliseconds are truncated, after rounding to the microsecond so that a float
    such as ``1.001`` (really ``1.000999...``) still reads ``.001``.
    """
    whole, millis = divmod(round(seconds * 1_000_000) // 1000, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def parse_timestamp(text: str | None) -> float | None:
    """Seconds since the epoch of an ISO 8601 timestamp; None for None, ``""`` or a text
    that is not one. A timestamp without a zone is taken as local time."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def format_bytes(count: int) -> str:
    """``count`` bytes for a person, in powers of 1000: ``512 B``, ``3.4 MB``,
    ``51.2 GB``."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def write_atomically(target: Path, data: bytes) -> Path:
    """Write ``data`` at ``target`` (making its folder) whole or not at all: a reader
    sees the old file or the new one, never part of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target
