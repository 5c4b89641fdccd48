"""Long-running remote jobs (a Veo operation, a Replicate prediction): :func:`wait_for_job`
polls one with backoff, says what it waits on, and stops at once when canceled.

The hosted video providers share it; each passes its own ``fetch`` (one poll), ``done``
(whether a polled state is final) and ``cancel`` (the API's cancel, where it has one).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..shared import TaskCanceled
from .base import ProviderCall, ProviderError

__all__ = ["JobTiming", "format_wait", "wait_for_job"]

J = TypeVar("J")


@dataclass(frozen=True, slots=True)
class JobTiming:
    """How a job is polled: the first wait is ``interval`` seconds, each next one
    ``backoff`` times longer up to ``max_interval``; after ``timeout`` seconds the job
    is given up (a retryable error: the next attempt polls the same job)."""

    interval: float = 5.0
    max_interval: float = 20.0
    backoff: float = 1.5
    timeout: float = 1800.0


def format_wait(model: str, elapsed: float, detail: str = "") -> str:
    """``"waiting on veo-3.0-generate-001 (42 s)"``, with ``detail`` after a colon."""
    text = f"waiting on {model} ({elapsed:.0f} s)"
    return f"{text}: {detail}" if detail else text


def wait_for_job(
    job: J,
    *,
    fetch: Callable[[J], J],
    done: Callable[[J], bool],
    describe: Callable[[J], str] = lambda _: "",
    cancel: Callable[[J], None] | None = None,
    call: ProviderCall,
    model: str,
    provider: str,
    timing: JobTiming = JobTiming(),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> J:
    """Poll ``job`` until ``done``; return its final state.

    Each poll is reported through ``call.report`` as :func:`format_wait` (with
    ``describe(job)``, such as the last line of the job's log). Waits are slept in
    slices of at most half a second so that a cancel is seen quickly: then ``cancel``
    (if given) asks the service to stop the job (its failure is ignored), the job is
    forgotten (``call.remember_job(None)``) and :class:`TaskCanceled` is raised. When
    the token was *interrupted* (the server is stopping) the job is neither canceled
    nor forgotten, so the resumed workflow polls it again. Raises a retryable
    :class:`ProviderError` after ``timing.timeout`` seconds; errors from ``fetch`` pass
    through.
    """
    started = clock()
    wait = timing.interval
    while not done(job):
        call.report(format_wait(model, clock() - started, describe(job)))
        deadline = clock() + wait
        while (remaining := deadline - clock()) > 0:
            if call.cancel_token is not None and call.cancel_token.cancelled:
                break
            sleep(min(remaining, 0.5))
        token = call.cancel_token
        if token is not None and token.cancelled:
            if token.interrupted:  # the server is stopping: the job goes on, to be resumed
                raise TaskCanceled("the task was interrupted")
            if cancel is not None:
                with contextlib.suppress(Exception):  # the job is abandoned either way
                    cancel(job)
            call.remember_job(None)
            raise TaskCanceled("the task was canceled")
        if clock() - started > timing.timeout:
            raise ProviderError(
                f"{model} did not finish within {timing.timeout:g} s; the next attempt "
                "polls the same job",
                retryable=True,
                provider=provider,
            )
        job = fetch(job)
        wait = min(wait * timing.backoff, timing.max_interval)
    return job
