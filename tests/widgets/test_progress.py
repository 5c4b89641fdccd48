"""WorkflowProgress against a fake run driven from a background thread (no kernel, no server)."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.lib.pretty import pretty
from PIL import Image
from tornado.ioloop import IOLoop

from vimax_nb.widgets import WorkflowProgress, theme

from .fakes import IDEA, TIMEOUT, FakeClient, FakeRun, Watcher

EVIL = "<script>alert(1)</script>"


def html_values(widget: WorkflowProgress) -> Iterator[str]:
    """Every string ``value`` in the widget tree (HTML, Label, ...), and the log's titles."""
    stack: list[Any] = [widget.box]
    while stack:
        node = stack.pop()
        value = getattr(node, "value", None)
        if isinstance(value, str):
            yield value
        yield from (t for t in getattr(node, "titles", ()) or () if isinstance(t, str))
        stack.extend(getattr(node, "children", ()) or ())


def test_burst_is_coalesced_and_the_final_state_is_drawn() -> None:
    run = FakeRun()
    widget = WorkflowProgress(run)
    watcher = Watcher(widget)
    first_draws = widget.redraws
    count = 5000

    def drive() -> None:
        for i in range(count):
            run.update(progress=i / count, stage="frames", message=f"frame {i}")
        run.update(state="completed", progress=1.0, message="all done")

    start = time.monotonic()
    thread = threading.Thread(target=drive)
    thread.start()
    thread.join(TIMEOUT)
    burst = time.monotonic() - start
    assert not thread.is_alive()
    assert burst < 1.0, f"5,000 updates took {burst:.2f} s: the callback is not cheap"

    assert widget.wait_drawn(TIMEOUT)
    elapsed = watcher.times[-1] - start if watcher.times else 0.0
    redraws = widget.redraws - first_draws
    assert 1 <= redraws <= elapsed * 10 + 2, (redraws, elapsed)
    gaps = [b - a for a, b in zip(watcher.times, watcher.times[1:], strict=False)]
    assert all(gap >= widget.interval * 0.9 for gap in gaps), gaps

    assert widget.bar.value == 1.0
    assert widget.percent.value == "100%"
    assert ">completed<" in widget.badge.value
    assert theme.STATE_COLORS["completed"] in widget.badge.value
    assert "all done" in widget.message.value
    assert widget.cancel_button.disabled
    assert repr(widget) == "WorkflowProgress(idea2video 'A lighthouse keeper...' completed 100%)"


def test_last_update_after_a_redraw_is_not_lost() -> None:
    run = FakeRun()
    widget = WorkflowProgress(run, interval=0.05)
    watcher = Watcher(widget)
    for step in range(1, 6):
        run.update(progress=step / 10, message=f"step {step}")
        watcher.until(lambda s=step: f"step {s}" in widget.message.value)
        assert widget.bar.value == pytest.approx(step / 10)
    run.update(state="failed", message="boom")
    watcher.until(lambda: ">failed<" in widget.badge.value)
    assert widget.wait_drawn(TIMEOUT)
    assert "boom" in widget.message.value
    assert widget.bar.bar_style == "danger"


def test_user_text_is_escaped_everywhere(tmp_path: Path) -> None:
    run = FakeRun(EVIL, client=FakeClient(tmp_path))
    widget = WorkflowProgress(run)
    run.update(
        message=EVIL,
        stage=EVIL,
        stages=[{"name": EVIL, "done": 1, "total": 2}],
        artifacts=[
            {"kind": "image", "name": EVIL, "url": f"/vimax/api/workflows/wf-1/artifacts/{EVIL}"}
        ],
    )
    run.update(state="completed", progress=1.0)
    widget.log.selected_index = 0
    widget.flush()
    assert widget.wait_drawn(TIMEOUT)
    values = list(html_values(widget))
    assert values
    for value in values:
        assert "<script" not in value.lower(), value
    assert "&lt;script&gt;" in widget.title.value
    assert "&lt;script&gt;" in widget.message.value
    assert "&lt;script&gt;" in widget.stages_html.value
    assert "&lt;script&gt;" in widget.links.value
    assert "&lt;script&gt;" in widget.log_html.value


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
def test_buttons_are_enabled_by_state(state: str, pause: bool, resume: bool, cancel: bool) -> None:
    run = FakeRun()
    widget = WorkflowProgress(run)
    run.update(state=state)
    widget.flush()
    assert widget.pause_button.disabled is not pause
    assert widget.resume_button.disabled is not resume
    assert widget.cancel_button.disabled is not cancel
    assert theme.color_of_state(state) in widget.badge.value


