"""What a run and the agents look like, computed once for every front end (the widgets
and the terminal).

Nothing here draws: the panels and the terminal only render what these functions and
:class:`RunClock` return. This module imports the protocol, :mod:`vimax_nb.shared`,
the client's :class:`~vimax_nb.client.reconnecting.ConnectionState` and the standard
library only, so a front end may use it without ipywidgets or rich.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple
from urllib.parse import urlsplit

from ..protocol import (
    TERMINAL_STATES,
    AgentRecord,
    AgentState,
    ArtifactEvent,
    CostSummary,
    ErrorEvent,
    Event,
    ExecutorInfo,
    ProgressEvent,
    ProviderStatus,
    StageProgress,
    WorkflowRecord,
    WorkflowState,
)
from ..shared import parse_timestamp
from .reconnecting import ConnectionState

if TYPE_CHECKING:
    from .api import Client

__all__ = [
    "AGENT_FILTERS",
    "ETA_MIN_PROGRESS",
    "ETA_MIN_SECONDS",
    "OFFLINE",
    "PROVIDER_ROLES",
    "SERVER_DEFAULT",
    "DurationStyle",
    "ProviderChoices",
    "RunClock",
    "RunStatus",
    "StageRow",
    "StageStatus",
    "WorkflowRow",
    "activity_lines",
    "agent_activity",
    "agent_counts",
    "connection_state",
    "cut_off",
    "dashboard_link",
    "elapsed_seconds",
    "executor_line",
    "executor_parts",
    "format_cost",
    "format_duration",
    "log_line",
    "provider_choices",
    "provider_label",
    "provider_line",
    "run_status",
    "shows_spend",
    "spend_line",
    "stage_rows",
    "subject_of",
    "summary",
    "task_label",
    "time_of_day",
    "title_of",
    "total_spend",
    "workflow_row",
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

OFFLINE: Final = "offline"
"""The status shown instead of a run's state while it is :func:`cut_off`: not a
:class:`~vimax_nb.protocol.WorkflowState`."""
RunStatus = WorkflowState | Literal["offline"]
"""What a front end shows as a run's status: its state, or :data:`OFFLINE`."""


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
    is ``current``; a record saved before its stage finished may name a finished stage,
    and then the first unfinished one is current."""
    stages = list(stages)
    unfinished = [s.name for s in stages if not (s.total and s.done >= s.total)]
    if unfinished and current not in unfinished:
        current = unfinished[0]
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


def log_line(event: Event) -> str:
    """One line of a run's log for an event of its room (what :attr:`Run.history
    <vimax_nb.client.Run.history>` holds), led by the event's local time of day (now, for
    an event without a timestamp):

    ``12:00:01 running 40% [frames] frame 3 of 8``, ``12:00:02 artifact image shot.png``,
    ``12:00:03 error task_failed: boom``; another event gives its time and type.
    """
    clock = time_of_day(event.timestamp) or time.strftime("%H:%M:%S")
    if isinstance(event, ProgressEvent):
        stage = f" [{event.stage}]" if event.stage else ""
        return f"{clock} {event.state} {event.progress:.0%}{stage} {event.message}".rstrip()
    if isinstance(event, ArtifactEvent):
        return f"{clock} artifact {event.kind} {event.name}"
    if isinstance(event, ErrorEvent):
        return f"{clock} error {event.code}: {event.message}"
    return f"{clock} {event.type}"


# -- what a run spends and waits on ---------------------------------------------------------


def format_cost(dollars: float) -> str:
    """US dollars for a person: ``$1.23``, ``$1,234.50``; ``<$0.01`` for less than a cent
    (but more than nothing), ``$0.00`` for nothing."""
    if dollars <= 0:
        return "$0.00"
    if dollars < 0.01:
        return "<$0.01"
    return f"${dollars:,.2f}"


def shows_spend(cost: CostSummary) -> bool:
    """Whether a front end shows a run's :func:`spend_line`: something was spent or
    called, or the run has a ``max_cost``."""
    return cost.total > 0 or cost.calls > 0 or cost.max_cost is not None


def spend_line(cost: CostSummary) -> str:
    """``$1.23 spent · 14 calls (3 cached)``; with a ``max_cost``, ``$1.23 spent of $5.00
    max · ...``. The calls are left out while none is known."""
    line = f"{format_cost(cost.total)} spent"
    if cost.max_cost is not None:
        line += f" of {format_cost(cost.max_cost)} max"
    if cost.calls:
        calls = f"{cost.calls} call{'s' if cost.calls != 1 else ''}"
        if cost.cached_calls:
            calls += f" ({cost.cached_calls} cached)"
        line += f" \N{MIDDLE DOT} {calls}"
    return line


def task_label(task: str) -> str:
    """A task's id in words, numbers counted from 1: ``scene/0/shot/2/clip`` is ``shot 3
    clip`` (the first scene goes without saying), ``scene/1/shot/0/frames`` ``scene 2 shot
    1 frames``, ``scene/0/storyboard`` ``scene 1 storyboard``, ``portrait/0`` ``portrait
    1``; other ids as they are, with spaces for ``/`` and ``_``."""
    parts = task.split("/")
    words: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i].replace("_", " ")
        number = parts[i + 1] if i + 1 < len(parts) else ""
        if number.isdigit():
            first_scene_of_a_shot = (
                part == "scene" and int(number) == 0 and parts[i + 2 : i + 3] == ["shot"]
            )
            if not first_scene_of_a_shot:
                words.append(f"{part} {int(number) + 1}")
            i += 2
        else:
            words.append(part)
            i += 1
    return " ".join(w for w in words if w) or task


def _task_order(task: str) -> list[tuple[bool, int, str]]:
    return [(p.isdigit(), int(p) if p.isdigit() else 0, p) for p in task.split("/")]


def activity_lines(activities: Mapping[str, str]) -> list[str]:
    """What each running task waits on (``{task: activity}``, as :attr:`Run.activities
    <vimax_nb.client.Run.activities>` holds it), one line per task in the order of the
    graph (``shot 2 clip`` before ``shot 10 clip``): ``shot 3 clip: waiting on
    veo-3.0-generate-001 (42 s)``. Blank activities are left out."""
    return [
        f"{task_label(task)}: {activities[task].strip()}"
        for task in sorted(activities, key=_task_order)
        if activities[task].strip()
    ]


# -- the connection -----------------------------------------------------------------------


def connection_state(client: Client) -> ConnectionState:
    """The state of ``client``'s connection (its WebSocket): ``closed`` for a closed client."""
    try:
        return client.connection.state
    except ConnectionError:  # the client is closed
        return ConnectionState.closed


def cut_off(state: WorkflowState, connection: ConnectionState) -> bool:
    """Whether what a front end shows of a run in ``state`` may be out of date because its
    updates are not coming: the run has not ended and its ``connection`` is ``offline``
    (lost: it reconnects) or ``closed`` (for good). A connection being made is not."""
    return state not in TERMINAL_STATES and connection in (
        ConnectionState.offline,
        ConnectionState.closed,
    )


def run_status(state: WorkflowState, connection: ConnectionState) -> RunStatus:
    """The status to show of a run in ``state`` whose connection is ``connection``:
    :data:`OFFLINE` while it is :func:`cut_off`, else ``state``."""
    return OFFLINE if cut_off(state, connection) else state


# -- the workflows --------------------------------------------------------------------------


class WorkflowRow(NamedTuple):
    """One workflow as a table lists it: display strings, one per column."""

    id: str
    kind: str
    state: str
    progress: str
    stage: str
    created: str
    subject: str


def workflow_row(record: WorkflowRecord, subject_width: int = 40) -> WorkflowRow:
    """``record``'s :class:`WorkflowRow`: its progress as a percentage, its stage (``""``
    for none), when it was created (``2030-01-01 12:00:00``, as the record says it) and
    its subject (at most ``subject_width`` characters, see :func:`subject_of`)."""
    return WorkflowRow(
        id=record.id,
        kind=record.kind,
        state=record.state.value,
        progress=f"{record.progress:.0%}",
        stage=record.stage or "",
        created=record.created_at[:19].replace("T", " "),
        subject=subject_of(record.params, subject_width),
    )


def total_spend(records: Iterable[WorkflowRecord]) -> float:
    """What ``records`` spent together (US dollars, estimated)."""
    return sum(record.cost.total for record in records)


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


def agent_activity(agent: AgentRecord) -> str | None:
    """What the agent's running task waits on (``waiting on veo-3.0-generate-001 (42
    s)``); None when it says nothing."""
    activity = (agent.metrics.activity or "").strip()
    return activity or None


# -- where tasks run ------------------------------------------------------------------------


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def executor_parts(info: ExecutorInfo) -> list[str]:
    """Where tasks run, without the dashboard and the problem: ``["local", "4 threads"]``
    (the server's threads), ``["dask", "2 workers", "4 threads"]``; a cluster that cannot
    be reached (a ``problem`` and no workers) is ``["dask"]``. Front ends join them with
    middle dots."""
    parts = [info.kind]
    if info.kind == "local":
        parts.append(_count(info.threads, "thread"))
    elif info.workers or info.threads or not info.problem:
        parts += [_count(info.workers, "worker"), _count(info.threads, "thread")]
    return parts


def executor_line(info: ExecutorInfo) -> str:
    """:func:`executor_parts` and the problem, when there is one, joined with middle
    dots: ``dask · 2 workers · 4 threads``, ``dask · not connected to a Dask scheduler``.
    The dashboard (its address changes from one start to the next) is left out: this is
    the stable text of logs and checks."""
    problem = (info.problem or "").strip()
    return " \N{MIDDLE DOT} ".join([*executor_parts(info), *([problem] if problem else [])])


_UNSAFE_IN_LINKS = frozenset("<>\"'`\\{}|^")


