"""Procedural clips: a cross-fade from the first to the last frame under a camera move.

:class:`ProceduralVideoModel` needs no model: it blends the reference frames
(``[first_frame, last_frame]``) over the clip while moving a crop window for the
camera motion named in the prompt's ``motion`` section, and encodes H.264 with PyAV.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageOps

from ...shared import CancelToken, TaskCanceled
from ..base import PathLike, ProviderCall, ProviderError, VideoRequest, parse_prompt

PROVIDER = "procedural"

#: Camera moves the ``motion`` section may name, checked in this order.
MOTIONS = (
    "static",
    "pan left",
    "pan right",
    "tilt up",
    "tilt down",
    "zoom in",
    "zoom out",
    "dolly in",
    "dolly out",
)
_SYNONYMS = {"push in": "dolly in", "pull out": "dolly out", "pull back": "dolly out"}

#: A crop box (left, top, right, bottom) in frame pixels for a time in [0, 1].
Box = tuple[float, float, float, float]


def camera_motion(text: str) -> str:
    """The first camera move named in ``text`` (see :data:`MOTIONS`), else ``"static"``."""
    text = " ".join(text.lower().replace("-", " ").split())
    found = [(text.find(m), m) for m in (*MOTIONS, *_SYNONYMS) if m in text]
    if not found:
        return "static"
    name = min(found)[1]
    return _SYNONYMS.get(name, name)


def _ease(t: float) -> float:
    return t * t * (3.0 - 2.0 * t)


def camera_path(motion: str, size: tuple[int, int]) -> Callable[[float], Box]:
    """The crop window of ``motion`` over a ``size`` frame as a function of time (0 to 1).

    Pans and tilts slide a window 1/1.15 of the frame across it (pans along the bottom
    edge, so a caption strip stays in view); zooms scale the window between the full
    frame and 1/1.3 of it around the bottom centre, linearly; dollies between the full
    frame and 1/1.2, eased, rising a little. ``static`` is the full frame.
    """
    w, h = size

    def window(scale: float, fx: float, fy: float) -> Box:
        cw, ch = w / scale, h / scale
        x, y = (w - cw) * fx, (h - ch) * fy
        return x, y, x + cw, y + ch

    moves: dict[str, Callable[[float], Box]] = {
        "pan left": lambda t: window(1.15, 1.0 - t, 1.0),
        "pan right": lambda t: window(1.15, t, 1.0),
        "tilt up": lambda t: window(1.15, 0.5, 1.0 - t),
        "tilt down": lambda t: window(1.15, 0.5, t),
        "zoom in": lambda t: window(1.0 + 0.3 * t, 0.5, 1.0),
        "zoom out": lambda t: window(1.3 - 0.3 * t, 0.5, 1.0),
        "dolly in": lambda t: window(1.0 + 0.2 * _ease(t), 0.5, 1.0 - 0.3 * _ease(t)),
        "dolly out": lambda t: window(1.2 - 0.2 * _ease(t), 0.5, 0.7 + 0.3 * _ease(t)),
    }
    return moves.get(motion, lambda t: (0.0, 0.0, float(w), float(h)))


def _load(path: PathLike, size: tuple[int, int]) -> Image.Image:
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ProviderError(
            f"procedural video: cannot read reference image {os.fspath(path)!r}: {exc}",
            provider=PROVIDER,
        ) from None
    if image.size != size:  # cover the frame, cropping the excess around the centre
        image = ImageOps.fit(image, size, Image.Resampling.BILINEAR)
    return image


def _check(token: CancelToken | None) -> None:
    if token is not None and token.cancelled:
        raise TaskCanceled("the clip was canceled")


class ProceduralVideoModel:
    """A :class:`~vimax_nb.providers.base.VideoModel` that animates its reference frames.

    Guarantees: the clip has ``round(duration * fps)`` frames (at least one) of
    ``request.size`` at ``request.fps`` (time base ``1/fps``), H.264 yuv420p in MP4; it
    cross-fades from the first reference to the last (one reference is animated alone)
    under the camera move of the ``motion`` section; it is written to ``<name>.part``
    and renamed, so ``output_path`` only ever holds a complete clip. A set cancel
    token (checked before every frame) removes the part file and raises
    :class:`TaskCanceled`. Unreadable references and impossible requests raise
    :class:`ProviderError` (not retryable). Thread-safe.
    """

    provider = PROVIDER
    model = "procedural-video"

    def __init__(self, *, crf: int = 23, preset: str = "veryfast") -> None:
        self.crf = crf
        self.preset = preset

    def probe(self) -> None:
        """Nothing to reach: always ready."""

    def generate_single_video(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        request: VideoRequest,
        call: ProviderCall | None = None,
    ) -> Path:
        """Render the clip described by ``prompt`` to ``request.output_path`` and return it."""
        token = call.cancel_token if call is not None else None
        _check(token)
        width, height = request.size
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ProviderError(
                f"procedural video: sizes must be even, 16x16 or more (got {width}x{height})",
                provider=PROVIDER,
            )
        if request.fps <= 0 or not math.isfinite(request.duration) or request.duration <= 0:
            raise ProviderError(
                f"procedural video: fps and duration must be positive "
                f"(got fps={request.fps}, duration={request.duration})",
                provider=PROVIDER,
            )
        if not reference_image_paths:
            raise ProviderError("procedural video: no reference frames given", provider=PROVIDER)
        first = _load(reference_image_paths[0], (width, height))
        many = len(reference_image_paths) > 1
        last = _load(reference_image_paths[-1], (width, height)) if many else first
        sections = parse_prompt(prompt)
        motion = camera_motion(sections.get("motion") or sections.get("camera", ""))
        path = camera_path(motion, (width, height))
        count = max(1, round(request.duration * request.fps))
        output = Path(request.output_path)
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(output.name + ".part")
        try:
            with av.open(str(partial), mode="w", format="mp4") as container:
                stream = container.add_stream(
                    "libx264",
                    rate=request.fps,
                    options={"crf": str(self.crf), "preset": self.preset},
                )
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.time_base = Fraction(1, request.fps)
                for index in range(count):
                    _check(token)
                    t = index / (count - 1) if count > 1 else 0.0
                    image = Image.blend(first, last, t) if many else first
                    if motion != "static":
                        image = image.resize(
                            (width, height), Image.Resampling.BILINEAR, box=path(t)
                        )
                    frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
                    frame.pts = index
                    container.mux(stream.encode(frame))
                container.mux(stream.encode(None))
            _check(token)
            os.replace(partial, output)
        except av.FFmpegError as exc:
            partial.unlink(missing_ok=True)
            raise ProviderError(
                f"procedural video: encoding failed: {exc}", provider=PROVIDER
            ) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return output
