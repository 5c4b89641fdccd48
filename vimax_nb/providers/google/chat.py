"""The Gemini chat model: :class:`GoogleChatModel`, structured answers through
``generateContent`` with a JSON response schema, validated and re-asked (see
:mod:`vimax_nb.providers.google`)."""

from __future__ import annotations

import math

from google.genai import types

from ..base import ChatRequest, M, ProviderCall, ProviderError, Usage
from ..structured import answer_structured, request_text, response_schema, system_text
from .answers import answer_text, answer_usage, refusal_of
from .client import GoogleModel
from .config import PROVIDER
from .errors import SDK_ERRORS

__all__ = ["GoogleChatModel"]

#: Gemini's seed is an int32.
_SEED_RANGE = 2**31


class GoogleChatModel(GoogleModel):
    """A :class:`~vimax_nb.providers.base.ChatModel` on Gemini.

    :meth:`complete` returns a validated instance of ``request.response_model`` or
    raises ProviderError; it makes at most ``options.max_reasks + 1`` requests, each
    after the rate limiter lets it through and the call's budget authorized it.
    """

    role = "chat"

    def complete(self, request: ChatRequest[M], call: ProviderCall | None = None) -> M:
        """Ask with ``response_mime_type="application/json"`` and the answer's JSON schema
        (``response_json_schema``), the task's instructions as system instruction and
        the call's seed (``request.seed`` without a call); validate; re-ask in the same
        conversation with the errors quoted (see
        :func:`~vimax_nb.providers.structured.answer_structured`).

        Before each request ``call.cancel_token`` is checked (also while the rate limiter
        waits) and ``call.authorize`` is given its estimated usage (input tokens: a
        quarter of the conversation's characters), so a
        :class:`~vimax_nb.providers.base.BudgetExceeded` means nothing was sent; after
        each answer ``call.record`` gets the tokens it reports. A blocked prompt or a
        safety stop is a non-retryable ProviderError quoting the model's reason.
        """
        seed = (call.seed if call is not None else request.seed) % _SEED_RANGE
        call = call or ProviderCall()
        system, user = system_text(request), request_text(request, PROVIDER)
        config = types.GenerateContentConfig(
            system_instruction=system,
            response_mime_type="application/json",
            response_json_schema=response_schema(request),
            seed=seed,
            candidate_count=1,
            automatic_continuation=False,
        )
        contents = [types.Content(role="user", parts=[types.Part.from_text(text=user)])]
        characters = len(system) + len(user)
        what = f"chat {request.task!r} with {self.model}"

        def ask(correction: str | None) -> str:
            nonlocal characters
            if correction is not None:
                contents.append(
                    types.Content(role="user", parts=[types.Part.from_text(text=correction)])
                )
                characters += len(correction)
            call.raise_if_cancelled()
            self.rate_limiter.acquire(call.cancel_token)
            estimate = Usage(PROVIDER, self.model, "chat", input_tokens=math.ceil(characters / 4))
            call.authorize(estimate)
            try:
                response = self.client.models.generate_content(
                    model=self.model, contents=list(contents), config=config
                )
            except SDK_ERRORS as exc:
                raise self.error(exc, what) from exc
            call.record(answer_usage(response, self.model, "chat"))
            refusal = refusal_of(response)
            if refusal is not None:
                raise ProviderError(f"{what}: the model refused: {refusal}", provider=PROVIDER)
            if not response.candidates:
                raise ProviderError(
                    f"{what}: the answer had no candidates", retryable=True, provider=PROVIDER
                )
            text = answer_text(response)
            reply = response.candidates[0].content
            parts = reply.parts if reply is not None and reply.parts else None
            contents.append(types.Content(role="model", parts=parts or [types.Part(text=text)]))
            characters += len(text)
            return text

        return answer_structured(
            request,
            ask,
            max_reasks=self.config.options.max_reasks,
            model=self.model,
            provider=PROVIDER,
        )
