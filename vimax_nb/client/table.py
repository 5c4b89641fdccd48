"""`WorkflowTable`: the workflows a server knows, shown as a table in a notebook or a terminal."""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from typing import overload

from ..protocol import WorkflowRecord
from .view import WorkflowRow, workflow_row

__all__ = ["COLUMNS", "SUBJECT_WIDTH", "WorkflowTable"]

COLUMNS: tuple[str, ...] = WorkflowRow._fields
SUBJECT_WIDTH = 40  # characters of the idea or script in the subject column


class WorkflowTable(Sequence[WorkflowRecord]):
    """An immutable list of :class:`~vimax_nb.protocol.WorkflowRecord`, newest first.

    It is a sequence (index it, iterate it, ``len`` it) that displays as a table:
    plain text in a terminal, HTML in a notebook, every value escaped.
    """

    def __init__(self, records: Sequence[WorkflowRecord]) -> None:
        self._records = sorted(records, key=lambda r: r.created_at, reverse=True)

    @overload
    def __getitem__(self, index: int) -> WorkflowRecord: ...

    @overload
    def __getitem__(self, index: slice) -> WorkflowTable: ...

    def __getitem__(self, index: int | slice) -> WorkflowRecord | WorkflowTable:
        if isinstance(index, slice):
            return WorkflowTable(self._records[index])
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[WorkflowRecord]:
        return iter(self._records)

    def by_state(self, *states: str) -> WorkflowTable:
        """The workflows in any of ``states`` (``"running"``, ``"completed"``, ...)."""
        return WorkflowTable([r for r in self._records if r.state.value in states])

    def rows(self) -> list[WorkflowRow]:
        """One :class:`~vimax_nb.client.view.WorkflowRow` (display strings, in
        :data:`COLUMNS` order) per workflow."""
        return [workflow_row(r, SUBJECT_WIDTH) for r in self._records]

    def __repr__(self) -> str:
        rows = self.rows()
        if not rows:
            return "WorkflowTable(no workflows)"
        widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(COLUMNS)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
        return "\n".join(line.rstrip() for line in lines)

    def _repr_html_(self) -> str:
        rows = self.rows()
        if not rows:
            return "<p><em>No workflows yet.</em></p>"
        head = "".join(f"<th style='text-align:left'>{c}</th>" for c in COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
