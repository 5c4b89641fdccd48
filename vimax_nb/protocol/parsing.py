"""Parsing frames into models, with errors that say what to fix."""

from __future__ import annotations

import json
import types
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, TypeAdapter, ValidationError

from .messages import (
    _CLIENT_ADAPTER,
    _CLIENT_MODELS,
    _SERVER_ADAPTER,
    _SERVER_MODELS,
    ENVELOPE,
    EVENT_TYPES,
    ClientMessage,
    ErrorEvent,
    ServerMessage,
)
from .rooms import MAX_CLIENT_MESSAGE_BYTES, ErrorCode, TargetType

_STORED = frozenset(ENVELOPE) - {"type"}


def event_payload(event: BaseModel) -> dict[str, Any]:
    """The event as JSON-ready data without its :data:`ENVELOPE`: what the log stores."""
    return event.model_dump(mode="json", exclude=set(ENVELOPE))


def unstored_data(message: BaseModel) -> dict[str, Any]:
    """A message as JSON-ready data, sent outside a room's history: an event (a reply to
    ``get_metrics``, a REST body) leaves out ``room``, ``seq`` and ``timestamp``."""
    if getattr(message, "type", None) in EVENT_TYPES:
        return message.model_dump(mode="json", exclude=set(_STORED))
    return message.model_dump(mode="json")


class ProtocolError(Exception):
    """A frame that cannot be accepted; ``message`` tells a person what to fix.

    ``request_id`` is the offending message's ``id`` when it could be read. ``details``
    holds machine-readable context (limits, known types, per-field problems).
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_frame(self) -> ErrorEvent:
        """The ``error`` frame answering this error (target_type protocol, not retryable)."""
        return ErrorEvent(
            target_type=TargetType.protocol,
            code=self.code.value,
            message=self.message,
            retryable=False,
            details=self.details,
            id=self.request_id,
        )


def _describe_type(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return "one of " + ", ".join(repr(m.value) for m in tp)
        if issubclass(tp, BaseModel) or tp is dict:
            return "an object"
        simple = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
        if tp in simple:
            return simple[tp]
    origin = get_origin(tp)
    if origin is dict:
        return "an object"
    if origin is list:
        return f"a list of {_describe_type(get_args(tp)[0]).partition(' ')[2]}s"
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    return "a valid value"


def _expectation(model: type[BaseModel], name: str) -> str | None:
    info = model.model_fields.get(name)
    if info is None:
        return None
    tp = info.annotation
    args = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    words = [_describe_type(a) for a in args if a is not type(None)]
    if "a number" in words and "an integer" in words:
        words.remove("an integer")
    text = " or ".join(dict.fromkeys(words))
    limits = []
    for meta in info.metadata:
        if isinstance(meta, at.MinLen) and meta.min_length == 1 and text == "a string":
            text = "a non-empty string"
        elif isinstance(meta, at.MinLen):
            limits.append(f"of length >= {meta.min_length}")
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(getattr(meta, attr, None), int | float):
                limits.append(f"{op} {getattr(meta, attr)}")
    if limits:
        text += " " + " and ".join(limits)
    return text + " or null" if type(None) in args else text


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _field_problems(
    model: type[BaseModel], data: dict[str, Any], error: ValidationError
) -> list[dict[str, str]]:
    by_field: dict[str, list[Any]] = {}
    for err in error.errors():
        loc = err["loc"]
        info = model.model_fields.get(str(loc[0])) if loc else None
        sub = info.annotation if info is not None else None
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            path = ".".join(str(p) for p in loc)
        else:
            path = str(loc[0]) if loc else ""
        by_field.setdefault(path, []).append(err)
    problems = []
    for field, errs in by_field.items():
        kinds = {e["type"] for e in errs}
        first = errs[0]
        got = _short(data[field] if field in data else first["input"])
        if "missing" in kinds:
            text = f"field {field!r} is required"
        elif "extra_forbidden" in kinds:
            allowed = ", ".join(n for n in model.model_fields if n != "type")
            text = f"field {field!r} is not allowed (fields: {allowed})"
        elif "value_error" in kinds:
            text = f"field {field!r}: {first['ctx']['error']}"
        else:
            expected = _expectation(model, field)
            if expected is None:
                msg = str(first["msg"])
                expected = msg[:1].lower() + msg[1:]
                text = f"field {field!r}: {expected} (got {got})"
            else:
                text = f"field {field!r} must be {expected} (got {got})"
        problems.append({"field": field, "problem": text})
    return problems


def _parse(
    raw: str | bytes,
    adapter: TypeAdapter[Any],
    models: dict[str, type[BaseModel]],
    max_bytes: int | None,
) -> Any:
    if max_bytes is not None and len(raw) * (4 if isinstance(raw, str) else 1) > max_bytes:
        size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
        if size > max_bytes:
            raise ProtocolError(
                ErrorCode.too_large,
                f"message is {size} bytes; the limit is {max_bytes} bytes",
                details={"size": size, "limit": max_bytes},
            )
    try:
        return adapter.validate_json(raw)
    except ValidationError:
        pass
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            ErrorCode.bad_json,
            f"message is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            f" (char {exc.pos})",
            details={"line": exc.lineno, "column": exc.colno, "position": exc.pos},
        ) from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            ErrorCode.bad_json, f"message is not valid UTF-8 JSON: {exc.reason} at byte {exc.start}"
        ) from None
    known = sorted(models)
    if not isinstance(data, dict):
        kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        kind = kinds.get(type(data), "a number")
        raise ProtocolError(
            ErrorCode.invalid_message,
            f"message must be a JSON object with a 'type' field, not {kind}",
        )
    request_id = data.get("id") if isinstance(data.get("id"), str) else None
    kind_name = data.get("type")
    model = models.get(kind_name) if isinstance(kind_name, str) else None
    if model is None:
        problem = (
            "message has no 'type' field"
            if "type" not in data
            else f"unknown message type {_short(kind_name)}"
        )
        raise ProtocolError(
            ErrorCode.unknown_type,
            f"{problem}; known types: {', '.join(known)}",
            request_id=request_id,
            details={"known_types": known},
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = _field_problems(model, data, exc)
    raise ProtocolError(
        ErrorCode.invalid_message,
        f"{kind_name}: " + "; ".join(p["problem"] for p in problems),
        request_id=request_id,
        details={"errors": problems},
    )


def parse_client_message(
    raw: str | bytes, *, max_bytes: int = MAX_CLIENT_MESSAGE_BYTES
) -> ClientMessage:
    """Parse one client frame into its model.

    Raises ProtocolError (code too_large, bad_json, invalid_message, unknown_type) whose
    message names the problem: the size and the limit, the JSON error position, the known
    types, or each bad field and what it must be.
    """
    result: ClientMessage = _parse(raw, _CLIENT_ADAPTER, _CLIENT_MODELS, max_bytes)
    return result


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """Parse one server frame into its model; raises ProtocolError as parse_client_message.

    There is no size limit, and fields the models do not name are ignored (a newer
    server may add some). A frame with a ``type`` this client does not know raises
    ProtocolError with code unknown_type, which a client may choose to ignore.
    """
    result: ServerMessage = _parse(raw, _SERVER_ADAPTER, _SERVER_MODELS, None)
    return result
