"""One multiplexed WebSocket per server, shared by every widget and run (the connection pool).

:class:`Connection` talks wire protocol v1 (``docs/protocol.md``) to ``<base>/vimax/ws`` on a
daemon thread that runs its own asyncio loop, so it never blocks the kernel's loop and
keeps running while the kernel's main thread is busy. Its public methods may be called
from any thread; every callback runs on the connection's thread and must not block it.
Reconnection, heartbeats and the offline queue are :class:`~vimax_nb.client.transport.
Transport`'s; this module adds rooms, per-type handlers and requests.

Guarantees:

* any number of subscriptions may follow the same room; they share one server
  subscription (:mod:`vimax_nb.client.rooms`) and each gets every event after its own
  ``after`` exactly once, in seq order: duplicates are dropped per subscription, a gap
  makes the room subscribe again from the lowest ``last_seq`` needed, and after any
  reconnect the room resubscribes from there with its epoch; a subscription whose
  position the server cannot replay (``recovered: false``) gets ``on_reset(snapshot)``,
  then the live events that follow;
* the server is told to unsubscribe only when the last subscription to a room leaves;
* server frames are read leniently: unknown types and fields are passed on, never fatal.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from .outbox import RequestError
from .rooms import Callback, Room, Subscription, call_safely
from .transport import Handler, Transport

__all__ = ["Callback", "Connection", "RequestError", "Subscription"]


class Connection(Transport):
    """A WebSocket to ``<url>/vimax/ws`` with reconnect, resume and an offline queue.

    ``url`` is the server's base (``http(s)://host:port/base_url/``), ``token`` its token;
    the options are :class:`~vimax_nb.client.transport.Transport`'s. The thread starts
    with :meth:`start` or the first use; :meth:`close` stops it.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        backoff: Sequence[float] = (1, 2, 4, 8, 16, 30),
        jitter: float = 0.1,
        heartbeat: float | None = None,
        offline_queue: int = 100,
        open_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            url,
            token,
            backoff=backoff,
            jitter=jitter,
            heartbeat=heartbeat,
            offline_queue=offline_queue,
            open_timeout=open_timeout,
        )
        self._rooms: dict[str, Room] = {}
        self._handlers: dict[str, list[Handler[dict[str, Any]]]] = {}
        self._ids = itertools.count(1)
        self._stats.update(duplicates=0, gaps=0)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: reconnects, messages received, dropped (offline queue), duplicates
        (events no subscription needed), gaps (events that revealed missed ones), queued."""
        return super().stats

    def subscriptions(self, room: str) -> list[Subscription]:
        """The active subscriptions to ``room``, in the order they were made."""
        with self._lock:
            found = self._rooms.get(room)
            return list(found.subscriptions) if found is not None else []

    # -- public API (any thread) -----------------------------------------------------

    def on(self, type_: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(message)`` for every frame of ``type_``; an event is passed on
        once, the first time a subscription to its room takes it.

        Returns a zero-argument remover, like :meth:`on_state`'s (thread-safe, idempotent).
        """
        handler = Handler(callback)
        with self._lock:
            handlers = self._handlers.setdefault(type_, [])
            handlers.append(handler)
        return lambda: self._remove_handler(handlers, handler)

    def subscribe(
        self,
        room: str,
        callback: Callback,
        after: int | None = None,
        *,
        on_subscribed: Callback | None = None,
        on_reset: Callback | None = None,
    ) -> Subscription:
        """Follow ``room``: ``callback`` gets every event with seq > ``after`` once, in order.

        ``after=None`` (or 0) asks for everything the log keeps; a number is a seq of the
        server's current epoch. Other subscriptions to the same room are unaffected: a
        subscription that asks for older events than the room has already delivered is
        given them by a replay the others skip. ``on_subscribed(answer)`` and
        ``on_reset(snapshot)`` are described on :class:`Subscription`. Raises
        ConnectionError once the connection is closed.
        """
        sub = Subscription(room, callback, on_subscribed, on_reset, last_seq=after or 0)
        with self._lock:
            if self._closed:
                raise ConnectionError("the connection is closed")
            sub.epoch = self.epoch if after else None
            self._rooms.setdefault(room, Room(room)).add(sub)
        self.start()
        self._thread.call_soon(self._sync, room)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop ``sub``: its callbacks get nothing more once this returns, unless one is
        running already (idempotent). The others of its room carry on; the server is told
        to unsubscribe when the last one leaves."""
        with self._lock:
            if not sub.active:
                return
            room = self._rooms.get(sub.room)
            if room is None or not room.remove(sub):
                sub.active = False
                return
            del self._rooms[sub.room]
        self._thread.call_soon(self._push_urgent, {"type": "unsubscribe", "room": sub.room})

    def request(self, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send ``message`` and block the calling thread until its answer, matched by ``id``.

        ``control`` is answered by ``control_response``, ``get_metrics`` by
        ``coordinator_metrics``. Raises TimeoutError after ``timeout`` s, ConnectionError
        if the connection is closed or lost after sending, RequestError on an error frame.
        A request that gets no answer in time and still waits in the offline queue is
        withdrawn from it: it is never sent later (the TimeoutError says which happened).
        """
        if self._thread.is_current:
            raise RuntimeError("request() would block the connection's own thread")
        message = dict(message)
        rid = str(message.setdefault("id", f"r{next(self._ids)}"))
        with self._lock:
            if self._closed:
                raise ConnectionError("the connection is closed")
            future = self._outbox.expect(rid, str(message.get("type")))
        try:
            self.send(message)
            return future.result(timeout)
        except TimeoutError:
            withdrawn = self._outbox.withdraw(rid)
            raise TimeoutError(
                f"no answer to {message.get('type')} {rid!r} within {timeout} s"
                f" (connection {self.state}; "
                + ("not sent: withdrawn from the offline queue)" if withdrawn else "it was sent)")
            ) from None
        finally:
            self._outbox.forget(rid)

    # -- the connection's thread -----------------------------------------------------

    def _welcomed(self, welcome: dict[str, Any]) -> None:
        """Subscribe every room again on the new connection, each from its lowest position."""
        with self._lock:
            for room in self._rooms.values():
                room.reconnected()
            names = list(self._rooms)
        for name in names:
            self._sync(name)

    def _sync(self, name: str) -> None:
        """Send the room's ``subscribe`` if a subscription waits for one (loop thread)."""
        if self._ws is None:
            return  # the next connection subscribes every room
        with self._lock:
            room = self._rooms.get(name)
            message = room.request(f"s{next(self._ids)}", self.epoch) if room else None
        if message is not None:
            self._push_urgent(message)

    # -- incoming frames ---------------------------------------------------------------

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        room, seq = message.get("room"), message.get("seq")
        if isinstance(seq, int) and isinstance(room, str):
            if not self._event(room, seq, message):
                return
        elif kind == "subscribed" and isinstance(room, str):
            self._subscribed(room, message)
        elif kind == "error" and isinstance(message.get("id"), str):
            self._refused(message["id"])
        self._outbox.answer(message)
        self._emit(message)

    def _event(self, name: str, seq: int, message: dict[str, Any]) -> bool:
        """Give an event to the subscriptions it is next for; True to pass it on to handlers."""
        with self._lock:
            room = self._rooms.get(name)
            if room is None:
                return False
            delivery = room.event(seq)
            if delivery.duplicate:
                self._stats["duplicates"] += 1
            if delivery.gap:
                self._stats["gaps"] += 1
        if delivery.gap:
            self._sync(name)
        for sub in delivery.subscriptions:
            if sub.active:
                call_safely(sub.callback, message)
        return delivery.emit

    def _subscribed(self, name: str, message: dict[str, Any]) -> None:
        with self._lock:
            room = self._rooms.get(name)
            answer = room.answer(message, self.epoch) if room is not None else None
        if room is None:  # unsubscribed meanwhile: make sure the server forgets it too
            self._push_urgent({"type": "unsubscribe", "room": name})
            return
        if answer is None:
            return
        snapshot = message.get("snapshot")
        for sub in answer.resets:
            if sub.active and sub.on_reset is not None:
                call_safely(sub.on_reset, snapshot if isinstance(snapshot, dict) else {})
        for sub in answer.confirms:
            if sub.active and sub.on_subscribed is not None:
                call_safely(sub.on_subscribed, message)
        if answer.resync:
            self._sync(name)

    def _refused(self, request_id: str) -> None:
        """An ``error`` frame answered request ``request_id``: forget it if it was a subscribe."""
        with self._lock:
            for room in self._rooms.values():
                if room.failed(request_id):
                    return

    def _emit(self, message: dict[str, Any]) -> None:
        with self._lock:
            handlers = list(self._handlers.get(str(message.get("type")), ()))
        for handler in handlers:
            if handler.active:
                call_safely(handler.callback, message)
