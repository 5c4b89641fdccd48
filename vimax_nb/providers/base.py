"""What the pipelines ask of a model provider: :class:`ChatModel`, :class:`ImageModel`
and :class:`VideoModel`.

The shapes follow ViMax: a chat model answers with structured output (a pydantic
model), ``ImageModel.generate_single_image(prompt, reference_image_paths, size)`` and
``VideoModel.generate_single_video(prompt, reference_image_paths, request)``. Providers
are called from worker threads and may block.

Every call may be given a :class:`ProviderCall`: the caller's side of the call (its
cancel token, where usage and progress go, the budget that may refuse a paid request,
and the slot that remembers a remote job's id across restarts). Each model names its
``provider`` and ``model`` and can :meth:`~ChatModel.probe` its service.

Prompts are plain text made of labelled sections (``Style: watercolor``), built
with :func:`compose_prompt`; a hosted model reads them as a description, and the
procedural provider reads the sections with :func:`parse_prompt`.

This module imports only pydantic and :mod:`vimax_nb.shared` (Pillow only for type
checking), so the light parts of the project may use its names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from ..shared import CancelToken

if TYPE_CHECKING:
    from PIL import Image

M = TypeVar("M", bound=BaseModel)

PathLike = str | os.PathLike[str]

#: The three things a provider may do for the agents.
Role = Literal["chat", "image", "video"]
ROLES: tuple[Role, ...] = ("chat", "image", "video")


class ProviderError(Exception):
    """A provider could not do what was asked.

    ``retryable`` tells the coordinator whether another attempt may succeed
    (rate limits, server errors, timeouts) or not (a refused prompt, bad output).
    """

    def __init__(self, message: str, *, retryable: bool = False, provider: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.provider = provider


class BudgetExceeded(ProviderError):
    """A paid request was refused before it was sent: it would take the workflow's spend
    over its ``max_cost``. Never retryable."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message, retryable=False, provider=provider)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one provider call used: the units a price table charges for.

    ``cost`` is the estimated price in US dollars; providers leave it at 0 and the
    caller's :class:`ProviderCall` prices it. ``cached`` marks an answer served from
    the result cache (nothing was paid).
    """

    provider: str
    model: str
    role: Role
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    video_seconds: float = 0.0
    cost: float = 0.0
    cached: bool = False


class JobSlot(Protocol):
    """Where a call keeps the id of the remote job it started (a Veo operation, a
    Replicate prediction), so that a later attempt, even after a server restart, polls
    the same job instead of paying for a new one."""

    def get(self) -> str | None: ...

    def set(self, job_id: str | None) -> None: ...


@dataclass(slots=True)
class ProviderCall:
    """The caller's side of one provider call; every hook is optional.

    * ``cancel_token``: providers check it between requests and while polling, and
      raise :class:`~vimax_nb.shared.TaskCanceled` once it is set.
    * ``seed``: the workflow's seed; providers that take a seed send it.
    * ``on_usage``: told the :class:`Usage` of each request that was answered.
    * ``on_progress``: told, in words, what a long call is waiting on
      (``"waiting on veo-3.0-generate-001 (42 s)"``).
    * ``budget``: given a request's :class:`Usage` *before* it is sent; raises
      :class:`BudgetExceeded` to refuse it.
    * ``job``: the slot of a remote job's id (see :class:`JobSlot`).
    """

    cancel_token: CancelToken | None = None
    seed: int = 0
    on_usage: Callable[[Usage], None] | None = None
    on_progress: Callable[[str], None] | None = None
    budget: Callable[[Usage], None] | None = None
    job: JobSlot | None = None

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~vimax_nb.shared.TaskCanceled` if the call was canceled."""
        if self.cancel_token is not None:
            self.cancel_token.raise_if_cancelled()

    def authorize(self, usage: Usage) -> None:
        """Ask the budget whether a request that will use ``usage`` may be sent."""
        if self.budget is not None:
            self.budget(usage)

    def record(self, usage: Usage) -> None:
        """Report what an answered request used."""
        if self.on_usage is not None:
            self.on_usage(usage)

    def report(self, message: str) -> None:
        """Say what the call is doing now."""
        if self.on_progress is not None:
            self.on_progress(message)

    def recall_job(self) -> str | None:
        """The id of the remote job an earlier attempt started, if any."""
        return self.job.get() if self.job is not None else None

    def remember_job(self, job_id: str | None) -> None:
        """Keep ``job_id`` (None once the job is over) for later attempts."""
        if self.job is not None:
            self.job.set(job_id)


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


class ProviderModel(Protocol):
    """What every model says of itself: its ``provider`` (``"google"``) and ``model``
    (``"veo-3.0-generate-001"``) names, and whether its service answers."""

    provider: str
    model: str

    def probe(self) -> None:
        """Ask the service whether this model can be used now (a cheap request, such as
        reading the model's description); raises :class:`ProviderError` saying what is
        wrong (unreachable, unknown model, bad key). Offline models return at once."""
        ...


@runtime_checkable
class ChatModel(ProviderModel, Protocol):
    """Answers :class:`ChatRequest` s with an instance of their response model."""

    def complete(self, request: ChatRequest[M], call: ProviderCall | None = None) -> M: ...


@dataclass(slots=True)
class ImageOutput:
    """A generated image (a Pillow image)."""

    image: Image.Image

    def save(self, path: PathLike) -> Path:
        """Write the image as PNG, atomically (a reader never sees half a file), with
        its ``vimax:`` text chunks (the procedural renderer's report of what it drew)."""
        from PIL import PngImagePlugin

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        info = PngImagePlugin.PngInfo()
        for key, value in self.image.info.items():
            if isinstance(key, str) and key.startswith("vimax:") and isinstance(value, str):
                info.add_text(key, value)
        # zlib level 1: a textured 640x360 frame encodes 5x faster than at the default
        # level 6, for a file about 15% larger
        self.image.save(partial, format="PNG", pnginfo=info, compress_level=1)
        os.replace(partial, target)
        return target


@runtime_checkable
class ImageModel(ProviderModel, Protocol):
    """Makes an image from a prompt and reference images (which hosted models are sent,
    so a frame keeps its characters' looks)."""

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
        call: ProviderCall | None = None,
    ) -> ImageOutput: ...


@dataclass(slots=True)
class VideoRequest:
    """What a clip should be: its frames' size, rate and length, and where it goes."""

    output_path: Path
    size: tuple[int, int] = (640, 360)
    fps: int = 12
    duration: float = 2.0


@runtime_checkable
class VideoModel(ProviderModel, Protocol):
    """Makes a clip from a prompt and reference images (first and last frame).

    Writes an MP4 at ``request.output_path`` and returns its path; the file appears
    only when complete. Hosted models may answer with another size, rate or length
    than asked; the editor fits clips together. Checks ``call.cancel_token`` while it
    works and raises :class:`~vimax_nb.shared.TaskCanceled` when it is set.
    """

    def generate_single_video(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        request: VideoRequest,
        call: ProviderCall | None = None,
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
