"""What provider calls cost: :class:`ModelPrices` per model and the :class:`PriceTable`
that prices a :class:`~vimax_nb.providers.base.Usage`.

The defaults are public list prices in US dollars as of late 2026, rounded; they are
estimates for budgeting, not invoices. A providers file (``prices:``) overrides them per
model, and adds models the table does not know; a model with no price costs 0 and is
named by :meth:`PriceTable.unpriced` so that a budget is never silently meaningless.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from .base import Usage

__all__ = ["DEFAULT_PRICES", "ModelPrices", "PriceTable"]


class ModelPrices(BaseModel):
    """One model's prices: per million input and output tokens, per image, per second
    of video."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: float = Field(default=0.0, ge=0)
    output_tokens: float = Field(default=0.0, ge=0)
    image: float = Field(default=0.0, ge=0)
    video_second: float = Field(default=0.0, ge=0)

    def cost(self, usage: Usage) -> float:
        """The price of ``usage`` in US dollars."""
        return (
            usage.input_tokens * self.input_tokens / 1e6
            + usage.output_tokens * self.output_tokens / 1e6
            + usage.images * self.image
            + usage.video_seconds * self.video_second
        )


def _p(**prices: float) -> ModelPrices:
    return ModelPrices(**prices)


#: Model name prefix -> prices; the longest matching prefix wins.
DEFAULT_PRICES: dict[str, ModelPrices] = {
    "gpt-4o-mini": _p(input_tokens=0.15, output_tokens=0.60),
    "gpt-4o": _p(input_tokens=2.50, output_tokens=10.0),
    "gpt-4.1-mini": _p(input_tokens=0.40, output_tokens=1.60),
    "gpt-4.1": _p(input_tokens=2.0, output_tokens=8.0),
    "gpt-image-1": _p(image=0.04),
    "dall-e-3": _p(image=0.04),
    "dall-e-2": _p(image=0.02),
    "gemini-2.5-flash-image": _p(image=0.039),
    "gemini-2.5-flash-lite": _p(input_tokens=0.10, output_tokens=0.40),
    "gemini-2.5-flash": _p(input_tokens=0.30, output_tokens=2.50),
    "gemini-2.5-pro": _p(input_tokens=1.25, output_tokens=10.0),
    # Veo without audio (the google provider asks for none unless generate_audio is set)
    "veo-2": _p(video_second=0.50),
    "veo-3.0-fast": _p(video_second=0.10),
    "veo-3.1-fast": _p(video_second=0.10),
    "veo-3": _p(video_second=0.20),
    "google/veo-3-fast": _p(video_second=0.15),
    "google/veo-3": _p(video_second=0.40),
    "kwaivgi/kling": _p(video_second=0.05),
    "bytedance/seedance-1-lite": _p(video_second=0.036),
    "bytedance/seedance-1-pro": _p(video_second=0.15),
    "wan-video/": _p(video_second=0.02),
    "minimax/hailuo": _p(video_second=0.045),
    "black-forest-labs/flux-kontext": _p(image=0.04),
    "bytedance/seedream": _p(image=0.03),
}


class PriceTable:
    """Prices by model name: overrides first (exact names), then the longest prefix of
    :data:`DEFAULT_PRICES` (or of the overrides) that the model name starts with."""

    def __init__(self, overrides: Mapping[str, ModelPrices] | None = None) -> None:
        self._prices = {**DEFAULT_PRICES, **(overrides or {})}

    def prices_of(self, model: str) -> ModelPrices | None:
        """The prices of ``model``, or None if the table knows none."""
        found = self._prices.get(model)
        if found is not None:
            return found
        matches = [prefix for prefix in self._prices if model.startswith(prefix)]
        return self._prices[max(matches, key=len)] if matches else None

    def price(self, usage: Usage) -> Usage:
        """``usage`` with its ``cost`` filled in (0 for a cached answer or an unknown model)."""
        prices = self.prices_of(usage.model)
        cost = 0.0 if usage.cached or prices is None else prices.cost(usage)
        return dataclasses.replace(usage, cost=cost)

    def unpriced(self, model: str, provider: str) -> bool:
        """Whether calls to ``model`` would be counted as free although they are not
        (a hosted model the table has no price for)."""
        return provider != "procedural" and self.prices_of(model) is None
