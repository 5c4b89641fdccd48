"""WorkflowProgress showing a real Run of the fake server: what a user sees (title, badge,
bar, stage rows, buttons, log, previews) after the events a workflow's room carries."""

from __future__ import annotations

import asyncio
import io
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.lib.pretty import pretty
from PIL import Image
from tornado.ioloop import IOLoop

from vimax_nb.client import ConnectionState, Run
from vimax_nb.client.view import OFFLINE
from vimax_nb.protocol import CostSummary, WorkflowState
from vimax_nb.widgets import WorkflowProgress, theme

from ..client.helpers import wait_run
from .fakes import IDEA, TIMEOUT, Backend, Watcher, change_times, html_values

SCRIPT = "<script>alert(1)</script>"


def test_a_burst_is_coalesced_and_the_final_state_is_drawn(backend: Backend) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    times = change_times(widget.message)  # every event has its own message
    first_draws = widget.redraws
    count = 5000
    start = time.monotonic()
    for i in range(count):
        backend.publish(run, progress=i / count, stage="frames", message=f"frame {i}")
    seq = backend.publish(run, state="completed", progress=1.0, message="all done")
    wait_run(run, lambda r: r.events >= seq, TIMEOUT)

    assert widget.wait_drawn(TIMEOUT)
    elapsed = times[-1] - start
    redraws = widget.redraws - first_draws
    assert 1 <= redraws <= elapsed / widget.interval + 2, (redraws, elapsed)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= widget.interval * 0.9 for gap in gaps), gaps

    assert widget.bar.value == 1.0
    assert widget.percent.value == "100%"
    assert ">completed<" in widget.badge.value
    assert theme.STATE_COLORS[WorkflowState.completed] in widget.badge.value
    assert "all done" in widget.message.value
    assert widget.cancel_button.disabled
    assert repr(widget) == "WorkflowProgress(idea2video 'A lighthouse keeper...' completed 100%)"


def test_the_last_update_after_a_redraw_is_not_lost(backend: Backend) -> None:
    run = backend.run()
    widget = WorkflowProgress(run, interval=0.05)
    watcher = Watcher(widget)
    for step in range(1, 6):
        backend.publish(run, progress=step / 10, message=f"step {step}")
        watcher.until(lambda s=step: f"step {s}" in widget.message.value)
        assert widget.bar.value == pytest.approx(step / 10)
    backend.publish(run, state="failed", progress=0.5, message="boom")
    watcher.until(lambda: ">failed<" in widget.badge.value)
    assert widget.wait_drawn(TIMEOUT)
    assert "boom" in widget.message.value
    assert widget.bar.bar_style == "danger"


def test_user_text_is_escaped_everywhere(backend: Backend) -> None:
    run = backend.run(idea=SCRIPT)
    widget = WorkflowProgress(run)
    backend.artifact(run, "image", SCRIPT)
    backend.send(run, type="error", target_type="workflow", code=SCRIPT, message=SCRIPT)
    backend.stages(run, SCRIPT, (SCRIPT, 1, 2), message=SCRIPT, state="failed")
    widget.log.selected_index = 0
    widget.flush()
    assert widget.wait_drawn(TIMEOUT)
    values = list(html_values(widget.box))
    assert values
    for value in values:
        assert "<script" not in value.lower(), value
    escaped = "&lt;script&gt;"
    for shown in (widget.title, widget.message, widget.stages_html, widget.links):
        assert escaped in shown.value
    assert escaped in widget.log_html.value


@pytest.mark.parametrize(
    ("state", "pause", "resume", "cancel"),
    [
        ("pending", False, False, True),
        ("running", True, False, True),
        ("paused", False, True, True),
        ("interrupted", False, True, True),
        ("completed", False, False, False),
        ("failed", False, False, False),
        ("canceled", False, False, False),
    ],
)
def test_the_buttons_are_enabled_by_state(
    backend: Backend, state: str, pause: bool, resume: bool, cancel: bool
) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    backend.send(run, state=state)
    widget.flush()
    assert widget.pause_button.disabled is not pause
    assert widget.resume_button.disabled is not resume
    assert widget.cancel_button.disabled is not cancel
    assert f">{state}<" in widget.badge.value
    assert theme.color_of_status(WorkflowState(state)) in widget.badge.value


