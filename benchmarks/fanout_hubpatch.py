"""Experiment ``fanout.py --patched-hub``: the hub's send path as the benchmark's report
proposes to change it, patched in at run time (``vimax_nb`` itself is not edited).

What changes, against ``vimax_nb/server/hub.py``'s ``Connection``:

1. The send-queue limit (4008) is checked after the connection's frames were handed
   to the socket, against the bytes the kernel has not taken yet, instead of against
   the bytes queued during one listener call. A commit batch of thousands of events
   (``Database.max_batch`` is 8192) no longer closes every subscriber of the room,
   however fast it reads.
2. One loop callback flushes every connection that has frames waiting (the hub keeps
   a list), instead of one ``call_soon`` per connection per batch.
3. A write that the socket took whole (its Tornado future is already done) is
   accounted at once: no ``add_done_callback``, no second loop callback, no lambda.
4. Whether the transport takes raw frames is asked once per connection, not per
   message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from vimax_nb.server.hub import Connection, Hub, ws_text_frame


def _send(self: Any, payload: bytes, framed: bytes | None = None) -> None:
    if self.closed:
        return
    raw = self.__dict__.get("_raw")
    if raw is None:
        raw = self._raw = self.transport.raw_writable()
    if raw:
        self._pending.append(framed if framed is not None else ws_text_frame(payload))
    else:
        self._pending_text.append(payload)
    self.messages_out += 1
    if not self._flush_scheduled:
        self._flush_scheduled = True
        self._drained.clear()
        hub = self.hub
        hub._dirty.append(self)
        if not hub._flushing:
            hub._flushing = True
            asyncio.get_running_loop().call_soon(hub._flush_dirty)


def _flush(self: Any) -> None:
    self._flush_scheduled = False
    if self.closed:
        return
    try:
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            self._write(self.transport.write_raw(data), len(data))
        if self._pending_text:
            for payload in self._pending_text:
                self._write(self.transport.write_text(payload), len(payload))
            self._pending_text.clear()
    except Exception:  # the socket went away under us
        self.hub.unregister(self)
        return
    if self.queued_bytes > self.hub.limits.send_queue_limit:
        self.hub.slow_consumer(self)
    elif self.queued_bytes <= 0:
        self.queued_bytes = 0
        self._drained.set()


def _write(self: Any, written: Awaitable[None], size: int) -> None:
    self.bytes_out += size
    if isinstance(written, asyncio.Future) and written.done():
        error = None if written.cancelled() else written.exception()
        if error is not None:
            raise error
        return
    self.queued_bytes += size  # what the socket has not taken yet
    future = asyncio.ensure_future(written)
    future.add_done_callback(lambda f: self._written(f, size))


def _flush_dirty(self: Any) -> None:
    self._flushing = False
    dirty, self._dirty = self._dirty, []
    for connection in dirty:
        connection._flush()


def apply(hub: Hub) -> None:
    """Patch the classes (once) and prepare ``hub``."""
    if not getattr(Connection, "_fanout_patched", False):
        Connection.send = _send  # type: ignore[method-assign]
        Connection._flush = _flush  # type: ignore[method-assign]
        Connection._write = _write  # type: ignore[attr-defined]
        Hub._flush_dirty = _flush_dirty  # type: ignore[attr-defined]
        Connection._fanout_patched = True  # type: ignore[attr-defined]
    hub._dirty = []  # type: ignore[attr-defined]
    hub._flushing = False  # type: ignore[attr-defined]
