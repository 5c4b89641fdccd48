"""The OpenAI providers' settings: :class:`OpenAIConfig` (this module itself uses nothing
of the ``openai`` package)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..base import ProviderError

__all__ = ["API_KEY_HINT", "PROVIDER", "OpenAIConfig"]

PROVIDER = "openai"
API_KEY_HINT = (
    "set the OPENAI_API_KEY (or VIMAX_OPENAI_API_KEY) environment variable, or api_key "
    "(or api_key_env) in the providers file; a local server that checks no key accepts any "
    "non-empty one"
)


class OpenAIConfig(BaseModel):
    """Where the API is and how to talk to it; immutable.

    ``base_url=None`` means the client's default (``OPENAI_BASE_URL`` or api.openai.com);
    ``api_key=None`` means the ``OPENAI_API_KEY`` environment variable, read when a
    provider is made. ``requests_per_minute=None`` turns the rate limiter off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    chat_model: str = "gpt-4o-mini"
    image_model: str = "gpt-image-1"
    requests_per_minute: float | None = Field(default=60, gt=0)
    timeout: float = Field(default=120.0, gt=0)
    max_reasks: int = Field(default=2, ge=0)
    organization: str | None = None

    @classmethod
    def from_env(
        cls, prefix: str = "VIMAX_OPENAI_", environ: Mapping[str, str] | None = None
    ) -> OpenAIConfig:
        """A config from ``{prefix}BASE_URL``, ``API_KEY``, ``CHAT_MODEL``, ``IMAGE_MODEL``,
        ``RPM`` and ``TIMEOUT``; BASE_URL and API_KEY fall back to ``OPENAI_BASE_URL`` and
        ``OPENAI_API_KEY``. Unset or empty variables keep the defaults; ``RPM`` may be
        ``none``/``off``/``0`` for no limit. Raises ValueError naming a malformed variable.
        """
        env = os.environ if environ is None else environ

        def get(name: str, fallback: str | None = None) -> str | None:
            value = env.get(prefix + name) or (env.get(fallback) if fallback else None)
            return value.strip() if value and value.strip() else None

        def number(name: str) -> float | None:
            raw = get(name)
            if raw is None:
                return None
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"{prefix}{name} must be a number (got {raw!r})") from None

        values: dict[str, Any] = {
            "base_url": get("BASE_URL", "OPENAI_BASE_URL"),
            "api_key": get("API_KEY", "OPENAI_API_KEY"),
        }
        for field, name in (("chat_model", "CHAT_MODEL"), ("image_model", "IMAGE_MODEL")):
            if (value := get(name)) is not None:
                values[field] = value
        rpm = get("RPM")
        if rpm is not None:
            values["requests_per_minute"] = (
                None if rpm.lower() in {"none", "off", "0"} else number("RPM")
            )
        if (timeout := number("TIMEOUT")) is not None:
            values["timeout"] = timeout
        return cls(**values)

    def resolve_api_key(self) -> str:
        """The API key to use; raises a non-retryable ProviderError saying how to set one."""
        key = self.api_key or os.environ.get("OPENAI_API_KEY", "").strip()
        if not key:
            raise ProviderError(f"no OpenAI API key: {API_KEY_HINT}", provider=PROVIDER)
        return key