def test_a_click_is_sent_off_the_calling_thread_and_its_outcome_shown(backend: Backend) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    watcher = Watcher(widget)
    backend.server.hold_controls = True  # unanswered: the click must return before
    widget.pause_button.click()
    watcher.until(lambda: widget.cancel_button.disabled)  # all disabled while in flight
    assert widget.pause_button.disabled
    assert widget.resume_button.disabled
    assert ">running<" in widget.badge.value
    backend.server.release_controls()
    watcher.until(lambda: not widget.resume_button.disabled)
    assert ">paused<" in widget.badge.value
    assert widget.pause_button.disabled
    assert widget.notice.value == ""

    widget.resume_button.click()
    watcher.until(lambda: not widget.pause_button.disabled)
    assert ">running<" in widget.badge.value


def test_a_refused_action_is_shown_not_raised(backend: Backend) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    watcher = Watcher(widget)
    backend.server.refusal = "cannot cancel <b>now</b>"
    widget.cancel_button.click()
    watcher.until(lambda: "cancel failed" in widget.notice.value)
    assert "cancel failed: 409: cannot cancel &lt;b&gt;now&lt;/b&gt;" in widget.notice.value
    assert not widget.cancel_button.disabled  # usable again
    assert ">running<" in widget.badge.value


def test_repr_is_stable_text(backend: Backend) -> None:
    run = backend.run()
    backend.send(run, progress=0.42)
    widget = WorkflowProgress(run)
    expected = "WorkflowProgress(idea2video 'A lighthouse keeper...' running 42%)"
    assert repr(widget) == expected
    assert pretty(widget) == expected
    bundle = widget._repr_mimebundle_()
    assert bundle["text/plain"] == expected
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_the_title_shows_the_kind_the_subject_and_the_id(backend: Backend) -> None:
    run = backend.run("wf-7", idea="A fox   who\nlearns to fly " + "and sings " * 10)
    widget = WorkflowProgress(run)
    assert widget.title.value == (
        "<b>idea2video</b> A fox who learns to fly and sings and sings and sings and sings "
        f"and sings and... <small style='color:{theme.GREY}'>wf-7</small>"
    )


def test_the_log_is_the_runs_history_from_the_start(backend: Backend) -> None:
    run = backend.run()
    for i in range(3):  # events the run received before the panel was made
        backend.send(
            run,
            progress=i / 10,
            stage="story",
            message=f"early-{i}",
            timestamp=f"2030-01-01T00:00:0{i}+00:00",
        )
    backend.artifact(run, "text", "story.json")
    widget = WorkflowProgress(run)
    assert [line.split(" ", 1)[1] for line in widget.log_lines] == [
        "running 0% [story] early-0",
        "running 10% [story] early-1",
        "running 20% [story] early-2",
        "artifact text story.json",
    ]
    for i in range(300):  # more than the history keeps
        backend.publish(run, progress=0.5, message=f"m{i}")
    backend.send(run, type="error", target_type="workflow", code="boom", message="<b>bad</b>")
    widget.flush()
    assert widget.log_html.value == ""  # closed: only the count is sent
    assert widget.log.get_title(0) == "Log (200 events)"
    widget.log.selected_index = 0  # opened: the lines are drawn
    widget.flush()
    lines = widget.log_lines
    assert len(lines) == 200
    assert lines[0].endswith(" m101")  # 305 events, the last 200 kept
    assert lines[-1].endswith("error boom: <b>bad</b>")
    assert "m100" not in widget.log_html.value
    assert "&lt;b&gt;bad&lt;/b&gt;" in widget.log_html.value
    assert "<b>bad" not in widget.log_html.value
    assert widget.log.get_title(0) == "Log (200 events)"


def test_stage_rows_show_status_and_counts(backend: Backend) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    backend.stages(run, "frames", ("story", 1, 1), ("frames", 3, 8), ("video", 0, 0))
    widget.flush()
    rows = widget.stages_html.value.split("</div>")
    assert "story 1/1" in rows[0]
    assert ">done<" in rows[0]
    assert "frames 3/8" in rows[1]
    assert ">running<" in rows[1]
    assert "video <small" in rows[2]
    assert ">pending<" in rows[2]


