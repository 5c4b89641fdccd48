"""Coalesced redraws: the machinery every vimax-nb panel shares.

A panel (a :class:`PanelView`) holds no state of its own: the client's objects (a
:class:`~vimax_nb.client.Run`, a :class:`~vimax_nb.client.fleet.Fleet`) call back on the
connection's thread after every event, and the panel only marks itself dirty there and
schedules one redraw, so a burst of thousands of events costs at most ~10 redraws a
second. A redraw reads the objects' *current* state, and a change that arrives after a
redraw has started schedules another one, so the last update is never lost: the panel
always ends on the exact final state.

Redraws run on a short-lived ``threading.Timer`` by default, which works in a kernel
(ipykernel's comms may be used from any thread) even while the main thread is blocked
in ``run.wait()``, and in plain Python. Pass ``loop=`` (a Tornado ``IOLoop``) to draw on
that loop instead. One redraw runs at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

__all__ = ["MIN_INTERVAL", "PanelView", "close_tree"]

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.1  # seconds between redraws: at most ~10 a second


class PanelView:
    """The base of the panels: coalesced, thread-safe redraws of ``self.box``.

    Subclasses build their widgets, set ``box`` (the widget that is displayed), define
    :meth:`_draw` (which reads their model and sets widget values) and call
    :meth:`_request_draw` from any thread when the model changed: registering
    :meth:`_changed` as the model's change callback does that, and handing its remover
    to :meth:`_listen` detaches it on :meth:`close`. ``redraws`` counts redraws.
    """

    box: Any

    def __init__(self, *, interval: float = MIN_INTERVAL, loop: IOLoop | None = None) -> None:
        self.interval = interval
        self._loop = loop
        self._lock = threading.Lock()
        self._drawn = threading.Condition(self._lock)
        self._draw_lock = threading.Lock()
        self._dirty = False
        self._timer_pending = False
        self._drawing = False
        self._closed = False
        self._last_draw = float("-inf")
        self._removers: list[Callable[[], None]] = []
        self.redraws = 0

    def _draw(self) -> None:
        raise NotImplementedError

    def _listen(self, remover: Callable[[], None]) -> None:
        """Keep the remover of a callback this panel registered; :meth:`close` calls it."""
        with self._lock:
            self._removers.append(remover)

    def _changed(self, _model: object) -> None:
        """A change callback for any model: schedule a redraw."""
        self._request_draw()

    def _detach(self) -> None:
        """Let go of what the panel made besides its widgets (called once, by
        :meth:`close`, after its callbacks are removed)."""

    # -- display -----------------------------------------------------------------------

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.box._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        return bundle

    # -- coalescing (any thread) -------------------------------------------------------

    def _request_draw(self) -> None:
        """Mark dirty and make sure one redraw is scheduled (never more than one)."""
        with self._lock:
            self._dirty = True
            if self._timer_pending or self._closed:
                return
            self._timer_pending = True
            delay = max(0.0, self._last_draw + self.interval - time.monotonic())
        self._schedule(delay)

    def _schedule(self, delay: float) -> None:
        if self._loop is not None:
            self._loop.add_callback(self._loop.call_later, delay, self._flush_scheduled)
            return
        timer = threading.Timer(delay, self._flush_scheduled)
        timer.daemon = True
        timer.start()

    def _flush_scheduled(self) -> None:
        try:
            self._flush(scheduled=True)
        except Exception:  # a timer thread has no one to raise to
            log.exception("vimax widget: a redraw of %s failed", type(self).__name__)

    def flush(self) -> None:
        """Redraw now if anything changed since the last redraw (thread-safe)."""
        self._flush(scheduled=False)

    def _flush(self, *, scheduled: bool) -> None:
        with self._draw_lock:
            with self._lock:
                if scheduled:
                    # Cleared together with _dirty: a change after this point schedules
                    # a fresh timer, timed from this redraw.
                    self._timer_pending = False
                if self._closed or (not self._dirty and self.redraws):
                    self._drawn.notify_all()
                    return
                self._dirty = False
                self._drawing = True
                self._last_draw = time.monotonic()
            try:
                self._draw()
            finally:
                with self._lock:
                    self._drawing = False
                    self.redraws += 1
                    self._drawn.notify_all()

    def wait_drawn(self, timeout: float | None = None) -> bool:
        """Block until every update so far is drawn; False on timeout."""
        with self._drawn:
            return self._drawn.wait_for(
                lambda: self._closed or not (self._dirty or self._timer_pending or self._drawing),
                timeout,
            )

    # -- closing -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Stop listening, stop redrawing and close the widgets (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drawn.notify_all()
            removers, self._removers = self._removers, []
        try:
            for remove in removers:
                remove()
            self._detach()
        finally:
            with self._draw_lock:  # let a redraw in progress finish first
                close_tree(self.box)


def close_tree(widget: Any) -> None:
    """Close ``widget`` and every widget below it."""
    stack = [widget]
    while stack:
        node = stack.pop()
        stack.extend(getattr(node, "children", ()) or ())
        close = getattr(node, "close", None)
        if callable(close):
            close()
