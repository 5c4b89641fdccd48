"""What the hosted models take: how each family of Replicate models names its inputs
(:data:`VIDEO_FAMILIES`, :data:`IMAGE_FAMILIES`), the options that override the table,
and the choice of a clip length and an aspect ratio among the values a model accepts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import ReplicateOptions

__all__ = [
    "IMAGE_FAMILIES",
    "VIDEO_FAMILIES",
    "ImageFamily",
    "VideoFamily",
    "closest_ratio",
    "image_family",
    "video_family",
]


@dataclass(frozen=True, slots=True)
class VideoFamily:
    """How the video models whose name starts with ``prefix`` take a shot.

    ``first_frame`` and ``last_frame`` name the inputs of the shot's first and last
    frame (None: not taken); the last frame is sent only when the input also holds
    every pair of ``last_frame_when``. ``duration_key`` names the length input and
    ``durations`` its accepted values: seconds, or frames at ``frame_rate`` frames a
    second (read from the input's ``frame_rate_key`` when it has one). The aspect ratio
    closest to the clip's size among ``aspect_ratios`` goes to ``aspect_ratio_key``;
    ``seed`` says whether the model takes the workflow's seed; ``defaults`` are inputs
    always sent (``options.input`` may change them).
    """

    prefix: str
    first_frame: str | None = "image"
    last_frame: str | None = None
    last_frame_when: tuple[tuple[str, Any], ...] = ()
    duration_key: str | None = "duration"
    durations: tuple[int, ...] = ()
    frame_rate: int | None = None
    frame_rate_key: str | None = None
    aspect_ratio_key: str | None = None
    aspect_ratios: tuple[str, ...] = ()
    seed: bool = False
    defaults: tuple[tuple[str, Any], ...] = ()

    def duration_value(self, seconds: float) -> int | None:
        """The value of the duration input for a clip of ``seconds``: the smallest
        accepted one at least as long (the longest when none is); None without a
        duration input."""
        if self.duration_key is None:
            return None
        wanted = math.ceil(seconds * (self.frame_rate or 1) - 1e-6)
        if not self.durations:
            return max(1, wanted)
        return next((d for d in self.durations if d >= wanted), self.durations[-1])

    def seconds(self, inputs: Mapping[str, Any], default: float) -> float:
        """The clip length ``inputs`` ask for, in seconds; ``default`` when they do not
        say (no duration input, or not a number)."""
        value = inputs.get(self.duration_key) if self.duration_key else None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            return default
        if self.frame_rate is None:
            return float(value)
        rate = inputs.get(self.frame_rate_key) if self.frame_rate_key else None
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            rate = self.frame_rate
        return float(value) / float(rate)

    def takes_last_frame(self, inputs: Mapping[str, Any]) -> bool:
        """Whether the last frame goes with ``inputs`` (the other inputs, merged)."""
        return self.last_frame is not None and all(
            inputs.get(key) == value for key, value in self.last_frame_when
        )


@dataclass(frozen=True, slots=True)
class ImageFamily:
    """How the image models whose name starts with ``prefix`` take reference images:
    under ``image_key``, as a list of at most ``max_images`` (``multiple``) or as one
    image (the first reference); the aspect ratio, ``seed`` and ``defaults`` as for
    :class:`VideoFamily`."""

    prefix: str
    image_key: str | None = "image"
    multiple: bool = False
    max_images: int | None = None
    aspect_ratio_key: str | None = None
    aspect_ratios: tuple[str, ...] = ()
    seed: bool = False
    defaults: tuple[tuple[str, Any], ...] = ()


_SECONDS_2_TO_12 = tuple(range(2, 13))
_KLING_RATIOS = ("16:9", "9:16", "1:1")
_SEEDANCE_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "9:21")
_VEO_RATIOS = ("16:9", "9:16")
_NO_AUDIO = (("generate_audio", False),)

#: The known video families, most specific prefix first; any other model gets
#: :data:`_OTHER_VIDEO` (first frame as ``image``, no length input).
VIDEO_FAMILIES = (
    VideoFamily(
        "kwaivgi/kling-v2.1-master",
        first_frame="start_image",
        durations=(5, 10),
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=_KLING_RATIOS,
    ),
    # end_image needs mode "pro" (options.input: {mode: pro}); standard mode refuses it
    VideoFamily(
        "kwaivgi/kling-v2.1",
        first_frame="start_image",
        last_frame="end_image",
        last_frame_when=(("mode", "pro"),),
        durations=(5, 10),
    ),
    VideoFamily(
        "kwaivgi/kling-v1.6-pro",
        first_frame="start_image",
        last_frame="end_image",
        durations=(5, 10),
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=_KLING_RATIOS,
    ),
    VideoFamily(
        "kwaivgi/kling",
        first_frame="start_image",
        durations=(5, 10),
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=_KLING_RATIOS,
    ),
    VideoFamily(
        "bytedance/seedance-1-pro-fast",
        durations=_SECONDS_2_TO_12,
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=_SEEDANCE_RATIOS,
        seed=True,
    ),
    VideoFamily(
        "bytedance/seedance-1",
        last_frame="last_frame_image",
        durations=_SECONDS_2_TO_12,
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=_SEEDANCE_RATIOS,
        seed=True,
    ),
    VideoFamily(
        "wan-video/wan-2.2-i2v-fast",
        last_frame="last_image",
        duration_key="num_frames",
        durations=tuple(range(81, 122)),
        frame_rate=16,
        frame_rate_key="frames_per_second",
        seed=True,
    ),
    VideoFamily("wan-video/", duration_key=None, seed=True),
    # 10 s only at 768p or 512p, and the model's default is 1080p: see the docs
    VideoFamily(
        "minimax/hailuo-02",
        first_frame="first_frame_image",
        last_frame="last_frame_image",
        durations=(6,),
    ),
    VideoFamily("minimax/hailuo", first_frame="first_frame_image", durations=(6,)),
    VideoFamily("minimax/", first_frame="first_frame_image", duration_key=None),
    VideoFamily(
        "google/veo-3.1",
        last_frame="last_frame",
        durations=(4, 6, 8),
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=_VEO_RATIOS,
        seed=True,
        defaults=_NO_AUDIO,
    ),
    VideoFamily(
        "google/veo-3",
        durations=(4, 6, 8),
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=_VEO_RATIOS,
        seed=True,
        defaults=_NO_AUDIO,
    ),
    VideoFamily(
        "google/veo-2",
        durations=(5, 6, 7, 8),
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=_VEO_RATIOS,
        seed=True,
    ),
)
_OTHER_VIDEO = VideoFamily("", duration_key=None)

#: The known image families, most specific prefix first; any other model gets
#: :data:`_OTHER_IMAGE` (the first reference as ``image``).
IMAGE_FAMILIES = (
    ImageFamily(
        "black-forest-labs/flux-kontext",
        image_key="input_image",
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"),
        seed=True,
        defaults=(("output_format", "png"),),
    ),
    ImageFamily(
        "bytedance/seedream-4",
        image_key="image_input",
        multiple=True,
        max_images=10,
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=("21:9", "16:9", "3:2", "4:3", "1:1", "3:4", "2:3", "9:16"),
    ),
    ImageFamily(
        "google/nano-banana",
        image_key="image_input",
        multiple=True,
        aspect_ratio_key="aspect_ratio",
        aspect_ratios=("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"),
        defaults=(("output_format", "png"),),
    ),
)
_OTHER_IMAGE = ImageFamily("")

#: Ratios offered when ``options.aspect_ratio_key`` names an input the table does not know.
_COMMON_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16")


def _key(override: str | None, known: str | None) -> str | None:
    """An input name from the options (``""``: none) over the table's."""
    if override is None:
        return known
    return override.strip() or None


def video_family(model: str, options: ReplicateOptions) -> VideoFamily:
    """The family of ``model`` (``owner/name`` or ``owner/name:version``) with the
    options' ``*_key`` and ``durations`` overrides applied.

    A ``duration_key`` or ``durations`` override means a length input counted in
    seconds (``durations`` alone keeps the family's input, else ``duration``).
    """
    family = next((f for f in VIDEO_FAMILIES if model.startswith(f.prefix)), _OTHER_VIDEO)
    changes: dict[str, Any] = {
        "first_frame": _key(options.first_frame_key, family.first_frame),
        "last_frame": _key(options.last_frame_key, family.last_frame),
        "aspect_ratio_key": _key(options.aspect_ratio_key, family.aspect_ratio_key),
    }
    if options.last_frame_key is not None:
        changes["last_frame_when"] = ()
    if options.duration_key is not None or options.durations is not None:
        fallback = family.duration_key if family.frame_rate is None else None
        changes["duration_key"] = _key(options.duration_key, fallback or "duration")
        changes["durations"] = tuple(sorted(options.durations or ()))
        changes["frame_rate"] = changes["frame_rate_key"] = None
    if options.aspect_ratio_key and not family.aspect_ratios:
        changes["aspect_ratios"] = _COMMON_RATIOS
    return dataclasses.replace(family, **changes)


def image_family(model: str, options: ReplicateOptions) -> ImageFamily:
    """The family of ``model`` with the options' ``image_key``, ``image_list`` and
    ``aspect_ratio_key`` overrides applied."""
    family = next((f for f in IMAGE_FAMILIES if model.startswith(f.prefix)), _OTHER_IMAGE)
    changes: dict[str, Any] = {
        "image_key": _key(options.image_key, family.image_key),
        "aspect_ratio_key": _key(options.aspect_ratio_key, family.aspect_ratio_key),
    }
    if options.image_list is not None:
        changes["multiple"] = options.image_list
    if options.aspect_ratio_key and not family.aspect_ratios:
        changes["aspect_ratios"] = _COMMON_RATIOS
    return dataclasses.replace(family, **changes)


def closest_ratio(width: int, height: int, ratios: tuple[str, ...]) -> str:
    """The ratio (``"16:9"``) among ``ratios`` closest to ``width`` x ``height``."""

    def distance(ratio: str) -> float:
        w, h = (float(part) for part in ratio.split(":"))
        return abs(math.log((w / h) / (width / height)))

    return min(ratios, key=distance)
