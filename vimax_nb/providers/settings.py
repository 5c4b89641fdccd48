"""How one role's provider is configured: :class:`ProviderSettings`.

The same settings come from the server's traits (``c.VimaxApp.video_provider``), from
the environment, and from a providers file (see :mod:`vimax_nb.providers.file`). Each
provider package turns them into a model with its ``build(role, settings, environ)``;
a setting left unset means the provider's default (often an environment variable).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .base import ProviderError

__all__ = ["ProviderSettings"]


class ProviderSettings(BaseModel):
    """One role's provider and how to reach it; immutable.

    ``api_key`` is the key itself (kept out of reprs), ``api_key_env`` the environment
    variable that holds it (as ViMax's configs name it); ``requests_per_minute`` paces
    the provider's requests (None: the provider's default); ``options`` holds what only
    one provider knows (Google's ``vertexai``, ``project``, ``location``; polling
    intervals; a model's extra inputs).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = "procedural"
    model: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    api_key_env: str | None = None
    base_url: str | None = None
    requests_per_minute: float | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)

    def key(self, environ: Mapping[str, str] | None, *fallbacks: str) -> str | None:
        """The API key: ``api_key``, else the variable ``api_key_env`` names, else the
        first of ``fallbacks`` that is set; None when none is. Blank values count as
        unset."""
        env = os.environ if environ is None else environ
        if self.api_key and self.api_key.strip():
            return self.api_key.strip()
        names = (self.api_key_env, *fallbacks) if self.api_key_env else fallbacks
        for name in names:
            value = env.get(name, "") if name else ""
            if value.strip():
                return value.strip()
        return None

    def require_key(self, environ: Mapping[str, str] | None, *fallbacks: str, provider: str) -> str:
        """:meth:`key`, or a non-retryable :class:`ProviderError` naming where to put it."""
        found = self.key(environ, *fallbacks)
        if found is None:
            names = [n for n in (self.api_key_env, *fallbacks) if n]
            raise ProviderError(
                f"no {provider} API key: set {' or '.join(names)} in the server's environment, "
                "or api_key/api_key_env in the providers file",
                provider=provider,
            )
        return found

    def pace(
        self, environ: Mapping[str, str] | None, variable: str, default: float, *, provider: str
    ) -> float | None:
        """Requests per minute: ``requests_per_minute``, else the environment ``variable``
        (``off``, ``none`` or ``0``: no limit), else ``default``. A malformed variable is
        a non-retryable :class:`ProviderError` naming it."""
        if self.requests_per_minute is not None:
            return self.requests_per_minute
        env = os.environ if environ is None else environ
        raw = env.get(variable, "").strip()
        if not raw:
            return default
        if raw.lower() in ("none", "off", "0"):
            return None
        try:
            rpm = float(raw)
        except ValueError:
            rpm = -1.0
        if not rpm > 0:
            raise ProviderError(
                f"{variable} must be a positive number or off (got {raw!r})", provider=provider
            )
        return rpm
