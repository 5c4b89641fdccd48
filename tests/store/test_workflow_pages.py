"""The workflow store's pages newest first, counts, owners, finished workflows by age and
deletes of many; the schema version and the migration of a file made before it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vimax_nb.protocol import WorkflowState
from vimax_nb.store import StoreError
from vimax_nb.store.database import SCHEMA_VERSION
from vimax_nb.store.workflows import page_cursor, parse_cursor

from .helpers import opened
from .test_workflows import record

S = WorkflowState


def set_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    conn.commit()
    conn.close()


def stamp(second: int) -> str:
    return f"2024-05-01T10:{second // 60:02d}:{second % 60:02d}.000Z"


async def test_pages_walk_every_workflow_newest_first_once(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        workflows = store.workflows
        # Three workflows per second: ties on created_at are broken by id.
        saved = [
            record(f"w{n:03d}", created_at=stamp(n // 3), owner="ada" if n % 2 else "bob")
            for n in range(250)
        ]
        for r in reversed(saved):
            workflows.save_nowait(r)
        await workflows.db.run_in_writer(lambda conn: None)
        newest_first = sorted(saved, key=lambda r: (r.created_at, r.id), reverse=True)

        for size in (1, 7, 100, 250, 1000):
            seen = []
            before = None
            while True:
                page = await workflows.page(size, before)
                seen += page
                if len(page) < size:
                    break
                before = parse_cursor(page_cursor(page[-1]))
            assert [r.id for r in seen] == [r.id for r in newest_first], size

        ada = [r for r in newest_first if r.owner == "ada"]
        first = await workflows.page(50, owner="ada")
        rest = await workflows.page(500, parse_cursor(page_cursor(first[-1])), owner="ada")
        assert [r.id for r in first + rest] == [r.id for r in ada]
        assert await workflows.count() == 250
        assert await workflows.count(owner="ada") == 125
        assert await workflows.count(owner="nobody") == 0
        assert [r.id for r in await workflows.records(owner="bob")] == [
            r.id for r in reversed(newest_first) if r.owner == "bob"
        ]


async def test_the_page_queries_use_an_index(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:

        def plans(conn: sqlite3.Connection) -> list[str]:
            from vimax_nb.store.workflows import _page_query

            out = []
            for before, owner in ((None, None), (("t", "i"), None), (("t", "i"), "ada")):
                sql, params = _page_query(10, before, owner)
                out += [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
            return out

        for plan in await store.db.read(plans):
            assert "USING INDEX" in plan, plan
            assert "TEMP B-TREE" not in plan, plan


def test_a_cursor_that_is_not_one_is_refused_with_what_one_looks_like() -> None:
    assert parse_cursor("2024-05-01T10:00:00.000Z~abc") == ("2024-05-01T10:00:00.000Z", "abc")
    for bad in ("", "abc", "~abc", "2024-05-01T10:00:00.000Z~"):
        with pytest.raises(ValueError, match="pass the 'next' of the previous page"):
            parse_cursor(bad)


async def test_finished_before_takes_only_workflows_that_ended_by_then(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.db") as store:
        workflows = store.workflows
        old = stamp(0)
        for r in (
            record("done", S.completed, old, finished_at=stamp(10)),
            record("fail", S.failed, old, finished_at=stamp(20), owner="ada"),
            record("stop", S.canceled, old, finished_at=None, updated_at=stamp(5)),
            record("late", S.completed, old, finished_at=stamp(50)),
            record("run", S.running, old),
            record("pause", S.paused, old),
            record("cut", S.interrupted, old),
            record("wait", S.pending, old),
        ):
            await workflows.save(r)
        found = await workflows.finished_before(stamp(20))
        assert sorted(r.id for r in found) == ["done", "fail", "stop"]
        assert [r.id for r in await workflows.finished_before(stamp(20), owner="ada")] == ["fail"]
        assert await workflows.finished_before(stamp(4)) == []

        assert await workflows.delete_many(["done", "fail", "nope"]) == 2
        assert await workflows.get("done") is None
        assert await workflows.get("run") is not None
        assert await workflows.count() == 6


async def test_a_file_from_before_schema_versions_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE workflows (id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL,
            created_at TEXT NOT NULL, data TEXT NOT NULL);
        CREATE INDEX workflows_by_created ON workflows (created_at);
        """
    )
    for ident, owner in (("a", "ada"), ("b", None)):
        old = record(ident, owner=owner)
        conn.execute(
            "INSERT INTO workflows VALUES (?, ?, ?, ?, ?)",
            (old.id, old.kind, old.state.value, old.created_at, old.model_dump_json()),
        )
    conn.commit()
    conn.close()

    async with opened(path) as store:
        assert [r.id for r in await store.workflows.page(10, owner="ada")] == ["a"]
        assert await store.workflows.count() == 2
        version = await store.db.read(
            lambda c: c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        )
        assert version == (str(SCHEMA_VERSION),)
        indexes = await store.db.read(
            lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        )
        assert {"workflows_by_created_id", "workflows_by_owner"} <= indexes
        assert "workflows_by_created" not in indexes
        # A workflow saved now keeps its owner in the column too.
        await store.workflows.save(record("c", owner="cy"))
        assert [r.id for r in await store.workflows.page(10, owner="cy")] == ["c"]
    # Opening it again migrates nothing more.
    async with opened(path) as store:
        assert await store.workflows.count() == 2 + 1


async def test_a_file_from_a_newer_vimax_nb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with opened(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
    )
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        async with opened(path):
            pass
    # The refusal let go of the file: the vimax-nb that knows the version opens it.
    set_version(path, SCHEMA_VERSION)
    async with opened(path) as store:
        assert await store.workflows.count() == 0
