"""A Jupyter server with the vimax_nb.server extension, for the REST and WebSocket tests."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.coordinator import TaskContext
from vimax_nb.protocol import TERMINAL_STATES, WorkflowRecord, WorkflowState

WAIT_TIMEOUT = 90.0


@pytest.fixture
def vimax_workdir(tmp_path: Path) -> Path:
    """Where the extension puts each workflow's folder and its database."""
    return tmp_path / "vimax-work"


@pytest.fixture
def jp_server_config(vimax_workdir: Path, vimax_config: dict[str, Any]) -> dict[str, Any]:
    """Enable the extension, with its files in a temporary folder and ``vimax_config``."""
    return {
        "ServerApp": {"jpserver_extensions": {"vimax_nb.server": True}},
        "VimaxApp": {"workdir": str(vimax_workdir), "max_concurrent_tasks": 2, **vimax_config},
    }


def vimax(**traits: Any) -> pytest.MarkDecorator:
    """Run the test on a server whose VimaxApp has ``traits``."""
    return pytest.mark.parametrize(
        "vimax_config", [traits], ids=[",".join(f"{k}={v}" for k, v in traits.items())]
    )


@pytest.fixture
def service(jp_serverapp: Any, jp_asyncio_loop: Any) -> Any:
    """The started VimaxService of the test server."""
    service = service_of(jp_serverapp)
    jp_asyncio_loop.run_until_complete(service.ensure_started())
    return service


def small_params(**overrides: Any) -> dict[str, Any]:
    """Workflow parameters for a quick, small video."""
    params: dict[str, Any] = {
        "width": 160,
        "height": 96,
        "fps": 6,
        "seconds_per_shot": 1,
        "shots_per_scene": 2,
    }
    params.update(overrides)
    return params


def service_of(serverapp: Any) -> Any:
    """The extension's VimaxService."""
    return serverapp.web_app.settings["vimax"]


async def wait_finished(serverapp: Any, workflow_id: str, timeout: float = WAIT_TIMEOUT) -> None:
    """Wait (on the coordinator, not by polling) until the workflow stops running,
    then until every event queued so far is stored."""
    service = service_of(serverapp)
    await service.ensure_started()
    await service.coordinator.wait(workflow_id, timeout=timeout)
    await service.store.events.flush()


async def post_json(fetch: Any, *parts: str, body: Any = None, **kwargs: Any) -> Any:
    """POST ``body`` as JSON through ``jp_fetch``; return the response."""
    return await fetch(*parts, method="POST", body=json.dumps(body or {}), **kwargs)


def record_of(response: Any) -> WorkflowRecord:
    """The workflow record in a response's body (validated against the protocol)."""
    return WorkflowRecord.model_validate_json(response.body)


def is_terminal(state: WorkflowState) -> bool:
    return state in TERMINAL_STATES


class Gate:
    """Holds the toy writer's tasks until opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()

    def __call__(self, ctx: TaskContext) -> None:
        self.entered.set()
        if not self.opened.wait(60):
            raise TimeoutError("the test never opened the gate")


def install_toy(coordinator: Any, gate: Gate) -> None:
    """Give ``coordinator`` the toy 'story' pipeline, its writer held by ``gate``."""
    from ..coordinator.toy import Editor, Painter, StoryPipeline, Writer

    coordinator.register_pipeline(StoryPipeline())
    for agent in (
        Writer(gate, name="toy-writer"),
        Painter(name="toy-painter"),
        Editor(name="toy-editor"),
    ):
        coordinator.register_agent(agent)
