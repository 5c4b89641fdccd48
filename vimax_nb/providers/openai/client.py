"""What the OpenAI providers share: the client, made once per provider, and the mapping
of the client's errors to :class:`~vimax_nb.providers.base.ProviderError`."""

from __future__ import annotations

from collections.abc import Mapping

import openai

from ..base import ProviderError
from .config import API_KEY_HINT, PROVIDER, OpenAIConfig, RateLimiter

__all__ = ["OpenAIProvider", "map_error"]


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return exc.message


def map_error(exc: openai.OpenAIError, what: str, config: OpenAIConfig, url: str) -> ProviderError:
    """The ProviderError for an OpenAI client error, as listed in the docstring of
    :mod:`vimax_nb.providers.openai`; ``what`` names the call, ``url`` the server."""
    if isinstance(exc, openai.APITimeoutError):
        text, retryable = f"{what}: no answer from {url} within {config.timeout:g} s", True
    elif isinstance(exc, openai.APIConnectionError):
        text, retryable = f"{what}: could not reach {url} ({exc.message})", True
    elif isinstance(exc, openai.APIStatusError):
        status, detail = exc.status_code, _server_message(exc)
        text = f"{what}: HTTP {status}: {detail}"
        retryable = status in (408, 409, 429) or status >= 500
        if status == 429 and exc.code == "insufficient_quota":
            retryable, text = False, f"{text} (the account is out of quota: check its billing)"
        elif status == 401:
            text = f"{text} (check the API key: {API_KEY_HINT})"
        elif status == 403:
            text = f"{text} (the key may have no access to this model or endpoint)"
        elif status == 404:
            text = f"{text} (check the model name and base_url {url})"
    else:
        text, retryable = f"{what}: {exc}", False
    return ProviderError(text, retryable=retryable, provider=PROVIDER)


class OpenAIProvider:
    """The client, config and rate limiter both providers share.

    ``config=None`` reads :meth:`OpenAIConfig.from_env`; without a ``client`` one is made
    that never retries (``max_retries=0``), which raises a non-retryable ProviderError
    when no API key is set; without a ``rate_limiter`` one of the config's rate is made.
    """

    def __init__(
        self,
        config: OpenAIConfig | None = None,
        *,
        client: openai.OpenAI | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.config = OpenAIConfig.from_env() if config is None else config
        if client is None:
            client = openai.OpenAI(
                api_key=self.config.resolve_api_key(),
                base_url=self.config.base_url,
                organization=self.config.organization,
                timeout=self.config.timeout,
                max_retries=0,
            )
        self.client = client
        self.rate_limiter = rate_limiter or RateLimiter(self.config.requests_per_minute)

    def _error(self, exc: openai.OpenAIError, what: str) -> ProviderError:
        return map_error(exc, what, self.config, str(self.client.base_url))
