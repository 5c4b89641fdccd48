"""One multiplexed WebSocket per server, shared by every widget and run (the connection pool).

:class:`Connection` talks wire protocol v1 (``docs/protocol.md``) to ``<base>/vimax/ws`` on a
daemon thread that runs its own asyncio loop, so it never blocks the kernel's loop and
keeps running while the kernel's main thread is busy. Its public methods may be called
from any thread; every callback runs on the connection's thread and must not block it.

Guarantees:

* every event of a subscribed room reaches its subscription in seq order, exactly once:
  duplicates (seq <= ``last_seq``) are dropped, a gap makes the room resubscribe from
  ``last_seq``, and after any reconnect each room resubscribes with ``after=last_seq`` and
  its epoch; if the server cannot replay (``recovered: false``) ``on_reset(snapshot)`` is
  called and the live events that follow are delivered;
* after a disconnect (any close code, 4008 included) it reconnects after
  ``backoff[i] * (1 ± jitter)`` seconds, ``i`` growing up to the last value and going
  back to 0 after a ``welcome``; a dead peer is noticed by WebSocket pings;
* messages sent while offline wait in a bounded queue (oldest dropped with a warning)
  and are sent in order once the rooms are resubscribed after the reconnect;
* server frames are read leniently: unknown types and fields are passed on, never fatal.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import json
import logging
import random
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

__all__ = ["Callback", "Connection", "RequestError", "Subscription"]

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], None]
DEFAULT_HEARTBEAT = 20.0
STATES = ("connecting", "open", "offline", "closed")
_ANSWERS = {"control": "control_response", "get_metrics": "coordinator_metrics"}


class RequestError(RuntimeError):
    """The server answered a request with an ``error`` frame (kept as ``frame``)."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.frame = frame


@dataclass(eq=False)
class Subscription:
    """A room's subscription: ``callback`` gets each event once, in seq order.

    ``last_seq`` is the seq of the last event delivered and ``epoch`` the event log those
    seqs come from; both are kept across reconnects so the room resumes where it stopped.
    """

    room: str
    callback: Callback
    on_subscribed: Callback | None = None
    on_reset: Callback | None = None
    last_seq: int = 0
    epoch: str | None = None
    active: bool = True
    _fresh: bool = field(default=True, repr=False)  # accept the first event's seq as is
    _sent_on: int = field(default=-1, repr=False)  # connection number it was subscribed on
    _resyncing: bool = field(default=False, repr=False)


@dataclass(eq=False)
class _Pending:
    future: concurrent.futures.Future[dict[str, Any]]
    answer_type: str
    sent_on: int = -1


