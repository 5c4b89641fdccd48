"""How a run looks in a terminal: a live rich panel, or plain lines when not a terminal."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..client import Run
from ..client.table import subject_of

STATE_STYLES = {
    "pending": "grey62",
    "running": "bold blue",
    "paused": "bold yellow",
    "completed": "bold green",
    "failed": "bold red",
    "canceled": "grey62",
    "interrupted": "yellow",
}


def title_of(run: Run) -> str:
    subject = subject_of(run.record, 40)
    return f"{run.kind} {subject!r}" if subject else run.kind


def stage_rows(run: Run) -> list[tuple[str, str, int, int]]:
    """``(name, status, done, total)`` per stage; status is done, running, paused,
    failed, canceled or pending."""
    rows = []
    state = run.state
    for stage in list(run.stages):
        name = str(stage.get("name", ""))
        done = int(stage.get("done") or 0)
        total = int(stage.get("total") or 0)
        if state == "completed" or (total and done >= total):
            status = "done"
        elif name == run.stage or done:
            status = (
                state if state in ("paused", "failed", "canceled", "interrupted") else "running"
            )
        else:
            status = "pending"
        rows.append((name, status, done, total))
    return rows


def elapsed_of(run: Run, began: float) -> float:
    """Seconds the workflow has run: from its record when it has started, else locally."""
    record = run.record
    start = timestamp(record.started_at)
    if start is not None:
        end = timestamp(record.finished_at) if run.done else None
        return max(0.0, (end if end is not None else time.time()) - start)
    return time.monotonic() - began


def timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def duration(seconds: float) -> str:
    seconds = round(seconds)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class LiveView:
    """The rich renderable of a run, rebuilt from the run at each refresh (thread-safe
    enough: the run's attributes are replaced, never mutated in place, by its thread)."""

    def __init__(self, run: Run, server: str) -> None:
        self.run = run
        self.server = server
        self.began = time.monotonic()
        self.spinner = Spinner("dots", style="blue")
        self._eta_origin: tuple[float, float] | None = None

    def _connection(self) -> str:
        try:
            state = self.run.client.connection.state
        except ConnectionError:
            return "closed"
        return state

    def _eta(self) -> str:
        run = self.run
        if run.state != "running":
            self._eta_origin = None
            return ""
        now = time.monotonic()
        if self._eta_origin is None or run.progress < self._eta_origin[1]:
            self._eta_origin = (now, run.progress)
            return ""
        start, first = self._eta_origin
        if run.progress <= first + 0.02 or now - start < 1.0:
            return ""
        return f"  eta {duration((1.0 - run.progress) * (now - start) / (run.progress - first))}"

    def __rich__(self) -> RenderableType:
        run = self.run
        state = run.state
        head = Text.assemble(
            ("vimax-nb ", "bold"),
            (title_of(run), ""),
            ("  ", ""),
            (run.id, "grey62"),
            ("  ", ""),
            (state, STATE_STYLES.get(state, "")),
        )
        connection = self._connection()
        if connection not in ("open", "closed") and not run.done:
            head.append(f"  (connection {connection}, reconnecting)", style="yellow")
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=1.0, completed=run.progress, width=40),
            Text(f"{run.progress:4.0%}", style="bold"),
            Text(duration(elapsed_of(run, self.began)) + self._eta(), style="grey62"),
        )
        stages = Table.grid(padding=(0, 1))
        for name, status, done, total in stage_rows(run):
            icon: RenderableType
            if status == "done":
                icon = Text("✓", style="green")
            elif status == "running":
                icon = self.spinner
            elif status == "pending":
                icon = Text("·", style="grey50")
            else:
                icon = Text("‖" if status == "paused" else "✗", style=STATE_STYLES.get(status, ""))
            count = f"{done}/{total}" if total else ""
            style = "grey50" if status == "pending" else ""
            stages.add_row(icon, Text(name, style=style), Text(count, style=style),
                           Text(status, style="grey62"))  # fmt: skip
        parts: list[RenderableType] = [head, bar, stages]
        if run.message:
            parts.append(Text.from_markup(f"[grey62]>[/] {escape(run.message)}"))
        return Group(*parts)


class PlainView:
    """Plain lines for logs and pipes: one when the state or the stage changes."""

    def __init__(self, run: Run, console: Console) -> None:
        self.run = run
        self.console = console
        self._last: tuple[str, str | None] | None = None

    def update(self) -> None:
        run = self.run
        key = (run.state, run.stage)
        if key == self._last:
            return
        self._last = key
        counts = ""
        for name, _, done, total in stage_rows(run):
            if name == run.stage and total:
                counts = f" {done}/{total}"
        bar = "#" * round(run.progress * 20)
        stage = f"  {run.stage}{counts}" if run.stage and run.state == "running" else ""
        redundant = not run.message or run.message.startswith(f"{run.stage}:")
        message = "" if redundant or run.message == run.state else f"  {run.message}"
        line = f"[{bar:<20}] {run.progress:4.0%}  {run.state}{stage}{message}"
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def workflows_table(records: list[Any]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("id", "kind", "state", "progress", "created", "subject"):
        table.add_column(name, no_wrap=name != "subject", overflow="fold")
    for r in records:
        state = r.state.value
        table.add_row(
            r.id,
            r.kind,
            Text(state, style=STATE_STYLES.get(state, "")),
            f"{r.progress:.0%}",
            r.created_at[:19].replace("T", " "),
            Text(subject_of(r, 48)),
        )
    return table


AGENT_STYLES = {"idle": "green", "busy": "bold blue", "error": "bold red", "offline": "grey62"}


def agents_table(agents: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("name", "status", "capabilities", "done/failed", "avg ms"):
        table.add_column(name, overflow="fold", justify="right" if name == "avg ms" else "left")
    for agent in agents:
        metrics = agent.get("metrics") or {}
        status = str(agent.get("status", ""))
        table.add_row(
            Text(str(agent.get("name", ""))),
            Text(status, style=AGENT_STYLES.get(status, "")),
            Text(", ".join(map(str, agent.get("capabilities") or []))),
            f"{metrics.get('tasks_completed', 0)}/{metrics.get('tasks_failed', 0)}",
            f"{float(metrics.get('avg_execution_ms') or 0):.0f}",
        )
    return table
