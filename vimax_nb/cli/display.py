"""How a run looks in a terminal: a live rich panel (:class:`TerminalView`), or plain
lines when not a terminal (:class:`PlainLines`); the tables of ``ls``, ``agents`` and
``providers``, and the executor line above the ``agents`` table.

What is shown (stage rows, times, titles, the spend, what tasks wait on, providers)
comes from the client's view model,
:mod:`vimax_nb.client.view`; this module only renders it with rich.
"""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ..client import ConnectionState, Run
from ..client.view import (
    RunClock,
    StageStatus,
    activity_lines,
    connection_state,
    cut_off,
    dashboard_link,
    executor_parts,
    format_cost,
    format_duration,
    shows_spend,
    spend_line,
    stage_rows,
    task_label,
    title_of,
    total_spend,
    workflow_row,
)
from ..protocol import (
    AgentRecord,
    AgentState,
    Collection,
    ExecutorInfo,
    ProviderStatus,
    WorkflowRecord,
    WorkflowState,
)
from ..shared import format_bytes

__all__ = [
    "AGENT_STYLES",
    "STATE_STYLES",
    "PlainLines",
    "TerminalView",
    "agents_table",
    "collection_table",
    "executor_text",
    "format_age",
    "providers_table",
    "spend_total",
    "workflows_table",
]

LS_SUBJECT_WIDTH = 48  # characters of the idea or script in the ``ls`` subject column
STATE_STYLES = {
    WorkflowState.pending: "grey62",
    WorkflowState.running: "bold blue",
    WorkflowState.paused: "bold yellow",
    WorkflowState.completed: "bold green",
    WorkflowState.failed: "bold red",
    WorkflowState.canceled: "grey62",
    WorkflowState.interrupted: "yellow",
}
# The icon and style of a stage row by its status (a running stage's icon is a spinner).
_STAGE_LOOKS: dict[StageStatus, tuple[str, str]] = {
    "done": ("✓", "green"),
    "pending": ("·", "grey50"),
    "paused": ("‖", STATE_STYLES[WorkflowState.paused]),
    "interrupted": ("✗", STATE_STYLES[WorkflowState.interrupted]),
    "failed": ("✗", STATE_STYLES[WorkflowState.failed]),
    "canceled": ("✗", STATE_STYLES[WorkflowState.canceled]),
}


class TerminalView:
    """The rich renderable of a run, rebuilt from the run at each refresh (thread-safe
    enough: the run's attributes are replaced, never mutated in place, by its thread)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.clock = RunClock()
        self.spinner = Spinner("dots", style="blue")

    def __rich__(self) -> RenderableType:
        run = self.run
        state, progress = run.state, run.progress
        head = Text.assemble(
            ("vimax-nb ", "bold"),
            (title_of(run.kind, run.params), ""),
            ("  ", ""),
            (run.id, "grey62"),
            ("  ", ""),
            (state, STATE_STYLES[state]),
        )
        connection = connection_state(run.client)
        if cut_off(state, connection):
            again = ", reconnecting" if connection != ConnectionState.closed else ""
            head.append(f"  (connection {connection}{again})", style="yellow")
        times = format_duration(self.clock.elapsed(run.record, done=run.done), "clock")
        left = self.clock.remaining(state, progress)
        if left is not None:
            times += f"  eta {format_duration(left, 'clock')}"
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=1.0, completed=progress, width=40),
            Text(f"{progress:4.0%}", style="bold"),
            Text(times, style="grey62"),
        )
        stages = Table.grid(padding=(0, 1))
        for row in stage_rows(list(run.stages), state, run.stage):
            running = row.status == "running"
            icon: RenderableType = self.spinner if running else Text(*_STAGE_LOOKS[row.status])
            style = "grey50" if row.status == "pending" else ""
            stages.add_row(icon, Text(row.name, style=style), Text(row.tally, style=style),
                           Text(row.status, style="grey62"))  # fmt: skip
        parts: list[RenderableType] = [head, bar]
        cost = run.cost
        if shows_spend(cost):
            parts.append(Text(spend_line(cost), style="grey62"))
        parts.append(stages)
        parts.extend(Text(f"⧗ {line}", style="cyan") for line in activity_lines(run.activities))
        if run.message:
            parts.append(Text.from_markup(f"[grey62]>[/] {escape(run.message)}"))
        return Group(*parts)


class PlainLines:
    """Plain lines for logs and pipes: one when the state or the stage changes, one when
    a task starts waiting on something (``  ⧗ shot 3 clip: waiting on ...``), one when the
    spend changes (``  $0.42 spent · 3 calls``)."""

    def __init__(self, run: Run, console: Console) -> None:
        self.run = run
        self.console = console
        self._last: tuple[WorkflowState, str | None] | None = None
        self._waiting: set[str] = set()  # the tasks whose wait was told
        self._spend = ""

    def update(self) -> None:
        """Print the lines of what changed since the last call."""
        run = self.run
        self._state_line()
        activities = run.activities
        for task in [t for t in activities if t not in self._waiting]:  # in arrival order
            self._print(f"  ⧗ {task_label(task)}: {activities[task]}")
        self._waiting = set(activities)
        cost = run.cost
        spend = spend_line(cost) if shows_spend(cost) else ""
        if spend != self._spend:
            self._spend = spend
            if spend:
                self._print(f"  {spend}")

    def _print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _state_line(self) -> None:
        run = self.run
        state, stage = run.state, run.stage
        if (state, stage) == self._last:
            return
        self._last = (state, stage)
        counts = ""
        for row in stage_rows(list(run.stages), state, stage):
            if row.name == stage and row.total:
                counts = f" {row.tally}"
        bar = "#" * round(run.progress * 20)
        shown_stage = f"  {stage}{counts}" if stage and state == WorkflowState.running else ""
        redundant = not run.message or run.message.startswith(f"{stage}:")
        message = "" if redundant or run.message == state else f"  {run.message}"
        line = f"[{bar:<20}] {run.progress:4.0%}  {state}{shown_stage}{message}"
        self._print(line)


def workflows_table(records: list[WorkflowRecord], *, cost: bool = False) -> Table:
    """The ``ls`` table: one row per workflow, in the order given; with ``cost``, a
    ``spent`` column after ``progress``."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    columns = ["id", "kind", "state", "progress", "created", "subject"]
    if cost:
        columns.insert(4, "spent")
    for name in columns:
        table.add_column(
            name,
            no_wrap=name != "subject",
            overflow="fold",
            justify="right" if name == "spent" else "left",
        )
    for record in records:
        row = workflow_row(record, LS_SUBJECT_WIDTH)
        cells: list[RenderableType] = [
            row.id,
            row.kind,
            Text(row.state, style=STATE_STYLES[record.state]),
            row.progress,
            row.created,
            Text(row.subject),
        ]
        if cost:
            cells.insert(4, format_cost(record.cost.total))
        table.add_row(*cells)
    return table


