"""Procedural clips: a camera move over the first frame, a cut to the last, subtitles.

:class:`ProceduralVideoModel` needs no model: it moves a crop window for the camera
motion named in the prompt's ``motion`` section over the first reference frame, cuts to
the last one halfway (the move goes on; a short dissolve instead when the shot asks for
one), burns the ``dialogue`` section's lines in as subtitles and encodes H.264 with PyAV.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont, ImageOps

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


#: Seconds of the dissolve around the cut when a shot asks for one.
DISSOLVE_SECONDS = 0.3
_DISSOLVE = re.compile(
    r"\b(?:dissolv(?:e|es|ed|ing)|cross[\s-]?fad(?:e|es|ed|ing)|fade|fades|fading)\b", re.I
)


def wants_dissolve(text: str) -> bool:
    """Whether ``text`` asks for a dissolve, a cross-fade or a fade (not "faded")."""
    return _DISSOLVE.search(text) is not None


def last_frame_weight(index: int, count: int, fps: int, dissolve: float = 0.0) -> float:
    """How much of the last reference frame ``index`` of ``count`` shows: 0 in the first
    half of the clip and 1 in the second (a cut), or, with ``dissolve`` seconds, a linear
    ramp over that time centred on the cut (weighed at each frame's middle)."""
    if count < 2:
        return 0.0
    middle = count / 2
    if dissolve <= 0:
        return 1.0 if index >= middle else 0.0
    return min(1.0, max(0.0, (index + 0.5 - middle) / (dissolve * fps) + 0.5))


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=8)
def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def wrap_text(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """``text`` in lines no wider than ``width`` (by ``measure``), broken between words;
    a word too long for a line is broken between letters."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}" if line else word
        if measure(trial) <= width:
            line = trial
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:
            if line and measure(line + char) > width:
                lines.append(line)
                line = ""
            line += char
    if line:
        lines.append(line)
    return lines


def subtitle_overlay(text: str, size: tuple[int, int]) -> tuple[Image.Image, Image.Image, int]:
    """The subtitle band for ``text`` on a ``size`` frame: its picture, its mask and its top.

    White text with a dark outline, wrapped to 92% of the width, centred on a
    dark (91% opaque) band across the bottom (at least 17% of the height, which covers a
    keyframe's caption strip even under a zoom); at most ~40% of the height is given to
    text, a longer line ends in "...". The text is about 6% of the height (11 px or more).
    """
    w, h = size
    font = _font(max(11, round(h * 0.06)))
    stroke = max(1, round(h * 0.004))
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    lines = wrap_text(text, w * 0.92 - 2 * stroke, lambda s: draw.textlength(s, font=font))
    top, bottom = draw.textbbox((0, 0), "Ag", font=font)[1::2]
    line_height = math.ceil(bottom - top) + max(2, round(h * 0.012))
    most = max(1, int(h * 0.4) // line_height)
    if len(lines) > most:
        lines = lines[:most]
        last = lines[-1]
        while last and draw.textlength(last + "...", font=font) > w * 0.92 - 2 * stroke:
            last = last[:-1]
        lines[-1] = last.rstrip() + "..."
    pad = max(3, line_height // 3)
    band = min(h, max(len(lines) * line_height + 2 * pad, math.ceil(h * 0.17)))
    overlay = Image.new("RGBA", (w, band), (0, 0, 0, 232))
    d = ImageDraw.Draw(overlay)
    y = (band - len(lines) * line_height) / 2 + line_height / 2
    for line in lines:
        d.text(
            (w / 2, y),
            line,
            font=font,
            anchor="mm",
            fill=(255, 255, 255, 255),
            stroke_width=stroke,
            stroke_fill=(0, 0, 0, 255),
        )
        y += line_height
    return overlay.convert("RGB"), overlay.getchannel("A"), h - band


def subtitle_turns(lines: Sequence[str], count: int) -> list[int]:
    """Which of ``lines`` each of ``count`` frames shows: in order, each for a share of
    the clip in proportion to its length (plus 10 characters, so short lines stay up)."""
    if not lines:
        return [0] * count
    weights = [len(line) + 10 for line in lines]
    total, ends, run = sum(weights), [], 0
    for weight in weights:
        run += weight
        ends.append(run / total)
    return [
        next(k for k, end in enumerate(ends) if (i + 0.5) / count < end or k == len(ends) - 1)
        for i in range(count)
    ]


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
    ``request.size`` at ``request.fps`` (time base ``1/fps``), H.264 yuv420p in MP4. The
    camera move of the ``motion`` section runs over the whole clip; the first half of
    the frames shows the first reference and the second half the last one, a cut with
    no blend (one reference is animated alone). When the motion or description asks for
    a dissolve, cross-fade or fade, only the frames within :data:`DISSOLVE_SECONDS`
    around the cut are blends. A ``dialogue`` section (``Mara: Hello``) is burnt into
    every frame as a wrapped subtitle near the bottom, verbatim (pixels only: the file
    carries no text); several lines (``Mara: Hello | Tobin: Hi``) follow one another,
    each up for a share of the clip in proportion to its length. The clip is written to
    ``<name>.part`` and renamed, so ``output_path`` only ever holds a complete clip. A
    set cancel token (checked before every frame) removes the part file and raises
    :class:`TaskCanceled`. Unreadable references and impossible requests raise
    :class:`ProviderError` (not retryable). Each frame is drawn, encoded and dropped
    before the next, so memory does not grow with the clip's length (it peaks at a few
    frames plus the encoder's own buffers). Thread-safe.
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
        asks = " ".join(sections.get(k, "") for k in ("motion", "camera", "description"))
        dissolve = min(DISSOLVE_SECONDS, request.duration / 2) if wants_dissolve(asks) else 0.0
        said = [" ".join(x.split()) for x in sections.get("dialogue", "").split(" | ")]
        overlays = [subtitle_overlay(x, (width, height)) for x in said if x]
        turns = subtitle_turns([x for x in said if x], count)
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
                    weight = last_frame_weight(index, count, request.fps, dissolve)
                    if not many or weight <= 0.0:
                        image = first
                    elif weight >= 1.0:
                        image = last
                    else:
                        image = Image.blend(first, last, weight)
                    if motion != "static":
                        image = image.resize(
                            (width, height), Image.Resampling.BILINEAR, box=path(t)
                        )
                    if overlays:
                        subtitle = overlays[turns[index]]
                        if image is first or image is last:
                            image = image.copy()
                        image.paste(subtitle[0], (0, subtitle[2]), subtitle[1])
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
