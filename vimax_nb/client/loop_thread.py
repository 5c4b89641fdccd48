"""A daemon thread that runs its own asyncio loop, reachable from any thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["LoopThread"]


class LoopThread:
    """Runs ``main()`` on a new event loop in a daemon thread named ``name``.

    The loop is closed when ``main`` returns; :meth:`call_soon` then does nothing.
    """

    def __init__(self, name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._main = main
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_exit: Callable[[], None] | None = None  # called on the thread at its end

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._thread is not None

    @property
    def is_current(self) -> bool:
        """Whether the calling thread is this thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def call_soon(self, fn: Callable[..., None], *args: Any) -> bool:
        """Schedule ``fn(*args)`` on the loop from any thread; False if the loop is not
        running (not started, or ended)."""
        with self._lock:
            loop = self._loop
            if loop is None or loop.is_closed():
                return False
            loop.call_soon_threadsafe(fn, *args)
            return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (never from the thread itself)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            with self._lock:
                loop.close()
            if self.on_exit is not None:
                self.on_exit()
