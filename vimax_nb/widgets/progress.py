"""``WorkflowProgress``: a live ipywidgets panel for one :class:`~vimax_nb.client.Run`.

In the manner of dask.distributed's progress widgets, the panel holds no workflow state:
everything it shows is read from the run when it draws, through the client's view model
(:mod:`vimax_nb.client.view`: stage rows, time left, titles, log lines), and redraws
are coalesced to at most ~10 a second, always ending on the run's exact final state
(see :mod:`._redraw`).

The log is the run's ``history`` (the last events it received, from the start). Its
lines are formatted when drawn, only while the log is open, and each event once, so a
flood of events costs the kernel next to nothing.

Under the bar, the run's spend (:func:`~vimax_nb.client.view.spend_line`, once anything
was spent or the run has a ``max_cost``); under the stages, what each running task waits
on (:func:`~vimax_nb.client.view.activity_lines`).

All text that comes from users or the server (idea, messages, stage and artifact names,
activities, errors) is escaped before it goes into an HTML widget.

Its text fallback (``text/plain``, what a saved notebook shows without the widget state)
is its ``repr``, read from the run. Shown by IPython, the panel is an output with a
display id, published again each time the run's state changes (queued, running, paused,
completed, ...), so the saved text ends on the run's final state, not on the "running 0%"
of the moment it was first shown.
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as widgets
from tornado.ioloop import IOLoop

from ..client import Run
from ..client.view import (
    RunClock,
    activity_lines,
    connection_state,
    format_duration,
    log_line,
    run_status,
    shows_spend,
    spend_line,
    stage_rows,
    subject_of,
)
from ..protocol import TERMINAL_STATES, Event, WorkflowState
from . import theme
from ._previews import Previews
from ._redraw import MIN_INTERVAL, PanelView
from .theme import esc as _e

__all__ = ["WorkflowProgress"]

TITLE_WIDTH = 80  # characters of the idea or script in the title
_BAR_STYLES = {
    WorkflowState.completed: "success",
    WorkflowState.failed: "danger",
    WorkflowState.running: "info",
    WorkflowState.paused: "warning",
    WorkflowState.interrupted: "warning",
}
_RESUMABLE = frozenset({WorkflowState.paused, WorkflowState.interrupted})


class WorkflowProgress(PanelView):
    """A live progress panel for ``run``; display it in a notebook (``.box`` is the VBox).

    ``interval`` is the least time between redraws (seconds); ``loop`` an optional
    Tornado IOLoop to draw on (by default a timer thread draws). :meth:`close` detaches
    the panel from the run and its connection.
    """

    def __init__(
        self, run: Run, *, interval: float = MIN_INTERVAL, loop: IOLoop | None = None
    ) -> None:
        super().__init__(interval=interval, loop=loop)
        self.run = run
        self._clock = RunClock()
        self._busy: str | None = None
        self._notice = ""
        self._lines: dict[int, tuple[Event, str]] = {}  # id(event) -> (event, its line)
        self._display_ids: list[str] = []  # the outputs IPython shows it in
        self._shown_state: WorkflowState | None = None  # the state their text says
        self._actions: dict[str, Callable[[], object]] = {
            "pause": run.pause,
            "resume": run.resume,
            "cancel": run.cancel,
        }
        self.title = widgets.HTML()
        self.badge = widgets.HTML()
        self.connection_indicator = widgets.HTML()
        self.bar = widgets.FloatProgress(min=0.0, max=1.0, value=0.0)
        self.percent = widgets.HTML()
        self.spend = widgets.HTML()
        self.stages_html = widgets.HTML()
        self.activity = widgets.HTML()
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
                self.spend,
                self.stages_html,
                self.activity,
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

        self._listen(run.on_change(self._changed))
        with contextlib.suppress(ConnectionError):  # a closed client: its state stays closed
            self._listen(run.client.connection.on_state(self._changed))
        self.flush()

    def __repr__(self) -> str:
        text = repr(self.run)
        match = re.fullmatch(r"\w+\((.*)\)", text, re.DOTALL)
        return f"WorkflowProgress({match.group(1) if match else text})"

    def _ipython_display_(self) -> None:
        """Show the panel in IPython as an output with a display id, which
        :meth:`_draw` publishes again when the run's state changes (with its new text
        fallback)."""
        from IPython.display import display

        display_id = uuid.uuid4().hex
        with self._lock:
            self._display_ids.append(display_id)
            self._shown_state = self.run.state
        display(self._repr_mimebundle_(), raw=True, display_id=display_id)  # type: ignore[no-untyped-call]

    def _update_displays(self, state: WorkflowState) -> None:
        """Publish the outputs showing the panel again if the run's state changed since."""
        with self._lock:
            if not self._display_ids or state == self._shown_state:
                return
            self._shown_state = state
            display_ids = list(self._display_ids)
        from IPython.display import update_display

        bundle: dict[str, Any] = self._repr_mimebundle_()
        for display_id in display_ids:
            update_display(bundle, raw=True, display_id=display_id)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stop listening, stop redrawing and close every widget, previews included."""
        super().close()
        with self._draw_lock:
            self.previews.close()

    @property
    def log_lines(self) -> list[str]:
        """The log's lines, oldest first: the run's history (its last events), each
        formatted by :func:`~vimax_nb.client.view.log_line`."""
        cache, fresh = self._lines, {}
        lines = []
        for event in _copy(self.run.history):
            cached = cache.get(id(event))
            line = cached[1] if cached is not None and cached[0] is event else log_line(event)
            fresh[id(event)] = (event, line)
            lines.append(line)
        self._lines = fresh
        return lines

    # -- drawing (one thread at a time) ------------------------------------------------

    def _draw(self) -> None:
        run = self.run
        state = run.state
        progress = run.progress
        connection = connection_state(run.client)
        shown = run_status(state, connection)

        self.title.value = (
            f"<b>{_e(run.kind)}</b> {_e(subject_of(run.params, TITLE_WIDTH))} "
            f"<small style='color:{theme.GREY}'>{_e(run.id)}</small>"
        )
        style = theme.BADGE_STYLE.format(color=theme.color_of_status(shown))
        self.badge.value = f"<span class='vimax-badge' style='{style}'>{_e(shown)}</span>"
        color = theme.color_of_connection(connection)
        self.connection_indicator.value = (
            f"<span style='color:{color};white-space:nowrap' title='connection'>"
            f"&#9679; {_e(connection)}</span>"
        )

        self.bar.value = progress
        self.bar.bar_style = _BAR_STYLES.get(state, "")
        self.bar.style.bar_color = None if state in _BAR_STYLES else theme.GREY
        left = self._clock.remaining(state, progress)
        eta = "" if left is None else f" &middot; ETA {format_duration(left)}"
        self.percent.value = f"{progress:.0%}{eta}"
        cost = run.cost
        self.spend.value = (
            f"<small class='vimax-spend' style='color:{theme.GREY}'>{_e(spend_line(cost))}</small>"
            if shows_spend(cost)
            else ""
        )
        self.stages_html.value = self._stages(run)
        self.activity.value = "".join(
            f"<div class='vimax-activity' style='color:{theme.GREY}'>"
            f"&#8987; <small>{_e(line)}</small></div>"
            for line in activity_lines(run.activities)
        )
        self.message.value = f"<i>{_e(run.message)}</i>" if run.message else ""

        with self._lock:
            busy, notice = self._busy, self._notice
        self.pause_button.disabled = busy is not None or state != WorkflowState.running
        self.resume_button.disabled = busy is not None or state not in _RESUMABLE
        self.cancel_button.disabled = busy is not None or state in TERMINAL_STATES
        self.notice.value = f"<span style='color:{theme.RED}'>{_e(notice)}</span>" if notice else ""

        if self.log.selected_index == 0:  # open: its lines; closed: only the count
            lines = self.log_lines
            count = len(lines)
            self.log_html.value = (
                f"<pre style='{theme.LOG_STYLE}'>" + "\n".join(_e(x) for x in lines) + "</pre>"
            )
        else:
            count = len(run.history)
        self.log.set_title(0, f"Log ({count} events)")
        self.previews.update(run, state)
        self._update_displays(state)

    @staticmethod
    def _stages(run: Run) -> str:
        rows = []
        for row in stage_rows(list(run.stages), run.state, run.stage):
            icon, color = theme.STAGE_ICONS[row.status]
            tally = f" {row.tally}" if row.tally else ""
            rows.append(
                f"<div><span style='color:{color}'>{icon}</span> {_e(row.name)}{_e(tally)} "
                f"<small style='color:{theme.GREY}'>{row.status}</small></div>"
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
            self._actions[action]()
        except Exception as exc:  # shown in the panel, never raised into the kernel
            notice = f"{action} failed: {exc}"
        with self._lock:
            self._busy = None
            self._notice = notice
        self._request_draw()


def _copy(events: Iterable[Event]) -> list[Event]:
    """A copy of a deque the connection's thread may be appending to."""
    for _ in range(100):
        try:
            return list(events)
        except RuntimeError:  # "deque mutated during iteration": try again
            continue
    return []
