"""The OpenAI providers' settings and request pacing: :class:`OpenAIConfig` and
:class:`RateLimiter` (this module itself uses nothing of the ``openai`` package)."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...shared import CancelToken, TaskCanceled
from ..base import ProviderError

__all__ = ["API_KEY_HINT", "PROVIDER", "OpenAIConfig", "RateLimiter"]

PROVIDER = "openai"
API_KEY_HINT = (
    "set the OPENAI_API_KEY (or VIMAX_OPENAI_API_KEY) environment variable, or pass "
    "OpenAIConfig(api_key=...); a local server that checks no key accepts any non-empty one"
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


class RateLimiter:
    """Spaces requests at least ``60 / requests_per_minute`` seconds apart, across threads.

    Each :meth:`acquire` reserves the next free slot under a lock, so concurrent callers
    get distinct slots in arrival order; there is no burst allowance. Waiting blocks the
    calling thread (never use it on an event loop). ``clock`` and ``sleep`` are injectable
    for tests; with a cancel token the wait sleeps at most ``poll_interval`` at a time.
    """

    def __init__(
        self,
        requests_per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = 0.05,
    ) -> None:
        if requests_per_minute is not None and not requests_per_minute > 0:
            raise ValueError(f"requests_per_minute must be > 0 or None, not {requests_per_minute}")
        self.interval = 0.0 if requests_per_minute is None else 60.0 / requests_per_minute
        self._clock = clock
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._next_free = -math.inf
        self._lock = threading.Lock()

    def acquire(self, cancel_token: CancelToken | None = None) -> None:
        """Block until this caller may send a request.

        Raises :class:`TaskCanceled` (within ``poll_interval``) once ``cancel_token`` is
        set; a canceled caller gives its slot back if nobody reserved one after it.
        """
        if cancel_token is not None:
            cancel_token.raise_if_cancelled()
        if self.interval == 0.0:
            return
        with self._lock:
            slot = max(self._clock(), self._next_free)
            self._next_free = slot + self.interval
        try:
            while (remaining := slot - self._clock()) > 0:
                if cancel_token is None:
                    self._sleep(remaining)
                else:
                    self._sleep(min(remaining, self._poll_interval))
                    cancel_token.raise_if_cancelled()
        except TaskCanceled:
            with self._lock:
                if self._next_free == slot + self.interval:
                    self._next_free = slot
            raise
