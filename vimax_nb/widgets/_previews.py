"""The previews of a :class:`~vimax_nb.widgets.WorkflowProgress`: storyboard frames, the
final video, and links to what cannot be shown from here.

The Image and Video widgets are kept by file and reused from one redraw to the next; a
file that is no longer shown has its widget closed, so redraws never leave widgets
registered with the kernel behind.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..client import Run
from ..protocol import ArtifactEvent, ArtifactKind, WorkflowState
from .theme import esc as _e

__all__ = ["MAX_FRAMES", "Previews"]

MAX_FRAMES = 4  # storyboard frames previewed


class Previews:
    """``frames`` (an HBox of the last frames), ``video_box`` and ``links``; not
    thread-safe: the panel calls :meth:`update` and :meth:`close` under its draw lock."""

    def __init__(self) -> None:
        self.frames = widgets.HBox()
        self.video_box = widgets.VBox()
        self.links = widgets.HTML()
        self._images: dict[str, widgets.Image] = {}  # shown frames, by file
        self._video: tuple[str, widgets.Video] | None = None
        self._key: tuple[Any, ...] = ()

    def update(self, run: Run, state: WorkflowState) -> None:
        """Frames and the final video; widgets of files still shown are reused, the
        others closed (a redraw never leaves a widget registered behind)."""
        artifacts = list(run.artifacts)
        images = [a for a in artifacts if a.kind == ArtifactKind.image][-MAX_FRAMES:]
        videos = [a for a in artifacts if a.kind == ArtifactKind.video][-1:]
        key = (state, tuple(a.url for a in images + videos))
        if key == self._key:
            return
        self._key = key
        links: list[str] = []
        shown: dict[str, widgets.Image] = {}
        for artifact in images:
            where = _locate(run, artifact)
            if isinstance(where, Path):
                name = str(where)
                image = shown.get(name) or self._images.get(name)
                if image is None:
                    try:
                        data = where.read_bytes()
                    except OSError:
                        data = None
                    if data is not None:
                        image = widgets.Image(value=data, format="png", width=160)
                if image is not None:
                    shown[name] = image
                    continue
            links.append(_link(where, artifact))
        video: tuple[str, widgets.Video] | None = None
        if state == WorkflowState.completed:
            for artifact in videos:
                where = _locate(run, artifact)
                if isinstance(where, Path) and where.is_file():
                    name = str(where)
                    if self._video is not None and self._video[0] == name:
                        video = self._video
                    else:
                        video = (name, widgets.Video.from_file(name, autoplay=False, width=480))
                else:
                    links.append(_link(where, artifact))
        stale: list[Any] = [w for n, w in self._images.items() if shown.get(n) is not w]
        if self._video is not None and self._video != video:
            stale.append(self._video[1])
        self._images, self._video = shown, video
        self.frames.children = list(shown.values())
        self.video_box.children = [video[1]] if video is not None else []
        self.links.value = " ".join(links)
        for widget in stale:
            widget.close()

    def close(self) -> None:
        """Close every preview widget (and the boxes)."""
        shown: list[Any] = list(self._images.values())
        if self._video is not None:
            shown.append(self._video[1])
        self._images, self._video, self._key = {}, None, ()
        for widget in [*shown, self.frames, self.video_box, self.links]:
            widget.close()


def _locate(run: Run, artifact: ArtifactEvent) -> Path | str:
    """A local Path for ``artifact`` when the client can reach its file, else its URL
    (made absolute by the client when it is one of the server's artifacts)."""
    _, sep, relative = artifact.url.partition("/artifacts/")
    if not sep:
        return artifact.url
    return run.client.artifact(run.id, urllib.parse.unquote(relative))


def _link(where: Path | str, artifact: ArtifactEvent) -> str:
    name = _e(artifact.name or str(where))
    target = str(where)
    if not re.match(r"^(https?:)?/", target):
        return f"<span>{name}</span>"
    return f"<a href='{_e(target)}' target='_blank' rel='noopener'>{name}</a>"
