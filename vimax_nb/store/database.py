"""One SQLite file in WAL mode, written by one thread in group commits.

Every write goes through :class:`Database`: callers on the event loop hand items
to a *write handler* (the event log, the workflow store); the writer thread
takes everything queued so far, applies it in one transaction, commits, and
hands the results back to the loop in one callback. Reads run on a small pool
of reader threads with their own connections, so neither reads nor writes ever
block the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stored_at REAL NOT NULL,
    type TEXT NOT NULL,
    frame BLOB NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_age ON events (stored_at);
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    top INTEGER NOT NULL,
    floor INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workflows (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    workflow_id TEXT NOT NULL,
    task_key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (workflow_id, task_key)
);
CREATE TABLE IF NOT EXISTS jobs (
    workflow_id TEXT NOT NULL,
    task_key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (workflow_id, task_key)
);
"""

#: The layout :data:`SCHEMA` and :data:`MIGRATIONS` give a file, kept in ``meta`` as
#: ``schema_version``. A file without one was made before versions were kept: it is 1.
SCHEMA_VERSION = 2


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """Workflows get an ``owner`` column (from their records) and the indexes the pages
    of ``GET /vimax/api/workflows`` are read by: newest first, of everyone or of one
    owner."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(workflows)")}
    if "owner" not in columns:
        conn.execute("ALTER TABLE workflows ADD COLUMN owner TEXT")
        # In Python: SQLite builds without JSON functions exist.
        owners = [
            (json.loads(data).get("owner"), ident)
            for ident, data in conn.execute("SELECT id, data FROM workflows")
        ]
        conn.executemany("UPDATE workflows SET owner = ? WHERE id = ?", owners)
    conn.execute("DROP INDEX IF EXISTS workflows_by_created")
    conn.execute("CREATE INDEX IF NOT EXISTS workflows_by_created_id ON workflows (created_at, id)")
    conn.execute(
        "CREATE INDEX IF NOT EXISTS workflows_by_owner ON workflows (owner, created_at, id)"
    )


#: What brings a file from version ``n - 1`` to ``n``, by ``n``; each runs in the
#: transaction that records its version.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {2: _migrate_to_2}


class StoreError(RuntimeError):
    """The store cannot do what was asked (closed, locked, or the disk failed)."""


class StoreLocked(StoreError):
    """Another process (or another :class:`Database` in this one) has the file open."""


class WriteHandler(Protocol):
    """What the writer thread calls for the items queued for one handler."""

    def write(self, conn: sqlite3.Connection, items: list[Any]) -> Any:
        """Apply ``items`` inside the open transaction (writer thread); return a result.

        Must not change state that outlives the transaction: that belongs in
        :meth:`applied`, which runs only once the transaction has committed.
        """

    def applied(self, items: list[Any], result: Any) -> None:
        """The transaction holding ``items`` committed (writer thread)."""

    def deliver(self, items: list[Any], result: Any, error: BaseException | None) -> None:
        """Report the outcome on the event loop, in commit order."""


_STOP = object()


class Database:
    """The SQLite file behind the event log and the workflow store.

    Use :meth:`open` (a coroutine) to create one; close it with :meth:`close`.
    ``synchronous`` is SQLite's ``PRAGMA synchronous``: ``NORMAL`` (the default)
    survives a crash of the process, ``FULL`` also a loss of power.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        max_batch: int = 8192,
        readers: int = 2,
        maintenance_interval: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Taken by submit() and close(): nothing is queued behind the writer's stop.
        self._submit_lock = threading.Lock()
        self._closing: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: threading.Thread | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="vimax-store-read")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._lock_file: int | None = None
        self._maintenance: list[Callable[[], None]] = []
        self.maintenance_interval = maintenance_interval
        self.closed = True
        self.created = False

    # -- life cycle -----------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | os.PathLike[str], **options: Any) -> Database:
        """Open (or create) the file at ``path`` and start the writer thread."""
        db = cls(path, **options)
        await asyncio.to_thread(db._open_sync)
        db._loop = asyncio.get_running_loop()
        db._writer = threading.Thread(target=db._write_loop, name="vimax-store-write", daemon=True)
        db.closed = False
        db._writer.start()
        return db

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        conn: sqlite3.Connection | None = None
        try:
            self.created = not self.path.exists() or self.path.stat().st_size == 0
            conn = self._connect()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.executescript(SCHEMA)
            conn.commit()
            _migrate(conn, self.path)
            self._write_conn = conn
        except BaseException:
            if conn is not None:
                conn.close()
            self._release_lock()
            raise

    def _take_lock(self) -> None:
        # The lock sits beside the real file, so a path through a symbolic link
        # finds the same lock as the file's own path.
        fd = os.open(f"{os.path.realpath(self.path)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLocked(
                f"the database {self.path} is already open (holder pid {holder}); "
                "each database file has one owner: stop the other server or choose "
                "another database path"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_file = fd

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            os.close(self._lock_file)
            self._lock_file = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    async def close(self) -> None:
        """Commit everything queued so far, stop the writer and close the file.

        Every caller returns only once the file is released, so the path can be
        opened again at once; the loop keeps running while reads and the last
        batch finish.
        """
        if self._closing is None:
            if self.closed:  # never opened
                return
            with self._submit_lock:
                self.closed = True
                self._queue.put(_STOP)
            self._closing = asyncio.ensure_future(self._finish_close())
        await asyncio.shield(self._closing)

    async def _finish_close(self) -> None:
        if self._writer is not None:
            # The writer hands its last batch to the loop before it ends, so that
            # batch's delivery runs before this await returns.
            await asyncio.to_thread(self._writer.join)
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            conn.close()
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None
        self._release_lock()

    # -- writing --------------------------------------------------------------------

    def submit(self, handler: WriteHandler, item: Any) -> None:
        """Queue ``item`` for ``handler``; thread-safe, never blocks.

        Raises :class:`StoreError` once :meth:`close` has begun; whatever was
        queued before that is committed and delivered.
        """
        with self._submit_lock:
            if self.closed:
                raise StoreError(f"the database {self.path} is closed")
            self._queue.put((handler, item))

    def add_maintenance(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` in the writer thread every ``maintenance_interval`` seconds.

        Hooks queue work with :meth:`submit` (retention does); they must not block.
        """
        self._maintenance.append(hook)

    def _write_loop(self) -> None:
        assert self._write_conn is not None
        assert self._loop is not None
        conn, loop = self._write_conn, self._loop
        stopping = False
        carried: Any = None
        next_maintenance = time.monotonic() + self.maintenance_interval
        while not stopping:
            if carried is not None:
                item, carried = carried, None
            else:
                try:
                    item = self._queue.get(timeout=max(0.0, next_maintenance - time.monotonic()))
                except queue.Empty:
                    item = None
            groups: dict[WriteHandler, list[Any]] = {}
            last: WriteHandler | None = None
            count = 0
            while item is not None:
                if item is _STOP:
                    stopping = True
                    break
                handler, payload = item
                # A batch applies each handler's items together; a run_in_writer
                # call must still see exactly the writes queued before it, so a
                # call after other writes, or writes after a call, start a new batch.
                if handler is not last and handler in groups and _CALL in groups:
                    carried = item
                    break
                groups.setdefault(handler, []).append(payload)
                last = handler
                count += 1
                if count >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if groups:
                outcome = self._commit(conn, groups)
                try:
                    loop.call_soon_threadsafe(_deliver_all, outcome)
                except RuntimeError:  # the loop is closed: nobody is left to tell
                    log.error("store results dropped: the event loop is closed")
            if not stopping and time.monotonic() >= next_maintenance:
                self._run_maintenance()
                next_maintenance = time.monotonic() + self.maintenance_interval

    def _commit(
        self, conn: sqlite3.Connection, groups: dict[WriteHandler, list[Any]]
    ) -> list[tuple[WriteHandler, list[Any], Any, BaseException | None]]:
        outcome: list[tuple[WriteHandler, list[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN")
            for handler, items in groups.items():
                conn.execute("SAVEPOINT handler")
                try:
                    result = handler.write(conn, items)
                except Exception as exc:
                    conn.execute("ROLLBACK TO handler")
                    log.exception("store write failed for %s", type(handler).__name__)
                    outcome.append((handler, items, None, exc))
                else:
                    outcome.append((handler, items, result, None))
                conn.execute("RELEASE handler")
            conn.execute("COMMIT")
        except Exception as exc:
            log.exception("store commit failed")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failure: BaseException = StoreError(f"could not commit to {self.path}: {exc}")
            return [(h, items, None, failure) for h, items in groups.items()]
        for handler, items, result, error in outcome:
            if error is None:
                try:
                    handler.applied(items, result)
                except Exception:
                    log.exception("store bookkeeping failed for %s", type(handler).__name__)
        return outcome

    def _run_maintenance(self) -> None:
        for hook in self._maintenance:
            try:
                hook()
            except Exception:
                log.exception("store maintenance failed")

    async def run_in_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in the writer thread, in the next batch's transaction.

        ``fn`` sees every write queued before this call and none queued after it.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.submit(_CALL, (fn, future))
        return await future

    # -- reading --------------------------------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a reader thread; it sees everything committed so far."""
        if self.closed:
            raise StoreError(f"the database {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read, fn)

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return fn(conn)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the file at ``path`` to :data:`SCHEMA_VERSION`, one migration per version,
    each committed with its version; refuse a file a newer vimax-nb made."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row is not None else 1
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the database {path} has schema version {version}, newer than this vimax-nb "
            f"knows ({SCHEMA_VERSION}): upgrade vimax-nb, or choose another database path"
        )
    while version < SCHEMA_VERSION:
        version += 1
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](conn)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(version),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _deliver_all(outcome: list[tuple[WriteHandler, list[Any], Any, BaseException | None]]) -> None:
    for handler, items, result, error in outcome:
        try:
            handler.deliver(items, result, error)
        except Exception:
            log.exception("store delivery failed for %s", type(handler).__name__)


class _CallHandler:
    """Runs arbitrary functions in the writer's transaction (see ``run_in_writer``)."""

    def write(self, conn: sqlite3.Connection, items: list[Any]) -> list[Any]:
        results: list[Any] = []
        for fn, _future in items:
            conn.execute("SAVEPOINT call")
            try:
                results.append((fn(conn), None))
            except Exception as exc:
                conn.execute("ROLLBACK TO call")
                results.append((None, exc))
            conn.execute("RELEASE call")
        return results

    def applied(self, items: list[Any], result: Any) -> None:
        pass

    def deliver(self, items: list[Any], result: Any, error: BaseException | None) -> None:
        for index, (_fn, future) in enumerate(items):
            if future.done():
                continue
            value, exc = (None, error) if error is not None else result[index]
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(value)


_CALL = _CallHandler()
