"""The event log's values: stored events, the retention policy, the payload encoding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic_core import from_json, to_json

from ..protocol import ENVELOPE, EventPayload


def encode_payload(payload: object) -> tuple[bytes, bool]:
    """The payload as compact-enough JSON object text, and whether it has any field.

    Raises ValueError (or a subclass) for anything that is not a JSON object, that
    cannot be serialized, or that sets one of the envelope's fields. An
    :class:`~vimax_nb.protocol.EventPayload` is taken as it is: its event's model made it.
    """
    if isinstance(payload, EventPayload):
        return payload, payload != b"{}"
    if isinstance(payload, bytes | bytearray | memoryview):
        body = bytes(payload).strip()
        fields = from_json(body, allow_inf_nan=False)
        if not isinstance(fields, dict):
            raise ValueError("the payload must be a JSON object")
    elif isinstance(payload, Mapping):
        fields = payload if isinstance(payload, dict) else dict(payload)
        body = to_json(fields, inf_nan_mode="null")
    else:
        raise ValueError(
            f"the payload must be a JSON object (a mapping or its JSON text), "
            f"not {type(payload).__name__}"
        )
    for key in ENVELOPE:
        if key in fields:
            raise ValueError(
                f"the payload must not set {key!r}: the log sets type, room, seq and timestamp"
            )
    return body, bool(fields)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: ``frame`` is the exact JSON text sent to clients."""

    room: str
    seq: int
    type: str
    timestamp: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class Retention:
    """How much of each room's history the log keeps.

    ``max_events_per_room`` keeps the newest events of each room (pruned in steps
    of about a tenth of it, as events are appended); ``max_age`` drops events older
    than that many seconds (at each of the database's maintenance rounds). ``None``
    turns a limit off.
    """

    max_events_per_room: int | None = 50_000
    max_age: float | None = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.max_events_per_room is not None and self.max_events_per_room < 100:
            raise ValueError(
                f"max_events_per_room must be at least 100 (got {self.max_events_per_room}): "
                "reconnecting clients rely on at least the last 100 events of a room"
            )
        if self.max_age is not None and self.max_age <= 0:
            raise ValueError(f"max_age must be a positive number of seconds (got {self.max_age})")