def collection_table(done: Collection) -> Table:
    """The ``gc`` table: each workflow removed (or that a dry run would remove), oldest
    first, with when it ended and the size of its files."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("id", "kind", "state", "ended", "size"):
        table.add_column(name, no_wrap=True, justify="right" if name == "size" else "left")
    for item in done.workflows:
        ended = (item.finished_at or "")[:19].replace("T", " ")
        table.add_row(
            item.id,
            item.kind,
            Text(item.state.value, style=STATE_STYLES[item.state]),
            ended,
            format_bytes(item.bytes),
        )
    return table


def format_age(seconds: float) -> str:
    """An age for a person, in the largest unit that divides it: ``7 days``, ``12
    hours``, ``90 seconds``, ``1.5 days``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    if seconds >= 86400:
        return f"{seconds / 86400:g} days"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def spend_total(records: list[WorkflowRecord]) -> str:
    """``total spent: $3.45 (12 workflows)``: the line under ``ls --cost``."""
    count = len(records)
    return (
        f"total spent: {format_cost(total_spend(records))} "
        f"({count} workflow{'s' if count != 1 else ''})"
    )


def providers_table(providers: list[ProviderStatus]) -> Table:
    """The ``providers`` table: one row per provider of each role, in the order given:
    its model, ``*`` for the role's default, and ``ready`` or ``not ready: <problem>``."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("role", "provider", "model", "default", "status"):
        table.add_column(name, overflow="fold", no_wrap=name != "status")
    for status in providers:
        ready = Text("ready", style="green")
        if not status.ready:
            ready = Text(f"not ready: {status.problem or 'no reason given'}", style="bold red")
        table.add_row(
            Text(status.role),
            Text(status.provider),
            Text(status.model),
            "*" if status.default else "",
            ready,
        )
    return table


AGENT_STYLES = {
    AgentState.idle: "green",
    AgentState.busy: "bold blue",
    AgentState.error: "bold red",
    AgentState.offline: "grey62",
}


def agents_table(agents: list[AgentRecord]) -> Table:
    """The ``agents`` table: one row per agent, in the order given."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("name", "status", "capabilities", "done/failed", "avg ms"):
        table.add_column(name, overflow="fold", justify="right" if name == "avg ms" else "left")
    for agent in agents:
        metrics = agent.metrics
        table.add_row(
            Text(agent.name),
            Text(agent.status, style=AGENT_STYLES[agent.status]),
            Text(", ".join(agent.capabilities)),
            f"{metrics.tasks_completed}/{metrics.tasks_failed}",
            f"{metrics.avg_execution_ms:.0f}",
        )
    return table


def executor_text(info: ExecutorInfo) -> Text:
    """The line above the ``agents`` table: ``executor: dask · 2 workers · 4 threads ·
    dashboard http://127.0.0.1:8787/status``, the problem in bold red when there is one.
    The dashboard is a terminal link only when it is an http(s) URL (see
    :func:`~vimax_nb.client.view.dashboard_link`); any other value is plain text, and
    what the server wrote is never markup nor terminal control codes (shown as ``\\x1b``)."""
    dot = " \N{MIDDLE DOT} "
    parts = dot.join(_printable(part) for part in executor_parts(info))
    text = Text.assemble(("executor: ", "bold"), parts)
    link = dashboard_link(info)
    if link is not None:
        text.append(f"{dot}dashboard ")
        text.append(link, style=Style(color="cyan", link=link))
    elif info.dashboard:
        text.append(f"{dot}dashboard {_printable(info.dashboard)}")
    if info.problem:
        text.append(dot)
        text.append(_printable(info.problem), style="bold red")
    return text


def _printable(text: str) -> str:
    """``text`` with each character that is not printable (escape, newline...) written
    as its code: ``\\x1b``."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
