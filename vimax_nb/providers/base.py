"""What the pipelines ask of a model provider: :class:`ChatModel`, :class:`ImageModel`
and :class:`VideoModel`.

The shapes follow ViMax: a chat model answers with structured output (a pydantic
model), ``ImageModel.generate_single_image(prompt, reference_image_paths, size)`` and
``VideoModel.generate_single_video(prompt, reference_image_paths, request)``. Providers
are called from worker threads and may block.

Prompts are plain text made of labelled sections (``Style: watercolor``), built
with :func:`compose_prompt`; a hosted model reads them as a description, and the
procedural provider reads the sections with :func:`parse_prompt`.

This module imports only pydantic and :mod:`vimax_nb.shared` (Pillow only for type
checking), so the light parts of the project may use its names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from ..shared import CancelToken

if TYPE_CHECKING:
    from PIL import Image

M = TypeVar("M", bound=BaseModel)

PathLike = str | os.PathLike[str]


class ProviderError(Exception):
    """A provider could not do what was asked.

    ``retryable`` tells the coordinator whether another attempt may succeed
    (rate limits, server errors, timeouts) or not (a refused prompt, bad output).
    """

    def __init__(self, message: str, *, retryable: bool = False, provider: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.provider = provider


@dataclass(frozen=True, slots=True)
class ChatRequest(Generic[M]):
    """A structured question for a chat model.

    ``task`` names what is asked (``develop_story``, ``extract_characters``,
    ``write_script``, ``design_storyboard``, ``decompose_shot``,
    ``construct_camera_tree``, and ``parse_request``, which only hosted models are asked:
    offline, :mod:`vimax_nb.pipelines.request` uses its rules); ``instructions`` is the
    system prompt a hosted model gets; ``inputs`` are the task's JSON-able
    inputs; the answer must validate as ``response_model``. ``seed`` makes
    deterministic providers repeatable.
    """

    task: str
    instructions: str
    inputs: Mapping[str, Any]
    response_model: type[M]
    seed: int = 0


@runtime_checkable
class ChatModel(Protocol):
    """Answers :class:`ChatRequest` s with an instance of their response model."""

    def complete(self, request: ChatRequest[M]) -> M: ...


@dataclass(slots=True)
class ImageOutput:
    """A generated image (a Pillow image)."""

    image: Image.Image

    def save(self, path: PathLike) -> Path:
        """Write the image as PNG, atomically (a reader never sees half a file)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        self.image.save(partial, format="PNG")
        os.replace(partial, target)
        return target


@runtime_checkable
class ImageModel(Protocol):
    """Makes an image from a prompt and reference images."""

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
    ) -> ImageOutput: ...


@dataclass(slots=True)
class VideoRequest:
    """What a clip should be: its frames' size, rate and length, and where it goes."""

    output_path: Path
    size: tuple[int, int] = (640, 360)
    fps: int = 12
    duration: float = 2.0
    cancel_token: CancelToken | None = field(default=None, repr=False)


@runtime_checkable
class VideoModel(Protocol):
    """Makes a clip from a prompt and reference images (first and last frame).

    Writes an H.264 MP4 at ``request.output_path`` and returns its path; the
    file appears only when complete. Checks ``request.cancel_token`` while it
    works and raises :class:`~vimax_nb.shared.TaskCanceled` when it is set.
    """

    def generate_single_video(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        request: VideoRequest,
    ) -> Path: ...


def parse_size(size: str) -> tuple[int, int]:
    """``"640x360"`` as ``(640, 360)``; raises ValueError for anything else."""
    match = re.fullmatch(r"\s*(\d{2,5})\s*[xX]\s*(\d{2,5})\s*", size)
    if match is None:
        raise ValueError(f"a size is WIDTHxHEIGHT in pixels, like 640x360 (got {size!r})")
    return int(match[1]), int(match[2])


def compose_prompt(**sections: str | None) -> str:
    """A prompt of labelled lines, ``Key: value``, in the order given; empty ones left out.

    Keys are written with underscores as spaces and the first letter capitalised.
    """
    lines = []
    for key, value in sections.items():
        if value:
            label = key.replace("_", " ").capitalize()
            lines.append(f"{label}: {' '.join(str(value).split())}")
    return "\n".join(lines)


def parse_prompt(prompt: str) -> dict[str, str]:
    """The labelled sections of a prompt by lower-case key (``"style"``); other lines
    are gathered under ``"text"``."""
    sections: dict[str, str] = {}
    loose: list[str] = []
    for line in prompt.splitlines():
        key, sep, value = line.partition(":")
        if sep and re.fullmatch(r"[A-Za-z][A-Za-z ]{0,30}", key.strip()):
            sections[key.strip().lower().replace(" ", "_")] = value.strip()
        elif line.strip():
            loose.append(line.strip())
    if loose:
        sections["text"] = " ".join(loose)
    return sections
