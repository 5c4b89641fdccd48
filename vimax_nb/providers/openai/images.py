"""The OpenAI image model: :class:`OpenAIImageModel`, ``POST /images/generations``
fitted to the size asked for (see :mod:`vimax_nb.providers.openai`)."""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Sequence
from pathlib import Path

import openai
from PIL import Image, ImageOps, UnidentifiedImageError

from ...shared import CancelToken
from ..base import ImageOutput, PathLike, ProviderError, parse_size
from .client import OpenAIProvider
from .config import PROVIDER

__all__ = ["OpenAIImageModel", "api_size_for"]

# Sizes the images endpoint accepts, per model family (gpt-image-* and anything unknown
# use the first entry).
_GPT_IMAGE_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
_API_SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "dall-e-2": ((256, 256), (512, 512), (1024, 1024)),
    "dall-e-3": ((1024, 1024), (1792, 1024), (1024, 1792)),
}


def api_size_for(width: int, height: int, model: str) -> tuple[int, int]:
    """The size the images endpoint accepts for ``model`` closest to ``width x height``:
    the nearest aspect ratio first, then the nearest area."""
    sizes = next((s for prefix, s in _API_SIZES.items() if model.startswith(prefix)), None)

    def distance(size: tuple[int, int]) -> tuple[float, float]:
        aspect = abs(math.log((size[0] / size[1]) / (width / height)))
        return aspect, abs(math.log(size[0] * size[1] / (width * height)))

    return min(sizes or _GPT_IMAGE_SIZES, key=distance)


class OpenAIImageModel(OpenAIProvider):
    """An :class:`~vimax_nb.providers.base.ImageModel` using image generations.

    The returned image is RGB and exactly the requested size: the API's image (at the
    closest size it accepts, see :func:`api_size_for`) is center-cropped to the requested
    aspect ratio and resized. ``response_format="b64_json"`` is sent except to
    ``gpt-image-*`` models, which always answer in base64 and reject the parameter.
    """

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
        *,
        cancel_token: CancelToken | None = None,
    ) -> ImageOutput:
        """One image for ``prompt``; raises ProviderError (see :mod:`vimax_nb.providers.openai`)."""
        try:
            width, height = parse_size(size)
        except ValueError as exc:
            raise ProviderError(str(exc), provider=PROVIDER) from exc
        if reference_image_paths:
            names = ", ".join(Path(p).name for p in reference_image_paths)
            prompt = (
                f"{prompt}\n\nReference images (not attached; keep the characters and places "
                f"they show consistent): {names}"
            )
        model = self.config.image_model
        api_w, api_h = api_size_for(width, height, model)
        what = f"image generation with model {model!r}"
        self.rate_limiter.acquire(cancel_token)
        try:
            result = self.client.images.generate(
                model=model,
                prompt=prompt,
                size=f"{api_w}x{api_h}",
                n=1,
                response_format=openai.omit if model.startswith("gpt-image") else "b64_json",
            )
        except openai.OpenAIError as exc:
            raise self._error(exc, what) from exc
        encoded = result.data[0].b64_json if result.data else None
        if not encoded:
            raise ProviderError(
                f"{what}: the answer had no base64 image", retryable=True, provider=PROVIDER
            )
        try:
            image = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
            image.load()
        except (binascii.Error, ValueError, OSError, UnidentifiedImageError) as exc:
            raise ProviderError(
                f"{what}: could not decode the image: {exc}", retryable=True, provider=PROVIDER
            ) from exc
        fitted = ImageOps.fit(
            image.convert("RGB"), (width, height), method=Image.Resampling.LANCZOS
        )
        return ImageOutput(fitted)