class Connection:
    """A WebSocket to ``<url>/vimax/ws`` with reconnect, resume and an offline queue.

    ``url`` is the server's base (``http(s)://host:port/base_url/``), ``token`` its token.
    The thread starts with :meth:`start` or the first use; :meth:`close` stops it.
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
        if not backoff:
            raise ValueError("backoff needs at least one delay")
        base = url.rstrip("/")
        for scheme, ws_scheme in (("https://", "wss://"), ("http://", "ws://")):
            if base.startswith(scheme):
                base = ws_scheme + base[len(scheme) :]
        self.ws_url = base + "/vimax/ws"
        self.token = token
        self.backoff = tuple(backoff)
        self.jitter = jitter
        self.heartbeat = heartbeat
        self.open_timeout = open_timeout
        self.client_id: str | None = None
        self.epoch: str | None = None
        self._lock = threading.RLock()
        self._queue: collections.deque[str] = collections.deque(maxlen=offline_queue)
        self._subs: dict[str, Subscription] = {}
        self._handlers: dict[str, list[Callback]] = {}
        self._state_handlers: list[Callable[[str], None]] = []
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._state = "offline"
        self._closed = False
        self._stats = {"reconnects": 0, "messages": 0, "dropped": 0, "duplicates": 0, "gaps": 0}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: ClientConnection | None = None
        self._number = 0  # connections made so far
        self._attempt = 0  # failed attempts since the last welcome
        self._wake: asyncio.Event | None = None  # set when there is something to send
        self._stop: asyncio.Event | None = None
        self._urgent: collections.deque[str] = collections.deque()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the connection's thread (idempotent); raises ConnectionError once closed."""
        with self._lock:
            if self._closed:
                raise ConnectionError("the connection is closed")
            if self._thread is not None:
                return
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._thread_main, name="vimax-connection", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Close the socket, fail pending requests, stop and join the thread (idempotent)."""
        with self._lock:
            if self._closed:
                thread = None
            else:
                self._closed = True
                thread, loop = self._thread, self._loop
                if loop is not None:
                    loop.call_soon_threadsafe(self._request_stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None:
            self._set_state("closed")
        self._fail_pending(ConnectionError("the connection is closed"), everything=True)

    def __enter__(self) -> Connection:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def state(self) -> str:
        """``"connecting"``, ``"open"`` (welcome received), ``"offline"`` or ``"closed"``."""
        return self._state

    @property
    def stats(self) -> dict[str, int]:
        """Counters: reconnects, messages received, dropped (offline queue), duplicates, gaps."""
        with self._lock:
            return {**self._stats, "queued": len(self._queue)}

    @property
    def running(self) -> bool:
        """Whether the connection's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    # -- public API (any thread) -----------------------------------------------------

    def on(self, type_: str, callback: Callback) -> None:
        """Call ``callback(message)`` for every frame of ``type_`` (events once each)."""
        with self._lock:
            self._handlers.setdefault(type_, []).append(callback)

    def on_state(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(state)`` on each change of :attr:`state`."""
        with self._lock:
            self._state_handlers.append(callback)

    def subscribe(
        self,
        room: str,
        callback: Callback,
        after: int | None = None,
        *,
        on_subscribed: Callback | None = None,
        on_reset: Callback | None = None,
    ) -> Subscription:
        """Follow ``room`` from seq ``after`` (None: everything kept); one subscription per room."""
        sub = Subscription(room, callback, on_subscribed, on_reset, last_seq=after or 0)
        sub._fresh = not after
        with self._lock:
            if room in self._subs:
                raise ValueError(f"already subscribed to {room!r}; unsubscribe first")
            self._subs[room] = sub
            sub.epoch = self.epoch if after else None
        self.start()
        self._call_soon(self._subscribe_now, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop ``sub``: its callback gets nothing more (idempotent)."""
        with self._lock:
            sub.active = False
            if self._subs.get(sub.room) is not sub:
                return
            del self._subs[sub.room]
        self._call_soon(self._push_urgent, {"type": "unsubscribe", "room": sub.room})

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` in order; offline it waits in the bounded queue (oldest dropped)."""
        text = json.dumps(message)
        self.start()
        with self._lock:
            dropped = self._queue[0] if len(self._queue) == self._queue.maxlen else None
            self._queue.append(text)
            if dropped is not None:
                self._stats["dropped"] += 1
        if dropped is not None:
            msg = f"vimax connection offline queue full: dropped the oldest message {dropped}"
            log.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        self._call_soon(self._kick)

    def request(self, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send ``message`` and block the calling thread until its answer, matched by ``id``.

        ``control`` is answered by ``control_response``, ``get_metrics`` by
        ``coordinator_metrics``. Raises TimeoutError after ``timeout`` s, ConnectionError
        if the connection is closed or lost after sending, RequestError on an error frame.
        """
        if self._loop is not None and threading.current_thread() is self._thread:
            raise RuntimeError("request() would block the connection's own thread")
        message = dict(message)
        rid = str(message.setdefault("id", f"r{next(self._ids)}"))
        answer = _ANSWERS.get(str(message.get("type")), "")
        pending = _Pending(concurrent.futures.Future(), answer)
        with self._lock:
            if self._closed:
                raise ConnectionError("the connection is closed")
            self._pending[rid] = pending
        try:
            self.send(message)
            return pending.future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"no answer to {message.get('type')} {rid!r} within {timeout} s"
                f" (connection {self.state})"
            ) from None
        finally:
            with self._lock:
                self._pending.pop(rid, None)

    # -- the connection's thread -----------------------------------------------------

    def _call_soon(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(fn, *args)

    def _thread_main(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            with self._lock:
                self._loop.close()
            self._set_state("closed")

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _main(self) -> None:
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        if self._closed:
            return
        while not self._stop.is_set():
            self._set_state("connecting")
            session = asyncio.ensure_future(self._session())
            stop = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({session, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not session.done() and self._ws is None:  # closed while connecting
                session.cancel()
            try:
                await session
            except asyncio.CancelledError:
                pass
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                log.info("vimax connection to %s lost: %r", self.ws_url, exc)
            except Exception:
                log.exception("vimax connection failed")
            finally:
                self._ws = None
            self._fail_pending(ConnectionError("the connection was lost before the answer"))
            if self._stop.is_set():
                break
            self._set_state("offline")
            delay = self.backoff[min(self._attempt, len(self.backoff) - 1)]
            delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
            self._attempt += 1
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                with self._lock:
                    self._stats["reconnects"] += 1

    async def _session(self) -> None:
        """One connection: welcome, resubscribe, then send and receive until it ends."""
        assert self._stop is not None
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        heartbeat = self.heartbeat or DEFAULT_HEARTBEAT
        async with websockets.connect(
            self.ws_url,
            additional_headers=headers,
            ping_interval=heartbeat,
            ping_timeout=heartbeat,
            open_timeout=self.open_timeout,
            max_size=None,
        ) as ws:
            first = _decode(await asyncio.wait_for(ws.recv(), self.open_timeout))
            if first.get("type") != "welcome":
                raise ConnectionError(f"expected welcome first, got {first}")
            if self.heartbeat is None and isinstance(first.get("heartbeat_interval"), int | float):
                ws.ping_interval = ws.ping_timeout = float(first["heartbeat_interval"])
            self._ws, self._number, self._attempt = ws, self._number + 1, 0
            self.client_id, self.epoch = first.get("client_id"), first.get("epoch")
            self._urgent.clear()
            with self._lock:
                subs = list(self._subs.values())
            for sub in subs:
                self._subscribe_now(sub)
            self._set_state("open")
            self._emit(first)
            sender = asyncio.ensure_future(self._sender(ws))
            try:
                async for raw in ws:
                    self._dispatch(_decode(raw))
            finally:
                sender.cancel()

    async def _sender(self, ws: ClientConnection) -> None:
        assert self._wake is not None
        assert self._stop is not None
        while True:
            if self._urgent:
                text = self._urgent.popleft()
            else:
                with self._lock:
                    text = self._queue.popleft() if self._queue else ""
                    rid = _id_of(text) if text else None
                    if rid is not None and rid in self._pending:
                        self._pending[rid].sent_on = self._number
            if not text:
                self._wake.clear()
                stop = asyncio.ensure_future(self._stop.wait())
                wake = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({stop, wake}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                wake.cancel()
                if self._stop.is_set():
                    await ws.close(1000, "client closed")
                    return
                continue
            await ws.send(text)

    def _push_urgent(self, message: dict[str, Any]) -> None:
        if self._ws is not None:
            self._urgent.append(json.dumps(message))
            self._kick()

    def _subscribe_now(self, sub: Subscription) -> None:
        """Subscribe ``sub`` on the current connection unless it already is (loop thread)."""
        if self._ws is None or not sub.active or sub._sent_on == self._number:
            return
        sub._sent_on = self._number
        sub._resyncing = True
        after = sub.last_seq or None
        self._push_urgent(
            {"type": "subscribe", "room": sub.room, "after": after, "epoch": sub.epoch}
        )

    # -- incoming frames ---------------------------------------------------------------

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._stats["messages"] += 1
        kind = message.get("type")
        room, seq = message.get("room"), message.get("seq")
        if isinstance(seq, int) and isinstance(room, str):
            if not self._accept(room, seq, message):
                return
        elif kind == "subscribed" and isinstance(room, str):
            self._subscribed(room, message)
        self._answer(message)
        self._emit(message)

    def _accept(self, room: str, seq: int, message: dict[str, Any]) -> bool:
        """Deliver an event to its subscription if it is the next one; False to drop it."""
        with self._lock:
            sub = self._subs.get(room)
        if sub is None or not sub.active:
            return False
        if seq <= sub.last_seq and not sub._fresh:
            with self._lock:
                self._stats["duplicates"] += 1
            return False
        if seq > sub.last_seq + 1 and not sub._fresh:
            if not sub._resyncing:
                with self._lock:
                    self._stats["gaps"] += 1
                log.info("gap in %s: got seq %d after %d; resubscribing", room, seq, sub.last_seq)
                sub._sent_on = -1
                self._subscribe_now(sub)
            return False
        sub._fresh = False
        sub.last_seq = seq
        _call(sub.callback, message)
        return True

    def _subscribed(self, room: str, message: dict[str, Any]) -> None:
        with self._lock:
            sub = self._subs.get(room)
        if sub is None or not sub.active:
            return
        sub._resyncing = False
        sub.epoch = self.epoch
        top = message.get("top")
        if message.get("recovered") is False:
            sub.last_seq = top if isinstance(top, int) else 0
            sub._fresh = not isinstance(top, int)
            if sub.on_reset is not None:
                _call(sub.on_reset, message.get("snapshot") or {})
        if sub.on_subscribed is not None:
            _call(sub.on_subscribed, message)

    def _answer(self, message: dict[str, Any]) -> None:
        rid, kind = message.get("id"), message.get("type")
        with self._lock:
            pending = self._pending.get(rid) if isinstance(rid, str) else None
            if pending is None and "seq" not in message:  # answers that carry no id
                pending = next(
                    (p for p in self._pending.values() if p.answer_type == kind and kind), None
                )
        if pending is None or pending.future.done():
            return
        if kind == "error":
            pending.future.set_exception(RequestError(message))
        else:
            pending.future.set_result(message)

    def _emit(self, message: dict[str, Any]) -> None:
        with self._lock:
            handlers = list(self._handlers.get(str(message.get("type")), ()))
        for handler in handlers:
            _call(handler, message)

    def _fail_pending(self, error: Exception, *, everything: bool = False) -> None:
        """Fail requests sent on the lost connection (still-queued ones wait for the next)."""
        with self._lock:
            lost = [p for p in self._pending.values() if everything or p.sent_on >= 0]
        for pending in lost:
            if not pending.future.done():
                pending.future.set_exception(error)

    def _set_state(self, state: str) -> None:
        with self._lock:
            if self._state == state or self._state == "closed":
                return
            self._state = state
            handlers = list(self._state_handlers)
        for handler in handlers:
            try:
                handler(state)
            except Exception:
                log.exception("vimax connection state callback failed")


def _decode(raw: str | bytes) -> dict[str, Any]:
    """A server frame as a dict; anything that is not a JSON object becomes ``{}``."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        log.warning("vimax connection: ignoring a frame that is not JSON: %.80r", raw)
        return {}
    return data if isinstance(data, dict) else {}


def _id_of(text: str) -> str | None:
    rid = _decode(text).get("id")
    return rid if isinstance(rid, str) else None


def _call(callback: Callback, message: dict[str, Any]) -> None:
    try:
        callback(message)
    except Exception:
        log.exception("vimax connection callback failed for %s", message.get("type"))
