"""The OpenAI image model: :class:`OpenAIImageModel`, ``POST /images/generations``, or
``POST /images/edits`` with the reference images uploaded, fitted to the size asked for
(see :mod:`vimax_nb.providers.openai`)."""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Sequence
from typing import Literal

import openai
from openai.types import ImagesResponse
from PIL import Image, ImageOps, UnidentifiedImageError

from ..base import ImageOutput, PathLike, ProviderCall, ProviderError, Usage, parse_size
from ..media import Reference, read_reference
from .client import OpenAIProvider
from .config import PROVIDER

__all__ = ["OpenAIImageModel", "api_size_for"]

# Sizes the images endpoints accept, per model family (gpt-image-* and anything unknown
# use the first entry).
_GPT_IMAGE_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
_API_SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "dall-e-2": ((256, 256), (512, 512), (1024, 1024)),
    "dall-e-3": ((1024, 1024), (1792, 1024), (1024, 1792)),
}

Upload = tuple[str, bytes, str]


def api_size_for(width: int, height: int, model: str) -> tuple[int, int]:
    """The size the images endpoints accept for ``model`` closest to ``width x height``:
    the nearest aspect ratio first, then the nearest area."""
    sizes = next((s for prefix, s in _API_SIZES.items() if model.startswith(prefix)), None)

    def distance(size: tuple[int, int]) -> tuple[float, float]:
        aspect = abs(math.log((size[0] / size[1]) / (width / height)))
        return aspect, abs(math.log(size[0] * size[1] / (width * height)))

    return min(sizes or _GPT_IMAGE_SIZES, key=distance)


def _square_png(reference: Reference, side: int) -> Upload:
    """``reference`` center-cropped to a ``side`` x ``side`` RGBA PNG, the only input
    dall-e-2's edits take; an unreadable image is a non-retryable ProviderError."""
    try:
        with Image.open(io.BytesIO(reference.data)) as image:
            square = ImageOps.fit(image.convert("RGBA"), (side, side), Image.Resampling.LANCZOS)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ProviderError(
            f"the reference image {str(reference.path)!r} is not an image Pillow can read: {exc}",
            provider=PROVIDER,
        ) from None
    buffer = io.BytesIO()
    square.save(buffer, format="PNG")
    return f"{reference.path.stem}.png", buffer.getvalue(), "image/png"


class OpenAIImageModel(OpenAIProvider):
    """An :class:`~vimax_nb.providers.base.ImageModel` using image generations, or image
    edits when there are reference images.

    The reference images are uploaded, not described: ``gpt-image-*`` models (and models
    of compatible servers) get every one; ``dall-e-*`` models get the first only,
    center-cropped to a square RGBA PNG, because dall-e-2's edits take exactly one such
    image. dall-e-2 repaints only the transparent parts of it, and OpenAI's edits take
    no dall-e-3 (the server refuses it: a non-retryable error), so frames that must
    keep their references' looks want a gpt-image model.

    The returned image is RGB and exactly the requested size: the API's image (at the
    closest size it accepts, see :func:`api_size_for`) is center-cropped to the requested
    aspect ratio and resized. ``response_format="b64_json"`` is sent except to
    ``gpt-image-*`` models, which always answer in base64 and reject the parameter.
    """

    role = "image"

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
        call: ProviderCall | None = None,
    ) -> ImageOutput:
        """One image for ``prompt`` made with the reference images; raises ProviderError
        (see :mod:`vimax_nb.providers.openai`).

        The references are read before anything is sent (a missing one is a
        non-retryable error). Then ``call.cancel_token`` is checked (also while the rate
        limiter waits) and ``call.authorize`` is given one image, so a
        :class:`~vimax_nb.providers.base.BudgetExceeded` means nothing was sent; after
        the answer ``call.record`` gets one image and the tokens the server reports.
        """
        call = call or ProviderCall()
        try:
            width, height = parse_size(size)
        except ValueError as exc:
            raise ProviderError(str(exc), provider=PROVIDER) from exc
        model = self.model
        api_w, api_h = api_size_for(width, height, model)
        references = [read_reference(path, PROVIDER) for path in reference_image_paths]
        image: Upload | list[Upload] | None = None
        if references and model.startswith("dall-e"):
            image = _square_png(references[0], min(api_w, api_h))
        elif references:
            image = [(r.path.name, r.data, r.mime_type) for r in references]
        response_format: Literal["b64_json"] | openai.Omit = (
            openai.omit if model.startswith("gpt-image") else "b64_json"
        )
        what = f"image {'generation' if image is None else 'edit'} with model {model!r}"
        self.rate_limiter.acquire(call.cancel_token)
        call.authorize(Usage(PROVIDER, model, "image", images=1))
        try:
            result: ImagesResponse
            if image is not None:
                result = self.client.images.edit(
                    model=model,
                    image=image,
                    prompt=prompt,
                    size=f"{api_w}x{api_h}",
                    n=1,
                    response_format=response_format,
                )
            else:
                result = self.client.images.generate(
                    model=model,
                    prompt=prompt,
                    size=f"{api_w}x{api_h}",
                    n=1,
                    response_format=response_format,
                )
        except openai.OpenAIError as exc:
            raise self._error(exc, what) from exc
        tokens = result.usage
        call.record(
            Usage(
                PROVIDER,
                model,
                "image",
                images=1,
                input_tokens=tokens.input_tokens if tokens else 0,
                output_tokens=tokens.output_tokens if tokens else 0,
            )
        )
        return ImageOutput(_decode(result, what, (width, height)))


def _decode(result: ImagesResponse, what: str, size: tuple[int, int]) -> Image.Image:
    """The answer's image as RGB, center-cropped and resized to ``size``; no image or an
    undecodable one is a retryable ProviderError."""
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
    return ImageOps.fit(image.convert("RGB"), size, method=Image.Resampling.LANCZOS)
