"""Durable records of workflows, of their tasks' checkpoints and of the remote jobs
their running tasks wait on."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Collection, Iterable
from typing import Any

from pydantic import BaseModel, Field

from ..protocol import TERMINAL_STATES, WorkflowRecord, WorkflowState
from .database import Database, StoreError

log = logging.getLogger(__name__)

_SAVE, _CHECKPOINT, _DELETE, _INTERRUPT, _JOB = range(5)
_UNFINISHED = tuple(
    s.value for s in (WorkflowState.pending, WorkflowState.running, WorkflowState.paused)
)
_CURSOR_SEPARATOR = "~"  # never in a timestamp; unreserved in URLs


def page_cursor(record: WorkflowRecord) -> str:
    """The cursor of ``record`` in a listing newest first: :meth:`WorkflowStore.page` with
    it as ``before`` returns the workflows listed after it."""
    return f"{record.created_at}{_CURSOR_SEPARATOR}{record.id}"


def parse_cursor(text: str) -> tuple[str, str]:
    """``(created_at, id)`` of a cursor made by :func:`page_cursor`; ValueError (saying
    what a cursor looks like) for anything else."""
    created_at, separator, ident = text.partition(_CURSOR_SEPARATOR)
    if not separator or not created_at or not ident:
        raise ValueError(
            f"{text!r} is not a cursor of this listing: pass the 'next' of the previous "
            "page as it is (it looks like 2024-05-01T10:00:00.000Z~8e7a15d1463e)"
        )
    return created_at, ident


class Checkpoint(BaseModel):
    """What a finished task left behind, enough to skip it when the workflow runs again."""

    workflow_id: str
    task_key: str
    stage: str
    artifacts: list[str] = Field(default_factory=list)
    content_hash: str | None = None
    attempts: int = 1
    result: Any = None
    updated_at: str = ""


class WorkflowStore:
    """Workflow records and task checkpoints on a :class:`Database`.

    Writes are queued to the writer thread in order (``*_nowait`` returns at once,
    the coroutines return once the write is durable); reads see what is committed.
    A record or checkpoint is serialized when it is handed over, so what is stored
    is the object as it was then, and one that cannot be serialized is refused at
    once (TypeError) instead of failing the writes queued with it.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing ------------------------------------------------------------------

    def save_nowait(self, record: WorkflowRecord) -> None:
        """Queue ``record`` to be stored, replacing any earlier version."""
        self.db.submit(self, (_SAVE, _record_row(record), None))

    async def save(self, record: WorkflowRecord) -> None:
        """Store ``record`` and wait until it is durable."""
        await self._call(_SAVE, _record_row(record))

    def save_checkpoint_nowait(self, checkpoint: Checkpoint) -> None:
        """Queue ``checkpoint`` to be stored, replacing one for the same task."""
        self.db.submit(self, (_CHECKPOINT, _checkpoint_row(checkpoint), None))

    async def save_job(self, workflow_id: str, task_key: str, job_id: str | None) -> None:
        """Store the id of the remote job ``task_key`` waits on (None: forget it) and wait
        until it is durable, so that a restart finds the job instead of paying again."""
        await self._call(_JOB, (workflow_id, task_key, job_id))

    async def delete(self, workflow_id: str) -> None:
        """Forget a workflow, its checkpoints and its jobs."""
        await self._call(_DELETE, [workflow_id])

    async def delete_many(self, workflow_ids: Collection[str]) -> int:
        """Forget these workflows, their checkpoints and their jobs, in one transaction;
        return how many workflow records there were."""
        deleted: int = await self._call(_DELETE, list(workflow_ids))
        return deleted

    async def interrupt_unfinished(self, now: str) -> list[WorkflowRecord]:
        """Mark every workflow stored as pending, running or paused ``interrupted``; return them.

        Called at start: those workflows were cut off when the process stopped.
        """
        records: list[WorkflowRecord] = await self._call(_INTERRUPT, now)
        return records

    async def _call(self, kind: int, arg: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.db.submit(self, (kind, arg, future))
        return await future

    # -- reading ------------------------------------------------------------------

    async def get(self, workflow_id: str) -> WorkflowRecord | None:
        """The stored record of ``workflow_id``, or None."""

        def query(conn: sqlite3.Connection) -> WorkflowRecord | None:
            row = conn.execute("SELECT data FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
            return None if row is None else WorkflowRecord.model_validate_json(row[0])

        return await self.db.read(query)

    async def records(
        self,
        states: Iterable[WorkflowState] | None = None,
        limit: int | None = None,
        *,
        owner: str | None = None,
    ) -> list[WorkflowRecord]:
        """Stored records, oldest first, optionally only those in ``states``, and only
        ``owner``'s when an owner is given (None: everyone's)."""
        wanted = [WorkflowState(s).value for s in states] if states is not None else None

        def query(conn: sqlite3.Connection) -> list[WorkflowRecord]:
            where: list[str] = []
            params: list[Any] = []
            if wanted is not None:
                where.append(f"state IN ({','.join('?' * len(wanted))})")
                params.extend(wanted)
            if owner is not None:
                where.append("owner = ?")
                params.append(owner)
            sql = "SELECT data FROM workflows"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY created_at, id LIMIT ?"
            params.append(limit if limit is not None else -1)
            return [WorkflowRecord.model_validate_json(r[0]) for r in conn.execute(sql, params)]

        return await self.db.read(query)

    async def page(
        self, limit: int, before: tuple[str, str] | None = None, *, owner: str | None = None
    ) -> list[WorkflowRecord]:
        """Up to ``limit`` stored records, newest first (by creation time, then id), of
        those listed after ``before`` (a ``(created_at, id)`` from :func:`parse_cursor`;
        None: from the newest); only ``owner``'s when an owner is given.

        Read through an index (``workflows_by_created_id``, or ``workflows_by_owner``):
        a page costs its own rows, however many workflows are stored. Walking the pages
        with each page's last record as the next ``before`` lists every workflow stored
        before the walk began exactly once.
        """

        def query(conn: sqlite3.Connection) -> list[WorkflowRecord]:
            sql, params = _page_query(limit, before, owner)
            return [WorkflowRecord.model_validate_json(r[0]) for r in conn.execute(sql, params)]

        return await self.db.read(query)

    async def count(self, *, owner: str | None = None) -> int:
        """How many workflows are stored (``owner``'s only, when an owner is given)."""

        def query(conn: sqlite3.Connection) -> int:
            if owner is None:
                row = conn.execute("SELECT count(*) FROM workflows").fetchone()
            else:
                row = conn.execute(
                    "SELECT count(*) FROM workflows WHERE owner = ?", (owner,)
                ).fetchone()
            return int(row[0])

        return await self.db.read(query)

    async def finished_before(
        self, cutoff: str, *, owner: str | None = None
    ) -> list[WorkflowRecord]:
        """The stored records of workflows that ended (completed, failed or canceled)
        at or before ``cutoff`` (an ISO 8601 UTC timestamp), oldest first; only
        ``owner``'s when an owner is given. A record without ``finished_at`` counts from
        its last update."""
        finished = [s.value for s in TERMINAL_STATES]

        def query(conn: sqlite3.Connection) -> list[WorkflowRecord]:
            # A workflow ends after it is created: the index narrows by creation time.
            sql = (
                f"SELECT data FROM workflows WHERE state IN ({','.join('?' * len(finished))})"
                " AND created_at <= ?"
            )
            params: list[Any] = [*finished, cutoff]
            if owner is not None:
                sql += " AND owner = ?"
                params.append(owner)
            sql += " ORDER BY created_at, id"
            records = (WorkflowRecord.model_validate_json(r[0]) for r in conn.execute(sql, params))
            return [r for r in records if (r.finished_at or r.updated_at) <= cutoff]

        return await self.db.read(query)

    async def checkpoints(self, workflow_id: str) -> dict[str, Checkpoint]:
        """The checkpoints of ``workflow_id`` by task key."""

        def query(conn: sqlite3.Connection) -> dict[str, Checkpoint]:
            rows = conn.execute(
                "SELECT task_key, data FROM checkpoints WHERE workflow_id = ?", (workflow_id,)
            )
            return {key: Checkpoint.model_validate_json(data) for key, data in rows}

        return await self.db.read(query)

    async def jobs(self, workflow_id: str) -> dict[str, str]:
        """The remote job ids of ``workflow_id``'s tasks, by task key."""

        def query(conn: sqlite3.Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT task_key, job_id FROM jobs WHERE workflow_id = ?", (workflow_id,)
            )
            return dict(rows.fetchall())

        return await self.db.read(query)

    # -- the writer thread's side (WriteHandler) ------------------------------------

    def write(self, conn: sqlite3.Connection, items: list[Any]) -> list[Any]:
        results: list[Any] = []
        for kind, arg, _future in items:
            # Each item in its own savepoint: one failing write fails alone.
            conn.execute("SAVEPOINT item")
            try:
                results.append(self._write_one(conn, kind, arg))
            except Exception as exc:
                conn.execute("ROLLBACK TO item")
                log.error("workflow store write failed: %s", exc)
                results.append(StoreError(f"could not store workflow data: {exc}"))
            conn.execute("RELEASE item")
        return results

    def _write_one(self, conn: sqlite3.Connection, kind: int, arg: Any) -> Any:
        if kind == _SAVE:
            conn.execute(
                "INSERT OR REPLACE INTO workflows (id, kind, state, created_at, owner, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                arg,
            )
            return None
        if kind == _CHECKPOINT:
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints (workflow_id, task_key, data) VALUES (?, ?, ?)",
                arg,
            )
            return None
        if kind == _JOB:
            workflow_id, task_key, job_id = arg
            if job_id is None:
                conn.execute(
                    "DELETE FROM jobs WHERE workflow_id = ? AND task_key = ?",
                    (workflow_id, task_key),
                )
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO jobs (workflow_id, task_key, job_id) VALUES (?, ?, ?)",
                    arg,
                )
            return None
        if kind == _DELETE:
            ids = [(ident,) for ident in arg]
            before = conn.total_changes
            conn.executemany("DELETE FROM workflows WHERE id = ?", ids)
            deleted = conn.total_changes - before
            conn.executemany("DELETE FROM checkpoints WHERE workflow_id = ?", ids)
            conn.executemany("DELETE FROM jobs WHERE workflow_id = ?", ids)
            return deleted
        return self._interrupt(conn, arg)

    @staticmethod
    def _interrupt(conn: sqlite3.Connection, now: str) -> list[WorkflowRecord]:
        rows = conn.execute(
            f"SELECT data FROM workflows WHERE state IN ({','.join('?' * len(_UNFINISHED))})",
            _UNFINISHED,
        ).fetchall()
        records = []
        for (data,) in rows:
            record = WorkflowRecord.model_validate_json(data).model_copy(
                update={
                    "state": WorkflowState.interrupted,
                    "updated_at": now,
                    "message": "interrupted: the server stopped while this workflow ran",
                }
            )
            conn.execute(
                "UPDATE workflows SET state = ?, data = ? WHERE id = ?",
                (record.state.value, record.model_dump_json(), record.id),
            )
            records.append(record)
        return records

    def applied(self, items: list[Any], result: Any) -> None:
        pass

    def deliver(self, items: list[Any], result: Any, error: BaseException | None) -> None:
        if error is not None:
            log.error("workflow records were not stored: %s", error)
        for index, (_kind, _arg, future) in enumerate(items):
            if future is None or future.done():
                continue
            if error is not None:
                future.set_exception(error)
            elif isinstance(result[index], StoreError):
                future.set_exception(result[index])
            else:
                future.set_result(result[index])


