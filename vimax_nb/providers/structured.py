"""Structured answers from hosted chat models: the prompt that asks for JSON matching a
pydantic model's schema, and :func:`answer_structured`, which validates the answer and
re-asks with the validation errors quoted. The OpenAI and Google chat models share it;
each turns the prompt and the corrections into its own API's messages."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from .base import ChatRequest, M, ProviderError

__all__ = [
    "answer_structured",
    "describe_errors",
    "request_text",
    "response_schema",
    "schema_name",
    "strip_fences",
    "system_text",
]


def response_schema(request: ChatRequest[Any]) -> dict[str, Any]:
    """The JSON schema of the answer ``request`` wants."""
    schema: dict[str, Any] = request.response_model.model_json_schema()
    return schema


def schema_name(model: type[BaseModel]) -> str:
    """A name for the schema that APIs accept (letters, digits, ``_``, ``-``; 64 at most)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", model.__name__)[:64] or "answer"


def system_text(request: ChatRequest[Any]) -> str:
    """The system instructions: the task's own, then the schema the answer must match."""
    schema = json.dumps(response_schema(request), ensure_ascii=False)
    return (
        f"{request.instructions}\n\nAnswer with a single JSON object, and nothing else, "
        f"that matches this JSON schema:\n{schema}"
    )


def request_text(request: ChatRequest[Any], provider: str) -> str:
    """The user message: the task and its inputs as JSON. Inputs that are not JSON-able
    are a non-retryable :class:`ProviderError`."""
    try:
        return json.dumps(
            {"task": request.task, "inputs": to_jsonable_python(request.inputs)},
            ensure_ascii=False,
        )
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise ProviderError(
            f"the inputs of {request.task!r} are not JSON-able: {exc}", provider=provider
        ) from exc


def strip_fences(content: str) -> str:
    """The JSON inside a Markdown code fence, which some models add."""
    match = re.fullmatch(r"\s*```[A-Za-z]*\s*\n(.*?)\n?```\s*", content, re.DOTALL)
    return match[1] if match else content


def describe_errors(exc: ValidationError, limit: int = 10) -> str:
    """The validation errors as a bullet list a model (or a person) can act on."""
    errors = exc.errors(include_url=False)
    lines = [
        f"- {'.'.join(str(p) for p in e['loc']) or '(whole answer)'}: {e['msg']}"
        for e in errors[:limit]
    ]
    if len(errors) > limit:
        lines.append(f"- ... and {len(errors) - limit} more")
    return "\n".join(lines)


def answer_structured(
    request: ChatRequest[M],
    ask: Callable[[str | None], str],
    *,
    max_reasks: int,
    model: str,
    provider: str,
) -> M:
    """The first answer that validates as ``request.response_model``.

    ``ask(None)`` asks the question and returns the model's text; ``ask(correction)``
    asks again in the same conversation (the caller keeps the previous answer in it)
    with ``correction`` quoting what was wrong. At most ``max_reasks + 1`` asks; then a
    retryable :class:`ProviderError` quoting the last errors.
    """
    correction: str | None = None
    last_error = ""
    for _ in range(max_reasks + 1):
        content = ask(correction)
        try:
            return request.response_model.model_validate_json(strip_fences(content))
        except ValidationError as exc:
            last_error = describe_errors(exc)
        correction = (
            f"That answer does not match the JSON schema:\n{last_error}\n"
            "Answer again with only the corrected JSON object."
        )
    raise ProviderError(
        f"{model} kept answering {request.task!r} with invalid output "
        f"({max_reasks + 1} tries); last error:\n{last_error}",
        retryable=True,
        provider=provider,
    )
