"""Pacing a provider's requests: :class:`RateLimiter`, shared by the hosted providers."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ..shared import CancelToken, TaskCanceled

__all__ = ["RateLimiter"]


class RateLimiter:
    """Spaces requests at least ``60 / requests_per_minute`` seconds apart, across threads.

    Each :meth:`acquire` reserves the next free slot under a lock, so concurrent callers
    get distinct slots in arrival order; there is no burst allowance. Waiting blocks the
    calling thread (never use it on an event loop). ``clock`` and ``sleep`` are injectable
    for tests; with a cancel token the wait sleeps at most ``poll_interval`` at a time.
    """

    def __init__(
        self,
        requests_per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = 0.05,
    ) -> None:
        if requests_per_minute is not None and not requests_per_minute > 0:
            raise ValueError(f"requests_per_minute must be > 0 or None, not {requests_per_minute}")
        self.interval = 0.0 if requests_per_minute is None else 60.0 / requests_per_minute
        self._clock = clock
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._next_free = -math.inf
        self._lock = threading.Lock()

    def acquire(self, cancel_token: CancelToken | None = None) -> None:
        """Block until this caller may send a request.

        Raises :class:`TaskCanceled` (within ``poll_interval``) once ``cancel_token`` is
        set; a canceled caller gives its slot back if nobody reserved one after it.
        """
        if cancel_token is not None:
            cancel_token.raise_if_cancelled()
        if self.interval == 0.0:
            return
        with self._lock:
            slot = max(self._clock(), self._next_free)
            self._next_free = slot + self.interval
        try:
            while (remaining := slot - self._clock()) > 0:
                if cancel_token is None:
                    self._sleep(remaining)
                else:
                    self._sleep(min(remaining, self._poll_interval))
                    cancel_token.raise_if_cancelled()
        except TaskCanceled:
            with self._lock:
                if self._next_free == slot + self.interval:
                    self._next_free = slot
            raise