def test_click_calls_the_run_off_the_calling_thread() -> None:
    run = FakeRun()
    widget = WorkflowProgress(run)
    watcher = Watcher(widget)
    run.release.clear()  # pause() blocks until released: click must return before that
    widget.pause_button.click()
    assert run.called.wait(TIMEOUT)
    ((action, ident),) = run.calls
    assert action == "pause"
    assert ident != threading.get_ident()
    watcher.until(lambda: widget.cancel_button.disabled)  # all disabled while in flight
    assert widget.pause_button.disabled
    assert widget.resume_button.disabled
    run.release.set()
    watcher.until(lambda: not widget.resume_button.disabled)
    assert ">paused<" in widget.badge.value
    assert widget.pause_button.disabled
    assert widget.notice.value == ""


def test_a_failing_action_is_shown_not_raised() -> None:
    run = FakeRun()
    widget = WorkflowProgress(run)
    watcher = Watcher(widget)
    run.fail = RuntimeError("409: cannot cancel <b>now</b>")
    widget.cancel_button.click()
    watcher.until(lambda: "cancel failed" in widget.notice.value)
    assert "&lt;b&gt;now&lt;/b&gt;" in widget.notice.value
    assert "<b>" not in widget.notice.value
    assert not widget.cancel_button.disabled  # usable again
    assert run.calls[0][1] != threading.get_ident()


def test_repr_is_stable_text() -> None:
    run = FakeRun()
    run.state, run.progress = "running", 0.42
    widget = WorkflowProgress(run)
    expected = "WorkflowProgress(idea2video 'A lighthouse keeper...' running 42%)"
    assert repr(widget) == expected
    assert pretty(widget) == expected
    bundle = widget._repr_mimebundle_()
    assert bundle["text/plain"] == expected
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_log_keeps_the_last_200_events() -> None:
    run = FakeRun()
    widget = WorkflowProgress(run)
    for i in range(250):
        run.update(message=f"msg-{i:03d}-end")
    widget.flush()
    assert widget.log_html.value == ""  # closed: only the count is sent
    assert widget.log.get_title(0) == "Log (200 events)"
    widget.log.selected_index = 0  # opened: the lines are drawn
    widget.flush()
    lines = widget.log_lines
    assert len(lines) == 200
    assert lines[0].endswith("msg-050-end")
    assert lines[-1].endswith("msg-249-end")
    assert "msg-049-end" not in widget.log_html.value
    assert "msg-050-end" in widget.log_html.value
    assert widget.log.get_title(0) == "Log (200 events)"


def test_stage_rows_show_status_and_counts() -> None:
    run = FakeRun()
    widget = WorkflowProgress(run)
    run.update(
        stage="frames",
        stages=[
            {"name": "story", "done": 1, "total": 1},
            {"name": "frames", "done": 3, "total": 8},
            {"name": "video", "done": 0, "total": 0},
        ],
    )
    widget.flush()
    rows = widget.stages_html.value.split("</div>")
    assert "story 1/1" in rows[0]
    assert ">done<" in rows[0]
    assert "frames 3/8" in rows[1]
    assert ">running<" in rows[1]
    assert "video" in rows[2]
    assert ">pending<" in rows[2]


@pytest.mark.parametrize(
    ("state", "shown", "bar_color"),
    [("paused", "paused", None), ("canceled", "canceled", "#757575"), ("failed", "failed", None)],
)
def test_a_stopped_run_shows_its_unfinished_stages_stopped_not_running(
    state: str, shown: str, bar_color: str | None
) -> None:
    run = FakeRun()
    widget = WorkflowProgress(run)
    run.update(
        state=state,
        stage="frames",
        stages=[
            {"name": "story", "done": 1, "total": 1},
            {"name": "frames", "done": 3, "total": 8},
            {"name": "clips", "done": 0, "total": 8},
        ],
    )
    widget.flush()
    rows = widget.stages_html.value.split("</div>")
    assert ">done<" in rows[0]
    assert f">{shown}<" in rows[1]
    assert ">pending<" in rows[2]
    assert "running" not in widget.stages_html.value
    assert widget.bar.style.bar_color == bar_color


