"""The socket under a :class:`~vimax_nb.client.connection.ClientConnection`: connect, wait
for ``welcome``, send in order, notice a dead peer, reconnect with backoff.

A :class:`ReconnectingSocket` runs on a :class:`~vimax_nb.client.loop_thread.LoopThread`.
What the frames mean is its owner's business: it is given two callables, told of each
new connection's :class:`~vimax_nb.protocol.Welcome` (``on_welcome``) and of every frame
after it, as received (``on_frame``), on the connection's thread. Its options are one
:class:`SocketOptions` value.

Guarantees:

* after a disconnect (any close code, 4008 included) it reconnects after
  ``backoff[i] * (1 ± jitter)`` seconds, ``i`` growing up to the last value and going
  back to 0 after a ``welcome``;
* a dead peer is noticed by WebSocket pings, sent every ``heartbeat`` seconds (by
  default the server's ``heartbeat_interval``) and each answered within as long, or the
  connection is dropped (at most ``min(heartbeat, 5)`` s later) and made again;
* frames given to :meth:`ReconnectingSocket.send` are sent in order; while offline they
  wait in a bounded queue (the oldest dropped with a warning, a request dropped so
  failing at once) and go out after the frames of :meth:`ReconnectingSocket.send_now`
  (the resubscriptions) on the next connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection as WebSocket

from ..protocol import ProtocolError, Welcome, parse_server_message
from .callbacks import Callbacks
from .loop_thread import LoopThread
from .outbox import Outbox

__all__ = ["DEFAULT_HEARTBEAT", "ConnectionState", "ReconnectingSocket", "SocketOptions"]

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT = 20.0
CLOSE_TIMEOUT = 5.0  # the longest wait for a closing handshake (a dead peer never answers)


class ConnectionState(StrEnum):
    """Where a connection is: ``connecting``; ``open`` (its ``welcome`` received);
    ``offline`` (not started yet, or lost: it waits to connect again); ``closed`` (for good)."""

    connecting = "connecting"
    open = "open"
    offline = "offline"
    closed = "closed"


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """How a socket reconnects and sends.

    ``backoff``: the delays between attempts (s), the last one repeated; ``jitter``: the
    fraction each delay varies by; ``heartbeat``: the ping interval (None: the server's);
    ``offline_queue``: the most frames kept while offline; ``open_timeout``: the longest
    wait for the opening handshake and the ``welcome``; ``compression``: whether to offer
    permessage-deflate: ``"auto"`` offers it to a remote server and not to one on this
    machine (loopback: compressing costs CPU on both ends and saves no time), ``"deflate"``
    always, ``"none"`` never.
    """

    backoff: tuple[float, ...] = (1, 2, 4, 8, 16, 30)
    jitter: float = 0.1
    heartbeat: float | None = None
    offline_queue: int = 100
    open_timeout: float = 10.0
    compression: Literal["auto", "deflate", "none"] = "auto"

    def __post_init__(self) -> None:
        if not self.backoff:
            raise ValueError("backoff needs at least one delay")
        if self.compression not in ("auto", "deflate", "none"):
            raise ValueError(
                f"compression must be 'auto', 'deflate' or 'none', not {self.compression!r}"
            )

    def offers_deflate(self, ws_url: str) -> bool:
        """Whether a connection to ``ws_url`` offers permessage-deflate."""
        if self.compression != "auto":
            return self.compression == "deflate"
        return not is_loopback(urlsplit(ws_url).hostname or "")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ReconnectingSocket:
    """A WebSocket to ``<url>/vimax/ws`` that is made again whenever it is lost.

    ``url`` is the server's base (``http(s)://host:port/base_url/``), ``token`` its token.
    ``on_welcome(welcome)`` is called on each new connection before any frame is sent on
    it, ``on_frame(raw)`` with every later frame; both on the connection's thread. The
    thread starts with :meth:`start` or the first :meth:`send`; :meth:`close` stops it.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        options: SocketOptions,
        *,
        on_welcome: Callable[[Welcome], None],
        on_frame: Callable[[str | bytes], None],
    ) -> None:
        base = url.rstrip("/")
        for scheme, ws_scheme in (("https://", "wss://"), ("http://", "ws://")):
            if base.startswith(scheme):
                base = ws_scheme + base[len(scheme) :]
        self.ws_url = base + "/vimax/ws"
        self.token = token
        self.options = options
        self.outbox = Outbox(options.offline_queue)
        """The queue and the requests waiting for answers; the owner resolves those."""
        self._on_welcome = on_welcome
        self._on_frame = on_frame
        self._lock = threading.Lock()  # guards the state and ``_closed``
        self._state_callbacks: Callbacks[ConnectionState] = Callbacks(
            "a vimax connection state callback"
        )
        self._state = ConnectionState.offline
        self._closed = False
        self._thread = LoopThread("vimax-connection", self._main)
        self._thread.on_exit = lambda: self._set_state(ConnectionState.closed)
        self._ws: WebSocket | None = None
        self._attempt = 0  # failed attempts since the last welcome
        self._wake: asyncio.Event | None = None  # set when there is something to send
        self._stop: asyncio.Event | None = None
        self._urgent: list[str] = []  # sent before the queue, on this connection only

    # -- any thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the connection's thread (idempotent); raises ConnectionError once closed.

        From the first start on, the state is ``connecting`` until the first ``welcome``
        (never ``offline`` while the thread is only starting).
        """
        with self._lock:
            if self._closed:
                raise ConnectionError("the connection is closed")
            first = not self._thread.started
        if first:  # before the thread runs, so that it can only move on from here
            self._set_state(ConnectionState.connecting)
        with self._lock:
            if not self._closed:
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Close the socket, fail pending requests, stop and join the thread (idempotent)."""
        with self._lock:
            closing, self._closed = not self._closed, True
        if closing and self._thread.call_soon(self._request_stop):
            self._thread.join(timeout)
        elif not self._thread.started:
            self._set_state(ConnectionState.closed)
        self.outbox.close(ConnectionError("the connection is closed"))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def state(self) -> ConnectionState:
        """The connection's :class:`ConnectionState` now."""
        return self._state

    @property
    def is_current(self) -> bool:
        """Whether the calling thread is the connection's."""
        return self._thread.is_current

    def on_state(self, callback: Callable[[ConnectionState], None]) -> Callable[[], None]:
        """Call ``callback(state)`` on each change of :attr:`state`, on the thread that
        changes it (the connection's, or the one that closes it); don't block.

        Returns a zero-argument remover. Calling it (from any thread, any number of
        times) stops the callback: no change of state that starts after it returns calls
        it; a call already under way may finish. Each registration has its own remover.
        """
        return self._state_callbacks.add(callback)

    def send(self, text: str, request_id: str | None = None) -> None:
        """Send the frame ``text`` (request ``request_id``, if it is one) in order; offline
        it waits in the bounded queue (the oldest dropped with a warning). Raises
        ConnectionError once closed."""
        self.start()
        self.outbox.put(text, request_id)
        self._thread.call_soon(self._kick)

    def call_soon(self, fn: Callable[..., None], *args: object) -> bool:
        """Run ``fn(*args)`` on the connection's thread; False if it is not running."""
        return self._thread.call_soon(fn, *args)

    # -- the connection's thread -----------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a connection is open now (welcomed, not yet lost)."""
        return self._ws is not None

    def send_now(self, text: str) -> None:
        """Send ``text`` before the queued frames, on the current connection only (a
        frame the next connection makes obsolete: it is dropped if there is none)."""
        if self._ws is not None:
            self._urgent.append(text)
            self._kick()

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
        backoff = self.options.backoff
        while not self._stop.is_set():
            self._set_state(ConnectionState.connecting)
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
            self.outbox.fail(ConnectionError("the connection was lost before the answer"))
            if self._stop.is_set():
                break
            self._set_state(ConnectionState.offline)
            delay = backoff[min(self._attempt, len(backoff) - 1)]
            delay *= random.uniform(1 - self.options.jitter, 1 + self.options.jitter)
            self._attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _session(self) -> None:
        """One connection: welcome, then send and receive until it ends."""
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        heartbeat = self.options.heartbeat or DEFAULT_HEARTBEAT
        open_timeout = self.options.open_timeout
        async with websockets.connect(
            self.ws_url,
            additional_headers=headers,
            ping_interval=heartbeat,
            ping_timeout=heartbeat,
            open_timeout=open_timeout,
            close_timeout=min(heartbeat, CLOSE_TIMEOUT),
            max_size=None,
            compression="deflate" if self.options.offers_deflate(self.ws_url) else None,
        ) as ws:
            welcome = _welcome(await asyncio.wait_for(ws.recv(), open_timeout))
            interval = welcome.heartbeat_interval
            if self.options.heartbeat is None and interval > 0:
                # the server's interval, from now on (not after the first default wait)
                ws.ping_interval = ws.ping_timeout = interval
                ws.close_timeout = min(interval, CLOSE_TIMEOUT)
                if ws.keepalive_task is not None:
                    ws.keepalive_task.cancel()
                ws.start_keepalive()
            self._ws, self._attempt = ws, 0
            self._urgent.clear()
            self._on_welcome(welcome)
            self._set_state(ConnectionState.open)
            sender = asyncio.ensure_future(self._sender(ws))
            on_frame = self._on_frame
            try:
                while True:
                    # bytes as they came off the wire: the parser reads UTF-8 itself
                    on_frame(await ws.recv(decode=False))
            except websockets.ConnectionClosedOK:
                pass
            finally:
                sender.cancel()

    async def _sender(self, ws: WebSocket) -> None:
        assert self._wake is not None
        assert self._stop is not None
        while True:
            text = self._urgent.pop(0) if self._urgent else self.outbox.take()
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

    def _set_state(self, state: ConnectionState) -> None:
        with self._lock:
            if self._state == state or self._state == ConnectionState.closed:
                return
            self._state = state
        self._state_callbacks.call(state)


def _welcome(raw: str | bytes) -> Welcome:
    """The ``welcome`` every connection starts with; ConnectionError for anything else."""
    try:
        first = parse_server_message(raw)
    except ProtocolError as exc:
        raise ConnectionError(f"expected welcome first: {exc}") from None
    if not isinstance(first, Welcome):
        raise ConnectionError(f"expected welcome first, got {first.type}")
    return first