def dashboard_link(info: ExecutorInfo) -> str | None:
    """The executor's dashboard as a URL a front end may link to: an ``http`` or
    ``https`` URL with a host, of printable characters and none of whitespace, quotes
    or ``<>`` (nothing that could end an attribute or start markup); None otherwise,
    and when there is no dashboard. A front end shows any other value as plain text,
    never as a link."""
    url = (info.dashboard or "").strip()
    if not url or not url.isprintable() or any(c.isspace() or c in _UNSAFE_IN_LINKS for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed address (a bad IPv6 host...)
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


# -- the providers ------------------------------------------------------------------------

PROVIDER_ROLES: tuple[str, ...] = ("chat", "image", "video")
"""The roles a workflow chooses a provider for, in the order front ends show them."""
SERVER_DEFAULT: Final = ""
"""The value of the choice "the server's default provider" (sent as None)."""


def provider_label(status: ProviderStatus) -> str:
    """``video: google veo-3.0-generate-001``: the role, the provider and its model."""
    return " ".join(part for part in (f"{status.role}:", status.provider, status.model) if part)


def provider_line(status: ProviderStatus) -> str:
    """:func:`provider_label`, and for a provider that is not ready, why:
    ``video: google veo-3.0-generate-001 · not ready: no google API key: set ...``."""
    line = provider_label(status)
    if not status.ready:
        line += f" \N{MIDDLE DOT} not ready: {status.problem or 'no reason given'}"
    return line


class ProviderChoices(NamedTuple):
    """What a picker of one role offers: ``options`` as ``(label, value)`` pairs, the
    ``value`` chosen at first, and a ``note`` to show beside it (``""`` for none).

    Only ready providers are offered, the role's default chosen. When the default is not
    ready, ``procedural`` (else the first ready one) is chosen and the note says why.
    When nothing is known of the role, the one option is the server's default
    (:data:`SERVER_DEFAULT`).
    """

    options: list[tuple[str, str]]
    value: str
    note: str


def provider_choices(providers: Iterable[ProviderStatus], role: str) -> ProviderChoices:
    """The :class:`ProviderChoices` of ``role`` among ``providers`` (what ``GET
    /vimax/api/providers`` lists)."""
    of_role = [p for p in providers if p.role == role]
    ready = [p for p in of_role if p.ready]
    if not ready:
        note = f"no {role} provider is ready" if of_role else ""
        return ProviderChoices([("server default", SERVER_DEFAULT)], SERVER_DEFAULT, note)
    options = [
        (f"{p.provider} {p.model}".strip() + (" (default)" if p.default else ""), p.provider)
        for p in ready
    ]
    default = next((p for p in of_role if p.default), None)
    if default is not None and default.ready:
        return ProviderChoices(options, default.provider, "")
    names = [p.provider for p in ready]
    value = "procedural" if "procedural" in names else names[0]
    note = ""
    if default is not None:
        note = (
            f"the default {role} provider {default.provider} is not ready: "
            f"{default.problem or 'no reason given'}"
        )
    return ProviderChoices(options, value, note)
