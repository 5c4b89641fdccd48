"""Per-room bookkeeping: many :class:`RoomSubscription` objects to one room share ONE
server subscription.

The server keeps one subscription per (connection, room): a new ``subscribe`` replaces the
previous one and replays the room from its ``after``. :class:`Room` therefore asks the
server for the room from the lowest position any of its subscriptions still needs, and
each subscription keeps its own ``last_seq`` and takes an event only when it is the next
one *for it*:

* ``seq <= last_seq``: already seen by this subscription (a replay for another one): skipped;
* ``seq == last_seq + 1``: delivered, ``last_seq`` advances;
* ``seq > last_seq + 1``: a jump. It is expected while a ``subscribe`` is unanswered, while
  the subscription waits for its own request, or when ``seq`` is no higher than the top of
  an answered replay (a page of a superseded replay); any other jump is a *gap*, and the
  room subscribes again from the lowest position needed.

Because every request starts at the minimum of all subscriptions' positions and the
server's answer to the newest request is one contiguous stream from there (replay, then
live events), every subscription receives each event after its own position exactly
once, in seq order, whatever the order in which subscriptions come and go.

``recovered: false`` is judged per subscription (see :meth:`Room.answer`): only a
subscription whose own position cannot be replayed is reset from the snapshot.

This module does no I/O and takes no lock: :class:`~vimax_nb.client.connection.
ClientConnection` calls a :class:`Room`'s methods on its connection's thread only, then
runs the callbacks. Requests and answers are the protocol's models
(:class:`~vimax_nb.protocol.Subscribe`, :class:`~vimax_nb.protocol.Subscribed`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..protocol import (
    AgentRecord,
    CoordinatorMetricsEvent,
    Event,
    Subscribe,
    Subscribed,
    WorkflowRecord,
)

__all__ = ["Answer", "Delivery", "Room", "RoomSubscription", "Snapshot"]

log = logging.getLogger(__name__)

Snapshot = WorkflowRecord | AgentRecord | CoordinatorMetricsEvent
"""A room's current record, as a ``subscribed`` answer carries it: a workflow room's
:class:`~vimax_nb.protocol.WorkflowRecord`, an agent room's
:class:`~vimax_nb.protocol.AgentRecord`, the coordinator room's metrics."""


@dataclass(eq=False)
class RoomSubscription:
    """One follower of a room: ``callback`` gets each event after ``last_seq`` once, in order.

    ``last_seq`` is the seq of the last event delivered to this subscription (or the
    ``after`` it started from) and ``epoch`` the event log those seqs come from; both are
    kept across reconnects, so the subscription resumes exactly where it stopped.
    ``on_subscribed(answer)`` is called with the server's ``subscribed`` answer to each
    request made on this subscription's behalf (the first one, and again after a
    reconnect or a gap); ``on_reset(snapshot)`` when its position could not be replayed
    and the room's record replaces the events it missed. ``active`` is False once
    unsubscribed.
    """

    room: str
    callback: Callable[[Event], None]
    on_subscribed: Callable[[Subscribed], None] | None = None
    on_reset: Callable[[Snapshot], None] | None = None
    last_seq: int = 0
    epoch: str | None = None
    active: bool = True
    _waiting: bool = field(default=True, repr=False)  # needs a request that covers it
    _confirm: str | None = field(default=None, repr=False)  # the request it waits to hear of


@dataclass(frozen=True, slots=True)
class _Request:
    id: str
    after: int
    epoch: str | None


@dataclass(slots=True)
class Delivery:
    """What to do with one event of the room.

    ``subscriptions`` take the event (their ``last_seq`` is already advanced), in the
    order they subscribed; ``gap``: a subscription missed events and the room must be
    asked for again.
    """

    subscriptions: list[RoomSubscription]
    gap: bool = False


@dataclass(slots=True)
class Answer:
    """What a ``subscribed`` answer means for the room's subscriptions.

    ``resets`` get ``on_reset(snapshot)`` (their ``last_seq`` is already the answer's
    ``top``), then ``confirms`` get ``on_subscribed(answer)``; ``resync``: another request
    is needed (some subscription's position is still not served).
    """

    resets: list[RoomSubscription] = field(default_factory=list)
    confirms: list[RoomSubscription] = field(default_factory=list)
    resync: bool = False


