"""A task as it runs on a Dask worker: :func:`run_remote` gives the handler a
:class:`TaskContext` whose reports, spend and remote job ids travel to the server as
events of the executor's topic, whose cancel token follows the server's stop variable,
and whose files come back with the result when the workdir is not shared.

Nothing here imports the server; only :mod:`distributed`, which workers have.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Event, Variable, get_client, get_worker

from ..protocol import CostSummary
from ..shared import CancelToken
from .context import TaskContext, TaskJob
from .spend import Spend

#: Seconds between two activity reports of one task that reach the server; the last
#: one always does.
REPORT_INTERVAL = 0.2
#: Seconds a task waits for the server to store its remote job's id.
JOB_ACK_TIMEOUT = 30.0
#: Seconds between two checks of whether the server stopped a task.
STOP_POLL = 0.1
#: Stop variable values: why the server stops a task.
CANCEL, INTERRUPT = "cancel", "interrupt"


@dataclass(frozen=True, slots=True)
class RemoteTask:
    """What a worker needs to run one task: the context's data, the Dask ``key`` its
    events carry, the ``topic`` they go to, the names of the variable that says why it
    is stopped and of its job-ack events, and, when the workdir is not shared, the input
    ``files`` it reads."""

    key: str
    topic: str
    stop_variable: str
    job_event: str
    workflow_id: str
    task_key: str
    stage: str
    skill: str
    params: dict[str, Any]
    workflow_params: dict[str, Any]
    inputs: dict[str, Any]
    attempt: int
    workdir: str | None
    shared_workdir: bool
    spend: dict[str, Any]
    max_cost: float | None
    job_id: str | None
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RemoteOutcome:
    """A task's result, and the files it wrote (relative path -> bytes) when the
    workdir is not shared."""

    value: Any
    files: dict[str, bytes]


def run_remote(handler: Callable[[TaskContext], Any], task: RemoteTask) -> RemoteOutcome:
    """Run ``handler`` for ``task`` on this worker; return its outcome.

    The handler's exceptions propagate unchanged. Its last activity report reaches the
    server before the outcome does; its staging folder (when the workdir is not
    shared) is removed whatever happens.
    """
    worker = get_worker()
    publish = _Publisher(worker, task.topic, task.key)
    token = CancelToken()
    # The worker's client, fetched here: only a task's thread finds it.
    client = get_client()
    watcher = _StopWatcher(worker, client, task.key, task.stop_variable, token)
    watcher.start()
    staging: Path | None = None
    try:
        if task.shared_workdir or task.workdir is None:
            folder = Path(task.workdir) if task.workdir is not None else None
            staged: dict[str, tuple[int, int]] = {}
        else:
            staging = Path(worker.local_directory) / "vimax" / f"{uuid.uuid4().hex}"
            folder = staging / task.workflow_id
            staged = _stage(folder, task.files)
        reporter = _Reporter(publish)
        ctx = TaskContext(
            workflow_id=task.workflow_id,
            task_key=task.task_key,
            stage=task.stage,
            skill=task.skill,
            params=task.params,
            workflow_params=task.workflow_params,
            inputs=task.inputs,
            attempt=task.attempt,
            cancel_token=token,
            workdir=folder,
            report=reporter.report,
            spend=_ForwardedSpend(
                publish, CostSummary.model_validate(task.spend), max_cost=task.max_cost
            ),
            job=TaskJob(task.job_id, _JobSaver(publish, client, task.job_event).save),
        )
        try:
            value = handler(ctx)
        finally:
            reporter.flush()
        files = _written(folder, staged) if staging is not None and folder is not None else {}
        return RemoteOutcome(value, files)
    finally:
        watcher.stop()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


class _Publisher:
    """Sends ``{"key": key, "op": op, ...}`` to the topic; in order, from any thread."""

    def __init__(self, worker: Any, topic: str, key: str) -> None:
        self.worker = worker
        self.topic = topic
        self.key = key

    def __call__(self, op: str, **fields: Any) -> None:
        self.worker.log_event(self.topic, {"key": self.key, "op": op, **fields})


class _Reporter:
    """A task's ``report``: at most one activity per :data:`REPORT_INTERVAL` goes out,
    and the latest one always does (a timer sends it, or :meth:`flush`)."""

    def __init__(self, publish: _Publisher) -> None:
        self.publish = publish
        self._lock = threading.Lock()
        self._sent_at = 0.0
        self._pending: str | None = None
        self._timer: threading.Timer | None = None

    def report(self, activity: str) -> None:
        with self._lock:
            wait = self._sent_at + REPORT_INTERVAL - time.monotonic()
            if wait > 0:
                self._pending = activity
                if self._timer is None:
                    self._timer = threading.Timer(wait, self.flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._send(activity)

    def flush(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._pending is not None:
                self._send(self._pending)

    def _send(self, activity: str) -> None:
        self._pending = None
        self._sent_at = time.monotonic()
        self.publish("activity", text=activity)


class _ForwardedSpend(Spend):
    """The workflow's spend as the task saw it when it started, plus the task's own
    calls, each of which is also sent to the server (which keeps the real total).

    The budget is checked here against that view: tasks running at once on other
    workers are not counted until their calls reach this one's next start.
    """

    def __init__(
        self, publish: _Publisher, summary: CostSummary, *, max_cost: float | None
    ) -> None:
        super().__init__(summary, max_cost=max_cost)
        self.publish = publish

    def add(self, **call: Any) -> float:
        total = super().add(**call)
        self.publish("usage", call={k: v for k, v in call.items() if k != "reserved"})
        return total


class _JobSaver:
    """A task's :class:`TaskJob` store: sends the job id and waits until the server
    sets the ack event, saying it is stored (or :data:`JOB_ACK_TIMEOUT` passes: the
    server is gone or slow, and the job goes on either way)."""

    def __init__(self, publish: _Publisher, client: Any, event: str) -> None:
        self.publish = publish
        self.client = client
        self.event = event
        self._saves = 0

    def save(self, job_id: str | None) -> None:
        self._saves += 1
        ack = f"{self.event}-{self._saves}"
        self.publish("job", job=job_id, ack=ack)
        Event(ack, client=self.client).wait(timeout=JOB_ACK_TIMEOUT)


class _StopWatcher:
    """Cancels ``token`` once the server cancels the task's future: the worker then
    holds the task as ``cancelled`` (a local check, every :data:`STOP_POLL` seconds).
    The reason is the stop variable the server sets first: ``interrupt`` (the server is
    stopping: remote jobs are kept) or ``cancel``; without one (the server went away),
    the task is interrupted."""

    def __init__(
        self, worker: Any, client: Any, key: str, variable: str, token: CancelToken
    ) -> None:
        self.worker = worker
        self.client = client
        self.key = key
        self.variable = variable
        self.token = token
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="vimax-stop")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(STOP_POLL):
            state = self.worker.state.tasks.get(self.key)
            if state is not None and state.state != "cancelled":
                continue
            try:
                why = Variable(self.variable, client=self.client).get(timeout=2.0)
            except Exception:
                why = INTERRUPT
            if why == CANCEL:
                self.token.cancel()
            else:
                self.token.interrupt()
            return


def _stage(folder: Path, files: dict[str, bytes]) -> dict[str, tuple[int, int]]:
    """Write the input ``files`` under ``folder``; return each one's (size, mtime_ns)."""
    staged: dict[str, tuple[int, int]] = {}
    for relative, data in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        info = target.stat()
        staged[relative] = (info.st_size, info.st_mtime_ns)
    folder.mkdir(parents=True, exist_ok=True)
    return staged


def _written(folder: Path, staged: dict[str, tuple[int, int]]) -> dict[str, bytes]:
    """The files under ``folder`` that are new or changed since they were staged."""
    written: dict[str, bytes] = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".part"):
                continue
            path = Path(dirpath) / name
            relative = path.relative_to(folder).as_posix()
            info = path.stat()
            if staged.get(relative) != (info.st_size, info.st_mtime_ns):
                written[relative] = path.read_bytes()
    return written
