"""The Gemini image model ("Nano Banana"): :class:`GoogleImageModel`, ``generateContent``
with the IMAGE response modality, the reference images sent before the prompt, the
answer fitted to the size asked for (see :mod:`vimax_nb.providers.google`)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from google.genai import types
from PIL import Image, ImageOps, UnidentifiedImageError

from ..base import ImageOutput, PathLike, ProviderCall, ProviderError, Usage, parse_size
from ..media import read_reference
from .answers import answer_image, answer_usage, describe_finish, refusal_of
from .client import GoogleModel
from .config import PROVIDER
from .errors import SDK_ERRORS

__all__ = ["ASPECT_RATIOS", "GoogleImageModel", "aspect_ratio_for"]

#: The aspect ratios ``ImageConfig.aspect_ratio`` accepts.
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9")
#: Tokens Gemini counts for one image of up to 384 px a side (larger ones are tiled).
_IMAGE_TOKENS = 258


def aspect_ratio_for(width: int, height: int) -> str:
    """The accepted aspect ratio closest to ``width:height`` (on a log scale)."""

    def distance(ratio: str) -> float:
        w, h = (int(n) for n in ratio.split(":"))
        return abs(math.log((w / h) / (width / height)))

    return min(ASPECT_RATIOS, key=distance)


class GoogleImageModel(GoogleModel):
    """An :class:`~vimax_nb.providers.base.ImageModel` on Gemini image models.

    The returned image is RGB and exactly the requested size: the model's image (at the
    closest aspect ratio it accepts, see :func:`aspect_ratio_for`) is center-cropped to
    the requested aspect ratio and resized.
    """

    role = "image"

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
        call: ProviderCall | None = None,
    ) -> ImageOutput:
        """One image for ``prompt``, the reference images sent as inline image parts
        before the prompt's text part (so a frame keeps its characters' looks).

        One request, sent after the cancel token is checked, the rate limiter lets it
        through and ``call.authorize`` accepted its estimate (one image, and input
        tokens); ``call.record`` gets one image and the tokens reported. An answer
        without an image is a non-retryable ProviderError when it was refused (quoting
        the reason), else a retryable one. A malformed size or an unreadable reference
        is not retryable and sends nothing.
        """
        call = call or ProviderCall()
        try:
            width, height = parse_size(size)
        except ValueError as exc:
            raise ProviderError(str(exc), provider=PROVIDER) from None
        references = [read_reference(path, PROVIDER) for path in reference_image_paths]
        parts = [types.Part.from_bytes(data=r.data, mime_type=r.mime_type) for r in references]
        parts.append(types.Part.from_text(text=prompt))
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=aspect_ratio_for(width, height)),
            seed=call.seed % 2**31,
            candidate_count=1,
            automatic_continuation=False,
        )
        what = f"image with {self.model}"
        call.raise_if_cancelled()
        self.rate_limiter.acquire(call.cancel_token)
        tokens = math.ceil(len(prompt) / 4) + _IMAGE_TOKENS * len(references)
        call.authorize(Usage(PROVIDER, self.model, "image", input_tokens=tokens, images=1))
        try:
            response = self.client.models.generate_content(
                model=self.model,
                contents=[types.Content(role="user", parts=parts)],
                config=config,
            )
        except SDK_ERRORS as exc:
            raise self.error(exc, what) from exc
        data = answer_image(response)
        call.record(answer_usage(response, self.model, "image", images=1 if data else 0))
        if data is None:
            refusal = refusal_of(response)
            if refusal is not None:
                raise ProviderError(f"{what}: the model refused: {refusal}", provider=PROVIDER)
            raise ProviderError(
                f"{what}: the answer had no image ({describe_finish(response)})",
                retryable=True,
                provider=PROVIDER,
            )
        try:
            with Image.open(io.BytesIO(data)) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise ProviderError(
                f"{what}: could not decode the image: {exc}", retryable=True, provider=PROVIDER
            ) from None
        return ImageOutput(ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS))