@pytest.mark.parametrize(
    ("state", "bar_color"), [("paused", None), ("canceled", theme.GREY), ("failed", None)]
)
def test_a_stopped_run_shows_its_unfinished_stages_stopped_not_running(
    backend: Backend, state: str, bar_color: str | None
) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    stages = (("story", 1, 1), ("frames", 3, 8), ("clips", 0, 8))
    backend.stages(run, "frames", *stages, state=state)
    widget.flush()
    rows = widget.stages_html.value.split("</div>")
    assert ">done<" in rows[0]
    assert f">{state}<" in rows[1]
    assert ">pending<" in rows[2]
    assert "running" not in widget.stages_html.value
    assert widget.bar.style.bar_color == bar_color


def _png(path: Path, color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def test_previews_show_local_frames_and_the_final_video(backend: Backend, tmp_path: Path) -> None:
    folder = tmp_path / "wf-1"
    red = _png(folder / "shots/0/first_frame.png", "red")
    blue = _png(folder / "shots/1/first_frame.png", "blue")
    (folder / "final_video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    run = backend.run()
    widget = WorkflowProgress(run)
    backend.artifact(run, "image", "shots/0/first_frame.png")
    widget.flush()
    assert [f.value for f in widget.frames.children] == [red]
    backend.artifact(run, "image", "shots/1/first_frame.png")
    backend.artifact(run, "image", "shots/2/first_frame.png")  # not on disk: a link
    backend.artifact(run, "video", "final_video.mp4")
    widget.flush()
    assert [f.value for f in widget.frames.children] == [red, blue]
    link = f"{backend.client.url}vimax/api/workflows/wf-1/artifacts/shots/2/first_frame.png"
    assert f"href='{link}'" in widget.links.value
    assert widget.video_box.children == ()  # only once completed
    backend.send(run, state="completed", progress=1.0)
    widget.flush()
    (video,) = widget.video_box.children
    assert video.value == (folder / "final_video.mp4").read_bytes()


def test_a_video_not_on_this_machine_is_a_link(backend: Backend) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    backend.artifact(run, "video", "final_video.mp4")
    backend.send(run, state="completed", progress=1.0)
    widget.flush()
    assert widget.video_box.children == ()
    link = f"{backend.client.url}vimax/api/workflows/wf-1/artifacts/final_video.mp4"
    assert f"href='{link}'" in widget.links.value


def test_the_connection_indicator_and_the_offline_badge(backend: Backend) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    watcher = Watcher(widget)
    watcher.until(lambda: "&#9679; open" in widget.connection_indicator.value)
    backend.server.stop_listening()
    watcher.until(lambda: f">{OFFLINE}<" in widget.badge.value)
    assert theme.OFFLINE_COLOR in widget.badge.value
    assert "&#9679; offline" in widget.connection_indicator.value
    backend.server.start()  # the client reconnects
    watcher.until(lambda: "&#9679; open" in widget.connection_indicator.value)
    assert ">running<" in widget.badge.value


def test_redraws_can_run_on_an_ioloop(backend: Backend) -> None:
    """With ``loop=``, what the user sees changes on that loop's thread."""
    started = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        holder["loop"], holder["thread"] = loop, threading.get_ident()
        loop.add_callback(started.set)
        loop.start()
        loop.close(all_fds=True)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(TIMEOUT)
    loop = holder["loop"]
    try:
        run = backend.run()
        widget = WorkflowProgress(run, loop=loop)
        threads: list[int] = []  # the threads that changed the bar (what the user sees)
        widget.bar.observe(lambda _change: threads.append(threading.get_ident()), names="value")
        for i in range(1000):
            backend.publish(run, progress=i / 1000)
        backend.send(run, state="completed", progress=1.0)
        assert widget.wait_drawn(TIMEOUT)
        assert widget.bar.value == 1.0
        assert ">completed<" in widget.badge.value
        assert threads
        assert set(threads) == {holder["thread"]}
    finally:
        loop.add_callback(loop.stop)
        thread.join(TIMEOUT)


def test_ipython_shows_a_run_as_its_progress_widget(backend: Backend) -> None:
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    from vimax_nb.display import show_runs_as_widgets

    shell = InteractiveShell.instance()
    shell.display_pub = CapturingDisplayPublisher()
    try:
        assert show_runs_as_widgets(shell)
        run = backend.run()
        shown, _ = shell.display_formatter.format(run)
        assert shown == {}  # shown through the panel's own display, with an id
        (output,) = shell.display_pub.outputs
        assert "application/vnd.jupyter.widget-view+json" in output["data"]
        assert output["data"]["text/plain"] == (
            "WorkflowProgress(idea2video 'A lighthouse keeper...' running 0%)"
        )
        assert output["transient"]["display_id"]
    finally:
        InteractiveShell.clear_instance()


def test_close_detaches_from_the_run_and_stops_drawing(backend: Backend) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    widget.close()
    assert widget.closed
    drawn = widget.redraws
    backend.send(run, progress=0.9, message="after close")
    widget.flush()
    assert widget.wait_drawn(TIMEOUT)
    assert widget.redraws == drawn
    assert "after close" not in widget.message.value


def test_a_run_of_a_closed_client_shows_its_connection_closed(backend: Backend) -> None:
    run: Run = backend.run()
    ended: Run = backend.run("wf-2")
    backend.send(run, progress=0.5)
    backend.send(ended, state="completed", progress=1.0)
    before = WorkflowProgress(run)  # made while the client was open
    backend.client.close()
    Watcher(before).until(lambda: "&#9679; closed" in before.connection_indicator.value)
    widget = WorkflowProgress(run)
    assert widget.badge.value == before.badge.value
    assert "&#9679; closed" in widget.connection_indicator.value
    assert theme.color_of_connection(ConnectionState.closed) in widget.connection_indicator.value
    assert f">{OFFLINE}<" in widget.badge.value  # no more updates: what it shows may be old
    assert widget.percent.value == "50%"
    assert IDEA in widget.title.value
    done = WorkflowProgress(ended)
    assert "&#9679; closed" in done.connection_indicator.value
    assert ">completed<" in done.badge.value  # an ended run is shown as it ended


def test_the_spend_and_what_tasks_wait_on_appear_and_clear(backend: Backend) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    watcher = Watcher(widget)
    assert widget.spend.value == ""  # nothing spent, no max: no line
    assert widget.activity.value == ""

    clip = {"event": "task_activity", "task": "scene/0/shot/2/clip"}
    backend.send(run, details={**clip, "activity": f"waiting on veo-3 {SCRIPT} (42 s)"})
    backend.send(run, details={**clip, "task": "portrait/0", "activity": "waiting on gpt-image-1"})
    watcher.until(lambda: "portrait 1" in widget.activity.value)
    assert "shot 3 clip: waiting on veo-3 &lt;script&gt;alert(1)&lt;/script&gt; (42 s)" in (
        widget.activity.value
    )
    assert "<script>" not in widget.activity.value
    assert widget.activity.value.index("portrait 1") < widget.activity.value.index("shot 3")

    backend.send(run, details={**clip, "activity": "", "cost": 0.42})  # a paid call's end
    watcher.until(lambda: "$0.42 spent" in widget.spend.value)
    assert "shot 3 clip" not in widget.activity.value
    assert "portrait 1: waiting on gpt-image-1" in widget.activity.value

    backend.send(run, details={"event": "task_completed", "task": "portrait/0"})
    watcher.until(lambda: widget.activity.value == "")
    assert "$0.42 spent" in widget.spend.value


def test_the_spend_line_shows_the_max_and_the_final_calls(backend: Backend) -> None:
    run = backend.run(params={"idea": IDEA, "max_cost": 5.0})
    widget = WorkflowProgress(run)
    watcher = Watcher(widget)
    assert "$0.00 spent of $5.00 max" in widget.spend.value  # a max: shown from the start
    backend.send(
        run, details={"event": "task_activity", "task": "story", "activity": "waiting on x"}
    )
    watcher.until(lambda: "story: waiting on x" in widget.activity.value)
    final = CostSummary(total=1.23, calls=14, cached_calls=3, max_cost=5.0)
    backend.server.workflows[run.id] = backend.server.workflows[run.id].model_copy(
        update={"cost": final}
    )
    backend.send(run, state="completed", progress=1.0)  # the end: the final record is read
    watcher.until(lambda: "14 calls" in widget.spend.value)
    assert "$1.23 spent of $5.00 max · 14 calls (3 cached)" in widget.spend.value
    assert widget.activity.value == ""  # the run ended: nothing waits any more
    assert repr(widget) == "WorkflowProgress(idea2video 'A lighthouse keeper...' completed 100%)"