def _png(path: Path, color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def test_previews_show_local_frames_and_the_final_video(tmp_path: Path) -> None:
    red = _png(tmp_path / "shots/0/first_frame.png", "red")
    blue = _png(tmp_path / "shots/1/first_frame.png", "blue")
    (tmp_path / "final_video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    run = FakeRun(client=FakeClient(tmp_path))
    widget = WorkflowProgress(run)

    def artifact(kind: str, path: str) -> dict[str, Any]:
        return {"kind": kind, "name": path, "url": f"/vimax/api/workflows/wf-1/artifacts/{path}"}

    run.update(artifacts=[artifact("image", "shots/0/first_frame.png")])
    widget.flush()
    assert [f.value for f in widget.frames.children] == [red]
    run.update(
        artifacts=[
            *run.artifacts,
            artifact("image", "shots/1/first_frame.png"),
            artifact("image", "shots/2/first_frame.png"),  # not on disk: a link
            artifact("video", "final_video.mp4"),
        ]
    )
    widget.flush()
    assert [f.value for f in widget.frames.children] == [red, blue]
    assert "http://server/vimax/api/workflows/wf-1/artifacts/shots/2/first_frame.png" in (
        widget.links.value
    )
    assert widget.video_box.children == ()  # only once completed
    run.update(state="completed", progress=1.0)
    widget.flush()
    (video,) = widget.video_box.children
    assert video.value == (tmp_path / "final_video.mp4").read_bytes()


def test_remote_video_is_a_link() -> None:
    run = FakeRun(client=FakeClient(None))
    widget = WorkflowProgress(run)
    run.update(
        state="completed",
        progress=1.0,
        artifacts=[
            {
                "kind": "video",
                "name": "final_video.mp4",
                "url": "/vimax/api/workflows/wf-1/artifacts/final_video.mp4",
            }
        ],
    )
    widget.flush()
    assert widget.video_box.children == ()
    assert "href='http://server/vimax/api/workflows/wf-1/artifacts/final_video.mp4'" in (
        widget.links.value
    )


def test_connection_indicator_and_offline_badge() -> None:
    client = FakeClient()
    run = FakeRun(client=client)
    widget = WorkflowProgress(run)
    watcher = Watcher(widget)
    assert "open" in widget.connection_indicator.value
    client.connection.set("offline")
    watcher.until(lambda: ">offline<" in widget.badge.value)
    assert theme.STATE_COLORS["offline"] in widget.badge.value
    client.connection.set("open")
    watcher.until(lambda: ">running<" in widget.badge.value)


def test_redraws_can_run_on_an_ioloop() -> None:
    started = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        holder["loop"], holder["thread"] = loop, threading.get_ident()
        loop.add_callback(started.set)
        loop.start()
        loop.close(all_fds=True)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    assert started.wait(TIMEOUT)
    loop = holder["loop"]
    try:
        run = FakeRun()
        widget = WorkflowProgress(run, loop=loop)
        threads: list[int] = []
        widget.on_redraw = lambda _w: threads.append(threading.get_ident())
        for i in range(1000):
            run.update(progress=i / 1000)
        run.update(state="completed", progress=1.0)
        assert widget.wait_drawn(TIMEOUT)
        assert widget.bar.value == 1.0
        assert ">completed<" in widget.badge.value
        assert threads
        assert set(threads) == {holder["thread"]}
    finally:
        loop.add_callback(loop.stop)
        server.join(TIMEOUT)


def test_ipython_shows_a_run_as_its_progress_widget() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from vimax_nb.client import Run
    from vimax_nb.widgets import show_runs_as_widgets

    shell = InteractiveShell.instance()
    assert show_runs_as_widgets(shell)
    formatter = shell.display_formatter.mimebundle_formatter
    assert formatter.lookup_by_type(Run) is not None
    run = FakeRun()
    shown = formatter.lookup_by_type(Run)(run)
    assert "application/vnd.jupyter.widget-view+json" in shown
    assert shown["text/plain"].startswith("WorkflowProgress(")


def test_the_log_starts_from_the_runs_history_when_it_keeps_one() -> None:
    run = FakeRun(history=True)
    for i in range(3):  # events the run received before the panel was made
        run.receive(
            {
                "type": "progress",
                "state": "running",
                "progress": i / 10,
                "stage": "story",
                "message": f"early-{i}",
                "timestamp": f"2030-01-01T00:00:0{i}+00:00",
            }
        )
    run.receive({"type": "artifact", "kind": "text", "name": "story.json"})
    widget = WorkflowProgress(run)
    lines = widget.log_lines
    assert [line.split(" ", 1)[1] for line in lines] == [
        "running 0% [story] early-0",
        "running 10% [story] early-1",
        "running 20% [story] early-2",
        "artifact text story.json",
    ]
    for i in range(300):  # more than the history keeps
        run.receive({"type": "progress", "state": "running", "progress": 0.5, "message": f"m{i}"})
    run.receive({"type": "error", "code": "boom", "message": "<b>bad</b>"})
    widget.log.selected_index = 0
    widget.flush()
    lines = widget.log_lines
    assert len(lines) == 200
    assert lines[0].endswith(" m101")  # 305 events, the last 200 kept
    assert lines[-1].endswith("error boom: <b>bad</b>")
    assert "&lt;b&gt;bad&lt;/b&gt;" in widget.log_html.value
    assert "<b>bad" not in widget.log_html.value
    assert widget.log.get_title(0) == "Log (200 events)"


def test_close_detaches_from_the_run_and_stops_drawing() -> None:
    run = FakeRun(history=True)
    widget = WorkflowProgress(run)
    assert len(run._callbacks) == 1
    widget.close()
    assert run._callbacks == []
    assert widget.closed
    drawn = widget.redraws
    run.update(progress=0.9)
    widget.flush()
    assert widget.wait_drawn(TIMEOUT)
    assert widget.redraws == drawn


def test_close_without_a_remover_still_stops_drawing() -> None:
    run = FakeRun()  # an older Run: on_change returns None
    widget = WorkflowProgress(run)
    widget.close()
    drawn = widget.redraws
    run.update(progress=0.9, message="after close")
    assert widget.wait_drawn(TIMEOUT)
    assert widget.redraws == drawn
    assert "after close" not in widget.message.value


def test_close_uses_remove_change_callback_when_the_run_has_it() -> None:
    class NewerRun(FakeRun):
        def remove_change_callback(self, callback: Any) -> bool:
            self._callbacks.remove(callback)
            return True

    run = NewerRun()
    widget = WorkflowProgress(run)
    assert len(run._callbacks) == 1
    widget.close()
    assert run._callbacks == []


def test_a_real_run_seen_late_shows_its_log_from_the_start() -> None:
    from vimax_nb.client import Run
    from vimax_nb.protocol import WorkflowRecord

    record = WorkflowRecord.model_validate(
        {
            "id": "wf-9",
            "kind": "idea2video",
            "params": {"idea": IDEA},
            "state": "running",
            "progress": 0.0,
            "created_at": "2030-01-01T00:00:00Z",
            "updated_at": "2030-01-01T00:00:00Z",
        }
    )
    run = Run(FakeClient(), record)  # type: ignore[arg-type]
    if not hasattr(run, "history"):
        pytest.skip("this Run keeps no history yet")
    for seq in range(1, 4):
        run._on_event(
            {"type": "progress", "seq": seq, "state": "running", "progress": seq / 10,
             "message": f"before-{seq}", "timestamp": "2030-01-01T00:00:00+00:00"}
        )  # fmt: skip
    widget = WorkflowProgress(run)
    run._on_event({"type": "progress", "seq": 4, "state": "completed", "progress": 1.0})
    widget.flush()
    assert [line.split(" ", 1)[1] for line in widget.log_lines] == [
        "running 10% before-1",
        "running 20% before-2",
        "running 30% before-3",
        "completed 100%",
    ]
    assert ">completed<" in widget.badge.value
    widget.close()
    drawn = widget.redraws
    run._on_event({"type": "progress", "seq": 5, "state": "completed", "progress": 1.0})
    assert widget.redraws == drawn
