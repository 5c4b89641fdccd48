"""What the Google models share: the ``google-genai`` client made from a
:class:`~.config.GoogleConfig`, the rate limiter, the names and :meth:`GoogleModel.probe`."""

from __future__ import annotations

from google import genai
from google.genai import types

from ..base import ProviderError, Role
from ..pacing import RateLimiter
from .config import PROVIDER, GoogleConfig
from .errors import SDK_ERRORS, map_error

__all__ = ["GoogleModel", "make_client"]


def make_client(config: GoogleConfig) -> genai.Client:
    """A client for ``config``'s backend that never retries on its own (a retried paid
    request could be paid twice; the coordinator retries on ``retryable`` errors).

    Sends nothing: in project mode the credentials are found (google.auth defaults) and
    refreshed at the first request. The SDK's own ValueErrors become a non-retryable
    ProviderError.
    """
    http_options = types.HttpOptions(
        base_url=config.base_url,
        timeout=max(1, round(config.timeout * 1000)),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    try:
        if not config.vertexai:
            return genai.Client(vertexai=False, api_key=config.api_key, http_options=http_options)
        if config.project:
            return genai.Client(
                vertexai=True,
                project=config.project,
                location=config.location,
                http_options=http_options,
            )
        return genai.Client(vertexai=True, api_key=config.api_key, http_options=http_options)
    except ValueError as exc:
        raise ProviderError(
            f"google-genai refused the settings: {exc}", provider=PROVIDER
        ) from None


class GoogleModel:
    """One Google model: its ``config``, ``client`` and ``rate_limiter`` (paces every
    paid request of this model), the ``provider`` and ``model`` names and :meth:`probe`.

    Making one sends nothing; it raises a non-retryable ProviderError when the SDK
    refuses the settings.
    """

    provider = PROVIDER
    role: Role

    def __init__(self, config: GoogleConfig) -> None:
        self.config = config
        self.model = config.model
        self.client = make_client(config)
        self.rate_limiter = RateLimiter(config.requests_per_minute)

    def probe(self) -> None:
        """Read the model's description (``models.get``: free, not paced); raises the
        ProviderError of :func:`~.errors.map_error` when the service is unreachable,
        does not know the model (404) or refuses the key or credentials (401/403)."""
        try:
            self.client.models.get(model=self.model)
        except SDK_ERRORS as exc:
            raise self.error(exc, f"probing {self.model}") from exc

    def error(self, exc: Exception, what: str) -> ProviderError:
        """``exc`` of a call ``what`` as a ProviderError (see :func:`~.errors.map_error`)."""
        return map_error(exc, what, self.config)
