"""Parsing frames into models, with errors that say what to fix."""

from __future__ import annotations

import json
import types
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ValidationError

from .limits import (
    INT64_MAX,
    INT64_MIN,
    MAX_JSON_DEPTH,
    TooDeep,
    has_lone_surrogate,
    load_json,
    number_problem,
)
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
# Server frames are read, when they are not messages, as deep as pydantic reads them.
_SERVER_DEPTH = 200


_NOT_PAYLOAD = set(ENVELOPE)


class EventPayload(bytes):
    """An event's fields other than its :data:`ENVELOPE`, as the JSON text of an object,
    made by :func:`event_payload`: the event log stores it as it is, without parsing it."""

    __slots__ = ()


def event_payload(event: BaseModel) -> EventPayload:
    """The event without its :data:`ENVELOPE`, serialized once: what the log stores."""
    return EventPayload(event.__pydantic_serializer__.to_json(event, exclude=_NOT_PAYLOAD))


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


# What an error frame repeats of a frame is bounded, so it is never much larger than
# the frame, however many or long its fields: field names, problems, problems listed.
_MAX_NAME = 60
_MAX_PROBLEM = 300
_MAX_PROBLEMS = 10
# A frame longer than this, with more brackets and commas than that, goes straight to
# _parse_slowly (see _has_many_parts).
_SMALL_FRAME = 1024
_FAST_PATH_PARTS = 32


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        name = _clip(field, _MAX_NAME)
        if "missing" in kinds:
            text = f"field {name!r} is required"
        elif "extra_forbidden" in kinds:
            allowed = ", ".join(n for n in model.model_fields if n != "type")
            text = f"field {name!r} is not allowed (fields: {allowed})"
        elif "value_error" in kinds:
            text = f"field {name!r}: {first['ctx']['error']}"
        else:
            expected = _expectation(model, field)
            if expected is None:
                msg = str(first["msg"])
                expected = msg[:1].lower() + msg[1:]
                text = f"field {name!r}: {expected} (got {got})"
            else:
                text = f"field {name!r} must be {expected} (got {got})"
        problems.append({"field": name, "problem": _clip(text, _MAX_PROBLEM)})
    return problems


def _check_size(raw: str | bytes, max_bytes: int) -> None:
    if len(raw) * (4 if isinstance(raw, str) else 1) <= max_bytes:
        return  # cannot be over, whatever its characters
    size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise ProtocolError(
            ErrorCode.too_large,
            f"message is {size} bytes; the limit is {max_bytes} bytes",
            details={"size": size, "limit": max_bytes},
        )


def _has_many_parts(raw: str | bytes) -> bool:
    """Whether ``raw`` has more brackets and commas than a message: one small flat
    object. pydantic takes milliseconds to refuse 64 KiB of arrays or of fields, the
    standard library (and :func:`_parse_slowly`) far less."""
    if isinstance(raw, str):
        parts = raw.count("[") + raw.count("{") + raw.count(",")
    else:
        parts = raw.count(b"[") + raw.count(b"{") + raw.count(b",")
    return parts > _FAST_PATH_PARTS


