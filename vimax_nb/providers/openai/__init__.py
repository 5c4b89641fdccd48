"""Providers backed by the OpenAI API, or any server that speaks its HTTP protocol.

Importing this package imports the ``openai`` client library (an optional extra), so
:func:`vimax_nb.providers.build_model` imports it only when an OpenAI provider is asked
for; :func:`build` makes its models from a role's
:class:`~vimax_nb.providers.settings.ProviderSettings`. Its modules: ``config``
(:class:`OpenAIConfig`), ``client`` (what both models share: the client, the probe and
the error mapping below), ``chat`` and ``images``.

Supported:

* :class:`OpenAIChatModel` - structured chat answers through
  ``POST /chat/completions`` with a ``json_schema`` response format (non-strict), parsed
  into the request's pydantic model; invalid answers are re-asked up to
  ``OpenAIConfig.max_reasks`` times with the validation errors quoted.
* :class:`OpenAIImageModel` - ``POST /images/generations`` without reference images,
  ``POST /images/edits`` with them uploaded (every one to ``gpt-image-*`` models, the
  first only, as a square PNG, to ``dall-e-*`` models); base64 answers only, cropped
  and resized to exactly the size asked for.
* ``probe()`` of both: ``GET /models/{model}``.
* Every call takes a :class:`~vimax_nb.providers.base.ProviderCall`: its cancel token
  is checked before each request, its budget authorizes each request before it is
  sent, and the usage the server reports (tokens; one image) is recorded.

Not supported: streaming, tool calls, image masks and variations, URL image answers,
video (OpenAI retired its Sora video API in September 2026). The client never retries
(``max_retries=0``): every failure becomes a
:class:`~vimax_nb.providers.base.ProviderError` whose ``retryable`` flag tells the
coordinator whether to try again. Models block; call them from worker threads.

Errors, all ``ProviderError(provider="openai")`` quoting the server's message:

* retryable: timeouts (``OpenAIConfig.timeout``), connection failures, HTTP 408, 409,
  429 and >= 500, answers still invalid after ``max_reasks`` re-asks (the last
  validation errors quoted), no choices, no image, an undecodable image;
* not retryable: HTTP 429 ``insufficient_quota`` (hint: billing), 401 (hint: how to set
  the API key), 403 (hint: access to the model), 404 (hint: model name and base_url),
  other 4xx, a refusal, a missing API key, a malformed size, inputs that are not
  JSON-able, a reference image that cannot be read, a request the budget refuses
  (:class:`~vimax_nb.providers.base.BudgetExceeded`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..base import Role
from ..settings import ProviderSettings
from .chat import OpenAIChatModel
from .config import PROVIDER, OpenAIConfig
from .images import OpenAIImageModel

__all__ = ["OpenAIChatModel", "OpenAIConfig", "OpenAIImageModel", "build"]

#: ``ProviderSettings.options`` that :func:`build` passes on to :class:`OpenAIConfig`.
_OPTIONS = ("organization", "max_reasks")


def build(
    role: Role, settings: ProviderSettings, environ: Mapping[str, str] | None = None
) -> OpenAIChatModel | OpenAIImageModel:
    """The OpenAI model of ``role``, configured by ``settings`` over
    :meth:`OpenAIConfig.from_env` of ``environ`` (None: the process's environment).

    ``settings.model`` is the chat or image model; ``base_url``, ``requests_per_minute``
    and ``timeout`` replace the environment's when set; the API key is ``settings.key``
    with ``VIMAX_OPENAI_API_KEY`` and ``OPENAI_API_KEY`` as fallbacks; ``options`` may
    hold ``organization`` and ``max_reasks``. Sends nothing. Raises ValueError for the
    video role, an unknown option or a malformed variable, and a non-retryable
    ProviderError when there is no API key.
    """
    if role == "video":
        raise ValueError(
            "openai has no video model: OpenAI retired its Sora video API in September 2026; "
            "use google or replicate"
        )
    unknown = sorted(set(settings.options) - set(_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)}; openai takes {', '.join(_OPTIONS)}"
        )
    config = OpenAIConfig.from_env(environ=environ)
    changes: dict[str, Any] = {
        "api_key": settings.require_key(
            environ, "VIMAX_OPENAI_API_KEY", "OPENAI_API_KEY", provider=PROVIDER
        ),
        **settings.options,
    }
    if settings.model:
        changes["chat_model" if role == "chat" else "image_model"] = settings.model
    if settings.base_url:
        changes["base_url"] = settings.base_url
    if settings.requests_per_minute is not None:
        changes["requests_per_minute"] = settings.requests_per_minute
    if settings.timeout is not None:
        changes["timeout"] = settings.timeout
    config = OpenAIConfig.model_validate({**config.model_dump(), **changes})
    return OpenAIChatModel(config) if role == "chat" else OpenAIImageModel(config)
