"""``WorkflowProgress``: a live ipywidgets panel for one :class:`~vimax_nb.client.Run`.

In the manner of dask.distributed's progress widgets, the panel holds no workflow state:
everything it shows is read from the run when it draws, and redraws are coalesced to at
most ~10 a second, always ending on the run's exact final state (see :mod:`._redraw`).

The log is the run's ``history`` (the last events it received, from the start) when the
run keeps one; otherwise the panel notes each update itself from the moment it is made.
Lines are formatted when drawn, and only while the log is open, so a flood of events
costs the kernel next to nothing.

All text that comes from users or the server (idea, messages, stage and artifact names,
errors) is escaped before it goes into an HTML widget.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import ipywidgets as widgets
from tornado.ioloop import IOLoop

from . import theme
from ._previews import Previews
from ._redraw import MIN_INTERVAL, LiveView
from ._runlog import RunLog
from .theme import esc as _e

__all__ = ["LOG_SIZE", "MIN_INTERVAL", "RunView", "WorkflowProgress"]

LOG_SIZE = 200  # events kept in the log
_TERMINAL = frozenset({"completed", "failed", "canceled"})
_OFFLINE = frozenset({"offline", "closed"})
_BAR_STYLES = {
    "completed": "success",
    "failed": "danger",
    "running": "info",
    "paused": "warning",
    "interrupted": "warning",
}
_STOPPED = frozenset({"paused", "interrupted", "canceled", "failed"})  # unfinished stages halt


class RunView(Protocol):
    """What the panel reads from a run (:class:`~vimax_nb.client.Run` has all of it).

    A run may also let the panel detach (``on_change`` returning a remover, or
    ``remove_change_callback(callback)``) and keep ``history``, the last events it
    received, which the log then shows.
    """

    id: str
    kind: str
    params: dict[str, Any]
    state: str
    progress: float
    stage: str | None
    message: str
    stages: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    events: int

    def on_change(self, callback: Callable[[Any], None]) -> object: ...

    def pause(self) -> str: ...

    def resume(self) -> str: ...

    def cancel(self) -> str: ...


class WorkflowProgress(LiveView):
    """A live progress panel for ``run``; display it in a notebook (``.box`` is the VBox).

    ``interval`` is the least time between redraws (seconds); ``loop`` an optional
    Tornado IOLoop to draw on (by default a timer thread draws); ``log_size`` the number
    of events the log keeps when the run keeps no history of its own.
    """

    def __init__(
        self,
        run: RunView,
        *,
        interval: float = MIN_INTERVAL,
        loop: IOLoop | None = None,
        log_size: int = LOG_SIZE,
    ) -> None:
        super().__init__(interval=interval, loop=loop)
        self.run = run
        self._log = RunLog(run, log_size)
        self._busy: str | None = None
        self._notice = ""
        self._eta_origin: tuple[float, float] | None = None
        self._connection: Any = _connection_of(run)
        self._remove: Callable[[], object] | None = None
        self._remove_state: Callable[[], object] | None = None

        self.title = widgets.HTML()
        self.badge = widgets.HTML()
        self.connection_indicator = widgets.HTML()
        self.bar = widgets.FloatProgress(min=0.0, max=1.0, value=0.0)
        self.percent = widgets.HTML()
        self.stages_html = widgets.HTML()
        self.message = widgets.HTML()
        self.notice = widgets.HTML()
        self.pause_button = widgets.Button(description="Pause", icon="pause")
        self.resume_button = widgets.Button(description="Resume", icon="play")
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", button_style="danger"
        )
        self.log_html = widgets.HTML()
        self.log = widgets.Accordion(children=[self.log_html], selected_index=None)
        self.previews = Previews()
        self.frames = self.previews.frames
        self.video_box = self.previews.video_box
        self.links = self.previews.links
        self.pause_button.on_click(lambda _b: self._act("pause"))
        self.resume_button.on_click(lambda _b: self._act("resume"))
        self.cancel_button.on_click(lambda _b: self._act("cancel"))
        self.log.observe(lambda _change: self._request_draw(), names="selected_index")
        self.box = widgets.VBox(
            [
                widgets.HBox([self.title, self.badge, self.connection_indicator]),
                widgets.HBox([self.bar, self.percent]),
                self.stages_html,
                self.message,
                widgets.HBox([self.pause_button, self.resume_button, self.cancel_button]),
                self.notice,
                self.frames,
                self.video_box,
                self.links,
                self.log,
            ]
        )
        self.box.add_class("vimax-progress")

        remove = run.on_change(self._on_change)
        self._remove = remove if callable(remove) else None
        if self._connection is not None and hasattr(self._connection, "on_state"):
            remove_state = self._connection.on_state(_state_callback(self))
            self._remove_state = remove_state if callable(remove_state) else None
        self.flush()

    def __repr__(self) -> str:
        text = repr(self.run)
        match = re.fullmatch(r"\w+\((.*)\)", text, re.DOTALL)
        return f"WorkflowProgress({match.group(1) if match else text})"

    def _on_change(self, run: Any) -> None:
        self._log.note(run)
        self._request_draw()

    def _detach(self) -> None:
        remove_state, self._remove_state = self._remove_state, None
        if remove_state is not None:
            remove_state()
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()
            return
        remove_callback = getattr(self.run, "remove_change_callback", None)
        if callable(remove_callback):
            remove_callback(self._on_change)

    def close(self) -> None:
        """Stop listening, stop redrawing and close every widget, previews included."""
        super().close()
        with self._draw_lock:
            self.previews.close()

    @property
    def log_lines(self) -> list[str]:
        """The log's lines, oldest first (the last events, at most ``log_size``)."""
        return self._log.lines()

    # -- drawing (one thread at a time) ------------------------------------------------

    def _draw(self) -> None:
        run = self.run
        state = str(run.state)
        progress = min(1.0, max(0.0, float(run.progress or 0.0)))
        conn_state = _connection_state(self._connection)
        offline = conn_state in _OFFLINE and state not in _TERMINAL
        shown = "offline" if offline else state

        subject = run.params.get("idea") or run.params.get("script") or ""
        subject = " ".join(str(subject).split())
        if len(subject) > 80:
            subject = subject[:77] + "..."
        self.title.value = (
            f"<b>{_e(run.kind)}</b> {_e(subject)} <small style='color:{theme.GREY}'>"
            f"{_e(run.id)}</small>"
        )
        style = theme.BADGE_STYLE.format(color=theme.color_of_state(shown))
        self.badge.value = f"<span class='vimax-badge' style='{style}'>{_e(shown)}</span>"
        if conn_state is None:
            self.connection_indicator.value = ""
        else:
            color = theme.color_of_connection(conn_state)
            self.connection_indicator.value = (
                f"<span style='color:{color};white-space:nowrap' title='connection'>"
                f"&#9679; {_e(conn_state)}</span>"
            )

        self.bar.value = progress
        self.bar.bar_style = _BAR_STYLES.get(state, "")
        self.bar.style.bar_color = None if state in _BAR_STYLES else theme.GREY
        eta = self._eta(state, progress)
        self.percent.value = f"{progress:.0%}" + (f" &middot; ETA {eta}" if eta else "")
        self.stages_html.value = self._stages(run, state)
        self.message.value = f"<i>{_e(run.message)}</i>" if run.message else ""

        with self._lock:
            busy, notice = self._busy, self._notice
        self.pause_button.disabled = busy is not None or state != "running"
        self.resume_button.disabled = busy is not None or state not in ("paused", "interrupted")
        self.cancel_button.disabled = busy is not None or state in _TERMINAL
        self.notice.value = f"<span style='color:{theme.RED}'>{_e(notice)}</span>" if notice else ""

        if self.log.selected_index == 0:  # open: its lines; closed: only the count
            lines = self.log_lines
            count = len(lines)
            self.log_html.value = (
                f"<pre style='{theme.LOG_STYLE}'>" + "\n".join(_e(x) for x in lines) + "</pre>"
            )
        else:
            count = len(self._log.entries())
        self.log.set_title(0, f"Log ({count} events)")
        self.previews.update(run, state)

    def _eta(self, state: str, progress: float) -> str:
        if state != "running":
            self._eta_origin = None
            return ""
        now = time.monotonic()
        if self._eta_origin is None or progress < self._eta_origin[1]:
            self._eta_origin = (now, progress)
            return ""
        start, first = self._eta_origin
        if progress <= first or now <= start:
            return ""
        remaining = (1.0 - progress) * (now - start) / (progress - first)
        return _duration(remaining)

    @staticmethod
    def _stages(run: Any, state: str) -> str:
        rows = []
        for stage in run.stages or ():
            if not isinstance(stage, dict):
                continue
            name = str(stage.get("name", ""))
            done = int(stage.get("done") or 0)
            total = int(stage.get("total") or 0)
            if (total and done >= total) or (state == "completed"):
                status = "done"
            elif name == run.stage or done:
                status = state if state in _STOPPED else "running"
            else:
                status = "pending"
            icon, color = theme.STAGE_ICONS[status]
            count = f" {done}/{total}" if total else ""
            rows.append(
                f"<div><span style='color:{color}'>{icon}</span> {_e(name)}{_e(count)} "
                f"<small style='color:{theme.GREY}'>{status}</small></div>"
            )
        return f"<div class='vimax-stages' style='line-height:1.4'>{''.join(rows)}</div>"

    # -- buttons -----------------------------------------------------------------------

    def _act(self, action: str) -> None:
        """Call ``run.<action>()`` on a thread: a button click never blocks the kernel."""
        with self._lock:
            if self._busy is not None:
                return
            self._busy = action
            self._notice = ""
        self._request_draw()
        thread = threading.Thread(
            target=self._act_thread, args=(action,), name=f"vimax-{action}", daemon=True
        )
        thread.start()

    def _act_thread(self, action: str) -> None:
        notice = ""
        try:
            getattr(self.run, action)()
        except Exception as exc:  # shown in the panel, never raised into the kernel
            notice = f"{action} failed: {exc}"
        with self._lock:
            self._busy = None
            self._notice = notice
        self._request_draw()


def _state_callback(view: WorkflowProgress) -> Callable[[str], None]:
    """A connection-state callback that does not keep ``view`` alive (a connection without
    removers then still lets a closed panel go)."""
    ref = weakref.ref(view)

    def on_state(_state: str) -> None:
        target = ref()
        if target is not None:
            target._request_draw()

    return on_state


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _connection_of(run: Any) -> Any:
    client = getattr(run, "client", None)
    if client is None:
        return None
    try:
        return client.connection
    except Exception:  # a closed client: no indicator
        return None


def _connection_state(connection: Any) -> str | None:
    if connection is None:
        return None
    state = getattr(connection, "state", None)
    return str(state) if state is not None else None
