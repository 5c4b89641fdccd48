"""The Replicate video model: :class:`ReplicateVideoModel`, image-to-video with the
shot's first (and, where the family takes one, last) frame uploaded, as a prediction a
later attempt resumes instead of paying again (see :mod:`vimax_nb.providers.replicate`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..base import PathLike, ProviderCall, Usage, VideoRequest
from ..media import Reference, read_reference, save_clip
from .client import Draft, ReplicateModel
from .config import PROVIDER, ReplicateConfig
from .families import closest_ratio, video_family

__all__ = ["ReplicateVideoModel"]


class ReplicateVideoModel(ReplicateModel):
    """A :class:`~vimax_nb.providers.base.VideoModel` on a hosted Replicate video model.

    ``family`` (see :func:`~.families.video_family`) says how the model names its
    inputs. The clip is whatever the model makes, of the length
    :meth:`~.families.VideoFamily.duration_value` picks; the editor fits clips together.
    """

    role = "video"

    def __init__(self, config: ReplicateConfig) -> None:
        super().__init__(config)
        self.family = video_family(config.model, config.options)

    def generate_single_video(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        request: VideoRequest,
        call: ProviderCall | None = None,
    ) -> Path:
        """Make the clip of ``prompt`` from its first frame (``reference_image_paths[0]``)
        and, where the family takes one, its last (``[-1]``, when there are two or
        more); keep it at ``request.output_path`` (checked with PyAV, written
        atomically) and return it.

        The prediction is resumed or created and polled as
        :meth:`~.client.ReplicateModel.predict` says; the budget is asked for the
        seconds of the length sent. Once the clip is saved, ``call.record`` gets those
        seconds (the length the prediction's input asked for, or ``request.duration``
        for a model without a length input) and the job is forgotten; a clip that does
        not decode is a retryable error and the prediction is kept (its output is
        fetched again).
        """
        call = call or ProviderCall()
        what = f"video with {self.model}"
        prediction = self.predict(
            lambda: self._draft(prompt, reference_image_paths, request, call), call, what
        )
        clip = self.output(prediction, call, what)
        save_clip(clip, request.output_path, provider=PROVIDER, model=self.model)
        call.record(self._usage(prediction.input or {}, request))
        call.remember_job(None)
        return Path(request.output_path)

    def _usage(self, inputs: dict[str, Any], request: VideoRequest) -> Usage:
        seconds = self.family.seconds(inputs, request.duration)
        return Usage(PROVIDER, self.model, "video", video_seconds=seconds)

    def _draft(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        request: VideoRequest,
        call: ProviderCall,
    ) -> Draft:
        family = self.family
        inputs: dict[str, Any] = {**dict(family.defaults), "prompt": prompt}
        duration = family.duration_value(request.duration)
        if family.duration_key and duration is not None:
            inputs[family.duration_key] = duration
        if family.aspect_ratio_key and family.aspect_ratios:
            inputs[family.aspect_ratio_key] = closest_ratio(*request.size, family.aspect_ratios)
        if family.seed:
            inputs["seed"] = call.seed % 2**31
        inputs.update(self.config.options.input)
        images: dict[str, Reference | list[Reference]] = {}
        paths = list(reference_image_paths)
        if paths and family.first_frame:
            images[family.first_frame] = read_reference(paths[0], PROVIDER)
        if len(paths) > 1 and family.last_frame and family.takes_last_frame(inputs):
            images[family.last_frame] = read_reference(paths[-1], PROVIDER)
        return Draft(inputs, self._usage(inputs, request), images)
