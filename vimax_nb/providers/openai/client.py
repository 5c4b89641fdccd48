"""What the OpenAI models share: the client, made once per model, the mapping of the
client's errors to :class:`~vimax_nb.providers.base.ProviderError`, and the probe."""

from __future__ import annotations

from collections.abc import Mapping

import openai

from ..base import ProviderError, Role
from ..pacing import RateLimiter
from .config import API_KEY_HINT, PROVIDER, OpenAIConfig

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
    """The client, config and rate limiter of one OpenAI model, its ``provider`` and
    ``model`` names (``model`` is the config's model for the subclass's ``role``) and
    :meth:`probe`.

    ``config=None`` reads :meth:`OpenAIConfig.from_env`; without a ``client`` one is made
    that never retries (``max_retries=0``), which raises a non-retryable ProviderError
    when no API key is set; without a ``rate_limiter`` one of the config's rate is made.
    """

    provider = PROVIDER
    role: Role

    def __init__(
        self,
        config: OpenAIConfig | None = None,
        *,
        client: openai.OpenAI | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.config = OpenAIConfig.from_env() if config is None else config
        self.model = self.config.chat_model if self.role == "chat" else self.config.image_model
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

    def probe(self) -> None:
        """Read the model's description (``GET /models/{model}``, free and not paced);
        raises the ProviderError of :func:`map_error` when the server cannot be reached,
        does not know the model (404) or refuses the key (401).

        Compatible servers that cannot describe one model (vLLM answers 404) pass when
        their list of models (``GET /models``) names it.
        """
        what = f"probing model {self.model!r}"
        try:
            self.client.models.retrieve(self.model)
        except openai.APIStatusError as exc:
            if exc.status_code not in (404, 405, 501) or not self._listed():
                raise self._error(exc, what) from exc
        except openai.OpenAIError as exc:
            raise self._error(exc, what) from exc

    def _listed(self) -> bool:
        try:
            return any(listed.id == self.model for listed in self.client.models.list())
        except openai.OpenAIError:
            return False

    def _error(self, exc: openai.OpenAIError, what: str) -> ProviderError:
        return map_error(exc, what, self.config, str(self.client.base_url))
