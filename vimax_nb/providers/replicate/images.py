"""The Replicate image model: :class:`ReplicateImageModel`, a hosted image model given
the reference images as uploaded files, its image fitted to the size asked for (see
:mod:`vimax_nb.providers.replicate`)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from ..base import ImageOutput, PathLike, ProviderCall, ProviderError, Usage, parse_size
from ..media import Reference, read_reference
from .client import Draft, ReplicateModel
from .config import PROVIDER, ReplicateConfig
from .families import closest_ratio, image_family

__all__ = ["ReplicateImageModel"]


class ReplicateImageModel(ReplicateModel):
    """An :class:`~vimax_nb.providers.base.ImageModel` on a hosted Replicate image model.

    The reference images (a shot's portraits) are uploaded: every one (up to the
    family's limit) to a model that takes a list, the first to one that takes a single
    image. The returned image is RGB and exactly the requested size: the model's image,
    made at the aspect ratio closest to it, center-cropped and resized.
    """

    role = "image"

    def __init__(self, config: ReplicateConfig) -> None:
        super().__init__(config)
        self.family = image_family(config.model, config.options)

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
        call: ProviderCall | None = None,
    ) -> ImageOutput:
        """One image for ``prompt`` made with the reference images; raises ProviderError
        (see :mod:`vimax_nb.providers.replicate`).

        The prediction is created (or resumed, when the call has a job slot) and polled
        as :meth:`~.client.ReplicateModel.predict` says, the budget asked for one image;
        once its image is downloaded and decoded, ``call.record`` gets one image. A
        malformed size is a non-retryable error, an image that does not decode a
        retryable one.
        """
        call = call or ProviderCall()
        try:
            width, height = parse_size(size)
        except ValueError as exc:
            raise ProviderError(str(exc), provider=PROVIDER) from exc
        what = f"image with {self.model}"
        prediction = self.predict(
            lambda: self._draft(prompt, reference_image_paths, (width, height), call),
            call,
            what,
        )
        data = self.output(prediction, call, what)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                image = ImageOps.fit(
                    opened.convert("RGB"), (width, height), method=Image.Resampling.LANCZOS
                )
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise ProviderError(
                f"{what}: could not decode the image ({len(data)} bytes): {exc}",
                retryable=True,
                provider=PROVIDER,
            ) from exc
        call.record(Usage(PROVIDER, self.model, "image", images=1))
        call.remember_job(None)
        return ImageOutput(image)

    def _draft(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike],
        size: tuple[int, int],
        call: ProviderCall,
    ) -> Draft:
        family = self.family
        inputs: dict[str, Any] = {**dict(family.defaults), "prompt": prompt}
        if family.aspect_ratio_key and family.aspect_ratios:
            inputs[family.aspect_ratio_key] = closest_ratio(*size, family.aspect_ratios)
        if family.seed:
            inputs["seed"] = call.seed % 2**31
        inputs.update(self.config.options.input)
        images: dict[str, Reference | list[Reference]] = {}
        paths = list(reference_image_paths)
        if paths and family.image_key:
            if family.multiple:
                chosen = paths[: family.max_images] if family.max_images else paths
                images[family.image_key] = [read_reference(p, PROVIDER) for p in chosen]
            else:
                images[family.image_key] = read_reference(paths[0], PROVIDER)
        return Draft(inputs, Usage(PROVIDER, self.model, "image", images=1), images)
