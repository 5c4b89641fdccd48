"""Files going to and coming from hosted models: reference images read for upload, and
clips checked with PyAV before they are kept."""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from .base import PathLike, ProviderError

__all__ = ["ClipFacts", "Reference", "read_reference", "save_clip"]


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference image as a request carries it."""

    path: Path
    data: bytes
    mime_type: str


def read_reference(path: PathLike, provider: str) -> Reference:
    """The bytes and MIME type of the image at ``path``; a missing or unreadable file
    is a non-retryable :class:`ProviderError` naming it."""
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ProviderError(
            f"cannot read the reference image {str(source)!r}: {exc.strerror or exc}",
            provider=provider,
        ) from None
    mime = mimetypes.guess_type(source.name)[0] or "image/png"
    return Reference(source, data, mime)


@dataclass(frozen=True, slots=True)
class ClipFacts:
    """What PyAV found in a saved clip."""

    width: int
    height: int
    duration: float
    frames: int


def save_clip(data: bytes, output_path: PathLike, *, provider: str, model: str) -> ClipFacts:
    """Keep ``data`` as the clip at ``output_path`` if PyAV can decode it.

    The bytes are written next to the target, their first frames decoded, and only then
    renamed into place, so the target is never a broken or partial clip. A clip that
    does not decode is a retryable :class:`ProviderError` (the service sent something
    else, or the download was cut).
    """
    import av

    target = Path(output_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    try:
        with av.open(str(partial)) as container:
            if not container.streams.video:
                raise ValueError("it has no video stream")
            stream = container.streams.video[0]
            frames = 0
            for _ in container.decode(stream):
                frames += 1
            if frames == 0:
                raise ValueError("it has no frames")
            if stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            elif container.duration:
                duration = container.duration / av.time_base
            else:
                duration = 0.0
            facts = ClipFacts(
                stream.codec_context.width, stream.codec_context.height, duration, frames
            )
    except (av.FFmpegError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise ProviderError(
            f"{model} returned a clip that cannot be decoded ({len(data)} bytes): {exc}",
            retryable=True,
            provider=provider,
        ) from None
    os.replace(partial, target)
    return facts
