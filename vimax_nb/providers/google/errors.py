"""The Google provider's failures as :class:`~vimax_nb.providers.base.ProviderError` s:
:func:`map_error` for what the SDK raises (the table is in the docstring of
:mod:`vimax_nb.providers.google`), and :data:`SDK_ERRORS`, what to catch around a call."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

import google.auth.exceptions as auth_errors
from google.genai import errors as genai_errors

from ..base import ProviderError
from .config import KEY_VARIABLES, PROVIDER, GoogleConfig

__all__ = ["SDK_ERRORS", "map_error"]


def _classes(names: Iterable[tuple[str, str]]) -> tuple[type[Exception], ...]:
    """The exception classes of the HTTP libraries that are installed (google-genai
    sends with httpx or httpx2, google-auth with requests)."""
    found: list[type[Exception]] = []
    for module, name in names:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_TIMEOUTS = _classes([("httpx", "TimeoutException"), ("httpx2", "TimeoutException")])
_TIMEOUTS += (*_classes([("requests", "Timeout")]), auth_errors.TimeoutError)
_TRANSPORT = _classes([("httpx", "HTTPError"), ("httpx2", "HTTPError")])
_TRANSPORT += (*_classes([("requests", "RequestException")]), auth_errors.TransportError)

#: What a call through the SDK may raise that :func:`map_error` turns into a
#: ProviderError (ValueError: the SDK's checks of a request or an answer).
SDK_ERRORS: tuple[type[Exception], ...] = (
    genai_errors.APIError,
    auth_errors.GoogleAuthError,
    *_TRANSPORT,
    ValueError,
)

_CREDENTIALS_HINT = (
    "run gcloud auth application-default login, or set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service account key file"
)


def _quota_ids(details: Any) -> list[str]:
    error = details.get("error", details) if isinstance(details, Mapping) else None
    found: list[str] = []
    for detail in error.get("details", []) if isinstance(error, Mapping) else []:
        for violation in detail.get("violations", []) if isinstance(detail, Mapping) else []:
            if isinstance(violation, Mapping):
                found.append(f"{violation.get('quotaId', '')} {violation.get('quotaMetric', '')}")
    return found


def _quota_exhausted(exc: genai_errors.APIError, message: str) -> bool:
    """Whether a 429 says a quota is used up (a daily quota, a quota of 0, billing)
    rather than that requests come too fast."""
    ids = " ".join(_quota_ids(exc.details)).lower()
    lowered = message.lower()
    if "perday" in ids or "per_day" in ids or "limit: 0" in lowered:
        return True
    if "perminute" in ids or "per_minute" in ids:
        return False
    return any(word in lowered for word in ("quota", "billing"))


def _access_hint(config: GoogleConfig) -> str:
    if not config.vertexai:
        return f"check the API key ({' or '.join(KEY_VARIABLES)}, or api_key in the settings)"
    if config.project:
        return (
            f"the Google credentials need access to Vertex AI in project {config.project} "
            f"(role Vertex AI User, API aiplatform.googleapis.com enabled): {_CREDENTIALS_HINT}"
        )
    return (
        "Vertex AI express mode needs a Google Cloud API key allowed to use Vertex AI (a Gemini "
        "API key from AI Studio usually is not); or use project mode with GOOGLE_CLOUD_PROJECT"
    )


def _api_error(exc: genai_errors.APIError, what: str, config: GoogleConfig) -> ProviderError:
    status = exc.code
    message = " ".join(str(exc.message or exc.details or "").split())[:800]
    text = f"{what}: HTTP {status} {exc.status or ''}".rstrip() + f": {message}"
    retryable = status in (408, 409, 429) or status >= 500
    if status == 429 and _quota_exhausted(exc, message):
        retryable = False
        text += f" (the quota of {config.mode} is used up: check its quota and billing)"
    elif status in (401, 403) or (status == 400 and "api key" in message.lower()):
        text += f" ({_access_hint(config)})"
    elif status == 404:
        text += (
            f" (check the model name {config.model!r}"
            + (f" and base_url {config.base_url}" if config.base_url else "")
            + (f"; is it offered in {config.location}?" if config.location else "")
            + ")"
        )
    return ProviderError(text, retryable=retryable, provider=PROVIDER)


def map_error(exc: Exception, what: str, config: GoogleConfig) -> ProviderError:
    """The ProviderError for ``exc`` raised by a call ``what`` (``"chat develop_story
    with gemini-2.5-flash"``) made with ``config``; retryable or not as the table in
    :mod:`vimax_nb.providers.google` says, each message saying what to fix."""
    where = config.base_url or config.mode
    if isinstance(exc, genai_errors.APIError):
        return _api_error(exc, what, config)
    if isinstance(exc, _TIMEOUTS):
        return ProviderError(
            f"{what}: no answer from {where} within {config.timeout:g} s",
            retryable=True,
            provider=PROVIDER,
        )
    if isinstance(exc, _TRANSPORT):
        detail = str(exc) or type(exc).__name__
        return ProviderError(
            f"{what}: {where} is unreachable ({detail})", retryable=True, provider=PROVIDER
        )
    if isinstance(exc, auth_errors.DefaultCredentialsError):
        return ProviderError(
            f"{what}: no Google credentials for {config.mode}: {_CREDENTIALS_HINT} ({exc})",
            provider=PROVIDER,
        )
    if isinstance(exc, auth_errors.RefreshError):
        return ProviderError(
            f"{what}: the Google credentials were refused: {exc} ({_CREDENTIALS_HINT})",
            retryable=bool(getattr(exc, "retryable", False)),
            provider=PROVIDER,
        )
    return ProviderError(f"{what}: {type(exc).__name__}: {exc}", provider=PROVIDER)
