"""The OpenAI chat model: :class:`OpenAIChatModel`, structured answers through
``POST /chat/completions``, validated and re-asked (see :mod:`vimax_nb.providers.openai`)."""

from __future__ import annotations

import json
import re

import openai
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ...shared import CancelToken
from ..base import ChatRequest, M, ProviderError
from .client import OpenAIProvider
from .config import PROVIDER

__all__ = ["OpenAIChatModel"]


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


class OpenAIChatModel(OpenAIProvider):
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
