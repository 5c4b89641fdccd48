"""The Dask executor: task handlers run on a Dask distributed cluster, the coordinator
stays in the server.

Each task is one Dask future, keyed ``vimax-<workflow>-<task>`` (``#<attempt>`` added
for a retry), run by :func:`~vimax_nb.coordinator.remote.run_remote` on a worker. What
the task reports on the way (its activity, each paid call, its remote job's id) comes
back as events of one topic (``log_event``/``subscribe_topic``), handled on the loop in
the order they were sent. Stopping a task says why in a variable and cancels its
future; the worker sees the task cancelled and trips its cancel token. Retries stay
with the coordinator: a task whose worker died fails with :class:`WorkerLost`
(retryable); a scheduler that goes away fails every running task with
:class:`ExecutorLost`, and their workflows become ``interrupted``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import inspect
import itertools
import logging
import os
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
from distributed import Client, Event, KilledWorker, LocalCluster, Variable
from distributed import Future as DaskFuture

from ..protocol import ExecutorInfo
from ..shared import TaskCanceled, write_atomically
from .context import TaskContext
from .errors import ExecutorLost, WorkerLost
from .remote import CANCEL, INTERRUPT, RemoteOutcome, RemoteTask, run_remote

__all__ = ["DaskExecutor"]

log = logging.getLogger(__name__)

#: Seconds to wait for a scheduler to answer when connecting.
CONNECT_TIMEOUT = 10.0
#: How much one step of a workflow's priority outweighs being submitted earlier.
PRIORITY_STEP = 1_000_000_000
#: Seconds a stopped task's stop variable is kept for its worker to read.
STOP_READ_GRACE = 30.0


@dataclass(slots=True)
class _Running:
    """A submitted task: its server-side context, its future, and what it may leave set
    on the cluster: the variable saying why it was stopped, the events acking job ids."""

    ctx: TaskContext
    folder: Path | None
    future: DaskFuture[Any] | None = None
    stop_variable: str = ""
    acks: list[str] = field(default_factory=list)
    stopped: bool = False


class DaskExecutor:
    """Runs plain task handlers on a Dask cluster (coroutine handlers stay on the loop).

    ``address``: an existing scheduler (``tcp://host:8786``); without one, :meth:`start`
    starts a ``LocalCluster`` of ``workers`` worker processes with ``threads_per_worker``
    threads each (None: Dask's default, the cores shared among the workers), and
    :meth:`stop` stops it. ``shared_workdir`` says whether workers see
    the server's workdir at the same path: then they write files in place; else a task
    gets the files its inputs name and returns those it writes, which the server writes
    in the workflow's folder. ``resources`` maps a skill to the Dask resources its tasks
    ask for (``{"generate_clip": {"GPU": 1}}``), used while some worker declares them.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int = 2,
        threads_per_worker: int | None = None,
        shared_workdir: bool = True,
        resources: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        if workers < 1 or (threads_per_worker is not None and threads_per_worker < 1):
            raise ValueError("a Dask cluster needs at least 1 worker with at least 1 thread")
        self.address = address or None
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self.shared_workdir = shared_workdir
        self.resources = {skill: dict(asks) for skill, asks in (resources or {}).items()}
        self.topic = f"vimax-{os.getpid()}-{id(self):x}"
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None
        self._running: dict[str, _Running] = {}
        self._order: dict[str, int] = {}
        self._counter = itertools.count()
        self._problem: str | None = None
        self._declared: list[dict[str, float]] = []
        self._chores: set[asyncio.Future[None]] = set()
        self._stale: dict[str, asyncio.TimerHandle] = {}  # stop variables to delete
        self._starting: asyncio.Future[None] | None = None

    # -- life ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the scheduler, or begin starting the LocalCluster (in the
        background: the server is ready at once, and the first workflow waits for it)."""
        if self._client is not None or self._starting is not None:
            return
        if self.address is None:
            self._problem = "the LocalCluster is starting"
            self._starting = asyncio.ensure_future(self._start_cluster())
            return
        try:
            await self._connect()
        except ExecutorLost as exc:
            # Workflows fail to start with this problem until the scheduler answers.
            log.error("vimax-nb: %s", exc)

    async def _start_cluster(self) -> None:
        try:
            self._cluster = await asyncio.to_thread(self._local_cluster)
        except Exception as exc:
            self._problem = f"the LocalCluster did not start: {type(exc).__name__}: {exc}"
            log.error("vimax-nb: %s", self._problem)
            raise ExecutorLost(self._problem) from None
        await self._connect()

    def _local_cluster(self) -> LocalCluster:
        settings = {
            # Retries are the coordinator's: a task whose worker dies fails at once.
            "distributed.scheduler.allowed-failures": 0,
            # Dask's default makes glibc return every freed frame-sized buffer to the
            # system at once: with it, 1280x720 films took 25% more CPU in the workers.
            "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
        }
        with dask.config.set(settings):
            return LocalCluster(
                n_workers=self.workers,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                dashboard_address="127.0.0.1:0",
                host="127.0.0.1",
            )

    @property
    def scheduler_address(self) -> str | None:
        """The address of the scheduler tasks go to (None while the LocalCluster starts)."""
        if self._cluster is not None:
            return str(self._cluster.scheduler_address)
        return self.address

    async def _connect(self) -> None:
        try:
            client = await Client(
                self.scheduler_address,
                asynchronous=True,
                timeout=CONNECT_TIMEOUT,
                set_as_default=False,
                name="vimax-nb",
            )
        except (OSError, TimeoutError) as exc:
            self._problem = f"the Dask scheduler at {self.scheduler_address} cannot be reached"
            raise ExecutorLost(f"{self._problem}: {exc}") from None
        client.subscribe_topic(self.topic, self._on_event)
        self._client = client
        self._problem = None
        if self.resources:
            await self._refresh_resources()

    async def stop(self) -> None:
        starting, self._starting = self._starting, None
        if starting is not None:
            with contextlib.suppress(ExecutorLost):
                await starting
        for running in list(self._running.values()):
            await self._set_stop(running, INTERRUPT)
        for name, timer in list(self._stale.items()):
            timer.cancel()
            await self._delete(name)
        client, self._client = self._client, None
        if client is not None:
            client.unsubscribe_topic(self.topic)
            await client.close()
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            await asyncio.to_thread(cluster.close)

    async def ensure_ready(self) -> None:
        """Connect again if the scheduler was lost; raise :class:`ExecutorLost` when it
        cannot be reached."""
        if self._starting is not None:
            await asyncio.shield(self._starting)
        client = self._client
        if client is None or client.status != "running":
            if client is not None:
                self._client = None
                client.unsubscribe_topic(self.topic)
                await client.close()
            await self._connect()
        if self.resources:
            await self._refresh_resources()

    async def _refresh_resources(self) -> None:
        """Read the resources each worker declares (for :attr:`resources`)."""
        assert self._client is not None
        assert self._client.scheduler is not None
        identity = await self._client.scheduler.identity(n_workers=-1)
        self._declared = [w.get("resources") or {} for w in identity["workers"].values()]

    def describe(self) -> ExecutorInfo:
        client = self._client
        if client is None or client.status != "running":
            problem = self._problem or "not connected to a Dask scheduler"
            return ExecutorInfo(kind="dask", address=self.scheduler_address, problem=problem)
        info = client.scheduler_info()
        return ExecutorInfo(
            kind="dask",
            workers=int(info.get("n_workers", 0)),
            threads=int(info.get("total_threads", 0)),
            address=self.scheduler_address,
            dashboard=client.dashboard_link if "dashboard" in info.get("services", {}) else None,
        )

    # -- tasks --------------------------------------------------------------------

    def submit(self, handler: Callable[..., Any], ctx: TaskContext) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if inspect.iscoroutinefunction(handler):
            return loop.create_task(handler(ctx))
        client = self._client
        if client is None or client.status != "running":
            raise ExecutorLost(self._problem or "not connected to a Dask scheduler")
        key = f"vimax-{ctx.workflow_id}-{ctx.task_key}"
        if ctx.attempt > 1:
            key += f"#{ctx.attempt}"
        spent = ctx.spend.summary()
        task = RemoteTask(
            key=key,
            topic=self.topic,
            stop_variable=f"{key}-stop",
            job_event=f"{key}-job",
            workflow_id=ctx.workflow_id,
            task_key=ctx.task_key,
            stage=ctx.stage,
            skill=ctx.skill,
            params=ctx.params,
            workflow_params=ctx.workflow_params,
            inputs=ctx.inputs,
            attempt=ctx.attempt,
            workdir=str(ctx.workdir) if ctx.workdir is not None else None,
            shared_workdir=self.shared_workdir,
            spend=spent.model_dump(mode="json"),
            max_cost=spent.max_cost,
            job_id=ctx.job.get(),
        )
        running = _Running(ctx, None if self.shared_workdir else ctx.workdir)
        running.stop_variable = task.stop_variable
        self._running[key] = running
        order = self._order.setdefault(ctx.workflow_id, next(self._counter))
        return asyncio.ensure_future(self._run(client, handler, task, running, ctx.priority, order))

    async def _run(
        self,
        client: Client,
        handler: Callable[..., Any],
        task: RemoteTask,
        running: _Running,
        priority: int,
        order: int,
    ) -> Any:
        """Send ``task`` to the cluster (with its input files when the workdir is not
        shared), wait for its outcome, write the files it returns."""
        try:
            if running.folder is not None:
                files = await asyncio.to_thread(_named_files, running.folder, task.inputs)
                task = dataclasses.replace(task, files=files)
            if running.stopped:
                raise TaskCanceled("the task was canceled")
            running.future = client.submit(
                run_remote,
                handler,
                task,
                key=task.key,
                pure=False,
                retries=0,
                # a higher priority first, then earlier workflows: a started film
                # finishes before new work starts
                priority=priority * PRIORITY_STEP - order,
                resources=self._resources_for(task.skill),
            )
            try:
                outcome: RemoteOutcome = await running.future
            except KilledWorker as exc:
                raise WorkerLost(f"the Dask worker running the task died: {exc}") from None
            except (asyncio.CancelledError, concurrent.futures.CancelledError):
                if running.stopped:
                    raise TaskCanceled("the task was canceled") from None
                raise ExecutorLost(
                    f"the Dask scheduler at {self.scheduler_address} went away"
                ) from None
        finally:
            self._running.pop(task.key, None)
            self._background(self._forget(running))
        if outcome.files and running.folder is not None:
            await asyncio.to_thread(_write_files, running.folder, outcome.files)
        return outcome.value

    def _resources_for(self, skill: str) -> dict[str, float] | None:
        asks = self.resources.get(skill)
        if not asks:
            return None
        if any(all(r.get(name, 0) >= n for name, n in asks.items()) for r in self._declared):
            return asks
        log.warning("no Dask worker declares %s for %s tasks: running them anywhere", asks, skill)
        return None

    def cancel(self, future: asyncio.Future[Any], ctx: TaskContext) -> None:
        ctx.cancel_token.cancel()
        for running in self._running.values():
            if running.ctx is ctx:
                why = INTERRUPT if ctx.cancel_token.interrupted else CANCEL
                self._background(self._set_stop(running, why))
                return
        if isinstance(future, asyncio.Task):
            future.cancel()

    async def _set_stop(self, running: _Running, why: str) -> None:
        """Say why the task stops, then cancel its future (the worker's watcher sees the
        task cancelled and reads why)."""
        running.stopped = True
        client = self._client
        if client is None or running.future is None or client.status != "running":
            return
        try:
            await Variable(running.stop_variable, client=client).set(why)
            await client.cancel([running.future])
        except Exception:  # the scheduler is going away: nothing more to tell
            log.debug("could not stop %s", running.future.key, exc_info=True)

    async def _forget(self, running: _Running) -> None:
        """Clear what a task's job acks left set on the scheduler; a stopped task's stop
        variable goes :data:`STOP_READ_GRACE` seconds later, once its worker has read it."""
        client = self._client
        if client is None or client.status != "running":
            return
        try:
            for name in running.acks:
                await Event(name, client=client).clear()
        except Exception:
            log.debug("could not clear the acks of %s", running.stop_variable, exc_info=True)
        if running.stopped:
            name = running.stop_variable
            self._stale[name] = asyncio.get_running_loop().call_later(
                STOP_READ_GRACE, lambda: self._background(self._delete(name))
            )

    async def _delete(self, variable: str) -> None:
        self._stale.pop(variable, None)
        client = self._client
        if client is not None and client.status == "running":
            try:
                await Variable(variable, client=client).delete()
            except Exception:
                log.debug("could not delete %s", variable, exc_info=True)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` on the loop, keeping it referenced until it is done."""
        task = asyncio.ensure_future(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    # -- what workers say ---------------------------------------------------------

    async def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """Apply what a worker's task said; a message this executor cannot use is logged
        and dropped (an exception here would stop the client's reports)."""
        _, message = event
        running = self._running.get(message.get("key", ""))
        if running is None:
            return  # the task is over: nothing waits on what it said
        ctx = running.ctx
        try:
            op = message.get("op")
            if op == "activity":
                ctx.report(str(message["text"]))
            elif op == "usage":
                ctx.spend.add(**message["call"])
            elif op == "job":
                await asyncio.to_thread(ctx.job.set, message["job"])
                ack = str(message["ack"])
                running.acks.append(ack)
                client = self._client
                if client is not None:
                    await Event(ack, client=client).set()
        except Exception:
            log.exception("vimax-nb: could not apply %r from task %s", message, ctx.task_key)


def _named_files(folder: Path, inputs: Mapping[str, Any]) -> dict[str, bytes]:
    """The files of ``folder`` that strings in ``inputs`` name (relative paths)."""
    files: dict[str, bytes] = {}
    root = folder.resolve()
    for text in _strings(inputs):
        if not text or len(text) > 1024 or "\n" in text or text in files:
            continue
        try:
            path = (folder / text).resolve()
            if path.is_relative_to(root) and path != root and path.is_file():
                files[text] = path.read_bytes()
        except OSError:  # not a file name this system accepts: not a file
            continue
    return files


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _write_files(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write each file under ``folder`` whole or not at all."""
    root = folder.resolve()
    for relative, data in files.items():
        target = (folder / relative).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"a task returned a file outside its workflow folder: {relative}")
        write_atomically(target, data)
