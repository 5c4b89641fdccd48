"""A WorkflowProgress lets go of what it made: preview widgets, the connection's callback."""

from __future__ import annotations

import gc
import io
import weakref
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from ipywidgets.widgets.widget import _instances
from PIL import Image

from vimax_nb.widgets import WorkflowProgress

from .fakes import FakeClient, FakeConnection, FakeRun


def _previews() -> set[int]:
    """The ids of the Image and Video widgets registered with the kernel."""
    return {
        id(w) for w in list(_instances.values()) if isinstance(w, widgets.Image | widgets.Video)
    }


def _artifact(kind: str, path: str) -> dict[str, Any]:
    return {"kind": kind, "name": path, "url": f"/vimax/api/workflows/wf-1/artifacts/{path}"}


def _frames(folder: Path, count: int) -> list[str]:
    paths = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4), (i * 10, 0, 0)).save(buffer, format="PNG")
        path = folder / f"shots/{i}/first_frame.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
        paths.append(f"shots/{i}/first_frame.png")
    return paths


def test_redraws_reuse_preview_widgets_and_close_frees_them(tmp_path: Path) -> None:
    before = _previews()
    frames = _frames(tmp_path, 20)
    (tmp_path / "final_video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    run = FakeRun(client=FakeClient(tmp_path))
    widget = WorkflowProgress(run)
    for i, path in enumerate(frames):  # 20 frame updates, some with a state change
        run.update(artifacts=[*run.artifacts, _artifact("image", path)])
        widget.flush()
        run.update(state="paused" if i % 2 else "running")
        widget.flush()
        assert len(_previews() - before) <= 4
    shown = list(widget.frames.children)
    assert len(shown) == 4
    run.update(state="running", message="unrelated")  # nothing new to preview: reused
    widget.flush()
    assert list(widget.frames.children) == shown

    video = _artifact("video", "final_video.mp4")
    run.update(state="completed", progress=1.0, artifacts=[*run.artifacts, video])
    widget.flush()
    assert len(widget.video_box.children) == 1
    assert len(_previews() - before) == 5  # 4 frames and the video
    widget.close()
    assert _previews() - before == set()


def test_close_removes_the_connection_state_callback() -> None:
    client = FakeClient()
    run = FakeRun(client=client)
    widget = WorkflowProgress(run)
    assert len(client.connection._handlers) == 1
    widget.close()
    assert client.connection._handlers == []


def test_an_older_connection_without_a_remover_does_not_keep_a_closed_panel() -> None:
    class OlderConnection(FakeConnection):
        def on_state(self, callback: Any) -> None:  # type: ignore[override]
            self._handlers.append(callback)

    client = FakeClient()
    client.connection = OlderConnection()
    run = FakeRun(client=client, history=True)
    widget = WorkflowProgress(run)
    ref = weakref.ref(widget)
    widget.close()
    del widget
    gc.collect()
    assert ref() is None
    client.connection.set("offline")  # the leftover callback is harmless
