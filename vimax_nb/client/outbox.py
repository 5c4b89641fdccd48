"""What a :class:`~vimax_nb.client.reconnecting.ReconnectingSocket` sends: the bounded queue
of outgoing frames and the requests that wait for their answers.

Both are shared between the threads that send and the connection's thread, so every
method takes the outbox's own lock; none blocks. Answers are protocol models
(:mod:`vimax_nb.protocol`): a request is answered by the frame with its ``id``; a frame
without one that is not a stored event (``coordinator_metrics`` answering
``get_metrics``) answers the oldest request waiting for a frame of its type.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import warnings
from dataclasses import dataclass

from pydantic import BaseModel

from ..protocol import ErrorEvent

__all__ = ["Outbox", "RequestError"]

log = logging.getLogger(__name__)


class RequestError(RuntimeError):
    """The server answered a request with an ``error`` frame (kept as ``frame``)."""

    def __init__(self, frame: ErrorEvent) -> None:
        super().__init__(f"{frame.code}: {frame.message}")
        self.frame = frame


_Future = concurrent.futures.Future[BaseModel]


@dataclass(eq=False, slots=True)
class _Pending:
    future: _Future
    answer_type: type[BaseModel]
    sent: bool = False


class Outbox:
    """A FIFO of frames (JSON texts) holding at most ``limit``, and the requests sent or
    queued that wait for an answer, by id.

    Beyond ``limit`` the oldest frame is dropped; a request dropped so fails at once with
    ConnectionError. Once :meth:`close` is called no request can be expected any more.
    """

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[str, str | None]] = collections.deque(maxlen=limit)
        self._pending: dict[str, _Pending] = {}
        self._closed: ConnectionError | None = None

    def put(self, text: str, request_id: str | None = None) -> None:
        """Queue ``text`` (request ``request_id``, if it is one) last. When the queue is
        full the oldest text is dropped: logged and warned (RuntimeWarning), then its
        request, if it is one, fails with ConnectionError."""
        with self._lock:
            dropped = self._queue[0] if len(self._queue) == self._queue.maxlen else None
            self._queue.append((text, request_id))
            lost = self._pending.pop(dropped[1], None) if dropped and dropped[1] else None
        if dropped is None:
            return
        msg = f"vimax connection offline queue full: dropped the oldest message {dropped[0]}"
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)  # put <- send <- request <- caller
        if lost is not None and not lost.future.done():
            lost.future.set_exception(
                ConnectionError("dropped from the offline queue, which was full")
            )

    def take(self) -> str | None:
        """The oldest queued text, removed (None when empty); a request in it counts as sent
        from now on, so losing the connection fails it (see :meth:`fail`)."""
        with self._lock:
            if not self._queue:
                return None
            text, request_id = self._queue.popleft()
            pending = self._pending.get(request_id) if request_id is not None else None
            if pending is not None:
                pending.sent = True
            return text

    def expect(self, request_id: str, answer_type: type[BaseModel]) -> _Future:
        """A future for the answer (an ``answer_type`` frame) to request ``request_id``.

        Raises the error :meth:`close` was given once it was called.
        """
        pending = _Pending(concurrent.futures.Future(), answer_type)
        with self._lock:
            if self._closed is not None:
                raise ConnectionError(*self._closed.args)
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
            for index, (_text, queued_id) in enumerate(self._queue):
                if queued_id == request_id:
                    del self._queue[index]
                    return True
        return False

    def answer(self, message: BaseModel) -> None:
        """Resolve the request ``message`` answers: by its ``id``, else (a frame that
        carries no id and is not a stored event) the oldest request waiting for a frame
        of its type. An ``error`` frame fails the request with :class:`RequestError`."""
        if not self._pending:
            return
        rid = getattr(message, "id", None)
        with self._lock:
            pending = self._pending.get(rid) if isinstance(rid, str) else None
            if rid is None and getattr(message, "seq", None) is None:
                pending = next(
                    (p for p in self._pending.values() if isinstance(message, p.answer_type)),
                    None,
                )
        if pending is None or pending.future.done():
            return
        if isinstance(message, ErrorEvent):
            pending.future.set_exception(RequestError(message))
        else:
            pending.future.set_result(message)

    def fail(self, error: Exception) -> None:
        """Fail the requests already sent (a lost connection); those still queued wait
        for the next connection."""
        with self._lock:
            lost = [p for p in self._pending.values() if p.sent]
        _fail(lost, error)

    def close(self, error: ConnectionError) -> None:
        """Fail every request with ``error``, and every request expected from now on."""
        with self._lock:
            self._closed = error
            lost = list(self._pending.values())
        _fail(lost, error)


def _fail(requests: list[_Pending], error: Exception) -> None:
    for pending in requests:
        if not pending.future.done():
            pending.future.set_exception(error)
