"""What the client tests share: a recording callback, waiting on a run, the fake server.

Every wait is on a condition with a timeout, never a sleep.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vimax_nb.client import Run, SocketOptions

from .fake_server import FakeServer

TIMEOUT = 30.0


class Recorder:
    """What a callback was given (protocol models), on the connection's thread; waits on a
    condition."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: list[Any] = []

    def __call__(self, message: Any) -> None:
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def seqs(self) -> list[int]:
        with self.cond:
            return [m.seq for m in self.messages if getattr(m, "seq", None) is not None]

    def wait(self, predicate: Callable[[Recorder], bool], timeout: float = TIMEOUT) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: predicate(self), timeout)
        assert ok, f"timed out; got {self.messages[-3:]}"

    async def until(self, predicate: Callable[[Recorder], bool], timeout: float = TIMEOUT) -> None:
        """:meth:`wait` from a coroutine, off the loop (which may serve the server)."""
        await asyncio.to_thread(self.wait, predicate, timeout)

    def wait_seqs(self, expected: list[int], timeout: float = TIMEOUT) -> None:
        """Wait until as many events as ``expected`` arrived, then compare them all."""
        self.wait(lambda r: len(r.seqs()) >= len(expected), timeout)
        assert self.seqs() == expected


def wait_run(run: Run, predicate: Callable[[Run], bool], timeout: float = TIMEOUT) -> None:
    """Wait (on the run's change callbacks) until ``predicate(run)`` holds."""
    cond = threading.Condition()

    def changed(_run: Run) -> None:
        with cond:
            cond.notify_all()

    remove = run.on_change(changed)
    try:
        with cond:
            ok = cond.wait_for(lambda: predicate(run), timeout)
    finally:
        remove()
    assert ok, f"timed out waiting on {run!r}"


QUICK_RECONNECT = SocketOptions(backoff=(0.05,))
"""Socket options for test clients: reconnect at once."""


@pytest.fixture(name="server")
def fixture_server() -> Iterator[FakeServer]:
    """A fake protocol server on its own thread (closed at the end of the test)."""
    fake = FakeServer().start()
    try:
        yield fake
    finally:
        fake.close()
