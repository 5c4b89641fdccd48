"""What a run and the agents look like, computed once for every front end (the widgets
and the terminal).

Nothing here draws: the panels and the terminal only render what these functions and
:class:`RunClock` return. This module imports the protocol, :mod:`vimax_nb.shared` and
the standard library only, so a front end may use it without ipywidgets or rich.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple

from ..protocol import (
    AgentRecord,
    AgentState,
    ArtifactEvent,
    ErrorEvent,
    ProgressEvent,
    StageProgress,
    WorkflowRecord,
    WorkflowState,
)
from ..shared import parse_timestamp

__all__ = [
    "AGENT_FILTERS",
    "ETA_MIN_PROGRESS",
    "ETA_MIN_SECONDS",
    "DurationStyle",
    "RunClock",
    "StageRow",
    "StageStatus",
    "agent_counts",
    "elapsed_seconds",
    "format_duration",
    "log_line",
    "stage_rows",
    "subject_of",
    "summary",
    "time_of_day",
    "title_of",
]

StageStatus = Literal["done", "running", "paused", "failed", "canceled", "interrupted", "pending"]
"""What a stage is doing, as :class:`StageRow` says it."""
# A run in one of these states halts its started, unfinished stages in that state.
_HALTED: dict[WorkflowState, StageStatus] = {
    WorkflowState.paused: "paused",
    WorkflowState.failed: "failed",
    WorkflowState.canceled: "canceled",
    WorkflowState.interrupted: "interrupted",
}

AGENT_FILTERS: tuple[str, ...] = ("all", *(s.value for s in AgentState))
"""The keys of :func:`agent_counts`: ``all``, then every agent state in protocol order."""

ETA_MIN_PROGRESS = 0.02
"""Progress (a fraction) a run must make while watched before it gets an estimate."""
ETA_MIN_SECONDS = 1.0
"""Seconds a run must be watched running before it gets an estimate."""

DurationStyle = Literal["clock", "words", "fine"]


# -- a run --------------------------------------------------------------------------------


def subject_of(params: Mapping[str, Any], width: int = 40) -> str:
    """The idea or the script's first words, on one line, at most ``width`` characters
    (cut at a word where it can be, then ``...``); ``""`` when there is neither."""
    subject = params.get("idea") or params.get("script") or ""
    text = " ".join(str(subject).split())
    if len(text) <= width:
        return text
    cut = text[: width - 3]
    if " " in cut and text[width - 3] != " ":
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "..."


def title_of(kind: str, params: Mapping[str, Any], width: int = 40) -> str:
    """``idea2video 'A fox who learns to fly'``: the kind and the quoted subject (at most
    ``width`` characters, see :func:`subject_of`); the kind alone without a subject."""
    subject = subject_of(params, width)
    return f"{kind} {subject!r}" if subject else kind


class StageRow(NamedTuple):
    """One stage as a front end lists it: its name, status and task counts.

    ``status`` is ``done`` (all its tasks succeeded, or the run completed), ``pending``
    (not started) or, for a stage that started (it is the current one or has done
    tasks), ``running``, or the state that halted the run: ``paused``, ``failed``,
    ``canceled`` or ``interrupted``. ``total`` is 0 while the stage's tasks are unknown.
    """

    name: str
    status: StageStatus
    done: int
    total: int

    @property
    def tally(self) -> str:
        """``"3/8"``, or ``""`` while the total is unknown."""
        return f"{self.done}/{self.total}" if self.total else ""


def stage_rows(
    stages: Iterable[StageProgress], state: WorkflowState, current: str | None
) -> list[StageRow]:
    """A :class:`StageRow` per stage, in order, of a run in ``state`` whose current stage
    is ``current``."""
    rows = []
    for stage in stages:
        status: StageStatus
        if state == WorkflowState.completed or (stage.total and stage.done >= stage.total):
            status = "done"
        elif stage.name == current or stage.done:
            status = _HALTED.get(state, "running")
        else:
            status = "pending"
        rows.append(StageRow(stage.name, status, stage.done, stage.total))
    return rows


def elapsed_seconds(
    record: WorkflowRecord, *, done: bool, now: float | None = None
) -> float | None:
    """Seconds the workflow has run by its record: from ``started_at`` to ``finished_at``
    once it is ``done`` (to ``now``, epoch seconds, before that or when the record has no
    end); None when the record says it has not started. Never negative."""
    start = parse_timestamp(record.started_at)
    if start is None:
        return None
    end = parse_timestamp(record.finished_at) if done else None
    if end is None:
        end = time.time() if now is None else now
    return max(0.0, end - start)


class RunClock:
    """The times one front end shows of one run: how long it has run and how long it
    has left. Each panel keeps its own (the estimate depends on what it has watched).

    The estimate is linear from an origin, the first moment the clock saw the run
    running: ``(1 - progress) * seconds since the origin / progress made since``. There
    is none until the run has made :data:`ETA_MIN_PROGRESS` and been watched
    :data:`ETA_MIN_SECONDS`; the origin starts again when progress goes backwards, and
    is dropped whenever the run is not running (a paused run resumes with a new one).
    ``clock`` gives monotonic seconds (:func:`time.monotonic` by default).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._began = clock()
        self._origin: tuple[float, float] | None = None  # (when, progress)

    def elapsed(self, record: WorkflowRecord, *, done: bool) -> float:
        """Seconds the run has run: by its record once it has started (see
        :func:`elapsed_seconds`), else since this clock was made."""
        seconds = elapsed_seconds(record, done=done)
        return seconds if seconds is not None else max(0.0, self._clock() - self._began)

    def remaining(self, state: WorkflowState, progress: float) -> float | None:
        """Seconds the run has left, estimated from this reading and the earlier ones;
        None when there is no estimate (yet)."""
        if state != WorkflowState.running:
            self._origin = None
            return None
        now = self._clock()
        if self._origin is None or progress < self._origin[1]:
            self._origin = (now, progress)
            return None
        since, first = self._origin
        made = progress - first
        if made < ETA_MIN_PROGRESS or now - since < ETA_MIN_SECONDS:
            return None
        return max(0.0, (1.0 - progress) * (now - since) / made)


