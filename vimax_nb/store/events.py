"""The durable event log: per-room sequence numbers, retention, and the replay a
reconnecting client is sent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic_core import to_json

from ..protocol import ENVELOPE
from ..shared import format_timestamp
from .database import Database, StoreError
from .records import Retention, StoredEvent, encode_payload

log = logging.getLogger(__name__)

_APPEND, _PRUNE, _RESET, _FLUSH = range(4)
_PREFIX_CACHE_LIMIT = 10_000


def _envelope_splice() -> tuple[tuple[str, ...], bytes, bytes]:
    """How the writer splices :data:`~vimax_nb.protocol.ENVELOPE` in front of a payload.

    A stored frame is ``{``, the envelope's fields in ENVELOPE's order, then the
    payload's fields. The fields before ``seq`` (the type and the room) are the same
    for every event of a room and type: they go into a prefix formatted once per
    (room, type) and cached, which ends with the key of ``seq``. The seq and the
    timestamp (one per batch) follow per event. Returns the names of the prefix's
    fields in order, the prefix's format (one ``%s`` for each of their JSON values)
    and the per-event format (prefix, seq, timestamp, the rest of the payload).
    """
    keys = {name: to_json(name) for name in ENVELOPE}
    split = ENVELOPE.index("seq")
    prefix_fields, event_fields = ENVELOPE[:split], ENVELOPE[split:]
    if sorted(prefix_fields) != ["room", "type"] or event_fields != ("seq", "timestamp"):
        raise RuntimeError(f"the event log cannot splice ENVELOPE = {ENVELOPE!r}")
    prefix_format = b"{%s," % b",".join(keys[name] + b":%s" for name in prefix_fields)
    prefix_format += keys["seq"] + b":"
    event_format = b"%s%d," + keys["timestamp"] + b':"%s"%s'
    return prefix_fields, prefix_format, event_format


_PREFIX_FIELDS, _PREFIX_FORMAT, _EVENT_FORMAT = _envelope_splice()


EventListener = Callable[[Sequence[StoredEvent]], None]


class EventLog:
    """Append-only, per-room sequenced log of protocol events on a :class:`Database`.

    Sequence numbers are assigned by the writer thread when an event is stored:
    1, 2, 3, ... per room, with no gap and no duplicate however many producers
    append at once. Listeners are called on the event loop with each committed
    batch, in sequence order, and only after the batch is durable.
    """

    def __init__(self, db: Database, retention: Retention | None = None) -> None:
        self.db = db
        self.retention = retention or Retention()
        self.epoch = ""
        self._listeners: list[EventListener] = []
        # Committed state, read and written on the event loop only.
        self._tops: dict[str, int] = {}
        self._floors: dict[str, int] = {}
        # Writer-thread state: the tops and floors as of the last commit.
        self._w_tops: dict[str, int] = {}
        self._w_floors: dict[str, int] = {}
        self._prefixes: dict[tuple[str, str], bytes] = {}

    @classmethod
    async def open(cls, db: Database, retention: Retention | None = None) -> EventLog:
        """Load the epoch and each room's top from ``db`` and start taking appends."""
        self = cls(db, retention)
        epoch, rooms = await db.run_in_writer(self._load)
        self.epoch = epoch
        for room, top, floor in rooms:
            self._tops[room] = self._w_tops[room] = top
            self._floors[room] = self._w_floors[room] = floor
        db.add_maintenance(self._queue_prune)
        return self

    def _queue_prune(self) -> None:
        """Maintenance hook (writer thread): apply age retention in the next batch."""
        with contextlib.suppress(StoreError):  # closing: the file is about to go
            self.db.submit(self, (_PRUNE, None, None))

    @staticmethod
    def _load(conn: sqlite3.Connection) -> tuple[str, list[tuple[str, int, int]]]:
        row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        if row is None:
            epoch = uuid.uuid4().hex
            conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
        else:
            epoch = row[0]
        rooms = conn.execute("SELECT room, top, floor FROM rooms").fetchall()
        return epoch, rooms

    # -- appending ----------------------------------------------------------------

    def append_nowait(self, room: str, type: str, payload: Mapping[str, Any] | bytes) -> None:
        """Queue an event for storage without waiting; listeners see it once stored.

        ``payload`` is the event's fields other than type, room, seq and timestamp,
        as a mapping or as the JSON text of an object. It is serialized later, on
        the writer thread: do not change a mapping after handing it over. A
        payload that cannot be stored is logged and dropped without using a seq.
        """
        self.db.submit(self, (_APPEND, room, type, payload, None))

    async def append(self, room: str, type: str, payload: Mapping[str, Any] | bytes) -> int:
        """Store an event and return its seq once it is durable.

        Raises TypeError, naming the room and the type, when ``payload`` is not a
        JSON object or sets an envelope field; other appends are not affected.
        """
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.db.submit(self, (_APPEND, room, type, payload, future))
        return await future

    async def flush(self) -> None:
        """Wait until every event queued before this call is stored and delivered."""
        await self._call(_FLUSH, None)

    async def reset(self) -> str:
        """Drop every event and start a new epoch; return it.

        Events queued before this call belong to the old epoch and go with it (an
        ``append`` among them still returns the seq it had; listeners never see
        them); events queued after it start the new epoch's rooms at seq 1.
        """
        epoch: str = await self._call(_RESET, uuid.uuid4().hex)
        return epoch

    async def _call(self, kind: int, arg: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.db.submit(self, (kind, arg, future))
        return await future

    def add_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener(events)`` on the loop after each commit; return a remover.

        The remover may be called more than once.
        """
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    # -- reading ------------------------------------------------------------------

    def top(self, room: str) -> int:
        """The highest committed seq of ``room`` (0 when it has none)."""
        return self._tops.get(room, 0)

    def floor(self, room: str) -> int:
        """The highest seq of ``room`` dropped by retention (0 when none was)."""
        return self._floors.get(room, 0)

    def rooms(self) -> list[str]:
        """Every room that has had an event in this epoch."""
        return list(self._tops)

    async def read(self, room: str, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Committed events of ``room`` with seq > ``after``, oldest first (at most ``limit``)."""
        return await self.db.read(lambda conn: _select(conn, room, after, None, limit))

    def replay(self, room: str, after: int | None, epoch: str | None = None) -> Replay:
        """What a client that has seen ``room``'s events up to ``after`` is sent, decided now.

        ``top`` is taken when this is called: every event above it reaches the
        listeners after this call, so a subscriber that starts listening (holding
        live events back) before calling ``replay`` misses nothing and sees nothing
        twice. ``epoch`` is the log's epoch the client's ``after`` belongs to (None:
        this one). Raises StoreError when the database is closed.
        """
        if self.db.closed:
            raise StoreError(f"the database {self.db.path} is closed")
        top, floor = self.top(room), self.floor(room)
        return Replay(self.db, room, after or 0, top, floor, epoch, self.epoch)

    # -- the writer thread's side (WriteHandler) ------------------------------------

    def write(self, conn: sqlite3.Connection, items: list[Any]) -> Any:
        now = time.time()
        timestamp = format_timestamp(now)
        stamp = timestamp.encode()
        stored: list[StoredEvent] = []
        tops: dict[str, int] = {}
        floors: dict[str, int] = {}
        base_tops, base_floors = self._w_tops, self._w_floors
        rows: list[tuple[str, int, float, str, bytes]] = []
        results: list[Any] = []
        epoch: str | None = None
        prefixes = self._prefixes
        event_format = _EVENT_FORMAT
        for item in items:
            kind = item[0]
            if kind == _APPEND:
                _, room, type_, payload, _future = item
                try:
                    if not (isinstance(room, str) and room and isinstance(type_, str) and type_):
                        raise ValueError("the room and the type must be non-empty strings")
                    body, has_fields = encode_payload(payload)
                except Exception as exc:  # this event alone is refused
                    results.append(
                        TypeError(f"event {type_!r} for room {room!r} cannot be stored: {exc}")
                    )
                    continue
                seq = (tops.get(room) or base_tops.get(room, 0)) + 1
                tops[room] = seq
                prefix = prefixes.get((room, type_)) or self._prefix(room, type_)
                tail = b"," + body[1:] if has_fields else b"}"
                frame = event_format % (prefix, seq, stamp, tail)
                rows.append((room, seq, now, type_, frame))
                stored.append(StoredEvent(room, seq, type_, timestamp, frame))
                results.append(seq)
                continue
            self._insert(conn, rows, tops, floors, base_floors)
            rows = []
            if kind == _PRUNE:
                self._prune_by_age(conn, now, floors, base_floors)
                results.append(None)
            elif kind == _RESET:
                conn.execute("DELETE FROM events")
                conn.execute("DELETE FROM rooms")
                conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (item[1],))
                epoch = item[1]
                base_tops = base_floors = {}
                tops.clear()
                floors.clear()
                stored.clear()
                results.append(epoch)
            else:
                results.append(None)
        self._insert(conn, rows, tops, floors, base_floors)
        return results, tops, floors, epoch, stored

    def _prefix(self, room: str, type_: str) -> bytes:
        if len(self._prefixes) > _PREFIX_CACHE_LIMIT:
            self._prefixes.clear()
        values = {"type": to_json(type_), "room": to_json(room)}
        prefix = _PREFIX_FORMAT % tuple(values[name] for name in _PREFIX_FIELDS)
        self._prefixes[(room, type_)] = prefix
        return prefix

    def _insert(
        self,
        conn: sqlite3.Connection,
        rows: list[tuple[str, int, float, str, bytes]],
        tops: dict[str, int],
        floors: dict[str, int],
        base_floors: dict[str, int],
    ) -> None:
        if not rows:
            return
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
        conn.executemany(
            "INSERT INTO rooms (room, top, floor) VALUES (?, ?, 0)"
            " ON CONFLICT (room) DO UPDATE SET top = excluded.top",
            list(tops.items()),
        )
        keep = self.retention.max_events_per_room
        if keep is None:
            return
        slack = keep // 10
        for room, top in tops.items():
            floor = floors.get(room) or base_floors.get(room, 0)
            if top - floor > keep + slack:
                self._drop_through(conn, room, top - keep, floors, base_floors)

    @staticmethod
    def _drop_through(
        conn: sqlite3.Connection,
        room: str,
        seq: int,
        floors: dict[str, int],
        base_floors: dict[str, int],
    ) -> None:
        # ``base_floors`` are the floors this batch started from: empty after a
        # reset earlier in the batch, whose epoch owes nothing to the old floors.
        conn.execute("DELETE FROM events WHERE room = ? AND seq <= ?", (room, seq))
        conn.execute("UPDATE rooms SET floor = max(floor, ?) WHERE room = ?", (seq, room))
        floors[room] = max(seq, floors.get(room, 0), base_floors.get(room, 0))

    def _prune_by_age(
        self,
        conn: sqlite3.Connection,
        now: float,
        floors: dict[str, int],
        base_floors: dict[str, int],
    ) -> None:
        if self.retention.max_age is None:
            return
        cutoff = now - self.retention.max_age
        expired = conn.execute(
            "SELECT room, max(seq) FROM events WHERE stored_at < ? GROUP BY room", (cutoff,)
        ).fetchall()
        for room, seq in expired:
            self._drop_through(conn, room, seq, floors, base_floors)

    def applied(self, items: list[Any], result: Any) -> None:
        _results, tops, floors, epoch, _stored = result
        if epoch is not None:
            self._w_tops.clear()
            self._w_floors.clear()
        self._w_tops.update(tops)
        self._w_floors.update(floors)

    def deliver(self, items: list[Any], result: Any, error: BaseException | None) -> None:
        if error is not None:
            log.error("events were not stored: %s", error)
            for item in items:
                future = item[-1]
                if future is not None and not future.done():
                    future.set_exception(error)
            return
        results, tops, floors, epoch, stored = result
        if epoch is not None:
            self.epoch = epoch
            self._tops.clear()
            self._floors.clear()
        self._tops.update(tops)
        self._floors.update(floors)
        if stored:
            for listener in list(self._listeners):
                try:
                    listener(stored)
                except Exception:
                    log.exception("event log listener %r failed", listener)
        for item, value in zip(items, results, strict=True):
            future = item[-1]
            if isinstance(value, Exception):
                log.error("%s", value)
                if future is not None and not future.done():
                    future.set_exception(value)
            elif future is not None and not future.done():
                future.set_result(value)


class ReplayGap(Exception):
    """A replay cannot be sent as it was decided: the log was reset since, or retention
    dropped events a recovered replay was to send."""


class Replay:
    """The events a client that has seen a room up to ``after`` is sent, page by page.

    Decided when :meth:`EventLog.replay` makes it. ``recovered`` is true when the kept
    events after ``after`` are all of them: the client's epoch is the log's and
    ``floor <= after <= top``. The pages hold the kept events with
    ``start < seq <= top``: ``start`` is ``after`` when recovered; the floor for a
    client of this epoch that has seen nothing (everything still kept); otherwise
    ``top``, and there is nothing to send (the room's snapshot is the truth).
    ``cursor`` is the seq of the last event read, ``start`` before the first page.
    """

    def __init__(
        self,
        db: Database,
        room: str,
        after: int,
        top: int,
        floor: int,
        client_epoch: str | None,
        epoch: str,
    ) -> None:
        self.db = db
        self.room = room
        self.top = top
        self.epoch = epoch
        same_epoch = client_epoch is None or client_epoch == epoch
        self.recovered = same_epoch and floor <= after <= top
        if self.recovered:
            self.cursor = after
        elif same_epoch and after == 0:
            self.cursor = floor
        else:
            self.cursor = top

    @property
    def done(self) -> bool:
        """Whether every page has been read."""
        return self.cursor >= self.top

    async def next_page(self, limit: int) -> list[StoredEvent]:
        """The next kept events, at most ``limit``, oldest first; ``[]`` once done.

        Raises :class:`ReplayGap` when the log was reset since the replay was decided,
        or when a recovered replay finds an event it was to send dropped; StoreError
        when the database is closed.
        """
        if self.done:
            return []
        room, cursor, top, epoch = self.room, self.cursor, self.top, self.epoch

        def query(conn: sqlite3.Connection) -> tuple[str | None, list[StoredEvent]]:
            conn.execute("BEGIN")  # the epoch and the events of one snapshot
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
                events = _select(conn, room, cursor, top, limit)
            finally:
                conn.execute("COMMIT")
            return (row[0] if row else None), events

        stored_epoch, page = await self.db.read(query)
        if stored_epoch != epoch:
            raise ReplayGap(f"the event log was reset while room {room!r} was being replayed")
        if self.recovered and (not page or page[0].seq != cursor + 1):
            raise ReplayGap(
                f"retention dropped events of room {room!r} after seq {cursor} "
                "while they were being replayed"
            )
        self.cursor = page[-1].seq if page else top
        return page


def _select(
    conn: sqlite3.Connection, room: str, after: int, until: int | None, limit: int | None
) -> list[StoredEvent]:
    """The stored events of ``room`` with ``after < seq <= until``, oldest first."""
    rows = conn.execute(
        "SELECT seq, type, stored_at, frame FROM events"
        " WHERE room = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        (
            room,
            after,
            until if until is not None else 2**62,
            -1 if limit is None else max(limit, 0),
        ),
    )
    return [
        StoredEvent(room, seq, type_, format_timestamp(at), frame) for seq, type_, at, frame in rows
    ]