def _parse_slowly(raw: str | bytes, models: dict[str, type[BaseModel]], *, client: bool) -> Any:
    """Read ``raw``, which its adapter refused, with the standard library (bounded: see
    :mod:`.limits`) and raise ProtocolError saying what is wrong; return the model when
    nothing is wrong after all (the two JSON parsers differ at the edges).

    For a client frame, a value a client may not send (see :func:`.limits.load_json`)
    is the problem even when the frame has other faults; a server frame is read as
    deep as pydantic reads it and its values are not judged.
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                ErrorCode.bad_json,
                f"message is not valid UTF-8 JSON: {exc.reason} at byte {exc.start}",
            ) from None
    else:
        text = raw
    try:
        data, unusable = load_json(text, max_depth=MAX_JSON_DEPTH if client else _SERVER_DEPTH)
    except TooDeep as exc:
        raise ProtocolError(
            ErrorCode.invalid_message,
            f"message is not usable: {exc}",
            details={"depth_limit": exc.limit},
        ) from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            ErrorCode.bad_json,
            f"message is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            f" (char {exc.pos})",
            details={"line": exc.lineno, "column": exc.colno, "position": exc.pos},
        ) from None
    if not isinstance(data, dict):
        kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        kind = kinds.get(type(data), "a number")
        raise ProtocolError(
            ErrorCode.invalid_message,
            f"message must be a JSON object with a 'type' field, not {kind}",
        )
    found = data.get("id")
    request_id = found if isinstance(found, str) and not has_lone_surrogate(found) else None
    kind_name = data.get("type")
    model = models.get(kind_name) if isinstance(kind_name, str) else None
    if client and unusable is not None:
        where, problem = unusable
        where = _clip(where, _MAX_NAME)
        field = f"field '{where}'" if where else "the message"
        raise ProtocolError(
            ErrorCode.invalid_message,
            f"{kind_name if model is not None else 'message'}: {field} {problem}",
            request_id=request_id,
            details={"errors": [{"field": where, "problem": f"{field} {problem}"}]},
        )
    if model is None:
        known = sorted(models)
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
    # Fields past the first few unknown ones are counted, not validated one by one.
    fields = model.model_fields
    unknown = [name for name in data if name not in fields]
    unlisted = unknown[_MAX_PROBLEMS:]
    if unlisted:
        skipped = set(unlisted)
        data = {name: value for name, value in data.items() if name not in skipped}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = _field_problems(model, data, exc)
    more = len(problems) - _MAX_PROBLEMS + len(unlisted)
    text = "; ".join(p["problem"] for p in problems[:_MAX_PROBLEMS])
    details: dict[str, Any] = {"errors": problems[:_MAX_PROBLEMS]}
    if more > 0:
        text += f"; and {more} more"
        details["more_errors"] = more
    raise ProtocolError(
        ErrorCode.invalid_message, f"{kind_name}: {text}", request_id=request_id, details=details
    )


def parse_client_message(
    raw: str | bytes, *, max_bytes: int = MAX_CLIENT_MESSAGE_BYTES
) -> ClientMessage:
    """Parse one client frame into its model.

    Raises ProtocolError (code too_large, bad_json, invalid_message, unknown_type) whose
    message names the problem: the size and the limit, the JSON error position, the known
    types, or each bad field and what it must be. Never raises anything else, whatever
    ``raw`` holds: arrays and objects nested more than :data:`.limits.MAX_JSON_DEPTH`
    deep, an integer outside the signed 64-bit range, a number that is not finite
    (``NaN``, ``1e400``) and a string (or key) holding a lone UTF-16 surrogate are
    refused with invalid_message. The error's ``request_id`` is the frame's ``id``
    when it could be read: not for a frame too large, not UTF-8, or nested too deep.
    """
    if len(raw) * 4 > max_bytes or len(raw) > _SMALL_FRAME:
        _check_size(raw, max_bytes)
        if _has_many_parts(raw):
            many: ClientMessage = _parse_slowly(raw, _CLIENT_MODELS, client=True)
            return many
    try:
        message: ClientMessage = _CLIENT_ADAPTER.validate_json(raw)
    except ValidationError:
        slow: ClientMessage = _parse_slowly(raw, _CLIENT_MODELS, client=True)
        return slow
    # pydantic's parser refuses deep nesting, lone surrogates and huge integers itself;
    # what passes it is a flat object whose numbers may still be out of range.
    fields = message.__dict__
    for name in _NUMBER_FIELDS[fields["type"]]:
        value = fields[name]
        kind = type(value)
        if kind is int:
            if INT64_MIN <= value <= INT64_MAX:
                continue
        elif kind is not float or value - value == 0.0:  # not a float, or a finite one
            continue
        field = f"field {name!r}"
        problem = f"{field} {number_problem(value)}"
        raise ProtocolError(
            ErrorCode.invalid_message,
            f"{fields['type']}: {problem}",
            request_id=fields.get("id"),
            details={"errors": [{"field": name, "problem": problem}]},
        )
    return message


def _number_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of client message ``model`` that may hold a number.

    Client messages are flat; a field that could hold a list, an object or a model
    would need its numbers checked too, so it is refused here, at import.
    """
    names = []
    for name, info in model.model_fields.items():
        tp = info.annotation
        args = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
        if get_origin(tp) is Literal:
            continue
        for arg in args:
            if arg in (int, float):
                names.append(name)
            elif arg not in (str, bool, type(None)) and not (
                isinstance(arg, type) and issubclass(arg, Enum)
            ):
                raise TypeError(
                    f"{model.__name__}.{name}: a client message field must be a string, "
                    "number, boolean, enum or null; parse_client_message checks only those"
                )
    return tuple(dict.fromkeys(names))


_NUMBER_FIELDS = {kind: _number_fields(model) for kind, model in _CLIENT_MODELS.items()}


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """Parse one server frame into its model; raises ProtocolError as parse_client_message.

    There is no size limit, and fields the models do not name are ignored (a newer
    server may add some). A frame with a ``type`` this client does not know raises
    ProtocolError with code unknown_type, which a client may choose to ignore.
    """
    try:
        result: ServerMessage = _SERVER_ADAPTER.validate_json(raw)
    except ValidationError:
        result = _parse_slowly(raw, _SERVER_MODELS, client=False)
    return result
