"""Where task handlers run: the :class:`Executor` interface and the local executor."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from ..protocol import ExecutorInfo
from .context import TaskContext
from .errors import ExecutorLost


@runtime_checkable
class Executor(Protocol):
    """Runs task handlers off the coordinator's logic.

    ``submit`` must return at once with a future of the handler's result (or its
    exception); ``cancel`` asks a submitted task to stop, through its cancel
    token and whatever else the executor can do. The coordinator calls both on
    the event loop. ``ensure_ready`` raises :class:`ExecutorLost` saying why no task
    can run now (a workflow then does not start); ``describe`` says where tasks run.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ensure_ready(self) -> None: ...

    def describe(self) -> ExecutorInfo: ...

    def submit(self, handler: Callable[..., Any], ctx: TaskContext) -> asyncio.Future[Any]: ...

    def cancel(self, future: asyncio.Future[Any], ctx: TaskContext) -> None: ...


class LocalExecutor:
    """Runs coroutine handlers on the event loop and plain ones in a thread pool.

    ``max_workers`` is the pool's size (default: twice the cores, at least 4):
    rendering and encoding release the GIL for most of their time. Give it at
    least the coordinator's ``max_concurrent_tasks``, or tasks the coordinator
    counts as running will wait for a thread.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or max(4, 2 * (os.cpu_count() or 1))
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="vimax-task")

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # Tasks were told to stop through their tokens; don't wait on the loop.
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def ensure_ready(self) -> None:
        if self._pool is None:
            raise ExecutorLost("the local executor is not started")

    def describe(self) -> ExecutorInfo:
        return ExecutorInfo(kind="local", workers=1, threads=self.max_workers)

    def submit(self, handler: Callable[..., Any], ctx: TaskContext) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if inspect.iscoroutinefunction(handler):
            return loop.create_task(handler(ctx))
        if self._pool is None:
            raise RuntimeError("the executor is not started")
        return loop.run_in_executor(self._pool, handler, ctx)

    def cancel(self, future: asyncio.Future[Any], ctx: TaskContext) -> None:
        ctx.cancel_token.cancel()
        if isinstance(future, asyncio.Task):
            future.cancel()
