"""The fixture of the widget tests: a fake server and a real client of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .fakes import Backend, serving


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    """A fake server and a client of it whose workdir is ``tmp_path`` (see :func:`serving`)."""
    with serving(tmp_path) as fake:
        yield fake