class Room:
    """The subscriptions of one room on one connection, and the requests made for them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.subscriptions: list[RoomSubscription] = []
        self._requests: dict[str, _Request] = {}  # sent, not answered yet, oldest first
        self._top = 0  # the highest ``top`` answered on the current connection

    def __repr__(self) -> str:
        positions = [s.last_seq for s in self.subscriptions]
        return f"Room({self.name!r}, positions={positions}, unanswered={len(self._requests)})"

    def add(self, sub: RoomSubscription) -> None:
        """Add ``sub``; it waits for a request (:meth:`request`) that covers its position."""
        sub._waiting = True
        sub._confirm = None
        self.subscriptions.append(sub)

    def remove(self, sub: RoomSubscription) -> bool:
        """Take ``sub`` out (it gets nothing more); True when no subscription is left."""
        sub.active = False
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)
        return not self.subscriptions

    def reconnected(self) -> None:
        """A new connection: nothing is subscribed on it yet, every subscription waits."""
        self._requests.clear()
        self._top = 0
        for sub in self.subscriptions:
            sub._waiting = True
            sub._confirm = None

    def request(self, request_id: str, server_epoch: str | None) -> Subscribe | None:
        """The ``subscribe`` message to send now, or None when no subscription waits for one.

        It asks for every event after the lowest ``last_seq`` of the subscriptions whose
        seqs come from ``server_epoch`` (the others are reset by the answer anyway), so it
        serves every subscription of the room; the waiting ones hear of its answer.
        """
        waiting = [s for s in self.subscriptions if s._waiting]
        if not waiting:
            return None
        current = [s for s in self.subscriptions if _same_log(s.epoch, server_epoch)]
        lowest = min(current or self.subscriptions, key=lambda s: s.last_seq)
        after = lowest.last_seq
        epoch = (server_epoch if current else lowest.epoch) if after else None
        for sub in waiting:
            sub._waiting = False
            sub._confirm = request_id
        self._requests[request_id] = _Request(request_id, after, epoch)
        return Subscribe(room=self.name, after=after or None, epoch=epoch, id=request_id)

    def event(self, seq: int) -> Delivery:
        """Advance the subscriptions for which ``seq`` is the next event; see the module doc."""
        taken: list[RoomSubscription] = []
        gap = False
        for sub in self.subscriptions:
            if seq <= sub.last_seq:
                continue
            if seq == sub.last_seq + 1:
                sub.last_seq = seq
                taken.append(sub)
                continue
            if sub._waiting or self._requests or seq <= self._top:
                continue  # a request that covers it is on its way, or this is an old page
            log.info("gap in %s: seq %d after %d; subscribing again", self.name, seq, sub.last_seq)
            sub._waiting = True
            gap = True
        return Delivery(taken, gap)

    def answer(self, message: Subscribed, server_epoch: str | None) -> Answer | None:
        """Take the ``subscribed`` answer ``message``; None if it answers no request of ours.

        A subscription is reset (``last_seq`` = ``top``, ``epoch`` = the server's) when its
        seqs come from another epoch, when its position is above ``top`` (even if the
        request, made for another subscription's lower position, was recovered), or when
        ``recovered`` is false and its position is at or below the request's ``after``
        (the log no longer holds the event after it). A subscription that is neither reset nor
        up to ``top`` after a ``recovered: false`` answer is asked for again, since the
        server may send it no replay.
        """
        req = self._requests.pop(message.id, None) if message.id is not None else None
        if req is None:
            return None
        top = message.top
        self._top = max(self._top, top)
        recovered = message.recovered
        # not recovered although the epoch matches and ``after`` <= ``top``: the log no
        # longer holds the event after ``after`` (retention)
        retention = _same_log(req.epoch, server_epoch) and req.after <= top
        result = Answer()
        for sub in self.subscriptions:
            # above ``top``: the server's seqs will never reach it in order, whoever asked
            unrecoverable = (
                not _same_log(sub.epoch, server_epoch)
                or sub.last_seq > top
                or (not recovered and retention and sub.last_seq <= req.after)
            )
            if unrecoverable:
                sub.last_seq = top
                result.resets.append(sub)
            elif (
                not recovered
                and sub.last_seq < top
                and sub._confirm in (None, req.id)
                and not sub._waiting
            ):
                sub._waiting = True
                result.resync = True
            if sub.epoch is None or unrecoverable:
                sub.epoch = server_epoch
            if sub._confirm == req.id:
                sub._confirm = None
                result.confirms.append(sub)
        return result

    def failed(self, request_id: str) -> bool:
        """The server refused request ``request_id`` (an ``error`` frame); True if it was ours."""
        if self._requests.pop(request_id, None) is None:
            return False
        for sub in self.subscriptions:
            if sub._confirm == request_id:
                sub._confirm = None
        return True


def _same_log(epoch: str | None, server_epoch: str | None) -> bool:
    """Whether seqs of ``epoch`` are seqs of the server's log (unknown epochs are trusted)."""
    return epoch is None or server_epoch is None or epoch == server_epoch
