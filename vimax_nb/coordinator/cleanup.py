"""Removing finished workflows' folders of files: what the coordinator's collection of
old workflows (``vimax-nb gc``) does on disk."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .quotas import folder_bytes

#: Seconds in a day: ``retention_days`` and ``--older-than 7d`` are days.
DAY = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class FolderOutcome:
    """A workflow's folder as a collection left it: its size before, and the reason it
    could not be removed (None: removed, or there was none, or it was only counted)."""

    bytes: int
    problem: str | None = None


def clear_folders(
    workdir: Path | None, ids: Iterable[str], *, remove: bool
) -> dict[str, FolderOutcome]:
    """Count (and, with ``remove``, delete) each workflow's folder ``<workdir>/<id>/``.

    Only a folder that is a direct child of ``workdir`` is touched: a symbolic link in its
    place is removed, never followed. A folder already gone counts 0 bytes. Blocking:
    call it on a thread.
    """
    outcomes: dict[str, FolderOutcome] = {}
    root = workdir.resolve() if workdir is not None else None
    for ident in ids:
        if root is None:
            outcomes[ident] = FolderOutcome(0)
            continue
        folder = root / ident
        if folder.parent != root or ident in ("", ".", ".."):
            outcomes[ident] = FolderOutcome(0, f"{ident!r} is not a folder name in {root}")
            continue
        size = 0 if folder.is_symlink() else folder_bytes(folder)
        if not remove:
            outcomes[ident] = FolderOutcome(size)
            continue
        try:
            if folder.is_symlink() or folder.is_file():
                folder.unlink()
            elif folder.exists():
                shutil.rmtree(folder)
        except OSError as exc:
            why = exc.strerror or str(exc)
            where = exc.filename if isinstance(exc.filename, str) else os.fspath(folder)
            outcomes[ident] = FolderOutcome(size, f"could not remove {where}: {why}")
            continue
        outcomes[ident] = FolderOutcome(size)
    return outcomes
