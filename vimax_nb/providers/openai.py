"""Providers backed by the OpenAI API, or any server that speaks its HTTP protocol.

Supported:

* :class:`OpenAIChatModel` - structured chat answers through
  ``POST /chat/completions`` with a ``json_schema`` response format (non-strict), parsed
  into the request's pydantic model; invalid answers are re-asked up to
  ``OpenAIConfig.max_reasks`` times with the validation errors quoted.
* :class:`OpenAIImageGenerator` - ``POST /images/generations``, base64 answers only,
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

import base64
import binascii
import io
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from PIL import Image, ImageOps, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ..coordinator import CancelToken, TaskCanceled
from .base import ChatRequest, ImageOutput, M, PathLike, ProviderError, parse_size

__all__ = ["OpenAIChatModel", "OpenAIConfig", "OpenAIImageGenerator", "RateLimiter"]

PROVIDER = "openai"
_KEY_HINT = (
    "set the OPENAI_API_KEY (or VIMAX_OPENAI_API_KEY) environment variable, or pass "
    "OpenAIConfig(api_key=...); a local server that checks no key accepts any non-empty one"
)
# Sizes the images endpoint accepts, per model family (gpt-image-* and anything unknown
# use the first entry).
_GPT_IMAGE_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
_API_SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    "dall-e-2": ((256, 256), (512, 512), (1024, 1024)),
    "dall-e-3": ((1024, 1024), (1792, 1024), (1024, 1792)),
}


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
            raise ProviderError(f"no OpenAI API key: {_KEY_HINT}", provider=PROVIDER)
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


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return exc.message


def _map_error(exc: openai.OpenAIError, what: str, config: OpenAIConfig, url: str) -> ProviderError:
    """The ProviderError for an OpenAI client error, as listed in the module docstring."""
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
            text = f"{text} (check the API key: {_KEY_HINT})"
        elif status == 403:
            text = f"{text} (the key may have no access to this model or endpoint)"
        elif status == 404:
            text = f"{text} (check the model name and base_url {url})"
    else:
        text, retryable = f"{what}: {exc}", False
    return ProviderError(text, retryable=retryable, provider=PROVIDER)


class _OpenAIProvider:
    """The client, config and rate limiter both providers share."""

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
        return _map_error(exc, what, self.config, str(self.client.base_url))


def _schema_name(model: type[BaseModel]) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", model.__name__)[:64] or "answer"


def _strip_fences(content: str) -> str:
    """The JSON inside a Markdown code fence, which some compatible servers add."""
    match = re.fullmatch(r"\s*```[A-Za-z]*\s*\n(.*?)\n?```\s*", content, re.DOTALL)
    return match[1] if match else content


def _describe(exc: ValidationError, limit: int = 10) -> str:
    errors = exc.errors(include_url=False)
    lines = [
        f"- {'.'.join(str(p) for p in e['loc']) or '(whole answer)'}: {e['msg']}"
        for e in errors[:limit]
    ]
    if len(errors) > limit:
        lines.append(f"- ... and {len(errors) - limit} more")
    return "\n".join(lines)


class OpenAIChatModel(_OpenAIProvider):
    """A :class:`~vimax_nb.providers.base.ChatModel` using chat completions.

    :meth:`complete` returns a validated instance of ``request.response_model`` or
    raises ProviderError; it makes at most ``max_reasks + 1`` requests, each after the
    rate limiter lets it through.
    """

    def complete(self, request: ChatRequest[M], *, cancel_token: CancelToken | None = None) -> M:
        """Ask, validate, re-ask with the errors quoted; see the class docstring.

        ``cancel_token`` is checked before each request (and while the rate limiter
        waits); a request already sent runs to its answer or ``config.timeout``.
        """
        model_cls = request.response_model
        schema = model_cls.model_json_schema()
        try:
            user = json.dumps(
                {"task": request.task, "inputs": to_jsonable_python(request.inputs)},
                ensure_ascii=False,
            )
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"the inputs of {request.task!r} are not JSON-able: {exc}", provider=PROVIDER
            ) from exc
        system = (
            f"{request.instructions}\n\nAnswer with a single JSON object, and nothing else, "
            f"that matches this JSON schema:\n{json.dumps(schema, ensure_ascii=False)}"
        )
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        response_format: ResponseFormatJSONSchema = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(model_cls), "schema": schema, "strict": False},
        }
        last_error = ""
        for attempt in range(self.config.max_reasks + 1):
            content = self._ask(request, messages, response_format, cancel_token)
            try:
                return model_cls.model_validate_json(_strip_fences(content))
            except ValidationError as exc:
                last_error = _describe(exc)
            if attempt < self.config.max_reasks:
                messages.append({"role": "assistant", "content": content})
                messages.append(
                    {
                        "role": "user",
                        "content": "That answer does not match the JSON schema:\n"
                        f"{last_error}\nAnswer again with only the corrected JSON object.",
                    }
                )
        raise ProviderError(
            f"{self.config.chat_model} kept answering {request.task!r} with invalid output "
            f"({self.config.max_reasks + 1} tries); last error:\n{last_error}",
            retryable=True,
            provider=PROVIDER,
        )

    def _ask(
        self,
        request: ChatRequest[M],
        messages: list[ChatCompletionMessageParam],
        response_format: ResponseFormatJSONSchema,
        cancel_token: CancelToken | None,
    ) -> str:
        what = f"chat completion {request.task!r} with model {self.config.chat_model!r}"
        self.rate_limiter.acquire(cancel_token)
        try:
            completion = self.client.chat.completions.create(
                model=self.config.chat_model,
                messages=messages,
                response_format=response_format,
                seed=request.seed,
            )
        except openai.OpenAIError as exc:
            raise self._error(exc, what) from exc
        if not completion.choices:
            raise ProviderError(
                f"{what}: the answer had no choices", retryable=True, provider=PROVIDER
            )
        message = completion.choices[0].message
        if message.refusal:
            raise ProviderError(f"{what}: the model refused: {message.refusal}", provider=PROVIDER)
        return message.content or ""


def api_size_for(width: int, height: int, model: str) -> tuple[int, int]:
    """The size the images endpoint accepts for ``model`` closest to ``width x height``:
    the nearest aspect ratio first, then the nearest area."""
    sizes = next((s for prefix, s in _API_SIZES.items() if model.startswith(prefix)), None)

    def distance(size: tuple[int, int]) -> tuple[float, float]:
        aspect = abs(math.log((size[0] / size[1]) / (width / height)))
        return aspect, abs(math.log(size[0] * size[1] / (width * height)))

    return min(sizes or _GPT_IMAGE_SIZES, key=distance)


class OpenAIImageGenerator(_OpenAIProvider):
    """An :class:`~vimax_nb.providers.base.ImageGenerator` using image generations.

    The returned image is RGB and exactly the requested size: the API's image (at the
    closest size it accepts, see :func:`api_size_for`) is center-cropped to the requested
    aspect ratio and resized. ``response_format="b64_json"`` is sent except to
    ``gpt-image-*`` models, which always answer in base64 and reject the parameter.
    """

    def generate_single_image(
        self,
        prompt: str,
        reference_image_paths: Sequence[PathLike] = (),
        size: str = "640x360",
        *,
        cancel_token: CancelToken | None = None,
    ) -> ImageOutput:
        """One image for ``prompt``; raises ProviderError (see the module docstring)."""
        try:
            width, height = parse_size(size)
        except ValueError as exc:
            raise ProviderError(str(exc), provider=PROVIDER) from exc
        if reference_image_paths:
            names = ", ".join(Path(p).name for p in reference_image_paths)
            prompt = (
                f"{prompt}\n\nReference images (not attached; keep the characters and places "
                f"they show consistent): {names}"
            )
        model = self.config.image_model
        api_w, api_h = api_size_for(width, height, model)
        what = f"image generation with model {model!r}"
        self.rate_limiter.acquire(cancel_token)
        try:
            result = self.client.images.generate(
                model=model,
                prompt=prompt,
                size=f"{api_w}x{api_h}",
                n=1,
                response_format=openai.omit if model.startswith("gpt-image") else "b64_json",
            )
        except openai.OpenAIError as exc:
            raise self._error(exc, what) from exc
        encoded = result.data[0].b64_json if result.data else None
        if not encoded:
            raise ProviderError(
                f"{what}: the answer had no base64 image", retryable=True, provider=PROVIDER
            )
        try:
            image = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
            image.load()
        except (binascii.Error, ValueError, OSError, UnidentifiedImageError) as exc:
            raise ProviderError(
                f"{what}: could not decode the image: {exc}", retryable=True, provider=PROVIDER
            ) from exc
        fitted = ImageOps.fit(
            image.convert("RGB"), (width, height), method=Image.Resampling.LANCZOS
        )
        return ImageOutput(fitted)
