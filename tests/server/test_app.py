"""The extension's life: it starts with the server and stops cleanly with it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from vimax_nb.coordinator import TaskContext
from vimax_nb.protocol import WorkflowState
from vimax_nb.store import Store

from ..coordinator.toy import StoryPipeline, Writer
from .conftest import service_of


async def test_stopping_the_server_interrupts_running_workflows_and_closes_the_database(
    jp_serverapp: Any, vimax_workdir: Path
) -> None:
    service = service_of(jp_serverapp)
    await service.ensure_started()
    entered, release = threading.Event(), threading.Event()

    def hold(ctx: TaskContext) -> None:
        entered.set()
        while not release.wait(0.01):
            ctx.cancel_token.raise_if_cancelled()

    coordinator = service.coordinator
    coordinator.register_pipeline(StoryPipeline())
    coordinator.register_agent(Writer(hold, name="writer"))
    record = await coordinator.submit("story", {"shots": 1})
    assert await asyncio.to_thread(entered.wait, 10)
    await service.stop()  # the held task is told to stop through its cancel token
    await service.stop()  # a second stop (the server's own cleanup) is harmless

    store = await Store.open(vimax_workdir / "vimax.sqlite3")  # the lock was released
    try:
        stored = await store.workflows.get(record.id)
    finally:
        await store.close()
    assert stored is not None
    assert stored.state == WorkflowState.interrupted


def test_pip_install_enables_the_extension() -> None:
    found = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    listing = found.stdout + found.stderr
    assert "vimax_nb.server" in listing
    assert "enabled" in listing
    config = Path(sys.prefix) / "etc/jupyter/jupyter_server_config.d/vimax_nb.json"
    assert json.loads(config.read_text()) == {
        "ServerApp": {"jpserver_extensions": {"vimax_nb.server": True}}
    }


def test_the_extension_loads_without_the_openai_extra() -> None:
    code = (
        "import sys; sys.modules['openai'] = None\n"  # as if the extra were not installed
        "import vimax_nb.server.app, vimax_nb.server.handlers, vimax_nb.cli, vimax_nb.client\n"
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr
