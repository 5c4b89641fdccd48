"""What a :class:`~vimax_nb.client.connection.Connection` sends: the bounded queue of
outgoing messages and the requests that wait for their answers.

Both are shared between the threads that send and the connection's thread, so every
method takes the outbox's own lock; none blocks.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["ANSWER_TYPES", "Outbox", "RequestError"]

ANSWER_TYPES = {"control": "control_response", "get_metrics": "coordinator_metrics"}
"""The frame type that answers each request type (an ``error`` frame may answer any)."""


class RequestError(RuntimeError):
    """The server answered a request with an ``error`` frame (kept as ``frame``)."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.frame = frame


_Future = concurrent.futures.Future[dict[str, Any]]


@dataclass(eq=False, slots=True)
class _Pending:
    future: _Future
    answer_type: str
    sent: bool = False


class Outbox:
    """A FIFO of JSON texts holding at most ``limit`` (the oldest is dropped beyond it),
    and the requests sent or queued that wait for an answer, by id."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._queue: collections.deque[str] = collections.deque(maxlen=limit)
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def queued(self) -> list[str]:
        """The texts waiting to be sent, oldest first (a copy)."""
        with self._lock:
            return list(self._queue)

    def put(self, text: str) -> str | None:
        """Queue ``text`` last; the text dropped to make room for it, if any."""
        with self._lock:
            dropped = self._queue[0] if len(self._queue) == self._queue.maxlen else None
            self._queue.append(text)
        return dropped

    def take(self) -> str | None:
        """The oldest queued text, removed (None when empty); a request in it counts as sent
        from now on, so losing the connection fails it (see :meth:`fail`)."""
        with self._lock:
            if not self._queue:
                return None
            text = self._queue.popleft()
            pending = self._pending.get(_id_of(text) or "") if self._pending else None
            if pending is not None:
                pending.sent = True
            return text

    def expect(self, request_id: str, request_type: str) -> _Future:
        """A future for the answer to request ``request_id`` of ``request_type``."""
        pending = _Pending(concurrent.futures.Future(), ANSWER_TYPES.get(request_type, ""))
        with self._lock:
            self._pending[request_id] = pending
        return pending.future

    def forget(self, request_id: str) -> None:
        """Stop waiting for the answer to ``request_id`` (idempotent)."""
        with self._lock:
            self._pending.pop(request_id, None)

    def withdraw(self, request_id: str) -> bool:
        """Take request ``request_id`` out of the queue if it was not sent yet, and stop
        waiting for its answer; True if it was withdrawn (it will never be sent).

        Atomic with :meth:`take`: a request is either withdrawn or sent, never both.
        """
        with self._lock:
            pending = self._pending.pop(request_id, None)
            if pending is not None and pending.sent:
                return False
            for index, text in enumerate(self._queue):
                if _id_of(text) == request_id:
                    del self._queue[index]
                    return True
        return False

    def answer(self, message: dict[str, Any]) -> None:
        """Resolve the request ``message`` answers: by its ``id``, else (answers that carry
        no id, never events) the oldest request waiting for that type. An ``error`` frame
        fails the request with :class:`RequestError`."""
        rid, kind = message.get("id"), message.get("type")
        with self._lock:
            pending = self._pending.get(rid) if isinstance(rid, str) else None
            if pending is None and "seq" not in message and kind:
                pending = next((p for p in self._pending.values() if p.answer_type == kind), None)
        if pending is None or pending.future.done():
            return
        if kind == "error":
            pending.future.set_exception(RequestError(message))
        else:
            pending.future.set_result(message)

    def fail(self, error: Exception, *, everything: bool = False) -> None:
        """Fail the requests already sent (a lost connection), or all of them; those
        still queued otherwise wait for the next connection."""
        with self._lock:
            lost = [p for p in self._pending.values() if everything or p.sent]
        for pending in lost:
            if not pending.future.done():
                pending.future.set_exception(error)


def _id_of(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    rid = data.get("id") if isinstance(data, dict) else None
    return rid if isinstance(rid, str) else None
