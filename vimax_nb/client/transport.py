"""The socket's life for :class:`~vimax_nb.client.connection.Connection`: connect, wait for
``welcome``, send in order, notice a dead peer, reconnect with backoff.

:class:`Transport` runs on a :class:`~vimax_nb.client.loop_thread.LoopThread`. What the
frames mean is its subclass's business: it is told of each new connection
(:meth:`Transport._welcomed`) and of each frame (:meth:`Transport._dispatch`), on the
connection's thread.

Guarantees:

* after a disconnect (any close code, 4008 included) it reconnects after
  ``backoff[i] * (1 ± jitter)`` seconds, ``i`` growing up to the last value and going
  back to 0 after a ``welcome``;
* a dead peer is noticed by WebSocket pings, sent every ``heartbeat`` seconds (by
  default the server's ``heartbeat_interval``) and each answered within as long, or the
  connection is dropped (at most ``min(heartbeat, 5)`` s later) and made again;
* messages given to :meth:`Transport.send` are sent in order; while offline they wait
  in a bounded queue (the oldest dropped with a warning) and go out after the messages
  of :meth:`Transport._push_urgent` (the resubscriptions) on the next connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from .loop_thread import LoopThread
from .outbox import Outbox

__all__ = ["DEFAULT_HEARTBEAT", "STATES", "Handler", "Transport"]

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT = 20.0
CLOSE_TIMEOUT = 5.0  # the longest wait for a closing handshake (a dead peer never answers)
STATES = ("connecting", "open", "offline", "closed")

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class Handler(Generic[T]):
    """One registration of a callback; ``active`` is False once it is removed."""

    callback: Callable[[T], None]
    active: bool = True


class Transport:
    """A WebSocket to ``<url>/vimax/ws`` that is made again whenever it is lost.

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
        self._lock = threading.RLock()  # guards the state and the counters (and subclasses')
        self._outbox = Outbox(offline_queue)
        self._state_handlers: list[Handler[str]] = []
        self._state = "offline"
        self._closed = False
        self._stats = {"reconnects": 0, "messages": 0, "dropped": 0}
        self._thread = LoopThread("vimax-connection", self._main)
        self._thread.on_exit = lambda: self._set_state("closed")
        self._ws: ClientConnection | None = None
        self._attempt = 0  # failed attempts since the last welcome
        self._wake: asyncio.Event | None = None  # set when there is something to send
        self._stop: asyncio.Event | None = None
        self._urgent: list[str] = []  # subscribe/unsubscribe, sent before the queue

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the connection's thread (idempotent); raises ConnectionError once closed."""
        with self._lock:
            if self._closed:
                raise ConnectionError("the connection is closed")
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Close the socket, fail pending requests, stop and join the thread (idempotent)."""
        with self._lock:
            closing, self._closed = not self._closed, True
        if closing and self._thread.call_soon(self._request_stop):
            self._thread.join(timeout)
        elif not self._thread.started:
            self._set_state("closed")
        self._outbox.fail(ConnectionError("the connection is closed"), everything=True)

    def __enter__(self) -> Self:
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
        """Counters: reconnects, messages received, dropped (offline queue), queued."""
        with self._lock:
            return {**self._stats, "queued": len(self._outbox)}

    @property
    def running(self) -> bool:
        """Whether the connection's thread is alive."""
        return self._thread.running

    def on_state(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(state)`` on each change of :attr:`state`, on the thread that
        changes it (the connection's, or the one that closes it); don't block.

        Returns a zero-argument remover. Calling it (from any thread, any number of
        times) stops the callback: no change of state that starts after it returns calls
        it; a call already under way may finish. Each registration has its own remover.
        """
        handler = Handler(callback)
        with self._lock:
            self._state_handlers.append(handler)
        return lambda: self._remove_handler(self._state_handlers, handler)

    def _remove_handler(self, handlers: list[Handler[Any]], handler: Handler[Any]) -> None:
        """Stop ``handler`` and take it out of ``handlers`` (idempotent, thread-safe)."""
        with self._lock:
            handler.active = False
            if handler in handlers:
                handlers.remove(handler)

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` in order; offline it waits in the bounded queue (oldest dropped)."""
        text = json.dumps(message)
        self.start()
        dropped = self._outbox.put(text)
        if dropped is not None:
            with self._lock:
                self._stats["dropped"] += 1
            msg = f"vimax connection offline queue full: dropped the oldest message {dropped}"
            log.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        self._thread.call_soon(self._kick)

    # -- the connection's thread -----------------------------------------------------

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
            self._outbox.fail(ConnectionError("the connection was lost before the answer"))
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
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        heartbeat = self.heartbeat or DEFAULT_HEARTBEAT
        async with websockets.connect(
            self.ws_url,
            additional_headers=headers,
            ping_interval=heartbeat,
            ping_timeout=heartbeat,
            open_timeout=self.open_timeout,
            close_timeout=min(heartbeat, CLOSE_TIMEOUT),
            max_size=None,
        ) as ws:
            first = _decode(await asyncio.wait_for(ws.recv(), self.open_timeout))
            if first.get("type") != "welcome":
                raise ConnectionError(f"expected welcome first, got {first}")
            interval = first.get("heartbeat_interval")
            if self.heartbeat is None and isinstance(interval, int | float) and interval > 0:
                # the server's interval, from now on (not after the first default wait)
                ws.ping_interval = ws.ping_timeout = float(interval)
                ws.close_timeout = min(float(interval), CLOSE_TIMEOUT)
                if ws.keepalive_task is not None:
                    ws.keepalive_task.cancel()
                ws.start_keepalive()
            self._ws, self._attempt = ws, 0
            self._urgent.clear()
            with self._lock:
                self.client_id, self.epoch = first.get("client_id"), first.get("epoch")
            self._welcomed(first)
            self._set_state("open")
            self._dispatch(first)
            sender = asyncio.ensure_future(self._sender(ws))
            try:
                async for raw in ws:
                    message = _decode(raw)
                    with self._lock:
                        self._stats["messages"] += 1
                    self._dispatch(message)
            finally:
                sender.cancel()

    async def _sender(self, ws: ClientConnection) -> None:
        assert self._wake is not None
        assert self._stop is not None
        while True:
            text = self._urgent.pop(0) if self._urgent else self._outbox.take()
            if text is None:
                self._wake.clear()
                stop = asyncio.ensure_future(self._stop.wait())
                wake = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({stop, wake}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
                    wake.cancel()
                if self._stop.is_set():
                    await ws.close(1000, "client closed")
                    return
                continue
            await ws.send(text)

    def _push_urgent(self, message: dict[str, Any]) -> None:
        """Send ``message`` before the queued ones, on the current connection only."""
        if self._ws is not None:
            self._urgent.append(json.dumps(message))
            self._kick()

    def _set_state(self, state: str) -> None:
        with self._lock:
            if self._state == state or self._state == "closed":
                return
            self._state = state
            handlers = list(self._state_handlers)
        for handler in handlers:
            if not handler.active:
                continue
            try:
                handler.callback(state)
            except Exception:
                log.exception("vimax connection state callback failed")

    # -- for subclasses (the connection's thread) ------------------------------------

    def _welcomed(self, welcome: dict[str, Any]) -> None:
        """A new connection got ``welcome``: subscribe again (before queued messages go out)."""

    def _dispatch(self, message: dict[str, Any]) -> None:
        """Handle one frame from the server."""


def _decode(raw: str | bytes) -> dict[str, Any]:
    """A server frame as a dict; anything that is not a JSON object becomes ``{}``."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        log.warning("vimax connection: ignoring a frame that is not JSON: %.80r", raw)
        return {}
    return data if isinstance(data, dict) else {}
