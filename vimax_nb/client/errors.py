"""The errors the client raises: a refused request, a failed, canceled or interrupted run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run import Run

__all__ = ["RunCanceled", "RunFailed", "RunInterrupted", "VimaxError"]


class VimaxError(RuntimeError):
    """The server refused a request: ``status`` (HTTP status, or None) and its ``message``."""

    def __init__(self, status: int | None, message: str, body: Any = None) -> None:
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.status = status
        self.message = message
        self.body = body


class RunFailed(VimaxError):
    """The workflow failed; ``error`` is the server's error record (or event)."""

    def __init__(self, run: Run, error: dict[str, Any] | None, message: str) -> None:
        super().__init__(None, f"workflow {run.id} failed: {message}", error)
        self.run = run
        self.error = error or {}


class RunCanceled(VimaxError):
    """The workflow was canceled."""

    def __init__(self, run: Run, message: str) -> None:
        super().__init__(None, f"workflow {run.id} was canceled: {message}")
        self.run = run


class RunInterrupted(VimaxError):
    """The workflow is ``interrupted``: the server stopped or restarted while it ran.

    Not an end: :meth:`Run.resume() <vimax_nb.client.run.Run.resume>` continues it from its
    checkpoints, and :meth:`~vimax_nb.client.run.Run.wait` then waits for its real end.
    """

    def __init__(self, run: Run, message: str) -> None:
        super().__init__(
            None,
            f"workflow {run.id} was interrupted: the server restarted while it ran"
            f" ({message}); run.resume() continues it from its checkpoints",
        )
        self.run = run
