"""The Replicate provider's failures as :class:`~vimax_nb.providers.base.ProviderError` s:
:func:`map_error` for what a request through the SDK raises, :func:`prediction_error`
for a prediction that did not succeed (the table is in the docstring of
:mod:`vimax_nb.providers.replicate`), and :data:`SDK_ERRORS`, what to catch around a
request."""

from __future__ import annotations

import httpx
from replicate.exceptions import ReplicateError
from replicate.prediction import Prediction

from ..base import ProviderError
from .config import PROVIDER, ReplicateConfig

__all__ = ["SDK_ERRORS", "map_error", "prediction_error"]

#: What a request through the SDK may raise that :func:`map_error` turns into a
#: ProviderError (ValueError: an answer that is not the JSON the SDK expects).
SDK_ERRORS: tuple[type[Exception], ...] = (ReplicateError, httpx.HTTPError, ValueError)

_TOKEN_HINT = (
    "set REPLICATE_API_TOKEN in the server's environment to a token from "
    "https://replicate.com/account/api-tokens, or api_key/api_key_env in the providers file"
)
#: Words of a prediction's error that mean the model or Replicate refused the content.
_REFUSALS = ("nsfw", "flagged", "sensitive", "safety", "content policy", "moderation")
#: Words of a prediction's error that mean its input is wrong (another try fails again).
_INVALID = ("invalid input", "validation", "is required", "not supported", "must be")


def _flat(text: object, limit: int = 600) -> str:
    return " ".join(str(text or "").split())[:limit]


def _status_error(status: int, detail: str, what: str, config: ReplicateConfig) -> ProviderError:
    text = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
    retryable = status in (408, 409, 429) or status >= 500
    if status == 401:
        text += f" (the API token was refused: {_TOKEN_HINT})"
    elif status == 402:
        text += " (the Replicate account is out of credit: add some at https://replicate.com/account/billing)"
    elif status == 403:
        text += f" (the API token may not use {config.slug})"
    elif status == 404:
        text += (
            f" (check the model name {config.model!r}: it is owner/name as in "
            f"https://replicate.com/{config.slug}, and base_url {config.base_url})"
        )
    elif status == 422:
        text = (
            f"{what}: {config.slug} refused the input (HTTP 422): {detail or 'no detail given'} "
            "(see the model's API page for its inputs; options.input and the *_key options "
            "change what is sent)"
        )
    elif status == 429:
        text += " (rate limited: lower requests_per_minute or VIMAX_REPLICATE_RPM)"
    return ProviderError(text, retryable=retryable, provider=PROVIDER)


def map_error(exc: Exception, what: str, config: ReplicateConfig) -> ProviderError:
    """The ProviderError for ``exc`` raised by a request ``what`` (``"video with
    bytedance/seedance-1-lite"``) made with ``config``; retryable or not as the table in
    :mod:`vimax_nb.providers.replicate` says, each message saying what to fix."""
    if isinstance(exc, ReplicateError):
        return _status_error(exc.status or 0, _flat(exc.detail or exc.title), what, config)
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        try:
            detail = _flat(response.text, 300)
        except httpx.ResponseNotRead:  # a download: its body was streamed, not kept
            detail = response.reason_phrase
        return _status_error(response.status_code, detail, what, config)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(
            f"{what}: no answer from {config.base_url} within {config.timeout:g} s",
            retryable=True,
            provider=PROVIDER,
        )
    if isinstance(exc, httpx.HTTPError):
        detail = str(exc) or type(exc).__name__
        return ProviderError(
            f"{what}: {config.base_url} is unreachable ({detail})",
            retryable=True,
            provider=PROVIDER,
        )
    return ProviderError(
        f"{what}: unexpected answer from {config.base_url}: {type(exc).__name__}: {_flat(exc)}",
        retryable=True,
        provider=PROVIDER,
    )


def prediction_error(prediction: Prediction, what: str) -> ProviderError:
    """The ProviderError of a prediction that ended without succeeding: canceled
    elsewhere (retryable), refused as unsafe content or invalid input (not retryable,
    with the model's reason), or failed otherwise (retryable, with its error)."""
    reason = _flat(prediction.error) or "no reason given"
    if prediction.status == "canceled":
        return ProviderError(
            f"{what}: the prediction {prediction.id} was canceled outside vimax-nb; the "
            "next attempt starts a new one",
            retryable=True,
            provider=PROVIDER,
        )
    lowered = reason.lower()
    if any(word in lowered for word in _REFUSALS):
        return ProviderError(
            f"{what}: the model refused the content (prediction {prediction.id}): {reason}",
            provider=PROVIDER,
        )
    if any(word in lowered for word in _INVALID):
        return ProviderError(
            f"{what}: the model rejected the input (prediction {prediction.id}): {reason}",
            provider=PROVIDER,
        )
    return ProviderError(
        f"{what}: the prediction {prediction.id} failed: {reason}",
        retryable=True,
        provider=PROVIDER,
    )