def format_duration(seconds: float, style: DurationStyle = "words") -> str:
    """``seconds`` for a person, rounded to the second (negative counts as 0) unless
    ``fine``.

    ``clock``: ``0:07``, ``12:05``, ``1:02:03``. ``words``: ``7s``, ``12m 05s``,
    ``1h 02m``. ``fine`` (for short task times): ``150 ms``, ``1.5 s``, then as
    ``words`` from a minute on.
    """
    seconds = max(0.0, seconds)
    if style == "fine" and seconds < 60:
        return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if style == "clock":
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def time_of_day(timestamp: str | None) -> str | None:
    """The local time of day (``HH:MM:SS``) of an ISO 8601 timestamp; the text itself
    when it is not one; None when there is none (None or ``""``)."""
    if not timestamp:
        return None
    seconds = parse_timestamp(timestamp)
    if seconds is None:
        return timestamp
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def log_line(event: ProgressEvent | ArtifactEvent | ErrorEvent | Any) -> str:
    """One line of a run's log for an event of its room, led by the event's local time
    of day (now, for an event without a timestamp):

    ``12:00:01 running 40% [frames] frame 3 of 8``, ``12:00:02 artifact image shot.png``,
    ``12:00:03 error task_failed: boom``; another event gives its time and type.
    """
    clock = time_of_day(getattr(event, "timestamp", None)) or time.strftime("%H:%M:%S")
    if isinstance(event, ProgressEvent):
        stage = f" [{event.stage}]" if event.stage else ""
        return f"{clock} {event.state} {event.progress:.0%}{stage} {event.message}".rstrip()
    if isinstance(event, ArtifactEvent):
        return f"{clock} artifact {event.kind} {event.name}"
    if isinstance(event, ErrorEvent):
        return f"{clock} error {event.code}: {event.message}"
    return f"{clock} {getattr(event, 'type', type(event).__name__)}"


# -- the agents ---------------------------------------------------------------------------


def agent_counts(agents: Iterable[AgentRecord]) -> dict[str, int]:
    """How many agents there are (``all``) and how many in each state, every key of
    :data:`AGENT_FILTERS` present (0 when none)."""
    counts = dict.fromkeys(AGENT_FILTERS, 0)
    for agent in agents:
        counts["all"] += 1
        counts[agent.status.value] += 1
    return counts


def summary(agents: Iterable[AgentRecord]) -> str:
    """``"8 agents: 6 idle, 2 busy"``, states in protocol order, those with none left
    out; ``"0 agents"`` for none."""
    counts = agent_counts(agents)
    total = counts.pop("all")
    parts = [f"{n} {state}" for state, n in counts.items() if n]
    head = f"{total} agent{'s' if total != 1 else ''}"
    return f"{head}: {', '.join(parts)}" if parts else head
