"""A WorkflowProgress lets go of what it made: preview widgets, its callbacks."""

from __future__ import annotations

import gc
import io
import weakref
from pathlib import Path

import ipywidgets as widgets
from ipywidgets.widgets.widget import _instances
from PIL import Image

from vimax_nb.widgets import WorkflowProgress

from .fakes import Backend


def _previews() -> set[int]:
    """The ids of the Image and Video widgets registered with the kernel."""
    return {
        id(w) for w in list(_instances.values()) if isinstance(w, widgets.Image | widgets.Video)
    }


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


def test_redraws_reuse_preview_widgets_and_close_frees_them(
    backend: Backend, tmp_path: Path
) -> None:
    before = _previews()
    frames = _frames(tmp_path / "wf-1", 20)
    (tmp_path / "wf-1" / "final_video.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    run = backend.run()
    widget = WorkflowProgress(run)
    for i, path in enumerate(frames):  # 20 frames, and a state change after each
        backend.artifact(run, "image", path)
        widget.flush()
        backend.send(run, state="paused" if i % 2 else "running")
        widget.flush()
        assert len(_previews() - before) <= 4
    shown = list(widget.frames.children)
    assert len(shown) == 4
    backend.send(run, message="unrelated")  # nothing new to preview: reused
    widget.flush()
    assert list(widget.frames.children) == shown

    backend.artifact(run, "video", "final_video.mp4")
    backend.send(run, state="completed", progress=1.0)
    widget.flush()
    assert len(widget.video_box.children) == 1
    assert len(_previews() - before) == 5  # 4 frames and the video
    widget.close()
    assert _previews() - before == set()


def test_a_closed_panel_is_let_go_by_the_run_and_the_connection(backend: Backend) -> None:
    run = backend.run()
    widget = WorkflowProgress(run)
    ref = weakref.ref(widget)
    widget.close()
    del widget
    gc.collect()
    assert ref() is None  # no callback of the run or the connection keeps it
    backend.send(run, progress=0.5)  # the run goes on without it
    assert run.progress == 0.5
