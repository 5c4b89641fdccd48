"""What can go wrong in the coordinator, and which failures are worth a retry."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..protocol import WorkflowState


class WorkflowNotFound(LookupError):
    """No workflow has that id."""


class UnknownPipeline(ValueError):
    """No pipeline is registered for that kind of workflow."""


class InvalidTransition(Exception):
    """A workflow was asked to change state in a way its state machine forbids."""

    def __init__(self, workflow_id: str, current: WorkflowState, target: WorkflowState, why: str):
        self.workflow_id = workflow_id
        self.current = current
        self.target = target
        super().__init__(
            f"workflow {workflow_id} cannot go from {current.value} to {target.value}: {why}"
        )


class RetryableError(Exception):
    """A failure worth another attempt (a timeout, a rate limit, a flaky service)."""

    retryable = True


class WorkerLost(RetryableError):
    """The worker running a task died (its process was killed, its machine went away);
    the coordinator runs the task again elsewhere."""


class ExecutorLost(Exception):
    """The executor cannot run tasks: its cluster's scheduler went away or cannot be
    reached. Running workflows become ``interrupted``, to be resumed once it is back."""

    retryable = False


def is_retryable(exc: BaseException) -> bool:
    """Whether a task that raised ``exc`` may succeed if tried again.

    An exception's own ``retryable`` attribute decides; otherwise timeouts and
    connection errors are retryable and everything else is not.
    """
    flag = getattr(exc, "retryable", None)
    if isinstance(flag, bool):
        return flag
    return isinstance(exc, TimeoutError | ConnectionError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per task and the exponential backoff between them (seconds)."""

    max_attempts: int = 3
    backoff: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (got {self.max_attempts})")
        if self.backoff < 0 or self.backoff_max < 0:
            raise ValueError("backoff and backoff_max are seconds and cannot be negative")

    def delay(self, attempt: int) -> float:
        """How long to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
        return float(base * (1 + self.jitter * (2 * random.random() - 1)))
