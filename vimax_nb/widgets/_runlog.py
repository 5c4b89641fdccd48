"""The event log a :class:`~.progress.WorkflowProgress` shows, formatted only when drawn."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import Any

__all__ = ["RunLog"]

_NOTE_FIELDS = {  # what a note holds after its kind and its time
    "artifact": ("kind", "name"),
    "error": ("code", "message"),
    "progress": ("state", "progress", "stage", "message"),
}


class RunLog:
    """The last events of a run, oldest first.

    A run that keeps ``history`` (the last events it received, from the start) is its
    own log. For a run without one, :meth:`note` keeps a compact note of each update
    from the moment the log is made (at most ``size``). Lines are formatted on demand
    and cached per entry, so a flood of events costs next to nothing here.
    """

    def __init__(self, run: Any, size: int) -> None:
        self.history: Any = getattr(run, "history", None)
        self._lock = threading.Lock()
        self._notes: deque[tuple[Any, ...]] = deque(maxlen=size)
        self._lines: dict[int, tuple[object, str]] = {}  # id(entry) -> (entry, its line)
        self._seen_artifacts = 0
        self._seen_errors = 0
        self.note(run)

    def note(self, run: Any) -> None:
        """Note an update of ``run`` (nothing to do when it keeps a history)."""
        if self.history is not None:
            return
        artifacts = getattr(run, "artifacts", None) or ()
        errors = getattr(run, "errors", None) or ()
        now = time.time()
        notes: list[tuple[Any, ...]]
        if len(artifacts) > self._seen_artifacts:
            notes = [
                ("artifact", now, a.get("kind", "?"), a.get("name", ""))
                for a in artifacts[self._seen_artifacts :]
                if isinstance(a, dict)
            ]
        elif len(errors) > self._seen_errors:
            notes = [
                ("error", now, e.get("code", ""), e.get("message", ""))
                for e in errors[self._seen_errors :]
                if isinstance(e, dict)
            ]
        else:
            notes = [("progress", now, run.state, run.progress, run.stage, run.message)]
        self._seen_artifacts = len(artifacts)
        self._seen_errors = len(errors)
        with self._lock:
            self._notes.extend(notes)

    def entries(self) -> list[Any]:
        """The entries now: event dicts (a history) or notes (tuples)."""
        if self.history is None:
            with self._lock:
                return list(self._notes)
        return _copy(self.history)

    def lines(self) -> list[str]:
        """The entries as lines of text, oldest first."""
        entries = self.entries()
        cache, fresh = self._lines, {}
        lines = []
        for entry in entries:
            cached = cache.get(id(entry))
            line = cached[1] if cached is not None and cached[0] is entry else _line(entry)
            fresh[id(entry)] = (entry, line)
            lines.append(line)
        self._lines = fresh
        return lines


def _copy(entries: Iterable[Any]) -> list[Any]:
    """A copy of a deque another thread may be appending to."""
    for _ in range(100):
        try:
            return list(entries)
        except RuntimeError:  # "deque mutated during iteration": try again
            continue
    return []


def _line(entry: Any) -> str:
    """A log line for an event dict (a run's history) or a note (a tuple)."""
    if isinstance(entry, tuple):
        kind, stamp, *rest = entry
        clock = time.strftime("%H:%M:%S", time.localtime(stamp))
        event: dict[str, Any] = dict(zip(_NOTE_FIELDS[kind], rest, strict=True))
    elif isinstance(entry, dict):
        kind, clock, event = entry.get("type"), _clock(entry.get("timestamp")), entry
    else:
        return str(entry)
    if kind == "artifact":
        return f"{clock} artifact {event.get('kind', '?')} {event.get('name', '')}"
    if kind == "error":
        return f"{clock} error {event.get('code', '')}: {event.get('message', '')}"
    if kind == "progress":
        progress = event.get("progress")
        percent = f" {progress:.0%}" if isinstance(progress, int | float) else ""
        stage = f" [{event['stage']}]" if event.get("stage") else ""
        text = f"{clock} {event.get('state', '')}{percent}{stage} {event.get('message') or ''}"
        return text.rstrip()
    return f"{clock} {kind}"


def _clock(timestamp: object) -> str:
    """The local time of day of an ISO 8601 timestamp (now when there is none)."""
    if not isinstance(timestamp, str):
        return time.strftime("%H:%M:%S")
    try:
        return datetime.fromisoformat(timestamp).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return timestamp
