"""Providers backed by the OpenAI API, or any server that speaks its HTTP protocol.

Importing this package imports the ``openai`` client library (an optional extra), so
:func:`vimax_nb.providers.make_providers` imports it only when an OpenAI provider is
asked for. Its modules: ``config`` (settings and the rate limiter), ``client`` (the
client both providers share and the error mapping below), ``chat`` and ``images``.

Supported:

* :class:`OpenAIChatModel` - structured chat answers through
  ``POST /chat/completions`` with a ``json_schema`` response format (non-strict), parsed
  into the request's pydantic model; invalid answers are re-asked up to
  ``OpenAIConfig.max_reasks`` times with the validation errors quoted.
* :class:`OpenAIImageModel` - ``POST /images/generations``, base64 answers only,
  cropped and resized to exactly the size asked for. Reference images are named in
  the prompt, not uploaded (no image editing endpoint is used).
* :class:`RateLimiter` - a thread-safe requests-per-minute limiter shared by the
  calls of one provider (or several, if passed the same instance).

Not supported: streaming, tool calls, image edits/variations, URL image answers,
video. The client never retries (``max_retries=0``): every failure becomes a
:class:`~vimax_nb.providers.base.ProviderError` whose ``retryable`` flag tells the
coordinator whether to try again. Providers block; call them from worker threads.

Errors, all ``ProviderError(provider="openai")`` quoting the server's message:

* retryable: timeouts (``OpenAIConfig.timeout``), connection failures, HTTP 408, 409,
  429 and >= 500, answers still invalid after ``max_reasks`` re-asks (the last
  validation errors quoted), no choices, no image, an undecodable image;
* not retryable: HTTP 429 ``insufficient_quota`` (hint: billing), 401 (hint: how to set
  the API key), 403 (hint: access to the model), 404 (hint: model name and base_url),
  other 4xx, a refusal, a missing API key, a malformed size, inputs that are not JSON-able.
"""

from __future__ import annotations

from .chat import OpenAIChatModel
from .config import OpenAIConfig, RateLimiter
from .images import OpenAIImageModel

__all__ = ["OpenAIChatModel", "OpenAIConfig", "OpenAIImageModel", "RateLimiter"]
