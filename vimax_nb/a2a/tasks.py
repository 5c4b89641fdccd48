"""A2A tasks over the workflow store: every workflow is a task, with the same id.

A task is read from what vimax keeps anyway, so it outlives a restart and never
disagrees with REST: its state and status message from the workflow's record, its
artifacts from the workflow's artifact events in the durable log. Only what A2A adds is
kept apart, in the table ``a2a_tasks`` of the same database: the task's context id, its
history (the client's message and the status messages sent since) and its metadata.
A workflow started over REST or from a notebook is a task too (its context id is its
id, its history empty); a workflow another user owns is not found, as over REST.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from a2a.server.context import ServerCallContext
from a2a.server.tasks import TaskStore
from a2a.types import ListTasksRequest, ListTasksResponse, Task, TaskState
from a2a.utils.errors import InvalidParamsError

from ..coordinator import Coordinator, WorkflowNotFound
from ..protocol import WorkflowRecord, workflow_room
from ..shared import parse_timestamp
from ..store import Store
from ..store.workflows import page_cursor, parse_cursor
from .caller import Caller, caller_of
from .updates import FINAL_STATES, Position, artifacts_of, status_of

#: Tasks a ListTasks page has when the client asks for no size (the SDK refuses more
#: than 100).
DEFAULT_PAGE_SIZE = 50
_IDS_PER_QUERY = 500

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS a2a_tasks (id TEXT PRIMARY KEY, context_id TEXT NOT NULL, "
    "data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS a2a_tasks_by_context ON a2a_tasks (context_id)",
)


class WorkflowTaskStore(TaskStore):
    """The SDK's task store, made of the workflows (see the module's description).

    The SDK saves a task after every event it applies; only the parts A2A adds are
    written, and only when they changed. Tasks a SendMessage is creating are
    :meth:`claim` -ed: they read as missing until the SDK first saves them, as the SDK
    expects of a new task whose workflow has already started.
    """

    def __init__(self, coordinator: Coordinator, store: Store) -> None:
        self.coordinator = coordinator
        self.store = store
        self._claimed: set[str] = set()
        self._written: dict[str, bytes] = {}

    async def open(self) -> None:
        """Create the table if need be, and forget the tasks of workflows removed since
        (``vimax-nb gc`` removes workflows, not what A2A kept of them)."""

        def prepare(conn: sqlite3.Connection) -> None:
            for statement in SCHEMA:  # not executescript: it would commit the batch
                conn.execute(statement)
            conn.execute("DELETE FROM a2a_tasks WHERE id NOT IN (SELECT id FROM workflows)")

        await self.store.db.run_in_writer(prepare)

    def claim(self, task_id: str) -> None:
        """Make ``task_id`` read as missing until the SDK saves it."""
        self._claimed.add(task_id)

    def claimed(self, task_id: str) -> bool:
        """Whether ``task_id`` is claimed and not saved yet."""
        return task_id in self._claimed

    def release(self, task_id: str) -> None:
        """End a :meth:`claim` (the task was not created after all)."""
        self._claimed.discard(task_id)

    # -- the SDK's TaskStore ---------------------------------------------------------

    async def save(self, task: Task, context: ServerCallContext) -> None:
        """Keep what A2A adds to the task: its context id, history and metadata (not its
        state and artifacts, which the workflow has)."""
        kept = Task(id=task.id, context_id=task.context_id, history=task.history)
        kept.metadata.CopyFrom(task.metadata)
        if "vimax" in kept.metadata:
            del kept.metadata["vimax"]  # the workflow's figures, read afresh each time
        data = kept.SerializeToString(deterministic=True)
        self._claimed.discard(task.id)
        if self._written.get(task.id) == data:
            return
        row = (task.id, task.context_id, data)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO a2a_tasks (id, context_id, data) VALUES (?, ?, ?)", row
            )

        await self.store.db.run_in_writer(write)
        if task.status.state in FINAL_STATES:
            self._written.pop(task.id, None)  # the SDK saves it no more
        else:
            self._written[task.id] = data

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        """The task of workflow ``task_id`` with its artifacts, or None when there is
        none the caller may see (or the SDK is creating it)."""
        if task_id in self._claimed:
            return None
        caller = caller_of(context)
        record = await self._record(task_id, caller)
        if record is None:
            return None
        kept = await self._kept([task_id])
        return await self.task_of(record, kept.get(task_id), caller, artifacts=True)

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        """A page of the tasks the caller may see, newest first (by the creation of
        their workflows, then id): the workflows' pages, filtered by ``context_id``,
        ``status`` and ``status_timestamp_after`` when asked (a filtered listing reads
        every workflow of the caller's). ``page_token`` is the ``next_page_token`` of
        the page before."""
        caller = caller_of(context)
        size = params.page_size if params.HasField("page_size") else DEFAULT_PAGE_SIZE
        try:
            before = parse_cursor(params.page_token) if params.page_token else None
        except ValueError as exc:
            raise InvalidParamsError(message=f"page_token: {exc}") from None
        filtered = (
            bool(params.context_id)
            or params.status != TaskState.TASK_STATE_UNSPECIFIED
            or params.HasField("status_timestamp_after")
        )
        if not filtered:
            page = await self.coordinator.page_workflows(size, before, owner=caller.scope)
            records, next_token, total = page.records, page.next or "", page.total
            kept = await self._kept(r.id for r in records)
        else:
            everyone = await self.coordinator.list_workflows(owner=caller.scope)
            kept = await self._kept(r.id for r in everyone)
            after = (
                params.status_timestamp_after.ToJsonString()
                if params.HasField("status_timestamp_after")
                else None
            )
            matching = [
                r
                for r in reversed(everyone)
                if _matches(r, kept.get(r.id), params.context_id, params.status, after)
            ]
            total = len(matching)
            if before is not None:
                matching = [r for r in matching if (r.created_at, r.id) < before]
            records = matching[:size]
            next_token = page_cursor(records[-1]) if len(matching) > size else ""
        tasks = [
            await self.task_of(r, kept.get(r.id), caller, artifacts=params.include_artifacts)
            for r in records
        ]
        return ListTasksResponse(
            tasks=tasks, next_page_token=next_token, page_size=size, total_size=total
        )

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        """Forget what A2A added to the task (the workflow stays: remove it with
        ``vimax-nb gc``)."""
        if await self._record(task_id, caller_of(context)) is None:
            return
        self._written.pop(task_id, None)
        await self.store.db.run_in_writer(
            lambda conn: conn.execute("DELETE FROM a2a_tasks WHERE id = ?", (task_id,))
        )

    # -- the task of a workflow ------------------------------------------------------

    async def task_of(
        self, record: WorkflowRecord, kept: Task | None, caller: Caller, *, artifacts: bool
    ) -> Task:
        """The A2A task of a workflow: its state and status from ``record``, what A2A
        added from ``kept`` (None: nothing), and, with ``artifacts``, its artifacts
        from the log, with URLs under the caller's origin."""
        context_id = kept.context_id if kept is not None else record.id
        position = Position.of(record)
        more: dict[str, str | int | float] = {
            "kind": record.kind,
            "owner": record.owner or "",
            "createdAt": record.created_at,
        }
        status, metadata = status_of(position, record.id, context_id, record.updated_at, more=more)
        task = Task(id=record.id, context_id=context_id, status=status)
        if kept is not None:
            task.history.extend(kept.history)
            task.metadata.CopyFrom(kept.metadata)
        task.metadata.MergeFrom(metadata)
        if artifacts:
            events = await self.store.events.read(workflow_room(record.id))
            task.artifacts.extend(artifacts_of(events, caller.origin))
        return task

    async def _record(self, workflow_id: str, caller: Caller) -> WorkflowRecord | None:
        try:
            record = await self.coordinator.get_workflow(workflow_id)
        except WorkflowNotFound:
            return None
        return record if caller.sees(record) else None

    async def _kept(self, ids: Iterable[str]) -> dict[str, Task]:
        """What A2A added to the tasks ``ids``, by id (those it added nothing to are
        left out)."""
        wanted = list(ids)

        def query(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
            rows: list[tuple[str, bytes]] = []
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                chunk: Sequence[str] = wanted[start : start + _IDS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT id, data FROM a2a_tasks WHERE id IN ({marks})"
                rows.extend(conn.execute(sql, chunk).fetchall())
            return rows

        if not wanted:
            return {}
        kept: dict[str, Task] = {}
        for ident, data in await self.store.db.read(query):
            task = Task()
            task.ParseFromString(data)
            kept[ident] = task
        return kept


def _matches(
    record: WorkflowRecord,
    kept: Task | None,
    context_id: str,
    status: TaskState,
    after: str | None,
) -> bool:
    """Whether a workflow's task passes ListTasks' filters (an empty one passes all)."""
    if context_id and (kept.context_id if kept is not None else record.id) != context_id:
        return False
    if status != TaskState.TASK_STATE_UNSPECIFIED and Position.of(record).task_state != status:
        return False
    if after is not None:
        updated, since = parse_timestamp(record.updated_at), parse_timestamp(after)
        if updated is None or since is None or updated <= since:
            return False
    return True
