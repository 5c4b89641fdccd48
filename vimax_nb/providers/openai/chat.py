"""The OpenAI chat model: :class:`OpenAIChatModel`, structured answers through
``POST /chat/completions``, validated and re-asked (see :mod:`vimax_nb.providers.openai`)."""

from __future__ import annotations

import math

import openai
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema

from ..base import ChatRequest, M, ProviderCall, ProviderError, Usage
from ..structured import (
    answer_structured,
    request_text,
    response_schema,
    schema_name,
    system_text,
)
from .client import OpenAIProvider
from .config import PROVIDER

__all__ = ["OpenAIChatModel"]


class OpenAIChatModel(OpenAIProvider):
    """A :class:`~vimax_nb.providers.base.ChatModel` using chat completions.

    :meth:`complete` returns a validated instance of ``request.response_model`` or
    raises ProviderError; it makes at most ``max_reasks + 1`` requests, each after the
    rate limiter lets it through and the call's budget authorized it.
    """

    role = "chat"

    def complete(self, request: ChatRequest[M], call: ProviderCall | None = None) -> M:
        """Ask, validate, re-ask in the same conversation with the errors quoted (see
        :func:`~vimax_nb.providers.structured.answer_structured`).

        Before each request ``call.cancel_token`` is checked (also while the rate
        limiter waits) and ``call.authorize`` is given the request's estimated usage
        (input tokens: a quarter of the conversation's characters), so a
        :class:`~vimax_nb.providers.base.BudgetExceeded` means nothing was sent; after
        each answer ``call.record`` gets the tokens the server reports. A request
        already sent runs to its answer or ``config.timeout``.
        """
        call = call or ProviderCall()
        system, user = system_text(request), request_text(request, PROVIDER)
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        response_format: ResponseFormatJSONSchema = {
            "type": "json_schema",
            "json_schema": {
                "name": schema_name(request.response_model),
                "schema": response_schema(request),
                "strict": False,
            },
        }
        answers: list[str] = []
        characters = len(system) + len(user)

        def ask(correction: str | None) -> str:
            nonlocal characters
            if correction is not None:
                messages.append({"role": "assistant", "content": answers[-1]})
                messages.append({"role": "user", "content": correction})
                characters += len(answers[-1]) + len(correction)
            answers.append(
                self._ask(request, messages, response_format, math.ceil(characters / 4), call)
            )
            return answers[-1]

        return answer_structured(
            request, ask, max_reasks=self.config.max_reasks, model=self.model, provider=PROVIDER
        )

    def _ask(
        self,
        request: ChatRequest[M],
        messages: list[ChatCompletionMessageParam],
        response_format: ResponseFormatJSONSchema,
        estimated_tokens: int,
        call: ProviderCall,
    ) -> str:
        what = f"chat completion {request.task!r} with model {self.model!r}"
        self.rate_limiter.acquire(call.cancel_token)
        call.authorize(Usage(PROVIDER, self.model, "chat", input_tokens=estimated_tokens))
        try:
            completion = self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                response_format=response_format,
                seed=request.seed,
            )
        except openai.OpenAIError as exc:
            raise self._error(exc, what) from exc
        usage = completion.usage
        call.record(
            Usage(
                PROVIDER,
                self.model,
                "chat",
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
            )
        )
        if not completion.choices:
            raise ProviderError(
                f"{what}: the answer had no choices", retryable=True, provider=PROVIDER
            )
        message = completion.choices[0].message
        if message.refusal:
            raise ProviderError(f"{what}: the model refused: {message.refusal}", provider=PROVIDER)
        return message.content or ""