def _page_query(
    limit: int, before: tuple[str, str] | None, owner: str | None
) -> tuple[str, list[Any]]:
    """The SQL of :meth:`WorkflowStore.page` and its parameters."""
    where: list[str] = []
    params: list[Any] = []
    if owner is not None:
        where.append("owner = ?")
        params.append(owner)
    if before is not None:
        where.append("(created_at, id) < (?, ?)")
        params.extend(before)
    sql = "SELECT data FROM workflows"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
    params.append(limit)
    return sql, params


def _record_row(record: WorkflowRecord) -> tuple[str, str, str, str, str | None, str]:
    try:
        data = record.model_dump_json()
    except ValueError as exc:
        raise TypeError(f"workflow {record.id!r} cannot be stored: {exc}") from exc
    state = WorkflowState(record.state).value
    return (record.id, record.kind, state, record.created_at, record.owner, data)


def _checkpoint_row(checkpoint: Checkpoint) -> tuple[str, str, str]:
    try:
        data = checkpoint.model_dump_json()
    except ValueError as exc:
        raise TypeError(
            f"checkpoint {checkpoint.task_key!r} of workflow {checkpoint.workflow_id!r} "
            f"cannot be stored: {exc}"
        ) from exc
    return (checkpoint.workflow_id, checkpoint.task_key, data)
