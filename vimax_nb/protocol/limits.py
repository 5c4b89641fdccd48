"""Bounds on the JSON a client sends (WebSocket frames and REST bodies), checked when the
text is parsed: nesting depth, number sizes, and strings that must be valid Unicode.

Integers must fit SQLite's signed 64-bit integers (sequence numbers are stored there),
numbers must be finite, and strings (keys too) must not hold a lone UTF-16 surrogate:
``"\\ud800"`` is valid JSON text but names no character, and cannot be encoded back
to UTF-8 to answer or store it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

MAX_JSON_DEPTH = 32
"""How deep arrays and objects may nest in what a client sends (a flat object is 1)."""

INTEGER_RANGE = f"from {INT64_MIN} to {INT64_MAX}"

# A JSON string: its escapes are skipped whole, so a quote or bracket inside is not seen.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[]{}", b"()()")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Only text holding a \u escape of a UTF-16 surrogate, or a surrogate itself, can hold a
# lone surrogate once decoded.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_MAX_INT_TEXT = len(str(INT64_MIN))
# Digits as "0", e and E as "e", "+" as itself, every other byte as a space: only text
# whose image holds 19 digits in a row or an exponent of 3 digits can hold an integer
# outside the 64-bit range or a float too large for a double.
_NUMBER_SHAPES = bytes(
    ord("0") if b in b"0123456789" else ord("e") if b in b"eE" else b if b == ord("+") else 32
    for b in range(256)
)


@dataclass(frozen=True, slots=True)
class Refused:
    """A number :func:`load_json` would not turn into a value, in place of that value."""

    shown: str
    """How the number was written, shortened: ``9223372036854775808``, ``a 5000-digit
    integer``, ``NaN``."""
    rule: str
    """What the number should have been, for a person: ``must be a finite number``."""


class TooDeep(ValueError):
    """The text nests arrays and objects deeper than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"arrays and objects are nested more than {limit} levels deep; {limit} is the limit"
        )
        self.limit = limit


def nests_deeper_than(text: str, limit: int) -> bool:
    """Whether parsing ``text`` would go more than ``limit`` arrays/objects deep.

    Exact for valid JSON; for broken text, brackets left open count as nesting. Runs in
    C loops only (strings removed, brackets kept, innermost pairs dropped ``limit``
    times), so it is cheap whatever the text.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    brackets = brackets.translate(_BRACKETS, _NOT_BRACKETS)
    for dropped in range(limit):
        # ``dropped`` levels are gone: a run of openers as deep as what is left of the
        # limit, plus one, is too deep already
        if b"(" * (limit - dropped + 1) in brackets:
            return True
        reduced = brackets.replace(b"()", b"")
        if len(reduced) == len(brackets):
            break
        brackets = reduced
    return b"(" in brackets


class _Reader:
    """json.loads's number hooks; ``refused`` tells whether any number was refused."""

    __slots__ = ("refused",)

    def __init__(self) -> None:
        self.refused = False

    def integer(self, text: str) -> int | Refused:
        if len(text) <= _MAX_INT_TEXT:
            value = int(text)
            if INT64_MIN <= value <= INT64_MAX:
                return value
        shown = text if len(text) <= 40 else f"a {len(text.lstrip('-'))}-digit integer"
        self.refused = True
        return Refused(shown, f"must be an integer {INTEGER_RANGE}")

    def number(self, text: str) -> float | Refused:
        value = float(text)
        if math.isfinite(value):
            return value
        self.refused = True
        shown = text if len(text) <= 24 else text[:21] + "..."
        return Refused(shown, "must be a finite number")

    def constant(self, name: str) -> Refused:
        self.refused = True
        return Refused(name, "must be a number (NaN and Infinity are not JSON)")


def load_json(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> tuple[Any, tuple[str, str] | None]:
    """``json.loads(text)`` that cannot exhaust the stack or the integer parser, and the
    first value in it that a client may not send.

    Raises :class:`TooDeep` when arrays and objects nest more than ``max_depth`` deep,
    and json.JSONDecodeError for text that is not JSON. Returns ``(data, problem)``:
    an integer outside the 64-bit range, a number too large for a double, and
    ``NaN``/``Infinity`` are read as :class:`Refused` markers, so the rest (a request
    ``id``) can still be read; ``problem`` is None when every value is usable, else
    ``(where, what)`` as :func:`first_problem` gives it.
    """
    if nests_deeper_than(text, max_depth):
        raise TooDeep(max_depth)
    reader = _Reader()
    if not _may_hold_big_numbers(text):  # the number hooks cost a call per number
        data = json.loads(text, parse_constant=reader.constant)
    else:
        data = json.loads(
            text,
            parse_int=reader.integer,
            parse_float=reader.number,
            parse_constant=reader.constant,
        )
    if reader.refused or _may_hold_surrogates(text):
        return data, first_problem(data)
    return data, None


def _may_hold_big_numbers(text: str) -> bool:
    shapes = text.encode("utf-8", "surrogatepass").translate(_NUMBER_SHAPES)
    return b"0" * 19 in shapes or b"e000" in shapes or b"e+000" in shapes


def _may_hold_surrogates(text: str) -> bool:
    if _SURROGATE_ESCAPE.search(text) is not None:
        return True
    return not text.isascii() and _SURROGATE.search(text) is not None


def has_lone_surrogate(value: str) -> bool:
    """Whether ``value`` holds a code point UTF-8 cannot encode (a lone surrogate)."""
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _problems(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        if has_lone_surrogate(value):
            yield path, _surrogate_problem(value)
    elif isinstance(value, Refused):
        yield path, f"{value.rule} (got {value.shown})"
    elif isinstance(value, dict):
        for key, item in value.items():
            if has_lone_surrogate(key):
                yield path, f"has a key that {_surrogate_problem(key)}"
            else:
                yield from _problems(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _problems(item, (*path, str(index)))


def _surrogate_problem(value: str) -> str:
    shown = ascii(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"must be valid Unicode, not a lone UTF-16 surrogate (got {shown})"


def first_problem(data: Any) -> tuple[str, str] | None:
    """The first value of parsed JSON that a client may not send, as ``(where, what)``:
    ``where`` is the dotted path of its field (``""`` for the whole text), ``what``
    what it must be, to follow the field's name (``must be a finite number (got NaN)``).
    None when every value is usable."""
    for path, problem in _problems(data, ()):
        return ".".join(path), problem
    return None


def number_problem(value: object) -> str | None:
    """What a number a parser already made must be, as :func:`first_problem` says it;
    None when it is usable. Refused: an int outside the signed 64-bit range, a float
    that is NaN or infinite."""
    if type(value) is int:
        if INT64_MIN <= value <= INT64_MAX:
            return None
        bits = value.bit_length()
        shown = str(value) if bits <= 128 else f"an integer of about {round(bits * 0.30103)} digits"
        return f"must be an integer {INTEGER_RANGE} (got {shown})"
    if type(value) is float and not math.isfinite(value):
        return f"must be a finite number (got {json.dumps(value)})"
    return None


def parse_seq(text: str | None) -> int | None:
    """A seq written in a query string (``?after=N``): None when empty, else a whole
    number from 0 to :data:`INT64_MAX` in ASCII digits; ValueError naming the bounds."""
    if not text:
        return None
    if text.isascii() and text.isdigit() and len(text) <= _MAX_INT_TEXT:
        value = int(text)
        if value <= INT64_MAX:
            return value
    shown = text if len(text) <= 24 else text[:21] + "..."
    raise ValueError(f"after must be a seq from 0 to {INT64_MAX} (got {shown!r})")
