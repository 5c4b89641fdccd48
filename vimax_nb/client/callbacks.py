"""Registered callbacks that each registration can remove: :class:`Callbacks`.

A connection's state callbacks, a run's and a fleet's change callbacks all work this
way: registering returns a zero-argument remover, and calling them never holds a lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Callbacks"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Registration(Generic[T]):
    __slots__ = ("active", "callback")

    def __init__(self, callback: Callable[[T], object]) -> None:
        self.callback = callback
        self.active = True


class Callbacks(Generic[T]):
    """The callbacks of one kind, called in the order they were added.

    :meth:`call` takes no lock (the registrations are an immutable tuple, replaced on
    each change), so it is cheap on a hot path. An exception in a callback is logged as
    ``"<what> failed"`` and does not stop the others.
    """

    __slots__ = ("_lock", "_registrations", "_what")

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._registrations: tuple[_Registration[T], ...] = ()

    def add(self, callback: Callable[[T], object]) -> Callable[[], None]:
        """Register ``callback``; returns its remover.

        The remover may be called from any thread, any number of times: once it has
        returned, no :meth:`call` that starts afterwards calls ``callback`` (a call
        already under way may finish). Each registration has its own remover.
        """
        registration = _Registration(callback)
        with self._lock:
            self._registrations = (*self._registrations, registration)

        def remove() -> None:
            with self._lock:
                registration.active = False
                self._registrations = tuple(r for r in self._registrations if r is not registration)

        return remove

    def clear(self) -> None:
        """Remove every callback (as if each remover were called)."""
        with self._lock:
            for registration in self._registrations:
                registration.active = False
            self._registrations = ()

    def call(self, value: T) -> None:
        """Call every callback with ``value``, on the calling thread."""
        for registration in self._registrations:
            if not registration.active:
                continue
            try:
                registration.callback(value)
            except Exception:
                log.exception("%s failed", self._what)
