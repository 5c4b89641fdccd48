"""Reading a ``generateContent`` answer: what it used, whether it was refused, its text
and its image."""

from __future__ import annotations

from google.genai import types

from ..base import Role, Usage
from .config import PROVIDER

__all__ = ["answer_image", "answer_text", "answer_usage", "describe_finish", "refusal_of"]

#: Finish reasons that mean the model would not answer this prompt (again, if asked).
_REFUSED = frozenset(
    {
        types.FinishReason.SAFETY,
        types.FinishReason.RECITATION,
        types.FinishReason.LANGUAGE,
        types.FinishReason.BLOCKLIST,
        types.FinishReason.PROHIBITED_CONTENT,
        types.FinishReason.SPII,
        types.FinishReason.IMAGE_SAFETY,
        types.FinishReason.IMAGE_PROHIBITED_CONTENT,
        types.FinishReason.IMAGE_RECITATION,
        types.FinishReason.MODEL_ARMOR,
    }
)


def answer_usage(
    response: types.GenerateContentResponse, model: str, role: Role, images: int = 0
) -> Usage:
    """The tokens the answer reports (thinking tokens count as output: they are billed
    so), and ``images``."""
    meta = response.usage_metadata
    prompt = (meta.prompt_token_count or 0) if meta else 0
    output = ((meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)) if meta else 0
    return Usage(PROVIDER, model, role, input_tokens=prompt, output_tokens=output, images=images)


def _name(value: object) -> str:
    return str(getattr(value, "value", value))


def refusal_of(response: types.GenerateContentResponse) -> str | None:
    """Why the model refused the prompt, in its own words when it gave some (the block
    or finish message, else its text), with the blocked safety categories; None when
    neither the prompt was blocked nor the answer stopped for a safety-like reason."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = f"the prompt was blocked ({_name(feedback.block_reason)})"
        ratings = feedback.safety_ratings
        message = feedback.block_reason_message
    else:
        candidate = response.candidates[0] if response.candidates else None
        if candidate is None or candidate.finish_reason not in _REFUSED:
            return None
        reason = f"the answer was stopped ({_name(candidate.finish_reason)})"
        ratings = candidate.safety_ratings
        message = candidate.finish_message or " ".join(answer_text(response).split())[:500]
    blocked = [_name(r.category) for r in ratings or () if r.blocked and r.category]
    if blocked:
        reason += f" for {', '.join(blocked)}"
    return f"{reason}: {message}" if message else reason


def _parts(response: types.GenerateContentResponse) -> list[types.Part]:
    candidate = response.candidates[0] if response.candidates else None
    if candidate is None or candidate.content is None:
        return []
    return [part for part in candidate.content.parts or () if not part.thought]


def answer_text(response: types.GenerateContentResponse) -> str:
    """The text of the first candidate (thoughts left out); empty when it has none."""
    return "".join(part.text for part in _parts(response) if part.text)


def answer_image(response: types.GenerateContentResponse) -> bytes | None:
    """The bytes of the first image of the first candidate (thoughts left out)."""
    for part in _parts(response):
        blob = part.inline_data
        if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
            return blob.data
    return None


def describe_finish(response: types.GenerateContentResponse) -> str:
    """How the answer ended (finish reason and message, or its text), for an error that
    says what came back instead of what was asked."""
    candidate = response.candidates[0] if response.candidates else None
    if candidate is None:
        return "no candidates"
    notes = [f"finish reason {_name(candidate.finish_reason)}"]
    if candidate.finish_message:
        notes.append(candidate.finish_message)
    text = " ".join(answer_text(response).split())
    if text:
        notes.append(f"the model said: {text[:300]}")
    return "; ".join(notes)
