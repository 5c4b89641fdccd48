"""The bounds parse_client_message keeps whatever a client sends: nesting depth, number
sizes, valid Unicode; every refusal is a ProtocolError whose error frame can be sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from vimax_nb.protocol import (
    ErrorCode,
    Ping,
    ProtocolError,
    Subscribe,
    parse_client_message,
    unstored_data,
)
from vimax_nb.protocol.limits import (
    INT64_MAX,
    INT64_MIN,
    MAX_JSON_DEPTH,
    TooDeep,
    load_json,
    nests_deeper_than,
)


def refused(raw: str | bytes, code: ErrorCode = ErrorCode.invalid_message) -> ProtocolError:
    """The ProtocolError ``raw`` raises, which must have ``code`` and a sendable frame."""
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    error = info.value
    assert error.code is code, error.message
    to_json(unstored_data(error.to_frame()))  # what the server sends must encode
    return error


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# --- nesting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 10000 + "]" * 10000,
        '{"type": "ping", "ts": ' + nested(10000) + "}",
        '{"type": "subscribe", "room": "coordinator", "id": "s1", "x": '
        + nested(MAX_JSON_DEPTH)
        + "}",
        "{" * 5000,
    ],
    ids=["array-10000", "field-10000", "just-over", "unclosed-objects"],
)
def test_nesting_deeper_than_the_limit_is_refused(raw: str) -> None:
    error = refused(raw)
    assert f"more than {MAX_JSON_DEPTH} levels deep" in error.message
    assert error.details == {"depth_limit": MAX_JSON_DEPTH}


def test_nesting_up_to_the_limit_is_read_and_explained_as_a_field() -> None:
    raw = '{"type": "ping", "id": "p1", "ts": ' + nested(MAX_JSON_DEPTH - 1) + "}"
    error = refused(raw)
    assert error.message.startswith("ping: field 'ts' must be a number or a string or null")
    assert "field 'id' is not allowed" in error.message


def test_brackets_inside_strings_are_not_nesting() -> None:
    ts = "[" * 1000 + '\\"{' * 1000
    assert parse_client_message(json.dumps({"type": "ping", "ts": ts})) == Ping(ts=ts)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text('[]{}"\\ab', max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=40,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(_json_values, st.integers(0, 8))
def test_nests_deeper_than_is_exact_for_json(value: Any, limit: int) -> None:
    assert nests_deeper_than(json.dumps(value), limit) is (depth_of(value) > limit)


# --- numbers ---------------------------------------------------------------------------


def test_a_5000_digit_integer_is_refused_naming_the_field_and_keeping_the_id() -> None:
    raw = '{"type": "subscribe", "room": "coordinator", "after": ' + "9" * 5000 + ', "id": "s1"}'
    error = refused(raw)
    assert error.request_id == "s1"
    assert error.message == (
        f"subscribe: field 'after' must be an integer from {INT64_MIN} to {INT64_MAX} "
        "(got a 5000-digit integer)"
    )
    assert error.details["errors"][0]["field"] == "after"
    assert error.to_frame().id == "s1"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (f'{{"type": "subscribe", "room": "coordinator", "after": {INT64_MAX + 1}}}', "after"),
        (f'{{"type": "ping", "ts": {INT64_MAX + 1}}}', "ts"),
        (f'{{"type": "ping", "ts": {INT64_MIN - 1}}}', "ts"),
        (f'{{"type": "ping", "ts": {"9" * 30}}}', "ts"),
        (f'{{"type": "ping", "ts": [1, {"9" * 30}]}}', "ts.1"),
    ],
)
def test_integers_outside_64_bits_are_refused(raw: str, field: str) -> None:
    error = refused(raw)
    assert f"field '{field}' must be an integer from {INT64_MIN} to {INT64_MAX}" in error.message


def test_integers_at_the_64_bit_bounds_are_taken() -> None:
    raw = f'{{"type": "subscribe", "room": "coordinator", "after": {INT64_MAX}}}'
    assert parse_client_message(raw) == Subscribe(room="coordinator", after=INT64_MAX)
    assert parse_client_message(f'{{"type": "ping", "ts": {INT64_MIN}}}') == Ping(ts=INT64_MIN)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
def test_numbers_that_are_not_finite_are_refused(number: str) -> None:
    error = refused(f'{{"type": "ping", "ts": {number}}}')
    assert error.message.startswith("ping: field 'ts' must be a ")
    assert number.lstrip("-")[:3] in error.message or "Infinity" in error.message


# --- strings that are not Unicode --------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "start"),
    [
        ('{"type": "ping", "ts": "\\ud800"}', "ping: field 'ts' must be valid Unicode"),
        ('{"type": "ping", "ts": "a\\udc00\\ud800b"}', "ping: field 'ts' must be valid Unicode"),
        ('{"type": "x", "id": "\\udc00"}', "message: field 'id' must be valid Unicode"),
        (
            '{"type": "subscribe", "room": "agent:\\ud800", "id": "r1"}',
            "subscribe: field 'room' must be valid Unicode",
        ),
        ('{"type": "ping", "\\ud800": 1}', "ping: the message has a key that must be valid"),
        ('{"type": "ping", "ts": "\ud800"}', "ping: field 'ts' must be valid Unicode"),
    ],
    ids=["escape", "reversed-pair", "unknown-type-id", "room", "key", "raw-surrogate"],
)
def test_lone_surrogates_are_refused_and_never_echoed(raw: str, start: str) -> None:
    error = refused(raw)
    assert error.message.startswith(start), error.message
    assert error.message.isascii()
    assert error.request_id == ("r1" if "r1" in raw else None)


def test_a_surrogate_pair_is_a_character() -> None:
    assert parse_client_message('{"type": "ping", "ts": "\\ud83d\\ude00"}') == Ping(ts="\U0001f600")


@pytest.mark.parametrize("raw", [b'{"type": "ping", "ts": "\xed\xa0\x80"}', b'{"ts": "\xff"}'])
def test_bytes_that_are_not_utf8_are_bad_json(raw: bytes) -> None:
    assert "not valid UTF-8" in refused(raw, ErrorCode.bad_json).message


# --- whatever arrives, the answer is a ProtocolError that can be sent --------------------

_hostile_parts = st.sampled_from(
    [
        "[", "]", "{", "}", '"', ",", ":", " ", "\\", "\\ud800", "\\udc00", "\\ud83d\\ude00",
        "9" * 25, "9" * 5000, "-", "1e400", "NaN", "Infinity", "null", "true", "1.5",
        '"type"', '"ping"', '"subscribe"', '"room"', '"coordinator"', '"after"', '"id"', '"ts"',
        "\ud800", "é",
    ]
)  # fmt: skip
_hostile_text = st.lists(_hostile_parts, max_size=60).map("".join)


def _answer(raw: str | bytes) -> None:
    """Parse ``raw``: a message, or a ProtocolError with a message and a known code
    whose error frame encodes."""
    try:
        parse_client_message(raw)
    except ProtocolError as exc:
        error = exc
    else:
        return
    assert error.message
    assert error.code in set(ErrorCode)
    to_json(unstored_data(error.to_frame()))


@settings(max_examples=500)
@given(
    st.one_of(
        _hostile_text,
        _hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.text(st.characters(codec=None)),
        st.binary(),
    )
)
def test_any_input_only_raises_a_sendable_protocol_error(raw: str | bytes) -> None:
    _answer(raw)


@settings(max_examples=300)
@given(
    st.sampled_from(["subscribe", "unsubscribe", "ping", "control", "get_metrics", "x"]),
    st.dictionaries(
        st.sampled_from(["room", "after", "epoch", "id", "ts", "workflow_id", "action"]),
        _hostile_text,
        max_size=4,
    ),
)
def test_hostile_values_in_valid_shaped_messages(kind: str, fields: dict[str, str]) -> None:
    body = ", ".join(f'"{name}": {value or "0"}' for name, value in fields.items())
    _answer(f'{{"type": "{kind}"' + (", " + body if body else "") + "}")


# --- the loader the REST bodies share -------------------------------------------------


def test_load_json_reports_the_first_unusable_value_by_its_path() -> None:
    data, problem = load_json('{"a": [1, {"b": 1e999}], "c": "\\ud800"}')
    assert data["a"][0] == 1
    assert problem == ("a.1.b", "must be a finite number (got 1e999)")
    assert load_json('{"a": [1, 2.5, "x"]}') == ({"a": [1, 2.5, "x"]}, None)
    with pytest.raises(TooDeep):
        load_json(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(json.JSONDecodeError):
        load_json("{")
