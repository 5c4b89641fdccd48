"""The example notebooks under nbval (``pytest`` runs them with ``--nbval-lax``).

nbval starts each notebook's kernel in this folder, so ``vx.connect()`` starts a private
``jupyter server`` whose workflows and SQLite event log go to ``notebooks/vimax-work/``
(ignored by git). One server at a time may own that database (the store holds an
exclusive lock on it), so two pytest sessions running the notebooks at once — two
developers, or CI and a developer, in one checkout — would fail the second one's
``connect()``. Sessions take turns instead, on a lock file beside the database.

What earlier runs leave behind does not matter: the store's lock (and this one) is an
``flock`` that ends with its process, a workflow cut off by a killed kernel is marked
``interrupted`` when the next server starts, and the notebooks check only their own runs.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

LOCK = Path(__file__).parent / "vimax-work" / ".notebooks.lock"
WAIT = 100.0  # seconds; under pytest-timeout's 120 s for the first cell

_held: int | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the first notebook cell (and its kernel): wait for other sessions' notebooks."""
    global _held
    if _held is not None:
        return
    LOCK.parent.mkdir(exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                pytest.fail(
                    f"another pytest session has been running the notebooks for {WAIT:.0f} s "
                    f"(it holds {LOCK}); wait for it to finish and run again",
                    pytrace=False,
                )
            time.sleep(0.5)
    _held = fd


def pytest_sessionfinish(session: pytest.Session) -> None:
    global _held
    fd, _held = _held, None
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
